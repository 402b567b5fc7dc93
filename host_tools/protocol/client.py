"""NodeClient: requests and replies to a motekit node, its events and log text on the side.

    with SerialTransport(port) as t:
        node = NodeClient(t, on_event=print)
        with node.session(wait_s=5):            # catch the node (hold); release it afterwards
            info = node.request("info")
            node.request("config", op="set", key="sample_period", value=300)
        node.wait_event("report", timeout_s=70)  # or look at node.events / node.log

The node listens only in its host-wait window after a reset and while held, so a session starts
with `catch()`: `hold` every 0.25 s until the node answers. A retry resends the same id (the node
answers a repeated id from memory without running the command twice); each new request gets a
fresh one. Everything that is not a reply goes to `events` / `log` (and the callbacks).
"""

import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from host_tools import __version__
from host_tools.errors import MoteError, ProtocolError
from host_tools.protocol.framing import (
    MAX_FROM_NODE,
    MAX_ID,
    MAX_TO_NODE,
    PROTO,
    BadFrame,
    Decoder,
    Frame,
    Item,
    Text,
    encode,
)
from host_tools.transport import Transport

HOLD_INTERVAL_S = 0.25
_MAX_RESENDS = 8  # per try, on bad_frame errors
_KEEP = 1000  # events and log lines kept

_PROMPT = b">>> "  # the friendly REPL waiting for input
_ECHO_AFTER = ("", ">>> ", "... ")  # what the REPL's echo of a typed line follows
_RAW_BANNER = "raw REPL; CTRL-B to exit"
_SOFT_REBOOTED = "soft reboot"  # pyexec's "MPY: soft reboot"
# \r and Ctrl-C twice: stop whatever runs and drop the line typed so far; Ctrl-B: leave the raw
# REPL (a soft reset from there skips main.py); Ctrl-D at the friendly REPL: soft reset, which
# runs boot.py and main.py.
_SOFT_RESET = b"\r\x03\x03\x02\x04"

AWAKE_HINT = "is the node awake? reset it or use --wait"


class _Resend:
    """The node refused a damaged frame: send it again now."""


_RESEND = _Resend()


class _Busy:
    """The node is still working on the request (a long sensor conversion): wait on."""


_BUSY = _Busy()
# How long `busy` frames can keep one request waiting: beyond that the node is stuck.
MAX_BUSY_S = 60.0

Event = dict[str, Any]
_Routed = Frame | Text | Event | _Resend | _Busy


class NodeClient:
    def __init__(
        self,
        transport: Transport,
        *,
        on_event: Callable[[Event], None] | None = None,
        on_text: Callable[[str], None] | None = None,
        first_id: int | None = None,
    ) -> None:
        self.transport = transport
        self.on_event = on_event
        self.on_text = on_text
        self.events: deque[Event] = deque(maxlen=_KEEP)
        self.log: deque[str] = deque(maxlen=_KEEP)
        self.bad_frames = 0  # damaged frames from the node, and our frames it refused
        self.caught = False  # we held the node, so release_if_caught() releases it
        self.was_held: bool | None = None  # what the node said when caught
        # A random start: the node remembers the last id it answered, perhaps from an earlier
        # session, and would answer a repeat of it from memory.
        if first_id is None:
            first_id = random.randint(1, MAX_ID)
        if not 1 <= first_id <= MAX_ID:
            raise ValueError(f"first_id must be 1..{MAX_ID}")
        self._next_id = first_id
        self._decoder = Decoder(MAX_FROM_NODE)
        self._items: deque[Item] = deque()
        self._repl = False  # the REPL echoed a frame or showed its raw banner, and no frame since
        self._prompt = False  # the last thing the node sent is a `>>> ` prompt
        self._sent = ""  # the last frame sent, to know it when the REPL echoes it

    # ---- requests ---------------------------------------------------------------------------

    def request(
        self, cmd: str, timeout: float = 2.0, retries: int = 2, **args: Any
    ) -> dict[str, Any]:
        """Send `cmd` and return the reply's data; ProtocolError for a refusal or no reply."""
        req = {"cmd": cmd, **args}
        fid = self._new_id()
        line = encode(fid, req)
        if len(line) > MAX_TO_NODE:
            raise ProtocolError(
                f"the {cmd} request is {len(line)} bytes; the node takes at most {MAX_TO_NODE}",
                err="too_long",
            )
        tries = retries + 1
        self._sent = line.decode().rstrip("\n")
        for _ in range(tries):
            self.transport.write(line)
            deadline = time.monotonic() + timeout
            busy_until = time.monotonic() + MAX_BUSY_S
            resends = 0
            while True:
                got = self._wait(fid, req, deadline)
                if got is _BUSY:
                    deadline = min(time.monotonic() + timeout, busy_until)
                    continue
                if got is not _RESEND:
                    break
                # A bad_frame error names no request: it may be ours, or one of many for line
                # noise the node is still working through. Resend (the node runs an id once),
                # a bounded number of times, and keep waiting for this try's deadline.
                if resends < _MAX_RESENDS:
                    resends += 1
                    self.transport.write(line)
            if isinstance(got, Frame):
                return self._data(cmd, got.obj)
            if self.at_repl:
                raise _repl_error()
        raise ProtocolError(
            f"no reply to {cmd} from the node on {self.transport.name} "
            f"({tries} tries, {_secs(timeout)} s each)",
            hint=AWAKE_HINT,
            err="timeout",
        )

    def catch(self, wait_s: float) -> dict[str, Any]:
        """Send `hold` every HOLD_INTERVAL_S until the node answers or wait_s passes.

        One id for every try: a node that gets two of them runs `hold` once, so `was_held` in
        the reply is what it was before this session.
        """
        req = {"cmd": "hold"}
        fid = self._new_id()
        line = encode(fid, req)
        deadline = time.monotonic() + max(wait_s, HOLD_INTERVAL_S)  # at least one try
        self._sent = line.decode().rstrip("\n")
        while True:
            self.transport.write(line)
            tick = min(deadline, time.monotonic() + HOLD_INTERVAL_S)
            got = self._wait(fid, req, tick, listen=True)
            if isinstance(got, Frame):
                reply = got.obj
                break
            if self.at_repl:
                raise _repl_error()
            if got is None and time.monotonic() >= deadline:
                raise ProtocolError(
                    f"no answer from the node on {self.transport.name} within {_secs(wait_s)} s",
                    hint=AWAKE_HINT,
                    err="timeout",
                )
            # else: a tick passed, the node just opened its window, or it refused a damaged
            # frame: send the hold again now.
        data = self._data("hold", reply)
        self.was_held = data.get("was_held") is True
        self.caught = not self.was_held
        return data

    def release(self, timeout: float = 2.0, retries: int = 2) -> dict[str, Any]:
        data = self.request("release", timeout=timeout, retries=retries)
        self.caught = False
        return data

    def release_if_caught(self, timeout: float = 2.0, retries: int = 2) -> None:
        """Release the node if this client held it (not if it was already held)."""
        if self.caught:
            self.release(timeout, retries)

    @contextmanager
    def session(self, wait_s: float, *, keep_held: bool = False) -> Iterator["NodeClient"]:
        """catch(), then release the node at the end unless it was held already or keep_held."""
        self.catch(wait_s)
        try:
            yield self
        except BaseException:
            if not keep_held:
                with suppress(MoteError):  # the error that brought us here says more
                    self.release_if_caught(timeout=1.0, retries=1)
            raise
        if not keep_held:
            self.release_if_caught()

    def reboot(self, wait_s: float) -> str:
        """Restart motekit: the `reboot` command, or a soft reset when the node is at the REPL.

        Returns "console" or "repl" (how it was done).
        """
        try:
            self.catch(wait_s)
        except ProtocolError as exc:
            if exc.err != "repl":
                raise
            self.soft_reset(wait_s)
            return "repl"
        self.request("reboot")
        self.caught = False  # it restarts: nothing left to release
        return "console"

    def soft_reset(self, wait_s: float) -> None:
        """From the MicroPython REPL: soft-reset so main.py starts motekit, and check it did."""
        deadline = time.monotonic() + wait_s
        self._items.clear()
        self._decoder.close()  # what the REPL said before is no evidence of what comes next
        self._repl = self._prompt = False
        self.transport.write(_SOFT_RESET)
        while True:
            got = self._next(deadline)
            if got is None:
                raise ProtocolError(
                    f"sent a soft reset (Ctrl-D) but the node on {self.transport.name} "
                    f"did not restart within {_secs(wait_s)} s",
                    hint="reset it with its button or by power",
                    err="timeout",
                )
            if not isinstance(got, Text) or _SOFT_REBOOTED in got.text:
                break  # "MPY: soft reboot", or motekit talking already
        try:
            self.catch(max(deadline - time.monotonic(), 4 * HOLD_INTERVAL_S))
        except ProtocolError as exc:
            if exc.err != "repl":
                raise
            raise ProtocolError(
                "the node restarted but is at the MicroPython REPL again: "
                "main.py did not start motekit",
                hint="deploy the motekit firmware to the node",
                err="repl",
            ) from exc
        self.release_if_caught()

    def wait_event(self, ev: str, timeout_s: float) -> Event:
        """The next `ev` event from the node (others are kept in `events` as usual)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self._next(deadline)
            if got is None:
                raise ProtocolError(
                    f"no {ev} event from the node within {_secs(timeout_s)} s", err="timeout"
                )
            if isinstance(got, dict) and got.get("ev") == ev:
                return got

    @property
    def at_repl(self) -> bool:
        """What the node said last is the MicroPython REPL's, not motekit's."""
        return self._repl or self._prompt

    # ---- what arrives -------------------------------------------------------------------------

    def _new_id(self) -> int:
        fid = self._next_id
        self._next_id = fid % MAX_ID + 1  # 1..65535, wrapping, never 0
        return fid

    def _wait(
        self, fid: int, req: dict[str, Any], deadline: float, listen: bool = False
    ) -> _Routed | None:
        # The reply to `fid`; None at the deadline; _RESEND; _BUSY; with `listen`, a listen
        # event.
        while True:
            got = self._next(deadline)
            if got is None or got is _RESEND:
                return got
            if isinstance(got, Frame):
                if got.id == fid:
                    if "ok" in got.obj:
                        return got
                    if got.obj.get("busy") is True:
                        return _BUSY
                    if got.obj == req:
                        self._repl = True  # our own request echoed, its prompt lost
                # else a late reply to an earlier request (a retry's second answer): dropped
            elif listen and isinstance(got, dict) and got.get("ev") == "listen":
                return got

    def _next(self, deadline: float) -> _Routed | None:
        # The next routed item (see _route), or None when the deadline passes first.
        while True:
            while self._items:
                got = self._route(self._items.popleft())
                if got is not None:
                    return got
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(min(left, HOLD_INTERVAL_S))
            if data:
                self._items.extend(self._decoder.feed(data))
            self._prompt = self._decoder.pending == _PROMPT

    def _route(self, item: Item) -> _Routed | None:
        # Text -> log; event -> events; returns replies (Frame), Text, events (dict), _RESEND.
        if isinstance(item, Text):
            self.log.append(item.text)
            if self.on_text is not None:
                self.on_text(item.text)
            if _RAW_BANNER in item.text:
                self._repl = True
            elif self._sent and item.text.endswith(self._sent):
                # Our own frame typed in at the friendly REPL, after its prompt.
                self._repl = self._repl or item.text[: -len(self._sent)] in _ECHO_AFTER
            return item
        if isinstance(item, BadFrame):
            if item.version is not None:
                raise _version_error(item.version)
            self.bad_frames += 1
            return None
        obj = item.obj
        if item.id != 0:
            if "ok" in obj:
                self._repl = False
            return item
        self._repl = False
        if "ev" in obj:
            self.events.append(obj)
            if self.on_event is not None:
                self.on_event(obj)
            return obj
        if obj.get("ok") is False:
            if obj.get("err") == "bad_version":
                raise _version_error(obj.get("proto"))
            if obj.get("err") == "bad_frame":
                self.bad_frames += 1
                return _RESEND
        return None

    def _data(self, cmd: str, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("ok") is True:
            data = obj.get("data")
            if not isinstance(data, dict):
                raise ProtocolError(f"the node's reply to {cmd} has no data", err="bad_reply")
            if cmd in ("ping", "hold", "info") and data.get("proto", PROTO) != PROTO:
                raise _version_error(data.get("proto"))
            return data
        err, msg = obj.get("err"), obj.get("msg")
        if obj.get("ok") is not False or not isinstance(err, str):
            raise ProtocolError(f"the node's reply to {cmd} is malformed: {obj}", err="bad_reply")
        text = msg if isinstance(msg, str) and msg else f"the node refused {cmd}: {err}"
        raise ProtocolError(text, hint=_hint(cmd, err), err=err)


def _secs(s: float) -> str:
    return f"{round(s, 2):g}"


def _hint(cmd: str, err: str) -> str:
    if cmd == "config" and err in ("bad_key", "bad_value"):
        return "`mote config list` shows the settings and their allowed values"
    if err == "unknown_cmd":
        return "the node's firmware is older than this mote: deploy it again"
    if err == "busy":
        return "the node is busy: try again in a moment"
    return ""


def _repl_error() -> ProtocolError:
    return ProtocolError(
        "the node is at the MicroPython REPL, not running motekit",
        hint="`mote reboot` soft-resets it (Ctrl-D) so that main.py starts motekit",
        err="repl",
    )


def _version_error(version: object) -> ProtocolError:
    speaks = f"protocol {version}" if version is not None else "another protocol version"
    return ProtocolError(
        f"the node speaks console {speaks}; this mote speaks protocol {PROTO}",
        hint=f"deploy the firmware from motekit {__version__} (protocol {PROTO}), "
        "or use the mote that came with the node's firmware",
        err="bad_version",
    )
