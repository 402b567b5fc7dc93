"""The virtual world's physical quantities, which every device model reads.

env = Environment()
env.set(temperature_c=31.5, humidity_rh=70.0)
env["co2_ppm"]            # 420.0
env.subscribe(lambda key, old, new: print(key, old, "->", new))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    """One physical quantity: its default and the range it can physically take."""

    default: float
    low: float
    high: float
    what: str


# The unit is in every key so a reading can never be taken in the wrong one. The ranges are what
# the world around a sensor node can physically show, wide enough for any test but tight enough
# to catch a unit slip (kelvin given as °C, Pa as hPa, mV as V). A model needing a new quantity
# adds one line here.
QUANTITIES: dict[str, Quantity] = {
    "temperature_c": Quantity(22.0, -100.0, 200.0, "air temperature, °C"),
    # A probe's medium (soil, water, a pipe): what a DS18B20 on a cable reads unless told else.
    "probe_temperature_c": Quantity(18.0, -100.0, 200.0, "probe (soil/water) temperature, °C"),
    "humidity_rh": Quantity(45.0, 0.0, 100.0, "relative humidity, %RH"),
    "pressure_hpa": Quantity(1013.25, 0.0, 1200.0, "barometric pressure, hPa"),
    "co2_ppm": Quantity(420.0, 0.0, 1_000_000.0, "CO2 mole fraction, ppm"),
    "supply_v": Quantity(3.7, 0.0, 6.0, "battery/supply rail, V"),
    "load_current_ma": Quantity(45.0, -5000.0, 5000.0, "current through the shunt, mA"),
    "soil_moisture_pct": Quantity(35.0, 0.0, 100.0, "volumetric soil water content, %"),
    # Direct midday sunlight is about 100-130 klx.
    "light_lux": Quantity(300.0, 0.0, 200_000.0, "illuminance, lx"),
}

Observer = Callable[[str, float, float], None]


class Environment(MutableMapping[str, float]):
    """The physical quantities around the virtual board; validated, observable."""

    def __init__(self, **values: float) -> None:
        self._values = {key: q.default for key, q in QUANTITIES.items()}
        self._observers: list[Observer] = []
        self.set(**values)

    def set(self, **values: float) -> None:
        """Validate every value first, then apply them and notify observers of real changes."""
        checked = {key: _checked(key, value) for key, value in values.items()}
        changed = [(k, self._values[k], v) for k, v in checked.items() if self._values[k] != v]
        self._values.update(checked)
        for key, old, new in changed:
            for observer in list(self._observers):
                observer(key, old, new)

    def snapshot(self) -> dict[str, float]:
        """A copy of every quantity now."""
        return dict(self._values)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(key, old, new)` after each change; returns the unsubscribe function."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __setitem__(self, key: str, value: float) -> None:
        self.set(**{key: value})

    def __delitem__(self, key: str) -> None:
        # The world always has a temperature; a quantity can be changed but never removed.
        raise TypeError(f"environment quantities cannot be deleted (tried {key!r})")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Environment({self._values!r})"


def _checked(key: str, value: float) -> float:
    quantity = QUANTITIES.get(key)
    if quantity is None:
        allowed = ", ".join(QUANTITIES)
        raise ValueError(f"unknown environment quantity {key!r}; allowed: {allowed}")
    # bool is an int; True as a temperature is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{key} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{key} must be finite, got {value!r} ({quantity.what})")
    if not quantity.low <= number <= quantity.high:
        raise ValueError(
            f"{key}={value!r} is outside the physical range "
            f"{quantity.low:g}..{quantity.high:g} ({quantity.what})"
        )
    return number
