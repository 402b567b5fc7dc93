"""The interactive console behind `mote console`: keys to the node, the node's bytes to the screen.

    console = Console("/dev/ttyUSB0", lambda: SerialTransport("/dev/ttyUSB0"),
                      input_fd=sys.stdin.fileno(), output=sys.stdout.buffer)
    code = console.run()        # 0 after Ctrl-], 128+N after signal N

Keys go to the node as typed (Ctrl-C, Ctrl-D, Tab, arrows: the MicroPython REPL works); the
node's bytes are shown as they come, a prompt without a newline included. Ctrl-] ends it. Unless
`raw`, whole console-protocol frame lines (`@M1 ...`, docs/protocol.md) are shown readably,
`[report] seq=3 reason=first temperature=21.52 ...`; every other byte passes through untouched.

When the port goes away (a USB-CDC board re-enumerating as it resets, a cable pulled) the
console says so and reopens it every `retry_s` until it is back; Ctrl-] still ends it. A port
that cannot be opened at the start is the caller's TransportError, not a wait.

POSIX only (Linux, macOS): input is read with select() and the terminal set with termios.
"""

import contextlib
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, BinaryIO

from host_tools.errors import TransportError
from host_tools.protocol.framing import MAX_FROM_NODE, Frame, parse_line
from host_tools.transport import Transport

EXIT_KEY = b"\x1d"  # Ctrl-], as miniterm and idf.py monitor
RETRY_S = 0.5  # how often a vanished port is tried again
_READ_S = 0.05  # one port read waits at most about this long, so keys are never kept waiting
_HOLD_S = 0.25  # a held `@M1 ` line that stops growing this long is shown as it is
_FRAME_START = b"@M1 "
_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class FrameFilter:
    """Node bytes in, screen bytes out: frame lines made readable, everything else at once.

    Pure: no I/O, no clock. A line that begins like a frame is held back until its newline (or
    until `flush()`), then shown readably if it is a good frame and as it came otherwise.
    """

    def __init__(self, raw: bool = False) -> None:
        self.raw = raw
        self._line_start = True  # the next byte begins a line
        self._held = bytearray()  # a line start that is, or may become, a frame

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        out = bytearray()
        i = 0
        while i < len(data):
            if self._held or self._line_start:
                i = self._hold(data, i, out)
                continue
            nl = data.find(b"\n", i)
            if nl < 0:
                out += data[i:]
                break
            out += data[i : nl + 1]
            self._line_start = True
            i = nl + 1
        return bytes(out)

    def flush(self) -> bytes:
        """Give up holding: the held bytes as they came (the stream paused or broke)."""
        held = bytes(self._held)
        if held:
            self._held.clear()
            self._line_start = False  # the rest of this line passes through
        return held

    def reset(self) -> bytes:
        """The stream starts again (a reconnect): what was held, and a fresh line."""
        held = self.flush()
        self._line_start = True
        return held

    def _hold(self, data: bytes, i: int, out: bytearray) -> int:
        """Continue a line start at data[i]; return where the caller goes on."""
        while len(self._held) < len(_FRAME_START):
            if i >= len(data):
                return i  # all taken, and still the start of a frame
            if data[i] != _FRAME_START[len(self._held)]:
                out += self.flush()  # not a frame: the line passes through from here
                self._line_start = False
                return i
            self._held.append(data[i])
            i += 1
        nl = data.find(b"\n", i)
        if nl < 0:
            self._held += data[i:]
            if len(self._held) > MAX_FROM_NODE:
                out += self.flush()  # no frame is this long
            return len(data)
        self._held += data[i : nl + 1]
        line = bytes(self._held)
        self._held.clear()
        self._line_start = True
        item = parse_line(line[:-1])
        out += render(item).encode() + b"\r\n" if isinstance(item, Frame) else line
        return nl + 1


def render(frame: Frame) -> str:
    """One frame as one readable line (no newline)."""
    obj = frame.obj
    if "ev" in obj:
        ev = str(obj["ev"])
        if ev == "report" and isinstance(obj.get("data"), dict):
            return f"[report] {_report(obj['data'])}"
        return f"[{ev}] {_pairs({k: v for k, v in obj.items() if k != 'ev'})}".rstrip()
    if "cmd" in obj:  # a request: one echoed by the REPL, or another host's
        return f"[request #{frame.id}] {_pairs(obj)}"
    if obj.get("busy") is True:
        return f"[reply #{frame.id}] busy"
    if obj.get("ok") is True:
        return f"[reply #{frame.id}] ok {_compact(obj.get('data', {}))}"
    if obj.get("ok") is False:
        where = "error" if frame.id == 0 else f"reply #{frame.id}"
        return f"[{where}] {_plain(obj.get('err', '?'))}: {_plain(obj.get('msg', ''))}"
    return f"[frame #{frame.id}] {_compact(obj)}"


def _report(d: dict[str, Any]) -> str:
    parts = []
    if "seq" in d:
        parts.append(f"seq={_plain(d['seq'])}")
    reason = d.get("reason")
    if isinstance(reason, list) and reason:
        parts.append("reason=" + ",".join(str(r) for r in reason))
    samples = [s for s in d.get("samples") or [] if isinstance(s, dict)]
    if samples:
        values = samples[-1].get("values")
        if isinstance(values, dict):
            parts.append(_values(values))
        if len(samples) > 1:
            parts.append(f"samples={len(samples)} (last shown)")
    if "battery_v" in d:
        parts.append(f"battery_v={_plain(d['battery_v'])}")
    if d.get("faults"):
        parts.append("faults=" + ",".join(str(f) for f in d["faults"]))
    return " ".join(p for p in parts if p)


def _values(values: dict[str, Any]) -> str:
    """`sht4x.temperature` shown as `temperature` when no other sensor has that quantity."""
    quantities = [k.rpartition(".")[2] for k in values]
    out = []
    for key, v in values.items():
        q = key.rpartition(".")[2]
        out.append(f"{q if quantities.count(q) == 1 else key}={_plain(v)}")
    return " ".join(out)


def _pairs(obj: dict[str, Any]) -> str:
    return " ".join(f"{k}={_plain(v)}" for k, v in obj.items())


def _plain(v: Any) -> str:
    return v if isinstance(v, str) else _compact(v)


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Console:
    def __init__(
        self,
        name: str,
        open_transport: Callable[[], Transport],
        *,
        input_fd: int,
        output: BinaryIO,
        notices: BinaryIO | None = None,
        raw: bool = False,
        retry_s: float = RETRY_S,
    ) -> None:
        self.name = name
        self.open_transport = open_transport
        self.input_fd = input_fd
        self.output = output
        self.notices = notices if notices is not None else output
        self.filter = FrameFilter(raw)
        self.retry_s = retry_s
        self._input_open = True
        self._last_data = 0.0  # when the node last sent something (time.monotonic())

    def run(self, transport: Transport | None = None) -> int:
        """Until Ctrl-] (0) or SIGTERM/SIGHUP (128+N), on `transport` or one opened now: that
        first open's TransportError is raised, later ones are waited out. The transport is
        closed and the terminal restored on every way out."""
        t: Transport | None = transport or self.open_transport()
        try:
            with _keys_mode(self.input_fd), _stop_on_signals():
                self._note(f"--- mote console on {self.name}, Ctrl-] to exit ---")
                while True:
                    if t is None:
                        t = self._wait_for_port()
                        if t is None:
                            break
                        self._note("--- reconnected ---")
                    try:
                        if not self._keys_to(t):
                            break
                        self._show(t.read(_READ_S))
                    except TransportError:
                        t.close()
                        t = None
                        self._show_bytes(self.filter.reset())
                        self._note(
                            f"--- {self.name} gone, waiting for it to come back "
                            "(Ctrl-] to quit) ---"
                        )
        except _Stopped as stop:
            self._note(f"--- stopped by signal {stop.signum} ---")
            return 128 + stop.signum
        finally:
            if t is not None:
                t.close()
        self._note("--- exit ---")
        return 0

    # ---- the two directions -------------------------------------------------------------------

    def _keys(self, timeout_s: float) -> tuple[bytes, bool]:
        """(keys typed within timeout_s, whether Ctrl-] ended them); keys after it are dropped."""
        if not self._input_open:
            if timeout_s > 0:
                time.sleep(timeout_s)
            return b"", False
        ready, _, _ = select.select([self.input_fd], [], [], timeout_s)
        if not ready:
            return b"", False
        data = os.read(self.input_fd, 1024)
        if not data:  # input ended (a pipe): keep showing the node until a signal ends it
            self._input_open = False
            return b"", False
        cut = data.find(EXIT_KEY)
        return (data, False) if cut < 0 else (data[:cut], True)

    def _keys_to(self, t: Transport) -> bool:
        """Send what was typed; False when Ctrl-] was pressed."""
        keys, done = self._keys(0)
        if keys:
            t.write(keys)  # what was typed before Ctrl-] still goes
        return not done

    def _show(self, data: bytes) -> None:
        if data:
            self._last_data = time.monotonic()
            self._show_bytes(self.filter.feed(data))
        elif self.filter.holding and time.monotonic() - self._last_data >= _HOLD_S:
            self._show_bytes(self.filter.flush())  # a line start that stopped: show it

    def _show_bytes(self, data: bytes) -> None:
        if data:
            self.output.write(data)
            self.output.flush()

    def _wait_for_port(self) -> Transport | None:
        """Reopen the port every retry_s; None when Ctrl-] is pressed meanwhile."""
        while True:
            deadline = time.monotonic() + self.retry_s
            while (left := deadline - time.monotonic()) > 0:
                _keys, done = self._keys(left)  # keys typed while the port is away go nowhere
                if done:
                    return None
            with contextlib.suppress(TransportError):
                return self.open_transport()

    def _note(self, text: str) -> None:
        self.notices.write(text.encode() + b"\r\n")
        self.notices.flush()


@contextlib.contextmanager
def _keys_mode(fd: int) -> Iterator[None]:
    """A terminal on `fd` passes every key at once and unechoed, Ctrl-C and Ctrl-] included;
    output processing stays on. Restored on the way out, whatever it is. Not a tty: as it is."""
    if not os.isatty(fd):
        yield
        return
    import termios  # POSIX only: imported here so `mote` itself still loads elsewhere

    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    # iflag: no CR->NL (Enter reaches the REPL as \r), no XON/XOFF (Ctrl-S and Ctrl-Q go through)
    mode[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON)
    # lflag: no line editing, no echo (the node echoes), no signals from Ctrl-C/Ctrl-Z/Ctrl-\
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN] = 1  # a read returns as soon as one key is there
    mode[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the console through its `finally`s (so the terminal is restored)
    instead of killing it. Only the main thread can take signals: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise _Stopped(signum)

    previous = {}
    for name in _STOP_SIGNALS:
        if (sig := getattr(signal, name, None)) is not None:
            previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
