"""A virtual board running the real Motekit firmware, for the node behaviour tests.

with firmware_node("sim-esp32", {"sample_period": 300}, models=[SHT41], speed=2000) as fw:
    for item in fw.items(timeout_s=30):    # log lines (Text) and frames, as they come
        ...
    with fw.client.session(wait_s=10):     # then talk to it over the console protocol
        fw.client.request("stats")
"""

import json
import re
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simnode import at_repl

from host_tools.boards import load_board
from host_tools.deploy import deploy
from host_tools.hil.node import Node
from host_tools.protocol.client import NodeClient
from host_tools.protocol.framing import Decoder, Frame, Item, Text
from host_tools.sim.launcher import SimProcess
from host_tools.transport.serial import SerialTransport

SHT41 = {"model": "sht4x", "bus": "i2c0", "addr": 0x44}
CYCLE = re.compile(r"motekit: cycle (\d+) t=(\d+) (.*), next in (\d+) ms")


class FirmwareNode:
    def __init__(self, sim: SimProcess, board: str) -> None:
        self.sim = sim
        self.board = board
        self.transport = SerialTransport(sim.port)
        self.client = NodeClient(self.transport)
        self._decoder = Decoder()
        self.seen: list[Item] = []
        self._pending: deque[Item] = deque()

    def let_go_of_port(self) -> None:
        """Close our end of the pty so another program (the `mote` CLI) can open it."""
        self.transport.close()

    def control(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.sim.control.request(cmd, **args)

    def reset(self, kind: str = "button") -> None:
        self.control("reset", kind=kind)

    def items(self, timeout_s: float) -> Iterator[Item]:
        """Everything the node says, line by line, until timeout_s passes (then StopIteration)."""
        deadline = time.monotonic() + timeout_s
        while True:
            # Items decoded but not yet taken wait here for the next call, so a caller that
            # stops at a match loses none of the lines that came in the same read.
            while self._pending:
                item = self._pending.popleft()
                self.seen.append(item)
                yield item
            if time.monotonic() >= deadline:
                return
            self._pending.extend(self._decoder.feed(self.transport.read(0.05)))

    def wait_text(self, pattern: str, timeout_s: float = 20) -> re.Match[str]:
        rx = re.compile(pattern)
        for item in self.items(timeout_s):
            if isinstance(item, Text) and (m := rx.search(item.text)):
                return m
        raise AssertionError(f"no {pattern!r} within {timeout_s} s; log:\n{self.log_text()}")

    def wait_event(self, ev: str, timeout_s: float = 20) -> dict[str, Any]:
        for item in self.items(timeout_s):
            if isinstance(item, Frame) and item.id == 0 and item.obj.get("ev") == ev:
                return item.obj
        raise AssertionError(f"no {ev} event within {timeout_s} s; log:\n{self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(i.text if isinstance(i, Text) else repr(i) for i in self.seen[-60:])


@contextmanager
def firmware_node(
    board: str,
    config: dict[str, Any] | None = None,
    *,
    models: list[dict[str, Any]] = (),  # type: ignore[assignment]
    extra: dict[str, str] | None = None,
    speed: float = 1.0,
) -> Iterator[FirmwareNode]:
    """A fresh virtual `board` with the firmware, `config` and `extra` files (node path -> text)
    installed, `models` attached, just reset (the host window is open)."""
    with SimProcess(board, speed=speed, baud=0) as sim, tempfile.TemporaryDirectory() as tmp:
        node = Node(sim.port, load_board(board), sim)
        at_repl(node)
        files = {}
        for node_path, text in (extra or {}).items():
            path = Path(tmp) / node_path.strip("/").replace("/", "_")
            path.write_text(text)
            files[node_path] = path
        if config is not None:
            path = Path(tmp) / "config.json"
            path.write_text(json.dumps({"version": 2, **config}))
            files["/config.json"] = path
        node.close()
        deploy(sim.port, board, extra_files=files, start=False)
        for m in models:
            sim.control.request("attach", **m)
        fw = FirmwareNode(sim, board)
        try:
            fw.reset()
            yield fw
        finally:
            fw.transport.close()
