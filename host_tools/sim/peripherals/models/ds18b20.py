"""Maxim (Analog Devices) DS18B20 1-Wire thermometer, at the level of its function commands.

    probe = bus.attach(Ds18b20(clock.now_ms, serial=0x1234))   # ROM 28 34 12 00 00 00 00 <crc>
    bus.reset(); bus.write_byte(0xCC); bus.write_byte(0x44)     # SKIP ROM, CONVERT T
    bus.read_bit()                                              # 0 while converting (750 ms)

The ROM layer (READ, MATCH, SKIP, SEARCH, ALARM SEARCH) is OneWireDevice's. Behaviour follows
the DS18B20 datasheet (19-7487 Rev 6, 7/19; section, table and figure titles cited where used):
- "DS18B20 Function Commands": CONVERT T (44h), WRITE SCRATCHPAD (4Eh: TH, TL, configuration),
  READ SCRATCHPAD (BEh: 9 bytes, byte 8 the CRC of bytes 0..7), COPY SCRATCHPAD (48h: TH, TL,
  configuration to EEPROM in t_WR = 10 ms max), RECALL E2 (B8h), READ POWER SUPPLY (B4h: the
  next read slot is 0 from a parasite-powered part, 1 from one on VDD). Other bytes are ignored;
- "Figure 9. DS18B20 Memory Map": at power-on the temperature register holds 0550h (+85 °C,
  "Table 1. Temperature/Data Relationship"), TH, TL and configuration are loaded from EEPROM
  (factory 4Bh 46h 7Fh: +75 °C, +70 °C, 12 bits); reserved bytes 5 and 7 read FFh and 10h.
  Byte 6 is not given there: 0Ch, what genuine parts read at power-up (cpetrich/
  counterfeit_DS18B20, a study of over 1000 parts). The EEPROM survives power cycles, the
  scratchpad does not;
- "Configuration Register": only R1 R0 (bits 6..5) can be written; bit 7 reads 0, bits 4..0
  read 1. Conversion time by resolution is t_CONV max ("Electrical Characteristics"):
  93.75, 187.5, 375, 750 ms at 9, 10, 11, 12 bits. The register changes when it ends, so
  reading the scratchpad before then gives the previous value (at power-on, 85 °C);
- "Operation—Measuring Temperature": at 9..11 bits the low 3..1 register bits are undefined.
  This model leaves them as they were (the previous conversion's, or the power-on value's
  zeros): so they are stale, not noise, and a driver must clear them;
- an externally powered part answers read slots after CONVERT T (and COPY SCRATCHPAD) with 0
  until it is done, then 1 ("Convert T [44h]"). A parasite-powered part draws its supply from
  the bus, which must be held high for the whole conversion or EEPROM copy: any reset or time
  slot on the bus meanwhile (to any device) takes its supply away, and the model then goes
  through a power-on reset (conversion lost, register back to 85 °C, copy not done). That is
  the classic "85 °C" failure of parasite power on silicon;
- "Operation—Alarm Signaling": after each conversion the alarm flag is set when the integer
  part of the temperature (register bits 11..4) is >= TH or <= TL (signed); ALARM SEARCH then
  finds the part;
- the temperature is the environment's `quantity` (`temperature_c`, or `probe_temperature_c`
  for a probe in soil or water) through a per-part `Deviation`, rounded at the resolution and
  saturated at what the 12-bit register holds (-128..+127.9375 °C).

Faults come from the bus: detach (no presence pulse, no part in a search), corrupt (bit flips
in what the part sends: scratchpad CRC mismatches), stuck (the line held low: presence, then
every bit reads 0), stale (a conversion leaves the register as it was).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from ..deviation import Deviation
from ..environment import Environment
from ..onewire import OneWireDevice, crc8_maxim

FAMILY = 0x28  # "64-Bit Lasered ROM Code"

# "DS18B20 Function Commands".
CONVERT_T = 0x44
WRITE_SCRATCHPAD = 0x4E
READ_SCRATCHPAD = 0xBE
COPY_SCRATCHPAD = 0x48
RECALL_E2 = 0xB8
READ_POWER_SUPPLY = 0xB4

# "Electrical Characteristics": t_CONV max by resolution, and t_WR for the EEPROM.
CONVERSION_MS = {9: 93.75, 10: 187.5, 11: 375.0, 12: 750.0}
COPY_MS = 10.0

POWER_ON_T16 = 0x0550  # "Table 1": the power-on reset value of the temperature register
FACTORY_EEPROM = (0x4B, 0x46, 0x7F)  # TH +75 °C, TL +70 °C, configuration: 12 bits
RESERVED = (0xFF, 0x0C, 0x10)  # scratchpad bytes 5, 6, 7 (see the module docstring)
CONFIG_FIXED = 0x1F  # configuration bits 4..0 read 1, bit 7 reads 0
CONFIG_R = 0x60  # R1 R0

# Our made-up serial, in the 28-xx-xx-xx-xx-00-00-crc pattern of genuine parts' ROMs.
DEFAULT_SERIAL = 0x0000_9C3A_51E2

TEMPERATURE_KEYS = ("temperature_c", "probe_temperature_c")
_T16_MIN = -2048  # the 12-bit register's span, sign-extended to 16 bits: -128 °C ..
_T16_MAX = 2047  # .. +127.9375 °C


def resolution_of(config: int) -> int:
    """Bits of resolution selected by a configuration register value (R1 R0 + 9)."""
    return 9 + ((config & CONFIG_R) >> 5)


def config_for(resolution: int) -> int:
    """The configuration register value selecting `resolution` bits."""
    if resolution not in CONVERSION_MS:
        raise ValueError(f"a DS18B20 resolution is 9..12 bits, got {resolution!r}")
    return ((resolution - 9) << 5) | CONFIG_FIXED


def t16_of(celsius: float, resolution: int = 12, previous: int = 0) -> int:
    """The signed temperature register for `celsius` at `resolution`: 1/16 °C per count,
    rounded at the resolution, saturated at the register's span; the undefined low bits
    (12 - resolution of them) are kept from `previous`."""
    step = 1 << (12 - resolution)
    counts = math.floor(celsius * 16 / step + 0.5) * step
    counts = max(_T16_MIN, min(_T16_MAX & -step, counts))
    return counts | (previous & (step - 1))


def celsius_of(t16: int) -> float:
    """°C of a signed temperature register value."""
    return t16 / 16


def _signed8(value: int) -> int:
    return value - 256 if value & 0x80 else value


class Ds18b20(OneWireDevice):
    """A DS18B20: timed conversions, scratchpad with CRC, EEPROM, power-supply signalling."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        serial: int = DEFAULT_SERIAL,
        quantity: str = "temperature_c",
        parasite: bool = False,
        temperature: Deviation = Deviation(),
        noise_seed: int = 0,
        eeprom: tuple[int, int, int] = FACTORY_EEPROM,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(FAMILY, serial, env=env, name=name or "ds18b20")
        if quantity not in TEMPERATURE_KEYS:
            allowed = ", ".join(TEMPERATURE_KEYS)
            raise ValueError(f"a DS18B20 measures one of {allowed}, not {quantity!r}")
        if len(eeprom) != 3 or not all(0 <= b <= 0xFF for b in eeprom):
            raise ValueError(f"the EEPROM holds 3 bytes (TH, TL, configuration), got {eeprom!r}")
        self._now_ms = now_ms
        self.quantity = quantity
        self.parasite = bool(parasite)
        self.temperature = temperature
        self._noise = random.Random(noise_seed)
        th, tl, config = eeprom
        self.eeprom = bytearray((th, tl, (config & CONFIG_R) | CONFIG_FIXED))
        # Counted for tests: conversions started, scratchpads sent and written, EEPROM writes,
        # brown-outs.
        self.conversions = 0
        self.scratchpad_reads = 0
        self.scratchpad_writes = 0
        self.eeprom_writes = 0
        self.brownouts = 0
        self._power_on()

    # -- power -----------------------------------------------------------------------------

    def reset(self) -> None:
        super().reset()  # the frozen world of a stale fault is dropped too
        self._power_on()

    def _power_on(self) -> None:
        self.t16 = POWER_ON_T16
        self.th, self.tl, self.config = self.eeprom  # the recall done at every power-up
        self._alarm = False
        self._last_t16: int | None = None  # the last conversion's result, for a stale fault
        self._conv_end: float | None = None
        self._conv_t16 = 0
        self._copy_end: float | None = None
        self._copy_data = b""
        self._cmd: int | None = None
        self._written = 0  # WRITE SCRATCHPAD data bytes received
        self._supply_slot = False
        self._silent = False  # browned out mid-transaction: deaf until the next reset pulse

    def _brown_out(self) -> None:
        self.brownouts += 1
        self.reset()

    @property
    def converting(self) -> bool:
        self._settle()
        return self._conv_end is not None

    @property
    def copying(self) -> bool:
        self._settle()
        return self._copy_end is not None

    def _starved(self) -> bool:
        # A parasite-powered part busy converting or writing its EEPROM needs the bus high.
        return self.parasite and (self.converting or self.copying)

    def _settle(self) -> None:
        # Finish what has had its time (the chip does it on its own clock; we do it lazily).
        now = self._now_ms()
        if self._conv_end is not None and now >= self._conv_end:
            self._conv_end = None
            self.t16 = self._conv_t16
            whole = self.t16 >> 4  # bits 11..4: the comparison uses whole degrees
            self._alarm = whole >= _signed8(self.th) or whole <= _signed8(self.tl)
        if self._copy_end is not None and now >= self._copy_end:
            self._copy_end = None
            self.eeprom[:] = self._copy_data
            self.eeprom_writes += 1

    # -- the bus -----------------------------------------------------------------------------

    def bus_reset(self) -> bool:
        self._settle()
        if self._starved():
            self._brown_out()  # the reset pulse holds the line low for 480 µs and more
        self._silent = False
        return super().bus_reset()

    def slot(self, written: int | None) -> int:
        self._settle()
        if self._starved():
            self._brown_out()
            self._silent = True
        if self._silent:
            return 1
        return super().slot(written)

    def on_bus_reset(self) -> None:
        self._cmd = None
        self._written = 0
        self._supply_slot = False

    def on_byte(self, value: int) -> None:
        if self._cmd is None:
            self._cmd = value
            self._function(value)
        elif self._cmd == WRITE_SCRATCHPAD and self._written < 3:
            if self._written == 0:
                self.scratchpad_writes += 1
                self.th = value
            elif self._written == 1:
                self.tl = value
            else:
                self.config = (value & CONFIG_R) | CONFIG_FIXED
            self._written += 1

    def _function(self, command: int) -> None:
        now = self._now_ms()
        if command == CONVERT_T:
            resolution = resolution_of(self.config)
            self._conv_t16 = self._convert(resolution)
            self._conv_end = now + CONVERSION_MS[resolution]
            self.conversions += 1
        elif command == READ_SCRATCHPAD:
            self.scratchpad_reads += 1
            self.send(self.scratchpad())
        elif command == COPY_SCRATCHPAD:
            self._copy_data = bytes((self.th, self.tl, self.config))
            self._copy_end = now + COPY_MS
        elif command == RECALL_E2:
            self.th, self.tl, self.config = self.eeprom
        elif command == READ_POWER_SUPPLY:
            self._supply_slot = True

    def idle_bit(self) -> int:
        if self._supply_slot:
            self._supply_slot = False
            return 0 if self.parasite else 1
        if self._cmd in (CONVERT_T, COPY_SCRATCHPAD) and (self.converting or self.copying):
            return 0  # busy (external power; a parasite part has browned out by now)
        return 1

    def alarm(self) -> bool:
        self._settle()
        return self._alarm

    # -- the chip ------------------------------------------------------------------------------

    def scratchpad(self) -> bytes:
        """The 9 bytes READ SCRATCHPAD sends (before any corruption on the wire)."""
        self._settle()
        t = self.t16 & 0xFFFF
        body = bytes((t & 0xFF, t >> 8, self.th, self.tl, self.config, *RESERVED))
        return body + bytes([crc8_maxim(body)])

    def _convert(self, resolution: int) -> int:
        if self.stale and self._last_t16 is not None:
            return self.t16  # stopped converting: the register keeps what it holds
        true_c = self.measure()[self.quantity]
        celsius = self.temperature.apply(true_c, self._noise)
        self._last_t16 = t16_of(celsius, resolution, previous=self.t16)
        return self._last_t16

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "quantity": self.quantity,
            "parasite": self.parasite,
            "resolution": resolution_of(self.config),
            "scratchpad": self.scratchpad().hex(),
            "eeprom": self.eeprom.hex(),
            "converting": self.converting,
            "conversions": self.conversions,
            "scratchpad_reads": self.scratchpad_reads,
            "scratchpad_writes": self.scratchpad_writes,
            "eeprom_writes": self.eeprom_writes,
            "brownouts": self.brownouts,
        }


def attach(vb: Any, pin: int, addr: int, **options: Any) -> Ds18b20:
    """The MODELS factory: `addr` is the 48-bit serial (0: DEFAULT_SERIAL); options are
    `quantity`, `parasite`, `eeprom` (3 bytes as a list), `noise_seed`, and the Deviation's
    `offset`, `gain`, `noise`, `curve`, `pivot` (JSON numbers) for calibration tests."""
    fields = ("offset", "gain", "noise", "curve", "pivot")
    deviation = Deviation(**{k: float(options.pop(k)) for k in fields if k in options})
    if "eeprom" in options:
        options["eeprom"] = tuple(options["eeprom"])
    return Ds18b20(vb.clock.now_ms, serial=addr or DEFAULT_SERIAL, temperature=deviation, **options)
