"""What every device model shares, whatever its bus: a name, its faults, its view of the world.

A model reads the world through `self.measure()` (never the environment directly) so that
StaleData freezes every model the same way, and returns bytes through its bus, which applies
CorruptReplies and Detached; a model only implements its chip.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from .environment import Environment
from .faults import CorruptReplies, Detached, Fault, StaleData, StuckBus, flip_bits


class BusError(Exception):
    """A bus transaction failed as it would on silicon; the supervisor reports it to the node."""


class Peripheral:
    """Base of every device model: injected faults and a (possibly frozen) view of the world."""

    def __init__(self, *, env: Environment | None = None, name: str | None = None) -> None:
        self.name = name or type(self).__name__.lower()
        self._env = env
        self._faults: dict[type, Fault] = {}
        self._rng = random.Random(0)
        self._last_measure: dict[str, float] | None = None
        # False while the board's switched sensor rail is off (BoardHardware sets it).
        self.powered = True

    # -- wiring ------------------------------------------------------------------------------

    @property
    def env(self) -> Environment:
        if self._env is None:
            raise RuntimeError(f"{self.name} is not on a board; pass env= or attach it to one")
        return self._env

    def bind(self, env: Environment) -> None:
        """Give the model the board's environment (done by BoardHardware.attach)."""
        if self._env is not None and self._env is not env:
            raise ValueError(f"{self.name} already reads a different environment")
        self._env = env

    def reset(self) -> None:
        """Power-on reset; subclasses restore their registers and call this."""
        self._last_measure = None

    # -- faults --------------------------------------------------------------------------------

    def apply_fault(self, fault: Fault) -> None:
        """Inject a fault; a second fault of the same kind replaces the first."""
        if isinstance(fault, CorruptReplies):
            self._rng = random.Random(fault.seed)
        self._faults[type(fault)] = fault

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> tuple[Fault, ...]:
        return tuple(self._faults.values())

    @property
    def detached(self) -> bool:
        return Detached in self._faults

    @property
    def answers(self) -> bool:
        """Whether the device takes part on its bus: powered and not detached."""
        return self.powered and not self.detached

    @property
    def stale(self) -> bool:
        return StaleData in self._faults

    @property
    def holds_bus(self) -> bool:
        """True when this device is the one holding the data line low (StuckBus on it)."""
        return StuckBus in self._faults

    def corrupt(self, data: bytes) -> bytes:
        """The bytes as they reach the host: bit-flipped while CorruptReplies is active."""
        fault = self._faults.get(CorruptReplies)
        if not isinstance(fault, CorruptReplies):
            return data
        return flip_bits(data, fault.prob, self._rng)

    # -- the world -------------------------------------------------------------------------------

    def measure(self) -> Mapping[str, float]:
        """The quantities a conversion uses now; while StaleData is active, the previous ones."""
        if self.stale and self._last_measure is not None:
            return self._last_measure
        self._last_measure = self.env.snapshot()
        return self._last_measure

    def describe(self) -> dict[str, Any]:
        """JSON-ready state for a status report; models add their own fields."""
        faults = [str(fault) for fault in self.faults]
        return {"name": self.name, "model": type(self).__name__, "faults": faults}


class BusFaults:
    """What can go wrong with a bus itself (its devices have their own faults): a line held
    low, by the bus or by one of its devices. Used by the I2C, SPI and 1-Wire buses."""

    _stuck: bool
    _devices: Mapping[Any, Peripheral]

    @property
    def label(self) -> str:
        raise NotImplementedError

    @property
    def stuck(self) -> bool:
        return self._stuck or any(d.holds_bus for d in self._devices.values())

    def apply_fault(self, fault: Fault) -> None:
        if not isinstance(fault, StuckBus):
            raise ValueError(f"'{fault}' applies to a device, not to {self.label}")
        self._stuck = True

    def clear_faults(self) -> None:
        self._stuck = False
