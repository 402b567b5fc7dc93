"""The Semtech UDP packet forwarder (host_tools/lorawan/forwarder.py) against a fake network
server on a localhost UDP socket: PUSH_DATA content, keepalives, PULL_RESP -> downlink, TX_ACK.
The fake reads the datagrams with its own parsing (struct and json), not the forwarder's."""

import base64
import json
import socket
import struct
from collections.abc import Iterator

import pytest

from host_tools.errors import ConfigError
from host_tools.lorawan import forwarder as fw

EUI = bytes.fromhex("0102030405060708")
WAIT_S = 2.0


class FakeNS:
    """A network server's UDP socket: records what the gateway sends, answers as told."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(WAIT_S)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.peer: tuple[str, int] | None = None

    def recv(self) -> tuple[int, int, int, bytes, dict | None]:
        """(version, token, identifier, EUI, JSON body or None) of the next datagram."""
        data, self.peer = self.sock.recvfrom(65535)
        version, token, ident = struct.unpack_from(">BHB", data)
        eui, rest = data[4:12], data[12:]
        return version, token, ident, eui, (json.loads(rest) if rest else None)

    def send(self, data: bytes) -> None:
        assert self.peer is not None
        self.sock.sendto(data, self.peer)

    def close(self) -> None:
        self.sock.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ns() -> Iterator[FakeNS]:
    fake = FakeNS()
    yield fake
    fake.close()


def poll_until(fwd: fw.UdpForwarder, cond: object) -> list[fw.TxPacket]:
    # Wait (bounded) for datagrams to arrive, then poll: loopback delivers them in order.
    import select

    got: list[fw.TxPacket] = []
    for _ in range(20):
        select.select([fwd], [], [], WAIT_S / 20)
        got += fwd.poll()
        if cond():  # type: ignore[operator]
            return got
    return got


def test_push_data_carries_each_frame_as_an_rxpk(ns: FakeNS) -> None:
    phy = bytes.fromhex("40f17dbe4900020001954378762b11ff0d")
    pkt = fw.RxPacket(phy, 868_100_000, 9, 125_000, "4/5", -97.4, -3.5, 4_000_123_456, 1.7e9)
    with fw.UdpForwarder(ns.addr, EUI) as fwd:
        token = fwd.push([pkt])
        version, got_token, ident, eui, body = ns.recv()
        assert (version, got_token, ident, eui) == (2, token, 0x00, EUI)
        assert body is not None
        (rx,) = body["rxpk"]
        assert rx["tmst"] == 4_000_123_456
        assert rx["freq"] == 868.1
        assert rx["datr"] == "SF9BW125"
        assert rx["codr"] == "4/5"
        assert rx["modu"] == "LORA"
        assert rx["stat"] == 1
        assert rx["rssi"] == -97
        assert rx["lsnr"] == -3.5
        assert rx["size"] == len(phy)
        assert base64.b64decode(rx["data"]) == phy
        assert rx["time"] == "2023-11-14T22:13:20.000000Z"
        ns.send(struct.pack(">BHB", 2, token, 0x01))  # PUSH_ACK
        poll_until(fwd, lambda: fwd.stats.push_acks == 1)
        assert fwd.stats.push_acks == 1 and fwd.stats.bad == 0


def test_pull_data_opens_the_downlink_path_and_repeats_as_keepalive(ns: FakeNS) -> None:
    clock = Clock()
    with fw.UdpForwarder(ns.addr, EUI, keepalive_s=10, stat_interval_s=1e9, now=clock) as fwd:
        fwd.tick()
        version, token, ident, eui, body = ns.recv()
        assert (version, ident, eui, body) == (2, 0x02, EUI, None)
        ns.send(struct.pack(">BHB", 2, token, 0x04))  # PULL_ACK
        poll_until(fwd, lambda: fwd.stats.pull_acks == 1)
        assert fwd.stats.pull_acks == 1
        clock.t += 9.9
        fwd.tick()  # not due yet: nothing sent
        clock.t += 0.2
        fwd.tick()
        _, token2, ident2, _, _ = ns.recv()
        assert ident2 == 0x02 and fwd.stats.pulls == 2
        # An ack with an unknown token is not ours: counted as bad, not as an ack.
        ns.send(struct.pack(">BHB", 2, token2 ^ 0xFFFF, 0x04))
        poll_until(fwd, lambda: fwd.stats.bad == 1)
        assert fwd.stats.pull_acks == 1 and fwd.stats.bad == 1


def test_pull_resp_becomes_a_downlink_and_gets_a_tx_ack(ns: FakeNS) -> None:
    phy = bytes.fromhex("60f17dbe4920000001a1b2c3d4")
    txpk = {
        "imme": False,
        "tmst": 4_001_123_456,
        "freq": 869.525,
        "rfch": 0,
        "powe": 14,
        "modu": "LORA",
        "datr": "SF12BW125",
        "codr": "4/5",
        "ipol": True,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }
    with fw.UdpForwarder(ns.addr, EUI) as fwd:
        fwd.tick()
        ns.recv()  # the PULL_DATA that tells the server where the gateway is
        ns.send(fw.encode_pull_resp(0xBEEF, txpk))
        got = poll_until(fwd, lambda: fwd.stats.downlinks == 1)
        (tx,) = got
        assert tx.phy == phy and tx.token == 0xBEEF
        assert (tx.freq_hz, tx.sf, tx.bw_hz, tx.cr) == (869_525_000, 12, 125_000, "4/5")
        assert (tx.tmst, tx.immediate, tx.power_dbm, tx.iq_invert) == (
            4_001_123_456,
            False,
            14,
            True,
        )
        fwd.ack(tx)
        version, token, ident, eui, body = ns.recv()
        assert (version, token, ident, eui) == (2, 0xBEEF, 0x05, EUI)
        assert body == {"txpk_ack": {"error": "NONE"}}
        fwd.ack(tx, fw.TX_TOO_LATE)
        assert ns.recv()[4] == {"txpk_ack": {"error": "TOO_LATE"}}


def test_a_downlink_the_gateway_cannot_send_is_refused_with_a_tx_ack(ns: FakeNS) -> None:
    with fw.UdpForwarder(ns.addr, EUI) as fwd:
        fwd.tick()
        ns.recv()
        fsk = {"imme": True, "freq": 868.8, "modu": "FSK", "datr": 50000, "data": ""}
        ns.send(fw.encode_pull_resp(7, fsk))
        got = poll_until(fwd, lambda: fwd.stats.downlinks == 1)
        assert got == []
        _, token, ident, _, body = ns.recv()
        assert (token, ident) == (7, 0x05)
        assert body is not None and body["txpk_ack"]["error"] != "NONE"
        assert "FSK" in fwd.stats.last_bad


def test_garbage_from_the_server_is_counted_and_skipped(ns: FakeNS) -> None:
    with fw.UdpForwarder(ns.addr, EUI) as fwd:
        fwd.tick()
        ns.recv()
        ns.send(b"\x02\x00")  # shorter than a header
        ns.send(b"\x09\x00\x01\x01")  # another protocol version
        ns.send(struct.pack(">BHB", 2, 1, 0x03) + b"{not json")
        poll_until(fwd, lambda: fwd.stats.bad == 3)
        assert fwd.stats.bad == 3


@pytest.mark.parametrize(
    ("text", "sf", "bw"), [("SF7BW125", 7, 125_000), ("SF12BW500", 12, 500_000)]
)
def test_datarate_strings(text: str, sf: int, bw: int) -> None:
    assert fw.parse_datr(text) == (sf, bw)
    assert fw.datr(sf, bw) == text


@pytest.mark.parametrize("text", ["SF7", "BW125", "SF13BW125", "SF7BW62", 50000, "SFxBW125"])
def test_bad_datarate_strings_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="datr"):
        fw.parse_datr(text)


def test_txpk_without_timing_is_refused() -> None:
    with pytest.raises(ValueError, match="tmst"):
        fw.parse_txpk(1, {"freq": 868.1, "datr": "SF7BW125", "data": "AA==", "size": 1})
    with pytest.raises(ValueError, match="size"):
        fw.parse_txpk(1, {"imme": True, "freq": 868.1, "datr": "SF7BW125", "data": "AA==",
                          "size": 2})  # fmt: skip


@pytest.mark.parametrize("text", ["nohost", ":1700", "host:", "host:99999", "host:x"])
def test_forward_address_must_be_host_and_port(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        fw.parse_host_port(text)


def test_forward_addresses_and_euis() -> None:
    assert fw.parse_host_port("eu1.cloud.thethings.network:1700") == (
        "eu1.cloud.thethings.network",
        1700,
    )
    assert fw.parse_host_port("[::1]:1700") == ("::1", 1700)
    assert fw.parse_eui("01:02:03:04:05:06:07:08") == EUI
    with pytest.raises(ConfigError, match="8 bytes"):
        fw.parse_eui("0102")
    eui = fw.default_gateway_eui()
    assert len(eui) == 8 and eui[3:5] == b"\xff\xfe" and eui == fw.default_gateway_eui()
