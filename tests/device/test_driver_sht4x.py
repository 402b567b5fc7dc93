# The SHT4x driver (drivers/sht4x.py) against the virtual board's SHT4x model, on both boards.
import time

import _devtest
import _simctl
import machine
import micropython
import sht4x
from sensor import ConfigError, CrcError, RangeError, SensorError

ADDR = 0x44
WHERE = "sht4x@i2c 0x44"
_attached = []


def bus():
    # The model on i2c0 at 0x44, attached once per node, with no fault and a known world.
    if not _attached:
        _simctl.request("attach", model="sht4x", bus="i2c0", addr=ADDR)
        _devtest.sensor_rail(True)
        time.sleep_ms(1)  # t_PU
        _attached.append(True)
    _simctl.request("clear_faults")
    _simctl.request("env", temperature_c=25.0, humidity_rh=50.0)
    return machine.I2C(0)


def measure(s):
    time.sleep_ms(s.start())
    return s.read()


def model_reads():
    # How many results the model has handed out: a CRC retry reads twice.
    for i2c in _simctl.request("status")["hardware"]["i2c"]:
        for dev in i2c["devices"]:
            if dev["address"] == ADDR:
                return dev["result_reads"]
    raise AssertionError("no sht4x on the board")


def t_tolerance(t_c):
    # SHT40 typical accuracy (datasheet "Temperature Sensor Specifications"): 0.2 °C over
    # 0..65 °C; the tolerance widens towards -40 and 125 °C, where 1 °C is allowed here.
    return 0.2 if 0.0 <= t_c <= 65.0 else 1.0


def test_the_driver_has_the_common_shape_and_checks_identity_by_serial_number():
    s = sht4x.SHT4x(bus())
    assert s.KIND == "sht4x"
    assert s.QUANTITIES == ("temperature", "humidity")
    assert s.UNITS == ("C", "%RH")
    assert len(s.RESOLUTION) == 2
    assert s.WARMUP_MS == 1
    assert s.serial_number == 0x11A25C3D  # the model's default part
    assert s.serial() == s.serial_number


def test_the_datasheet_crc_example_and_conversion_formulas():
    assert sht4x.crc8(b"\xbe\xef") == 0x92
    assert sht4x.crc8(bytearray(b"\x00\xbe\xef"), 1, 3) == 0x92
    # T = -45 + 175 * S_T / 65535
    assert sht4x.temperature_c(0) == -45.0
    assert sht4x.temperature_c(0xFFFF) == 130.0
    assert abs(sht4x.temperature_c(0x6666) - 25.0) < 1e-9  # 0x6666 is 0.4 of full scale
    # RH = -6 + 125 * S_RH / 65535, cropped to 0..100
    assert abs(sht4x.humidity_rh(0x8000) - 56.5009) < 1e-4
    assert abs(sht4x.humidity_rh(3146) - 0.0006) < 1e-4  # just above the -6 offset
    assert sht4x.humidity_rh(0) == 0.0  # -6 %RH cropped
    assert sht4x.humidity_rh(0xFFFF) == 100.0  # 119 %RH cropped


def test_readings_follow_the_environment_within_the_chips_accuracy_across_its_range():
    s = sht4x.SHT4x(bus())
    for t_c, rh in ((-40.0, 10.0), (-10.0, 90.0), (0.0, 0.0), (25.0, 50.0), (65.0, 100.0)):
        _simctl.request("env", temperature_c=t_c, humidity_rh=rh)
        t, h = measure(s)
        assert abs(t - t_c) <= t_tolerance(t_c), (t_c, t)
        assert abs(h - rh) <= 1.8, (rh, h)  # SHT40 typical RH accuracy, ±1.8 %RH
        st, srh = s.raw()
        assert t == sht4x.temperature_c(st) and h == sht4x.humidity_rh(srh)
    for t_c in (100.0, 125.0):
        _simctl.request("env", temperature_c=t_c)
        assert abs(measure(s)[0] - t_c) <= t_tolerance(t_c)
    # A known word through the whole chain: 25 °C is exactly S_T 0x6666 on the chip.
    _simctl.request("env", temperature_c=25.0)
    measure(s)
    assert s.raw()[0] == 0x6666


def test_each_precision_waits_its_maximum_conversion_time():
    i2c = bus()
    for precision, wait_ms in (("high", 9), ("medium", 5), ("low", 2)):
        s = sht4x.SHT4x(i2c, precision=precision)
        assert s.start() == wait_ms
        time.sleep_ms(wait_ms)
        t, h = s.read()
        assert abs(t - 25.0) <= 0.2 and abs(h - 50.0) <= 1.8
    e = _devtest.raises(ConfigError, sht4x.SHT4x, i2c, precision="ultra")
    assert isinstance(e, ValueError)


def test_reading_too_early_is_refused_by_the_chip_and_the_conversion_survives():
    # A second part, an SHT40-B at 0x45, so that its warm die stays out of the other tests.
    i2c = bus()
    _simctl.request("attach", model="sht4x", bus="i2c0", addr=0x45)
    s = sht4x.SHT4x(i2c, 0x45)
    # The chip itself NACKs while heating (1.1 s: no host is that slow).
    i2c.writeto(0x45, b"\x39")
    _devtest.raises(OSError, i2c.readfrom, 0x45, 6)
    time.sleep_ms(1100)
    assert len(i2c.readfrom(0x45, 6)) == 6
    # The driver says so, and a read() after the wait gets the (heated) result.
    wait_ms = s.heater(200, 1000)
    assert wait_ms == 1100
    e = _devtest.raises(SensorError, s.read)
    assert str(e).startswith("sht4x@i2c 0x45: busy for ")
    time.sleep_ms(wait_ms)
    t, h = s.read()
    assert t > 25.0 + 10.0 and h < 50.0  # the heater warmed the die; RH there is lower
    _devtest.raises(RuntimeError, s.read)  # that result is gone: read() needs a start()
    _devtest.raises(ConfigError, s.heater, 50, 1000)
    _devtest.raises(ConfigError, s.heater, 200, 500)


def test_a_detached_sensor_raises_sensor_error_naming_bus_and_address():
    i2c = bus()
    s = sht4x.SHT4x(i2c)
    _simctl.request("fault", target="i2c0:0x44", spec="detach")
    e = _devtest.raises(SensorError, s.start)
    assert str(e) == WHERE + ": no answer"
    assert isinstance(e, OSError)
    e = _devtest.raises(SensorError, sht4x.SHT4x, i2c)  # construction checks identity
    assert str(e) == WHERE + ": no answer"
    _simctl.request("clear_faults")
    t, _ = measure(s)
    assert abs(t - 25.0) <= 0.2


def test_a_stuck_bus_raises_sensor_error_with_a_timeout():
    i2c = bus()
    s = sht4x.SHT4x(i2c)
    time.sleep_ms(s.start())  # done converting: a busy chip would outlast this test
    _simctl.request("fault", target="i2c0", spec="stuck")
    e = _devtest.raises(SensorError, s.read)
    assert str(e) == WHERE + ": bus timed out (a line held low)"


def test_corrupt_replies_are_retried_once_then_raise_crc_error():
    s = sht4x.SHT4x(bus())
    _simctl.request("fault", target="i2c0:0x44", spec="corrupt")
    before = model_reads()
    s.start()
    time.sleep_ms(9)
    e = _devtest.raises(CrcError, s.read)
    assert str(e) == WHERE + ": CRC mismatch in the measurement"
    assert isinstance(e, SensorError)
    assert model_reads() - before == 2  # re-triggered and read once more


def test_a_one_off_corruption_is_survived_by_the_retry():
    s = sht4x.SHT4x(bus())
    # Each byte corrupted with p = 0.1: over 30 reads, some first attempts fail their CRC and
    # the retry gets a clean result; no read may ever return a wrong value.
    _simctl.request("fault", target="i2c0:0x44", spec="corrupt:0.1")
    survived = 0
    for _ in range(30):
        before = model_reads()
        time.sleep_ms(s.start())
        try:
            t, h = s.read()
        except CrcError:
            continue
        assert abs(t - 25.0) <= 0.01 and abs(h - 50.0) <= 0.01, (t, h)
        if model_reads() - before == 2:
            survived += 1
    assert survived > 0


def test_a_temperature_outside_the_chips_range_raises_range_error():
    s = sht4x.SHT4x(bus())
    _simctl.request("env", temperature_c=-60.0)  # the chip's words bottom out at -45 °C
    e = _devtest.raises(RangeError, measure, s)
    assert str(e).startswith(WHERE + ": temperature -45.00 C outside")
    assert s.raw()[0] == 0  # the words behind it are kept for diagnosis
    _simctl.request("env", temperature_c=128.0)
    _devtest.raises(RangeError, measure, s)


def test_soft_reset_drops_a_pending_result():
    s = sht4x.SHT4x(bus())
    s.start()
    time.sleep_ms(9)
    s.soft_reset()
    _devtest.raises(RuntimeError, s.read)
    assert abs(measure(s)[0] - 25.0) <= 0.2


class _FakeI2C:
    # A bus that answers every read with one reply from a buffer, allocating nothing itself.
    def __init__(self, reply):
        self.reply = reply

    def writeto(self, addr, buf, stop=True):
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        for i in range(len(buf)):
            buf[i] = self.reply[i]


def test_fetching_a_result_allocates_nothing():
    # The bus read and both CRC checks run with the heap locked. (start() is left out: the
    # virtual board's time.ticks_ms() allocates, the ports' does not.)
    # 0x6666 (25 °C) and 0x8000, each with its CRC; the first read is the serial number.
    s = sht4x.SHT4x(_FakeI2C(bytearray(b"\x66\x66\x93\x80\x00\xa2")))
    s.start()
    micropython.heap_lock()
    try:
        ok = s._fetch()
    finally:
        micropython.heap_unlock()
    assert ok
    assert s.read() == (sht4x.temperature_c(0x6666), sht4x.humidity_rh(0x8000))
