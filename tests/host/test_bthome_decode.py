"""The host BTHome v2 decoder (host_tools/bthome.py): the spec's own examples, every object id
cross-checked against Home Assistant's parser (bthome-ble, a dev dependency), decryption with
right and wrong keys, and adverts that are cut short or malformed.

Spec examples are from https://bthome.io/format/ (the object table's Example/Result columns and
the advertising payload walked through at the top) and https://bthome.io/encryption/.
"""

import math
import random
import struct
from datetime import datetime
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from bthome_ble import BTHomeBluetoothDeviceData
from habluetooth import BluetoothServiceInfoBleak
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.bthome import (
    OBJECTS,
    build_adv_data,
    build_service_data,
    decode_adv,
    decode_objects,
    decode_service_data,
    find_service_data,
    nonce,
    parse_ad,
)

# The encryption page's example: key, sensor MAC, counter 1122867, temperature + humidity.
SPEC_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SPEC_MAC = "54:48:E6:8F:80:A5"
SPEC_COUNTER = 1122867
SPEC_PLAIN = bytes.fromhex("02ca0903bf13")
SPEC_ENCRYPTED = bytes.fromhex("d2fc41e445f3c9962b332211006c7c4519")  # UUID + service data

ADDR = "A4:C1:38:8D:18:B2"
OTHER_KEY = bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")
BTHOME_UUID128 = "0000fcd2-0000-1000-8000-00805f9b34fb"


# --- the spec's examples -----------------------------------------------------------------------


def test_format_page_advertising_payload() -> None:
    # Flags, complete local name "DIY-sensor", service data: temperature 25.00, humidity 50.55.
    data = bytes.fromhex("020106 0B094449592D73656E736F72 0A16D2FC4002C40903BF13")
    adv = decode_adv("aa:bb:cc:dd:ee:ff", data)
    assert adv is not None
    assert adv.address == "AA:BB:CC:DD:EE:FF"
    assert adv.name == "DIY-sensor"
    assert adv.service_data == bytes.fromhex("4002C40903BF13")
    assert (adv.version, adv.encrypted, adv.trigger_based) == (2, False, False)
    assert adv.values == {"temperature": 25.0, "humidity": 50.55}
    assert adv.packet_id is None and adv.counter is None
    assert adv.error is None and adv.warnings == ()
    assert [(o.object_id, o.unit) for o in adv.objects] == [(0x02, "°C"), (0x03, "%")]


# (object bytes, value name, value) from the format page's tables.
SPEC_NUMBERS = [
    ("518756", "acceleration", 22.151),
    ("0161", "battery", 97),
    ("12E204", "co2", 1250),
    ("56E803", "conductivity", 1000),
    ("0960", "count", 96),
    ("3D0960", "count", 24585),
    ("3E2A2C0960", "count", 1611213866),
    ("59EA", "count", -22),
    ("5AEAEA", "count", -5398),
    ("5BEA0234EA", "count", -365690134),
    ("434E34", "current", 13.39),
    ("5D02EA", "current", -5.63),
    ("08CA06", "dewpoint", 17.38),
    ("400C00", "distance_mm", 12),
    ("414E00", "distance_m", 7.8),
    ("424E3400", "duration", 13.39),
    ("4d12138a14", "energy", 344593.17),
    ("0A138A14", "energy", 1346.067),
    ("4B138A14", "gas", 1346.067),
    ("4C41018A01", "gas", 25821.505),
    ("528756", "gyroscope", 22.151),
    ("03BF13", "humidity", 50.55),
    ("2E23", "humidity", 35),
    ("05138A14", "illuminance", 13460.67),
    ("065E1F", "mass_kg", 80.3),
    ("073E1D", "mass_lb", 74.86),
    ("14020C", "moisture", 30.74),
    ("2F23", "moisture", 35),
    ("0D120C", "pm25", 3090),
    ("0E021C", "pm10", 7170),
    ("0B021B00", "power", 69.14),
    ("5C02FBFFFF", "power", -12.78),
    ("04138A01", "pressure", 1008.83),
    ("3F020C", "rotation", 307.4),
    ("444E34", "speed", 133.9),
    ("57EA", "temperature", -22),
    ("58EA", "temperature", -7.7),
    ("451101", "temperature", 27.3),
    ("02CA09", "temperature", 25.06),
    ("505d396164", "timestamp", 1684093277),
    ("133301", "tvoc", 307),
    ("0C020C", "voltage", 3.074),
    ("4A020C", "voltage", 307.4),
    ("4E87562A01", "volume", 19551.879),
    ("478756", "volume", 2215.1),
    ("48DC87", "volume_ml", 34780),
    ("5587562A01", "volume_storage", 19551.879),
    ("49DC87", "volume_flow_rate", 34.78),
    ("4632", "uv_index", 5.0),
    ("4F87562A01", "water", 19551.879),
    ("5E9F8C", "direction", 359.99),
    ("F00100", "device_type_id", 1),
    # Binary sensors: a number, 0 or 1.
    ("1501", "battery_low", 1),
    ("1601", "battery_charging", 1),
    ("1700", "carbon_monoxide", 0),
    ("1A00", "door", 0),
    ("1C01", "gas_detected", 1),
    ("0F01", "generic_boolean", 1),
    ("2001", "moisture_wet", 1),
    ("2100", "motion", 0),
    ("1001", "power_on", 1),
    ("2D01", "window", 1),
]


@pytest.mark.parametrize(("hexdata", "name", "value"), SPEC_NUMBERS)
def test_spec_example_objects(hexdata: str, name: str, value: float) -> None:
    adv = decode_service_data(ADDR, b"\x40" + bytes.fromhex(hexdata))
    assert adv.error is None and adv.warnings == ()
    assert adv.values == {name: value}
    assert type(adv.values[name]) is type(value)  # factor 1: an int; otherwise a float


@pytest.mark.parametrize(
    ("hexdata", "name", "value"),
    [
        ("530C48656C6C6F20576F726C6421", "text", "Hello World!"),
        ("540C48656C6C6F20576F726C6421", "raw", "48656c6c6f20576f726c6421"),
        ("3A01", "button", "press"),
        ("3A04", "button", "long_press"),
        ("3A80", "button", "hold_press"),
        ("3C0103", "dimmer", "rotate_left 3"),
        ("3C020A", "dimmer", "rotate_right 10"),
        ("F100010204", "firmware_version", "4.2.1.0"),
        ("F2000106", "firmware_version", "6.1.0"),
    ],
)
def test_spec_example_objects_without_a_number(hexdata: str, name: str, value: str) -> None:
    adv = decode_service_data(ADDR, b"\x40" + bytes.fromhex(hexdata))
    assert adv.error is None and adv.warnings == ()
    assert [(o.name, o.value) for o in adv.objects] == [(name, value)]
    assert adv.values == {}  # not numbers: only in the objects list


def test_packet_id_is_its_own_field() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 0009 02CA09"))
    assert adv.packet_id == 9
    assert adv.values == {"temperature": 25.06}
    assert [o.object_id for o in adv.objects] == [0x00, 0x02]


def test_device_info_flags() -> None:
    trigger = decode_service_data(ADDR, bytes.fromhex("44 0161"))
    assert (trigger.trigger_based, trigger.encrypted, trigger.version) == (True, False, 2)
    assert trigger.values == {"battery": 97}


def test_encryption_page_example_decrypts() -> None:
    adv = decode_adv(SPEC_MAC, bytes([len(SPEC_ENCRYPTED) + 1, 0x16]) + SPEC_ENCRYPTED, SPEC_KEY)
    assert adv is not None and adv.error is None
    assert adv.encrypted and adv.counter == SPEC_COUNTER
    assert adv.values == {"temperature": 25.06, "humidity": 50.55}
    assert adv.service_data == SPEC_ENCRYPTED[2:]


def test_encryption_page_example_encrypts() -> None:
    assert nonce(SPEC_MAC, 0x41, SPEC_COUNTER) == bytes.fromhex("5448e68f80a5d2fc4133221100")
    built = build_service_data(
        SPEC_PLAIN, address=SPEC_MAC, bind_key=SPEC_KEY, counter=SPEC_COUNTER
    )
    assert built == SPEC_ENCRYPTED[2:]


def test_bthome_ble_encrypted_vector() -> None:
    # bthome-ble's own test_bindkey_correct advert (same key and MAC, another ciphertext).
    data = bytes.fromhex("41 a47266c95f73 00112233 78237214")
    adv = decode_service_data(SPEC_MAC, data, SPEC_KEY)
    assert adv.error is None and adv.values == {"temperature": 25.06, "humidity": 50.55}
    assert adv.counter == 0x33221100


# --- decryption failures -----------------------------------------------------------------------


def test_wrong_key_is_an_error_value_not_an_exception() -> None:
    adv = decode_service_data(SPEC_MAC, SPEC_ENCRYPTED[2:], OTHER_KEY)
    assert adv.error == "decryption failed: wrong bind key, or the advert was altered (MIC)"
    assert adv.values == {} and adv.objects == ()
    assert adv.encrypted and adv.counter == SPEC_COUNTER  # still known: it is sent in clear


def test_no_key_says_so() -> None:
    adv = decode_service_data(SPEC_MAC, SPEC_ENCRYPTED[2:])
    assert adv.error == f"encrypted, and no bind key is known for {SPEC_MAC}"
    assert adv.values == {} and adv.counter == SPEC_COUNTER


@pytest.mark.parametrize(
    "flip", [1, 5, 7, 11, 14], ids=["cipher", "cipher2", "counter", "mic", "mic2"]
)
def test_any_altered_byte_fails_the_mic(flip: int) -> None:
    altered = bytearray(SPEC_ENCRYPTED[2:])
    altered[flip] ^= 0x01
    adv = decode_service_data(SPEC_MAC, bytes(altered), SPEC_KEY)
    assert adv.error is not None and adv.error.startswith("decryption failed")
    assert adv.values == {}


def test_another_sender_address_fails_the_mic() -> None:
    adv = decode_service_data("54:48:E6:8F:80:A6", SPEC_ENCRYPTED[2:], SPEC_KEY)
    assert adv.error is not None and adv.error.startswith("decryption failed")


def test_an_address_that_is_no_mac_cannot_decrypt() -> None:
    # macOS hands out a UUID per device instead of the MAC the nonce needs.
    adv = decode_service_data("6F0A7B5A-1C2D-4E5F-8091-A2B3C4D5E6F7", SPEC_ENCRYPTED[2:], SPEC_KEY)
    assert adv.error is not None and "is not a Bluetooth MAC address" in adv.error


def test_encrypted_service_data_too_short_for_counter_and_mic() -> None:
    adv = decode_service_data(SPEC_MAC, bytes.fromhex("41 33221100 6c7c45"), SPEC_KEY)
    assert adv.error is not None and adv.error.startswith("encrypted service data too short")
    assert adv.counter is None


def test_a_bind_key_of_the_wrong_size_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="16 bytes, not 15"):
        decode_service_data(SPEC_MAC, SPEC_ENCRYPTED[2:], SPEC_KEY[:15])


# --- malformed and partial adverts -------------------------------------------------------------


def test_truncated_object_keeps_what_came_before() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 0007 0161 02CA"))
    assert adv.error is None
    assert adv.packet_id == 7 and adv.values == {"battery": 97}
    assert adv.warnings == ("object 0x02 (temperature) truncated: needs 2 bytes, 1 left",)


def test_unknown_object_id_stops_decoding_and_says_so() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 0161 EE0102 02CA09"))
    assert adv.values == {"battery": 97}  # temperature after it cannot be located
    assert adv.warnings == (
        "unknown object id 0xEE at byte 2: the 6 bytes from there were not decoded",
    )


def test_variable_length_object_without_its_length_byte() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 0161 53"))
    assert adv.values == {"battery": 97}
    assert adv.warnings == ("object 0x53 (text) lacks its length byte",)


def test_text_longer_than_the_advert() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 530C48656C6C6F"))
    assert adv.objects == ()
    assert adv.warnings == ("object 0x53 (text) truncated: needs 12 bytes, 5 left",)


def test_out_of_order_object_ids_are_decoded_with_a_warning() -> None:
    adv = decode_service_data(ADDR, bytes.fromhex("40 03BF13 02CA09"))
    assert adv.values == {"humidity": 50.55, "temperature": 25.06}
    assert adv.warnings == ("object ids out of order: 0x02 after 0x03",)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "no BTHome device information byte"),
        (bytes.fromhex("20 02CA09"), "BTHome version 1 is not supported (only version 2)"),
        (bytes.fromhex("E1 02CA09"), "BTHome version 7 is not supported (only version 2)"),
    ],
)
def test_service_data_that_is_not_bthome_v2(data: bytes, error: str) -> None:
    adv = decode_service_data(ADDR, data)
    assert adv.error == error and adv.values == {}


def test_repeated_quantities_are_numbered_and_all_kept() -> None:
    payload = bytes.fromhex("0003 02CA09 02C409 03BF13 451101")
    adv = decode_service_data(ADDR, b"\x40" + payload)
    assert adv.values == {
        "temperature": 25.06,
        "temperature_2": 25.0,
        "humidity": 50.55,
        "temperature_3": 27.3,
    }
    assert [(o.object_id, o.value) for o in adv.objects] == [
        (0x00, 3),
        (0x02, 25.06),
        (0x02, 25.0),
        (0x03, 50.55),
        (0x45, 27.3),
    ]


def test_advertising_data_structures() -> None:
    data = bytes.fromhex("020106 03FF3412 0516D2FC4001 00 FFFF")  # 00: end of data
    elements, problem = parse_ad(data)
    assert elements == [
        (0x01, b"\x06"),
        (0xFF, b"\x34\x12"),
        (0x16, bytes.fromhex("D2FC4001")),
    ]
    assert problem is None
    assert find_service_data(data) == bytes.fromhex("4001")
    assert find_service_data(data, 0x181A) is None


def test_advert_without_bthome_is_none() -> None:
    assert decode_adv(ADDR, bytes.fromhex("020106 0516AAFE0102 03094142")) is None
    assert decode_adv(ADDR, b"") is None


def test_damage_after_the_bthome_element_is_a_warning() -> None:
    data = bytes.fromhex("020106 0616D2FC400161 09FF0102")  # the last element is cut
    adv = decode_adv(ADDR, data)
    assert adv is not None and adv.error is None
    assert adv.values == {"battery": 97}
    assert adv.warnings == (
        "advertising data damaged: AD structure at byte 10 says 9 bytes, only 3 follow",
    )


def test_a_cut_bthome_element_is_an_error() -> None:
    data = bytes.fromhex("020106 0A16D2FC4002C409")  # says 10 bytes, 7 follow
    adv = decode_adv(ADDR, data)
    assert adv is not None
    assert adv.error == (
        "advertising data truncated: AD structure at byte 3 says 10 bytes, only 7 follow"
    )
    assert adv.values == {}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_no_advert_makes_the_decoder_raise(data: bytes, with_key: bool) -> None:
    key = SPEC_KEY if with_key else None
    adv = decode_adv(SPEC_MAC, data, key)
    if adv is not None:
        assert adv.error is None or adv.values == {}
    service = decode_service_data(SPEC_MAC, data, key)
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in service.values.values())


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=20))
def test_decode_objects_never_raises_and_accounts_for_every_byte(payload: bytes) -> None:
    objects, warnings = decode_objects(payload)
    used = sum(1 + len(o.data) + (1 if OBJECTS[o.object_id].size == 0 else 0) for o in objects)
    assert used == len(payload) or warnings  # all decoded, or it says what was not


# --- cross-check with Home Assistant's parser --------------------------------------------------


def ha_parse(address: str, service: bytes, key: bytes | None = None) -> Any:
    info = BluetoothServiceInfoBleak(
        name="motekit",
        address=address,
        rssi=-60,
        manufacturer_data={},
        service_data={BTHOME_UUID128: service},
        service_uuids=[],
        source="",
        device=BLEDevice(address, "motekit", None),
        advertisement=None,
        connectable=False,
        time=1.0,
        tx_power=None,
    )
    device = BTHomeBluetoothDeviceData(bindkey=key)
    update = device.update(info)
    return device, update


def ha_values(update: Any) -> dict[str, Any]:
    values = {k.key: v.native_value for k, v in update.entity_values.items()}
    values.pop("signal_strength", None)
    values.pop("packet_id", None)
    return values


def sample(oid: int, rnd: random.Random) -> bytes:
    """A hand-built object of id `oid` with a random value of the right size."""
    spec = OBJECTS[oid]
    if spec.kind == "binary":
        return bytes([oid, rnd.randint(0, 1)])
    if spec.kind == "event":
        events = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x80] if spec.name == "button" else [1, 2]
        tail = bytes([rnd.randint(1, 20)]) if spec.name == "dimmer" else b""
        return bytes([oid, rnd.choice(events)]) + tail
    if spec.kind == "text":
        text = "Motekit ✓".encode()
        return bytes([oid, len(text)]) + text
    if spec.kind == "raw":
        raw = rnd.randbytes(5)
        return bytes([oid, len(raw)]) + raw
    if spec.kind == "command":
        args = rnd.randbytes(rnd.randint(0, 3))
        return bytes([oid, len(args), rnd.randint(0, 4)]) + args
    if spec.name == "timestamp":
        return bytes([oid]) + struct.pack("<I", 1_700_000_000 + rnd.randint(0, 10**6))
    return bytes([oid]) + rnd.randbytes(spec.size)


def check_against_ha(oid: int, ours: Any, device: Any, update: Any) -> None:
    spec = OBJECTS[oid]
    assert ours.error is None and ours.warnings == ()
    (obj,) = [o for o in ours.objects if o.object_id == oid]
    if spec.kind == "number" and oid not in (0x50, 0xF0):
        (theirs,) = ha_values(update).values()
        if oid == 0x58:  # HA rounds a factor of 0.35 to one decimal place
            assert obj.value == pytest.approx(theirs, abs=0.0501)
        else:
            assert obj.value == theirs and ours.values[spec.name] == theirs
    elif oid == 0x50:
        (theirs,) = ha_values(update).values()
        assert isinstance(theirs, datetime) and obj.value == int(theirs.timestamp())
    elif oid == 0xF0:
        assert obj.value == device.device_type_id
    elif spec.kind == "firmware":
        assert update.devices[None].sw_version == obj.value
    elif spec.kind == "binary":
        (theirs,) = [v.native_value for v in update.binary_entity_values.values()]
        assert bool(obj.value) is theirs
    elif spec.kind == "event":
        (event,) = update.events.values()
        assert obj.value.split()[0] == event.event_type
        if spec.name == "dimmer":
            assert int(obj.value.split()[1]) == event.event_properties["steps"]
    elif spec.kind == "command":
        (event,) = update.events.values()
        assert obj.value.split()[0] == event.event_type
        assert obj.value.split()[1:] == ([event.event_properties["args"]] if obj.data[1:] else [])
    else:  # text, raw
        (theirs,) = ha_values(update).values()
        assert obj.value == theirs


EVERY_ID = [oid for oid in sorted(OBJECTS) if oid != 0x00]


@pytest.mark.parametrize("oid", EVERY_ID, ids=[f"0x{oid:02X}" for oid in EVERY_ID])
def test_every_object_id_matches_home_assistant(oid: int) -> None:
    rnd = random.Random(oid)
    for round_ in range(4):
        payload = bytes([0x00, round_]) + sample(oid, rnd)
        plain = build_service_data(payload)
        ours = decode_service_data(ADDR, plain)
        assert ours.packet_id == round_
        check_against_ha(oid, ours, *ha_parse(ADDR, plain))
        sealed = build_service_data(
            payload, address=ADDR, bind_key=SPEC_KEY, counter=rnd.getrandbits(32)
        )
        ours = decode_service_data(ADDR, sealed, SPEC_KEY)
        device, update = ha_parse(ADDR, sealed, SPEC_KEY)
        assert device.bindkey_verified
        check_against_ha(oid, ours, device, update)


# What HA calls the quantities a Motekit node sends.
HA_NAMES = {
    "battery": "battery",
    "temperature": "temperature",
    "humidity": "humidity",
    "pressure": "pressure",
    "voltage": "voltage",
    "co2": "carbon_dioxide",
    "moisture": "moisture",
    "current": "current",
    "power": "power",
}


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_node_report_matches_home_assistant(encrypted: bool) -> None:
    # Packet id, battery, temperature, humidity, pressure, power, voltage, co2, moisture, current:
    # a reading of every quantity our drivers produce, in three adverts of at most 31 bytes.
    parts = [
        bytes.fromhex("0011 0157 02E308 033C12"),
        bytes.fromhex("0012 04E68B01 0B102700 0C9C0C"),
        bytes.fromhex("0013 122003 14D20F 43E803"),
    ]
    expected = [
        {"battery": 87, "temperature": 22.75, "humidity": 46.68},
        {"pressure": 1013.5, "power": 100.0, "voltage": 3.228},
        {"co2": 800, "moisture": 40.5, "current": 1.0},
    ]
    for counter, (payload, values) in enumerate(zip(parts, expected, strict=True)):
        key = SPEC_KEY if encrypted else None
        service = build_service_data(payload, address=ADDR, bind_key=key, counter=1000 + counter)
        assert len(build_adv_data(service)) <= 31  # legacy advertising
        ours = decode_adv(ADDR, build_adv_data(service), key)
        assert ours is not None and ours.error is None and ours.values == values
        _, update = ha_parse(ADDR, service, key)
        assert ha_values(update) == {HA_NAMES[k]: v for k, v in values.items()}


def test_repeated_temperatures_match_home_assistant() -> None:
    service = build_service_data(bytes.fromhex("02CA09 02C409 03BF13"))
    ours = decode_service_data(ADDR, service)
    _, update = ha_parse(ADDR, service)
    theirs = ha_values(update)
    # HA numbers every one of a repeated quantity (_1, _2); we leave the first one bare.
    assert theirs == {"temperature_1": 25.06, "temperature_2": 25.0, "humidity": 50.55}
    assert ours.values == {"temperature": 25.06, "temperature_2": 25.0, "humidity": 50.55}


def test_home_assistant_also_refuses_the_wrong_key() -> None:
    device, update = ha_parse(SPEC_MAC, SPEC_ENCRYPTED[2:], OTHER_KEY)
    assert not device.bindkey_verified and ha_values(update) == {}
    ours = decode_service_data(SPEC_MAC, SPEC_ENCRYPTED[2:], OTHER_KEY)
    assert ours.error is not None and ours.values == {}
