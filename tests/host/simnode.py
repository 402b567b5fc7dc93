"""Shared by the virtual-board behaviour tests: reaching a fresh board's REPL and its controls."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import littlefs

from host_tools.boards import load_board
from host_tools.hil.node import Node

# The conftest `mote` fixture: mote(*args) runs the CLI in-process -> (exit code, out, err).
Mote = Callable[..., tuple[int, str, str]]


def at_repl(node: Node) -> None:
    """Wait until the friendly REPL answers (a blank board formats its flash first)."""
    node.write(b"print(6 * 7)\r")  # the echo shows "6 * 7": only the result matches below
    node.read_until(b"42\r\n>>> ")


def send_line(node: Node, line: str) -> bytes:
    """Type one line at the friendly REPL; return everything up to the next prompt."""
    node.write(line.encode() + b"\r")
    return node.read_until(b">>> ")


def control(node: Node, cmd: str, **args: Any) -> dict[str, Any]:
    assert node.sim is not None
    return node.sim.control.request(cmd, **args)


def status(node: Node) -> dict[str, Any]:
    return control(node, "status")


def boots(node: Node) -> int:
    return status(node)["boots"]


def stop(node: Node) -> None:
    """End `mote sim` (its state dir stays, for a restart with --state)."""
    node.close()
    assert node.sim is not None
    node.sim.stop()


def flash_image(state_dir: Path, board: str) -> littlefs.LittleFS:
    """Mount a copy of a virtual board's flash.bin with littlefs-python (MicroPython's lfs2
    geometry): an oracle independent of MicroPython."""
    flash = load_board(board)["flash"]
    image = (state_dir / "flash.bin").read_bytes()
    assert len(image) == flash["fs_bytes"]
    block = flash["fs_block_size"]
    return littlefs.LittleFS(
        context=littlefs.UserContext(buffer=bytearray(image)),
        block_size=block,
        block_count=len(image) // block,
        read_size=32,  # extmod/vfs_lfs.c defaults: readsize, progsize and lookahead 32
        prog_size=32,
        lookahead_size=32,
    )
