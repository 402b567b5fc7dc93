"""I2C bus and register devices: pointer auto-increment, repeated start, NACK, corruption, stuck."""

import pytest

from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies, Detached, StaleData, StuckBus
from host_tools.sim.peripherals.i2c import (
    I2CBus,
    I2CDevice,
    I2CNack,
    I2CTimeout,
    RegisterDevice,
)


class Recorder(I2CDevice):
    """Logs every hook call as silicon would see it; reads return 0xA0, 0xA1, ..."""

    def __init__(self, address=0x42):
        super().__init__(address)
        self.log = []

    def start(self, is_read):
        self.log.append(("start", "read" if is_read else "write"))
        return True

    def write(self, data):
        self.log.append(("write", data))
        return len(data)

    def read(self, n):
        self.log.append(("read", n))
        return bytes(0xA0 + i for i in range(n))

    def stop(self):
        self.log.append(("stop",))


def make_sensor(address=0x76):
    dev = RegisterDevice(address, name="sensor")
    dev.define(0xD0, reset=0x60, writable=False)  # chip id
    dev.define(0xF4, reset=0x00)  # control
    return dev


def test_register_pointer_is_the_first_byte_and_auto_increments_on_write_and_read():
    bus = I2CBus(0)
    dev = bus.attach(make_sensor())
    assert bus.writeto(0x76, b"\x10\x01\x02\x03") == 4
    assert dev.values[0x10:0x13] == [1, 2, 3]
    assert dev.pointer == 0x13
    bus.writeto(0x76, b"\x0f")
    assert bus.readfrom(0x76, 5) == b"\x00\x01\x02\x03\x00"
    assert bus.readfrom(0x76, 1) == b"\x00"  # carries on at 0x14
    assert dev.pointer == 0x15


def test_register_pointer_wraps_after_the_last_register():
    bus = I2CBus(0)
    dev = bus.attach(RegisterDevice(0x20))
    bus.writeto(0x20, b"\xfe\xaa\xbb\xcc")
    assert (dev.values[0xFE], dev.values[0xFF], dev.values[0x00]) == (0xAA, 0xBB, 0xCC)


def test_read_only_registers_ack_but_keep_their_value_and_reset_restores():
    bus = I2CBus(0)
    dev = bus.attach(make_sensor())
    assert bus.writeto(0x76, b"\xd0\x99") == 2
    assert bus.readfrom_mem(0x76, 0xD0, 1) == b"\x60"
    bus.writeto_mem(0x76, 0xF4, b"\x27")
    bus.writeto_mem(0x76, 0x30, b"\x55")
    dev.reset()
    assert bus.readfrom_mem(0x76, 0xF4, 1) == b"\x00"
    assert bus.readfrom_mem(0x76, 0x30, 1) == b"\x00"
    assert bus.readfrom_mem(0x76, 0xD0, 1) == b"\x60"


def test_register_callbacks_see_writes_and_supply_reads():
    dev = RegisterDevice(0x40)
    written = []
    dev.define(0x01, on_write=lambda reg, value: written.append((reg, value)))
    dev.define(0x02, on_read=lambda reg: 0x100 + reg)  # masked to the register width
    bus = I2CBus(1)
    bus.attach(dev)
    bus.writeto_mem(0x40, 0x01, b"\x5a\x77")
    assert written == [(0x01, 0x5A)]
    assert dev.values[0x02] == 0x77  # stored, but reads come from the callback
    assert bus.readfrom_mem(0x40, 0x01, 3) == b"\x5a\x02\x00"


def test_sixteen_bit_registers_without_auto_increment_reread_the_same_register():
    # INA219 style: 16-bit big-endian registers, the pointer stays put.
    dev = RegisterDevice(0x45, width=2, auto_increment=False, count=6)
    dev.define(0x00, reset=0x399F)
    bus = I2CBus(0)
    bus.attach(dev)
    assert bus.readfrom_mem(0x45, 0x00, 4) == b"\x39\x9f\x39\x9f"
    bus.writeto_mem(0x45, 0x05, b"\x10\x00")
    assert dev.values[5] == 0x1000
    assert bus.readfrom_mem(0x45, 0x05, 2) == b"\x10\x00"


def test_repeated_start_reaches_the_device_as_one_transaction():
    bus = I2CBus(0)
    dev = bus.attach(Recorder())
    bus.writeto(0x42, b"\x07", stop=False)
    assert bus.readfrom(0x42, 2, stop=True) == b"\xa0\xa1"
    assert dev.log == [
        ("start", "write"),
        ("write", b"\x07"),
        ("start", "read"),  # repeated start: no stop before it
        ("read", 2),
        ("stop",),
    ]


def test_separate_transactions_each_end_with_a_stop():
    bus = I2CBus(0)
    dev = bus.attach(Recorder())
    bus.writeto(0x42, b"\x07")
    bus.readfrom(0x42, 1)
    assert dev.log == [
        ("start", "write"),
        ("write", b"\x07"),
        ("stop",),
        ("start", "read"),
        ("read", 1),
        ("stop",),
    ]


def test_pointer_then_read_with_repeated_start_reads_the_register():
    bus = I2CBus(0)
    dev = bus.attach(make_sensor())
    dev.values[0xF7:0xFA] = [0x51, 0x52, 0x53]
    bus.writeto(0x76, b"\xf7", stop=False)
    assert bus.readfrom(0x76, 3) == b"\x51\x52\x53"
    assert bus.readfrom_mem(0x76, 0xD0, 1) == b"\x60"


def test_absent_and_detached_devices_nack_their_address():
    bus = I2CBus(0)
    dev = bus.attach(make_sensor())
    with pytest.raises(I2CNack) as info:
        bus.readfrom(0x77, 1)
    assert info.value.addr == 0x77
    dev.apply_fault(Detached())
    with pytest.raises(I2CNack):
        bus.writeto(0x76, b"\xd0")
    with pytest.raises(I2CNack):
        bus.readfrom(0x76, 1)
    assert bus.scan() == []
    dev.clear_faults()
    assert bus.readfrom_mem(0x76, 0xD0, 1) == b"\x60"


def test_scan_lists_acking_addresses_in_micropythons_range():
    bus = I2CBus(0)
    for addr in (0x76, 0x44, 0x50, 0x03):  # 0x03 is reserved: scan() skips it
        bus.attach(RegisterDevice(addr))
    assert bus.scan() == [0x44, 0x50, 0x76]


def test_detach_removes_the_device_and_attach_refuses_a_taken_address():
    bus = I2CBus(0)
    dev = bus.attach(make_sensor())
    with pytest.raises(ValueError, match="0x76 is taken by sensor"):
        bus.attach(RegisterDevice(0x76))
    assert bus.detach(0x76) is dev
    with pytest.raises(I2CNack):
        bus.readfrom(0x76, 1)
    with pytest.raises(ValueError):
        bus.detach(0x76)


def test_a_device_can_nack_data_bytes():
    class TwoBytes(I2CDevice):
        def write(self, data):
            return min(len(data), 2)

    bus = I2CBus(0)
    bus.attach(TwoBytes(0x30))
    assert bus.writeto(0x30, b"\x01\x02\x03\x04") == 2


def test_corrupt_replies_differ_from_clean_ones_at_the_expected_rate():
    bus = I2CBus(0)
    dev = bus.attach(RegisterDevice(0x60))
    dev.values[:] = [i ^ 0x5A for i in range(256)]
    clean = bus.readfrom_mem(0x60, 0x00, 256)

    dev.apply_fault(CorruptReplies(prob=1.0, seed=1))
    always = bus.readfrom_mem(0x60, 0x00, 256)
    assert all(a != b for a, b in zip(clean, always, strict=True))

    dev.apply_fault(CorruptReplies(prob=0.25, seed=11))
    reads = [bus.readfrom_mem(0x60, 0x00, 256) for _ in range(16)]
    differing = sum(a != b for r in reads for a, b in zip(clean, r, strict=True))
    # 4096 bytes at p=0.25: mean 1024, sd ~28; 6 sd either side.
    assert 860 <= differing <= 1190

    dev.apply_fault(CorruptReplies(prob=0.25, seed=11))  # same seed, same flips
    assert [bus.readfrom_mem(0x60, 0x00, 256) for _ in range(16)] == reads
    assert dev.values[0] == 0x5A  # the device's own state is untouched
    dev.clear_faults()
    assert bus.readfrom_mem(0x60, 0x00, 256) == clean


def test_a_stuck_bus_times_out_on_every_address():
    bus = I2CBus(2)
    bus.attach(make_sensor())
    bus.apply_fault(StuckBus())
    for addr in range(0x80):
        with pytest.raises(I2CTimeout) as info:
            bus.writeto(addr, b"\x00")
        assert info.value.bus_id == 2
        with pytest.raises(I2CTimeout):
            bus.readfrom(addr, 1)
    assert bus.scan() == []  # MicroPython's scan swallows the errors
    bus.clear_faults()
    assert bus.scan() == [0x76]


def test_a_device_holding_sda_low_sticks_the_whole_bus():
    bus = I2CBus(0)
    holder = bus.attach(make_sensor())
    bus.attach(RegisterDevice(0x44))
    holder.apply_fault(StuckBus())
    with pytest.raises(I2CTimeout):
        bus.readfrom(0x44, 1)
    holder.clear_faults()
    assert bus.readfrom(0x44, 1) == b"\x00"


def test_device_faults_are_refused_by_the_bus():
    with pytest.raises(ValueError, match="'detach' applies to a device"):
        I2CBus(0).apply_fault(Detached())


def test_a_model_returning_the_wrong_length_is_reported():
    class Short(I2CDevice):
        def read(self, n):
            return b"\x00"

    bus = I2CBus(0)
    bus.attach(Short(0x11, name="short"))
    with pytest.raises(RuntimeError, match="short returned 1 bytes for a 3-byte read"):
        bus.readfrom(0x11, 3)


def test_stale_data_freezes_what_a_model_measures():
    env = Environment()
    dev = RegisterDevice(0x76, env=env)
    assert dev.measure()["temperature_c"] == 22.0
    dev.apply_fault(StaleData())
    env.set(temperature_c=30.0)
    assert dev.measure()["temperature_c"] == 22.0
    dev.clear_faults()
    assert dev.measure()["temperature_c"] == 30.0


def test_an_unbound_model_says_how_to_give_it_a_world():
    with pytest.raises(RuntimeError, match="pass env="):
        RegisterDevice(0x10).measure()


@pytest.mark.parametrize("address", [-1, 0x80])
def test_addresses_are_seven_bit(address):
    with pytest.raises(ValueError, match="7-bit"):
        RegisterDevice(address)
