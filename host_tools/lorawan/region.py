"""LoRaWAN regional parameters for EU868 and US915 on the host: what the bench network server needs
(data rates and their Semtech UDP names, RX1/RX2, max payload, channel plans, CFList, the US915
sub-band masks) and the EU868 duty-cycle check of an air log.

Sources: LoRaWAN Regional Parameters RP002-1.0.3, sections 2.4 (EU863-870) and 2.5 (US902-928);
ERC Recommendation 70-03 Annex 1 and ETSI EN 300 220-2 for the EU868 sub-bands. The node holds the
same tables in firmware/motekit/lwregion.py; tests/host/test_lorawan_region.py runs both and
compares them. docs/lorawan.md explains the choices.

    reg = region("EU868")
    reg.rx1(868_100_000, 5, 1)        # (868100000, 4)
    reg.datarate(5), reg.dr_of("SF7BW125")   # "SF7BW125", 5
    duty_cycle_report(frames)         # [] when one node's air log kept the EU868 limits
"""

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from host_tools.errors import ConfigError
from host_tools.lorawan.airtime import time_on_air_ms

HOUR_MS = 3_600_000  # ETSI EN 300 220: a duty cycle is a share of any one-hour period


class Channel(NamedTuple):
    freq_hz: int
    dr_min: int
    dr_max: int


# --- EU868 sub-bands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    name: str
    lo_hz: int
    hi_hz: int
    den: int  # the duty cycle is 1/den

    @property
    def duty(self) -> float:
        return 1 / self.den


# ERC/REC 70-03 Annex 1 / ETSI EN 300 220-2. LoRaWAN's old "g" (863-868 MHz, 1 %) is split as the
# current recommendation has it: 863-865 MHz is 0.1 %.
BANDS = (
    Band("g0", 863_000_000, 865_000_000, 1000),
    Band("g", 865_000_000, 868_000_000, 100),
    Band("g1", 868_000_000, 868_600_000, 100),
    Band("g2", 868_700_000, 869_200_000, 1000),
    Band("g3", 869_400_000, 869_650_000, 10),
    Band("g4", 869_700_000, 870_000_000, 100),
)


def band_of(freq_hz: float) -> Band | None:
    """The EU868 sub-band holding a channel's centre frequency (the node's rule), or None."""
    for b in BANDS:
        if b.lo_hz <= freq_hz < b.hi_hz:
            return b
    return None


# --- regions --------------------------------------------------------------------------------------
_BW_CODE = {125_000: "BW125", 250_000: "BW250", 500_000: "BW500"}


class Region:
    """One region's fixed tables and default channel plan. Methods raise ConfigError on a data rate,
    offset or frequency the region does not have."""

    name = ""
    dwell_ms = 0  # max time on air of one uplink; 0: no limit
    uplink_dr_range = (0, 0)  # the data rates the node picks on its own
    max_uplink_dr = 0  # the highest the network may set (on a channel that has it)
    downlink_dr_range = (0, 0)
    rx2_default = (0, 0)  # (freq_hz, dr)
    data_rates: Mapping[int, tuple[int, int]] = MappingProxyType({})  # DR -> (SF, BW Hz), LoRa
    max_payloads: Mapping[int, int] = MappingProxyType({})  # DR -> N: max FRMPayload, FOpts empty
    rx1_dr_offsets = range(0)
    max_eirp_dbm = 0
    tx_power_indices = range(0)
    sub_band: int | None = None

    def dr(self, dr: int) -> tuple[int, int]:
        try:
            return self.data_rates[dr]
        except KeyError:
            raise ConfigError(f"{self.name} has no LoRa data rate DR{dr}") from None

    def datarate(self, dr: int) -> str:
        """The Semtech UDP packet-forwarder name of a data rate: "SF7BW125"."""
        sf, bw = self.dr(dr)
        return f"SF{sf}{_BW_CODE[bw]}"

    def dr_of(self, datarate: str, *, downlink: bool = False) -> int:
        """The DR of a Semtech UDP "datr" ("SF7BW125"); US915 tells up- from downlink rates."""
        lo, hi = self.downlink_dr_range if downlink else (0, self.max_uplink_dr)
        for dr, (sf, bw) in sorted(self.data_rates.items()):
            if lo <= dr <= hi and f"SF{sf}{_BW_CODE[bw]}" == datarate:
                return dr
        way = "downlink" if downlink else "uplink"
        raise ConfigError(f"{self.name} has no {way} data rate {datarate!r}")

    def max_payload(self, dr: int) -> int:
        self.dr(dr)
        return self.max_payloads[dr]

    def time_on_air_ms(self, dr: int, phy_len: int) -> float:
        sf, bw = self.dr(dr)
        return time_on_air_ms(phy_len, sf=sf, bw_hz=bw)

    def fits(self, dr: int, phy_len: int) -> bool:
        """A PHYPayload of phy_len bytes may go up at dr: within N + 13 bytes (FHDR, FPort, MHDR,
        MIC) and, where there is one, within the dwell time."""
        if phy_len > self.max_payload(dr) + 13:
            return False
        return not self.dwell_ms or self.time_on_air_ms(dr, phy_len) <= self.dwell_ms

    def tx_power_dbm(self, index: int) -> int:
        """TXPower index -> max EIRP (dBm), RP002-1.0.3 2.4.3 / 2.5.3."""
        if index not in self.tx_power_indices:
            raise ConfigError(f"{self.name} has no TXPower {index}")
        return self.max_eirp_dbm - 2 * index

    def rx1(self, freq_hz: int, dr: int, rx1_dr_offset: int) -> tuple[int, int]:
        raise NotImplementedError

    @property
    def channels(self) -> list[Channel | None]:
        raise NotImplementedError

    def join_channels(self) -> list[Channel]:
        raise NotImplementedError

    def channel_of(self, freq_hz: int) -> int | None:
        """The index of the default-plan channel on freq_hz, or None."""
        for i, c in enumerate(self.channels):
            if c is not None and c.freq_hz == freq_hz:
                return i
        return None

    def _offset(self, dr: int, rx1_dr_offset: int) -> None:
        if rx1_dr_offset not in self.rx1_dr_offsets:
            raise ConfigError(f"{self.name} has no RX1DROffset {rx1_dr_offset}")
        if not 0 <= dr <= self.max_uplink_dr or dr not in self.data_rates:
            raise ConfigError(f"{self.name} has no uplink data rate DR{dr}")


class EU868(Region):
    name = "EU868"
    uplink_dr_range = (0, 5)  # DR6 (SF7/250 kHz) only on a channel the network adds
    max_uplink_dr = 6
    downlink_dr_range = (0, 6)
    rx2_default = (869_525_000, 0)
    data_rates = MappingProxyType(
        {
            0: (12, 125_000),
            1: (11, 125_000),
            2: (10, 125_000),
            3: (9, 125_000),
            4: (8, 125_000),
            5: (7, 125_000),
            6: (7, 250_000),
        }
    )  # DR7 is FSK 50 kbps: no LoRa radio of ours sends it
    max_payloads = MappingProxyType({0: 51, 1: 51, 2: 51, 3: 115, 4: 222, 5: 222, 6: 222})
    rx1_dr_offsets = range(6)
    max_eirp_dbm = 16
    tx_power_indices = range(8)

    @property
    def channels(self) -> list[Channel | None]:
        return [*self.join_channels(), *[None] * 13]

    def join_channels(self) -> list[Channel]:
        return [Channel(868_100_000 + 200_000 * i, 0, 5) for i in range(3)]

    def rx1(self, freq_hz: int, dr: int, rx1_dr_offset: int) -> tuple[int, int]:
        """RP002-1.0.3 2.4.7: the uplink's frequency, DR - offset down to DR0."""
        self._offset(dr, rx1_dr_offset)
        return freq_hz, max(dr - rx1_dr_offset, 0)

    def cflist(self, freqs: Sequence[int] = ()) -> bytes:
        """Join-accept CFList type 0: up to five extra channels (3..7, DR0..5)."""
        if len(freqs) > 5:
            raise ConfigError(f"an EU868 CFList holds 5 frequencies, not {len(freqs)}")
        out = bytearray(16)
        for k, f in enumerate(freqs):
            b = band_of(f)
            if f % 100 or b is None or band_of(f - 62_500) != b or band_of(f + 62_499) != b:
                raise ConfigError(f"{f} Hz is no EU868 channel inside one sub-band")
            out[3 * k : 3 * k + 3] = (f // 100).to_bytes(3, "little")
        return bytes(out)  # byte 15, CFListType, is 0


class US915(Region):
    name = "US915"
    dwell_ms = 400  # FCC 15.247; RP002-1.0.3 2.5.6's N keeps every uplink DR within it
    uplink_dr_range = (0, 3)  # DR4 (SF8/500 kHz) only when the network asks for it
    max_uplink_dr = 4
    downlink_dr_range = (8, 13)
    rx2_default = (923_300_000, 8)
    data_rates = MappingProxyType(
        {
            0: (10, 125_000),
            1: (9, 125_000),
            2: (8, 125_000),
            3: (7, 125_000),
            4: (8, 500_000),
            8: (12, 500_000),
            9: (11, 500_000),
            10: (10, 500_000),
            11: (9, 500_000),
            12: (8, 500_000),
            13: (7, 500_000),
        }
    )  # DR5/DR6 are LR-FHSS, DR7 and DR14 RFU
    max_payloads = MappingProxyType(
        {0: 11, 1: 53, 2: 125, 3: 242, 4: 242, 8: 53, 9: 129, 10: 242, 11: 242, 12: 242, 13: 242}
    )
    rx1_dr_offsets = range(4)
    max_eirp_dbm = 30
    tx_power_indices = range(15)

    def __init__(self, sub_band: int | None = None) -> None:
        if sub_band is not None and not 1 <= sub_band <= 8:
            raise ConfigError(f"US915 sub-band {sub_band}: must be 1..8")
        self.sub_band = sub_band

    @property
    def channels(self) -> list[Channel | None]:
        up125 = [Channel(902_300_000 + 200_000 * i, 0, 3) for i in range(64)]
        up500 = [Channel(903_000_000 + 1_600_000 * i, 4, 4) for i in range(8)]
        return [*up125, *up500]

    def enabled(self) -> list[int]:
        """The channel indices the sub-band enables (all 72 without one)."""
        if self.sub_band is None:
            return list(range(72))
        b = self.sub_band - 1
        return [*range(8 * b, 8 * b + 8), 64 + b]

    def join_channels(self) -> list[Channel]:
        """RP002-1.0.3 2.5.2: joins go at DR0 on 125 kHz channels, DR4 on 500 kHz ones."""
        return [
            Channel(903_000_000 + 1_600_000 * (i - 64), 4, 4)
            if i >= 64
            else Channel(902_300_000 + 200_000 * i, 0, 0)
            for i in self.enabled()
        ]

    def rx1(self, freq_hz: int, dr: int, rx1_dr_offset: int) -> tuple[int, int]:
        """RP002-1.0.3 2.5.7: 923.3 MHz + (uplink channel mod 8) x 600 kHz, DR 10 + DR - offset
        within DR8..13."""
        self._offset(dr, rx1_dr_offset)
        if dr > 4:
            raise ConfigError(f"US915 has no uplink data rate DR{dr}")
        ch = self.channel_of(freq_hz)
        if ch is None:
            raise ConfigError(f"{freq_hz} Hz is no US915 uplink channel")
        return 923_300_000 + (ch % 8) * 600_000, min(max(10 + dr - rx1_dr_offset, 8), 13)

    def cflist(self, freqs: Sequence[int] = ()) -> bytes:
        """Join-accept CFList type 1 (LoRaWAN 1.0.3+): the channel mask of the sub-band."""
        if freqs:
            raise ConfigError("a US915 CFList is a channel mask: it takes no frequencies")
        mask = sum(1 << i for i in self.enabled())
        return mask.to_bytes(10, "little") + bytes(5) + b"\x01"

    def sub_band_masks(self) -> list[tuple[int, int]]:
        """(ChMask, ChMaskCntl) of a LinkADRReq block that leaves only the sub-band on, in the
        form every LoRaWAN 1.0.x device knows: all 125 kHz off and the 500 kHz channel on (7),
        then the sub-band's 8 channels (0..3)."""
        if self.sub_band is None:
            return [(0xFF, 6)]
        b = self.sub_band - 1
        return [(1 << b, 7), (0xFF << (8 * (b % 2)), b // 2)]


def region(name: str, sub_band: int | None = None) -> Region:
    if name == "EU868":
        if sub_band is not None:
            raise ConfigError("EU868 has no sub-bands")
        return EU868()
    if name == "US915":
        return US915(sub_band)
    raise ConfigError(f"region {name!r}: only EU868 and US915")


# --- duty cycle of an air log ---------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    kind: str  # "band": outside every sub-band; "time_off": too soon after a frame; "hour": over
    band: str | None  # the sub-band's share of a one-hour window
    t_ms: float  # the offending frame's end, or the end of the window over its share
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.band or '-'} at {self.t_ms:.0f} ms: {self.detail}"


def duty_cycle_report(
    frames: Iterable[tuple[float, float, float]], *, window_ms: float = HOUR_MS
) -> list[Violation]:
    """Check ONE transmitter's EU868 air log against the sub-band limits.

    frames: (t_sim_ms at the end of the transmission, freq_hz, toa_ms). Each sub-band must never
    hold more than its duty cycle of any sliding window_ms (ETSI), and every frame must start at
    least ToA x (1/dc - 1) after the end of every earlier one in its sub-band (LoRaWAN's time-off).
    Returns the violations, time-ordered per rule; [] when the log is clean.
    """
    out: list[Violation] = []
    per_band: dict[str, list[tuple[float, float]]] = {}
    for end, freq, toa in frames:
        b = band_of(freq)
        if b is None:
            out.append(Violation("band", None, end, f"{freq:.0f} Hz is outside the sub-bands"))
            continue
        per_band.setdefault(b.name, []).append((end - toa, end))
    for b in BANDS:
        spans = sorted(per_band.get(b.name, []))
        out += _time_off(b, spans)
        out += _hour(b, spans, window_ms)
    return out


_EPS_MS = 1e-6  # float noise, not a tolerance


def _time_off(b: Band, spans: list[tuple[float, float]]) -> list[Violation]:
    out = []
    free_at = float("-inf")
    for start, end in spans:
        if start < free_at - _EPS_MS:
            out.append(
                Violation(
                    "time_off",
                    b.name,
                    end,
                    f"started {free_at - start:.3f} ms before the band's time-off ended",
                )
            )
        free_at = max(free_at, end + (end - start) * (b.den - 1))
    return out


def _hour(b: Band, spans: list[tuple[float, float]], window_ms: float) -> list[Violation]:
    # The air time in a sliding window peaks with one of its edges on a frame's edge: check the
    # windows ending at each frame's end and those starting at each frame's start.
    out = []
    limit = window_ms / b.den
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    prefix = [0.0]
    for s, e in spans:
        prefix.append(prefix[-1] + (e - s))
    apart = all(spans[k + 1][0] >= spans[k][1] for k in range(len(spans) - 1))
    longest = max((e - s for s, e in spans), default=0.0)
    seen = set()
    for a, z in [(e - window_ms, e) for e in ends] + [(s, s + window_ms) for s in starts]:
        hi = bisect.bisect_left(starts, z)  # frames starting before the window ends
        if apart:  # one transmitter: frames in order, sum whole ones and trim the two edges
            lo = bisect.bisect_right(ends, a)  # ...and ending after it starts
            used = prefix[hi] - prefix[lo] if lo < hi else 0.0
            if lo < hi:
                used -= max(0.0, a - starts[lo]) + max(0.0, ends[hi - 1] - z)
        else:  # overlapping frames (several senders in one log): add each overlap
            lo = bisect.bisect_left(starts, a - longest)
            used = sum(max(0.0, min(e, z) - max(s, a)) for s, e in spans[lo:hi])
        if used > limit + _EPS_MS and (lo, hi) not in seen:
            seen.add((lo, hi))
            out.append(
                Violation(
                    "hour",
                    b.name,
                    z,
                    f"{used:.1f} ms on air in {window_ms / 1000:.0f} s, over {limit:.1f} ms "
                    f"({100 / b.den:g} %)",
                )
            )
    return sorted(out, key=lambda v: v.t_ms)
