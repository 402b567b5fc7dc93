# Per-sensor calibration in /cal.json: {"<sensor id>": {"<quantity>": [gain, offset]}}, applied
# to each filtered reading as value * gain + offset. Written atomically; a missing or damaged
# file (or entry) means no calibration.
#
#   from motekit import cal
#   c = cal.load()
#   cal.set(c, "sht4x", "temperature", 1.0, -0.4)   # validated, saved, c updated
#   cal.apply(c, "sht4x", "temperature", 21.7)      # -> 21.3
import math

from motekit import store
from motekit.config import Invalid

PATH = "/cal.json"

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
GAIN_MIN = 0.5
GAIN_MAX = 2.0
OFFSET_MIN = -100.0
OFFSET_MAX = 100.0
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_ID_MAX = 16


def _number(name, v, lo, hi):
    if type(v) is bool or not isinstance(v, (int, float)):
        raise Invalid("%s: %r is not a number" % (name, v))
    out = float(v)
    if not math.isfinite(out):
        raise Invalid("%s: %r is not a finite number" % (name, v))
    if not lo <= out <= hi:
        raise Invalid("%s: %r is out of range %s..%s" % (name, v, lo, hi))
    return out


def _check(sensor, quantity, gain, offset):
    # -> (gain, offset) as floats, or Invalid naming what is wrong.
    if (
        not isinstance(sensor, str)
        or not 1 <= len(sensor) <= _ID_MAX
        or any(c not in _ID_CHARS for c in sensor)
    ):
        raise Invalid("cal: %r is not a sensor id (1..%d of a-z, 0-9, _)" % (sensor, _ID_MAX))
    if quantity not in QUANTITIES:
        raise Invalid("cal %s.%s: no such quantity" % (sensor, quantity))
    where = "cal %s.%s " % (sensor, quantity)
    return (
        _number(where + "gain", gain, GAIN_MIN, GAIN_MAX),
        _number(where + "offset", offset, OFFSET_MIN, OFFSET_MAX),
    )


def load():
    # -> {sensor: {quantity: [gain, offset]}}; entries that fail the checks are left out.
    obj, _ = store.read_json(PATH)
    out: dict = {}
    if not isinstance(obj, dict):
        return out
    for sensor, quantities in obj.items():
        if not isinstance(quantities, dict):
            continue
        for quantity, pair in quantities.items():
            if not isinstance(pair, list) or len(pair) != 2:
                continue
            try:
                gain, offset = _check(sensor, quantity, pair[0], pair[1])
            except Invalid:
                continue
            out.setdefault(sensor, {})[quantity] = [gain, offset]
    return out


def set(cal, sensor, quantity, gain, offset):
    # Validate, save the whole table, then update cal; on Invalid or OSError nothing changes.
    gain, offset = _check(sensor, quantity, gain, offset)
    new = {}
    for s, quantities in cal.items():
        new[s] = dict(quantities)
    new.setdefault(sensor, {})[quantity] = [gain, offset]
    store.write_json(PATH, new)
    cal[sensor] = new[sensor]


def apply(cal, sensor, quantity, value):
    quantities = cal.get(sensor)
    pair = None if quantities is None else quantities.get(quantity)
    if pair is None:
        return value
    return value * pair[0] + pair[1]
