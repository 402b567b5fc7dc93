# The /cal.json rules and writes, and the console's `cal` command (docs/protocol.md, "Commands":
# get, set, clear, ident, frc). Imported for one call through cal.rules() (by cal.load() and the
# `cal` command) and dropped again, so neither wakes nor the console keep it in their heap.
# /cal.json version 2 (docs/config.md):
#   {"version": 2, "entries": {"sht41.humidity": {"poly": [c0, c1, c2],
#     "temp": {"ch": "sht41.temperature", "ref": 25.0, "k": -0.05},
#     "id": "c20261121T101500Z-3f2a", "at": "2026-11-21T10:15:00Z", "ref": "...", "rev": 3}}}
# A version 1 file ({sensor: {quantity: [gain, offset]}}, no "version") is read as poly
# [offset, gain]; the next write converts it.
#
#   from motekit import calcmd
#   calcmd.check("sht41.humidity", {"poly": [-1.2, 1.03]})  # the entry to store, or Invalid
#   calcmd.set("sht41.humidity", {"poly": [-1.2, 1.03], "id": "c2026...", "at": "...", "ref": ""})
#   calcmd.clear("sht41.humidity")                 # -> True when there was an entry
#   version, entries, problems = calcmd.read_file()
#   calcmd.handle(app, {"cmd": "cal", "op": "ident", "sensor": "sht41"})
#   # -> {"sensor": "sht41", "kind": "sht4x", "serial": "11a25c3d"}
import math

from micropython import const

from motekit import cal, log, store
from motekit.config import Invalid
from motekit.sensors import Sensors, sensor_id, unload_drivers

# The quantities sensors report; the same names as the thresholds map in schema.json.
QUANTITIES = (
    "temperature",
    "humidity",
    "pressure",
    "co2",
    "voltage",
    "current",
    "power",
    "moisture",
)
_POLY_MAX = const(4)  # c0..c3: up to a cubic
_COEF_MAX = 1e6
_K_MAX = 1e3
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_ID_MAX = const(16)
# Text fields the host sets: name -> the most characters kept.
_TEXTS = (("id", 40), ("at", 24), ("ref", 64))
_FIELDS = ("poly", "temp", "id", "at", "ref", "rev")
_TEMP_FIELDS = ("ch", "ref", "k")

_OPS = ("get", "set", "clear", "ident", "frc")
# Sensirion SCD4x datasheet, "perform_forced_recalibration": the reference is the CO2 of the
# air the sensor measured; outdoor air (about 420 ppm) up to a room's usual levels.
_FRC_MIN_PPM = const(400)
_FRC_MAX_PPM = const(2000)
# kind -> the chip's serial number in hex, all its digits (SHT4x: 32 bits; SCD41: 48 bits).
_SERIAL_HEX = {"sht4x": "%08x", "scd41": "%012x"}


def _number(name, v, limit=None, limit_text=""):
    # A finite number (not a bool) as a float, within -limit..limit; else Invalid naming it.
    if type(v) is bool or not isinstance(v, (int, float)):
        raise Invalid("%s: %r is not a number" % (name, v))
    out = float(v)
    if not math.isfinite(out):
        raise Invalid("%s: %r is not a finite number" % (name, v))
    if limit is not None and not -limit <= out <= limit:
        raise Invalid("%s: %r is out of range -%s..%s" % (name, v, limit_text, limit_text))
    return out


def channel_problem(ch):
    # None for a good channel name ("<sensor id>.<quantity>"), else what is wrong with it.
    if not isinstance(ch, str) or ch.count(".") != 1:
        return "%r is not a channel (<sensor id>.<quantity>)" % (ch,)
    sid, q = ch.split(".")
    if not 1 <= len(sid) <= _ID_MAX or any(c not in _ID_CHARS for c in sid):
        return "%r is not a sensor id (1..%d of a-z, 0-9, _)" % (sid, _ID_MAX)
    if q not in QUANTITIES:
        return "%r is not a quantity" % q
    return None


def check(channel, entry):
    # -> the entry as stored (floats, known fields only), or Invalid naming the field.
    bad = channel_problem(channel)
    if bad is not None:
        raise Invalid("cal: " + bad)
    where = "cal " + channel
    if not isinstance(entry, dict):
        raise Invalid(where + ": the entry must be an object")
    for key in entry:
        if key not in _FIELDS:
            raise Invalid("%s: no field %r" % (where, key))
    poly = entry.get("poly")
    if not isinstance(poly, list) or not 1 <= len(poly) <= _POLY_MAX:
        raise Invalid("%s poly: must be a list of 1..%d numbers" % (where, _POLY_MAX))
    out = {}  # type: dict
    out["poly"] = [
        _number("%s poly[%d]" % (where, i), c, _COEF_MAX, "1e6") for i, c in enumerate(poly)
    ]
    t = entry.get("temp")
    if t is not None:
        if not isinstance(t, dict):
            raise Invalid(where + " temp: must be an object with ch, ref and k")
        for key in t:
            if key not in _TEMP_FIELDS:
                raise Invalid("%s temp: no field %r" % (where, key))
        tch = t.get("ch")
        bad = channel_problem(tch)
        if bad is not None:
            raise Invalid("%s temp.ch: %s" % (where, bad))
        if tch == channel:
            raise Invalid(where + " temp.ch: must be another channel than its own")
        if "ref" not in t or "k" not in t:
            raise Invalid(where + " temp: must be an object with ch, ref and k")
        out["temp"] = {
            "ch": tch,
            "ref": _number(where + " temp.ref", t["ref"]),
            "k": _number(where + " temp.k", t["k"], _K_MAX, "1e3"),
        }
    for key, most in _TEXTS:
        v = entry.get(key)
        if v is None:
            continue
        if not isinstance(v, str) or len(v) > most:
            raise Invalid("%s %s: must be text of at most %d characters" % (where, key, most))
        out[key] = v
    rev = entry.get("rev")
    if rev is not None:
        if type(rev) is not int or rev < 1:
            raise Invalid("%s rev: %r is not a positive integer" % (where, rev))
        out["rev"] = rev
    return out


def read_file(table=None):
    # -> (version, entries, problems): the file's version (2 when there is none; 1 for a
    # version 1 file, whose entries are given in the version 2 form; None when no copy parses
    # or it is not a calibration table), its entries as stored, and what is wrong with it.
    # With a dict for `table`, fills it as cal.load() describes.
    obj, source = store.read_json(cal.PATH)
    problems = []
    if source:
        problems.append(cal.PATH + " unreadable, using last good copy")
    version = None
    entries = {}
    if obj is None:
        # No copy parses. A node that never had a calibration is not a problem.
        if store.exists(cal.PATH) or store.exists(cal.PATH + ".bak"):
            problems.append(cal.PATH + " unreadable: no calibration applied")
    elif not isinstance(obj, dict):
        problems.append(cal.PATH + " is not a calibration table: no calibration applied")
    elif "version" not in obj:
        # Version 1: [gain, offset] becomes poly [offset, gain]; anything else is kept as it
        # is, for check() to refuse and `cal get` to show.
        version = 1
        for sid, quantities in obj.items():
            if not isinstance(quantities, dict):
                problems.append("cal %s: not a table of quantities (version 1 file)" % sid)
                continue
            for q, pair in quantities.items():
                ok = isinstance(pair, list) and len(pair) == 2
                entries[sid + "." + q] = {"poly": [pair[1], pair[0]]} if ok else pair
    elif obj["version"] != cal.VERSION:
        version = obj["version"]
        problems.append(
            "%s version %r is unknown to this firmware: no calibration applied"
            % (cal.PATH, version)
        )
    elif not isinstance(obj.get("entries"), dict):
        problems.append(cal.PATH + " has no entries object: no calibration applied")
    else:
        version = cal.VERSION
        entries = obj["entries"]
    if obj is None and not problems:
        version = cal.VERSION  # no file: an empty table
    if version not in (1, cal.VERSION):
        if table is not None:  # damaged or unknown: every channel is flagged
            table[cal.ANY] = None
        return version, entries, problems
    for ch, e in entries.items():
        try:
            e = check(ch, e)
        except Invalid as err:
            problems.append(str(err))
            if table is not None:
                table[ch] = None
            continue
        if table is not None:
            t = e.get("temp")
            if t is None:
                table[ch] = (tuple(e["poly"]), None, 0.0, 0.0)
            else:
                table[ch] = (tuple(e["poly"]), t["ch"], t["ref"], t["k"])
    return version, entries, problems


def _entries():
    # The entries to write back; a file of an unknown version is never overwritten, a damaged
    # one is replaced by the copy that parses (or by a new table).
    version, entries, _ = read_file()
    if version is not None and version not in (1, cal.VERSION):
        raise Invalid(
            "cal: %s version %r is unknown to this firmware: not overwritten" % (cal.PATH, version)
        )
    return entries


def set(channel, entry):
    # Validate, then save; -> the stored entry, with rev = the channel's previous rev + 1 (1
    # for a new one). On Invalid or OSError nothing changes. A version 1 file is converted.
    new = check(channel, entry)
    entries = _entries()
    old = entries.get(channel)
    rev = old.get("rev") if isinstance(old, dict) else None
    new["rev"] = rev + 1 if type(rev) is int and rev > 0 else 1
    entries[channel] = new
    store.write_json(cal.PATH, {"version": cal.VERSION, "entries": entries})
    return new


def clear(channel):
    # Remove a channel's entry; -> True when there was one (and the file was written).
    if not isinstance(channel, str):
        raise Invalid("cal: %r is not a channel (<sensor id>.<quantity>)" % (channel,))
    entries = _entries()
    if channel not in entries:
        return False
    del entries[channel]
    store.write_json(cal.PATH, {"version": cal.VERSION, "entries": entries})
    return True


def handle(app, req):
    # The `cal` request's reply data, or console.Refused. (The console is not loaded when
    # cal.load() imports this module on a wake: imported here.)
    from motekit.console import Refused

    op = req.get("op")
    if op not in _OPS:
        raise Refused("bad_args", "op must be one of %s" % ", ".join(_OPS))
    if op == "get":
        version, entries, problems = read_file()
        return {"version": version, "entries": entries, "problems": problems}
    if op == "set" or op == "clear":
        ch = req["channel"]
        try:
            if op == "set":
                out = {"channel": ch, "entry": set(ch, req["entry"])}
            else:
                out = {"channel": ch, "removed": clear(ch)}
        except Invalid as e:
            raise Refused("bad_value", str(e)) from None
        app.calibrated()
        log.info("cal %s %s" % (ch, op))
        return out
    sid = req["sensor"]
    entry = None
    for candidate in app.cfg["sensors"]:
        if sensor_id(candidate) == sid:
            entry = candidate
    if entry is None:
        raise Refused("bad_key", "no sensor %r in the config" % (sid,))
    kind = entry["kind"]
    ppm = req.get("ppm")
    if op == "frc":
        if kind != "scd41":
            raise Refused("bad_args", "%s is a %s: frc is for an scd41" % (sid, kind))
        if type(ppm) is bool or not isinstance(ppm, (int, float)):
            raise Refused("bad_args", "ppm must be a number")
        if not _FRC_MIN_PPM <= ppm <= _FRC_MAX_PPM:
            raise Refused(
                "bad_value", "ppm: %r is out of range %d..%d" % (ppm, _FRC_MIN_PPM, _FRC_MAX_PPM)
            )
    # Only this sensor, powered for this request and off again whatever happens.
    hub = Sensors(app.board, [entry], app.feed)
    try:
        hub.power_on()
        dev = (hub._devs or {}).get(sid)
        if dev is None or isinstance(dev, str):
            raise Refused("failed", "%s: %s" % (sid, dev))
        if op == "ident":
            return {"sensor": sid, "kind": kind, "serial": _serial(kind, dev)}
        # FRC needs a measurement since power-up, in the mode the sensor is used in.
        s = hub.sample()
        if sid in s["errors"]:
            raise Refused("failed", "%s: %s" % (sid, s["errors"][sid]))
        try:
            correction = dev.forced_recalibration(ppm)
            dev.persist_settings()
        except (OSError, ValueError, RuntimeError) as e:
            raise Refused("failed", "%s: %s" % (sid, e)) from None
    finally:
        hub.power_off()
        unload_drivers()
    log.info("cal %s frc at %s ppm: corrected by %d ppm" % (sid, ppm, correction))
    return {"sensor": sid, "reference_ppm": ppm, "correction_ppm": correction}


def _serial(kind, dev):
    # The chip's serial number in hex (a DS18B20's ROM code), or None for a chip without one.
    rom = getattr(dev, "rom", None)
    if rom is not None:
        return rom.hex()
    n = getattr(dev, "serial_number", None)
    if n is None:
        return None
    return _SERIAL_HEX.get(kind, "%x") % n
