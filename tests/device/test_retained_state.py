# Retained state (firmware/motekit/retained.py) and the flash counter (nvcounter.py).
import json

import _devtest
import machine
from motekit import log, store
from motekit.nvcounter import NvCounter
from motekit.retained import Retained

RTC_MEM = hasattr(machine.RTC(), "memory")


def test_round_trip_and_crc_on_rtc_memory_or_ram():
    log.clear()
    log.echo = False
    r = Retained(2048 if RTC_MEM else 0)
    st = {"wakes": 3, "last": {"a.temperature": 21.5}}
    r.save(st)
    got = r.load()
    assert got["wakes"] == 3 and got["last"] == {"a.temperature": 21.5}
    if not RTC_MEM:
        return
    mem = bytearray(machine.RTC().memory())
    mem[-2] ^= 0x20  # a flipped bit in the body
    machine.RTC().memory(bytes(mem))
    assert r.load() is None and r.problem == "crc"
    machine.RTC().memory(b"")
    assert r.load() is None and r.problem == "empty"


def test_log_entries_are_trimmed_to_fit_rtc_memory():
    if not RTC_MEM:
        _devtest.skip("no RTC memory on this board: state stays in RAM")
    log.clear()
    log.echo = False
    log.set_level("debug")
    for i in range(log.CAPACITY):
        log.info("a long message that takes room in RTC memory, number %d" % i)
    r = Retained(1024)
    st = {"wakes": 1}
    r.save(st)
    assert len(machine.RTC().memory()) <= 1024
    got = r.load()
    assert 0 < len(got["log"]) < log.CAPACITY
    assert got["drop"] == log.CAPACITY - len(got["log"])
    assert got["log"][-1][2].endswith("number %d" % (log.CAPACITY - 1))  # the newest kept


def test_crash_counter_survives_where_it_must():
    r = Retained(2048 if RTC_MEM else 0)
    st = {}
    assert r.crashes(st) == 0
    r.set_crashes(st, 2, "ValueError: boom")
    fresh = Retained(2048 if RTC_MEM else 0)  # as after a reset
    st2 = fresh.load() if RTC_MEM else {}
    assert fresh.crashes(st2) == 2
    assert fresh.crash_why(st2) == "ValueError: boom"
    if not RTC_MEM:
        with open("/crash.json") as f:
            assert json.load(f)["crashes"] == 2


def test_nvcounter_writes_flash_once_per_step_and_never_repeats_after_power_loss():
    st = {}
    w0 = store.writes
    c = NvCounter("/seq_t.json", st, "seq", step=4)
    assert store.writes - w0 == 1
    got = [c.next() for _ in range(10)]
    assert got == list(range(10))
    assert store.writes - w0 == 3  # reservations at 4, 8 (+ the first)
    # power loss: retained state gone, only the file remains
    again = NvCounter("/seq_t.json", {}, "seq", step=4)
    n = again.next()
    assert n >= 10, n
    assert n - 10 <= 4
