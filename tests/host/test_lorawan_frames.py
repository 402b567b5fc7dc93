"""host_tools.lorawan.frames: published frames parsed to their fields and built again byte for
byte (tests/host/lwvectors.py names the sources), every refusal with its message, the 32-bit
frame counter from the 16 on air, CFLists, and Semtech's Basic MAC tooling (PyPI liblora) as an
independent decoder and MIC checker of frames we build, and an encoder of frames we parse."""

import struct
from types import ModuleType
from typing import Any

import lwvectors as V
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.errors import MoteError
from host_tools.lorawan import crypto
from host_tools.lorawan.frames import (
    DataFrame,
    EncryptedJoinAccept,
    FCtrl,
    FrameError,
    JoinAccept,
    JoinRequest,
    MicError,
    MType,
    build_data,
    build_join_request,
    cf_list_channel_mask,
    cf_list_decode,
    cf_list_frequencies,
    decrypt_join_accept,
    full_fcnt,
    parse,
)


@pytest.fixture(scope="module")
def loramsg() -> ModuleType:
    """liblora's loramsg (Semtech Basic MAC's frame codec), the independent oracle."""
    try:
        import loramsg as oracle
    except ImportError:
        pytest.fail("the LoRaWAN oracle is missing: liblora==0.0.3 is a dev dependency")
    return oracle


def _signed(v: int) -> int:
    return struct.unpack("<i", struct.pack("<I", v))[0]


def _unsigned(v: int) -> int:
    return v & 0xFFFFFFFF


# --- published frames ------------------------------------------------------------------------
@pytest.mark.parametrize("v", V.DATA, ids=lambda v: v.source)
def test_published_data_frames_parse(v: V.Data) -> None:
    f = parse(v.phy)
    assert isinstance(f, DataFrame)
    assert f.uplink is v.uplink
    assert (f.dev_addr, f.fcnt, f.fport, f.fopts, f.mic) == (
        v.dev_addr, v.fcnt, v.fport, v.fopts, v.phy[-4:]
    )  # fmt: skip
    assert f.mic_ok(v.nwk_s_key, v.fcnt)
    assert not f.mic_ok(v.nwk_s_key, v.fcnt + 0x10000)  # the same 16 bits, another counter
    assert not f.mic_ok(bytes(16), v.fcnt)
    if v.app_s_key is not None:
        assert f.payload(v.nwk_s_key, v.app_s_key, v.fcnt) == v.plain
        again = build_data(
            f.mtype, v.dev_addr, v.fcnt, nwk_s_key=v.nwk_s_key, app_s_key=v.app_s_key,
            fport=v.fport, payload=v.plain, fopts=v.fopts, fctrl=f.fctrl,
        )  # fmt: skip
        assert again == v.phy


def test_published_frames_fields() -> None:
    up = parse(V.DATA[0].phy)
    assert isinstance(up, DataFrame)
    assert up.mtype is MType.UNCONFIRMED_UP and not up.confirmed
    assert up.fctrl == FCtrl()
    ack = parse(V.h("60f17dbe4920020001f9d65d27"))
    assert isinstance(ack, DataFrame)
    assert ack.mtype is MType.UNCONFIRMED_DOWN and ack.fctrl == FCtrl(ack=True)
    assert ack.fport == 1 and ack.frm_payload == b""  # an FPort with an empty FRMPayload
    no_port = parse(build_data(MType.UNCONFIRMED_DOWN, 1, 0, nwk_s_key=bytes(16),
                               app_s_key=bytes(16), fctrl=FCtrl(ack=True)))  # fmt: skip
    assert isinstance(no_port, DataFrame) and no_port.fport is None and len(no_port.phy) == 12
    confirmed = parse(V.DATA[5].phy)
    assert isinstance(confirmed, DataFrame) and confirmed.mtype is MType.CONFIRMED_UP
    adr = parse(V.DATA[4].phy)
    assert isinstance(adr, DataFrame) and adr.fctrl == FCtrl(adr=True)
    # [LP] fopts_test.ts "github issue #18": ADR, ACK and 3 bytes of FOpts, FPort 8
    f = parse(V.h("4084412505A3010009110308B33750F504D4B86A"))
    assert isinstance(f, DataFrame)
    assert f.fctrl == FCtrl(adr=True, ack=True)
    assert (f.dev_addr, f.fcnt, f.fopts, f.fport) == (0x05254184, 1, V.h("091103"), 8)
    assert f.frm_payload == V.h("b33750f5") and f.mic == V.h("04d4b86a")


@pytest.mark.parametrize("v", V.JOIN_REQUESTS, ids=lambda v: v.source)
def test_published_join_requests(v: V.JoinRequest) -> None:
    f = parse(v.phy)
    assert f == JoinRequest(v.join_eui, v.dev_eui, v.dev_nonce, v.phy[-4:])
    assert isinstance(f, JoinRequest)
    assert f.mic_ok(v.app_key) and not f.mic_ok(bytes(16))
    assert build_join_request(v.app_key, v.join_eui, v.dev_eui, v.dev_nonce) == v.phy


@pytest.mark.parametrize("v", V.JOIN_ACCEPTS, ids=lambda v: v.source)
def test_published_join_accepts(v: V.JoinAccept) -> None:
    heard = parse(v.air)
    assert isinstance(heard, EncryptedJoinAccept)
    assert heard.has_cf_list is (v.cf_list is not None)
    ja = decrypt_join_accept(v.air, v.app_key)
    want = JoinAccept(
        v.app_nonce, v.net_id, v.dev_addr, v.rx1_dr_offset, v.rx2_dr, v.rx_delay, v.cf_list,
        v.plain[-4:],
    )  # fmt: skip
    assert ja == want
    assert ja.plain(v.app_key) == v.plain
    assert ja.encrypt(v.app_key) == v.air
    with pytest.raises(MicError, match="join accept MIC does not match the AppKey"):
        decrypt_join_accept(v.air, bytes([0x5A] * 16))


def test_join_accept_session_keys() -> None:
    v = V.JOIN_ACCEPTS[3]
    ja = decrypt_join_accept(v.air, v.app_key)
    (args, keys) = V.SESSION_KEYS[1]
    assert args[3] == 0x1234
    assert ja.session_keys(v.app_key, 0x1234) == keys


def test_cf_lists() -> None:
    eu = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]
    cf = cf_list_frequencies(eu)
    assert cf == V.JOIN_ACCEPTS[3].cf_list
    assert cf_list_decode(cf) == (0, eu)
    assert cf_list_decode(cf_list_frequencies(eu[:2])) == (0, eu[:2] + [0, 0, 0])
    mask = bytes([0xFF, 0, 0, 0, 0, 0, 0, 0, 0x01, 0])  # US915 sub-band 1 + channel 64
    cf = cf_list_channel_mask(mask)
    assert len(cf) == 16 and cf[15] == 1
    assert cf_list_decode(cf) == (1, mask)
    with pytest.raises(FrameError, match="a CFList holds 5"):
        cf_list_frequencies(eu + [868_100_000])
    with pytest.raises(FrameError, match="not a multiple of 100 Hz"):
        cf_list_frequencies([867_100_050])
    with pytest.raises(FrameError, match="must be 10"):
        cf_list_channel_mask(bytes(9))
    with pytest.raises(FrameError, match="CFListType 2"):
        cf_list_decode(bytes(15) + b"\x02")
    with pytest.raises(FrameError, match="must be 16"):
        cf_list_decode(bytes(15))


# --- refusals --------------------------------------------------------------------------------
_DATA_HEAD = V.h("40F17DBE4900020001")


@pytest.mark.parametrize(
    "phy,message",
    [
        (b"", "empty frame"),
        (bytes(256), "frame of 256 bytes: longer than 255"),
        (V.h("41") + bytes(22), "MHDR 41: Major 1 is not LoRaWAN R1"),
        (V.h("44") + bytes(22), "MHDR 44: RFU bits set"),
        (bytes(22), "join request of 22 bytes: must be 23"),
        (V.h("20") + bytes(20), "join accept of 21 bytes: must be 17 or 33 \\(with a CFList\\)"),
        (V.h("c0") + bytes(22), "rejoin request: LoRaWAN 1.1, not 1.0.x"),
        (V.h("e0") + bytes(22), "proprietary frame: not LoRaWAN data"),
        (V.h("40") + bytes(10), "data frame of 11 bytes: at least 12"),
        (V.h("4004030201050100") + bytes(4), "too short for its 5 bytes of FOpts"),
        (V.h("40040302010101000200") + bytes(4), "FPort 0 and FOpts"),
    ],
)
def test_parse_refusals(phy: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message) as e:
        parse(phy)
    assert isinstance(e.value, ValueError) and isinstance(e.value, MoteError)


def test_build_refusals() -> None:
    keys: dict[str, Any] = {"nwk_s_key": bytes(16), "app_s_key": bytes(16)}
    up = MType.UNCONFIRMED_UP
    with pytest.raises(FrameError, match="JOIN_REQUEST is not a data message type"):
        build_data(MType.JOIN_REQUEST, 1, 0, **keys)
    with pytest.raises(FrameError, match="at most 15 fit"):
        build_data(up, 1, 0, fopts=bytes(16), **keys)
    with pytest.raises(FrameError, match="an FRMPayload needs an FPort"):
        build_data(up, 1, 0, payload=b"x", **keys)
    with pytest.raises(FrameError, match="FPort 225: must be 0..224"):
        build_data(up, 1, 0, fport=225, **keys)
    with pytest.raises(FrameError, match="FOpts must be empty"):
        build_data(up, 1, 0, fport=0, fopts=b"\x02", **keys)
    with pytest.raises(FrameError, match="frame of 256 bytes"):
        build_data(up, 1, 0, fport=1, payload=bytes(243), **keys)
    assert len(build_data(up, 1, 0, fport=1, payload=bytes(242), **keys)) == 255
    with pytest.raises(FrameError, match="DevAddr 4294967296: must fit in 32 bits"):
        build_data(up, 1 << 32, 0, **keys)
    with pytest.raises(FrameError, match="FCnt -1"):
        build_data(up, 1, -1, **keys)
    with pytest.raises(FrameError, match="DevNonce 65536"):
        build_join_request(bytes(16), 1, 2, 0x10000)
    with pytest.raises(FrameError, match="RxDelay 16"):
        JoinAccept(1, 2, 3, rx_delay=16).encrypt(bytes(16))
    with pytest.raises(FrameError, match="RX1DRoffset"):
        JoinAccept(1, 2, 3, rx1_dr_offset=8).encrypt(bytes(16))
    with pytest.raises(FrameError, match="CFList of 15 bytes"):
        JoinAccept(1, 2, 3, cf_list=bytes(15)).encrypt(bytes(16))
    with pytest.raises(FrameError, match="not a join accept: DataFrame"):
        decrypt_join_accept(V.DATA[0].phy, bytes(16))
    f = parse(V.DATA[0].phy)
    assert isinstance(f, DataFrame)
    with pytest.raises(ValueError, match="does not end in the FCnt on air 2"):
        f.mic_ok(V.LP_NWK, 3)


# --- frame counters --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fcnt16,expected,full",
    [
        (0, 0, 0),
        (5, 0, 5),
        (5, 5, 5),
        (0xFFFF, 0x10000, 0x1FFFF),  # the 16 bits were seen already: next round
        (0x0001, 0xFFFF, 0x10001),  # rolled over on air
        (0x1234, 0x51240, 0x61234),
        (0x1234, 0x51234, 0x51234),
        (0x1233, 0x51234, 0x61233),  # a replay of the last frame: 65536 higher, MIC fails
    ],
)
def test_full_fcnt(fcnt16: int, expected: int, full: int) -> None:
    assert full_fcnt(fcnt16, expected) == full


def test_full_fcnt_refusals() -> None:
    with pytest.raises(FrameError, match="past 2\\^32"):
        full_fcnt(0, 0xFFFF0001)
    assert full_fcnt(0xFFFF, 0xFFFF0001) == 0xFFFFFFFF
    with pytest.raises(FrameError, match="FCnt 65536"):
        full_fcnt(0x10000, 0)


def test_a_replay_fails_its_mic() -> None:
    # The bench server expects FCnt 0x10003 after seeing 0x10002; the frame with 0x10002 again
    # is reconstructed as 0x20002 and its MIC no longer matches.
    nwk, app = bytes(range(16)), bytes(range(16, 32))
    phy = build_data(MType.UNCONFIRMED_UP, 0x26011234, 0x10002, nwk_s_key=nwk, app_s_key=app,
                     fport=1, payload=b"hi")  # fmt: skip
    f = parse(phy)
    assert isinstance(f, DataFrame)
    assert f.mic_ok(nwk, full_fcnt(f.fcnt, 0x10002))
    assert not f.mic_ok(nwk, full_fcnt(f.fcnt, 0x10003))


# --- round trips and the independent codec ---------------------------------------------------
_DATA_TYPES = [MType.UNCONFIRMED_UP, MType.UNCONFIRMED_DOWN, MType.CONFIRMED_UP,
               MType.CONFIRMED_DOWN]  # fmt: skip
_KEY = st.binary(min_size=16, max_size=16)


@st.composite
def data_frames(draw: st.DrawFn) -> dict[str, Any]:
    fport = draw(st.one_of(st.none(), st.integers(0, 224)))
    fopts = b"" if fport == 0 else draw(st.binary(max_size=15))
    payload = b"" if fport is None else draw(st.binary(max_size=200))
    return {
        "mtype": draw(st.sampled_from(_DATA_TYPES)),
        "dev_addr": draw(st.integers(0, 0xFFFFFFFF)),
        "fcnt": draw(st.integers(0, 0xFFFFFFFF)),
        "nwk_s_key": draw(_KEY),
        "app_s_key": draw(_KEY),
        "fport": fport,
        "payload": payload,
        "fopts": fopts,
        "fctrl": FCtrl(*(draw(st.booleans()) for _ in range(4))),
    }


@settings(max_examples=200, deadline=None)
@given(data_frames())
def test_data_frames_round_trip_and_the_oracle_decodes_them(
    loramsg: Any, d: dict[str, Any]
) -> None:
    phy = build_data(**d)
    f = parse(phy)
    assert isinstance(f, DataFrame)
    assert (f.mtype, f.dev_addr, f.fcnt, f.fport, f.fopts, f.fctrl) == (
        d["mtype"], d["dev_addr"], d["fcnt"] & 0xFFFF, d["fport"], d["fopts"], d["fctrl"]
    )  # fmt: skip
    assert f.mic_ok(d["nwk_s_key"], d["fcnt"])
    assert f.payload(d["nwk_s_key"], d["app_s_key"], d["fcnt"]) == d["payload"]
    # Semtech's codec: the frame is sane, its MIC verifies with the 32-bit counter, and the
    # FRMPayload decrypts (with NwkSKey on FPort 0) to what we put in.
    assert loramsg.sanity_check_frame(phy) == int(d["mtype"]) << 5
    m = loramsg.unpack_dataframe(phy, d["fcnt"], d["nwk_s_key"], d["app_s_key"])
    assert _unsigned(m["DevAddr"]) == d["dev_addr"]
    assert m["FCnt"] == d["fcnt"]
    assert m["FPort"] == (-1 if d["fport"] is None else d["fport"])
    assert m["FOpts"] == d["fopts"]
    assert m["FRMPayload"] == d["payload"]
    assert m["FCtrl"] & 0xF0 == d["fctrl"].byte(0)
    with pytest.raises(loramsg.VerifyError):
        loramsg.unpack_dataframe(phy, d["fcnt"], bytes(b ^ 1 for b in d["nwk_s_key"]))


@settings(max_examples=100, deadline=None)
@given(data_frames())
def test_we_decode_the_oracles_frames(loramsg: Any, d: dict[str, Any]) -> None:
    fctrl = d["fctrl"].byte(0)
    mhdr = int(d["mtype"]) << 5
    phy = loramsg.pack_dataframe(
        mhdr, _signed(d["dev_addr"]), fctrl, d["fcnt"], d["fopts"], d["fport"], d["payload"],
        d["nwk_s_key"], d["app_s_key"],
    )  # fmt: skip
    assert phy == build_data(**d)
    f = parse(phy)
    assert isinstance(f, DataFrame)
    assert f.mic_ok(d["nwk_s_key"], d["fcnt"])
    assert f.payload(d["nwk_s_key"], d["app_s_key"], d["fcnt"]) == d["payload"]


@settings(max_examples=100, deadline=None)
@given(
    app_key=_KEY,
    join_eui=st.integers(0, (1 << 64) - 1),
    dev_eui=st.integers(0, (1 << 64) - 1),
    dev_nonce=st.integers(0, 0xFFFF),
)
def test_join_requests_round_trip_and_the_oracle_verifies_them(
    loramsg: Any, app_key: bytes, join_eui: int, dev_eui: int, dev_nonce: int
) -> None:
    phy = build_join_request(app_key, join_eui, dev_eui, dev_nonce)
    f = parse(phy)
    assert isinstance(f, JoinRequest)
    assert (f.join_eui, f.dev_eui, f.dev_nonce) == (join_eui, dev_eui, dev_nonce)
    assert f.mic_ok(app_key)
    loramsg.verify_jreq(app_key, phy)  # raises VerifyError on a bad MIC
    m = loramsg.unpack_jreq(phy)
    eui = (1 << 64) - 1  # liblora's Eui.as_int() is signed
    assert (m["JoinEUI"].as_int() & eui, m["DevEUI"].as_int() & eui, m["DevNonce"]) == (
        join_eui, dev_eui, dev_nonce
    )  # fmt: skip
    with pytest.raises(loramsg.VerifyError):
        loramsg.verify_jreq(bytes(b ^ 1 for b in app_key), phy)


@settings(max_examples=100, deadline=None)
@given(
    app_key=_KEY,
    app_nonce=st.integers(0, 0xFFFFFF),
    net_id=st.integers(0, 0xFFFFFF),
    dev_addr=st.integers(0, 0xFFFFFFFF),
    rx1_dr_offset=st.integers(0, 7),
    rx2_dr=st.integers(0, 15),
    rx_delay=st.integers(0, 15),
    cf_list=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
    dev_nonce=st.integers(0, 0xFFFF),
)
def test_join_accepts_round_trip_and_the_oracle_decrypts_them(
    loramsg: Any, app_key: bytes, dev_nonce: int, **fields: Any
) -> None:
    ja = JoinAccept(**fields)
    air = ja.encrypt(app_key)
    back = decrypt_join_accept(air, app_key)
    assert back == JoinAccept(**fields, mic=back.mic)
    assert crypto.join_accept_ok(app_key, crypto.join_accept_decrypt(app_key, air))
    m = loramsg.unpack_jacc(app_key, air, dev_nonce)  # raises VerifyError on a bad MIC
    assert (m["AppNonce"], m["NetID"], _unsigned(m["DevAddr"])) == (
        fields["app_nonce"], fields["net_id"], fields["dev_addr"]
    )  # fmt: skip
    assert m["DLSettings"] == (fields["rx1_dr_offset"] << 4) | fields["rx2_dr"]
    assert m["RxDelay"] == fields["rx_delay"]
    assert m["CFList"] == fields["cf_list"]
    nwk, app = ja.session_keys(app_key, dev_nonce)
    assert nwk == loramsg.crypto.derive(app_key, dev_nonce, fields["app_nonce"],
                                        fields["net_id"], loramsg.KD_NwkSKey)  # fmt: skip
    assert app == loramsg.crypto.derive(app_key, dev_nonce, fields["app_nonce"],
                                        fields["net_id"], loramsg.KD_AppSKey)  # fmt: skip
