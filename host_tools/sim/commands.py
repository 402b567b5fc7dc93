"""The control commands of a virtual board, shared by the control socket, `mote sim` options
and device tests running on the node (in script mode).
"""

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from host_tools.sim.air import Frame, LoraMeta
from host_tools.sim.control import CommandError, Dispatcher
from host_tools.sim.peripherals.models import At24c32
from host_tools.sim.peripherals.models.bme280 import attach as bme280_attach
from host_tools.sim.peripherals.models.ds18b20 import attach as ds18b20_attach
from host_tools.sim.peripherals.models.ina219 import attach as ina219_attach
from host_tools.sim.peripherals.models.lora import Heard
from host_tools.sim.peripherals.models.scd41 import attach as scd41_attach
from host_tools.sim.peripherals.models.sht4x import attach as sht4x_attach
from host_tools.sim.peripherals.models.soil import attach as soil_attach
from host_tools.sim.radio_link import radio_model
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
    # A LoRa chip: the address is its NSS (chip-select) pin; options reset=, dio0= (sx1276)
    # or busy=, dio1= (sx1262), tcxo_mv=, dio2_rf_switch=. LoRa boards have theirs soldered.
    "sx1276": ("spi", lambda vb, bus, cs, **pins: _radio(vb, "sx1276", bus, cs, pins)),
    "sx1262": ("spi", lambda vb, bus, cs, **pins: _radio(vb, "sx1262", bus, cs, pins)),
}


def _radio(vb: VirtualBoard, chip: str, bus: int, cs: int, pins: dict[str, Any]) -> Any:
    if not cs:
        raise CommandError(f"{chip}: give its chip-select pin as addr (e.g. addr=18)")
    if cs in vb.hw.spi(bus).devices:
        raise CommandError(f"SPI bus {bus}: CS pin {cs} is taken")
    return vb.add_lora(radio_model(vb.hw, vb.clock, chip, {**pins, "nss": cs}))


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
        if vb.lora:
            lora_commands()  # a radio attached to a board that had none
        return {"hardware": vb.hw.describe()}

    def lora_link(**settings: Any) -> dict[str, Any]:
        # rssi_dbm, snr_db (null: the sender's), loss (0..1), out_of_range, seed.
        if not vb.lora:
            raise CommandError("this board has no LoRa radio")
        unknown = sorted(set(settings) - {"rssi_dbm", "snr_db", "loss", "out_of_range", "seed"})
        if unknown:
            raise CommandError(f"lora_link: unknown settings {unknown}")
        for lora in vb.lora:
            link = lora.model.core.set_link(**settings)
        return {"lora_link": dataclasses.asdict(link)}

    def lora_frame(
        payload_hex: str,
        freq_hz: int,
        sf: int,
        bw_hz: int = 125_000,
        cr: str = "4/5",
        dir: str = "down",  # noqa: A002  the air frame's field name
        t_sim_ms: float | None = None,
        delay_ms: float = 0.0,
        rssi_dbm: float = -60.0,
        snr_db: float = 9.0,
        crc_error: bool = False,
    ) -> dict[str, Any]:
        # A frame as if the air had carried it to this node, starting at t_sim_ms (else now +
        # delay_ms): for tests without an air (script mode).
        if not vb.lora:
            raise CommandError("this board has no LoRa radio")
        if dir not in ("up", "down"):
            raise CommandError(f"lora_frame: dir must be 'up' or 'down', not {dir!r}")
        down = dir == "down"
        meta = LoraMeta(
            int(freq_hz),
            int(sf),
            int(bw_hz),
            cr,
            float(rssi_dbm),
            float(snr_db),
            "down" if down else "up",
            vb.node_id if down else None,
        )
        start = vb.clock.now_ms() + delay_ms if t_sim_ms is None else float(t_sim_ms)
        frame = Frame("control", bytes.fromhex(payload_hex), meta, max(0, int(start)))
        frame.encode()  # the air's checks
        for lora in vb.lora:
            core = lora.model.core
            toa = core.frame_toa(frame)
            core.hear(Heard(frame.payload, meta, start, start + toa, not down, bool(crc_error)))
        return {"t_sim_ms": start}

    def cut_power_at_write(n: int) -> None:
        vb.cut_power_at_write(int(n))

    def erase_flash() -> None:
        vb.power_off()
        vb.state.erase_flash(vb.board["flash"]["fs_bytes"])
        vb.boot("power_on")

    def stop_cmd() -> None:
        stop()

    handlers: list[tuple[str, Callable[..., Any]]] = [
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
    ]
    for name, fn in handlers:
        d.register(name, fn)

    def lora_commands() -> None:
        # Only boards with a LoRa radio (soldered, or attached since) have these.
        d.register("lora_link", lora_link)
        d.register("lora_frame", lora_frame)

    if vb.lora:
        lora_commands()
    return d
