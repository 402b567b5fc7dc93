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
from host_tools.lorawan.server import NetworkServer
from host_tools.sim.air import Air

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
