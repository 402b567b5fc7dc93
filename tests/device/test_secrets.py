# firmware/motekit/secrets.py on both virtual boards: keys are checked, stored atomically, shown
# as fingerprints only, and never echoed in an error.
import binascii
import hashlib
import json
import os

import _devtest
from motekit import config, secrets, store

secrets.PATH = "/secrets_test.json"
APPKEY = "2b7e151628aed2a6abf7158809cf4f3c"  # the AES-128 key of FIPS-197 appendix B
APPKEY_FP = "d4ffb8b7"  # hashlib.sha256(bytes.fromhex(APPKEY)).hexdigest()[:8] in CPython
BINDKEY = "00112233445566778899AABBCCDDEEFF"


def _clean():
    for suffix in ("", ".bak", ".new"):
        try:
            os.remove(secrets.PATH + suffix)
        except OSError:
            pass


def _sha256_fp(hexkey):
    return binascii.hexlify(hashlib.sha256(binascii.unhexlify(hexkey)).digest()).decode()[:8]


def _stored():
    with open(secrets.PATH) as f:
        return json.load(f)


def test_the_names_and_their_lengths():
    assert secrets.NAMES == {
        "lorawan.appkey": 16,
        "lorawan.nwkkey": 16,
        "lorawan.appskey": 16,
        "lorawan.nwkskey": 16,
        "bthome.bindkey": 16,
    }


def test_nothing_set_reads_as_nothing():
    _clean()
    assert secrets.fingerprints() == {}
    assert secrets.get("lorawan.appkey") is None


def test_set_returns_the_fingerprint_and_get_returns_the_bytes():
    _clean()
    w0 = store.writes
    fp = secrets.set("lorawan.appkey", APPKEY)
    assert fp == APPKEY_FP == _sha256_fp(APPKEY)
    fp2 = secrets.set("bthome.bindkey", BINDKEY)  # upper-case hex is fine
    assert fp2 == _sha256_fp(BINDKEY) == "a8faed6a"
    assert store.writes == w0 + 2
    assert secrets.get("lorawan.appkey") == binascii.unhexlify(APPKEY)
    assert secrets.get("bthome.bindkey") == bytes(range(0, 256, 17))
    assert secrets.get("lorawan.nwkkey") is None
    assert secrets.fingerprints() == {"lorawan.appkey": APPKEY_FP, "bthome.bindkey": fp2}
    assert _stored() == {"lorawan.appkey": APPKEY, "bthome.bindkey": BINDKEY.lower()}
    # A second set replaces the key.
    assert secrets.set("lorawan.appkey", BINDKEY) == fp2
    assert secrets.get("lorawan.appkey") == binascii.unhexlify(BINDKEY)
    _clean()


def test_refusals_name_the_key_and_never_echo_the_value():
    _clean()
    secrets.set("lorawan.appkey", APPKEY)
    w0 = store.writes
    near = "0f1e2d3c4b5a69788796a5b4c3d2e1f"  # 31 digits
    not_hex = "zz7e151628aed2a6abf7158809cf4f3c"
    cases = (
        ("lorawan.nwkkey", not_hex, "lorawan.nwkkey: the key is not hex (0-9, a-f)"),
        ("lorawan.nwkkey", near, "lorawan.nwkkey: 31 hex digits, must be 32 (16 bytes)"),
        ("lorawan.nwkkey", near + "00", "lorawan.nwkkey: 33 hex digits, must be 32 (16 bytes)"),
        ("lorawan.nwkkey", 1234, "lorawan.nwkkey: the key must be a hex string"),
        ("lorawan.nwkkey", b"\x00" * 16, "lorawan.nwkkey: the key must be a hex string"),
    )
    for name, value, message in cases:
        e = _devtest.raises(ValueError, secrets.set, name, value)
        assert isinstance(e, config.Invalid)
        assert str(e) == message, str(e)
        assert str(value) not in str(e) and repr(value) not in str(e)
        assert "%r" % (e.args,) == "(%r,)" % message  # nothing else rides in the exception
    e = _devtest.raises(ValueError, secrets.set, "wifi.password", APPKEY)
    assert str(e).startswith("wifi.password: no such secret (one of bthome.bindkey, lorawan")
    assert APPKEY not in str(e)
    _devtest.raises(ValueError, secrets.get, "wifi.password")
    # Nothing was written, the stored key is untouched.
    assert store.writes == w0
    assert _stored() == {"lorawan.appkey": APPKEY}
    _clean()


def test_damaged_entries_are_ignored():
    _clean()
    with open(secrets.PATH, "w") as f:
        json.dump({"lorawan.appkey": "xyz", "bthome.bindkey": BINDKEY, "other": APPKEY}, f)
    assert secrets.fingerprints() == {"bthome.bindkey": _sha256_fp(BINDKEY)}
    assert secrets.get("lorawan.appkey") is None
    with open(secrets.PATH, "w") as f:
        f.write("[1, 2]")
    assert secrets.fingerprints() == {}
    assert secrets.set("lorawan.appkey", APPKEY) == APPKEY_FP  # a fresh file replaces it
    assert _stored() == {"lorawan.appkey": APPKEY}
    _clean()
