"""`make demo`: the main journey as far as it exists today.

Start a virtual ESP32 node with an SHT41 on its I2C bus, flash it (`mote flash`: its flash
erased, the firmware deployed), give it its BTHome key (`mote provision`), deploy again (nothing
to copy), configure it over the console protocol, then watch it sample, report on change and on
heartbeat, and deep-sleep through half a simulated day in a few seconds, decoding every report
it sends. A sensor is unplugged on the way; finally the node is caught at a wake and shows what
its cycles cost. Then it stops.
"""

import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from host_tools.cli import node_view
from host_tools.cli.deploy import describe
from host_tools.cli.main import main as main_cli
from host_tools.deploy import deploy
from host_tools.errors import ProtocolError
from host_tools.flashing.node import flash_node
from host_tools.protocol.client import NodeClient
from host_tools.protocol.framing import Decoder, Frame, Text
from host_tools.sim.launcher import SimProcess
from host_tools.transport.serial import SerialTransport

BOARD = "sim-esp32"
SPEED = 2000.0
PERIOD_S = 600
HOURS = 12
CONFIG = {"sensors": [{"kind": "battery"}, {"kind": "sht4x"}], "battery_mah": 2500}
# What happens to the world around the node, at simulated hours since the first wake.
EVENTS = [
    (3.0, "the sun comes in: 22 -> 27 °C", {"env": {"temperature_c": 27.0}}),
    (6.0, "someone unplugs the SHT41", {"fault": {"target": "i2c0:0x44", "spec": "detach"}}),
    (8.0, "and plugs it back in", {"clear_faults": {}}),
]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_CYCLE = re.compile(r"motekit: cycle (\d+) t=(\d+) ")


def main() -> int:
    con = Console(highlight=False)
    con.rule("[bold]Motekit demo")
    con.print(f"Starting virtual board [bold]{BOARD}[/] at {SPEED:g}x, an SHT41 on i2c0")
    with SimProcess(BOARD, speed=SPEED) as sim:
        sim.control.request("attach", model="sht4x", bus="i2c0", addr=0x44)
        con.print(f"  serial port: [cyan]{sim.port}[/]  (try: mpremote connect {sim.port} repl)")
        con.print(f"\n[bold]mote flash --board {BOARD} --port {sim.port} --hold[/]")
        result = flash_node(BOARD, sim.port, hold=True, say=lambda m: con.print(f"  {m}"))
        assert result.deploy is not None
        con.print(f"  {describe(result.deploy)}")
        registry = Path(sim.state_dir).parent / "registry.json"
        con.print(f"\n[bold]mote provision --port {sim.port} --registry {registry.name}[/]")
        if main_cli(["provision", "--port", sim.port, "--registry", str(registry)]) != 0:
            return 1
        con.print(f"\n[bold]mote deploy --port {sim.port}[/] again: nothing has changed")
        con.print(f"  {describe(deploy(sim.port, hold=True))}")
        with SerialTransport(sim.port) as port:
            node = NodeClient(port)
            node.catch(10)  # held since the flash: it answers at once
            node_view.info(node.request("info"))
            for key, value in CONFIG.items():
                node.request("config", op="set", key=key, value=value)
            con.print(f"\n[bold]mote config set[/] sensors, battery: {CONFIG}")
            con.print("[bold]mote config set sample_period 0[/]")
            try:
                node.request("config", op="set", key="sample_period", value=0)
            except ProtocolError as exc:
                con.print(f"  refused: [red]{exc}[/]")
            node.request("config", op="set", key="sample_period", value=PERIOD_S)
            con.print(f"[bold]mote config set sample_period {PERIOD_S}[/]: accepted, saved")
            node.request("release")
            con.print(f"\n[bold]Released: {HOURS} simulated hours of duty cycles[/]")
            reports = _watch(con, sim, port)
            con.print("\n[bold]Caught at a wake: what the cycles cost (mote stats)[/]")
            node = NodeClient(port)
            with node.session(wait_s=20):
                node_view.stats(node.request("stats"))
    con.rule("[bold]Summary")
    con.print(f"{reports} reports decoded over {HOURS} simulated hours.")
    con.print("Next: `make test` runs every test layer; `make sim` starts a board to play with.")
    return 0 if reports >= HOURS // 2 else 1


def _watch(con: Console, sim: SimProcess, port: SerialTransport) -> int:
    decoder = Decoder()
    events = list(EVENTS)
    t_first = None
    reports = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for item in decoder.feed(port.read(0.05)):
            if isinstance(item, Text) and (m := _CYCLE.search(item.text)):
                t = int(m[2])
                t_first = t if t_first is None else t_first
                hours = (t - t_first) / 3600
                if hours >= HOURS:
                    return reports
                while events and hours >= events[0][0]:
                    _, what, action = events.pop(0)
                    con.print(f"[yellow]  {_clock(t)}  world: {what}[/]")
                    for cmd, args in action.items():
                        sim.control.request(cmd, **args)
            elif isinstance(item, Frame) and item.obj.get("ev") == "report":
                reports += 1
                con.print(_report_line(item.obj["data"]))
    return reports


def _report_line(rep: dict[str, Any]) -> str:
    s = rep["samples"][-1]
    vals = "  ".join(node_view.value(ch, v) for ch, v in sorted(s["values"].items()))
    missing = f"  [red]{', '.join(s['missing'])} missing[/]" if s.get("missing") else ""
    why = ",".join(rep["reason"])
    return f"  {_clock(s['t'])}  #{rep['seq']:<3} [green]{why:<22}[/] {vals}{missing}"


def _clock(t: int) -> str:
    return (_EPOCH + timedelta(seconds=t)).strftime("%H:%M")


if __name__ == "__main__":
    sys.exit(main())
