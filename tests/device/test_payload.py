# firmware/motekit/payload.py on both virtual boards: frames checked byte by byte against
# docs/payload.md (golden vectors worked out by hand from the format), scaling and its extremes,
# the reserved code for values that cannot travel, splitting over small frames, sensor naming,
# and what an encode costs in heap. The host decoder and the generated decodeUplink.js are
# held to these same frames in tests/host/test_payload.py.
import gc

import _devtest
from motekit import payload

SENSORS = [{"kind": "battery"}, {"kind": "sht4x", "id": "sht41"}]


def _report(samples, seq=70, battery_v=3.7, faults=None):
    return {
        "seq": seq,
        "reason": ["change"],
        "samples": samples,
        "battery_v": battery_v,
        "faults": faults or [],
    }


def _one(values, **kw):
    return _report([{"t": 1000, "values": values}], **kw)


def _hex(frames):
    return [f.hex() for f in frames]


# --- one frame ---------------------------------------------------------------------------------
def test_a_battery_and_sht4x_sample_is_eight_bytes():
    rep = _one({"battery.voltage": 3.7, "sht41.temperature": -4.1, "sht41.humidity": 44.98})
    # 0x46: version 1, seq 70 % 64 = 6; 0x03: kinds 0 (battery) and 1 (sht4x), no flags byte;
    # 3.700 V = 3700 = 0x0e74; -4.10 C = -410 = 0xfe66; 44.98 %RH = 4498 = 0x1192. The battery
    # voltage is the newest sample's battery.voltage: not repeated.
    assert _hex(payload.encode(rep, 51, SENSORS)) == ["46030e74fe661192"]


def test_one_sensor_without_flags_is_a_short_frame():
    # 0x83: short form (2 << 6), kind 0 (battery) << 3, seq 3; 3.710 V = 0x0e7e (docs/payload.md)
    assert _hex(payload.encode(_one({"battery.voltage": 3.71}, seq=3, battery_v=3.71), 51)) == [
        "830e7e"
    ]
    # 0x9e: kind 3 (ds18b20), seq 70 % 8 = 6; -5.5 C = -550 = 0xfdda
    rep = _one({"ds18b20.temperature": -5.5}, battery_v=None)
    assert _hex(payload.encode(rep, 51)) == ["9efdda"]
    # A batch of one sensor is short too: the samples follow as in any frame (300 s = ac02).
    rep = _report(
        [{"t": 700, "values": {"sht41.temperature": 20.0, "sht41.humidity": 50.0}}]
        + [{"t": 1000, "values": {"sht41.temperature": 21.0, "sht41.humidity": 51.0}}],
        battery_v=None,
    )
    assert _hex(payload.encode(rep, 51, SENSORS)) == ["8e" + "083413ec" + "ac02" + "07d01388"]
    # Anything needing flags, or a second sensor, keeps the full header.
    rep = _one({"battery.voltage": 3.7}, battery_v=3.65)
    assert payload.encode(rep, 51)[0][0] == 0x46
    rep = _one({"battery.voltage": 3.7, "ds18b20.temperature": 1.0})
    assert payload.encode(rep, 51)[0][:2] == b"\x46\x09"


def test_without_the_sensor_list_default_ids_still_encode():
    rep = _one({"battery.voltage": 3.7, "sht4x.temperature": -4.1, "sht4x.humidity": 44.98})
    assert _hex(payload.encode(rep, 51)) == ["46030e74fe661192"]


def test_ids_the_encoder_cannot_place_are_left_out_and_flagged():
    rep = _one({"battery.voltage": 3.7, "sht41.temperature": -4.1, "sht41.humidity": 44.98})
    # No sensor list: "sht41" is no kind name. 0x81: battery + flags byte; 0x02: incomplete.
    assert _hex(payload.encode(rep, 51)) == ["4681020e74"]
    # An id not in the list, a quantity the kind does not have: the same.
    rep = _one({"battery.voltage": 3.7, "other.temperature": 1.0, "sht41.co2": 400})
    assert _hex(payload.encode(rep, 51, SENSORS)) == ["4681020e74"]


def test_the_second_sensor_of_a_kind_is_a_descriptor():
    sensors = [{"kind": "ds18b20", "id": "in"}, {"kind": "ds18b20", "id": "out"}]
    rep = _one({"in.temperature": 21.5, "out.temperature": -10.25}, battery_v=None, seq=1)
    # 0x41: seq 1; 0x88: ds18b20 (code 3, bit 3) + flags; 0x08: descriptors; 0x33: key
    # 3 << 3 | 1 = 25, shifted left, last bit set; 2150 = 0x0866, -1025 = 0xfbff.
    assert _hex(payload.encode(rep, 51, sensors)) == ["41880833" + "0866fbff"]
    rep = _one(
        {"ds18b20.temperature": 21.5, "ds18b20_2.temperature": -10.25}, battery_v=None, seq=1
    )
    assert _hex(payload.encode(rep, 51)) == ["41880833" + "0866fbff"]


def test_battery_v_differing_from_the_newest_sample_is_sent():
    rep = _one({"battery.voltage": 3.7}, battery_v=3.65)
    # 0x81 battery + flags; 0x40: battery follows: 3650 = 0x0e42; then the sample.
    assert _hex(payload.encode(rep, 51)) == ["4681400e420e74"]
    # None where the sample has a battery voltage: the reserved code 0x8000.
    assert _hex(payload.encode(_one({"battery.voltage": 3.7}, battery_v=None), 51)) == [
        "468140" + "8000" + "0e74"
    ]
    # No battery sensor and no battery_v: nothing (a short frame: soil, code 6; seq 70 % 8).
    assert _hex(payload.encode(_one({"soil.moisture": 35.5}, battery_v=None), 51)) == [
        "b6" + "0163"
    ]


def test_a_batch_carries_time_offsets_missing_uncal_and_faults():
    samples = [
        {
            "t": 400,
            "values": {"battery.voltage": 3.71, "sht4x.temperature": 20.0, "sht4x.humidity": 50.0},
        },
        {"t": 700, "values": {"battery.voltage": 3.7}, "missing": ["sht4x"]},
        {
            "t": 1000,
            "values": {"battery.voltage": 3.7, "sht4x.temperature": 21.0, "sht4x.humidity": 51.0},
            "uncal": ["sht4x.humidity"],
        },
    ]
    rep = _report(samples, faults=["sht4x"])
    frames = payload.encode(rep, 51)
    # 0x83: battery, sht4x + flags; 0xb0: sparse, faults, uncal; faults: 0x11 (key 8 << 1 | 1).
    # Newest first. Sample t=1000: no offset, present 0b111, uncal 0b100, 3700, 2100, 5100.
    # t=700: offset 300 = ac 02, present 0b001, uncal 0, 3700.
    # t=400: offset 300, present 0b111, uncal 0, 3710, 2000, 5000.
    assert _hex(frames) == [
        "4683b011" + "07040e74083413ec" + "ac0201000e74" + "ac0207000e7e07d01388"
    ]


# --- scaling -------------------------------------------------------------------------------
def test_extremes_travel_and_values_past_them_get_the_reserved_code():
    def enc(ch, v):
        # the last bytes of the frame are the value
        f = payload.encode(_one({ch: v}, battery_v=None), 51)[0]
        return f[-(3 if ch.endswith(("pressure", "current", "power")) else 2) :].hex()

    assert enc("sht4x.temperature", -327.67) == "8001"
    assert enc("sht4x.temperature", 327.67) == "7fff"
    assert enc("sht4x.temperature", 327.68) == "8000"
    assert enc("sht4x.temperature", -400.0) == "8000"
    assert enc("sht4x.temperature", float("nan")) == "8000"
    assert enc("sht4x.temperature", float("inf")) == "8000"
    assert enc("sht4x.temperature", None) == "8000"
    assert enc("scd41.co2", 65534) == "fffe"
    assert enc("scd41.co2", 65535) == "ffff"
    assert enc("scd41.co2", -1) == "ffff"
    assert enc("bme280.pressure", 1013.25) == "018bcd"  # 101325
    assert enc("ina219.current", -1.23456) == "fe1dc0"  # -123456
    assert enc("ina219.power", 838.8607) == "7fffff"
    assert enc("ina219.voltage", 32.764) == "7ffc"
    assert enc("soil.moisture", -0.1) == "ffff"
    assert enc("ds18b20.temperature", -55.0) == "ea84"  # -5500


def test_a_sensor_with_only_some_channels_gets_a_channel_bitmap():
    f = payload.encode(_one({"scd41.co2": 400}, battery_v=None), 51)[0]
    # 0x90: scd41 (code 4) + flags; 0x80: sparse; bitmap 0b001 (co2 of co2/temperature/humidity)
    assert f.hex() == "4690" + "80" + "01" + "0190"


def test_rounding_is_to_the_nearest_step():
    out = payload.encode(
        _one({"sht4x.temperature": 21.4349, "sht4x.humidity": 0.006}, battery_v=None), 51
    )
    assert out[0][1:].hex() == "085f0001"  # 2143, 1 (a short frame: one header byte)


# --- splitting -------------------------------------------------------------------------------
def _batch(n):
    return _report(
        [
            {
                "t": 60 * i,
                "values": {
                    "battery.voltage": 3.7,
                    "bme280.temperature": -20.5 + i,
                    "bme280.humidity": 40.0,
                    "bme280.pressure": 1013.25,
                },
            }
            for i in range(n)
        ],
        seq=200,
    )


def test_a_batch_over_max_len_splits_into_self_contained_parts():
    for max_len in (11, 24, 51):
        frames = payload.encode(_batch(16), max_len)
        assert len(frames) > 1
        for i, f in enumerate(frames):
            assert len(f) <= max_len, (max_len, i, len(f))
            assert f[0] == 0x40 | 200 % 64  # version, seq
            assert f[1] & 0x80 and f[2] & 0x04  # flags byte, part byte
            assert f[2] & 0x02 == 0  # nothing left out
            assert f[3] == i | (0x80 if i < len(frames) - 1 else 0), (max_len, i)


def test_parts_hold_the_newest_samples_first():
    frames = payload.encode(_batch(16), 24)
    # Part 0: 0x48 seq 200 % 64; 0x85 battery, bme280 + flags; 0x04 part; 0x80 part 0, more.
    # The newest sample (no offset): 3700, -5.50 C = 0xfdda, 40.00 %RH = 0x0fa0, 1013.25 hPa =
    # 0x018bcd; then the one 60 s older: offset 0x3c, -6.50 C = 0xfd76.
    assert frames[0].hex() == "48850480" + "0e74fdda0fa0018bcd" + "3c0e74fd760fa0018bcd"
    # Part 1 starts with its offset from the newest sample: 120 s.
    assert frames[1][:5].hex() == "4885048178"
    # The last part holds the oldest sample, offset 60 s from the one before it.
    assert frames[-1][3] == len(frames) - 1  # no "more" bit


def test_a_sample_longer_than_a_frame_is_split_by_channel():
    sensors = [{"kind": "bme280"}, {"kind": "ina219"}, {"kind": "scd41"}]
    values = {
        "bme280.temperature": 1.0,
        "bme280.humidity": 2.0,
        "bme280.pressure": 3.0,
        "ina219.voltage": 4.0,
        "ina219.current": 0.5,
        "ina219.power": 2.0,
        "scd41.co2": 400,
        "scd41.temperature": 5.0,
        "scd41.humidity": 6.0,
    }
    frames = payload.encode(_one(values, battery_v=None), 11, sensors)
    # Sensors in kind-code order: bme280 (2), scd41 (4), ina219 (5). Part 0: bme280 whole.
    # Part 1: scd41 whole, offset 0. Parts 2 and 3: ina219 split, with channel bitmaps (0x84:
    # sparse, part): voltage and current (0b011), then power (0b100).
    assert _hex(frames) == [
        "46840480" + "0064" + "00c8" + "00012c",
        "46900481" + "00" + "0190" + "01f4" + "0258",
        "46a08482" + "00" + "03" + "0fa0" + "00c350",
        "46a08403" + "00" + "04" + "004e20",
    ]


def test_a_value_that_fits_no_frame_is_left_out_and_flagged():
    sensors = [{"kind": "battery"}, {"kind": "ina219"}, {"kind": "ina219", "id": "aux"}]
    rep = _one({"battery.voltage": 3.7, "aux.current": 1.0}, battery_v=None)
    # battery_v None against a battery voltage in the sample: part 0 says so (0x8000). aux.current
    # alone in part 1 would take header 4, offset 1, descriptor 1, bitmap 1 and 3 bytes: 10.
    frames = payload.encode(rep, 9, sensors)
    # 0x46: battery, part, incomplete; part 0, no more.
    assert _hex(frames) == ["46814600" + "8000" + "0e74"]


def test_no_samples_and_a_tiny_max_len_are_refused():
    e = _devtest.raises(ValueError, payload.encode, _report([]), 51)
    assert str(e) == "a report needs at least one sample"
    e = _devtest.raises(
        ValueError, payload.encode, _one({"battery.voltage": 3.7}, battery_v=3.0), 5
    )
    assert str(e) == "max_len 5 cannot hold a report frame"


def test_part_0_too_small_for_its_faults_drops_some_and_its_values_move_on():
    rep = _one({"battery.voltage": 3.7}, battery_v=3.0, faults=["sht4x", "bme280", "soil"])
    # 9 bytes: header 4, battery 2, three fault descriptors; the sample goes to part 1.
    assert _hex(payload.encode(rep, 9)) == [
        "46806480" + "0bb8" + "102061",
        "46810401" + "00" + "0e74",
    ]
    # 8 bytes: soil's descriptor is dropped, and every frame says so.
    assert _hex(payload.encode(rep, 8)) == [
        "46806680" + "0bb8" + "1021",
        "46810601" + "00" + "0e74",
    ]


# --- heap --------------------------------------------------------------------------------------
def test_encoding_a_full_batch_costs_little_heap():
    rep = _batch(16)
    gc.collect()
    before = gc.mem_alloc()
    frames = payload.encode(rep, 51)
    gc.collect()
    kept = gc.mem_alloc() - before
    assert sum(len(f) for f in frames) < 16 * 14
    assert kept < 2048, kept  # the frames and their list only
