"""Calibration on the rig's node through `mote calibrate`: a one-point offset against a known
reference value is written, verified live, applied to every reading from then on, listed, and
rolled back, leaving the node as it was. Runs unchanged on a bench: it picks a channel the node
has no calibration for and takes the reference as its own reading plus a known step, so no
reference instrument is needed to check the mechanics (the accuracy of a real calibration is the
reference's; docs/calibration.md)."""

from typing import Any

import pytest
from test_sensors import Mote, held

from host_tools.hil.node import Node

STEP = {"temperature": 0.5, "humidity": 2.0, "pressure": 1.0, "moisture": 2.0}


def _channel(mote: Mote, calibrated: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    # A channel with no calibration yet, and its raw sample. Sensor by sensor, as a calibration
    # reads: a full read of every sensor is not what is tested here, and on the six-sensor
    # virtual ESP32 it is the heaviest console request there is (docs/drivers.md, "RAM").
    for sensor in mote("info")["config"]["sensors"]:
        sample = mote("read", "--raw", "--sensor", sensor)["samples"][0]
        for channel in sorted(sample["raw"]):
            if channel.split(".")[1] in STEP and channel not in calibrated:
                return channel, sample
    return None


def test_a_one_point_offset_is_applied_verified_and_rolled_back(
    node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    mote = held(node, rig, capsys)
    registry = ["--registry", str(tmp_path / "registry.json")]
    before = mote("calibrate", "--show", *registry)
    found = _channel(mote, before["entries"])
    if found is None:
        pytest.skip("every channel on this rig's node is calibrated already; not touching them")
    channel, sample = found
    sensor, quantity = channel.split(".")
    step = STEP[quantity]
    reference = round(sample["raw"][channel] + step, 2)

    record = mote(
        "calibrate", "--sensor", sensor, "--quantity", quantity,
        "--reference", f"value:{reference}", "--yes", "--out", str(tmp_path / "certs"),
        *registry,
    )  # fmt: skip
    try:
        assert record["state"] == "applied"
        assert record["fit"]["kind"] == "offset"
        assert record["verification"]["ok"] is True
        assert record["fit"]["poly"][1] == 1.0
        offset = record["fit"]["poly"][0]
        assert offset == pytest.approx(step, abs=step / 2)

        now = mote("read", "--raw", "--sensor", sensor)["samples"][0]
        assert "uncal" not in now
        assert now["values"][channel] == pytest.approx(now["raw"][channel] + offset, abs=0.02)
        shown = mote("calibrate", "--show", "--sensor", sensor, "--quantity", quantity, *registry)
        assert shown["entries"][channel]["id"] == record["id"]
        assert [r["id"] for r in shown["history"]] == [record["id"]]
    finally:
        back = mote(
            "calibrate", "--rollback", "--sensor", sensor, "--quantity", quantity, *registry
        )  # fmt: skip
    assert back == {"channel": channel, "rolled_back": record["id"], "restored": None}
    after = mote("read", "--raw", "--sensor", sensor)["samples"][0]
    assert after["values"][channel] == after["raw"][channel]
    assert channel not in mote("calibrate", "--show", *registry)["entries"]
    mote("release")
