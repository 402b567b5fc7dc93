# Capacitive soil-moisture probe on an ADC pin, in the common driver shape (sensor.py): the
# common "Capacitive Soil Moisture Sensor v1.2 / v2.0" board (DFRobot SEN0193 and its clones).
# A TLC555 oscillator drives the probe's PCB traces through a resistor; a diode peak detector
# with an RC output filter turns the swing into a voltage that falls as the water around the
# probe rises: about 2.5 V in air and 1.3 V in water on a 3.3 V supply.
#
#   s = Soil(machine.ADC(machine.Pin(32)), dry=2540, wet=1270)   # mV: this probe, air/water
#   s.start()            # 0: read() converts
#   (pct,) = s.read()    # 50.0 at 1905 mV
#   s.raw()              # (mean pin mV of that read,): the figure to put in dry and wet
#
# Two-point calibration, in millivolts at the pin so that one calibration means the same on
# both ports (analog.py: read_uv() on esp32, read_u16() * vref on rp2). `dry` and `wet` are
# the probe's raw() in the user's dry and wet references (air and water, or dry and saturated
# soil): moisture = 100 * (dry - mV) / (dry - wet). Within _MARGIN_PCT of the span beyond
# either end (drift, noise, soil drier than the dry reference) the value is clipped to
# 0..100; further out it raises RangeError, as do 0 V (the probe unpowered or unplugged) and
# the ADC's top code (the output wired to the supply). To calibrate, configure wide values
# (dry=3300, wet=0), take raw() in each reference, then set them.
#
# The probe is powered from the switched sensor rail; WARMUP_MS covers the charge of its
# output filter after power-on (docs/drivers.md, "soil").
from analog import Adc
from micropython import const
from sensor import ConfigError, RangeError, check_range

_MAX_MV = const(3900)  # no ESP32 (11 dB full scale) or RP2040 (3.3 V) input reads above
_MIN_SPAN_MV = const(100)  # air to water is 1200..1600 mV; less is likely volts, not mV
_MARGIN_PCT = const(10)  # clipped within 10 % of the span beyond dry or wet; RangeError beyond


def _check_mv(name, mv):
    if mv is None:
        raise ConfigError("soil needs %s: the probe's raw() mV in its %s reference" % (name, name))
    if type(mv) not in (int, float) or not 0 <= mv <= _MAX_MV:
        raise ConfigError(
            "soil %s must be the probe's mV at the pin, 0..%d, not %r" % (name, _MAX_MV, mv)
        )


def percent(mv, dry, wet):
    # The two-point calibration: 0 at `dry` mV, 100 at `wet` mV, linear between and beyond.
    return 100 * (dry - mv) / (dry - wet)


class Soil:
    KIND = "soil"
    QUANTITIES = ("moisture",)
    UNITS = ("%",)
    RESOLUTION = (0.1,)  # one ADC step is about 0.07 % of a 1270 mV air-to-water span
    # The output filter (1 uF charged through the 10 kOhm drive resistor and the diode) settles
    # to within 1 mV about 0.3 s after power-on in a circuit simulation of the board; 400 ms
    # leaves room for part tolerances (docs/drivers.md, "soil").
    WARMUP_MS = 400

    def __init__(self, adc, dry=None, wet=None, samples=8, vref=3.3, atten=None, **unknown):
        if unknown:
            raise ConfigError("soil has no option %s" % ", ".join(unknown))
        _check_mv("dry", dry)
        _check_mv("wet", wet)
        if dry - wet < _MIN_SPAN_MV:
            raise ConfigError(
                "soil dry must be at least %d mV above wet (a probe reads lower when wet), "
                "not dry=%r wet=%r" % (_MIN_SPAN_MV, dry, wet)
            )
        self._adc = Adc(adc, "soil", samples, vref, atten)
        self._dry = dry
        self._wet = wet
        self._mv = -1  # the last read's mean mV; -1 before any

    def start(self):
        return 0

    def read(self):
        a = self._adc
        mv = a.read() * 1000
        self._mv = int(mv + 0.5)
        if a.top:
            raise RangeError("soil@adc: ADC at full scale (the probe output wired to the supply?)")
        if a.u16 == 0:
            raise RangeError("soil@adc: 0 V at the pin (the probe unpowered or unplugged)")
        pct = percent(mv, self._dry, self._wet)
        check_range("soil@adc", "moisture", pct, -_MARGIN_PCT, 100 + _MARGIN_PCT, "%")
        return (0.0 if pct < 0 else 100.0 if pct > 100 else pct,)

    def raw(self):
        if self._mv < 0:
            raise RuntimeError("soil@adc: raw() before any read()")
        return (self._mv,)
