# `gc` as the boards' ports show it. The interpreter's own heap also holds the ROM, the shims and
# the ballast that hides the spare room, so its mem_alloc() would count them; here the heap is
# the board's (board.json micropython.heap_bytes): mem_alloc() + mem_free() == heap_bytes, as on
# a board. collect() returns None as on the ports (the unix port returns a count).
# The interpreter is 64-bit: user code has the board's number of GC blocks, each twice a board's
# block in bytes, so byte figures are the interpreter's divided by heap_scale (2).
# The ROM installs this module as sys.modules["gc"], so `import gc` in user code finds it.
import gc as _gc

import _simlink

_HEAP = _simlink.P["heap_bytes"]
_SCALE = _simlink.P.get("heap_scale", 1)

enable = _gc.enable
disable = _gc.disable
isenabled = _gc.isenabled


def collect():
    _gc.collect()


def mem_free():
    return _gc.mem_free() // _SCALE


def mem_alloc():
    return _HEAP - mem_free()


def threshold(amount=None):
    if amount is None:
        t = _gc.threshold()
        return t if t < 0 else t // _SCALE
    _gc.threshold(amount * _SCALE if amount >= 0 else amount)
