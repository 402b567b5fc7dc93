# The LoRaWAN MAC (firmware/motekit/lorawan.py) against fakes (_lwnet.py): a radio that hears
# the downlinks scheduled for the window it opens, a clock that moves only when slept on, and a
# small network server built on lwcrypto. Uplink bytes, RX1/RX2, confirmed retries, duty-cycle
# deferral, replays; the OTAA join is in test_lorawan_join.py.
import binascii
import json

import _lwnet as n
from motekit import log, lwregion

log.echo = False
MIN = n.MIN
Node = n.Node


def test_abp_uplink_is_the_published_frame():
    # DevAddr 49BE7DF1, FCnt 2, FPort 1, "test" with these keys is a widely used LoRaWAN 1.0
    # vector: 40F17DBE4900020001954378762B11FF0D (see test_lwcrypto.py).
    node = Node(n.abp_cfg())
    for p in (b"x", b"y", b"test"):
        assert node.send(p) == {"sent": 1, "deferred": 0}
        node.sleep()
    phys = [u[2] for u in node.radio.uplinks()]
    assert [u[1] for u in node.radio.uplinks()] == [0, 1, 2]
    assert binascii.hexlify(phys[2]) == b"40f17dbe4900020001954378762b11ff0d"
    assert [f[5] for f in node.net.frames] == [b"x", b"y", b"test"]
    assert node.st["lws"]["up"] == 3 and node.st["lws"]["fcnt"] == 2


def test_uplink_radio_settings_and_rx1_window():
    node = Node(n.abp_cfg())
    node.net.queue.append({"fport": 7, "data": b"hi"})
    node.send(b"abc")
    t_end, freq, sf, bw, dbm, phy = node.radio.sent[0]
    assert freq in (868100000, 868300000, 868500000) and (sf, bw) == (7, 125000)
    assert dbm == 14  # TXPower 0: 16 dBm EIRP less a 2 dBi antenna
    # RX1: RECEIVE_DELAY1 (1 s) after the end of TX, same channel and DR, opened 20 ms early.
    assert node.radio.opened == [(t_end + 1000 - 20, 48, freq, 7, 125000)]
    assert node.mac.down == (7, b"hi")
    assert node.st["lws"]["rx1"] == 1 and "rx2" not in node.st["lws"]
    assert node.st["lw"]["fd"] == 1


def test_rx2_window_when_rx1_is_empty():
    node = Node(n.abp_cfg())
    node.net.window = 2
    node.net.queue.append({"fport": 3, "data": b"late"})
    node.send(b"abc")
    t_end, freq = node.radio.sent[0][0], node.radio.sent[0][1]
    (t1, _, f1, sf1, _), (t2, to2, f2, sf2, bw2) = node.radio.opened
    assert (t1, f1, sf1) == (t_end + 980, freq, 7)
    # RX2: one second later, 869.525 MHz DR0 (SF12), the RP002 default.
    assert (t2, f2, sf2, bw2) == (t_end + 1980, 869525000, 12, 125000)
    assert to2 == 40 + 8 * 32  # margins and eight SF12 symbols
    assert node.mac.down == (3, b"late")
    assert node.st["lws"]["rx2"] == 1


def test_radio_time_is_time_on_air_and_the_rx_windows_listened():
    # For the energy estimate (motekit.stats: lora_tx and lora_rx of board.json power.radio_ma):
    # not the send's wall time, which is mostly the RX delays with the radio asleep.
    node = Node(n.abp_cfg())
    node.net.window = 2
    node.net.queue.append({"fport": 3, "data": b"late"})
    node.send(b"abc")
    phy = node.radio.sent[0][5]
    toa = lwregion.time_on_air_ms(len(phy), sf=7, bw_hz=125000)
    (t1, to1, _, _, _), (t2, _, _, _, _) = node.radio.opened
    # RX1 listened its whole timeout; RX2 until the downlink had been received.
    got = node.mac.radio_ms
    assert got["lora_tx"] == int(toa + 0.5), got
    assert got["lora_rx"] == to1 + node.clock.t - t2, (got, node.clock.t, t2)


def test_confirmed_uplink_acked_once():
    node = Node(n.abp_cfg())
    assert node.send(b"c", confirmed=True)["sent"] == 1
    assert len(node.radio.uplinks()) == 1 and node.radio.uplinks()[0][2][0] == 0x80
    assert node.st["lws"]["acked"] == 1 and "retries" not in node.st["lws"]


def test_confirmed_uplink_retransmitted_with_the_same_fcnt_until_the_retries_run_out():
    node = Node(n.abp_cfg(lorawan_retries=3))
    node.net.ack = False
    node.send(b"c", confirmed=True)
    ups = node.radio.uplinks()
    assert len(ups) == 3
    assert len(set(u[2] for u in ups)) == 1  # the same frame, FCnt 0 (LoRaWAN 1.0.4 4.3.1.5)
    assert node.st["lws"]["retries"] == 2 and node.st["lws"]["nack"] == 1
    # Each retransmission waits out RETRANSMIT_TIMEOUT after RX2 and the duty cycle.
    ends = [s[0] for s in node.radio.sent]
    assert all(b - a > 3000 for a, b in zip(ends, ends[1:]))
    node.sleep()
    node.net.ack = True
    node.send(b"d", confirmed=True)
    assert node.radio.uplinks()[-1][1] == 1 and node.st["lws"]["acked"] == 1


def test_an_ack_arriving_late_ends_the_retransmissions():
    node = Node(n.abp_cfg(lorawan_retries=4))
    node.net.ack = False
    calls = []

    def net(radio, phy, t_end):
        calls.append(t_end)
        node.net.ack = len(calls) == 2
        n.Net.__call__(node.net, radio, phy, t_end)

    node.radio.net = net
    node.send(b"c", confirmed=True)
    assert len(node.radio.uplinks()) == 2 and node.st["lws"]["acked"] == 1


def test_confirmed_downlink_is_acked_in_the_next_uplink():
    node = Node(n.abp_cfg())
    node.net.queue.append({"fport": 2, "data": b"cmd", "conf": True})
    node.send(b"a")
    assert node.st["lw"]["ack"] == 1
    node.sleep()
    node.send(b"b")
    fctrl = node.radio.uplinks()[-1][2][5]
    assert fctrl & 0x20 and "ack" not in node.st["lw"]


def test_duty_cycle_defers_and_deferred_frames_go_first():
    node = Node(n.abp_cfg(lorawan_dr=0))  # SF12: ~1.3 s on air, ~2 min off in band g1
    res = node.send(b"one" * 10, b"two" * 10, b"three" * 6)
    assert res == {"sent": 1, "deferred": 2}
    st = node.st["lws"]
    assert st["deferred"] == 2 and st["last_deferred_ms"] == node.clock.now_ms()
    assert len(node.st["lw"]["q"]) == 2
    node.sleep(10 * MIN)
    res = node.send(b"four")
    # After the sleep one frame fits again; the oldest deferred goes first.
    assert res["sent"] == 1 and node.net.frames[-1][5] == b"two" * 10
    node.sleep(60 * MIN)
    node.send(b"five")
    node.sleep(60 * MIN)
    node.send(b"six")
    got = [f[5] for f in node.net.frames]
    assert got[:4] == [b"one" * 10, b"two" * 10, b"three" * 6, b"four"]
    # The air log never breaks the band's time-off: ToA x 99 between two uplinks in g1.
    sent = node.radio.sent
    for a, b in zip(sent, sent[1:]):
        toa = lwregion.time_on_air_ms(len(b[5]), sf=b[2], bw_hz=b[3])
        gap = (b[0] - toa) - a[0]
        assert gap >= lwregion.time_on_air_ms(len(a[5]), sf=a[2], bw_hz=a[3]) * 99


def test_deferred_queue_is_bounded_and_counts_what_it_drops():
    node = Node(n.abp_cfg(lorawan_dr=0))
    res = node.send(*[bytes([i]) * 40 for i in range(6)])
    assert res["deferred"] == 5
    q = node.st["lw"]["q"]
    assert len(q) <= 4 and sum(len(binascii.a2b_base64(e[1])) for e in q) <= 128
    assert node.st["lws"]["dropped"] == 5 - len(q)
    # The newest are kept.
    assert binascii.a2b_base64(q[-1][1]) == bytes([5]) * 40
    assert len(json.dumps(node.st)) < 700


def test_replayed_and_forged_downlinks_are_ignored():
    node = Node(n.abp_cfg())
    node.net.queue.append({"fport": 5, "data": b"first"})
    node.send(b"a")
    assert node.mac.down == (5, b"first") and node.st["lw"]["fd"] == 1
    replay = node.net.last
    forged = bytearray(n.downlink(n.NWKSKEY, n.APPSKEY, 0x49BE7DF1, 9, 1, b"x"))
    forged[-1] ^= 1
    for phy, counter in ((replay, "replay"), (bytes(forged), "bad_mic")):
        mac = node.sleep()

        def inject(radio, up, t_end, phy=phy):
            radio.down(t_end + 1000, radio.conf[0], radio.conf[1], radio.conf[2], phy)

        node.radio.net = inject
        mac.uplink([b"b"], 1, False)
        assert node.st["lws"][counter] == 1 and mac.down is None
        assert node.st["lws"]["rx1"] == 1  # only the genuine one counted
        assert node.st["lw"]["fd"] == 1


def test_fcnt_down_crosses_16_bits():
    node = Node(n.abp_cfg())
    node.st["lw"]["fd"] = 0xFFFE
    node.net.sessions[0x49BE7DF1][2] = 0xFFFF  # its next downlink is FCnt 0x10000: 0 on air
    node.net.queue.append({"fport": 1, "data": b"wrap"})
    node.send(b"a")
    assert node.mac.down == (1, b"wrap") and node.st["lw"]["fd"] == 0x10000


def test_fpending_fetches_with_an_empty_uplink():
    node = Node(n.abp_cfg())
    node.net.queue.append({"fport": 1, "data": b"1", "pending": True})
    node.net.queue.append({"fport": 1, "data": b"2"})
    assert node.send(b"a") == {"sent": 1, "deferred": 0}
    ups = node.radio.uplinks()
    assert len(ups) == 2 and len(ups[1][2]) == 12  # no FPort, no FRMPayload
    assert node.mac.down == (1, b"2") and node.st["lws"]["rx1"] == 2


def test_a_radio_fault_keeps_the_frames_for_the_next_wake():
    node = Node(n.abp_cfg())
    send = node.radio.send

    def broken(data, timeout_ms):
        raise OSError(110, "sx127x: TX not done")

    node.radio.send = broken
    try:
        node.send(b"a", b"b")
    except OSError:
        pass
    else:
        raise AssertionError("the radio's OSError was swallowed")
    assert [binascii.a2b_base64(e[1]) for e in node.st["lw"]["q"]] == [b"a", b"b"]
    node.radio.send = send
    node.sleep()
    node.mac.uplink([], 1, False)
    node.sleep()
    node.mac.uplink([], 1, False)
    assert [f[5] for f in node.net.frames] == [b"a", b"b"]
    # FCnt 0 was taken before the fault (reserved, maybe on air): it is not used again.
    assert [f[1] for f in node.net.frames] == [1, 2]
