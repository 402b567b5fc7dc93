"""Console framing (host_tools.protocol.framing) against docs/protocol.md.

CRCs here are computed independently, with binascii, on lines built by hand.
"""

import binascii
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from host_tools.protocol.framing import (
    MAX_FROM_NODE,
    MAX_TO_NODE,
    BadFrame,
    Decoder,
    Frame,
    Item,
    Text,
    encode,
    parse_line,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def line(body: str) -> bytes:
    """`body` (everything before the CRC, without its trailing space) as a frame line."""
    head = (body + " ").encode()
    return head + b"%08x\n" % (binascii.crc32(head) & 0xFFFFFFFF)


def decode(data: bytes, **kw: Any) -> list[Item]:
    dec = Decoder(**kw)
    return dec.feed(data) + dec.close()


def frames(items: list[Item]) -> list[Frame]:
    return [i for i in items if isinstance(i, Frame)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
frame_ids = st.integers(0, 65535)


# ---- known vectors ---------------------------------------------------------------------------


def test_encode_matches_a_hand_built_line_byte_for_byte() -> None:
    assert encode(7, {"cmd": "info"}) == line('@M1 7 {"cmd":"info"}')
    assert encode(0, {}) == line("@M1 0 {}")
    assert encode(65535, {"a": [1, 2.5, None, True]}) == line('@M1 65535 {"a":[1,2.5,null,true]}')


def test_encode_escapes_non_ascii() -> None:
    out = encode(3, {"msg": "25\u00b0C"})
    assert out == line('@M1 3 {"msg":"25\\u00b0C"}')
    assert decode(out) == [Frame(3, {"msg": "25\u00b0C"})]


def test_the_examples_in_the_spec_are_real_frames() -> None:
    examples = re.findall(r"^@M1 \d+ .*$", DOC.read_text(), re.MULTILINE)
    assert len(examples) >= 2
    for ex in examples:
        (item,) = decode(ex.encode() + b"\n")
        assert isinstance(item, Frame), (ex, item)
    req, reply = (decode(ex.encode() + b"\n")[0] for ex in examples[:2])
    assert req == Frame(7, {"cmd": "config", "op": "get", "key": "sample_period"})
    assert reply == Frame(7, {"ok": True, "data": {"key": "sample_period", "value": 60}})


def test_json_with_spaces_as_micropython_writes_it() -> None:
    data = line('@M1 12 {"ok": true, "data": {"key": "a b", "value": 1}}')
    assert decode(data) == [Frame(12, {"ok": True, "data": {"key": "a b", "value": 1}})]


@pytest.mark.parametrize(
    ("bad_id", "obj"),
    [(-1, {}), (65536, {}), (True, {}), (1, [1]), (1, {"x": float("nan")})],
)
def test_encode_refuses_what_a_frame_cannot_carry(bad_id: Any, obj: Any) -> None:
    with pytest.raises(ValueError):
        encode(bad_id, obj)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"@M", "no version"),
        (b"@Mx 1 {} 00000000", "no version"),
        (line("@M1 5 {}")[:-10], "no crc"),
        (line("@M1 5 {}")[:-9] + b" zzzzzzzz", "bad crc field"),
        (line("@M1 5 {}")[:-9] + b" " + line("@M1 5 {}")[-9:-1].upper(), "bad crc field"),
        (line('@M1 5 {"a":1}').replace(b"a", b"b"), "crc mismatch"),
        (line("@M1 x {}"), "bad id"),
        (line("@M1  {}"), "bad id"),
        (line("@M1 70000 {}"), "bad id"),
        (line("@M1 000001 {}"), "bad id"),
        (line("@M1 5"), "bad id"),
        (line("@M1 5 [1,2]"), "json is not an object"),
        (line("@M1 5 {nope"), "bad json"),
        (line("@M1 5 " + "[" * 5000), "bad json"),
        (line('@M1 5 {"t":"25\u00b0C"}'), "not ascii"),
        (line("@M1 5 {}")[:-1] + b"\x00\n", "no crc"),
    ],
)
def test_damaged_frames_are_bad_frames_with_a_reason(raw: bytes, reason: str) -> None:
    items = decode(raw if raw.endswith(b"\n") else raw + b"\n")
    assert len(items) == 1
    assert isinstance(items[0], BadFrame)
    assert items[0].reason == reason
    assert items[0].version is None


def test_an_intact_frame_of_another_version_says_which() -> None:
    (item,) = decode(line('@M2 5 {"ok":true}'))
    assert isinstance(item, BadFrame) and item.version == 2
    # A damaged one is just damaged: noise must not look like another version.
    flipped = line('@M2 5 {"ok":true}').replace(b"ok", b"oK")
    (item,) = decode(flipped)
    assert isinstance(item, BadFrame) and item.version is None


def test_log_text_and_crlf() -> None:
    good = line('@M1 4 {"ok":true,"data":{}}')
    data = b"motekit 0.2 board=sim\r\n" + good[:-1] + b"\r\n" + b"a\rb\n" + b"\r\n"
    assert decode(data) == [
        Text("motekit 0.2 board=sim"),
        Frame(4, {"ok": True, "data": {}}),
        Text("a\rb"),
        Text(""),
    ]


def test_noise_before_a_frame_on_its_line_makes_it_text() -> None:
    # docs/protocol.md: a frame always starts a line; the host's retry recovers it.
    assert decode(b"\x00\xff" + line("@M1 5 {}")) == [
        Text("\x00\ufffd" + line("@M1 5 {}")[:-1].decode())
    ]


def test_pending_shows_a_prompt_and_close_never_makes_a_frame() -> None:
    dec = Decoder()
    assert dec.feed(b"6 * 7\r\n42\r\n>>> ") == [Text("6 * 7"), Text("42")]
    assert dec.pending == b">>> "
    dec2 = Decoder()
    assert dec2.feed(line("@M1 5 {}")[:-1]) == []
    assert dec2.close() == [BadFrame("truncated", line("@M1 5 {}")[:-1])]
    assert dec2.close() == []
    assert dec2.feed(b"") == []


# ---- line length -----------------------------------------------------------------------------


def sized_frame(total: int) -> bytes:
    """A valid frame line of exactly `total` bytes, newline included."""
    pad = total - len(line('@M1 9 {"p":""}'))
    out = line('@M1 9 {"p":"' + "x" * pad + '"}')
    assert len(out) == total
    return out


@pytest.mark.parametrize("limit", [MAX_TO_NODE, MAX_FROM_NODE])
@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_overlong_lines_are_refused_whole(limit: int, chunk: int) -> None:
    at_limit, over = sized_frame(limit), sized_frame(limit + 1)
    after = line("@M1 10 {}")
    data = at_limit + over + b"t" * (limit * 3) + b"\n" + after
    dec = Decoder(max_line=limit)
    items: list[Item] = []
    longest = 0
    for i in range(0, len(data), chunk):
        items += dec.feed(data[i : i + chunk])
        longest = max(longest, len(dec.pending))
    items += dec.close()
    assert len(items) == 4
    assert isinstance(items[0], Frame) and items[0].id == 9
    assert isinstance(items[1], BadFrame) and items[1].reason == "too long"
    assert isinstance(items[2], Text) and items[2].text.endswith("[...]")
    assert items[3] == Frame(10, {})
    assert longest < limit  # the decoder never holds an overlong line


# ---- properties ------------------------------------------------------------------------------


@given(fid=frame_ids, obj=json_objects)
def test_round_trip(fid: int, obj: dict[str, Any]) -> None:
    data = encode(fid, obj)
    assume(len(data) <= MAX_FROM_NODE)
    assert data.isascii() and data.count(b"\n") == 1
    assert decode(data) == [Frame(fid, obj)]
    assert decode(data[:-1] + b"\r\n") == [Frame(fid, obj)]


@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_garbage_never_raises_nor_makes_a_frame(data: bytes, cuts: list[int]) -> None:
    dec = Decoder(max_line=512)
    items: list[Item] = []
    prev = 0
    for cut in sorted(cuts) + [len(data)]:
        items += dec.feed(data[prev:cut])
        prev = max(prev, cut)
    items += dec.close()
    assert all(isinstance(i, Text | BadFrame) for i in items)
    # However the bytes are cut into reads, the lines are the same.
    assert items == decode(data, max_line=512)


@given(fid=frame_ids, obj=json_objects)
def test_truncation_at_every_position(fid: int, obj: dict[str, Any]) -> None:
    data = encode(fid, obj)
    assume(len(data) <= MAX_FROM_NODE)
    nxt = encode(fid % 65535 + 1, {"next": True})
    for k in range(len(data) - 1):  # data[:-1] is the whole line without its newline
        cut = data[:k]
        assert frames(decode(cut)) == []
        # A cut line, then the stream goes on: the next frame is recovered.
        assert frames(decode(cut + b"\n" + nxt)) == [Frame(fid % 65535 + 1, {"next": True})]
        tail = data[k + 1 :]  # started listening mid-frame
        assert frames(decode(tail)) == []


@settings(max_examples=40)
@given(fid=frame_ids, obj=json_objects)
def test_single_bit_flips_never_make_a_wrong_frame(fid: int, obj: dict[str, Any]) -> None:
    data = encode(fid, obj)
    assume(len(data) <= 600)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            items = decode(bytes(flipped))
            assert frames(items) == [], (i, bit, bytes(flipped))
            assert all(isinstance(x, Text | BadFrame) for x in items)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("frame"), frame_ids, json_objects),
            st.tuples(
                st.just("noise"), st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))
            ),
        ),
        max_size=12,
    ),
    st.integers(1, 64),
)
def test_frames_among_garbage_lines_are_all_recovered(
    parts: list[tuple[Any, ...]], chunk: int
) -> None:
    data = b""
    want = []
    for part in parts:
        if part[0] == "frame":
            enc = encode(part[1], part[2])
            assume(len(enc) <= MAX_FROM_NODE)
            data += enc
            want.append(Frame(part[1], part[2]))
        else:
            data += part[1] + b"\n"
    dec = Decoder()
    items: list[Item] = []
    for i in range(0, len(data), chunk):
        items += dec.feed(data[i : i + chunk])
    items += dec.close()
    assert frames(items) == want
    assert len(items) == len(parts)


def test_parse_line_takes_one_line_without_newline() -> None:
    assert parse_line(line("@M1 1 {}")[:-1]) == Frame(1, {})
    assert parse_line(b"hello\r") == Text("hello")
    assert json.loads(encode(1, {"k": "v"}).split(b" ", 2)[2].rsplit(b" ", 1)[0]) == {"k": "v"}
