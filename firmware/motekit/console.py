# The node side of the console protocol (docs/protocol.md): one-line frames
#   @M1 <id> <json> <crc32>\n
# on the USB serial line, sharing it with log text and the MicroPython REPL. Lines that are not
# frames are ignored; a damaged frame gets an error frame (id 0) and never reaches the app.
#
#   con = Console(handlers)        # {"info": fn(req) -> dict, ...}, or a function making it
#   con.serve(timeout_ms)          # read and answer what arrives within timeout_ms
#   event("report", data=report)   # unsolicited frame, id 0
#
# A handler raises Refused(err, msg) for an error reply. The last (id, reply) is remembered so a
# host retry of the same id is answered again without running the command twice.
import binascii
import io
import json
import select
import sys
import time

from micropython import const

PROTO = const(1)
_MAX_IN = const(1024)
_MAX_ID = const(65535)
_VERSION = b"1 "  # PROTO as it appears in a frame
_HEX = b"0123456789abcdef"
_OUT_BUF = const(128)


class Refused(Exception):
    def __init__(self, err, msg):
        super().__init__(msg)
        self.err = err
        self.msg = msg


def _ascii(s):
    # JSON from MicroPython keeps non-ASCII characters as UTF-8; frames are ASCII only.
    out = []
    for c in s:
        o = ord(c)
        out.append(c if o < 128 else "\\u%04x" % o if o < 0x10000 else "?")
    return "".join(out)


class _Frame(io.IOBase):
    # A frame written as json.dump produces it, through a small buffer, with the CRC computed on
    # the way: a reply of any size (config list carries the schema) costs this buffer, never
    # its whole text in the heap. json.dump writes each string whole, so a piece never splits
    # a UTF-8 character.
    def __init__(self, sink):
        self._sink = sink
        self._buf = bytearray(_OUT_BUF)
        self._view = memoryview(self._buf)
        self._n = 0
        self._carry = None
        self._need = 0
        self.crc = 0

    def write(self, b):
        taken = len(b)  # what the caller gave: escaping makes more to send
        if self._carry is not None or any(c > 127 for c in b):
            b = self._escape(b)
        self.crc = binascii.crc32(b, self.crc)
        n = len(b)
        if self._n + n > _OUT_BUF:
            self.drain()
        if n > _OUT_BUF:
            self._sink(b)
        else:
            self._buf[self._n : self._n + n] = b
            self._n += n
        return taken

    def _escape(self, b):
        # Non-ASCII as \\uXXXX; json.dump may hand over a UTF-8 character a byte at a time, so
        # an unfinished one waits in _carry for its other bytes.
        out = bytearray()
        for c in b:
            if self._carry is not None:
                self._carry.append(c)
                if len(self._carry) == self._need:
                    out += _ascii(bytes(self._carry).decode()).encode()
                    self._carry = None
            elif c > 127:
                self._need = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
                self._carry = bytearray((c,))
            else:
                out.append(c)
        return out

    def ioctl(self, op, arg):
        return 0  # nothing to flush or close here: drain() sends the buffer

    def drain(self):
        if self._n:
            self._sink(self._view[: self._n])
            self._n = 0


def _emit(fid, obj, sink):
    f = _Frame(sink)
    f.write(b"@M%d %d " % (PROTO, fid))
    json.dump(obj, f)
    f.write(b" ")
    f.drain()
    sink(b"%08x\n" % (f.crc & 0xFFFFFFFF))


def encode(fid, obj):
    # The frame as a str (tests, and the host side's reference): what write() sends.
    parts = []
    _emit(fid, obj, lambda b: parts.append(bytes(b)))
    return b"".join(parts).decode()


def write(fid, obj):
    try:
        _emit(fid, obj, _out)
    except MemoryError:
        # A half-written line fails its CRC at the host; end it and say what happened.
        _out(b"\n")
        _emit(fid, {"ok": False, "err": "failed", "msg": "reply too big for the heap"}, _out)


def _out(b):
    sys.stdout.buffer.write(b)


def event(name, **fields):
    fields["ev"] = name
    write(0, fields)


def parse(line):
    # -> (id, obj) for a good frame; raises Refused for a damaged one. `line`: bytes, no newline.
    if len(line) < 4 or line[2:3] < b"0" or line[2:3] > b"9":
        raise Refused("bad_frame", "no version")
    last = line.rfind(b" ")
    crc = line[last + 1 :]
    if last < 4 or len(crc) != 8:
        raise Refused("bad_frame", "no crc")
    for c in crc:  # lowercase only: "A" for "a" would be a bit flip the CRC cannot see
        if c not in _HEX:
            raise Refused("bad_frame", "bad crc field")
    want = int(crc, 16)
    if binascii.crc32(line[: last + 1]) & 0xFFFFFFFF != want:
        raise Refused("bad_frame", "crc mismatch")
    if line[2:4] != _VERSION:
        raise Refused("bad_version", "this node speaks protocol %d" % PROTO)
    sp = line.find(b" ", 4)
    fid = line[4:sp]
    if sp < 0 or sp >= last or not fid or not fid.isdigit() or len(fid) > 5:
        raise Refused("bad_frame", "bad id")
    fid = int(fid)
    if fid > _MAX_ID:
        raise Refused("bad_frame", "bad id")
    try:
        obj = json.loads(line[sp + 1 : last])
    except ValueError:
        raise Refused("bad_frame", "bad json") from None
    if not isinstance(obj, dict):
        raise Refused("bad_frame", "json is not an object")
    return fid, obj


class Console:
    def __init__(self, handlers):
        self.handlers = handlers
        self.after = None  # set by a handler: runs once its reply is out (reboot, sleep)
        self.served = 0
        self.bad = 0
        self._line = bytearray(_MAX_IN)
        self._n = 0
        self._over = False
        self._byte = bytearray(1)
        self._last_id = -1
        self._last_reply = None
        self._running = 0  # the id of the request being run; 0: none
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def serve(self, timeout_ms):
        # Answer every frame that arrives before timeout_ms passes (0: only what is waiting).
        # Returns early after a request whose handler set `after`.
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        rx = sys.stdin.buffer
        while True:
            left = max(0, time.ticks_diff(deadline, time.ticks_ms()))
            if not self._poll.poll(left):
                if left == 0:
                    return
                continue
            if not rx.readinto(self._byte):
                return
            c = self._byte[0]
            if c == 10:  # \n
                if not self._over and self._n >= 2 and self._line[0:2] == b"@M":
                    n = self._n
                    if self._line[n - 1] == 13:
                        n -= 1
                    self._handle(bytes(self._line[:n]))
                elif self._over and self._line[0:2] == b"@M":
                    self.bad += 1
                    write(0, {"ok": False, "err": "bad_frame", "msg": "frame too long"})
                self._n = 0
                self._over = False
                if self.after is not None:
                    return
            elif self._n < _MAX_IN:
                self._line[self._n] = c
                self._n += 1
            else:
                self._over = True

    def _handle(self, line):
        try:
            fid, req = parse(line)
        except Refused as e:
            self.bad += 1
            reply = {"ok": False, "err": e.err, "msg": e.msg}
            if e.err == "bad_version":
                reply["proto"] = PROTO
            write(0, reply)
            return
        if fid == self._last_id and fid != 0:
            write(fid, self._last_reply)
            return
        self._running = fid
        self._last_reply = None  # a new id: the host has the last reply; its heap is free again
        try:
            reply = self._run(req)
        finally:
            self._running = 0
        self._last_id = fid
        self._last_reply = reply
        self.served += 1
        write(fid, reply)

    def busy(self):
        # While a request takes long (a 5 s CO2 measurement), called about once a second: tells
        # the host the request is being worked on, so it waits on instead of giving up.
        if self._running:
            write(self._running, {"busy": True})

    def _run(self, req):
        if callable(self.handlers):  # built on the first request: most wakes never need them
            self.handlers = self.handlers()
        cmd = req.get("cmd")
        fn = self.handlers.get(cmd) if isinstance(cmd, str) else None
        if fn is None:
            return {"ok": False, "err": "unknown_cmd", "msg": "unknown command %r" % (cmd,)}
        try:
            return {"ok": True, "data": fn(req)}
        except Refused as e:
            return {"ok": False, "err": e.err, "msg": e.msg}
        except (KeyError, TypeError) as e:
            return {
                "ok": False,
                "err": "bad_args",
                "msg": "%s: bad or missing argument %s" % (cmd, e),
            }
        except (OSError, ValueError, RuntimeError) as e:
            return {"ok": False, "err": "failed", "msg": "%s: %s" % (cmd, e)}
        except MemoryError:
            return {"ok": False, "err": "failed", "msg": "%s: out of memory" % cmd}
