"""`mote console` (host_tools/terminal.py, host_tools/cli/console.py): keys to the node, its bytes
to the screen, frames made readable, Ctrl-] to leave, reconnect when the port comes back.

The loop runs in a thread here, with a pipe or a pty for the keyboard and a collector for the
screen; a virtual board at its REPL checks the whole path, fakes check reconnecting.
"""

import os
import queue
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from host_tools.cli import main as cli_main
from host_tools.errors import TransportError
from host_tools.hil.node import Node
from host_tools.protocol.framing import Frame, encode
from host_tools.terminal import Console, FrameFilter, render
from host_tools.transport.serial import SerialTransport

REPORT = {
    "ev": "report",
    "data": {
        "seq": 5,
        "reason": ["first", "change"],
        "samples": [{"t": 1, "values": {"sht4x.temperature": 21.52, "sht4x.humidity": 40.5}}],
        "battery_v": 3.71,
        "faults": [],
    },
}
REPORT_TEXT = "[report] seq=5 reason=first,change temperature=21.52 humidity=40.5 battery_v=3.71"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Screen:
    """A binary writer that threads can watch: what the console showed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._cond = threading.Condition()

    def write(self, b: bytes) -> int:
        with self._cond:
            self.data += b
            self._cond.notify_all()
        return len(b)

    def flush(self) -> None:
        pass

    def wait_for(self, what: bytes, timeout_s: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: what in self.data, timeout_s):
                raise AssertionError(f"no {what!r} within {timeout_s} s; got {bytes(self.data)!r}")


class FakePort:
    """A transport whose incoming bytes (or a TransportError) the test queues."""

    def __init__(self, name: str = "/dev/ttyFAKE") -> None:
        self.name = name
        self.incoming: queue.Queue[bytes | Exception] = queue.Queue()
        self.written = bytearray()
        self.closed = False

    def read(self, timeout_s: float) -> bytes:
        try:
            item = self.incoming.get(timeout=max(timeout_s, 0.001))
        except queue.Empty:
            return b""
        if isinstance(item, Exception):
            raise item
        return item

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


class Opener:
    """A transport factory: opens that fail (by number, 1-based) raise, the others give a port."""

    def __init__(self, failing: Collection[int] = ()) -> None:
        self.failing = failing
        self.calls = 0
        self.ports: list[FakePort] = []

    def __call__(self) -> FakePort:
        self.calls += 1
        if self.calls in self.failing:
            raise TransportError("no serial port /dev/ttyFAKE")
        port = FakePort()
        self.ports.append(port)
        return port


class Running:
    """A Console.run() in a thread, its keyboard a pipe (or the fd given)."""

    def __init__(self, opener: Callable[[], Any], keys_fd: int | None = None, **kw: Any) -> None:
        self.screen, self.notices = Screen(), Screen()
        self._pipe: tuple[int, int] | None = None
        if keys_fd is None:
            self._pipe = os.pipe()
            keys_fd = self._pipe[0]
        self.console = Console(
            "/dev/ttyFAKE",
            opener,
            input_fd=keys_fd,
            output=self.screen,  # type: ignore[arg-type]
            notices=self.notices,  # type: ignore[arg-type]
            **kw,
        )
        self.rc: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.rc = self.console.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def type(self, keys: bytes) -> None:
        assert self._pipe is not None
        os.write(self._pipe[1], keys)

    def end(self, timeout_s: float = 10.0) -> int | None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the console did not end"
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
        if self.error is not None:
            raise self.error
        return self.rc


# ---- frames made readable ----------------------------------------------------------------------


def test_text_and_a_prompt_pass_at_once() -> None:
    f = FrameFilter()
    assert f.feed(b"motekit: cycle 1\r\n") == b"motekit: cycle 1\r\n"
    assert f.feed(b">>> ") == b">>> "  # no newline, shown all the same
    assert f.feed(b"\x1b[K\x08 ok") == b"\x1b[K\x08 ok"
    assert not f.holding


def test_a_report_frame_is_shown_readably() -> None:
    f = FrameFilter()
    line = encode(0, REPORT).replace(b"\n", b"\r\n")
    shown = f.feed(b"boot\r\n" + line + b"after")
    assert shown == b"boot\r\n" + REPORT_TEXT.encode() + b"\r\nafter"


def test_a_frame_split_byte_by_byte_is_the_same() -> None:
    f = FrameFilter()
    line = b"log\r\n" + encode(0, REPORT).replace(b"\n", b"\r\n") + b">>> "
    shown = b"".join(f.feed(line[i : i + 1]) for i in range(len(line)))
    assert shown == b"log\r\n" + REPORT_TEXT.encode() + b"\r\n>>> "


def test_a_damaged_frame_or_another_version_passes_as_it_came() -> None:
    f = FrameFilter()
    bad_crc = encode(3, {"ok": True, "data": {}})[:-3] + b"00\n"
    other = b"@M2 0 {} 00000000\n"
    assert f.feed(bad_crc + other) == bad_crc + other


def test_only_a_line_start_can_be_a_frame() -> None:
    f = FrameFilter()
    line = encode(0, {"ev": "listen", "ms": 3000, "mode": "window"})
    assert f.feed(b">>> " + line) == b">>> " + line  # typed at the REPL: its echo
    assert f.feed(b"@Mx\r\n@@\r\n\r\n") == b"@Mx\r\n@@\r\n\r\n"
    assert f.feed(line) == b"[listen] ms=3000 mode=window\r\n"


def test_a_line_start_held_is_given_up_by_flush() -> None:
    f = FrameFilter()
    assert f.feed(b"@M1 0 {") == b""
    assert f.holding
    assert f.flush() == b"@M1 0 {"
    assert f.feed(b'"ev":1} x\r\n') == b'"ev":1} x\r\n'  # the rest of that line as it comes
    assert not f.holding


def test_raw_passes_every_byte() -> None:
    f = FrameFilter(raw=True)
    line = encode(0, REPORT)
    assert f.feed(line) == line


def test_an_overlong_line_start_is_not_kept() -> None:
    f = FrameFilter()
    assert f.feed(b"@M1 " + b"x" * 9000) == b"@M1 " + b"x" * 9000


@pytest.mark.parametrize(
    ("fid", "obj", "text"),
    [
        (0, {"ev": "listen", "ms": -1, "mode": "held"}, "[listen] ms=-1 mode=held"),
        (7, {"ok": True, "data": {"key": "sample_period", "value": 60}},
         '[reply #7] ok {"key":"sample_period","value":60}'),
        (7, {"ok": False, "err": "bad_value", "msg": "sample_period: 5..86400"},
         "[reply #7] bad_value: sample_period: 5..86400"),
        (0, {"ok": False, "err": "bad_frame", "msg": "crc mismatch"},
         "[error] bad_frame: crc mismatch"),
        (9, {"busy": True}, "[reply #9] busy"),
        (4, {"cmd": "hold"}, "[request #4] cmd=hold"),
        (0, {"ev": "report", "data": {"seq": 1, "samples": [
            {"values": {"a.temperature": 1.5, "b.temperature": 2.5}},
            {"values": {"a.temperature": 1.0, "b.temperature": 2.0}}],
            "faults": ["scd41"]}},
         "[report] seq=1 a.temperature=1.0 b.temperature=2.0 samples=2 (last shown) faults=scd41"),
    ],
)  # fmt: skip
def test_render(fid: int, obj: dict[str, Any], text: str) -> None:
    assert render(Frame(fid, obj)) == text


# ---- the loop, with fakes ----------------------------------------------------------------------


def test_keys_go_as_typed_and_ctrl_bracket_ends_with_0() -> None:
    opener = Opener()
    run = Running(opener)
    run.notices.wait_for(b"--- mote console on /dev/ttyFAKE, Ctrl-] to exit ---\r\n")
    port = opener.ports[0]
    port.incoming.put(b">>> ")
    run.screen.wait_for(b">>> ")
    run.type(b"\x03\x04\t\x1b[A")  # Ctrl-C, Ctrl-D, Tab, arrow up
    run.type(b"x=1\r\x1dnot sent")
    assert run.end() == 0
    assert bytes(port.written) == b"\x03\x04\t\x1b[Ax=1\r"
    assert port.closed
    assert run.notices.data.endswith(b"--- exit ---\r\n")


def test_a_line_start_that_stops_is_shown_soon() -> None:
    opener = Opener()
    run = Running(opener)
    run.notices.wait_for(b"Ctrl-] to exit")
    opener.ports[0].incoming.put(b"@M1 ")  # looks like a frame, then the node says no more
    started = time.monotonic()
    run.screen.wait_for(b"@M1 ", timeout_s=2)
    assert time.monotonic() - started < 1.0
    run.type(b"\x1d")
    assert run.end() == 0


def test_the_port_comes_back_after_failed_opens() -> None:
    opener = Opener(failing={2, 3, 4})  # the first open works, then three fail, then back
    run = Running(opener, retry_s=0.02)
    run.notices.wait_for(b"Ctrl-] to exit")
    first = opener.ports[0]
    first.incoming.put(b"rst:0x1 (POWERON)\r\n@M1 0 {")  # cut in the middle of a frame
    first.incoming.put(TransportError("/dev/ttyFAKE went away"))
    run.notices.wait_for(b"--- reconnected ---\r\n")
    assert first.closed and opener.calls == 5
    second = opener.ports[1]
    second.incoming.put(encode(0, REPORT))  # a fresh line: frames are seen again
    run.screen.wait_for(REPORT_TEXT.encode())
    run.type(b"\x1d")
    assert run.end() == 0
    notices = bytes(run.notices.data)
    gone = b"--- /dev/ttyFAKE gone, waiting for it to come back (Ctrl-] to quit) ---\r\n"
    assert notices.index(gone) < notices.index(b"--- reconnected ---")
    assert bytes(run.screen.data).startswith(b"rst:0x1 (POWERON)\r\n@M1 0 {")  # nothing lost


def test_ctrl_bracket_works_while_the_port_is_away() -> None:
    opener = Opener(failing=set(range(2, 10_000)))
    run = Running(opener, retry_s=0.05)
    run.notices.wait_for(b"Ctrl-] to exit")
    opener.ports[0].incoming.put(TransportError("gone"))
    run.notices.wait_for(b"waiting for it to come back")
    deadline = time.monotonic() + 10
    while opener.calls < 3:  # it keeps trying
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run.type(b"lost\x1d")
    started = time.monotonic()
    assert run.end() == 0
    assert time.monotonic() - started < 1.0
    assert len(opener.ports) == 1


def test_a_write_that_fails_means_the_port_is_gone_too() -> None:
    opener = Opener()
    run = Running(opener, retry_s=0.02)
    run.notices.wait_for(b"Ctrl-] to exit")

    def broken(data: bytes) -> None:
        raise TransportError("/dev/ttyFAKE went away")

    opener.ports[0].write = broken  # type: ignore[method-assign]
    run.type(b"a")
    run.notices.wait_for(b"--- reconnected ---")
    run.type(b"b\x1d")
    assert run.end() == 0
    assert bytes(opener.ports[1].written) == b"b"


def test_a_port_that_cannot_be_opened_at_the_start_is_an_error_not_a_wait() -> None:
    run = Running(Opener(failing={1}))
    with pytest.raises(TransportError, match="no serial port"):
        run.end(timeout_s=2)
    assert run.notices.data == b""


def test_the_terminal_is_set_for_keys_and_restored() -> None:
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON  # a fresh pty is a cooked terminal
        opener = Opener()
        run = Running(opener, keys_fd=slave)
        run.notices.wait_for(b"Ctrl-] to exit")
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert not during[0] & (termios.ICRNL | termios.IXON)
        os.write(master, b"print(1)\r\x03\x1d")
        assert run.end() == 0
        assert bytes(opener.ports[0].written) == b"print(1)\r\x03"  # \r stays \r, Ctrl-C a key
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_the_terminal_is_restored_after_an_error_too() -> None:
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        opener = Opener()
        run = Running(opener, keys_fd=slave)
        run.notices.wait_for(b"Ctrl-] to exit")
        opener.ports[0].incoming.put(RuntimeError("a bug in the loop"))
        with pytest.raises(RuntimeError, match="a bug"):
            run.end()
        assert termios.tcgetattr(slave) == before
        assert opener.ports[0].closed
    finally:
        os.close(master)
        os.close(slave)


# ---- a virtual board at its REPL ------------------------------------------------------------


def sim_console(node: Node, **kw: Any) -> Running:
    assert node.sim is not None
    node.close()  # the fixture's own connection lets go of the pty
    port = node.sim.port
    run = Running(lambda: SerialTransport(port), **kw)
    run.notices.wait_for(b"Ctrl-] to exit")
    return run


def test_the_repl_through_the_console(boot: Callable[..., Node]) -> None:
    run = sim_console(boot("sim-esp32"))
    run.type(b"print(6*7)\r")
    run.screen.wait_for(b"42\r\n>>> ")  # the prompt after it shows without a newline
    run.type(b"\x1d")
    assert run.end() == 0


@pytest.mark.parametrize("raw", [False, True])
def test_a_frame_from_the_board(boot: Callable[..., Node], raw: bool) -> None:
    frame = encode(0, REPORT).rstrip(b"\n")
    run = sim_console(boot("sim-esp32"), raw=raw)
    run.type(b"print('" + frame + b"')\r")
    run.type(b"print('do' + 'ne')\r")
    run.screen.wait_for(b"done\r\n>>> ")
    run.type(b"\x1d")
    assert run.end() == 0
    shown = bytes(run.screen.data)
    if raw:
        assert shown.count(frame) == 2  # the REPL's echo of the line typed, and the print
        assert REPORT_TEXT.encode() not in shown
    else:
        assert shown.count(frame) == 1  # the echo only: it follows a prompt, not a line start
        assert b"\r\n" + REPORT_TEXT.encode() + b"\r\n" in shown


def test_a_board_that_goes_away_is_waited_for(boot: Callable[..., Node]) -> None:
    node = boot("sim-esp32")
    run = sim_console(node, retry_s=0.05)
    assert node.sim is not None
    node.sim.stop()  # the pty closes under the console, as a USB port on unplugging
    run.notices.wait_for(b"gone, waiting for it to come back (Ctrl-] to quit) ---")
    run.type(b"\x1d")
    assert run.end() == 0


# ---- the command -----------------------------------------------------------------------------


@pytest.fixture
def pty_port() -> Iterator[tuple[int, str]]:
    """(master fd, slave path): a port with the test as the node."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_missing_port_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main.main(["console", "--port", "/dev/ttyMOTE-NONE"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 3
    assert err[0] == "error: no serial port /dev/ttyMOTE-NONE"
    assert err[1].startswith("hint: ") and len(err) == 2


def test_no_port_is_a_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOTE_PORT", raising=False)
    rc = cli_main.main(["console"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and err[0] == "error: no port given" and "MOTE_PORT" in err[1]


def test_the_command_in_process(pty_port: tuple[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    master, path = pty_port
    keys_r, keys_w = os.pipe()
    screen, notices = Screen(), Screen()
    monkeypatch.setattr("host_tools.cli.console._stdio", lambda: (keys_r, screen, notices))
    monkeypatch.setenv("MOTE_PORT", path)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(cli_main.main(["console"])))
    thread.start()
    try:
        notices.wait_for(f"--- mote console on {path}, Ctrl-] to exit ---".encode())
        os.write(keys_w, b"help()\r")
        assert _read_exactly(master, 7) == b"help()\r"
        os.write(master, encode(0, {"ev": "listen", "ms": 3000, "mode": "window"}))
        screen.wait_for(b"[listen] ms=3000 mode=window\r\n")
        os.write(keys_w, b"\x1d")
        thread.join(10)
        assert result == [0]
    finally:
        os.write(keys_w, b"\x1d")
        thread.join(10)
        os.close(keys_r)
        os.close(keys_w)


def _read_exactly(fd: int, n: int, timeout_s: float = 5.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, n - len(got))
    return got


def _mote(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "host_tools.cli.main", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _wait_line(fd: int, what: bytes, timeout_s: float = 20.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout_s
    while what not in got:
        assert time.monotonic() < deadline, f"no {what!r}; got {got!r}"
        got += _read_exactly(fd, 1, timeout_s=0.2)
    return got


def test_sigterm_restores_the_terminal(pty_port: tuple[int, str]) -> None:
    master, path = pty_port
    kb_master, kb_slave = os.openpty()  # the user's terminal
    try:
        before = termios.tcgetattr(kb_slave)
        proc = _mote(["console", "--port", path], stdin=kb_slave)
        assert proc.stderr is not None and proc.stdout is not None
        try:
            _wait_line(proc.stderr.fileno(), b"Ctrl-] to exit")
            assert not termios.tcgetattr(kb_slave)[3] & termios.ICANON
            os.write(master, b"node log\r\n")
            _wait_line(proc.stdout.fileno(), b"node log\r\n")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 128 + signal.SIGTERM
        finally:
            proc.kill()
            proc.wait()
        assert termios.tcgetattr(kb_slave) == before
        assert b"stopped by signal" in proc.stderr.read()
    finally:
        os.close(kb_master)
        os.close(kb_slave)


def test_input_that_ends_leaves_the_node_showing(pty_port: tuple[int, str]) -> None:
    master, path = pty_port
    proc = _mote(["console", "--port", path], stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(b"abc")
        proc.stdin.close()  # a script piped in, then EOF
        _wait_line(proc.stderr.fileno(), b"Ctrl-] to exit")
        assert _read_exactly(master, 3) == b"abc"
        os.write(master, b"still here\r\n")
        _wait_line(proc.stdout.fileno(), b"still here\r\n")
        assert proc.poll() is None
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(10) == 128 + signal.SIGHUP
    finally:
        proc.kill()
        proc.wait()
