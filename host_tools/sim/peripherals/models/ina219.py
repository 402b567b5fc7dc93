"""Texas Instruments INA219 current/power monitor, at the level of its registers.

    ina = bus.attach(Ina219(clock.now_ms, shunt_ohms=0.1))   # 0x40
    bus.writeto_mem(0x40, 0x05, b"\\x10\\x00")               # calibration 4096
    bus.writeto_mem(0x40, 0x00, b"\\x39\\x9b")               # shunt and bus, triggered
    bus.readfrom_mem(0x40, 0x02, 2)                          # CNVR (bit 1) once converted

Behaviour follows TI SBOS448G (December 2015; section and table titles cited where used):
- six 16-bit registers, MSB first, behind a pointer set by the first byte written; the pointer
  stays where it was set ("Writing to and Reading from the INA219": a read returns the register
  last pointed to), so a read longer than two bytes repeats the register;
- power-on reset values (Table 2 "Summary of Register Set"): configuration 0x399F (32 V range,
  PGA /8, 12 bits, shunt and bus continuous), everything else 0; the RST bit (bit 15) is the
  same as a power-on reset and clears itself; bit 0 of the calibration register reads 0;
- modes (Table "Mode Settings"): continuous (converting again and again), triggered (one
  conversion; afterwards the chip idles in that mode), power-down and ADC off (no conversion:
  one in progress is abandoned). Shunt then bus are converted, each for the maximum time of its
  ADC setting (Table "ADC Settings", "Electrical Characteristics"; n averaged samples take
  n * 586 us), plus 40 us when starting from power-down. CNVR is set once both are converted
  and cleared by a configuration write (but for power-down and ADC off) or a power register
  read ("Bus Voltage Register");
- the chip's own arithmetic ("Programming the Calibration Register"): current = shunt * Cal /
  4096, power = |current| * bus / 5000 (the power register is unsigned), both truncated, both 0
  while Cal is 0; OVF when either leaves its 16 bits ("Math Overflow Flag", registers then
  clipped: the data "may be meaningless");
- the world: a high-side shunt of `shunt_ohms` between the rail and the load. The rail at IN+
  is the environment's `supply_v` (the node's battery, the INA219 measuring what the node and
  its peripherals draw) unless `rail_v` fixes another one (a 12 V solar battery, up to the
  chip's 26 V); the current is `load_current_ma` (negative: charging). The shunt register
  reads I * shunt_ohms, clipped at the PGA's full scale (+-4000 counts of 10 uV at /1, doubling
  per step); the bus register reads IN- (the rail less the shunt drop), clipped at its range's
  full scale (4000 or 8000 counts of 4 mV);
- a per-part `Deviation` for each voltage the chip measures (`shunt` in mV: offset voltage and
  gain error; `bus` in V) for calibration tests; an averaged conversion averages that many
  noisy samples. A wrong shunt value in the driver models the resistor's tolerance. Settings of
  9 to 11 bits quantise to 2**(12 - bits) register LSBs (the datasheet does not describe the
  register at lower resolutions: an assumption);
- power-up: the datasheet gives no time; the model ignores its address for 40 us after
  power-on (the power-down recovery time) and then converts continuously, as the reset value
  says.

Faults come from the bus as for every model: detach (NACK), corrupt (bit flips in the register
bytes; the chip has no CRC), stuck (bus timeout), stale (conversions still complete, with the
last counts again whatever the world does).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from ..deviation import Deviation
from ..environment import Environment
from ..i2c import RegisterDevice

# Table 2 "Summary of Register Set".
CONFIG = 0x00
SHUNT = 0x01
BUS = 0x02
POWER = 0x03
CURRENT = 0x04
CALIBRATION = 0x05
CONFIG_POR = 0x399F

# "Configuration Register" fields.
RST = 0x8000
BRNG = 0x2000
MODE_POWER_DOWN = 0b000
MODE_ADC_OFF = 0b100
MODE_NAMES = {
    0b000: "power-down",
    0b001: "shunt, triggered",
    0b010: "bus, triggered",
    0b011: "shunt and bus, triggered",
    0b100: "adc off",
    0b101: "shunt, continuous",
    0b110: "bus, continuous",
    0b111: "shunt and bus, continuous",
}

# "Bus Voltage Register".
CNVR = 0x0002
OVF = 0x0001

# "Electrical Characteristics", ADC conversion time, maximum (ms) at 9, 10, 11, 12 bits.
CONVERSION_MS = (0.093, 0.163, 0.304, 0.586)
WAKE_MS = 0.040  # "Full recovery from Power-Down requires 40 us"
POWER_UP_MS = 0.040  # not in the datasheet: the power-down recovery time is used

SHUNT_FS = 4000  # counts (10 uV) at PGA /1
BUS_FS_16V = 4000  # counts (4 mV) at the 16 V range
MAX_RAIL_V = 26.0  # "In no event should more than 26 V be applied"


def adc_samples(field: int) -> int:
    """How many samples a 4-bit BADC/SADC field averages (1 for the 9..12-bit settings)."""
    return 1 << (field & 0b111) if field & 0b1000 else 1


def adc_bits(field: int) -> int:
    """The resolution of a 4-bit ADC field: 9..12 (averaging is always at 12 bits)."""
    return 12 if field & 0b1000 else 9 + (field & 0b11)


def conversion_ms(field: int) -> float:
    """The maximum time of one conversion at a 4-bit ADC field ("ADC Settings")."""
    if field & 0b1000:
        return adc_samples(field) * CONVERSION_MS[3]
    return CONVERSION_MS[field & 0b11]


def _word(value: int) -> int:
    return value & 0xFFFF


class Ina219(RegisterDevice):
    """An INA219: shunt and bus ADCs, the calibration arithmetic, CNVR/OVF, modes and timing."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        address: int = 0x40,
        shunt_ohms: float = 0.1,
        rail_v: float | None = None,
        shunt: Deviation = Deviation(),
        bus: Deviation = Deviation(),
        noise_seed: int = 0,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        if not 0x40 <= address <= 0x4F:
            raise ValueError(f"an INA219 answers at 0x40..0x4f (A0/A1 strapping), not {address:#x}")
        if not (isinstance(shunt_ohms, int | float) and 0 < shunt_ohms < math.inf):
            raise ValueError(f"shunt_ohms must be a positive number, got {shunt_ohms!r}")
        if rail_v is not None and not (
            isinstance(rail_v, int | float) and 0 <= rail_v <= MAX_RAIL_V
        ):
            raise ValueError(
                f"rail_v must be 0..{MAX_RAIL_V:g} V (the chip's limit), got {rail_v!r}"
            )
        super().__init__(
            address,
            width=2,
            byteorder="big",
            auto_increment=False,
            env=env,
            name=name or "ina219",
        )
        self._now_ms = now_ms
        self.shunt_ohms = float(shunt_ohms)
        self.rail_v = None if rail_v is None else float(rail_v)
        self.shunt = shunt
        self.bus = bus
        self._noise = random.Random(noise_seed)
        self.define(CONFIG, CONFIG_POR, on_write=self._config_written)
        self.define(SHUNT, writable=False, on_read=self._read_result)
        self.define(BUS, writable=False, on_read=self._read_bus)
        self.define(POWER, writable=False, on_read=self._read_power)
        self.define(CURRENT, writable=False, on_read=self._read_result)
        self.define(CALIBRATION, on_write=self._calibration_written)
        self._awake_at_ms = float("-inf")
        self._done_at_ms: float | None = None  # when the conversion in progress completes
        self._pending: tuple[int | None, int | None] = (None, None)  # a triggered result
        self._last_counts: tuple[int, int] | None = None  # for stale data
        self.conversions = 0  # completed conversions, counted for tests of power-down
        self.register_reads = 0  # registers the host has read, counted for tests of re-reads
        self._power_on_state()

    # -- state -------------------------------------------------------------------------------

    @property
    def mode(self) -> int:
        return self._mode

    @property
    def converting(self) -> bool:
        return self._done_at_ms is not None and self._now_ms() < self._done_at_ms

    def reset(self) -> None:
        # Power-on: the address is ignored for POWER_UP_MS, then it converts continuously.
        super().reset()
        self._power_on_state()
        self._awake_at_ms = self._now_ms() + POWER_UP_MS
        self._done_at_ms = self._awake_at_ms + self._cycle_ms(CONFIG_POR)

    def _power_on_state(self) -> None:
        self._bus_counts = 0
        self._cnvr = False
        self._ovf = False
        self._mode = CONFIG_POR & 0b111
        self._conv_config = CONFIG_POR
        self._pending = (None, None)
        self._last_counts = None
        self._done_at_ms = self._now_ms() + self._cycle_ms(CONFIG_POR)

    # -- the bus -----------------------------------------------------------------------------

    def start(self, is_read: bool) -> bool:
        if self._now_ms() < self._awake_at_ms:
            return False
        return super().start(is_read)

    def read(self, n: int) -> bytes:
        self.register_reads += (n + 1) // 2
        return super().read(n)

    # -- registers ---------------------------------------------------------------------------

    def _config_written(self, reg: int, value: int) -> None:
        self._update()  # a conversion that ended before this write completes first
        if value & RST:
            super().reset()  # every register to its reset value, RST itself cleared
            self._power_on_state()
            return
        was = self._mode
        self._mode = value & 0b111
        if self._mode in (MODE_POWER_DOWN, MODE_ADC_OFF):
            self._done_at_ms = None  # a conversion in progress is abandoned; CNVR stays
            return
        # Any other mode starts a conversion (a triggered mode again even when already set).
        self._cnvr = False
        self._conv_config = value
        wake = WAKE_MS if was == MODE_POWER_DOWN else 0.0
        self._done_at_ms = self._now_ms() + (wake + self._cycle_ms(value))
        if not self._mode & 0b100:
            self._pending = self._sample(value)  # triggered: the world as it is now

    def _calibration_written(self, reg: int, value: int) -> None:
        self.values[CALIBRATION] = value & 0xFFFE  # bit 0 (FS0) is void: it reads 0

    def _read_result(self, reg: int) -> int:
        self._update()
        return self.values[reg]

    def _read_bus(self, reg: int) -> int:
        self._update()
        return (self._bus_counts << 3) | (CNVR if self._cnvr else 0) | (OVF if self._ovf else 0)

    def _read_power(self, reg: int) -> int:
        self._update()
        self._cnvr = False  # "CNVR will clear ... Reading the Power Register"
        return self.values[POWER]

    # -- conversions -------------------------------------------------------------------------

    def _cycle_ms(self, config: int) -> float:
        mode = config & 0b111
        ms = 0.0
        if mode & 0b001:
            ms += conversion_ms((config >> 3) & 0xF)
        if mode & 0b010:
            ms += conversion_ms((config >> 7) & 0xF)
        return ms

    def _update(self) -> None:
        """Complete the conversion in progress if its time has come."""
        done_at = self._done_at_ms
        now = self._now_ms()
        if done_at is None or now < done_at:
            return
        if self._mode & 0b100:  # continuous: the latest of the cycles that have ended
            cycle = self._cycle_ms(self._conv_config)
            self._done_at_ms = done_at + (math.floor((now - done_at) / cycle) + 1) * cycle
            self._finish(*self._sample(self._conv_config))
        else:
            self._done_at_ms = None
            self._finish(*self._pending)

    def _sample(self, config: int) -> tuple[int | None, int | None]:
        """The counts a conversion at `config` gives now: (shunt, bus), None if not converted."""
        mode = config & 0b111
        if self.stale and self._last_counts is not None:
            shunt, bus = self._last_counts  # the same counts again
        else:
            world = self.measure()
            amps = world["load_current_ma"] / 1000.0
            rail = world["supply_v"] if self.rail_v is None else self.rail_v
            drop_v = amps * self.shunt_ohms
            shunt = self._convert(self.shunt, drop_v * 1000.0, 100.0, (config >> 3) & 0xF)
            bus = self._convert(self.bus, rail - drop_v, 250.0, (config >> 7) & 0xF)
            self._last_counts = (shunt, bus)
        pga = (config >> 11) & 0b11
        shunt_fs = SHUNT_FS << pga
        bus_fs = BUS_FS_16V * (2 if config & BRNG else 1)
        return (
            max(-shunt_fs, min(shunt_fs, shunt)) if mode & 0b001 else None,
            max(0, min(bus_fs, bus)) if mode & 0b010 else None,
        )

    def _convert(self, deviation: Deviation, true: float, per_unit: float, field: int) -> int:
        """One ADC result in register counts: averaged samples, quantised at the resolution."""
        n = adc_samples(field)
        value = sum(deviation.apply(true, self._noise) for _ in range(n)) / n
        step = 1 << (12 - adc_bits(field))
        return round(value * per_unit / step) * step

    def _finish(self, shunt: int | None, bus: int | None) -> None:
        """Store a conversion's counts and run the chip's arithmetic on them."""
        if shunt is not None:
            self.values[SHUNT] = _word(shunt)
        if bus is not None:
            self._bus_counts = bus
        shunt_counts = self.values[SHUNT] - (0x10000 if self.values[SHUNT] & 0x8000 else 0)
        magnitude = abs(shunt_counts) * self.values[CALIBRATION] // 4096
        current = -magnitude if shunt_counts < 0 else magnitude
        power = magnitude * self._bus_counts // 5000
        self._ovf = not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
        self.values[CURRENT] = _word(max(-0x8000, min(0x7FFF, current)))
        self.values[POWER] = min(0xFFFF, power)
        self._cnvr = True
        self.conversions += 1

    def describe(self) -> dict[str, Any]:
        self._update()  # the chip's state now, as a register read would see it
        return {
            **super().describe(),
            "config": f"{self.values[CONFIG]:04x}",
            "calibration": self.values[CALIBRATION],
            "mode": MODE_NAMES[self._mode],
            "converting": self.converting,
            "conversions": self.conversions,
            "register_reads": self.register_reads,
            "shunt_ohms": self.shunt_ohms,
            "rail_v": self.rail_v,
        }


def attach(
    vb: Any, bus: int, addr: int, shunt_ohms: float = 0.1, rail_v: float | None = None
) -> Ina219:
    """The MODELS factory: `attach model=ina219 bus=i2c0 [addr=0x40] [shunt_ohms=] [rail_v=]`."""
    return Ina219(vb.clock.now_ms, address=addr or 0x40, shunt_ohms=shunt_ohms, rail_v=rail_v)
