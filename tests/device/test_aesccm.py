# firmware/motekit/aesccm.py on both virtual boards: AES-CCM against RFC 3610's packet vectors,
# NIST SP 800-38C's examples and the BTHome spec's encryption example; tampering is refused.
import binascii

from motekit.aesccm import CCM


def h(s):
    return binascii.unhexlify(s.replace(" ", ""))


RFC_KEY = h("C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF")
# RFC 3610 section 8, packet vectors #1-#8: nonce 000000|xxxxxxxx|A0A1A2A3A4A5, AAD length,
# total packet length, M, output after the AAD. The packet is bytes 00 01 02 ...; its first
# bytes are the AAD.
RFC_VECTORS = (
    "03020100 8 31 8 588C979A61C663D2F066D0C2C0F989806D5F6B61DAC38417E8D12CFDF926E0",
    "04030201 8 32 8 72C91A36E135F8CF291CA894085C87E3CC15C439C9E43A3BA091D56E10400916",
    "05040302 8 33 8 51B1E5F44A197D1DA46B0F8E2D282AE871E838BB64DA8596574ADAA76FBD9FB0C5",
    "06050403 12 31 8 A28C6865939A9A79FAAA5C4C2A9D4A91CDAC8C96C861B9C9E61EF1",
    "07060504 12 32 8 DCF1FB7B5D9E23FB9D4E131253658AD86EBDCA3E51E83F077D9C2D93",
    "08070605 12 33 8 6FC1B011F006568B5171A42D953D469B2570A4BD87405A0443AC91CB94",
    "09080706 8 31 10 0135D1B2C95F41D5D1D4FEC185D166B8094E999DFED96C048C56602C97ACBB7490",
    "0A090807 8 32 10 7B75399AC0831DD2F0BBD75879A2FD8F6CAE6B6CD9B7DB24C17B4433F434963F34B4",
)

# bthome.io/encryption: temperature 25.06 °C and humidity 50.55 % (02CA09 03BF13), key
# 231d39c1..., MAC 5448E68F80A5, device info 0x41, counter bytes 00112233 on air.
BT_KEY = h("231d39c1d7cc1ab1aee224cd096db932")
BT_NONCE = h("5448e68f80a5d2fc4100112233")
BT_PLAIN = h("02CA09 03BF13")
BT_SEALED = h("a47266c95f7378237214")  # ciphertext, MIC


def test_rfc3610_packet_vectors():
    for line in RFC_VECTORS:
        mid, alen, total, m, expected = line.split()
        nonce = h("000000" + mid + "A0A1A2A3A4A5")
        alen, total, m = int(alen), int(total), int(m)
        packet = bytes(range(total))
        ccm = CCM(RFC_KEY, m)
        sealed = ccm.encrypt(nonce, packet[alen:], packet[:alen])
        assert sealed == h(expected), mid
        assert ccm.decrypt(nonce, sealed, packet[:alen]) == packet[alen:], mid


def test_nist_sp800_38c_examples():
    # Appendix C, examples 1-3: nonces of 7, 8 and 12 bytes, tags of 4, 6 and 8 bytes.
    key = bytes(range(0x40, 0x50))
    cases = (
        (7, 8, 4, 4, "7162015b4dac255d"),
        (8, 16, 16, 6, "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd"),
        (12, 20, 24, 8, "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951"),
    )
    for nlen, alen, plen, m, expected in cases:
        nonce = bytes(range(0x10, 0x10 + nlen))
        aad = bytes(range(alen))
        plain = bytes(range(0x20, 0x20 + plen))
        assert CCM(key, m).encrypt(nonce, plain, aad) == h(expected), nlen


def test_the_bthome_spec_example():
    ccm = CCM(BT_KEY, 4)
    assert ccm.encrypt(BT_NONCE, BT_PLAIN) == BT_SEALED
    assert ccm.decrypt(BT_NONCE, BT_SEALED) == BT_PLAIN


def test_lengths_around_the_block_size():
    # Outputs of CPython's `cryptography` AESCCM for the BTHome key and nonce: the zero padding
    # of the last CBC-MAC block and the counter blocks at 0, 1, 15, 16, 17 and 32 bytes.
    expected = {
        0: "c11847aa",
        1: "a55ed84cf6",
        15: "a5b27ed2ff462c58b49a0c9a04df37d3565518",
        16: "a5b27ed2ff462c58b49a0c9a04df37f1b7f3c93d",
        17: "a5b27ed2ff462c58b49a0c9a04df37f16497b9f49c",
        32: "a5b27ed2ff462c58b49a0c9a04df37f164101721444398602b4d3af8318ed31ec4b8ba36",
    }
    ccm = CCM(BT_KEY, 4)
    for n, out in expected.items():
        plain = bytes((i * 7 + 3) & 0xFF for i in range(n))
        assert ccm.encrypt(BT_NONCE, plain) == h(out), n
        assert ccm.decrypt(BT_NONCE, h(out)) == plain, n


def test_a_changed_byte_key_or_nonce_is_refused():
    ccm = CCM(BT_KEY, 4)
    for i in range(len(BT_SEALED)):
        bad = bytearray(BT_SEALED)
        bad[i] ^= 0x01
        try:
            ccm.decrypt(BT_NONCE, bytes(bad))
            raise AssertionError("byte %d changed and the tag still matched" % i)
        except ValueError as e:
            assert "tag does not match" in str(e)
    other_nonce = BT_NONCE[:-1] + b"\x34"
    for c, n in ((CCM(b"\x00" * 16, 4), BT_NONCE), (ccm, other_nonce)):
        try:
            c.decrypt(n, BT_SEALED)
            raise AssertionError("decrypted with the wrong key or nonce")
        except ValueError:
            pass


class _Sized:
    # A message of n bytes as far as len() goes: checked before any byte is read.
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_bad_parameters_are_refused():
    cases = (
        (lambda: CCM(b"\x00" * 15), "16 bytes"),
        (lambda: CCM(BT_KEY, 5), "tag length"),
        (lambda: CCM(BT_KEY, 18), "tag length"),
        (lambda: CCM(BT_KEY).encrypt(b"\x00" * 14, b"x"), "7 to 13"),
        (lambda: CCM(BT_KEY).encrypt(b"\x00" * 6, b"x"), "7 to 13"),
        (lambda: CCM(BT_KEY).encrypt(b"\x00" * 13, _Sized(65536)), "too long"),
        (lambda: CCM(BT_KEY).decrypt(BT_NONCE, b"abc"), "shorter than the tag"),
    )
    for call, words in cases:
        try:
            call()
            raise AssertionError("accepted: " + words)
        except ValueError as e:
            assert words in str(e), str(e)


def test_one_ccm_serves_many_messages():
    # The preallocated blocks carry nothing from one message to the next.
    ccm = CCM(BT_KEY, 4)
    first = ccm.encrypt(BT_NONCE, BT_PLAIN)
    ccm.encrypt(BT_NONCE[:-1] + b"\x99", b"\xff" * 40)
    ccm.decrypt(BT_NONCE, first)
    assert ccm.encrypt(BT_NONCE, BT_PLAIN) == first == BT_SEALED
