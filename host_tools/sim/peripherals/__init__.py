"""Register-level device models on virtual buses, driven by a shared physical environment.

The supervisor builds one `BoardHardware` per virtual board and hands it every bus transaction,
pin level and ADC read the node's `machine` shim forwards. Chip models live in `models/`.
"""

from .adc import AdcSample, AnalogInput, Esp32Adc, Rp2Adc
from .board_hw import BoardHardware
from .environment import QUANTITIES, Environment
from .faults import CorruptReplies, Detached, Fault, StaleData, StuckBus, parse_fault
from .i2c import I2CBus, I2CDevice, I2CNack, I2CTimeout, RegisterDevice
from .onewire import OneWireBus, OneWireDevice, crc8_maxim
from .peripheral import BusError, Peripheral
from .spi import SPIBus, SPIDevice

__all__ = [
    "QUANTITIES",
    "AdcSample",
    "AnalogInput",
    "BoardHardware",
    "BusError",
    "CorruptReplies",
    "Detached",
    "Environment",
    "Esp32Adc",
    "Fault",
    "I2CBus",
    "I2CDevice",
    "I2CNack",
    "I2CTimeout",
    "OneWireBus",
    "OneWireDevice",
    "Peripheral",
    "RegisterDevice",
    "Rp2Adc",
    "SPIBus",
    "SPIDevice",
    "StaleData",
    "StuckBus",
    "crc8_maxim",
    "parse_fault",
]
