# What every Motekit sensor driver shares: the shape the firmware drives (below) and the errors.
# One chip per module, one class per module, installed flat in the node's /lib; the firmware
# (motekit/sensors.py) imports the module named by the config's "kind" and drives it so:
#
#   s = SHT4x(machine.I2C(0), 0x44)       # bus injected; checks the chip is there, no more
#   wait_ms = s.start()                   # every sensor triggered, then one wait: the longest
#   time.sleep_ms(wait_ms)
#   t_c, rh = s.read()                    # floats in QUANTITIES order, or an exception
#   s.raw()                               # (S_T, S_RH): the uncompensated ints behind them
#
# Class attributes (constants, readable without an instance):
#   KIND        the config's "kind" and the module name: "sht4x" -> sht4x.py
#   QUANTITIES  names from: temperature humidity pressure co2 voltage current power moisture
#   UNITS       one per quantity, from: C %RH hPa ppm V A W %
#   RESOLUTION  one per quantity: the smallest step of the value, in its unit
#   WARMUP_MS   ms from the sensor-power pin going on until the chip answers (its datasheet's
#               power-up time); the firmware waits the longest before constructing drivers
#
# Methods:
#   __init__(bus, addr=<the chip's default>, **options)
#       bus: machine.I2C, onewire.OneWire or machine.ADC, built by the firmware from board.json.
#       Construction touches the bus only to check the chip's identity (SHT4x: its serial
#       number). Unknown or bad options raise ConfigError before the bus is used.
#   start() -> int
#       Trigger one conversion; return the ms to wait before read(). 0 when read() converts.
#   read() -> tuple
#       The values, floats, in QUANTITIES order and UNITS. A value the driver cannot vouch for
#       raises; it is never returned (no None, no NaN, no silently clipped garbage).
#   raw() -> tuple
#       The ints behind the last read() (also when it raised RangeError), for calibration.
#
# Errors (all but ConfigError are OSError, so `except OSError` catches any sensor failure):
#   SensorError  the device failed: no answer, bus timeout, busy. The message starts with
#                "<kind>@<bus> <address>: ", e.g. "sht4x@i2c 0x44: no answer".
#   CrcError     a reply failed its checksum, also when retried once (re-read or re-triggered,
#                as the chip allows).
#   RangeError   the chip answered with a value outside what it can measure (or an ADC at its
#                rail): a wiring, configuration or hardware fault, never a reading.
#   ConfigError  a bad option (ValueError): a config mistake, raised at construction.
#
# Read path: buffers are allocated in __init__ and filled with readfrom_into; read() allocates
# only its returned tuple and floats.
from micropython import const

# errno values as MicroPython's ports raise them: an I2C address NACK is ENODEV on esp32 and
# EIO on rp2; a bus held low is ETIMEDOUT on both.
_EIO = const(5)
_ENODEV = const(19)
_ETIMEDOUT = const(110)


class SensorError(OSError):
    pass


class CrcError(SensorError):
    pass


class RangeError(SensorError):
    pass


class ConfigError(ValueError):
    pass


def is_nack(err):
    # True when a bus OSError means the device did not acknowledge (absent, detached or busy).
    return bool(err.args) and err.args[0] in (_ENODEV, _EIO)


def bus_error(where, err):
    # The SensorError for an OSError from the bus; `where` is "<kind>@<bus> <address>".
    code = err.args[0] if err.args else None
    if code in (_ENODEV, _EIO):
        return SensorError(where + ": no answer")
    if code == _ETIMEDOUT:
        return SensorError(where + ": bus timed out (a line held low)")
    return SensorError("%s: bus error %s" % (where, code))


def check_range(where, name, value, low, high, unit):
    # `value` when low <= value <= high, else RangeError naming the quantity and the range.
    if low <= value <= high:
        return value
    raise RangeError("%s: %s %.2f %s outside %g..%g" % (where, name, value, unit, low, high))


def crc8_sensirion(buf, start=0, end=2):
    # The CRC-8 of Sensirion's I2C sensors (SHT4x, SCD4x, ...) over buf[start:end], without
    # slicing: polynomial 0x31 (x^8 + x^5 + x^4 + 1), init 0xFF, no reflection, no final XOR.
    # Their datasheets' example: CRC(0xBEEF) = 0x92.
    crc = 0xFF
    for i in range(start, end):
        crc ^= buf[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31 if crc & 0x80 else crc << 1) & 0xFF
    return crc
