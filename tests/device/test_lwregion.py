# LoRaWAN regions, time on air and duty cycle (firmware/motekit/lwregion.py) on both virtual
# boards: RP002-1.0.3's EU868 and US915 tables, the MAC-command rules (LinkADRReq blocks,
# NewChannelReq, RXParamSetupReq, CFList), the session state round trip through JSON, and the
# duty cycle's time-off, hourly budget and aggregated limit. The host compares these tables with
# its own, and the node's time on air with its airtime module, in tests/host/test_lorawan_region.py
# and tests/host/test_airtime.py.
import gc
import json

import _devtest
from motekit import lwregion
from motekit.lwregion import DutyCycle, region, time_on_air_ms

EU1, EU2, EU3 = 868100000, 868300000, 868500000


def _close(a, b):
    return abs(a - b) < 1e-6


# --- time on air ---------------------------------------------------------------------------------
def test_time_on_air_matches_published_figures():
    # rfwireless-world's LoRaWAN airtime examples (10 bytes, SF7 LDRO off / SF11 LDRO on), TTN's
    # AN1200.13 spreadsheet (13 bytes SF9), and the empty LoRaWAN frame at SF7 / SF12.
    assert _close(time_on_air_ms(10, sf=7, bw_hz=125000), 41.216)
    assert _close(time_on_air_ms(10, sf=11, bw_hz=125000), 577.536)
    assert _close(time_on_air_ms(13, sf=9, bw_hz=125000), 164.864)
    assert _close(time_on_air_ms(13, sf=7, bw_hz=125000), 46.336)
    assert _close(time_on_air_ms(13, sf=12, bw_hz=125000), 1155.072)
    assert _close(time_on_air_ms(64, sf=12, bw_hz=125000), 2793.472)


def test_time_on_air_options_and_refusals():
    # 22 bytes at SF9: each option moves the payload across a symbol-block boundary.
    base = time_on_air_ms(22, sf=9, bw_hz=125000)
    assert _close(base, 205.824)
    assert _close(time_on_air_ms(22, sf=9, bw_hz=125000, cr=4), base + 3 * 6 * 4.096)
    assert _close(time_on_air_ms(22, sf=9, bw_hz=125000, preamble=16), base + 8 * 4.096)
    assert _close(time_on_air_ms(22, sf=9, bw_hz=125000, ldro=True), base + 5 * 4.096)
    assert _close(time_on_air_ms(22, sf=9, bw_hz=125000, crc=False), base - 5 * 4.096)
    assert _close(time_on_air_ms(22, sf=9, bw_hz=125000, explicit_header=False), base - 5 * 4.096)
    assert _close(
        time_on_air_ms(20, sf=7, bw_hz=500000) * 4, time_on_air_ms(20, sf=7, bw_hz=125000)
    )
    for kw in ({"sf": 6, "bw_hz": 125000}, {"sf": 7, "bw_hz": 125000, "cr": 5}):
        _devtest.raises(ValueError, time_on_air_ms, 10, **kw)
    e = _devtest.raises(ValueError, time_on_air_ms, 256, sf=7, bw_hz=125000)
    assert str(e) == "payload of 256 bytes: must be 0..255"


# --- EU868 -------------------------------------------------------------------------------------
def test_eu868_tables():
    r = region("EU868")
    assert r.name == "EU868" and r.nch == 16 and r.dwell_ms == 0
    assert [r.dr(d) for d in range(7)] == [
        (12, 125000),
        (11, 125000),
        (10, 125000),
        (9, 125000),
        (8, 125000),
        (7, 125000),
        (7, 250000),
    ]
    assert [r.max_payload(d) for d in range(7)] == [51, 51, 51, 115, 222, 222, 222]
    for d in (7, 8, 15, -1):  # FSK, LR-FHSS, RFU: none is a LoRa rate we send
        _devtest.raises(ValueError, r.dr, d)
        _devtest.raises(ValueError, r.max_payload, d)
    assert r.uplink_dr_range == (0, 5)
    assert r.join_channels() == [(EU1, 0, 5), (EU2, 0, 5), (EU3, 0, 5)]
    assert r.channels == [(EU1, 0, 5), (EU2, 0, 5), (EU3, 0, 5)] + [None] * 13
    assert r.mask == bytearray(b"\x07\x00") and r.enabled(2) and not r.enabled(3)
    assert [r.tx_power_dbm(i) for i in range(8)] == [16, 14, 12, 10, 8, 6, 4, 2]
    _devtest.raises(ValueError, r.tx_power_dbm, 8)
    assert r.rx2_default == (869525000, 0)
    assert r.rx1(EU2, 5, 0) == (EU2, 5) and r.rx1(EU2, 5, 3) == (EU2, 2)
    assert r.rx1(EU2, 1, 5) == (EU2, 0)  # never below DR0
    _devtest.raises(ValueError, r.rx1, EU2, 5, 6)
    assert r.fits(0, 51 + 13) and not r.fits(0, 51 + 14) and r.fits(5, 222 + 13)


def test_eu868_new_channel_and_cflist():
    r = region("EU868")
    assert r.new_channel(1, 867100000, 0, 5) == 0  # the default channels stay
    assert r.new_channel(16, 867100000, 0, 5) == 0
    assert r.new_channel(3, 867100000, 0, 5) == 3 and r.enabled(3)
    assert r.channel(3) == (867100000, 0, 5)
    assert r.new_channel(4, 868650000, 0, 5) == 2  # in the gap 868.6..868.7 MHz: frequency NACK
    assert r.new_channel(4, 864950000, 0, 5) == 2  # across 865 MHz, two duty cycles: NACK
    assert r.new_channel(4, 915000000, 0, 5) == 2
    assert r.new_channel(4, 867300000, 5, 2) == 1  # DR range NACK
    assert r.new_channel(4, 867300000, 0, 8) == 1
    assert r.channel(4) is None and not r.enabled(4)
    assert r.new_channel(3, 0, 0, 0) == 3 and r.channel(3) is None and not r.enabled(3)
    # CFList type 0: 867.1, 867.3, 867.5, 867.7, 867.9 MHz (TTN's EU868 plan) as 24-bit LE x 100 Hz.
    cf = bytearray(16)
    for k in range(5):
        f = (867100000 + 200000 * k) // 100
        cf[3 * k : 3 * k + 3] = bytes((f & 0xFF, f >> 8 & 0xFF, f >> 16))
    assert r.apply_cflist(bytes(cf))
    assert [r.channel(i) for i in range(3, 8)] == [(867100000 + 200000 * k, 0, 5) for k in range(5)]
    assert r.mask == bytearray(b"\xff\x00")
    cf[15] = 1
    assert not region("EU868").apply_cflist(bytes(cf))  # a US915 (type 1) list


def test_eu868_link_adr():
    r = region("EU868")
    r.new_channel(3, 867100000, 0, 5)
    r.new_channel(4, 867300000, 6, 6)  # an SF7/250 kHz channel
    assert r.link_adr(5, 1, 0x0009, 0) == 7 and r.mask == bytearray(b"\x09\x00")
    assert r.link_adr(5, 1, 0x0021, 0) == 6  # channel 5 is not defined: mask NACK...
    assert r.mask == bytearray(b"\x09\x00")  # ...and nothing changes
    assert r.link_adr(5, 1, 0x0000, 0) == 6  # every channel off
    assert r.link_adr(5, 1, 0x0001, 3) == 6  # ChMaskCntl 3 is RFU in EU868
    assert r.link_adr(6, 1, 0x0009, 0) == 5  # DR6 on no enabled channel
    assert r.link_adr(6, 1, 0x0011, 0) == 7 and r.mask == bytearray(b"\x11\x00")
    assert r.link_adr(7, 1, 0x0011, 0) == 5  # DR7 (FSK): not ours
    assert r.link_adr(5, 8, 0x0011, 0) == 3  # TXPower 8: none
    assert r.link_adr(15, 15, 0x0001, 0) == 7  # 15: keep DR and power (1.0.4)
    assert r.link_adr(5, 0, 0, 6) == 7 and r.mask == bytearray(b"\x1f\x00")  # all defined on
    # A block: masks in order, DR and power from the last, one answer for all.
    assert r.link_adr(3, 2, [0x0000, 0x0006], [0, 0]) == 7 and r.mask == bytearray(b"\x06\x00")


def test_eu868_clamp_and_pick():
    r = region("EU868")
    assert r.clamp_dr(15) == 5 and r.clamp_dr(-1) == 0 and r.clamp_dr(3) == 3
    seen = {}
    for k in range(30):
        i, f = r.pick(5, k)
        assert r.channel(i)[0] == f and r.enabled(i)
        seen[i] = 1
    assert sorted(seen) == [0, 1, 2]
    e = _devtest.raises(ValueError, r.pick, 6, 0)
    assert str(e) == "EU868: no enabled channel for DR6"
    r.new_channel(3, 867100000, 6, 6)
    assert r.pick(6, 12345) == (3, 867100000)


def test_region_state_survives_json_and_bad_state_changes_nothing():
    r = region("EU868")
    r.apply_cflist(bytes((0x18, 0x4F, 0x84)) + bytes(13))  # 867.1 MHz on channel 3
    r.link_adr(5, 0, 0x000A, 0)
    s = json.loads(json.dumps(r.state()))
    assert s == {"m": "0a00", "c": [[3, 867100000, 0, 5]]}
    r2 = region("EU868")
    assert r2.restore(s) and r2.mask == r.mask and r2.channels == r.channels
    for bad in (
        {"m": "0000"},
        {"m": "0a"},
        {"m": "zz00"},
        {},
        {"m": "0a00", "c": [[3, 1, 0, 5]]},
        {"m": "0a00", "c": [[5, 867500000, 0, 5], [6, 867700000, 9, 5]]},
    ):
        r3 = region("EU868")
        assert not r3.restore(bad), bad
        assert r3.mask == bytearray(b"\x07\x00") and r3.channels == region("EU868").channels, bad
    u = region("US915", sub_band=2)
    u.link_adr(3, 0, 0x00F0, 1)
    u2 = region("US915", sub_band=2)
    assert u2.restore(json.loads(json.dumps(u.state()))) and u2.mask == u.mask
    assert not region("US915").restore(r.state())  # an EU868 mask is two bytes, not nine


# --- US915 -------------------------------------------------------------------------------------
def test_us915_tables_and_sub_bands():
    r = region("US915", sub_band=2)
    assert r.name == "US915" and r.nch == 72 and r.sub_band == 2 and r.dwell_ms == 400
    assert [r.dr(d) for d in (0, 1, 2, 3, 4)] == [
        (10, 125000),
        (9, 125000),
        (8, 125000),
        (7, 125000),
        (8, 500000),
    ]
    assert [r.dr(d) for d in range(8, 14)] == [(12 - k, 500000) for k in range(6)]
    for d in (5, 6, 7, 14):
        _devtest.raises(ValueError, r.dr, d)
    assert [r.max_payload(d) for d in (0, 1, 2, 3, 4)] == [11, 53, 125, 242, 242]
    assert [r.max_payload(d) for d in range(8, 14)] == [53, 129, 242, 242, 242, 242]
    assert r.uplink_dr_range == (0, 3)
    assert r.channel(0) == (902300000, 0, 3) and r.channel(63) == (914900000, 0, 3)
    assert r.channel(64) == (903000000, 4, 4) and r.channel(71) == (914200000, 4, 4)
    assert r.channel(72) is None
    on = [i for i in range(72) if r.enabled(i)]
    assert on == list(range(8, 16)) + [65]
    assert r.join_channels() == [(903900000 + 200000 * k, 0, 0) for k in range(8)] + [
        (904600000, 4, 4)
    ]
    assert [i for i in range(72) if region("US915").enabled(i)] == list(range(72))
    assert [i for i in range(72) if region("US915", sub_band=8).enabled(i)] == list(
        range(56, 64)
    ) + [71]
    for bad in (0, 9):
        _devtest.raises(ValueError, region, "US915", bad)
    _devtest.raises(ValueError, region, "AS923")
    assert [r.tx_power_dbm(i) for i in (0, 1, 14)] == [30, 28, 2]
    _devtest.raises(ValueError, r.tx_power_dbm, 15)
    assert r.rx2_default == (923300000, 8)
    assert r.new_channel(3, 903100000, 0, 3) == 0  # a fixed channel plan
    assert r.clamp_dr(5) == 3


def test_us915_rx1():
    r = region("US915", sub_band=2)
    # RP002-1.0.3 2.5.7: downlink channel = uplink channel mod 8; the DR table row by row.
    assert r.rx1(903900000, 0, 0) == (923300000, 10)  # channel 8
    assert r.rx1(905300000, 3, 0) == (927500000, 13)  # channel 15
    assert r.rx1(904600000, 4, 0) == (923900000, 13)  # channel 65 (500 kHz)
    table = [[10, 9, 8, 8], [11, 10, 9, 8], [12, 11, 10, 9], [13, 12, 11, 10], [13, 13, 12, 11]]
    for dr in range(5):
        assert [r.rx1(903900000, dr, o)[1] for o in range(4)] == table[dr]
    _devtest.raises(ValueError, r.rx1, 903900000, 0, 4)
    _devtest.raises(ValueError, r.rx1, 903950000, 0, 0)  # not on the 200 kHz grid
    _devtest.raises(ValueError, r.rx1, 923300000, 0, 0)


def test_us915_dwell_time_limits_every_uplink_dr():
    # RP002's N is exactly what fits 400 ms: N + 13 bytes fit, one more does not.
    r = region("US915", sub_band=2)
    for dr in range(5):
        n = r.max_payload(dr) + 13
        assert r.fits(dr, n), dr
        assert not r.fits(dr, n + 1), dr
    sf, bw = r.dr(0)
    assert (
        time_on_air_ms(11 + 13, sf=sf, bw_hz=bw) <= 400 < time_on_air_ms(12 + 13, sf=sf, bw_hz=bw)
    )


def test_us915_link_adr_masks():
    r = region("US915")
    # The classic sub-band 2 block: all 125 kHz off + channel 65 on, then channels 8..15.
    assert r.link_adr(3, 0, [0x0002, 0xFF00], [7, 0]) == 7
    assert [i for i in range(72) if r.enabled(i)] == list(range(8, 16)) + [65]
    assert r.link_adr(4, 0, 0x0000, 4) == 5  # DR4 with every 500 kHz channel off: DR NACK
    assert r.link_adr(3, 0, 0x0000, 4) == 7 and not r.enabled(65)
    assert r.link_adr(3, 0, 0x0000, 7) == 6  # nothing left on
    assert r.link_adr(1, 0, 0x0081, 5) == 7  # RP002 ChMaskCntl 5: sub-bands 1 and 8
    assert [i for i in range(72) if r.enabled(i)] == list(range(0, 8)) + list(range(56, 64)) + [
        64,
        71,
    ]
    assert r.link_adr(1, 0, 0x0001, 6) == 7 and sum(r.enabled(i) for i in range(72)) == 65
    assert r.link_adr(1, 15, 0x0001, 2) == 7 and r.link_adr(1, 16, 0x0001, 2) == 3
    assert r.link_adr(5, 0, 0x0001, 2) == 5  # DR5 is LR-FHSS


def test_us915_cflist_and_rx_param_setup():
    r = region("US915")
    cf = bytes((0x00, 0xFF, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 1))
    assert r.apply_cflist(cf)
    assert [i for i in range(72) if r.enabled(i)] == list(range(8, 16)) + [65]
    assert not r.apply_cflist(cf[:15] + b"\x00")  # type 0 is EU868's
    assert not r.apply_cflist(bytes(15) + b"\x01")  # would leave no channel
    assert r.rx_param_setup(3, 8, 923300000) == 7
    assert r.rx_param_setup(4, 8, 927500000) == 3
    assert r.rx_param_setup(0, 7, 923300000) == 5
    assert r.rx_param_setup(0, 8, 923400000) == 6
    e = region("EU868")
    assert e.rx_param_setup(5, 6, 869525000) == 7
    assert e.rx_param_setup(6, 7, 868650000) == 0


# --- duty cycle ----------------------------------------------------------------------------------
def test_duty_cycle_time_off_per_band():
    st = {}
    dc = DutyCycle(st)
    assert dc.wait_ms(EU1, 0, 50) == 0
    dc.record(EU1, 46.336, 10000)  # ended at 10 s, 47 whole ms on air
    assert st["g1"][0] == 10000 + 47 * 99 + 1
    assert dc.wait_ms(EU2, 10000) == 47 * 99 + 1  # 868.3 MHz: same sub-band g1
    assert dc.wait_ms(EU2, 10000 + 47 * 99 + 1) == 0
    assert dc.wait_ms(869525000, 10000) == 0  # g3 (10 %) is free
    assert dc.wait_ms(915000000, 10000) == 0  # outside EU868: no band limit
    dc.record(869525000, 100, 20000)
    assert dc.wait_ms(869525000, 20000) == 100 * 9 + 1
    assert lwregion.band_name(868700000) == "g2" and lwregion.band_name(868650000) is None
    assert lwregion.band_name(864000000) == "g0" and lwregion.band_name(866000000) == "g"
    # The state is plain JSON (retained memory): a restored DutyCycle says the same.
    dc2 = DutyCycle(json.loads(json.dumps(st)))
    assert dc2.wait_ms(869525000, 20000) == dc.wait_ms(869525000, 20000)


def test_hourly_budget_holds_where_time_off_alone_would_not():
    # Two 2793 ms frames in g2 (0.1 %, 3600 ms per hour): time-off allows the second 46.5 minutes
    # after the first, but both would then lie in one hour. The budget defers it.
    dc = DutyCycle({})
    f = 869000000
    toa = time_on_air_ms(64, sf=12, bw_hz=125000)
    end = 1000000 + 2794
    dc.record(f, toa, end)
    off = dc.state["g2"][0]
    assert off == end + 2794 * 999 + 1
    w = dc.wait_ms(f, off, toa)
    assert w > 0
    start = off + w
    assert start - (end - 2794) >= 3600000 - 2794  # the frames are an hour apart
    assert dc.wait_ms(f, start, toa) == 0
    _devtest.raises(ValueError, dc.wait_ms, f, start, 3601)  # longer than the hour's budget


def test_busy_band_is_deferred_and_pick_prefers_a_free_one():
    r = region("EU868")
    r.new_channel(3, 867100000, 0, 5)  # band "g"
    dc = DutyCycle({})
    now = 5000
    bands = []
    for _ in range(2):  # the second pick goes to the band the first did not use
        i, f = r.pick(5, now, dc, now, 50)
        assert dc.wait_ms(f, now, 50) == 0
        dc.record(f, 50, now + 50)
        bands.append(dc.band(f))
        now += 60
    assert sorted(bands) == ["g", "g1"]
    # Both bands are used: the next pick is the channel free soonest, and says how long.
    i, f = r.pick(5, 1, dc, now, 50)
    assert dc.wait_ms(f, now, 50) > 0
    assert dc.wait_ms(f, now, 50) == min(dc.wait_ms(r.channel(k)[0], now, 50) for k in range(4))


def test_aggregated_duty_cycle():
    dc = DutyCycle({})
    assert dc.max_dc(4) and dc.state["max"] == 4  # 1/16
    dc.record(915000000, 100, 1000)  # counts outside the EU bands too
    assert dc.wait_ms(902300000, 1000) == 100 * 15 + 1
    assert dc.wait_ms(EU1, 1000 + 1501) == 0
    assert not dc.max_dc(16)  # RFU
    assert dc.max_dc(0) and "max" not in dc.state and "agg" not in dc.state
    assert dc.wait_ms(902300000, 1000) == 0


def test_duty_cycle_record_restored_after_a_power_loss_never_under_estimates():
    # ahead() gives what flash keeps (time-off left and the hour's ToA, from the end of the
    # frame about to go, rounded up); restore() puts it back as if that end were the boot.
    dc = DutyCycle({})
    f = 868100000  # g1: 1 %, 36 s an hour
    now = 5_000_000
    for _ in range(3):
        now += dc.wait_ms(f, now, 1000)
        rec = dc.ahead(f, 1000, now + 1000)
        dc.record(f, 1000, now + 1000)
        now += 1000
    off, used = rec["g1"]
    assert 99 * 1000 + 1 <= off <= 99 * 1000 + 99 * 64 and off % (99 * 64) == 0
    assert 3000 <= used <= 3000 + 2250 and used % 2250 == 0
    assert list(rec) == ["g1"]
    # The wall clock restarted at the power-on: everything counts from the boot.
    boot = 1234
    dc2 = DutyCycle({})
    dc2.restore(json.loads(json.dumps(rec)), boot)
    assert dc2.wait_ms(f, boot, 1000) == off
    assert dc2.wait_ms(f, boot + off, 1000) == 0
    # The hour's ToA is charged at the boot: a frame that would overrun the budget waits.
    assert dc2.wait_ms(f, boot + off, 36000 - used) == 0
    assert dc2.wait_ms(f, boot + off, 36000 - used + 1) > 0
    # Merged into a state that has a history (a watchdog reset's stale copy): the later
    # time-off wins, the ToA adds up.
    dc3 = DutyCycle({})
    dc3.record(f, 500, boot)
    dc3.restore(rec, boot + 10)
    assert dc3.wait_ms(f, boot + 10, 1) == off
    assert dc3.ahead(f, 0, boot + 10)["g1"][1] == -(-(500 + used) // 2250) * 2250
    # Other bands and the aggregated limit are kept too; nothing left: an empty record.
    dc4 = DutyCycle({})
    dc4.max_dc(2)
    dc4.record(f, 1000, 0)
    rec4 = dc4.ahead(869525000, 100, 2000)  # g3: 10 %
    assert rec4["g3"] == [2 * 9 * 64, 22500]  # 901 ms off in steps of 9 x 64; 1/16 of 360 s
    assert rec4["g1"][0] >= 99 * 1000 + 1 - 2000 and rec4["agg"] % 4096 == 0
    assert rec4["agg"] >= 100 * 3 + 1
    dc4.max_dc(0)
    assert dc4.ahead(915000000, 0, 10 * 3_600_000) == {}  # ten hours on: nothing left


def test_region_module_heap_is_bounded():
    # The node imports it with the rest of the LoRaWAN stack: keep it small (64-bit interpreter).
    import sys

    sys.modules.pop("motekit.lwregion", None)
    gc.collect()
    before = gc.mem_free()
    __import__("motekit.lwregion")
    r = sys.modules["motekit.lwregion"].region("US915", sub_band=2)
    gc.collect()
    used = before - gc.mem_free()
    assert r.nch == 72
    assert used < 16 * 1024, used
