"""The bench network server (host_tools/lorawan/server.py): joins, data frames, counters, MAC
commands, ADR, downlink queues and its state file. A test node builds its frames with the host
frame/crypto modules (host_tools/lorawan/frames.py) and reads the server's answers back with
them, so every assertion is on bytes a real node would see."""

import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from host_tools.errors import ConfigError, RegistryError
from host_tools.lorawan import frames, mac
from host_tools.lorawan.frames import FCtrl, MType
from host_tools.lorawan.server import (
    EU868_CF_LIST,
    Downlink,
    NetworkServer,
    Result,
    RxMeta,
    StateFile,
    state_path_for,
)

APP_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
DEV_EUI = "70b3d5fffe000001"
JOIN_EUI = "70b3d57ed0000000"
ABP_EUI = "70b3d5fffe000002"
ABP_ADDR = 0x26011234
NWK = bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3")
APP = bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588")
EU_FREQ = 868_300_000
T0 = 1_000_000  # the source's clock (ms) at the end of the first uplink
WALL = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def otaa_record(region: str = "EU868", sub_band: int | None = None) -> dict[str, Any]:
    return {
        "device_id": "a1",
        "state": "complete",
        "lorawan": {
            "region": region,
            "sub_band": sub_band,
            "activation": "otaa",
            "dev_eui": DEV_EUI,
            "join_eui": JOIN_EUI,
            "app_key": APP_KEY.hex(),
        },
    }


def abp_record() -> dict[str, Any]:
    return {
        "device_id": "b2",
        "state": "complete",
        "lorawan": {
            "region": "EU868",
            "sub_band": None,
            "activation": "abp",
            "dev_eui": ABP_EUI,
            "join_eui": None,
            "dev_addr": f"{ABP_ADDR:08x}",
            "nwk_s_key": NWK.hex(),
            "app_s_key": APP.hex(),
        },
    }


def meta(t_ms: int = T0, sf: int = 7, freq: int = EU_FREQ, snr: float = 5.0) -> RxMeta:
    return RxMeta(freq, sf, 125_000, -80.0, snr, t_ms, WALL + (t_ms - T0) / 1000)


class Node:
    """A LoRaWAN 1.0.x node reduced to its frames: what it sends, what it reads back."""

    def __init__(self, dev_addr: int = 0, nwk: bytes = b"", app: bytes = b"") -> None:
        self.dev_addr, self.nwk, self.app = dev_addr, nwk, app
        self.fcnt = 0
        self.fcnt_down = -1

    def join_request(self, dev_nonce: int, key: bytes = APP_KEY, join_eui: str = JOIN_EUI) -> bytes:
        return frames.build_join_request(key, int(join_eui, 16), int(DEV_EUI, 16), dev_nonce)

    def accept(self, dl: Downlink, dev_nonce: int) -> frames.JoinAccept:
        ja = frames.decrypt_join_accept(dl.phy, APP_KEY)  # MicError if the MIC is wrong
        self.dev_addr = ja.dev_addr
        self.nwk, self.app = ja.session_keys(APP_KEY, dev_nonce)
        self.fcnt = 0
        return ja

    def up(
        self,
        payload: bytes = b"\x01\x02",
        *,
        fport: int | None = 1,
        fcnt: int | None = None,
        confirmed: bool = False,
        fopts: bytes = b"",
        adr: bool = False,
        ack: bool = False,
        nwk: bytes | None = None,
    ) -> bytes:
        n = self.fcnt if fcnt is None else fcnt
        self.fcnt = n + 1
        mtype = MType.CONFIRMED_UP if confirmed else MType.UNCONFIRMED_UP
        return frames.build_data(
            mtype,
            self.dev_addr,
            n,
            nwk_s_key=nwk or self.nwk,
            app_s_key=self.app,
            fport=fport,
            payload=payload if fport is not None else b"",
            fopts=fopts,
            fctrl=FCtrl(adr=adr, ack=ack),
        )

    def down(self, dl: Downlink) -> tuple[frames.DataFrame, bytes, list[mac.Command]]:
        """Check and read a downlink as the node would: MIC, counter, payload, MAC commands."""
        frame = frames.parse(dl.phy)
        assert isinstance(frame, frames.DataFrame) and not frame.uplink
        fcnt = frames.full_fcnt(frame.fcnt, self.fcnt_down + 1)
        assert frame.mic_ok(self.nwk, fcnt), "downlink MIC"
        self.fcnt_down = fcnt
        plain = frame.payload(self.nwk, self.app, fcnt) if frame.fport is not None else b""
        cmds = mac.parse(plain if frame.fport == 0 else frame.fopts, uplink=False)
        return frame, plain, cmds


@pytest.fixture
def state(tmp_path: Path) -> StateFile:
    return StateFile(state_path_for(tmp_path / "registry.json"))


def server(state: StateFile | None, *records: dict[str, Any], **kw: Any) -> NetworkServer:
    kw.setdefault("rng", random.Random(1))
    kw.setdefault("clock", lambda: WALL)
    return NetworkServer(list(records) or [otaa_record(), abp_record()], state, **kw)


def joined(ns: NetworkServer, dev_nonce: int = 1) -> Node:
    node = Node()
    res = ns.handle(node.join_request(dev_nonce), meta())
    assert res.event["event"] == "join" and res.downlink is not None
    node.accept(res.downlink, dev_nonce)
    return node


def abp_node() -> Node:
    return Node(ABP_ADDR, NWK, APP)


# ---- joins --------------------------------------------------------------------------------------


def test_a_registry_device_joins_and_its_first_uplink_is_decrypted(state: StateFile) -> None:
    ns = server(state)
    node = Node()
    res = ns.handle(node.join_request(0x1234), meta(t_ms=T0))
    assert res.event["event"] == "join"
    assert res.event["dev_eui"] == DEV_EUI and res.event["device_id"] == "a1"
    assert res.event["dev_nonce"] == 0x1234
    dl = res.downlink
    assert dl is not None
    # JOIN_ACCEPT_DELAY1: 5 s after the end of the join request, RX1 = the uplink's channel and
    # DR in EU868 (RP002 2.4.7).
    assert (dl.window, dl.delay_ms, dl.t_ms) == ("rx1", 5000, T0 + 5000)
    assert (dl.freq_hz, dl.sf, dl.bw_hz, dl.dr) == (EU_FREQ, 7, 125_000, 5)
    ja = node.accept(dl, 0x1234)
    assert f"{ja.dev_addr:08x}" == res.event["dev_addr"]
    assert (ja.rx1_dr_offset, ja.rx2_dr, ja.rx_delay, ja.net_id) == (0, 0, 1, 0)
    assert ja.cf_list is not None
    assert frames.cf_list_decode(ja.cf_list) == (0, list(EU868_CF_LIST))
    up = ns.handle(node.up(b"\xca\xfe", fport=7), meta(t_ms=T0 + 60_000))
    ev = up.event
    assert ev["event"] == "uplink"
    assert (ev["dev_eui"], ev["dev_addr"], ev["fcnt"], ev["fport"]) == (
        DEV_EUI,
        f"{ja.dev_addr:08x}",
        0,
        7,
    )
    assert ev["payload"] == "cafe" and ev["phy"].startswith("40")
    assert (ev["dr"], ev["confirmed"], ev["rssi"], ev["snr"], ev["t"]) == (5, False, -80.0, 5.0,
                                                                           T0 + 60_000)  # fmt: skip
    assert up.downlink is None  # unconfirmed, nothing queued: no answer


def test_join_on_rx2_when_asked(state: StateFile) -> None:
    ns = server(state, window="rx2")
    res = ns.handle(Node().join_request(9), meta(t_ms=T0, sf=9))
    dl = res.downlink
    assert dl is not None
    # JOIN_ACCEPT_DELAY2 6 s; EU868 RX2 default 869.525 MHz DR0 (SF12).
    assert (dl.window, dl.delay_ms, dl.freq_hz, dl.sf, dl.dr) == ("rx2", 6000, 869_525_000, 12, 0)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda n: frames.build_join_request(APP_KEY, int(JOIN_EUI, 16), 0x99, 1),
            "unknown_device",
        ),
        (lambda n: n.join_request(1, join_eui="0000000000000001"), "join_eui"),
        (lambda n: n.join_request(1, key=bytes(16)), "mic"),
        (lambda n: b"\x00" + bytes(10), "malformed"),
    ],
)
def test_joins_that_are_refused(state: StateFile, make: Any, reason: str) -> None:
    ns = server(state)
    res = ns.handle(make(Node()), meta())
    assert res.event["event"] == "rejected" and res.event["reason"] == reason
    assert res.event["error"]
    assert res.downlink is None
    assert ns.session(DEV_EUI) is None


def test_an_abp_device_cannot_join(state: StateFile) -> None:
    ns = server(state)
    req = frames.build_join_request(APP_KEY, int(JOIN_EUI, 16), int(ABP_EUI, 16), 1)
    res = ns.handle(req, meta())
    assert (res.event["reason"], res.downlink) == ("unknown_device", None)


def test_a_devnonce_is_never_accepted_twice_even_after_a_restart(state: StateFile) -> None:
    ns = server(state)
    node = joined(ns, dev_nonce=7)
    first_addr = node.dev_addr
    again = ns.handle(node.join_request(7), meta(t_ms=T0 + 10_000))
    assert again.event["reason"] == "devnonce_reused" and again.downlink is None
    assert ns.session(DEV_EUI)["dev_addr"] == f"{first_addr:08x}"  # the session stays
    restarted = server(state)
    replay = restarted.handle(node.join_request(7), meta(t_ms=T0 + 20_000))
    assert replay.event["reason"] == "devnonce_reused"
    fresh = restarted.handle(node.join_request(8), meta(t_ms=T0 + 30_000))
    assert fresh.event["event"] == "join" and fresh.downlink is not None
    ja = node.accept(fresh.downlink, 8)
    assert ja.dev_addr != first_addr or ja.app_nonce != 1  # a new session, a new AppNonce


def test_the_state_file_is_private_and_keeps_sessions_and_counters(state: StateFile) -> None:
    ns = server(state)
    node = joined(ns)
    for _ in range(3):
        assert ns.handle(node.up(), meta()).event["event"] == "uplink"
    mode = stat.S_IMODE(os.stat(state.path).st_mode)
    assert mode == 0o600
    restarted = server(state)
    res = restarted.handle(node.up(), meta(t_ms=T0 + 5000))
    assert (res.event["event"], res.event["fcnt"]) == ("uplink", 3)
    # The frame before it, replayed to the restarted server, is refused.
    old = node.up(fcnt=2)
    assert restarted.handle(old, meta(t_ms=T0 + 9000)).event["reason"] == "replay"


def test_a_second_server_cannot_take_the_same_state(state: StateFile) -> None:
    state.acquire()
    other = StateFile(state.path)
    with pytest.raises(RegistryError, match="in use by another mote gateway"):
        other.acquire()
    state.close()
    other.acquire()  # free again
    other.close()


def test_a_damaged_state_file_is_refused_not_overwritten(state: StateFile) -> None:
    state.path.write_text("{not json")
    with pytest.raises(RegistryError, match="damaged"):
        server(state)
    assert state.path.read_text() == "{not json"


# ---- data frames --------------------------------------------------------------------------------


def test_replays_and_mic_failures_are_rejected_with_a_reason(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    frames_sent = [node.up(bytes([i])) for i in range(3)]
    for i, phy in enumerate(frames_sent):
        res = ns.handle(phy, meta(t_ms=T0 + 10_000 * i))
        assert (res.event["event"], res.event["fcnt"]) == ("uplink", i)
    replay = ns.handle(frames_sent[0], meta(t_ms=T0 + 60_000))
    assert replay.event["event"] == "rejected" and replay.event["reason"] == "replay"
    assert replay.event["fcnt"] == 0 and "older than" in replay.event["error"]
    # The last counter again with other content: a counter reused, not a retransmission.
    reused = ns.handle(node.up(b"other", fcnt=2), meta(t_ms=T0 + 70_000))
    assert reused.event["reason"] == "replay" and "other content" in reused.event["error"]
    forged = ns.handle(node.up(nwk=bytes(16)), meta(t_ms=T0 + 80_000))
    assert forged.event["reason"] == "mic"
    unknown = ns.handle(Node(0x01020304, NWK, APP).up(), meta())
    assert unknown.event["reason"] == "unknown_dev_addr"
    # None of that moved the counter: the next real frame is FCnt 3.
    assert ns.handle(node.up(fcnt=3), meta(t_ms=T0 + 90_000)).event["fcnt"] == 3


def test_fcnt_is_rebuilt_past_16_bits(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    seen = []
    counters = (65_533, 65_534, 65_535, 65_536, 65_537, 120_000)  # lost frames in between too
    for n in counters:
        res = ns.handle(node.up(fcnt=n), meta(t_ms=T0 + n))
        seen.append((res.event["event"], res.event["fcnt"]))
    assert seen == [("uplink", n) for n in counters]
    assert ns.handle(node.up(fcnt=65_535), meta(t_ms=T0 + 200_000)).event["reason"] == "replay"
    # 65536 frames or more lost in a row cannot be told from a replay (16 bits on air): the
    # counter is rebuilt too low and the MIC fails.
    assert ns.handle(node.up(fcnt=120_000 + 65_537), meta(t_ms=T0 + 300_000)).event["reason"] == (
        "mic"
    )


def test_a_frame_heard_twice_is_a_duplicate_and_a_confirmed_resend_is_acked_again(
    state: StateFile,
) -> None:
    ns = server(state)
    node = abp_node()
    phy = node.up(confirmed=True)
    first = ns.handle(phy, meta(t_ms=T0))
    assert first.event["event"] == "uplink" and first.downlink is not None
    copy = ns.handle(phy, meta(t_ms=T0 + 3))  # the same transmission, heard again
    assert (copy.event["event"], copy.downlink) == ("duplicate", None)
    # The node got no ACK and sends the frame again (same FCnt, 1.0.x): not a replay.
    again = ns.handle(phy, meta(t_ms=T0 + 4000))
    assert again.event["event"] == "retransmission" and again.event["fcnt"] == 0
    assert again.downlink is not None
    frame, _, _ = node.down(first.downlink)
    assert frame.fctrl.ack and frame.fcnt == 0
    frame2, _, _ = node.down(again.downlink)
    assert frame2.fctrl.ack and frame2.fcnt == 1  # a new FCntDown for the new answer


def test_a_confirmed_uplink_is_acked_in_rx1_one_second_later(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    res = ns.handle(node.up(confirmed=True), meta(t_ms=T0, sf=9))
    dl = res.downlink
    assert dl is not None
    # RECEIVE_DELAY1 1 s; EU868 RX1 with RX1DROffset 0: the uplink's channel and DR3 (SF9).
    assert (dl.window, dl.delay_ms, dl.t_ms) == ("rx1", 1000, T0 + 1000)
    assert (dl.freq_hz, dl.sf, dl.dr) == (EU_FREQ, 9, 3)
    frame, plain, cmds = node.down(dl)
    assert frame.mtype is MType.UNCONFIRMED_DOWN and frame.fctrl.ack
    assert (frame.fport, plain, cmds) == (None, b"", [])
    assert res.event["confirmed"] is True and res.event["downlink"]["ack"] is True


def test_a_queued_downlink_goes_out_with_the_next_uplink(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    ns.queue(ABP_EUI, 5, b"\x10\x20", confirmed=True)
    ns.queue(ABP_EUI, 6, b"\x30")
    res = ns.handle(node.up(), meta(t_ms=T0))
    assert res.downlink is not None
    frame, plain, _ = node.down(res.downlink)
    assert frame.mtype is MType.CONFIRMED_DOWN
    assert (frame.fport, plain, frame.fctrl.f_pending) == (5, b"\x10\x20", True)
    # The node acks the confirmed downlink in its next uplink, and gets the second payload.
    res2 = ns.handle(node.up(ack=True), meta(t_ms=T0 + 60_000))
    assert res2.event["downlink_acked"] is True
    assert res2.downlink is not None
    frame2, plain2, _ = node.down(res2.downlink)
    assert (frame2.mtype, frame2.fport, plain2) == (MType.UNCONFIRMED_DOWN, 6, b"\x30")
    assert not frame2.fctrl.f_pending
    assert ns.handle(node.up(), meta(t_ms=T0 + 120_000)).downlink is None


def test_queue_refuses_what_cannot_be_sent(state: StateFile) -> None:
    ns = server(state)
    with pytest.raises(ConfigError, match="no LoRaWAN device"):
        ns.queue("0000000000000000", 1, b"x")
    with pytest.raises(ConfigError, match="FPort"):
        ns.queue(ABP_EUI, 0, b"x")
    with pytest.raises(ConfigError, match="never fits"):
        ns.queue(ABP_EUI, 1, bytes(243))
    with pytest.raises(mac.MacError):
        ns.queue_mac(ABP_EUI, {"cmd": "LinkCheckReq"})  # the node's, not the network's


def test_a_payload_too_big_for_the_downlink_rate_is_dropped_with_a_note(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    ns.queue(ABP_EUI, 1, bytes(60))  # EU868 DR0 carries 51 bytes
    res = ns.handle(node.up(), meta(sf=12))
    assert "60 bytes" in res.event["downlink_dropped"]


# ---- MAC commands -------------------------------------------------------------------------------


def test_link_check_and_device_time_are_answered(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    fopts = mac.encode([{"cmd": "LinkCheckReq"}, {"cmd": "DeviceTimeReq"}], uplink=True)
    res = ns.handle(node.up(fopts=fopts), meta(snr=4.0))
    assert [c["cmd"] for c in res.event["mac"]] == ["LinkCheckReq", "DeviceTimeReq"]
    assert res.downlink is not None
    _, _, cmds = node.down(res.downlink)
    # Margin: SNR 4 dB over SF7's -7.5 dB floor; one gateway.
    assert cmds[0] == {"cmd": "LinkCheckAns", "margin": 11, "gw_cnt": 1}
    assert cmds[1]["cmd"] == "DeviceTimeAns"
    assert mac.gps_to_unix(cmds[1]["gps_s"], cmds[1]["frac"]) == pytest.approx(WALL, abs=1 / 256)


def test_mac_commands_on_fport_0_are_read_too(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    body = mac.encode([{"cmd": "LinkCheckReq"}], uplink=True)
    res = ns.handle(node.up(body, fport=0), meta())
    assert res.event["mac"] == [{"cmd": "LinkCheckReq"}] and res.event["fport"] == 0
    assert res.event["values"] is None
    assert res.downlink is not None
    assert node.down(res.downlink)[2][0]["cmd"] == "LinkCheckAns"


def test_queued_mac_requests_are_sent_matched_and_applied(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    ns.queue_mac(ABP_EUI, mac.dev_status_req())
    ns.queue_mac(ABP_EUI, mac.rx_param_setup_req(2, 3, 869_525_000))
    res = ns.handle(node.up(), meta(t_ms=T0))
    assert res.downlink is not None
    _, _, cmds = node.down(res.downlink)
    assert [c["cmd"] for c in cmds] == ["DevStatusReq", "RXParamSetupReq"]
    answers = mac.encode(
        [
            {"cmd": "DevStatusAns", "battery": 254, "margin": 7},
            {"cmd": "RXParamSetupAns", "rx1_dr_offset_ack": True, "rx2_dr_ack": True,
             "channel_ack": True},
        ],
        uplink=True,
    )  # fmt: skip
    res2 = ns.handle(node.up(fopts=answers), meta(t_ms=T0 + 60_000))
    assert res2.event["dev_status"] == {"battery": 254, "margin": 7}
    sess = ns.session(ABP_EUI)
    assert (sess["rx1_dr_offset"], sess["rx2_dr"], sess["rx2_freq"]) == (2, 3, 869_525_000)
    # RXParamSetupAns repeats until a downlink arrives (1.0.3 5.4): the server sends one, and
    # the next RX1 uses the new offset (DR5 - 2).
    assert res2.downlink is not None and res2.downlink.dr == 3
    assert node.down(res2.downlink)[2] == []


def test_an_unanswered_request_is_sent_again_then_given_up(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    ns.queue_mac(ABP_EUI, mac.duty_cycle_req(4))
    sent = 0
    unanswered = []
    for i in range(6):
        res = ns.handle(node.up(), meta(t_ms=T0 + 60_000 * i))
        unanswered += res.event.get("mac_unanswered", [])
        if res.downlink is not None:
            cmds = node.down(res.downlink)[2]
            sent += [c["cmd"] for c in cmds].count("DutyCycleReq")
    # The node never answers (its downlinks are lost, say): three tries, then one event.
    assert sent == 3
    assert unanswered == ["DutyCycleReq"]


def test_refused_answers_are_reported_and_not_applied(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    ns.queue_mac(ABP_EUI, mac.rx_timing_setup_req(3))
    ns.queue_mac(ABP_EUI, mac.new_channel_req(3, 867_100_000, 0, 5))
    res = ns.handle(node.up(), meta(t_ms=T0))
    assert res.downlink is not None
    node.down(res.downlink)
    answers = mac.encode(
        [{"cmd": "RXTimingSetupAns"}, {"cmd": "NewChannelAns", "dr_range_ok": True,
                                        "freq_ok": False}],
        uplink=True,
    )  # fmt: skip
    res2 = ns.handle(node.up(fopts=answers), meta(t_ms=T0 + 60_000))
    assert res2.event["mac_refused"] == ["NewChannelReq"]
    sess = ns.session(ABP_EUI)
    assert sess["rx_delay"] == 3 and 867_100_000 not in sess["channels"]
    # The next answer waits RxDelay 3 s.
    assert res2.downlink is not None and res2.downlink.delay_ms == 3000


def test_adr_raises_the_data_rate_from_the_snr_margin(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    res: Result | None = None
    for i in range(20):
        res = ns.handle(node.up(adr=True), meta(t_ms=T0 + 60_000 * i, sf=12, snr=10.0))
        if i < 19:
            assert res.downlink is None
    assert res is not None and res.downlink is not None
    (cmd,) = node.down(res.downlink)[2]
    # Margin 10 - (-20) - 10 = 20 dB: 6 steps of 3 dB: DR0 -> DR5 (5), then power 0 -> 1.
    assert cmd == mac.link_adr_req(5, 1, 0x0007, 0, 1)
    ok = mac.encode([{"cmd": "LinkADRAns", "power_ack": True, "dr_ack": True,
                      "ch_mask_ack": True}], uplink=True)  # fmt: skip
    ns.handle(node.up(adr=True, fopts=ok), meta(t_ms=T0 + 60_000 * 21))
    assert ns.session(ABP_EUI)["tx_power"] == 1


def test_adr_leaves_nodes_without_the_adr_bit_alone(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    for i in range(25):
        assert ns.handle(node.up(), meta(t_ms=T0 + i, sf=12, snr=10.0)).downlink is None


def test_a_joined_node_gets_all_eight_channels_in_its_adr_mask(state: StateFile) -> None:
    ns = server(state)
    node = joined(ns)
    for i in range(20):
        res = ns.handle(node.up(adr=True), meta(t_ms=T0 + 60_000 * (i + 1), sf=10, snr=-5.0))
        # -5 - (-15) - 10: no margin to spend, nothing to change
        assert res.downlink is None
    # One better uplink: the best SNR of the last 20 is now 5 dB.
    res = ns.handle(node.up(adr=True), meta(t_ms=T0 + 60_000 * 30, sf=10, snr=5.0))
    assert res.downlink is not None
    (cmd,) = node.down(res.downlink)[2]
    # 10 dB of margin: DR2 -> DR5; the mask holds the 3 default and 5 CFList channels.
    assert cmd == mac.link_adr_req(5, 0, 0x00FF, 0, 1)


def test_a_single_channel_bench_restricts_the_node(state: StateFile) -> None:
    ns = server(state, channels_hz=[868_100_000], adr=False)
    node = abp_node()
    res = ns.handle(node.up(), meta(freq=868_100_000))
    assert res.downlink is not None
    (cmd,) = node.down(res.downlink)[2]
    assert cmd == mac.link_adr_req(5, 0, 0x0001, 0, 1)
    # Sent once per session, not with every uplink.
    ok = mac.encode([{"cmd": "LinkADRAns", "power_ack": True, "dr_ack": True,
                      "ch_mask_ack": True}], uplink=True)  # fmt: skip
    assert ns.handle(node.up(fopts=ok), meta(t_ms=T0 + 60_000)).downlink is None


def test_us915_joins_answer_on_the_500_khz_downlink_channels(state: StateFile) -> None:
    ns = server(state, otaa_record("US915", 2), channels_hz=[903_900_000], adr=False)
    node = Node()
    # Sub-band 2's first channel, 903.9 MHz (channel 8), at DR0 (SF10/125 kHz).
    res = ns.handle(node.join_request(3), meta(freq=903_900_000, sf=10))
    dl = res.downlink
    assert dl is not None
    # RX1: 923.3 + (8 mod 8) x 0.6 MHz at DR10 (SF10/500 kHz); no CFList of frequencies.
    assert (dl.freq_hz, dl.sf, dl.bw_hz, dl.dr) == (923_300_000, 10, 500_000, 10)
    ja = node.accept(dl, 3)
    assert ja.cf_list is None
    up = ns.handle(node.up(), meta(t_ms=T0 + 60_000, freq=903_900_000, sf=10))
    assert up.event["dr"] == 0
    assert up.downlink is not None
    cmds = node.down(up.downlink)[2]
    # All 125 kHz channels off and the 500 kHz ones by mask (none), then channel 8 alone.
    assert cmds == [mac.link_adr_req(0, 0, 0x0000, 7, 1), mac.link_adr_req(0, 0, 0x0100, 0, 1)]


# ---- passive mode, payloads, odd frames ---------------------------------------------------------


def test_passive_mode_answers_nothing_but_follows_a_real_servers_join(state: StateFile) -> None:
    passive = server(None, passive=True)
    real = server(state)  # plays the real network server
    node = Node()
    req = node.join_request(42)
    seen = passive.handle(req, meta())
    assert seen.event["event"] == "join" and seen.event["passive"] and seen.downlink is None
    answer = real.handle(req, meta()).downlink
    assert answer is not None
    learned = passive.observe_downlink(answer.phy)
    assert learned is not None and learned["event"] == "join_accept"
    node.accept(answer, 42)
    res = passive.handle(node.up(b"\x01", confirmed=True), meta(t_ms=T0 + 60_000))
    assert res.event["event"] == "uplink" and res.event["payload"] == "01"
    assert res.downlink is None  # confirmed, but the real server acks it, not us
    assert passive.observe_downlink(b"garbage") is None


def test_values_come_from_the_payload_decoder(state: StateFile) -> None:
    pytest.importorskip("host_tools.payload")
    ns = server(state)
    node = abp_node()
    # docs/payload.md's example frame: battery 3.7 V, an SHT4x at -4.1 degC / 44.98 %RH.
    res = ns.handle(node.up(bytes.fromhex("46030e74fe661192")), meta())
    assert res.event["values"] == {
        "battery.voltage": 3.7,
        "sht4x.temperature": -4.1,
        "sht4x.humidity": 44.98,
    }
    assert res.event["decoded"]["seq"] == 6
    bad = ns.handle(node.up(b"\xff"), meta(t_ms=T0 + 1))
    assert bad.event["event"] == "uplink" and bad.event["values"] is None
    assert bad.event["decode_error"]


def test_a_downlink_heard_on_the_uplink_path_is_not_a_node(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    down = frames.build_data(
        MType.UNCONFIRMED_DOWN, ABP_ADDR, 0, nwk_s_key=NWK, app_s_key=APP, fport=1, payload=b"x"
    )
    assert ns.handle(down, meta()).event["reason"] == "downlink"
    assert ns.handle(node.up(), meta()).event["event"] == "uplink"


def test_an_event_carries_the_contract_fields(state: StateFile) -> None:
    ns = server(state)
    ev = ns.handle(abp_node().up(), meta()).event
    keys = "event dev_eui device_id dev_addr fcnt fport phy values rssi snr freq sf bw dr"
    for key in (keys + " confirmed mac t time").split():
        assert key in ev, key
    assert ev["time"] == "2024-01-01T00:00:00.000Z"
    assert "nwk_s_key" not in str(ev) and NWK.hex() not in str(ev)


def test_mac_commands_that_overflow_fopts_go_alone_on_fport_0(state: StateFile) -> None:
    ns = server(state)
    node = abp_node()
    for i in range(3):  # 3 x 6 bytes: more than FOpts' 15
        ns.queue_mac(ABP_EUI, mac.new_channel_req(3 + i, 867_100_000 + 200_000 * i, 0, 5))
    ns.queue(ABP_EUI, 4, b"\x99")
    res = ns.handle(node.up(), meta(t_ms=T0))
    assert res.downlink is not None
    frame, _, cmds = node.down(res.downlink)
    assert (frame.fport, frame.fopts) == (0, b"")
    assert [c["index"] for c in cmds] == [3, 4, 5]
    assert frame.fctrl.f_pending  # the application's byte waits for the next downlink
    ans = {"cmd": "NewChannelAns", "dr_range_ok": True, "freq_ok": True}
    res2 = ns.handle(node.up(fopts=mac.encode([ans] * 3, uplink=True)), meta(t_ms=T0 + 60_000))
    assert 867_500_000 in ns.session(ABP_EUI)["channels"]
    assert res2.downlink is not None
    frame2, plain2, _ = node.down(res2.downlink)
    assert (frame2.fport, plain2) == (4, b"\x99")


def test_the_adr_step_spends_margin_on_rate_then_power_and_buys_power_back() -> None:
    from host_tools.lorawan.adr import adr_target, link_adr_reqs, max_adr_dr
    from host_tools.lorawan.region import region

    kw = {"max_dr": 5, "max_power": 7}
    # 30 dB of margin at SF7/DR5 (already the fastest): 10 steps, 7 of them TX power, 3 unused.
    assert adr_target([32.5], sf=7, dr=5, power=0, **kw) == (5, 7)
    # -7.5 dB (5 dB below the floor + 10 dB margin): 3 power steps back up, never the rate down.
    assert adr_target([-5.0, -9.0], sf=7, dr=5, power=3, **kw) == (5, 0)
    assert adr_target([0.0], sf=12, dr=0, power=0, **kw) == (3, 0)  # 20 - 10 = 10 dB: 3 steps
    assert max_adr_dr(region("EU868")) == 5 and max_adr_dr(region("US915", 2)) == 3
    # US915 sub-band 1 without a restriction: its 500 kHz channel 64, then channels 0-7.
    assert link_adr_reqs(region("US915", 1), 3, 2) == [
        mac.link_adr_req(3, 2, 0x0001, 7, 1),
        mac.link_adr_req(3, 2, 0x00FF, 0, 1),
    ]
