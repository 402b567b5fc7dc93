# Battery voltage through a resistor divider on an ADC pin, in the common driver shape
# (sensor.py). The board file gives the pin and the divider (board.json pins.battery_adc).
#
#   b = Battery(machine.ADC(machine.Pin(35)), divider=2.0)
#   b.start()              # 0: read() converts
#   (volts,) = b.read()    # the mean of `samples` conversions, times the divider
#   b.raw()                # (mean read_u16() of those conversions,)
#
# Conversion: an ADC with read_uv() (the esp32 port's) gives microvolts through ESP-IDF's
# eFuse calibration, which corrects the ESP32 ADC's gain error and non-linearity; otherwise
# read_u16() * vref / 65535 (the rp2 port: the RP2040 ADC spans 0..ADC_AVDD, 3.3 V on a Pico).
#
# Attenuation (esp32, ADCs with atten()): the driver sets it, because the firmware builds the
# ADC from board.json without one and the ESP32 default (0 dB) saturates at about 1 V. By
# default 11 dB (`ADC.ATTN_11DB`), whose calibrated range is 150..2450 mV at the pin (ESP-IDF
# "ADC Attenuation" table): 4.9 V of battery through a 2:1 divider. `atten=ADC.ATTN_6DB`
# (150..1750 mV) is the more accurate choice when the pin stays below 1.75 V.
#
# A pin at the ADC's top code is saturated: the reading is only a lower bound, so read()
# raises RangeError (the divider or the attenuation is wrong for this voltage). 0 V is a
# reading: a board on USB power with no battery fitted.
from micropython import const
from sensor import ConfigError, RangeError

_U16_RAIL = const(65535)  # read_u16() of the top code, whatever the ADC's width
_MAX_SAMPLES = const(256)  # keeps the sums small ints: 256 * 3.9e6 uV < 2**30


class Battery:
    KIND = "battery"
    QUANTITIES = ("voltage",)
    UNITS = ("V",)
    RESOLUTION = (0.001,)
    WARMUP_MS = 0  # the divider is wired to the battery, not switched with sensor power

    def __init__(self, adc, divider=2.0, samples=8, vref=3.3, atten=None):
        if not divider >= 1.0:
            raise ConfigError("battery divider is Vbat / Vpin, at least 1, not %r" % divider)
        if not 1 <= samples <= _MAX_SAMPLES:
            raise ConfigError("battery samples must be 1..%d, not %r" % (_MAX_SAMPLES, samples))
        if not vref > 0:
            raise ConfigError("battery vref must be positive, not %r" % vref)
        self._where = "battery@adc"
        self._adc = adc
        self._divider = divider
        self._samples = samples
        self._vref = vref
        self._uv = hasattr(adc, "read_uv")
        if hasattr(adc, "atten"):
            adc.atten(adc.ATTN_11DB if atten is None else atten)
        elif atten is not None:
            raise ConfigError("this ADC has no attenuation setting (atten is esp32 only)")
        self._raw = -1

    def start(self):
        return 0

    def read(self):
        adc = self._adc
        n = self._samples
        total_u16 = 0
        total_uv = 0
        rail = False
        for _ in range(n):
            u16 = adc.read_u16()
            rail = rail or u16 >= _U16_RAIL
            total_u16 += u16
            if self._uv:
                total_uv += adc.read_uv()
        self._raw = (total_u16 + n // 2) // n
        if rail:
            raise RangeError(
                self._where + ": ADC at full scale, divider or attenuation wrong for this voltage"
            )
        if self._uv:
            return (total_uv / n / 1000000 * self._divider,)
        return (total_u16 / n * self._vref / _U16_RAIL * self._divider,)

    def raw(self):
        if self._raw < 0:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (self._raw,)
