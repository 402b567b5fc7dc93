"""`make demo`: the main journey as far as it exists today.

Start a virtual ESP32 node, put the firmware on it over its serial port, reset it, and watch it
wake, log and deep-sleep, an hour of duty cycles in a few seconds, then stop.
"""

import json
import re
import sys
import time
from pathlib import Path

import serial
from rich.console import Console

from host_tools import firmware_files
from host_tools.sim.launcher import SimProcess
from host_tools.sim.resets import cause_name

BOARD = "sim-esp32"
SPEED = 3600.0
PERIOD_S = 600
WAKES = 7
WAKE = re.compile(rb"motekit: wake (\d+) ")


def main() -> int:
    con = Console(highlight=False)
    con.rule("[bold]Motekit demo")
    con.print(f"Starting virtual board [bold]{BOARD}[/] at {SPEED:g}x (one hour of sleep per s)")
    with SimProcess(BOARD, speed=SPEED) as sim:
        con.print(f"  serial port: [cyan]{sim.port}[/]  (try: mpremote connect {sim.port} repl)")
        con.print("Copying the firmware to the node with mpremote (its flash starts blank)")
        t0 = time.monotonic()
        firmware_files.install(sim.port, BOARD, _config(sim))
        con.print(f"  done in {time.monotonic() - t0:.1f} s over a 115200-baud link")
        con.print(f"Resetting the node; it wakes every {PERIOD_S // 60} min, then deep-sleeps")
        con.print("[dim](left: real seconds since the reset; the node prints its own clock)[/]\n")
        with serial.Serial(sim.port, 115200, timeout=0.2) as port:
            sim.control.request("reset", kind="button")
            seen = _watch(con, sim, port)
        status = sim.control.request("status")
    hours = status["sim_ms"] / 3_600_000
    con.print()
    con.rule("[bold]Summary")
    con.print(
        f"{seen} wakes logged; simulated clock at {hours:.2f} h after {status['boots']} boots"
    )
    causes = sorted({cause_name(h["cause"]) for h in status["history"]})
    con.print(f"reset causes seen: {', '.join(causes)}")
    con.print("Next: `make test` runs every test layer; `make sim` starts a board to play with.")
    return 0 if seen >= WAKES else 1


def _config(sim: SimProcess) -> dict[str, Path]:
    cfg = Path(sim.state_dir).parent / "config.json"
    cfg.write_text(json.dumps({"period_s": PERIOD_S, "host_wait_ms": 3000}))
    return {"/config.json": cfg}


def _watch(con: Console, sim: SimProcess, port: serial.Serial) -> int:
    buf = b""
    wakes = 0
    t0 = time.monotonic()
    deadline = t0 + 60
    while wakes < WAKES and time.monotonic() < deadline:
        buf += port.read(4096)
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            text = line.rstrip(b"\r").decode(errors="replace")
            if not text.strip():
                continue
            stamp = f"[dim]{time.monotonic() - t0:6.2f} s[/]"
            style = "bold green" if text.startswith("motekit") else "dim"
            con.print(f"{stamp} [{style}]{text}[/]")
            if WAKE.search(line):
                wakes += 1
    return wakes


if __name__ == "__main__":
    sys.exit(main())
