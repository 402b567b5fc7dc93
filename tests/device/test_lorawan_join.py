# The OTAA join of the node's LoRaWAN MAC (firmware/motekit/lwjoin.py) against the fakes of
# _lwnet.py: the Join-Request's bytes, the Join-Accept in RX1 or RX2 with its settings and
# CFList, the back-off when nobody answers, DevNonce never repeated, a replayed accept refused.
import binascii
import json
import struct

import _lwnet as n
from motekit import log, lorawan, lwcrypto, store

log.echo = False
MIN = n.MIN
Node = n.Node


def test_otaa_join_in_rx1_then_a_counted_uplink():
    node = Node()
    assert not node.mac.joined
    assert node.mac.join()
    req = node.radio.sent[0]
    phy = req[5]
    eui = binascii.unhexlify("000000d07ed5b370")  # JOIN_EUI, byte-reversed
    dev = binascii.unhexlify("30051c000ba30400")  # DEV_EUI
    assert phy[:17] == b"\x00" + eui + dev
    assert struct.unpack_from("<H", phy, 17)[0] == 0  # DevNonce counts from 0 (1.0.4)
    assert phy[19:] == lwcrypto.join_request_mic(n.APPKEY, phy[:19])
    # JOIN_ACCEPT_DELAY1: 5 s after the end of TX, on the request's channel and DR.
    assert node.radio.opened[0][0] == req[0] + 5000 - 20 and node.radio.opened[0][2] == req[1]
    s = node.st["lw"]
    addr = 0x26010000
    nk, ak = node.net.sessions[addr][:2]
    assert s["a"] == addr and s["nk"] == binascii.hexlify(nk).decode()
    assert node.st["lws"]["joins"] == 1 and node.st["lws"]["jreq"] == 1
    # The session is on flash before anything is sent with it; the root key is not.
    obj, _ = store.read_json(lorawan.PATH)
    assert obj["a"] == addr and obj["fu"] == lorawan.FCNT_STEP and obj["jn"] == 1
    assert binascii.hexlify(n.APPKEY).decode() not in json.dumps(obj)
    assert binascii.hexlify(n.APPKEY).decode() not in json.dumps(node.st)
    node.sleep()
    assert node.mac.joined
    node.send(b"hello")
    assert node.net.frames[-1][:2] == (addr, 0) and node.net.frames[-1][5] == b"hello"
    assert node.net.bad == 0


def test_otaa_join_accept_in_rx2_with_settings_and_cflist():
    node = Node()
    node.net.window = 2
    node.net.dlsettings = 0x23  # RX1DROffset 2, RX2 DR3
    cf = b""
    for f in (867100000, 867300000, 867500000, 867700000, 867900000):
        cf += struct.pack("<I", f // 100)[:3]
    node.net.cflist = cf + b"\x00"
    assert node.mac.join()
    t_end = node.radio.sent[0][0]
    assert [o[0] - t_end for o in node.radio.opened] == [4980, 5980]
    assert node.radio.opened[1][2:4] == (869525000, 12)
    s = node.st["lw"]
    assert (s["o1"], s["r2"], s["d1"]) == (2, 3, 1)
    mac = node.sleep()
    assert mac.reg.channel(7) == (867900000, 0, 5) and mac.reg.enabled(7)
    # The uplinks use the new channels too; RX1 at DR - 2, RX2 at the new DR3 (SF9).
    node.net.window = 1
    node.net.rx1_offset = 2
    freqs = []
    for _ in range(12):
        node.net.queue.append({"fopts": b""})
        node.send(b"x")
        freqs.append(node.radio.sent[-1][1])
        node.sleep()
    assert any(f < 868000000 for f in freqs)
    assert node.st["lws"]["rx1"] == 12
    assert node.radio.opened[-1][3] == 9  # RX1 at SF9: DR5 - 2


def test_join_without_answer_backs_off_and_never_repeats_a_devnonce():
    node = Node()
    node.net.join = False
    assert not node.mac.join()
    sent = len(node.radio.sent)
    assert 1 <= sent <= 2  # bounded per wake
    jt = node.st["lw"]["jt"]
    assert jt > node.clock.now_ms()
    node.clock.t += 1000
    assert not node.mac.join()  # still backing off: nothing sent
    assert len(node.radio.sent) == sent
    for _ in range(6):
        node.sleep(30 * MIN)
        node.mac.join()
    nonces = node.radio.nonces()
    assert len(nonces) >= 6 and len(set(nonces)) == len(nonces)
    assert nonces == sorted(nonces)
    # The data rate steps down request after request (EU868: DR5, DR4, ...).
    sfs = [s[2] for s in node.radio.sent]
    assert sfs[0] == 7 and max(sfs) > 8
    node.net.join = True
    node.sleep(60 * MIN)
    assert node.mac.join()
    assert "jt" not in node.st["lw"] and "jc" not in node.st["lw"]


def test_join_accept_replayed_from_an_earlier_join_is_refused():
    node = Node()
    assert node.mac.join()
    old = node.net.last
    del node.st["lw"]["nk"]  # the session is dropped: the node joins again
    mac = node.sleep()
    assert not mac.joined

    def replay(radio, phy, t_end):
        radio.down(t_end + 5000, radio.conf[0], radio.conf[1], radio.conf[2], old)

    node.radio.net = replay
    assert not mac.join()
    assert not mac.joined and node.st["lws"]["joins"] == 1
    assert "last JoinNonce" in log.entries()[-2][2]


def test_us915_join_alternates_500_and_125_khz_on_the_sub_band():
    node = Node(n.cfg(lorawan_region="US915", lorawan_sub_band=2), net=False)
    assert not node.mac.join()
    assert len(node.radio.sent) == 2
    # RP002 2.5: DR4 on the sub-band's 500 kHz channel (65: 904.6 MHz), then DR0 on one of its
    # 125 kHz channels (8..15: 903.9..905.3 MHz); RX1 on 923.3 + (channel mod 8) x 0.6 MHz.
    (t1, f1, sf1, bw1, dbm, _), (t2, f2, sf2, bw2, _, _) = node.radio.sent
    assert (f1, sf1, bw1) == (904600000, 8, 500000) and dbm == 20
    assert (sf2, bw2) == (10, 125000) and 903900000 <= f2 <= 905300000
    ch = (f2 - 902300000) // 200000
    rx = node.radio.opened
    assert rx[0][:1] == (t1 + 4980,) and rx[0][2:] == (923900000, 7, 500000)  # DR13
    assert rx[1][2:] == (923300000, 12, 500000)  # RX2: DR8
    assert rx[2][2:] == (923300000 + (ch % 8) * 600000, 10, 500000)  # DR0 -> DR10
    assert rx[2][0] == t2 + 4980


def test_us915_abp_uplink_on_the_sub_band():
    node = Node(n.abp_cfg(lorawan_region="US915", lorawan_sub_band=2), net=False)
    assert node.st["lw"]["dr"] == 3  # cfg 5, capped to the 125 kHz channels' top
    node.send(b"x")
    t_end, f, sf, bw, _, _ = node.radio.sent[0]
    assert (sf, bw) == (7, 125000) and 903900000 <= f <= 905300000
    ch = (f - 902300000) // 200000
    assert node.radio.opened[0][2:] == (923300000 + (ch % 8) * 600000, 7, 500000)
    assert node.radio.opened[1][2:] == (923300000, 12, 500000)


def test_single_channel_joins_and_sends_on_the_first_join_channel_at_lorawan_dr():
    # lorawan_single_channel, for a single-channel gateway (a gateway-role board listens on the
    # first join channel at lorawan_dr): no request or uplink anywhere else, CFList or not.
    node = Node(n.cfg(lorawan_single_channel=True, lorawan_dr=3))
    node.net.join = False
    for _ in range(8):
        node.mac.join()
        node.sleep(60 * MIN)
    assert len(node.radio.sent) >= 8
    assert {(s[1], s[2]) for s in node.radio.sent} == {(868100000, 9)}  # DR3: SF9
    node.net.join = True
    cf = b""
    for f in (867100000, 867300000, 867500000, 867700000, 867900000):
        cf += struct.pack("<I", f // 100)[:3]
    node.net.cflist = cf + b"\x00"
    assert node.mac.join()
    node.radio.sent.clear()
    for i in range(12):
        mac = node.sleep()
        assert mac.reg.enabled(0) and not any(mac.reg.enabled(c) for c in range(1, 16))
        assert mac.reg.channel(3)[0] == 867100000  # the CFList's channels are known, off
        node.send(b"r%d" % i)
    assert {(s[1], s[2]) for s in node.radio.sent} == {(868100000, 9)}
    assert node.net.bad == 0 and len(node.net.frames) == 12


def test_turning_single_channel_on_or_off_resets_the_channel_plan_not_the_session():
    node = Node(n.abp_cfg())
    node.send(b"a")
    assert node.mac.reg.enabled(1) and node.mac.reg.enabled(2)
    node.cfg["lorawan_single_channel"] = True
    mac = node.sleep()
    assert [c for c in range(16) if mac.reg.enabled(c)] == [0]
    assert node.send(b"b") == {"sent": 1, "deferred": 0}
    node.cfg["lorawan_single_channel"] = False
    mac = node.sleep()
    assert [c for c in range(16) if mac.reg.enabled(c)] == [0, 1, 2]
    node.send(b"c")
    assert [f[1] for f in node.net.frames] == [0, 1, 2]  # one session, counting on
