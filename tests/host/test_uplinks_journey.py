"""Issue 6's done-when, as a user runs it: a virtual LoRa board with BLE (sim-esp32-sx1276, a
TTGO LoRa32) is provisioned by `mote provision` (a BTHome bind key, LoRaWAN OTAA keys),
configured for both uplinks and released; `mote gateway --sim --json` and `mote scan --sim
--json` run as the user's commands on the same virtual air. The node joins through the gateway
and reports for a simulated day; both receivers print the values the environment was set to
(changed at noon), every frame counter is new, and the air log never breaks the EU868 duty cycle.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fwnode import SHT41, firmware_node

from host_tools.cli.main import main
from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.lorawan.region import duty_cycle_report
from host_tools.sim.air import Air, AirListener, LoraMeta

BOARD = "sim-esp32-sx1276"
SPEED = 3000
PERIOD_S = 7200  # one report every two hours: a day is 12 reports
REPORTS = 12
MORNING = {"temperature_c": 18.5, "humidity_rh": 61.0}
AFTERNOON = {"temperature_c": 24.25, "humidity_rh": 44.0}
CONFIG = {
    "sample_period": PERIOD_S,
    "heartbeat": PERIOD_S,  # a report every wake
    "host_wait_ms": 3000,
    "sensors": [{"kind": "sht4x", "id": "sht41"}],
    "uplinks": ["bthome", "lorawan"],
    "ble_adv_count": 2,
    "ble_adv_interval_ms": 50,
}


def _mote(*args: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()
    rc = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out) if out.strip() else None


def _receiver(cmd: list[str], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.main", *cmd],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.mark.timeout(420)
def test_a_provisioned_node_joins_and_reports_a_day_over_lorawan_and_bthome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    air_name = f"journey-{os.getpid()}"
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", air_name)
    registry = str(tmp_path / "registry.json")
    gw_out, scan_out = tmp_path / "gateway.jsonl", tmp_path / "scan.jsonl"
    air_log: list[tuple[int, int, float]] = []  # (t_end_ms, freq_hz, toa_ms) per LoRa uplink

    with (
        firmware_node(BOARD, CONFIG, models=[SHT41], speed=SPEED) as fw,
        AirListener(Air(air_name, root=tmp_path / "air"), kinds=["lora"], name="log") as log,
    ):
        fw.control("env", **MORNING)
        port = fw.sim.port
        fw.let_go_of_port()
        assert _mote("hold", "--port", port, "--wait", "15", capsys=capsys)["held"] is True
        record = _mote(
            "provision", "--port", port, "--registry", registry, "--lorawan-region", "EU868",
            capsys=capsys,
        )  # fmt: skip
        assert record["bthome"] and record["lorawan"]["activation"] == "otaa"
        procs = [
            _receiver(["gateway", "--sim", "--json", "--registry", registry], gw_out),
            _receiver(["scan", "--sim", "--json", "--registry", registry], scan_out),
        ]
        try:
            time.sleep(2.0)  # both listening before the node's first report
            _mote("release", "--port", port, capsys=capsys)
            deadline = time.monotonic() + 360
            changed = False
            while time.monotonic() < deadline:
                time.sleep(0.5)
                while (f := log.recv(timeout_s=0)) is not None:
                    assert isinstance(f.meta, LoraMeta) and f.t_sim_ms is not None
                    toa = time_on_air_ms(len(f.payload), sf=f.meta.sf, bw_hz=f.meta.bw_hz)
                    air_log.append((f.t_sim_ms, f.meta.freq_hz, toa))
                ups = [e for e in _lines(gw_out) if e.get("event") == "uplink"]
                if not changed and len(ups) >= REPORTS // 2:
                    fw.control("env", **AFTERNOON)  # noon: the node is asleep until its next wake
                    changed = True
                    noon = len(ups)
                if len(ups) >= REPORTS:
                    break
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)

    events = _lines(gw_out)
    joins = [e for e in events if e.get("event") == "join"]
    ups = [e for e in events if e.get("event") == "uplink"]
    assert joins, events[:5]  # OTAA through mote gateway
    assert len(ups) >= REPORTS, f"{len(ups)} uplinks in time; {events[-3:]}"
    assert not [e for e in events if e.get("event") == "rejected"]
    dev_eui = record["lorawan"]["dev_eui"]
    assert {e["dev_eui"] for e in ups} == {dev_eui}
    fcnts = [e["fcnt"] for e in ups]
    assert fcnts == sorted(set(fcnts)), fcnts  # every counter new
    for i, e in enumerate(ups):
        want = MORNING if i < noon else AFTERNOON
        values = {ch.split(".")[-1]: v for ch, v in e["values"].items()}  # one SHT41
        assert values["temperature"] == pytest.approx(want["temperature_c"], abs=0.3), e
        assert values["humidity"] == pytest.approx(want["humidity_rh"], abs=2.0), e

    adverts = [a for a in _lines(scan_out) if a.get("values")]
    assert adverts, _lines(scan_out)[:3]
    assert all(a["encrypted"] and a["error"] is None for a in adverts)
    temps = {round(a["values"]["temperature"], 1) for a in adverts}
    assert any(abs(t - MORNING["temperature_c"]) <= 0.3 for t in temps), temps
    assert any(abs(t - AFTERNOON["temperature_c"]) <= 0.3 for t in temps), temps

    assert len(air_log) >= REPORTS
    assert duty_cycle_report(air_log) == []
