"""Faults that can be injected into a virtual device or bus, and their compact CLI spellings.

    parse_fault("corrupt:0.2")   # CorruptReplies(prob=0.2, seed=0)
    str(StuckBus())              # "stuck"

Each fault is a frozen value; the device or bus it is applied to carries out its effect.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

FAULT_FORMS = "detach, corrupt, corrupt:<probability 0..1>, stuck, stale"


@dataclass(frozen=True)
class Detached:
    """The device is gone: it NACKs its address, never answers a select or a presence pulse."""

    def __str__(self) -> str:
        return "detach"


@dataclass(frozen=True)
class CorruptReplies:
    """Each byte the device returns has one bit flipped with probability `prob` (seeded)."""

    prob: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.prob) and 0.0 <= self.prob <= 1.0):
            raise ValueError(f"corrupt probability must be within 0..1, got {self.prob!r}")

    def __str__(self) -> str:
        return "corrupt" if self.prob == 1.0 else f"corrupt:{self.prob:g}"


@dataclass(frozen=True)
class StuckBus:
    """A data line held low: I2C transactions time out, SPI reads 0x00, 1-Wire reads 0 bits."""

    # Applied to a device, that device is the one holding the line: its whole bus is stuck.

    def __str__(self) -> str:
        return "stuck"


@dataclass(frozen=True)
class StaleData:
    """The device stops converting and keeps returning its last result."""

    def __str__(self) -> str:
        return "stale"


Fault = Detached | CorruptReplies | StuckBus | StaleData

_SIMPLE: dict[str, Fault] = {
    "detach": Detached(),
    "corrupt": CorruptReplies(),
    "stuck": StuckBus(),
    "stale": StaleData(),
}


def parse_fault(spec: str) -> Fault:
    """Parse a compact fault spec such as `detach` or `corrupt:0.2`."""
    text = spec.strip().lower()
    if text in _SIMPLE:
        return _SIMPLE[text]
    name, _, arg = text.partition(":")
    if name == "corrupt" and arg:
        try:
            return CorruptReplies(prob=float(arg))
        except ValueError:
            pass  # reported below with the allowed forms
    raise ValueError(f"bad fault spec {spec!r}; allowed: {FAULT_FORMS}")


def flip_bits(data: bytes, prob: float, rng: random.Random) -> bytes:
    """Flip one random bit in each byte with probability `prob`."""
    out = bytearray(data)
    for i in range(len(out)):
        if rng.random() < prob:
            out[i] ^= 1 << rng.randrange(8)
    return bytes(out)
