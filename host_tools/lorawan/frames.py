"""LoRaWAN 1.0.x PHYPayloads: parse what was heard, build what is sent (LoRaWAN 1.0.3
specification chapter 4 "MAC message formats" and 6.2 "Over-the-air activation").

    PHYPayload  = MHDR(1) | MACPayload | MIC(4)         (a join accept: MHDR | encrypted rest)
    MHDR        = MType(7..5) | RFU(4..2) | Major(1..0)
    MACPayload  = FHDR | FPort(0/1) | FRMPayload
    FHDR        = DevAddr(4, LE) | FCtrl(1) | FCnt(2, LE) | FOpts(0..15)

    frame = parse(phy)                     # JoinRequest | EncryptedJoinAccept | DataFrame
    if isinstance(frame, DataFrame) and frame.uplink:
        fcnt = full_fcnt(frame.fcnt, expected=session_next_fcnt)
        if frame.mic_ok(nwk_s_key, fcnt):
            data = frame.payload(nwk_s_key, app_s_key, fcnt)
    phy = build_data(MType.UNCONFIRMED_DOWN, dev_addr, fcnt_down, nwk_s_key=nwk, app_s_key=app,
                     fport=1, payload=b"...", fctrl=FCtrl(ack=True))

EUIs, DevAddr, AppNonce and NetID are ints (written little-endian on air; an EUI's int prints as
the usual MSB-first hex, f"{eui:016X}"). FCnt is 16 bits on air; the MIC and the encryption use
the full 32-bit counter, which the receiver reconstructs (full_fcnt). Frames that are not
LoRaWAN 1.0.x raise FrameError, a ValueError, with one line saying why; a bad MIC is a MicError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from host_tools.errors import MoteError
from host_tools.lorawan import crypto

MAX_PHY_LEN = 255  # the LoRa modem's payload limit; regions allow less per data rate
MIC_LEN = 4
JOIN_REQUEST_LEN = 23  # MHDR | JoinEUI(8) | DevEUI(8) | DevNonce(2) | MIC
JOIN_ACCEPT_LEN = 17  # MHDR | AppNonce(3) | NetID(3) | DevAddr(4) | DLSettings | RxDelay | MIC
CF_LIST_LEN = 16
_DATA_MIN_LEN = 12  # MHDR | FHDR without FOpts (7) | MIC
_MAJOR_R1 = 0  # Major: LoRaWAN R1, the only one defined (4.2.2)
_MHDR_RFU = 0x1C


class FrameError(MoteError, ValueError):
    """A PHYPayload that is not a valid LoRaWAN 1.0.x frame, or fields that cannot make one."""


class MicError(FrameError):
    """A frame whose MIC does not match the key it was checked with."""


class MType(IntEnum):
    """Message type, MHDR bits 7..5 (4.2.1)."""

    JOIN_REQUEST = 0
    JOIN_ACCEPT = 1
    UNCONFIRMED_UP = 2
    UNCONFIRMED_DOWN = 3
    CONFIRMED_UP = 4
    CONFIRMED_DOWN = 5
    REJOIN_REQUEST = 6  # LoRaWAN 1.1; RFU in 1.0.x
    PROPRIETARY = 7

    @property
    def is_data(self) -> bool:
        return MType.UNCONFIRMED_UP <= self <= MType.CONFIRMED_DOWN

    @property
    def uplink(self) -> bool:
        return self in (MType.JOIN_REQUEST, MType.UNCONFIRMED_UP, MType.CONFIRMED_UP)

    @property
    def confirmed(self) -> bool:
        return self in (MType.CONFIRMED_UP, MType.CONFIRMED_DOWN)


def _mhdr(mtype: MType) -> int:
    return (int(mtype) << 5) | _MAJOR_R1


@dataclass(frozen=True)
class FCtrl:
    """Frame control (4.3.1.3 uplink, 4.3.1.2 downlink); FOptsLen comes from the FOpts."""

    adr: bool = False
    adr_ack_req: bool = False  # uplinks only (RFU bit in downlinks)
    ack: bool = False
    f_pending: bool = False  # downlinks; the same bit is ClassB (1.0.3) / RFU in uplinks

    def byte(self, fopts_len: int) -> int:
        if not 0 <= fopts_len <= 15:
            raise FrameError(f"FOpts of {fopts_len} bytes: at most 15 fit in FCtrl.FOptsLen")
        return (
            (0x80 if self.adr else 0)
            | (0x40 if self.adr_ack_req else 0)
            | (0x20 if self.ack else 0)
            | (0x10 if self.f_pending else 0)
            | fopts_len
        )

    @classmethod
    def from_byte(cls, b: int) -> FCtrl:
        return cls(bool(b & 0x80), bool(b & 0x40), bool(b & 0x20), bool(b & 0x10))


@dataclass(frozen=True)
class JoinRequest:
    """MHDR | JoinEUI | DevEUI | DevNonce | MIC (6.2.4). `phy` is the frame as heard."""

    join_eui: int
    dev_eui: int
    dev_nonce: int
    mic: bytes
    phy: bytes = field(default=b"", repr=False, compare=False)

    def mic_ok(self, app_key: bytes) -> bool:
        return crypto.join_request_mic(app_key, self.phy[:-MIC_LEN]) == self.mic


@dataclass(frozen=True)
class EncryptedJoinAccept:
    """A join accept as heard: only its MHDR is readable without the AppKey
    (decrypt_join_accept)."""

    phy: bytes = field(repr=False)

    @property
    def has_cf_list(self) -> bool:
        return len(self.phy) == JOIN_ACCEPT_LEN + CF_LIST_LEN


@dataclass(frozen=True)
class JoinAccept:
    """MHDR | AppNonce | NetID | DevAddr | DLSettings | RxDelay | [CFList] | MIC, in clear (6.2.5).

    rx_delay is the RxDelay field: the RX1 delay in seconds, where 0 also means 1 (5.7).
    """

    app_nonce: int
    net_id: int
    dev_addr: int
    rx1_dr_offset: int = 0
    rx2_dr: int = 0
    rx_delay: int = 1
    cf_list: bytes | None = None
    mic: bytes = b""

    def plain(self, app_key: bytes) -> bytes:
        """The frame in clear with its MIC computed with `app_key` (what the node decrypts to)."""
        if not 0 <= self.rx1_dr_offset <= 7 or not 0 <= self.rx2_dr <= 15:
            raise FrameError("DLSettings: RX1DRoffset must be 0..7 and RX2DataRate 0..15")
        if not 0 <= self.rx_delay <= 15:
            raise FrameError(f"RxDelay {self.rx_delay}: must be 0..15 seconds")
        _check_u(self.app_nonce, 24, "AppNonce")
        _check_u(self.net_id, 24, "NetID")
        _check_u(self.dev_addr, 32, "DevAddr")
        if self.cf_list is not None and len(self.cf_list) != CF_LIST_LEN:
            raise FrameError(f"CFList of {len(self.cf_list)} bytes: must be {CF_LIST_LEN}")
        body = (
            bytes([_mhdr(MType.JOIN_ACCEPT)])
            + self.app_nonce.to_bytes(3, "little")
            + self.net_id.to_bytes(3, "little")
            + struct.pack(
                "<IBB", self.dev_addr, (self.rx1_dr_offset << 4) | self.rx2_dr, self.rx_delay
            )  # fmt: skip
            + (self.cf_list or b"")
        )
        return body + crypto.mic(app_key, body)

    def encrypt(self, app_key: bytes) -> bytes:
        """The join accept as sent on air (the network server's side)."""
        return crypto.join_accept_encrypt(app_key, self.plain(app_key))

    def session_keys(self, app_key: bytes, dev_nonce: int) -> tuple[bytes, bytes]:
        """(NwkSKey, AppSKey) for the join request whose DevNonce this accepts."""
        return crypto.session_keys(
            app_key,
            self.app_nonce.to_bytes(3, "little"),
            self.net_id.to_bytes(3, "little"),
            dev_nonce,
        )


@dataclass(frozen=True)
class DataFrame:
    """A data message (4.3): FHDR, FPort, FRMPayload as on air (encrypted), MIC.

    fcnt is the 16 bits on air; fport is None when the frame has none (no FRMPayload).
    """

    mtype: MType
    dev_addr: int
    fctrl: FCtrl
    fcnt: int
    fopts: bytes = b""
    fport: int | None = None
    frm_payload: bytes = b""
    mic: bytes = b""
    phy: bytes = field(default=b"", repr=False, compare=False)

    @property
    def uplink(self) -> bool:
        return self.mtype.uplink

    @property
    def confirmed(self) -> bool:
        return self.mtype.confirmed

    def _check_fcnt(self, fcnt32: int) -> None:
        if fcnt32 & 0xFFFF != self.fcnt or not 0 <= fcnt32 <= 0xFFFFFFFF:
            raise ValueError(f"frame counter {fcnt32} does not end in the FCnt on air {self.fcnt}")

    def mic_ok(self, nwk_s_key: bytes, fcnt32: int) -> bool:
        """True when the MIC matches NwkSKey and the full 32-bit counter `fcnt32` (4.4)."""
        self._check_fcnt(fcnt32)
        msg = self.phy[:-MIC_LEN]
        return crypto.data_mic(nwk_s_key, self.dev_addr, fcnt32, self.uplink, msg) == self.mic

    def payload(self, nwk_s_key: bytes, app_s_key: bytes, fcnt32: int) -> bytes:
        """FRMPayload in clear: with NwkSKey on FPort 0 (MAC commands), AppSKey otherwise."""
        self._check_fcnt(fcnt32)
        key = nwk_s_key if self.fport == 0 else app_s_key
        return crypto.frm_crypt(key, self.dev_addr, fcnt32, self.uplink, self.frm_payload)


Frame = JoinRequest | EncryptedJoinAccept | DataFrame


def _check_u(v: int, bits: int, name: str) -> None:
    if not 0 <= v < (1 << bits):
        raise FrameError(f"{name} {v}: must fit in {bits} bits")


def parse(phy: bytes) -> Frame:
    """The frame `phy` holds, with its MIC unchecked (no keys needed)."""
    phy = bytes(phy)
    n = len(phy)
    if n == 0:
        raise FrameError("empty frame")
    if n > MAX_PHY_LEN:
        raise FrameError(f"frame of {n} bytes: longer than {MAX_PHY_LEN}")
    mhdr = phy[0]
    if mhdr & 0x03 != _MAJOR_R1:
        raise FrameError(f"MHDR {mhdr:02X}: Major {mhdr & 3} is not LoRaWAN R1")
    if mhdr & _MHDR_RFU:
        raise FrameError(f"MHDR {mhdr:02X}: RFU bits set")
    mtype = MType(mhdr >> 5)
    if mtype is MType.JOIN_REQUEST:
        if n != JOIN_REQUEST_LEN:
            raise FrameError(f"join request of {n} bytes: must be {JOIN_REQUEST_LEN}")
        join_eui, dev_eui, dev_nonce = struct.unpack_from("<QQH", phy, 1)
        return JoinRequest(join_eui, dev_eui, dev_nonce, phy[-MIC_LEN:], phy)
    if mtype is MType.JOIN_ACCEPT:
        if n not in (JOIN_ACCEPT_LEN, JOIN_ACCEPT_LEN + CF_LIST_LEN):
            raise FrameError(
                f"join accept of {n} bytes: must be {JOIN_ACCEPT_LEN} or "
                f"{JOIN_ACCEPT_LEN + CF_LIST_LEN} (with a CFList)"
            )
        return EncryptedJoinAccept(phy)
    if mtype is MType.REJOIN_REQUEST:
        raise FrameError("rejoin request: LoRaWAN 1.1, not 1.0.x")
    if mtype is MType.PROPRIETARY:
        raise FrameError("proprietary frame: not LoRaWAN data")
    return _parse_data(mtype, phy)


def _parse_data(mtype: MType, phy: bytes) -> DataFrame:
    n = len(phy)
    if n < _DATA_MIN_LEN:
        raise FrameError(f"data frame of {n} bytes: at least {_DATA_MIN_LEN}")
    dev_addr, fctrl, fcnt = struct.unpack_from("<IBH", phy, 1)
    fopts_len = fctrl & 0x0F
    end = n - MIC_LEN
    if 8 + fopts_len > end:
        raise FrameError(f"data frame of {n} bytes: too short for its {fopts_len} bytes of FOpts")
    fopts = phy[8 : 8 + fopts_len]
    fport: int | None = None
    frm = b""
    if 8 + fopts_len < end:
        fport = phy[8 + fopts_len]
        frm = phy[9 + fopts_len : end]
        if fport == 0 and fopts_len:  # 4.3.1.6
            raise FrameError("data frame with FPort 0 and FOpts: MAC commands in both")
    return DataFrame(
        mtype, dev_addr, FCtrl.from_byte(fctrl), fcnt, fopts, fport, frm, phy[end:], phy
    )


def decrypt_join_accept(phy: bytes, app_key: bytes) -> JoinAccept:
    """The join accept `phy` in clear; MicError when its MIC does not match `app_key`."""
    frame = parse(phy)
    if not isinstance(frame, EncryptedJoinAccept):
        raise FrameError(f"not a join accept: {type(frame).__name__}")
    plain = crypto.join_accept_decrypt(app_key, frame.phy)
    if not crypto.join_accept_ok(app_key, plain):
        raise MicError("join accept MIC does not match the AppKey")
    app_nonce = int.from_bytes(plain[1:4], "little")
    net_id = int.from_bytes(plain[4:7], "little")
    dev_addr, dl, rx_delay = struct.unpack_from("<IBB", plain, 7)
    cf_list = plain[13:-MIC_LEN] if len(plain) > JOIN_ACCEPT_LEN else None
    # DLSettings bit 7 is RFU in 1.0.x (OptNeg in 1.1): kept out.
    return JoinAccept(
        app_nonce, net_id, dev_addr, (dl >> 4) & 7, dl & 0x0F, rx_delay, cf_list, plain[-4:]
    )


def build_join_request(app_key: bytes, join_eui: int, dev_eui: int, dev_nonce: int) -> bytes:
    """A join request with its MIC (6.2.4)."""
    _check_u(join_eui, 64, "JoinEUI")
    _check_u(dev_eui, 64, "DevEUI")
    _check_u(dev_nonce, 16, "DevNonce")
    body = struct.pack("<BQQH", _mhdr(MType.JOIN_REQUEST), join_eui, dev_eui, dev_nonce)
    return body + crypto.join_request_mic(app_key, body)


def build_data(
    mtype: MType,
    dev_addr: int,
    fcnt: int,
    *,
    nwk_s_key: bytes,
    app_s_key: bytes,
    fport: int | None = None,
    payload: bytes = b"",
    fopts: bytes = b"",
    fctrl: FCtrl = FCtrl(),  # noqa: B008  frozen
) -> bytes:
    """A data frame: FRMPayload `payload` encrypted (AppSKey, or NwkSKey on FPort 0), the MIC
    with the full 32-bit `fcnt` (its low 16 bits go on air)."""
    mtype = MType(mtype)
    if not mtype.is_data:
        raise FrameError(f"{mtype.name} is not a data message type")
    _check_u(dev_addr, 32, "DevAddr")
    _check_u(fcnt, 32, "FCnt")
    if fport is None:
        if payload:
            raise FrameError("an FRMPayload needs an FPort")
    elif not 0 <= fport <= 224:  # 225..255 are RFU; 224 is the certification test port
        raise FrameError(f"FPort {fport}: must be 0..224")
    if fport == 0 and fopts:
        raise FrameError("FPort 0 carries MAC commands: FOpts must be empty (4.3.1.6)")
    uplink = mtype.uplink
    head = struct.pack("<BIBH", _mhdr(mtype), dev_addr, fctrl.byte(len(fopts)), fcnt & 0xFFFF)
    body = head + bytes(fopts)
    if fport is not None:
        key = nwk_s_key if fport == 0 else app_s_key
        body += bytes([fport]) + crypto.frm_crypt(key, dev_addr, fcnt, uplink, payload)
    if len(body) + MIC_LEN > MAX_PHY_LEN:
        raise FrameError(f"frame of {len(body) + MIC_LEN} bytes: longer than {MAX_PHY_LEN}")
    return body + crypto.data_mic(nwk_s_key, dev_addr, fcnt, uplink, body)


def full_fcnt(fcnt16: int, expected: int) -> int:
    """The 32-bit frame counter whose low 16 bits are `fcnt16`: the smallest one >= `expected`
    (the next counter the receiver accepts). A replay then gets a counter 65536 too high and
    fails its MIC check."""
    _check_u(fcnt16, 16, "FCnt")
    _check_u(expected, 32, "expected FCnt")
    candidate = (expected & ~0xFFFF) | fcnt16
    if candidate < expected:
        candidate += 0x10000
    if candidate > 0xFFFFFFFF:
        raise FrameError("frame counter past 2^32: the session must be renewed")
    return candidate


def cf_list_frequencies(freqs_hz: list[int]) -> bytes:
    """A CFList of type 0 (EU868 and alike): up to 5 extra channel frequencies, 24 bits each in
    units of 100 Hz, then CFListType 0 (LoRaWAN Regional Parameters, EU863-870 CFList)."""
    if len(freqs_hz) > 5:
        raise FrameError(f"{len(freqs_hz)} frequencies: a CFList holds 5")
    out = b""
    for f in freqs_hz:
        if f % 100 or not 0 <= f // 100 < (1 << 24):
            raise FrameError(f"frequency {f} Hz: not a multiple of 100 Hz within 24 bits")
        out += (f // 100).to_bytes(3, "little")
    return out.ljust(15, b"\0") + b"\0"


def cf_list_channel_mask(mask: bytes) -> bytes:
    """A CFList of type 1 (US915 and alike, 1.0.3): ChMask0..4 (10 bytes, channels 0..79, bit 0
    of byte 0 = channel 0), 5 RFU bytes, CFListType 1."""
    if len(mask) != 10:
        raise FrameError(f"channel mask of {len(mask)} bytes: must be 10 (80 channels)")
    return bytes(mask) + bytes(5) + b"\x01"


def cf_list_decode(cf_list: bytes) -> tuple[int, list[int] | bytes]:
    """(CFListType, frequencies in Hz for type 0 (0 = no channel) or the 10-byte mask for 1)."""
    if len(cf_list) != CF_LIST_LEN:
        raise FrameError(f"CFList of {len(cf_list)} bytes: must be {CF_LIST_LEN}")
    kind = cf_list[15]
    if kind == 0:
        return 0, [int.from_bytes(cf_list[i : i + 3], "little") * 100 for i in range(0, 15, 3)]
    if kind == 1:
        return 1, bytes(cf_list[:10])
    raise FrameError(f"CFListType {kind}: only 0 (frequencies) and 1 (channel mask) exist")
