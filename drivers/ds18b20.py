# Maxim (Analog Devices) DS18B20 1-Wire thermometer, in the common driver shape (sensor.py).
# Datasheet: DS18B20 "Programmable Resolution 1-Wire Digital Thermometer", 19-7487 Rev 6 (7/19);
# its section, table and figure titles are cited where used.
#
#   ow = onewire.OneWire(machine.Pin(4))
#   s = DS18B20(ow, rom="28e2513a9c0000c1")  # MATCH ROM + scratchpad read: the identity check
#   s = DS18B20(ow, resolution=10)           # no rom: the bus's only DS18B20, by ROM search
#   time.sleep_ms(s.start())                 # 750 ms at 12 bits, 188 at 10
#   (t_c,) = s.read()                        # (21.4375,)
#   s.raw()                                  # (343,): the temperature register, 1/16 °C
#   s.rom, s.parasite                        # the 8 ROM bytes; True when parasite powered
#
# Construction: with `rom` (16 hex digits, family code first, as ow.scan()'s bytes .hex()) no
# search is made: the scratchpad is read by MATCH ROM, with its CRC. Without, one ROM search;
# the bus must hold exactly one DS18B20 (family 28h), and SKIP ROM is used when it holds
# nothing else. Then READ POWER SUPPLY, and the resolution is written to the scratchpad only
# when it differs. Never to EEPROM: COPY SCRATCHPAD every wake would wear it out (rated 50k
# writes); the scratchpad reverts to the EEPROM's setting at each power-up, so a resolution
# other than the EEPROM's costs one 3-byte WRITE SCRATCHPAD per wake.
#
# Parasite power: the part takes its supply from the bus, which must stay high for the whole
# conversion; a reset or time slot meanwhile (for any device) resets the part, which then
# holds 85 °C. MicroPython's onewire has no strong pull-up, so the bus pull-up must carry the
# conversion current; the driver leaves the bus alone (no busy polling) after CONVERT T.
#
# 85 °C (0550h) is the power-on value of the temperature register. A reading of exactly that
# is checked with a second conversion, with the bus to ourselves: on VDD, read slots show it
# start (0) and end (1), so a second 85 °C is a real one; on parasite power nothing shows it,
# so a second 85 °C raises SensorError (exactly 85.0 °C cannot be told from a lost conversion).
import time

from micropython import const
from sensor import ConfigError, CrcError, SensorError, check_range

# "64-Bit Lasered ROM Code": the family code in the ROM's first byte.
_FAMILY = const(0x28)
_ROM_LEN = const(8)
_LIST_MAX = const(10)  # ROMs named in an error message

# "ROM Commands".
_MATCH_ROM = const(0x55)
_SKIP_ROM = const(0xCC)
# "DS18B20 Function Commands".
_CONVERT_T = const(0x44)
_WRITE_SCRATCHPAD = const(0x4E)  # then TH, TL, configuration
_READ_SCRATCHPAD = const(0xBE)  # 9 bytes, byte 8 the CRC of bytes 0..7
_READ_POWER_SUPPLY = const(0xB4)  # then one read slot: 0 parasite powered, 1 on VDD

# "Figure 9. DS18B20 Memory Map": the scratchpad.
_T_LSB = const(0)
_T_MSB = const(1)
_TH = const(2)
_TL = const(3)
_CONFIG = const(4)
_SCRATCHPAD_LEN = const(9)

# "Configuration Register": R1 R0 (bits 6..5) select 9..12 bits; bits 4..0 always read 1.
_CONFIG_FIXED = const(0x1F)
_CONFIG_R = const(0x60)

# "Table 1. Temperature/Data Relationship": signed, 1/16 °C per count; the power-on reset value
# of the register is +85 °C.
_POWER_ON = const(0x0550)
# "Electrical Characteristics": t_CONV max is 750 ms at 12 bits, halved per bit less (93.75 ms
# at 9); "Operation—Measuring Temperature": range -55..+125 °C.
_CONV_12_MS = const(750)
_T_MIN_C = const(-55)
_T_MAX_C = const(125)


def conv_ms(resolution):
    # t_CONV max at 9..12 bits, rounded up: 94, 188, 375, 750 ms.
    shift = 12 - resolution
    return (_CONV_12_MS + (1 << shift) - 1) >> shift


def temperature_c(word, resolution=12):
    # °C of a temperature register word (16-bit, as two bytes give it); the undefined low bits
    # of 9..11-bit conversions ("Operation—Measuring Temperature") are cleared.
    return register(word, resolution) / 16


def register(word, resolution=12):
    # The signed register, 1/16 °C per count, with the undefined low bits cleared.
    if word & 0x8000:
        word -= 0x10000
    return word & -(1 << (12 - resolution))


class DS18B20:
    KIND = "ds18b20"
    QUANTITIES = ("temperature",)
    UNITS = ("C",)
    RESOLUTION = (0.0625,)  # at 12 bits; an instance has its own
    # The datasheet gives no power-up time (the EEPROM is recalled at power-up and "valid data
    # is available in the scratchpad as soon as power is applied"): 1 ms for the rail to settle.
    WARMUP_MS = 1

    def __init__(self, ow, rom=None, resolution=12, **options):
        if options:
            raise ConfigError("ds18b20: unknown option %s" % ", ".join(sorted(options)))
        if resolution not in (9, 10, 11, 12):
            raise ConfigError("ds18b20 resolution must be 9, 10, 11 or 12, not %r" % resolution)
        resolution = int(resolution)
        self._ow = ow
        self._skip = False
        if rom is not None:
            rom = self._check_rom(rom)
        self._where = "ds18b20@onewire"
        self._buf = bytearray(_SCRATCHPAD_LEN)
        self._pending = False
        self._ready_at = time.ticks_ms()  # when the conversion started is done
        self._raw = None  # type: int | None  # the last register read
        if rom is None:
            rom = self._search()
        self.rom = rom
        self._where = "ds18b20@onewire " + rom.hex()
        b = self._scratchpad()  # identity: a DS18B20's scratchpad, CRC and all
        self._select()
        ow.writebyte(_READ_POWER_SUPPLY)
        self.parasite = not ow.readbit()
        config = ((resolution - 9) << 5) | _CONFIG_FIXED
        if b[_CONFIG] & _CONFIG_R != config & _CONFIG_R:
            self._select()
            ow.writebyte(_WRITE_SCRATCHPAD)
            ow.writebyte(b[_TH])  # the alarm limits as they are
            ow.writebyte(b[_TL])
            ow.writebyte(config)
            if self._scratchpad()[_CONFIG] & _CONFIG_R != config & _CONFIG_R:
                raise SensorError(self._where + ": the resolution did not take")
        self.resolution = resolution
        self.RESOLUTION = (1 / (1 << (resolution - 8)),)
        self._conv_ms = conv_ms(resolution)

    # --- the common shape -------------------------------------------------------------------
    def start(self):
        self._convert()
        return self._conv_ms

    def read(self):
        if not self._pending:
            raise RuntimeError(self._where + ": read() without start()")
        early_ms = time.ticks_diff(self._ready_at, time.ticks_ms())
        if 0 < early_ms <= self._conv_ms:
            # Still converting; a parasite part must not even be asked (see the header).
            raise SensorError("%s: busy for %d ms more" % (self._where, early_ms))
        self._pending = False
        t = self._temperature()
        if t == _POWER_ON:
            t = self._confirm_85()
        return (check_range(self._where, "temperature", t / 16, _T_MIN_C, _T_MAX_C, "C"),)

    def raw(self):
        if self._raw is None:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (self._raw,)

    # --- DS18B20 steps ----------------------------------------------------------------------
    def _convert(self):
        # CONVERT T. On VDD the part answers read slots with 0 while it converts: one slot
        # checks that it took the command. On parasite power the bus is left alone.
        ow = self._ow
        self._select()
        ow.writebyte(_CONVERT_T)
        if not self.parasite and ow.readbit():
            self._pending = False
            raise SensorError(self._where + ": no answer to CONVERT T")
        self._pending = True
        self._ready_at = time.ticks_add(time.ticks_ms(), self._conv_ms)

    def _confirm_85(self):
        # 85 °C is also the power-on value: the part may have reset (power glitch, or parasite
        # power lost to bus traffic) and never converted. Convert again with the bus to
        # ourselves, for the time of the resolution the part says it has.
        ow = self._ow
        wait_ms = conv_ms(9 + ((self._buf[_CONFIG] & _CONFIG_R) >> 5))
        self._convert()
        time.sleep_ms(wait_ms)
        if not self.parasite and not ow.readbit():
            raise SensorError(self._where + ": conversion not done in %d ms" % wait_ms)
        self._pending = False
        t = self._temperature()
        if t == _POWER_ON and self.parasite:
            raise SensorError(self._where + ": 85 C twice, the power-on value (parasite power)")
        return t

    def _temperature(self):
        b = self._scratchpad()
        self._raw = register(b[_T_LSB] | (b[_T_MSB] << 8), 9 + ((b[_CONFIG] & _CONFIG_R) >> 5))
        return self._raw

    def _scratchpad(self):
        # READ SCRATCHPAD into the buffer; its CRC checked, re-read once on a mismatch.
        ow = self._ow
        b = self._buf
        for _ in range(2):
            self._select()
            ow.writebyte(_READ_SCRATCHPAD)
            ow.readinto(b)
            ones = zeros = 0
            for i in range(_SCRATCHPAD_LEN):
                ones += b[i] == 0xFF
                zeros += b[i] == 0
            # Neither can be a scratchpad: its configuration byte has bit 7 0 and bits 4..0 1.
            if ones == _SCRATCHPAD_LEN:
                raise SensorError(self._where + ": no answer")
            if zeros == _SCRATCHPAD_LEN:  # passes the CRC, so caught first
                raise SensorError(self._where + ": bus held low (reads 0)")
            if ow.crc8(b) == 0:  # the CRC over data and its CRC is 0
                return b
        raise CrcError(self._where + ": CRC mismatch in the scratchpad")

    def _select(self):
        ow = self._ow
        if not ow.reset():
            raise SensorError(self._where + ": no answer")
        if self._skip:
            ow.writebyte(_SKIP_ROM)
        else:
            ow.writebyte(_MATCH_ROM)
            ow.write(self.rom)

    def _check_rom(self, rom):
        try:
            b = bytes.fromhex(rom) if isinstance(rom, str) else bytes(rom)
        except (TypeError, ValueError):
            b = b""
        if len(b) != _ROM_LEN:
            raise ConfigError("ds18b20 rom must be 16 hex digits, family code first: %r" % rom)
        if self._ow.crc8(b):
            raise ConfigError("ds18b20 rom %s fails its CRC (the last byte)" % b.hex())
        if b[0] != _FAMILY:
            raise ConfigError("ds18b20 rom %s is family %02x, not a DS18B20 (28)" % (b.hex(), b[0]))
        return b

    def _search(self):
        # One ROM search; the DS18B20s found with a good CRC. Exactly one is needed.
        found = self._ow.scan()
        mine = [r for r in found if r[0] == _FAMILY and self._ow.crc8(r) == 0]
        if not mine:
            raise SensorError("ds18b20@onewire: no DS18B20 on the bus (found %s)" % _list(found))
        if len(mine) > 1:
            raise ConfigError(
                "ds18b20: %d on the bus, set the sensor's addr to one of: %s"
                % (len(mine), _list(mine))
            )
        self._skip = len(found) == 1
        return bytes(mine[0])


def _list(roms):
    # ROMs in hex for a message, at most _LIST_MAX: on a line held low a search returns 255
    # made-up ones.
    text = " ".join(r.hex() for r in roms[:_LIST_MAX]) or "nothing"
    more = len(roms) - _LIST_MAX
    return text + " and %d more" % more if more > 0 else text
