"""Sensirion SHT4x (SHT40/41/45) humidity and temperature sensor, at the level of its commands.

    sht = bus.attach(Sht4x(clock.now_ms))   # 0x44
    bus.writeto(0x44, b"\\xfd")              # measure at high precision ...
    bus.readfrom(0x44, 6)                   # ... I2CNack for 8.3 ms, then T, CRC, RH, CRC

Behaviour follows the Sensirion SHT4x datasheet (version 6, February 2023; table and section
titles cited where used):
- one-byte commands ("Command Overview"); an unknown one is not acknowledged;
- while the chip measures, heats or resets it acknowledges no header at all, for the maximum
  durations of "System Timing Specifications"; a read with no result waiting is NACKed too.
  So a host that reads before the conversion's end fails as on silicon;
- a result is 16-bit words, MSB first, each followed by its CRC-8 ("Checksum Calculation"),
  and can be read once: any new command, or the read itself, discards it;
- values come from the environment (`temperature_c`, `humidity_rh`) through a per-part
  `Deviation` (gain, offset, seeded noise) for calibration tests, quantised to the chip's words
  by the inverse of "Conversion of Signal Output";
- the heater commands heat the die, measure at the end of the pulse, and the die cools after
  (a first-order thermal model: the datasheet gives powers and durations, not temperatures);
  the relative humidity it reports is that of the air at the die's temperature;
- soft reset (0x94) and power-on reset make the chip busy for 1 ms and drop any result.

Faults come from the bus as for every model: detach (NACK), corrupt (bit flips, so CRC
mismatches), stuck (bus timeout), stale (the last words again, whatever the world does).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from ..deviation import Deviation
from ..environment import Environment
from ..i2c import I2CDevice

# "Command Overview".
MEASURE_HIGH = 0xFD
MEASURE_MEDIUM = 0xF6
MEASURE_LOW = 0xE0
READ_SERIAL = 0x89
SOFT_RESET = 0x94
# Heater command -> (power mW, nominal pulse ms); each ends with a high-precision measurement.
HEATER: dict[int, tuple[int, int]] = {
    0x39: (200, 1000),
    0x32: (200, 100),
    0x2F: (110, 1000),
    0x24: (110, 100),
    0x1E: (20, 1000),
    0x15: (20, 100),
}

# "System Timing Specifications", maximum values (ms): the model is busy for the worst case, so
# a driver that waits less fails here rather than on one part in a hundred.
MEASURE_MS = {MEASURE_HIGH: 8.3, MEASURE_MEDIUM: 4.5, MEASURE_LOW: 1.6}
HEATER_MS = {1000: 1100.0, 100: 110.0}  # heater-on duration, long and short pulse
SOFT_RESET_MS = 1.0  # t_SR
POWER_UP_MS = 1.0  # t_PU
# Not in the table: Sensirion's own driver (embedded-sht) waits 1 ms before reading the serial
# number, and the chip NACKs a read sent straight after the command.
SERIAL_MS = 1.0

# The first word 0x11A2 is what a real SHT41 returned (meshtastic/firmware#4221, where the
# firmware matched on it); the second word is ours. Every part has its own.
DEFAULT_SERIAL = 0x11A2_5C3D

# The heater's effect on the die: steady-state rise per mW and time constant. Illustrative
# figures (the datasheet gives none); a 200 mW, 1.1 s pulse warms the die by about 40 °C.
HEATER_K_PER_MW = 0.3
HEATER_TAU_MS = 1000.0

_WORD_MAX = 0xFFFF


def crc8(data: bytes) -> int:
    """The datasheet's CRC-8: polynomial 0x31, init 0xFF, no reflection, no final XOR."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31 if crc & 0x80 else crc << 1) & 0xFF
    return crc


def words_with_crc(*words: int) -> bytes:
    """Each 16-bit word MSB first, followed by its CRC, as the chip sends them."""
    out = bytearray()
    for word in words:
        pair = word.to_bytes(2, "big")
        out += pair + bytes([crc8(pair)])
    return bytes(out)


def temperature_word(celsius: float) -> int:
    """S_T for a temperature: the inverse of T = -45 + 175 * S_T / 65535, clamped to 16 bits."""
    return _clamp_word(round((celsius + 45.0) * _WORD_MAX / 175.0))


def humidity_word(rh: float) -> int:
    """S_RH for a humidity: the inverse of RH = -6 + 125 * S_RH / 65535, clamped to 16 bits."""
    return _clamp_word(round((rh + 6.0) * _WORD_MAX / 125.0))


def _clamp_word(value: int) -> int:
    return max(0, min(_WORD_MAX, value))


def _saturation_hpa(celsius: float) -> float:
    # Magnus formula over water (Sonntag 1990 coefficients).
    return 6.112 * math.exp(17.62 * celsius / (243.12 + celsius))


class Sht4x(I2CDevice):
    """An SHT4x: timed measurements, CRC'd words, serial number, heater, soft reset."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        address: int = 0x44,
        serial: int = DEFAULT_SERIAL,
        temperature: Deviation = Deviation(),
        humidity: Deviation = Deviation(),
        noise_seed: int = 0,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(address, env=env, name=name or "sht4x")
        if not 0 <= serial <= 0xFFFF_FFFF:
            raise ValueError(f"an SHT4x serial number is 32 bits, got {serial:#x}")
        self._now_ms = now_ms
        self.serial = serial
        self.temperature = temperature
        self.humidity = humidity
        self._noise = random.Random(noise_seed)
        self._busy_until_ms = float("-inf")
        self._result: bytes | None = None
        self._last_words: tuple[int, int] | None = None
        # The die's temperature rise above the air, as it was at _heat_at_ms; it then decays.
        self._heat_k = 0.0
        self._heat_at_ms = 0.0
        self.result_reads = 0  # results the host has read, counted for tests of retries

    # -- state -----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._now_ms() < self._busy_until_ms

    def heat_k(self, at_ms: float | None = None) -> float:
        """How far the heater has warmed the die above the air at `at_ms` (default: now)."""
        t = self._now_ms() if at_ms is None else at_ms
        return self._heat_k * math.exp(-max(0.0, t - self._heat_at_ms) / HEATER_TAU_MS)

    def reset(self) -> None:
        # Power-on: t_PU before the chip answers. A warm die keeps cooling at its own pace.
        super().reset()
        self._result = None
        self._last_words = None
        self._busy_until_ms = self._now_ms() + POWER_UP_MS

    # -- the bus -----------------------------------------------------------------------------

    def start(self, is_read: bool) -> bool:
        if self.busy:
            return False
        return not (is_read and self._result is None)

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        command = data[0]
        now = self._now_ms()
        self._result = None  # a new command discards an unread result
        if command in MEASURE_MS:
            self._result = words_with_crc(*self._words(self.heat_k(now)))
            self._busy_until_ms = now + MEASURE_MS[command]
        elif command in HEATER:
            power_mw, pulse_ms = HEATER[command]
            duration = HEATER_MS[pulse_ms]
            steady = power_mw * HEATER_K_PER_MW
            start_k = self.heat_k(now)
            self._heat_k = steady + (start_k - steady) * math.exp(-duration / HEATER_TAU_MS)
            self._heat_at_ms = now + duration
            self._result = words_with_crc(*self._words(self._heat_k))
            self._busy_until_ms = now + duration
        elif command == READ_SERIAL:
            self._result = words_with_crc(self.serial >> 16, self.serial & 0xFFFF)
            self._busy_until_ms = now + SERIAL_MS
        elif command == SOFT_RESET:
            self._busy_until_ms = now + SOFT_RESET_MS
        else:
            return 0  # not a command: NACKed
        return 1  # the command byte; anything after it is not acknowledged

    def read(self, n: int) -> bytes:
        data = self._result or b""
        self._result = None  # read once, even if the host stopped early
        self.result_reads += 1
        return (data + b"\xff" * n)[:n]  # past the result the bus floats high

    def _words(self, heat_k: float) -> tuple[int, int]:
        if self.stale and self._last_words is not None:
            return self._last_words
        world = self.measure()
        air_c = world["temperature_c"]
        die_c = air_c + heat_k
        rh = world["humidity_rh"]
        if heat_k:
            # The same water vapour at the warmer die: RH scales with the saturation pressure.
            rh *= _saturation_hpa(air_c) / _saturation_hpa(die_c)
        t_c = self.temperature.apply(die_c, self._noise)
        rh = self.humidity.apply(rh, self._noise)
        self._last_words = (temperature_word(t_c), humidity_word(rh))
        return self._last_words

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "serial": f"{self.serial:08x}",
            "busy": self.busy,
            "heat_k": round(self.heat_k(), 3),
            "result_reads": self.result_reads,
        }


def attach(
    vb: Any,
    bus: int,
    addr: int,
    serial: int = DEFAULT_SERIAL,
    temperature: dict[str, float] | None = None,
    humidity: dict[str, float] | None = None,
    noise_seed: int = 0,
) -> Sht4x:
    """The MODELS factory: `attach model=sht4x bus=i2c0 [addr=0x45] [serial=N]
    [temperature={"offset": 0.5, "gain": 1.02, "curve": 0.001, "pivot": 25}] [humidity=...]
    [noise_seed=N]` (deviations in °C and %RH: a part's error, for calibration tests)."""
    return Sht4x(
        vb.clock.now_ms,
        address=addr or 0x44,
        serial=int(serial),
        temperature=Deviation(**(temperature or {})),
        humidity=Deviation(**(humidity or {})),
        noise_seed=int(noise_seed),
    )
