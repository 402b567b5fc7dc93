"""Sensirion SCD41 CO2, temperature and humidity sensor, at the level of its commands.

    scd = bus.attach(Scd41(clock.now_ms))           # 0x62
    bus.writeto(0x62, b"\\x21\\x9d")                  # measure_single_shot ...
    bus.writeto(0x62, b"\\xe4\\xb8")                  # ... I2CNack: no command for 5 s
    bus.writeto(0x62, b"\\xec\\x05")                  # after 5 s: read_measurement, then
    bus.readfrom(0x62, 9)                           # CO2, T, RH words, each with its CRC

Behaviour follows the Sensirion SCD4x datasheet (version 1.3, September 2022; section and table
titles cited where used):
- 16-bit commands ("SCD4x Command Overview", Table 9); an argument is a word and its CRC-8
  ("Data type & length": mandatory in write direction). A wrong CRC is not acknowledged and the
  command is dropped (how Sensirion's newer sensors signal it; the datasheet does not say). An
  unknown command, or one the chip does not take in its state, has its second byte NACKed;
- while a command executes (Table 9's maximum times) the chip acknowledges no header at all:
  "commands must not be sent while a previous command is being processed", and Sensirion's
  support confirms the chip does not respond while measuring (raspberry-pi-i2c-scd4x#6). A read
  header with no reply waiting is NACKed too ("read_measurement": "If no data is available in
  the buffer, the sensor returns a NACK");
- power-up takes 1000 ms ("Power-Up and Communication Start"); the settings (temperature offset,
  altitude, ASC) then come from the EEPROM into RAM, and only persist_settings (or a factory
  reset) writes the EEPROM (counted in `eeprom_writes`). The ambient pressure is RAM only. The
  forced-recalibration history sits in its own EEPROM and survives power-off ("persist_settings":
  "field calibration history (i.e. FRC and ASC) is automatically stored in a separate EEPROM");
- a single shot's result waits in a buffer that read_measurement empties (read once);
  get_data_ready_status answers 0x8006 then, 0x8000 otherwise (only the 11 low bits are
  specified; 0x8000 is what idle parts answer, raspberry-pi-i2c-scd4x#6). The RHT-only shot
  reports CO2 0. Periodic and low-power periodic modes measure every 5 s / 30 s and take only the
  four commands Table 9 marks "During meas.";
- CO2: an NDIR (photoacoustic) cell counts molecules, so the uncompensated reading is the true
  mole fraction times actual / assumed pressure. The assumed pressure is set_ambient_pressure's,
  else the ISA standard atmosphere at set_sensor_altitude's height (1013.25 hPa at 0 m; the
  datasheet does not give Sensirion's formula). Then a per-part `Deviation` and the FRC offset.
  perform_forced_recalibration sets that offset so the last reading becomes the reference,
  returns the correction + 0x8000, or 0xFFFF when nothing was measured since power-up;
- temperature offset ("set_temperature_offset"): the die runs `self_heating_k` above the air; the
  chip reports die - offset, and the relative humidity of the air's vapour at that reported
  temperature (the offset "improves the accuracy of the relative humidity and temperature
  output"). Factory offset 4 C; a model part self-heats 0 K by default (single shots);
- the first single shot after power-up or wake_up "should be discarded": the datasheet gives no
  figure, so it is as good as any other unless `first_shot_co2_ppm` says what it reports;
- power_down puts the chip to sleep; any header then wakes it (20 ms) without being
  acknowledged, as the wake_up command is not (also seen on ESP32: arduino-i2c-scd4x#53);
- ASC needs days of uninterrupted operation: its setting is kept but it corrects nothing here.

Faults come from the bus as for every model: detach (NACK), corrupt (bit flips, so CRC
mismatches), stuck (bus timeout), stale (the last words again, whatever the world does).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..deviation import Deviation
from ..environment import Environment
from ..i2c import I2CDevice

# The Sensirion conventions the SHT4x model already has: CRC-8, CRC after each word, and the
# same temperature word (-45 + 175 * word / 65535).
from .sht4x import crc8, temperature_word, words_with_crc

# Table 9 "SCD4x Command Overview": code -> (name, max. execution time in ms, argument words).
COMMANDS: dict[int, tuple[str, float, int]] = {
    0x21B1: ("start_periodic_measurement", 0.0, 0),
    0xEC05: ("read_measurement", 1.0, 0),
    0x3F86: ("stop_periodic_measurement", 500.0, 0),
    0x241D: ("set_temperature_offset", 1.0, 1),
    0x2318: ("get_temperature_offset", 1.0, 0),
    0x2427: ("set_sensor_altitude", 1.0, 1),
    0x2322: ("get_sensor_altitude", 1.0, 0),
    0xE000: ("set_ambient_pressure", 1.0, 1),
    0x362F: ("perform_forced_recalibration", 400.0, 1),
    0x2416: ("set_automatic_self_calibration_enabled", 1.0, 1),
    0x2313: ("get_automatic_self_calibration_enabled", 1.0, 0),
    0x21AC: ("start_low_power_periodic_measurement", 0.0, 0),
    0xE4B8: ("get_data_ready_status", 1.0, 0),
    0x3615: ("persist_settings", 800.0, 0),
    0x3682: ("get_serial_number", 1.0, 0),
    0x3639: ("perform_self_test", 10000.0, 0),
    0x3632: ("perform_factory_reset", 1200.0, 0),
    0x3646: ("reinit", 20.0, 0),
    0x219D: ("measure_single_shot", 5000.0, 0),
    0x2196: ("measure_single_shot_rht_only", 50.0, 0),
    0x36E0: ("power_down", 1.0, 0),
    0x36F6: ("wake_up", 20.0, 0),
}
CODES = {name: code for code, (name, _, _) in COMMANDS.items()}
# Table 9's "During meas." column: all a periodic measurement lets through.
DURING_PERIODIC = frozenset({0xEC05, 0x3F86, 0xE000, 0xE4B8})
PERIODIC_MS = {0x21B1: 5000.0, 0x21AC: 30000.0}  # signal update intervals

POWER_UP_MS = 1000.0  # "Power-Up and Communication Start"
WAKE_UP_MS = 20.0  # Table 9, wake_up
DATA_READY = 0x8006
DATA_NOT_READY = 0x8000
FRC_ZERO = 0x8000
FRC_FAILED = 0xFFFF
FACTORY_OFFSET_C = 4.0  # "set_temperature_offset": "By default, the temperature offset is 4 C"
# The datasheet's get_serial_number example: 0xf896 0x9f07 0x3bbe, "273'325'796'834'238".
DEFAULT_SERIAL = 0xF896_9F07_3BBE

_WORD_MAX = 0xFFFF


def humidity_word(rh: float) -> int:
    """The inverse of RH = 100 * word / (2^16 - 1), RH clamped to 0..100."""
    return _clamp(round(max(0.0, min(100.0, rh)) * _WORD_MAX / 100.0))


def offset_word(celsius: float) -> int:
    """set_temperature_offset's word: offset * (2^16 - 1) / 175."""
    return _clamp(round(celsius * _WORD_MAX / 175.0))


def pressure_at_altitude(metres: float) -> float:
    """ISA standard atmosphere (troposphere): 1013.25 hPa at sea level."""
    return 1013.25 * (1.0 - 2.25577e-5 * metres) ** 5.25588


def _clamp(value: int) -> int:
    return max(0, min(_WORD_MAX, value))


def _saturation_hpa(celsius: float) -> float:
    # Magnus formula over water (Sonntag 1990 coefficients).
    return 6.112 * math.exp(17.62 * celsius / (243.12 + celsius))


@dataclasses.dataclass
class Settings:
    """What persist_settings stores: the words the set_ commands took."""

    temperature_offset: int = offset_word(FACTORY_OFFSET_C)
    altitude_m: int = 0
    asc: int = 1


class Scd41(I2CDevice):
    """An SCD41: single shots, periodic modes, compensation settings, EEPROM, FRC, sleep."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        address: int = 0x62,
        serial: int = DEFAULT_SERIAL,
        co2: Deviation = Deviation(),
        temperature: Deviation = Deviation(),
        humidity: Deviation = Deviation(),
        self_heating_k: float = 0.0,
        first_shot_co2_ppm: float | None = None,
        self_test_status: int = 0,
        noise_seed: int = 0,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(address, env=env, name=name or "scd41")
        if not 0 <= serial < 1 << 48:
            raise ValueError(f"an SCD4x serial number is 48 bits, got {serial:#x}")
        self._now_ms = now_ms
        self.serial = serial
        self.co2 = co2
        self.temperature = temperature
        self.humidity = humidity
        self.self_heating_k = self_heating_k
        self.first_shot_co2_ppm = first_shot_co2_ppm
        self.self_test_status = self_test_status
        self._noise = random.Random(noise_seed)
        # Non-volatile: the settings EEPROM and the field-calibration history.
        self.eeprom = Settings()
        self.frc_offset_ppm = 0.0
        self.eeprom_writes = 0
        self.commands: Counter[str] = Counter()  # commands taken, by name, for tests
        self.result_reads = 0
        # Attached to a live board: already past its power-up.
        self._power_up(ready_at_ms=float("-inf"))

    @classmethod
    def from_options(cls, now_ms: Callable[[], float], address: int, **options: Any) -> Scd41:
        """A part from the attach command's JSON options: <q>_offset/_gain/_noise/_curve/_pivot
        for q in co2, t, rh (a `Deviation` each), and the keyword arguments of the class."""
        deviations: dict[str, dict[str, float]] = {"co2": {}, "t": {}, "rh": {}}
        for key in list(options):
            q, _, field = key.rpartition("_")
            if q in deviations and field in ("offset", "gain", "noise", "curve", "pivot"):
                deviations[q][field] = float(options.pop(key))
        if isinstance(options.get("serial"), str):
            options["serial"] = int(options["serial"], 16)
        return cls(
            now_ms,
            address=address or 0x62,
            co2=Deviation(**deviations["co2"]),
            temperature=Deviation(**deviations["t"]),
            humidity=Deviation(**deviations["rh"]),
            **options,
        )

    # -- state -----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._now_ms() < self._busy_until_ms

    @property
    def assumed_pressure_hpa(self) -> float:
        """The pressure the CO2 reading is compensated for."""
        if self.ambient_pressure_hpa is not None:
            return float(self.ambient_pressure_hpa)
        return pressure_at_altitude(self.ram.altitude_m)

    def reset(self) -> None:
        # Power-on: idle after 1000 ms, settings from the EEPROM; RAM and buffers are gone.
        super().reset()
        self._power_up(ready_at_ms=self._now_ms() + POWER_UP_MS)

    def _power_up(self, ready_at_ms: float) -> None:
        self.ram = dataclasses.replace(self.eeprom)
        self.ambient_pressure_hpa: int | None = None
        self.mode = "idle"  # idle | periodic | sleep
        self._busy_until_ms = ready_at_ms
        self._interval_ms = 0.0
        self._next_sample_ms = 0.0
        self._result: bytes | None = None
        self._result_is_measurement = False
        self._buffer: bytes | None = None  # the measurement waiting for read_measurement
        self._measured = False  # a CO2 measurement since power-up: FRC needs one
        self.first_shot = True
        self._last_words: tuple[int, int, int] | None = None
        self._last_co2 = 0

    # -- the bus -----------------------------------------------------------------------------

    def start(self, is_read: bool) -> bool:
        now = self._now_ms()
        self._tick(now)
        if now < self._busy_until_ms:
            return False
        if self.mode == "sleep":
            # Addressed while asleep: it wakes, acknowledging nothing.
            self.mode = "idle"
            self.first_shot = True
            self._busy_until_ms = now + WAKE_UP_MS
            return False
        return not (is_read and self._result is None)

    def write(self, data: bytes) -> int:
        if len(data) < 2:
            return len(data)  # half a command: nothing happens
        code = int.from_bytes(data[:2], "big")
        spec = COMMANDS.get(code)
        if spec is None or code == 0x36F6:
            return 1  # unknown, or wake_up to an awake chip: never acknowledged
        if self.mode == "periodic" and code not in DURING_PERIODIC:
            return 1
        name, duration_ms, args = spec
        arg = None
        if args:
            if len(data) < 5:
                return len(data)  # no complete argument: dropped
            if crc8(data[2:4]) != data[4]:
                return 4  # the CRC byte is NACKed, the command dropped
            arg = int.from_bytes(data[2:4], "big")
        now = self._now_ms()
        self._result = None  # a new command discards an unread reply
        self._result_is_measurement = False
        self.commands[name] += 1
        self._busy_until_ms = now + duration_ms
        self._execute(code, arg, now)
        return 5 if args else 2

    def read(self, n: int) -> bytes:
        data = self._result or b""
        if self._result_is_measurement:
            self._buffer = None  # "the buffer is emptied upon read-out"
        self._result = None
        self._result_is_measurement = False
        self.result_reads += 1
        return (data + b"\xff" * n)[:n]  # past the reply the bus floats high

    def _execute(self, code: int, arg: int | None, now: float) -> None:
        name = COMMANDS[code][0]
        if code in (0x219D, 0x2196):  # the single shots
            self._buffer = words_with_crc(*self._sample(rht_only=code == 0x2196))
        elif code == 0xEC05:
            if self._buffer is not None:
                self._result = self._buffer
                self._result_is_measurement = True
        elif code == 0xE4B8:
            ready = DATA_READY if self._buffer is not None else DATA_NOT_READY
            self._result = words_with_crc(ready)
        elif code in PERIODIC_MS:
            self.mode = "periodic"
            self._interval_ms = PERIODIC_MS[code]
            self._next_sample_ms = now + self._interval_ms
        elif code == 0x3F86:
            self.mode = "idle"
        elif code == 0x3682:
            s = self.serial
            self._result = words_with_crc(s >> 32, (s >> 16) & _WORD_MAX, s & _WORD_MAX)
        elif code == 0x362F:
            self._result = words_with_crc(self._recalibrate(arg or 0))
        elif code == 0x3639:
            self._result = words_with_crc(self.self_test_status)
        elif code == 0x36E0:
            self.mode = "sleep"
            self._buffer = None
        else:
            self._settings(name, arg)

    def _settings(self, name: str, arg: int | None) -> None:
        ram = self.ram
        if name == "set_temperature_offset":
            ram.temperature_offset = arg or 0
        elif name == "get_temperature_offset":
            self._result = words_with_crc(ram.temperature_offset)
        elif name == "set_sensor_altitude":
            # "setting a sensor altitude ... overrides any pressure compensation based on a
            # previously set ambient pressure" (and the reverse, "set_ambient_pressure").
            ram.altitude_m = arg or 0
            self.ambient_pressure_hpa = None
        elif name == "get_sensor_altitude":
            self._result = words_with_crc(ram.altitude_m)
        elif name == "set_ambient_pressure":
            self.ambient_pressure_hpa = arg
        elif name == "set_automatic_self_calibration_enabled":
            ram.asc = 1 if arg else 0
        elif name == "get_automatic_self_calibration_enabled":
            self._result = words_with_crc(ram.asc)
        elif name == "persist_settings":
            self.eeprom = dataclasses.replace(ram)
            self.eeprom_writes += 1
        elif name == "perform_factory_reset":
            self.eeprom = Settings()
            self.frc_offset_ppm = 0.0
            self.eeprom_writes += 1
            self.ram = dataclasses.replace(self.eeprom)
        elif name == "reinit":
            self.ram = dataclasses.replace(self.eeprom)

    def _tick(self, now: float) -> None:
        # Periodic modes: the latest measurement due by now replaces the buffer's.
        if self.mode != "periodic" or now < self._next_sample_ms:
            return
        missed = math.floor((now - self._next_sample_ms) / self._interval_ms)
        self._next_sample_ms += (missed + 1) * self._interval_ms
        self._buffer = words_with_crc(*self._sample(rht_only=False))

    def _recalibrate(self, target_ppm: int) -> int:
        # "perform_forced_recalibration": the offset that makes the last reading the target.
        if not self._measured:
            return FRC_FAILED
        correction = target_ppm - self._last_co2
        self.frc_offset_ppm += correction
        return max(0, min(FRC_FAILED - 1, correction + FRC_ZERO))

    def _sample(self, *, rht_only: bool) -> tuple[int, int, int]:
        if self.stale and self._last_words is not None:
            return self._last_words
        world = self.measure()
        air_c = world["temperature_c"]
        offset_c = self.ram.temperature_offset * 175.0 / _WORD_MAX
        reported_c = air_c + self.self_heating_k - offset_c
        # The same vapour, as relative humidity at the temperature the chip reports.
        rh = world["humidity_rh"] * _saturation_hpa(air_c) / _saturation_hpa(reported_c)
        t_c = self.temperature.apply(air_c + self.self_heating_k, self._noise) - offset_c
        rh = self.humidity.apply(rh, self._noise)
        co2 = world["co2_ppm"] * world["pressure_hpa"] / self.assumed_pressure_hpa
        co2 = self.co2.apply(co2, self._noise) + self.frc_offset_ppm
        if rht_only:
            co2 = 0.0  # "measure_single_shot_rht_only": "CO2 output is returned as 0 ppm"
        elif self.first_shot and self.first_shot_co2_ppm is not None:
            co2 = self.first_shot_co2_ppm
        words = (_clamp(round(co2)), temperature_word(t_c), humidity_word(rh))
        if not rht_only:
            self.first_shot = False
            self._measured = True
            self._last_co2 = words[0]
        self._last_words = words
        return words

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "serial": f"{self.serial:012x}",
            "busy": self.busy,
            "mode": self.mode,
            "settings": {
                "temperature_offset_c": round(self.ram.temperature_offset * 175 / _WORD_MAX, 3),
                "altitude_m": self.ram.altitude_m,
                "asc": bool(self.ram.asc),
                "ambient_pressure_hpa": self.ambient_pressure_hpa,
            },
            "eeprom": dataclasses.asdict(self.eeprom),
            "eeprom_writes": self.eeprom_writes,
            "frc_offset_ppm": self.frc_offset_ppm,
            "first_shot": self.first_shot,
            "commands": dict(self.commands),
            "result_reads": self.result_reads,
        }


def attach(vb: Any, bus: int, addr: int, **options: Any) -> Scd41:
    """The `attach model=scd41` factory (host_tools.sim.commands.MODELS): options as in
    `Scd41.from_options`, on the board's clock."""
    return Scd41.from_options(vb.clock.now_ms, addr, **options)
