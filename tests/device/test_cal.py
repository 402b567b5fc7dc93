# firmware/motekit/cal.py on both virtual boards: gain and offset per sensor and quantity,
# checked, saved atomically, applied.
import json
import os

import _devtest
from motekit import cal, config, store

cal.PATH = "/cal_test.json"
config.SCHEMA_PATH = "/.firmware/motekit/schema.json"


def _clean():
    for suffix in ("", ".bak", ".new"):
        try:
            os.remove(cal.PATH + suffix)
        except OSError:
            pass


def _put(obj):
    with open(cal.PATH, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _close(a, b):
    return abs(a - b) < 1e-9


def test_the_quantities_are_the_thresholds_quantities():
    th = [e for e in config.entries() if e["key"] == "thresholds"][0]
    assert sorted(cal.QUANTITIES) == sorted(th["keys"]) == sorted(th["default"])


def test_missing_or_corrupt_file_loads_empty():
    _clean()
    assert cal.load() == {}
    _put("{not json")
    assert cal.load() == {}
    _put("[1, 2]")
    assert cal.load() == {}
    _clean()


def test_apply_is_the_identity_without_calibration():
    assert cal.apply({}, "sht4x", "temperature", 21.5) == 21.5
    c = {"sht4x": {"humidity": [1.1, 0.0]}}
    assert cal.apply(c, "sht4x", "temperature", 21.5) == 21.5
    assert cal.apply(c, "bme280", "humidity", 40.0) == 40.0


def test_set_saves_updates_and_applies():
    _clean()
    c = cal.load()
    w0 = store.writes
    cal.set(c, "sht4x", "temperature", 1, -0.4)
    cal.set(c, "sht4x", "humidity", 1.05, 2)
    cal.set(c, "battery", "voltage", 0.98, 0.0)
    assert store.writes == w0 + 3
    assert c == {
        "sht4x": {"temperature": [1.0, -0.4], "humidity": [1.05, 2.0]},
        "battery": {"voltage": [0.98, 0.0]},
    }
    assert type(c["sht4x"]["temperature"][0]) is float
    assert cal.load() == c  # survives a fresh load
    assert _close(cal.apply(c, "sht4x", "temperature", 21.7), 21.3)
    assert _close(cal.apply(c, "sht4x", "humidity", 40.0), 44.0)
    assert _close(cal.apply(c, "battery", "voltage", 4.0), 3.92)
    cal.set(c, "sht4x", "temperature", 1.0, 0.0)  # replaced, not added
    assert cal.load()["sht4x"]["temperature"] == [1.0, 0.0]
    assert cal.apply(c, "sht4x", "temperature", 21.7) == 21.7
    _clean()


def test_edges_are_accepted():
    _clean()
    c = {}
    for gain, offset in ((0.5, -100), (2.0, 100), (2, -100.0)):
        cal.set(c, "soil", "moisture", gain, offset)
        assert c["soil"]["moisture"] == [float(gain), float(offset)]
    cal.set(c, "a234567890123456", "co2", 1.0, 0)  # the longest sensor id
    _clean()


def test_bad_values_are_refused_and_change_nothing():
    _clean()
    c = {}
    cal.set(c, "sht4x", "temperature", 1.0, -0.4)
    before = cal.load()
    w0 = store.writes
    cases = (
        (
            ("sht4x", "temperature", 0.49, 0),
            "cal sht4x.temperature gain: 0.49 is out of range 0.5..2.0",
        ),
        (
            ("sht4x", "temperature", 2.01, 0),
            "cal sht4x.temperature gain: 2.01 is out of range 0.5..2.0",
        ),
        (("sht4x", "temperature", 0, 0), "cal sht4x.temperature gain: 0 is out of range 0.5..2.0"),
        (
            ("sht4x", "temperature", 1, -100.5),
            "cal sht4x.temperature offset: -100.5 is out of range -100.0..100.0",
        ),
        (
            ("sht4x", "temperature", 1, 101),
            "cal sht4x.temperature offset: 101 is out of range -100.0..100.0",
        ),
        (
            ("sht4x", "temperature", float("nan"), 0),
            "cal sht4x.temperature gain: nan is not a finite number",
        ),
        (
            ("sht4x", "temperature", 1, float("-inf")),
            "cal sht4x.temperature offset: -inf is not a finite number",
        ),
        (("sht4x", "temperature", True, 0), "cal sht4x.temperature gain: True is not a number"),
        (("sht4x", "temperature", 1, "0"), "cal sht4x.temperature offset: '0' is not a number"),
        (("sht4x", "colour", 1, 0), "cal sht4x.colour: no such quantity"),
        (
            ("Bad id", "temperature", 1, 0),
            "cal: 'Bad id' is not a sensor id (1..16 of a-z, 0-9, _)",
        ),
        (("", "temperature", 1, 0), "cal: '' is not a sensor id (1..16 of a-z, 0-9, _)"),
    )
    for args, message in cases:
        e = _devtest.raises(ValueError, cal.set, c, *args)
        assert str(e) == message, str(e)
    assert c == before
    assert cal.load() == before
    assert store.writes == w0
    _clean()


def test_damaged_entries_are_left_out_on_load():
    _clean()
    _put(
        {
            "sht4x": {
                "temperature": [1.0, -0.4],
                "humidity": [9.0, 0.0],  # gain out of range
                "colour": [1.0, 0.0],
                "pressure": [1.0],
            },
            "bme280": "x",
            "BAD": {"temperature": [1.0, 0.0]},
        }
    )
    assert cal.load() == {"sht4x": {"temperature": [1.0, -0.4]}}
    _clean()
