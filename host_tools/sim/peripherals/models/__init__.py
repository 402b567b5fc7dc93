"""Register-level models of real chips, one module per chip, built on the bus base classes."""

from .eeprom24 import At24c32

__all__ = ["At24c32"]
