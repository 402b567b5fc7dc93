"""`mote gateway --port` with a real gateway-role board: one virtual LoRa board runs the firmware
with role=gateway (it listens on one channel in continuous RX and forwards what it hears over
serial), another is a node reporting on the EU868 default channels. Uplinks the node sends on
the gateway's channel reach the bench network server through the gateway board and are printed
with the node's values; the other channels are not heard (a single-channel gateway,
docs/gateway.md). The gateway board's downlinks reach the node over the virtual air
(docs/virtual-air.md, "Board downlinks"): an OTAA node joins through it and its confirmed
uplinks are acknowledged."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fwnode import SHT41, firmware_node

from host_tools.sim.air import Air, AirListener, LoraMeta

BOARD = "sim-esp32-sx1276"
NWK_S_KEY = "44024241ed4ce9a68c6a8bc055233fd3"
APP_S_KEY = "ec925802ae430ca77fd3dd73cb2cc588"
DEV_EUI = "0004a30b001c0531"
DEV_ADDR = "26011bdb"
GATEWAY_HZ = 868_100_000  # the gateway's default: the region's first join channel, lorawan_dr 5
UPLINKS = 9


def _registry(path: Path) -> None:
    lora = {
        "region": "EU868",
        "sub_band": None,
        "activation": "abp",
        "dev_eui": DEV_EUI,
        "join_eui": "0000000000000000",
        "dev_addr": DEV_ADDR,
        "nwk_s_key": NWK_S_KEY,
        "app_s_key": APP_S_KEY,
    }
    record = {"device_id": "abp1", "state": "complete", "lorawan": lora}
    path.write_text(json.dumps({"version": 1, "devices": {"abp1": record}}))
    path.chmod(0o600)  # it holds keys: mote refuses a registry others can read


@pytest.mark.timeout(300)
def test_a_gateway_role_board_forwards_the_uplinks_on_its_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    air_name = f"gwrole-{os.getpid()}"
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", air_name)
    registry = tmp_path / "registry.json"
    _registry(registry)
    out = tmp_path / "gateway.jsonl"
    node_cfg = {
        "sample_period": 60,
        "heartbeat": 60,
        "host_wait_ms": 0,
        "sensors": [{"kind": "sht4x"}],
        "uplinks": ["lorawan"],
        "lorawan_activation": "abp",
        "lorawan_dev_eui": DEV_EUI,
        "lorawan_dev_addr": DEV_ADDR,
        "lorawan_adr": False,
    }
    secrets = json.dumps({"lorawan.nwkskey": NWK_S_KEY, "lorawan.appskey": APP_S_KEY})
    sent: list[tuple[int, bytes]] = []  # (freq_hz, phy) of every uplink on the air
    with (
        AirListener(Air(air_name, root=tmp_path / "air"), kinds=["lora"], name="log") as log,
        firmware_node(BOARD, {"role": "gateway", "host_wait_ms": 0}) as gw,
    ):
        gw.let_go_of_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli.main", "gateway", "--port", gw.sim.port,
             "--json", "--registry", str(registry)],
            stdout=out.open("wb"), stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        try:
            time.sleep(3.0)  # the gateway answers and listens
            with firmware_node(
                BOARD, node_cfg, models=[SHT41], extra={"/secrets.json": secrets}, speed=200
            ) as node:
                node.control("env", temperature_c=21.5, humidity_rh=50.0)
                deadline = time.monotonic() + 150
                while len(sent) < UPLINKS and time.monotonic() < deadline:
                    for _ in node.items(0.2):  # keep the node's serial output drained
                        pass
                    while (f := log.recv(timeout_s=0)) is not None:
                        if isinstance(f.meta, LoraMeta) and f.meta.dir == "up":
                            sent.append((f.meta.freq_hz, f.payload))
            time.sleep(2.0)  # the last frame through the gateway board and the server
        finally:
            proc.terminate()
            proc.wait(10)

    events: list[dict[str, Any]] = [
        json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")
    ]
    ups = [e for e in events if e.get("event") == "uplink"]
    on_channel = [phy.hex() for freq, phy in sent if freq == GATEWAY_HZ]
    assert len(sent) >= UPLINKS, sent
    assert on_channel, f"none of {len(sent)} uplinks used {GATEWAY_HZ} Hz"
    # Frames from the gateway's channel only, in order, every one: the radio stays in continuous
    # RX (the last may still be on its way through the server when the test stops).
    forwarded = [e["phy"] for e in ups]
    assert forwarded, (out.read_text()[-800:], on_channel)
    assert forwarded == on_channel[: len(forwarded)], (forwarded, on_channel)
    assert len(forwarded) >= len(on_channel) - 1, (forwarded, on_channel)
    assert not [e for e in events if e.get("event") == "rejected"], events
    for e in ups:
        assert e["dev_eui"] == DEV_EUI and e["dev_addr"] == DEV_ADDR
        values = {ch.split(".")[-1]: v for ch, v in e["values"].items()}
        assert values["temperature"] == pytest.approx(21.5, abs=0.3)
        assert values["humidity"] == pytest.approx(50.0, abs=2.0)


APP_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
OTAA_EUI = "0004a30b001c0532"
JOIN_EUI = "70b3d57ed0000000"
SF12_HZ = 868_100_000  # the gateway at lorawan_dr 0: the first join channel at DR0 (SF12)
ACKED = 2  # confirmed uplinks acknowledged through the gateway board before the test stops


def _otaa_registry(path: Path) -> None:
    lora = {
        "region": "EU868",
        "sub_band": None,
        "activation": "otaa",
        "dev_eui": OTAA_EUI,
        "join_eui": JOIN_EUI,
        "app_key": APP_KEY,
    }
    record = {"device_id": "otaa1", "state": "complete", "lorawan": lora}
    path.write_text(json.dumps({"version": 1, "devices": {"otaa1": record}}))
    path.chmod(0o600)


@pytest.mark.timeout(300)
def test_an_otaa_node_joins_through_a_gateway_board_and_its_confirmed_uplinks_are_acked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The node joins at DR0 (lorawan_dr 0: every Join-Request at SF12, on one of the three join
    # channels), the gateway board listens on 868.1 MHz SF12: one request in three is heard, and
    # its Join-Accept goes out from the gateway board 5 s after RxDone on the board's clock, which
    # the air maps onto the node's (t_sim_of). Then confirmed uplinks, ACKed in RX1 the same way.
    air_name = f"gwotaa-{os.getpid()}"
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", air_name)
    registry = tmp_path / "registry.json"
    _otaa_registry(registry)
    out = tmp_path / "gateway.jsonl"
    node_cfg = {
        "sample_period": 160,  # 0.4 s at speed 400; an SF12 uplink then waits out the 1 % cycle
        "heartbeat": 160,
        "host_wait_ms": 300,
        "sensors": [{"kind": "sht4x"}],
        "uplinks": ["lorawan"],
        "lorawan_activation": "otaa",
        "lorawan_dev_eui": OTAA_EUI,
        "lorawan_join_eui": JOIN_EUI,
        "lorawan_adr": False,
        "lorawan_dr": 0,
        "lorawan_confirmed": True,
    }
    secrets = json.dumps({"lorawan.appkey": APP_KEY})
    sent: list[tuple[int, int, bytes]] = []  # (freq_hz, sf, phy) of every uplink on the air

    def events() -> list[dict[str, Any]]:
        return [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]

    def acked() -> list[dict[str, Any]]:
        return [
            e
            for e in events()
            if e.get("event") == "uplink"
            and e.get("confirmed")
            and (e.get("downlink") or {}).get("ack")
            and (e.get("downlink") or {}).get("sent")
        ]

    with (
        AirListener(Air(air_name, root=tmp_path / "air"), kinds=["lora"], name="log") as log,
        firmware_node(BOARD, {"role": "gateway", "host_wait_ms": 0, "lorawan_dr": 0}) as gw,
    ):
        gw.let_go_of_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli.main", "gateway", "--port", gw.sim.port,
             "--json", "--registry", str(registry)],
            stdout=out.open("wb"), stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        try:
            time.sleep(3.0)  # the gateway answers and listens
            with firmware_node(
                BOARD, node_cfg, models=[SHT41], extra={"/secrets.json": secrets}, speed=400
            ) as node:
                node.control("env", temperature_c=19.5, humidity_rh=55.0)
                deadline = time.monotonic() + 150
                while len(acked()) < ACKED and time.monotonic() < deadline:
                    for _ in node.items(0.2):  # keep the node's serial output drained
                        pass
                    while (f := log.recv(timeout_s=0)) is not None:
                        if isinstance(f.meta, LoraMeta) and f.meta.dir == "up":
                            sent.append((f.meta.freq_hz, f.meta.sf, f.payload))
                with node.client.session(wait_s=30):  # its next wake: the stats it kept
                    stats = node.client.request("stats")
        finally:
            proc.terminate()
            proc.wait(10)

    evs = events()
    joins = [e for e in evs if e.get("event") == "join"]
    ups = [e for e in evs if e.get("event") == "uplink"]
    assert joins, (out.read_text()[-1500:], sent)
    assert joins[0]["dev_eui"] == OTAA_EUI
    assert len(acked()) >= ACKED, (out.read_text()[-1500:], sent)
    assert not [e for e in evs if e.get("event") == "rejected"], evs
    # Every frame the gateway forwarded was sent on its channel; frames on the others were not.
    on_channel = [phy.hex() for freq, sf, phy in sent if (freq, sf) == (SF12_HZ, 12)]
    heard = [e["phy"] for e in evs if e.get("event") in ("join", "uplink")]
    assert heard and all(p in on_channel for p in heard), (heard, on_channel)
    # ... and it heard every one of them (continuous RX), but perhaps the last, still in flight.
    assert set(on_channel[:-1]) <= set(heard), (heard, on_channel)
    assert any((freq, sf) != (SF12_HZ, 12) for freq, sf, _ in sent), sent  # and some were not
    for e in ups:
        assert e["dev_eui"] == OTAA_EUI and e["dev_addr"] == joins[0]["dev_addr"]
        values = {ch.split(".")[-1]: v for ch, v in e["values"].items()}
        assert values["temperature"] == pytest.approx(19.5, abs=0.3)
        assert values["humidity"] == pytest.approx(55.0, abs=2.0)
    lws = stats["lorawan"]
    assert lws["joins"] >= 1, lws  # the Join-Accept came through the gateway board
    assert lws["acked"] >= ACKED - 1, lws  # the node saw the ACKs (the last may be in flight)
    assert lws["rx1"] >= 2, lws  # the Join-Accept and at least one ACK, in RX1
