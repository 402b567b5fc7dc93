"""The SCD41 model on a real I2CBus: commands, timing, CRC, compensation, EEPROM, FRC, faults."""

from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.i2c import I2CBus, I2CNack, I2CTimeout
from host_tools.sim.peripherals.models.scd41 import (
    DEFAULT_SERIAL,
    Deviation,
    Scd41,
    crc8,
    humidity_word,
    offset_word,
    pressure_at_altitude,
    temperature_word,
)

ADDR = 0x62


def setup(**kw):
    clock = Clock()
    env = Environment(temperature_c=25.0, humidity_rh=50.0, co2_ppm=800.0)
    bus = I2CBus(0)
    scd = bus.attach(Scd41(clock, env=env, **kw))
    return clock, env, bus, scd


def cmd(bus, code, arg=None):
    """Send a command (and its argument word with CRC); returns the bytes ACKed."""
    data = code.to_bytes(2, "big")
    if arg is not None:
        word = arg.to_bytes(2, "big")
        data += word + bytes([crc8(word)])
    return bus.writeto(ADDR, data)


def words(reply):
    """The words of a reply, after checking each CRC."""
    out = []
    for i in range(0, len(reply), 3):
        assert crc8(reply[i : i + 2]) == reply[i + 2], reply.hex()
        out.append(int.from_bytes(reply[i : i + 2], "big"))
    return out


def get(bus, clock, code, n=1):
    """A "read" sequence: command, its 1 ms execution time, n words."""
    cmd(bus, code)
    clock.now += 1.0
    return words(bus.readfrom(ADDR, 3 * n))


def shot(bus, clock):
    """measure_single_shot, 5 s, read_measurement: (CO2, S_T, S_RH)."""
    assert cmd(bus, 0x219D) == 2
    clock.now += 5000.0
    return get(bus, clock, 0xEC05, 3)


def zero_offset(bus, clock):
    """set_temperature_offset 0: the die's temperature as it is (the factory offset is 4 C)."""
    cmd(bus, 0x241D, 0)
    clock.now += 1.0


def t_of(word):
    return -45 + 175 * word / 65535


def rh_of(word):
    return 100 * word / 65535


def test_crc8_reproduces_the_datasheet_examples():
    assert crc8(b"\xbe\xef") == 0x92  # "Checksum Calculation"
    # set_ambient_pressure 98'700 Pa; forced recalibration to 480 ppm and its -50 ppm reply;
    # ASC enabled; set_temperature_offset 5.4 C; set_sensor_altitude 1'950 m.
    for word, crc in [(0x03DB, 0x42), (0x01E0, 0xB4), (0x7FCE, 0x7B), (0x0001, 0xB0)]:
        assert crc8(word.to_bytes(2, "big")) == crc
    assert offset_word(5.4) == 0x07E6 and crc8(b"\x07\xe6") == 0x48
    assert crc8((1950).to_bytes(2, "big")) == 0x09
    # read_measurement: 500 ppm, 25 C, 37 %RH as 0x01f4 0x33, 0x6667 0xa2, 0x5eb9 0x3c.
    assert words(bytes.fromhex("01f4336667a25eb93c")) == [500, 0x6667, 0x5EB9]
    assert t_of(0x6667) == pytest.approx(25.0, abs=0.01)
    assert rh_of(0x5EB9) == pytest.approx(37.0, abs=0.01)


def test_power_up_takes_1000_ms_then_the_serial_number_answers_after_1_ms():
    clock, _, bus, scd = setup()
    scd.reset()  # the sensor rail coming on
    t0 = clock.now
    for elapsed in (0.0, 500.0, 999.9):
        clock.now = t0 + elapsed
        with pytest.raises(I2CNack):
            cmd(bus, 0x3682)
    clock.now = t0 + 1000.0
    assert cmd(bus, 0x3682) == 2
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 9)  # within its 1 ms execution time
    clock.now += 1.0
    reply = words(bus.readfrom(ADDR, 9))
    # The datasheet's example serial number, 273'325'796'834'238.
    assert reply == [0xF896, 0x9F07, 0x3BBE]
    assert DEFAULT_SERIAL == 273_325_796_834_238
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 9)  # a reply is read once


def test_a_single_shot_nacks_every_header_for_5_s_and_is_read_once():
    clock, _, bus, scd = setup()
    zero_offset(bus, clock)
    t0 = clock.now
    assert cmd(bus, 0x219D) == 2
    for elapsed in (1.0, 2500.0, 4999.9):
        clock.now = t0 + elapsed
        with pytest.raises(I2CNack):
            cmd(bus, 0xE4B8)  # not even the data-ready status
        assert ADDR not in bus.scan()
    clock.now = t0 + 5000.0
    assert get(bus, clock, 0xE4B8) == [0x8006]
    co2, st, srh = get(bus, clock, 0xEC05, 3)
    assert co2 == 800 and st == temperature_word(25.0) and srh == humidity_word(50.0)
    # Emptied on read-out: not ready, and read_measurement's read header is NACKed.
    assert get(bus, clock, 0xE4B8) == [0x8000]
    assert cmd(bus, 0xEC05) == 2
    clock.now += 1.0
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 9)
    assert scd.commands["measure_single_shot"] == 1


def test_a_partial_read_still_empties_the_buffer():
    clock, _, bus, _ = setup()
    cmd(bus, 0x219D)
    clock.now += 5000.0
    cmd(bus, 0xEC05)
    clock.now += 1.0
    assert words(bus.readfrom(ADDR, 3)) == [800]  # CO2 only
    assert get(bus, clock, 0xE4B8) == [0x8000]


def test_readings_follow_the_environment_across_the_range():
    clock, env, bus, _ = setup()
    zero_offset(bus, clock)
    for co2, t_c, rh in [
        (400, -10.0, 0.0),
        (1000, 15.0, 20.0),
        (2500, 35.0, 65.0),
        (5000, 60, 100),
    ]:
        env.set(co2_ppm=co2, temperature_c=t_c, humidity_rh=rh)
        got_co2, st, srh = shot(bus, clock)
        assert got_co2 == co2
        assert abs(t_of(st) - t_c) <= 175 / 65535 / 2 + 1e-9  # half an LSB
        assert abs(rh_of(srh) - rh) <= 100 / 65535 / 2 + 1e-9
    env.set(co2_ppm=50_000.0)  # beyond the output range: the word says so
    assert shot(bus, clock)[0] == 50_000


def test_pressure_changes_the_uncompensated_reading_and_compensation_removes_it():
    clock, env, bus, scd = setup()
    env.set(co2_ppm=1000.0, pressure_hpa=850.0)
    # Assumed 1013.25 hPa (altitude 0): fewer molecules per volume than it thinks.
    assert shot(bus, clock)[0] == round(1000 * 850 / 1013.25) == 839
    assert cmd(bus, 0xE000, 850) == 5  # set_ambient_pressure in hPa (Pa / 100)
    clock.now += 1.0
    assert scd.assumed_pressure_hpa == 850.0
    assert shot(bus, clock)[0] == 1000
    # An altitude overrides the pressure set before it (and the reverse): ISA at 1500 m.
    cmd(bus, 0x2427, 1500)
    clock.now += 1.0
    assert scd.ambient_pressure_hpa is None
    assert pressure_at_altitude(1500) == pytest.approx(845.6, abs=0.1)
    assert shot(bus, clock)[0] == round(1000 * 850 / pressure_at_altitude(1500))
    assert get(bus, clock, 0x2322) == [1500]


def test_the_temperature_offset_is_subtracted_and_rh_follows_the_reported_temperature():
    clock, env, bus, _ = setup(self_heating_k=3.0)
    env.set(temperature_c=25.0, humidity_rh=50.0)
    # Factory offset 4 C against 3 K of self-heating: 1 C low, and RH higher than the air's.
    assert get(bus, clock, 0x2318) == [offset_word(4.0)]
    _, st, srh = shot(bus, clock)
    assert t_of(st) == pytest.approx(24.0, abs=0.01)
    assert rh_of(srh) == pytest.approx(53.08, abs=0.02)  # 50 % * e_s(25 C) / e_s(24 C)
    cmd(bus, 0x241D, offset_word(3.0))
    clock.now += 1.0
    _, st, srh = shot(bus, clock)
    assert t_of(st) == pytest.approx(25.0, abs=0.01)
    assert rh_of(srh) == pytest.approx(50.0, abs=0.01)


def test_forced_recalibration_reproduces_the_datasheet_example_and_survives_power_off():
    clock, env, bus, scd = setup(co2=Deviation(offset=50.0))
    # Not operated since power-up: the FRC fails with 0xffff.
    assert cmd(bus, 0x362F, 480) == 5
    clock.now += 400.0
    assert words(bus.readfrom(ADDR, 3)) == [0xFFFF]
    env.set(co2_ppm=480.0)
    assert shot(bus, clock)[0] == 530  # the part reads 50 ppm high
    # The datasheet's example: target 480 ppm (0x01e0 0xb4), reply 0x7fce 0x7b = -50 ppm.
    assert bus.writeto(ADDR, bytes.fromhex("362f01e0b4")) == 5
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 3)  # 400 ms execution time
    clock.now += 400.0
    assert bus.readfrom(ADDR, 3) == bytes.fromhex("7fce7b")
    assert shot(bus, clock)[0] == 480
    env.set(co2_ppm=1000.0)
    assert shot(bus, clock)[0] == 1000
    scd.reset()  # the calibration history is in its own EEPROM
    clock.now += 1000.0
    assert shot(bus, clock)[0] == 1000
    assert scd.frc_offset_ppm == -50.0


def test_settings_live_in_ram_until_persisted_and_persisting_writes_the_eeprom():
    clock, _, bus, scd = setup()
    assert get(bus, clock, 0x2313) == [1]  # ASC enabled by default
    assert get(bus, clock, 0x2322) == [0]
    cmd(bus, 0x2416, 0)
    clock.now += 1.0
    cmd(bus, 0x2427, 1200)
    clock.now += 1.0
    assert get(bus, clock, 0x2313) == [0]
    scd.reset()  # power cycle: RAM settings lost
    clock.now += 1000.0
    assert get(bus, clock, 0x2313) == [1] and get(bus, clock, 0x2322) == [0]
    assert scd.eeprom_writes == 0
    cmd(bus, 0x2416, 0)
    clock.now += 1.0
    cmd(bus, 0x3615)  # persist_settings: 800 ms
    clock.now += 799.0
    with pytest.raises(I2CNack):
        cmd(bus, 0x2313)
    clock.now += 1.0
    assert scd.eeprom_writes == 1
    scd.reset()
    clock.now += 1000.0
    assert get(bus, clock, 0x2313) == [0]
    # reinit reloads the EEPROM's; a factory reset restores the factory's and clears the FRC.
    cmd(bus, 0x2416, 1)
    clock.now += 1.0
    cmd(bus, 0x3646)
    clock.now += 20.0
    assert get(bus, clock, 0x2313) == [0]
    cmd(bus, 0x3632)
    clock.now += 1200.0
    assert get(bus, clock, 0x2313) == [1] and scd.eeprom_writes == 2


def test_an_argument_with_a_bad_crc_is_nacked_and_dropped():
    clock, _, bus, scd = setup()
    assert bus.writeto(ADDR, b"\x24\x16\x00\x00\x00") == 4  # CRC of 0x0000 is 0x81
    assert scd.commands["set_automatic_self_calibration_enabled"] == 0
    assert get(bus, clock, 0x2313) == [1]
    assert bus.writeto(ADDR, b"\x24\x16\x00\x00\x81") == 5
    clock.now += 1.0
    assert get(bus, clock, 0x2313) == [0]


def test_unknown_commands_are_not_acknowledged():
    _, _, bus, scd = setup()
    assert bus.writeto(ADDR, b"\x2c\x06") == 1  # an SHT3x command: second byte NACKed
    assert bus.writeto(ADDR, b"\x36\xf6") == 1  # wake_up to an awake chip
    assert sum(scd.commands.values()) == 0


def test_periodic_mode_takes_only_four_commands_and_keeps_the_latest_measurement():
    clock, env, bus, scd = setup()
    cmd(bus, 0x21B1)
    assert cmd(bus, 0x3682) == 1  # the serial number is refused while measuring
    assert get(bus, clock, 0xE4B8) == [0x8000]
    clock.now += 5000.0
    assert get(bus, clock, 0xE4B8) == [0x8006]
    env.set(co2_ppm=1234.0)
    clock.now += 10_000.0  # two more intervals: the buffer holds the latest only
    assert get(bus, clock, 0xEC05, 3)[0] == 1234
    assert cmd(bus, 0xE000, 1000) == 5  # set_ambient_pressure is allowed
    clock.now += 1.0
    assert cmd(bus, 0x3F86) == 2
    clock.now += 499.0
    with pytest.raises(I2CNack):
        cmd(bus, 0x3682)
    clock.now += 1.0
    assert get(bus, clock, 0x3682, 3) == [0xF896, 0x9F07, 0x3BBE]
    assert scd.mode == "idle"


def test_sleep_nacks_the_wake_up_wakes_in_20_ms_and_the_first_shot_is_marked():
    clock, env, bus, scd = setup(first_shot_co2_ppm=0)
    env.set(co2_ppm=700.0)
    assert shot(bus, clock)[0] == 0  # the first single shot since it was powered
    assert shot(bus, clock)[0] == 700
    cmd(bus, 0x36E0)  # power_down
    clock.now += 1.0
    assert scd.mode == "sleep"
    with pytest.raises(I2CNack):
        cmd(bus, 0x36F6)  # wake_up: never acknowledged, but it wakes the chip
    with pytest.raises(I2CNack):
        cmd(bus, 0x3682)
    clock.now += 20.0
    assert get(bus, clock, 0x3682, 3)[0] == 0xF896
    assert scd.first_shot
    assert shot(bus, clock)[0] == 0  # the first after wake_up: to be discarded
    assert shot(bus, clock)[0] == 700


def test_rht_only_shot_takes_50_ms_and_reports_co2_0():
    clock, _, bus, _ = setup()
    zero_offset(bus, clock)
    cmd(bus, 0x2196)
    clock.now += 49.9
    with pytest.raises(I2CNack):
        cmd(bus, 0xE4B8)
    clock.now += 0.1
    co2, st, _ = get(bus, clock, 0xEC05, 3)
    assert co2 == 0 and st == temperature_word(25.0)


def test_self_test_takes_10_s_and_returns_its_status():
    clock, _, bus, _ = setup(self_test_status=0x0004)
    cmd(bus, 0x3639)
    clock.now += 9999.0
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 3)
    clock.now += 1.0
    assert words(bus.readfrom(ADDR, 3)) == [0x0004]


def test_a_deviation_is_applied_and_its_noise_is_seeded():
    clock, env, bus, _ = setup(co2=Deviation(offset=30.0, gain=1.02))
    env.set(co2_ppm=1000.0)
    assert shot(bus, clock)[0] == 1050

    def noisy_run(seed):
        clock, _, bus, _ = setup(co2=Deviation(noise=10.0), noise_seed=seed)
        return [shot(bus, clock)[0] for _ in range(20)]

    first = noisy_run(1)
    assert noisy_run(1) == first
    assert noisy_run(2) != first
    assert 5 < max(first) - min(first) < 100
    assert sum(first) / len(first) == pytest.approx(800, abs=10)


def test_faults_detach_corrupt_stuck_and_stale():
    clock, env, bus, scd = setup()
    scd.apply_fault(Detached())
    with pytest.raises(I2CNack):
        cmd(bus, 0x219D)
    scd.clear_faults()

    scd.apply_fault(CorruptReplies())
    cmd(bus, 0x3682)
    clock.now += 1.0
    reply = bus.readfrom(ADDR, 9)
    assert any(crc8(reply[i : i + 2]) != reply[i + 2] for i in (0, 3, 6))
    scd.clear_faults()

    scd.apply_fault(StuckBus())
    with pytest.raises(I2CTimeout):
        cmd(bus, 0x219D)
    scd.clear_faults()

    before = shot(bus, clock)
    scd.apply_fault(StaleData())
    env.set(co2_ppm=2000.0, temperature_c=30.0)
    assert shot(bus, clock) == before  # the chip keeps answering with its last words
    scd.clear_faults()
    assert shot(bus, clock)[0] == 2000


def test_the_model_is_registered_for_attach_by_name_with_json_options():
    kind, factory = MODELS["scd41"]
    assert kind == "i2c"
    vb = SimpleNamespace(clock=SimpleNamespace(now_ms=Clock()))
    assert factory(vb, 0, 0).address == 0x62
    part = factory(vb, 0, 0x63, co2_offset=120, co2_gain=1.01, t_noise=0.1, self_heating_k=2.0)
    assert part.address == 0x63
    assert part.co2 == Deviation(offset=120.0, gain=1.01)
    assert part.temperature == Deviation(noise=0.1)
    assert part.self_heating_k == 2.0
    assert factory(vb, 0, 0, serial="0123456789ab").serial == 0x0123456789AB
    with pytest.raises(TypeError):
        factory(vb, 0, 0, colour="red")
    described = factory(vb, 0, 0).describe()
    assert described["serial"] == "f8969f073bbe"
    assert described["settings"] == {
        "temperature_offset_c": 4.0,
        "altitude_m": 0,
        "asc": True,
        "ambient_pressure_hpa": None,
    }
    assert described["commands"] == {} and described["eeprom_writes"] == 0
