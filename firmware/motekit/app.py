# The minimal duty cycle: banner, host-wait window after a cold boot, one logged wake, deep
# sleep until the next period. The full sampling pipeline comes with the firmware-core issue.
#
#   from motekit import app
#   app.run()
#
# /config.json (optional): {"period_s": 60, "host_wait_ms": 3000}
# On ports with RTC memory (esp32) the wake counter survives deep sleep.
import json
import struct
import time

import machine
from micropython import const

from motekit import VERSION

_DEFAULT_PERIOD_S = const(60)
_DEFAULT_HOST_WAIT_MS = const(3000)
_CAUSES = ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET")


def reset_cause_name():
    cause = machine.reset_cause()
    for name in _CAUSES:
        if getattr(machine, name, None) == cause:
            return name
    return "UNKNOWN_%d" % cause


def _load(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _wake_count():
    # RTC memory holds a little-endian u32 wake counter; absent or foreign content restarts it.
    rtc = machine.RTC()
    if not hasattr(rtc, "memory"):
        return 0, None
    mem = rtc.memory()
    count = struct.unpack("<I", mem)[0] if len(mem) == 4 else 0
    return count, rtc


def run():
    board = _load("/board.json", {}).get("name", "unknown")
    cfg = _load("/config.json", {})
    period_ms = int(cfg.get("period_s", _DEFAULT_PERIOD_S) * 1000)
    cause = reset_cause_name()
    print("motekit %s board=%s reset=%s" % (VERSION, board, cause))
    if cause != "DEEPSLEEP_RESET":
        wait_ms = cfg.get("host_wait_ms", _DEFAULT_HOST_WAIT_MS)
        print("motekit: Ctrl-C within %d ms for the REPL" % wait_ms)
        try:
            time.sleep_ms(wait_ms)
        except KeyboardInterrupt:
            print("motekit: stopped by host")
            return
    count, rtc = _wake_count()
    count += 1
    if rtc is not None:
        rtc.memory(struct.pack("<I", count))
    t = time.localtime()
    print(
        "motekit: wake %d at %04d-%02d-%02d %02d:%02d:%02d, sleeping %d ms"
        % (count, t[0], t[1], t[2], t[3], t[4], t[5], period_ms)
    )
    machine.deepsleep(period_ms)
