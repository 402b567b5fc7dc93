"""The SHT4x model on a real I2CBus: commands, timing, CRC, heater, deviation and faults."""

from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.i2c import I2CBus, I2CNack, I2CTimeout
from host_tools.sim.peripherals.models.sht4x import (
    DEFAULT_SERIAL,
    Deviation,
    Sht4x,
    crc8,
    humidity_word,
    temperature_word,
)

ADDR = 0x44


def setup(**kw):
    clock = Clock()
    env = Environment(temperature_c=25.0, humidity_rh=50.0)
    bus = I2CBus(0)
    sht = bus.attach(Sht4x(clock, env=env, **kw))
    return clock, env, bus, sht


def measure(bus, clock, command=0xFD, wait_ms=8.3):
    bus.writeto(ADDR, bytes([command]))
    clock.now += wait_ms
    return bus.readfrom(ADDR, 6)


def words(reply):
    """The two words of a 6-byte reply, after checking both CRCs."""
    assert crc8(reply[0:2]) == reply[2]
    assert crc8(reply[3:5]) == reply[5]
    return int.from_bytes(reply[0:2], "big"), int.from_bytes(reply[3:5], "big")


def t_of(word):
    return -45 + 175 * word / 65535


def rh_of(word):
    return -6 + 125 * word / 65535


def test_crc8_matches_the_datasheet_example():
    assert crc8(b"\xbe\xef") == 0x92
    assert crc8(b"\x00\x00") == 0x81


def test_the_serial_number_comes_with_crcs_after_a_short_delay():
    clock, _, bus, sht = setup(serial=0x12345678)
    bus.writeto(ADDR, b"\x89")
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 6)  # straight after the command: not yet
    clock.now += 1.0
    assert words(bus.readfrom(ADDR, 6)) == (0x1234, 0x5678)
    assert Sht4x(clock).serial == DEFAULT_SERIAL


@pytest.mark.parametrize(
    ("command", "duration_ms"), [(0xFD, 8.3), (0xF6, 4.5), (0xE0, 1.6)], ids=["high", "med", "low"]
)
def test_each_precision_nacks_every_header_until_its_maximum_duration(command, duration_ms):
    clock, _, bus, _ = setup()
    t0 = clock.now
    bus.writeto(ADDR, bytes([command]))
    for elapsed in (0.0, duration_ms / 2, duration_ms - 0.01):
        clock.now = t0 + elapsed
        with pytest.raises(I2CNack):
            bus.readfrom(ADDR, 6)
        with pytest.raises(I2CNack):
            bus.writeto(ADDR, b"\xfd")  # a busy chip takes no command either
        assert ADDR not in bus.scan()
    clock.now = t0 + duration_ms
    assert words(bus.readfrom(ADDR, 6)) == (temperature_word(25.0), humidity_word(50.0))


def test_values_are_the_environment_quantised_as_the_chip_words():
    clock, env, bus, _ = setup()
    # 25 °C is exactly S_T 0x6666 (70/175 of full scale); 56 %RH + 6 = 62/125 of full scale.
    env.set(temperature_c=25.0, humidity_rh=56.0)
    assert words(measure(bus, clock)) == (0x6666, round(62 * 65535 / 125))
    for t_c, rh in [(-40.0, 0.0), (-12.34, 12.5), (60.0, 99.9), (125.0, 100.0)]:
        env.set(temperature_c=t_c, humidity_rh=rh)
        st, srh = words(measure(bus, clock))
        assert abs(t_of(st) - t_c) <= 175 / 65535 / 2 + 1e-9  # half an LSB
        assert abs(rh_of(srh) - rh) <= 125 / 65535 / 2 + 1e-9
    # Beyond what 16 bits hold, the words saturate (the driver then reports a RangeError).
    env.set(temperature_c=-60.0)
    assert words(measure(bus, clock))[0] == 0
    env.set(temperature_c=150.0)
    assert words(measure(bus, clock))[0] == 0xFFFF


def test_a_result_is_read_once_and_a_new_command_discards_it():
    clock, _, bus, sht = setup()
    measure(bus, clock)
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 6)
    bus.writeto(ADDR, b"\xfd")
    clock.now += 8.3
    bus.writeto(ADDR, b"\x94")  # soft reset before reading it
    clock.now += 1.0
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 6)
    # A short read (T only) still consumes the whole result.
    bus.writeto(ADDR, b"\xe0")
    clock.now += 1.6
    assert len(bus.readfrom(ADDR, 3)) == 3
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 3)
    assert sht.result_reads == 2


def test_unknown_commands_are_not_acknowledged():
    _, _, bus, _ = setup()
    assert bus.writeto(ADDR, b"\x24\x00") == 1  # 0x24 is a heater command: one byte taken
    _, _, bus, _ = setup()
    assert bus.writeto(ADDR, b"\x2c\x06") == 0  # an SHT3x command means nothing to an SHT4x


def test_soft_reset_and_power_on_make_it_busy_for_1_ms():
    clock, _, bus, sht = setup()
    bus.writeto(ADDR, b"\x94")
    with pytest.raises(I2CNack):
        bus.writeto(ADDR, b"\xfd")
    clock.now += 1.0
    bus.writeto(ADDR, b"\xfd")
    clock.now += 8.3
    sht.reset()  # power cycle: the result waiting is gone, and t_PU passes first
    with pytest.raises(I2CNack):
        bus.writeto(ADDR, b"")
    clock.now += 1.0
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 6)
    assert bus.scan() == [ADDR]


def test_the_heater_warms_what_it_reports_then_cools():
    clock, _, bus, sht = setup()
    # 0x39: 200 mW for 1 s, busy for the long pulse's 1.1 s maximum.
    bus.writeto(ADDR, b"\x39")
    clock.now += 1099.0
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 6)
    clock.now += 1.0
    hot_t, hot_rh = (f(w) for f, w in zip((t_of, rh_of), words(bus.readfrom(ADDR, 6)), strict=True))
    assert hot_t > 25.0 + 20.0
    assert hot_rh < 50.0 / 2  # the same vapour at a much warmer die
    # Afterwards the die cools: each later measurement is closer to the air's 25 °C.
    clock.now += 1000.0
    warm = t_of(words(measure(bus, clock))[0])
    clock.now += 10_000.0
    cool = t_of(words(measure(bus, clock))[0])
    assert hot_t > warm > cool
    assert abs(cool - 25.0) < 0.01
    assert sht.heat_k() < 0.01
    # Less power, shorter pulse: less heat. 0x15 is 20 mW for 0.1 s (0.11 s maximum).
    t_small = t_of(words(measure(bus, clock, command=0x15, wait_ms=110.0))[0])
    assert 25.0 < t_small < 26.0


def test_a_deviation_is_applied_before_quantising_and_its_noise_is_seeded():
    clock, env, bus, _ = setup(temperature=Deviation(offset=0.5, gain=1.01))
    env.set(temperature_c=20.0)
    assert t_of(words(measure(bus, clock))[0]) == pytest.approx(20.0 * 1.01 + 0.5, abs=0.002)

    def noisy_run(seed):
        clock, _, bus, _ = setup(humidity=Deviation(noise=0.5), noise_seed=seed)
        return [words(measure(bus, clock))[1] for _ in range(20)]

    first = noisy_run(1)
    assert noisy_run(1) == first  # reproducible
    assert noisy_run(2) != first
    spread = [rh_of(w) for w in first]
    assert 0.1 < max(spread) - min(spread) < 5.0
    assert sum(spread) / len(spread) == pytest.approx(50.0, abs=0.5)


def test_faults_detach_corrupt_stuck_and_stale():
    clock, env, bus, sht = setup()
    sht.apply_fault(Detached())
    with pytest.raises(I2CNack):
        bus.writeto(ADDR, b"\xfd")
    sht.clear_faults()

    sht.apply_fault(CorruptReplies())
    reply = measure(bus, clock)
    assert crc8(reply[0:2]) != reply[2] and crc8(reply[3:5]) != reply[5]
    sht.clear_faults()

    sht.apply_fault(StuckBus())
    with pytest.raises(I2CTimeout):
        bus.writeto(ADDR, b"\xfd")
    sht.clear_faults()

    before = measure(bus, clock)
    sht.apply_fault(StaleData())
    env.set(temperature_c=30.0, humidity_rh=80.0)
    assert measure(bus, clock) == before  # the chip keeps answering with its last words
    sht.clear_faults()
    assert words(measure(bus, clock)) == (temperature_word(30.0), humidity_word(80.0))


def test_the_model_is_registered_for_attach_by_name():
    kind, factory = MODELS["sht4x"]
    assert kind == "i2c"
    vb = SimpleNamespace(clock=SimpleNamespace(now_ms=Clock()))
    assert factory(vb, 0, 0).address == 0x44
    assert factory(vb, 0, 0x45).address == 0x45
    described = factory(vb, 0, 0).describe()
    assert described["serial"] == f"{DEFAULT_SERIAL:08x}"
    assert described["result_reads"] == 0
