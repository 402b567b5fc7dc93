"""Virtual SPI: device models behind chip-select pins, and the bus the supervisor drives.

bus = SPIBus(1, sck=18, mosi=23, miso=19)
bus.attach(flash)               # an SPIDevice with cs=5
bus.pin_changed(5, 0)           # node drives CS low: flash.select(True)
bus.transfer(b"\\x9f\\0\\0\\0")    # full duplex: MISO bytes back
bus.pin_changed(5, 1)           # flash.select(False)
"""

from __future__ import annotations

from typing import Any

from .environment import Environment
from .peripheral import BusFaults, Peripheral


class SPIDevice(Peripheral):
    """A device model on an SPI bus, selected while its chip-select pin is low."""

    def __init__(self, cs: int, *, env: Environment | None = None, name: str | None = None) -> None:
        super().__init__(env=env, name=name)
        self.cs = cs

    def select(self, active: bool) -> None:
        """CS edge: True when pulled low. Chips reset their command state here."""

    def transfer(self, mosi: bytes) -> bytes:
        """Clock `mosi` in and return the same number of MISO bytes."""
        return b"\xff" * len(mosi)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cs": self.cs}


class SPIBus(BusFaults):
    """One virtual SPI bus: full-duplex transfers reach whichever devices' CS is low."""

    def __init__(
        self,
        bus_id: int,
        *,
        sck: int | None = None,
        mosi: int | None = None,
        miso: int | None = None,
    ) -> None:
        self.bus_id = bus_id
        self.sck = sck
        self.mosi = mosi
        self.miso = miso
        self._devices: dict[int, SPIDevice] = {}
        self._levels: dict[int, int] = {}  # pin -> last level seen; CS idles high
        self._stuck = False

    @property
    def devices(self) -> dict[int, SPIDevice]:
        return dict(sorted(self._devices.items()))

    def attach(self, device: SPIDevice) -> SPIDevice:
        if device.cs in self._devices:
            taken = self._devices[device.cs].name
            raise ValueError(f"SPI bus {self.bus_id}: CS pin {device.cs} is taken by {taken}")
        self._devices[device.cs] = device
        if self._level(device.cs) == 0:
            device.select(True)  # wired in while its CS is already low
        return device

    def detach(self, cs: int) -> SPIDevice:
        device = self._devices.pop(cs, None)
        if device is None:
            raise ValueError(f"SPI bus {self.bus_id}: no device on CS pin {cs}")
        return device

    def pin_changed(self, pin: int, level: int) -> None:
        """A GPIO level the node drove; a CS edge selects or releases its device."""
        old = self._level(pin)
        self._levels[pin] = 1 if level else 0
        device = self._devices.get(pin)
        if device is not None and not device.detached and old != self._levels[pin]:
            device.select(self._levels[pin] == 0)

    def release_all(self) -> None:
        """Every pin released (an MCU reset): chip selects float back high."""
        for pin in [p for p, level in self._levels.items() if level == 0]:
            self.pin_changed(pin, 1)

    def selected(self) -> list[SPIDevice]:
        return [d for cs, d in self._devices.items() if self._level(cs) == 0 and not d.detached]

    # -- faults --------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"SPI bus {self.bus_id}"

    # -- transfers (the supervisor's API) ------------------------------------------------------

    def transfer(self, mosi: bytes) -> bytes:
        """Full-duplex transfer; MISO floats high (0xFF) when no device is selected."""
        mosi = bytes(mosi)
        devices = self.selected()
        replies = []
        for device in devices:
            miso = bytes(device.transfer(mosi))
            if len(miso) != len(mosi):
                raise RuntimeError(f"{device.name} returned {len(miso)} bytes for {len(mosi)}")
            replies.append(device.corrupt(miso))
        if self.stuck:
            return bytes(len(mosi))  # MISO held low
        out = bytearray(b"\xff" * len(mosi))
        # Two selected devices fight over MISO (a firmware bug); a low wins, like a wired-AND.
        for miso in replies:
            for i, byte in enumerate(miso):
                out[i] &= byte
        return bytes(out)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.bus_id,
            "sck": self.sck,
            "mosi": self.mosi,
            "miso": self.miso,
            "faults": ["stuck"] if self._stuck else [],
            "devices": [d.describe() for d in self.devices.values()],
        }

    def _level(self, pin: int) -> int:
        return self._levels.get(pin, 1)
