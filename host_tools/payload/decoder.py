"""Decode Motekit report frames (docs/payload.md) on the host, and merge the frames of a report.

    frame = decode(1, bytes.fromhex("46030e74fe661192"))
    # {"version": 1, "seq": 6, "seq_mod": 64, "part": 0, "more": False, "incomplete": False,
    #  "battery_v": 3.7, "faults": [],
    #  "samples": [{"t": 0, "values": {"battery.voltage": 3.7, "sht4x.temperature": -4.1,
    #                                  "sht4x.humidity": 44.98}}]}
    decode(1, data, sensors=cfg["sensors"])   # the node's own sensor ids in channel names
    report = merge([decode(1, f) for f in frames])   # one report from its parts

The generated decodeUplink.js gives the same dict as `data` (tests/host/test_payload.py holds
them to it). A malformed frame raises ProtocolError (err "bad_payload") with one line saying what
is wrong at which byte.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from host_tools.errors import ProtocolError
from host_tools.payload import definition as d

Sensors = Sequence[dict[str, Any]] | None


def _fail(message: str) -> ProtocolError:
    return ProtocolError(message, hint="see docs/payload.md", err="bad_payload")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def u8(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise _fail(f"frame ends at byte {self.pos}, before {what}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self, width: int, what: str) -> int:
        n = 0
        for _ in range(width):
            n = n << 8 | self.u8(what)
        return n

    def varint(self, what: str) -> int:
        n = 0
        for i in range(4):
            b = self.u8(what)
            n |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                return n
        raise _fail(f"time offset longer than 4 bytes at byte {self.pos - 1}")


def sensor_name(key: int, sensors: Sensors = None) -> str:
    """The name of sensor `key` (kind << 3 | instance): its id in `sensors` (the config list),
    else the kind for instance 0 and "<kind>_<n>" for the n-th of a kind."""
    kind = d.KIND_BY_CODE[key >> 3].name
    inst = key & 7
    if sensors is not None:
        seen = 0
        for e in sensors:
            if e.get("kind") == kind:
                if seen == inst:
                    return str(e.get("id") or kind)
                seen += 1
    return kind if inst == 0 else f"{kind}_{inst + 1}"


def _descriptors(r: _Reader, what: str) -> list[int]:
    keys = []
    while True:
        b = r.u8(what)
        key = b >> 1
        if key >> 3 not in d.KIND_BY_CODE:
            raise _fail(f"unknown sensor kind {key >> 3} at byte {r.pos - 1}")
        keys.append(key)
        if b & 1:
            return keys


def _value(r: _Reader, q: d.Quantity, what: str) -> float | int | None:
    raw = r.uint(q.width, what)
    if raw == q.reserved:
        return None
    if q.signed and raw >= 1 << (8 * q.width - 1):
        raw -= 1 << (8 * q.width)
    return raw if q.decimals == 0 else raw / 10**q.decimals


def _iso(t: datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def decode(
    fport: int, data: bytes, sensors: Sensors = None, recv_time: datetime | None = None
) -> dict[str, Any]:
    """One frame -> {"version", "seq", "seq_mod", "part", "more", "incomplete", "samples"} and,
    in part 0,
    "battery_v" and "faults". Samples are oldest first, each {"t": seconds relative to the
    report's newest sample (0 or negative), "values": {channel: number}} plus "missing",
    "uncal", "out_of_range" when not empty, and "time" (ISO 8601, UTC) when `recv_time` (the
    uplink's reception time; naive means UTC) is given."""
    if not 1 <= fport <= 223:
        raise _fail(f"FPort {fport} carries no report (reports use FPort 1..223)")
    data = bytes(data)
    r = _Reader(data)
    b0 = r.u8("the header")
    form = b0 >> 6
    if form == d.SHORT:  # one sensor, no flags: its kind and the seq modulo 8 in byte 0
        seq_bits = d.SHORT_SEQ_BITS
        kind = b0 >> seq_bits & ((1 << (6 - seq_bits)) - 1)
        if kind >= d.BITMAP_KINDS:
            raise _fail(f"short frame of sensor kind {kind}: only kinds 0..6 have one")
        b1 = 1 << kind
    elif form == d.VERSION:
        seq_bits = d.SEQ_BITS
        b1 = r.u8("the sensor bitmap")
    else:
        raise _fail(f"payload format version {form}: this decoder reads version {d.VERSION}")
    flags = r.u8("the flags") if b1 & d.HAS_FLAGS else 0
    if flags & d.F_RESERVED:
        raise _fail("reserved flag bit set: a newer payload format?")
    part, more = 0, False
    if flags & d.F_PART:
        p = r.u8("the part byte")
        part, more = p & d.PART_MAX, bool(p & d.PART_MORE)
    keys = [k << 3 for k in range(d.BITMAP_KINDS) if b1 >> k & 1]
    for k in _descriptors(r, "the sensor descriptors") if flags & d.F_DESCRIPTORS else []:
        if k in keys:
            raise _fail(f"sensor {sensor_name(k)} listed twice")
        keys.append(k)
    keys.sort()
    names = {k: sensor_name(k, sensors) for k in keys}
    channels = [
        (k, f"{names[k]}.{qn}", d.QUANTITY[qn])
        for k in keys
        for qn in d.KIND_BY_CODE[k >> 3].quantities
    ]
    out: dict[str, Any] = {
        "version": d.VERSION,
        "seq": b0 & ((1 << seq_bits) - 1),
        "seq_mod": 1 << seq_bits,
        "part": part,
        "more": more,
        "incomplete": bool(flags & d.F_INCOMPLETE),
    }
    battery: float | int | None = None
    if flags & d.F_BATTERY:
        if part:
            raise _fail("battery voltage in a part other than 0")
        battery = _value(r, d.QUANTITY[d.BATTERY_QUANTITY], "the battery voltage")
    faults = []
    if flags & d.F_FAULTS:
        if part:
            raise _fail("faults in a part other than 0")
        faults = [sensor_name(k, sensors) for k in _descriptors(r, "the faults")]
    samples: list[dict[str, Any]] = []
    offset = 0
    while not samples or r.left():
        if samples or part:
            offset += r.varint("a sample's time offset")
        n = len(channels)
        have = _bitmap(r, n, "a sample's channel bitmap") if flags & d.F_SPARSE else [True] * n
        uncal = _bitmap(r, n, "a sample's uncal bitmap") if flags & d.F_UNCAL else [False] * n
        s: dict[str, Any] = {"t": -offset, "values": {}}
        bad = []
        for i, (_k, name, q) in enumerate(channels):
            if have[i]:
                v = _value(r, q, "a value of " + name)
                if v is None:
                    bad.append(name)
                else:
                    s["values"][name] = v
        missing = [
            names[k]
            for k in keys
            if not any(h for h, c in zip(have, channels, strict=True) if c[0] == k)
        ]
        if missing:
            s["missing"] = missing
        unc = [c[1] for i, c in enumerate(channels) if uncal[i] and have[i]]
        if unc:
            s["uncal"] = unc
        if bad:
            s["out_of_range"] = bad
        if recv_time is not None:
            base = recv_time if recv_time.tzinfo else recv_time.replace(tzinfo=UTC)
            s["time"] = _iso(base - timedelta(seconds=offset))
        samples.append(s)
    if part == 0:
        if not flags & d.F_BATTERY:
            # the newest sample's battery.voltage (instance 0) says it
            battery = samples[0]["values"].get(f"{names[0]}.voltage") if 0 in names else None
        out["battery_v"] = battery
        out["faults"] = faults
    out["samples"] = samples[::-1]
    return out


def _bitmap(r: _Reader, n: int, what: str) -> list[bool]:
    # bit i (LSB first) of byte i // 8 is channel i of the frame's channel list
    raw = [r.u8(what) for _ in range((n + 7) // 8)]
    return [bool(raw[i >> 3] >> (i & 7) & 1) for i in range(n)]


def merge(frames: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The decoded frames of one report (same seq) -> one report: samples of equal "t" in
    different frames (a sample split by channel) joined, oldest first. "parts" counts the
    frames, "incomplete" is true when a part is missing or the node left values out."""
    parts = sorted(frames, key=lambda f: f["part"])
    if not parts:
        raise _fail("no frames to merge")
    seqs = {(f["version"], f["seq"]) for f in parts}
    if len(seqs) > 1:
        raise _fail(f"frames of different reports: seq {sorted(s for _, s in seqs)}")
    indexes = [f["part"] for f in parts]
    whole = indexes == list(range(len(parts))) and not parts[-1]["more"]
    out: dict[str, Any] = {
        "version": parts[0]["version"],
        "seq": parts[0]["seq"],
        "seq_mod": parts[0]["seq_mod"],
        "parts": len(parts),
        "incomplete": not whole or any(f["incomplete"] for f in parts),
        "battery_v": parts[0].get("battery_v"),
        "faults": list(parts[0].get("faults", [])),
    }
    by_t: dict[int, dict[str, Any]] = {}
    for f in parts:
        for s in f["samples"]:
            m = by_t.setdefault(s["t"], {"t": s["t"], "values": {}})
            m["values"].update(s["values"])
            for key in ("missing", "uncal", "out_of_range"):
                for x in s.get(key, []):
                    m.setdefault(key, [])
                    if x not in m[key]:
                        m[key].append(x)
            if "time" in s:
                m["time"] = s["time"]
    out["samples"] = [by_t[t] for t in sorted(by_t)]
    return out
