"""The virtual board's hardware: its buses, pins and analog inputs, and the world around it.

    hw = BoardHardware(board)                       # a board definition dict (boards/*.json)
    hw.attach("i2c", 0, At24c32(clock.now_ms))
    hw.apply_fault("i2c0:0x50", "detach")
    hw.i2c(0).readfrom(0x50, 1)                     # raises I2CNack
    hw.environment.set(supply_v=3.4)
    hw.adc(35).read_uv()                            # battery pin: supply_v / divider

With no devices attached it is a bare board: I2C NACKs, SPI reads 0xFF, 1-Wire has no presence.

The sensor rail. On a board whose definition has `pins.sensor_power`, every I2C and 1-Wire
device and every `switched` analog input is fed from a rail that pin switches (Motekit's
reference wiring: a high-side switch whose enable is pulled low). Until the node drives the pin
high the devices do not answer, and each time it goes high they start from power-on reset (a
DS18B20 holds 85 °C, an SHT4x is busy for t_PU). A CPU reset or deep sleep releases every pin,
so the rail goes off. SPI devices (radios) are on the main supply. Boards without the pin have
their sensors always powered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from .adc import (
    RP2_TEMP_SENSOR_PIN,
    AnalogInput,
    Esp32Adc,
    Rp2Adc,
    divided_supply,
    rp2_temp_sensor_volts,
    unwired,
)
from .environment import Environment
from .faults import Fault, parse_fault
from .i2c import I2CBus, I2CDevice
from .onewire import OneWireBus, OneWireDevice
from .peripheral import Peripheral
from .spi import SPIBus, SPIDevice

Kind = Literal["i2c", "spi", "onewire", "adc"]
KINDS: tuple[Kind, ...] = ("i2c", "spi", "onewire", "adc")
PORTS = ("esp32", "rp2")

TARGET_FORMS = "i2c<id>[:<address>], spi<id>[:cs<pin>], onewire<pin>[:<rom hex>], or a device name"
_TARGET = re.compile(r"(i2c|spi|onewire)(\d+)(?::(.+))?")

Bus = I2CBus | SPIBus | OneWireBus
Wired = TypeVar("Wired", bound=Peripheral | AnalogInput)


class BoardHardware:
    """The buses, pins and analog inputs of one virtual board, built from its definition."""

    def __init__(self, board: Mapping[str, Any], *, environment: Environment | None = None) -> None:
        self.port: str = board["port"]
        if self.port not in PORTS:
            raise ValueError(f"unknown port {self.port!r}; supported: {', '.join(PORTS)}")
        pins = board["pins"]
        self.environment = environment if environment is not None else Environment()
        self._i2c = {
            b["id"]: I2CBus(b["id"], scl=b["scl"], sda=b["sda"]) for b in pins.get("i2c", ())
        }
        self._spi = {
            b["id"]: SPIBus(b["id"], sck=b["sck"], mosi=b["mosi"], miso=b["miso"])
            for b in pins.get("spi", ())
        }
        self._onewire: dict[int, OneWireBus] = {}
        if pins.get("onewire") is not None:
            self._onewire[pins["onewire"]] = OneWireBus(pins["onewire"])
        self._analog: dict[int, AnalogInput] = {}
        battery = pins.get("battery_adc")
        if battery is not None:
            source = divided_supply(battery["divider"])
            self._analog[battery["pin"]] = AnalogInput(battery["pin"], source, "battery")
        if self.port == "rp2":
            self._analog[RP2_TEMP_SENSOR_PIN] = AnalogInput(
                RP2_TEMP_SENSOR_PIN, rp2_temp_sensor_volts, "core_temp"
            )
        self._adc: dict[int, Esp32Adc | Rp2Adc] = {}
        self._levels: dict[int, int] = {}
        # Input pins a model drives (a radio's DIO and BUSY lines), and pins a model listens to
        # (its reset line): GPIO wiring beyond the buses.
        self._driven: dict[int, Callable[[], int]] = {}
        self._watchers: dict[int, list[Callable[[int], None]]] = {}
        self.sensor_power: int | None = pins.get("sensor_power")
        self._rail_on = self.sensor_power is None

    # -- buses -----------------------------------------------------------------------------------

    def i2c(self, bus_id: int) -> I2CBus:
        if bus_id not in self._i2c:
            raise ValueError(f"this board has no I2C bus {bus_id}; it has {sorted(self._i2c)}")
        return self._i2c[bus_id]

    def spi(self, bus_id: int) -> SPIBus:
        if bus_id not in self._spi:
            raise ValueError(f"this board has no SPI bus {bus_id}; it has {sorted(self._spi)}")
        return self._spi[bus_id]

    def onewire(self, pin: int) -> OneWireBus:
        """The 1-Wire line on `pin`; any GPIO can be one, with nothing on it unless wired."""
        if pin not in self._onewire:
            self._onewire[pin] = OneWireBus(pin)
        return self._onewire[pin]

    def adc(self, pin: int) -> Esp32Adc | Rp2Adc:
        """The ADC channel on `pin` (kept, so its attenuation persists); unwired pins read 0 V."""
        if pin not in self._adc:
            source = self._analog.get(pin) or AnalogInput(pin, unwired, "unwired")
            self._adc[pin] = (
                Esp32Adc(source, self.environment)
                if self.port == "esp32"
                else Rp2Adc(source, self.environment)
            )
        return self._adc[pin]

    def attach(self, kind: Kind, bus: int, device: Wired) -> Wired:
        """Wire a model onto a bus (`bus` is the bus id, or the pin for onewire and adc)."""
        if kind not in KINDS:
            raise ValueError(f"unknown bus kind {kind!r}; use one of {', '.join(KINDS)}")
        if isinstance(device, Peripheral):
            device.bind(self.environment)
        if kind == "i2c" and isinstance(device, I2CDevice):
            self.i2c(bus).attach(device)
        elif kind == "spi" and isinstance(device, SPIDevice):
            self.spi(bus).attach(device)
        elif kind == "onewire" and isinstance(device, OneWireDevice):
            self.onewire(bus).attach(device)
        elif kind == "adc" and isinstance(device, AnalogInput):
            if device.pin != bus:
                raise ValueError(f"analog input for pin {device.pin} attached to pin {bus}")
            self._analog[bus] = device
            self._adc.pop(bus, None)  # rebuilt on next use with the new source
        else:
            raise ValueError(f"a {type(device).__name__} cannot be attached to {kind}")
        if kind != "spi":
            self._feed(device)
        return device

    # -- the sensor rail ---------------------------------------------------------------------------

    @property
    def rail_on(self) -> bool:
        """Whether the switched sensor rail is on (always, on boards without the switch)."""
        return self._rail_on

    def cpu_reset(self) -> None:
        """The MCU reset or went into deep sleep: every GPIO is released, so the rail goes off."""
        self._levels.clear()
        for bus in self._spi.values():
            bus.release_all()
        self._set_rail(self.sensor_power is None)

    def _set_rail(self, on: bool) -> None:
        was, self._rail_on = self._rail_on, on
        for source in self._analog.values():
            self._feed(source)
        for device in self._railed():
            self._feed(device)
            if on and not was:
                device.reset()  # power-on reset of every chip on the rail

    def _railed(self) -> list[Peripheral]:
        buses: list[I2CBus | OneWireBus] = [*self._i2c.values(), *self._onewire.values()]
        return [device for bus in buses for device in bus.devices.values()]

    def _feed(self, device: Peripheral | AnalogInput) -> None:
        device.powered = self._rail_on or (isinstance(device, AnalogInput) and not device.switched)

    # -- pins --------------------------------------------------------------------------------------

    def pin_write(self, pin: int, level: int) -> None:
        """A GPIO level set by the node (or by the world); SPI buses see chip-select edges,
        models watching the pin see the level."""
        self._levels[pin] = 1 if level else 0
        for bus in self._spi.values():
            bus.pin_changed(pin, self._levels[pin])
        if pin == self.sensor_power:
            self._set_rail(bool(level))
        for watcher in self._watchers.get(pin, ()):
            watcher(self._levels[pin])

    def pin_read(self, pin: int) -> int:
        """The level a model drives on `pin`, else the last level written; else 0."""
        source = self._driven.get(pin)
        if source is not None:
            return 1 if source() else 0
        return self._levels.get(pin, 0)

    def drive_pin(self, pin: int, source: Callable[[], int]) -> None:
        """Let a model drive `pin` (an output of the chip, an input of the MCU): pin_read()
        returns source() from now on."""
        if pin in self._driven:
            raise ValueError(f"pin {pin} is already driven by a model")
        self._driven[pin] = source

    def watch_pin(self, pin: int, watcher: Callable[[int], None]) -> None:
        """Call watcher(level) each time the node writes `pin` (a chip's reset input)."""
        self._watchers.setdefault(pin, []).append(watcher)

    # -- faults ------------------------------------------------------------------------------------

    def apply_fault(self, target: str | Peripheral, fault: Fault | str) -> None:
        """Inject `fault` (or a spec like "corrupt:0.2") into a device or a bus."""
        if isinstance(fault, str):
            fault = parse_fault(fault)
        self._resolve(target).apply_fault(fault)

    def clear_faults(self, target: str | Peripheral | None = None) -> None:
        """Clear the faults of one target, or of everything on the board."""
        if target is not None:
            self._resolve(target).clear_faults()
            return
        for bus in self._buses():
            bus.clear_faults()
        for device in self._devices():
            device.clear_faults()

    def power_on_reset(self) -> None:
        """Every model's power-on reset, for when the supervisor cuts the board's supply."""
        for device in self._devices():
            device.reset()

    def describe(self) -> dict[str, Any]:
        """JSON-ready inventory: buses, devices, faults, analog inputs, pin levels, environment."""
        analog = sorted(set(self._analog) | set(self._adc))
        return {
            "port": self.port,
            "environment": self.environment.snapshot(),
            "i2c": [bus.describe() for bus in self._i2c.values()],
            "spi": [bus.describe() for bus in self._spi.values()],
            "onewire": [bus.describe() for bus in self._onewire.values()],
            "adc": [
                {
                    "pin": pin,
                    "source": self.adc(pin).source.label,
                    "volts": round(self.adc(pin).source.volts(self.environment), 6),
                }
                for pin in analog
            ],
            "pins": [{"pin": pin, "level": level} for pin, level in sorted(self._levels.items())],
            "sensor_rail": {"pin": self.sensor_power, "on": self._rail_on},
        }

    # -- internals -----------------------------------------------------------------------------

    def _buses(self) -> list[Bus]:
        return [*self._i2c.values(), *self._spi.values(), *self._onewire.values()]

    def _devices(self) -> list[Peripheral]:
        found: list[Peripheral] = []
        for bus in self._buses():
            found.extend(bus.devices.values())
        return found

    def _resolve(self, target: str | Peripheral) -> Peripheral | Bus:
        if isinstance(target, Peripheral):
            return target
        match = _TARGET.fullmatch(target.strip().lower())
        try:
            if match:
                return self._resolve_on_bus(match[1], int(match[2]), match[3])
        except (KeyError, ValueError):
            pass  # reported below with the forms a target can take
        named = [d for d in self._devices() if d.name == target]
        if len(named) == 1:
            return named[0]
        names = ", ".join(sorted(d.name for d in self._devices())) or "none attached"
        reason = "is ambiguous" if named else "matches nothing"
        raise ValueError(f"fault target {target!r} {reason}; use {TARGET_FORMS} ({names})")

    def _resolve_on_bus(self, kind: str, number: int, device: str | None) -> Peripheral | Bus:
        if kind == "i2c":
            i2c = self.i2c(number)
            return i2c if device is None else i2c.devices[int(device, 0)]
        if kind == "spi":
            spi = self.spi(number)
            return spi if device is None else spi.devices[int(device.removeprefix("cs"), 0)]
        onewire = self._onewire[number]
        return onewire if device is None else onewire.devices[bytes.fromhex(device)]
