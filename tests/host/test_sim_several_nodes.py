"""Several virtual nodes at once, sharing one virtual air with a host listener."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.sim.air import Air, AirListener
from host_tools.sim.launcher import SimProcess

ADVERTISE = (
    "import bluetooth\n"
    "ble = bluetooth.BLE()\n"
    "ble.active(True)\n"
    "ble.gap_advertise(50_000, {payload!r})\n"
    "import time\n"
    "time.sleep_ms(400)\n"  # the controller repeats the advertisement while the node is awake
)


@pytest.fixture
def private_air(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Air:
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", "several")
    return Air("several", root=tmp_path / "air")


def exec_on(port: str, code: str, follow: bool = True) -> None:
    opts = [] if follow else ["--no-follow"]
    proc = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, "exec", *opts, code],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert proc.returncode == 0, proc.stderr


def test_two_nodes_advertise_on_one_air_and_a_listener_hears_both(private_air: Air) -> None:
    with (
        SimProcess("sim-esp32", baud=0) as a,
        SimProcess("sim-esp32", baud=0) as b,
        AirListener(private_air, kinds=["ble-adv"]) as listener,
    ):
        ids = {a.control.request("status")["node_id"], b.control.request("status")["node_id"]}
        assert len(ids) == 2  # each node has its own unique id and address
        payloads = {b"\x02\x01\x06\x05\x09node": None, b"\x02\x01\x06\x05\x09mote": None}
        (pa, pb) = payloads
        exec_on(a.port, ADVERTISE.format(payload=pa))
        exec_on(b.port, ADVERTISE.format(payload=pb))
        heard: dict[str, list[bytes]] = {}
        deadline = time.monotonic() + 10
        # The radios keep advertising after exec returns, as a controller does until stopped.
        while min((len(v) for v in heard.values()), default=0) < 3 or len(heard) < 2:
            assert time.monotonic() < deadline, f"heard only {heard}"
            frame = listener.recv(timeout_s=1.0)
            if frame is not None:
                heard.setdefault(frame.src, []).append(frame.payload)
        assert set(heard) == ids
        # Each node is heard with its own payload only, repeatedly.
        assert sorted({p for v in heard.values() for p in set(v)}) == sorted([pa, pb])
        assert all(len(set(v)) == 1 for v in heard.values())
        assert a.control.request("status")["ble_adv_sent"] >= 3


def test_advertising_stops_when_the_node_deep_sleeps(private_air: Air) -> None:
    with (
        SimProcess("sim-esp32", baud=0) as a,
        AirListener(private_air, kinds=["ble-adv"]) as listener,
    ):
        exec_on(
            a.port,
            ADVERTISE.format(payload=b"\x02\x01\x06")
            + "import machine\nmachine.deepsleep(60_000)\n",
            follow=False,  # the node goes to sleep: there is no end of output to wait for
        )
        deadline = time.monotonic() + 10
        while a.control.request("status")["mode"] != "asleep":
            assert time.monotonic() < deadline, "the node never went to sleep"
            time.sleep(0.05)
        while listener.recv(timeout_s=0.3) is not None:
            pass  # drain what was sent while awake
        sent = a.control.request("status")["ble_adv_sent"]
        assert listener.recv(timeout_s=0.5) is None
        assert a.control.request("status")["ble_adv_sent"] == sent
        assert a.control.request("status")["mode"] == "asleep"
