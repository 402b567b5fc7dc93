# The node side of the console protocol (firmware/motekit/console.py, docs/protocol.md).
import binascii
import json

import _devtest
from motekit import console


def _frame(body):
    # Built by hand from the spec, independently of console.encode.
    head = body + " "
    return (head + "%08x" % (binascii.crc32(head.encode()) & 0xFFFFFFFF)).encode()


def test_encode_matches_the_spec_byte_for_byte():
    out = console.encode(7, {"ok": True})
    assert out.endswith("\n")
    line = out[:-1]
    head = line[: line.rfind(" ") + 1]
    assert head.startswith("@M1 7 ")
    assert json.loads(head[6:-1]) == {"ok": True}
    assert line.encode() == _frame(head[:-1])


def test_encode_escapes_non_ascii():
    out = console.encode(1, {"msg": "25\u00b0C"})
    assert all(ord(c) < 128 for c in out), out
    fid, obj = console.parse(out[:-1].encode())
    assert (fid, obj) == (1, {"msg": "25\u00b0C"})


def test_parse_round_trip_and_ids():
    for fid in (1, 9, 65535):
        assert console.parse(_frame('@M1 %d {"cmd":"ping"}' % fid)) == (fid, {"cmd": "ping"})
    # JSON may contain spaces: it runs to the last space
    assert console.parse(_frame('@M1 3 {"cmd": "config", "key": "a b"}'))[1]["key"] == "a b"


def _refused(line):
    e = _devtest.raises(console.Refused, console.parse, line)
    return e.err, e.msg


def test_parse_refuses_damage_with_a_reason():
    good = _frame('@M1 5 {"cmd":"info"}')
    flipped = bytearray(good)
    flipped[10] ^= 0x01
    assert _refused(bytes(flipped)) == ("bad_frame", "crc mismatch")
    assert _refused(good[:-1]) == ("bad_frame", "no crc")
    assert _refused(good[:-9] + b" zzzzzzzz") == ("bad_frame", "bad crc field")
    # the same CRC in capitals: a bit flip (0x20) that CRC-32 cannot see, refused by the syntax
    assert _refused(good[:-8] + good[-8:].upper()) == ("bad_frame", "bad crc field")
    assert _refused(b"@M") == ("bad_frame", "no version")
    assert _refused(_frame('@M2 5 {"cmd":"info"}'))[0] == "bad_version"
    assert _refused(_frame('@M1 x {"cmd":"info"}')) == ("bad_frame", "bad id")
    assert _refused(_frame('@M1 70000 {"cmd":"info"}')) == ("bad_frame", "bad id")
    assert _refused(_frame("@M1 5 [1,2]")) == ("bad_frame", "json is not an object")
    assert _refused(_frame("@M1 5 {nope")) == ("bad_frame", "bad json")


def test_console_dispatch_dedups_a_retried_id():
    calls = []

    def info(req):
        calls.append(req)
        return {"n": len(calls)}

    con = console.Console({"info": info})
    first = con._run({"cmd": "info"})
    assert first == {"ok": True, "data": {"n": 1}}
    assert con._run({"cmd": "nope"})["err"] == "unknown_cmd"
    assert con._run({"cmd": 3})["err"] == "unknown_cmd"

    def broken(req):
        return req["missing"]

    con.handlers["broken"] = broken
    assert con._run({"cmd": "broken"})["err"] == "bad_args"


def test_a_long_request_sends_busy_frames_with_its_id_before_the_reply():
    sent = []
    real_out = console._out
    console._out = lambda b: sent.append(bytes(b))
    try:
        con = console.Console({})

        def slow(req):
            con.busy()
            con.busy()
            return {"done": True}

        con.handlers["read"] = slow
        con._handle(_frame('@M1 42 {"cmd":"read"}'))
        con.busy()  # no request running: nothing is sent
    finally:
        console._out = real_out
    lines = b"".join(sent).decode().splitlines()
    frames = [console.parse(line.encode()) for line in lines]
    assert frames == [
        (42, {"busy": True}),
        (42, {"busy": True}),
        (42, {"ok": True, "data": {"done": True}}),
    ]


def _with_little_heap_left(fn, left):
    # Run fn() with less than `left` bytes free; return what was free then.
    import gc

    gc.collect()
    ballast = []
    while gc.mem_free() > left:
        try:
            ballast.append(bytearray(500))
        except MemoryError:
            break
    free = gc.mem_free()
    fn()
    return free


def test_a_reply_bigger_than_the_free_heap_streams_out():
    word = "x" * 200
    obj = {"ok": True, "data": {"items": [word] * 40}}  # 8 KB of JSON, one string in RAM
    seen = {"n": 0, "crc": 0, "before_last": 0, "head": b"", "last": b""}

    def sink(b):
        b = bytes(b)
        if not seen["head"]:
            seen["head"] = b[:6]
        seen["n"] += len(b)
        seen["before_last"] = seen["crc"]
        seen["crc"] = binascii.crc32(b, seen["crc"])
        seen["last"] = b

    free = _with_little_heap_left(lambda: console._emit(9, obj, sink), 6000)
    assert seen["n"] > 8000 > free
    assert seen["head"] == b"@M1 9 "
    assert seen["last"] == b"%08x\n" % (seen["before_last"] & 0xFFFFFFFF)
    # and in the small, the streamed frame is what the host parses
    small = {"ok": True, "data": {"items": [word] * 2}}
    assert console.parse(console.encode(9, small)[:-1].encode()) == (9, small)
