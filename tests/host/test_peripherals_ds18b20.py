"""The DS18B20 model on a OneWireBus: scratchpad, Table 1, timing, EEPROM, parasite, faults."""

from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.deviation import Deviation
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.models.ds18b20 import (
    DEFAULT_SERIAL,
    Ds18b20,
    celsius_of,
    config_for,
    t16_of,
)
from host_tools.sim.peripherals.onewire import (
    ALARM_SEARCH,
    MATCH_ROM,
    READ_ROM,
    SKIP_ROM,
    OneWireBus,
    crc8_maxim,
)

CONVERT_T = 0x44
WRITE_SCRATCHPAD = 0x4E
READ_SCRATCHPAD = 0xBE
COPY_SCRATCHPAD = 0x48
RECALL_E2 = 0xB8
READ_POWER_SUPPLY = 0xB4

# "Electrical Characteristics": t_CONV max at 9..12 bits (written out here, not imported, so
# that a slip in the model fails these tests).
CONVERSION_MS = {9: 93.75, 10: 187.5, 11: 375.0, 12: 750.0}

# The datasheet's "Table 1. Temperature/Data Relationship" (19-7487 Rev 6).
TABLE_1 = [
    (125.0, 0x07D0),
    (85.0, 0x0550),
    (25.0625, 0x0191),
    (10.125, 0x00A2),
    (0.5, 0x0008),
    (0.0, 0x0000),
    (-0.5, 0xFFF8),
    (-10.125, 0xFF5E),
    (-25.0625, 0xFE6F),
    (-55.0, 0xFC90),
]


def setup(n=1, **kw):
    clock = Clock()
    env = Environment(temperature_c=25.0, probe_temperature_c=12.5)
    bus = OneWireBus(4)
    probes = [bus.attach(Ds18b20(clock, env=env, serial=0x100 + i, **kw)) for i in range(n)]
    return clock, env, bus, probes


def select(bus, probe=None):
    """Reset, then MATCH ROM `probe` (or SKIP ROM); True when some device answered presence."""
    present = bus.reset()
    if probe is None:
        bus.write_byte(SKIP_ROM)
    else:
        bus.write_byte(MATCH_ROM)
        for byte in probe.rom:
            bus.write_byte(byte)
    return present


def command(bus, cmd, probe=None, data=b""):
    assert select(bus, probe)
    bus.write_byte(cmd)
    for byte in data:
        bus.write_byte(byte)


def scratchpad(bus, probe=None):
    command(bus, READ_SCRATCHPAD, probe)
    return bytes(bus.read_byte() for _ in range(9))


def register(pad):
    """The signed temperature register of a scratchpad whose CRC checks."""
    assert crc8_maxim(pad) == 0, pad.hex()
    return int.from_bytes(pad[0:2], "little", signed=True)


def convert(bus, clock, probe=None, resolution=12):
    command(bus, CONVERT_T, probe)
    clock.now += CONVERSION_MS[resolution]
    return register(scratchpad(bus, probe))


def test_the_rom_is_family_28_a_serial_and_its_crc():
    _, _, bus, (probe,) = setup()
    assert probe.rom[0] == 0x28 and probe.rom[1:7] == (0x100).to_bytes(6, "little")
    assert bus.reset()
    bus.write_byte(READ_ROM)
    assert bytes(bus.read_byte() for _ in range(8)) == probe.rom
    assert crc8_maxim(probe.rom) == 0
    # The default part's ROM has the 28-xx-xx-xx-xx-00-00-crc pattern of genuine parts.
    default = Ds18b20(Clock()).rom
    assert default[0] == 0x28 and default[5:7] == b"\x00\x00"
    assert int.from_bytes(default[1:7], "little") == DEFAULT_SERIAL


def test_the_power_on_scratchpad_is_85_c_and_the_factory_eeprom():
    _, _, bus, (probe,) = setup()
    pad = scratchpad(bus)
    # Figure 9: temperature 0550h (+85 °C), TH 4Bh, TL 46h, configuration 7Fh (12 bits),
    # reserved FFh, (0Ch), 10h, then the CRC of bytes 0..7.
    assert pad[:8] == bytes.fromhex("5005 4b46 7f ff0c10".replace(" ", ""))
    assert register(pad) == 0x0550 and celsius_of(0x0550) == 85.0
    assert probe.scratchpad() == pad


@pytest.mark.parametrize(("celsius", "word"), TABLE_1)
def test_table_1_through_a_conversion(celsius, word):
    clock, env, bus, _ = setup()
    env.set(temperature_c=celsius)
    assert t16_of(celsius) & 0xFFFF == word
    assert convert(bus, clock) & 0xFFFF == word
    assert celsius_of(t16_of(celsius)) == celsius


@pytest.mark.parametrize("resolution", [9, 10, 11, 12])
def test_each_resolution_converts_for_its_maximum_time_signalled_by_read_slots(resolution):
    clock, env, bus, (probe,) = setup()
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x4B, 0x46, config_for(resolution)]))
    assert scratchpad(bus)[4] == config_for(resolution)
    env.set(temperature_c=21.5)
    t0 = clock.now
    command(bus, CONVERT_T)
    assert probe.converting
    duration = CONVERSION_MS[resolution]
    for elapsed in (0.0, duration / 2, duration - 0.01):
        clock.now = t0 + elapsed
        assert bus.read_bit() == 0  # external power: 0 while converting
    # Too early, the register still holds what it held: here the power-on 85 °C.
    clock.now = t0 + duration - 0.01
    assert register(scratchpad(bus)) == 0x0550
    clock.now = t0 + duration
    command(bus, CONVERT_T)
    assert bus.read_bit() == 0  # a new conversion: busy again
    clock.now += duration
    assert bus.read_bit() == 1
    assert register(scratchpad(bus)) == 21.5 * 16  # 0.5 °C steps: exact at any resolution
    assert probe.conversions == 2


def test_the_undefined_low_bits_keep_what_the_register_held():
    clock, env, bus, _ = setup()
    env.set(temperature_c=10.125)
    assert convert(bus, clock) == 0x00A2  # 12 bits: low bits 010
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x4B, 0x46, config_for(9)]))
    env.set(temperature_c=25.3)
    # 25.3 °C in 0.5 °C steps is 25.5 = 0x198; bits 2..0 are left from before.
    assert convert(bus, clock, resolution=9) == 0x198 | 0b010
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x4B, 0x46, config_for(11)]))
    assert convert(bus, clock, resolution=11) == round(25.3 * 8) * 2  # bit 0 was 0
    assert t16_of(-10.3, 9, previous=0x0F) == -10.5 * 16 + 7


def test_values_round_at_the_resolution_and_saturate_at_the_register():
    assert t16_of(21.03) == 336  # 21.03 * 16 = 336.48
    assert t16_of(21.04) == 337
    assert t16_of(21.2, 9) == 21.0 * 16
    assert t16_of(21.3, 9) == 21.5 * 16
    assert t16_of(150.0) == 2047  # +127.9375 °C, the most the register holds
    assert t16_of(150.0, 9) == 2040  # +127.5 °C at 9 bits
    assert t16_of(-200.0) == -2048
    clock, env, bus, _ = setup()
    env.set(temperature_c=-60.0)
    assert convert(bus, clock) == -960  # below the rated -55 °C, still representable


def test_write_scratchpad_takes_th_tl_and_only_the_resolution_bits():
    _, _, bus, (probe,) = setup()
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x19, 0xF6, 0x00]))
    pad = scratchpad(bus)
    assert pad[2:5] == bytes([0x19, 0xF6, 0x1F])  # bit 7 reads 0, bits 4..0 read 1
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x20, 0x10, 0xFF, 0x55]))  # a 4th byte: ignored
    assert scratchpad(bus)[2:5] == bytes([0x20, 0x10, 0x7F])
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x33]))  # cut short by a reset: TH only
    assert scratchpad(bus)[2:5] == bytes([0x33, 0x10, 0x7F])
    assert probe.eeprom == bytes([0x4B, 0x46, 0x7F])  # the EEPROM is untouched
    assert probe.scratchpad_writes == 3


def test_copy_scratchpad_writes_the_eeprom_which_survives_power_cycles():
    clock, _, bus, (probe,) = setup()
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x1E, 0x05, config_for(10)]))
    probe.reset()  # power cycle before a copy: the scratchpad is the EEPROM's again
    assert scratchpad(bus)[2:5] == bytes([0x4B, 0x46, 0x7F])
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x1E, 0x05, config_for(10)]))
    command(bus, COPY_SCRATCHPAD)
    assert bus.read_bit() == 0  # t_WR: busy for up to 10 ms
    clock.now += 9.9
    assert bus.read_bit() == 0
    clock.now += 0.1
    assert bus.read_bit() == 1
    assert probe.eeprom == bytes([0x1E, 0x05, 0x3F]) and probe.eeprom_writes == 1
    probe.reset()
    pad = scratchpad(bus)
    assert register(pad) == 0x0550 and pad[2:5] == bytes([0x1E, 0x05, 0x3F])
    # RECALL E2 brings back the EEPROM's copy after a scratchpad write.
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x00, 0x00, 0x7F]))
    command(bus, RECALL_E2)
    assert bus.read_bit() == 1  # the recall is done at once
    assert scratchpad(bus)[2:5] == bytes([0x1E, 0x05, 0x3F])


def test_read_power_supply_answers_in_one_read_slot():
    bus = OneWireBus(4)
    env = Environment()
    external = bus.attach(Ds18b20(Clock(), env=env, serial=1))
    parasite = bus.attach(Ds18b20(Clock(), env=env, serial=2, parasite=True))
    command(bus, READ_POWER_SUPPLY, external)
    assert bus.read_bit() == 1  # on VDD: the part leaves the line high
    command(bus, READ_POWER_SUPPLY, parasite)
    assert [bus.read_bit() for _ in range(3)] == [0, 1, 1]  # pulled low in that one slot


def test_a_parasite_part_converts_with_the_bus_left_alone():
    clock, env, bus, (probe,) = setup(parasite=True)
    env.set(temperature_c=30.25)
    command(bus, CONVERT_T)
    clock.now += 750.0  # nothing on the bus meanwhile
    assert register(scratchpad(bus)) == 30.25 * 16
    assert probe.brownouts == 0


def test_a_parasite_part_browns_out_when_the_bus_is_used_during_its_conversion():
    clock, env, bus, (probe,) = setup(parasite=True)
    env.set(temperature_c=30.25)
    command(bus, CONVERT_T)
    assert bus.read_bit() == 1  # it cannot signal "busy": and this slot took its supply
    assert probe.brownouts == 1 and not probe.converting
    clock.now += 750.0
    assert register(scratchpad(bus)) == 0x0550  # the power-on value: the famous 85 °C
    # Traffic for another device (a reset pulse is enough) does the same.
    command(bus, CONVERT_T)
    clock.now += 100.0
    assert bus.reset()
    assert probe.brownouts == 2
    clock.now += 650.0
    assert register(scratchpad(bus)) == 0x0550
    # An EEPROM copy disturbed likewise is lost.
    command(bus, WRITE_SCRATCHPAD, data=bytes([1, 2, 0x1F]))
    command(bus, COPY_SCRATCHPAD)
    bus.read_bit()
    clock.now += 10.0
    assert probe.eeprom == bytes([0x4B, 0x46, 0x7F]) and probe.eeprom_writes == 0


def test_two_parts_on_one_bus_each_read_their_own_quantity():
    clock, env, bus, (air, probe) = setup(n=2)
    probe.quantity = "probe_temperature_c"
    env.set(temperature_c=22.0625, probe_temperature_c=-3.5)
    command(bus, CONVERT_T)  # SKIP ROM: both convert at once
    clock.now += 750.0
    assert register(scratchpad(bus, air)) == 22.0625 * 16
    assert register(scratchpad(bus, probe)) == -3.5 * 16
    with pytest.raises(ValueError, match="probe_temperature_c"):
        Ds18b20(clock, quantity="humidity_rh")


def test_the_alarm_flag_follows_th_and_tl_after_each_conversion():
    clock, env, bus, (hot, cold) = setup(n=2)
    for probe in (hot, cold):  # TH +30 °C, TL -10 °C
        command(bus, WRITE_SCRATCHPAD, probe, bytes([30, 0xF6, 0x7F]))
    env.set(temperature_c=30.9)  # whole degrees 30: >= TH
    cold.quantity = "probe_temperature_c"
    env.set(probe_temperature_c=5.0)
    assert not hot.alarm() and not cold.alarm()  # not before a conversion
    command(bus, CONVERT_T)
    clock.now += 750.0
    assert hot.alarm() and not cold.alarm()
    # ALARM SEARCH: only the alarmed part answers; its first ROM bit and complement differ.
    assert bus.reset()
    bus.write_byte(ALARM_SEARCH)
    first, complement = bus.read_bit(), bus.read_bit()
    assert (first, complement) == (hot.rom[0] & 1, (hot.rom[0] & 1) ^ 1)
    env.set(temperature_c=29.9, probe_temperature_c=-10.0)  # below TH; at TL
    command(bus, CONVERT_T)
    clock.now += 750.0
    assert not hot.alarm() and cold.alarm()


def test_a_deviation_is_applied_before_quantising_and_its_noise_is_seeded():
    clock, env, bus, _ = setup(temperature=Deviation(offset=0.25, gain=1.02))
    env.set(temperature_c=20.0)
    assert convert(bus, clock) == t16_of(20.0 * 1.02 + 0.25)

    def run(seed):
        clock, _, bus, _ = setup(temperature=Deviation(noise=0.3), noise_seed=seed)
        return [convert(bus, clock) for _ in range(20)]

    first = run(1)
    assert run(1) == first and run(2) != first
    assert 0.1 < (max(first) - min(first)) / 16 < 3.0
    assert abs(sum(first) / len(first) / 16 - 25.0) < 0.3


def test_faults_detach_corrupt_stuck_and_stale():
    clock, env, bus, (probe,) = setup()
    probe.apply_fault(Detached())
    assert bus.reset() is False
    probe.clear_faults()

    probe.apply_fault(CorruptReplies())
    pad = scratchpad(bus)
    assert crc8_maxim(pad) != 0
    probe.clear_faults()

    bus.apply_fault(StuckBus())
    assert bus.reset() is True  # a line held low looks like a presence pulse ...
    bus.write_byte(SKIP_ROM)
    bus.write_byte(READ_SCRATCHPAD)
    assert [bus.read_byte() for _ in range(9)] == [0] * 9  # ... then every bit reads 0
    bus.clear_faults()

    before = convert(bus, clock)
    probe.apply_fault(StaleData())
    env.set(temperature_c=31.0)
    assert convert(bus, clock) == before  # converts, but the register keeps its value
    probe.clear_faults()
    assert convert(bus, clock) == 31 * 16
    # Even a noisy part: stale is the same register again, not the same world re-measured.
    clock, _, bus, (noisy,) = setup(temperature=Deviation(noise=0.5))
    first = convert(bus, clock)
    noisy.apply_fault(StaleData())
    assert [convert(bus, clock) for _ in range(5)] == [first] * 5


def test_on_a_board_the_sensor_rail_powers_it_and_restarts_it_at_85_c():
    clock = Clock()
    board = {"port": "esp32", "pins": {"onewire": 4, "sensor_power": 25}}
    hw = BoardHardware(board, environment=Environment(temperature_c=19.0))
    probe = hw.attach("onewire", 4, Ds18b20(clock))
    bus = hw.onewire(4)
    assert bus.reset() is False  # rail off: no presence pulse
    hw.pin_write(25, 1)
    assert convert(bus, clock) == 19 * 16
    command(bus, WRITE_SCRATCHPAD, data=bytes([0x4B, 0x46, config_for(9)]))
    hw.pin_write(25, 0)
    hw.pin_write(25, 1)  # power cycle: 85 °C and the EEPROM's 12 bits again
    assert scratchpad(bus)[:5] == bytes.fromhex("50054b467f")
    assert probe.describe()["resolution"] == 12 and not probe.converting
    hw.cpu_reset()  # deep sleep releases the pin: the rail goes off
    assert bus.reset() is False


def test_the_model_is_registered_for_attach_by_name():
    kind, factory = MODELS["ds18b20"]
    assert kind == "onewire"
    vb = SimpleNamespace(clock=SimpleNamespace(now_ms=Clock()))
    default = factory(vb, 4, 0)
    assert int.from_bytes(default.rom[1:7], "little") == DEFAULT_SERIAL
    assert not default.parasite and default.quantity == "temperature_c"
    part = factory(
        vb, 4, 0xABC, quantity="probe_temperature_c", parasite=True, offset=0.5, noise_seed=3
    )
    assert part.rom[1:3] == b"\xbc\x0a" and part.parasite
    assert part.temperature == Deviation(offset=0.5)
    described = part.describe()
    assert described["rom"] == part.rom.hex()
    assert described["scratchpad"].startswith("5005")
    assert (described["resolution"], described["parasite"]) == (12, True)
    assert factory(vb, 4, 1, eeprom=[0, 0, 0x1F]).describe()["resolution"] == 9
