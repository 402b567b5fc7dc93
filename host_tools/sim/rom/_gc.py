# `gc` as the boards' ports show it. The interpreter's own heap also holds the ROM, the shims and
# the ballast that hides the spare room, so its mem_alloc() would count them; here the heap is
# the board's (board.json micropython.heap_bytes): mem_alloc() + mem_free() == heap_bytes, as on
# a board. collect() returns None as on the ports (the unix port returns a count).
# The ROM installs this module as sys.modules["gc"], so `import gc` in user code finds it.
import gc as _gc

import _simlink

_HEAP = _simlink.P["heap_bytes"]

enable = _gc.enable
disable = _gc.disable
isenabled = _gc.isenabled
mem_free = _gc.mem_free
threshold = _gc.threshold


def collect():
    _gc.collect()


def mem_alloc():
    return _HEAP - _gc.mem_free()
