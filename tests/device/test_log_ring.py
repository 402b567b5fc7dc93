# The log ring (firmware/motekit/log.py): levels, capacity, restore after deep sleep.
from motekit import log


def test_levels_and_ring_capacity():
    log.clear()
    log.echo = False
    log.set_level("info")
    log.debug("hidden")
    log.info("one")
    log.error("two")
    assert [e[1:] for e in log.entries()] == [["I", "one"], ["E", "two"]]
    for i in range(log.CAPACITY + 5):
        log.warning("w%d" % i)
    assert len(log.entries()) == log.CAPACITY
    assert log.dropped() == 7
    assert log.entries()[-1][2] == "w%d" % (log.CAPACITY + 4)


def test_restore_and_trim():
    log.restore([[1, "I", "a"], "junk", [2, "W", "b"], [3, "E", "c"]], 4)
    assert [e[2] for e in log.entries()] == ["a", "b", "c"]
    log.trim(2)
    assert [e[2] for e in log.entries()] == ["c"]
    assert log.dropped() == 6
    log.set_level("error")
    log.warning("quiet")
    assert len(log.entries()) == 1
