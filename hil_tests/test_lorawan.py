"""LoRaWAN end to end: the node under test joins (OTAA) through a gateway and its uplinks reach
`mote gateway --json`, the bench network server, with the rig's readings.

The node is provisioned with fresh OTAA keys into a temporary registry (`mote provision
--radios lora`), configured to report every wake over LoRaWAN, and released. The gateway is
`mote gateway --sim` on the node's own virtual air for a virtual board, or on a bench a second
LoRa board flashed with Motekit in gateway role (docs/testing.md, "LoRaWAN on a bench"):

    pytest hil_tests/test_lorawan.py --board sim-esp32-sx1276
    pytest hil_tests/test_lorawan.py --port /dev/ttyUSB0 --board ttgo-lora32-v1 \\
        --gateway-port /dev/ttyUSB1 --rig bench.json

What it checks: the join is accepted; UPLINKS uplinks arrive, decrypted and MIC-checked, with
strictly increasing frame counters; the server rejects no frame of the node; every value it
decodes is plausible for the rig (its "ranges") and close to what the node itself read (`mote
read`) just before, and every quantity the node reads is reported.

What it writes to a real node: the firmware and a config.json (the rig's sensors, `uplinks`
["console", "lorawan"], a 10 s period, zero thresholds: a report every wake), the LoRaWAN
settings (lorawan_region, lorawan_activation, lorawan_dev_eui, lorawan_join_eui,
lorawan_dev_addr; on a bench lorawan_single_channel during the test) and a new secret
lorawan.appkey, which replaces the one a network server knows: provision the node again for
that network after the test. Its BTHome bind key and other secrets are left alone; the node is
put back on the console uplink at the end. The temporary registry and its network state go
with the test.

Region: MOTE_LORAWAN_REGION (default EU868; US915 uses sub-band 2, the gateway board's default
then). On a bench the gateway board hears one channel at one spreading factor, so the node is
set to lorawan_single_channel: it joins and sends on the gateway's default channel.
MOTE_LORAWAN_WAIT_S (default 1200 s) bounds the wait.
"""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_sensors import PLAUSIBLE, Mote, held

from host_tools.errors import MoteError
from host_tools.hil.node import Node
from host_tools.sim.air import ROLE_LISTENER, Air

REGION = os.environ.get("MOTE_LORAWAN_REGION", "EU868")
UPLINKS = 3  # uplinks after the join
PERIOD_S = 10  # the shortest sample_period: a report every wake, one uplink each
VIRTUAL_WAIT_S = 120.0
BENCH_WAIT_S = float(os.environ.get("MOTE_LORAWAN_WAIT_S", "1200"))
# How far an uplink's value may be from the node's own reading of the same quantity a few
# seconds earlier (a bench's air and supply drift; a virtual world holds still).
CLOSE = {"temperature": 2.0, "humidity": 5.0, "pressure": 2.0, "co2": 100.0, "voltage": 0.1,
         "current": 0.05, "power": 0.2, "moisture": 5.0}  # fmt: skip


class GatewayProcess:
    """`mote gateway ... --json` as the user's command in a subprocess; its events as they come."""

    def __init__(self, args: list[str], out_dir: Path) -> None:
        self.out, self.err = out_dir / "gateway.jsonl", out_dir / "gateway.err"
        cmd = [sys.executable, "-m", "host_tools.cli.main", "gateway", "--json", *args]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=os.environ.copy())

    def events(self) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"mote gateway exited with {self.proc.returncode}: {self.err.read_text()[-800:]}"
            )

    def listening_on(self, air: Air, timeout_s: float = 20.0) -> None:
        """Wait until the gateway has joined the virtual air as a listener."""
        deadline = time.monotonic() + timeout_s
        while not any(
            p.role == ROLE_LISTENER and p.pid == self.proc.pid for p in air.peers(refresh=True)
        ):
            self.check_running()
            assert time.monotonic() < deadline, f"mote gateway not on air {air.name} in time"
            time.sleep(0.1)

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C: it leaves the air and exits 0
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.err.read_text()


@pytest.fixture(autouse=True)
def _lora_and_a_gateway(
    board: dict[str, Any], gateway_port: str | None, pytestconfig: pytest.Config
) -> None:
    # Autouse: runs before `node`, so a board that cannot run the test is not started or reset.
    if "lora" not in board["radios"]:
        pytest.skip(f"{board['name']} has no LoRa radio (board.json radios)")
    if pytestconfig.getoption("port") and gateway_port is None:
        pytest.skip(
            "LoRaWAN on a bench needs a gateway: pass --gateway-port PORT (a second LoRa board "
            "in gateway role, docs/testing.md) or set MOTE_GATEWAY_PORT"
        )


def _uplinks_config(mote: Mote) -> None:
    mote("config", "set", "uplinks", '["console", "lorawan"]')
    mote("config", "set", "sample_period", str(PERIOD_S))
    zero = ", ".join(f'"{q}": 0' for q in CLOSE)  # every wake a change: every wake reports
    mote("config", "set", "thresholds", "{" + zero + "}")


# The deploy, provisioning and the wait; a bench's joins are slow (docstring).
@pytest.mark.timeout(int(max(VIRTUAL_WAIT_S, BENCH_WAIT_S)) + 300)
def test_the_node_joins_through_a_gateway_and_its_uplinks_carry_its_readings(
    node: Node,
    rig: dict[str, Any],
    gateway_port: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One test, so that the firmware is deployed once.
    mote = held(node, rig, capsys)
    sample = mote.read()
    registry = str(tmp_path / "registry.json")
    record = mote(
        "provision", "--registry", registry, "--radios", "lora", "--lorawan-region", REGION
    )["lorawan"]
    assert record["activation"] == "otaa"
    dev_eui = record["dev_eui"]
    _uplinks_config(mote)
    if node.sim is None:
        # A gateway board hears one channel at one SF: the node joins and sends there only.
        mote("config", "set", "lorawan_single_channel", "true")

    source = (
        ["--sim", "--air", str(node.air)] if node.sim is not None else ["--port", str(gateway_port)]
    )
    gateway = GatewayProcess([*source, "--registry", registry], tmp_path)
    wait_s = VIRTUAL_WAIT_S if node.sim is not None else BENCH_WAIT_S
    try:
        if node.sim is not None:
            gateway.listening_on(Air(node.air))  # the node's first join request must be heard
        mote("release")  # the node's next cycle reports: it joins, then sends
        deadline = time.monotonic() + wait_s
        while True:
            gateway.check_running()
            events = [e for e in gateway.events() if e["dev_eui"] == dev_eui]
            ups = [e for e in events if e["event"] == "uplink"]
            if len(ups) >= UPLINKS or any(e["event"] == "rejected" for e in events):
                break
            assert time.monotonic() < deadline, (
                f"{len(ups)} uplink(s) of {dev_eui} in {wait_s:.0f} s; the gateway heard "
                f"{[e['event'] for e in gateway.events()][-10:]}"
            )
            time.sleep(0.5)
    finally:
        err = gateway.close()
        if node.sim is None:
            # A bench node would go on transmitting every 10 s after the suite: back on the
            # console uplink (a virtual one is thrown away). Best effort: a failure above counts.
            with contextlib.suppress(AssertionError, MoteError):
                mote("hold")
                mote("config", "set", "uplinks", '["console"]')
                mote("config", "set", "lorawan_single_channel", "false")
                mote("release")
    heard = gateway.events()
    mine = [e for e in heard if e["dev_eui"] == dev_eui]
    # On its own virtual air the server hears this node only; a bench's air has neighbours.
    rejected = [e for e in (heard if node.sim is not None else mine) if e["event"] == "rejected"]
    assert not rejected, [(e["reason"], e["error"]) for e in rejected]
    joins = [e for e in mine if e["event"] == "join"]
    assert joins, f"no join accepted; stderr: {err[-400:]}"
    ups = [e for e in mine if e["event"] == "uplink"]
    assert {e["dev_addr"] for e in ups} == {joins[-1]["dev_addr"]}  # the session of that join
    fcnts = [e["fcnt"] for e in ups]
    assert all(a < b for a, b in zip(fcnts, fcnts[1:], strict=False)), fcnts

    # The server names channels by sensor kind (sht4x, ds18b20_2), the node by its config ids
    # (sht41, soil_t): compare by quantity. A report may be split over frames (a slow data rate).
    ranges = {**PLAUSIBLE, **{q: tuple(r) for q, r in rig.get("ranges", {}).items()}}
    read: dict[str, list[float]] = {}
    for channel, value in sample["values"].items():
        read.setdefault(channel.split(".")[-1], []).append(value)
    reported: set[str] = set()
    for e in ups:
        assert e["fport"] == 1 and e["values"], e
        for channel, value in e["values"].items():
            quantity = channel.split(".")[-1]
            low, high = ranges[quantity]
            assert low <= value <= high, f"{channel} = {value}, expected {low}..{high} ({e['phy']})"
            near = min(abs(value - v) for v in read.get(quantity, [math.inf]))
            assert near <= CLOSE[quantity], f"{channel} = {value}; the node read {read}"
            reported.add(quantity)
    assert reported == set(read), (reported, sample)
