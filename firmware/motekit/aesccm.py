# AES-CCM, counter mode with CBC-MAC (RFC 3610; NIST SP 800-38C), on cryptolib's AES-ECB: the
# authenticated encryption of BTHome v2 (4-byte tag, 13-byte nonce, no associated data). Any
# even tag length 4..16, nonces of 7..13 bytes and associated data are accepted, so RFC 3610's
# packet vectors check the same code. Two 16-byte blocks are allocated once per key.
#
#   from motekit.aesccm import CCM
#   ccm = CCM(key16, 4)                      # AES-128 key, tag length M
#   sealed = ccm.encrypt(nonce13, plain)     # ciphertext || tag
#   plain = ccm.decrypt(nonce13, sealed)     # ValueError when the tag does not match
#   sealed = ccm.encrypt(nonce13, plain, aad)
import cryptolib
from micropython import const

_MODE_ECB = const(1)  # cryptolib.aes mode 1: ECB, on every port
_ADATA = const(0x40)  # RFC 3610 2.2: B0 flags bit 6, associated data present
_AAD_MAX = const(0xFEFF)  # RFC 3610 2.2: longer associated data needs another length encoding


class CCM:
    def __init__(self, key, tag_len=4):
        if len(key) != 16:
            raise ValueError("AES-CCM: the key must be 16 bytes (AES-128)")
        if tag_len < 4 or tag_len > 16 or tag_len & 1:
            raise ValueError("AES-CCM: the tag length must be 4, 6, ... 16 bytes")
        self._aes = cryptolib.aes(key, _MODE_ECB)
        self._m = tag_len
        self._x = bytearray(16)  # the CBC-MAC chain value X_i
        self._s = bytearray(16)  # a key-stream block S_i = E(A_i)

    def encrypt(self, nonce, plain, aad=b""):
        n = len(plain)
        m = self._m
        _check(nonce, n, aad)
        out = bytearray(n + m)
        self._mac(nonce, plain, n, aad)
        self._ctr(nonce, plain, n, out)
        self._block(nonce, 0)  # S_0 masks the tag (RFC 3610 2.3)
        x, s = self._x, self._s
        for i in range(m):
            out[n + i] = x[i] ^ s[i]
        return bytes(out)

    def decrypt(self, nonce, sealed, aad=b""):
        m = self._m
        n = len(sealed) - m
        if n < 0:
            raise ValueError("AES-CCM: shorter than the tag")
        _check(nonce, n, aad)
        out = bytearray(n)
        self._ctr(nonce, sealed, n, out)
        self._mac(nonce, out, n, aad)
        self._block(nonce, 0)
        x, s = self._x, self._s
        diff = 0  # compare every byte: the time taken does not tell where a forgery differs
        for i in range(m):
            diff |= x[i] ^ s[i] ^ sealed[n + i]
        if diff:
            raise ValueError("AES-CCM: the tag does not match (wrong key, nonce or data)")
        return bytes(out)

    def _mac(self, nonce, msg, n, aad):
        # RFC 3610 2.2: X_1 = E(B_0), X_(i+1) = E(X_i ^ B_i); the tag is X's first M bytes.
        q = 15 - len(nonce)  # L, the bytes holding the message length
        x = self._x
        x[0] = (_ADATA if aad else 0) | ((self._m - 2) >> 1) << 3 | (q - 1)
        x[1 : 16 - q] = nonce
        for i in range(q):
            x[15 - i] = (n >> (8 * i)) & 0xFF
        self._aes.encrypt(x, x)
        if aad:
            a = len(aad)
            self._absorb(bytes((a >> 8, a & 0xFF)) + bytes(aad), a + 2)
        self._absorb(msg, n)

    def _absorb(self, data, n):
        # CBC-MAC over data[:n], the last block padded with zeros (which XOR away).
        x = self._x
        aes = self._aes
        for i in range(0, n, 16):
            for j in range(min(16, n - i)):
                x[j] ^= data[i + j]
            aes.encrypt(x, x)

    def _block(self, nonce, i):
        # S_i = E(A_i), A_i = flags (L - 1) | nonce | i in L bytes (RFC 3610 2.3).
        s = self._s
        q = 15 - len(nonce)
        s[0] = q - 1
        s[1 : 16 - q] = nonce
        for k in range(q):
            s[15 - k] = (i >> (8 * k)) & 0xFF
        self._aes.encrypt(s, s)

    def _ctr(self, nonce, src, n, dst):
        # dst[:n] = src[:n] ^ S_1 S_2 ...: encryption and decryption are the same operation.
        s = self._s
        for i in range(0, n, 16):
            self._block(nonce, (i >> 4) + 1)
            for j in range(min(16, n - i)):
                dst[i + j] = src[i + j] ^ s[j]


def _check(nonce, n, aad):
    q = 15 - len(nonce)  # L, the bytes holding the message length
    if q < 2 or q > 8:
        raise ValueError("AES-CCM: the nonce must be 7 to 13 bytes")
    if n >> (8 * q):
        raise ValueError("AES-CCM: the message is too long for this nonce")
    if len(aad) > _AAD_MAX:
        raise ValueError("AES-CCM: the associated data is too long")
