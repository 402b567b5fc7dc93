# Sensirion SHT40/SHT41/SHT45 humidity and temperature sensor on I2C, in the common driver
# shape (sensor.py). Datasheet: Sensirion "SHT4x" (version 6, February 2023); its section and
# table titles are cited where used.
#
#   s = SHT4x(machine.I2C(0), 0x44, precision="high")   # reads the serial number, nothing else
#   time.sleep_ms(s.start())                            # 9 ms at high precision
#   t_c, rh = s.read()                                  # (21.37, 48.12)
#   s.raw()                                             # (S_T, S_RH) words of that read
#   time.sleep_ms(s.heater(200, 1000))                  # heat 1 s, then measure: read() it
#   s.serial(), s.soft_reset()
#
# The chip does not acknowledge its address while it measures, heats or resets, so a read()
# before start()'s wait has passed fails with "busy" (as on silicon: the chip itself NACKs);
# the conversion goes on and a later read() gets it. A result is read once.
import time

from micropython import const
from sensor import (
    ConfigError,
    CrcError,
    SensorError,
    bus_error,
    check_range,
    crc8_sensirion,
    is_nack,
)

_DEBUG = const(False)

# "Device Overview": SHT4x-A parts answer at 0x44 (SHT40-B at 0x45, SHT40-C at 0x46).
_ADDR = const(0x44)

# "Command Overview": one-byte commands. Measurements and the serial number answer 6 bytes:
# two 16-bit words, MSB first, each followed by its CRC.
_MEASURE_HIGH = const(0xFD)  # T & RH, high precision (repeatability)
_MEASURE_MEDIUM = const(0xF6)  # medium precision
_MEASURE_LOW = const(0xE0)  # lowest precision
_READ_SERIAL = const(0x89)  # serial number, unique per part
_SOFT_RESET = const(0x94)  # no reply
# Heater on at a power for a time, then a high-precision measurement just before it turns off.
_HEAT_200MW_1S = const(0x39)
_HEAT_200MW_100MS = const(0x32)
_HEAT_110MW_1S = const(0x2F)
_HEAT_110MW_100MS = const(0x24)
_HEAT_20MW_1S = const(0x1E)
_HEAT_20MW_100MS = const(0x15)

# "System Timing Specifications", maximum values rounded up to whole ms.
_HIGH_MS = const(9)  # t_MEAS,h 8.3 ms
_MEDIUM_MS = const(5)  # t_MEAS,m 4.5 ms
_LOW_MS = const(2)  # t_MEAS,l 1.6 ms
_HEAT_LONG_MS = const(1100)  # heater-on duration, long pulse: 1.1 s
_HEAT_SHORT_MS = const(110)  # heater-on duration, short pulse: 0.11 s
_RESET_MS = const(1)  # t_SR soft reset time
# The serial number's delay is not in the table: Sensirion's own driver (embedded-sht) waits
# 1 ms between the command and the read, and the chip NACKs a read sent straight after it.
_SERIAL_MS = const(1)

# "Checksum Calculation": CRC-8, polynomial 0x31, init 0xFF, over each 2-byte word; the same
# for every Sensirion I2C sensor, so it lives in sensor.py. Example: CRC(0xBEEF) = 0x92.
crc8 = crc8_sensirion

# "Conversion of Signal Output": T = -45 + 175 * S_T / (2^16 - 1) in °C,
# RH = -6 + 125 * S_RH / (2^16 - 1) in %RH, cropped to 0..100 %RH as the datasheet advises.
_WORD_MAX = const(65535)
# "Features": operating range -40..125 °C. With 1 °C for the part's tolerance at the ends, a
# temperature outside it is a fault (S_T 0x0000 is -45 °C, 0xFFFF 130 °C), never a reading.
_T_MIN_C = const(-41)
_T_MAX_C = const(126)


def temperature_c(word):
    return -45.0 + 175.0 * word / _WORD_MAX


def humidity_rh(word):
    rh = -6.0 + 125.0 * word / _WORD_MAX
    return 0.0 if rh < 0.0 else 100.0 if rh > 100.0 else rh


class SHT4x:
    KIND = "sht4x"
    QUANTITIES = ("temperature", "humidity")
    UNITS = ("C", "%RH")
    RESOLUTION = (0.01, 0.01)
    WARMUP_MS = 1  # "System Timing Specifications": power-up time t_PU 1 ms max

    def __init__(self, bus, addr=_ADDR, precision="high"):
        if precision == "high":
            self._measure, self._measure_ms = _MEASURE_HIGH, _HIGH_MS
        elif precision == "medium":
            self._measure, self._measure_ms = _MEASURE_MEDIUM, _MEDIUM_MS
        elif precision == "low":
            self._measure, self._measure_ms = _MEASURE_LOW, _LOW_MS
        else:
            raise ConfigError("sht4x precision must be high, medium or low, not %r" % precision)
        self._bus = bus
        self._addr = addr
        self._where = "sht4x@i2c 0x%02x" % addr
        self._cmd = bytearray(1)
        self._buf = bytearray(6)  # word, CRC, word, CRC
        self._pending = 0  # the command whose result read() fetches; 0: none
        self._pending_ms = 0  # its duration, for the CRC retry
        self._ready_at = time.ticks_ms()  # when the chip is done with the last command
        self._st = -1  # the last words read; -1 before any
        self._srh = -1
        self.serial_number = self.serial()  # identity check: only an SHT4x answers this

    # --- the common shape -------------------------------------------------------------------
    def start(self):
        self._command(self._measure, self._measure_ms)
        return self._measure_ms

    def read(self):
        cmd = self._pending
        if not cmd:
            raise RuntimeError(self._where + ": read() without start()")
        ok = self._fetch()
        if not ok and cmd == self._measure:
            # Re-trigger: the datasheet does not promise a result can be read twice. A heater
            # measurement is not repeated (that would double the heater's on-time).
            if _DEBUG:
                print(self._where, "CRC mismatch, measuring again")
            self._command(cmd, self._pending_ms)
            time.sleep_ms(self._pending_ms)
            ok = self._fetch()
        self._pending = 0
        if not ok:
            raise CrcError(self._where + ": CRC mismatch in the measurement")
        b = self._buf
        self._st = (b[0] << 8) | b[1]
        self._srh = (b[3] << 8) | b[4]
        t = temperature_c(self._st)
        check_range(self._where, "temperature", t, _T_MIN_C, _T_MAX_C, "C")
        return (t, humidity_rh(self._srh))

    def raw(self):
        if self._st < 0:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (self._st, self._srh)

    # --- SHT4x extras -----------------------------------------------------------------------
    def serial(self):
        # The part's unique 32-bit serial number (from the chip, not cached).
        self._command(_READ_SERIAL, _SERIAL_MS)
        time.sleep_ms(_SERIAL_MS)
        ok = self._fetch()
        if not ok:
            self._command(_READ_SERIAL, _SERIAL_MS)
            time.sleep_ms(_SERIAL_MS)
            ok = self._fetch()
        self._pending = 0
        if not ok:
            raise CrcError(self._where + ": CRC mismatch in the serial number")
        b = self._buf
        return (b[0] << 24) | (b[1] << 16) | (b[3] << 8) | b[4]

    def heater(self, power_mw=200, duration_ms=1000):
        # "Heater Operation": heat at 200, 110 or 20 mW for 1000 or 100 ms, then measure at high
        # precision; returns the ms to wait before read() gets that (heated) measurement. The
        # datasheet limits the heater to a 10 % duty cycle: the caller paces it.
        if duration_ms not in (100, 1000):
            raise ConfigError("sht4x heater duration must be 100 or 1000 ms")
        one_s = duration_ms == 1000
        if power_mw == 200:
            cmd = _HEAT_200MW_1S if one_s else _HEAT_200MW_100MS
        elif power_mw == 110:
            cmd = _HEAT_110MW_1S if one_s else _HEAT_110MW_100MS
        elif power_mw == 20:
            cmd = _HEAT_20MW_1S if one_s else _HEAT_20MW_100MS
        else:
            raise ConfigError("sht4x heater power must be 200, 110 or 20 mW")
        wait_ms = _HEAT_LONG_MS if one_s else _HEAT_SHORT_MS
        self._command(cmd, wait_ms)
        return wait_ms

    def soft_reset(self):
        # Back to the power-on state (heater off); an unread result is lost.
        self._command(_SOFT_RESET, _RESET_MS)
        self._pending = 0
        time.sleep_ms(_RESET_MS)

    # --- the bus ----------------------------------------------------------------------------
    def _command(self, cmd, wait_ms):
        self._cmd[0] = cmd
        try:
            self._bus.writeto(self._addr, self._cmd)
        except OSError as e:
            raise self._error(e) from None
        self._pending = cmd
        self._pending_ms = wait_ms
        self._ready_at = time.ticks_add(time.ticks_ms(), wait_ms)

    def _fetch(self):
        # Read the 6-byte result into the buffer; True when both CRCs match.
        try:
            self._bus.readfrom_into(self._addr, self._buf)
        except OSError as e:
            raise self._error(e) from None
        b = self._buf
        return crc8(b, 0, 2) == b[2] and crc8(b, 3, 5) == b[5]

    def _error(self, err):
        # Time left of the last command; anything beyond its duration is ticks having wrapped
        # since (a command days ago), so not busy.
        early_ms = time.ticks_diff(self._ready_at, time.ticks_ms())
        if 0 < early_ms <= self._pending_ms and is_nack(err):
            # Not gone: still busy with the last command, which carries on.
            return SensorError("%s: busy for %d ms more" % (self._where, early_ms))
        self._pending = 0
        return bus_error(self._where, err)
