"""Virtual 1-Wire: a wired-AND line, the ROM layer every device shares, and the CRC-8 it uses.

    bus = OneWireBus(4)
    bus.attach(probe)                              # a OneWireDevice subclass
    bus.reset()                                    # True: a presence pulse
    bus.write_byte(0xCC)                           # SKIP ROM
    bus.write_byte(0x44)                           # a function command, for the model

Every device sees every time slot, as on the wire. Bits go least significant first. The ROM
layer follows Maxim's 1-Wire ROM commands (DS18B20 datasheet, "ROM Commands"; AN187 for SEARCH
ROM); a subclass only implements its function commands via `on_byte`, `send` and `idle_bit`.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from .environment import Environment
from .peripheral import BusFaults, Peripheral

READ_ROM = 0x33
MATCH_ROM = 0x55
SKIP_ROM = 0xCC
SEARCH_ROM = 0xF0
ALARM_SEARCH = 0xEC

ROM_BITS = 64


def crc8_maxim(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8: x^8 + x^5 + x^4 + 1, bits in LSB first, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            # 0x8C is the polynomial 0x31 bit-reversed, because the wire sends LSB first.
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


class _State(enum.Enum):
    COMMAND = enum.auto()  # after a reset: receiving the ROM command
    READ_ROM = enum.auto()  # sending the 64 ROM bits
    MATCH_ROM = enum.auto()  # comparing 64 received bits with the ROM
    SEARCH = enum.auto()  # bit, complement, direction: 64 times
    FUNCTION = enum.auto()  # selected: bytes go to the subclass
    IDLE = enum.auto()  # not selected: silent until the next reset


class OneWireDevice(Peripheral):
    """A 1-Wire device model: a 64-bit ROM and the ROM layer; function commands in subclasses."""

    def __init__(
        self,
        family: int,
        serial: int,
        *,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(env=env, name=name)
        if not 0 <= family <= 0xFF or not 0 <= serial < 1 << 48:
            raise ValueError("a 1-Wire ROM has an 8-bit family code and a 48-bit serial")
        body = bytes([family]) + serial.to_bytes(6, "little")
        self.rom = body + bytes([crc8_maxim(body)])
        self._rom_bits = _bits(self.rom)
        self._state = _State.IDLE
        self._bit = 0  # position within the ROM for READ/MATCH/SEARCH
        self._search_phase = 0  # 0: send bit, 1: send complement, 2: receive direction
        self._command = 0
        self._out: deque[int] = deque()  # bits waiting for read slots
        self._rom_out: list[int] = []
        self._in_byte = 0
        self._in_count = 0

    # -- the function layer: what subclasses use -------------------------------------------------

    def on_byte(self, value: int) -> None:
        """A function-layer byte from the host; the first after selection is the command."""

    def send(self, data: bytes) -> None:
        """Queue bytes for the host's next read slots."""
        for byte in self.corrupt(bytes(data)):
            self._out.extend((byte >> i) & 1 for i in range(8))

    def idle_bit(self) -> int:
        """What a read slot returns with nothing queued (e.g. 0 while a conversion runs)."""
        return 1

    def alarm(self) -> bool:
        """Whether the device answers ALARM SEARCH."""
        return False

    def on_bus_reset(self) -> None:
        """The host sent a reset pulse; function-layer state should be dropped."""

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rom": self.rom.hex()}

    # -- the ROM layer: what the bus calls -------------------------------------------------------

    def bus_reset(self) -> bool:
        """A reset pulse; returns True for the presence pulse."""
        self._state = _State.COMMAND
        self._command = 0
        self._bit = 0
        self._out.clear()
        self._in_byte = self._in_count = 0
        self.on_bus_reset()
        return True

    def slot(self, written: int | None) -> int:
        """One time slot: `written` is the host's bit, None for a read slot.

        Returns the bit this device drives (1 = line released). A read slot looks to a
        listening device like a written 1, and a write slot ends a bit the device was sending,
        which is how the silicon behaves when host and device disagree.
        """
        state = self._state
        if state is _State.IDLE:
            return 1
        if state is _State.FUNCTION:
            return self._function_slot(written)
        if state is _State.READ_ROM:
            bit = self._rom_out[self._bit]
            self._next_rom_bit()
            return bit
        if state is _State.SEARCH:
            return self._search_slot(written)
        bit = 1 if written is None else written & 1
        if state is _State.COMMAND:
            self._command |= bit << self._bit
            self._bit += 1
            if self._bit == 8:
                self._rom_command(self._command)
        elif bit != self._rom_bits[self._bit]:  # MATCH ROM: another device's ROM
            self._state = _State.IDLE
        else:
            self._next_rom_bit()
        return 1

    def _rom_command(self, command: int) -> None:
        self._bit = 0
        self._search_phase = 0
        if command == READ_ROM:
            self._rom_out = _bits(self.corrupt(self.rom))
            self._state = _State.READ_ROM
        elif command == MATCH_ROM:
            self._state = _State.MATCH_ROM
        elif command == SKIP_ROM:
            self._state = _State.FUNCTION
        elif command == SEARCH_ROM or (command == ALARM_SEARCH and self.alarm()):
            self._state = _State.SEARCH
        else:
            self._state = _State.IDLE  # an alarm search we don't answer, or unknown

    def _search_slot(self, written: int | None) -> int:
        own = self._rom_bits[self._bit]
        if self._search_phase == 0:
            self._search_phase = 1
            return own
        if self._search_phase == 1:
            self._search_phase = 2
            return own ^ 1
        self._search_phase = 0
        direction = 1 if written is None else written & 1
        if direction != own:
            self._state = _State.IDLE  # the host went the other way: drop out until reset
        else:
            self._next_rom_bit()
        return 1

    def _next_rom_bit(self) -> None:
        self._bit += 1
        if self._bit == ROM_BITS:
            self._state = _State.FUNCTION  # READ, MATCH and SEARCH all end selected

    def _function_slot(self, written: int | None) -> int:
        if written is None:
            return self._out.popleft() if self._out else self.idle_bit() & 1
        self._in_byte |= (written & 1) << self._in_count
        self._in_count += 1
        if self._in_count == 8:
            value = self._in_byte
            self._in_byte = self._in_count = 0
            self.on_byte(value)
        return 1


class OneWireBus(BusFaults):
    """One virtual 1-Wire line on a GPIO: every device sees every slot; lows win (wired-AND)."""

    def __init__(self, pin: int) -> None:
        self.pin = pin
        self._devices: dict[bytes, OneWireDevice] = {}
        self._stuck = False

    @property
    def devices(self) -> dict[bytes, OneWireDevice]:
        return dict(self._devices)

    def attach(self, device: OneWireDevice) -> OneWireDevice:
        if device.rom in self._devices:
            raise ValueError(f"1-Wire pin {self.pin}: ROM {device.rom.hex()} is already attached")
        self._devices[device.rom] = device
        return device

    def detach(self, rom: bytes) -> OneWireDevice:
        device = self._devices.pop(bytes(rom), None)
        if device is None:
            raise ValueError(f"1-Wire pin {self.pin}: no device with ROM {bytes(rom).hex()}")
        return device

    @property
    def label(self) -> str:
        return f"the 1-Wire bus on {self.pin}"

    # -- the supervisor's API: MicroPython's _onewire primitives ---------------------------------

    def reset(self) -> bool:
        """Reset pulse; True when some device answers with a presence pulse."""
        if self.stuck:
            # The host samples the line low where it looks for presence: a held-low line
            # reads as "present", then every bit reads 0.
            return True
        present = [d.bus_reset() for d in self._present()]
        return any(present)

    def write_bit(self, bit: int) -> None:
        if self.stuck:
            return
        for device in self._present():
            device.slot(bit & 1)

    def read_bit(self) -> int:
        if self.stuck:
            return 0
        line = 1
        for device in self._present():
            line &= device.slot(None)
        return line

    def write_byte(self, value: int) -> None:
        for i in range(8):
            self.write_bit((value >> i) & 1)

    def read_byte(self) -> int:
        return sum(self.read_bit() << i for i in range(8))

    def describe(self) -> dict[str, Any]:
        return {
            "pin": self.pin,
            "faults": ["stuck"] if self._stuck else [],
            "devices": [d.describe() for d in self._devices.values()],
        }

    def _present(self) -> list[OneWireDevice]:
        return [d for d in self._devices.values() if d.answers]


def _bits(data: bytes) -> list[int]:
    return [(byte >> i) & 1 for byte in data for i in range(8)]
