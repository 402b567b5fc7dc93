# Node configuration: /config.json, checked against schema.json (every key, its type, range,
# default, unit and meaning; the host tools read the same file from the repository). docs/config.md
# lists the keys.
#
#   from motekit import config
#   cfg, problems = config.load()          # every key present; bad values replaced by defaults
#   config.set(cfg, "sample_period", 300)  # validated, saved atomically, cfg updated
#   config.set(cfg, "thresholds.co2", 25)  # dotted keys reach into maps
#   config.get(cfg, "sample_period")
#   config.reset(cfg, "sample_period")     # back to the default, saved
#   config.set(cfg, "sample_period", 0)    # Invalid: sample_period: 0 is out of range 10..86400 s
#
# The schema is read from SCHEMA_PATH on each call and dropped again: it is not kept in RAM
# between wakes. Files without a "version" are version 1 (the foundation firmware's
# {"period_s": N, "host_wait_ms": M}); load() migrates them, set() saves version 2.
import json
import math

from motekit import store

VERSION = 2
PATH = "/config.json"
SCHEMA_PATH = "/lib/motekit/schema.json"

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_SENSOR_FIELDS = ("kind", "id", "bus", "addr", "options")
_ID_MAX = 16  # sensor ids: 1..16 of a-z, 0-9, _
_I2C_ADDR_MAX = 127  # 7-bit I2C addresses
_ROM_DIGITS = 16  # a 1-Wire ROM code: 64 bits as hex


class Invalid(ValueError):
    # A setting refused; the message names the key and what is allowed.
    pass


class UnknownKey(Invalid):
    # No such setting (or no such item of a map setting).
    pass


def entries():
    # The schema's key entries, freshly parsed (for `config list`).
    with open(SCHEMA_PATH) as f:
        return json.load(f)["keys"]


def _find(ents, key):
    for e in ents:
        if e["key"] == key:
            return e
    return None


def _entry(ents, key):
    # key or map.item -> (entry, item or "")
    top, dot, item = key.partition(".")
    e = _find(ents, top)
    if e is None or (dot and e["type"] != "map"):
        raise UnknownKey("%s: no such setting" % key)
    if dot and item not in e.get("keys", ()):
        raise UnknownKey("%s: no such quantity" % key)
    return e, item


# --- values ------------------------------------------------------------------------------------


def _num(name, v, kind, e):
    # kind "int" or "float"; the range is e's min/max, either of which may be absent.
    if type(v) is bool or not isinstance(v, (int, float)) or (kind == "int" and type(v) is not int):
        raise Invalid("%s: %r is not %s" % (name, v, "an integer" if kind == "int" else "a number"))
    out = v
    if kind == "float":
        out = float(v)
        if not math.isfinite(out):
            raise Invalid("%s: %r is not a finite number" % (name, v))
    lo = e.get("min")
    hi = e.get("max")
    unit = " " + e["unit"] if e.get("unit") else ""
    if lo is not None and hi is not None:
        if not lo <= out <= hi:
            raise Invalid("%s: %r is out of range %s..%s%s" % (name, v, lo, hi, unit))
    elif lo is not None and out < lo:
        raise Invalid("%s: %r is below %s%s" % (name, v, lo, unit))
    elif hi is not None and out > hi:
        raise Invalid("%s: %r is above %s%s" % (name, v, hi, unit))
    return out


def _str(name, v, choices):
    if not isinstance(v, str):
        raise Invalid("%s: %r is not a string" % (name, v))
    if choices and v not in choices:
        raise Invalid("%s: %r is not one of %s" % (name, v, ", ".join(choices)))
    return v


def _hex(name, v, digits):
    # "" (not set) or exactly `digits` hex digits, stored in lower case.
    if v == "":
        return v
    if not isinstance(v, str) or len(v) != digits or any(c not in _HEX_DIGITS for c in v):
        raise Invalid("%s: %r is not %d hex digits" % (name, v, digits))
    return v.lower()


def _sensor(name, s, e):
    # {"kind", "id"?, "bus"?, "addr"?, "options"?} -> a copy
    if not isinstance(s, dict):
        raise Invalid("%s: %r is not a map" % (name, s))
    for k in s:
        if k not in _SENSOR_FIELDS:
            raise Invalid("%s.%s: no such field" % (name, k))
    if "kind" not in s:
        raise Invalid("%s.kind: missing" % name)
    _str(name + ".kind", s["kind"], e["kinds"])
    if "id" in s:
        sid = s["id"]
        if (
            not isinstance(sid, str)
            or not 1 <= len(sid) <= _ID_MAX
            or any(c not in _ID_CHARS for c in sid)
        ):
            raise Invalid("%s.id: %r is not 1..%d of a-z, 0-9, _" % (name, sid, _ID_MAX))
    if "bus" in s:
        _str(name + ".bus", s["bus"], e["buses"])
    if "addr" in s:
        a = s["addr"]
        if type(a) is int:
            if not 0 <= a <= _I2C_ADDR_MAX:
                raise Invalid("%s.addr: %r is out of range 0..%d" % (name, a, _I2C_ADDR_MAX))
        elif isinstance(a, str):
            if len(a) != _ROM_DIGITS or any(c not in _HEX_DIGITS for c in a):
                raise Invalid(
                    "%s.addr: %r is not a 1-Wire ROM (%d hex digits)" % (name, a, _ROM_DIGITS)
                )
        else:
            raise Invalid("%s.addr: %r is not an I2C address or a 1-Wire ROM" % (name, a))
    if "options" in s and not isinstance(s["options"], dict):
        raise Invalid("%s.options: %r is not a map" % (name, s["options"]))
    return dict(s)


def _list(name, v, e):
    if not isinstance(v, list):
        raise Invalid("%s: %r is not a list" % (name, v))
    most = e.get("max_items")
    if most is not None and len(v) > most:
        raise Invalid("%s: %d items, at most %d" % (name, len(v), most))
    out = []
    seen: list = []  # str items, or sensor ids after defaulting to the kind
    for i, item in enumerate(v):
        where = "%s[%d]" % (name, i)
        if e["items"] == "sensor":
            item = _sensor(where, item, e)
            key = item.get("id") or item["kind"]
            if key in seen:
                raise Invalid(
                    "%s.id: %r is already used by %s[%d]" % (where, key, name, seen.index(key))
                )
        else:
            key = _str(where, item, e.get("choices"))
            if key in seen:
                raise Invalid("%s: %r is listed twice" % (where, key))
        seen.append(key)
        out.append(item)
    return out


def _map(name, v, e):
    if not isinstance(v, dict):
        raise Invalid("%s: %r is not a map" % (name, v))
    keys = e.get("keys")
    out = {}
    for k in v:
        if not isinstance(k, str) or (keys is not None and k not in keys):
            raise Invalid("%s.%s: no such quantity" % (name, k))
        out[k] = _num(name + "." + k, v[k], "float", e)
    return out


def _value(e, name, v):
    kind = e["type"]
    if kind == "int" or kind == "float":
        return _num(name, v, kind, e)
    if kind == "str":
        return _str(name, v, e.get("choices"))
    if kind == "hex":
        return _hex(name, v, e["digits"])
    if kind == "bool":
        if type(v) is not bool:
            raise Invalid("%s: %r is not true or false" % (name, v))
        return v
    if kind == "list":
        return _list(name, v, e)
    return _map(name, v, e)


def _cross(ents, key, v, cfg):
    # Keys ordered against another ("below": low_battery_v), checked both ways.
    for e in ents:
        other = e.get("below")
        if other is None:
            continue
        k = e["key"]
        if k == key and other in cfg and not v < cfg[other]:
            raise Invalid("%s: %r is not below %s (%r)" % (key, v, other, cfg[other]))
        if other == key and k in cfg and not cfg[k] < v:
            raise Invalid("%s: %r is not above %s (%r)" % (key, v, k, cfg[k]))


# --- the API ------------------------------------------------------------------------------------


def validate(key, value, cfg=None):
    # -> the value as stored (ints become floats for float keys); Invalid if refused. With cfg,
    # also the checks against other keys.
    ents = entries()
    e, item = _entry(ents, key)
    if item:
        return _num(key, value, "float", e)
    v = _value(e, key, value)
    if cfg is not None:
        _cross(ents, key, v, cfg)
    return v


def get(cfg, key):
    e, item = _entry(entries(), key)
    v = cfg[e["key"]]
    return v.get(item) if item else v


def set(cfg, key, value, path=PATH):
    # Validate, save the whole configuration, then update cfg; on Invalid or OSError nothing
    # changes.
    v = validate(key, value, cfg)
    top, _, item = key.partition(".")
    new = v
    if item:
        new = dict(cfg[top])
        new[item] = v
    out = dict(cfg)
    out[top] = new
    out["version"] = VERSION
    store.write_json(path, out)
    cfg[top] = new
    return v


def reset(cfg, key, path=PATH):
    e, item = _entry(entries(), key)
    default = e["default"][item] if item else e["default"]
    return set(cfg, key, default, path)


def _migrate(obj, name, problems):
    ver = obj.pop("version", 1)  # version 1 had no "version" key
    if type(ver) is not int or ver < 1:
        problems.append("%s: version %r is not a version, read as %d" % (name, ver, VERSION))
        ver = VERSION
    if ver == 1:
        # The foundation firmware's {"period_s": N, "host_wait_ms": M}; host_wait_ms is unchanged.
        if "period_s" in obj:
            period = obj.pop("period_s")
            if isinstance(period, float) and period == int(period):
                period = int(period)  # v1 took any number of seconds
            if "sample_period" not in obj:
                obj["sample_period"] = period
        ver = 2
    if ver > VERSION:
        problems.append("%s is version %d, newer than this firmware's %d" % (name, ver, VERSION))
    return obj


def load(path=PATH):
    # -> (cfg, problems). Never raises: whatever is wrong becomes a default and a problem string.
    problems = []
    try:
        ents = entries()
    except (OSError, ValueError, KeyError, TypeError) as ex:
        return {}, ["%s unreadable (%r): no settings" % (SCHEMA_PATH, ex)]
    name = path[path.rfind("/") + 1 :]
    obj, source = store.read_json(path)
    if source:
        problems.append("%s unreadable, using last good copy" % name)
    if source is None:
        # No copy parses. A node that never had a configuration is not a problem.
        if store.exists(path) or store.exists(path + ".bak") or store.exists(path + ".new"):
            problems.append("%s unreadable, using defaults" % name)
        obj = {}
    elif not isinstance(obj, dict):
        problems.append("%s is not a JSON object, using defaults" % name)
        obj = {}
    obj = _migrate(obj, name, problems)
    cfg = {}
    for e in ents:
        k = e["key"]
        if k in obj:
            try:
                cfg[k] = _value(e, k, obj.pop(k))
                continue
            except Invalid as ex:
                problems.append("%s (using the default)" % ex)
        cfg[k] = e["default"]
    for k in obj:
        problems.append("%s: no such setting (ignored)" % k)
    for e in ents:
        other = e.get("below")
        if other is not None and not cfg[e["key"]] < cfg[other]:
            problems.append(
                "%s: %r is not below %s (%r) (using the defaults of both)"
                % (e["key"], cfg[e["key"]], other, cfg[other])
            )
            cfg[e["key"]] = e["default"]
            cfg[other] = _find(ents, other)["default"]
    return cfg, problems
