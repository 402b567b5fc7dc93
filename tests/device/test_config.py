# firmware/motekit/config.py and schema.json on both virtual boards: every rule refuses a bad
# value with its exact message and accepts its edges; load() migrates, falls back and reports;
# set() persists. The expected ranges and defaults are written out here, so a schema edit that
# changes them fails a test.
import json
import os

import _devtest
from motekit import config, store

config.SCHEMA_PATH = "/.firmware/motekit/schema.json"  # the repository's copy, mounted
P = "/cfg_test.json"

DEFAULTS = {
    "sample_period": 60,
    "heartbeat": 3600,
    "batch": 1,
    "thresholds": {
        "temperature": 0.5,
        "humidity": 2.0,
        "pressure": 1.0,
        "co2": 50.0,
        "voltage": 0.05,
        "current": 0.01,
        "power": 0.05,
        "moisture": 2.0,
    },
    "sensors": [{"kind": "battery"}],
    "uplinks": ["console"],
    "filter_n": 3,
    "outlier": 3.5,
    "ema_alpha": 0.0,
    "low_battery_v": 3.4,
    "critical_battery_v": 3.2,
    "low_battery_factor": 4,
    "host_wait_ms": 3000,
    "watchdog_ms": 30000,
    "log_level": "info",
    "safe_mode_after": 3,
    "battery_mah": 0,
    "lorawan_region": "EU868",
    "lorawan_sub_band": 2,
    "lorawan_activation": "otaa",
    "lorawan_dev_eui": "",
    "lorawan_join_eui": "0000000000000000",
    "lorawan_dev_addr": "",
    "lorawan_confirmed": False,
    "lorawan_retries": 3,
    "lorawan_adr": True,
    "lorawan_dr": 5,
    "lorawan_single_channel": False,
    "lorawan_fport": 1,
    "ble_adv_count": 5,
    "ble_adv_interval_ms": 100,
    "bthome_encrypt": True,
    "role": "node",
}

KEYS = (  # in schema order (MicroPython dicts keep no order)
    "sample_period",
    "heartbeat",
    "batch",
    "thresholds",
    "sensors",
    "uplinks",
    "filter_n",
    "outlier",
    "ema_alpha",
    "low_battery_v",
    "critical_battery_v",
    "low_battery_factor",
    "host_wait_ms",
    "watchdog_ms",
    "log_level",
    "safe_mode_after",
    "battery_mah",
    "lorawan_region",
    "lorawan_sub_band",
    "lorawan_activation",
    "lorawan_dev_eui",
    "lorawan_join_eui",
    "lorawan_dev_addr",
    "lorawan_confirmed",
    "lorawan_retries",
    "lorawan_adr",
    "lorawan_dr",
    "lorawan_single_channel",
    "lorawan_fport",
    "ble_adv_count",
    "ble_adv_interval_ms",
    "bthome_encrypt",
    "role",
)

# key, low, high, the range as the message shows it, a value just below, one just above
NUMBERS = (
    ("sample_period", 10, 86400, "10..86400 s", 9, 86401),
    ("heartbeat", 60, 604800, "60..604800 s", 59, 604801),
    ("batch", 1, 16, "1..16", 0, 17),
    ("filter_n", 1, 9, "1..9", 0, 10),
    ("outlier", 0.0, 10.0, "0..10 MAD", -0.01, 10.01),
    ("ema_alpha", 0.0, 1.0, "0..1", -0.01, 1.01),
    ("low_battery_v", 2.5, 5.0, "2.5..5.0 V", 2.49, 5.01),
    ("critical_battery_v", 2.5, 5.0, "2.5..5.0 V", 2.49, 5.01),
    ("low_battery_factor", 1, 24, "1..24", 0, 25),
    ("host_wait_ms", 0, 60000, "0..60000 ms", -1, 60001),
    ("watchdog_ms", 1000, 120000, "1000..120000 ms", 999, 120001),
    ("safe_mode_after", 2, 20, "2..20", 1, 21),
    ("battery_mah", 0, 100000, "0..100000 mAh", -1, 100001),
    ("lorawan_sub_band", 1, 8, "1..8", 0, 9),
)
FLOATS = ("outlier", "ema_alpha", "low_battery_v", "critical_battery_v")
KINDS = "battery, sht4x, bme280, ds18b20, scd41, ina219, soil"


def _refused(message, key, value, cfg=None):
    e = _devtest.raises(config.Invalid, config.validate, key, value, cfg)
    assert str(e) == message, str(e)


def _clean():
    for suffix in ("", ".bak", ".new"):
        try:
            os.remove(P + suffix)
        except OSError:
            pass


def _put(obj):
    with open(P, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _file():
    with open(P) as f:
        return json.load(f)


# --- the schema ----------------------------------------------------------------------------------


def test_schema_has_every_key_with_its_default_and_the_defaults_are_valid():
    ents = config.entries()
    assert tuple(e["key"] for e in ents) == KEYS
    for e in ents:
        assert e["default"] == DEFAULTS[e["key"]], e["key"]
        assert e["type"] in ("int", "float", "bool", "str", "hex", "list", "map"), e["key"]
        assert isinstance(e["unit"], str), e["key"]
        assert isinstance(e["doc"], str) and 0 < len(e["doc"]) <= 80 and "\n" not in e["doc"]
        assert config.validate(e["key"], e["default"], DEFAULTS) == e["default"], e["key"]
    assert config.VERSION == 2
    with open(config.SCHEMA_PATH) as f:
        assert json.load(f)["version"] == config.VERSION


# --- each rule -----------------------------------------------------------------------------------


def test_numbers_accept_their_edges_and_refuse_one_step_outside():
    for key, lo, hi, shown, below, above in NUMBERS:
        assert config.validate(key, lo) == lo, key
        assert config.validate(key, hi) == hi, key
        _refused("%s: %r is out of range %s" % (key, below, shown), key, below)
        _refused("%s: %r is out of range %s" % (key, above, shown), key, above)
    _refused("sample_period: 0 is out of range 10..86400 s", "sample_period", 0)


def test_int_keys_refuse_bools_floats_and_strings():
    for key, lo, _hi, _shown, _b, _a in NUMBERS:
        if key in FLOATS:
            continue
        _refused("%s: True is not an integer" % key, key, True)
        _refused("%s: %r is not an integer" % (key, float(lo)), key, float(lo))
        _refused("%s: '%d' is not an integer" % (key, lo), key, str(lo))
        _refused("%s: None is not an integer" % key, key, None)


def test_float_keys_take_ints_as_floats_and_refuse_bools_strings_nan_and_inf():
    v = config.validate("outlier", 3)
    assert v == 3.0 and type(v) is float
    assert type(config.validate("ema_alpha", 1)) is float
    for key in FLOATS:
        _refused("%s: False is not a number" % key, key, False)
        _refused("%s: '3' is not a number" % key, key, "3")
        _refused("%s: nan is not a finite number" % key, key, float("nan"))
        _refused("%s: inf is not a finite number" % key, key, float("inf"))


def test_log_level_choices():
    for level in ("debug", "info", "warning", "error"):
        assert config.validate("log_level", level) == level
    _refused("log_level: 'loud' is not one of debug, info, warning, error", "log_level", "loud")
    _refused("log_level: 'INFO' is not one of debug, info, warning, error", "log_level", "INFO")
    _refused("log_level: 2 is not a string", "log_level", 2)


def test_lorawan_identity_keys_are_hex_of_their_length_or_empty():
    assert config.validate("lorawan_dev_eui", "70B3D57ED0000001") == "70b3d57ed0000001"
    assert config.validate("lorawan_dev_eui", "") == ""
    assert config.validate("lorawan_dev_addr", "0123abcd") == "0123abcd"
    _refused(
        "lorawan_dev_eui: '70b3d57ed00000' is not 16 hex digits",
        "lorawan_dev_eui",
        "70b3d57ed00000",
    )
    _refused(
        "lorawan_join_eui: '00000000000000zz' is not 16 hex digits",
        "lorawan_join_eui",
        "00000000000000zz",
    )
    _refused("lorawan_dev_addr: 19088743 is not 8 hex digits", "lorawan_dev_addr", 19088743)
    _refused("lorawan_region: 'AS923' is not one of EU868, US915", "lorawan_region", "AS923")
    _refused("lorawan_activation: 'ABP' is not one of otaa, abp", "lorawan_activation", "ABP")


def test_uplinks_choices_duplicates_and_count():
    assert config.validate("uplinks", ["console", "bthome", "lorawan"]) == [
        "console",
        "bthome",
        "lorawan",
    ]
    assert config.validate("uplinks", []) == []
    _refused(
        "uplinks[1]: 'wifi' is not one of console, bthome, lorawan", "uplinks", ["bthome", "wifi"]
    )
    _refused("uplinks[1]: 'console' is listed twice", "uplinks", ["console", "console"])
    _refused("uplinks: 'console' is not a list", "uplinks", "console")
    _refused("uplinks[0]: 1 is not a string", "uplinks", [1])
    four = ["console", "bthome", "lorawan", "console"]
    _refused("uplinks: 4 items, at most 3", "uplinks", four)


def test_thresholds_map_and_dotted_keys():
    assert config.validate("thresholds", {}) == {}
    v = config.validate("thresholds", {"temperature": 0, "co2": 25})
    assert v == {"temperature": 0.0, "co2": 25.0} and type(v["temperature"]) is float
    _refused("thresholds.colour: no such quantity", "thresholds", {"colour": 1.0})
    _refused("thresholds.humidity: -0.5 is below 0", "thresholds", {"humidity": -0.5})
    _refused("thresholds.humidity: 'x' is not a number", "thresholds", {"humidity": "x"})
    _refused("thresholds: [1] is not a map", "thresholds", [1])
    assert config.validate("thresholds.co2", 25) == 25.0
    assert config.validate("thresholds.co2", 0) == 0.0
    _refused("thresholds.co2: -1 is below 0", "thresholds.co2", -1)
    _refused("thresholds.colour: no such quantity", "thresholds.colour", 1.0)
    _refused("batch.x: no such setting", "batch.x", 1)


def test_sensor_entries():
    ok = [
        {"kind": "battery"},
        {"kind": "sht4x", "id": "air", "bus": "i2c0", "addr": 0x44},
        {"kind": "ds18b20", "id": "water_1", "bus": "onewire", "addr": "28FF4A1B2C3D4E5F"},
        {"kind": "soil", "bus": "adc", "options": {"pin": 33}},
        {"kind": "bme280", "addr": 0},
        {"kind": "ina219", "addr": 127, "id": "a234567890123456"},
        {"kind": "scd41", "bus": "i2c1"},
        {"kind": "sht4x", "id": "sht4x_2"},
    ]
    assert config.validate("sensors", ok) == ok
    assert config.validate("sensors", []) == []
    bad = (
        ([{"kind": "dht22"}], "sensors[0].kind: 'dht22' is not one of " + KINDS),
        ([{"id": "x"}], "sensors[0].kind: missing"),
        (["battery"], "sensors[0]: 'battery' is not a map"),
        ([{"kind": "soil", "pin": 3}], "sensors[0].pin: no such field"),
        ([{"kind": "soil", "id": "Soil"}], "sensors[0].id: 'Soil' is not 1..16 of a-z, 0-9, _"),
        ([{"kind": "soil", "id": ""}], "sensors[0].id: '' is not 1..16 of a-z, 0-9, _"),
        (
            [{"kind": "soil", "id": "a2345678901234567"}],
            "sensors[0].id: 'a2345678901234567' is not 1..16 of a-z, 0-9, _",
        ),
        ([{"kind": "soil", "id": 3}], "sensors[0].id: 3 is not 1..16 of a-z, 0-9, _"),
        (
            [{"kind": "sht4x", "bus": "spi"}],
            "sensors[0].bus: 'spi' is not one of i2c0, i2c1, onewire, adc",
        ),
        ([{"kind": "sht4x", "addr": 128}], "sensors[0].addr: 128 is out of range 0..127"),
        ([{"kind": "sht4x", "addr": -1}], "sensors[0].addr: -1 is out of range 0..127"),
        (
            [{"kind": "ds18b20", "addr": "28ff"}],
            "sensors[0].addr: '28ff' is not a 1-Wire ROM (16 hex digits)",
        ),
        (
            [{"kind": "ds18b20", "addr": "28ff4a1b2c3d4e5g"}],
            "sensors[0].addr: '28ff4a1b2c3d4e5g' is not a 1-Wire ROM (16 hex digits)",
        ),
        (
            [{"kind": "sht4x", "addr": 68.0}],
            "sensors[0].addr: 68.0 is not an I2C address or a 1-Wire ROM",
        ),
        ([{"kind": "soil", "options": 3}], "sensors[0].options: 3 is not a map"),
        (
            [{"kind": "battery"}, {"kind": "sht4x"}, {"kind": "sht4x"}],
            "sensors[2].id: 'sht4x' is already used by sensors[1]",
        ),
        (
            [{"kind": "battery"}, {"kind": "sht4x", "id": "battery"}],
            "sensors[1].id: 'battery' is already used by sensors[0]",
        ),
        (ok + [{"kind": "soil"}], "sensors: 9 items, at most 8"),
        ({"kind": "battery"}, "sensors: {'kind': 'battery'} is not a list"),
    )
    for value, message in bad:
        _refused(message, "sensors", value)


def test_the_critical_battery_level_stays_below_the_low_level():
    cfg = dict(DEFAULTS)  # low 3.4, critical 3.2
    assert config.validate("critical_battery_v", 3.39, cfg) == 3.39
    _refused(
        "critical_battery_v: 3.4 is not below low_battery_v (3.4)", "critical_battery_v", 3.4, cfg
    )
    assert config.validate("low_battery_v", 3.21, cfg) == 3.21
    _refused("low_battery_v: 3.2 is not above critical_battery_v (3.2)", "low_battery_v", 3.2, cfg)
    assert config.validate("critical_battery_v", 3.4) == 3.4  # without cfg: the range only


def test_unknown_keys():
    _refused("colour: no such setting", "colour", 1)
    _refused("colour.red: no such setting", "colour.red", 1)
    cfg = dict(DEFAULTS)
    e = _devtest.raises(config.Invalid, config.get, cfg, "colour")
    assert str(e) == "colour: no such setting"
    assert isinstance(e, ValueError)


# --- load ----------------------------------------------------------------------------------------


def test_no_file_gives_the_defaults_and_no_problems():
    _clean()
    assert config.load(P) == (DEFAULTS, [])


def test_load_reads_every_key_back():
    _clean()
    mine = dict(DEFAULTS)
    mine.update(sample_period=300, uplinks=["bthome"], sensors=[{"kind": "sht4x", "id": "a"}])
    mine["version"] = 2
    _put(mine)
    cfg, problems = config.load(P)
    del mine["version"]
    assert (cfg, problems) == (mine, [])


def test_migration_from_version_1():
    _clean()
    _put({"period_s": 120, "host_wait_ms": 500})  # the foundation firmware's file
    cfg, problems = config.load(P)
    assert problems == []
    expected = dict(DEFAULTS)
    expected.update(sample_period=120, host_wait_ms=500)
    assert cfg == expected
    # Saved in version 2 on the next set.
    config.set(cfg, "batch", 2, P)
    saved = _file()
    assert saved["version"] == 2 and saved["sample_period"] == 120 and "period_s" not in saved
    assert config.load(P) == (dict(expected, batch=2), [])
    _clean()


def test_migration_from_version_1_checks_the_values():
    _clean()
    _put({"period_s": 5.0})
    cfg, problems = config.load(P)
    assert cfg["sample_period"] == 60
    assert problems == ["sample_period: 5 is out of range 10..86400 s (using the default)"]
    _put({"period_s": 600.0})  # v1 took floats; a whole number migrates as an int
    cfg, problems = config.load(P)
    assert (cfg["sample_period"], type(cfg["sample_period"]), problems) == (600, int, [])
    _clean()


def test_bad_and_unknown_keys_fall_back_with_a_problem_each():
    _clean()
    _put({"version": 2, "colour": "red", "batch": 0, "log_level": "loud", "sample_period": 30})
    cfg, problems = config.load(P)
    assert cfg == dict(DEFAULTS, sample_period=30)
    assert sorted(problems) == [
        "batch: 0 is out of range 1..16 (using the default)",
        "colour: no such setting (ignored)",
        "log_level: 'loud' is not one of debug, info, warning, error (using the default)",
    ], problems
    _clean()


def test_inconsistent_battery_levels_in_the_file_fall_back_together():
    _clean()
    _put({"version": 2, "low_battery_v": 3.0, "critical_battery_v": 3.1, "batch": 3})
    cfg, problems = config.load(P)
    assert (cfg["low_battery_v"], cfg["critical_battery_v"], cfg["batch"]) == (3.4, 3.2, 3)
    assert problems == [
        "critical_battery_v: 3.1 is not below low_battery_v (3.0) (using the defaults of both)"
    ]
    _put({"version": 2, "low_battery_v": 3.0, "critical_battery_v": 2.9})  # consistent
    cfg, problems = config.load(P)
    assert (cfg["low_battery_v"], cfg["critical_battery_v"], problems) == (3.0, 2.9, [])
    _clean()


def test_unreadable_files_give_defaults_and_a_problem():
    _clean()
    _put("{not json")
    assert config.load(P) == (DEFAULTS, ["cfg_test.json unreadable, using defaults"])
    _put("[1, 2]")
    assert config.load(P) == (DEFAULTS, ["cfg_test.json is not a JSON object, using defaults"])
    _put({"version": "two", "batch": 2})
    assert config.load(P) == (
        dict(DEFAULTS, batch=2),
        ["cfg_test.json: version 'two' is not a version, read as 2"],
    )
    _put({"version": 3, "batch": 2})
    assert config.load(P) == (
        dict(DEFAULTS, batch=2),
        ["cfg_test.json is version 3, newer than this firmware's 2"],
    )
    _clean()


def test_a_damaged_file_is_recovered_from_the_last_good_copy():
    _clean()
    cfg, _ = config.load(P)
    config.set(cfg, "batch", 5, P)
    config.set(cfg, "batch", 6, P)
    _put('{"version": 2, "batch": ')
    cfg, problems = config.load(P)
    assert cfg == dict(DEFAULTS, batch=5)
    assert problems == ["cfg_test.json unreadable, using last good copy"]
    os.remove(P)
    with open(P + ".new", "w") as f:
        f.write("{")  # a cut while writing the next copy
    assert config.load(P) == (dict(DEFAULTS, batch=5), problems)
    _clean()


def test_the_default_path_and_a_missing_schema():
    assert config.PATH == "/config.json"
    assert config.SCHEMA_PATH.endswith("/motekit/schema.json")
    saved = config.SCHEMA_PATH
    config.SCHEMA_PATH = "/nope/schema.json"
    try:
        cfg, problems = config.load(P)  # never raises
    finally:
        config.SCHEMA_PATH = saved
    assert cfg == {} and len(problems) == 1 and problems[0].startswith("/nope/schema.json")


# --- set, get, reset -----------------------------------------------------------------------------


def test_set_persists_and_survives_a_fresh_load():
    _clean()
    cfg, _ = config.load(P)
    w0 = store.writes
    assert config.set(cfg, "sample_period", 300, P) == 300
    assert cfg["sample_period"] == 300
    assert store.writes == w0 + 1
    saved = _file()
    assert saved["version"] == 2 and saved["sample_period"] == 300
    assert len(saved) == len(DEFAULTS) + 1  # every key, and the version
    v = config.set(cfg, "outlier", 2, P)
    assert v == 2.0 and type(v) is float
    sensors = [{"kind": "battery"}, {"kind": "sht4x", "id": "air", "addr": 0x44}]
    assert config.set(cfg, "sensors", sensors, P) == sensors
    fresh, problems = config.load(P)
    assert problems == []
    assert fresh == dict(DEFAULTS, sample_period=300, outlier=2.0, sensors=sensors)
    assert fresh == cfg
    _clean()


def test_set_of_a_dotted_key_changes_one_item():
    _clean()
    cfg, _ = config.load(P)
    assert config.set(cfg, "thresholds.co2", 25, P) == 25.0
    assert config.get(cfg, "thresholds.co2") == 25.0
    fresh, _ = config.load(P)
    expected = dict(DEFAULTS["thresholds"], co2=25.0)
    assert fresh["thresholds"] == expected == cfg["thresholds"]
    _clean()


def test_a_refused_set_changes_nothing():
    _clean()
    cfg, _ = config.load(P)
    config.set(cfg, "batch", 4, P)
    before = dict(cfg)
    w0 = store.writes
    with open(P) as f:
        on_disk = f.read()
    for key, value in (
        ("batch", 0),
        ("colour", 1),
        ("thresholds.colour", 1),
        ("critical_battery_v", 3.5),  # not below low_battery_v
        ("sensors", [{"kind": "nope"}]),
    ):
        _devtest.raises(config.Invalid, config.set, cfg, key, value, P)
    assert cfg == before
    assert store.writes == w0
    with open(P) as f:
        assert f.read() == on_disk
    _clean()


def test_get_and_reset():
    _clean()
    cfg, _ = config.load(P)
    config.set(cfg, "heartbeat", 7200, P)
    config.set(cfg, "thresholds.humidity", 5, P)
    assert config.get(cfg, "heartbeat") == 7200
    assert config.get(cfg, "thresholds") == dict(DEFAULTS["thresholds"], humidity=5.0)
    assert config.reset(cfg, "heartbeat", P) == 3600
    assert config.reset(cfg, "thresholds.humidity", P) == 2.0
    assert cfg == DEFAULTS
    assert config.load(P) == (DEFAULTS, [])
    _clean()


def test_an_unknown_key_is_told_apart_from_a_bad_value():
    cfg, _ = config.load("/nope.json")
    _devtest.raises(config.UnknownKey, config.validate, "colour", 1)
    _devtest.raises(config.UnknownKey, config.validate, "thresholds.colour", 1.0)
    e = _devtest.raises(config.Invalid, config.validate, "sample_period", 0)
    assert not isinstance(e, config.UnknownKey)
