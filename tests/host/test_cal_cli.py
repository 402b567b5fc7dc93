"""`mote calibrate` on the command line: options refused with one line and exit code 2 before a
node is touched, and the soil shortcut (--dry-wet) run unattended on a virtual board."""

import json
import shlex
import sys

import pytest
from fwnode import firmware_node
from simnode import Mote

SOIL = {
    "sample_period": 3600,
    "host_wait_ms": 60000,
    "sensors": [{"kind": "soil", "options": {"pin": 34, "dry": 2540, "wet": 1270}}],
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--show", "--rollback"], "--show and --rollback do not go together"),
        (["--clear", "--frc", "420"], "--clear and --frc do not go together"),
        (["--dry-wet", "--quantity", "humidity"], "--dry-wet is the soil moisture shortcut"),
        (["--stimulus", "chamber set 25"], "{setpoint}"),
        (["--setpoints", "10,10"], "setpoint"),
        (["--fit", "poly9"], "poly9"),
    ],
)
def test_bad_options_exit_2_with_one_line(mote: Mote, args: list[str], message: str) -> None:
    rc, out, err = mote("calibrate", "--port", "/dev/nonexistent-port", "--sensor", "x", *args)
    assert rc == 2, err
    assert message in err
    assert "Traceback" not in err and out == ""


def test_no_port_is_one_line(mote: Mote, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTE_PORT", raising=False)
    rc, _, err = mote("calibrate", "--sensor", "soil", "--quantity", "moisture")
    assert rc == 2 and err.startswith("error: no port given")


@pytest.mark.timeout(300)
def test_dry_wet_calibrates_a_soil_probe_unattended(mote: Mote, tmp_path) -> None:
    # A probe with 5 % less swing and 70 mV high: 4.5 % in air, 99.5 % in water until
    # calibrated (inside 0..100: the driver reports its percentage clamped to that range).
    probe = {"model": "soil", "bus": "adc34", "gain": 0.95, "offset": 70.0, "bow": 0.0}
    with firmware_node("sim-esp32", SOIL, models=[probe], speed=50) as fw:
        fw.let_go_of_port()
        fw.reset()
        assert mote("hold", "--port", fw.sim.port, "--wait", "20")[0] == 0
        chamber = shlex.join(
            [
                sys.executable,
                "-m",
                "host_tools.cli.main",
                "simctl",
                "--control",
                fw.sim.control_path,
            ]
        )
        rc, out, err = mote(
            "calibrate", "--port", fw.sim.port, "--sensor", "soil", "--dry-wet",
            "--stimulus", f"{chamber} env soil_moisture_pct={{setpoint}}",
            "--yes", "--json", "--format", "md",
            "--registry", str(tmp_path / "registry.json"), "--out", str(tmp_path),
        )  # fmt: skip
        assert rc == 0, err
        record = json.loads(out)
        assert record["state"] == "applied" and record["fit"]["kind"] == "linear"
        assert [p["reference"] for p in record["points"]] == [0.0, 100.0]
        assert [p["raw"] for p in record["points"]] == pytest.approx([4.5, 99.5], abs=0.3)
        assert record["reference"]["source"] == "values 0, 100"
        assert (tmp_path / f"{record['id']}.md").is_file()
        for true in (0.0, 50.0, 100.0):
            fw.control("env", soil_moisture_pct=true)
            rc, out, err = mote("read", "--port", fw.sim.port, "--sensor", "soil", "--json")
            assert rc == 0, err
            assert json.loads(out)["samples"][0]["values"]["soil.moisture"] == pytest.approx(
                true, abs=1.0
            )
