"""1-Wire: CRC-8 vectors, the ROM layer (READ/MATCH/SKIP/SEARCH), wired-AND, faults."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StuckBus
from host_tools.sim.peripherals.onewire import (
    ALARM_SEARCH,
    MATCH_ROM,
    READ_ROM,
    SEARCH_ROM,
    SKIP_ROM,
    OneWireBus,
    OneWireDevice,
    crc8_maxim,
)

CONVERT = 0x44
READ_SCRATCH = 0xBE


class Probe(OneWireDevice):
    """A DS18B20-shaped test device: CONVERT busy slots, READ SCRATCHPAD with CRC."""

    # CONVERT keeps read slots at 0 for three slots; READ SCRATCHPAD returns 8 bytes derived
    # from the serial, then their CRC.

    def __init__(self, serial, *, alarmed=False, family=0x28):
        super().__init__(family, serial)
        self.alarmed = alarmed
        self.busy_slots = 0
        self.commands = []

    def on_byte(self, value):
        self.commands.append(value)
        if value == CONVERT:
            self.busy_slots = 3
        elif value == READ_SCRATCH:
            body = self.rom[1:7] + b"\x7f\x10"
            self.send(body + bytes([crc8_maxim(body)]))

    def idle_bit(self):
        if self.busy_slots:
            self.busy_slots -= 1
            return 0
        return 1

    def alarm(self):
        return self.alarmed


def an187_search(bus, command=SEARCH_ROM):
    """Enumerate every ROM on the bus, following the search described in Maxim AN187."""
    found = []
    rom_bits = [0] * 64
    last_discrepancy = 0  # 1-based bit position of the last 0-branch taken; 0 = none left
    while True:
        if not bus.reset():
            return found
        bus.write_byte(command)
        last_zero = 0
        for position in range(1, 65):
            bit = bus.read_bit()
            complement = bus.read_bit()
            if bit and complement:
                return found  # nobody is taking part in this search
            if bit != complement:
                direction = bit  # every remaining device agrees here
            else:
                # Devices disagree: retrace the previous path before the last discrepancy,
                # take the 1 branch at it, and the 0 branch at any new one after it.
                if position < last_discrepancy:
                    direction = rom_bits[position - 1]
                else:
                    direction = 1 if position == last_discrepancy else 0
                if direction == 0:
                    last_zero = position
            rom_bits[position - 1] = direction
            bus.write_bit(direction)
        found.append(bytes(sum(rom_bits[8 * i + j] << j for j in range(8)) for i in range(8)))
        last_discrepancy = last_zero
        if last_discrepancy == 0:
            return found


def test_crc8_maxim_known_vectors():
    # Maxim application note 27's worked example: ROM 02 1C B8 01 00 00 00 has CRC A2.
    assert crc8_maxim(bytes.fromhex("021CB801000000")) == 0xA2
    # The CRC catalogue's check value for CRC-8/MAXIM-DOW.
    assert crc8_maxim(b"123456789") == 0xA1
    assert crc8_maxim(b"") == 0


@given(st.binary(max_size=64))
def test_crc8_over_data_and_its_crc_is_zero(data):
    assert crc8_maxim(data + bytes([crc8_maxim(data)])) == 0


def test_the_rom_is_family_serial_lsb_first_and_a_computed_crc():
    probe = Probe(0x0000_0001_B81C, family=0x02)
    assert probe.rom == bytes.fromhex("021CB801000000A2")
    ds = Probe(0x0123_4567_89AB)
    assert ds.rom[:7] == bytes.fromhex("28AB8967452301")
    assert ds.rom[7] == crc8_maxim(ds.rom[:7])


def test_presence_needs_an_attached_undetached_device():
    bus = OneWireBus(4)
    assert bus.reset() is False
    probe = bus.attach(Probe(1))
    assert bus.reset() is True
    probe.apply_fault(Detached())
    assert bus.reset() is False


def test_read_rom_returns_the_single_devices_rom():
    bus = OneWireBus(4)
    probe = bus.attach(Probe(0xABCDEF))
    assert bus.reset()
    bus.write_byte(READ_ROM)
    assert bytes(bus.read_byte() for _ in range(8)) == probe.rom


def test_match_rom_selects_one_device_of_three():
    bus = OneWireBus(4)
    probes = [bus.attach(Probe(serial)) for serial in (0x11, 0x22, 0x33)]
    target = probes[1]
    assert bus.reset()
    bus.write_byte(MATCH_ROM)
    for byte in target.rom:
        bus.write_byte(byte)
    bus.write_byte(READ_SCRATCH)
    scratch = bytes(bus.read_byte() for _ in range(9))
    assert scratch[:6] == target.rom[1:7]
    assert crc8_maxim(scratch) == 0
    assert [p.commands for p in probes] == [[], [READ_SCRATCH], []]


def test_skip_rom_then_function_layer_with_busy_read_slots():
    bus = OneWireBus(4)
    probe = bus.attach(Probe(0x42))
    assert bus.reset()
    bus.write_byte(SKIP_ROM)
    bus.write_byte(CONVERT)
    assert [bus.read_bit() for _ in range(5)] == [0, 0, 0, 1, 1]  # conversion done polling
    assert probe.commands == [CONVERT]
    assert bus.reset()  # a reset drops back to the ROM layer
    bus.write_byte(CONVERT)  # now read as a ROM command: unknown, device goes quiet
    assert bus.read_byte() == 0xFF
    assert probe.commands == [CONVERT]


def test_search_enumerates_three_devices():
    bus = OneWireBus(4)
    # Serials chosen to disagree early (ROM bit 9), late (ROM bit 55) and share prefixes.
    serials = (0x0000_0000_0001, 0x0000_0000_0003, 0x8000_0000_0001)
    roms = {bus.attach(Probe(s)).rom for s in serials}
    found = an187_search(bus)
    assert len(found) == 3
    assert set(found) == roms
    assert all(crc8_maxim(rom) == 0 for rom in found)


@given(st.sets(st.integers(0, (1 << 48) - 1), min_size=1, max_size=6))
def test_search_finds_any_set_of_devices(serials):
    bus = OneWireBus(4)
    roms = {bus.attach(Probe(s)).rom for s in serials}
    assert sorted(an187_search(bus)) == sorted(roms)


def test_search_ends_with_the_last_device_selected():
    bus = OneWireBus(4)
    probes = [bus.attach(Probe(s)) for s in (5, 6)]
    found = an187_search(bus)
    bus.write_byte(READ_SCRATCH)  # after a search the found device is selected
    bus.read_byte()
    last = next(p for p in probes if p.rom == found[-1])
    assert [p.commands for p in probes if p is not last] == [[]]
    assert last.commands == [READ_SCRATCH]


def test_search_on_an_empty_bus_finds_nothing():
    assert an187_search(OneWireBus(4)) == []


def test_alarm_search_finds_only_alarmed_devices():
    bus = OneWireBus(4)
    alarmed = bus.attach(Probe(7, alarmed=True))
    bus.attach(Probe(8))
    bus.attach(Probe(9))
    assert an187_search(bus, ALARM_SEARCH) == [alarmed.rom]


def test_detached_devices_take_no_part_in_a_search():
    bus = OneWireBus(4)
    probes = [bus.attach(Probe(s)) for s in (1, 2, 3)]
    probes[0].apply_fault(Detached())
    assert sorted(an187_search(bus)) == sorted(p.rom for p in probes[1:])


def test_corrupt_replies_break_the_rom_crc():
    bus = OneWireBus(4)
    probe = bus.attach(Probe(0x99))
    probe.apply_fault(CorruptReplies(prob=1.0, seed=2))
    bus.reset()
    bus.write_byte(READ_ROM)
    rom = bytes(bus.read_byte() for _ in range(8))
    assert all(a != b for a, b in zip(rom, probe.rom, strict=True))
    bus.write_byte(READ_SCRATCH)
    scratch = bytes(bus.read_byte() for _ in range(9))
    assert crc8_maxim(scratch) != 0


def test_a_stuck_line_shows_presence_and_reads_zeros():
    bus = OneWireBus(4)
    probe = bus.attach(Probe(0x10))
    bus.apply_fault(StuckBus())
    assert bus.reset() is True
    bus.write_byte(READ_ROM)
    assert [bus.read_byte() for _ in range(8)] == [0] * 8
    assert probe.commands == []
    bus.clear_faults()
    assert an187_search(bus) == [probe.rom]


def test_two_devices_with_one_rom_are_refused():
    bus = OneWireBus(4)
    bus.attach(Probe(1))
    with pytest.raises(ValueError, match="already attached"):
        bus.attach(Probe(1))


@pytest.mark.parametrize(("family", "serial"), [(0x100, 1), (0x28, 1 << 48), (-1, 0)])
def test_rom_fields_are_range_checked(family, serial):
    with pytest.raises(ValueError):
        OneWireDevice(family, serial)
