# BTHome v2 advertisements (https://bthome.io/format/, docs/bthome.md): the readings of a report
# as BTHome objects, split over as many legacy advertisements (31 bytes of AdvData) as they need.
# Pure functions: the uplink (up_bthome.py) adds the packet id, the encryption and the radio.
#
#   from motekit import bthome
#   objs = bthome.objects({"sht4x.temperature": 21.4, "sht4x.humidity": 48.2}, 87)
#   for group in bthome.split(objs, bthome.ROOM_PLAIN):
#       adv = bthome.advert(bthome.INFO_V2, bthome.payload(pid, group))  # <= 31 bytes
from micropython import const

# Device information byte (bthome.io/format, "BTHome Device Information").
INFO_ENCRYPTED = const(0x01)  # bit 0: the payload is AES-CCM encrypted
INFO_TRIGGER = const(0x04)  # bit 2: sends at irregular intervals (a sleepy device)
INFO_V2 = const(0x40)  # bits 5-7: BTHome version 2

ADV_MAX = const(31)  # legacy AdvData (Bluetooth Core 5.x, Vol 6, Part B, 2.3.1.3)
# Flags AD (3 bytes) and the service data AD's length, type 0x16, UUID 0xFCD2, device info (5):
ROOM_PLAIN = const(23)  # payload bytes left in one advertisement: objects, packet id included
ROOM_ENCRYPTED = const(15)  # less the 4-byte counter and the 4-byte MIC

_FLAGS = b"\x02\x01\x06"  # LE General Discoverable, BR/EDR not supported
_AD_SERVICE_DATA = const(0x16)  # Service Data - 16-bit UUID
_UUID_LE = b"\xd2\xfc"  # 0xFCD2, BTHome's UUID, little-endian
_PACKET_ID = const(0x00)  # uint8
_BATTERY = const(0x01)  # uint8, %

# Our quantities and their objects: per quantity 4 bytes, object id, size in bytes, signed,
# decimal places (the value on air is value * 10**places). bthome.io/format's object table:
#   temperature 0x02 sint16 0.01 °C     humidity 0x03 uint16 0.01 %    pressure 0x04 uint24 0.01 hPa
#   co2 0x12 uint16 1 ppm               voltage 0x0C uint16 0.001 V    current 0x5D sint16 0.001 A
#   power 0x0B uint24 0.01 W            moisture 0x14 uint16 0.01 %
# current is the signed object (0x5D; 0x43 is unsigned): the INA219 measures both directions.
QUANTITIES = (
    "temperature",
    "humidity",
    "pressure",
    "co2",
    "voltage",
    "current",
    "power",
    "moisture",
)
_SPECS = (
    b"\x02\x02\x01\x02"
    b"\x03\x02\x00\x02"
    b"\x04\x03\x00\x02"
    b"\x12\x02\x00\x00"
    b"\x0c\x02\x00\x03"
    b"\x5d\x02\x01\x03"
    b"\x0b\x03\x00\x02"
    b"\x14\x02\x00\x02"
)
_SCALE = (1, 10, 100, 1000)

# Battery %: a 1-cell Li-ion/LiPo's resting voltage, piecewise linear between these points
# (docs/bthome.md). Voltages as (V - 3.00) in 10 mV steps.
_CELL_V = b"\x1e\x3d\x45\x49\x4d\x50\x54\x57\x5f\x66\x6f\x78"  # 3.30 3.61 3.69 ... 4.20 V
_CELL_PCT = b"\x00\x05\x0a\x14\x1e\x28\x32\x3c\x46\x50\x5a\x64"  # 0 5 10 20 ... 100 %


def spec(quantity):
    # -> (object id, size, signed, decimal places), or None for a quantity BTHome is not given.
    try:
        i = 4 * QUANTITIES.index(quantity)
    except ValueError:
        return None
    return _SPECS[i], _SPECS[i + 1], bool(_SPECS[i + 2]), _SPECS[i + 3]


def battery_percent(volts):
    # -> 0..100 from the cell voltage.
    x = (volts - 3.0) * 100
    v, p = _CELL_V, _CELL_PCT
    if x <= v[0]:
        return 0
    for i in range(1, len(v)):
        if x <= v[i]:
            return round(p[i - 1] + (p[i] - p[i - 1]) * (x - v[i - 1]) / (v[i] - v[i - 1]))
    return 100


def _object(oid, size, signed, raw):
    # One object: its id, then the value little-endian in `size` bytes, clamped to fit.
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    raw = lo if raw < lo else hi if raw > hi else round(raw)
    raw &= (1 << bits) - 1
    out = bytearray(size + 1)
    out[0] = oid
    for i in range(size):
        out[1 + i] = (raw >> (8 * i)) & 0xFF
    return bytes(out)


def objects(values, battery_pct=None):
    # The objects for {channel: value} ("<sensor id>.<quantity>"), and battery % if given, in
    # the order the spec requires (by object id), and among several sensors of one quantity by
    # channel name, so each keeps its place from report to report. Channels of other quantities
    # and values that are not numbers are left out.
    items = []
    if battery_pct is not None:
        items.append((_BATTERY, "", _object(_BATTERY, 1, False, battery_pct)))
    for ch, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            continue
        s = spec(ch[ch.rfind(".") + 1 :])
        if s is not None:
            items.append((s[0], ch, _object(s[0], s[1], s[2], v * _SCALE[s[3]])))
    items.sort()
    return [it[2] for it in items]


def split(objs, room):
    # Group the objects (sorted, as objects() returns them) into advertisements of at most
    # `room` payload bytes each, two of them kept for the packet id. The objects sharing an id
    # stay in one advertisement when they fit in one: Home Assistant numbers repeated objects
    # within an advertisement (temperature_1, temperature_2), so splitting them would rename.
    cap = room - 2
    groups = []
    cur = []  # type: list
    used = 0
    i = 0
    n = len(objs)
    while i < n:
        j = i
        run = 0
        while j < n and objs[j][0] == objs[i][0]:
            run += len(objs[j])
            j += 1
        if cur and used + run > cap and run <= cap:
            groups.append(cur)
            cur = []
            used = 0
        for k in range(i, j):
            if used + len(objs[k]) > cap:  # a run longer than an advertisement
                groups.append(cur)
                cur = []
                used = 0
            cur.append(objs[k])
            used += len(objs[k])
        i = j
    if cur:
        groups.append(cur)
    return groups


def payload(pid, objs):
    # The service data after the device information byte: the packet id object, then objs.
    return bytes((_PACKET_ID, pid & 0xFF)) + b"".join(objs)


def advert(info, data):
    # The AdvData: Flags, then Service Data (16-bit UUID 0xFCD2) with device info and data.
    n = len(_FLAGS) + 5 + len(data)
    if n > ADV_MAX:
        raise ValueError("BTHome advertisement of %d bytes, the limit is %d" % (n, ADV_MAX))
    return _FLAGS + bytes((len(data) + 4, _AD_SERVICE_DATA)) + _UUID_LE + bytes((info,)) + data


def nonce(mac, info, counter):
    # The AES-CCM nonce (bthome.io/encryption): MAC (6 bytes, as the address reads) | UUID
    # (d2 fc) | device info | counter (4 bytes, little-endian).
    return bytes(mac) + _UUID_LE + bytes((info,)) + counter
