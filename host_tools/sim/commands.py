"""The control commands of a virtual board, shared by the control socket, `mote sim` options
and device tests running on the node (in script mode).
"""

import re
from collections.abc import Callable
from typing import Any

from host_tools.sim.control import CommandError, Dispatcher
from host_tools.sim.peripherals.models import At24c32
from host_tools.sim.peripherals.models.bme280 import attach as bme280_attach
from host_tools.sim.peripherals.models.ds18b20 import attach as ds18b20_attach
from host_tools.sim.peripherals.models.ina219 import attach as ina219_attach
from host_tools.sim.peripherals.models.scd41 import attach as scd41_attach
from host_tools.sim.peripherals.models.sht4x import attach as sht4x_attach
from host_tools.sim.peripherals.models.soil import attach as soil_attach
from host_tools.sim.resets import KINDS
from host_tools.sim.supervisor import VirtualBoard

# Device models that can be attached by name: name -> (bus kind, factory(board, bus number,
# address, **options)). The bus number is the I2C/SPI bus id, or the pin for onewire and adc;
# the address is 0 when the command gave none (the chip's default), a 1-Wire serial number for
# onewire. Options are the attach command's other keywords, JSON values; a factory that takes
# none is called without.
ModelFactory = Callable[..., Any]
MODELS: dict[str, tuple[str, ModelFactory]] = {
    "at24c32": ("i2c", lambda vb, bus, addr: At24c32(vb.clock.now_ms, address=addr or 0x50)),
    "bme280": ("i2c", bme280_attach),
    "ds18b20": ("onewire", ds18b20_attach),
    "ina219": ("i2c", ina219_attach),
    "scd41": ("i2c", scd41_attach),
    "sht4x": ("i2c", sht4x_attach),
    "soil": ("adc", soil_attach),
}

_BUS = re.compile(r"(i2c|spi|onewire|adc)(\d+)")


def _parse_number(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 0)


def board_commands(vb: VirtualBoard, stop: Callable[[], None]) -> Dispatcher:
    d = Dispatcher()

    def status() -> dict[str, Any]:
        return vb.status()

    def reset(kind: str = "button") -> dict[str, Any]:
        if kind not in KINDS:
            raise CommandError(f"reset kind must be one of {', '.join(KINDS)}")
        if kind in ("power_on", "brownout"):
            vb.power_cycle(kind)
        else:
            vb.reset(kind)
        return {"reset_cause": vb.reset_cause}

    def env(**values: float) -> dict[str, Any]:
        vb.hw.environment.set(**values)
        return {"environment": vb.hw.environment.snapshot()}

    def fault(target: str, spec: str) -> None:
        vb.hw.apply_fault(target, spec)

    def clear_faults(target: str | None = None) -> None:
        vb.hw.clear_faults(target)

    def attach(model: str, bus: str, addr: Any = None, **options: Any) -> dict[str, Any]:
        if model not in MODELS:
            raise CommandError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
        kind, factory = MODELS[model]
        m = _BUS.fullmatch(bus)
        if not m or m[1] != kind:
            raise CommandError(f"{model} goes on an {kind} bus, like {kind}0; got {bus!r}")
        number = _parse_number(addr) if addr is not None else 0
        try:
            device = factory(vb, int(m[2]), number, **options)
        except TypeError as e:
            raise CommandError(f"{model}: bad options {sorted(options)}: {e}") from None
        vb.hw.attach(kind, int(m[2]), device)  # type: ignore[arg-type]
        return {"hardware": vb.hw.describe()}

    def cut_power_at_write(n: int) -> None:
        vb.cut_power_at_write(int(n))

    def erase_flash() -> None:
        vb.power_off()
        vb.state.erase_flash(vb.board["flash"]["fs_bytes"])
        vb.boot("power_on")

    def stop_cmd() -> None:
        stop()

    for name, fn in [
        ("status", status),
        ("reset", reset),
        ("wake", vb.wake),
        ("env", env),
        ("fault", fault),
        ("clear_faults", clear_faults),
        ("attach", attach),
        ("cut_power_at_write", cut_power_at_write),
        ("erase_flash", erase_flash),
        ("stop", stop_cmd),
    ]:
        d.register(name, fn)
    return d
