# firmware/motekit/lwcrypto.py on both virtual boards: AES-CMAC against RFC 4493's examples, and
# the LoRaWAN 1.0.x MICs, FRMPayload encryption, join accept and session keys against published
# frames. Sources of the vectors:
#   [RFC]  RFC 4493 section 4, "Test Vectors" (AES-128 subkeys, examples 1-4).
#   [LP]   anthonykirby/lora-packet (npm), __tests__/decrypt_test.ts, mic_test.ts,
#          key_gen_test.ts, join_accept_encrypt.ts; the uplink 40F17DBE49... is its README's.
#   [BR]   brocaar/lorawan (Go; ChirpStack's), phypayload_test.go: TestPHYPayloadData,
#          TestPHYPayloadJoinRequest, TestPHYPayloadJoinAccept, ExampleNewPHYPayload*.
#   [SEM]  computed with Semtech's Basic MAC tooling (PyPI liblora 0.0.3, loramsg.pack_jacc, on
#          pycryptodome): a join accept with a CFList, which neither set above has.
# The host's copy (host_tools/lorawan/crypto.py) passes the same vectors and is compared with
# this one on random inputs in tests/host/test_lorawan_crypto.py.
import gc

import _devtest
from motekit import lwcrypto

_h = bytes.fromhex

# [RFC] 4: the key and the 64-byte message whose prefixes examples 1-4 MAC.
_RFC_KEY = _h("2b7e151628aed2a6abf7158809cf4f3c")
_RFC_MSG = _h(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)

# [LP] session keys of the uplinks 40F17DBE49...: DevAddr 49BE7DF1.
_LP_NWK = _h("44024241ed4ce9a68c6a8bc055233fd3")
_LP_APP = _h("ec925802ae430ca77fd3dd73cb2cc588")
_LP_ADDR = 0x49BE7DF1


def _data(phy, nwk, addr, fcnt, uplink):
    # The frame's MIC as data_mic computes it, and the MIC it carries.
    return lwcrypto.data_mic(nwk, addr, fcnt, uplink, phy[:-4]), phy[-4:]


# --- AES-CMAC --------------------------------------------------------------------------------
def test_rfc4493_subkeys():
    lwcrypto.aes_cmac(_RFC_KEY, b"")  # loads the key's context
    assert bytes(lwcrypto._k1) == _h("fbeed618357133667c85e08f7236a8de")
    assert bytes(lwcrypto._k2) == _h("f7ddac306ae266ccf90bc11ee46d513b")


def test_rfc4493_examples_1_to_4():
    expected = (
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    )
    for n, tag in expected:
        got = lwcrypto.aes_cmac(_RFC_KEY, _RFC_MSG[:n])
        assert got == _h(tag), (n, got)
        assert isinstance(got, bytes) and len(got) == 16
        # memoryview and bytearray inputs give the same tag
        assert lwcrypto.aes_cmac(_RFC_KEY, bytearray(_RFC_MSG[:n])) == _h(tag)
        assert lwcrypto.aes_cmac(_RFC_KEY, memoryview(_RFC_MSG)[:n]) == _h(tag)


def test_mic_is_the_cmac_prefix_whichever_key_came_before():
    other = bytes(range(16))
    for n in (0, 15, 16, 17, 40):
        full = lwcrypto.aes_cmac(_RFC_KEY, _RFC_MSG[:n])
        lwcrypto.mic(other, b"another key in between")
        assert lwcrypto.mic(_RFC_KEY, _RFC_MSG[:n]) == full[:4]


# --- data frames -----------------------------------------------------------------------------
def test_lora_packet_uplink_test():
    phy = _h("40F17DBE4900020001954378762B11FF0D")  # [LP] FCnt 2, FPort 1, "test"
    assert lwcrypto.frm_crypt(_LP_APP, _LP_ADDR, 2, True, phy[9:13]) == b"test"
    mic, on_air = _data(phy, _LP_NWK, _LP_ADDR, 2, True)
    assert mic == on_air == _h("2b11ff0d")


def test_lora_packet_more_frames():
    # [LP] a 44-byte FRMPayload (three keystream blocks), FCnt 4
    phy = _h(
        "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8a"
        "a17ad30075293f28dea8a20af3c5e7"
    )
    plain = lwcrypto.frm_crypt(_LP_APP, _LP_ADDR, 4, True, phy[9:-4])
    assert plain == b"The quick brown fox jumps over the lazy dog."
    mic, on_air = _data(phy, _LP_NWK, _LP_ADDR, 4, True)
    assert mic == on_air
    # [LP] FPort 1 with an empty FRMPayload, FCnt 3
    phy = _h("40F17DBE49000300012A3518AF")
    assert lwcrypto.data_mic(_LP_NWK, _LP_ADDR, 3, True, phy[:-4]) == _h("2a3518af")
    # [LP] a downlink: unconfirmed down with ACK, FPort 1, no payload, FCnt 2
    phy = _h("60f17dbe4920020001f9d65d27")
    mic, on_air = _data(phy, _LP_NWK, _LP_ADDR, 2, False)
    assert mic == on_air == _h("f9d65d27")
    assert lwcrypto.data_mic(_LP_NWK, _LP_ADDR, 2, True, phy[:-4]) != on_air  # Dir counts


def test_brocaar_frames():
    # [BR] TestPHYPayloadData: unconfirmed up, ADR, DevAddr 01020304, FCnt 1, FPort 1, "hello"
    phy = _h("400403020180010001a694642615d6c3b582")
    assert lwcrypto.frm_crypt(bytes([1] * 16), 0x01020304, 1, True, phy[9:-4]) == b"hello"
    mic, on_air = _data(phy, bytes([2] * 16), 0x01020304, 1, True)
    assert mic == on_air
    # [BR] ExampleNewPHYPayload: confirmed up, FPort 10, 01020304 encrypted, FCnt 0
    phy = bytes([128, 4, 3, 2, 1, 0, 0, 0, 10, 226, 100, 212, 247, 181, 106, 14, 117])
    app = bytes(range(16, 0, -1))
    nwk = bytes(range(1, 17))
    assert lwcrypto.frm_crypt(app, 0x01020304, 0, True, phy[9:13]) == _h("01020304")
    mic, on_air = _data(phy, nwk, 0x01020304, 0, True)
    assert mic == on_air
    # [BR] via [LP] fopts_test.ts: unconfirmed down with 3 bytes of FOpts, FPort 1; its network
    # key is LoRaWAN 1.1's SNwkSIntKey, whose MIC for an unconfirmed downlink is 1.0.x's.
    phy = _h("600403020103000022ac0a01f0b468ddaa5ed13a")
    mic, on_air = _data(phy, bytes([1] * 15 + [0]), 0x01020304, 0, False)
    assert mic == on_air
    assert lwcrypto.frm_crypt(app, 0x01020304, 0, False, phy[12:16]) == _h("01020304")


def test_frm_crypt_is_its_own_inverse_and_uses_all_32_counter_bits():
    key = bytes(range(16))
    data = bytes(range(50))
    for n in (0, 1, 15, 16, 17, 50):
        enc = lwcrypto.frm_crypt(key, 0x26011234, 0x10002, True, data[:n])
        assert len(enc) == n and isinstance(enc, bytes)
        assert lwcrypto.frm_crypt(key, 0x26011234, 0x10002, True, enc) == data[:n]
    a = lwcrypto.frm_crypt(key, 0x26011234, 0x10002, True, data)
    assert a != lwcrypto.frm_crypt(key, 0x26011234, 0x00002, True, data)  # high FCnt bits
    assert a != lwcrypto.frm_crypt(key, 0x26011234, 0x10002, False, data)  # direction
    assert a != lwcrypto.frm_crypt(key, 0x26011235, 0x10002, True, data)  # DevAddr
    m = lwcrypto.data_mic(key, 0x26011234, 0x10002, True, data)
    assert m != lwcrypto.data_mic(key, 0x26011234, 0x00002, True, data)


def test_data_mic_right_after_a_key_change():
    # The B0 block must survive the new key's subkey computation.
    phy = _h("40F17DBE4900020001954378762B11FF0D")
    for k in (bytes(16), _LP_NWK, bytes([7] * 16), _LP_NWK):
        lwcrypto.mic(bytes([9] * 16), b"x")  # another key is loaded before each round
        got = lwcrypto.data_mic(k, _LP_ADDR, 2, True, phy[:-4])
        assert (got == phy[-4:]) == (k == _LP_NWK)


# --- join ------------------------------------------------------------------------------------
def test_join_request_mics():
    cases = (
        # [LP] mic_test.ts
        ("98929b92c49edba9676d646d3b612456", "0039363463336913AA05693574323831330489C65B1304"),
        # [BR] TestPHYPayloadJoinRequest: AppKey 01 * 16
        ("01" * 16, "00040302010403020105040302050403022d106a990e12"),
        # [BR] ExampleNewPHYPayload_joinRequest: AppKey 01..10
        ("0102030405060708090a0b0c0d0e0f10", "0001010101010101010202020202020202030309b97b32"),
    )
    for key, phy in cases:
        phy = _h(phy)
        assert lwcrypto.join_request_mic(_h(key), phy[:-4]) == phy[-4:], phy


def test_join_accept_decrypt_and_mic():
    cases = (
        # [LP] join_accept_encrypt.ts: all-zero AppKey and fields
        ("00" * 16, "20e3de108795f776b8037610ef7869b5b3", "20000000000000000000000000f86f0a91"),
        # [BR] TestPHYPayloadJoinAccept: AppNonce 570BC7, NetID 221101, DevAddr 02031980
        (
            "00112233445566778899aabbccddeeff",
            "20493eeb51fba2116f810edb3742975142",
            "20c70b5701112280190302000043485bbc",
        ),
        # [BR] ExampleNewPHYPayload_joinAcceptSend
        (
            "0102030405060708090a0b0c0d0e0f10",
            "2023cf335489aae3183c0be0baa8dee5f3",
            "200101010202020403020100003449f212",
        ),
        # [SEM] with a CFList: AppNonce A1B2C3, NetID 000013, DevAddr 26011234, RX1DRoffset 1,
        # RX2 DR3, RxDelay 1, CFList 867.1..867.9 MHz
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "2094957dcb88c6d9899ffb986bcd1821509b3096d9ac7a3c4912e7514cef097b80",
            "20c3b2a1130000341201261301184f84e85684b85e84886684586e84009b3f5aa8",
        ),
    )
    for key, air, plain in cases:
        key, air, plain = _h(key), _h(air), _h(plain)
        got = lwcrypto.join_accept_decrypt(key, air)
        assert got == plain, got
        assert lwcrypto.join_accept_ok(key, got)
        assert lwcrypto.mic(key, plain[:-4]) == plain[-4:]
        assert lwcrypto.join_accept_encrypt(key, plain) == air
    # [LP] mic_test.ts: a join accept in clear, and the same with its MIC bodged
    key = _h("98929b92c49edba9676d646d3b612456")
    assert lwcrypto.join_accept_ok(key, _h("20386337CCBBAAE7CD2C010000D9D0A6E7"))
    assert not lwcrypto.join_accept_ok(key, _h("20386337CCBBAAE7CD2C010000D9D0A6E8"))
    # a wrong AppKey decrypts to something whose MIC fails
    wrong = lwcrypto.join_accept_decrypt(bytes(16), _h("20493eeb51fba2116f810edb3742975142"))
    assert not lwcrypto.join_accept_ok(bytes(16), wrong)


def test_session_keys():
    # [LP] key_gen_test.ts: AppNonce 376338, NetID AABBCC, DevNonce F18E (big-endian there;
    # little-endian on air, as session_keys takes them)
    nwk, app = lwcrypto.session_keys(
        _h("98929b92c49edba9676d646d3b612456"), _h("386337"), _h("ccbbaa"), 0xF18E
    )
    assert nwk == _h("4e3d6e6afbcc67af2ba3c8e8ec4acf4b")
    assert app == _h("610897aa6f1460623443b527d3ac6a9d")
    # [SEM] crypto.derive for the CFList join accept above, DevNonce 1234
    nwk, app = lwcrypto.session_keys(_RFC_KEY, _h("c3b2a1"), _h("130000"), 0x1234)
    assert nwk == _h("197417e421dbe1e1ffd2c9ea6ce57afe")
    assert app == _h("0a45de907b075c9c3aa70816ece59b51")


# --- refusals and heap -----------------------------------------------------------------------
def test_bad_sizes_are_value_errors():
    k = bytes(16)
    for fn, args in (
        (lwcrypto.aes_cmac, (bytes(15), b"")),
        (lwcrypto.mic, (bytes(32), b"")),
        (lwcrypto.join_request_mic, (k, bytes(18))),
        (lwcrypto.join_accept_decrypt, (k, bytes(16))),
        (lwcrypto.join_accept_decrypt, (k, bytes(34))),
        (lwcrypto.join_accept_encrypt, (k, bytes(18))),
        (lwcrypto.join_accept_ok, (k, bytes(20))),
        (lwcrypto.session_keys, (k, bytes(2), bytes(3), 1)),
        (lwcrypto.session_keys, (k, bytes(3), bytes(3), 0x10000)),
        (lwcrypto.frm_crypt, (k, -1, 0, True, b"x")),
        (lwcrypto.frm_crypt, (k, 0, 1 << 32, True, b"x")),
        (lwcrypto.frm_crypt, (k, 0, 0, True, bytes(256))),
        (lwcrypto.data_mic, (k, 1 << 32, 0, True, b"x")),
        (lwcrypto.data_mic, (bytes(8), 0, 0, True, b"x")),
    ):
        e = _devtest.raises(ValueError, fn, *args)
        assert str(e), fn
    # a refused key leaves the cached context usable
    assert lwcrypto.aes_cmac(_RFC_KEY, _RFC_MSG[:16]) == _h("070a16b46b4d4144f79bdd9dd04a287c")


def test_a_frame_costs_little_heap():
    # After the first frame with a session's keys, encrypting and MICing a frame allocates
    # only its results: no AES key schedule, no copy of the frame.
    app, nwk = bytes(range(16)), bytes(range(1, 17))
    payload, frame = bytes(40), bytes(60)
    lwcrypto.frm_crypt(app, 0x26011234, 0, True, payload)
    lwcrypto.data_mic(nwk, 0x26011234, 0, True, frame)
    gc.collect()
    before = gc.mem_alloc()
    for fcnt in range(1, 11):
        lwcrypto.frm_crypt(app, 0x26011234, fcnt, True, payload)
        lwcrypto.data_mic(nwk, 0x26011234, fcnt, True, frame)
    per_frame = (gc.mem_alloc() - before) / 10
    assert per_frame < 400, per_frame  # a key schedule alone is more
