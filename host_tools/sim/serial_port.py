"""The virtual board's USB-serial side: a pty, throttled to the wire rate, with port cooking.

Host tools open the pty's slave path exactly like /dev/ttyUSB0. The supervisor keeps the slave
open itself, so the master never reads EIO when no tool is connected; output written while
nobody listens fills the pty's small buffer and the oldest is then discarded, like a bridge
chip whose port is closed. A tool that reads, only slower than an unthrottled node writes,
gets everything.
"""

import contextlib
import os
import termios
import time
import tty

# A full pty that takes nothing for this long has no reader: its stale output is dropped.
_STALL_S = 1.0
# Output held back for a slow reader, at most; beyond it the oldest is dropped.
_MAX_QUEUE_BYTES = 4 << 20


class Throttle:
    """A token bucket: at most `baud / 10` bytes per second (8N1 framing), small bursts."""

    def __init__(self, baud: int) -> None:
        self.rate = baud / 10.0 if baud > 0 else float("inf")
        self.burst = max(64.0, self.rate * 0.005) if baud > 0 else float("inf")
        self._tokens = self.burst
        self._last = time.monotonic()

    def allowance(self) -> int:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return int(min(self._tokens, 1 << 20))

    def spend(self, n: int) -> None:
        self._tokens -= n

    def wait_s(self) -> float:
        """Time until at least one byte may pass."""
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


def cook(data: bytes, prev: int) -> tuple[bytes, int]:
    r"""Turn "\n" into "\r\n" as the ports' stdout does; `prev` is the last byte already sent."""
    out = bytearray()
    for b in data:
        if b == 0x0A and prev != 0x0D:
            out.append(0x0D)
        out.append(b)
        prev = b
    return bytes(out), prev


class PtyPort:
    def __init__(self, baud: int) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.baud = baud
        self.tx = Throttle(baud)  # node -> host
        self.rx = Throttle(baud)  # host -> node
        self._tx_queue = bytearray()
        self._last_tx = 0
        self._full_since: float | None = None  # when a write last found the pty full
        self.dropped = 0

    def queue_output(self, data: bytes) -> None:
        cooked, self._last_tx = cook(data, self._last_tx)
        self._tx_queue += cooked

    def pending_output(self) -> bool:
        return bool(self._tx_queue)

    def pump_output(self) -> None:
        n = min(len(self._tx_queue), self.tx.allowance())
        if n <= 0:
            return
        try:
            written = os.write(self.master, self._tx_queue[:n])
            self._full_since = None
        except BlockingIOError:
            # The pty buffer is full. Keep the output for a reader that is merely slower than
            # the node; once nobody has read for _STALL_S, drop what is stale.
            now = time.monotonic()
            if self._full_since is None:
                self._full_since = now
            if now - self._full_since < _STALL_S and len(self._tx_queue) <= _MAX_QUEUE_BYTES:
                return
            termios.tcflush(self._slave, termios.TCIFLUSH)
            self.dropped += n
            written = n
            self._full_since = None
        self.tx.spend(written)
        del self._tx_queue[:written]

    def read_input(self) -> bytes:
        n = self.rx.allowance()
        if n <= 0:
            return b""
        try:
            data = os.read(self.master, n)
        except (BlockingIOError, OSError):
            return b""
        self.rx.spend(len(data))
        return data

    def input_wait_s(self) -> float:
        """How long until the host's next byte may reach the node: 0 when one may now. Until
        then the master is left unread, so a select on it does not spin."""
        return 0.0 if self.rx.allowance() >= 1 else self.rx.wait_s()

    def wait_s(self) -> float:
        if self._full_since is not None:
            return 0.005  # poll until the reader makes room (or is declared gone)
        return self.tx.wait_s() if self._tx_queue else 1.0

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
