# firmware/motekit/sensors.py with stand-in drivers: filtering rounds, slow sensors read once,
# the watchdog fed through long waits, one failing sensor leaving the others.
# devtest: boards=sim-esp32
import time

from motekit.sensors import Sensors


class Fake:
    QUANTITIES = ("temperature",)
    RESOLUTION = (0.1,)

    def __init__(self, values, wait_ms=0, fail_at=None):
        self.values = list(values)
        self.wait_ms = wait_ms
        self.fail_at = fail_at
        self.starts = 0
        self.reads = 0

    def start(self):
        self.starts += 1
        return self.wait_ms

    def read(self):
        self.reads += 1
        if self.reads == self.fail_at:
            raise OSError("fake@i2c 0x10: no answer")
        return (self.values[self.reads - 1],)

    def raw(self):
        return (self.reads,)


def hub_with(devs, feed=None):
    hub = Sensors({"pins": {}}, [{"kind": "sht4x", "id": sid} for sid in devs], feed)
    hub._devs = devs  # powered and opened: sample() uses them as they are
    return hub


def test_fast_sensors_are_read_n_times_and_filtered():
    fast = Fake([20.0, 20.2, 35.0], wait_ms=9)
    s = hub_with({"a": fast}).sample(n=3, outlier=3.5)
    assert fast.starts == 3 and fast.reads == 3
    assert abs(s["values"]["a.temperature"] - 20.1) < 1e-9  # the spike is rejected
    assert s["missing"] == []


def test_a_slow_sensor_is_read_once_while_fast_ones_get_every_round():
    slow = Fake([18.5], wait_ms=750)
    fast = Fake([20.0, 20.0, 20.0], wait_ms=9)
    s = hub_with({"slow": slow, "fast": fast}).sample(n=3, outlier=3.5)
    assert (slow.starts, slow.reads) == (1, 1)
    assert (fast.starts, fast.reads) == (3, 3)
    assert s["values"] == {"slow.temperature": 18.5, "fast.temperature": 20.0}


def test_only_slow_sensors_take_one_round():
    slow = Fake([400.0], wait_ms=5000)
    feeds = []
    s = hub_with({"co2": slow}, lambda: feeds.append(1)).sample(n=3)
    assert (slow.starts, slow.reads) == (1, 1)
    assert len(feeds) == 5  # one 5 s wait in 1 s slices, not three
    assert s["values"] == {"co2.temperature": 400.0}


def test_long_waits_are_slept_in_slices_that_feed_the_watchdog():
    slept = []
    real_sleep = time.sleep_ms
    time.sleep_ms = slept.append  # count the slices instead of sleeping
    try:
        hub_with({"co2": Fake([400.0], wait_ms=2500)}, lambda: slept.append("feed")).sample()
    finally:
        time.sleep_ms = real_sleep
    assert slept == [1000, "feed", 1000, "feed", 500, "feed"]


def test_a_sensor_failing_mid_way_is_missing_and_the_others_are_kept():
    bad = Fake([21.0, 21.0, 21.0], wait_ms=9, fail_at=2)
    good = Fake([22.0, 22.0, 22.0], wait_ms=9)
    s = hub_with({"bad": bad, "good": good}).sample(n=3)
    assert s["missing"] == ["bad"]
    assert s["errors"]["bad"] == "fake@i2c 0x10: no answer"
    assert s["values"] == {"good.temperature": 22.0}
