"""A capacitive soil-moisture probe (the common "v1.2"/"v2.0" board) as the voltage on an ADC pin.

    probe = hw.attach("adc", 32, SoilProbe(32, clock.now_ms))
    hw.environment.set(soil_moisture_pct=100.0)     # in water
    hw.adc(32).read_uv()                            # ~1.27 V once the output has settled

The board (DFRobot SEN0193 and its clones): a TLC555 astable drives the probe's two PCB traces,
a capacitor whose dielectric is the soil, through a 10 kΩ resistor; a diode peak detector
charges a 1 µF output capacitor bled by 1 MΩ. More water, more capacitance, a smaller swing:
the output falls as the soil gets wetter. Switched with the sensor rail (`switched=True`): 0 V
while the rail is off. What the model does, with where its figures come from:

- response: `soil_moisture_pct` 0 % (air) gives AIR_MV, 100 % (water) WATER_MV: DFRobot's
  SEN0193 wiki calibrates a part at 520 (air) and 260 (water) of an Arduino Uno's 10-bit ADC at
  5 V, i.e. 2540 and 1270 mV (its TLC555 runs from the board's own 3.3 V regulator). Others
  report 2.2..2.8 V in air and 0.7..1.3 V in water at 3.3 V: that spread is what a per-part
  `Deviation` gives. Between the ends the curve bows (`bow`): the probe is most sensitive when
  dry and flattens towards water, the output's response to a rising probe capacitance, and
  second-order calibration curves fit these probes best in sandy soils (a study of v1.2 probes
  in Water Supply 25(3):424, IWA Publishing, 2025, "New insights on measuring soil water
  content with ..."). BOW = 0.3 puts 50 % at 57.5 % of the way from air to water: after a
  two-point calibration at the ends, the middle reads up to 7.5 points off. An illustrative
  figure, not a fit to one soil;
- per part: a `Deviation` in millivolts at the output (offset, gain, curve around `pivot`,
  seeded noise), applied after the response;
- supply: the output scales with the probe's supply (Electrobob's measurements of the probe
  run below 3.3 V; Hackaday, "A Capacitive Soil Sensor Hack For Lower Voltage Supplies",
  2019). The sensor rail is the board's 3.3 V: on an LDO board (sim-esp32) it follows
  `supply_v` when the battery falls below 3.3 V (dropout not modelled); a Pico's RT6150
  buck-boost holds 3.3 V down to VSYS = 1.8 V, and its ADC reference is that same rail
  anyway, so on rp2 it stays 3.3 V;
- settle: after the rail comes on the output capacitor charges first-order with SETTLE_MS
  (40 ms). A circuit simulation of the board (square wave into 10 kΩ and 20..300 pF, a
  1N4148 into 1 µF || 1 MΩ) gives 88..94 % at 50 ms and within 1 mV by 0.3 s; this
  exponential is slower than that everywhere up to 0.3 s and within 0.1 mV at 0.4 s. A
  changing world is followed at once (the real output falls through 1 MΩ·1 µF, 1 s), and the
  output is 0 V as soon as the rail is off (it decays the same way);
- faults: the probe is on no bus, so `detach`, `corrupt`, `stuck` and `stale` do not apply.
  What goes wrong with a real one reaches the ADC as a voltage: rail off (0 V), unplugged (an
  unattached pin reads 0 V on the virtual board; a real floating input wanders).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from ..adc import AnalogInput
from ..deviation import Deviation
from ..environment import Environment

AIR_MV = 2540.0
WATER_MV = 1270.0
BOW = 0.3
RAIL_V = 3.3  # the probe's supply the end points are for
SETTLE_MS = 40.0

# ADC-capable GPIOs per MCU (board.json "mcu"): ADC1 on the ESP32 family (ADC2 cannot be read
# while Wi-Fi is on: ESP-IDF's ADC guide) — ESP32 GPIO32..39, ESP32-S3 GPIO1..10, ESP32-C3
# GPIO0..4 (their datasheets' "ADC" pin tables) — and RP2040 ADC0..2 (GPIO29 is ADC3, VSYS/3 on
# a Pico; RP2040 datasheet §4.9).
ADC_PINS = {
    "esp32": range(32, 40),
    "esp32s3": range(1, 11),
    "esp32c3": range(0, 5),
    "rp2040": range(26, 29),
}


class SoilProbe(AnalogInput):
    """A capacitive probe's output voltage: response curve, per-part error, supply, settle."""

    def __init__(
        self,
        pin: int,
        now_ms: Callable[[], float],
        *,
        air_mv: float = AIR_MV,
        water_mv: float = WATER_MV,
        bow: float = BOW,
        deviation: Deviation = Deviation(),
        noise_seed: int = 0,
        settle_ms: float = SETTLE_MS,
        rail_follows_supply: bool = False,
        label: str = "soil",
    ) -> None:
        if not 0.0 < water_mv < air_mv <= RAIL_V * 1000.0:
            raise ValueError(
                f"a soil probe reads lower in water than in air, within 0..{RAIL_V * 1000:g} mV;"
                f" got air_mv={air_mv!r}, water_mv={water_mv!r}"
            )
        if not 0.0 <= bow <= 1.0:
            raise ValueError(f"bow must be 0..1 (beyond 1 the curve turns back), got {bow!r}")
        if not settle_ms >= 0.0:
            raise ValueError(f"settle_ms must be >= 0, got {settle_ms!r}")
        self._now_ms = now_ms
        self._on_at_ms = now_ms()
        self._powered = False
        self.air_mv = air_mv
        self.water_mv = water_mv
        self.bow = bow
        self.deviation = deviation
        self.settle_ms = settle_ms
        self.rail_follows_supply = rail_follows_supply
        self._noise = random.Random(noise_seed)
        super().__init__(pin, self.output_v, label, switched=True)

    # The rail switches `powered` (BoardHardware._feed); its rising edge starts the settle.
    @property
    def powered(self) -> bool:
        return self._powered

    @powered.setter
    def powered(self, on: bool) -> None:
        if on and not self._powered:
            self._on_at_ms = self._now_ms()
        self._powered = on

    def response_mv(self, moisture_pct: float) -> float:
        """The typical part's output at 3.3 V, settled: AIR_MV at 0 %, WATER_MV at 100 %."""
        x = min(1.0, max(0.0, moisture_pct / 100.0))
        return self.air_mv - (self.air_mv - self.water_mv) * (x + self.bow * x * (1.0 - x))

    def rail_v(self, env: Environment) -> float:
        return min(RAIL_V, env["supply_v"]) if self.rail_follows_supply else RAIL_V

    def settled(self) -> float:
        """How far the output has risen towards its value since the rail came on, 0..1."""
        if self.settle_ms == 0.0:
            return 1.0
        t = max(0.0, self._now_ms() - self._on_at_ms)
        return 1.0 - math.exp(-t / self.settle_ms)

    def output_v(self, env: Environment) -> float:
        mv = self.deviation.apply(self.response_mv(env["soil_moisture_pct"]), self._noise)
        mv *= self.rail_v(env) / RAIL_V * self.settled()
        return max(0.0, mv) / 1000.0


def attach(vb: Any, pin: int, addr: int, **options: Any) -> SoilProbe:
    """The MODELS factory: `attach model=soil bus=adc<pin>` on an ADC-capable GPIO of the board.

    Options (JSON values): `air_mv`, `water_mv`, `bow`, `settle_ms`, `noise_seed`, and the
    Deviation's `offset`, `gain`, `noise`, `curve`, `pivot`, in mV at the probe's output.
    """
    mcu = vb.board["mcu"]
    battery = vb.board["pins"].get("battery_adc") or {}
    if pin not in ADC_PINS[mcu] or pin not in vb.board["gpio"]:
        pins = [p for p in ADC_PINS[mcu] if p in vb.board["gpio"] and p != battery.get("pin")]
        raise ValueError(f"a soil probe needs an ADC pin; GPIO{pin} is not one on {mcu} ({pins})")
    if pin == battery.get("pin"):
        raise ValueError(f"GPIO{pin} is the board's battery divider (pins.battery_adc)")
    fields = ("offset", "gain", "noise", "curve", "pivot")
    deviation = Deviation(**{k: float(options.pop(k)) for k in fields if k in options})
    return SoilProbe(
        pin,
        vb.clock.now_ms,
        deviation=deviation,
        rail_follows_supply=vb.hw.port == "esp32",
        **options,
    )
