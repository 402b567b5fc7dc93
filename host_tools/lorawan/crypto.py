"""LoRaWAN 1.0.x security on the host, with `cryptography`: AES-CMAC (RFC 4493), the join MICs,
join-accept encryption (network side) and decryption, session key derivation, FRMPayload
encryption and the data MIC (LoRaWAN 1.0.3 specification 4.3.3, 4.4, 6.2.4, 6.2.5).

The node's copy is firmware/motekit/lwcrypto.py: same names, arguments and results.

    nwk, app = session_keys(app_key, app_nonce, net_id, dev_nonce)
    plain = frm_crypt(app, 0x26011234, 7, True, frm_payload)      # uplink, FCnt 7
    ok = data_mic(nwk, 0x26011234, 7, True, phy[:-4]) == phy[-4:]

Keys are 16 bytes; dev_addr and fcnt are ints (fcnt the full 32-bit counter, of which only 16
bits go on air); app_nonce and net_id are the 3 bytes as on air (little-endian). Bad sizes raise
ValueError.
"""

import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

_JOIN_REQUEST_LEN = 19  # MHDR | JoinEUI(8) | DevEUI(8) | DevNonce(2)
_JOIN_ACCEPT_LENS = (17, 33)  # MHDR | 16 or 32 bytes (without / with CFList), MIC included
_B0 = 0x49  # 4.4: first byte of the MIC block B0
_AI = 0x01  # 4.3.3.1: first byte of the encryption blocks A_i
_NWK, _APP = 0x01, 0x02  # 6.2.5: first byte of the NwkSKey / AppSKey derivation block


def _check_key(key: bytes) -> None:
    if len(key) != 16:
        raise ValueError(f"AES-128 key must be 16 bytes, not {len(key)}")


def _ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_key(key)
    enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
    return enc.update(bytes(data)) + enc.finalize()


def _ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_key(key)
    dec = Cipher(algorithms.AES(bytes(key)), modes.ECB()).decryptor()
    return dec.update(bytes(data)) + dec.finalize()


def aes_cmac(key: bytes, msg: bytes) -> bytes:
    """AES-CMAC of RFC 4493: the 16-byte tag."""
    _check_key(key)
    c = CMAC(algorithms.AES(bytes(key)))
    c.update(bytes(msg))
    return c.finalize()


def mic(key: bytes, msg: bytes) -> bytes:
    """The LoRaWAN MIC: the first 4 bytes of the CMAC."""
    return aes_cmac(key, msg)[:4]


def join_request_mic(app_key: bytes, msg: bytes) -> bytes:
    """MIC of a join request, msg = MHDR | JoinEUI | DevEUI | DevNonce (6.2.4)."""
    if len(msg) != _JOIN_REQUEST_LEN:
        raise ValueError(f"join request must be {_JOIN_REQUEST_LEN} bytes before its MIC")
    return mic(app_key, msg)


def _check_accept(n: int) -> None:
    if n not in _JOIN_ACCEPT_LENS:
        raise ValueError(f"join accept must be 17 or 33 bytes, not {n}")


def join_accept_decrypt(app_key: bytes, phy: bytes) -> bytes:
    """MHDR | encrypted payload and MIC as received -> MHDR | payload | MIC in clear.

    The network encrypts with AES *decrypt*, so the device only needs AES encrypt (6.2.5). The
    MIC is not checked here: join_accept_ok() does that.
    """
    _check_accept(len(phy))
    return bytes(phy[:1]) + _ecb_encrypt(app_key, phy[1:])


def join_accept_encrypt(app_key: bytes, plain: bytes) -> bytes:
    """The network server's side: MHDR | payload | MIC -> the join accept as sent (6.2.5)."""
    _check_accept(len(plain))
    return bytes(plain[:1]) + _ecb_decrypt(app_key, plain[1:])


def join_accept_mic(app_key: bytes, msg: bytes) -> bytes:
    """MIC of a join accept, msg = MHDR | AppNonce | NetID | DevAddr | DLSettings | RxDelay
    [| CFList] (6.2.5)."""
    if len(msg) + 4 not in _JOIN_ACCEPT_LENS:
        raise ValueError(f"join accept must be 13 or 29 bytes before its MIC, not {len(msg)}")
    return mic(app_key, msg)


def join_accept_ok(app_key: bytes, plain: bytes) -> bool:
    """True when a decrypted join accept's MIC (its last 4 bytes) is right."""
    _check_accept(len(plain))
    return mic(app_key, plain[:-4]) == bytes(plain[-4:])


def session_keys(
    app_key: bytes, app_nonce: bytes, net_id: bytes, dev_nonce: int
) -> tuple[bytes, bytes]:
    """(NwkSKey, AppSKey) = aes128_encrypt(AppKey, 0x01 | 0x02 | AppNonce | NetID | DevNonce |
    pad16) (6.2.5)."""
    if len(app_nonce) != 3 or len(net_id) != 3:
        raise ValueError("AppNonce and NetID must be 3 bytes")
    if not 0 <= dev_nonce <= 0xFFFF:
        raise ValueError("DevNonce must be 0..65535")
    tail = bytes(app_nonce) + bytes(net_id) + struct.pack("<H", dev_nonce) + bytes(7)
    return (
        _ecb_encrypt(app_key, bytes([_NWK]) + tail),
        _ecb_encrypt(app_key, bytes([_APP]) + tail),
    )


def _block(first: int, dev_addr: int, fcnt: int, uplink: bool, last: int) -> bytes:
    # first | 0x00*4 | Dir | DevAddr (LE) | FCnt (LE) | 0x00 | last: A_i (4.3.3.1) and B0 (4.4).
    if not 0 <= dev_addr <= 0xFFFFFFFF:
        raise ValueError("dev_addr must be a 32-bit unsigned int")
    if not 0 <= fcnt <= 0xFFFFFFFF:
        raise ValueError("fcnt must be a 32-bit unsigned int")
    return struct.pack("<B4xBIIxB", first, 0 if uplink else 1, dev_addr, fcnt, last)


def frm_crypt(key: bytes, dev_addr: int, fcnt: int, uplink: bool, payload: bytes) -> bytes:
    """FRMPayload encryption and decryption (the same XOR with aes(K, A_1) | aes(K, A_2) | ...,
    4.3.3.1); key is AppSKey, or NwkSKey for FPort 0."""
    _check_key(key)
    n = len(payload)
    if n > 255:
        raise ValueError("FRMPayload longer than 255 bytes")
    _block(_AI, dev_addr, fcnt, uplink, 1)  # checks dev_addr and fcnt even for no payload
    blocks = b"".join(_block(_AI, dev_addr, fcnt, uplink, i + 1) for i in range((n + 15) // 16))
    stream = _ecb_encrypt(key, blocks) if blocks else b""
    return bytes(p ^ s for p, s in zip(payload, stream, strict=False))


def data_mic(nwk_s_key: bytes, dev_addr: int, fcnt: int, uplink: bool, msg: bytes) -> bytes:
    """cmac(NwkSKey, B0 | msg)[0:4], msg = MHDR | FHDR | FPort | FRMPayload (4.4)."""
    if len(msg) > 255:
        raise ValueError("frame longer than 255 bytes")
    return mic(nwk_s_key, _block(_B0, dev_addr, fcnt, uplink, len(msg)) + bytes(msg))
