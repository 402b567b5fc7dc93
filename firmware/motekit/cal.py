# Per-channel calibration from /cal.json (docs/config.md, "Calibration"): what every wake needs.
# A channel's filtered reading x becomes c0 + c1*x + c2*x^2 + c3*x^3 + k*(T - ref), T being the
# uncalibrated reading of the entry's temperature channel in the same sample. The file's rules,
# its writes and the `cal` console command are in calcmd.py, which rules() imports for one call
# and drops again: a wake keeps only the table and apply() in its heap.
#
#   from motekit import cal
#   table, problems = cal.load()      # {"sht41.humidity": ((c0, c1, c2), "sht41.temperature",
#                                     #  25.0, -0.05)}, and what is wrong with the file
#   uncal = cal.apply(table, values)  # values calibrated in place; -> channels left as they were
#   cal.rules(lambda calcmd: calcmd.clear("sht41.humidity"))   # calcmd.py for one call
import sys

from micropython import const

from motekit import store

PATH = "/cal.json"
VERSION = const(2)
ANY = "*"  # the table's key when the file is damaged: every channel is uncalibrated
_RULES = "motekit.calcmd"


def rules(fn):
    # -> fn(calcmd), with calcmd.py imported for the call and dropped again after it unless it
    # was loaded before: its bytecode (about 8 KB on the virtual ESP32) is then free for the
    # next `read`. What sys.modules and the package hold is all that keeps a module alive; its
    # names stay interned (MicroPython never frees a qstr), so a second import adds none.
    kept = _RULES in sys.modules
    if not kept:
        from motekit.sensors import unload_drivers

        unload_drivers()  # room for calcmd's bytecode in a heap a console session has used
    try:
        from motekit import calcmd

        return fn(calcmd)
    finally:
        if not kept:  # also after an import that ran out of memory half-way
            import motekit

            sys.modules.pop(_RULES, None)
            if hasattr(motekit, "calcmd"):
                delattr(motekit, "calcmd")


def load():
    # -> (table, problems). table: channel -> (poly tuple, temperature channel or None, ref, k),
    # or None for an entry present but invalid; {"*": None} when the file is damaged or of an
    # unknown version. Only what apply() needs: no id, at or ref text.
    table = {}  # type: dict
    if not (store.exists(PATH) or store.exists(PATH + ".bak") or store.exists(PATH + ".new")):
        return table, []
    return table, rules(lambda calcmd: calcmd.read_file(table)[2])


def apply(table, values):
    # Calibrate `values` (channel -> filtered reading) in place; -> the channels that have an
    # entry which could not be applied (invalid, or its temperature channel missing), or every
    # channel when the file is damaged. Those keep their uncalibrated value.
    if not table:
        return []
    if ANY in table:
        return list(values)
    uncal = []
    # Temperature terms use the uncalibrated T: taken before any channel changes.
    temps = None
    for e in table.values():
        if e is not None and e[1] is not None and e[1] in values:
            if temps is None:
                temps = {}
            temps[e[1]] = values[e[1]]
    for ch, e in table.items():
        if ch not in values:
            continue  # the sensor is missing from this sample
        if e is None or (e[1] is not None and (temps is None or e[1] not in temps)):
            uncal.append(ch)
            continue
        p = e[0]
        x = values[ch]
        i = len(p) - 1
        y = p[i]
        while i:  # Horner: c0 + x*(c1 + x*(c2 + x*c3))
            i -= 1
            y = y * x + p[i]
        if e[1] is not None:
            y += e[3] * (temps[e[1]] - e[2])
        values[ch] = y
    return uncal
