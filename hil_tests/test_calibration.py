"""Calibration on the rig's node through `mote calibrate`: a one-point offset against a known
reference value is written, verified live, applied to every reading from then on, listed, and
rolled back, leaving the node as it was. Runs unchanged on a bench: it picks a channel the node
has no calibration for and takes the reference as its own reading plus a known step, so no
reference instrument is needed to check the mechanics (the accuracy of a real calibration is the
reference's; docs/calibration.md)."""

from typing import Any

import pytest
from test_sensors import held

from host_tools.hil.node import Node

STEP = {"temperature": 0.5, "humidity": 2.0, "pressure": 1.0, "moisture": 2.0}


def _channel(sample: dict[str, Any], calibrated: dict[str, Any]) -> str | None:
    for channel in sorted(sample["raw"]):
        quantity = channel.split(".")[1]
        if quantity in STEP and channel not in calibrated:
            return channel
    return None


def test_a_one_point_offset_is_applied_verified_and_rolled_back(
    node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    mote = held(node, rig, capsys)
    registry = ["--registry", str(tmp_path / "registry.json")]
    before = mote("calibrate", "--show", *registry)
    sample = mote("read", "--raw")["samples"][0]
    channel = _channel(sample, before["entries"])
    if channel is None:
        pytest.skip("every channel on this rig's node is calibrated already; not touching them")
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
