# State that must survive deep sleep: counters, last reported values, the batch, timing, the log
# ring. On boards with RTC memory (board.json sleep.rtc_memory_bytes > 0, the ESP32 family) it
# lives there behind a magic and a CRC-32, so a power loss or a foreign image is detected, never
# misread. Boards without (rp2) do not deep sleep: the firmware stays in lightsleep and the state
# simply stays in RAM; only the crash counter, which must survive the watchdog resets that end a
# crash loop, goes to a small file, written at most twice per boot.
#
#   r = Retained(board["sleep"]["rtc_memory_bytes"])
#   st = r.load()        # dict, or None after power loss / CRC mismatch (r.problem says which)
#   r.save(st)           # trims the oldest log entries until it fits
import binascii
import json
import struct

import machine
from micropython import const

from motekit import log

_MAGIC = b"MKR1"
_HDR = const(10)  # magic, u16 length, u32 crc
_CRASH_FILE = "/crash.json"

_ram = None  # the RAM backend's state: survives lightsleep, not a reset


class Retained:
    def __init__(self, rtc_bytes):
        self.capacity = rtc_bytes
        self.problem = None
        self._rtc = machine.RTC() if rtc_bytes else None
        self._crashes = None

    def load(self):
        self.problem = None
        if self._rtc is None:
            if _ram is None:
                self.problem = "empty"
            return _ram
        mem = self._rtc.memory()
        if len(mem) < _HDR or mem[:4] != _MAGIC:
            self.problem = "empty"
            return None
        size, crc = struct.unpack_from("<HI", mem, 4)
        body = mem[_HDR : _HDR + size]
        if len(body) != size or binascii.crc32(body) & 0xFFFFFFFF != crc:
            self.problem = "crc"
            return None
        try:
            st = json.loads(body)
        except ValueError:
            self.problem = "crc"
            return None
        return st if isinstance(st, dict) else None

    def save(self, st):
        global _ram
        st["log"] = log.entries()
        st["drop"] = log.dropped()
        if self._rtc is None:
            _ram = st
            return
        while True:
            body = json.dumps(st).encode()
            if len(body) + _HDR <= self.capacity or not st["log"]:
                break
            log.trim(max(1, len(st["log"]) // 4))
            st["log"] = log.entries()
            st["drop"] = log.dropped()
        if len(body) + _HDR > self.capacity:
            raise ValueError(
                "retained state is %d bytes, RTC memory %d" % (len(body), self.capacity)
            )
        crc = binascii.crc32(body) & 0xFFFFFFFF
        self._rtc.memory(_MAGIC + struct.pack("<HI", len(body), crc) + body)

    # The crash counter: in the state on boards with RTC memory, else in a file.
    def crashes(self, st):
        if self._rtc is not None:
            return st.get("crashes", 0)
        if self._crashes is None:
            try:
                with open(_CRASH_FILE) as f:
                    self._crashes = int(json.load(f)["crashes"])
            except (OSError, ValueError, KeyError, TypeError):
                self._crashes = 0
        return self._crashes

    def set_crashes(self, st, n, why=None):
        st["crashes"] = n
        if why is not None:
            st["crash_why"] = why
        if self._rtc is not None:
            self.save(st)
            return
        if n == self._crashes and why is None:
            return
        self._crashes = n
        from motekit import store

        store.write_json(_CRASH_FILE, {"crashes": n, "why": st.get("crash_why")})

    def crash_why(self, st):
        if self._rtc is not None:
            return st.get("crash_why")
        try:
            with open(_CRASH_FILE) as f:
                return json.load(f).get("why")
        except (OSError, ValueError, AttributeError):
            return None
