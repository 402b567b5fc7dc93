"""The firmware's `cal` command over the console protocol, on virtual boards running the real
firmware (docs/protocol.md, "Commands"; /cal.json in docs/config.md): get/set/clear reload what
samples get, ident reads a chip's serial number, frc recalibrates an SCD41, and what cannot be
calibrated is flagged in samples, reports, `info` and `selftest`."""

import json
import re
from typing import Any

import pytest
from fwnode import CYCLE, SHT41, FirmwareNode, firmware_node
from test_node_day import CONFIG as DAY
from test_node_day import heap_budget

from host_tools.errors import ProtocolError
from host_tools.protocol.client import NodeClient
from host_tools.protocol.framing import Text

CONFIG = {
    "sample_period": 60,
    "host_wait_ms": 60000,
    "sensors": [{"kind": "battery"}, {"kind": "sht4x", "id": "sht41"}],
}
SPEED = 20  # the SCD41's 5 s shot, warm-ups and FRC waits pass 20 times faster
DAMAGED = "/cal.json unreadable: no calibration applied"


def refused(c: NodeClient, err: str, **req: Any) -> str:
    with pytest.raises(ProtocolError) as e:
        c.request("cal", timeout=10, **req)
    assert e.value.err == err, (e.value.err, str(e.value))
    return str(e.value)


def model(fw: FirmwareNode, addr: int) -> dict[str, Any]:
    for bus in fw.control("status")["hardware"]["i2c"]:
        for dev in bus["devices"]:
            if dev["address"] == addr:
                return dev  # type: ignore[no-any-return]
    raise AssertionError(f"no model at {addr:#x}")


def rail_on(fw: FirmwareNode) -> bool:
    return bool(fw.control("status")["hardware"]["sensor_rail"]["on"])


def read(c: NodeClient) -> dict[str, Any]:
    return c.request("read", timeout=30, raw=True)["samples"][0]  # type: ignore[no-any-return]


def calibration_check(c: NodeClient) -> dict[str, Any]:
    checks = c.request("selftest", timeout=30)["checks"]
    return next(ch for ch in checks if ch["name"] == "calibration")  # type: ignore[no-any-return]


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_get_set_clear_and_ident_over_the_console(board: str) -> None:
    with firmware_node(board, CONFIG, models=[SHT41], speed=SPEED) as fw:
        c = fw.client
        c.catch(20)
        fw.control("env", temperature_c=30.0, humidity_rh=50.0, supply_v=3.7)
        assert c.request("cal", op="get") == {"version": 2, "entries": {}, "problems": []}
        s = read(c)
        assert s["values"] == s["raw"] and "uncal" not in s

        # set: validated, stored with its rev, applied to the next sample
        entry = {
            "poly": [-2.0, 1.0, 0.001],
            "temp": {"ch": "sht41.temperature", "ref": 25.0, "k": 0.5},
            "id": "c20261121T101500Z-3f2a",
            "at": "2026-11-21T10:15:00Z",
            "ref": "port:/dev/ttyUSB1 sht41.humidity",
        }
        got = c.request("cal", op="set", channel="sht41.humidity", entry=entry)
        assert got == {"channel": "sht41.humidity", "entry": {**entry, "rev": 1}}
        s = read(c)
        x, t = s["raw"]["sht41.humidity"], s["raw"]["sht41.temperature"]
        want = -2.0 + x + 0.001 * x**2 + 0.5 * (t - 25.0)
        assert s["values"]["sht41.humidity"] == pytest.approx(want, abs=0.011)
        assert s["values"]["sht41.humidity"] != pytest.approx(x, abs=0.5)
        assert s["values"]["sht41.temperature"] == t and "uncal" not in s
        got = c.request("cal", op="set", channel="sht41.humidity", entry=entry)
        assert got["entry"]["rev"] == 2

        # refused: the field named, nothing changed
        msg = refused(
            c, "bad_value", op="set", channel="sht41.humidity", entry={"poly": [0, 1, 1e7]}
        )
        assert msg == "cal sht41.humidity poly[2]: 10000000.0 is out of range -1e6..1e6"
        msg = refused(c, "bad_value", op="set", channel="sht41.colour", entry={"poly": [0]})
        assert msg == "cal: 'colour' is not a quantity"
        refused(c, "bad_args", op="set", channel="sht41.humidity")
        refused(c, "bad_args", op="rollback")
        assert c.request("cal", op="get")["entries"] == {"sht41.humidity": {**entry, "rev": 2}}

        # ident: the chip's own serial number, read with the rail on, then off again
        serial = model(fw, 0x44)["serial"]
        got = c.request("cal", op="ident", sensor="sht41", timeout=10)
        assert got == {"sensor": "sht41", "kind": "sht4x", "serial": serial}
        assert not rail_on(fw)
        got = c.request("cal", op="ident", sensor="battery", timeout=10)
        assert got == {"sensor": "battery", "kind": "battery", "serial": None}
        assert "no sensor 'nope'" in refused(c, "bad_key", op="ident", sensor="nope")
        fw.control("fault", target="i2c0:0x44", spec="detach")
        assert "no answer" in refused(c, "failed", op="ident", sensor="sht41")
        assert not rail_on(fw)
        fw.control("clear_faults")
        msg = refused(c, "bad_args", op="frc", sensor="sht41", ppm=420)
        assert msg == "sht41 is a sht4x: frc is for an scd41"

        # an entry whose temperature channel is not in the sample is flagged, not applied
        c.request(
            "cal",
            op="set",
            channel="battery.voltage",
            entry={"poly": [0.1, 1.0], "temp": {"ch": "ds.temperature", "ref": 20, "k": 0.01}},
        )
        s = read(c)
        assert s["uncal"] == ["battery.voltage"]
        assert s["values"]["battery.voltage"] == s["raw"]["battery.voltage"]
        check = calibration_check(c)
        assert check == {"name": "calibration", "ok": True, "msg": "2 channel(s) calibrated"}
        assert "cal_problems" not in c.request("info")

        # kept over a reset
        fw.reset()
        c.catch(20)
        entries = c.request("cal", op="get")["entries"]
        assert entries["sht41.humidity"]["rev"] == 2 and sorted(entries) == [
            "battery.voltage",
            "sht41.humidity",
        ]
        s = read(c)
        assert s["values"]["sht41.humidity"] != s["raw"]["sht41.humidity"]

        # clear: the channel goes back to its uncalibrated reading
        got = c.request("cal", op="clear", channel="sht41.humidity")
        assert got == {"channel": "sht41.humidity", "removed": True}
        assert c.request("cal", op="clear", channel="sht41.humidity")["removed"] is False
        assert c.request("cal", op="clear", channel="battery.voltage")["removed"] is True
        s = read(c)
        assert s["values"] == s["raw"] and "uncal" not in s
        assert c.request("cal", op="get")["entries"] == {}


def test_a_damaged_file_flags_every_channel_until_a_set_replaces_it() -> None:
    extra = {"/cal.json": '{"version": 2, "entr'}
    with firmware_node("sim-esp32", CONFIG, models=[SHT41], extra=extra, speed=SPEED) as fw:
        c = fw.client
        c.catch(20)
        info = c.request("info")
        assert info["cal_problems"] == [DAMAGED]
        assert c.request("cal", op="get") == {"version": None, "entries": {}, "problems": [DAMAGED]}
        s = read(c)
        assert sorted(s["uncal"]) == ["battery.voltage", "sht41.humidity", "sht41.temperature"]
        assert s["values"] == s["raw"]
        assert calibration_check(c) == {
            "name": "calibration",
            "ok": False,
            "msg": "0 channel(s) calibrated; " + DAMAGED,
        }
        assert ["W", DAMAGED] in [e[1:] for e in c.request("logs")["entries"]]

        # the duty cycle reports the flag with its sample
        c.release()
        report = c.wait_event("report", timeout_s=30)["data"]
        queued = report["samples"][-1]
        assert queued["uncal"] and sorted(queued["uncal"]) == sorted(queued["values"])
        fw.reset()
        c.catch(20)

        c.request("cal", op="set", channel="sht41.temperature", entry={"poly": [-0.5, 1.0]})
        assert "cal_problems" not in c.request("info")
        s = read(c)
        assert "uncal" not in s
        assert s["values"]["sht41.temperature"] == pytest.approx(
            s["raw"]["sht41.temperature"] - 0.5, abs=0.011
        )
        assert calibration_check(c)["ok"] is True


def test_a_version_1_file_keeps_calibrating_and_the_next_write_converts_it() -> None:
    v1 = {"sht41": {"temperature": [1.0, -0.5]}, "battery": {"voltage": [1.0, 0.25]}}
    with firmware_node(
        "sim-rp2", CONFIG, models=[SHT41], extra={"/cal.json": json.dumps(v1)}
    ) as fw:
        c = fw.client
        c.catch(20)
        got = c.request("cal", op="get")
        assert got == {
            "version": 1,
            "entries": {
                "sht41.temperature": {"poly": [-0.5, 1.0]},
                "battery.voltage": {"poly": [0.25, 1.0]},
            },
            "problems": [],
        }
        s = read(c)
        assert s["values"]["sht41.temperature"] == pytest.approx(
            s["raw"]["sht41.temperature"] - 0.5, abs=0.011
        )
        assert s["values"]["battery.voltage"] == pytest.approx(
            s["raw"]["battery.voltage"] + 0.25, abs=0.011
        )
        c.request("cal", op="set", channel="sht41.humidity", entry={"poly": [1.0, 1.0]})
        got = c.request("cal", op="get")
        assert got["version"] == 2
        assert got["entries"]["battery.voltage"] == {"poly": [0.25, 1.0]}
        assert got["entries"]["sht41.humidity"] == {"poly": [1.0, 1.0], "rev": 1}


def test_frc_measures_recalibrates_and_persists_an_scd41() -> None:
    cfg = {**CONFIG, "sensors": [{"kind": "scd41", "id": "co2"}, {"kind": "sht4x"}]}
    scd41 = {"model": "scd41", "bus": "i2c0", "addr": 0x62}
    with firmware_node("sim-rp2", cfg, models=[scd41, SHT41], speed=SPEED) as fw:
        c = fw.client
        c.catch(20)
        fw.control("env", co2_ppm=800.0, temperature_c=25.0, humidity_rh=50.0)
        assert read(c)["values"]["co2.co2"] == pytest.approx(800, abs=1)
        writes = model(fw, 0x62)["eeprom_writes"]
        for ppm in (399, 2001):
            msg = refused(c, "bad_value", op="frc", sensor="co2", ppm=ppm)
            assert msg == f"ppm: {ppm} is out of range 400..2000"
        refused(c, "bad_args", op="frc", sensor="co2", ppm="420")
        refused(c, "bad_args", op="frc", sensor="co2")
        msg = refused(c, "bad_args", op="frc", sensor="sht4x", ppm=420)
        assert msg == "sht4x is a sht4x: frc is for an scd41"

        got = c.request("cal", op="frc", sensor="co2", ppm=420, timeout=40)
        assert got == {"sensor": "co2", "reference_ppm": 420, "correction_ppm": -380}
        chip = model(fw, 0x62)
        assert chip["frc_offset_ppm"] == -380 and chip["eeprom_writes"] == writes + 1
        assert chip["commands"]["perform_forced_recalibration"] == 1
        assert not rail_on(fw)
        assert read(c)["values"]["co2.co2"] == pytest.approx(420, abs=1)
        got = c.request("cal", op="ident", sensor="co2", timeout=20)
        assert got == {"sensor": "co2", "kind": "scd41", "serial": chip["serial"]}

        fw.control("fault", target="i2c0:0x62", spec="detach")
        assert refused(c, "failed", op="frc", sensor="co2", ppm=420).startswith("co2: ")
        assert not rail_on(fw)


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_a_calibrated_node_keeps_its_duty_cycle_within_the_heap_budget(board: str) -> None:
    # Every channel of test_node_day.py's node calibrated, with full entries: the wake loads the
    # table (and drops the rules' module again) within docs/node-files.md's budget.
    text = "c20261121T101500Z-3f2a"
    entries = {
        ch: {
            "poly": [0.5, 1.01, -1e-4, 1e-6],
            "temp": {"ch": t, "ref": 25.0, "k": -0.01},
            "id": text,
            "at": "2026-11-21T10:15:00Z",
            "ref": f"port:/dev/ttyUSB1 {ch}".ljust(64, "."),
            "rev": 7,
        }
        for ch, t in (
            ("sht4x.temperature", "battery.voltage"),
            ("sht4x.humidity", "sht4x.temperature"),
            ("battery.voltage", "sht4x.temperature"),
        )
    }
    cal = json.dumps({"version": 2, "entries": entries})
    with firmware_node(board, DAY, models=[SHT41], extra={"/cal.json": cal}, speed=20000) as fw:
        seen = 0
        for item in fw.items(timeout_s=120):
            if isinstance(item, Text) and (m := CYCLE.search(item.text)):
                shown = re.search(r"sht4x.temperature=([\d.]+)", m[3])
                assert shown, m[0]
                temperature = float(shown[1])
                # 22 °C air, 3.7 V battery (the virtual board's defaults) through the entry
                want = 0.5 + 1.01 * 22 - 1e-4 * 22**2 + 1e-6 * 22**3 - 0.01 * (3.7 - 25)
                assert temperature == pytest.approx(want, abs=0.05), m[0]
                seen += 1
                if seen == 12:
                    break
        assert seen == 12, fw.log_text()
        with fw.client.session(wait_s=30):
            stats = fw.client.request("stats")
            info = fw.client.request("info")
        assert "cal_problems" not in info
        assert 0 < stats["totals"]["peak_heap"] <= heap_budget(board), stats["totals"]


def test_a_read_of_some_sensors_samples_only_those_and_frees_their_drivers() -> None:
    with firmware_node("sim-esp32", CONFIG, models=[SHT41], speed=SPEED) as fw:
        c = fw.client
        c.catch(20)
        free = c.request("info")["free_heap"]
        s = c.request("read", raw=True, sensors=["sht41"])["samples"][0]
        assert sorted(s["values"]) == sorted(s["raw"]) == ["sht41.humidity", "sht41.temperature"]
        assert s["missing"] == []
        whole = c.request("read", raw=True)["samples"][0]
        assert sorted(whole["values"]) == ["battery.voltage", *sorted(s["values"])]
        # The drivers a read imported are dropped again: the heap is back near where it was.
        assert c.request("info")["free_heap"] > free - 2048
        with pytest.raises(ProtocolError) as e:
            c.request("read", sensors="sht41")
        assert e.value.err == "bad_args"
