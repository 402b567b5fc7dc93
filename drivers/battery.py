# Battery voltage through a resistor divider on an ADC pin, in the common driver shape
# (sensor.py). The board file gives the pin and the divider (board.json pins.battery_adc).
#
#   b = Battery(machine.ADC(machine.Pin(35)), divider=2.0)
#   b.start()              # 0: read() converts
#   (volts,) = b.read()    # the mean of `samples` conversions, times the divider
#   b.raw()                # (mean read_u16() of those conversions,)
#
# The ADC is read by analog.py, shared with the other analog drivers: read_uv() where the port
# has it (esp32: ESP-IDF's eFuse calibration), else read_u16() * vref / 65535 (rp2: the RP2040
# ADC spans 0..ADC_AVDD, 3.3 V on a Pico); the ESP32 attenuation set to `atten`, by default
# 11 dB, whose calibrated range is 150..2450 mV at the pin (ESP-IDF "ADC Attenuation" table):
# 4.9 V of battery through a 2:1 divider. `atten=ADC.ATTN_6DB` (150..1750 mV) is the more
# accurate choice when the pin stays below 1.75 V.
#
# A pin at the ADC's top code is saturated: the reading is only a lower bound, so read()
# raises RangeError (the divider or the attenuation is wrong for this voltage). 0 V is a
# reading: a board on USB power with no battery fitted.
from analog import Adc
from sensor import ConfigError, RangeError


class Battery:
    KIND = "battery"
    QUANTITIES = ("voltage",)
    UNITS = ("V",)
    RESOLUTION = (0.001,)
    WARMUP_MS = 0  # the divider is wired to the battery, not switched with sensor power

    def __init__(self, adc, divider=2.0, samples=8, vref=3.3, atten=None):
        if not divider >= 1.0:
            raise ConfigError("battery divider is Vbat / Vpin, at least 1, not %r" % divider)
        self._adc = Adc(adc, "battery", samples, vref, atten)
        self._divider = divider

    def start(self):
        return 0

    def read(self):
        a = self._adc
        volts = a.read()
        if a.top:
            raise RangeError(
                "battery@adc: ADC at full scale, divider or attenuation wrong for this voltage"
            )
        return (volts * self._divider,)

    def raw(self):
        if self._adc.u16 < 0:
            raise RuntimeError("battery@adc: raw() before any read()")
        return (self._adc.u16,)
