# Device tests for firmware/motekit/app.py, run inside MicroPython on both virtual boards: the
# app built from a board file and a config, one duty cycle at a time (no sleeping).
import json
import time

import _devtest
import _simctl
import machine
from motekit import VERSION, app, config, log

config.SCHEMA_PATH = "/.firmware/motekit/schema.json"  # the repository's copy, mounted
ESP32 = _simctl.request("status")["board"] == "sim-esp32"
log.echo = False

# A board file as the deploy writes it, with this virtual board's pins.
BOARD = {
    "name": "bench-board",
    "mcu": "esp32" if ESP32 else "rp2040",
    "pins": {
        "i2c": [{"id": 0, "scl": 22, "sda": 21} if ESP32 else {"id": 0, "scl": 5, "sda": 4}],
        "battery_adc": {"pin": 35, "divider": 2.0} if ESP32 else {"pin": 29, "divider": 3.0},
        "sensor_power": 25 if ESP32 else 15,
    },
    "sleep": {"mode": "deep", "rtc_memory_bytes": 2048} if ESP32 else {"mode": "light"},
    "watchdog_max_ms": 8388,
    "power": {"supply_v": 3.3, "sleep_ua": 10, "active_ma": 40, "radio_ma": {}},
}


def _app(**cfg):
    with open("/board.json", "w") as f:
        json.dump(BOARD, f)
    cfg["version"] = 2
    with open("/config.json", "w") as f:
        json.dump(cfg, f)
    return app.App()


def test_version_is_semver_text():
    parts = VERSION.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), VERSION


def test_reset_cause_name_of_power_on():
    assert machine.reset_cause() == machine.PWRON_RESET
    assert app.reset_cause_name() == "PWRON_RESET"


def test_the_app_takes_its_board_and_settings_from_files():
    a = _app(sample_period=120, log_level="warning", colour="red")
    assert a.board["name"] == "bench-board"
    assert a.deep == ESP32  # from board.json sleep.mode, not from the port
    assert a.retained.capacity == (2048 if ESP32 else 0)
    assert a.cfg["sample_period"] == 120 and a.cfg["heartbeat"] == 3600
    assert a.problems == ["colour: no such setting (ignored)"]
    assert a.mode == "run" and a.cause == "PWRON_RESET"


def test_a_cycle_samples_reports_and_schedules_the_next_wake():
    _simctl.request("env", supply_v=3.8)
    a = _app(sample_period=60)
    a.boot()
    t0 = time.ticks_ms()
    sleep_ms = a.cycle(t0)
    assert 59000 < sleep_ms <= 60000
    st = a.st
    assert st["last"]["battery.voltage"] == 3.8 or abs(st["last"]["battery.voltage"] - 3.8) < 0.02
    assert st["batch"] == [] and st["seq"] == 1  # sent: report 0
    assert st["stats"]["peak_heap"] > 0 and st["stats"]["flash_writes"] == 1  # /seq.json
    assert st["tot"] == {
        "cycles": 1,
        "reports": 1,
        "missed_periods": 0,
        "flash_writes": 1,
        "energy_mj": st["stats"]["energy_mj"],
        "peak_heap": st["stats"]["peak_heap"],
    }
    # the next cycle, due in the future, keeps the grid: one period after the last was due
    due = st["next"]
    a.cycle(time.ticks_ms())
    assert st["next"] == due + 60000


def test_a_late_wake_skips_the_missed_periods_and_says_so():
    a = _app(sample_period=60)
    a.boot()
    now = time.time_ns() // 1_000_000
    a.st["next"] = now - 150_000  # due 2.5 periods ago
    sleep_ms = a.cycle(time.ticks_ms())
    assert a.st["next"] == now - 150_000 + 3 * 60_000
    assert 29000 < sleep_ms <= 30000
    assert a.st["tot"]["missed_periods"] == 2
    assert log.entries()[-1][1:] == ["W", "missed 2 period(s)"]


def test_low_battery_lengthens_the_period_and_critical_stops_the_radio():
    a = _app(sample_period=60, low_battery_v=3.4, critical_battery_v=3.2, low_battery_factor=4)
    a.boot()
    _simctl.request("env", supply_v=3.3)
    sleep_ms = a.cycle(time.ticks_ms())
    assert a.st["low"] is True and not a.st.get("crit")
    assert sleep_ms > 4 * 59000
    _simctl.request("env", supply_v=3.1)
    a.cycle(time.ticks_ms())
    assert a.st["crit"] is True
    _simctl.request("env", supply_v=3.45)  # above low, but not by the 0.1 V hysteresis
    a.cycle(time.ticks_ms())
    assert a.st["low"] is True and a.st["crit"] is False
    _simctl.request("env", supply_v=3.8)
    a.cycle(time.ticks_ms())
    assert a.st["low"] is False


def test_calibration_then_ema_are_applied_to_samples():
    _simctl.request("env", supply_v=3.6)
    with open("/cal.json", "w") as f:
        json.dump({"battery": {"voltage": [1.0, 0.1]}}, f)
    a = _app(ema_alpha=0.5)
    s = a.sample(raw=True)
    assert abs(s["values"]["battery.voltage"] - (s["raw"]["battery.voltage"] + 0.1)) < 1e-9
    a.boot()
    a.cycle(time.ticks_ms())
    first = a.st["last"]["battery.voltage"]
    _simctl.request("env", supply_v=3.2)
    a.cycle(time.ticks_ms())
    halfway = a.st["ema"]["battery.voltage"]
    assert abs(halfway - (first + 3.3) / 2) < 0.03, (first, halfway)


def test_bluetooth_only_where_the_board_has_it():
    try:
        import bluetooth  # noqa: F401

        imported = True
    except ImportError:
        imported = False
    assert imported == ESP32


def test_cpython_only_code_fails_here():
    # str.removeprefix and f-string "=" specifiers are CPython features MicroPython lacks.
    e = _devtest.raises(AttributeError, lambda: "motekit".removeprefix("mote"))
    assert "removeprefix" in str(e)
