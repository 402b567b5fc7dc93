"""LoRaWAN 1.0.x MAC commands on the network side (LoRaWAN 1.0.3 specification, chapter 5;
1.0.4 keeps the same encodings): parse what a node sends, build what the network sends.

    cmds = parse(fopts, uplink=True)      # [{"cmd": "LinkCheckReq"}, {"cmd": "LinkADRAns", ...}]
    data = encode([link_check_ans(12, 1), dev_status_req()])     # for FOpts or FPort 0

A command is a plain dict: "cmd" (the name the specification uses) and its fields, so it goes
into a JSON event as it is. Both directions are implemented both ways (a test node builds the
answers, the server reads them back), but only one direction is valid per command id: CID 0x03
is LinkADRReq downlink and LinkADRAns uplink. Frequencies are in Hz (24 bits of 100 Hz on air).
An unknown command id ends parsing (1.0.3 5: "the end device shall ... stop processing") and is
returned as {"cmd": "Unknown", "cid": N, "data": HEX}; a command cut short as
{"cmd": "Truncated", "cid": N, "data": HEX}.
"""

from collections.abc import Callable, Iterable
from typing import Any

Command = dict[str, Any]

# (cid, uplink name, uplink length, downlink name, downlink length); lengths exclude the CID.
# 1.0.3 table 4 (5 "MAC Commands"); TxParamSetup and DlChannel came with 1.0.2, DeviceTime
# with 1.0.3.
_TABLE: tuple[tuple[int, str, int, str, int], ...] = (
    (0x02, "LinkCheckReq", 0, "LinkCheckAns", 2),
    (0x03, "LinkADRAns", 1, "LinkADRReq", 4),
    (0x04, "DutyCycleAns", 0, "DutyCycleReq", 1),
    (0x05, "RXParamSetupAns", 1, "RXParamSetupReq", 4),
    (0x06, "DevStatusAns", 2, "DevStatusReq", 0),
    (0x07, "NewChannelAns", 1, "NewChannelReq", 5),
    (0x08, "RXTimingSetupAns", 0, "RXTimingSetupReq", 1),
    (0x09, "TxParamSetupAns", 0, "TxParamSetupReq", 1),
    (0x0A, "DlChannelAns", 1, "DlChannelReq", 4),
    (0x0D, "DeviceTimeReq", 0, "DeviceTimeAns", 5),
)
_BY_CID = {row[0]: row for row in _TABLE}
_CID_OF = {name: row[0] for row in _TABLE for name in (row[1], row[3])}
_UPLINK = {row[1] for row in _TABLE}
_LEN_OF = {row[1]: row[2] for row in _TABLE} | {row[3]: row[4] for row in _TABLE}

# Seconds between the Unix epoch and the GPS epoch (1980-01-06T00:00:00Z), and GPS time's lead
# over UTC: 18 leap seconds since 2017-01-01 (IERS Bulletin C; none announced since).
GPS_EPOCH_UNIX_S = 315_964_800
GPS_LEAP_S = 18


class MacError(ValueError):
    """A MAC command that cannot be encoded (unknown name, wrong direction, field out of range)."""


# ---- the fields of each command ----------------------------------------------------------------


def _flags(b: int, *names: str) -> Command:
    # names from the highest bit down to bit 0
    n = len(names)
    return {name: bool(b >> (n - 1 - i) & 1) for i, name in enumerate(names)}


def _freq(data: bytes) -> int:
    return int.from_bytes(data[:3], "little") * 100


def _put_freq(freq_hz: int) -> bytes:
    if freq_hz % 100 or not 0 <= freq_hz // 100 < 1 << 24:
        raise MacError(f"frequency {freq_hz} Hz is not a 24-bit multiple of 100 Hz")
    return (freq_hz // 100).to_bytes(3, "little")


def _field(cmd: Command, name: str, lo: int, hi: int) -> int:
    value = cmd.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise MacError(f"{cmd.get('cmd')}: {name} must be an integer {lo}..{hi}, not {value!r}")
    return value


def _bit(cmd: Command, name: str) -> int:
    return 1 if cmd.get(name) else 0


_PARSERS: dict[str, Callable[[bytes], Command]] = {
    "LinkCheckAns": lambda d: {"margin": d[0], "gw_cnt": d[1]},
    "LinkADRReq": lambda d: {
        "dr": d[0] >> 4,
        "tx_power": d[0] & 0x0F,
        "ch_mask": int.from_bytes(d[1:3], "little"),
        "ch_mask_cntl": d[3] >> 4 & 0x07,
        "nb_trans": d[3] & 0x0F,
    },
    "LinkADRAns": lambda d: _flags(d[0] & 7, "power_ack", "dr_ack", "ch_mask_ack"),
    "DutyCycleReq": lambda d: {"max_dc": d[0] & 0x0F},
    "RXParamSetupReq": lambda d: {
        "rx1_dr_offset": d[0] >> 4 & 0x07,
        "rx2_dr": d[0] & 0x0F,
        "freq_hz": _freq(d[1:4]),
    },
    "RXParamSetupAns": lambda d: _flags(d[0] & 7, "rx1_dr_offset_ack", "rx2_dr_ack", "channel_ack"),
    # Margin: the SNR of the last downlink, a signed 6-bit value in dB (1.0.3 5.5).
    "DevStatusAns": lambda d: {"battery": d[0], "margin": (d[1] & 0x3F) - ((d[1] & 0x20) << 1)},
    "NewChannelReq": lambda d: {
        "index": d[0],
        "freq_hz": _freq(d[1:4]),
        "dr_min": d[4] & 0x0F,
        "dr_max": d[4] >> 4,
    },
    "NewChannelAns": lambda d: _flags(d[0] & 3, "dr_range_ok", "freq_ok"),
    "RXTimingSetupReq": lambda d: {"delay_s": d[0] & 0x0F},  # 0 means 1 s, as 1 does
    "TxParamSetupReq": lambda d: {
        "downlink_dwell": bool(d[0] & 0x20),
        "uplink_dwell": bool(d[0] & 0x10),
        "max_eirp": d[0] & 0x0F,
    },
    "DlChannelReq": lambda d: {"index": d[0], "freq_hz": _freq(d[1:4])},
    "DlChannelAns": lambda d: _flags(d[0] & 3, "uplink_freq_exists", "freq_ok"),
    "DeviceTimeAns": lambda d: {"gps_s": int.from_bytes(d[:4], "little"), "frac": d[4]},
}


def _enc_link_adr_req(c: Command) -> bytes:
    dr, power = _field(c, "dr", 0, 15), _field(c, "tx_power", 0, 15)
    mask = _field(c, "ch_mask", 0, 0xFFFF)
    cntl, nb = _field(c, "ch_mask_cntl", 0, 7), _field(c, "nb_trans", 0, 15)
    return bytes([dr << 4 | power]) + mask.to_bytes(2, "little") + bytes([cntl << 4 | nb])


def _enc_rx_param_setup_req(c: Command) -> bytes:
    dl = _field(c, "rx1_dr_offset", 0, 7) << 4 | _field(c, "rx2_dr", 0, 15)
    return bytes([dl]) + _put_freq(_field(c, "freq_hz", 0, 0xFFFFFF * 100))


def _enc_dev_status_ans(c: Command) -> bytes:
    return bytes([_field(c, "battery", 0, 255), _field(c, "margin", -32, 31) & 0x3F])


def _enc_new_channel_req(c: Command) -> bytes:
    index, freq = _field(c, "index", 0, 255), _field(c, "freq_hz", 0, 0xFFFFFF * 100)
    dr_range = _field(c, "dr_max", 0, 15) << 4 | _field(c, "dr_min", 0, 15)
    return bytes([index]) + _put_freq(freq) + bytes([dr_range])


def _enc_tx_param_setup_req(c: Command) -> bytes:
    b = _bit(c, "downlink_dwell") << 5 | _bit(c, "uplink_dwell") << 4
    return bytes([b | _field(c, "max_eirp", 0, 15)])


_ENCODERS: dict[str, Callable[[Command], bytes]] = {
    "LinkCheckAns": lambda c: bytes([_field(c, "margin", 0, 255), _field(c, "gw_cnt", 0, 255)]),
    "LinkADRReq": _enc_link_adr_req,
    "LinkADRAns": lambda c: bytes(
        [_bit(c, "power_ack") << 2 | _bit(c, "dr_ack") << 1 | _bit(c, "ch_mask_ack")]
    ),
    "DutyCycleReq": lambda c: bytes([_field(c, "max_dc", 0, 15)]),
    "RXParamSetupReq": _enc_rx_param_setup_req,
    "RXParamSetupAns": lambda c: bytes(
        [_bit(c, "rx1_dr_offset_ack") << 2 | _bit(c, "rx2_dr_ack") << 1 | _bit(c, "channel_ack")]
    ),
    "DevStatusAns": _enc_dev_status_ans,
    "NewChannelReq": _enc_new_channel_req,
    "NewChannelAns": lambda c: bytes([_bit(c, "dr_range_ok") << 1 | _bit(c, "freq_ok")]),
    "RXTimingSetupReq": lambda c: bytes([_field(c, "delay_s", 0, 15)]),
    "TxParamSetupReq": _enc_tx_param_setup_req,
    "DlChannelReq": lambda c: (
        bytes([_field(c, "index", 0, 255)]) + _put_freq(_field(c, "freq_hz", 0, 0xFFFFFF * 100))
    ),
    "DlChannelAns": lambda c: bytes([_bit(c, "uplink_freq_exists") << 1 | _bit(c, "freq_ok")]),
    "DeviceTimeAns": lambda c: (
        _field(c, "gps_s", 0, 0xFFFFFFFF).to_bytes(4, "little") + bytes([_field(c, "frac", 0, 255)])
    ),
}


# ---- parse and encode --------------------------------------------------------------------------


def parse(data: bytes, *, uplink: bool) -> list[Command]:
    """The commands in `data` (FOpts, or a decrypted FPort 0 payload), in order.

    `uplink` says who sent them: True for a node's (answers and LinkCheckReq/DeviceTimeReq).
    Never raises on its input: an unknown or cut-short command ends the list as "Unknown" /
    "Truncated".
    """
    out: list[Command] = []
    i = 0
    while i < len(data):
        cid = data[i]
        row = _BY_CID.get(cid)
        if row is None:
            out.append({"cmd": "Unknown", "cid": cid, "data": bytes(data[i:]).hex()})
            break
        name, size = (row[1], row[2]) if uplink else (row[3], row[4])
        body = bytes(data[i + 1 : i + 1 + size])
        if len(body) < size:
            out.append({"cmd": "Truncated", "cid": cid, "data": bytes(data[i:]).hex()})
            break
        cmd: Command = {"cmd": name}
        parser = _PARSERS.get(name)
        if parser is not None:
            cmd.update(parser(body))
        out.append(cmd)
        i += 1 + size
    return out


def encode(cmds: Iterable[Command], *, uplink: bool = False) -> bytes:
    """The bytes of `cmds` in order: CID, then the command's fields. MacError when a command is
    unknown, of the other direction (`uplink` False: the network's commands) or out of range."""
    out = bytearray()
    for cmd in cmds:
        name = cmd.get("cmd")
        if not isinstance(name, str) or name not in _CID_OF:
            raise MacError(f"unknown MAC command {name!r}")
        cid = _CID_OF[name]
        if (name in _UPLINK) != uplink:
            side = "a node" if name in _UPLINK else "the network"
            raise MacError(f"{name} is sent by {side}, not in this direction")
        body = _ENCODERS[name](cmd) if name in _ENCODERS else b""
        if len(body) != _LEN_OF[name]:  # pragma: no cover - a table mistake, not user input
            raise MacError(f"{name}: encoded {len(body)} bytes, not {_LEN_OF[name]}")
        out.append(cid)
        out += body
    return bytes(out)


def size(cmd: Command) -> int:
    """Bytes `cmd` takes on air, CID included."""
    name = cmd.get("cmd")
    if name not in _LEN_OF:
        raise MacError(f"unknown MAC command {name!r}")
    return 1 + _LEN_OF[name]


def acked(ans: Command) -> bool:
    """True when an answer (LinkADRAns, RXParamSetupAns, NewChannelAns, DlChannelAns) accepted
    everything; answers without status bits count as accepted."""
    return all(v for k, v in ans.items() if k != "cmd" and isinstance(v, bool))


# ---- builders for the network's commands -------------------------------------------------------


def link_check_ans(margin_db: float, gw_cnt: int = 1) -> Command:
    """Margin: the uplink's SNR above the demodulation floor of its SF, 0..254 dB (1.0.3 5.1)."""
    return {"cmd": "LinkCheckAns", "margin": max(0, min(254, int(margin_db))), "gw_cnt": gw_cnt}


def link_adr_req(
    dr: int, tx_power: int, ch_mask: int, ch_mask_cntl: int = 0, nb_trans: int = 1
) -> Command:
    return {
        "cmd": "LinkADRReq",
        "dr": dr,
        "tx_power": tx_power,
        "ch_mask": ch_mask,
        "ch_mask_cntl": ch_mask_cntl,
        "nb_trans": nb_trans,
    }


def duty_cycle_req(max_dc: int) -> Command:
    """Aggregated duty cycle limit 1 / 2**max_dc (0: no limit beyond the region's)."""
    return {"cmd": "DutyCycleReq", "max_dc": max_dc}


def rx_param_setup_req(rx1_dr_offset: int, rx2_dr: int, freq_hz: int) -> Command:
    return {
        "cmd": "RXParamSetupReq",
        "rx1_dr_offset": rx1_dr_offset,
        "rx2_dr": rx2_dr,
        "freq_hz": freq_hz,
    }


def dev_status_req() -> Command:
    return {"cmd": "DevStatusReq"}


def new_channel_req(index: int, freq_hz: int, dr_min: int, dr_max: int) -> Command:
    """freq_hz 0 disables channel `index`."""
    return {
        "cmd": "NewChannelReq",
        "index": index,
        "freq_hz": freq_hz,
        "dr_min": dr_min,
        "dr_max": dr_max,
    }


def rx_timing_setup_req(delay_s: int) -> Command:
    """RECEIVE_DELAY1 in seconds, 1..15 (RX2 follows 1 s later)."""
    return {"cmd": "RXTimingSetupReq", "delay_s": delay_s}


def device_time_ans(unix_s: float) -> Command:
    """The time at the end of the uplink that asked, as GPS seconds and 1/256 s (1.0.3 5.9)."""
    gps = unix_s - GPS_EPOCH_UNIX_S + GPS_LEAP_S
    whole = int(gps)
    return {"cmd": "DeviceTimeAns", "gps_s": whole, "frac": min(255, int((gps - whole) * 256))}


def gps_to_unix(gps_s: int, frac: int = 0) -> float:
    """A DeviceTimeAns's time as a Unix timestamp (the inverse of device_time_ans)."""
    return gps_s + frac / 256 + GPS_EPOCH_UNIX_S - GPS_LEAP_S
