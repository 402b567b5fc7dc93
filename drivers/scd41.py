# Sensirion SCD41 CO2, temperature and humidity sensor on I2C, in single-shot mode, in the
# common driver shape (sensor.py). Datasheet: Sensirion "SCD4x" (version 1.3, September 2022);
# its section and table titles are cited where used.
#
#   s = SCD41(machine.I2C(0), 0x62, pressure_hpa=1005)   # reads the serial number, nothing else
#   time.sleep_ms(s.start())                             # 5000 ms: one single shot
#   ppm, t_c, rh = s.read()                              # (612.0, 21.37, 48.12)
#   s.raw()                                              # (CO2, S_T, S_RH) words of that read
#   s.set_pressure(987.4)                                # before start(): from a barometer
#   s.forced_recalibration(420)                          # after measuring in 420 ppm air
#   s.persist_settings()                                 # once: options kept over power-off
#
# Each start() is one measure_single_shot: the chip measures for 5 s and takes no command
# meanwhile (it NACKs its address: a read() before start()'s wait has passed is "busy"). The
# settings the options name (temperature offset, altitude, ASC) live in the chip's RAM, loaded
# from its EEPROM at power-up: the first start() reads each and writes only those that differ.
# They then last until the sensor power goes off; persist_settings() stores them in the EEPROM
# (2000 write cycles guaranteed: call it once, never every wake), after which nothing is written.
#
# Options: asc (True/False: automatic self-calibration; None leaves the chip's), pressure_hpa
# (700..1200) or altitude_m (0..3000) for the CO2 pressure compensation, temperature_offset
# (0..20 C, subtracted from T; 0 by default, see below), discard_first (see start()).
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
_EIO = const(5)  # the errno a port gives for a NACKed byte (sensor.py)

# Table 8 "I2C device address": every SCD4x answers at 0x62.
_ADDR = const(0x62)

# Table 9 "SCD4x Command Overview": 16-bit commands, MSB first. Arguments and replies are
# 16-bit words, each followed by its CRC-8 ("Data type & length"). Max. execution times in ms.
_MEASURE_SINGLE_SHOT = const(0x219D)  # 5000, SCD41 only ("Low power single shot")
_GET_DATA_READY = const(0xE4B8)  # 1: word & 0x07FF != 0 when a measurement is waiting
_READ_MEASUREMENT = const(0xEC05)  # 1: CO2, T, RH; read once, the chip then empties it
_STOP_PERIODIC = const(0x3F86)  # 500
_SET_TEMPERATURE_OFFSET = const(0x241D)  # 1
_GET_TEMPERATURE_OFFSET = const(0x2318)  # 1
_SET_ALTITUDE = const(0x2427)  # 1, metres above sea level
_GET_ALTITUDE = const(0x2322)  # 1
_SET_AMBIENT_PRESSURE = const(0xE000)  # 1, Pa / 100
_FORCED_RECALIBRATION = const(0x362F)  # 400: target ppm in, correction + 0x8000 out
_SET_ASC = const(0x2416)  # 1: 1 enabled, 0 disabled
_GET_ASC = const(0x2313)  # 1
_PERSIST_SETTINGS = const(0x3615)  # 800: RAM settings to EEPROM
_GET_SERIAL = const(0x3682)  # 1: three words, 48 bits
_SELF_TEST = const(0x3639)  # 10000: one word, 0 = no malfunction
_REINIT = const(0x3646)  # 20: EEPROM settings back into RAM
_POWER_DOWN = const(0x36E0)  # 1: idle to sleep
_WAKE_UP = const(0x36F6)  # 20: never acknowledged ("wake_up")

_CMD_MS = const(1)
_SHOT_MS = const(5000)
_STOP_MS = const(500)
_FRC_MS = const(400)
_PERSIST_MS = const(800)
_SELF_TEST_MS = const(10000)
_REINIT_MS = const(20)
_WAKE_MS = const(20)

_DATA_READY_MASK = const(0x07FF)  # "get_data_ready_status": the 11 least significant bits
_FRC_ZERO = const(0x8000)  # "perform_forced_recalibration": correction = word - 0x8000 ...
_FRC_FAILED = const(0xFFFF)  # ... and 0xFFFF when the FRC failed

# "read_measurement" signal conversion: CO2 = word ppm, T = -45 + 175 * word / 65535 C,
# RH = 100 * word / 65535 %RH. Version 1.3 divides by 2^16; later revisions and Sensirion's own
# drivers by 2^16 - 1 (Adafruit_CircuitPython_SCD4X#19), as here: 0.003 C apart at most.
_WORD_MAX = const(65535)
# "Features": output range 0..40000 ppm. 0 is what the chip reports when it has no CO2 value
# (an invalid sample, as Sensirion's own example code treats it; the RHT-only shot's CO2), and
# 40000 is the top of its range: a lower bound. Neither is a reading.
_CO2_MIN = const(1)
_CO2_MAX = const(39999)


def temperature_c(word):
    return -45.0 + 175.0 * word / _WORD_MAX


def humidity_rh(word):
    return 100.0 * word / _WORD_MAX


def _option(name, value, low, high, unit):
    # A number within low..high, else ConfigError (JSON gives ints, floats or booleans).
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise ConfigError("scd41 %s must be %g..%g %s, not %r" % (name, low, high, unit, value))


class SCD41:
    KIND = "scd41"
    QUANTITIES = ("co2", "temperature", "humidity")
    UNITS = ("ppm", "C", "%RH")
    RESOLUTION = (1, 0.01, 0.01)
    # "Power-Up and Communication Start": 1000 ms from VDD reaching 2.25 V to the idle state.
    WARMUP_MS = 1000

    def __init__(
        self,
        bus,
        addr=_ADDR,
        asc=None,
        pressure_hpa=None,
        altitude_m=None,
        temperature_offset=0.0,
        discard_first=False,
    ):
        if asc not in (None, True, False):
            raise ConfigError("scd41 asc must be true, false or null, not %r" % (asc,))
        if discard_first not in (True, False):
            raise ConfigError("scd41 discard_first must be true or false, not %r" % discard_first)
        if pressure_hpa is not None and altitude_m is not None:
            raise ConfigError("scd41: give pressure_hpa or altitude_m, not both")
        # Each setting as the word the chip takes; -1: leave the chip's own (not the offset).
        self._asc = -1 if asc is None else int(asc)
        self._pressure = -1
        if pressure_hpa is not None:
            self._pressure = _pressure_word(pressure_hpa)
        self._altitude = -1
        if altitude_m is not None:
            self._altitude = int(_option("altitude_m", altitude_m, 0, 3000, "m") + 0.5)
        # "set_temperature_offset": word = offset * (2^16 - 1) / 175; Sensirion recommends
        # 0..20 C. The chip's default, 4 C, is its self-heating in periodic mode; a single shot
        # every few minutes hardly warms it, so left at 4 C it reads 3-4 C low
        # (Sensirion/arduino-i2c-scd4x#3). Calibrate it in the final enclosure.
        offset = _option("temperature_offset", temperature_offset, 0, 20, "C")
        self._offset = int(offset * _WORD_MAX / 175 + 0.5)
        self._discard_first = discard_first
        self._bus = bus
        self._addr = addr
        self._where = "scd41@i2c 0x%02x" % addr
        self._out = bytearray(5)  # command, argument word, its CRC
        self._out2 = memoryview(self._out)[:2]
        self._buf = bytearray(9)  # up to three words, each with its CRC
        self._in3 = memoryview(self._buf)[:3]
        self._pending = 0  # the command whose result is awaited: a single shot or the self test
        self._pending_ms = 0  # the duration of the last command, for "busy"
        self._ready_at = time.ticks_ms()
        self._configured = False  # options written since power-up (or reinit / wake-up)
        self._first = True  # the next single shot is the first since power-up or wake-up
        self._co2 = -1  # the words of the last read(); -1 before any
        self._st = -1
        self._srh = -1
        # Identity: only an SCD4x answers get_serial_number with three CRC-checked words. A
        # chip that refuses it (NACK) was left asleep (power_down) or running a periodic
        # measurement, where it takes only a few commands ("SCD4x Command Overview", "During
        # meas."), by a program before this one on an always-powered sensor: wake it, stop
        # the measurement, wait its 500 ms and ask again. After a power-up it is idle, so this
        # costs nothing on a Motekit node whose sensor rail is off between wakes.
        try:
            self.serial_number = self.serial()
        except CrcError:
            raise
        except SensorError:
            if _DEBUG:
                print(self._where, "serial number refused: waking, stopping a measurement")
            self._wake()
            self._command(_STOP_PERIODIC, _STOP_MS)
            time.sleep_ms(_STOP_MS)
            self.serial_number = self.serial()

    # --- the common shape -------------------------------------------------------------------
    def start(self):
        if not self._configured:
            self._setup()
        if self._discard_first and self._first:
            # "Low power single shot": after a power cycle (or wake_up) the first single shot
            # "should be discarded to maximize accuracy". A second shot has to follow the
            # first, so this start() blocks for the first one's 5 s: the firmware's watchdog
            # is not fed meanwhile (watchdog_ms must exceed it) and a wake takes 10 s.
            self._command(_MEASURE_SINGLE_SHOT, _SHOT_MS)
            time.sleep_ms(_SHOT_MS)
        self._command(_MEASURE_SINGLE_SHOT, _SHOT_MS)
        self._first = False
        self._pending = _MEASURE_SINGLE_SHOT
        return _SHOT_MS

    def read(self):
        if self._pending != _MEASURE_SINGLE_SHOT:
            raise RuntimeError(self._where + ": read() without start()")
        # While measuring the chip NACKs every command, this one too: "busy for N ms more".
        self._get(_GET_DATA_READY, 1, "the data-ready status")
        b = self._buf
        if not ((b[0] << 8) | b[1]) & _DATA_READY_MASK:
            # It answers, so it is idle, yet has nothing: it lost power since start().
            self._pending = 0
            raise SensorError(self._where + ": no measurement ready (power lost since start?)")
        self._command(_READ_MEASUREMENT, _CMD_MS)
        time.sleep_ms(_CMD_MS)
        self._pending = 0
        # Read once: the chip empties its buffer on read-out, and measuring again would take
        # another 5 s, so a CRC mismatch here is not retried.
        if not self._fetch(3):
            raise CrcError(self._where + ": CRC mismatch in the measurement")
        self._co2 = (b[0] << 8) | b[1]
        self._st = (b[3] << 8) | b[4]
        self._srh = (b[6] << 8) | b[7]
        t = temperature_c(self._st)
        check_range(self._where, "co2", self._co2, _CO2_MIN, _CO2_MAX, "ppm")
        # "Temperature Sensing Performance": -10..60 C specified, +-1.5 C there; beyond that
        # tolerance T (and the CO2 compensated with it) is a fault, not a reading.
        check_range(self._where, "temperature", t, -11.5, 61.5, "C")
        return (float(self._co2), t, humidity_rh(self._srh))

    def raw(self):
        if self._co2 < 0:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (self._co2, self._st, self._srh)

    # --- SCD41 extras -----------------------------------------------------------------------
    def serial(self):
        # The part's unique 48-bit serial number ("get_serial_number"), from the chip.
        self._get(_GET_SERIAL, 3, "the serial number")
        b = self._buf
        return (b[0] << 40) | (b[1] << 32) | (b[3] << 24) | (b[4] << 16) | (b[6] << 8) | b[7]

    def set_pressure(self, hpa):
        # "set_ambient_pressure": the pressure the CO2 reading is compensated for, until power
        # off (overrides altitude_m). Call it before start(): the chip takes no command while
        # it measures. 700..1200 hPa, else ConfigError.
        self._command(_SET_AMBIENT_PRESSURE, _CMD_MS, _pressure_word(hpa))
        time.sleep_ms(_CMD_MS)

    def forced_recalibration(self, reference_ppm):
        # "perform_forced_recalibration": after the sensor has measured air of a known, steady
        # CO2 concentration for > 3 minutes in the mode it is used in (single shots), set its
        # offset so that it reads reference_ppm. Returns the correction in ppm (int). The chip
        # keeps the calibration history in its own EEPROM. Blocks 400 ms.
        ppm = int(_option("reference_ppm", reference_ppm, 0, 40000, "ppm") + 0.5)
        self._command(_FORCED_RECALIBRATION, _FRC_MS, ppm)
        time.sleep_ms(_FRC_MS)
        if not self._fetch(1):
            # Read once; the recalibration itself has been done.
            raise CrcError(self._where + ": CRC mismatch in the FRC correction")
        b = self._buf
        word = (b[0] << 8) | b[1]
        if word == _FRC_FAILED:
            raise SensorError(self._where + ": forced recalibration failed (measure first)")
        return word - _FRC_ZERO

    def persist_settings(self):
        # Write the options to the chip's settings, then store them in its EEPROM so that they
        # survive power-off ("persist_settings"). Once per change of config, never every wake:
        # the EEPROM is guaranteed for 2000 writes. Blocks 800 ms.
        self._setup()
        self._command(_PERSIST_SETTINGS, _PERSIST_MS)
        time.sleep_ms(_PERSIST_MS)

    def self_test(self):
        # "perform_self_test": returns the ms to wait (10 s) before self_test_result().
        self._command(_SELF_TEST, _SELF_TEST_MS)
        self._pending = _SELF_TEST
        return _SELF_TEST_MS

    def self_test_result(self):
        # The self test's status word: 0 when no malfunction was found.
        if self._pending != _SELF_TEST:
            raise RuntimeError(self._where + ": self_test_result() without self_test()")
        ok = self._fetch(1)  # NACKed until the test is done: "busy"
        self._pending = 0
        if not ok:
            raise CrcError(self._where + ": CRC mismatch in the self-test result")
        return (self._buf[0] << 8) | self._buf[1]

    def reinit(self):
        # "reinit": reload the settings from the EEPROM; the options are written again by the
        # next start().
        self._command(_REINIT, _REINIT_MS)
        time.sleep_ms(_REINIT_MS)
        self._configured = False

    def power_down(self):
        # "power_down": idle to sleep, until wake_up().
        self._command(_POWER_DOWN, _CMD_MS)
        time.sleep_ms(_CMD_MS)

    def wake_up(self):
        # "wake_up": the chip does not acknowledge it; reading the serial number then proves
        # it is idle, as the datasheet advises. The next single shot is a first one again.
        self._wake()
        self.serial()
        self._first = True
        self._configured = False

    # --- the bus ----------------------------------------------------------------------------
    def _wake(self):
        # wake_up and its 20 ms; its NACK is expected (an awake chip NACKs it as well).
        self._out[0] = _WAKE_UP >> 8
        self._out[1] = _WAKE_UP & 0xFF
        try:
            self._bus.writeto(self._addr, self._out2)
        except OSError as e:
            if not is_nack(e):
                raise bus_error(self._where, e) from None
        time.sleep_ms(_WAKE_MS)

    def _setup(self):
        # The options into the chip's RAM, each written only when it differs from what the
        # chip holds (what its EEPROM gave it at power-up).
        self._update(_GET_TEMPERATURE_OFFSET, _SET_TEMPERATURE_OFFSET, self._offset)
        if self._altitude >= 0:
            self._update(_GET_ALTITUDE, _SET_ALTITUDE, self._altitude)
        if self._asc >= 0:
            self._update(_GET_ASC, _SET_ASC, self._asc)
        if self._pressure >= 0:
            # Not kept in the EEPROM: written every time ("set_ambient_pressure").
            self._command(_SET_AMBIENT_PRESSURE, _CMD_MS, self._pressure)
            time.sleep_ms(_CMD_MS)
        self._configured = True

    def _update(self, get_cmd, set_cmd, word):
        self._get(get_cmd, 1, "a setting")
        b = self._buf
        if ((b[0] << 8) | b[1]) != word:
            self._command(set_cmd, _CMD_MS, word)
            time.sleep_ms(_CMD_MS)

    def _get(self, cmd, words, what):
        # A "read" sequence: the command, its execution time, `words` words with CRCs into the
        # buffer. Its reply can be asked for again, so a CRC mismatch is retried once.
        for _ in range(2):
            self._command(cmd, _CMD_MS)
            time.sleep_ms(_CMD_MS)
            if self._fetch(words):
                return
            if _DEBUG:
                print(self._where, "CRC mismatch in", what)
        raise CrcError(self._where + ": CRC mismatch in " + what)

    def _command(self, cmd, wait_ms, arg=-1):
        # Send a command, with its argument word and CRC when arg >= 0.
        out = self._out
        out[0] = cmd >> 8
        out[1] = cmd & 0xFF
        n = 2
        if arg >= 0:
            out[2] = arg >> 8
            out[3] = arg & 0xFF
            out[4] = crc8_sensirion(out, 2, 4)
            n = 5
        try:
            # A NACKed byte (a refused command or argument) is an OSError on the ports; a
            # short count of ACKs where writeto() reports it instead.
            if self._bus.writeto(self._addr, out if n == 5 else self._out2) != n:
                raise OSError(_EIO)
        except OSError as e:
            raise self._error(e) from None
        self._pending_ms = wait_ms
        self._ready_at = time.ticks_add(time.ticks_ms(), wait_ms)

    def _fetch(self, words):
        # Read `words` words with their CRCs into the buffer; True when every CRC matches.
        b = self._buf
        try:
            self._bus.readfrom_into(self._addr, self._in3 if words == 1 else b)
        except OSError as e:
            raise self._error(e) from None
        ok = True
        for i in range(0, 3 * words, 3):
            ok = ok and crc8_sensirion(b, i, i + 2) == b[i + 2]
        return ok

    def _error(self, err):
        # Time left of the last command; anything beyond its duration is ticks having wrapped
        # since (a command days ago), so not busy.
        early_ms = time.ticks_diff(self._ready_at, time.ticks_ms())
        if 0 < early_ms <= self._pending_ms and is_nack(err):
            # Not gone: still busy with the last command, which carries on.
            return SensorError("%s: busy for %d ms more" % (self._where, early_ms))
        return bus_error(self._where, err)


def _pressure_word(hpa):
    # "set_ambient_pressure": word = pressure in Pa / 100 (hPa); 700..1200 hPa accepted.
    return int(_option("pressure_hpa", hpa, 700, 1200, "hPa") + 0.5)
