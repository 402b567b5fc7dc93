# firmware/motekit/cal.py and the /cal.json rules and writes of motekit/calcmd.py on both
# virtual boards: version 2 entries checked, saved atomically with a rev per channel, applied
# (each poly degree, the temperature term), version 1 files read, damaged files flagged, and
# load() leaving the rules out of the heap. The `cal` console command, which the firmware's
# App runs, is tested over the console in tests/host/test_cal_console.py.
import gc
import json
import os
import sys

import _devtest
from motekit import cal, calcmd, config, store

cal.PATH = "/cal_test.json"
config.SCHEMA_PATH = "/.firmware/motekit/schema.json"


def _clean():
    for suffix in ("", ".bak", ".new"):
        try:
            os.remove(cal.PATH + suffix)
        except OSError:
            pass


def _put(obj, suffix=""):
    with open(cal.PATH + suffix, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _text(suffix=""):
    with open(cal.PATH + suffix) as f:  # closed before the next rename: littlefs needs that
        return f.read()


def _file(suffix=""):
    return json.loads(_text(suffix))


def _close(a, b, tol=1e-9):
    return abs(a - b) <= tol


def _refused(message, channel, entry):
    # set() refuses with exactly `message`, and neither the file nor the write count changes.
    before = store.read_json(cal.PATH)
    w0 = store.writes
    e = _devtest.raises(config.Invalid, calcmd.set, channel, entry)
    assert str(e) == message, str(e)
    assert store.read_json(cal.PATH) == before
    assert store.writes == w0


# --- the file and the table ----------------------------------------------------------------
def test_the_quantities_are_the_thresholds_quantities():
    th = [e for e in config.entries() if e["key"] == "thresholds"][0]
    assert sorted(calcmd.QUANTITIES) == sorted(th["keys"]) == sorted(th["default"])


def test_no_file_is_an_empty_table_and_no_problem():
    _clean()
    assert cal.load() == ({}, [])
    assert calcmd.read_file() == (2, {}, [])
    values = {"sht41.temperature": 21.5}
    assert cal.apply({}, values) == [] and values == {"sht41.temperature": 21.5}


def test_each_poly_degree_is_applied():
    _clean()
    calcmd.set("a.temperature", {"poly": [-0.4]})  # degree 0: the constant c0
    calcmd.set("a.humidity", {"poly": [2.0, 1.05]})
    calcmd.set("a.pressure", {"poly": [1.0, 0.9, 0.002]})
    calcmd.set("a.co2", {"poly": [10, 1, -0.001, 2e-6]})
    table, problems = cal.load()
    assert problems == []
    assert table["a.humidity"] == ((2.0, 1.05), None, 0.0, 0.0)
    v = {"a.temperature": 21.7, "a.humidity": 40.0, "a.pressure": 1000.0, "a.co2": 500.0}
    assert cal.apply(table, v) == []
    # one coefficient is a constant: c0, whatever x is
    assert v["a.temperature"] == -0.4
    assert _close(v["a.humidity"], 2.0 + 1.05 * 40.0)
    assert _close(v["a.pressure"], 1.0 + 0.9 * 1000 + 0.002 * 1000**2)
    assert _close(v["a.co2"], 10 + 500 - 0.001 * 500**2 + 2e-6 * 500**3)
    _clean()


def test_the_temperature_term_uses_the_uncalibrated_temperature_of_the_sample():
    _clean()
    calcmd.set("sht41.temperature", {"poly": [-0.5, 1.0]})  # T itself is calibrated too
    calcmd.set(
        "sht41.humidity",
        {"poly": [0.0, 1.0], "temp": {"ch": "sht41.temperature", "ref": 25, "k": -0.2}},
    )
    calcmd.set(
        "soil.moisture",
        {"poly": [1.0, 1.0], "temp": {"ch": "sht41.temperature", "ref": 20, "k": 1}},
    )
    table, _ = cal.load()
    assert table["sht41.humidity"] == ((0.0, 1.0), "sht41.temperature", 25.0, -0.2)
    v = {"sht41.temperature": 30.0, "sht41.humidity": 50.0, "soil.moisture": 40.0}
    assert cal.apply(table, v) == []
    assert v["sht41.temperature"] == 29.5
    assert _close(v["sht41.humidity"], 50.0 - 0.2 * (30.0 - 25))  # 30, not 29.5
    assert _close(v["soil.moisture"], 41.0 + 1 * (30.0 - 20))
    _clean()


def test_an_entry_whose_temperature_channel_is_missing_is_left_uncalibrated():
    _clean()
    calcmd.set("sht41.temperature", {"poly": [-0.5, 1.0]})
    calcmd.set(
        "soil.moisture", {"poly": [1, 2], "temp": {"ch": "ds.temperature", "ref": 20, "k": 1}}
    )
    table, _ = cal.load()
    v = {"sht41.temperature": 30.0, "soil.moisture": 40.0}
    assert cal.apply(table, v) == ["soil.moisture"]
    assert v == {"sht41.temperature": 29.5, "soil.moisture": 40.0}
    # a calibrated sensor missing from the sample is missing, not uncalibrated
    v = {"soil.moisture": 40.0, "ds.temperature": 10.0}
    assert cal.apply(table, v) == []
    assert _close(v["soil.moisture"], 1 + 80 + (10.0 - 20))
    _clean()


def test_set_returns_the_stored_entry_and_counts_revs_per_channel():
    _clean()
    w0 = store.writes
    entry = {
        "poly": [1, 2],
        "id": "c20261121T101500Z-3f2a",
        "at": "2026-11-21T10:15:00Z",
        "ref": "port:/dev/ttyUSB1 sht41.humidity",
    }
    got = calcmd.set("sht41.humidity", entry)
    assert got == {
        "poly": [1.0, 2.0],
        "id": "c20261121T101500Z-3f2a",
        "at": "2026-11-21T10:15:00Z",
        "ref": "port:/dev/ttyUSB1 sht41.humidity",
        "rev": 1,
    }
    assert type(got["poly"][0]) is float
    assert calcmd.set("sht41.humidity", {"poly": [0, 1], "rev": 40})["rev"] == 2  # the node counts
    assert calcmd.set("sht41.temperature", {"poly": [0]})["rev"] == 1
    assert calcmd.set("sht41.humidity", {"poly": [0, 1.1]})["rev"] == 3
    assert store.writes == w0 + 4
    f = _file()
    assert f["version"] == 2 and sorted(f["entries"]) == ["sht41.humidity", "sht41.temperature"]
    assert f["entries"]["sht41.humidity"] == {"poly": [0.0, 1.1], "rev": 3}
    assert calcmd.read_file() == (2, f["entries"], [])
    assert _file(".bak")["entries"]["sht41.humidity"]["rev"] == 2
    _clean()


def test_clear_removes_one_entry_and_a_new_one_starts_at_rev_1():
    _clean()
    calcmd.set("a.temperature", {"poly": [0, 1]})
    calcmd.set("a.temperature", {"poly": [0, 1]})
    calcmd.set("a.humidity", {"poly": [0, 1]})
    w0 = store.writes
    assert calcmd.clear("a.temperature") is True
    assert sorted(_file()["entries"]) == ["a.humidity"]
    assert calcmd.clear("a.temperature") is False
    assert calcmd.clear("b.pressure") is False
    assert store.writes == w0 + 1  # nothing to remove: nothing written
    assert cal.load()[0] == {"a.humidity": ((0.0, 1.0), None, 0.0, 0.0)}
    assert calcmd.set("a.temperature", {"poly": [0, 1]})["rev"] == 1
    _devtest.raises(config.Invalid, calcmd.clear, 5)
    _clean()


def test_the_edges_are_accepted():
    _clean()
    e = calcmd.set(
        "a234567890123456.moisture",
        {
            "poly": [-1e6, 1e6, 1000000, -1000000.0],
            "temp": {"ch": "b.temperature", "ref": -1e9, "k": 1e3},
            "id": "i" * 40,
            "at": "a" * 24,
            "ref": "r" * 64,
        },
    )
    assert e["poly"] == [-1e6, 1e6, 1e6, -1e6] and e["temp"]["k"] == 1000.0
    assert calcmd.set(
        "x.voltage", {"poly": [0.0], "temp": {"ch": "y.current", "ref": 0, "k": -1e3}}
    )
    assert cal.load()[1] == []
    _clean()


def test_every_invalid_field_is_refused_by_name_and_changes_nothing():
    _clean()
    calcmd.set("sht41.humidity", {"poly": [0, 1]})
    nan = float("nan")
    ch = "sht41.humidity"
    t = "sht41.temperature"
    for channel, entry, message in (
        ("sht41", {"poly": [0]}, "cal: 'sht41' is not a channel (<sensor id>.<quantity>)"),
        ("a.b.c", {"poly": [0]}, "cal: 'a.b.c' is not a channel (<sensor id>.<quantity>)"),
        (5, {"poly": [0]}, "cal: 5 is not a channel (<sensor id>.<quantity>)"),
        ("Bad.humidity", {"poly": [0]}, "cal: 'Bad' is not a sensor id (1..16 of a-z, 0-9, _)"),
        (".humidity", {"poly": [0]}, "cal: '' is not a sensor id (1..16 of a-z, 0-9, _)"),
        ("a" * 17 + ".co2", {"poly": [0]}, "cal: '%s' is not a sensor id" % ("a" * 17)),
        ("sht41.colour", {"poly": [0]}, "cal: 'colour' is not a quantity"),
        (ch, [0, 1], "cal sht41.humidity: the entry must be an object"),
        (ch, {"poly": [0], "gain": 1}, "cal sht41.humidity: no field 'gain'"),
        (ch, {}, "cal sht41.humidity poly: must be a list of 1..4 numbers"),
        (ch, {"poly": []}, "cal sht41.humidity poly: must be a list of 1..4 numbers"),
        (ch, {"poly": [0, 1, 2, 3, 4]}, "cal sht41.humidity poly: must be a list of 1..4 numbers"),
        (ch, {"poly": 1.0}, "cal sht41.humidity poly: must be a list of 1..4 numbers"),
        (ch, {"poly": [0, 1, nan]}, "cal sht41.humidity poly[2]: nan is not a finite number"),
        (ch, {"poly": [float("-inf")]}, "cal sht41.humidity poly[0]: -inf is not a finite number"),
        (ch, {"poly": [0, "1"]}, "cal sht41.humidity poly[1]: '1' is not a number"),
        (ch, {"poly": [True]}, "cal sht41.humidity poly[0]: True is not a number"),
        (ch, {"poly": [None]}, "cal sht41.humidity poly[0]: None is not a number"),
        (
            ch,
            {"poly": [0, 1000001]},
            "cal sht41.humidity poly[1]: 1000001 is out of range -1e6..1e6",
        ),
        (
            ch,
            {"poly": [-1000001]},
            "cal sht41.humidity poly[0]: -1000001 is out of range -1e6..1e6",
        ),
        (
            ch,
            {"poly": [0], "temp": 3},
            "cal sht41.humidity temp: must be an object with ch, ref and k",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": 25}},
            "cal sht41.humidity temp: must be an object with ch, ref and k",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": 25, "k": 0, "x": 1}},
            "cal sht41.humidity temp: no field 'x'",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ref": 25, "k": 0}},
            "cal sht41.humidity temp.ch: None is not a channel (<sensor id>.<quantity>)",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": "sht41.heat", "ref": 25, "k": 0}},
            "cal sht41.humidity temp.ch: 'heat' is not a quantity",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": ch, "ref": 25, "k": 0}},
            "cal sht41.humidity temp.ch: must be another channel than its own",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": nan, "k": 0}},
            "cal sht41.humidity temp.ref: nan is not a finite number",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": "25", "k": 0}},
            "cal sht41.humidity temp.ref: '25' is not a number",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": 25, "k": 1001}},
            "cal sht41.humidity temp.k: 1001 is out of range -1e3..1e3",
        ),
        (
            ch,
            {"poly": [0], "temp": {"ch": t, "ref": 25, "k": float("inf")}},
            "cal sht41.humidity temp.k: inf is not a finite number",
        ),
        (
            ch,
            {"poly": [0], "id": "i" * 41},
            "cal sht41.humidity id: must be text of at most 40 characters",
        ),
        (
            ch,
            {"poly": [0], "id": 7},
            "cal sht41.humidity id: must be text of at most 40 characters",
        ),
        (
            ch,
            {"poly": [0], "at": "a" * 25},
            "cal sht41.humidity at: must be text of at most 24 characters",
        ),
        (
            ch,
            {"poly": [0], "ref": "r" * 65},
            "cal sht41.humidity ref: must be text of at most 64 characters",
        ),
        (ch, {"poly": [0], "rev": 0}, "cal sht41.humidity rev: 0 is not a positive integer"),
        (ch, {"poly": [0], "rev": "2"}, "cal sht41.humidity rev: '2' is not a positive integer"),
    ):
        if message.endswith("is not a sensor id"):
            message += " (1..16 of a-z, 0-9, _)"
        _refused(message, channel, entry)
    assert cal.load() == ({ch: ((0.0, 1.0), None, 0.0, 0.0)}, [])
    _clean()


def test_a_write_that_fails_leaves_the_old_file():
    _clean()
    calcmd.set("a.temperature", {"poly": [0, 1]})
    before = store.read_json(cal.PATH)
    os.mkdir(cal.PATH + ".new")  # a directory in the way: opening the new copy fails
    try:
        w0 = store.writes
        _devtest.raises(OSError, calcmd.set, "a.temperature", {"poly": [5, 1]})
        _devtest.raises(OSError, calcmd.clear, "a.temperature")
        assert store.writes == w0
    finally:
        os.rmdir(cal.PATH + ".new")
    assert store.read_json(cal.PATH) == before
    assert cal.load()[0] == {"a.temperature": ((0.0, 1.0), None, 0.0, 0.0)}
    assert calcmd.set("a.temperature", {"poly": [5, 1]})["rev"] == 2  # and the next one works
    _clean()


# --- files written by others -----------------------------------------------------------------
def test_a_version_1_file_is_read_as_poly_offset_gain_and_converted_by_the_next_write():
    _clean()
    _put(
        {
            "sht4x": {"temperature": [1.0, -0.4], "humidity": [1.05, 2]},
            "battery": {"voltage": [0.98, 0.0]},
        }
    )
    table, problems = cal.load()
    assert problems == []
    assert table == {
        "sht4x.temperature": ((-0.4, 1.0), None, 0.0, 0.0),
        "sht4x.humidity": ((2.0, 1.05), None, 0.0, 0.0),
        "battery.voltage": ((0.0, 0.98), None, 0.0, 0.0),
    }
    v = {"sht4x.temperature": 21.7, "sht4x.humidity": 40.0, "battery.voltage": 4.0}
    assert cal.apply(table, v) == []
    assert _close(v["sht4x.temperature"], 21.3) and _close(v["sht4x.humidity"], 44.0)
    assert _close(v["battery.voltage"], 3.92)
    version, entries, problems = calcmd.read_file()
    assert version == 1 and problems == []
    assert entries["sht4x.humidity"] == {"poly": [2, 1.05]}
    assert calcmd.set("soil.moisture", {"poly": [0, 1]})["rev"] == 1
    f = _file()
    assert f["version"] == 2
    assert f["entries"]["sht4x.temperature"] == {"poly": [-0.4, 1.0]}
    assert f["entries"]["battery.voltage"] == {"poly": [0.0, 0.98]}
    assert f["entries"]["soil.moisture"] == {"poly": [0.0, 1.0], "rev": 1}
    assert calcmd.read_file()[0] == 2
    _clean()


def test_invalid_entries_are_flagged_and_the_others_applied():
    _clean()
    _put(
        {
            "version": 2,
            "entries": {
                "a.temperature": {"poly": [-0.4, 1], "rev": 2},
                "a.humidity": {"poly": [0, 1, 2, 3, 4], "rev": 1},
                "a.pressure": "x",
                "a.colour": {"poly": [0]},
            },
        }
    )
    table, problems = cal.load()
    assert table == {
        "a.temperature": ((-0.4, 1.0), None, 0.0, 0.0),
        "a.humidity": None,
        "a.pressure": None,
        "a.colour": None,
    }
    assert sorted(problems) == [
        "cal a.humidity poly: must be a list of 1..4 numbers",
        "cal a.pressure: the entry must be an object",
        "cal: 'colour' is not a quantity",
    ]
    v = {"a.temperature": 20.0, "a.humidity": 50.0, "a.pressure": 1000.0}
    assert sorted(cal.apply(table, v)) == ["a.humidity", "a.pressure"]
    assert v == {"a.temperature": 19.6, "a.humidity": 50.0, "a.pressure": 1000.0}
    version, entries, problems2 = calcmd.read_file()
    assert version == 2 and entries["a.pressure"] == "x" and sorted(problems2) == sorted(problems)
    # a set elsewhere keeps them as they are; a set of the channel replaces its entry
    calcmd.set("a.humidity", {"poly": [1, 1]})
    assert _file()["entries"]["a.pressure"] == "x"
    assert cal.load()[0]["a.humidity"] == ((1.0, 1.0), None, 0.0, 0.0)
    _clean()


def test_a_damaged_file_flags_every_channel_and_a_set_starts_afresh():
    _clean()
    for text, problem in (
        ("{not json", "/cal_test.json unreadable: no calibration applied"),
        ("", "/cal_test.json unreadable: no calibration applied"),
        ("[1, 2]", "/cal_test.json is not a calibration table: no calibration applied"),
        (
            '{"version": 2, "entries": []}',
            "/cal_test.json has no entries object: no calibration applied",
        ),
    ):
        _put(text)
        table, problems = cal.load()
        assert table == {"*": None} and problems == [problem], (text, table, problems)
        v = {"a.temperature": 20.0, "b.voltage": 3.3}
        assert sorted(cal.apply(table, v)) == ["a.temperature", "b.voltage"]
        assert v == {"a.temperature": 20.0, "b.voltage": 3.3}
        assert calcmd.read_file() == (None, {}, [problem])
    assert calcmd.set("a.temperature", {"poly": [0, 1]})["rev"] == 1
    assert cal.load() == ({"a.temperature": ((0.0, 1.0), None, 0.0, 0.0)}, [])
    _clean()


def test_a_damaged_file_with_a_good_last_copy_uses_that_copy_and_says_so():
    _clean()
    calcmd.set("a.temperature", {"poly": [1, 1]})
    calcmd.set("a.temperature", {"poly": [2, 1]})
    _put("{cut")
    table, problems = cal.load()
    assert table == {"a.temperature": ((1.0, 1.0), None, 0.0, 0.0)}
    assert problems == ["/cal_test.json unreadable, using last good copy"]
    assert calcmd.set("a.temperature", {"poly": [3, 1]})["rev"] == 2  # on top of the good copy
    assert cal.load() == ({"a.temperature": ((3.0, 1.0), None, 0.0, 0.0)}, [])
    _clean()


def test_an_unknown_version_is_flagged_and_never_overwritten():
    _clean()
    text = json.dumps({"version": 3, "entries": {"a.temperature": {"poly": [0, 1]}}})
    _put(text)
    problem = "/cal_test.json version 3 is unknown to this firmware: no calibration applied"
    assert cal.load() == ({"*": None}, [problem])
    assert calcmd.read_file() == (3, {}, [problem])
    e = _devtest.raises(config.Invalid, calcmd.set, "a.temperature", {"poly": [0]})
    assert str(e) == "cal: /cal_test.json version 3 is unknown to this firmware: not overwritten"
    e = _devtest.raises(config.Invalid, calcmd.clear, "a.temperature")
    assert str(e) == "cal: /cal_test.json version 3 is unknown to this firmware: not overwritten"
    assert _text() == text
    _clean()


def test_apply_allocates_no_more_than_the_new_floats():
    # Each arithmetic step makes a float (boxed on these ports); nothing else may grow with
    # the number of channels: no list, tuple, dict or string per channel.
    _clean()
    qs = ("temperature", "humidity", "pressure", "co2", "voltage", "current")
    temp = {"ch": "t.temperature", "ref": 25, "k": 0.1}
    for q in qs:
        calcmd.set("s." + q, {"poly": [0.5, 1.01, 1e-4, 1e-6], "temp": temp})
    table, _ = cal.load()
    x = 10.0
    gc.collect()
    a0 = gc.mem_alloc()
    y = x * 1.5
    float_bytes = gc.mem_alloc() - a0
    used = []
    for n in (1, len(qs)):
        values = {"s." + q: x for q in qs[:n]}
        values["t.temperature"] = 21.0
        gc.collect()
        a0 = gc.mem_alloc()
        uncal = cal.apply(table, values)
        used.append(gc.mem_alloc() - a0)
        assert uncal == []
    assert _close(values["s.co2"], 0.5 + 10.1 + 0.01 + 0.001 - 0.4) and y == 15.0
    # a cubic with a temperature term: 3 + 3 for the poly, 3 for the term
    per_channel = (used[1] - used[0]) / (len(qs) - 1)
    assert 0 < per_channel <= 9 * float_bytes, (used, float_bytes)
    _clean()


def test_load_leaves_the_rules_out_of_the_heap_unless_a_command_is_using_them():
    import motekit

    _clean()
    calcmd.set("a.temperature", {"poly": [0, 1], "id": "c" * 40, "ref": "r" * 64})
    # As on a wake: the rules not loaded (this file's own reference keeps its copy alive).
    del sys.modules["motekit.calcmd"]
    delattr(motekit, "calcmd")
    try:
        gc.collect()
        a0 = gc.mem_alloc()
        table, problems = cal.load()
        gc.collect()
        used = gc.mem_alloc() - a0
        assert table == {"a.temperature": ((0.0, 1.0), None, 0.0, 0.0)} and problems == []
        assert "motekit.calcmd" not in sys.modules and not hasattr(motekit, "calcmd")
        assert used < 1024, used  # the table and its tuple; not the rules' bytecode
    finally:
        sys.modules["motekit.calcmd"] = calcmd
        motekit.calcmd = calcmd
    # a `cal` command running (the module loaded) keeps it
    assert cal.load()[0] == table
    assert sys.modules["motekit.calcmd"] is calcmd and motekit.calcmd is calcmd
    _clean()
    assert cal.load() == ({}, [])  # no file: nothing to check
