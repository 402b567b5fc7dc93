"""`make demo`: the main journey as far as it exists today.

Start a virtual ESP32 LoRa board (a TTGO LoRa32: BLE and an SX1276) with an SHT41 on its I2C
bus, flash it (`mote flash`: its flash erased, the firmware deployed), give it its keys (`mote
provision`: a BTHome bind key, LoRaWAN OTAA keys), deploy again (nothing to copy), configure it
over the console protocol, then watch it sample, report on change and on heartbeat, and
deep-sleep through half a simulated day. Its reports go out three ways, each decoded as it
arrives: the console line, BTHome adverts (what `mote scan --sim` shows: decrypted with the
bind key) and LoRaWAN uplinks (what `mote gateway --sim` shows: the node joins through the
bench network server first). A sensor is unplugged on the way; finally the node is caught at a
wake and shows what its cycles cost. Then it stops.
"""

import os
import re
import sys
import tempfile
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
from host_tools.gateway import Gateway, SimGateway
from host_tools.lorawan.server import NetworkServer
from host_tools.protocol.client import NodeClient
from host_tools.protocol.framing import Decoder, Frame, Text
from host_tools.registry import Registry
from host_tools.scan import AirSource, KeyRing, Scanner
from host_tools.sim.air import Air
from host_tools.sim.launcher import SimProcess
from host_tools.transport.serial import SerialTransport

BOARD = "sim-esp32-sx1276"
SPEED = 2000.0
PERIOD_S = 600
HOURS = 12
CONFIG: dict[str, Any] = {
    "sensors": [{"kind": "sht4x"}],
    "battery_mah": 2500,
    "uplinks": ["console", "bthome", "lorawan"],
    "ble_adv_count": 2,
}
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
    air_dir = tempfile.TemporaryDirectory(prefix="mote-demo-air-")
    os.environ["MOTE_AIR_DIR"] = air_dir.name  # a private virtual air for this demo
    os.environ["MOTE_AIR"] = "demo"
    with air_dir, SimProcess(BOARD, speed=SPEED) as sim:
        sim.control.request("attach", model="sht4x", bus="i2c0", addr=0x44)
        con.print(f"  serial port: [cyan]{sim.port}[/]  (try: mpremote connect {sim.port} repl)")
        con.print(f"\n[bold]mote flash --board {BOARD} --port {sim.port} --hold[/]")
        result = flash_node(BOARD, sim.port, hold=True, say=lambda m: con.print(f"  {m}"))
        assert result.deploy is not None
        con.print(f"  {describe(result.deploy)}")
        registry = Path(sim.state_dir).parent / "registry.json"
        con.print(
            f"\n[bold]mote provision --port {sim.port} --registry {registry.name}"
            " --lorawan-region EU868[/]"
        )
        args = ["provision", "--port", sim.port, "--registry", str(registry)]
        if main_cli([*args, "--lorawan-region", "EU868"]) != 0:
            return 1
        con.print(f"\n[bold]mote deploy --port {sim.port}[/] again: nothing has changed")
        con.print(f"  {describe(deploy(sim.port, hold=True))}")
        with SerialTransport(sim.port) as port:
            node = NodeClient(port)
            node.catch(10)  # held since the flash: it answers at once
            node_view.info(node.request("info"))
            for key, value in CONFIG.items():
                node.request("config", op="set", key=key, value=value)
            con.print(f"\n[bold]mote config set[/] {', '.join(CONFIG)}: {CONFIG}")
            con.print("[bold]mote config set sample_period 0[/]")
            try:
                node.request("config", op="set", key="sample_period", value=0)
            except ProtocolError as exc:
                con.print(f"  refused: [red]{exc}[/]")
            node.request("config", op="set", key="sample_period", value=PERIOD_S)
            con.print(f"[bold]mote config set sample_period {PERIOD_S}[/]: accepted, saved")
            con.print(
                "\n[bold]mote scan --sim[/] and [bold]mote gateway --sim[/] listen on the "
                "virtual air (here in this process):"
            )
            records = Registry(registry).devices().values()
            with (
                AirSource(Air("demo")) as ble,
                SimGateway(Air("demo")) as lora,
            ):
                heard = _Heard(
                    Scanner(ble, KeyRing.from_registry(Registry(registry))),
                    Gateway(lora, NetworkServer(records)),
                )
                node.request("release")
                con.print(f"\n[bold]Released: {HOURS} simulated hours of duty cycles[/]")
                reports = _watch(con, sim, port, heard)
            con.print("\n[bold]Caught at a wake: what the cycles cost (mote stats)[/]")
            node = NodeClient(port)
            with node.session(wait_s=20):
                node_view.stats(node.request("stats"))
    con.rule("[bold]Summary")
    con.print(
        f"{reports} reports decoded over {HOURS} simulated hours: {heard.adverts} BTHome adverts"
        f" and {heard.uplinks} LoRaWAN uplinks ({heard.joins} join) decoded on the air."
    )
    con.print("Next: `make test` runs every test layer; `make sim` starts a board to play with.")
    ok = reports >= HOURS // 2 and heard.adverts > 0 and heard.uplinks > 0
    return 0 if ok else 1


class _Heard:
    """What `mote scan --sim` and `mote gateway --sim` would print, one line each."""

    def __init__(self, scanner: Scanner, gateway: Gateway) -> None:
        self.scanner = scanner
        self.gateway = gateway
        self.adverts = self.uplinks = self.joins = 0
        self._events: list[dict[str, Any]] = []
        gateway.on_event = self._events.append

    def poll(self, con: Console) -> None:
        while (r := self.scanner.poll(0)) is not None:
            self.adverts += 1
            vals = "  ".join(f"{k}={v}" for k, v in sorted(r.advert.values.items()))
            lock = "encrypted" if r.advert.encrypted else "plain"
            con.print(f"  [magenta]      BTHome  {lock:<9} #{r.advert.packet_id:<3}[/] {vals}")
        self.gateway.step(0)
        for e in self._events:
            if e.get("event") == "join":
                self.joins += 1
                con.print(f"  [blue]      LoRaWAN join  DevEUI {e.get('dev_eui')}[/]")
            elif e.get("event") == "uplink":
                self.uplinks += 1
                vals = "  ".join(f"{k}={v}" for k, v in sorted((e.get("values") or {}).items()))
                con.print(
                    f"  [blue]      LoRaWAN FCnt {e.get('fcnt'):<3} DR{e.get('dr')}[/] {vals}"
                )
        self._events.clear()


def _watch(con: Console, sim: SimProcess, port: SerialTransport, heard: _Heard) -> int:
    decoder = Decoder()
    events = list(EVENTS)
    t_first = None
    reports = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        heard.poll(con)
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
