# LoRaWAN 1.0.x security on the node: AES-CMAC (RFC 4493) built on cryptolib's AES-ECB, the join
# MICs, join-accept decryption, session key derivation, FRMPayload encryption and the data MIC
# (LoRaWAN 1.0.3 specification 4.3.3, 4.4, 6.2.4, 6.2.5). The host's copy, with the same names
# and results, is host_tools/lorawan/crypto.py; docs/lorawan.md has the block layouts.
#
#   from motekit import lwcrypto
#   enc = lwcrypto.frm_crypt(app_s_key, 0x26011234, fcnt, True, b"\x01\x02")  # uplink FRMPayload
#   phy = mhdr_fhdr_fport + enc
#   phy += lwcrypto.data_mic(nwk_s_key, 0x26011234, fcnt, True, phy)
#   nwk, app = lwcrypto.session_keys(app_key, app_nonce, net_id, dev_nonce)
#
# Keys and blocks are 16 bytes; dev_addr and fcnt are ints (fcnt the full 32-bit counter, of
# which only 16 bits go on air); app_nonce and net_id are the 3 bytes as on air (little-endian).
# Bad sizes raise ValueError. The working blocks are allocated once; the CMAC context (AES key
# schedule and subkeys K1/K2) of the last MIC key and the AES object of the last FRMPayload key
# are kept, since a node uses the same session keys frame after frame. Nothing here prints or
# logs a key.
import cryptolib
from micropython import const

_ECB = const(1)  # cryptolib mode 1: AES-ECB on every port
_RB = const(0x87)  # RFC 4493 2.3: the constant of the subkey doubling for a 128-bit block
_B0 = const(0x49)  # LoRaWAN 4.4: first byte of the MIC block B0
_AI = const(0x01)  # LoRaWAN 4.3.3.1: first byte of the encryption blocks A_i
_NWK = const(0x01)  # LoRaWAN 6.2.5: first byte of the block that derives NwkSKey
_APP = const(0x02)  # ... and AppSKey
_JOIN_REQUEST_LEN = const(19)  # MHDR | AppEUI/JoinEUI(8) | DevEUI(8) | DevNonce(2)

_x = bytearray(16)  # CBC-MAC state, then the tag
_blk = bytearray(16)  # a block being built: A_i, B0, key derivation input
_ks = bytearray(16)  # one keystream block S_i
_k1 = bytearray(16)  # CMAC subkeys of _ctx_key
_k2 = bytearray(16)
_ctx_key = bytearray(16)
_ctx_aes = None
_enc_key = bytearray(16)  # the last FRMPayload key (AppSKey, mostly) and its AES object
_enc_aes = None


def _aes(key):
    if len(key) != 16:
        raise ValueError("AES-128 key must be 16 bytes, not %d" % len(key))
    return cryptolib.aes(key, _ECB)


def _u32(name, v):
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError("%s must be a 32-bit unsigned int" % name)


def _double(src, dst):
    # dst = src * x in GF(2^128): shift left one bit, fold the carry with Rb (RFC 4493 2.3).
    msb = src[0] & 0x80
    carry = 0
    for i in range(15, -1, -1):
        b = src[i]
        dst[i] = ((b << 1) | carry) & 0xFF
        carry = b >> 7
    if msb:
        dst[15] ^= _RB


def _ctx(key):
    # -> the AES object of `key`, with _k1/_k2 its subkeys (RFC 4493 2.3, Generate_Subkey).
    global _ctx_aes
    if _ctx_aes is not None and _ctx_key == key:
        return _ctx_aes
    _ctx_aes = None  # no half-updated context if the key is refused
    a = _aes(key)
    for i in range(16):  # _x, not _blk: data_mic's B0 is waiting in _blk
        _x[i] = 0
    a.encrypt(_x, _x)  # L = AES-K(0^128)
    _double(_x, _k1)
    _double(_k1, _k2)
    _ctx_key[:] = key
    _ctx_aes = a
    return a


def _cmac(key, b0, msg):
    # AES-CMAC (RFC 4493 2.4) of b0 | msg into _x; b0 is None or one 16-byte block prepended
    # without building a copy of the message.
    a = _ctx(key)
    x = _x
    for i in range(16):
        x[i] = 0
    n = len(msg)
    if b0 is not None:
        if n == 0:  # b0 is the last, complete, block
            for j in range(16):
                x[j] = b0[j] ^ _k1[j]
            a.encrypt(x, x)
            return x
        for j in range(16):
            x[j] = b0[j]
        a.encrypt(x, x)
    last = (n - 1) & ~15 if n else 0  # offset of the last block (an empty message has one)
    for off in range(0, last, 16):
        for j in range(16):
            x[j] ^= msg[off + j]
        a.encrypt(x, x)
    r = n - last
    if r == 16:
        for j in range(16):
            x[j] ^= msg[last + j] ^ _k1[j]
    else:  # padded with 10..0
        for j in range(16):
            if j < r:
                x[j] ^= msg[last + j] ^ _k2[j]
            elif j == r:
                x[j] ^= 0x80 ^ _k2[j]
            else:
                x[j] ^= _k2[j]
    a.encrypt(x, x)
    return x


def aes_cmac(key, msg):
    return bytes(_cmac(key, None, msg))


def mic(key, msg):
    # The LoRaWAN MIC: the first 4 bytes of the CMAC (4.4, 6.2.4, 6.2.5).
    return bytes(_cmac(key, None, msg)[:4])


def join_request_mic(app_key, msg):
    # msg = MHDR | JoinEUI | DevEUI | DevNonce (6.2.4).
    if len(msg) != _JOIN_REQUEST_LEN:
        raise ValueError("join request must be %d bytes before its MIC" % _JOIN_REQUEST_LEN)
    return mic(app_key, msg)


def _accept_len(n):
    # MHDR | 16 or 32 bytes (without / with CFList) including the MIC (6.2.5)
    if n != 17 and n != 33:
        raise ValueError("join accept must be 17 or 33 bytes, not %d" % n)


def _accept_blocks(app_key, data, encrypt):
    # MHDR kept, then AES over each 16-byte block of payload | MIC (6.2.5).
    n = len(data)
    _accept_len(n)
    a = _aes(app_key)
    op = a.encrypt if encrypt else a.decrypt
    out = bytearray(n)
    out[0] = data[0]
    src = memoryview(data)
    dst = memoryview(out)
    for off in range(1, n, 16):
        op(src[off : off + 16], dst[off : off + 16])
    return bytes(out)


def join_accept_decrypt(app_key, phy):
    # phy = MHDR | aes128_decrypt(AppKey, payload | MIC) as received -> MHDR | payload | MIC in
    # clear. The network "decrypts" so that the device only needs AES *encryption* (6.2.5).
    # The MIC is not checked here: join_accept_ok() does that.
    return _accept_blocks(app_key, phy, True)


def join_accept_encrypt(app_key, plain):
    # The network server's side: MHDR | payload | MIC -> what goes on air (6.2.5).
    return _accept_blocks(app_key, plain, False)


def join_accept_ok(app_key, plain):
    # True when a decrypted join accept's MIC (its last 4 bytes) is right:
    # cmac(AppKey, MHDR | AppNonce | NetID | DevAddr | DLSettings | RxDelay | CFList) (6.2.5).
    _accept_len(len(plain))
    return mic(app_key, memoryview(plain)[:-4]) == bytes(plain[-4:])


def session_keys(app_key, app_nonce, net_id, dev_nonce):
    # -> (NwkSKey, AppSKey) = aes128_encrypt(AppKey, 0x01|0x02 | AppNonce | NetID | DevNonce |
    # pad16) (6.2.5); app_nonce and net_id 3 bytes as on air, dev_nonce an int (2 bytes LE).
    if len(app_nonce) != 3 or len(net_id) != 3:
        raise ValueError("AppNonce and NetID must be 3 bytes")
    if not 0 <= dev_nonce <= 0xFFFF:
        raise ValueError("DevNonce must be 0..65535")
    a = _aes(app_key)
    b = _blk
    for i in range(16):
        b[i] = 0
    b[1:4] = app_nonce
    b[4:7] = net_id
    b[7] = dev_nonce & 0xFF
    b[8] = dev_nonce >> 8
    b[0] = _NWK
    nwk = a.encrypt(b)
    b[0] = _APP
    return nwk, a.encrypt(b)


def _block(first, dev_addr, fcnt, uplink, last):
    # first | 0x00*4 | Dir | DevAddr (LE) | FCnt (LE) | 0x00 | last into _blk: A_i (4.3.3.1)
    # and B0 (4.4) share this layout.
    _u32("dev_addr", dev_addr)
    _u32("fcnt", fcnt)
    b = _blk
    b[0] = first
    b[1] = b[2] = b[3] = b[4] = 0
    b[5] = 0 if uplink else 1
    for i in range(4):
        b[6 + i] = (dev_addr >> (8 * i)) & 0xFF
        b[10 + i] = (fcnt >> (8 * i)) & 0xFF
    b[14] = 0
    b[15] = last
    return b


def _enc(key):
    global _enc_aes
    if _enc_aes is None or _enc_key != key:
        _enc_aes = None
        a = _aes(key)
        _enc_key[:] = key
        _enc_aes = a
    return _enc_aes


def frm_crypt(key, dev_addr, fcnt, uplink, payload):
    # FRMPayload encryption and decryption, the same XOR with S = aes(K, A_1) | aes(K, A_2) | ...
    # (4.3.3.1); key is AppSKey, or NwkSKey for FPort 0.
    a = _enc(key)
    n = len(payload)
    if n > 255:
        raise ValueError("FRMPayload longer than 255 bytes")
    out = bytearray(n)
    b = _block(_AI, dev_addr, fcnt, uplink, 0)
    s = _ks
    for off in range(0, n, 16):
        b[15] = (off >> 4) + 1
        a.encrypt(b, s)
        for j in range(min(16, n - off)):
            out[off + j] = payload[off + j] ^ s[j]
    return bytes(out)


def data_mic(nwk_s_key, dev_addr, fcnt, uplink, msg):
    # cmac(NwkSKey, B0 | msg)[0:4], msg = MHDR | FHDR | FPort | FRMPayload (4.4).
    if len(msg) > 255:
        raise ValueError("frame longer than 255 bytes")
    b0 = _block(_B0, dev_addr, fcnt, uplink, len(msg))
    return bytes(_cmac(nwk_s_key, b0, msg)[:4])
