# LoRaWAN counters through deep sleep, watchdog resets and power loss (firmware/motekit/
# lorawan.py, lwsession.py, lwjoin.py): retained state is kept or lost as on a board, flash is
# kept, and a power cut is injected at every numbered point of a node's life (each flash write, each
# transmission, each RX window). No FCntUp and no DevNonce may ever go on air twice, no
# downlink be taken twice, and the duty-cycle history must come back after a power loss.
# The ESP32 board only: it is the one whose retained state lives in RTC memory (the rp2 keeps it
# in RAM and does not deep sleep), and these runs are the longest of the LoRaWAN tests.
# devtest: boards=sim-esp32
import json

import _lwnet as n
from motekit import log, lorawan, lwjoin, lwregion, store

log.echo = False
Node = n.Node


def _fcnts(node):
    return [(a, f) for a, f, _ in node.radio.uplinks()]


def test_deep_sleep_keeps_counting_without_writing_flash():
    node = Node(n.abp_cfg())
    n.WRITES.clear()
    for i in range(10):
        node.send(b"%d" % i)
        node.sleep()
    assert [f for _, f in _fcnts(node)] == list(range(10))
    # The first reservation only (FCNT_STEP = 64), and one duty-cycle record: SF7 frames five
    # minutes apart never grow the history past its rounding.
    assert n.WRITES == {lorawan.PATH: 1, lorawan.DC_PATH: 1}
    obj, _ = store.read_json(lorawan.PATH)
    assert obj["fu"] == 64


def test_power_loss_resumes_at_the_reservation():
    node = Node(n.abp_cfg())
    for _ in range(5):
        node.send(b"x")
        node.sleep()
    node.st = {}  # RTC memory gone
    node.wake(warm=False)
    node.clock.t += n.MIN  # past the last frame's time-off, restored from flash at the boot
    node.send(b"y")
    assert [f for _, f in _fcnts(node)] == [0, 1, 2, 3, 4, 64]
    assert node.net.bad == 0 and node.net.frames[-1][5] == b"y"


def test_watchdog_reset_with_stale_retained_state_does_not_reuse_a_counter():
    # RTC memory is written when the node goes to sleep; a reset between a transmission and the
    # next sleep leaves the copy from before it. lorawan.warm() is False then: flash decides.
    node = Node(n.abp_cfg())
    node.send(b"a")
    node.sleep()
    stale = n.rt(node.st)
    node.send(b"b")  # FCnt 1, then a watchdog reset before the sleep
    node.st = n.rt(stale)
    node.wake(warm=False)
    node.clock.t += n.MIN  # the restored duty-cycle history's time-off
    node.send(b"c")
    fc = [f for _, f in _fcnts(node)]
    assert fc[:2] == [0, 1] and fc[2] > 1, fc
    # The same stale copy taken as fresh would have sent FCnt 1 twice: warm matters.
    node.st = n.rt(stale)
    node.wake(warm=True)
    assert node.mac.next_fcnt() == 1


def _life(node, wakes, rejoin_at=()):
    # A node's wakes: join when needed, else one uplink; a power cut (or watchdog reset) at the
    # point CUTS.at; the node then boots with lost (or stale) retained state.
    saved = {}
    warm = True
    for w in range(wakes):
        if node.net is not None:
            node.net.join = w >= node.join_from  # nobody answers the first requests
        try:
            node.wake(warm)
            warm = True
            if w in rejoin_at and node.mac.joined:
                node.st["lw"].pop("nk")  # drop the session: the next wake joins again
            elif node.mac.joined or node.mac.join():
                node.send(b"w%d" % w)
            saved = n.rt(node.st)  # the deep sleep's copy in RTC memory
        except n.PowerCut:
            warm = False
            node.st = {} if node.power_loss else n.rt(saved)
        node.clock.t += 5 * n.MIN


def _check(node):
    nonces = node.radio.nonces()
    assert len(set(nonces)) == len(nonces), "DevNonce repeated: %r" % nonces
    ups = _fcnts(node)
    assert len(set(ups)) == len(ups), "FCnt repeated: %r" % ups
    assert node.net.bad == 0


def _every_point(make, wakes, rejoin_at=()):
    lorawan.FCNT_STEP = 3  # reservations every third frame: many more points to cut at
    lwjoin.NONCE_STEP = 2
    try:
        node = make()
        node.power_loss = True
        _life(node, wakes, rejoin_at)
        points = n.CUTS.n
        _check(node)
        assert len(node.radio.uplinks()) >= wakes // 2
        for at in range(points):
            for loss in (True, False):
                node = make()
                node.power_loss = loss
                n.CUTS.n = 0
                n.CUTS.at = at
                _life(node, wakes, rejoin_at)
                n.CUTS.at = -1
                _check(node)
        return points
    finally:
        lorawan.FCNT_STEP = 64
        lwjoin.NONCE_STEP = 8
        n.CUTS.at = -1


def test_power_cut_at_every_point_of_an_otaa_life():
    def make():
        node = Node()
        node.join_from = 3
        return node

    points = _every_point(make, 8, rejoin_at=(5,))
    assert points > 30


def test_power_cut_at_every_point_of_an_abp_life():
    def make():
        node = Node(n.abp_cfg())
        node.join_from = 0
        return node

    assert _every_point(make, 7) > 20


def test_flash_wear_is_one_write_per_reservation():
    node = Node(n.abp_cfg())
    n.WRITES.clear()
    for _ in range(200):
        del node.radio.sent[:], node.radio.opened[:], node.net.frames[:]
        node.send(b"z")
        node.sleep()
    # FCnt 0..199: reservations at 0, 64, 128, 192; the duty-cycle record once (SF7 frames
    # every 5 minutes: 12 in an hour, 0.6 s, within the first record's 2.25 s).
    assert n.WRITES == {lorawan.PATH: 4, lorawan.DC_PATH: 1}


def test_new_keys_start_a_session_above_every_old_counter():
    node = Node(n.abp_cfg())
    for _ in range(3):
        node.send(b"a")
        node.sleep()
    other = {"nwkskey": bytes(16), "appskey": bytes(range(1, 17))}
    node.keys = other
    mac = node.sleep()
    assert mac.s["fu"] == 64  # above the old session's reservation
    node.keys = n.ABP_KEYS  # and back: the first keys' counters are never reused either
    mac = node.sleep()
    assert mac.s["fu"] >= 64
    node.send(b"b")
    fcnts = [f for _, f in _fcnts(node)]
    assert fcnts[-1] >= 64 and fcnts[:3] == [0, 1, 2]


def test_devnonce_survives_a_change_of_device():
    node = Node()
    node.net.join = False
    node.mac.join()
    first = node.radio.nonces()
    node.cfg = n.cfg(lorawan_dev_eui="0004a30b001c0531")  # a new DevEUI: a new identity
    node.st = {}
    node.wake(warm=False)
    node.clock.t += 60 * n.MIN
    node.mac.join()
    nonces = node.radio.nonces()
    assert len(nonces) > len(first) and min(nonces[len(first) :]) > max(first)


def test_retained_state_is_small():
    node = Node()
    cf = b"".join(
        (f // 100).to_bytes(3, "little")
        for f in (867100000, 867300000, 867500000, 867700000, 867900000)
    )
    node.net.cflist = cf + b"\x00"
    assert node.mac.join()
    node.sleep()
    node.net.queue.append({"fopts": b"\x05\x13" + (869525000 // 100).to_bytes(3, "little")})
    node.send(b"x" * 20)
    node.mac.link_check()
    node.mac.defer([[1, b"y" * 40], [1, b"z" * 40], [1, b"w" * 40]])
    lw = len(json.dumps(node.st["lw"]))
    lws = len(json.dumps(node.st["lws"]))
    print("retained: lw %d bytes, lws %d bytes" % (lw, lws))
    assert lw < 800 and lws < 200


def test_fcnt_down_of_an_ack_only_downlink_survives_a_power_loss():
    # A confirmed uplink's ACK often comes alone: no FPort, no FOpts. Its FCntDown is in flash
    # before anything else happens, so after a power loss a replay of it is refused (MIC right,
    # counter not greater) and cannot pass for the ACK of a later confirmed uplink.
    node = Node(n.abp_cfg())
    node.send(b"a", confirmed=True)
    ack = node.net.last
    assert len(ack) == 12 and ack[5] & 0x20  # ACK set, nothing else: FHDR and MIC only
    assert node.st["lws"]["acked"] == 1 and node.st["lw"]["fd"] == 1
    assert store.read_json(lorawan.PATH)[0]["fd"] == 1
    node.st = {}  # power loss
    node.wake(warm=False)
    node.clock.t += n.MIN
    assert node.st["lw"]["fd"] == 1

    def replay(radio, up, t_end):
        radio.down(t_end + 1000, radio.conf[0], radio.conf[1], radio.conf[2], ack)

    node.radio.net = replay
    node.mac.uplink([b"b"], 1, True)
    st = node.st["lws"]
    assert st["replay"] == 3 and "bad_mic" not in st  # once per transmission of the frame
    assert "acked" not in st and st["nack"] == 1 and node.st["lw"]["fd"] == 1
    node.radio.net = node.net  # the network's next downlink, FCntDown 2, is taken
    node.sleep()
    node.mac.uplink([b"c"], 1, True)
    assert node.st["lws"]["acked"] == 1 and node.st["lw"]["fd"] == 2
    assert store.read_json(lorawan.PATH)[0]["fd"] == 2


def _gaps_ok(sent):
    # Band g1's time-off between every two frames of the air log (true time, across power-ons).
    for a, b in zip(sent, sent[1:]):
        toa_b = lwregion.time_on_air_ms(len(b[5]), sf=b[2], bw_hz=b[3])
        toa_a = lwregion.time_on_air_ms(len(a[5]), sf=a[2], bw_hz=a[3])
        assert (b[0] - toa_b) - a[0] >= toa_a * 99, (a[0], b[0])


def test_power_on_restores_the_duty_cycle_history():
    # A brown-out loop at SF12: the power comes back every few seconds, RTC memory is lost and
    # the wall clock starts again at the epoch. The history in /lwdc.json comes back as if the
    # last frame had just ended at the boot, so the band's time-off (~2 min) counts from there.
    node = Node(n.abp_cfg(lorawan_dr=0))
    node.send(b"x" * 20)
    assert len(node.radio.sent) == 1
    for _ in range(4):
        node.clock.t += 5000
        node.clock.restart_wall()
        node.st = {}
        node.wake(warm=False)
        assert node.send(b"y" * 20) == {"sent": 0, "deferred": 1}
        st = node.st["lws"]
        assert st["deferred"] == 1 and st["last_deferred_ms"] == node.clock.now_ms()
    assert len(node.radio.sent) == 1
    # Once the node stays on past the time-off (counted from the last boot), it sends again.
    node.sleep(5 * n.MIN)
    assert node.send(b"z") == {"sent": 1, "deferred": 1}
    assert [f[5] for f in node.net.frames] == [b"x" * 20, b"y" * 20]
    _gaps_ok(node.radio.sent)


def test_power_on_restores_the_hourly_budget():
    # Band g1 allows 36 s an hour. Frames of ~2.8 s (SF12, 51 bytes) every 5 minutes use most of
    # it; after a power loss the restored history still holds that hour's air time, so the
    # node cannot start a fresh 36 s at the boot.
    node = Node(n.abp_cfg(lorawan_dr=0))
    for _ in range(14):
        node.send(b"h" * 51)
        node.sleep(5 * n.MIN)
    sent = len(node.radio.sent)
    used = sum(lwregion.time_on_air_ms(len(s[5]), sf=12, bw_hz=125000) for s in node.radio.sent)
    assert used > 30000
    node.st = {}
    node.clock.restart_wall()
    node.wake(warm=False)
    boot = node.clock.t
    for _ in range(30):
        node.clock.t += 3 * n.MIN
        node.wake(warm=True)
        node.send(b"h" * 51)
    new = node.radio.sent[sent:]
    # Within the hour after the boot, at most what the budget left: 36 s less the restored use.
    in_hour = [s for s in new if s[0] <= boot + 60 * n.MIN]
    assert sum(lwregion.time_on_air_ms(len(s[5]), sf=12, bw_hz=125000) for s in in_hour) <= (
        36000 - 30000
    )
    assert len(new) > len(in_hour)  # and it goes on after
    _gaps_ok(node.radio.sent)
