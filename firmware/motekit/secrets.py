# Radio keys in /secrets.json ({"lorawan.appkey": "<hex>", ...}), written atomically. A key's
# value never leaves this module except to the uplink that asks for it: errors name the key, never
# its value, and the console shows fingerprints only (the first 8 hex digits of its SHA-256).
#
#   from motekit import secrets
#   fp = secrets.set("lorawan.appkey", "2b7e151628aed2a6abf7158809cf4f3c")  # -> fingerprint
#   secrets.fingerprints()                  # {"lorawan.appkey": "..."} for `mote info`
#   key = secrets.get("lorawan.appkey")     # bytes, or None when not provisioned
import binascii
import hashlib

from motekit import store
from motekit.config import Invalid

PATH = "/secrets.json"

# name -> key length in bytes
NAMES = {
    "lorawan.appkey": 16,
    "lorawan.nwkkey": 16,
    "lorawan.appskey": 16,
    "lorawan.nwkskey": 16,
    "bthome.bindkey": 16,
}


def _check_name(name):
    if not isinstance(name, str) or name not in NAMES:
        raise Invalid("%s: no such secret (one of %s)" % (name, ", ".join(sorted(NAMES))))


def _decode(name, hexvalue):
    # -> bytes; the messages describe the value, never show it.
    n = NAMES[name]
    if not isinstance(hexvalue, str):
        raise Invalid("%s: the key must be a hex string" % name)
    if len(hexvalue) != 2 * n:
        raise Invalid("%s: %d hex digits, must be %d (%d bytes)" % (name, len(hexvalue), 2 * n, n))
    try:
        return binascii.unhexlify(hexvalue)
    except ValueError:
        pass
    raise Invalid("%s: the key is not hex (0-9, a-f)" % name)


def fingerprint(key):
    return binascii.hexlify(hashlib.sha256(key).digest()).decode()[:8]


def _read():
    obj, _ = store.read_json(PATH)
    return obj if isinstance(obj, dict) else {}


def set(name, hexvalue):
    # Validate, save, return the fingerprint.
    _check_name(name)
    key = _decode(name, hexvalue)
    stored = _read()
    stored[name] = binascii.hexlify(key).decode()
    store.write_json(PATH, stored)
    return fingerprint(key)


def get(name):
    # -> the key's bytes, or None when it is not set (or its stored copy is damaged).
    _check_name(name)
    try:
        return _decode(name, _read().get(name))
    except Invalid:
        return None


def fingerprints():
    out = {}
    for name, hexvalue in _read().items():
        if name in NAMES:
            try:
                out[name] = fingerprint(_decode(name, hexvalue))
            except Invalid:
                pass
    return out
