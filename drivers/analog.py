# One ADC pin read the same way on every port, for the analog-input drivers (battery.py,
# soil.py): attenuation set up once, `samples` conversions averaged, the top code detected.
#
#   a = Adc(machine.ADC(machine.Pin(32)), "soil", samples=8, vref=3.3, atten=None)
#   v = a.read()     # the mean pin voltage, V (float)
#   a.u16            # the mean read_u16() of those conversions (0: every one at code 0)
#   a.top            # True when one was at the top code: v is then only a lower bound
#
# Per port:
# - An ADC with read_uv() (the esp32 port) gives microvolts through ESP-IDF's eFuse calibration,
#   which corrects the ESP32 ADC's gain error and non-linearity inside the attenuation's range.
#   Each sample is then two conversions: read_u16() for the top-code check, read_uv() for the
#   value.
# - Otherwise read_u16() * vref / 65535 (the rp2 port: the RP2040 ADC spans 0..ADC_AVDD, the
#   3.3 V rail on a Pico). Its non-linearity (errata RP2040-E11: DNL steps of about 10 LSB at
#   codes 512, 1536, 2560, 3584) is not corrected: docs/drivers.md, "analog.py", says why.
#
# Attenuation (ADCs with atten(), esp32): set here, because the firmware builds the ADC from
# board.json without one and the ESP32's default 0 dB saturates at about 1 V. By default 11 dB
# (ADC.ATTN_11DB): 150..2450 mV calibrated at the pin (ESP-IDF "ADC Attenuation" table).
from micropython import const
from sensor import ConfigError

_U16_TOP = const(65535)  # read_u16() of the top code, whatever the ADC's width
_MAX_SAMPLES = const(256)  # keeps the sums small ints: 256 * 3.9e6 uV < 2**30


class Adc:
    def __init__(self, adc, kind, samples=8, vref=3.3, atten=None):
        # `kind` names the driver in ConfigError messages; bad options raise before the ADC is
        # touched.
        if type(samples) is not int or not 1 <= samples <= _MAX_SAMPLES:
            raise ConfigError("%s samples must be 1..%d, not %r" % (kind, _MAX_SAMPLES, samples))
        if type(vref) not in (int, float) or not vref > 0:
            raise ConfigError("%s vref must be positive volts, not %r" % (kind, vref))
        if not hasattr(adc, "atten") and atten is not None:
            raise ConfigError("this ADC has no attenuation setting (atten is esp32 only)")
        self._adc = adc
        self._n = samples
        self._vref = vref
        self._uv = hasattr(adc, "read_uv")
        if hasattr(adc, "atten"):
            adc.atten(adc.ATTN_11DB if atten is None else atten)
        self.u16 = -1  # -1 until the first read()
        self.top = False

    def read(self):
        adc = self._adc
        n = self._n
        uv = self._uv
        total_u16 = 0
        total_uv = 0
        top = False
        for _ in range(n):
            u16 = adc.read_u16()
            top = top or u16 >= _U16_TOP
            total_u16 += u16
            if uv:
                total_uv += adc.read_uv()
        self.u16 = (total_u16 + n // 2) // n
        self.top = top
        if uv:
            return total_uv / n / 1000000
        return total_u16 / n * self._vref / _U16_TOP
