"""A node's filesystem through the MicroPython raw REPL, on mpremote's transport (raw-paste mode).

    with NodeFs.open("/dev/ttyUSB0") as fs:     # interrupts what runs, enters the raw REPL
        fs.write("/lib/x.mpy", data, progress)  # base64 chunks, one exec each
        fs.hashes(["/lib/x.mpy"])               # {"/lib/x.mpy": (sha256 hex, size) or None}
        fs.soft_reset()                         # leave the raw REPL and run boot.py, main.py

Every failure is a DeployError or TransportError with one line; mpremote's own exceptions and
pyserial's never leave this module. The hashes are computed on the node (hashlib), so a file is
checked where it lives, not as it was sent.
"""

import ast
import base64
import contextlib
import errno
import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import serial
from mpremote.transport import TransportError as MpError
from mpremote.transport import TransportExecError
from mpremote.transport_serial import SerialTransport as MpSerialTransport

from host_tools.errors import DeployError, TransportError

CHUNK = 2048  # bytes of file per exec: ~2.7 KB of base64 source, small for any board's heap
Progress = Callable[[int], None]  # bytes of this file written so far

_HASH = """import hashlib,binascii
_b=bytearray(512)
def _h(p):
 try:
  f=open(p,'rb')
 except OSError:
  return None
 s=hashlib.sha256();n=0
 while 1:
  k=f.readinto(_b)
  if not k:break
  s.update(memoryview(_b)[:k]);n+=k
 f.close()
 return (binascii.hexlify(s.digest()).decode(),n)
for _p in %r:
 print(repr((_p,_h(_p))))
"""

_MAKEDIRS = """import os
for _d in %r:
 try:
  os.mkdir(_d)
 except OSError as e:
  if e.errno!=17:raise
"""


class NodeFs:
    def __init__(self, transport: MpSerialTransport, port: str) -> None:
        self.t = transport
        self.port = port

    @classmethod
    def open(cls, port: str, wait_s: float = 0.0) -> "NodeFs":
        """Open `port` (retrying for wait_s while it is missing: a USB port comes back a moment
        after its board resets), stop what runs and enter the raw REPL."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                # A read timeout: mpremote reads a pty byte by byte, and without one a silent
                # node (asleep, hung) would block it for ever.
                t = MpSerialTransport(port, baudrate=115200, timeout=1.0)
                break
            except (MpError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise TransportError(
                        f"cannot open {port}: {exc}",
                        hint="is the node plugged in and the port free (close mpremote, "
                        "screen, mote console)?",
                    ) from exc
                time.sleep(0.25)
        fs = cls(t, port)
        try:
            # mpremote prints what it got when it fails: that goes into our error instead.
            with contextlib.redirect_stdout(io.StringIO()):
                t.enter_raw_repl(soft_reset=False, timeout_overall=5)
        except (MpError, OSError) as exc:
            fs.close()
            raise DeployError(
                f"no MicroPython REPL on {port}",
                hint="is the board running MicroPython? `mote flash --board B --port P` writes "
                "it; a board stuck in a program that ignores Ctrl-C needs a reset",
                err="no_repl",
            ) from exc
        # A session killed in the middle of write() left its file open in the REPL's globals:
        # close it before anything else touches the filesystem.
        fs.exec("try:\n _f.close()\nexcept Exception:\n pass\n_f=None")
        return fs

    # ---- running code -----------------------------------------------------------------------

    def exec(self, code: str, timeout_s: float = 10.0) -> bytes:
        try:
            out, err = self.t.exec_raw(code, timeout=timeout_s)
        except TransportExecError as exc:  # pragma: no cover - exec_raw does not raise it
            raise self._failed(code, exc.error_output) from exc
        except (MpError, serial.SerialException, OSError) as exc:
            raise TransportError(
                f"lost the node on {self.port} ({exc})",
                hint="it was reset or unplugged in the middle: run the command again",
            ) from exc
        if err:
            raise self._failed(code, err.decode(errors="replace"))
        return bytes(out)

    def _failed(self, code: str, error: str) -> DeployError:
        last = error.strip().splitlines()[-1] if error.strip() else "no output"
        first = code.strip().splitlines()[0][:60]
        return DeployError(f"the node failed running `{first}`: {last}")

    # ---- files --------------------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is none."""
        code = (
            f"import binascii\ntry:\n f=open({path!r},'rb')\nexcept OSError:\n print('-')\n"
            f"else:\n while 1:\n  b=f.read({CHUNK})\n  if not b:break\n"
            "  print(binascii.b2a_base64(b).decode(),end='')\n f.close()\n print('.')"
        )
        out = self.exec(code).decode().split()
        if out == ["-"]:
            return None
        return b"".join(base64.b64decode(line) for line in out[:-1])

    def read_json(self, path: str) -> Any:
        """The file parsed as JSON; None when missing or not JSON."""
        data = self.read(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def write(self, path: str, data: bytes, progress: Progress | None = None) -> None:
        self.exec(f"from binascii import a2b_base64 as _d\n_f=open({path!r},'wb')\n_w=_f.write")
        done = 0
        for i in range(0, len(data), CHUNK):
            chunk = data[i : i + CHUNK]
            self.exec(f"_w(_d({base64.b64encode(chunk).decode()!r}))")
            done += len(chunk)
            if progress is not None:
                progress(done)
        self.exec("_f.close()\ndel _f,_w,_d")

    def hashes(self, paths: Iterable[str]) -> dict[str, tuple[str, int] | None]:
        """(SHA-256 hex, size) of each file as it is on the node; None for a missing one."""
        paths = list(paths)
        if not paths:
            return {}
        out: dict[str, tuple[str, int] | None] = {}
        for line in self.exec(_HASH % (paths,), timeout_s=30).decode().splitlines():
            if line.strip():
                path, value = ast.literal_eval(line)  # (path, (sha256 hex, size) or None)
                out[path] = (value[0], value[1]) if value is not None else None
        return out

    def makedirs(self, dirs: Iterable[str]) -> None:
        """Each directory and its parents, in order; existing ones are fine."""
        chain: list[str] = []
        for d in dirs:
            parts = d.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                p = "/" + "/".join(parts[:i])
                if p not in chain:
                    chain.append(p)
        if chain:
            self.exec(_MAKEDIRS % (chain,))

    def remove(self, path: str) -> bool:
        """Remove a file; False when there was none. Its directory goes too once empty."""
        code = (
            f"import os\ntry:\n os.remove({path!r})\nexcept OSError as e:\n"
            f" print('gone' if e.errno=={errno.ENOENT} else e)\n"
        )
        out = self.exec(code).decode().strip()
        if out and out != "gone":
            raise DeployError(f"the node cannot remove {path}: {out}")
        parent = path.rsplit("/", 1)[0]
        if parent not in ("", "/lib") and parent.startswith("/lib"):
            # An emptied package directory (a removed driver); not empty: it stays.
            self.exec(f"import os\ntry:\n os.rmdir({parent!r})\nexcept OSError:\n pass")
        return out != "gone"

    def rename(self, old: str, new: str) -> None:
        self.exec(f"import os\nos.rename({old!r},{new!r})")

    def write_atomically(self, path: str, data: bytes) -> None:
        """Write to path.new, then rename over path (littlefs renames atomically)."""
        self.write(path + ".new", data)
        self.rename(path + ".new", path)

    # ---- the end ------------------------------------------------------------------------------

    def soft_reset(self) -> None:
        """Leave the raw REPL and soft-reset from the friendly one: boot.py and main.py run."""
        try:
            self.t.exit_raw_repl()
            self.t.serial.write(b"\x04")
            self.t.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"lost the node on {self.port} ({exc})") from exc

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self.t.close()  # a vanished port has nothing left to close

    def __enter__(self) -> "NodeFs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
