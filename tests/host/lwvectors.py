"""Published LoRaWAN 1.0.x frames with their keys, for the host tests of crypto and frames (the
device test tests/device/test_lwcrypto.py has the same ones). Sources:

  [LP]   anthonykirby/lora-packet (npm): __tests__/decrypt_test.ts, mic_test.ts, key_gen_test.ts,
         join_accept_encrypt.ts, fopts_test.ts; the uplink 40F17DBE49... is its README's.
  [BR]   brocaar/lorawan (Go, ChirpStack's), phypayload_test.go: TestPHYPayloadData,
         TestPHYPayloadJoinRequest, TestPHYPayloadJoinAccept, ExampleNewPHYPayload*.
  [SEM]  computed with Semtech's Basic MAC tooling (PyPI liblora 0.0.3, loramsg.pack_jacc on
         pycryptodome): a join accept with a CFList, which neither set above has.
"""

from dataclasses import dataclass

h = bytes.fromhex

# RFC 4493 section 4: key, the 64-byte message whose prefixes examples 1-4 MAC, the tags.
RFC4493_KEY = h("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_MSG = h(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
RFC4493_TAGS = {
    0: h("bb1d6929e95937287fa37d129b756746"),
    16: h("070a16b46b4d4144f79bdd9dd04a287c"),
    40: h("dfa66747de9ae63030ca32611497c827"),
    64: h("51f0bebf7e3b9d92fc49741779363cfe"),
}


@dataclass(frozen=True)
class Data:
    source: str
    phy: bytes
    nwk_s_key: bytes
    app_s_key: bytes | None  # None: the source gives no key for the FRMPayload
    dev_addr: int
    fcnt: int
    uplink: bool
    fport: int | None
    plain: bytes  # FRMPayload in clear
    fopts: bytes = b""


LP_NWK = h("44024241ed4ce9a68c6a8bc055233fd3")
LP_APP = h("ec925802ae430ca77fd3dd73cb2cc588")
_BR_APP = bytes(range(16, 0, -1))

DATA = [
    Data("LP readme", h("40F17DBE4900020001954378762B11FF0D"), LP_NWK, LP_APP, 0x49BE7DF1, 2,
         True, 1, b"test"),
    Data("LP large payload", h(
        "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8a"
        "a17ad30075293f28dea8a20af3c5e7"), LP_NWK, LP_APP, 0x49BE7DF1, 4, True, 1,
         b"The quick brown fox jumps over the lazy dog."),
    Data("LP empty payload", h("40F17DBE49000300012A3518AF"), LP_NWK, LP_APP, 0x49BE7DF1, 3,
         True, 1, b""),
    Data("LP downlink ack", h("60f17dbe4920020001f9d65d27"), LP_NWK, LP_APP, 0x49BE7DF1, 2,
         False, 1, b""),
    Data("BR data", h("400403020180010001a694642615d6c3b582"), bytes([2] * 16), bytes([1] * 16),
         0x01020304, 1, True, 1, b"hello"),
    Data("BR example", bytes([128, 4, 3, 2, 1, 0, 0, 0, 10, 226, 100, 212, 247, 181, 106, 14,
         117]), bytes(range(1, 17)), _BR_APP, 0x01020304, 0, True, 10, h("01020304")),
    # Its network key is LoRaWAN 1.1's SNwkSIntKey, whose MIC of an unconfirmed downlink is
    # 1.0.x's; the FOpts are 1.1-encrypted, which 1.0.x carries as they are.
    Data("BR/LP downlink with FOpts", h("600403020103000022ac0a01f0b468ddaa5ed13a"),
         bytes([1] * 15 + [0]), _BR_APP, 0x01020304, 0, False, 1, h("01020304"),
         h("22ac0a")),
]  # fmt: skip


@dataclass(frozen=True)
class JoinRequest:
    source: str
    phy: bytes
    app_key: bytes
    join_eui: int
    dev_eui: int
    dev_nonce: int


JOIN_REQUESTS = [
    JoinRequest("LP mic_test", h("0039363463336913AA05693574323831330489C65B1304"),
                h("98929b92c49edba9676d646d3b612456"), 0xAA13693363343639, 0x3331383274356905,
                0x8904),
    JoinRequest("BR TestPHYPayloadJoinRequest", h("00040302010403020105040302050403022d106a990e12"),
                bytes([1] * 16), 0x0102030401020304, 0x0203040502030405, 0x102D),
    JoinRequest("BR ExampleNewPHYPayload_joinRequest",
                h("0001010101010101010202020202020202030309b97b32"), bytes(range(1, 17)),
                0x0101010101010101, 0x0202020202020202, 0x0303),
]  # fmt: skip


@dataclass(frozen=True)
class JoinAccept:
    source: str
    app_key: bytes
    air: bytes
    plain: bytes
    app_nonce: int
    net_id: int
    dev_addr: int
    rx1_dr_offset: int = 0
    rx2_dr: int = 0
    rx_delay: int = 0
    cf_list: bytes | None = None


JOIN_ACCEPTS = [
    JoinAccept("LP join_accept_encrypt zero", bytes(16), h("20e3de108795f776b8037610ef7869b5b3"),
               h("20000000000000000000000000f86f0a91"), 0, 0, 0),
    JoinAccept("BR TestPHYPayloadJoinAccept", h("00112233445566778899aabbccddeeff"),
               h("20493eeb51fba2116f810edb3742975142"), h("20c70b5701112280190302000043485bbc"),
               0x570BC7, 0x221101, 0x02031980),
    JoinAccept("BR ExampleNewPHYPayload_joinAcceptSend", bytes(range(1, 17)),
               h("2023cf335489aae3183c0be0baa8dee5f3"), h("200101010202020403020100003449f212"),
               0x010101, 0x020202, 0x01020304),
    JoinAccept("SEM pack_jacc with CFList", RFC4493_KEY,
               h("2094957dcb88c6d9899ffb986bcd1821509b3096d9ac7a3c4912e7514cef097b80"),
               h("20c3b2a1130000341201261301184f84e85684b85e84886684586e84009b3f5aa8"),
               0xA1B2C3, 0x000013, 0x26011234, 1, 3, 1,
               h("184f84e85684b85e84886684586e8400")),
]  # fmt: skip

# [LP] mic_test.ts: a join accept in clear with AppKey 98929b92...; the MIC E7 bodged to E8.
LP_JOIN_ACCEPT_PLAIN = h("20386337CCBBAAE7CD2C010000D9D0A6E7")
LP_JOIN_ACCEPT_BAD = h("20386337CCBBAAE7CD2C010000D9D0A6E8")
LP_APP_KEY = h("98929b92c49edba9676d646d3b612456")

# (AppKey, AppNonce, NetID as on air, DevNonce) -> (NwkSKey, AppSKey)
SESSION_KEYS = [
    # [LP] key_gen_test.ts: AppNonce 376338, NetID AABBCC, DevNonce F18E (big-endian there)
    ((LP_APP_KEY, h("386337"), h("ccbbaa"), 0xF18E),
     (h("4e3d6e6afbcc67af2ba3c8e8ec4acf4b"), h("610897aa6f1460623443b527d3ac6a9d"))),
    # [SEM] loracrypto.crypto.derive for the CFList join accept above, DevNonce 1234
    ((RFC4493_KEY, h("c3b2a1"), h("130000"), 0x1234),
     (h("197417e421dbe1e1ffd2c9ea6ce57afe"), h("0a45de907b075c9c3aa70816ece59b51"))),
]  # fmt: skip
