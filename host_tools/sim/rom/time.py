# Virtual-board `time`: the node's clock follows the simulated clock of its supervisor.
#
# Simulated time runs at wall-clock rate while the node computes, and `speed` times faster while
# it sleeps (time.sleep*, machine.lightsleep/deepsleep): with --speed 3600 an hour of sleep passes
# in a second, while code, bus transfers and conversion times keep their real durations.
# Every sleep tells the supervisor how far it moved the clock, so both sides agree on "now".
# ticks_* wrap like on a 32-bit port (period 2**30); the wall clock starts at the board's RTC
# epoch and is set with machine.RTC().datetime().
import struct

import _simlink
from micropython import const

_rt = _simlink.builtin("time")
_clk = _simlink.P["clock"]
_speed = _clk["speed"]
_real_ref_ns = _clk["real_ref_ns"]
_sim_ref_ms = _clk["sim_ref_ms"]
_boot_ms = _clk["boot_sim_ms"]
_skip_ms = 0.0  # sleep time this boot has skipped ahead of the real clock

_EPOCH_2000 = const(946684800)  # 2000-01-01 in seconds since 1970
_PERIOD = const(1 << 30)
_MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)
_OP_SKIP = const(0x7A)  # 'z'


def sim_ms():
    # Milliseconds of simulated time since the supervisor's epoch (float).
    return (_rt.time_ns() - _real_ref_ns) / 1_000_000 + _sim_ref_ms + _skip_ms


def _wall_s():
    # Seconds since 1970 (the host's epoch, which the supervisor keeps the RTC in).
    return _clk["rtc_offset_s"] + sim_ms() / 1000


def set_wall(seconds):
    # Used by machine.RTC: make the wall clock read `seconds` (since 2000) now.
    _clk["rtc_offset_s"] += seconds + _EPOCH_2000 - _wall_s()


def ticks_ms():
    return int(sim_ms() - _boot_ms) & _MASK


def ticks_us():
    return int((sim_ms() - _boot_ms) * 1000) & _MASK


def ticks_cpu():
    return ticks_us()


def ticks_add(ticks, delta):
    return (ticks + delta) & _MASK


def ticks_diff(ticks1, ticks2):
    return ((ticks1 - ticks2 + _HALF) & _MASK) - _HALF


# The esp32 and rp2 ports count time from 2000-01-01 (MICROPY_EPOCH_IS_2000), the unix port
# from 1970: time() is 0 at the power-on date of both boards.


def time():
    return int(_wall_s()) - _EPOCH_2000


def time_ns():
    return int((_wall_s() - _EPOCH_2000) * 1_000_000_000)


def _sleep_ms(ms):
    global _skip_ms
    if ms <= 0:
        return
    if _speed != 1:
        skip = ms - ms / _speed
        _skip_ms += skip
        _simlink.notify(_OP_SKIP, struct.pack("<d", skip))
    _rt.sleep(ms / _speed / 1000)


def sleep(seconds):
    _sleep_ms(seconds * 1000)


def sleep_ms(ms):
    _sleep_ms(ms)


def sleep_us(us):
    _sleep_ms(us / 1000)


def gmtime(secs=None):
    return _rt.gmtime((time() if secs is None else secs) + _EPOCH_2000)


def localtime(secs=None):
    # Boards have no time zone: local time is UTC.
    return gmtime(secs)


def mktime(t):
    return _rt.mktime(t) - _EPOCH_2000
