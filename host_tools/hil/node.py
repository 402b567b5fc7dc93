"""A node under test, reached over its serial port: a real board or a virtual one.

Everything here speaks the serial line only (so it runs unchanged on a bench), except
`hard_reset()`, which uses the virtual board's control channel or the board's reset wiring.
"""

import re
import time
from pathlib import Path
from typing import Any

import serial
from mpremote.transport_serial import SerialTransport

from host_tools.deploy import deploy
from host_tools.errors import TransportError
from host_tools.hil.reset import NoResetLine, reset_for
from host_tools.protocol.client import NodeClient
from host_tools.sim.launcher import SimProcess

PROMPT = b">>> "


class Node:
    def __init__(
        self,
        port: str,
        board: dict[str, Any],
        sim: SimProcess | None = None,
        *,
        air: str | None = None,
    ) -> None:
        self.port = port
        self.board = board
        self.sim = sim
        self.air = air  # a virtual node: the virtual air it transmits on
        self.log = bytearray()  # everything the node said, for the failure report
        self._transport: SerialTransport | None = None
        self._buf = bytearray()

    @property
    def virtual(self) -> bool:
        return self.sim is not None

    # ---- the link -----------------------------------------------------------------------

    @property
    def transport(self) -> SerialTransport:
        if self._transport is None:
            self._transport = self._open()
        return self._transport

    def _open(self, wait_s: float = 10.0) -> SerialTransport:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                transport = SerialTransport(self.port, baudrate=115200)
                # Reads must return, or read_until's deadline never comes on a silent node.
                transport.serial.timeout = 0.2
                return transport
            except Exception as exc:  # noqa: BLE001 - the port may be re-enumerating
                if time.monotonic() > deadline:
                    raise TransportError(f"cannot open {self.port}: {exc}") from exc
                time.sleep(0.2)

    @property
    def serial(self) -> serial.Serial:
        return self.transport.serial

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def console(self) -> NodeClient:
        """A console-protocol client (docs/protocol.md) over this node's open port. What it
        reads goes into the node log too; output already read and not consumed comes first."""
        return NodeClient(_PortLink(self))

    def read_until(self, pattern: bytes | str, timeout: float = 10.0) -> bytes:
        """Read until `pattern` (bytes literal or regex str) appears; return all read so far."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self._buf)
            if m:
                out = bytes(self._buf[: m.end()])
                del self._buf[: m.end()]
                return out
            if time.monotonic() > deadline:
                seen = bytes(self._buf[-400:])
                raise TimeoutError(f"no {pattern!r} within {timeout} s; last output: {seen!r}")
            try:
                chunk = self.serial.read(max(1, self.serial.in_waiting))
            except serial.SerialException:
                # USB CDC boards vanish while resetting or sleeping: reopen when back.
                self.close()
                time.sleep(0.2)
                continue
            self._buf += chunk
            self.log += chunk

    def drain(self) -> None:
        self._buf.clear()
        self.serial.reset_input_buffer()

    # ---- REPL -------------------------------------------------------------------------

    def interrupt_to_repl(self, timeout: float = 10.0) -> None:
        """Ctrl-C until the friendly REPL answers (catches the firmware's host-wait window).

        Ends in step with the node: after the prompt, an expression is evaluated and its
        result awaited, so no stray prompt is left to satisfy a later read.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.write(b"\x03\x02")  # interrupt; Ctrl-B leaves a raw REPL if we were in one
            try:
                self.read_until(PROMPT, timeout=0.3)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        self.write(b"print('mote' + 'kit-sync')\r")
        self.read_until(b"motekit-sync\r\n>>> ", timeout=max(1.0, deadline - time.monotonic()))
        self.transport.in_raw_repl = False

    def exec(self, code: str, timeout: float = 10.0) -> str:
        """Run `code` through the raw REPL (no soft reset) and return what it printed."""
        t = self.transport
        if not t.in_raw_repl:
            t.enter_raw_repl(soft_reset=False)
        out, err = t.exec_raw(code, timeout=timeout)
        self.log += out + err
        if err:
            raise AssertionError(f"node raised:\n{err.decode(errors='replace')}")
        return out.decode().replace("\r\n", "\n")

    def eval(self, expr: str) -> Any:
        import ast

        return ast.literal_eval(self.exec(f"print(repr({expr}))").strip())

    def leave_raw_repl(self) -> None:
        if self._transport is not None and self._transport.in_raw_repl:
            self._transport.exit_raw_repl()
            self.read_until(PROMPT, timeout=5)

    # ---- resets and firmware ----------------------------------------------------------

    def hard_reset(self) -> None:
        """Reset like the board's reset button; the node then boots from flash."""
        # Open the port first: opening it later would flush the boot output we want to see.
        self.serial.reset_input_buffer()
        self._buf.clear()
        if self.sim is not None:
            self.sim.control.request("reset", kind="button")
            if self._transport is not None:
                self._transport.in_raw_repl = False
            return
        resetter = reset_for(self.board)
        if isinstance(resetter, NoResetLine):
            self.exec("import machine\nmachine.reset()")  # the REPL must be reachable
            self.close()
        else:
            resetter(self.serial)
            self.transport.in_raw_repl = False

    def install_firmware(self, config: dict[str, Any] | None = None) -> None:
        """Deploy the firmware (mote deploy's code) and a config.json, leaving the node at its
        REPL: the test resets it to start motekit."""
        import json
        import tempfile

        self.close()
        with tempfile.TemporaryDirectory() as tmp:
            extra = {}
            if config is not None:
                cfg = Path(tmp) / "config.json"
                cfg.write_text(json.dumps(config))
                extra["/config.json"] = cfg
            deploy(self.port, self.board["name"], extra_files=extra, start=False)


class _PortLink:
    """The host_tools.transport shape over a Node's already open port."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.name = node.port

    def read(self, timeout_s: float) -> bytes:
        if self.node._buf:
            data = bytes(self.node._buf)
            self.node._buf.clear()
            return data
        port = self.node.serial
        deadline = time.monotonic() + timeout_s
        while True:
            data: bytes = port.read(port.in_waiting or 1)
            if data:
                self.node.log += data
                return data
            if time.monotonic() >= deadline:
                return b""

    def write(self, data: bytes) -> None:
        self.node.serial.write(data)

    def close(self) -> None:
        pass  # the Node owns the port
