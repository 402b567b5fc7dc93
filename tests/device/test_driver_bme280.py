# The BME280 driver (drivers/bme280.py) against the virtual board's BME280 model, on both boards.
import struct
import time

import _devtest
import _simctl
import bme280
import machine
import micropython
from sensor import ConfigError, CrcError, RangeError, SensorError

ADDR = 0x76
WHERE = "bme280@i2c 0x76"
# The model's default part (host_tools/sim/peripherals/models/bme280.py, PARTS[1]), decoded as
# the datasheet's Table 16: dig_T1..3, dig_P1..9, dig_H1..6.
PART1 = (28189, 26285, 50, 36635, -10696, 3024, 11092, -241, -7, 12300, -12000, 5000)
PART1 += (75, 338, 0, 380, 50, 30)
# The BMP280 datasheet's worked example (BST-BMP280-DS001 3.12): T and P only.
EXAMPLE = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
EXAMPLE += (0, 0, 0, 0, 0, 0)
_attached = []


def bus():
    # The model on i2c0 at 0x76, attached once per node, with no fault and a known world.
    if not _attached:
        _simctl.request("attach", model="bme280", bus="i2c0", addr=ADDR)
        _devtest.sensor_rail(True)
        time.sleep_ms(bme280.BME280.WARMUP_MS)
        _attached.append(True)
    _simctl.request("clear_faults")
    _simctl.request("env", temperature_c=25.0, humidity_rh=50.0, pressure_hpa=1013.25)
    return machine.I2C(0)


def measure(s):
    time.sleep_ms(s.start())
    return s.read()


def model(addr=ADDR):
    for i2c in _simctl.request("status")["hardware"]["i2c"]:
        for dev in i2c["devices"]:
            if dev["address"] == addr:
                return dev
    raise AssertionError("no bme280 on the board")


# --- the datasheet's formulas, as references for the driver's --------------------------------
def p_int64_q8(adc_p, fine, c):
    # BME280_compensate_P_int64 ("4.2.3 Compensation formulas"): Pa in Q24.8.
    var1 = fine - 128000
    var2 = var1 * var1 * c[8]
    var2 = var2 + ((var1 * c[7]) << 17)
    var2 = var2 + (c[6] << 35)
    var1 = ((var1 * var1 * c[5]) >> 8) + ((var1 * c[4]) << 12)
    var1 = (((1 << 47) + var1) * c[3]) >> 33
    p = ((((1048576 - adc_p) << 31) - var2) * 3125) // var1
    var1 = (c[11] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c[10] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c[9] << 4)


def h_double(adc_h, fine, c):
    # bme280_compensate_H_double ("8.1 Compensation formulas in double precision").
    var = fine - 76800.0
    var = (adc_h - (c[15] * 64.0 + c[16] / 16384.0 * var)) * (
        c[13] / 65536.0 * (1.0 + c[17] / 67108864.0 * var * (1.0 + c[14] / 67108864.0 * var))
    )
    var = var * (1.0 - c[12] * var / 524288.0)
    return min(100.0, max(0.0, var))


def test_the_driver_has_the_common_shape_and_reads_identity_and_trimming():
    s = bme280.BME280(bus())
    assert s.KIND == "bme280"
    assert s.QUANTITIES == ("temperature", "humidity", "pressure")
    assert s.UNITS == ("C", "%RH", "hPa")
    assert s.RESOLUTION == (0.01, 0.01, 0.01)
    assert s.WARMUP_MS == 2
    assert s.trimming == PART1  # dig_H4 380 and dig_H5 50: the signed 12-bit packing
    _devtest.raises(RuntimeError, s.raw)
    _devtest.raises(RuntimeError, s.read)  # read() needs a start()


def test_the_bmp280_worked_example_and_the_measurement_time_formula():
    # adc_T 519888 -> t_fine 128422, 25.08 °C; adc_P 415148 -> 100653.27 Pa in the datasheet's
    # table (floating point). The int64 code gives 25767233 / 256 = 100653.25 Pa; the driver's
    # int32 code 100656 Pa, 2.7 Pa (0.03 hPa) above: its typical 1 Pa (1 sigma) at work.
    fine = bme280.fine_temperature(519888, EXAMPLE)
    assert fine == 128422
    assert (fine * 5 + 128) >> 8 == 2508
    assert p_int64_q8(415148, fine, EXAMPLE) == 25767233
    assert bme280.pressure_pa(415148, fine, EXAMPLE) == 100656
    # "9.1 Measurement time", maximum: 1.25 + 2.3 T + (2.3 P + 0.575) + (2.3 H + 0.575) ms.
    assert bme280.measure_time_us(1, 4, 0) == 13325  # the appendix's example settings
    assert bme280.measure_time_us(1, 1, 1) == 9300
    assert bme280.measure_time_us(16, 16, 16) == 112800
    assert bme280.measure_time_us(1, 0, 0) == 3550
    i2c = bus()
    for opts, wait_ms in (({}, 10), ({"oversample_p": 4, "oversample_h": 2}, 19)):
        s = bme280.BME280(i2c, **opts)
        assert s.start() == wait_ms
        time.sleep_ms(wait_ms)
        assert s.read()[0] == 25.0
    s = bme280.BME280(i2c, oversample_t=16, oversample_h=16, oversample_p=16)
    assert s.start() == 113
    time.sleep_ms(113)
    t, h, p = s.read()
    assert abs(t - 25.0) <= 0.01 and abs(h - 50.0) <= 0.01 and abs(p - 1013.25) <= 0.01


def test_the_32_bit_pressure_code_agrees_with_the_64_bit_one_as_the_datasheet_says():
    # "8.2": the 32-bit code has "an accuracy of typically 1 Pa (1-sigma)". Over a grid of words
    # covering -40..85 °C and 300..1100 hPa, for a real part and the worked example's trimming.
    for trim in (PART1, EXAMPLE):
        n = 0
        total = 0.0
        squares = 0.0
        worst = 0.0
        for adc_t in range(380000, 700001, 16000):
            fine = bme280.fine_temperature(adc_t, trim)
            if not -4000 <= (fine * 5 + 128) >> 8 <= 8500:
                continue
            for adc_p in range(100000, 700001, 10000):
                pa = bme280.pressure_pa(adc_p, fine, trim)
                if not 30000 <= pa <= 110000:
                    continue
                d = pa - p_int64_q8(adc_p, fine, trim) / 256
                n += 1
                total += d
                squares += d * d
                worst = max(worst, abs(d))
        mean = total / n
        sigma = (squares / n - mean * mean) ** 0.5
        assert n > 300, n
        assert sigma <= 1.5, sigma  # typically 1 Pa; here 1.1..1.3 Pa
        assert abs(mean) <= 1.5, mean  # the 32-bit code reads about 1 Pa high
        assert worst <= 7.0, worst  # 0.07 hPa: 7 % of the +-1 hPa absolute accuracy


def test_integer_humidity_agrees_with_the_double_precision_formula():
    worst = 0.0
    for adc_t in range(400000, 660001, 20000):
        fine = bme280.fine_temperature(adc_t, PART1)
        for adc_h in range(0, 65536, 1024):
            got = bme280.humidity_q10(adc_h, fine, PART1) / 1024
            worst = max(worst, abs(got - h_double(adc_h, fine, PART1)))
    assert worst < 0.01, worst  # below the 0.01 %RH the driver reports


def test_readings_follow_the_environment_within_the_datasheets_accuracy_across_its_range():
    # "1. Specification": +-1 °C (0..65 °C), +-3 %RH, +-1 hPa (300..1100 hPa, 0..65 °C).
    s = bme280.BME280(bus())
    for t_c, rh, hpa in (
        (-40.0, 10.0, 300.0),
        (0.0, 0.0, 500.0),
        (25.0, 50.0, 1013.25),
        (40.0, 80.0, 1100.0),
        (65.0, 100.0, 850.0),
        (85.0, 30.0, 950.0),
    ):
        _simctl.request("env", temperature_c=t_c, humidity_rh=rh, pressure_hpa=hpa)
        t, h, p = measure(s)
        assert abs(t - t_c) <= 1.0 and abs(h - rh) <= 3.0 and abs(p - hpa) <= 1.0, (t, h, p)
        # raw() is (adc_T, adc_H, adc_P), QUANTITIES order, and the values come from it.
        adc_t, adc_h, adc_p = s.raw()
        fine = bme280.fine_temperature(adc_t, PART1)
        assert t == ((fine * 5 + 128) >> 8) / 100
        assert h == bme280.humidity_q10(adc_h, fine, PART1) / 1024
        assert p == bme280.pressure_pa(adc_p, fine, PART1) / 100
    # The model is exact, so the chain holds to the reported resolution (x1: 2.6 Pa steps).
    _simctl.request("env", temperature_c=21.37, humidity_rh=48.12, pressure_hpa=987.65)
    t, h, p = measure(s)
    assert t == 21.37 and abs(h - 48.12) <= 0.005 and abs(p - 987.65) <= 0.02, (t, h, p)


def test_a_second_part_at_0x77_has_its_own_trimming():
    i2c = bus()
    _simctl.request("attach", model="bme280", bus="i2c0", addr=0x77, part=2)
    time.sleep_ms(2)
    s = bme280.BME280(i2c, 0x77)
    assert s.trimming[:3] == (28297, 26729, 50) and s.trimming[12:] == (75, 394, 0, 248, 50, 30)
    t, h, p = measure(s)
    assert abs(t - 25.0) <= 0.01 and abs(h - 50.0) <= 0.01 and abs(p - 1013.25) <= 0.02


class _NoBus:
    # Fails the test if the driver touches it.
    def __getattr__(self, name):
        raise AssertionError("the bus was used: " + name)


def test_bad_options_raise_config_error_before_the_bus_is_touched():
    for kw in (
        {"oversample_t": 3},
        {"oversample_h": 0},
        {"oversample_p": 32},
        {"oversample_t": True},
        {"iir_filter": 1},
        {"iir_filter": 32},
        {"iir_filter": True},
        {"iir_filter": "16"},
    ):
        e = _devtest.raises(ConfigError, bme280.BME280, _NoBus(), **kw)
        assert isinstance(e, ValueError)
    e = _devtest.raises(ConfigError, bme280.BME280, _NoBus(), 0x44)
    assert "0x76 or 0x77" in str(e)
    _devtest.raises(TypeError, bme280.BME280, _NoBus(), precision="high")


def test_the_iir_filter_runs_across_forced_measurements():
    i2c = bus()
    s = bme280.BME280(i2c, iir_filter=16)
    assert measure(s)[0] == 25.0  # the first value after the config write passes unchanged
    _simctl.request("env", temperature_c=35.0)
    temps = [measure(s)[0] for _ in range(3)]
    # "3.4.4 IIR filter": each step moves 1/16 of the way (in ADC words, so about 0.6 °C).
    assert 25.5 < temps[0] < 25.8 and temps[0] < temps[1] < temps[2] < 27.0, temps
    assert measure(bme280.BME280(i2c))[0] == 35.0  # a new driver writes config: filter off
    assert model()["filter"] == 1


def test_reading_too_early_is_busy_and_the_measurement_carries_on():
    s = bme280.BME280(bus(), oversample_t=16, oversample_h=16, oversample_p=16)
    wait_ms = s.start()  # 113 ms: no host is that slow to read
    e = _devtest.raises(SensorError, s.read)
    assert str(e).startswith(WHERE + ": busy for ")
    time.sleep_ms(wait_ms)
    t, h, p = s.read()
    assert t == 25.0 and abs(h - 50.0) <= 0.01 and abs(p - 1013.25) <= 0.01
    _devtest.raises(RuntimeError, s.read)  # that result was fetched: read() needs a start()


def test_data_lost_to_a_power_cycle_is_a_range_error_not_a_reading():
    s = bme280.BME280(bus())
    measure(s)
    s.start()
    _devtest.sensor_rail(False)  # the rail goes off mid-measurement ...
    _devtest.sensor_rail(True)  # ... and back: the chip starts from its power-on reset
    time.sleep_ms(bme280.BME280.WARMUP_MS)
    e = _devtest.raises(RangeError, s.read)  # data registers at 0x80000 / 0x8000
    assert str(e) == WHERE + ": no measurement in the data registers (reset value)"
    assert s.raw() == (0x80000, 0x8000, 0x80000)
    assert measure(s)[0] == 25.0  # the next start() measures again


def test_a_genuine_word_equal_to_the_reset_value_is_a_reading():
    # At x1 the model's part gives adc_T 0x80000 at 22.96 °C: one word at its reset value is a
    # reading; only all three at theirs means the chip was reset since start().
    s = bme280.BME280(bus())
    _simctl.request("env", temperature_c=22.96)
    assert measure(s)[0] == 22.96
    assert s.raw()[0] == 0x80000


def test_values_outside_the_operating_range_raise_range_error():
    s = bme280.BME280(bus())
    _simctl.request("env", temperature_c=90.0)
    e = _devtest.raises(RangeError, measure, s)
    assert str(e).startswith(WHERE + ": temperature 90.00 C outside -41..86"), str(e)
    assert s.raw()[0] > 0  # the words behind it are kept for diagnosis
    _simctl.request("env", temperature_c=-45.0)
    _devtest.raises(RangeError, measure, s)
    _simctl.request("env", temperature_c=25.0, pressure_hpa=250.0)
    e = _devtest.raises(RangeError, measure, s)
    assert str(e).startswith(WHERE + ": pressure 2") and str(e).endswith(" hPa outside 299..1101")
    _simctl.request("env", pressure_hpa=1150.0)
    _devtest.raises(RangeError, measure, s)


class _FakeI2C:
    # A BME280 holding the worked example (trimming and words) that answers from a register
    # image, allocating nothing when read.
    def __init__(self, chip_id=0x60):
        self.regs = bytearray(256)
        self.regs[0xD0] = chip_id
        self.regs[0x88:0xA0] = struct.pack("<HhhHhhhhhhhh", *EXAMPLE[:12])
        self.regs[0xF7:0xFF] = b"\x65\x5a\xc0\x7e\xed\x00\x84\xe7"  # adc_P 415148, adc_T 519888

    def writeto(self, addr, buf, stop=True):
        return len(buf)

    def writeto_mem(self, addr, reg, buf):
        pass

    def readfrom_mem_into(self, addr, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]


def test_a_bmp280_is_named_when_found_in_its_place():
    for chip_id in (0x56, 0x57, 0x58):
        e = _devtest.raises(SensorError, bme280.BME280, _FakeI2C(chip_id))
        assert (
            str(e) == WHERE + ": chip id 0x%02x is a BMP280 (no humidity), not a BME280" % chip_id
        )
    e = _devtest.raises(SensorError, bme280.BME280, _FakeI2C(0x61))
    assert str(e) == WHERE + ": chip id 0x61 is not a BME280's 0x60"


def test_the_worked_example_through_the_registers_with_the_heap_locked():
    # Status, both data reads, their comparison and the integer compensation run with the heap
    # locked. (The virtual board's small ints are 63-bit; the host test tracks every
    # intermediate of the same code against a 32-bit port's 31-bit ones.)
    s = bme280.BME280(_FakeI2C())
    assert s.trimming == EXAMPLE
    s.start()
    trim = s.trimming
    micropython.heap_lock()
    try:
        s._fetch()
        fine = bme280.fine_temperature(s._adc_t, trim)
        pa = bme280.pressure_pa(s._adc_p, fine, trim)
        q10 = bme280.humidity_q10(s._adc_h, fine, trim)
    finally:
        micropython.heap_unlock()
    assert (fine, pa, q10) == (128422, 100656, 0)  # no humidity trimming on a BMP280's figures
    assert s.raw() == (519888, 0x84E7, 415148)
    s.start()
    assert s.read() == (25.08, 0.0, 1006.56)
    # The 64-bit code cannot run so: (1 << 47) * dig_P1 is past even 63-bit small ints.
    micropython.heap_lock()
    try:
        p_int64_q8(s._adc_p, fine, trim)
        allocated = False
    except MemoryError:
        allocated = True
    finally:
        micropython.heap_unlock()
    assert allocated


def test_a_detached_sensor_raises_sensor_error_naming_bus_and_address():
    i2c = bus()
    s = bme280.BME280(i2c)
    _simctl.request("fault", target="i2c0:0x76", spec="detach")
    e = _devtest.raises(SensorError, s.start)
    assert str(e) == WHERE + ": no answer"
    assert isinstance(e, OSError)
    e = _devtest.raises(SensorError, bme280.BME280, i2c)
    assert str(e) == WHERE + ": no answer"
    _simctl.request("clear_faults")
    assert measure(s)[0] == 25.0


def test_a_stuck_bus_raises_sensor_error_with_a_timeout():
    s = bme280.BME280(bus())
    time.sleep_ms(s.start())
    _simctl.request("fault", target="i2c0", spec="stuck")
    e = _devtest.raises(SensorError, s.read)
    assert str(e) == WHERE + ": bus timed out (a line held low)"


def test_a_corrupting_bus_raises_and_one_bad_read_is_survived():
    i2c = bus()
    s = bme280.BME280(i2c)
    # Every byte of every reply has a bit flipped: never a value.
    _simctl.request("fault", target="i2c0:0x76", spec="corrupt")
    time.sleep_ms(s.start())
    e = _devtest.raises(SensorError, s.read)
    if isinstance(e, CrcError):
        assert str(e) == WHERE + ": no two reads agree (corrupted bus; the chip has no CRC)"
    else:
        assert "busy" in str(e), str(e)  # the flip hit the status register's measuring bit
    e = _devtest.raises(SensorError, bme280.BME280, i2c)
    assert isinstance(e, CrcError) or "chip id" in str(e), str(e)
    # One byte in fifty: a read that differs from the next is read again; values stay exact.
    _simctl.request("fault", target="i2c0:0x76", spec="corrupt:0.02")
    reads = model()["data_reads"]
    good = 0
    for _ in range(30):
        try:
            t, h, p = measure(s)
        except SensorError:  # a flipped status bit ("busy") or no two reads agreeing
            continue
        assert t == 25.0 and abs(h - 50.0) <= 0.01 and abs(p - 1013.25) <= 0.02, (t, h, p)
        good += 1
    assert good >= 25, good
    assert model()["data_reads"] - reads > 2 * good  # some needed a third or fourth read


def test_stale_data_repeats_the_last_reading_as_the_chip_would():
    s = bme280.BME280(bus())
    before = measure(s)
    _simctl.request("fault", target="i2c0:0x76", spec="stale")
    _simctl.request("env", temperature_c=30.0, humidity_rh=70.0, pressure_hpa=990.0)
    assert measure(s) == before  # nothing on the bus tells a frozen converter apart
    _simctl.request("clear_faults")
    assert measure(s)[0] == 30.0
