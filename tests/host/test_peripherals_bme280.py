"""The BME280 model on a real I2CBus: registers, timing, modes, IIR filter, deviation, faults,
and the datasheet formulas it shares with the driver (drivers/bme280.py)."""

import importlib.util
import random
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.i2c import I2CBus, I2CNack, I2CTimeout
from host_tools.sim.peripherals.models.bme280 import (
    PARTS,
    SKIPPED_H,
    SKIPPED_TP,
    Bme280,
    Deviation,
    humidity_q10,
    measure_ms,
    pressure_pa_int32,
    pressure_q8_int64,
    t_fine,
    trimming,
)

ADDR = 0x76
DRIVERS = Path(__file__).resolve().parents[2] / "drivers"
# dig_T1..T3, dig_P1..P9 of the BMP280 datasheet's worked example (BST-BMP280-DS001, 3.12);
# the humidity terms are zero (no humidity on a BMP280).
EXAMPLE = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
EXAMPLE += (0,) * 6
PART1 = (28189, 26285, 50, 36635, -10696, 3024, 11092, -241, -7, 12300, -12000, 5000)
PART1 += (75, 338, 0, 380, 50, 30)
X1_FORCED = 0x25  # ctrl_meas: osrs_t x1, osrs_p x1, forced


def setup(**kw):
    clock = Clock()
    env = Environment(temperature_c=25.0, humidity_rh=50.0, pressure_hpa=1013.25)
    bus = I2CBus(0)
    bme = bus.attach(Bme280(clock, env=env, **kw))
    clock.now += 2.0  # start-up time
    return clock, env, bus, bme


def words(data):
    """(adc_P, adc_T, adc_H) from the 8 data bytes 0xF7..0xFE."""
    p = data[0] << 12 | data[1] << 4 | data[2] >> 4
    t = data[3] << 12 | data[4] << 4 | data[5] >> 4
    return p, t, data[6] << 8 | data[7]


def measure(bus, clock, ctrl_hum=0x01, ctrl_meas=X1_FORCED, wait_ms=None):
    """One forced measurement: trigger, wait its maximum time, read the data block."""
    bus.writeto(ADDR, bytes([0xF2, ctrl_hum, 0xF4, ctrl_meas]))
    if wait_ms is None:
        os = [1 << (c - 1) if c else 0 for c in (ctrl_meas >> 5, (ctrl_meas >> 2) & 7, ctrl_hum)]
        wait_ms = measure_ms(*os)
    clock.now += wait_ms
    return words(bus.readfrom_mem(ADDR, 0xF7, 8))


def values(adc, trim=PART1):
    """(°C, %RH, hPa) as the driver computes them from (adc_P, adc_T, adc_H)."""
    adc_p, adc_t, adc_h = adc
    fine = t_fine(adc_t, trim)
    t_c = ((fine * 5 + 128) >> 8) / 100
    return t_c, humidity_q10(adc_h, fine, trim) / 1024, pressure_pa_int32(adc_p, fine, trim) / 100


# -- the datasheet's formulas ------------------------------------------------------------------


def p_double(adc_p, fine, trim):
    # bme280_compensate_P_double ("8.1 Compensation formulas in double precision").
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = trim[3:12]
    var1 = fine / 2.0 - 64000.0
    var2 = var1 * var1 * p6 / 32768.0
    var2 = var2 + var1 * p5 * 2.0
    var2 = var2 / 4.0 + p4 * 65536.0
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0


def h_double(adc_h, fine, trim):
    # bme280_compensate_H_double ("8.1").
    h1, h2, h3, h4, h5, h6 = trim[12:18]
    var = fine - 76800.0
    var = (adc_h - (h4 * 64.0 + h5 / 16384.0 * var)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * var * (1.0 + h3 / 67108864.0 * var))
    )
    var = var * (1.0 - h1 * var / 524288.0)
    return min(100.0, max(0.0, var))


def test_the_trimming_of_a_real_part_is_decoded_as_table_16():
    assert trimming(PARTS[1]) == PART1
    assert trimming(PARTS[2])[12:] == (75, 394, 0, 248, 50, 30)
    # dig_H4 and dig_H5 are signed 12-bit: 0xE4 = 0xFF, 0xE5 = 0x8F, 0xE6 = 0x80.
    nvm = bytearray(PARTS[1])
    nvm[26 + 3 : 26 + 6] = b"\xff\x8f\x80"
    assert trimming(bytes(nvm))[15:17] == (-16 + 0xF, -128 * 16 + 0x8)
    with pytest.raises(ValueError, match="33 bytes"):
        trimming(PARTS[1][:26])


def test_the_bmp280_worked_example():
    # BST-BMP280-DS001 3.12: adc_T 519888 -> t_fine 128422, 25.08 °C; adc_P 415148 ->
    # 100653.27 Pa. That figure is the floating-point formula's, with t_fine not truncated;
    # the integer codes land beside it: int64 100653.25 Pa, int32 100656 Pa.
    fine = t_fine(519888, EXAMPLE)
    assert fine == 128422
    assert (fine * 5 + 128) >> 8 == 2508
    assert pressure_q8_int64(415148, fine, EXAMPLE) == 25767233
    assert pressure_pa_int32(415148, fine, EXAMPLE) == 100656
    untruncated = 128422.28699  # var1 + var2 of the double-precision temperature formula
    assert round(p_double(415148, untruncated, EXAMPLE), 2) == 100653.27
    assert round(p_double(415148, fine, EXAMPLE), 2) == 100653.26


def test_integer_humidity_matches_the_double_precision_formula():
    # No worked example for humidity: the int32 code against "8.1"'s double formula, over the
    # whole ADC range at temperatures across the operating range.
    worst = 0.0
    for adc_t in range(420000, 640001, 20000):
        fine = t_fine(adc_t, PART1)
        for adc_h in range(0, 65536, 512):
            worst = max(
                worst, abs(humidity_q10(adc_h, fine, PART1) / 1024 - h_double(adc_h, fine, PART1))
            )
    assert worst < 0.01  # %RH: the driver's reported resolution


def test_measurement_time_is_appendix_b():
    # "9.1 Measurement time" example: T x1, P x4, no humidity: 11.5 ms typical.
    assert measure_ms(1, 4, 0, typical=True) == pytest.approx(11.5)
    assert measure_ms(1, 4, 0) == pytest.approx(13.325)
    assert measure_ms(1, 1, 1) == pytest.approx(9.3)  # weather monitoring settings
    assert measure_ms(1, 1, 1, typical=True) == pytest.approx(8.0)
    assert measure_ms(16, 16, 16) == pytest.approx(112.8)


# -- the driver's arithmetic, run under CPython ------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    """drivers/bme280.py imported into CPython (its maths only), with micropython.const."""
    saved = {name: sys.modules.get(name) for name in ("micropython", "sensor")}
    fake = types.ModuleType("micropython")
    fake.const = lambda value: value  # type: ignore[attr-defined]
    sys.modules["micropython"] = fake
    try:
        modules = {}
        for name in ("sensor", "bme280"):
            spec = importlib.util.spec_from_file_location(name, DRIVERS / f"{name}.py")
            assert spec is not None and spec.loader is not None
            modules[name] = importlib.util.module_from_spec(spec)
            sys.modules[name] = modules[name]
            spec.loader.exec_module(modules[name])
        yield modules["bme280"]
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        sys.modules.pop("bme280", None)


SMALL_INT = 1 << 30  # MicroPython's small ints on a 32-bit port: -2**30 .. 2**30 - 1


class Tracked(int):
    """An int whose arithmetic records the largest magnitude any result reaches."""

    largest = 0

    @classmethod
    def of(cls, value):
        cls.largest = max(cls.largest, value if value >= 0 else -value - 1)
        return cls(value)


def _tracked(op):
    return lambda self, other: Tracked.of(op(int(self), int(other)))


for _name, _op in {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b,
    "rshift": lambda a, b: a >> b,
    "lshift": lambda a, b: a << b,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
}.items():
    setattr(Tracked, f"__{_name}__", _tracked(_op))
    setattr(Tracked, f"__r{_name}__", _tracked(lambda a, b, op=_op: op(b, a)))
Tracked.__neg__ = lambda self: Tracked.of(-int(self))  # type: ignore[method-assign]


def _plausible_trimmings(n, seed=7):
    # Real parts (above) and random ones spread like the published dumps.
    rng = random.Random(seed)
    out = [PART1, trimming(PARTS[2]), EXAMPLE[:12] + PART1[12:]]
    for _ in range(n):
        t = (rng.randint(26000, 30000), rng.randint(25000, 28000), rng.choice([50, 0, -1000]))
        p = (rng.randint(35000, 39000), rng.randint(-11000, -10000), 3024, rng.randint(2000, 12000))
        p += (rng.randint(-300, 200), -7, rng.choice([9900, 12300, 15500]))
        p += (rng.randint(-15000, -10000), rng.randint(4000, 6000))
        h = (75, rng.randint(330, 420), 0, rng.randint(240, 400), rng.randint(0, 60), 30)
        out.append(t + p + h)
    return out


def test_the_drivers_compensation_is_the_datasheets_bit_for_bit(driver):
    rng = random.Random(3)
    for trim in _plausible_trimmings(10):
        for _ in range(2000):
            adc_t, adc_p = rng.randrange(1 << 20), rng.randrange(1 << 20)
            adc_h = rng.randrange(1 << 16)
            fine = t_fine(adc_t, trim)
            assert driver.fine_temperature(adc_t, trim) == fine
            assert driver.pressure_pa(adc_p, fine, trim) == pressure_pa_int32(adc_p, fine, trim)
            assert driver.humidity_q10(adc_h, fine, trim) == humidity_q10(adc_h, fine, trim)


def test_the_drivers_compensation_stays_in_small_ints_across_the_operating_range(driver):
    # The words a part gives across -40..85 °C, 300..1100 hPa and 0..100 %RH (found with the
    # model's inversion, 20-bit words), through the driver's code with every intermediate
    # watched; the datasheet's own int32 code on the same words does not fit, which is why the
    # driver splits some of its products.
    driver_largest = datasheet_largest = 0
    for trim in _plausible_trimmings(12):
        tracked = tuple(Tracked(x) for x in trim)
        bme = Bme280(Clock(), env=Environment(), nvm=PARTS[1])
        bme.trim = trim
        for t_c in range(-40, 86, 5):
            for hpa in range(300, 1101, 100):
                for rh in range(0, 101, 20):
                    bme.env.set(temperature_c=t_c, pressure_hpa=hpa, humidity_rh=rh)
                    bme.values[0xF4], bme._osrs_h = 0xB4, 5  # x16, filter off: 20-bit words
                    adc_p, adc_t, adc_h = (Tracked(x) for x in bme._convert())
                    Tracked.largest = 0
                    fine = driver.fine_temperature(adc_t, tracked)
                    driver.pressure_pa(adc_p, fine, tracked)
                    driver.humidity_q10(adc_h, fine, tracked)
                    driver_largest = max(driver_largest, Tracked.largest)
                    Tracked.largest = 0
                    pressure_pa_int32(adc_p, int(fine), tracked)
                    datasheet_largest = max(datasheet_largest, Tracked.largest)
    assert SMALL_INT // 2 < driver_largest < SMALL_INT
    assert datasheet_largest >= 3 * SMALL_INT  # (p << 1) / var1 reaches 2**32
    # The int64 code is far beyond: (1 << 47) * dig_P1 needs more than 62 bits.
    Tracked.largest = 0
    pressure_q8_int64(Tracked(300000), int(fine), tracked)
    assert Tracked.largest >= 1 << 62


# -- the model on the bus ----------------------------------------------------------------------


def test_the_register_map_after_power_on():
    clock, _, bus, bme = setup()
    assert bus.readfrom_mem(ADDR, 0xD0, 1) == b"\x60"
    assert bus.readfrom_mem(ADDR, 0x88, 26) == PARTS[1][:26]
    assert bus.readfrom_mem(ADDR, 0xE1, 7) == PARTS[1][26:]
    assert (
        bus.readfrom_mem(ADDR, 0xF2, 4) == b"\x00\x00\x00\x00"
    )  # ctrl_hum, status, ctrl_meas, config
    # Data registers at their reset values: 0x80000, 0x80000, 0x8000.
    assert words(bus.readfrom_mem(ADDR, 0xF7, 8)) == (SKIPPED_TP, SKIPPED_TP, SKIPPED_H)
    # Read-only registers ignore writes (acknowledged), as do reserved ones.
    bus.writeto(ADDR, b"\xd0\x58\x88\x00\xf7\x12")
    assert bus.readfrom_mem(ADDR, 0xD0, 1) == b"\x60"
    assert bus.readfrom_mem(ADDR, 0x88, 1) == PARTS[1][:1]
    assert bus.readfrom_mem(ADDR, 0xF7, 1) == b"\x80"
    assert bme.describe()["mode"] == "sleep"


def test_writes_are_register_data_pairs():
    # "6.2.1 I2C write": one transaction sets config and ctrl_hum, not config and its neighbour.
    _, _, bus, _ = setup()
    bus.writeto(ADDR, b"\xf5\x10\xf2\x03")
    assert bus.readfrom_mem(ADDR, 0xF5, 1) == b"\x10"
    assert bus.readfrom_mem(ADDR, 0xF2, 1) == b"\x03"
    assert bus.readfrom_mem(ADDR, 0xF4, 1) == b"\x00"


def test_no_answer_during_start_up_and_after_a_soft_reset():
    clock = Clock()
    bus = I2CBus(0)
    bus.attach(Bme280(clock, env=Environment()))
    with pytest.raises(I2CNack):
        bus.readfrom_mem(ADDR, 0xD0, 1)
    clock.now += 1.99
    assert ADDR not in bus.scan()
    clock.now += 0.01
    assert bus.scan() == [ADDR]
    bus.writeto(ADDR, b"\xf5\x10\xf2\x01")
    bus.writeto(ADDR, b"\xe0\x00")  # only 0xB6 resets
    assert bus.readfrom_mem(ADDR, 0xF5, 1) == b"\x10"
    bus.writeto(ADDR, b"\xe0\xb6")
    with pytest.raises(I2CNack):
        bus.readfrom_mem(ADDR, 0xF5, 1)
    clock.now += 2.0
    assert bus.readfrom_mem(ADDR, 0xF2, 4) == b"\x00\x00\x00\x00"


def test_a_forced_measurement_is_busy_for_its_maximum_time_then_latched():
    clock, _, bus, bme = setup()
    t0 = clock.now
    wait = measure_ms(1, 1, 1)
    bus.writeto(ADDR, bytes([0xF2, 0x01, 0xF4, X1_FORCED]))
    for elapsed in (0.0, 4.0, wait - 0.01):
        clock.now = t0 + elapsed
        assert bus.readfrom_mem(ADDR, 0xF3, 1) == b"\x08"  # measuring
        assert bus.readfrom_mem(ADDR, 0xF4, 1) == bytes([X1_FORCED])
        # The data registers still hold the previous result (here the reset values).
        assert words(bus.readfrom_mem(ADDR, 0xF7, 8)) == (SKIPPED_TP, SKIPPED_TP, SKIPPED_H)
    clock.now = t0 + wait
    assert bus.readfrom_mem(ADDR, 0xF3, 1) == b"\x00"
    assert bus.readfrom_mem(ADDR, 0xF4, 1) == bytes([X1_FORCED & ~3])  # back to sleep
    t_c, rh, hpa = values(words(bus.readfrom_mem(ADDR, 0xF7, 8)))
    assert (t_c, round(rh, 2)) == (25.0, 50.0)
    assert hpa == pytest.approx(1013.25, abs=0.03)  # 16-bit pressure at x1: 2.6 Pa steps
    assert bme.measurements == 1
    # The typical timing option: 8 ms for x1/x1/x1.
    clock, _, bus, _ = setup(typical_timing=True)
    bus.writeto(ADDR, bytes([0xF2, 0x01, 0xF4, X1_FORCED]))
    clock.now += 7.99
    assert bus.readfrom_mem(ADDR, 0xF3, 1) == b"\x08"
    clock.now += 0.01
    assert bus.readfrom_mem(ADDR, 0xF3, 1) == b"\x00"


def test_values_are_the_environment_in_words_the_driver_maps_back():
    clock, env, bus, _ = setup()
    x16 = 0xB5  # osrs_t x16, osrs_p x16, forced: 20-bit words
    cases = [(-40.0, 0.0, 300.0), (-12.5, 33.3, 650.0), (0.0, 100.0, 1100.0)]
    cases += [(21.37, 48.12, 1013.25), (65.0, 80.0, 900.0), (85.0, 5.0, 1000.0)]
    for t_c, rh, hpa in cases:
        env.set(temperature_c=t_c, humidity_rh=rh, pressure_hpa=hpa)
        got = values(measure(bus, clock, ctrl_hum=0x05, ctrl_meas=x16))
        assert got[0] == pytest.approx(t_c, abs=0.005)
        assert got[1] == pytest.approx(rh, abs=0.01)
        assert got[2] == pytest.approx(hpa, abs=0.005)


def test_resolution_without_the_filter_is_16_plus_osrs_minus_1_bits():
    clock, env, bus, _ = setup()
    env.set(temperature_c=21.37, pressure_hpa=987.65)
    low = [measure(bus, clock, ctrl_meas=X1_FORCED) for _ in range(3)]
    assert all(p % 16 == 0 and t % 16 == 0 for p, t, _ in low)  # x1: xlsb bits read 0
    high = [measure(bus, clock, ctrl_meas=0xB5) for _ in range(3)]  # x16: 20 bits
    assert any(p % 16 or t % 16 for p, t, _ in high)


def test_ctrl_hum_takes_effect_at_the_next_ctrl_meas_write():
    clock, _, bus, _ = setup()
    # After power-on ctrl_hum is 0: humidity is skipped.
    bus.writeto(ADDR, bytes([0xF4, X1_FORCED]))
    clock.now += 10
    assert words(bus.readfrom_mem(ADDR, 0xF7, 8))[2] == SKIPPED_H
    bus.writeto(ADDR, b"\xf2\x01")  # not yet in force ...
    bus.writeto(ADDR, bytes([0xF4, 0x24]))  # ... until this ctrl_meas write (sleep mode)
    bus.writeto(ADDR, b"\xf2\x00")  # a later change waits for the next ctrl_meas write
    bus.writeto(ADDR, bytes([0xF4, X1_FORCED]))
    clock.now += 10
    assert words(bus.readfrom_mem(ADDR, 0xF7, 8))[2] == SKIPPED_H
    _, _, adc_h = measure(bus, clock)  # ctrl_hum 1 then ctrl_meas
    assert adc_h != SKIPPED_H


def test_skipped_temperature_and_pressure_read_0x80000():
    clock, _, bus, _ = setup()
    adc_p, adc_t, adc_h = measure(bus, clock, ctrl_meas=0x21)  # osrs_t x1, osrs_p skipped
    assert adc_p == SKIPPED_TP and adc_t != SKIPPED_TP and adc_h != SKIPPED_H
    adc_p, adc_t, _ = measure(bus, clock, ctrl_meas=0x05)  # osrs_t skipped, osrs_p x1
    assert adc_t == SKIPPED_TP and adc_p != SKIPPED_TP


def test_a_mode_change_during_a_measurement_waits_for_its_end():
    clock, env, bus, bme = setup()
    t0 = clock.now
    bus.writeto(ADDR, bytes([0xF2, 0x01, 0xF4, X1_FORCED]))
    clock.now += 5.0
    env.set(temperature_c=30.0)
    bus.writeto(ADDR, bytes([0xF4, X1_FORCED]))  # deferred to the end of the first
    bus.writeto(ADDR, bytes([0xF2, 0x00, 0xF4, 0x24]))  # ignored while that waits
    clock.now = t0 + 9.301
    assert bus.readfrom_mem(ADDR, 0xF3, 1) == b"\x08"  # the second measurement runs
    first = values(words(bus.readfrom_mem(ADDR, 0xF7, 8)))
    assert first[0] == 25.0
    clock.now = t0 + 2 * 9.3 + 0.001
    second = values(words(bus.readfrom_mem(ADDR, 0xF7, 8)))
    assert second[0] == 30.0 and second[1] == pytest.approx(50.0, abs=0.01)  # H still x1
    assert bus.readfrom_mem(ADDR, 0xF2, 1) == b"\x01"
    assert bme.measurements == 2


def test_the_iir_filter_runs_across_forced_measurements_and_resets_on_config_writes():
    clock, env, bus, bme = setup()
    bus.writeto(ADDR, b"\xf5\x10")  # filter coefficient 16 (code 4)
    x16 = 0xB5
    first = measure(bus, clock, ctrl_hum=0x05, ctrl_meas=x16)  # passes unchanged: 25 °C
    assert values(first)[0] == 25.0
    env.set(temperature_c=35.0, humidity_rh=70.0, pressure_hpa=1000.0)
    # The words a twin without the filter gives for the new conditions.
    twin = Bme280(Clock(), env=Environment(temperature_c=35.0, humidity_rh=70.0))
    twin.env.set(pressure_hpa=1000.0)
    twin.values[0xF4], twin._osrs_h = x16, 5
    target = twin._convert()
    expect_p, expect_t = float(first[0]), float(first[1])
    temps = []
    for _ in range(5):
        adc_p, adc_t, adc_h = measure(bus, clock, ctrl_hum=0x05, ctrl_meas=x16)
        # "3.4.4 IIR filter", coefficient 16, on the words of T and P; none on humidity.
        expect_p = (expect_p * 15 + target[0]) / 16
        expect_t = (expect_t * 15 + target[1]) / 16
        assert (adc_p, adc_t, adc_h) == (round(expect_p), round(expect_t), target[2])
        temps.append(values((adc_p, adc_t, adc_h))[0])
    assert temps == sorted(temps) and 25.0 < temps[0] < temps[-1] < 32.0  # still far: slow
    bus.writeto(ADDR, b"\xf5\x10")  # writing config resets the filter
    assert values(measure(bus, clock, ctrl_hum=0x05, ctrl_meas=x16))[0] == 35.0


def test_normal_mode_cycles_measurement_and_standby():
    clock, env, bus, bme = setup()
    bus.writeto(ADDR, b"\xf5\x20")  # t_sb 001: 62.5 ms standby, filter off
    bus.writeto(ADDR, bytes([0xF2, 0x01, 0xF4, 0x27]))  # x1/x1/x1, normal
    clock.now += 9.301
    assert values(words(bus.readfrom_mem(ADDR, 0xF7, 8)))[0] == 25.0
    assert bus.readfrom_mem(ADDR, 0xF4, 1) == b"\x27"  # stays in normal mode
    env.set(temperature_c=20.0)
    clock.now += 62.5 + 9.3  # one cycle later, without any write
    assert values(words(bus.readfrom_mem(ADDR, 0xF7, 8)))[0] == 20.0
    bus.writeto(ADDR, b"\xf5\x00")  # config writes in normal mode are ignored (may be)
    assert bus.readfrom_mem(ADDR, 0xF5, 1) == b"\x20"
    clock.now += 3_600_000  # an hour of cycles, caught up in a few
    assert bme.describe()["measurements"] < 100
    bus.writeto(ADDR, bytes([0xF4, 0x24]))  # to sleep (after the running measurement, if any)
    clock.now += 10
    n = bme.measurements
    clock.now += 1000
    assert bme.describe()["measurements"] == n and bme.describe()["mode"] == "sleep"


def test_a_deviation_is_applied_and_its_noise_shrinks_with_oversampling():
    clock, env, bus, _ = setup(temperature=Deviation(offset=0.5, gain=1.01))
    env.set(temperature_c=20.0)
    assert values(measure(bus, clock, ctrl_meas=0xB5))[0] == pytest.approx(20.7, abs=0.006)

    def spread(ctrl_meas, seed):
        clock, _, bus, _ = setup(pressure=Deviation(noise=0.05), noise_seed=seed)
        hpa = [values(measure(bus, clock, ctrl_meas=ctrl_meas))[2] for _ in range(40)]
        mean = sum(hpa) / len(hpa)
        return (sum((x - mean) ** 2 for x in hpa) / len(hpa)) ** 0.5, hpa

    sd1, run1 = spread(0x25, 1)  # pressure x1
    assert spread(0x25, 1)[1] == run1  # seeded: reproducible
    sd16, _ = spread(0x35, 1)  # pressure x16: noise / 4
    assert 0.03 < sd1 < 0.08
    assert sd16 < sd1 / 2


def test_faults_detach_corrupt_stuck_and_stale():
    clock, env, bus, bme = setup()
    bme.apply_fault(Detached())
    with pytest.raises(I2CNack):
        bus.readfrom_mem(ADDR, 0xD0, 1)
    bme.clear_faults()

    bme.apply_fault(CorruptReplies())
    assert bus.readfrom_mem(ADDR, 0xD0, 1) != b"\x60"  # every byte has a bit flipped
    bme.clear_faults()

    bme.apply_fault(StuckBus())
    with pytest.raises(I2CTimeout):
        bus.writeto(ADDR, b"\xf4\x25")
    bme.clear_faults()

    before = measure(bus, clock)
    bme.apply_fault(StaleData())
    env.set(temperature_c=30.0, humidity_rh=80.0, pressure_hpa=990.0)
    assert measure(bus, clock) == before  # the same words again, whatever the world does
    bme.clear_faults()
    assert values(measure(bus, clock))[0] == 30.0


def test_a_real_word_can_be_the_reset_value():
    # One temperature gives exactly the word 0x80000 at x1 (22.96 °C on part 1): the chip sends
    # it as any other; a host cannot tell it from "not measured".
    clock, env, bus, _ = setup()
    env.set(temperature_c=22.96)
    assert measure(bus, clock)[1] == SKIPPED_TP


def test_the_model_is_registered_for_attach_by_name():
    kind, factory = MODELS["bme280"]
    assert kind == "i2c"
    vb = SimpleNamespace(clock=SimpleNamespace(now_ms=Clock()))
    assert factory(vb, 0, 0).address == 0x76
    assert factory(vb, 0, 0x77).address == 0x77
    assert factory(vb, 0, 0, part=2).trim == trimming(PARTS[2])
    dev = factory(vb, 0, 0, temperature={"offset": 0.4}, pressure={"noise": 0.1})
    assert dev.temperature == Deviation(offset=0.4) and dev.pressure == Deviation(noise=0.1)
    assert factory(vb, 0, 0, typical_timing=True).typical_timing
    with pytest.raises(ValueError, match="part"):
        factory(vb, 0, 0, part=3)
    with pytest.raises(ValueError, match="0x76 or 0x77"):
        factory(vb, 0, 0x44)
    described = factory(vb, 0, 0).describe()
    assert (described["mode"], described["measuring"], described["measurements"]) == (
        "sleep",
        False,
        0,
    )
    assert described["filter"] == 1
