"""The calibration session against a fake node at its boundary (NodeSide): the order of the steps,
what is written where, a verification that fails, rollback, clear, show and the SCD41's FRC.
The same flow runs against the real firmware in test_calibration_journey.py."""

import copy
import json
from typing import Any

import pytest

from host_tools.calibration import frc, history, stability
from host_tools.calibration.node import apply_entry
from host_tools.calibration.references import Reference, ValueReference
from host_tools.calibration.session import UI, Calibration, Plan
from host_tools.errors import CalibrationError, ConfigError
from host_tools.registry import Registry

FAST = stability.Rule(window=3, spread=0.5, drift_per_min=1e9, timeout_s=5.0)
DEVICE = "aabbccddeeff"


class World:
    """The truth around the fake node, and how its sensor departs from it."""

    def __init__(self) -> None:
        self.true = 20.0
        self.gain, self.offset = 1.1, -1.0

    def raw(self) -> float:
        return self.gain * self.true + self.offset


class FakeNode:
    """A NodeSide whose /cal.json is a dict and whose readings come from a World."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.entries: dict[str, dict[str, Any]] = {}
        self.ignore_cal = False  # a node that does not apply what it stores
        self.writes: list[tuple[str, Any]] = []
        self.frc_correction = 0.0

    def info(self) -> dict[str, Any]:
        return {"device_id": DEVICE, "board": "sim-esp32", "fw": "0.1.0", "build": "b1"}

    def kind_of(self, sensor: str) -> str:
        kinds = {"sht41": "sht4x", "scd41": "scd41"}
        if sensor not in kinds:
            raise ConfigError(f"the node has no sensor {sensor!r}")
        return kinds[sensor]

    def sample(self, channels: tuple[str, ...] = ()) -> dict[str, Any]:
        raw = self.world.raw() + self.frc_correction
        entry = None if self.ignore_cal else self.entries.get("sht41.temperature")
        return {
            "raw": {"sht41.temperature": raw, "scd41.co2": raw},
            "values": {"sht41.temperature": apply_entry(entry, raw, None), "scd41.co2": raw},
        }

    def cal_get(self) -> dict[str, Any]:
        return {"version": 2, "entries": copy.deepcopy(self.entries), "problems": []}

    def cal_set(self, channel: str, entry: dict[str, Any]) -> dict[str, Any]:
        rev = self.entries.get(channel, {}).get("rev", 0) + 1
        self.entries[channel] = stored = {**copy.deepcopy(entry), "rev": rev}
        self.writes.append(("set", entry.get("id")))
        return stored

    def cal_clear(self, channel: str) -> bool:
        self.writes.append(("clear", channel))
        return self.entries.pop(channel, None) is not None

    def ident(self, sensor: str) -> str | None:
        return "11a25c3d"

    def frc(self, sensor: str, ppm: int) -> dict[str, Any]:
        correction = ppm - self.world.raw()
        self.frc_correction = correction
        return {"sensor": sensor, "reference_ppm": ppm, "correction_ppm": round(correction)}


class Scripted(UI):
    """Moves the world to the next true value whenever the session asks for a point."""

    def __init__(self, world: World, trues: list[float], accept: bool = True) -> None:
        self.world, self.trues, self.accept = world, list(trues), accept
        self.said: list[str] = []

    def pause(self, text: str) -> None:
        self.world.true = self.trues.pop(0)

    def say(self, text: str) -> None:
        self.said.append(text)

    def confirm(self, record: dict[str, Any]) -> bool:
        return self.accept


class Live(Reference):
    """A reference instrument that reads the world's truth."""

    live = True
    description = "live fake"

    def __init__(self, world: World) -> None:
        self.world = world

    def read(self, t: float) -> float:
        return self.world.true


@pytest.fixture
def rig(tmp_path):
    world = World()
    node = FakeNode(world)
    registry = Registry(tmp_path / "registry.json")
    return world, node, registry, tmp_path / "certs"


def _calibrate(rig, trues, *, reference=None, accept=True, fit_kind=None, **plan):
    world, node, registry, out = rig
    ui = Scripted(world, trues, accept)
    p = Plan(sensor="sht41", quantity="temperature", fit_kind=fit_kind, rule=FAST, **plan)
    ref = reference or Live(world)
    return Calibration(node, ref, p, ui, registry=registry, out_dir=out).run()


def test_a_linear_calibration_is_written_verified_and_kept(rig):
    world, node, registry, out = rig
    result = _calibrate(rig, [10.0, 30.0], fit_kind="linear")
    record = result.record
    assert record["state"] == "applied"
    assert record["fit"]["poly"] == pytest.approx([1 / 1.1, 1 / 1.1], rel=1e-9)
    # The node holds it under the certificate's id, and reads the truth now.
    assert node.entries["sht41.temperature"]["id"] == record["id"]
    assert node.sample()["values"]["sht41.temperature"] == pytest.approx(world.true)
    assert record["verification"]["ok"] is True
    before = max(abs(0.1 * t - 1) for t in (10, 30))  # raw - true = 0.1 t - 1
    assert record["before"]["max_abs_error"] == pytest.approx(before)
    assert record["serial"] == "11a25c3d"
    assert json.loads((out / f"{record['id']}.json").read_text())["state"] == "applied"
    assert [r["id"] for r in registry.calibrations(DEVICE)] == [record["id"]]


def test_a_declined_fit_writes_nothing_to_the_node_but_keeps_its_certificate(rig):
    _, node, registry, _ = rig
    result = _calibrate(rig, [10.0, 30.0], accept=False)
    assert result.record["state"] == "declined"
    assert node.writes == []
    assert registry.calibrations(DEVICE)[0]["state"] == "declined"


def test_a_failed_verification_puts_the_previous_calibration_back(rig):
    _, node, registry, _ = rig
    first = _calibrate(rig, [10.0, 30.0]).record
    node.ignore_cal = True  # the node stores the next one but its readings do not follow
    node.world.gain = 1.3  # a changed part: the old calibration no longer fits either
    restored = "verification failed.*previous calibration restored"
    with pytest.raises(CalibrationError, match=restored):
        _calibrate(rig, [10.0, 30.0])
    assert node.entries["sht41.temperature"]["id"] == first["id"]
    states = [r["state"] for r in registry.calibrations(DEVICE)]
    assert states == ["applied", "failed_verification"]
    failed = registry.calibrations(DEVICE)[-1]
    assert failed["verification"]["ok"] is False
    assert "previous calibration restored" in failed["notes"]


def test_a_failed_first_verification_leaves_the_channel_uncalibrated(rig):
    _, node, _, _ = rig
    node.ignore_cal = True
    with pytest.raises(CalibrationError, match="calibration removed"):
        _calibrate(rig, [10.0, 30.0])
    assert node.entries == {}
    assert node.writes[-1] == ("clear", "sht41.temperature")


def test_a_fixed_reference_takes_one_value_per_point(rig):
    world, node, _, _ = rig
    # An ice point and a boiling point known to the user, typed as value:0,100.
    ref = ValueReference([0.0, 100.0])
    record = _calibrate(rig, [0.0, 100.0], reference=ref).record
    assert [p["reference"] for p in record["points"]] == [0.0, 100.0]
    assert record["points"][1]["raw"] == pytest.approx(world.gain * 100 + world.offset)
    assert record["verification"]["ok"] is True  # checked against the last point's value


def test_a_reference_outside_the_sensors_range_is_refused_before_anything_is_written(rig):
    _, node, registry, _ = rig
    with pytest.raises(CalibrationError, match="outside the sht4x's range"):
        _calibrate(rig, [10.0, 30.0], reference=ValueReference([10.0, 130.0]))
    assert node.writes == [] and registry.calibrations(DEVICE) == []


def test_a_poly2_needs_three_distinct_points(rig):
    with pytest.raises(CalibrationError, match="poly2"):
        _calibrate(rig, [10.0, 30.0], fit_kind="poly2", points=2)


def test_rollback_restores_the_previous_one_then_none(rig):
    _, node, registry, _ = rig
    first = _calibrate(rig, [10.0, 30.0]).record
    node.world.gain = 1.2
    second = _calibrate(rig, [10.0, 30.0]).record
    assert node.entries["sht41.temperature"]["id"] == second["id"]

    out = history.rollback(node, registry, "sht41.temperature")
    assert out == {
        "channel": "sht41.temperature",
        "rolled_back": second["id"],
        "restored": first["id"],
    }
    assert node.entries["sht41.temperature"]["id"] == first["id"]
    assert node.entries["sht41.temperature"]["poly"] == first["entry"]["poly"]

    out = history.rollback(node, registry, "sht41.temperature")
    assert out["restored"] is None and "sht41.temperature" not in node.entries
    assert [r["state"] for r in registry.calibrations(DEVICE)] == ["rolled_back"] * 2
    with pytest.raises(CalibrationError, match="has no calibration to roll back"):
        history.rollback(node, registry, "sht41.temperature")


def test_rollback_refuses_a_calibration_this_registry_does_not_know(rig):
    _, node, registry, _ = rig
    node.entries["sht41.temperature"] = {"poly": [0.0, 1.0], "id": "c-elsewhere", "rev": 1}
    with pytest.raises(CalibrationError, match="not in this registry's history"):
        history.rollback(node, registry, "sht41.temperature")
    assert node.entries["sht41.temperature"]["id"] == "c-elsewhere"


def test_clear_removes_the_entry_and_marks_its_record(rig):
    _, node, registry, _ = rig
    record = _calibrate(rig, [10.0, 30.0]).record
    assert history.clear(node, registry, "sht41.temperature") == {
        "channel": "sht41.temperature",
        "removed": True,
        "calibration": record["id"],
    }
    assert node.entries == {}
    assert registry.calibrations(DEVICE)[0]["state"] == "cleared"
    shown = history.show(node, registry, None)
    assert shown["entries"] == {} and shown["history"][0]["state"] == "cleared"


def test_frc_sends_the_reference_and_checks_the_chip_after(rig):
    world, node, registry, out = rig
    world.true, world.gain, world.offset = 420.0, 1.0, 60.0  # the chip reads 480 in 420 ppm air
    ui = Scripted(world, [420.0])
    result = frc.forced_recalibration(
        node, "scd41", 420, ui, registry=registry, out_dir=out, rule=FAST
    )
    record = result.record
    assert record["state"] == "frc"
    assert record["fit"]["correction_ppm"] == -60
    assert record["before"]["max_abs_error"] == pytest.approx(60.0)
    assert record["verification"]["ok"] is True
    assert registry.calibrations(DEVICE)[0]["kind"] == "scd41"


def test_frc_is_refused_for_another_sensor_and_outside_its_range(rig):
    world, node, registry, out = rig
    ui = Scripted(world, [])
    with pytest.raises(ConfigError, match="SCD41"):
        frc.forced_recalibration(node, "sht41", 420, ui, registry=registry, rule=FAST)
    with pytest.raises(ConfigError, match="400..2000"):
        frc.forced_recalibration(node, "scd41", 5000, ui, registry=registry, rule=FAST)
