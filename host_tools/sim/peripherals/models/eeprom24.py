"""AT24C32-style I2C EEPROM: 2-byte memory address, 32-byte pages, timed write cycle.

    eeprom = bus.attach(At24c32(clock.now_ms))     # 4 KiB at 0x50
    bus.writeto(0x50, b"\\x00\\x20" + b"hello")    # page write, committed at the stop
    bus.readfrom_mem(0x50, 0x0020, 5, addrsize=16)  # NACKs (I2CNack) for write_cycle_ms first

Behaviour follows the 24xx32 datasheets (Microchip 24AA32A/24LC32A DS21713, Atmel AT24C32):
- byte/page write: two address bytes, then data into a 32-byte page buffer whose lower five
  address bits wrap, so bytes past the page end overwrite its start; written at the stop;
- during the self-timed write cycle the device does not acknowledge (ACK polling);
- random read = address write, repeated start, read; current-address and sequential reads
  continue from the address counter, rolling over from the last byte to 0x000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..environment import Environment
from ..i2c import I2CDevice

# 24LC32A datasheet, features: "Page Write Time 5 ms max." (Atmel AT24C32 parts quote 5-10 ms.)
WRITE_CYCLE_MS = 5.0


class At24c32(I2CDevice):
    """A 4 KiB 24xx32 I2C EEPROM with page buffer and write-cycle busy time."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        address: int = 0x50,
        size: int = 4096,
        page_size: int = 32,
        write_cycle_ms: float = WRITE_CYCLE_MS,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(address, env=env, name=name or "eeprom24")
        if size & (size - 1) or page_size & (page_size - 1) or page_size > size:
            raise ValueError("EEPROM size and page size must be powers of two, page <= size")
        self._now_ms = now_ms
        self.size = size
        self.page_size = page_size
        self.write_cycle_ms = write_cycle_ms
        self.memory = bytearray(b"\xff" * size)  # erased cells read 0xFF
        self.pointer = 0  # the datasheet's internal address counter
        self._address_bytes: list[int] = []
        self._page_buffer: dict[int, int] = {}  # memory address -> byte, until the stop
        self._busy_until_ms = float("-inf")

    @property
    def busy(self) -> bool:
        return self._now_ms() < self._busy_until_ms

    def reset(self) -> None:
        # Power-on: the array is non-volatile; the counter and any unfinished write are lost.
        super().reset()
        self.pointer = 0
        self._address_bytes.clear()
        self._page_buffer.clear()
        self._busy_until_ms = float("-inf")

    def start(self, is_read: bool) -> bool:
        if self.busy:
            return False  # no ACK during the internal write cycle
        # A start without an intervening stop abandons a page write: nothing is programmed.
        self._address_bytes.clear()
        self._page_buffer.clear()
        return True

    def write(self, data: bytes) -> int:
        for byte in data:
            if len(self._address_bytes) < 2:
                self._address_bytes.append(byte)
                if len(self._address_bytes) == 2:
                    high, low = self._address_bytes
                    # Address bits above the array size are "don't care".
                    self.pointer = ((high << 8) | low) & (self.size - 1)
                continue
            self._page_buffer[self.pointer] = byte
            page = self.pointer & ~(self.page_size - 1)
            self.pointer = page | ((self.pointer + 1) & (self.page_size - 1))
        return len(data)

    def read(self, n: int) -> bytes:
        out = bytearray(n)
        for i in range(n):
            out[i] = self.memory[self.pointer]
            self.pointer = (self.pointer + 1) & (self.size - 1)
        return bytes(out)

    def stop(self) -> None:
        if not self._page_buffer:
            return  # an address-only "dummy write" just sets the counter
        for addr, byte in self._page_buffer.items():
            self.memory[addr] = byte
        self._page_buffer.clear()
        self._busy_until_ms = self._now_ms() + self.write_cycle_ms

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "size": self.size, "busy": self.busy}
