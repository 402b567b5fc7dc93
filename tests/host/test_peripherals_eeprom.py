"""The AT24C32 model on a real I2CBus: page wrap, write-cycle NACK, sequential and random reads."""

import pytest
from handclock import Clock
from hypothesis import given
from hypothesis import strategies as st

from host_tools.sim.peripherals.i2c import I2CBus, I2CNack
from host_tools.sim.peripherals.models.eeprom24 import WRITE_CYCLE_MS, At24c32

ADDR = 0x50
PAGE = 32
SIZE = 4096


def setup():
    clock = Clock()
    bus = I2CBus(0)
    eeprom = bus.attach(At24c32(clock))
    return clock, bus, eeprom


def write(bus, clock, memaddr, data):
    """Write, then wait out the write cycle."""
    bus.writeto(ADDR, memaddr.to_bytes(2, "big") + bytes(data))
    clock.now += WRITE_CYCLE_MS


def read(bus, memaddr, n):
    return bus.readfrom_mem(ADDR, memaddr, n, addrsize=16)


def test_a_fresh_eeprom_reads_erased():
    _, bus, _ = setup()
    assert read(bus, 0x0123, 4) == b"\xff" * 4


def test_the_device_nacks_during_the_write_cycle_and_acks_after_it():
    clock, bus, eeprom = setup()
    bus.writeto(ADDR, b"\x00\x10" + b"abc")
    assert eeprom.memory[0x10:0x13] == b"abc"  # programmed at the stop
    # ACK polling: every start is refused until tWR has elapsed on the simulated clock.
    for elapsed in (0.0, 1.0, WRITE_CYCLE_MS - 0.01):
        clock.now = 1000.0 + elapsed
        with pytest.raises(I2CNack):
            bus.writeto(ADDR, b"")
        with pytest.raises(I2CNack):
            bus.readfrom(ADDR, 1)
    assert ADDR not in bus.scan()
    clock.now = 1000.0 + WRITE_CYCLE_MS
    assert bus.scan() == [ADDR]
    assert read(bus, 0x10, 3) == b"abc"


def test_write_cycle_time_is_configurable():
    clock = Clock()
    bus = I2CBus(0)
    bus.attach(At24c32(clock, write_cycle_ms=10.0))
    bus.writeto(ADDR, b"\x00\x00\x01")
    clock.now += 9.9
    with pytest.raises(I2CNack):
        bus.readfrom(ADDR, 1)
    clock.now += 0.1
    assert bus.readfrom(ADDR, 1) == b"\xff"  # counter moved on to 0x0001


def test_a_page_write_wraps_inside_its_page():
    clock, bus, eeprom = setup()
    # 0x005C is 28 bytes into the page 0x0040..0x005F: bytes 4.. wrap to 0x0040.
    write(bus, clock, 0x005C, range(10))
    assert read(bus, 0x005C, 4) == bytes([0, 1, 2, 3])
    assert read(bus, 0x0040, 6) == bytes([4, 5, 6, 7, 8, 9])
    assert read(bus, 0x0046, 1) == b"\xff"
    assert read(bus, 0x0060, 1) == b"\xff"  # the next page is untouched
    assert eeprom.pointer == 0x0061  # reads advance the address counter


def test_more_than_a_page_overwrites_the_start_of_the_page():
    clock, bus, _ = setup()
    write(bus, clock, 0x0100, range(40))
    assert read(bus, 0x0100, 32) == bytes(range(32, 40)) + bytes(range(8, 32))


def test_sequential_read_crosses_pages_and_rolls_over_at_the_end():
    clock, bus, _ = setup()
    write(bus, clock, 0x0020 - 4, b"ABCD")
    write(bus, clock, 0x0020, b"EFGH")
    assert read(bus, 0x001C, 8) == b"ABCDEFGH"
    write(bus, clock, SIZE - 2, b"yz")
    write(bus, clock, 0x0000, b"01")
    assert read(bus, SIZE - 2, 4) == b"yz01"


def test_current_address_read_continues_from_the_counter():
    clock, bus, _ = setup()
    write(bus, clock, 0x0200, b"hello")
    bus.writeto(ADDR, b"\x02\x00")  # dummy write: sets the counter, starts no write cycle
    assert bus.readfrom(ADDR, 2) == b"he"
    assert bus.readfrom(ADDR, 3) == b"llo"


def test_a_write_abandoned_by_a_repeated_start_is_not_programmed():
    clock, bus, eeprom = setup()
    bus.writeto(ADDR, b"\x00\x30" + b"lost", stop=False)
    assert bus.readfrom(ADDR, 1) == b"\xff"  # repeated start: no stop, no write cycle
    assert not eeprom.busy
    assert eeprom.memory[0x30:0x34] == b"\xff" * 4


def test_address_bits_above_the_array_are_ignored():
    clock, bus, _ = setup()
    write(bus, clock, 0xF010, b"hi")
    assert read(bus, 0x0010, 2) == b"hi"


def test_power_on_reset_keeps_the_array_and_clears_the_cycle():
    clock, bus, eeprom = setup()
    bus.writeto(ADDR, b"\x00\x00" + b"keep")
    eeprom.reset()
    assert not eeprom.busy
    assert read(bus, 0x0000, 4) == b"keep"


@given(
    memaddr=st.integers(0, SIZE - 1),
    data=st.binary(min_size=1, max_size=2 * PAGE),
    background=st.integers(0, 255),
)
def test_page_write_matches_the_datasheet_wrap_rule(memaddr, data, background):
    clock, bus, eeprom = setup()
    eeprom.memory[:] = bytes([background]) * SIZE
    write(bus, clock, memaddr, data)
    expected = bytearray([background]) * SIZE
    page = memaddr - memaddr % PAGE
    for i, byte in enumerate(data):
        expected[page + (memaddr % PAGE + i) % PAGE] = byte
    assert read(bus, 0, SIZE) == bytes(expected)


@given(memaddr=st.integers(0, SIZE - 1), data=st.binary(min_size=1, max_size=PAGE))
def test_data_within_a_page_round_trips(memaddr, data):
    clock, bus, _ = setup()
    data = data[: PAGE - memaddr % PAGE]
    write(bus, clock, memaddr, data)
    assert read(bus, memaddr, len(data)) == data
