# The virtual board's machine and time modules as firmware sees them, on both ports.
import time

import _devtest
import _simctl
import machine
import onewire

BOARD = _simctl.request("status")["board"]
ESP32 = BOARD == "sim-esp32"


def test_pins_are_checked_against_the_board():
    led = machine.Pin(2 if ESP32 else 25, machine.Pin.OUT)
    led.on()
    assert led.value() == 1
    led.off()
    assert led.value() == 0
    _devtest.raises(ValueError, machine.Pin, 99)
    if ESP32:
        e = _devtest.raises(ValueError, machine.Pin, 34, machine.Pin.OUT)
        assert "input" in str(e)
    else:
        assert machine.Pin("LED", machine.Pin.OUT).value() == 0


def test_i2c_nack_raises_the_ports_errno_and_the_eeprom_model_answers():
    i2c = machine.I2C(0)
    assert i2c.scan() == []
    e = _devtest.raises(OSError, i2c.readfrom, 0x50, 1)
    assert e.args[0] == (19 if ESP32 else 5)  # ENODEV on esp32, EIO on rp2
    _simctl.request("attach", model="at24c32", bus="i2c0", addr=0x50)
    assert i2c.scan() == []  # on the sensor rail, which is off after reset
    _devtest.sensor_rail(True)
    assert i2c.scan() == [0x50]
    i2c.writeto_mem(0x50, 0x0100, b"mote", addrsize=16)
    time.sleep_ms(10)  # the EEPROM's write cycle
    assert i2c.readfrom_mem(0x50, 0x0100, 4, addrsize=16) == b"mote"
    _simctl.request("fault", target="i2c0:0x50", spec="stuck")
    e = _devtest.raises(OSError, i2c.readfrom, 0x50, 1)
    assert e.args[0] == 110  # ETIMEDOUT
    _simctl.request("clear_faults")


def test_battery_adc_follows_the_environment():
    pin = 35 if ESP32 else 29
    adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB) if ESP32 else machine.ADC(pin)
    readings = []
    for supply_v in (3.0, 4.0):
        _simctl.request("env", supply_v=supply_v)
        readings.append(adc.read_u16())
    assert readings[1] > readings[0] > 0


def test_one_wire_bus_without_devices_answers_nobody():
    ow = onewire.OneWire(machine.Pin(4 if ESP32 else 22))
    assert ow.reset() is False
    assert ow.scan() == []
    assert ow.crc8(b"\x02\x1c\xb8\x01\x00\x00\x00") == 0xA2  # Maxim AN27's example ROM


def test_ticks_wrap_like_a_32_bit_port():
    period = 1 << 30
    assert time.ticks_add(period - 1, 2) == 1
    assert time.ticks_diff(1, period - 1) == 2
    assert time.ticks_diff(period - 1, 1) == -2


def test_sleep_moves_the_clock_and_the_rtc_starts_in_2000():
    t0 = time.ticks_ms()
    time.sleep_ms(250)
    assert time.ticks_diff(time.ticks_ms(), t0) >= 250
    assert time.localtime()[0] == 2000
    # the ports count from 2000-01-01, not 1970 (the unix port's epoch)
    assert 0 <= time.time() < 3600
    assert time.mktime((2000, 1, 1, 0, 0, 0, 0, 0)) == 0
    assert time.gmtime(86400)[:3] == (2000, 1, 2)
    assert abs(time.time_ns() // 1_000_000_000 - time.time()) <= 1
    rtc = machine.RTC()
    rtc.datetime((2026, 11, 21, 5, 14, 30, 0, 0))
    y, mo, d, _wd, h, mi = rtc.datetime()[:6]
    assert (y, mo, d, h, mi) == (2026, 11, 21, 14, 30)
    assert time.localtime()[:5] == (2026, 11, 21, 14, 30)
    assert time.time() == time.mktime((2026, 11, 21, 14, 30, time.localtime()[5], 0, 0))


def test_reset_constants_and_rtc_memory_per_port():
    assert machine.reset_cause() == machine.PWRON_RESET
    assert hasattr(machine, "DEEPSLEEP_RESET") == ESP32
    assert hasattr(machine.RTC(), "memory") == ESP32
    if ESP32:
        machine.RTC().memory(b"abc")
        assert machine.RTC().memory() == b"abc"
        _devtest.raises(ValueError, machine.RTC().memory, bytes(2049))


def test_unique_id_and_frequency():
    assert len(machine.unique_id()) == (6 if ESP32 else 8)
    f = machine.freq()
    assert f == (160_000_000 if ESP32 else 125_000_000)
    _devtest.raises(ValueError, machine.freq, 1234)
