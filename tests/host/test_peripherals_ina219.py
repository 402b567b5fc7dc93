"""The INA219 model on a real I2CBus: registers, arithmetic, modes, timing, deviation, faults."""

import statistics
from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.deviation import Deviation
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.i2c import I2CBus, I2CNack, I2CTimeout
from host_tools.sim.peripherals.models.ina219 import (
    BUS,
    CALIBRATION,
    CNVR,
    CONFIG,
    CURRENT,
    OVF,
    POWER,
    SHUNT,
    Ina219,
    conversion_ms,
)

ADDR = 0x40
# Configurations: BRNG | PG << 11 | BADC << 7 | SADC << 3 | MODE.
TRIGGERED_12BIT_32V_PGA8 = 0x399B
POWER_DOWN_12BIT_32V_PGA8 = 0x3998
TWELVE_BIT_MS = 0.586  # maximum, "Electrical Characteristics"


def setup(env=None, **kw):
    clock = Clock()
    env = env or Environment(supply_v=3.7, load_current_ma=45.0)
    bus = I2CBus(0)
    ina = bus.attach(Ina219(clock, env=env, **kw))
    return clock, env, bus, ina


def reg(bus, r):
    return int.from_bytes(bus.readfrom_mem(ADDR, r, 2), "big")


def signed(word):
    return word - 0x10000 if word & 0x8000 else word


def write(bus, r, value):
    bus.writeto_mem(ADDR, r, value.to_bytes(2, "big"))


def convert(clock, bus, config=TRIGGERED_12BIT_32V_PGA8, wait_ms=None):
    """One triggered conversion; returns (bus counts, shunt, current, power, bus register)."""
    write(bus, CONFIG, config)
    clock.now += 2 * TWELVE_BIT_MS + 0.04 if wait_ms is None else wait_ms
    vbus = reg(bus, BUS)
    assert vbus & CNVR
    return (
        vbus >> 3,
        signed(reg(bus, SHUNT)),
        signed(reg(bus, CURRENT)),
        reg(bus, POWER),
        vbus,
    )


def test_power_on_reset_values_and_the_pointer_stays():
    _, _, bus, _ = setup()
    assert reg(bus, CONFIG) == 0x399F
    assert reg(bus, CALIBRATION) == 0
    assert reg(bus, CURRENT) == 0 and reg(bus, POWER) == 0
    # No auto-increment: a 4-byte read gives the register twice, a bare read the same again.
    assert bus.readfrom_mem(ADDR, CONFIG, 4) == b"\x39\x9f\x39\x9f"
    assert bus.readfrom(ADDR, 2) == b"\x39\x9f"
    # Read-only registers ACK and ignore writes.
    write(bus, CURRENT, 0x1234)
    assert reg(bus, CURRENT) == 0


def test_power_up_ignores_the_address_then_converts_continuously():
    clock, _, bus, ina = setup()
    ina.reset()  # the sensor rail comes on
    with pytest.raises(I2CNack):
        bus.readfrom_mem(ADDR, BUS, 2)
    clock.now += 0.04
    assert bus.scan() == [ADDR]
    assert not reg(bus, BUS) & CNVR
    # POR: 12-bit shunt then 12-bit bus, continuously.
    clock.now += 2 * TWELVE_BIT_MS
    vbus = reg(bus, BUS)
    assert vbus & CNVR
    assert vbus >> 3 == round((3.7 - 0.045 * 0.1) / 0.004)
    assert ina.mode == 0b111


def test_the_rst_bit_is_a_power_on_reset_and_clears_itself():
    _, _, bus, _ = setup()
    write(bus, CALIBRATION, 4096)
    write(bus, CONFIG, POWER_DOWN_12BIT_32V_PGA8)
    write(bus, CONFIG, 0x8000)
    assert reg(bus, CONFIG) == 0x399F  # the reset value, RST cleared
    assert reg(bus, CALIBRATION) == 0
    assert bus.scan() == [ADDR]  # no power-up delay for a software reset


def test_calibration_bit_0_always_reads_0():
    _, _, bus, _ = setup()
    write(bus, CALIBRATION, 0x7FFF)
    assert reg(bus, CALIBRATION) == 0x7FFE


def test_the_datasheet_example_register_results_exactly():
    # "Register Results for the Example Circuit": 10 A through 2 mOhm (20 mV) on a 12 V bus,
    # 16 V range, PGA /1, 12-bit, continuous (019Fh); Cal 20480 for Current_LSB 1 mA. The
    # environment stops at 5 A, so the shunt here is 4 mOhm: the same 20 mV.
    env = Environment(load_current_ma=5000.0)
    clock, _, bus, _ = setup(env=env, shunt_ohms=0.004, rail_v=12.0)
    write(bus, CALIBRATION, 0x5000)
    write(bus, CONFIG, 0x019F)
    clock.now += 2 * TWELVE_BIT_MS
    assert reg(bus, SHUNT) == 0x07D0  # 2000 * 10 uV = 20 mV
    assert reg(bus, BUS) >> 3 == 0x0BB3  # 2995 * 4 mV = 11.98 V: IN-, after the shunt drop
    assert reg(bus, BUS) & 0b111 == CNVR  # converted, no overflow
    assert reg(bus, CURRENT) == 0x2710  # 2000 * 20480 / 4096 = 10000 -> 10.0 A
    assert reg(bus, POWER) == 0x1766  # 10000 * 2995 / 5000 = 5990 -> 119.8 W at 20 mW


def test_a_triggered_conversion_sets_cnvr_after_shunt_then_bus_and_wake_up():
    clock, env, bus, ina = setup()
    write(bus, CALIBRATION, 4096)
    write(bus, CONFIG, POWER_DOWN_12BIT_32V_PGA8)
    t0 = clock.now
    write(bus, CONFIG, TRIGGERED_12BIT_32V_PGA8)
    env.set(load_current_ma=-1000.0)  # the conversion took the world as it was at the trigger
    clock.now = t0 + 2 * TWELVE_BIT_MS + 0.04 - 0.001
    assert not reg(bus, BUS) & CNVR
    assert ina.converting
    clock.now = t0 + 2 * TWELVE_BIT_MS + 0.04
    vbus = reg(bus, BUS)
    assert vbus & CNVR
    assert signed(reg(bus, SHUNT)) == 450  # 45 mA * 0.1 Ohm = 4.5 mV
    assert signed(reg(bus, CURRENT)) == 450  # Cal 4096: Current_LSB = 100 uA
    assert reg(bus, POWER) == 450 * (vbus >> 3) // 5000
    # Reading the power register cleared CNVR; the results stay; no new conversion follows.
    assert not reg(bus, BUS) & CNVR
    clock.now += 100.0
    assert not reg(bus, BUS) & CNVR
    assert signed(reg(bus, SHUNT)) == 450
    assert ina.mode == 0b011 and not ina.converting
    # Triggering again from the idle triggered mode: no wake-up time this time.
    t1 = clock.now
    write(bus, CONFIG, TRIGGERED_12BIT_32V_PGA8)
    clock.now = t1 + 2 * TWELVE_BIT_MS
    assert reg(bus, BUS) & CNVR
    assert signed(reg(bus, SHUNT)) == -10000


def test_power_down_converts_nothing_and_keeps_the_last_results():
    clock, env, bus, ina = setup()
    write(bus, CALIBRATION, 4096)
    first = convert(clock, bus)
    write(bus, CONFIG, POWER_DOWN_12BIT_32V_PGA8)
    count = ina.conversions
    env.set(load_current_ma=900.0, supply_v=4.1)
    clock.now += 10_000.0
    assert ina.describe()["conversions"] == count
    assert ina.describe()["mode"] == "power-down"
    assert signed(reg(bus, SHUNT)) == first[1]
    # A conversion in progress is abandoned by power-down; writing power-down keeps CNVR as is.
    write(bus, CONFIG, TRIGGERED_12BIT_32V_PGA8)
    write(bus, CONFIG, POWER_DOWN_12BIT_32V_PGA8)
    clock.now += 100.0
    assert not reg(bus, BUS) & CNVR
    assert ina.conversions == count
    second = convert(clock, bus)
    write(bus, CONFIG, POWER_DOWN_12BIT_32V_PGA8)  # CNVR is still set: the power reg cleared it
    assert second[1] == 9000 and ina.conversions == count + 1


def test_continuous_mode_follows_the_world_cycle_after_cycle():
    clock, env, bus, ina = setup()
    write(bus, CALIBRATION, 4096)
    write(bus, CONFIG, 0x399F)
    clock.now += 2 * TWELVE_BIT_MS
    assert signed(reg(bus, SHUNT)) == 450
    reg(bus, POWER)  # clears CNVR
    env.set(load_current_ma=-250.0)
    assert not reg(bus, BUS) & CNVR
    clock.now += 5 * 2 * TWELVE_BIT_MS  # several cycles: the latest one counts
    assert reg(bus, BUS) & CNVR
    assert signed(reg(bus, SHUNT)) == -2500
    assert signed(reg(bus, CURRENT)) == -2500
    assert ina.mode == 0b111 and ina.converting


@pytest.mark.parametrize(
    ("field", "ms"),
    [
        (0b0000, 0.093),  # 9 bit
        (0b0001, 0.163),
        (0b0010, 0.304),
        (0b0011, 0.586),  # 12 bit
        (0b0111, 0.586),  # 0X11: X is "don't care"
        (0b1000, 0.586),  # 12 bit, 1 sample
        (0b1001, 2 * 0.586),
        (0b1111, 128 * 0.586),  # 128 samples: 68.10 ms typical, 75.0 ms here
    ],
)
def test_conversion_times_are_the_maximum_per_adc_setting(field, ms):
    assert conversion_ms(field) == pytest.approx(ms)
    clock, _, bus, _ = setup()
    config = 0x2000 | 0x1800 | field << 7 | field << 3 | 0b011
    t0 = clock.now
    write(bus, CONFIG, config)  # from the POR's continuous mode: no wake-up time
    clock.now = t0 + 2 * ms - 0.0005
    assert not reg(bus, BUS) & CNVR
    clock.now = t0 + 2 * ms
    assert reg(bus, BUS) & CNVR


def test_lower_resolutions_quantise_the_counts():
    env = Environment(load_current_ma=123.4, supply_v=3.7)
    clock, _, bus, _ = setup(env=env)
    write(bus, CONFIG, 0x2000 | 0x1800 | 0b0000 << 7 | 0b0000 << 3 | 0b011)  # 9 bits
    clock.now += 2 * 0.093
    assert signed(reg(bus, SHUNT)) == 1232  # 1234 counts of 10 uV to steps of 8
    assert reg(bus, BUS) >> 3 == 920  # 3.68766 V: 921.9 counts of 4 mV to steps of 8


def test_the_pga_range_clips_the_shunt_register():
    env = Environment(load_current_ma=500.0)
    clock, _, bus, _ = setup(env=env)  # 50 mV across 0.1 Ohm
    for pga, full_scale in ((0, 4000), (1, 5000), (3, 5000)):
        config = 0x2000 | pga << 11 | 0x0180 | 0x0018 | 0b011
        assert convert(clock, bus, config)[1] == min(full_scale, 5000)
    env.set(load_current_ma=-500.0)
    assert reg(bus, SHUNT) == 0x1388
    assert convert(clock, bus, 0x2000 | 0x0180 | 0x0018 | 0b011)[1] == -4000
    assert reg(bus, SHUNT) == 0xF060
    env.set(load_current_ma=5000.0)  # 500 mV: beyond even /8
    assert convert(clock, bus)[1] == 32000
    assert reg(bus, SHUNT) == 0x7D00


def test_current_and_power_are_the_chips_arithmetic_zero_until_calibrated():
    env = Environment(load_current_ma=-1234.0, supply_v=4.0)
    clock, _, bus, _ = setup(env=env)
    _, shunt, current, power, _ = convert(clock, bus)
    assert shunt == -12340 and current == 0 and power == 0  # Cal 0
    write(bus, CALIBRATION, 10000)
    counts, shunt, current, power, vbus = convert(clock, bus)
    assert current == -(12340 * 10000 // 4096)  # truncated towards zero
    assert power == abs(current) * counts // 5000  # unsigned, from the magnitude
    assert not vbus & OVF


def test_a_current_beyond_the_register_sets_ovf():
    env = Environment(load_current_ma=700.0)
    clock, _, bus, _ = setup(env=env)
    write(bus, CALIBRATION, 20480)  # Current_LSB 20 uA on 0.1 Ohm: 0.655 A at most
    _, shunt, current, _, vbus = convert(clock, bus)
    assert shunt == 7000 and 7000 * 20480 // 4096 == 35000
    assert vbus & OVF
    assert current == 0x7FFF  # clipped: "current and power data may be meaningless"
    env.set(load_current_ma=-700.0)
    _, _, current, _, vbus = convert(clock, bus)
    assert vbus & OVF and current == -0x8000
    env.set(load_current_ma=600.0)
    _, _, current, _, vbus = convert(clock, bus)
    assert not vbus & OVF and current == 30000  # cleared by the next good conversion


def test_the_bus_voltage_is_in_minus_clipped_at_its_range():
    env = Environment(load_current_ma=2000.0, supply_v=3.0)
    clock, _, bus, _ = setup(env=env)
    assert convert(clock, bus)[0] == round((3.0 - 0.2) / 0.004)  # the 0.2 V drop of 2 A
    _, _, bus, _ = setup(env=env, rail_v=20.0)
    clock = bus.devices[ADDR]._now_ms
    assert convert(clock, bus)[0] == round(19.8 / 0.004)  # 32 V range
    assert convert(clock, bus, 0x1800 | 0x0180 | 0x0018 | 0b011)[0] == 4000  # 16 V: clipped
    _, _, bus, _ = setup(env=env, rail_v=0.0)
    assert convert(bus.devices[ADDR]._now_ms, bus)[0] == 0  # never below 0


def test_a_deviation_applies_to_each_measured_voltage_and_noise_is_seeded():
    env = Environment(load_current_ma=1000.0, supply_v=4.0)
    clock, _, bus, _ = setup(
        env=env, shunt=Deviation(gain=1.01, offset=0.05), bus=Deviation(offset=-0.02)
    )
    counts, shunt, *_ = convert(clock, bus)
    assert shunt == round((100.0 * 1.01 + 0.05) * 100)  # mV in, counts of 10 uV out
    assert counts == round((3.9 - 0.02) / 0.004)

    def noisy_run(seed, field):
        clock, _, bus, _ = setup(env=env, shunt=Deviation(noise=0.2), noise_seed=seed)
        config = 0x3800 | field << 7 | field << 3 | 0b011
        return [convert(clock, bus, config, wait_ms=200.0)[1] for _ in range(30)]

    first = noisy_run(1, 0b0011)
    assert noisy_run(1, 0b0011) == first  # reproducible
    assert noisy_run(2, 0b0011) != first
    assert statistics.mean(first) == pytest.approx(10000, abs=10)
    averaged = noisy_run(1, 0b1111)  # 128 samples: the spread shrinks by about sqrt(128)
    assert statistics.stdev(averaged) < statistics.stdev(first) / 5


def test_faults_detach_corrupt_stuck_and_stale():
    clock, env, bus, ina = setup(shunt=Deviation(noise=0.5))
    write(bus, CALIBRATION, 4096)
    ina.apply_fault(Detached())
    with pytest.raises(I2CNack):
        write(bus, CONFIG, TRIGGERED_12BIT_32V_PGA8)
    ina.clear_faults()

    ina.apply_fault(CorruptReplies())
    assert bus.readfrom_mem(ADDR, CONFIG, 2) != b"\x39\x9f"  # every byte has a bit flipped
    ina.clear_faults()

    ina.apply_fault(StuckBus())
    with pytest.raises(I2CTimeout):
        reg(bus, BUS)
    ina.clear_faults()

    before = convert(clock, bus)
    count = ina.conversions
    ina.apply_fault(StaleData())
    env.set(load_current_ma=-900.0, supply_v=4.2)
    assert convert(clock, bus) == before  # converted (CNVR set), the same counts, noise and all
    assert ina.conversions == count + 1
    ina.clear_faults()
    assert convert(clock, bus)[1] == pytest.approx(-9000, abs=300)


def test_bad_model_options_are_refused():
    with pytest.raises(ValueError, match="0x40..0x4f"):
        Ina219(Clock(), address=0x50)
    with pytest.raises(ValueError, match="shunt_ohms"):
        Ina219(Clock(), shunt_ohms=0)
    with pytest.raises(ValueError, match="26"):
        Ina219(Clock(), rail_v=30.0)


def test_the_model_is_registered_for_attach_by_name():
    kind, factory = MODELS["ina219"]
    assert kind == "i2c"
    vb = SimpleNamespace(clock=SimpleNamespace(now_ms=Clock()))
    assert factory(vb, 0, 0).address == 0x40
    ina = factory(vb, 0, 0x45, shunt_ohms=0.05, rail_v=12.0)
    assert (ina.address, ina.shunt_ohms, ina.rail_v) == (0x45, 0.05, 12.0)
    described = ina.describe()
    assert described["config"] == "399f"
    assert described["calibration"] == 0
    assert described["mode"] == "shunt and bus, continuous"
