"""SerialTransport on a real pty: reads, writes, and one clear TransportError per failure."""

import contextlib
import errno
import os
import tty
from collections.abc import Iterator

import pytest
import serial

from host_tools.errors import TransportError
from host_tools.transport import serial as transport_serial
from host_tools.transport.serial import SerialTransport


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """(master fd, slave path); the test may close the master to make the port vanish."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # the master may be closed already
            os.close(fd)


def test_bytes_both_ways(pty: tuple[int, str]) -> None:
    master, path = pty
    with SerialTransport(path) as t:
        assert t.name == path
        assert t.serial is not None and t.serial.baudrate == 115200
        assert t.read(0.05) == b""  # nothing came: empty, not an error
        os.write(master, b"hello\r\n>>> ")
        got = b""
        while len(got) < 11:
            got += t.read(1.0)
        assert got == b"hello\r\n>>> "
        t.write(b"@M1 1 {} 00000000\n")
        assert os.read(master, 100) == b"@M1 1 {} 00000000\n"


def test_the_port_is_exclusive(pty: tuple[int, str]) -> None:
    _, path = pty
    with SerialTransport(path), pytest.raises(TransportError) as exc:
        SerialTransport(path)
    assert str(exc.value) == f"{path} is busy: another program has it open"
    assert "mpremote" in exc.value.hint
    with SerialTransport(path):  # free again once closed
        pass


def test_a_missing_port() -> None:
    with pytest.raises(TransportError) as exc:
        SerialTransport("/dev/motekit-no-such-port")
    assert str(exc.value) == "no serial port /dev/motekit-no-such-port"
    assert exc.value.exit_code == 3


def test_a_bad_url() -> None:
    with pytest.raises(TransportError, match="cannot open nope://x: .*protocol 'nope'"):
        SerialTransport("nope://x")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.EACCES, "no permission to open /dev/ttyX"),
        (errno.EBUSY, "/dev/ttyX is busy: another program has it open"),
        (errno.ENODEV, "no serial port /dev/ttyX"),
        (errno.EIO, "cannot open /dev/ttyX: [Errno 5] boom"),
    ],
)
def test_open_errors_are_told_apart_by_errno(
    monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    def refuse(*args: object, **kw: object) -> None:
        raise serial.SerialException(code, "boom")

    monkeypatch.setattr(transport_serial.serial, "serial_for_url", refuse)
    with pytest.raises(TransportError) as exc:
        SerialTransport("/dev/ttyX")
    assert str(exc.value) == message


def test_a_port_that_vanishes(pty: tuple[int, str]) -> None:
    master, path = pty
    t = SerialTransport(path)
    os.close(master)  # the other end is gone, as a USB port on unplugging
    with pytest.raises(TransportError) as exc:
        t.read(1.0)
    assert str(exc.value).startswith(f"{path} went away")
    assert "unplugged or reset" in exc.value.hint
    t.close()
    t.close()  # idempotent
    with pytest.raises(TransportError, match="is closed"):
        t.write(b"x")
