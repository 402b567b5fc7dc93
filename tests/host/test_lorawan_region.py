"""LoRaWAN regions on the host (host_tools/lorawan/region.py): RP002-1.0.3's EU868 and US915 tables,
the same as the node's (firmware/motekit/lwregion.py, run in the unix MicroPython), what the
bench network server builds from them (CFList, sub-band masks) as the node reads it, and the
duty-cycle check of an air log, including a simulated day of the node's own scheduling."""

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from host_tools.errors import ConfigError
from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.lorawan.region import (
    BANDS,
    HOUR_MS,
    US915,
    band_of,
    duty_cycle_report,
    region,
)

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")


def run_node(code: str) -> object:
    """Run MicroPython code with firmware/ on its path; it prints one JSON value per line (a
    list when there are several)."""
    env = {**os.environ, "MICROPYPATH": str(REPO / "firmware")}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.py"
        script.write_text(code)
        proc = subprocess.run(
            [str(MICROPYTHON), str(script)], capture_output=True, text=True, env=env, timeout=120
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return lines[0] if len(lines) == 1 else lines


# --- the tables -----------------------------------------------------------------------------------
def test_eu868_tables_are_rp002s() -> None:
    r = region("EU868")
    assert [r.datarate(d) for d in range(7)] == [
        "SF12BW125",
        "SF11BW125",
        "SF10BW125",
        "SF9BW125",
        "SF8BW125",
        "SF7BW125",
        "SF7BW250",
    ]
    assert [r.max_payload(d) for d in range(7)] == [51, 51, 51, 115, 222, 222, 222]
    assert r.rx2_default == (869_525_000, 0)
    assert [c.freq_hz for c in r.join_channels()] == [868_100_000, 868_300_000, 868_500_000]
    assert [r.tx_power_dbm(i) for i in range(8)] == [16, 14, 12, 10, 8, 6, 4, 2]
    assert r.rx1(868_500_000, 5, 2) == (868_500_000, 3)
    assert r.channel_of(868_300_000) == 1 and r.channel_of(867_100_000) is None
    for bad in (lambda: r.dr(7), lambda: r.tx_power_dbm(8), lambda: r.rx1(868_100_000, 5, 6)):
        with pytest.raises(ConfigError):
            bad()


def test_us915_tables_are_rp002s() -> None:
    r = region("US915", sub_band=2)
    assert [r.datarate(d) for d in range(5)] == [
        "SF10BW125",
        "SF9BW125",
        "SF8BW125",
        "SF7BW125",
        "SF8BW500",
    ]
    assert [r.datarate(d) for d in range(8, 14)] == [f"SF{12 - k}BW500" for k in range(6)]
    assert [r.max_payload(d) for d in (0, 1, 2, 3, 4)] == [11, 53, 125, 242, 242]
    assert [r.max_payload(d) for d in range(8, 14)] == [53, 129, 242, 242, 242, 242]
    assert r.rx2_default == (923_300_000, 8)
    assert r.enabled() == [*range(8, 16), 65]
    assert r.join_channels()[0] == (903_900_000, 0, 0)
    assert r.join_channels()[-1] == (904_600_000, 4, 4)
    assert r.rx1(905_300_000, 3, 0) == (927_500_000, 13)
    assert r.rx1(904_600_000, 4, 3) == (923_900_000, 11)
    assert r.tx_power_dbm(14) == 2
    with pytest.raises(ConfigError, match="no US915 uplink channel"):
        r.rx1(923_300_000, 0, 0)


def test_semtech_udp_datarate_names_round_trip() -> None:
    eu, us = region("EU868"), region("US915")
    for d in range(7):
        assert eu.dr_of(eu.datarate(d)) == d
    assert eu.dr_of("SF7BW125", downlink=True) == 5
    assert us.dr_of("SF8BW500") == 4 and us.dr_of("SF8BW500", downlink=True) == 12
    assert us.dr_of("SF10BW125") == 0
    with pytest.raises(ConfigError, match="no downlink data rate 'SF10BW125'"):
        us.dr_of("SF10BW125", downlink=True)
    with pytest.raises(ConfigError, match="no uplink data rate 'SF12BW125'"):
        us.dr_of("SF12BW125")


def test_bad_regions_and_sub_bands_are_refused() -> None:
    for args in (("AS923", None), ("US915", 0), ("US915", 9), ("EU868", 2)):
        with pytest.raises(ConfigError):
            region(*args)


def test_us915_max_payload_is_the_dwell_time_limit() -> None:
    r = region("US915")
    for dr in range(5):
        n = r.max_payload(dr) + 13
        assert r.fits(dr, n) and not r.fits(dr, n + 1)
        assert r.time_on_air_ms(dr, n) <= r.dwell_ms
    assert not region("EU868").fits(0, 65) and region("EU868").fits(0, 64)


# --- host and node hold the same tables -----------------------------------------------------------
_DUMP = """
import json
from motekit.lwregion import region
out = []
for name, sb in (("EU868", None), ("US915", 2), ("US915", None), ("US915", 7)):
    r = region(name, sb)
    drs = []
    for d in range(16):
        try:
            drs.append([d, list(r.dr(d)), r.max_payload(d)])
        except ValueError:
            pass
    powers = []
    for i in range(16):
        try:
            powers.append(r.tx_power_dbm(i))
        except ValueError:
            break
    rx1 = []
    for i in range(r.nch):
        c = r.channel(i)
        if c is None or not r.enabled(i):
            continue
        for d in range(c[1], c[2] + 1):
            for o in range(6 if name == "EU868" else 4):
                rx1.append([c[0], d, o, list(r.rx1(c[0], d, o))])
    out.append({
        "name": r.name, "drs": drs, "powers": powers, "rx1": rx1,
        "up": list(r.uplink_dr_range), "rx2": list(r.rx2_default), "dwell": r.dwell_ms,
        "join": [list(c) for c in r.join_channels()],
        "channels": [list(c) if c else None for c in r.channels],
        "enabled": [i for i in range(r.nch) if r.enabled(i)],
    })
print(json.dumps(out))
"""


def test_node_and_host_regions_are_the_same() -> None:
    node = run_node(_DUMP)
    assert isinstance(node, list)
    plans = (("EU868", None), ("US915", 2), ("US915", None), ("US915", 7))
    for n, (name, sb) in zip(node, plans, strict=True):
        h = region(name, sb)
        assert n["name"] == h.name
        assert n["drs"] == [[d, list(sfbw), h.max_payload(d)] for d, sfbw in h.data_rates.items()]
        assert n["powers"] == [h.tx_power_dbm(i) for i in h.tx_power_indices]
        assert n["up"] == list(h.uplink_dr_range) and n["rx2"] == list(h.rx2_default)
        assert n["dwell"] == h.dwell_ms
        assert n["join"] == [list(c) for c in h.join_channels()]
        assert n["channels"] == [list(c) if c else None for c in h.channels]
        enabled = h.enabled() if isinstance(h, US915) else [0, 1, 2]
        assert n["enabled"] == enabled
        assert len(n["rx1"]) >= 18
        for freq, dr, off, got in n["rx1"]:
            assert got == list(h.rx1(freq, dr, off)), (name, freq, dr, off)


def test_what_the_server_sends_is_what_the_node_takes() -> None:
    # The bench network server's CFLists and US915 sub-band LinkADRReq block, applied on the node.
    eu_cf = region("EU868").cflist([867_100_000 + 200_000 * k for k in range(5)])
    assert len(eu_cf) == 16 and eu_cf[15] == 0
    assert eu_cf[:3] == (8_671_000).to_bytes(3, "little")
    masks = {sb: US915(sb).sub_band_masks() for sb in range(1, 9)}
    cflists = {sb: US915(sb).cflist() for sb in range(1, 9)}
    code = (
        "import json\nfrom motekit.lwregion import region\n"
        f"eu = region('EU868')\nok = eu.apply_cflist(bytes({list(eu_cf)}))\n"
        "out = {'eu': [ok, eu.channels, list(eu.mask)], 'adr': {}, 'cf': {}}\n"
        f"M = {json.dumps(masks)}\nC = {json.dumps({k: list(v) for k, v in cflists.items()})}\n"
        "for sb in M:\n"
        "    r = region('US915')\n"
        "    cms = [m for m, c in M[sb]]\n"
        "    cns = [c for m, c in M[sb]]\n"
        "    st = r.link_adr(2, 0, cms, cns)\n"
        "    out['adr'][sb] = [st, [i for i in range(72) if r.enabled(i)]]\n"
        "    r = region('US915')\n"
        "    ok = r.apply_cflist(bytes(C[sb]))\n"
        "    out['cf'][sb] = [ok, [i for i in range(72) if r.enabled(i)]]\n"
        "print(json.dumps(out))\n"
    )
    node = run_node(code)
    assert isinstance(node, dict)
    ok, chans, mask = node["eu"]
    assert ok and mask == [0xFF, 0]
    assert chans[3:8] == [[867_100_000 + 200_000 * k, 0, 5] for k in range(5)]
    for sb in range(1, 9):
        want = US915(sb).enabled()
        assert node["adr"][str(sb)] == [7, want]
        assert node["cf"][str(sb)] == [True, want]


def test_eu868_cflist_refuses_channels_outside_one_sub_band() -> None:
    r = region("EU868")
    for bad in ([868_650_000], [864_950_000], [915_000_000], [867_100_050], [867_100_000] * 6):
        with pytest.raises(ConfigError):
            r.cflist(bad)
    with pytest.raises(ConfigError):
        US915(2).cflist([903_900_000])


# --- duty cycle of an air log ---------------------------------------------------------------------
def test_bands_and_their_duty_cycles() -> None:
    assert [(b.name, b.duty) for b in BANDS] == [
        ("g0", 0.001),
        ("g", 0.01),
        ("g1", 0.01),
        ("g2", 0.001),
        ("g3", 0.1),
        ("g4", 0.01),
    ]
    assert band_of(868_100_000).name == "g1"  # type: ignore[union-attr]
    assert band_of(869_525_000).name == "g3"  # type: ignore[union-attr]
    assert band_of(868_650_000) is None and band_of(902_300_000) is None


def _frames(spans: list[tuple[float, float]], freq: int) -> list[tuple[float, float, float]]:
    # (start, toa) -> (end, freq, toa), as the air log has them
    return [(s + toa, freq, toa) for s, toa in spans]


def test_a_clean_log_has_no_violations() -> None:
    toa = time_on_air_ms(23, sf=7, bw_hz=125_000)
    frames = []
    for k in range(24 * 12):  # every 5 minutes for a day, rotating the default channels
        frames += _frames([(k * 300_000.0, toa)], 868_100_000 + 200_000 * (k % 3))
    assert duty_cycle_report(frames) == []


def test_exactly_the_time_off_is_allowed_and_a_ms_less_is_not() -> None:
    toa = time_on_air_ms(23, sf=9, bw_hz=125_000)
    off = toa * 99
    ok = _frames([(0.0, toa), (toa + off, toa)], 868_100_000)
    assert duty_cycle_report(ok) == []
    early = _frames([(0.0, toa), (toa + off - 1, toa)], 868_300_000)  # another g1 channel
    (v,) = duty_cycle_report(early)
    assert (v.kind, v.band) == ("time_off", "g1")
    assert "1.000 ms before" in v.detail
    # Different sub-bands do not wait for each other.
    assert duty_cycle_report(early[:1] + _frames([(toa, toa)], 869_525_000)) == []


def test_the_hour_is_checked_even_when_every_time_off_was_kept() -> None:
    # Two 2793 ms frames in g2 (0.1 %: 3600 ms per hour), the second right after the first's
    # time-off: LoRaWAN's rule is kept, ETSI's hour is not.
    toa = time_on_air_ms(64, sf=12, bw_hz=125_000)
    frames = _frames([(0.0, toa), (toa * 1000, toa)], 869_000_000)
    report = duty_cycle_report(frames)
    assert [v.kind for v in report] == ["hour"]
    assert report[0].band == "g2" and "over 3600.0 ms (0.1 %)" in report[0].detail
    # An hour apart it is clean.
    assert duty_cycle_report(_frames([(0.0, toa), (HOUR_MS, toa)], 869_000_000)) == []


def test_a_frame_outside_the_sub_bands_is_a_violation() -> None:
    (v,) = duty_cycle_report([(1000.0, 868_650_000, 50.0)])
    assert v.kind == "band" and v.band is None and "868650000 Hz" in str(v)


def test_a_full_hour_takes_not_one_ms_more() -> None:
    # 360 frames of 100 ms, each right after the last one's time-off, fill g1's 36 s of the first
    # hour exactly; the next one a millisecond early breaks both rules.
    toa = 100.0
    spans = [(k * toa * 100, toa) for k in range(361)]
    assert duty_cycle_report(_frames(spans, 868_100_000)) == []
    spans[-1] = (360 * toa * 100 - 1, toa)
    report = duty_cycle_report(_frames(spans, 868_100_000))
    assert sorted({v.kind for v in report}) == ["hour", "time_off"]
    assert all("36001.0 ms on air" in v.detail for v in report if v.kind == "hour")


def test_the_hour_check_agrees_with_brute_force_on_random_logs() -> None:
    rng = random.Random(6)
    for _ in range(40):
        spans, t = [], 0.0
        for _ in range(rng.randrange(5, 60)):
            toa = rng.choice([46.3, 400.0, 1155.1, 2793.5])
            spans.append((t, toa))
            t += toa + toa * rng.uniform(20, 120)  # sometimes inside the time-off, often not
        frames = _frames(spans, 868_500_000)
        hour = [v for v in duty_cycle_report(frames) if v.kind == "hour"]
        windows = [(s + toa - HOUR_MS, s + toa) for s, toa in spans] + [
            (s, s + HOUR_MS) for s, _ in spans
        ]
        worst = max(
            sum(max(0.0, min(s + toa, z) - max(s, a)) for s, toa in spans) for a, z in windows
        )
        assert bool(hour) == (worst > 36_000 + 1e-6), worst


# --- the node's scheduler against the report ------------------------------------------------------
_DAY = """
import json, random
from motekit.lwregion import DutyCycle, region, time_on_air_ms
random.seed(%(seed)d)
r = region("EU868")
for k in range(5):
    r.new_channel(3 + k, 867100000 + 200000 * k, 0, 5)
r.new_channel(8, 868800000, 0, 5)    # g2, 0.1 %%
r.new_channel(9, 869525000, 0, 5)    # g3, 10 %%
dc = DutyCycle({})
now = 0
while now < 86400000:
    dr = random.getrandbits(8) %% 6
    sf, bw = r.dr(dr)
    n = 13 + random.getrandbits(8) %% (r.max_payload(dr) + 1)
    toa = time_on_air_ms(n, sf=sf, bw_hz=bw)
    i, f = r.pick(dr, random.getrandbits(16), dc, now, toa)
    now += dc.wait_ms(f, now, toa)
    now += int(toa) + 1                    # TxDone, in whole ms as the node's clock sees it
    dc.record(f, toa, now)
    print(json.dumps([now, f, toa]))
    now += random.getrandbits(4)           # the node asks again at once: it is saturated
"""


def test_a_saturated_node_keeps_every_limit_for_a_day() -> None:
    log = run_node(_DAY % {"seed": 1})
    assert isinstance(log, list) and len(log) > 1000
    frames = [(float(end), float(f), float(toa)) for end, f, toa in log]
    assert duty_cycle_report(frames) == []
    # ...and it is not silent: each band it used carried a fair share of its allowance.
    used: dict[str, float] = {}
    for _, f, toa in frames:
        used[band_of(f).name] = used.get(band_of(f).name, 0.0) + toa  # type: ignore[union-attr]
    for b in BANDS:
        if b.name in ("g", "g1", "g2", "g3"):
            assert used[b.name] > 0.6 * 86_400_000 / b.den, (b.name, used[b.name])
