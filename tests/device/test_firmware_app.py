# Device tests for firmware/motekit/app.py, run inside MicroPython on both virtual boards.
import json
import struct

import _devtest
import machine
from motekit import VERSION, app


def test_version_is_semver_text():
    parts = VERSION.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), VERSION


def test_reset_cause_name_of_power_on():
    assert machine.reset_cause() == machine.PWRON_RESET
    assert app.reset_cause_name() == "PWRON_RESET"


def test_load_falls_back_on_missing_and_broken_files():
    assert app._load("/nope.json", {"a": 1}) == {"a": 1}
    with open("/broken.json", "w") as f:
        f.write("{not json")
    assert app._load("/broken.json", 7) == 7
    with open("/good.json", "w") as f:
        json.dump({"period_s": 5}, f)
    assert app._load("/good.json", None) == {"period_s": 5}


def test_wake_counter_uses_rtc_memory_where_the_port_has_it():
    count, rtc = app._wake_count()
    if not hasattr(machine.RTC(), "memory"):
        assert (count, rtc) == (0, None)
        return
    rtc.memory(struct.pack("<I", 41))
    assert app._wake_count()[0] == 41
    rtc.memory(b"junk!")  # foreign content restarts the count
    assert app._wake_count()[0] == 0


def test_bluetooth_only_where_the_board_has_it():
    has_ble = json.dumps(machine.unique_id()) and len(machine.unique_id()) == 6
    try:
        import bluetooth  # noqa: F401

        imported = True
    except ImportError:
        imported = False
    assert imported == has_ble


def test_cpython_only_code_fails_here():
    # str.removeprefix and f-string "=" specifiers are CPython features MicroPython lacks.
    e = _devtest.raises(AttributeError, lambda: "motekit".removeprefix("mote"))
    assert "removeprefix" in str(e)
