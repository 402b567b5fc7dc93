"""A virtual LoRa node running the real firmware with uplinks ["lorawan"] is power-cycled at
random points (simctl `reset power_on`: RTC memory lost, flash kept; and `reset watchdog`: RTC
memory kept as last saved, which may be older than what went on air) while the bench network
server (host_tools/lorawan/server.py through host_tools/gateway.py) serves it on the virtual
air. DevAddr + FCnt and DevNonce are in clear in the PHY header: none may ever repeat, and the
server must never see a replay (docs/lorawan.md, "Counters and persistence")."""

import json
import random
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from fwnode import SHT41, firmware_node

from host_tools.gateway import Gateway, SimGateway
from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.lorawan.region import duty_cycle_report
from host_tools.lorawan.server import NetworkServer
from host_tools.sim.air import Air, AirListener, LoraMeta

APP_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
NWK_S_KEY = "44024241ed4ce9a68c6a8bc055233fd3"
APP_S_KEY = "ec925802ae430ca77fd3dd73cb2cc588"
DEV_EUI = "0004a30b001c0530"
JOIN_EUI = "70b3d57ed0000000"
DEV_ADDR = "26011bda"
CYCLES = 8
SPEED = 200


def _setup(activation: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    config = {
        "sample_period": 60,
        "heartbeat": 60,  # a report every wake
        "host_wait_ms": 0,
        "sensors": [{"kind": "sht4x"}],
        "uplinks": ["lorawan"],
        "lorawan_activation": activation,
        "lorawan_dev_eui": DEV_EUI,
        "lorawan_join_eui": JOIN_EUI,
    }
    lora: dict[str, Any] = {
        "region": "EU868",
        "sub_band": None,
        "activation": activation,
        "dev_eui": DEV_EUI,
        "join_eui": JOIN_EUI,
    }
    if activation == "abp":
        config["lorawan_dev_addr"] = DEV_ADDR
        secrets = {"lorawan.nwkskey": NWK_S_KEY, "lorawan.appskey": APP_S_KEY}
        lora |= {"dev_addr": DEV_ADDR, "nwk_s_key": NWK_S_KEY, "app_s_key": APP_S_KEY}
    else:
        secrets = {"lorawan.appkey": APP_KEY}
        lora |= {"app_key": APP_KEY}
    record = {"device_id": "pc1", "state": "complete", "lorawan": lora}
    return config, secrets, record


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("board", "activation"),
    [("sim-esp32-sx1276", "abp"), ("sim-esp32-sx1276", "otaa"), ("sim-esp32-s3-sx1262", "otaa")],
)
def test_power_cycles_never_repeat_a_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, board: str, activation: str
) -> None:
    air_name = f"pc-{activation}-{tmp_path.name}"[:64]
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", air_name)
    config, secrets, record = _setup(activation)
    rng = random.Random(6)
    events: list[dict[str, Any]] = []
    extra = {"/secrets.json": json.dumps(secrets)}
    with (
        SimGateway(Air(air_name, root=tmp_path / "air")) as source,
        firmware_node(board, config, models=[SHT41], extra=extra, speed=SPEED) as fw,
    ):
        gw = Gateway(source, NetworkServer([record]), on_event=events.append)

        def serve(seconds: float) -> None:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                gw.step(min(left, 0.05))
                for _ in fw.items(0):  # keep the node's serial output drained
                    pass

        deadline = time.monotonic() + 60  # the first uplink (OTAA: after its join), then cuts
        while not any(e["event"] == "uplink" for e in events):
            assert time.monotonic() < deadline, events
            serve(0.2)
        for _ in range(CYCLES):
            serve(rng.uniform(0.0, 2.0))
            fw.reset(rng.choice(("power_on", "watchdog")))
        serve(4.0)

    joins = [e for e in events if e["event"] == "join"]
    ups = [e for e in events if e["event"] in ("uplink", "retransmission")]
    rejected = [e for e in events if e["event"] == "rejected"]
    assert not rejected, rejected  # no replay, no MIC failure
    assert not [e for e in events if e["event"] == "retransmission"]  # unconfirmed, NbTrans 1
    nonces = [struct.unpack_from("<H", bytes.fromhex(e["phy"]), 17)[0] for e in joins]
    assert len(set(nonces)) == len(nonces), nonces
    seen = [(bytes.fromhex(e["phy"])[1:5], e["fcnt"]) for e in ups]
    assert len(set(seen)) == len(seen), seen
    # The node made progress through the cuts: uplinks in several sessions' worth of wakes.
    assert len(ups) >= CYCLES // 2, (len(ups), [e["event"] for e in events])
    if activation == "otaa":
        assert joins


BROWNOUT_SPEED = 50
BROWNOUTS = 8


@pytest.mark.timeout(120)
def test_a_brownout_loop_at_sf12_never_breaks_the_duty_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ABP node at DR0 (SF12: a report is ~1.5 s on air, then band g1 is closed for ~2.5 min)
    # loses power as soon as each report is done, again and again: RTC memory is gone and the
    # wall clock starts again at the epoch. Its duty-cycle history comes back from flash as if
    # the last frame had just ended at the boot (docs/lorawan.md, "Counters and persistence"),
    # so the reports of boots inside the time-off are deferred; every few boots the node is
    # left running for a few wakes, long enough to send again. The air log must hold no
    # time-off or hourly violation.
    air_name = f"bo-{tmp_path.name}"[:64]
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", air_name)
    config, secrets, _ = _setup("abp")
    config["lorawan_dr"] = 0
    extra = {"/secrets.json": json.dumps(secrets)}
    air_log: list[tuple[int, int, float]] = []
    reports: list[str] = []
    with (
        AirListener(Air(air_name, root=tmp_path / "air"), kinds=["lora"], name="log") as air,
        firmware_node(
            "sim-esp32-sx1276", config, models=[SHT41], extra=extra, speed=BROWNOUT_SPEED
        ) as fw,
    ):

        def report() -> str:
            m = fw.wait_text(r"lorawan: report \d+: (\d+) frame\(s\) sent, (\d+) deferred", 30)
            return m.group(0)

        for i in range(BROWNOUTS):
            reports.append(report())
            if i % 4 == 3:  # left running: three more wakes, a minute apart
                for _ in range(3):
                    reports.append(report())
            fw.reset("power_on")
        reports.append(report())
        while (f := air.recv(timeout_s=0.5)) is not None:
            assert isinstance(f.meta, LoraMeta) and f.t_sim_ms is not None
            toa = time_on_air_ms(len(f.payload), sf=f.meta.sf, bw_hz=f.meta.bw_hz)
            air_log.append((f.t_sim_ms, f.meta.freq_hz, toa))

    sent = sum(int(r.split()[3]) for r in reports)
    deferred_after_power_on = [r for r in reports if " 0 frame(s) sent" in r]
    assert len(air_log) == sent >= 3, (len(air_log), reports)
    assert deferred_after_power_on, reports  # the restored history held reports back
    assert duty_cycle_report(air_log) == []
