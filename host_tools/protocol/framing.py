"""Console frames (docs/protocol.md): `@M1 <id> <json> <crc32>\\n` lines amid log text.

    line = encode(7, {"cmd": "info"})           # bytes, newline included
    dec = Decoder()
    for item in dec.feed(chunk):                # Frame, Text or BadFrame, in order
        ...
    dec.close()                                 # the stream ended: what was left, if anything

Pure: no I/O, no threads, no clocks. The decoder keeps one partial line in a bytearray, never
raises on its input and never holds more than `max_line` bytes of it.
"""

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

PROTO = 1
MAX_ID = 65535
MAX_TO_NODE = 1024  # a host frame, newline included: the node's receive buffer
MAX_FROM_NODE = 8192  # a node frame (`config list` carries the schema)

_CRC = re.compile(rb"[0-9a-f]{8}")  # lowercase, as the spec writes it
_HEAD = b"@M"
_KEEP = 80  # bytes of an overlong line kept to show what it was


@dataclass(frozen=True)
class Frame:
    id: int
    obj: dict[str, Any]


@dataclass(frozen=True)
class Text:
    """A line of log text (or REPL output): not a frame."""

    text: str


@dataclass(frozen=True)
class BadFrame:
    """A line that starts like a frame but is not a good one. `version` is set when the line is
    intact (its CRC checks) but speaks another protocol version."""

    reason: str
    raw: bytes
    version: int | None = None


Item = Frame | Text | BadFrame


def encode(fid: int, obj: dict[str, Any]) -> bytes:
    """One frame line; ValueError for an id outside 0..65535 or an object JSON cannot carry."""
    if not isinstance(fid, int) or isinstance(fid, bool) or not 0 <= fid <= MAX_ID:
        raise ValueError(f"frame id must be 0..{MAX_ID}, not {fid!r}")
    if not isinstance(obj, dict):
        raise ValueError(f"a frame carries a JSON object, not {type(obj).__name__}")
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    head = b"@M%d %d %s " % (PROTO, fid, body.encode("ascii"))
    return head + b"%08x\n" % zlib.crc32(head)


def parse_line(line: bytes) -> Item:
    """One line, without its newline (a trailing \\r is ignored)."""
    line = line.rstrip(b"\r")
    if not line.startswith(_HEAD):
        return Text(line.decode("utf-8", "replace"))
    if not line[2:3].isdigit():
        return BadFrame("no version", line)
    last = line.rfind(b" ")
    if last < 3 or len(line) - last - 1 != 8:
        return BadFrame("no crc", line)
    if not _CRC.fullmatch(line, last + 1):
        return BadFrame("bad crc field", line)
    if zlib.crc32(line[: last + 1]) != int(line[last + 1 :], 16):
        return BadFrame("crc mismatch", line)
    version = line[2] - 0x30
    if version != PROTO:
        return BadFrame(f"protocol version {version}", line, version)
    sp = line.find(b" ", 4)
    fid = line[4:sp]
    if line[3:4] != b" " or not 4 < sp < last or len(fid) > 5 or not fid.isdigit():
        return BadFrame("bad id", line)
    if int(fid) > MAX_ID:
        return BadFrame("bad id", line)
    body = line[sp + 1 : last]
    if not body.isascii():
        return BadFrame("not ascii", line)
    try:
        obj = json.loads(body.decode("ascii"))
    except (ValueError, RecursionError):
        return BadFrame("bad json", line)
    if not isinstance(obj, dict):
        return BadFrame("json is not an object", line)
    return Frame(int(fid), obj)


class Decoder:
    def __init__(self, max_line: int = MAX_FROM_NODE) -> None:
        self.max_line = max_line  # bytes per line, newline included
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already known to hold no newline
        self._overlong: bytes | None = None  # the head of a line being skipped as too long

    @property
    def pending(self) -> bytes:
        """The partial line received so far (a REPL prompt waits here: `>>> `)."""
        return b"" if self._overlong is not None else bytes(self._buf)

    def feed(self, data: bytes) -> list[Item]:
        self._buf += data
        out: list[Item] = []
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl < 0:
                self._scanned = len(self._buf)
                if self._overlong is None and len(self._buf) >= self.max_line:
                    self._overlong = bytes(self._buf[:_KEEP])
                if self._overlong is not None:
                    self._buf.clear()  # skip the rest of an overlong line as it comes
                    self._scanned = 0
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            self._scanned = 0
            if self._overlong is not None:
                out.append(_too_long(self._overlong))
                self._overlong = None
            elif nl + 1 > self.max_line:
                out.append(_too_long(line[:_KEEP]))
            else:
                out.append(parse_line(line))

    def close(self) -> list[Item]:
        """The stream ended: a line cut short is never a frame."""
        head, rest = self._overlong, bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        self._overlong = None
        if head is not None:
            return [_too_long(head)]
        if not rest:
            return []
        if rest.startswith(_HEAD):
            return [BadFrame("truncated", rest)]
        return [Text(rest.rstrip(b"\r").decode("utf-8", "replace"))]


def _too_long(head: bytes) -> Item:
    if head.startswith(_HEAD):
        return BadFrame("too long", head)
    return Text(head.decode("utf-8", "replace") + " [...]")
