"""host_tools.lorawan.crypto: RFC 4493's AES-CMAC examples and published LoRaWAN frames
(tests/host/lwvectors.py names the sources); the node's firmware/motekit/lwcrypto.py, run under
MicroPython, gives the same bytes for a few hundred random inputs; and Semtech's Basic MAC
tooling (PyPI liblora, on pycryptodome: no code shared with either of ours) agrees on random
inputs too."""

import json
import random
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import lwvectors as V
import pytest

from host_tools.lorawan import crypto

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def semtech() -> ModuleType:
    """liblora's loracrypto.crypto (Semtech Basic MAC), the independent oracle."""
    try:
        from loracrypto import crypto as oracle
    except ImportError:
        pytest.fail("the LoRaWAN oracle is missing: liblora==0.0.3 is a dev dependency")
    return oracle  # type: ignore[no-any-return]


# --- published vectors -----------------------------------------------------------------------
@pytest.mark.parametrize("n", sorted(V.RFC4493_TAGS))
def test_rfc4493_examples(n: int) -> None:
    assert crypto.aes_cmac(V.RFC4493_KEY, V.RFC4493_MSG[:n]) == V.RFC4493_TAGS[n]
    assert crypto.mic(V.RFC4493_KEY, V.RFC4493_MSG[:n]) == V.RFC4493_TAGS[n][:4]


@pytest.mark.parametrize("v", V.DATA, ids=lambda v: v.source)
def test_published_data_frames(v: V.Data) -> None:
    mic = crypto.data_mic(v.nwk_s_key, v.dev_addr, v.fcnt, v.uplink, v.phy[:-4])
    assert mic == v.phy[-4:]
    # the other direction, or the counter 65536 higher, is another MIC
    assert crypto.data_mic(v.nwk_s_key, v.dev_addr, v.fcnt, not v.uplink, v.phy[:-4]) != mic
    assert crypto.data_mic(v.nwk_s_key, v.dev_addr, v.fcnt + 0x10000, v.uplink, v.phy[:-4]) != mic
    if v.app_s_key is not None:
        start = 9 + len(v.fopts)
        frm = v.phy[start:-4]
        assert crypto.frm_crypt(v.app_s_key, v.dev_addr, v.fcnt, v.uplink, frm) == v.plain
        assert crypto.frm_crypt(v.app_s_key, v.dev_addr, v.fcnt, v.uplink, v.plain) == frm


@pytest.mark.parametrize("v", V.JOIN_REQUESTS, ids=lambda v: v.source)
def test_published_join_requests(v: V.JoinRequest) -> None:
    assert crypto.join_request_mic(v.app_key, v.phy[:-4]) == v.phy[-4:]
    assert crypto.join_request_mic(bytes(16), v.phy[:-4]) != v.phy[-4:]


@pytest.mark.parametrize("v", V.JOIN_ACCEPTS, ids=lambda v: v.source)
def test_published_join_accepts(v: V.JoinAccept) -> None:
    plain = crypto.join_accept_decrypt(v.app_key, v.air)
    assert plain == v.plain
    assert crypto.join_accept_ok(v.app_key, plain)
    assert crypto.join_accept_mic(v.app_key, plain[:-4]) == plain[-4:]
    assert crypto.join_accept_encrypt(v.app_key, plain) == v.air
    wrong = crypto.join_accept_decrypt(bytes([0xFF] * 16), v.air)
    assert not crypto.join_accept_ok(bytes([0xFF] * 16), wrong)


def test_join_accept_mic_in_clear() -> None:
    assert crypto.join_accept_ok(V.LP_APP_KEY, V.LP_JOIN_ACCEPT_PLAIN)
    assert not crypto.join_accept_ok(V.LP_APP_KEY, V.LP_JOIN_ACCEPT_BAD)


@pytest.mark.parametrize("args,keys", V.SESSION_KEYS)
def test_published_session_keys(args: tuple[Any, ...], keys: tuple[bytes, bytes]) -> None:
    assert crypto.session_keys(*args) == keys


def test_bad_sizes_are_refused() -> None:
    k = bytes(16)
    with pytest.raises(ValueError, match="16 bytes, not 15"):
        crypto.aes_cmac(bytes(15), b"")
    with pytest.raises(ValueError, match="19 bytes"):
        crypto.join_request_mic(k, bytes(23))
    with pytest.raises(ValueError, match="17 or 33 bytes, not 20"):
        crypto.join_accept_decrypt(k, bytes(20))
    with pytest.raises(ValueError, match="17 or 33"):
        crypto.join_accept_encrypt(k, bytes(16))
    with pytest.raises(ValueError, match="13 or 29"):
        crypto.join_accept_mic(k, bytes(17))
    with pytest.raises(ValueError, match="3 bytes"):
        crypto.session_keys(k, bytes(4), bytes(3), 0)
    with pytest.raises(ValueError, match="DevNonce"):
        crypto.session_keys(k, bytes(3), bytes(3), -1)
    with pytest.raises(ValueError, match="fcnt"):
        crypto.frm_crypt(k, 0, 1 << 32, True, b"x")
    with pytest.raises(ValueError, match="dev_addr"):
        crypto.data_mic(k, -1, 0, True, b"x")
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.frm_crypt(bytes(8), 0, 0, True, b"")  # even with nothing to encrypt
    with pytest.raises(ValueError, match="255"):
        crypto.data_mic(k, 0, 0, True, bytes(256))


# --- the node's implementation and an independent one ----------------------------------------
def _random_cases(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)

    def raw(k: int) -> str:
        return rnd.randbytes(k).hex()

    cases = []
    for i in range(n):
        length = i % 70 if i < 140 else rnd.randrange(0, 243)  # every size 0..69, then any
        cases.append(
            {
                "key": raw(16),
                "key2": raw(16),
                "msg": raw(length),
                "addr": rnd.getrandbits(32),
                "fcnt": rnd.choice((0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF, rnd.getrandbits(32))),
                "up": rnd.random() < 0.5,
                "jr": raw(19),
                "ja": raw(rnd.choice((17, 33))),
                "nonce": raw(3),
                "netid": raw(3),
                "devnonce": rnd.getrandbits(16),
            }
        )
    return cases


def _host_results(c: dict[str, Any]) -> list[str]:
    h = bytes.fromhex
    key, key2, msg = h(c["key"]), h(c["key2"]), h(c["msg"])
    nwk, app = crypto.session_keys(key, h(c["nonce"]), h(c["netid"]), c["devnonce"])
    return [
        crypto.aes_cmac(key, msg).hex(),
        crypto.mic(key2, msg).hex(),
        crypto.data_mic(key, c["addr"], c["fcnt"], c["up"], msg).hex(),
        crypto.frm_crypt(key2, c["addr"], c["fcnt"], c["up"], msg).hex(),
        crypto.join_request_mic(key, h(c["jr"])).hex(),
        crypto.join_accept_decrypt(key, h(c["ja"])).hex(),
        crypto.join_accept_encrypt(key, h(c["ja"])).hex(),
        nwk.hex(),
        app.hex(),
    ]


# The same calls in MicroPython, one line of hex per case.
_NODE_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[2])
from motekit import lwcrypto as L
h = bytes.fromhex
with open(sys.argv[1]) as f:
    cases = json.load(f)
for c in cases:
    key, key2, msg = h(c["key"]), h(c["key2"]), h(c["msg"])
    nwk, app = L.session_keys(key, h(c["nonce"]), h(c["netid"]), c["devnonce"])
    print(" ".join(x.hex() for x in (
        L.aes_cmac(key, msg),
        L.mic(key2, msg),
        L.data_mic(key, c["addr"], c["fcnt"], c["up"], msg),
        L.frm_crypt(key2, c["addr"], c["fcnt"], c["up"], msg),
        L.join_request_mic(key, h(c["jr"])),
        L.join_accept_decrypt(key, h(c["ja"])),
        L.join_accept_encrypt(key, h(c["ja"])),
        nwk,
        app,
    )))
"""


def test_node_and_host_agree_on_random_inputs(tmp_path: Path) -> None:
    cases = _random_cases(300, seed=6)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "node.py").write_text(_NODE_SCRIPT)
    micropython = Path(sys.executable).parent / "micropython"
    proc = subprocess.run(
        [
            str(micropython),
            str(tmp_path / "node.py"),
            str(tmp_path / "cases.json"),
            str(REPO / "firmware"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases)
    for c, line in zip(cases, lines, strict=True):
        assert line.split(" ") == _host_results(c), c


def _signed(v: int) -> int:
    # liblora packs DevAddr as a signed 32-bit int
    return struct.unpack("<i", struct.pack("<I", v))[0]


def test_semtech_basic_mac_agrees_on_random_inputs(semtech: Any) -> None:
    for c in _random_cases(300, seed=1006):
        h = bytes.fromhex
        key, msg, addr, fcnt = h(c["key"]), h(c["msg"]), c["addr"], c["fcnt"]
        dndir = 0 if c["up"] else 1
        # calcMic/calcMicJoin MIC all but the last 4 bytes (the MIC's place) of their pdu
        want = struct.pack("<i", semtech.calcMic(key, _signed(addr), fcnt, dndir, msg + bytes(4)))
        assert crypto.data_mic(key, addr, fcnt, c["up"], msg) == want
        assert crypto.frm_crypt(key, addr, fcnt, c["up"], msg) == semtech.cipher(
            key, _signed(addr), fcnt, dndir, msg
        )
        jr = h(c["jr"])
        assert crypto.join_request_mic(key, jr) == struct.pack(
            "<i", semtech.calcMicJoin(key, jr + bytes(4))
        )
        ja = h(c["ja"])
        assert crypto.join_accept_encrypt(key, ja) == ja[:1] + semtech.decrypt(key, ja[1:])
        app_nonce = int.from_bytes(h(c["nonce"]), "little")
        net_id = int.from_bytes(h(c["netid"]), "little")
        nwk, app = crypto.session_keys(key, h(c["nonce"]), h(c["netid"]), c["devnonce"])
        assert nwk == semtech.derive(key, c["devnonce"], app_nonce, net_id, 1)
        assert app == semtech.derive(key, c["devnonce"], app_nonce, net_id, 2)
