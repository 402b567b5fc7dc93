# The DS18B20 driver (drivers/ds18b20.py) against the virtual board's DS18B20 model, on both
# boards. Each scenario gets its own 1-Wire line (any GPIO can be one), so that what one test
# attaches never shows up in another's ROM search. Conversions are slept at 20x.
# devtest: speed=20
import gc
import time

import _devtest
import _simctl
import ds18b20
import machine
import micropython
import onewire
from sensor import ConfigError, CrcError, RangeError, SensorError

ESP32 = _simctl.request("status")["board"] == "sim-esp32"
# The board's 1-Wire pin first, then free GPIOs.
PINS = (4, 16, 17, 26, 27, 32, 33, 13, 14) if ESP32 else (22, 2, 3, 6, 7, 8, 9, 16, 17)

# The datasheet's "Table 1. Temperature/Data Relationship" (19-7487 Rev 6).
TABLE_1 = (
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
)

_powered = []


def line(i, *parts):
    # The 1-Wire bus on PINS[i] with the models `parts` (dicts of attach options, each with a
    # "serial") attached, the rail on, no faults and a known world. Returns (ow, the ROMs in hex
    # of every part on that line, in the order attached).
    if not _powered:
        _devtest.sensor_rail(True)
        time.sleep_ms(ds18b20.DS18B20.WARMUP_MS)
        _powered.append(True)
    pin = PINS[i]
    for part in parts:
        opts = dict(part)
        serial = opts.pop("serial")
        _simctl.request("attach", model="ds18b20", bus="onewire%d" % pin, addr=serial, **opts)
    _simctl.request("clear_faults")
    _simctl.request("env", temperature_c=25.0, probe_temperature_c=12.5)
    return onewire.OneWire(machine.Pin(pin)), [dev["rom"] for dev in _devices(pin)]


def _devices(pin):
    gc.collect()  # the status reply is a few kB: room for it on the ESP32's heap
    status = _simctl.request("status")
    for bus in status["hardware"]["onewire"]:
        if bus["pin"] == pin:
            return bus["devices"]
    return []


def model(ow, rom):
    # The model's describe() for `rom` (hex) on the bus of `ow`.
    for dev in _devices(ow.pin._id):
        if dev["rom"] == rom:
            return dev
    raise AssertionError("no model " + rom)


def measure(s):
    time.sleep_ms(s.start())
    return s.read()[0]


def fault(ow, rom, spec):
    _simctl.request("fault", target="onewire%d:%s" % (ow.pin._id, rom), spec=spec)


def test_alone_on_the_bus_it_is_found_by_search_and_has_the_common_shape():
    ow, (rom,) = line(0, {"serial": 0x9C3A51E2})
    s = ds18b20.DS18B20(ow)  # as the firmware builds it: no rom, no options
    assert s.KIND == "ds18b20"
    assert s.QUANTITIES == ("temperature",) and s.UNITS == ("C",)
    assert s.RESOLUTION == (0.0625,) and s.WARMUP_MS == 1
    assert s.rom.hex() == rom == "28e2513a9c0000c1"
    assert s.parasite is False and s.resolution == 12
    assert s.start() == 750
    time.sleep_ms(750)
    assert s.read() == (25.0,)
    assert s.raw() == (400,)
    # Alone on the bus: SKIP ROM, so MATCH ROM's 64 bits are saved on every transaction.
    assert s._skip is True


def test_the_datasheet_table_1_in_the_drivers_conversion():
    for celsius, word in TABLE_1:
        assert ds18b20.temperature_c(word) == celsius, (celsius, word)
        assert ds18b20.register(word) == int(celsius * 16)
    # The undefined low bits of 9..11-bit conversions are cleared.
    assert ds18b20.temperature_c(0x0197, 9) == 25.0
    assert ds18b20.temperature_c(0x0197, 10) == 25.25
    assert ds18b20.temperature_c(0x0197, 11) == 25.375
    assert ds18b20.temperature_c(0xFF5F, 9) == -10.5
    assert [ds18b20.conv_ms(r) for r in (9, 10, 11, 12)] == [94, 188, 375, 750]


def test_the_datasheet_table_1_end_to_end_through_the_model():
    # Two parts, one in air and one a probe, so that each conversion covers two rows.
    ow, (a, p) = line(1, {"serial": 0x11}, {"serial": 0x12, "quantity": "probe_temperature_c"})
    air = ds18b20.DS18B20(ow, rom=a)
    probe = ds18b20.DS18B20(ow, rom=p)
    for i in range(0, len(TABLE_1), 2):
        (t_air, w_air), (t_probe, w_probe) = TABLE_1[i], TABLE_1[i + 1]
        _simctl.request("env", temperature_c=t_air, probe_temperature_c=t_probe)
        time.sleep_ms(max(air.start(), probe.start()))
        assert air.read() == (t_air,) and air.raw()[0] & 0xFFFF == w_air, (t_air, air.raw())
        assert probe.read() == (t_probe,) and probe.raw()[0] & 0xFFFF == w_probe, t_probe


def test_rom_option_checks_crc_and_family_without_touching_the_bus():
    class NoBus:
        # Any bus transaction fails the test; crc8 is arithmetic, allowed.
        def crc8(self, data):
            return onewire.OneWire(machine.Pin(PINS[0])).crc8(data)

        def __getattr__(self, name):
            raise AssertionError("the bus was used: " + name)

    nb = NoBus()
    # Maxim application note 27's example ROM: 02 1C B8 01 00 00 00, CRC A2.
    assert nb.crc8(bytes.fromhex("021cb801000000")) == 0xA2
    e = _devtest.raises(ConfigError, ds18b20.DS18B20, nb, rom="021cb801000000a2")
    assert "family 02, not a DS18B20" in str(e)
    e = _devtest.raises(ConfigError, ds18b20.DS18B20, nb, rom="021cb801000000a3")
    assert "fails its CRC" in str(e)
    for bad in ("28e2513a9c0000", "28e2513a9c0000c1ff", "zz" * 8, 28):
        _devtest.raises(ConfigError, ds18b20.DS18B20, nb, rom=bad)
    for res in (8, 13, "12", 0, True):
        e = _devtest.raises(ConfigError, ds18b20.DS18B20, nb, resolution=res)
        assert isinstance(e, ValueError)
    e = _devtest.raises(ConfigError, ds18b20.DS18B20, nb, precision="high")
    assert str(e) == "ds18b20: unknown option precision"
    # The ROM as bytes (ow.scan() gives bytearrays) is taken too; a good one reaches the bus.
    _devtest.raises(AssertionError, ds18b20.DS18B20, nb, rom=bytes.fromhex("28e2513a9c0000c1"))


def test_two_on_one_bus_are_found_by_search_and_read_separately():
    ow, (air, soil) = line(2, {"serial": 0xA1}, {"serial": 0x50, "quantity": "probe_temperature_c"})
    found = sorted(r.hex() for r in ow.scan())
    assert found == sorted([air, soil])
    # Without a rom, two DS18B20s are a config mistake: the message lists both to copy from.
    e = _devtest.raises(ConfigError, ds18b20.DS18B20, ow)
    assert air in str(e) and soil in str(e) and str(e).startswith("ds18b20: 2 on the bus")
    a = ds18b20.DS18B20(ow, rom=air)
    p = ds18b20.DS18B20(ow, rom=soil, resolution=11)
    assert a._skip is False and p._skip is False  # MATCH ROM: not alone
    _simctl.request("env", temperature_c=23.4375, probe_temperature_c=-4.125)
    time.sleep_ms(max(a.start(), p.start()))  # as the firmware does: start all, one wait
    assert a.read() == (23.4375,)
    assert p.read() == (-4.125,)
    assert model(ow, air)["conversions"] == 1 and model(ow, soil)["conversions"] == 1


def test_no_ds18b20_on_the_bus_or_not_the_one_asked_for():
    ow, _ = line(3)
    e = _devtest.raises(SensorError, ds18b20.DS18B20, ow)
    assert str(e) == "ds18b20@onewire: no DS18B20 on the bus (found nothing)"
    e = _devtest.raises(SensorError, ds18b20.DS18B20, ow, rom="28e2513a9c0000c1")
    assert str(e) == "ds18b20@onewire 28e2513a9c0000c1: no answer"  # no presence pulse
    ow, (other,) = line(3, {"serial": 0x77})
    # Another part answers the presence pulse, but nobody answers MATCH ROM: all ones.
    e = _devtest.raises(SensorError, ds18b20.DS18B20, ow, rom="28e2513a9c0000c1")
    assert str(e) == "ds18b20@onewire 28e2513a9c0000c1: no answer"
    assert ds18b20.DS18B20(ow).rom.hex() == other


def test_readings_are_within_the_datasheet_accuracy_across_the_range():
    # Two parts with believable errors within the datasheet's: offset, gain, a little noise.
    ow, (a, p) = line(
        4,
        {"serial": 0x42, "offset": 0.2, "gain": 1.002, "noise": 0.02},
        {
            "serial": 0x43,
            "offset": -0.25,
            "gain": 0.999,
            "noise": 0.02,
            "quantity": "probe_temperature_c",
        },
    )
    air = ds18b20.DS18B20(ow, rom=a)
    probe = ds18b20.DS18B20(ow, rom=p)
    # "Thermometer Error": ±0.5 °C over -10..+85 °C, ±2 °C over -55..+125 °C.
    for t_air, t_probe, tolerance in (
        (-10.0, 85.0, 0.5),
        (0.0, 60.0, 0.5),
        (25.0, 41.9, 0.5),
        (12.7, -3.3, 0.5),
        (-55.0, 124.0, 2.0),
        (-30.0, 100.0, 2.0),
    ):
        _simctl.request("env", temperature_c=t_air, probe_temperature_c=t_probe)
        time.sleep_ms(max(air.start(), probe.start()))
        (ta,), (tp,) = air.read(), probe.read()
        assert abs(ta - t_air) <= tolerance, (t_air, ta)
        assert abs(tp - t_probe) <= tolerance, (t_probe, tp)
        assert ta == air.raw()[0] / 16 and tp == probe.raw()[0] / 16


def test_each_resolution_waits_its_conversion_time_and_is_written_only_when_different():
    ow, (rom,) = line(5, {"serial": 0x5})
    _simctl.request("env", temperature_c=21.3)
    expected = {9: 21.5, 10: 21.25, 11: 21.25, 12: 21.3125}
    writes = model(ow, rom)["scratchpad_writes"]
    for res, ms in ((9, 94), (10, 188), (11, 375), (12, 750)):
        s = ds18b20.DS18B20(ow, rom=rom, resolution=res)
        assert model(ow, rom)["resolution"] == res
        step = {9: 0.5, 10: 0.25, 11: 0.125, 12: 0.0625}[res]
        assert len(s.RESOLUTION) == 1 and s.RESOLUTION[0] == step
        t0 = time.ticks_ms()
        assert s.start() == ms
        assert time.ticks_diff(s._ready_at, t0) >= ms  # read() refuses until then
        time.sleep_ms(ms)
        assert s.read() == (expected[res],), (res, s.raw())
    assert model(ow, rom)["scratchpad_writes"] == writes + 4
    ds18b20.DS18B20(ow, rom=rom, resolution=12)  # already 12 bits: nothing written
    assert model(ow, rom)["scratchpad_writes"] == writes + 4
    assert model(ow, rom)["eeprom_writes"] == 0  # never COPY SCRATCHPAD
    assert model(ow, rom)["eeprom"] == "4b467f"


def test_the_undefined_low_bits_are_not_reported():
    ow, (rom,) = line(5)
    _simctl.request("env", temperature_c=10.125)
    s = ds18b20.DS18B20(ow, rom=rom)
    assert measure(s) == 10.125  # 0x00A2: the low 3 bits are 010
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    _simctl.request("env", temperature_c=25.3)
    assert measure(s) == 25.5
    assert s.raw() == (0x198,)
    assert model(ow, rom)["scratchpad"][:4] == "9a01"  # the part left bits 2..0 as 010


def test_reading_too_early():
    ow, (rom,) = line(6, {"serial": 0x66})
    s = ds18b20.DS18B20(ow)
    e = _devtest.raises(RuntimeError, s.read)
    assert str(e) == "ds18b20@onewire %s: read() without start()" % rom
    _simctl.request("env", temperature_c=31.0)
    s.start()
    e = _devtest.raises(SensorError, s.read)
    # What the chip itself gives that early (750 ms is ample for these few calls): the
    # register as it was, here the power-on 85 °C, with a good CRC.
    buf = bytearray(9)
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0xBE)
    ow.readinto(buf)
    assert buf[0] | buf[1] << 8 == 0x0550 and ow.crc8(buf) == 0
    assert str(e).startswith("ds18b20@onewire %s: busy for " % rom)
    # The driver left the bus alone: the only other scratchpad read was construction's.
    assert model(ow, rom)["scratchpad_reads"] == 2
    time.sleep_ms(750)
    assert s.read() == (31.0,)  # the conversion carried on
    _devtest.raises(RuntimeError, s.read)  # one read per start()
    # Read slots right after CONVERT T: 0 while converting, then 1.
    ow.reset()
    ow.writebyte(0xCC)
    ow.writebyte(0x44)
    assert ow.readbit() == 0
    time.sleep_ms(750)
    assert ow.readbit() == 1


def test_85_c_after_a_power_cycle_is_not_reported_but_converted_again():
    ow, (rom,) = line(7, {"serial": 0x85})
    s = ds18b20.DS18B20(ow, rom=rom)
    _simctl.request("env", temperature_c=23.0)
    s.start()
    _devtest.sensor_rail(False)  # the part loses power after CONVERT T: its conversion is lost
    _devtest.sensor_rail(True)
    time.sleep_ms(750)
    assert model(ow, rom)["scratchpad"][:4] == "5005"  # 0550h: the power-on value
    before = model(ow, rom)["conversions"]
    assert s.read() == (23.0,)  # not 85: converted again, and the read slots saw it end
    assert model(ow, rom)["conversions"] == before + 1
    # A real 85 °C is reported, once the read slots have shown a conversion end.
    _simctl.request("env", temperature_c=85.0)
    before = model(ow, rom)["conversions"]
    assert measure(s) == 85.0
    assert model(ow, rom)["conversions"] == before + 2


def test_parasite_power_is_detected_and_the_bus_left_alone_while_converting():
    ow, (ext, par) = line(8, {"serial": 0xE}, {"serial": 0xF, "parasite": True})
    e = ds18b20.DS18B20(ow, rom=ext)
    p = ds18b20.DS18B20(ow, rom=par)
    assert e.parasite is False and p.parasite is True
    _simctl.request("env", temperature_c=-7.5)
    assert measure(p) == -7.5
    assert model(ow, par)["brownouts"] == 0  # no read slot while it converted
    # The firmware's way, start all then one wait: the second start's reset pulse takes the
    # first part's supply, which comes back holding 85 °C; read() notices and converts again.
    time.sleep_ms(max(p.start(), e.start()))
    assert model(ow, par)["brownouts"] == 1
    assert e.read() == (-7.5,)
    assert p.read() == (-7.5,)
    # Exactly 85 °C on parasite power: a second conversion cannot prove it ended, so no value.
    _simctl.request("env", temperature_c=85.0)
    time.sleep_ms(p.start())
    e2 = _devtest.raises(SensorError, p.read)
    assert str(e2) == "ds18b20@onewire %s: 85 C twice, the power-on value (parasite power)" % par
    assert p.raw() == (0x0550,)


def test_a_detached_part_raises_sensor_error_naming_the_bus_and_rom():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    fault(ow, rom, "detach")
    e = _devtest.raises(SensorError, s.start)
    assert str(e) == "ds18b20@onewire %s: no answer" % rom
    assert isinstance(e, OSError)
    _devtest.raises(SensorError, ds18b20.DS18B20, ow, rom=rom)
    e = _devtest.raises(SensorError, ds18b20.DS18B20, ow)
    assert "no DS18B20 on the bus" in str(e)
    _simctl.request("clear_faults")
    assert measure(s) == 25.0


def test_a_stuck_bus_is_not_read_as_0_c():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    _simctl.request("fault", target="onewire%d" % ow.pin._id, spec="stuck")
    # The line held low looks like a presence pulse and like "converting"; then all zeros,
    # which pass the CRC (0 °C!) but cannot be a scratchpad.
    time.sleep_ms(s.start())
    e = _devtest.raises(SensorError, s.read)
    assert str(e) == "ds18b20@onewire %s: bus held low (reads 0)" % rom


def test_corrupt_replies_are_read_again_once_then_raise_crc_error():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    fault(ow, rom, "corrupt")
    before = model(ow, rom)["scratchpad_reads"]
    time.sleep_ms(s.start())
    e = _devtest.raises(CrcError, s.read)
    assert str(e) == "ds18b20@onewire %s: CRC mismatch in the scratchpad" % rom
    assert model(ow, rom)["scratchpad_reads"] - before == 2
    _devtest.raises(CrcError, ds18b20.DS18B20, ow, rom=rom)


def test_a_one_off_corruption_is_survived_by_the_re_read():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    fault(ow, rom, "corrupt:0.05")
    survived = 0
    for _ in range(30):
        before = model(ow, rom)["scratchpad_reads"]
        time.sleep_ms(s.start())
        try:
            t = s.read()
        except CrcError:
            continue
        assert t == (25.0,), t  # never a corrupted value
        if model(ow, rom)["scratchpad_reads"] - before == 2:
            survived += 1
    assert survived > 0


def test_a_stale_part_keeps_its_register():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    assert measure(s) == 25.0
    fault(ow, rom, "stale")
    _simctl.request("env", temperature_c=30.0)
    assert measure(s) == 25.0  # as on silicon: nothing on the bus tells a stale part
    _simctl.request("clear_faults")
    assert measure(s) == 30.0


def test_outside_minus_55_to_125_c_raises_range_error():
    ow, (rom,) = line(6)
    s = ds18b20.DS18B20(ow, rom=rom, resolution=9)
    _simctl.request("env", temperature_c=140.0)  # the register saturates: +127.5 °C at 9 bits
    e = _devtest.raises(RangeError, measure, s)
    assert str(e) == "ds18b20@onewire %s: temperature 127.50 C outside -55..125" % rom
    assert s.raw() == (2040,)
    _simctl.request("env", temperature_c=-60.0)
    _devtest.raises(RangeError, measure, s)
    assert s.raw() == (-960,)


class _FakeOneWire:
    # A bus that answers every read with one canned scratchpad, allocating nothing itself.
    def __init__(self, pad):
        self.pad = pad

    def reset(self, required=False):
        return True

    def writebyte(self, value):
        pass

    def write(self, buf):
        pass

    def readbit(self):
        return 1

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.pad[i]

    def crc8(self, data):
        return onewire.OneWire.crc8(self, data)  # the onewire module's, as a real bus has


def test_reading_the_scratchpad_allocates_nothing():
    # 25.0625 °C (0191h), TH, TL, 12 bits, reserved, and the CRC. The read path's bus work,
    # CRC and conversion run with the heap locked (start() is left out: the virtual board's
    # time.ticks_ms() allocates, the ports' does not).
    pad = bytearray(b"\x91\x01\x4b\x46\x7f\xff\x0c\x10\x00")
    fake = _FakeOneWire(pad)
    pad[8] = fake.crc8(pad[:8])
    s = ds18b20.DS18B20(fake, rom="28e2513a9c0000c1")
    micropython.heap_lock()
    try:
        t = s._temperature()
    finally:
        micropython.heap_unlock()
    assert t == 0x0191


def test_search_results_are_checked_for_family_and_crc():
    # MicroPython's own onewire.scan() checks no CRC, and on a line held low it returns 255
    # made-up ROMs: the driver checks each, and names at most 10 in a message.
    good = bytearray.fromhex("28e2513a9c0000c1")
    pad = bytearray(b"\x90\x01\x4b\x46\x7f\xff\x0c\x10\x00")
    fake = _FakeOneWire(pad)
    pad[8] = fake.crc8(pad[:8])
    bad_crc = bytearray(good)
    bad_crc[7] ^= 1
    other = bytearray.fromhex("021cb801000000a2")  # AN27's ROM: family 02, CRC good
    fake.scan = lambda: [bad_crc, other, good]
    s = ds18b20.DS18B20(fake)
    assert s.rom == bytes(good) and s._skip is False  # not alone: MATCH ROM
    fake.scan = lambda: [bytearray(8) for _ in range(12)]
    e = _devtest.raises(SensorError, ds18b20.DS18B20, fake)
    assert str(e) == "ds18b20@onewire: no DS18B20 on the bus (found %s and 2 more)" % " ".join(
        ["0000000000000000"] * 10
    )
    fake.scan = lambda: [good, bytearray.fromhex("28a9042d7b0100cc")]
    e = _devtest.raises(ConfigError, ds18b20.DS18B20, fake)
    assert str(e) == (
        "ds18b20: 2 on the bus, set the sensor's addr to one of: 28e2513a9c0000c1 28a9042d7b0100cc"
    )
