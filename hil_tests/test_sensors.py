"""The sensors of the rig (--rig, see docs/testing.md) read through the firmware with
`mote read --json`: every one answers with a plausible value. On the virtual board the rig's
models are attached and the world can be changed, so the readings must also follow it, and a
detached sensor must be reported missing while the others keep reading."""

import json
from typing import Any

import pytest

from host_tools.cli.main import main
from host_tools.hil.node import Node

# What a bench indoors can show; a rig file's "ranges" overrides per quantity.
PLAUSIBLE = {
    "temperature": (0.0, 50.0),
    "humidity": (5.0, 95.0),
    "pressure": (800.0, 1100.0),
    "co2": (300.0, 5000.0),
    "voltage": (0.0, 30.0),
    "current": (-5.0, 5.0),
    "power": (0.0, 100.0),
    "moisture": (0.0, 100.0),
}


class Mote:
    """The `mote` CLI on the node's port, as a user runs it (the test's own port is closed)."""

    def __init__(self, node: Node, capsys: pytest.CaptureFixture[str]) -> None:
        self.port = node.port
        self.capsys = capsys

    def __call__(self, *args: str) -> Any:
        self.capsys.readouterr()
        rc = main([*args, "--port", self.port, "--wait", "15", "--json"])
        out, err = self.capsys.readouterr()
        assert rc == 0, err
        return json.loads(out)

    def read(self) -> dict[str, Any]:
        sample: dict[str, Any] = self("read")["samples"][0]
        return sample


def held(node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Mote:
    if node.sim is not None:
        for spec in rig.get("virtual", {}).get("attach", []):
            node.sim.control.request("attach", **spec)
        if rig.get("virtual", {}).get("env"):
            node.sim.control.request("env", **rig["virtual"]["env"])
    config = {"version": 2, "sample_period": 60, "host_wait_ms": 3000, "sensors": rig["sensors"]}
    node.install_firmware(config)
    node.hard_reset()
    node.close()
    mote = Mote(node, capsys)
    assert mote("hold")["held"] is True
    return mote


def ids(rig: dict[str, Any]) -> list[str]:
    return [s.get("id") or s["kind"] for s in rig["sensors"]]


def test_every_sensor_on_the_rig_reads_a_plausible_value(
    node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    mote = held(node, rig, capsys)
    sample = mote.read()
    assert sample["missing"] == [], sample["errors"]
    ranges = {**PLAUSIBLE, **{q: tuple(r) for q, r in rig.get("ranges", {}).items()}}
    seen = set()
    for channel, value in sample["values"].items():
        sid, quantity = channel.split(".")
        seen.add(sid)
        low, high = ranges[quantity]
        assert low <= value <= high, f"{channel} = {value}, expected {low}..{high}"
    assert seen == set(ids(rig))
    mote("release")


@pytest.mark.virtual_only
def test_readings_follow_the_world_and_a_detached_sensor_is_missing_alone(
    node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    control = node.sim.control  # type: ignore[union-attr]
    mote = held(node, rig, capsys)
    before = mote.read()["values"]
    control.request("env", **rig["virtual"]["changed_env"])
    after = mote.read()["values"]
    for channel, (want, tolerance) in rig["virtual"]["expect_after_change"].items():
        assert after[channel] == pytest.approx(want, abs=tolerance), (channel, before, after)

    gone = rig["virtual"]["detach"]
    control.request("fault", target=gone["target"], spec="detach")
    sample = mote.read()
    assert sample["missing"] == [gone["id"]], sample["errors"]
    assert "no answer" in sample["errors"][gone["id"]]
    kept = {ch.split(".")[0] for ch in sample["values"]}
    assert kept == set(ids(rig)) - {gone["id"]}
    control.request("clear_faults")
    assert mote.read()["missing"] == []
    mote("release")
