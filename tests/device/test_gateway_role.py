# The gateway role (firmware/motekit/gateway.py) with a fake radio and a fake clock: the radio
# stays in continuous RX (listen() once, then poll()), frames heard become gw_frame events
# stamped at RxDone, downlinks go out at ref + delay with inverted IQ and the radio goes back to
# listening, late or bad requests are refused, the channel is kept.
import os

from motekit import gateway, log
from motekit.console import Refused

log.echo = False


class Clock:
    # ticks_ms that moves 1 ms per look (the transmit loop waits on it) and jumps on demand.
    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        self.t += 1
        return self.t


class Radio:
    def __init__(self, clock):
        self.clock = clock
        self.configs = []
        self.listens = 0  # listen() calls: continuous RX entered
        self.listening = False
        self.polls = 0
        self.heard = []  # (bytes, rssi, snr) to hand out, in order
        self.sent = []  # (phy, config at send, clock at send)
        self.fail = None

    def configure(self, freq_hz, sf, bw_hz, cr=1, power_dbm=14, sync_word=0x34, preamble=8,
                  iq_invert=False, crc=True):  # fmt: skip
        self.configs.append((freq_hz, sf, bw_hz, power_dbm, iq_invert))
        self.listening = False  # standby, as the drivers do

    def listen(self):
        self.listens += 1
        self.listening = True

    def recv(self, buf, timeout_ms):
        raise AssertionError("single RX windows: the gateway listens continuously")

    def poll(self, buf):
        if not self.listening:
            raise RuntimeError("listen() first")  # as the drivers say
        self.polls += 1
        if not self.heard:
            return None
        data, rssi, snr = self.heard.pop(0)
        buf[: len(data)] = data
        return len(data), rssi, snr

    def send(self, data, timeout_ms):
        assert not self.listening  # configure() for the downlink ended RX
        if self.fail:
            raise OSError(self.fail)
        self.sent.append((bytes(data), self.configs[-1], self.clock.t))
        self.clock.t += 60

    def sleep(self):
        self.listening = False


def _setup(channel=(868100000, 7, 125000)):
    clock = Clock()
    radio = Radio(clock)
    events = []
    gw = gateway.Gateway(radio, channel, lambda name, **f: events.append((name, f)), clock)
    return gw, radio, clock, events


def test_a_frame_heard_is_an_event_stamped_at_its_end():
    gw, radio, clock, events = _setup()
    assert radio.configs == [(868100000, 7, 125000, 14, False)]  # normal IQ
    assert radio.listening and radio.listens == 1  # continuous RX
    radio.heard.append((b"\x40\x01\x02", -97, -2.5))
    gw.step()
    ((name, f),) = events
    assert name == "gw_frame"
    assert f["phy"] == "400102" and (f["rssi"], f["snr"]) == (-97, -2.5)
    assert (f["freq"], f["sf"], f["bw"], f["cr"]) == (868100000, 7, 125000, "4/5")
    assert f["t"] == clock.t  # read right after RxDone
    t0, polls = clock.t, radio.polls
    gw.step()
    assert len(events) == 1  # nothing more
    assert radio.polls > polls + 1 and clock.t - t0 >= 50  # polled for a while, then returned
    assert radio.listens == 1 and len(radio.configs) == 1  # never re-armed: RX stayed on


def test_back_to_back_frames_are_each_an_event_without_rearming_the_radio():
    gw, radio, clock, events = _setup()
    for i in range(5):
        radio.heard.append((bytes([0x40, i]), -90, 5.0))
    for _ in range(5):
        gw.step()
    assert [f["phy"] for _, f in events] == ["4000", "4001", "4002", "4003", "4004"]
    assert radio.listens == 1 and len(radio.configs) == 1


def test_a_downlink_goes_out_at_ref_plus_delay_then_it_listens_again():
    gw, radio, clock, events = _setup()
    ref = clock.t
    got = gw.send({"phy": "60aabb", "freq": 869525000, "sf": 12, "bw": 125000, "ref": ref,
                   "delay_ms": 1000, "power": 16})  # fmt: skip
    assert got["queued"] is True and 990 <= got["in_ms"] <= 1000
    while not radio.sent:
        gw.step()
        # it never listens past the moment it must start transmitting
        assert radio.sent or clock.t <= ref + 1000
    ((phy, config, at),) = radio.sent
    assert phy == b"\x60\xaa\xbb"
    assert config == (869525000, 12, 125000, 16, True)  # the window's channel, inverted IQ
    assert at >= ref + 1000 and at - (ref + 1000) <= 2
    assert radio.configs[-1] == (868100000, 7, 125000, 14, False)  # back on its channel
    assert radio.listening and radio.listens == 2  # and in continuous RX again
    ((name, f),) = events
    assert name == "gw_sent" and f["ok"] is True and 0 <= f["late_ms"] <= 2
    assert gw.sent == 1


def test_a_downlink_asked_for_too_late_is_refused_with_how_late():
    gw, radio, clock, events = _setup()
    ref = clock.t
    clock.t += 1100
    got = gw.send({"phy": "60", "freq": 868100000, "sf": 7, "bw": 125000, "ref": ref,
                   "delay_ms": 1000})  # fmt: skip
    assert got["queued"] is False and got["late_ms"] >= 100
    assert gw.tx is None and gw.late == 1


def test_one_downlink_waits_at_a_time_and_bad_requests_are_refused():
    gw, radio, clock, events = _setup()
    ok = {"phy": "60", "freq": 868100000, "sf": 7, "bw": 125000, "ref": clock.t, "delay_ms": 5000}
    assert gw.send(ok)["queued"] is True
    for bad, err in (
        (ok, "busy"),
        (dict(ok, phy="zz"), "bad_value"),
        (dict(ok, phy=""), "bad_value"),
        (dict(ok, sf=13), "bad_value"),
        (dict(ok, bw=62500), "bad_value"),
        (dict(ok, delay_ms=60000), "bad_value"),
        (dict(ok, ref=True), "bad_value"),
    ):
        try:
            gw.send(bad)
        except Refused as e:
            assert e.err == err, (bad, e.err)
        else:
            raise AssertionError("accepted %r" % (bad,))


def test_a_failed_transmission_is_reported_and_listening_resumes():
    gw, radio, clock, events = _setup()
    radio.fail = "TX not done"
    gw.send({"phy": "60", "freq": 868100000, "sf": 7, "bw": 125000, "ref": clock.t,
             "delay_ms": 0})  # fmt: skip
    gw.step()
    ((name, f),) = events
    assert name == "gw_sent" and f["ok"] is False and "TX not done" in f["msg"]
    assert radio.configs[-1][4] is False and radio.listening


def test_the_channel_changes_and_is_kept_across_a_restart():
    try:
        os.remove("/gateway.json")
    except OSError:
        pass
    gw, radio, clock, events = _setup()
    got = gw.channel({})
    assert (got["freq"], got["sf"], got["bw"]) == (868100000, 7, 125000)
    got = gw.channel({"freq": 868300000, "sf": 9})
    assert (got["freq"], got["sf"], got["bw"]) == (868300000, 9, 125000)
    assert radio.configs[-1] == (868300000, 9, 125000, 14, False) and radio.listening
    for bad in ({"sf": 6}, {"freq": 100}, {"bw": 1}):
        try:
            gw.channel(bad)
        except Refused as e:
            assert e.err == "bad_value"
        else:
            raise AssertionError("accepted %r" % (bad,))
    cfg = {"lorawan_region": "EU868", "lorawan_sub_band": 2, "lorawan_dr": 5}
    assert gateway._saved_channel(cfg) == (868300000, 9, 125000)
    os.remove("/gateway.json")
    assert gateway._saved_channel(cfg) == (868100000, 7, 125000)


def test_the_default_channel_is_the_regions_first_join_channel():
    eu = {"lorawan_region": "EU868", "lorawan_sub_band": 2, "lorawan_dr": 5}
    assert gateway.default_channel(eu) == (868100000, 7, 125000)
    eu["lorawan_dr"] = 0
    assert gateway.default_channel(eu) == (868100000, 12, 125000)
    # US915 sub-band 2: channel 8 (903.9 MHz), joins at DR0 (SF10 / 125 kHz).
    us = {"lorawan_region": "US915", "lorawan_sub_band": 2, "lorawan_dr": 3}
    assert gateway.default_channel(us) == (903900000, 10, 125000)
