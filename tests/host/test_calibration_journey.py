"""Issue 7's done-when: an unattended calibration of a virtual node against a reference node.

The device under test carries parts with known errors (offset, gain and a non-linearity) in its
SHT41 and its soil probe; the reference node has error-free models. `mote calibrate` drives both
boards' environment through their control channel (`--stimulus`, the "climate chamber"), takes
the reference from the second node (`--reference port:...`), fits and applies. Afterwards the
node's calibrated readings are within the sensors' stated accuracy of the true environment
across the range (at values between the setpoints too), where before they were not.
"""

import json
import shlex
import sys

import pytest
from fwnode import FirmwareNode, firmware_node
from simnode import Mote

from host_tools.calibration import sensors
from host_tools.registry import Registry

CONFIG = {
    "sample_period": 3600,
    "host_wait_ms": 60000,  # 1.2 s at speed 50: the window in which `mote hold` catches it
    "sensors": [
        {"kind": "sht4x", "id": "sht41"},
        {"kind": "soil", "options": {"pin": 34, "dry": 2540, "wet": 1270}},
    ],
}
# A poor part: 0.6 °C off, 3 % gain error, bowed; humidity 2.5 %RH off with a gain error; a soil
# probe whose output is 40 mV low with 4 % more swing, on top of the probe's own bow.
DUT_MODELS = [
    {
        "model": "sht4x",
        "bus": "i2c0",
        "addr": 0x44,
        "temperature": {"offset": 0.6, "gain": 1.03, "curve": 0.002, "pivot": 25, "noise": 0.01},
        "humidity": {"offset": 2.5, "gain": 0.96, "curve": 0.0008, "pivot": 50, "noise": 0.05},
        "noise_seed": 7,
    },
    {"model": "soil", "bus": "adc34", "offset": -40.0, "gain": 1.04, "noise": 0.5},
]
# The reference: error-free parts, and a probe without the bow (a linear reference instrument).
REF_MODELS = [
    {"model": "sht4x", "bus": "i2c0", "addr": 0x44},
    {"model": "soil", "bus": "adc34", "bow": 0.0},
]
RUNS = [
    # quantity, environment key, setpoints, fit, held fixed meanwhile, checked between setpoints
    ("temperature", "temperature_c", "0,10,20,30,40,50", "poly2", {}, [5, 17, 33, 46]),
    ("humidity", "humidity_rh", "10,30,50,70,90", "poly2", {"temperature_c": 25}, [20, 45, 80]),
    ("moisture", "soil_moisture_pct", "0,20,40,60,80,100", "poly3", {}, [10, 35, 55, 90]),
]
SENSOR = {"temperature": "sht41", "humidity": "sht41", "moisture": "soil"}
KIND = {"sht41": "sht4x", "soil": "soil"}


def _env(nodes: list[FirmwareNode], **values: float) -> None:
    for node in nodes:
        node.control("env", **values)


def _reading(mote: Mote, port: str, channel: str) -> tuple[float, float]:
    rc, out, err = mote("read", "--port", port, "--raw", "--json")
    assert rc == 0, err
    sample = json.loads(out)["samples"][0]
    return sample["values"][channel], sample["raw"][channel]


def _errors(mote: Mote, dut: FirmwareNode, ref: FirmwareNode, run: tuple) -> list[tuple]:
    quantity, key, _, _, fixed, between = run
    channel = f"{SENSOR[quantity]}.{quantity}"
    out = []
    for true in between:
        _env([dut, ref], **fixed, **{key: true})
        value, _ = _reading(mote, dut.sim.port, channel)
        accuracy = sensors.accuracy(KIND[SENSOR[quantity]], quantity, true)
        out.append((true, value, abs(value - true), accuracy))
    return out


@pytest.mark.timeout(600)
def test_an_unattended_run_brings_a_poor_node_within_its_sensors_accuracy(mote, tmp_path):
    registry = tmp_path / "registry.json"
    certs = tmp_path / "certificates"
    with (
        firmware_node("sim-esp32", CONFIG, models=DUT_MODELS, speed=50) as dut,
        firmware_node("sim-esp32", CONFIG, models=REF_MODELS, speed=50) as ref,
    ):
        for node in (dut, ref):  # caught in the host window after a reset, and held
            node.let_go_of_port()
            node.reset()
            rc, _, err = mote("hold", "--port", node.sim.port, "--wait", "20")
            assert rc == 0, err
        before = {run[0]: _errors(mote, dut, ref, run) for run in RUNS}
        for quantity, errors in before.items():
            assert any(err > acc for _, _, err, acc in errors), (quantity, errors)

        chamber = " ".join(
            [shlex.quote(sys.executable), "-m", "host_tools.cli.main", "simctl"]
            + [f"--control {shlex.quote(n.sim.control_path)}" for n in (dut, ref)]
        )
        records = {}
        for quantity, key, setpoints, fit_kind, fixed, _ in RUNS:
            _env([dut, ref], **fixed)
            sensor = SENSOR[quantity]
            rc, out, err = mote(
                "calibrate",
                "--port", dut.sim.port,
                "--sensor", sensor,
                "--quantity", quantity,
                "--reference", f"port:{ref.sim.port}",
                "--setpoints", setpoints,
                "--stimulus", f"{chamber} env {key}={{setpoint}}",
                "--fit", fit_kind,
                "--yes",
                "--json",
                "--registry", str(registry),
                "--out", str(certs),
            )  # fmt: skip
            assert rc == 0, err
            records[quantity] = record = json.loads(out)
            assert record["state"] == "applied", record
            assert record["verification"]["ok"] is True
            assert record["fit"]["kind"] == fit_kind
            assert len(record["points"]) == len(setpoints.split(","))
            for name in ("json", "html", "png"):
                assert (certs / f"{record['id']}.{name}").is_file()

        after = {run[0]: _errors(mote, dut, ref, run) for run in RUNS}
        for quantity, errors in after.items():
            assert all(err <= acc for _, _, err, acc in errors), (quantity, errors)

        # The node holds the three entries the certificates name; the registry has them.
        rc, out, err = mote("calibrate", "--port", dut.sim.port, "--show", "--json",
                            "--registry", str(registry))  # fmt: skip
        assert rc == 0, err
        shown = json.loads(out)
        for quantity, record in records.items():
            entry = shown["entries"][f"{SENSOR[quantity]}.{quantity}"]
            assert entry["id"] == record["id"]
            assert entry["poly"] == pytest.approx(record["fit"]["poly"], rel=1e-6)
        device_id = records["temperature"]["device_id"]
        history = Registry(registry).calibrations(device_id)
        assert [r["state"] for r in history] == ["applied"] * 3
