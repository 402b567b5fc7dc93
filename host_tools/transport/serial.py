"""A node's serial line: a USB serial port, a pty (virtual board) or a pyserial URL.

    with SerialTransport("/dev/ttyUSB0") as t:
        t.write(b"...")
        data = t.read(timeout_s=0.5)      # b"" if nothing came

Opened at 115200 baud and, where the platform allows, exclusively: a second program (mpremote,
screen, another mote) cannot interleave its bytes with ours. Every failure is a TransportError
with one line saying what happened to which port, told apart by errno, never by message text.
"""

import contextlib
import errno
import time

import serial

from host_tools.errors import TransportError

BAUDRATE = 115200
_SLICE_S = 0.05  # one pyserial read waits at most this long; read() loops to its deadline

_MISSING = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
_BUSY = {errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK}
_DENIED = {errno.EACCES, errno.EPERM}


class SerialTransport:
    def __init__(
        self,
        port: str,
        baudrate: int = BAUDRATE,
        *,
        exclusive: bool = True,
        write_timeout_s: float = 2.0,
    ) -> None:
        self.name = port
        try:
            s = serial.serial_for_url(
                port,
                do_not_open=True,
                baudrate=baudrate,
                timeout=_SLICE_S,
                write_timeout=write_timeout_s,
                exclusive=exclusive or None,
            )
            # pyserial raises DTR and RTS on open, as mpremote leaves it: on the ESP32
            # auto-reset circuit both asserted means neither EN nor GPIO0 is pulled low.
            s.open()
        except serial.SerialException as exc:
            raise open_error(port, exc) from exc
        except ValueError as exc:  # a malformed URL or setting
            raise TransportError(f"cannot open {port}: {exc}") from exc
        self.serial: serial.Serial | None = s

    def _port(self) -> serial.Serial:
        if self.serial is None:
            raise TransportError(f"{self.name} is closed")
        return self.serial

    def read(self, timeout_s: float) -> bytes:
        """What arrives within timeout_s (at least one pass), b"" if nothing did."""
        s = self._port()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                first: bytes = s.read(1)  # waits up to _SLICE_S
                if first:
                    waiting = s.in_waiting
                    return first + s.read(waiting) if waiting else first
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from exc

    def write(self, data: bytes) -> None:
        s = self._port()
        try:
            s.write(data)
        except serial.SerialTimeoutException as exc:
            raise TransportError(
                f"{self.name} does not take data (write timed out)",
                hint="the node may be hung or the port stalled: reset the node and try again",
            ) from exc
        except (serial.SerialException, OSError) as exc:
            raise self._gone(exc) from exc

    def close(self) -> None:
        s, self.serial = self.serial, None
        if s is None:
            return
        # A pty has no control lines; a vanished port has nothing left to set or close.
        with contextlib.suppress(serial.SerialException, OSError):
            # RTS before DTR, as mpremote does: never EN low with DTR high on the way down.
            s.rts = False
            s.dtr = False
        with contextlib.suppress(serial.SerialException, OSError):
            s.close()

    def _gone(self, exc: Exception) -> TransportError:
        return TransportError(
            f"{self.name} went away ({exc})",
            hint="the node was unplugged or reset (USB ports vanish while a board resets); "
            "try again",
        )

    def __enter__(self) -> "SerialTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_when_back(port: str, timeout_s: float) -> SerialTransport:
    """Open `port`, retrying for timeout_s while it cannot be: a USB port vanishes for a moment
    while its board resets (native USB re-enumerates). The last error if it never comes back."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return SerialTransport(port)
        except TransportError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def open_error(port: str, exc: serial.SerialException) -> TransportError:
    code = exc.errno
    if code in _MISSING:
        return TransportError(
            f"no serial port {port}",
            hint="is the node plugged in? `python -m serial.tools.list_ports` lists the ports; "
            "`mote sim` prints a virtual board's",
        )
    if code in _BUSY:
        return TransportError(
            f"{port} is busy: another program has it open",
            hint="close it (mpremote, screen, another mote) and try again",
        )
    if code in _DENIED:
        return TransportError(
            f"no permission to open {port}",
            hint="on Linux, add yourself to the dialout group (then log in again)",
        )
    return TransportError(f"cannot open {port}: {exc}")
