"""Run one MicroPython file on a fresh virtual board and exit with its result (script mode).

    python -m host_tools.sim.script --board sim-esp32 [--mount HOST_DIR:/node/path]... FILE

The node's output goes to stdout. Exit status: 0 when the file ran to the end, 1 when it raised
(the MicroPython traceback is in the output), 124 on timeout. This is what device tests use:
the firmware and drivers run in the real interpreter, with the board's heap, littlefs and device
models, and the file can drive the control channel itself through the `_simctl` module.
"""

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from host_tools.boards import load_board
from host_tools.sim import link
from host_tools.sim.commands import board_commands
from host_tools.sim.state import StateDir
from host_tools.sim.supervisor import VirtualBoard


def run(
    board: str,
    script: Path,
    mounts: list[tuple[str, str]],
    timeout_s: float,
    out: Callable[[bytes], None] | None = None,
    speed: float = 1.0,
) -> int:
    def to_stdout(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    write = out or to_stdout
    state = StateDir(None)
    script = script.resolve()
    # The node sees the script's folder at /.test (its / is the board's littlefs).
    mounts = [*mounts, (str(script.parent), "/.test")]
    vb = VirtualBoard(
        load_board(board),
        state,
        baud=0,
        air=None,
        speed=speed,
        script="/.test/" + script.name,
        host_mounts=mounts,
        log=lambda m: write(f"[sim] {m}\n".encode()),
    )
    vb.output_tap = write
    commands = board_commands(vb, lambda: None)
    vb.link_handlers[link.OP_CONTROL] = lambda req: json.dumps(
        commands.handle(json.loads(req.payload))
    ).encode()
    vb.start()
    deadline = time.monotonic() + timeout_s
    try:
        while vb.script_exit is None and time.monotonic() < deadline:
            vb.step(0.1)
    finally:
        vb.close()
        shutil.rmtree(state.path, ignore_errors=True)
    if vb.script_exit is None:
        write(f"\n[sim] timed out after {timeout_s} s\n".encode())
        return 124
    return vb.script_exit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="sim-esp32")
    ap.add_argument("--mount", action="append", default=[], metavar="HOST_DIR:/NODE_PATH")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument(
        "--speed", type=float, default=1.0, help="simulated time per real time while asleep"
    )
    ap.add_argument("script", type=Path)
    args = ap.parse_args(argv)
    mounts = []
    for m in args.mount:
        host, _, node = m.rpartition(":")
        mounts.append((str(Path(host).resolve()), node))
    return run(args.board, args.script, mounts, args.timeout, speed=args.speed)


if __name__ == "__main__":
    sys.exit(main())
