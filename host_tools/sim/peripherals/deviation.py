"""How one sensor part departs from the truth, for calibration tests: every model takes one.

    Deviation(offset=0.3, gain=1.01, noise=0.05).apply(21.0, rng)   # 21.51 plus noise

A real part's error is mostly an offset and a gain (what a two-point calibration removes),
plus noise; `curve` adds a quadratic term around `pivot` for non-linearity a two-point
calibration leaves behind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    """value = gain * true + offset + curve * (true - pivot)^2 + gaussian noise."""

    offset: float = 0.0
    gain: float = 1.0
    noise: float = 0.0  # standard deviation, in the quantity's unit
    curve: float = 0.0  # per unit of the quantity: the non-linear part
    pivot: float = 0.0

    def apply(self, true_value: float, rng: random.Random) -> float:
        value = self.gain * true_value + self.offset
        if self.curve:
            value += self.curve * (true_value - self.pivot) ** 2
        if self.noise > 0.0:
            value += rng.gauss(0.0, self.noise)
        return value
