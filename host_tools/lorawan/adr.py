"""Network-side data rate and channel control for the bench network server: Semtech's
recommended ADR step, and the LinkADRReq commands that carry a data rate, a TX power and a
channel mask (LoRaWAN 1.0.3 5.3; RP002-1.0.3 2.4.5 and 2.5.5 for the regional ChMaskCntl).

    dr, power = adr_target(snrs, sf=12, dr=0, power=0, max_dr=5, max_power=7)
    cmds = link_adr_reqs(region("EU868"), dr, power, channels=[868_100_000, ...])
"""

import contextlib
from collections.abc import Iterable, Sequence

from host_tools.errors import MoteError
from host_tools.lorawan import mac
from host_tools.lorawan.region import Region

HISTORY = 20  # uplinks whose best SNR the algorithm looks at
MARGIN_DB = 10.0  # its installation margin
STEP_DB = 3.0  # one data rate, or one TX power step (2 dB), per 3 dB of margin
# Demodulation floor per SF at 125 kHz (SX1276 datasheet table 13; SX1261/2 the same).
REQUIRED_SNR_DB = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
_NO_DR = (ValueError, KeyError, IndexError, MoteError)  # what a region says for a DR it lacks


def margin_db(snr_db: float, sf: int) -> float:
    """How far an SNR is above the demodulation floor of its SF."""
    return snr_db - REQUIRED_SNR_DB.get(sf, -20.0)


def adr_target(
    snrs: Iterable[float],
    *,
    sf: int,
    dr: int,
    power: int,
    max_dr: int,
    max_power: int,
    installation_margin_db: float = MARGIN_DB,
) -> tuple[int, int]:
    """Semtech's recommended network-side ADR: steps of 3 dB of margin (the best recent SNR over
    the SF's floor, less the installation margin) raise the data rate up to max_dr, then lower
    the TX power (a higher index) up to max_power; a negative margin raises the power again."""
    steps = int((margin_db(max(snrs), sf) - installation_margin_db) // STEP_DB)
    while steps > 0 and dr < max_dr:
        dr, steps = dr + 1, steps - 1
    while steps > 0 and power < max_power:
        power, steps = power + 1, steps - 1
    while steps < 0 and power > 0:
        power, steps = power - 1, steps + 1
    return dr, power


def max_adr_dr(region: Region) -> int:
    """The fastest 125 kHz uplink data rate: ADR never moves a node onto 250/500 kHz."""
    lo, hi = region.uplink_dr_range
    best = lo
    for d in range(lo, hi + 1):
        with contextlib.suppress(*_NO_DR):
            if region.dr(d)[1] == 125_000:
                best = d
    return best


def link_adr_reqs(
    region: Region,
    dr: int,
    power: int,
    *,
    nb_trans: int = 1,
    channels: Sequence[int] = (),
    only_hz: Iterable[int] | None = None,
) -> list[mac.Command]:
    """LinkADRReq(s) setting dr and power with the channel mask.

    EU868: ChMaskCntl 0 over the session's `channels` (frequencies by index, 0 for an empty
    slot), or only those in `only_hz`. US915: a block (applied as one, 1.0.3 5.3): ChMaskCntl 7
    (every 125 kHz channel off, the 500 kHz ones by the mask), then the 16-channel bank(s) of
    the enabled 125 kHz channels: the device's sub-band, or only `only_hz`.
    """
    wanted = set(only_hz) if only_hz else None
    if region.name == "US915":
        enabled = _us915_enabled(region, wanted)
        wide = sum(1 << (c - 64) for c in enabled if c >= 64)
        cmds = [mac.link_adr_req(dr, power, wide, 7, nb_trans)]
        for bank in sorted({c // 16 for c in enabled if c < 64}):
            bits = sum(1 << (c % 16) for c in enabled if c < 64 and c // 16 == bank)
            cmds.append(mac.link_adr_req(dr, power, bits, bank, nb_trans))
        return cmds
    bits = 0
    for i, f in enumerate(list(channels)[:16]):
        if f and (wanted is None or f in wanted):
            bits |= 1 << i
    return [mac.link_adr_req(dr, power, bits or 0x0007, 0, nb_trans)]


def _us915_enabled(region: Region, wanted: set[int] | None) -> list[int]:
    if wanted:
        found = [region.channel_of(f) for f in sorted(wanted)]
        chosen = [c for c in found if c is not None]
        if chosen:
            return chosen
    enabled = getattr(region, "enabled", None)
    return list(enabled()) if callable(enabled) else list(range(72))
