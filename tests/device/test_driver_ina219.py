# The INA219 driver (drivers/ina219.py) against the virtual board's INA219 model, on both boards.
import time

import _devtest
import _simctl
import ina219
import machine
import micropython
from sensor import ConfigError, CrcError, RangeError, SensorError

ADDR = 0x40
WHERE = "ina219@i2c 0x40"
_attached = {}


def attach(addr, **options):
    # One model per address, attached once per node (options: shunt_ohms, rail_v).
    if addr not in _attached:
        _simctl.request("attach", model="ina219", bus="i2c0", addr=addr, **options)
        _attached[addr] = True


def bus():
    # The model on i2c0 at 0x40 (0.1 Ohm, on the battery rail), no fault, a known world.
    if not _attached:
        attach(ADDR)
        _devtest.sensor_rail(True)
        time.sleep_ms(ina219.INA219.WARMUP_MS)
    _simctl.request("clear_faults")
    _simctl.request("env", supply_v=3.7, load_current_ma=45.0)
    return machine.I2C(0)


def model(addr=ADDR):
    # The model's own account of itself (config, calibration, mode, conversions, reads).
    for i2c in _simctl.request("status")["hardware"]["i2c"]:
        for dev in i2c["devices"]:
            if dev["address"] == addr:
                return dev
    raise AssertionError("no ina219 at 0x%02x" % addr)


def measure(m):
    time.sleep_ms(m.start())
    return m.read()


def check(m, rail_v, load_ma, shunt_ohms=0.1):
    # A reading against the world, within the datasheet's maximum errors at 25 °C (INA219A,
    # "Electrical Characteristics"): bus voltage 0.5 %, current 0.5 %, each plus its LSBs;
    # power (the chip's |current| * bus) within both. The bus voltage is IN-, after the shunt.
    v, a, w = measure(m)
    i = load_ma / 1000
    v_in = max(0.0, rail_v - i * shunt_ohms)
    _, i_lsb, p_lsb = m.RESOLUTION
    assert abs(v - v_in) <= 0.005 * v_in + 0.004, (rail_v, load_ma, v)
    assert abs(a - i) <= 0.005 * abs(i) + 2 * i_lsb, (rail_v, load_ma, a)
    assert abs(w - abs(i) * v_in) <= 0.01 * abs(i) * v_in + 2 * p_lsb, (rail_v, load_ma, w)
    counts, current, power, shunt = m.raw()
    assert v == counts * 0.004
    assert shunt == round(i * shunt_ohms * 100000)  # 10 uV counts, as the model converts


def test_the_driver_has_the_common_shape_and_checks_identity_by_the_reset_value():
    i2c = bus()
    m = ina219.INA219(i2c)
    assert m.KIND == "ina219"
    assert m.QUANTITIES == ("voltage", "current", "power")
    assert m.UNITS == ("V", "A", "W")
    assert m.WARMUP_MS == 1
    # The default calibration: 0.1 Ohm, 3.2 A -> PGA /8, Current_LSB 100 uA, Cal 4096, 2 mW.
    assert m.RESOLUTION == (0.004, 0.0001, 0.002) == ina219.INA219.RESOLUTION
    dev = model()
    assert dev["calibration"] == 4096
    assert dev["config"] == "3998"  # 32 V, /8, 12-bit shunt and bus, power-down
    assert dev["mode"] == "power-down"
    # No ID register: a chip that does not read 0x399F after the reset is not an INA219.
    e = _devtest.raises(SensorError, ina219.INA219, _FakeI2C([0] * 6, por=0x0000), 0x41)
    assert str(e) == "ina219@i2c 0x41: not an INA219 (configuration 0x0000 after reset, not 0x399f)"


def test_the_datasheet_calibration_and_its_example_circuit_exactly():
    # "Programming the Calibration Register" with Current_LSB rounded up to 1, 2, 5 * 10^n nA.
    assert ina219.calibrate(0.1, 3.2) == (3, 100000, 4096)
    assert ina219.calibrate(0.1, 2.0) == (3, 100000, 4096)  # 61 uA minimum -> 100 uA
    assert ina219.calibrate(0.1, 0.4) == (0, 20000, 20480)  # 40 mV: PGA /1
    assert ina219.calibrate(0.5, 0.1) == (1, 5000, 16384)
    assert ina219.calibrate(0.001, 10) == (0, 1000000, 40960)  # 500 uA would need Cal 81920
    assert ina219.calibrate(0.1, 0.333) == (0, 20000, 20480)
    # "Register Results for the Example Circuit": 10 A through 2 mOhm on a 12 V bus, 16 V range,
    # PGA /1 (40 mV), Current_LSB 1 mA, Cal 20480 (5000h). The driver gets there from 20 A, the
    # most a 2 mOhm shunt shows within 40 mV.
    assert ina219.calibrate(0.002, 20) == (0, 1000000, 20480)
    # The virtual world stops at 5 A: the model's shunt is 4 mOhm, the same 20 mV drop.
    i2c = bus()
    attach(0x4A, shunt_ohms=0.004, rail_v=12.0)
    _simctl.request("env", load_current_ma=5000.0)
    m = ina219.INA219(i2c, 0x4A, shunt_ohms=0.002, max_current_a=20, bus_range=16)
    assert model(0x4A)["calibration"] == 0x5000
    m.start()
    assert model(0x4A)["config"] == "019b"  # the datasheet's 019Fh, triggered instead
    time.sleep_ms(2)
    v, a, w = m.read()
    # Shunt 07D0h (20 mV), bus 0BB3h (11.98 V), current 2710h (10.0 A), power 1766h (119.8 W).
    assert m.raw() == (2995, 10000, 5990, 2000)
    assert abs(v - 11.98) < 1e-6 and abs(a - 10.0) < 1e-6 and abs(w - 119.8) < 1e-4
    assert m.RESOLUTION == (0.004, 0.001, 0.02)


def test_readings_follow_the_environment_within_the_datasheet_accuracy():
    i2c = bus()
    m = ina219.INA219(i2c)
    for load_ma in (-3000.0, -1000.0, -45.0, 0.0, 1.0, 45.0, 450.0, 1000.0, 3100.0):
        _simctl.request("env", supply_v=3.7, load_current_ma=load_ma)
        check(m, 3.7, load_ma)
    for supply_v in (0.5, 3.0, 4.2, 5.5):
        _simctl.request("env", supply_v=supply_v, load_current_ma=250.0)
        check(m, supply_v, 250.0)
    # Other rails, 0 to the chip's 26 V, each on its own part (addresses 0x41..0x45).
    _simctl.request("env", load_current_ma=100.0)
    for addr, rail_v in ((0x41, 0.0), (0x42, 5.0), (0x43, 12.0), (0x44, 20.0), (0x45, 26.0)):
        attach(addr, rail_v=rail_v)
        check(ina219.INA219(i2c, addr), rail_v, 100.0)
    # The 16 V range and a 10 mOhm shunt with its own calibration (PGA /1, 200 uA).
    attach(0x46, shunt_ohms=0.01, rail_v=12.0)
    m = ina219.INA219(i2c, 0x46, shunt_ohms=0.01, max_current_a=4, bus_range=16)
    assert m.RESOLUTION == (0.004, 0.0002, 0.004)
    for load_ma in (-3900.0, -500.0, 20.0, 2000.0, 3900.0):
        _simctl.request("env", load_current_ma=load_ma)
        check(m, 12.0, load_ma, shunt_ohms=0.01)


def test_the_pga_range_is_the_smallest_holding_shunt_times_max_current():
    i2c = bus()
    for max_a, pg in ((0.1, 0), (0.4, 0), (0.5, 1), (0.8, 1), (1.6, 2), (2.0, 3), (3.2, 3)):
        ina219.INA219(i2c, max_current_a=max_a)
        assert (int(model()["config"], 16) >> 11) & 0b11 == pg, (max_a, pg)
    e = _devtest.raises(ConfigError, ina219.INA219, i2c, max_current_a=3.3)
    assert "beyond the 320 mV range" in str(e)


def test_bad_options_raise_config_error_before_the_bus_is_touched():
    i2c = bus()
    _simctl.request("fault", target="i2c0:0x40", spec="detach")  # any bus use would fail
    for options in (
        {"bus_range": 24},
        {"bus_range": True},
        {"samples": 3},
        {"samples": 256},
        {"samples": 2.0},
        {"bits": "12"},
        {"bits": 8},
        {"bits": 10, "samples": 4},
        {"shunt_ohms": 0},
        {"shunt_ohms": "0.1"},
        {"max_current_a": -1.0},
        {"max_current_a": 1e-9},
        {"gain": 8},
    ):
        e = _devtest.raises(ConfigError, ina219.INA219, i2c, **options)
        assert isinstance(e, ValueError) and str(e).startswith("ina219 "), options
    e = _devtest.raises(ConfigError, ina219.INA219, i2c, gain=8)
    assert str(e) == "ina219 has no option gain"
    e = _devtest.raises(SensorError, ina219.INA219, i2c)  # good options: now the bus
    assert str(e) == WHERE + ": no answer"


def test_each_adc_setting_waits_its_maximum_conversion_time():
    # Shunt then bus, each at "Electrical Characteristics" maxima (93/163/304/586 us, n * 586 us
    # averaged), plus 40 us out of power-down, in whole ms rounded up.
    i2c = bus()
    for options, field, wait_ms in (
        ({}, 0b0011, 2),
        ({"bits": 9}, 0b0000, 1),
        ({"bits": 10}, 0b0001, 1),
        ({"bits": 11}, 0b0010, 1),
        ({"samples": 2}, 0b1001, 3),
        ({"samples": 16}, 0b1100, 19),
        ({"samples": 128}, 0b1111, 151),
    ):
        m = ina219.INA219(i2c, **options)
        config = int(model()["config"], 16)
        assert (config >> 7) & 0xF == field and (config >> 3) & 0xF == field, options
        assert m.start() == wait_ms, options
        time.sleep_ms(wait_ms)
        v, a, _ = m.read()
        assert abs(v - 3.6955) <= 0.03 and abs(a - 0.045) <= 0.001, (options, v, a)


def test_reading_too_early_is_busy_and_the_conversion_survives():
    i2c = bus()
    m = ina219.INA219(i2c, samples=128)  # 151 ms: no host is that slow
    _devtest.raises(RuntimeError, m.read)  # nothing triggered
    _devtest.raises(RuntimeError, m.raw)  # nothing read
    wait_ms = m.start()
    e = _devtest.raises(SensorError, m.read)  # CNVR not yet set
    assert str(e).startswith(WHERE + ": busy for ")
    assert model()["converting"]
    time.sleep_ms(wait_ms)
    v, a, _ = m.read()
    assert abs(a - 0.045) <= 0.0002
    # The power register was read: CNVR is clear again, and a result is read once.
    assert not i2c.readfrom_mem(ADDR, 0x02, 2)[1] & 0x02
    _devtest.raises(RuntimeError, m.read)


def test_the_chip_is_powered_down_after_construction_and_after_each_read():
    i2c = bus()
    m = ina219.INA219(i2c)  # the reset left it converting continuously: powered down again
    before = model()
    assert before["mode"] == "power-down" and not before["converting"]
    time.sleep_ms(50)
    assert model()["conversions"] == before["conversions"]  # nothing converts while down
    m.start()
    assert model()["mode"] == "shunt and bus, triggered"
    time.sleep_ms(2)
    m.read()
    after = model()
    assert after["mode"] == "power-down"
    assert after["conversions"] == before["conversions"] + 1  # one triggered conversion
    time.sleep_ms(50)
    assert model()["conversions"] == after["conversions"]


def test_a_current_beyond_the_calibration_sets_ovf_and_raises_range_error():
    # 0.1 Ohm, 0.5 A: PGA /2 (0.8 A), Current_LSB 20 uA, so the current register ends at 0.655 A.
    i2c = bus()
    m = ina219.INA219(i2c, max_current_a=0.5)
    _simctl.request("env", load_current_ma=700.0)
    e = _devtest.raises(RangeError, measure, m)
    assert str(e) == WHERE + ": math overflow, current beyond the calibration (max_current_a)"
    assert m.raw()[3] == 7000  # the shunt register is good: 70 mV
    assert i2c.readfrom_mem(ADDR, 0x02, 2)[1] & 0x01  # OVF, from the chip
    _simctl.request("env", load_current_ma=-700.0)
    _devtest.raises(RangeError, measure, m)
    _simctl.request("env", load_current_ma=600.0)
    check(m, 3.7, 600.0)


def test_a_shunt_voltage_beyond_the_pga_range_raises_range_error():
    # 0.1 Ohm, 0.4 A: PGA /1, +-40 mV; 0.5 A drops 50 mV, and the register stops at 4000.
    i2c = bus()
    m = ina219.INA219(i2c, max_current_a=0.4)
    for load_ma, counts in ((500.0, 4000), (-500.0, -4000), (5000.0, 4000)):
        _simctl.request("env", load_current_ma=load_ma)
        e = _devtest.raises(RangeError, measure, m)
        assert str(e) == WHERE + ": shunt voltage at the PGA's full scale (+-40 mV)"
        assert m.raw()[3] == counts
    _simctl.request("env", load_current_ma=390.0)
    check(m, 3.7, 390.0)


def test_a_bus_voltage_beyond_the_16_v_range_raises_range_error():
    i2c = bus()
    attach(0x47, rail_v=20.0)
    m = ina219.INA219(i2c, 0x47, bus_range=16)
    e = _devtest.raises(RangeError, measure, m)
    assert str(e) == "ina219@i2c 0x47: bus voltage at the 16 V range's full scale"
    assert m.raw()[0] == 4000
    check(ina219.INA219(i2c, 0x47), 20.0, 45.0)  # the 32 V range holds it


def test_a_detached_sensor_raises_sensor_error_naming_bus_and_address():
    i2c = bus()
    m = ina219.INA219(i2c)
    _simctl.request("fault", target="i2c0:0x40", spec="detach")
    e = _devtest.raises(SensorError, m.start)
    assert str(e) == WHERE + ": no answer"
    assert isinstance(e, OSError)
    e = _devtest.raises(SensorError, ina219.INA219, i2c)
    assert str(e) == WHERE + ": no answer"
    _simctl.request("clear_faults")
    check(m, 3.7, 45.0)


def test_a_stuck_bus_raises_sensor_error_with_a_timeout():
    i2c = bus()
    m = ina219.INA219(i2c)
    time.sleep_ms(m.start())
    _simctl.request("fault", target="i2c0", spec="stuck")
    e = _devtest.raises(SensorError, m.read)
    assert str(e) == WHERE + ": bus timed out (a line held low)"
    _simctl.request("clear_faults")
    _simctl.request("fault", target="i2c0:0x40", spec="stuck")  # the chip holding SDA
    _devtest.raises(SensorError, m.start)


def test_corrupt_replies_are_read_again_then_raise_crc_error():
    i2c = bus()
    m = ina219.INA219(i2c)
    time.sleep_ms(m.start())
    _simctl.request("fault", target="i2c0:0x40", spec="corrupt")
    before = model()["register_reads"]
    e = _devtest.raises(CrcError, m.read)
    assert str(e) == WHERE + ": register 0x02 differs between two reads"
    assert isinstance(e, SensorError)
    assert model()["register_reads"] - before == 4  # two pairs of reads of the bus register


def test_a_one_off_corruption_is_survived_by_the_second_pair_of_reads():
    i2c = bus()
    m = ina219.INA219(i2c)
    clean = measure(m)
    clean_raw = m.raw()
    # Each byte corrupted with p = 0.05: over 40 reads many first pairs differ and the second
    # pair agrees; no read may ever return a value other than the clean one.
    _simctl.request("fault", target="i2c0:0x40", spec="corrupt:0.05")
    survived = 0
    failed = 0
    for _ in range(40):
        before = model()["register_reads"]
        try:
            values = measure(m)
        except SensorError:
            failed += 1
            continue
        assert values == clean and m.raw() == clean_raw, (values, m.raw())
        if model()["register_reads"] - before > 10:  # 5 registers, read twice each
            survived += 1
    assert survived > 0 and failed < 40


def test_stale_data_repeats_the_last_reading():
    i2c = bus()
    m = ina219.INA219(i2c)
    first = measure(m)
    _simctl.request("fault", target="i2c0:0x40", spec="stale")
    _simctl.request("env", supply_v=4.1, load_current_ma=-800.0)
    assert measure(m) == first  # the chip converts, with its last counts
    _simctl.request("clear_faults")
    check(m, 4.1, -800.0)


def test_a_power_cycle_since_start_is_reported_as_a_lost_configuration():
    i2c = bus()
    m = ina219.INA219(i2c)
    m.start()
    _devtest.sensor_rail(False)
    _devtest.sensor_rail(True)  # every chip back at its power-on reset: converting again
    time.sleep_ms(ina219.INA219.WARMUP_MS + 2)
    e = _devtest.raises(SensorError, m.read)
    assert str(e) == WHERE + ": configuration lost (the chip was reset)", str(e)
    _devtest.raises(RuntimeError, m.read)
    check(ina219.INA219(i2c), 3.7, 45.0)  # a fresh driver, as the firmware builds each wake


class _FakeI2C:
    # The INA219's registers behind a pointer that stays, allocating nothing itself.
    def __init__(self, regs, por=0x399F):
        self.regs = regs
        self.ptr = 0
        self.por = por  # what the configuration reads after RST

    def writeto_mem(self, addr, reg, buf):
        value = (buf[0] << 8) | buf[1]
        self.regs[reg] = self.por if value & 0x8000 else value

    def readfrom_mem_into(self, addr, reg, buf):
        self.ptr = reg
        self.readfrom_into(addr, buf)

    def readfrom_into(self, addr, buf):
        buf[0] = self.regs[self.ptr] >> 8
        buf[1] = self.regs[self.ptr] & 0xFF


def test_fetching_the_registers_allocates_nothing():
    # The datasheet's example registers; the bus reads and checks run with the heap locked.
    # (start() is left out: the virtual board's time.ticks_ms() allocates, the ports' does not.)
    fake = _FakeI2C([0, 0, 0, 0, 0, 0])
    m = ina219.INA219(fake, shunt_ohms=0.002, max_current_a=20, bus_range=16)
    assert fake.regs[0] == 0x0198 and fake.regs[5] == 20480
    m.start()
    fake.regs[1:5] = [0x07D0, 0x5D98 | 0x02, 0x1766, 0x2710]
    micropython.heap_lock()
    try:
        m._fetch()
    finally:
        micropython.heap_unlock()
    assert m.raw() == (2995, 10000, 5990, 2000)
    m.start()
    v, a, w = m.read()
    assert abs(v - 11.98) < 1e-6 and abs(a - 10.0) < 1e-6 and abs(w - 119.8) < 1e-4
    assert fake.regs[0] == 0x0198  # powered down again
