# A small log: levels, timestamps, a ring of recent entries that the app keeps in retained state
# (RTC memory) so it survives deep sleep, and a plain-text copy of each entry on the console.
#
#   from motekit import log
#   log.warning("sht4x: no answer")
#   log.entries()            # [[t, "W", "sht4x: no answer"], ...]  t: seconds since 2000
#
# Entries below the level are dropped; the ring keeps the newest CAPACITY entries and counts the
# ones it had to drop.
import time

from micropython import const

CAPACITY = const(24)
_LEVELS = "DIWE"  # debug, info, warning, error
_NAMES = ("debug", "info", "warning", "error")

_ring = []  # type: list
_dropped = 0
_level = 1
echo = True  # print each entry as a log-text line too


def set_level(name):
    global _level
    _level = _NAMES.index(name)


def restore(entries, dropped):
    # Entries kept across a deep sleep (from retained state), oldest first.
    global _ring, _dropped
    _ring = [e for e in entries if isinstance(e, list) and len(e) == 3][-CAPACITY:]
    _dropped = dropped


def entries():
    return _ring


def dropped():
    return _dropped


def clear():
    global _ring, _dropped
    _ring = []
    _dropped = 0


def trim(n):
    # Forget the n oldest entries (the retained-state encoder does this to fit RTC memory).
    global _ring, _dropped
    n = min(n, len(_ring))
    _ring = _ring[n:]
    _dropped += n


def _add(level, text):
    global _dropped
    if level < _level:
        return
    if len(_ring) >= CAPACITY:
        _ring.pop(0)
        _dropped += 1
    _ring.append([time.time(), _LEVELS[level], text])
    if echo:
        print("motekit: %s %s" % (_LEVELS[level], text))


def debug(text):
    _add(0, text)


def info(text):
    _add(1, text)


def warning(text):
    _add(2, text)


def error(text):
    _add(3, text)
