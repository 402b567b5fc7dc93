"""What the host knows about each driver kind's quantities: measuring range and stated accuracy.

    s = spec("sht4x", "temperature")            # SensorSpec, or None for an unknown pair
    accuracy("sht4x", "temperature", 25.0)      # 0.2: ± °C stated at that value
    in_range("sht4x", "temperature", 130.0)     # False
    check_reference("sht4x", "temperature", 130.0)
    # CalibrationError: reference 130 °C is outside the sht4x's range -40..125 °C

Units are the drivers' UNITS strings (C %RH hPa ppm V A W %); unit_label() turns "C" into "°C"
for messages. Figures come from docs/drivers.md, each driver's range and accuracy rows, which
cite the datasheets; `source` names the datasheet section.

Accuracy is a tuple of bands (low, high, abs_error, rel_error): at a value, the first band
(in the order given, tightest first) that contains it states abs_error + rel_error * |value|;
a value outside every band gets the widest band's figure (the one spanning most), the loosest
the datasheet commits to. A band's condition on another quantity (the SCD41's humidity band
holds only at 15..35 °C) cannot be expressed here: the band is noted in a comment and the
looser figure applies elsewhere.
"""

import math
from dataclasses import dataclass

from host_tools.errors import CalibrationError, ConfigError

Band = tuple[float, float, float, float]  # (low, high, abs_error, rel_error)


@dataclass(frozen=True)
class SensorSpec:
    """One quantity of one driver kind: its unit, measuring range, and stated accuracy bands."""

    kind: str
    quantity: str
    unit: str
    low: float
    high: float
    accuracy: tuple[Band, ...]
    source: str

    def accuracy_at(self, value: float) -> float:
        """The stated accuracy (±, in `unit`) at `value`: abs + rel*|value| of its band."""
        for low, high, abs_error, rel_error in self.accuracy:
            if low <= value <= high:
                return abs_error + rel_error * abs(value)
        _low, _high, abs_error, rel_error = max(self.accuracy, key=lambda b: b[1] - b[0])
        return abs_error + rel_error * abs(value)

    def contains(self, value: float) -> bool:
        """True when `value` is a finite number inside the measuring range (ends included)."""
        return math.isfinite(value) and self.low <= value <= self.high


_SHT4X = "Sensirion SHT4x datasheet v6 (Feb 2023)"
_BME280 = "Bosch BME280 datasheet BST-BME280-DS002 rev 1.6, 1. Specification"
_SCD41 = "Sensirion SCD4x datasheet v1.3 (Sep 2022), 1 Sensor Performance"
_INA219 = "TI INA219 datasheet SBOS448G, Electrical Characteristics"

_SPECS: tuple[SensorSpec, ...] = (
    # SHT40/SHT41 typical (an SHT45 is better: these figures are then pessimistic). Temperature:
    # ±0.2 °C over 0..65 °C; the tolerance figure widens towards the ends of the -40..125 °C
    # range, to about ±0.4 °C there.
    SensorSpec(
        "sht4x",
        "temperature",
        "C",
        -40.0,
        125.0,
        ((0.0, 65.0, 0.2, 0.0), (-40.0, 125.0, 0.4, 0.0)),
        _SHT4X + ", 2.2 Temperature (SHT40/SHT41 typical)",
    ),
    # Humidity: ±1.8 %RH typical over 10..90 %RH at 25 °C; outside it the tolerance figure
    # widens: the SHT40's maximal tolerance, ±3.5 %RH, is the figure taken there.
    SensorSpec(
        "sht4x",
        "humidity",
        "%RH",
        0.0,
        100.0,
        ((10.0, 90.0, 1.8, 0.0), (0.0, 100.0, 3.5, 0.0)),
        _SHT4X + ", 2.1 Relative Humidity (SHT40/SHT41 typical, 25 °C)",
    ),
    # BME280: ±1 °C over 0..65 °C (±0.5 °C at 25 °C alone, too narrow a band to use). Outside
    # 0..65 °C the datasheet states nothing: the ±1 °C band is the figure taken.
    SensorSpec(
        "bme280",
        "temperature",
        "C",
        -40.0,
        85.0,
        ((0.0, 65.0, 1.0, 0.0),),
        _BME280 + " (temperature: absolute accuracy)",
    ),
    # ±3 %RH over 20..80 %RH at 25 °C; the ±1 %RH hysteresis is listed apart and not added.
    SensorSpec(
        "bme280",
        "humidity",
        "%RH",
        0.0,
        100.0,
        ((20.0, 80.0, 3.0, 0.0),),
        _BME280 + " (humidity: absolute accuracy tolerance)",
    ),
    # ±1 hPa absolute over 300..1100 hPa (0..65 °C); the ±0.12 hPa relative accuracy is for
    # pressure differences, not a calibration against a reference.
    SensorSpec(
        "bme280",
        "pressure",
        "hPa",
        300.0,
        1100.0,
        ((300.0, 1100.0, 1.0, 0.0),),
        _BME280 + " (pressure: absolute accuracy)",
    ),
    # DS18B20 thermometer error t_ERR: ±0.5 °C over -10..85 °C, ±2 °C over -55..125 °C.
    SensorSpec(
        "ds18b20",
        "temperature",
        "C",
        -55.0,
        125.0,
        ((-10.0, 85.0, 0.5, 0.0), (-55.0, 125.0, 2.0, 0.0)),
        "Maxim DS18B20 datasheet 19-7487 Rev 6, Thermometer Error (t_ERR)",
    ),
    # SCD41 CO2: ±(50 ppm + 2.5 %) over 400..1000, ±(50 + 3 %) over 1001..2000, ±(40 + 5 %)
    # over 2001..5000 ppm. The range is the specified 400..5000 ppm, not the 0..40000 the
    # output spans: a reference where no accuracy is stated cannot be vouched for.
    SensorSpec(
        "scd41",
        "co2",
        "ppm",
        400.0,
        5000.0,
        (
            (400.0, 1000.0, 50.0, 0.025),
            (1000.0, 2000.0, 50.0, 0.03),
            (2000.0, 5000.0, 40.0, 0.05),
        ),
        _SCD41 + " (CO2 accuracy, SCD41)",
    ),
    # ±0.8 °C over 15..35 °C, ±1.5 °C over -10..60 °C.
    SensorSpec(
        "scd41",
        "temperature",
        "C",
        -10.0,
        60.0,
        ((15.0, 35.0, 0.8, 0.0), (-10.0, 60.0, 1.5, 0.0)),
        _SCD41 + " (temperature accuracy)",
    ),
    # ±6 %RH over 20..65 %RH (and 15..35 °C, not expressible here), ±9 %RH over 0..100 %RH
    # (-10..60 °C).
    SensorSpec(
        "scd41",
        "humidity",
        "%RH",
        0.0,
        100.0,
        ((20.0, 65.0, 6.0, 0.0), (0.0, 100.0, 9.0, 0.0)),
        _SCD41 + " (humidity accuracy)",
    ),
    # INA219A, 25 °C: bus voltage ±0.5 % max, plus one 4 mV step of the register (the
    # datasheet gives the bus error as a percentage only; without an absolute term 0 V would
    # be stated exact). Range: the pins' 0..26 V.
    SensorSpec(
        "ina219",
        "voltage",
        "V",
        0.0,
        26.0,
        ((0.0, 26.0, 0.004, 0.005),),
        _INA219 + " (bus voltage error, INA219A)",
    ),
    # Current ±0.5 % max plus the shunt offset voltage: up to ±200 µV at PGA /8, 2 mA on the
    # 0.1 Ω shunt of the common breakout boards, whose ±3.2 A (PGA /8, ±320 mV) is the range
    # taken (the driver's defaults; another shunt scales both).
    SensorSpec(
        "ina219",
        "current",
        "A",
        -3.2,
        3.2,
        ((-3.2, 3.2, 0.002, 0.005),),
        _INA219 + " (current error and shunt offset, INA219A; 0.1 Ω shunt, PGA /8)",
    ),
    # Power = current × bus voltage: the two ±0.5 % add to ±1 %; the offset's 2 mA at a 5 V
    # bus is the absolute 0.01 W. Range: 26 V × 3.2 A.
    SensorSpec(
        "ina219",
        "power",
        "W",
        0.0,
        83.2,
        ((0.0, 83.2, 0.01, 0.01),),
        _INA219 + " (current and bus voltage errors combined; 0.1 Ω shunt, 5 V bus)",
    ),
    # The capacitive probe has no datasheet (docs/drivers.md, soil: its accuracy is "set by the
    # probe", its non-linearity leaves several points after an air/water calibration, and the
    # soil itself matters). ±3 % is what Motekit promises after a calibration in the soil
    # itself, the one that removes those errors, over the 0..100 % scale.
    SensorSpec(
        "soil",
        "moisture",
        "%",
        0.0,
        100.0,
        ((0.0, 100.0, 3.0, 0.0),),
        "no datasheet: Motekit's stated ±3 % after an in-soil calibration (docs/drivers.md, soil)",
    ),
    # No single datasheet either (docs/drivers.md, battery): ESP32 eFuse-calibrated ADC at
    # 11 dB is tens of mV at the pin, doubled by the 2:1 divider (0.06 V); the RP2040 reads
    # against its 3.3 V rail, and the divider resistors add their tolerance (2 %). Range: 0 V
    # (a board on USB without a battery) to 5.5 V (USB, the Pico's VSYS maximum).
    SensorSpec(
        "battery",
        "voltage",
        "V",
        0.0,
        5.5,
        ((0.0, 5.5, 0.06, 0.02),),
        "no datasheet: ESP-IDF ADC calibration at 11 dB, RP2040 datasheet §4.9, divider "
        "tolerance (docs/drivers.md, battery)",
    ),
)

SPECS: dict[tuple[str, str], SensorSpec] = {(s.kind, s.quantity): s for s in _SPECS}
KINDS: tuple[str, ...] = tuple(dict.fromkeys(s.kind for s in _SPECS))

_UNIT_LABELS = {"C": "°C"}


# Every quantity a driver reports, and how its unit is written for people (drivers/sensor.py).
UNITS = {
    "temperature": "°C",
    "humidity": "%RH",
    "pressure": "hPa",
    "co2": "ppm",
    "voltage": "V",
    "current": "A",
    "power": "W",
    "moisture": "%",
}
QUANTITIES = tuple(UNITS)


def unit_label(unit: str) -> str:
    """How a driver unit is written for people: "C" -> "°C", others as they are."""
    return _UNIT_LABELS.get(unit, unit)


def spec(kind: str, quantity: str) -> SensorSpec | None:
    """The spec of `kind`'s `quantity`, or None when the host knows no such pair."""
    return SPECS.get((kind, quantity))


def require_spec(kind: str, quantity: str) -> SensorSpec:
    """The spec of `kind`'s `quantity`; ConfigError naming what exists when there is none."""
    found = spec(kind, quantity)
    if found is not None:
        return found
    quantities = [q for k, q in SPECS if k == kind]
    if quantities:
        raise ConfigError(
            f"a {kind} does not measure {quantity}",
            hint=f"a {kind} measures {', '.join(quantities)}",
        )
    raise ConfigError(
        f"no specification for sensor kind {kind!r}", hint=f"known kinds: {', '.join(KINDS)}"
    )


def accuracy(kind: str, quantity: str, value: float) -> float:
    """The stated accuracy (±, in the quantity's unit) of `kind`'s `quantity` at `value`."""
    return require_spec(kind, quantity).accuracy_at(value)


def in_range(kind: str, quantity: str, value: float) -> bool:
    """True when `value` is finite and inside `kind`'s measuring range for `quantity`."""
    return require_spec(kind, quantity).contains(value)


def _num(value: float) -> str:
    return f"{value:g}"


def check_reference(kind: str, quantity: str, value: float) -> None:
    """Raise CalibrationError when a reference value is not a number or lies outside the range
    of `kind`'s `quantity` (a calibration there could not be checked against the datasheet)."""
    s = require_spec(kind, quantity)
    unit = unit_label(s.unit)
    if not math.isfinite(value):
        raise CalibrationError(
            f"reference {value} is not a number", hint="check the reference reading or entry"
        )
    if not s.contains(value):
        raise CalibrationError(
            f"reference {_num(value)} {unit} is outside the {kind}'s range "
            f"{_num(s.low)}..{_num(s.high)} {unit}",
            hint=f"calibrate at setpoints inside the {kind}'s {quantity} range "
            "(and check the reference's unit)",
        )
