"""`mote gateway` and the gateway service (host_tools/gateway.py, host_tools/cli/gateway.py).

On a private virtual air, an AirNode plays a LoRaWAN node with frames built by the host frame
and crypto modules: its join request gets a join accept on the air at its simulated time + 5 s,
its data uplinks come out as JSON lines with the decrypted payload, a confirmed one is acked at
+ 1 s. The Semtech UDP path runs against a fake network server on a localhost socket, the
serial path against a fake gateway node speaking the console protocol. Waits are bounded
(frames over loopback arrive at once); nothing asserts on elapsed time.
"""

import base64
import json
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakenode import frame as node_frame
from test_network_server import APP_KEY, DEV_EUI, JOIN_EUI, otaa_record

from host_tools.errors import ProtocolError
from host_tools.gateway import Gateway, GatewayError, Heard, SerialGateway, SimGateway
from host_tools.lorawan import forwarder as fw
from host_tools.lorawan import frames
from host_tools.lorawan.frames import MType
from host_tools.lorawan.server import NetworkServer
from host_tools.registry import Registry
from host_tools.sim.air import Air, AirNode, Frame, LoraMeta

WAIT_S = 5.0
EU = 868_100_000

Mote = Callable[..., tuple[int, str, str]]


@pytest.fixture
def air(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Air:
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    return Air("gw-test")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.json"
    with Registry(path).edit() as devices:
        devices["a1"] = otaa_record()
    return path


def node_recv(node: AirNode, timeout_s: float = WAIT_S) -> Frame | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        got = node.recv_nowait()
        if got is not None:
            return got
        select.select([node], [], [], left)
    return None


def wait_for_listener(air: Air) -> None:
    deadline = time.monotonic() + WAIT_S
    while not any(p.role == "listener" for p in air.peers(refresh=True)):
        assert time.monotonic() < deadline, "the gateway never joined the air"
        time.sleep(0.01)


def up(node: AirNode, phy: bytes, t_sim_ms: int, freq: int = EU, sf: int = 7) -> None:
    node.send(Frame(node.node_id, phy, LoraMeta(freq, sf, rssi_dbm=-70.0, snr_db=8.5), t_sim_ms))


def join_request(dev_nonce: int) -> bytes:
    return frames.build_join_request(APP_KEY, int(JOIN_EUI, 16), int(DEV_EUI, 16), dev_nonce)


class Session:
    def __init__(self, accept_phy: bytes, dev_nonce: int) -> None:
        ja = frames.decrypt_join_accept(accept_phy, APP_KEY)
        self.dev_addr = ja.dev_addr
        self.nwk, self.app = ja.session_keys(APP_KEY, dev_nonce)

    def data(self, fcnt: int, payload: bytes, confirmed: bool = False) -> bytes:
        mtype = MType.CONFIRMED_UP if confirmed else MType.UNCONFIRMED_UP
        return frames.build_data(
            mtype,
            self.dev_addr,
            fcnt,
            nwk_s_key=self.nwk,
            app_s_key=self.app,
            fport=1,
            payload=payload,
        )


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


# ---- the CLI on the virtual air -----------------------------------------------------------------


def test_sim_json_join_then_uplinks_with_downlinks_at_the_nodes_time(
    air: Air, registry: Path, mote: Mote
) -> None:
    args = ["gateway", "--sim", "--air", air.name, "--registry", str(registry), "--json"]
    thread, rc = in_thread(lambda: mote(*args, "--count", "2", "--duration", "60"))
    wait_for_listener(air)
    with AirNode(air, "node-1") as node:
        up(node, join_request(0x0101), t_sim_ms=5_000)
        accept = node_recv(node)
        assert accept is not None, "no join accept on the air"
        m = accept.meta
        assert isinstance(m, LoraMeta)
        # JOIN_ACCEPT_DELAY1 after the end of the join request, RX1 on its channel and SF.
        assert (m.dir, m.dst, m.freq_hz, m.sf, accept.t_sim_ms) == ("down", "node-1", EU, 7, 10_000)
        session = Session(accept.payload, 0x0101)
        # docs/payload.md's example report: battery 3.7 V, an SHT4x at -4.1 degC / 44.98 %RH.
        up(node, session.data(0, bytes.fromhex("46030e74fe661192"), confirmed=True), 70_000)
        ack = node_recv(node)
        assert ack is not None and ack.t_sim_ms == 71_000  # RECEIVE_DELAY1
        frame = frames.parse(ack.payload)
        assert isinstance(frame, frames.DataFrame) and frame.fctrl.ack
        assert frame.mic_ok(session.nwk, 0)
    thread.join(WAIT_S * 2)
    assert not thread.is_alive()
    code, out, err = rc[0]
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in lines] == ["join", "uplink"]
    join, uplink = lines
    assert join["dev_eui"] == DEV_EUI and join["src"] == "node-1"
    assert uplink["dev_addr"] == f"{session.dev_addr:08x}" == join["dev_addr"]
    assert (uplink["dev_eui"], uplink["fcnt"], uplink["fport"]) == (DEV_EUI, 0, 1)
    assert uplink["phy"] == session.data(0, bytes.fromhex("46030e74fe661192"), True).hex()
    if uplink.get("note") is None:  # host_tools.payload present
        assert uplink["values"] == {
            "battery.voltage": 3.7,
            "sht4x.temperature": -4.1,
            "sht4x.humidity": 44.98,
        }
    assert uplink["downlink"]["sent"] is True and uplink["downlink"]["window"] == "rx1"
    # The state file beside the registry now holds the DevNonce and the session.
    state = json.loads((registry.parent / "registry.network.json").read_text())
    assert state["devices"][DEV_EUI]["dev_nonces"] == [0x0101]


def test_sim_human_output_names_the_device_and_what_happened(
    air: Air, registry: Path, mote: Mote
) -> None:
    args = ["gateway", "--sim", "--air", air.name, "--registry", str(registry)]
    thread, rc = in_thread(lambda: mote(*args, "--count", "2", "--duration", "60"))
    wait_for_listener(air)
    with AirNode(air, "node-1") as node:
        up(node, join_request(5), t_sim_ms=1_000)
        assert node_recv(node) is not None
        up(node, join_request(5), t_sim_ms=30_000)  # the same DevNonce again
    thread.join(WAIT_S * 2)
    code, out, err = rc[0]
    assert code == 0
    assert "1 LoRaWAN device(s)" in err
    first, second = out.splitlines()
    assert re.match(r"join\s+a1\s+-> [0-9a-f]{8}", first)
    assert "rejected" in second and "devnonce_reused" in second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --port"),
        (["--sim", "--port", "/dev/null"], "give either --port"),
        (["--port", "/dev/null", "--air", "x"], "--air is for --sim"),
        (["--sim", "--forward", "nowhere"], "is not HOST:PORT"),
        (["--sim", "--gateway-eui", "12"], "not 8 bytes"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    args: list[str], message: str, registry: Path, air: Air, mote: Mote
) -> None:
    code, out, err = mote("gateway", "--registry", str(registry), "--duration", "0.01", *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert out == ""


def test_a_second_gateway_on_the_same_registry_is_refused(
    air: Air, registry: Path, mote: Mote
) -> None:
    from host_tools.lorawan.server import StateFile, state_path_for

    held = StateFile(state_path_for(registry))
    held.acquire()
    try:
        code, _, err = mote("gateway", "--sim", "--registry", str(registry), "--duration", "1")
    finally:
        held.close()
    assert code == 8 and "in use by another mote gateway" in err


# ---- the service with a forwarder -------------------------------------------------------------


class FakeNS:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.peer: tuple[str, int] | None = None
        self.got: list[tuple[int, int, dict[str, Any] | None]] = []  # (ident, token, body)

    def drain(self) -> None:
        while True:
            try:
                data, self.peer = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            _, token, ident = struct.unpack_from(">BHB", data)
            rest = data[12:] if ident in (0, 2, 5) else data[4:]
            self.got.append((ident, token, json.loads(rest) if rest else None))

    def of(self, ident: int) -> list[tuple[int, int, dict[str, Any] | None]]:
        return [g for g in self.got if g[0] == ident]


@pytest.fixture
def fake_ns() -> Iterator[FakeNS]:
    ns = FakeNS()
    yield ns
    ns.sock.close()


def step_until(gw: Gateway, cond: Callable[[], bool], ns: FakeNS | None = None) -> list[Any]:
    events: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        events += gw.step(0.05)
        if ns is not None:
            ns.drain()
        if cond():
            return events
    raise AssertionError("condition not reached")


def test_forwarding_pushes_frames_and_relays_the_servers_downlink(
    air: Air, fake_ns: FakeNS
) -> None:
    records = [otaa_record()]
    with SimGateway(air) as source, fw.UdpForwarder(fake_ns.addr, b"\x01" * 8) as fwd:
        gw = Gateway(source, NetworkServer(records), forwarder=fwd)
        assert gw.server.passive  # the real network server answers, not the bench one
        with AirNode(air, "node-9") as node:
            t_up = 4_295_000  # t_sim_ms * 1000 wraps the 32-bit tmst
            up(node, join_request(77), t_sim_ms=t_up)
            events = step_until(gw, lambda: bool(fake_ns.of(fw.PUSH_DATA)), fake_ns)
            assert events[0]["event"] == "join" and events[0]["passive"] is True
            assert events[0]["forwarded"] is True
            _, _, body = fake_ns.of(fw.PUSH_DATA)[0]
            assert body is not None
            (rx,) = body["rxpk"]
            assert rx["tmst"] == (t_up * 1000) % (1 << 32) and rx["datr"] == "SF7BW125"
            assert base64.b64decode(rx["data"]) == join_request(77)
            assert fake_ns.of(fw.PULL_DATA), "no PULL_DATA: the server could not answer"
            # The real server answers with a join accept for RX1 (tmst + 5 s), built here with
            # the same keys.
            real = NetworkServer(records, rng=None)
            accept = real.handle(join_request(77), Heard(join_request(77), EU, 7, 125_000,
                                 "4/5", -70, 8.5, t_up, 0.0).meta()).downlink  # fmt: skip
            assert accept is not None
            txpk = {
                "imme": False,
                "tmst": (rx["tmst"] + 5_000_000) % (1 << 32),
                "freq": 868.1,
                "powe": 14,
                "modu": "LORA",
                "datr": "SF7BW125",
                "codr": "4/5",
                "ipol": True,
                "size": len(accept.phy),
                "data": base64.b64encode(accept.phy).decode(),
            }
            assert fake_ns.peer is not None
            fake_ns.sock.sendto(fw.encode_pull_resp(0x4242, txpk), fake_ns.peer)
            events = step_until(gw, lambda: bool(fake_ns.of(fw.TX_ACK)), fake_ns)
            (ack,) = fake_ns.of(fw.TX_ACK)
            assert ack[1] == 0x4242 and ack[2] == {"txpk_ack": {"error": "NONE"}}
            kinds = [e["event"] for e in events]
            assert kinds == ["forwarded_downlink", "join_accept"]
            assert events[0]["sent"] is True and events[0]["delay_ms"] == 5000
            heard = node_recv(node)
            assert heard is not None and heard.payload == accept.phy
            assert heard.t_sim_ms == t_up + 5000
            # The bench server followed the join: the node's uplinks decode.
            session = Session(accept.phy, 77)
            up(node, session.data(0, b"\x01"), t_sim_ms=t_up + 60_000)
            events = step_until(gw, lambda: gw.heard == 2, fake_ns)
            assert events[-1]["event"] == "uplink" and events[-1]["payload"] == "01"


def test_a_forwarded_downlink_that_answers_no_uplink_is_refused(air: Air, fake_ns: FakeNS) -> None:
    with SimGateway(air) as source, fw.UdpForwarder(fake_ns.addr, b"\x01" * 8) as fwd:
        gw = Gateway(source, NetworkServer([]), forwarder=fwd)
        step_until(gw, lambda: bool(fake_ns.of(fw.PULL_DATA)), fake_ns)
        assert fake_ns.peer is not None
        txpk = {"tmst": 123, "freq": 868.1, "datr": "SF7BW125", "data": "QAE=", "size": 2}
        fake_ns.sock.sendto(fw.encode_pull_resp(9, txpk), fake_ns.peer)
        events = step_until(gw, lambda: bool(fake_ns.of(fw.TX_ACK)), fake_ns)
        assert events[0]["sent"] is False
        assert fake_ns.of(fw.TX_ACK)[0][2] == {"txpk_ack": {"error": "TOO_LATE"}}


# ---- a gateway node over serial ---------------------------------------------------------------

_REQ = re.compile(rb"@M1 (\d+) (.*) [0-9a-f]{8}\r?\n")


class FakeGatewayNode:
    """The console side of a node in gateway role, as a Transport: answers hold and the gw_*
    requests, sends gw_frame events on demand."""

    name = "/dev/fake-gw"

    def __init__(self, role: str = "gateway", late: bool = False) -> None:
        self.role = role
        self.late = late
        self.out = bytearray()
        self.requests: list[dict[str, Any]] = []

    def read(self, timeout_s: float) -> bytes:
        data, self.out[:] = bytes(self.out), b""
        return data

    def write(self, data: bytes) -> None:
        for m in _REQ.finditer(data):
            fid, req = int(m[1]), json.loads(m[2])
            self.requests.append(req)
            self.out += node_frame(fid, self._answer(req))

    def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        if cmd == "hold":
            return {"ok": True, "data": {"held": True, "was_held": False, "proto": 1}}
        if cmd == "release":
            return {"ok": True, "data": {"held": False}}
        if cmd.startswith("gw_") and self.role != "gateway":
            return {"ok": False, "err": "unknown_cmd", "msg": f"unknown command {cmd!r}"}
        if cmd == "gw_channel":
            return {"ok": True, "data": {"freq": EU, "sf": 7, "bw": 125_000}}
        if cmd == "gw_send":
            if self.late:
                return {"ok": True, "data": {"queued": False, "late_ms": 40}}
            return {"ok": True, "data": {"queued": True, "in_ms": req["delay_ms"] - 60}}
        return {"ok": False, "err": "unknown_cmd", "msg": cmd}

    def hear(self, phy: bytes, t: int) -> None:
        ev = {"ev": "gw_frame", "phy": phy.hex(), "rssi": -61, "snr": 9.25, "freq": EU, "sf": 7,
              "bw": 125_000, "cr": "4/5", "t": t}  # fmt: skip
        self.out += node_frame(0, ev)

    def close(self) -> None:
        pass


def test_serial_gateway_hears_events_and_sends_timed_downlinks() -> None:
    node = FakeGatewayNode()
    with SerialGateway(node, wait_s=1) as source:
        assert source.channel == {"freq": EU, "sf": 7, "bw": 125_000}
        gw = Gateway(source, NetworkServer([otaa_record()], rng=None))
        node.hear(join_request(3), t=1_000_123)
        events = gw.step(0.5)
        assert [e["event"] for e in events] == ["join"]
        assert events[0]["rssi"] == -61 and events[0]["t"] == 1_000_123
        (send,) = [r for r in node.requests if r["cmd"] == "gw_send"]
        # Timed on the gateway node's own clock: its uplink timestamp + JOIN_ACCEPT_DELAY1.
        assert (send["ref"], send["delay_ms"], send["freq"], send["sf"]) == (1_000_123, 5000, EU, 7)
        frames.decrypt_join_accept(bytes.fromhex(send["phy"]), APP_KEY)  # a good join accept
        assert events[0]["downlink"]["sent"] is True
    assert node.requests[-1]["cmd"] == "release"


def test_serial_gateway_reports_a_downlink_that_came_too_late() -> None:
    node = FakeGatewayNode(late=True)
    source = SerialGateway(node, wait_s=1)
    heard = Heard(b"\x40", EU, 7, 125_000, "4/5", -60, 9, 500, 0.0)
    with pytest.raises(GatewayError, match="40 ms after") as info:
        source.transmit(heard, b"\x60", freq_hz=EU, sf=7, bw_hz=125_000, delay_ms=1000)
    assert info.value.code == "TOO_LATE"


def test_a_node_not_in_gateway_role_is_named_as_such() -> None:
    with pytest.raises(ProtocolError, match="not in gateway role") as info:
        SerialGateway(FakeGatewayNode(role="node"), wait_s=1)
    assert info.value.err == "not_gateway" and "role gateway" in info.value.hint


def test_a_device_provisioned_while_the_gateway_runs_is_served(air: Air) -> None:
    registry: list[dict[str, Any]] = []
    with SimGateway(air) as source:
        gw = Gateway(source, NetworkServer(registry), reload=lambda: registry)
        with AirNode(air, "late-node") as node:
            registry.append(otaa_record())  # `mote provision` wrote the registry meanwhile
            up(node, join_request(1), t_sim_ms=2_000)
            events = step_until(gw, lambda: gw.heard == 1)
            assert events[0]["event"] == "join"
            assert node_recv(node) is not None


def test_json_mode_says_on_stderr_when_it_listens_and_sigterm_stops_it_cleanly(
    air: Air, registry: Path
) -> None:
    # A script (the HIL suite, a service manager) waits for the line on stderr, reads JSON from
    # stdout, and stops it with SIGTERM: the gateway leaves the air as after Ctrl-C.
    import os
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "host_tools.cli.main", "gateway", "--sim", "--air", air.name]
    cmd += ["--registry", str(registry), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert line.startswith(f"gateway on sim:{air.name}: 1 LoRaWAN device(s)"), line
        assert [p.role for p in air.peers(refresh=True)] == ["listener"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT_S * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == b""  # stdout held JSON lines only: none came
    assert air.peers(refresh=True) == []  # its registration went with it
