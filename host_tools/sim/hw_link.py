"""Serve the node's bus, pin and ADC requests from the board's device models.

Payload layouts are those written by rom/machine.py and rom/_onewire.py.
"""

import struct
from collections.abc import Callable
from typing import Any

from host_tools.sim import link
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.i2c import I2CNack, I2CTimeout

_UNWIRED = 255
_OW_RESET, _OW_READBIT, _OW_READBYTE, _OW_WRITEBIT, _OW_WRITEBYTE = range(5)

Reply = tuple[int, bytes]


class HardwareLink:
    def __init__(self, board: dict[str, Any], hw: BoardHardware) -> None:
        self.hw = hw
        self._i2c_ids = [b["id"] for b in board["pins"].get("i2c", ())]
        self._spi_ids = [b["id"] for b in board["pins"].get("spi", ())]
        self._battery = (board["pins"].get("battery_adc") or {}).get("pin")  # null: none

    def handlers(self) -> dict[int, Callable[[link.Request], Reply | None]]:
        return {
            link.OP_I2C: self.i2c,
            link.OP_SPI: self.spi,
            link.OP_ADC: self.adc,
            link.OP_PIN_SET: self.pin_set,
            link.OP_PIN_GET: self.pin_get,
            link.OP_ONEWIRE: self.onewire,
        }

    def i2c(self, req: link.Request) -> Reply:
        index, addr, flags, nread = struct.unpack_from("<BHBH", req.payload)
        data = req.payload[6:]
        if index == _UNWIRED or index >= len(self._i2c_ids):
            return link.NACK, b""  # pins with nothing on them: no device ACKs
        bus = self.hw.i2c(self._i2c_ids[index])
        stop = bool(flags & 1)
        try:
            if flags & 2:
                return link.OK, bus.readfrom(addr, nread, stop)
            return link.OK, struct.pack("<H", bus.writeto(addr, data, stop))
        except I2CNack:
            return link.NACK, b""
        except I2CTimeout:
            return link.TIMEOUT, b""

    def spi(self, req: link.Request) -> Reply:
        index = req.payload[0]
        mosi = req.payload[1:]
        if index == _UNWIRED or index >= len(self._spi_ids):
            return link.OK, b"\xff" * len(mosi)  # MISO floats high
        return link.OK, self.hw.spi(self._spi_ids[index]).transfer(mosi)

    def adc(self, req: link.Request) -> Reply:
        pin, atten = struct.unpack("<HB", req.payload)
        adc = self.hw.adc(pin)
        if hasattr(adc, "atten"):
            adc.atten(atten)
        sample = adc.sample()
        return link.OK, struct.pack("<HI", sample.u16, max(0, sample.uv))

    def pin_set(self, req: link.Request) -> None:
        pin, level = struct.unpack("<HB", req.payload)
        self.hw.pin_write(pin, level)

    def pin_get(self, req: link.Request) -> Reply:
        (pin,) = struct.unpack("<H", req.payload)
        return link.OK, bytes([self.hw.pin_read(pin)])

    def onewire(self, req: link.Request) -> Reply:
        pin, op, value = struct.unpack("<HBB", req.payload)
        try:
            bus = self.hw.onewire(pin)
        except (KeyError, ValueError):
            return link.OK, b"\x00" if op == _OW_RESET else b"\xff"  # nothing on this pin
        if op == _OW_RESET:
            return link.OK, bytes([bus.reset()])
        if op == _OW_READBIT:
            return link.OK, bytes([bus.read_bit()])
        if op == _OW_READBYTE:
            return link.OK, bytes([bus.read_byte()])
        if op == _OW_WRITEBIT:
            bus.write_bit(value)
        else:
            bus.write_byte(value)
        return link.OK, b""
