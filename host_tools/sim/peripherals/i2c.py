"""Virtual I2C: device models behind 7-bit addresses, and the bus the supervisor drives.

    bus = I2CBus(0, scl=22, sda=21)
    bus.attach(At24c32(now_ms))
    bus.writeto(0x50, b"\\x00\\x10", stop=False)    # set the memory address, no stop ...
    bus.readfrom(0x50, 4)                           # ... repeated start, read, stop

A transaction reaches its device as silicon sees it: `start(is_read)` once per (repeated) start,
then `write()` or `read()`, and `stop()` only when the host sends a stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .environment import Environment
from .peripheral import BusError, BusFaults, Peripheral

# MicroPython's I2C.scan() probes 0x08..0x77; the rest are reserved by the I2C specification.
SCAN_RANGE = range(0x08, 0x78)


class I2CNack(BusError):
    """No device acknowledged the address (absent, detached, unpowered or busy)."""

    def __init__(self, addr: int) -> None:
        super().__init__(f"no ACK from I2C address 0x{addr:02x}")
        self.addr = addr


class I2CTimeout(BusError):
    """The bus is held low, so no transaction can complete."""

    def __init__(self, bus_id: int) -> None:
        super().__init__(f"I2C bus {bus_id} timed out (SDA held low)")
        self.bus_id = bus_id


class I2CDevice(Peripheral):
    """A device model answering one 7-bit I2C address; subclasses override the four hooks."""

    def __init__(
        self, address: int, *, env: Environment | None = None, name: str | None = None
    ) -> None:
        if not 0 <= address <= 0x7F:
            raise ValueError(f"I2C address must be 7-bit (0x00..0x7f), got {address:#x}")
        super().__init__(env=env, name=name)
        self.address = address

    def start(self, is_read: bool) -> bool:
        """A start or repeated start naming this address; return False to NACK it.

        A start always ends whatever transaction the device had not yet seen stopped.
        """
        return True

    def write(self, data: bytes) -> int:
        """Bytes from the host; return how many were ACKed (the rest are ignored)."""
        return len(data)

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes for the host."""
        return b"\xff" * n

    def stop(self) -> None:
        """The host ended the transaction."""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address}


class I2CBus(BusFaults):
    """One virtual I2C bus: routes each transaction to the device with that address."""

    def __init__(self, bus_id: int, *, scl: int | None = None, sda: int | None = None) -> None:
        self.bus_id = bus_id
        self.scl = scl
        self.sda = sda
        self._devices: dict[int, I2CDevice] = {}
        self._stuck = False
        # The device addressed since the last stop; a repeated start keeps the bus owned.
        self._active: I2CDevice | None = None

    @property
    def devices(self) -> dict[int, I2CDevice]:
        return dict(sorted(self._devices.items()))

    def attach(self, device: I2CDevice) -> I2CDevice:
        if device.address in self._devices:
            taken = self._devices[device.address].name
            raise ValueError(f"I2C bus {self.bus_id}: 0x{device.address:02x} is taken by {taken}")
        self._devices[device.address] = device
        return device

    def detach(self, addr: int) -> I2CDevice:
        """Remove the device at `addr` from the bus altogether (see faults.Detached for a fault)."""
        device = self._devices.pop(addr, None)
        if device is None:
            raise ValueError(f"I2C bus {self.bus_id}: no device at 0x{addr:02x}")
        if self._active is device:
            self._active = None
        return device

    # -- faults ------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"I2C bus {self.bus_id}"

    # -- transactions (the supervisor's API) -----------------------------------------------------

    def writeto(self, addr: int, data: bytes, stop: bool = True) -> int:
        """Write `data` to `addr`; returns the number of data bytes ACKed."""
        device = self._address(addr, is_read=False)
        acked = device.write(bytes(data))
        if not 0 <= acked <= len(data):
            raise RuntimeError(f"{device.name} ACKed {acked} of {len(data)} bytes")
        if stop:
            self._stop()
        return acked

    def readfrom(self, addr: int, n: int, stop: bool = True) -> bytes:
        """Read `n` bytes from `addr`."""
        device = self._address(addr, is_read=True)
        data = bytes(device.read(n))
        if len(data) != n:
            raise RuntimeError(f"{device.name} returned {len(data)} bytes for a {n}-byte read")
        if stop:
            self._stop()
        return device.corrupt(data)

    def writeto_mem(self, addr: int, memaddr: int, data: bytes, *, addrsize: int = 8) -> int:
        """Memory address then data in one transaction, as machine.I2C.writeto_mem does."""
        return self.writeto(addr, memaddr.to_bytes(addrsize // 8, "big") + bytes(data))

    def readfrom_mem(self, addr: int, memaddr: int, n: int, *, addrsize: int = 8) -> bytes:
        """Memory address, repeated start, read: as machine.I2C.readfrom_mem does."""
        self.writeto(addr, memaddr.to_bytes(addrsize // 8, "big"), stop=False)
        return self.readfrom(addr, n, stop=True)

    def scan(self) -> list[int]:
        """Addresses that ACK an empty write, probing the range MicroPython's scan() does."""
        found = []
        for addr in SCAN_RANGE:
            try:
                self.writeto(addr, b"")
            except BusError:
                continue  # like MicroPython, a stuck bus scans as empty rather than raising
            found.append(addr)
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.bus_id,
            "scl": self.scl,
            "sda": self.sda,
            "faults": ["stuck"] if self._stuck else [],
            "devices": [d.describe() for d in self.devices.values()],
        }

    def _address(self, addr: int, *, is_read: bool) -> I2CDevice:
        if self.stuck:
            self._active = None
            raise I2CTimeout(self.bus_id)
        device = self._devices.get(addr)
        if device is None or not device.answers or not device.start(is_read):
            # MicroPython sends a stop after an address NACK; nobody was addressed to see it.
            self._active = None
            raise I2CNack(addr)
        self._active = device
        return device

    def _stop(self) -> None:
        if self._active is not None:
            self._active.stop()
            self._active = None


@dataclass
class Register:
    """One register's reset value, access and side effects."""

    reset: int = 0
    writable: bool = True
    # on_read(reg) -> value, called when the host starts reading the register.
    on_read: Callable[[int], int] | None = None
    # on_write(reg, value), called after a host write has stored the value.
    on_write: Callable[[int, int], None] | None = None


class RegisterDevice(I2CDevice):
    """An I2C chip whose state is registers behind a pointer set by the first written byte."""

    # `width` is the register size in bytes (2 for INA219-style 16-bit registers). After each
    # whole register the pointer moves on when `auto_increment`, or stays to re-read it. A
    # model keeps its conversion results in `values`, or computes them in an on_read callback.

    def __init__(
        self,
        address: int,
        *,
        width: int = 1,
        byteorder: Literal["big", "little"] = "big",
        auto_increment: bool = True,
        count: int = 256,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(address, env=env, name=name)
        if not 1 <= count <= 256:
            raise ValueError("a one-byte register pointer addresses at most 256 registers")
        self.width = width
        self.byteorder: Literal["big", "little"] = byteorder
        self.auto_increment = auto_increment
        self.count = count
        self.values = [0] * count
        self.pointer = 0
        self._registers: dict[int, Register] = {}
        self._expect_pointer = False
        self._partial = bytearray()  # a register's bytes written so far
        self._fetched = b""  # the register being read, fetched at its first byte
        self._read_index = 0

    def define(
        self,
        reg: int,
        reset: int = 0,
        *,
        writable: bool = True,
        on_read: Callable[[int], int] | None = None,
        on_write: Callable[[int, int], None] | None = None,
    ) -> None:
        """Describe one register; undefined registers are plain storage that resets to 0."""
        if not 0 <= reg < self.count:
            raise ValueError(f"{self.name}: register {reg:#x} is outside 0..{self.count - 1:#x}")
        self._registers[reg] = Register(reset, writable, on_read, on_write)
        self.values[reg] = reset & self._mask

    def reset(self) -> None:
        super().reset()
        self.values = [0] * self.count
        for reg, spec in self._registers.items():
            self.values[reg] = spec.reset & self._mask
        self.pointer = 0

    def start(self, is_read: bool) -> bool:
        self._expect_pointer = not is_read
        self._partial.clear()
        self._read_index = 0
        return True

    def write(self, data: bytes) -> int:
        for byte in data:
            if self._expect_pointer:
                self.pointer = byte % self.count
                self._expect_pointer = False
                continue
            self._partial.append(byte)
            if len(self._partial) == self.width:
                self._store(self.pointer, int.from_bytes(self._partial, self.byteorder))
                self._partial.clear()
                self._advance()
        return len(data)

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._read_index == 0:
                value = self._load(self.pointer)
                self._fetched = value.to_bytes(self.width, self.byteorder)
            out.append(self._fetched[self._read_index])
            self._read_index += 1
            if self._read_index == self.width:
                self._read_index = 0
                self._advance()
        return bytes(out)

    @property
    def _mask(self) -> int:
        return (1 << (8 * self.width)) - 1

    def _advance(self) -> None:
        if self.auto_increment:
            self.pointer = (self.pointer + 1) % self.count

    def _store(self, reg: int, value: int) -> None:
        spec = self._registers.get(reg)
        if spec is not None and not spec.writable:
            return  # read-only registers ACK and ignore writes, as most chips do
        self.values[reg] = value
        if spec is not None and spec.on_write is not None:
            spec.on_write(reg, value)

    def _load(self, reg: int) -> int:
        spec = self._registers.get(reg)
        if spec is not None and spec.on_read is not None:
            return spec.on_read(reg) & self._mask
        return self.values[reg] & self._mask
