"""Register-level models of real chips, one module per chip, built on the bus base classes."""

from .eeprom24 import At24c32
from .sx126x import Sx126x
from .sx127x import Sx127x

__all__ = ["At24c32", "Sx126x", "Sx127x"]
