"""Analog inputs, and the ESP32 and RP2040 ADC conversions the node's `machine.ADC` sees.

    battery = AnalogInput(35, divided_supply(2.0), label="battery")
    adc = Esp32Adc(battery, env, atten=Esp32Adc.ATTN_11DB)
    adc.read_u16(), adc.read_uv()      # supply_v 3.7 V -> 1.85 V at the pin

Figures are cited where they are used. The ESP32 curve is a model shaped by Espressif's
documented ranges, not a fit to any one chip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .environment import Environment

Source = Callable[[Environment], float]

# The shim's pin number for the RP2040's internal temperature sensor (ADC channel 4).
RP2_TEMP_SENSOR_PIN = 30


@dataclass
class AnalogInput:
    """What drives one ADC pin: a function of the environment giving the pin voltage.

    A `switched` input (a probe fed from the board's sensor rail) reads 0 V while the rail is
    off; BoardHardware keeps `powered` in step with the rail.
    """

    pin: int
    source: Source
    label: str = ""
    switched: bool = False
    powered: bool = True

    def volts(self, env: Environment) -> float:
        if self.switched and not self.powered:
            return 0.0
        return float(self.source(env))


def divided_supply(divider: float) -> Source:
    """The supply rail seen through a resistor divider that divides it by `divider`."""
    if not divider > 0:
        raise ValueError(f"a divider ratio must be positive, got {divider!r}")
    return lambda env: env["supply_v"] / divider


def unwired(env: Environment) -> float:
    """A pin with nothing on it; modelled as 0 V rather than a floating, noisy input."""
    return 0.0


def rp2_temp_sensor_volts(env: Environment) -> float:
    # RP2040 datasheet §4.9.5 "Temperature Sensor": Vbe = 0.706 V at 27 °C, slope -1.721 mV/°C.
    # The die is taken to be at the ambient temperature.
    return 0.706 - (env["temperature_c"] - 27.0) * 0.001721


def to_u16(raw: int, bits: int) -> int:
    """MicroPython's read_u16 scaling: shift left, refill the low bits from the top ones."""
    # ports/esp32 and ports/rp2 machine_adc.c: raw << (16 - bits) | raw >> (2 * bits - 16).
    return (raw << (16 - bits)) | (raw >> (2 * bits - 16))


def _round(x: float) -> int:
    return int(x + 0.5) if x > 0 else 0


@dataclass(frozen=True)
class AdcSample:
    """One conversion in every form the shim needs: raw code, read_u16(), read_uv()."""

    raw: int
    u16: int
    uv: int


# ESP32 ADC1 per attenuation: full-scale mV (the voltage giving code 4095, from ESP-IDF's
# driver/adc.h comment: 1.1 / 1.5 / 2.2 / 3.9 V with VDD_A = 3.3 V) and the recommended input
# range in mV (ESP-IDF v4.4 "Analog to Digital Converter", table "ADC Attenuation":
# 100-950, 100-1250, 150-1750, 150-2450 mV). Keys are MicroPython's ADC.ATTN_* values. The
# S3 and C3 have other ranges; every esp32-port board uses the original ESP32's for now.
_ESP32_ATTEN: dict[int, tuple[float, float, float]] = {
    0: (1100.0, 100.0, 950.0),
    1: (1500.0, 100.0, 1250.0),
    2: (2200.0, 150.0, 1750.0),
    3: (3900.0, 150.0, 2450.0),
}


class Esp32Adc:
    """An ESP32 ADC1 channel: 12-bit SAR codes by attenuation, read_u16 and calibrated read_uv."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(
        self, source: AnalogInput, env: Environment, *, atten: int = ATTN_0DB, bits: int = 12
    ) -> None:
        self.source = source
        self.env = env
        self._atten = self.ATTN_0DB
        self._bits = 12
        self.atten(atten)
        self.width(bits)

    def atten(self, atten: int) -> None:
        if atten not in _ESP32_ATTEN:
            raise ValueError(f"ESP32 attenuation must be one of 0..3 (ADC.ATTN_*), got {atten!r}")
        self._atten = atten

    def width(self, bits: int) -> None:
        if not 9 <= bits <= 12:
            raise ValueError(f"ESP32 ADC width must be 9..12 bits, got {bits!r}")
        self._bits = bits

    def raw_for(self, volts: float) -> int:
        """The 12-bit code for a pin voltage at the current attenuation."""
        full_mv, _low_mv, high_mv = _ESP32_ATTEN[self._atten]
        mv = volts * 1000.0
        if mv > high_mv:
            # Above the recommended range the response flattens (Espressif: accuracy is only
            # specified inside it). Modelled as a gain falling linearly from 1 at the top of
            # the range to 0 at twice the gap to full scale, so the curve is smooth and
            # reaches code 4095 exactly there: -3.4 % at 0 dB full scale, -3.8 % for 3.3 V
            # at 11 dB.
            gap = full_mv - high_mv
            over = min(mv - high_mv, 2.0 * gap)
            mv = high_mv + over - over * over / (4.0 * gap)
        return min(4095, _round(mv / full_mv * 4095.0))

    def uv_for_raw(self, raw: int) -> int:
        """read_uv(): the eFuse-calibrated linear characteristic, exact inside the range."""
        full_mv = _ESP32_ATTEN[self._atten][0]
        return _round(raw * full_mv * 1000.0 / 4095.0)

    def sample(self) -> AdcSample:
        raw = self.raw_for(self.source.volts(self.env))
        # A narrower width keeps the top bits of the same conversion.
        raw_w = raw >> (12 - self._bits)
        return AdcSample(raw=raw_w, u16=to_u16(raw_w, self._bits), uv=self.uv_for_raw(raw))

    def read(self) -> int:
        return self.sample().raw

    def read_u16(self) -> int:
        return self.sample().u16

    def read_uv(self) -> int:
        return self.sample().uv


class Rp2Adc:
    """An RP2040 ADC channel: 12 bits over 0..3.3 V, read_u16 scaled as MicroPython does."""

    # RP2040 datasheet §4.9 "ADC": 12-bit SAR referenced to ADC_AVDD; on the Pico that is the
    # filtered 3.3 V rail (Pico datasheet, "Using the ADC"). The ideal transfer is modelled;
    # the errata E11 DNL spikes are not.
    VREF_V = 3.3

    def __init__(self, source: AnalogInput, env: Environment) -> None:
        self.source = source
        self.env = env

    def raw_for(self, volts: float) -> int:
        return min(4095, _round(volts / self.VREF_V * 4095.0))

    def uv_for_raw(self, raw: int) -> int:
        # MicroPython's rp2 port has no read_uv(); the value is given so the supervisor's
        # reply has the same shape on both ports.
        return _round(raw * self.VREF_V * 1e6 / 4095.0)

    def sample(self) -> AdcSample:
        raw = self.raw_for(self.source.volts(self.env))
        return AdcSample(raw=raw, u16=to_u16(raw, 12), uv=self.uv_for_raw(raw))

    def read_u16(self) -> int:
        return self.sample().u16

    def read_uv(self) -> int:
        return self.sample().uv
