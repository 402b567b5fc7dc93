"""Time on air of a LoRa packet, with Semtech's formula (SX1276/77/78 datasheet rev. 7, 4.1.1.7;
AN1200.13 "LoRa Modem Designer's Guide"). The node's copy is firmware/motekit/lwregion.py; the
virtual radios and the duty-cycle check of the air log use this one.

    time_on_air_ms(13, sf=7, bw_hz=125_000)   # 46.336: an empty LoRaWAN uplink at EU868 DR5
"""

import math

# Low data rate optimisation is mandated when a symbol lasts longer than 16 ms (SF11 and SF12
# at 125 kHz); LoRaWAN sets it exactly then.
_LDRO_SYMBOL_MS = 16.0


def symbol_ms(sf: int, bw_hz: int) -> float:
    return (1 << sf) * 1000.0 / bw_hz


def time_on_air_ms(
    payload_len: int,
    *,
    sf: int,
    bw_hz: int,
    cr: int = 1,
    preamble: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
    ldro: bool | None = None,
) -> float:
    """Milliseconds from the first preamble symbol to the last payload symbol.

    cr is 1..4 for coding rates 4/5..4/8; ldro None means "as LoRaWAN sets it". SF5/SF6 (SX126x
    only, never used by LoRaWAN) follow another formula and are refused.
    """
    if not 7 <= sf <= 12:
        raise ValueError(f"SF{sf}: only SF7..SF12 (LoRaWAN's) are supported")
    if not 1 <= cr <= 4:
        raise ValueError(f"coding rate index {cr}: must be 1..4 (4/5..4/8)")
    if not 0 <= payload_len <= 255:
        raise ValueError(f"payload of {payload_len} bytes: must be 0..255")
    t_sym = symbol_ms(sf, bw_hz)
    de = (t_sym > _LDRO_SYMBOL_MS) if ldro is None else ldro
    h = 0 if explicit_header else 1
    num = 8 * payload_len - 4 * sf + 28 + (16 if crc else 0) - 20 * h
    payload_symbols = 8 + max(math.ceil(num / (4 * (sf - 2 * int(de)))) * (cr + 4), 0)
    return (preamble + 4.25) * t_sym + payload_symbols * t_sym
