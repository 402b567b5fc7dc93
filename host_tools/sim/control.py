"""The virtual board's control channel: set the environment, inject faults, press reset.

A Unix socket speaking JSON lines: one request object `{"cmd": NAME, ...args}` per line, one
reply per line, `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. The same commands are
reachable from `mote sim` options, from `mote simctl`, from tests (SimControl below), and from
device tests running on the node itself (rom/_simctl.py, in script mode only).
"""

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_tools.errors import SimError

Handler = Callable[..., Any]


class CommandError(Exception):
    """A control request that cannot be carried out; its text goes back to the caller."""


class Dispatcher:
    """Maps command names to handlers; turns any failure into an error reply."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd not in self._handlers:
            return {
                "ok": False,
                "error": f"unknown command {cmd!r}; known: {', '.join(self.names())}",
            }
        args = {k: v for k, v in request.items() if k != "cmd"}
        try:
            result = self._handlers[cmd](**args)
        except (CommandError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}
        reply: dict[str, Any] = {"ok": True}
        if isinstance(result, dict):
            reply.update(result)
        return reply


class ControlServer:
    """Non-blocking server side, driven by the supervisor's select loop."""

    def __init__(self, path: Path, dispatcher: Dispatcher) -> None:
        self.path = path
        self.dispatcher = dispatcher
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(8)
        self._sock.setblocking(False)
        self._clients: dict[int, tuple[socket.socket, bytearray]] = {}

    def fds(self) -> dict[int, Callable[[], None]]:
        handlers: dict[int, Callable[[], None]] = {self._sock.fileno(): self._accept}
        for fd in self._clients:
            handlers[fd] = lambda fd=fd: self._read(fd)
        return handlers

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(2.0)
        self._clients[conn.fileno()] = (conn, bytearray())

    def _read(self, fd: int) -> None:
        conn, buf = self._clients[fd]
        try:
            chunk = conn.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            del self._clients[fd]
            conn.close()
            return
        buf += chunk
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
                reply = self.dispatcher.handle(request)
            except ValueError as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            with contextlib.suppress(OSError):  # the client went away; nothing to tell
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self) -> None:
        for conn, _ in self._clients.values():
            conn.close()
        self._sock.close()
        self.path.unlink(missing_ok=True)


class SimControl:
    """Client for a running virtual board's control socket."""

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect(self.path)
        except OSError as exc:
            raise SimError(f"cannot reach virtual board control socket {self.path}: {exc}") from exc
        self._buf = b""

    def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command; return its reply, or raise SimError with the board's message."""
        self._sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise SimError("virtual board closed its control socket")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise SimError(f"virtual board refused {cmd!r}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "SimControl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
