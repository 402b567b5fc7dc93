"""BTHome v2 on the host: find it in BLE advertising data, decrypt it, decode its objects.

Follows the BTHome v2 format (https://bthome.io/format/: device information byte, object ids
and their scaling) and its encryption scheme (https://bthome.io/encryption/: AES-CCM with a
4-byte MIC, nonce = MAC | UUID | device info | counter). The object table is the spec's,
as Home Assistant's bthome-ble 3.25 parser implements it (the test oracle).

    adv = decode_adv("54:48:E6:8F:80:A5", adv_data, bind_key=key)  # None: not BTHome
    if adv.error is None:
        print(adv.packet_id, adv.values)       # {"temperature": 25.06, "humidity": 50.55}

Nothing here raises for what is on the air: a wrong bind key, a MIC mismatch, a truncated or
malformed advert come back as `error` (nothing could be decoded) or `warnings` (part was).
Names in `values`: Motekit's quantities where BTHome has one (temperature, humidity, pressure,
co2, voltage, current, power, moisture, battery), BTHome's property names otherwise; a quantity
sent more than once is "temperature", "temperature_2", ... in the order of the advert.
"""

import dataclasses
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

UUID16: Final = 0xFCD2  # BTHome's 16-bit service UUID (sponsored by Allterco)
UUID_LE: Final = b"\xd2\xfc"  # ... as it appears on air and in the nonce

# AD types (Bluetooth Assigned Numbers, 2.3 "Common Data Types").
AD_FLAGS: Final = 0x01
AD_SHORT_NAME: Final = 0x08
AD_COMPLETE_NAME: Final = 0x09
AD_SERVICE_DATA_16: Final = 0x16

# Device information byte (format page, "BTHome Device Information").
INFO_ENCRYPTED: Final = 0x01  # bit 0
INFO_TRIGGER_BASED: Final = 0x04  # bit 2
VERSION_SHIFT: Final = 5  # bits 5-7
VERSION: Final = 2
MIC_LEN: Final = 4
COUNTER_LEN: Final = 4
KEY_LEN: Final = 16

Number = int | float
Value = int | float | str


@dataclass(frozen=True)
class ObjectSpec:
    """One row of the spec's object table: how an object id's bytes become a value."""

    name: str  # the key in BTHomeAdvert.values (or of the object, for non-numbers)
    kind: str  # "number", "binary", "event", "text", "raw", "command", "firmware", "packet_id"
    size: int = 1  # bytes after the id (variable-length kinds: 0, a length byte follows)
    signed: bool = False
    factor: str = "1"  # decimal text, so that 2506 * 0.01 is 25.06 and not 25.060000000000002
    unit: str = ""


def _n(name: str, size: int, factor: str = "1", unit: str = "", signed: bool = False) -> ObjectSpec:
    return ObjectSpec(name, "number", size, signed, factor, unit)


def _b(name: str) -> ObjectSpec:
    return ObjectSpec(name, "binary")


# The spec's object ids (format page: "Sensor data", "Binary Sensor data", "Events", "Device
# information", "Misc data"). Binary sensors that share a property name with a number get the
# state their 1 means (battery_low, power_on, gas_detected, moisture_wet), and a property sent in
# two units says which (mass_kg / mass_lb, distance_mm / distance_m, volume / volume_ml).
OBJECTS: Final[dict[int, ObjectSpec]] = {
    0x00: ObjectSpec("packet_id", "packet_id"),
    0x01: _n("battery", 1, unit="%"),
    0x02: _n("temperature", 2, "0.01", "°C", signed=True),
    0x03: _n("humidity", 2, "0.01", "%"),
    0x04: _n("pressure", 3, "0.01", "hPa"),
    0x05: _n("illuminance", 3, "0.01", "lx"),
    0x06: _n("mass_kg", 2, "0.01", "kg"),
    0x07: _n("mass_lb", 2, "0.01", "lb"),
    0x08: _n("dewpoint", 2, "0.01", "°C", signed=True),
    0x09: _n("count", 1),
    0x0A: _n("energy", 3, "0.001", "kWh"),
    0x0B: _n("power", 3, "0.01", "W"),
    0x0C: _n("voltage", 2, "0.001", "V"),
    0x0D: _n("pm25", 2, unit="µg/m³"),
    0x0E: _n("pm10", 2, unit="µg/m³"),
    0x0F: _b("generic_boolean"),
    0x10: _b("power_on"),
    0x11: _b("opening"),
    0x12: _n("co2", 2, unit="ppm"),
    0x13: _n("tvoc", 2, unit="µg/m³"),
    0x14: _n("moisture", 2, "0.01", "%"),
    0x15: _b("battery_low"),
    0x16: _b("battery_charging"),
    0x17: _b("carbon_monoxide"),
    0x18: _b("cold"),
    0x19: _b("connectivity"),
    0x1A: _b("door"),
    0x1B: _b("garage_door"),
    0x1C: _b("gas_detected"),
    0x1D: _b("heat"),
    0x1E: _b("light"),
    0x1F: _b("lock"),
    0x20: _b("moisture_wet"),
    0x21: _b("motion"),
    0x22: _b("moving"),
    0x23: _b("occupancy"),
    0x24: _b("plug"),
    0x25: _b("presence"),
    0x26: _b("problem"),
    0x27: _b("running"),
    0x28: _b("safety"),
    0x29: _b("smoke"),
    0x2A: _b("sound"),
    0x2B: _b("tamper"),
    0x2C: _b("vibration"),
    0x2D: _b("window"),
    0x2E: _n("humidity", 1, unit="%"),
    0x2F: _n("moisture", 1, unit="%"),
    0x3A: ObjectSpec("button", "event", 1),
    0x3B: ObjectSpec("command", "command", 0),
    0x3C: ObjectSpec("dimmer", "event", 2),
    0x3D: _n("count", 2),
    0x3E: _n("count", 4),
    0x3F: _n("rotation", 2, "0.1", "°", signed=True),
    0x40: _n("distance_mm", 2, unit="mm"),
    0x41: _n("distance_m", 2, "0.1", "m"),
    0x42: _n("duration", 3, "0.001", "s"),
    0x43: _n("current", 2, "0.001", "A"),
    0x44: _n("speed", 2, "0.01", "m/s"),
    0x45: _n("temperature", 2, "0.1", "°C", signed=True),
    0x46: _n("uv_index", 1, "0.1"),
    0x47: _n("volume", 2, "0.1", "L"),
    0x48: _n("volume_ml", 2, unit="mL"),
    0x49: _n("volume_flow_rate", 2, "0.001", "m³/h"),
    0x4A: _n("voltage", 2, "0.1", "V"),
    0x4B: _n("gas", 3, "0.001", "m³"),
    0x4C: _n("gas", 4, "0.001", "m³"),
    0x4D: _n("energy", 4, "0.001", "kWh"),
    0x4E: _n("volume", 4, "0.001", "L"),
    0x4F: _n("water", 4, "0.001", "L"),
    0x50: _n("timestamp", 4, unit="s"),  # seconds since 1970-01-01 UTC
    0x51: _n("acceleration", 2, "0.001", "m/s²"),
    0x52: _n("gyroscope", 2, "0.001", "°/s"),
    0x53: ObjectSpec("text", "text", 0),
    0x54: ObjectSpec("raw", "raw", 0),
    0x55: _n("volume_storage", 4, "0.001", "L"),
    0x56: _n("conductivity", 2, unit="µS/cm"),
    0x57: _n("temperature", 1, unit="°C", signed=True),
    0x58: _n("temperature", 1, "0.35", "°C", signed=True),
    0x59: _n("count", 1, signed=True),
    0x5A: _n("count", 2, signed=True),
    0x5B: _n("count", 4, signed=True),
    0x5C: _n("power", 4, "0.01", "W", signed=True),
    0x5D: _n("current", 2, "0.001", "A", signed=True),
    0x5E: _n("direction", 2, "0.01", "°"),
    0x5F: _n("precipitation", 2, "0.1", "mm"),
    0x60: _n("channel", 1),
    0x61: _n("rotational_speed", 2, unit="rpm"),
    0x62: _n("speed", 4, "0.000001", "m/s", signed=True),
    0x63: _n("acceleration", 4, "0.000001", "m/s²", signed=True),
    0x64: _n("light_level", 1),
    0x65: _n("settings_revision", 1),
    0xF0: _n("device_type_id", 2),
    0xF1: ObjectSpec("firmware_version", "firmware", 4),
    0xF2: ObjectSpec("firmware_version", "firmware", 3),
}

BUTTON_EVENTS: Final = {
    0x00: "none",
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
    0x81: "hold_release",
}
DIMMER_EVENTS: Final = {0x00: "none", 0x01: "rotate_left", 0x02: "rotate_right"}
COMMAND_EVENTS: Final = {
    0x00: "off",
    0x01: "on",
    0x02: "toggle",
    0x03: "step_up",
    0x04: "step_down",
}
_COMMAND_ARGS_MASK: Final = 0x1F  # 0x3B's length byte: low 5 bits count the argument bytes


@dataclass(frozen=True)
class BTHomeObject:
    """One decoded object: its id, BTHome value (a number, or text for events, text, raw, and
    firmware versions), unit and the bytes it came from."""

    object_id: int
    name: str
    value: Value
    unit: str
    data: bytes

    def to_json(self) -> dict[str, Any]:
        return {"id": self.object_id, "name": self.name, "value": self.value, "unit": self.unit}


@dataclass(frozen=True)
class BTHomeAdvert:
    """What one advert carried. `error` says why nothing could be decoded (values empty);
    `warnings` say what part was left undecoded (an unknown object id, a truncated object)."""

    address: str
    service_data: bytes  # the bytes after the UUID: device info, objects or ciphertext, ...
    encrypted: bool = False
    trigger_based: bool = False
    version: int | None = None
    packet_id: int | None = None
    counter: int | None = None  # encrypted adverts' replay counter
    values: dict[str, Number] = field(default_factory=dict)
    objects: tuple[BTHomeObject, ...] = ()
    name: str | None = None  # the local name from the same advertising data, if any
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one advert (the fields `mote scan --json` prints)."""
        return {
            "address": self.address,
            "name": self.name,
            "service_data": self.service_data.hex(),
            "encrypted": self.encrypted,
            "trigger_based": self.trigger_based,
            "packet_id": self.packet_id,
            "counter": self.counter,
            "values": dict(self.values),
            "objects": [o.to_json() for o in self.objects],
            "error": self.error,
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# Advertising data


def parse_ad(data: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
    """The AD structures of legacy advertising data (Core 5.x Vol 3 Part C, 11): [(type,
    data)], and what is wrong with the rest, if anything. A zero length byte ends the
    significant part (what follows is padding). A structure cut short is left out."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        length = data[i]
        if length == 0:
            break
        if i + 1 + length > len(data):
            return out, (
                f"AD structure at byte {i} says {length} bytes, only {len(data) - i - 1} follow"
            )
        out.append((data[i + 1], bytes(data[i + 2 : i + 1 + length])))
        i += 1 + length
    return out, None


def find_service_data(data: bytes, uuid16: int = UUID16) -> bytes | None:
    """The service data of `uuid16` in advertising data (the bytes after the UUID), or None."""
    return _service_body(parse_ad(data)[0], uuid16)


def _service_body(elements: list[tuple[int, bytes]], uuid16: int) -> bytes | None:
    for ad_type, body in elements:
        if ad_type == AD_SERVICE_DATA_16 and len(body) >= 2 and body[0] | body[1] << 8 == uuid16:
            return body[2:]
    return None


def decode_adv(address: str, data: bytes, bind_key: bytes | None = None) -> BTHomeAdvert | None:
    """Decode the BTHome service data in the advertising data `data` sent by `address`
    ("AA:BB:CC:DD:EE:FF"); None when there is none. `bind_key` decrypts encrypted adverts."""
    elements, problem = parse_ad(data)
    names = {t: body for t, body in elements if t in (AD_SHORT_NAME, AD_COMPLETE_NAME)}
    raw_name = names.get(AD_COMPLETE_NAME, names.get(AD_SHORT_NAME))
    name = None if raw_name is None else raw_name.decode("utf-8", errors="replace")
    body = _service_body(elements, UUID16)
    if body is not None:
        adv = decode_service_data(address, body, bind_key)
        if problem:
            adv = _with(adv, warnings=(*adv.warnings, f"advertising data damaged: {problem}"))
        return _with(adv, name=name)
    if problem and _cut_service_data(data):
        # The BTHome element itself is the one cut short: say so rather than ignore it.
        return BTHomeAdvert(
            address.upper(),
            b"",
            name=name,
            error=f"advertising data truncated: {problem}",
        )
    return None


def _cut_service_data(data: bytes) -> bool:
    # Is the structure that runs past the end a BTHome service data element?
    i = 0
    while i < len(data) and data[i]:
        if i + 1 + data[i] > len(data):
            tail = data[i + 1 : i + 4]
            return len(tail) == 3 and tail[0] == AD_SERVICE_DATA_16 and tail[1:] == UUID_LE
        i += 1 + data[i]
    return False


def _with(adv: BTHomeAdvert, **changes: Any) -> BTHomeAdvert:
    return dataclasses.replace(adv, **changes)


# ---------------------------------------------------------------------------------------------
# Service data


def mac_bytes(address: str) -> bytes:
    """ "AA:BB:CC:DD:EE:FF" (or with '-', or bare hex) -> 6 bytes in the order written, the order
    the BTHome nonce uses. ValueError if it is not a MAC address."""
    raw = bytes.fromhex(address.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"{address!r} is not a 6-byte Bluetooth address")
    return raw


def nonce(address: str, device_info: int, counter: int) -> bytes:
    """The 13-byte AES-CCM nonce: MAC | UUID (d2 fc) | device info | counter (4 bytes LE)."""
    return mac_bytes(address) + UUID_LE + bytes([device_info]) + struct.pack("<I", counter)


def decode_service_data(
    address: str, service_data: bytes, bind_key: bytes | None = None
) -> BTHomeAdvert:
    """Decode BTHome service data (the bytes after the UUID) sent by `address`."""
    if bind_key is not None and len(bind_key) != KEY_LEN:
        raise ValueError(f"a bind key is {KEY_LEN} bytes, not {len(bind_key)}")
    address = address.upper()
    service_data = bytes(service_data)
    adv = BTHomeAdvert(address, service_data)
    if not service_data:
        return _with(adv, error="no BTHome device information byte")
    info = service_data[0]
    version = info >> VERSION_SHIFT
    adv = _with(
        adv,
        encrypted=bool(info & INFO_ENCRYPTED),
        trigger_based=bool(info & INFO_TRIGGER_BASED),
        version=version,
    )
    if version != VERSION:
        return _with(adv, error=f"BTHome version {version} is not supported (only version 2)")
    payload = service_data[1:]
    if adv.encrypted:
        if len(payload) < COUNTER_LEN + MIC_LEN:
            return _with(
                adv,
                error=f"encrypted service data too short ({len(service_data)} bytes; the counter "
                "and MIC alone take 8 after the device information byte)",
            )
        counter = struct.unpack_from("<I", payload, len(payload) - COUNTER_LEN - MIC_LEN)[0]
        adv = _with(adv, counter=counter)
        if bind_key is None:
            return _with(adv, error=f"encrypted, and no bind key is known for {address}")
        try:
            iv = nonce(address, info, counter)
        except ValueError:
            return _with(adv, error=f"cannot decrypt: {address!r} is not a Bluetooth MAC address")
        ccm = AESCCM(bind_key, tag_length=MIC_LEN)
        ciphertext, mic = payload[: -COUNTER_LEN - MIC_LEN], payload[-MIC_LEN:]
        try:
            payload = ccm.decrypt(iv, ciphertext + mic, None)
        except InvalidTag:
            return _with(
                adv, error="decryption failed: wrong bind key, or the advert was altered (MIC)"
            )
    objects, warnings = decode_objects(payload)
    packet_id = next((int(o.value) for o in objects if o.object_id == 0x00), None)
    return _with(
        adv,
        packet_id=packet_id,
        values=values_of(objects),
        objects=tuple(objects),
        warnings=tuple(warnings),
    )


def decode_objects(payload: bytes) -> tuple[list[BTHomeObject], list[str]]:
    """The objects of a (decrypted) BTHome payload, and what could not be decoded.

    Decoding stops at an unknown object id (its length, and so where the next object starts,
    is unknown) and at an object cut short, each with a warning saying so.
    """
    objects: list[BTHomeObject] = []
    warnings: list[str] = []
    i, previous = 0, -1
    while i < len(payload):
        oid = payload[i]
        spec = OBJECTS.get(oid)
        if spec is None:
            warnings.append(
                f"unknown object id 0x{oid:02X} at byte {i}: the {len(payload) - i} bytes from "
                "there were not decoded"
            )
            break
        if oid < previous:
            warnings.append(f"object ids out of order: 0x{oid:02X} after 0x{previous:02X}")
        previous = oid
        start, size = i + 1, spec.size
        if spec.size == 0:  # text, raw, command: a length byte first
            if start >= len(payload):
                warnings.append(f"object 0x{oid:02X} ({spec.name}) lacks its length byte")
                break
            length = payload[start]
            size = 1 + (length & _COMMAND_ARGS_MASK) if spec.kind == "command" else length
            start += 1
        data = payload[start : start + size]
        if len(data) < size:
            warnings.append(
                f"object 0x{oid:02X} ({spec.name}) truncated: needs {size} bytes, {len(data)} left"
            )
            break
        objects.append(BTHomeObject(oid, spec.name, _value(spec, data), spec.unit, data))
        i = start + size
    return objects, warnings


def _value(spec: ObjectSpec, data: bytes) -> Value:
    if spec.kind in ("number", "packet_id"):
        raw = int.from_bytes(data, "little", signed=spec.signed)
        if spec.factor == "1":
            return raw
        return float(raw * Decimal(spec.factor))
    if spec.kind == "binary":
        return 1 if data[0] else 0
    if spec.kind == "event":  # button: the event; dimmer: the event and its steps
        events = BUTTON_EVENTS if spec.name == "button" else DIMMER_EVENTS
        event = events.get(data[0], f"0x{data[0]:02X}")
        return f"{event} {data[1]}" if spec.name == "dimmer" and data[0] else event
    if spec.kind == "command":  # the command, then its arguments in hex
        command = COMMAND_EVENTS.get(data[0], f"0x{data[0]:02X}")
        return f"{command} {data[1:].hex()}" if len(data) > 1 else command
    if spec.kind == "text":
        return data.decode("utf-8", errors="replace")
    if spec.kind == "firmware":  # least significant part first: 00 01 02 04 is 4.2.1.0
        return ".".join(str(b) for b in reversed(data))
    return data.hex()  # raw


def values_of(objects: list[BTHomeObject]) -> dict[str, Number]:
    """{name: number} of the objects that carry a number (sensors, binary sensors), a repeated
    name numbered from its second time: temperature, temperature_2, ... The packet id, events,
    text, raw data and firmware versions are left to the objects list."""
    values: dict[str, Number] = {}
    seen: dict[str, int] = {}
    for obj in objects:
        if OBJECTS[obj.object_id].kind not in ("number", "binary"):
            continue
        assert isinstance(obj.value, int | float)
        n = seen[obj.name] = seen.get(obj.name, 0) + 1
        values[obj.name if n == 1 else f"{obj.name}_{n}"] = obj.value
    return values


# ---------------------------------------------------------------------------------------------
# Building adverts (tests, tools that play a node)


def build_service_data(
    payload: bytes,
    *,
    address: str | None = None,
    bind_key: bytes | None = None,
    counter: int = 0,
    trigger_based: bool = False,
) -> bytes:
    """BTHome service data (after the UUID) for an object payload, encrypted when `bind_key`
    is given (then `address` and `counter` make the nonce)."""
    info = VERSION << VERSION_SHIFT | (INFO_TRIGGER_BASED if trigger_based else 0)
    if bind_key is None:
        return bytes([info]) + payload
    if address is None:
        raise ValueError("an encrypted advert needs the sender's address (it is in the nonce)")
    info |= INFO_ENCRYPTED
    sealed = AESCCM(bind_key, tag_length=MIC_LEN).encrypt(
        nonce(address, info, counter), payload, None
    )
    return bytes([info]) + sealed[:-MIC_LEN] + struct.pack("<I", counter) + sealed[-MIC_LEN:]


def build_adv_data(service: bytes, *, name: str | None = None, flags: int | None = 0x06) -> bytes:
    """Legacy advertising data: Flags (LE General Discoverable, BR/EDR not supported), the
    BTHome service data element, and a complete local name when given."""
    out = b""
    if flags is not None:
        out += bytes([2, AD_FLAGS, flags])
    out += bytes([len(service) + 3, AD_SERVICE_DATA_16]) + UUID_LE + service
    if name:
        raw = name.encode()
        out += bytes([len(raw) + 1, AD_COMPLETE_NAME]) + raw
    return out
