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
import json
import select
import sys
import time

from micropython import const

PROTO = const(1)
_MAX_IN = const(1024)
_MAX_ID = const(65535)
_VERSION = b"1 "  # PROTO as it appears in a frame


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


def encode(fid, obj):
    head = "@M%d %d %s " % (PROTO, fid, json.dumps(obj))
    b = head.encode()
    if len(b) != len(head):
        head = _ascii(head)
        b = head.encode()
    return "%s%08x\n" % (head, binascii.crc32(b) & 0xFFFFFFFF)


def write(fid, obj):
    sys.stdout.write(encode(fid, obj))


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
    try:
        want = int(crc, 16)
    except ValueError:
        raise Refused("bad_frame", "bad crc field") from None
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
        self._last_reply = ""
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
            sys.stdout.write(self._last_reply)
            return
        reply = self._run(req)
        try:
            frame = encode(fid, reply)
        except MemoryError:
            frame = encode(fid, {"ok": False, "err": "failed", "msg": "reply too big for the heap"})
        self._last_id = fid
        self._last_reply = frame
        self.served += 1
        sys.stdout.write(frame)

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
