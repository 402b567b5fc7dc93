# The SCD41 driver (drivers/scd41.py) against the virtual board's SCD41 model, on both boards.
# Single shots take 5 s of simulated time; the file runs at 20x so they pass in a quarter second.
# devtest: speed=20
import time

import _devtest
import _simctl
import machine
import micropython
import scd41
from sensor import ConfigError, CrcError, RangeError, SensorError, crc8_sensirion

ADDR = 0x62
WHERE = "scd41@i2c 0x62"
SERIAL = 0xF8969F073BBE  # the model's default part: the datasheet's example serial number
_attached = []


def bus():
    # The main part on i2c0 at 0x62, attached once per node with a realistic repeatability
    # (seeded noise), with no fault and a known world. Tests that change what a chip keeps
    # (pressure, calibration, EEPROM) use parts of their own at other addresses: on a real board
    # those would sit on other buses, the SCD41 has one address.
    if not _attached:
        _simctl.request(
            "attach", model="scd41", bus="i2c0", addr=ADDR, co2_noise=5, t_noise=0.03, rh_noise=0.2
        )
        _devtest.sensor_rail(True)
        time.sleep_ms(scd41.SCD41.WARMUP_MS)
        _attached.append(True)
    _simctl.request("clear_faults")
    _simctl.request(
        "env", co2_ppm=800.0, temperature_c=25.0, humidity_rh=50.0, pressure_hpa=1013.25
    )
    return machine.I2C(0)


def part(addr, **options):
    # Another SCD41 model at `addr`, idle (attached to a live rail).
    _simctl.request("attach", model="scd41", bus="i2c0", addr=addr, **options)


def model(addr=ADDR):
    for i2c in _simctl.request("status")["hardware"]["i2c"]:
        for dev in i2c["devices"]:
            if dev["address"] == addr:
                return dev
    raise AssertionError("no scd41 at 0x%02x" % addr)


def count(addr, name):
    return model(addr)["commands"].get(name, 0)


def measure(s):
    time.sleep_ms(s.start())
    return s.read()


def co2_tolerance(ppm):
    # SCD41 CO2 accuracy (datasheet "CO2 Sensing Performance"): +-(50 ppm + 2.5 %) over
    # 400..1000 ppm, +-(50 ppm + 3 %) over 1001..2000 ppm, +-(40 ppm + 5 %) over 2001..5000 ppm.
    if ppm <= 1000:
        return 50 + 0.025 * ppm
    if ppm <= 2000:
        return 50 + 0.03 * ppm
    return 40 + 0.05 * ppm


def t_tolerance(t_c):
    # "Temperature Sensing Performance": +-0.8 C over 15..35 C, +-1.5 C over -10..60 C.
    return 0.8 if 15.0 <= t_c <= 35.0 else 1.5


def rh_tolerance(t_c, rh):
    # "Humidity Sensing Performance": +-6 %RH at 15..35 C and 20..65 %RH, else +-9 %RH.
    return 6.0 if 15.0 <= t_c <= 35.0 and 20.0 <= rh <= 65.0 else 9.0


def words(*values):
    # Words as the chip sends them, each followed by its CRC.
    out = bytearray()
    for v in values:
        pair = bytes((v >> 8, v & 0xFF))
        out += pair + bytes((crc8_sensirion(pair),))
    return out


class _FakeI2C:
    # A bus that answers each command with its reply (command -> bytes, or a list used in turn,
    # the last one repeating) and records every write; it allocates nothing when read.
    def __init__(self, replies):
        self.replies = replies
        self.sent = []
        self.last = 0
        self.reads = 0

    def writeto(self, addr, buf, stop=True):
        self.sent.append(bytes(buf))
        self.last = (buf[0] << 8) | buf[1]
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        reply = self.replies[self.last]
        if isinstance(reply, list):
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        for i in range(len(buf)):
            buf[i] = reply[i]
        self.reads += 1


def fake(extra=None):
    # The datasheet's example replies: serial number 0xf896 0x9f07 0x3bbe; 500 ppm, 25 C, 37 %RH.
    replies = {
        0x3682: b"\xf8\x96\x31\x9f\x07\xc2\x3b\xbe\x89",
        0xE4B8: words(0x8006),
        0xEC05: b"\x01\xf4\x33\x66\x67\xa2\x5e\xb9\x3c",
        0x2318: words(0),  # the settings: temperature offset, altitude, ASC
        0x2322: words(0),
        0x2313: words(0),
    }
    if extra:
        replies.update(extra)
    return _FakeI2C(replies)


def test_the_driver_has_the_common_shape_and_checks_identity_by_serial_number():
    i2c = bus()
    before = model()["commands"]
    s = scd41.SCD41(i2c)
    after = model()["commands"]
    assert s.KIND == "scd41"
    assert s.QUANTITIES == ("co2", "temperature", "humidity")
    assert s.UNITS == ("ppm", "C", "%RH")
    assert len(s.RESOLUTION) == 3
    assert s.WARMUP_MS == 1000  # "Power-Up and Communication Start"
    assert s.serial_number == SERIAL
    assert s.serial() == SERIAL
    # Construction asked for the serial number and nothing else.
    assert after.get("get_serial_number", 0) - before.get("get_serial_number", 0) == 1
    assert sum(after.values()) - sum(before.values()) == 1


def test_the_datasheet_examples_are_reproduced_exactly():
    assert crc8_sensirion(b"\xbe\xef") == 0x92  # "Checksum Calculation"
    assert crc8_sensirion(bytearray(b"\x00\xbe\xef"), 1, 3) == 0x92
    # "read_measurement": 0x6667 is 25 C, 0x5eb9 37 %RH; the formulas' ends.
    assert abs(scd41.temperature_c(0x6667) - 25.0) < 0.01
    assert abs(scd41.humidity_rh(0x5EB9) - 37.0) < 0.01
    assert scd41.temperature_c(0) == -45.0 and scd41.temperature_c(0xFFFF) == 130.0
    assert scd41.humidity_rh(0) == 0.0 and scd41.humidity_rh(0xFFFF) == 100.0
    # The serial number example, and a whole measurement through the driver.
    i2c = fake()
    s = scd41.SCD41(i2c)
    assert s.serial_number == 273325796834238
    s.start()
    co2, t, rh = s.read()
    assert co2 == 500.0 and abs(t - 25.0) < 0.01 and abs(rh - 37.0) < 0.01
    assert s.raw() == (500, 0x6667, 0x5EB9)
    # Arguments with their CRCs: 98'700 Pa, a 5.4 C offset, 1'950 m, ASC on, FRC to 480 ppm.
    i2c.sent.clear()
    s.set_pressure(987)
    assert i2c.sent == [b"\xe0\x00\x03\xdb\x42"]
    i2c = fake()
    scd41.SCD41(i2c, temperature_offset=5.4, altitude_m=1950, asc=True).start()
    for expected in (b"\x24\x1d\x07\xe6\x48", b"\x24\x27\x07\x9e\x09", b"\x24\x16\x00\x01\xb0"):
        assert expected in i2c.sent, expected
    i2c = fake({0x362F: b"\x7f\xce\x7b"})  # "perform_forced_recalibration": -50 ppm
    s = scd41.SCD41(i2c)
    assert s.forced_recalibration(480) == -50
    assert i2c.sent[-1] == b"\x36\x2f\x01\xe0\xb4"


def test_reading_too_early_is_refused_by_the_chip_and_the_shot_carries_on():
    s = scd41.SCD41(bus())
    assert s.start() == 5000
    e = _devtest.raises(SensorError, s.read)
    assert str(e).startswith(WHERE + ": busy for ")
    assert isinstance(e, OSError)
    e = _devtest.raises(SensorError, s.set_pressure, 1000)  # nor does it take anything else
    assert str(e).startswith(WHERE + ": busy for ")
    time.sleep_ms(5000)
    co2, t, rh = s.read()
    assert abs(co2 - 800) <= co2_tolerance(800) and abs(t - 25.0) <= 0.8 and abs(rh - 50) <= 6
    _devtest.raises(RuntimeError, s.read)  # read once: a new start() is needed


def test_readings_follow_the_environment_within_the_chips_accuracy_across_its_range():
    s = scd41.SCD41(bus())
    for ppm, t_c, rh in ((400.0, -10.0, 90.0), (1500.0, 25.0, 50.0), (5000.0, 60.0, 5.0)):
        _simctl.request("env", co2_ppm=ppm, temperature_c=t_c, humidity_rh=rh)
        co2, t, h = measure(s)
        assert abs(co2 - ppm) <= co2_tolerance(ppm), (ppm, co2)
        assert abs(t - t_c) <= t_tolerance(t_c), (t_c, t)
        assert abs(h - rh) <= rh_tolerance(t_c, rh), (rh, h)
        w_co2, st, srh = s.raw()
        assert (co2, t, h) == (float(w_co2), scd41.temperature_c(st), scd41.humidity_rh(srh))


def test_stale_data_repeats_the_last_words():
    s = scd41.SCD41(bus())
    first = measure(s)
    _simctl.request("fault", target="i2c0:0x62", spec="stale")
    _simctl.request("env", co2_ppm=2000.0, temperature_c=30.0)
    assert measure(s) == first  # the chip stopped converting: the same words again


def test_pressure_compensation_fixes_a_reading_taken_at_850_hpa():
    i2c = bus()
    part(0x63)
    _simctl.request("env", co2_ppm=1000.0, pressure_hpa=850.0)
    s = scd41.SCD41(i2c, 0x63)
    co2 = measure(s)[0]
    # Compensated for 1013.25 hPa, the cell sees 16 % fewer molecules than it assumes.
    assert abs(co2 - 839) <= 1
    assert abs(co2 - 1000) > co2_tolerance(1000)
    s.set_pressure(850)  # e.g. from a BME280, before start()
    assert model(0x63)["settings"]["ambient_pressure_hpa"] == 850
    co2 = measure(s)[0]
    assert abs(co2 - 1000) <= 1
    # The options do the same at the first start(); an altitude is the alternative.
    scd41.SCD41(i2c, 0x63, pressure_hpa=1013.25)._setup()
    assert model(0x63)["settings"]["ambient_pressure_hpa"] == 1013
    scd41.SCD41(i2c, 0x63, altitude_m=1500)._setup()
    settings = model(0x63)["settings"]
    assert settings["altitude_m"] == 1500 and settings["ambient_pressure_hpa"] is None


def test_forced_recalibration_makes_a_drifted_part_read_the_reference():
    i2c = bus()
    part(0x64, co2_offset=150)
    s = scd41.SCD41(i2c, 0x64)
    # Nothing measured since power-up: the chip answers 0xffff.
    e = _devtest.raises(SensorError, s.forced_recalibration, 600)
    assert str(e) == "scd41@i2c 0x64: forced recalibration failed (measure first)"
    _simctl.request("env", co2_ppm=600.0)
    assert measure(s)[0] == 750.0  # drifted: outside its accuracy
    assert s.forced_recalibration(600) == -150
    assert model(0x64)["frc_offset_ppm"] == -150
    _simctl.request("env", co2_ppm=1200.0)
    assert measure(s)[0] == 1200.0
    _devtest.raises(ConfigError, s.forced_recalibration, -5)
    _devtest.raises(ConfigError, s.forced_recalibration, 50000)


def test_the_temperature_offset_corrects_the_dies_self_heating():
    i2c = bus()
    part(0x65, self_heating_k=3.0)
    s = scd41.SCD41(i2c, 0x65, temperature_offset=3.0)
    _, t, rh = measure(s)
    assert abs(model(0x65)["settings"]["temperature_offset_c"] - 3.0) < 0.003  # word 1123
    # The offset is subtracted from the die's temperature and RH is the air's at that
    # temperature: both are the air's again (the factory 4 C would read 24 C and 53 %RH).
    assert abs(t - 25.0) <= 0.02 and abs(rh - 50.0) <= 0.05


def test_the_first_shot_after_power_up_is_discarded_when_asked():
    i2c = bus()
    part(0x66, first_shot_co2_ppm=0)  # this part's first shot after power-up reads 0 ppm
    _simctl.request("env", co2_ppm=700.0)
    s = scd41.SCD41(i2c, 0x66, discard_first=True)
    wait_ms = s.start()  # the discarded shot, then the one that counts
    assert wait_ms == 5000 and count(0x66, "measure_single_shot") == 2
    time.sleep_ms(wait_ms)
    assert s.read()[0] == 700.0
    time.sleep_ms(s.start())  # no longer the first: one shot
    assert count(0x66, "measure_single_shot") == 3
    assert s.read()[0] == 700.0
    # power_down / wake_up: not acknowledged, checked by the serial number; first shot again.
    s.power_down()
    assert model(0x66)["mode"] == "sleep"
    s.wake_up()
    m = model(0x66)
    assert m["mode"] == "idle" and m["first_shot"]


def test_a_co2_of_0_or_the_top_of_the_range_raises_range_error():
    # What the chip gives when it has no CO2 value (an invalid first sample, an RHT-only shot).
    i2c = fake({0xEC05: words(0, 0x6667, 0x5EB9)})
    s = scd41.SCD41(i2c)
    s.start()
    e = _devtest.raises(RangeError, s.read)
    assert str(e) == WHERE + ": co2 0.00 ppm outside 1..39999"
    assert s.raw() == (0, 0x6667, 0x5EB9)  # kept for diagnosis
    i2c.replies[0xEC05] = words(40000, 0x6667, 0x5EB9)
    s.start()
    _devtest.raises(RangeError, s.read)
    i2c.replies[0xEC05] = words(800, 0xFFFF, 0x5EB9)  # 130 C
    s.start()
    e = _devtest.raises(RangeError, s.read)
    assert str(e).startswith(WHERE + ": temperature 130.00 C outside -11.5..61.5")


def test_asc_is_written_only_when_it_changes_and_persisted_once():
    i2c = bus()
    part(0x67)
    scd41.SCD41(i2c, 0x67, asc=False)._setup()
    assert count(0x67, "set_automatic_self_calibration_enabled") == 1
    assert not model(0x67)["settings"]["asc"]
    scd41.SCD41(i2c, 0x67, asc=False)._setup()  # already off: read, not written
    assert count(0x67, "set_automatic_self_calibration_enabled") == 1
    asked = count(0x67, "get_automatic_self_calibration_enabled")
    scd41.SCD41(i2c, 0x67)._setup()  # asc=None leaves the chip's setting alone
    assert count(0x67, "get_automatic_self_calibration_enabled") == asked
    # A power cycle reloads the EEPROM's (ASC on): the next wake writes it again...
    _devtest.sensor_rail(False)
    _devtest.sensor_rail(True)
    time.sleep_ms(scd41.SCD41.WARMUP_MS)
    s = scd41.SCD41(i2c, 0x67, asc=False)
    s._setup()
    assert count(0x67, "set_automatic_self_calibration_enabled") == 2
    # ... until persisted, once: then the chip powers up with it and nothing is written.
    s.persist_settings()
    assert model(0x67)["eeprom_writes"] == 1
    _devtest.sensor_rail(False)
    _devtest.sensor_rail(True)
    time.sleep_ms(scd41.SCD41.WARMUP_MS)
    scd41.SCD41(i2c, 0x67, asc=False)._setup()
    m = model(0x67)
    assert m["commands"]["set_automatic_self_calibration_enabled"] == 2
    assert m["eeprom"]["asc"] == 0 and m["eeprom_writes"] == 1


def test_a_chip_left_measuring_or_asleep_is_recovered_at_construction():
    i2c = bus()
    i2c.writeto(ADDR, b"\x21\xb1")  # start_periodic_measurement, as another program might
    assert model()["mode"] == "periodic"
    stops = count(ADDR, "stop_periodic_measurement")
    s = scd41.SCD41(i2c)  # the serial number is refused: wake, stop, 500 ms, ask again
    assert s.serial_number == SERIAL
    assert model()["mode"] == "idle"
    assert count(ADDR, "stop_periodic_measurement") == stops + 1
    s.power_down()  # e.g. between wakes on a board whose sensors stay powered
    assert model()["mode"] == "sleep"
    assert scd41.SCD41(i2c).serial_number == SERIAL
    assert model()["mode"] == "idle"


def test_a_detached_sensor_raises_sensor_error_naming_bus_and_address():
    i2c = bus()
    s = scd41.SCD41(i2c)
    _simctl.request("fault", target="i2c0:0x62", spec="detach")
    e = _devtest.raises(SensorError, s.start)
    assert str(e) == WHERE + ": no answer"
    e = _devtest.raises(SensorError, scd41.SCD41, i2c)  # construction checks identity
    assert str(e) == WHERE + ": no answer"
    _simctl.request("clear_faults")
    assert s.serial() == SERIAL


def test_a_stuck_bus_raises_sensor_error_with_a_timeout():
    i2c = bus()
    s = scd41.SCD41(i2c)
    _simctl.request("fault", target="i2c0", spec="stuck")
    e = _devtest.raises(SensorError, s.start)
    assert str(e) == WHERE + ": bus timed out (a line held low)"
    e = _devtest.raises(SensorError, scd41.SCD41, i2c)
    assert str(e) == WHERE + ": bus timed out (a line held low)"


def test_corrupt_replies_are_asked_again_once_then_raise_crc_error():
    i2c = bus()
    _simctl.request("fault", target="i2c0:0x62", spec="corrupt")
    before = model()["result_reads"]
    e = _devtest.raises(CrcError, scd41.SCD41, i2c)
    assert str(e) == WHERE + ": CRC mismatch in the serial number"
    assert isinstance(e, SensorError)
    assert model()["result_reads"] - before == 2  # asked twice


def test_a_one_off_corruption_is_survived_by_asking_again():
    i2c = bus()
    # Each byte corrupted with p = 0.1: over 30 constructions some first replies fail their CRC
    # and the second gets through; no construction may ever see a wrong serial number.
    _simctl.request("fault", target="i2c0:0x62", spec="corrupt:0.1")
    survived = 0
    for _ in range(30):
        before = model()["result_reads"]
        try:
            s = scd41.SCD41(i2c)
        except CrcError:
            continue
        assert s.serial_number == SERIAL
        if model()["result_reads"] - before == 2:
            survived += 1
    assert survived > 0


def test_a_measurement_is_read_once_so_its_crc_mismatch_is_not_retried():
    # The chip empties its buffer on read-out; measuring again would take another 5 s.
    i2c = fake({0xEC05: b"\x01\xf4\x00\x66\x67\xa2\x5e\xb9\x3c"})  # CO2's CRC wrong
    s = scd41.SCD41(i2c)
    s.start()
    reads = i2c.reads
    e = _devtest.raises(CrcError, s.read)
    assert str(e) == WHERE + ": CRC mismatch in the measurement"
    assert i2c.reads - reads == 2  # the data-ready status, then the measurement once
    # The data-ready status can be asked again: one bad reply is survived.
    i2c.replies[0xE4B8] = [words(0x8006)[:2] + b"\x00", words(0x8006)]
    i2c.replies[0xEC05] = b"\x01\xf4\x33\x66\x67\xa2\x5e\xb9\x3c"
    s.start()
    reads = i2c.reads
    assert s.read()[0] == 500.0
    assert i2c.reads - reads == 3


def test_no_data_ready_after_start_means_the_sensor_lost_power():
    s = scd41.SCD41(fake({0xE4B8: words(0x8000)}))  # 11 low bits clear: nothing measured
    s.start()
    e = _devtest.raises(SensorError, s.read)
    assert str(e).startswith(WHERE + ": no measurement ready")


def test_the_self_test_is_waited_for_then_read():
    i2c = bus()
    part(0x68)
    s = scd41.SCD41(i2c, 0x68)
    _devtest.raises(RuntimeError, s.self_test_result)
    assert s.self_test() == 10000
    e = _devtest.raises(SensorError, s.self_test_result)  # 10 s: not now
    assert str(e).startswith("scd41@i2c 0x68: busy for ")
    f = scd41.SCD41(fake({0x3639: words(0)}))
    f.self_test()
    assert f.self_test_result() == 0


def test_bad_options_raise_config_error_before_the_bus_is_touched():
    i2c = fake()
    for kw in (
        {"asc": "yes"},
        {"discard_first": "no"},
        {"pressure_hpa": 650},
        {"pressure_hpa": "1013"},
        {"altitude_m": 4000},
        {"pressure_hpa": 1000, "altitude_m": 100},
        {"temperature_offset": 25},
        {"temperature_offset": -1},
    ):
        e = _devtest.raises(ConfigError, scd41.SCD41, i2c, **kw)
        assert isinstance(e, ValueError)
    assert i2c.sent == []
    s = scd41.SCD41(i2c)
    i2c.sent.clear()
    _devtest.raises(ConfigError, s.set_pressure, 1300)
    assert i2c.sent == []


def test_fetching_a_result_allocates_nothing():
    # The bus read and the CRC checks run with the heap locked. (start() and read() are left
    # out: the virtual board's time.ticks_ms() allocates, the ports' does not.)
    s = scd41.SCD41(fake())
    s.start()
    s._command(0xEC05, 1)
    micropython.heap_lock()
    try:
        ok = s._fetch(3)
    finally:
        micropython.heap_unlock()
    assert ok
