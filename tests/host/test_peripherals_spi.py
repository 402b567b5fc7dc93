"""SPI bus: chip-select routing by pin level, floating MISO, faults."""

import pytest

from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StuckBus
from host_tools.sim.peripherals.spi import SPIBus, SPIDevice


class Echo(SPIDevice):
    """Returns the previous MOSI byte plus `offset`, like a shift register; logs CS edges."""

    def __init__(self, cs, offset=0):
        super().__init__(cs, name=f"echo{cs}")
        self.offset = offset
        self.edges = []
        self.last = 0x00

    def select(self, active):
        self.edges.append(active)
        self.last = 0x00  # a new CS cycle restarts the shift register

    def transfer(self, mosi):
        out = bytearray()
        for byte in mosi:
            out.append((self.last + self.offset) & 0xFF)
            self.last = byte
        return bytes(out)


def test_no_device_selected_reads_floating_high():
    bus = SPIBus(1)
    bus.attach(Echo(5))
    assert bus.transfer(b"\x01\x02\x03") == b"\xff\xff\xff"


def test_cs_low_routes_the_transfer_and_cs_edges_reach_the_device():
    bus = SPIBus(1)
    dev = bus.attach(Echo(5))
    bus.pin_changed(5, 0)
    bus.pin_changed(5, 0)  # no edge, no call
    assert bus.transfer(b"\x11\x22\x33") == b"\x00\x11\x22"
    bus.pin_changed(5, 1)
    assert bus.transfer(b"\x44") == b"\xff"
    assert dev.edges == [True, False]


def test_only_the_selected_device_answers():
    bus = SPIBus(1)
    a = bus.attach(Echo(5, offset=0x10))
    b = bus.attach(Echo(15, offset=0x20))
    bus.pin_changed(15, 0)
    assert bus.transfer(b"\x01\x02") == b"\x20\x21"
    assert a.last == 0x00 and b.last == 0x02
    bus.pin_changed(99, 0)  # some other GPIO: nothing changes
    assert a.edges == [] and b.edges == [True]


def test_a_device_attached_while_its_cs_is_low_is_selected():
    bus = SPIBus(2)
    bus.pin_changed(7, 0)
    dev = bus.attach(Echo(7))
    assert dev.edges == [True]
    assert bus.transfer(b"\x05\x06") == b"\x00\x05"


def test_two_selected_devices_fight_and_lows_win():
    bus = SPIBus(1)
    bus.attach(Echo(5, offset=0xF0))
    bus.attach(Echo(6, offset=0x0F))
    bus.pin_changed(5, 0)
    bus.pin_changed(6, 0)
    assert bus.transfer(b"\x00") == b"\x00"  # 0xF0 & 0x0F


def test_detached_device_is_never_selected():
    bus = SPIBus(1)
    dev = bus.attach(Echo(5, offset=1))
    dev.apply_fault(Detached())
    bus.pin_changed(5, 0)
    assert bus.transfer(b"\x00\x00") == b"\xff\xff"
    assert dev.edges == []


def test_corrupt_and_stuck_miso():
    bus = SPIBus(1)
    dev = bus.attach(Echo(5, offset=0x40))
    bus.pin_changed(5, 0)
    clean = bus.transfer(bytes(64))
    dev.apply_fault(CorruptReplies(prob=1.0, seed=3))
    dirty = bus.transfer(bytes(64))
    assert all(a != b for a, b in zip(clean, dirty, strict=True))
    bus.apply_fault(StuckBus())
    assert bus.transfer(b"\x01\x02") == b"\x00\x00"
    with pytest.raises(ValueError, match="applies to a device"):
        bus.apply_fault(Detached())


def test_cs_pins_are_unique_and_detach_removes():
    bus = SPIBus(1)
    dev = bus.attach(Echo(5))
    with pytest.raises(ValueError, match="CS pin 5 is taken by echo5"):
        bus.attach(Echo(5))
    assert bus.detach(5) is dev
    bus.pin_changed(5, 0)
    assert bus.transfer(b"\x00") == b"\xff"
