"""Bosch BME280 humidity, pressure and temperature sensor, at the level of its registers.

    bme = bus.attach(Bme280(clock.now_ms))          # 0x76, the trimming of a real part
    bus.writeto(0x76, b"\\xf2\\x01\\xf4\\x25")          # ctrl_hum x1, then ctrl_meas x1/x1 forced
    bus.readfrom_mem(0x76, 0xF3, 1)                 # status: measuring (bit 3) for 9.3 ms
    bus.readfrom_mem(0x76, 0xF7, 8)                 # press, temp, hum, latched at the end

Behaviour follows the Bosch BME280 datasheet, BST-BME280-DS002 revision 1.6 (section titles cited):
- "5.3 Memory map": chip id 0x60 at 0xD0, reset register 0xE0 (0xB6 = soft reset), ctrl_hum
  0xF2, status 0xF3, ctrl_meas 0xF4, config 0xF5, data 0xF7..0xFE resetting to 0x80000 (T, P)
  and 0x8000 (H), the trimming parameters at 0x88..0xA1 and 0xE1..0xE7 (read-only NVM);
- "6.2 I2C interface": a write is register/data pairs; reads auto-increment (burst read);
- "1.1 General electrical specification": after power-on or a soft reset the chip does not
  answer for its start-up time (2 ms) and then sleeps with every register at its reset value;
- "3.3 Sensor modes": forced mode measures once, `measuring` (status bit 3) set for the
  measurement time of "9.1 Measurement time" (maximum by default, `typical_timing=True` for the
  typical one), then the data registers take the result at once and the mode returns to sleep.
  Until then they keep the previous result (a read in between gets old data, as the chip's
  shadowing does). A ctrl_meas write during a measurement waits for its end and, until then,
  further ctrl_meas and ctrl_hum writes are ignored ("3.3.1 Sensor mode transitions"). Normal
  mode cycles measurement and t_standby (0xF5 t_sb);
- "5.4.3 ctrl_hum": osrs_h takes effect only at the next ctrl_meas write;
- "3.4 Measurement flow": a skipped measurement (osrs 0) leaves 0x80000 / 0x8000; without the
  IIR filter T and P have 16 + (osrs - 1) bits (the low bits read 0), with it 20 bits;
- "3.4.4 IIR filter": T and P (not H) pass through filtered = (old * (c - 1) + new) / c across
  measurements, forced or normal; writing config resets it (the next value passes unchanged).

Values: the environment's `temperature_c`, `humidity_rh`, `pressure_hpa` through a
`Deviation` each (noise given at x1, divided by sqrt(oversampling)), turned into the ADC words
that the driver's compensation ("4.2.3 Compensation formulas": T int32, P int32 as in appendix
"8.2", H int32) maps back to them, by bisection on those monotonic integer formulas.

Faults come from the bus as for every model: detach (NACK), corrupt (bit flips: the chip has no
CRC, so the host sees wrong bytes), stuck (bus timeout), stale (the last words again).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..deviation import Deviation
from ..environment import Environment
from ..i2c import RegisterDevice

ADDRESSES = (0x76, 0x77)  # SDO to GND, SDO to VDDIO

# "5.3 Memory map".
REG_TRIM_TP = 0x88  # calib00..calib25 (0x88..0xA1)
REG_ID = 0xD0
REG_RESET = 0xE0
REG_TRIM_H = 0xE1  # calib26..calib41 (0xE1..0xF0); dig_H2..dig_H6 in 0xE1..0xE7
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # press_msb, lsb, xlsb, temp_msb, lsb, xlsb, hum_msb, lsb
CHIP_ID = 0x60
SOFT_RESET = 0xB6
MEASURING = 0x08  # status bit 3
SKIPPED_TP = 0x80000
SKIPPED_H = 0x8000
ADC_TP_MAX = 0xFFFFF
ADC_H_MAX = 0xFFFF

START_UP_MS = 2.0  # "1.1": t_startup, time to first communication, maximum
# 5.4.6 config t_sb[2:0] -> standby between normal-mode measurements, ms (Table 27).
STANDBY_MS = (0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 10.0, 20.0)
# filter[2:0] -> IIR coefficient (Table 28); 1 = off. Codes above 4 mean 16.
FILTER_COEFF = (1, 2, 4, 8, 16, 16, 16, 16)

# The trimming NVM of real parts: 0x88..0xA1 (26 bytes) then 0xE1..0xE7 (7 bytes), as read from
# two BME280 boards and published in the test suite of the elixir-sensors/bmp280 library
# (test/bmp280/calibration/bme280_calibration_test.exs, "parse bme280 1/2 calibration").
# Decoded per "4.2.2 Trimming parameter readout" (Table 16), part 1 is dig_T1..3 = 28189, 26285,
# 50; dig_P1..9 = 36635, -10696, 3024, 11092, -241, -7, 12300, -12000, 5000; dig_H1..6 = 75, 338,
# 0, 380, 50, 30. (That library's own decoding swaps 0xE5's nibbles and gives dig_H4 370 and
# dig_H5 60; the datasheet packs dig_H4 = 0xE4 << 4 | 0xE5[3:0], dig_H5 = 0xE6 << 4 | 0xE5[7:4].)
PARTS: dict[int, bytes] = {
    1: bytes(
        [29, 110, 173, 102, 50, 0, 27, 143, 56, 214, 208, 11, 84, 43, 15, 255, 249, 255, 12, 48]
        + [32, 209, 136, 19, 0, 75, 82, 1, 0, 23, 44, 3, 30]
    ),
    2: bytes(
        [137, 110, 105, 104, 50, 0, 69, 145, 172, 214, 208, 11, 201, 31, 169, 255, 249, 255]
        + [172, 38, 10, 216, 189, 16, 0, 75, 138, 1, 0, 15, 40, 3, 30]
    ),
}
NVM_TP_LEN = 26
NVM_LEN = 33


# -- the datasheet's formulas ------------------------------------------------------------------


def trimming(nvm: bytes) -> tuple[int, ...]:
    """dig_T1..T3, dig_P1..P9, dig_H1..H6 from the 33 NVM bytes (Table 16)."""
    if len(nvm) != NVM_LEN:
        raise ValueError(f"BME280 trimming NVM is {NVM_LEN} bytes (0x88..0xA1, 0xE1..0xE7)")

    def word(i: int, signed: bool) -> int:
        return int.from_bytes(nvm[i : i + 2], "little", signed=signed)

    def s8(byte: int) -> int:
        return byte - 256 if byte & 0x80 else byte

    e = nvm[NVM_TP_LEN:]
    return (
        word(0, False),
        word(2, True),
        word(4, True),
        word(6, False),
        *(word(i, True) for i in range(8, 24, 2)),
        nvm[25],  # dig_H1 at 0xA1
        int.from_bytes(e[0:2], "little", signed=True),  # dig_H2
        e[2],  # dig_H3
        s8(e[3]) * 16 | (e[4] & 0x0F),  # dig_H4: 0xE4 [11:4], 0xE5 [3:0]
        s8(e[5]) * 16 | (e[4] >> 4),  # dig_H5: 0xE6 [11:4], 0xE5 [7:4]
        s8(e[6]),  # dig_H6
    )


def t_fine(adc_t: int, trim: Sequence[int]) -> int:
    """BME280_compensate_T_int32's t_fine; the temperature in 0.01 °C is (t_fine*5+128) >> 8."""
    t1, t2, t3 = trim[0:3]
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    return var1 + var2


def pressure_pa_int32(adc_p: int, fine: int, trim: Sequence[int]) -> int:
    """BME280_compensate_P_int32 (appendix "8.2"), in Pa: the variant the driver uses."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = trim[3:12]
    var1 = (fine >> 1) - 64000
    var2 = (((var1 >> 2) * (var1 >> 2)) >> 11) * p6
    var2 = var2 + ((var1 * p5) << 1)
    var2 = (var2 >> 2) + (p4 << 16)
    var1 = (((p3 * (((var1 >> 2) * (var1 >> 2)) >> 13)) >> 3) + ((p2 * var1) >> 1)) >> 18
    var1 = ((32768 + var1) * p1) >> 15
    if var1 == 0:
        return 0
    p = ((1048576 - adc_p) - (var2 >> 12)) * 3125
    p = (p << 1) // var1 if p < 0x80000000 else (p // var1) * 2
    var1 = (p9 * (((p >> 3) * (p >> 3)) >> 13)) >> 12
    var2 = ((p >> 2) * p8) >> 13
    return p + ((var1 + var2 + p7) >> 4)


def pressure_q8_int64(adc_p: int, fine: int, trim: Sequence[int]) -> int:
    """BME280_compensate_P_int64 ("4.2.3"), in Pa as Q24.8 (divide by 256)."""
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = trim[3:12]
    var1 = fine - 128000
    var2 = var1 * var1 * p6
    var2 = var2 + ((var1 * p5) << 17)
    var2 = var2 + (p4 << 35)
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    num = ((p << 31) - var2) * 3125
    p = num // var1 if num >= 0 else -(-num // var1)  # C division truncates toward zero
    var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (p8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (p7 << 4)


def humidity_q10(adc_h: int, fine: int, trim: Sequence[int]) -> int:
    """bme280_compensate_H_int32, %RH in Q22.10 (divide by 1024), clamped to 0..100 %RH."""
    h1, h2, h3, h4, h5, h6 = trim[12:18]
    v = fine - 76800
    v = (((adc_h << 14) - (h4 << 20) - (h5 * v) + 16384) >> 15) * (
        ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    return min(max(v, 0), 419430400) >> 12


def measure_ms(os_t: int, os_p: int, os_h: int, *, typical: bool = False) -> float:
    """ "9.1 Measurement time" for oversampling factors (0 = skipped), typical or maximum."""
    if typical:
        return 1 + 2 * os_t + (2 * os_p + 0.5 if os_p else 0) + (2 * os_h + 0.5 if os_h else 0)
    p = 2.3 * os_p + 0.575 if os_p else 0
    h = 2.3 * os_h + 0.575 if os_h else 0
    return 1.25 + 2.3 * os_t + p + h


def oversampling(code: int) -> int:
    """osrs_x[2:0] -> factor: 0 skipped, 1..5 -> x1..x16; "Others" are x16 too."""
    return 0 if code == 0 else 1 << (min(code, 5) - 1)


def _closest(f: Callable[[int], float], target: float, hi: int, increasing: bool) -> int:
    # The x in 0..hi whose f(x) is nearest `target`, f monotonic: bisection for the first x on
    # the far side of the target, then the nearer of it and its neighbour.
    lo, top = 0, hi
    while lo < top:
        mid = (lo + top) // 2
        if (f(mid) >= target) == increasing:
            top = mid
        else:
            lo = mid + 1
    if lo > 0 and abs(f(lo - 1) - target) <= abs(f(lo) - target):
        return lo - 1
    return lo


class Bme280(RegisterDevice):
    """A BME280: register map, forced and normal mode, IIR filter, timing, a real part's NVM."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        address: int = 0x76,
        nvm: bytes = PARTS[1],
        temperature: Deviation = Deviation(),
        humidity: Deviation = Deviation(),
        pressure: Deviation = Deviation(),
        noise_seed: int = 0,
        typical_timing: bool = False,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        if address not in ADDRESSES:
            raise ValueError(f"a BME280 answers at 0x76 or 0x77 (SDO low/high), not {address:#x}")
        self.trim = trimming(nvm)
        self._now_ms = now_ms
        self.temperature = temperature
        self.humidity = humidity
        self.pressure = pressure
        self.typical_timing = typical_timing
        self._noise = random.Random(noise_seed)
        super().__init__(address, env=env, name=name or "bme280")
        for i, byte in enumerate(nvm[:NVM_TP_LEN]):
            self.define(REG_TRIM_TP + i, byte, writable=False)
        for i, byte in enumerate(nvm[NVM_TP_LEN:]):
            self.define(REG_TRIM_H + i, byte, writable=False)
        self.define(REG_ID, CHIP_ID, writable=False)
        self.define(REG_STATUS, 0, writable=False, on_read=lambda _reg: self._status())
        for reg, value in zip(
            range(REG_DATA, REG_DATA + 8),
            _data_bytes(SKIPPED_TP, SKIPPED_TP, SKIPPED_H),
            strict=True,
        ):
            self.define(reg, value, writable=False)
        self.measurements = 0  # measurements started since the model was made
        self.data_reads = 0  # reads starting at 0xF7, counted for tests of re-reads
        self._power_on()

    # -- state -----------------------------------------------------------------------------

    def _power_on(self) -> None:
        self._up_at = self._now_ms() + START_UP_MS
        self._measure_end: float | None = None  # a measurement running until then
        self._result: tuple[int, int, int] | None = None  # its (adc_P, adc_T, adc_H)
        self._deferred: int | None = None  # a ctrl_meas write waiting for the end
        self._next_cycle: float | None = None  # normal mode: the next measurement's start
        self._osrs_h = 0  # ctrl_hum as latched by the last ctrl_meas write
        self._iir: dict[str, float] = {}  # filter memory, by "t" and "p"
        self._last_adc: tuple[int, int, int] | None = None
        self._addr_next = True

    def reset(self) -> None:
        # Power-on reset (the sensor rail coming on), also what 0xB6 to 0xE0 does.
        super().reset()
        self._power_on()

    @property
    def booting(self) -> bool:
        return self._now_ms() < self._up_at

    @property
    def measuring(self) -> bool:
        self._catch_up()
        return self._measure_end is not None

    @property
    def mode(self) -> int:
        return self.values[REG_CTRL_MEAS] & 0x03

    def _status(self) -> int:
        return MEASURING if self._measure_end is not None else 0

    def _catch_up(self) -> None:
        # Bring the chip up to now: finish measurements that are due, start deferred and
        # normal-mode ones.
        now = self._now_ms()
        while True:
            end = self._measure_end
            if end is not None and now >= end:
                assert self._result is not None
                self._latch(*self._result)
                self._measure_end = self._result = None
                if self._deferred is not None:
                    value, self._deferred = self._deferred, None
                    self._ctrl_meas(value, end)
                elif self.mode == 3:
                    self._next_cycle = end + STANDBY_MS[self.values[REG_CONFIG] >> 5]
                else:
                    self.values[REG_CTRL_MEAS] &= ~0x03  # forced: back to sleep
                continue
            start = self._next_cycle
            if end is None and start is not None and now >= start:
                period = self._measure_time() + STANDBY_MS[self.values[REG_CONFIG] >> 5]
                behind = int((now - start) // period)
                if behind > 32:  # the filter has long settled: skip to the last cycles
                    start += (behind - 32) * period
                self._next_cycle = None
                self._begin(start)
                continue
            return

    # -- registers ---------------------------------------------------------------------------

    def start(self, is_read: bool) -> bool:
        if self.booting:
            return False  # not yet communicating after power-on / soft reset
        self._catch_up()
        self._addr_next = not is_read
        self._read_index = 0
        return True

    def write(self, data: bytes) -> int:
        # "6.2.1 I2C write": register address, data, register address, data, ...; a lone
        # address sets where a following read starts.
        for byte in data:
            if self._addr_next:
                self.pointer = byte
                self._addr_next = False
            else:
                self._addr_next = True
                self._write_reg(self.pointer, byte)
        return len(data)

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == REG_RESET:
            if value == SOFT_RESET:
                self.reset()
        elif reg == REG_CTRL_HUM:
            if self._deferred is None:  # ignored while a mode change waits ("3.3.1")
                self.values[reg] = value & 0x07
        elif reg == REG_CTRL_MEAS:
            if self._measure_end is not None:
                if self._deferred is None:
                    self._deferred = value  # executed at the end of this measurement
            else:
                self._ctrl_meas(value, self._now_ms())
        elif reg == REG_CONFIG and self.mode != 3:
            # (in normal mode "writes to the config register may be ignored": the model does)
            self.values[reg] = value & 0xFD
            self._iir.clear()  # writing the filter setting resets the filter
        # everything else is read-only or reserved: the write is acknowledged and ignored

    def _ctrl_meas(self, value: int, at: float) -> None:
        self.values[REG_CTRL_MEAS] = value
        self._next_cycle = None
        if value & 0x03:  # forced (01, 10) or normal (11): latch ctrl_hum, measure
            self._osrs_h = self.values[REG_CTRL_HUM]
            self._begin(at)

    def _measure_time(self) -> float:
        meas = self.values[REG_CTRL_MEAS]
        return measure_ms(
            oversampling(meas >> 5),
            oversampling((meas >> 2) & 0x07),
            oversampling(self._osrs_h),
            typical=self.typical_timing,
        )

    def _begin(self, at: float) -> None:
        self._result = self._convert()
        self._measure_end = at + self._measure_time()
        self.measurements += 1

    def _latch(self, adc_p: int, adc_t: int, adc_h: int) -> None:
        self.values[REG_DATA : REG_DATA + 8] = _data_bytes(adc_p, adc_t, adc_h)

    # -- the measurement ----------------------------------------------------------------------

    def _convert(self) -> tuple[int, int, int]:
        # The ADC words for the world now: (adc_P, adc_T, adc_H) as they will be latched.
        if self.stale and self._last_adc is not None:
            return self._last_adc
        meas = self.values[REG_CTRL_MEAS]
        os_t, os_p = oversampling(meas >> 5), oversampling((meas >> 2) & 0x07)
        os_h = oversampling(self._osrs_h)
        world = self.measure()
        t_c = self._deviate(self.temperature, world["temperature_c"], os_t)
        rh = self._deviate(self.humidity, world["humidity_rh"], os_h)
        hpa = self._deviate(self.pressure, world["pressure_hpa"], os_p)
        trim = self.trim
        # The sensing elements' words at the true conditions: T first; P and H are found with
        # the t_fine of that word (at the ADC's resolution), as the host will compute it when
        # the filter is off. Only then do T and P pass through the IIR filter, as on the chip.
        adc_t = _closest(lambda a: t_fine(a, trim), t_c * 5120, ADC_TP_MAX, True)
        if os_t:
            adc_t = _quantize(adc_t, meas >> 5)
        fine = t_fine(adc_t, trim)
        adc_p = _closest(lambda a: pressure_pa_int32(a, fine, trim), hpa * 100, ADC_TP_MAX, False)
        if os_h:
            adc_h = _closest(lambda a: humidity_q10(a, fine, trim), rh * 1024, ADC_H_MAX, True)
        else:
            adc_h = SKIPPED_H
        self._last_adc = (
            self._filter("p", _quantize(adc_p, (meas >> 2) & 0x07)) if os_p else SKIPPED_TP,
            self._filter("t", adc_t) if os_t else SKIPPED_TP,
            adc_h,
        )
        return self._last_adc

    def _deviate(self, deviation: Deviation, value: float, factor: int) -> float:
        if deviation.noise and factor > 1:
            deviation = replace(deviation, noise=deviation.noise / math.sqrt(factor))
        return deviation.apply(value, self._noise)

    def _filter(self, key: str, adc: int) -> int:
        # "3.4.4 IIR filter": off, the word as measured; on, the filter's 20-bit output, its
        # memory initialised by the first word after a reset or a config write.
        coeff = FILTER_COEFF[(self.values[REG_CONFIG] >> 2) & 0x07]
        if coeff == 1:
            return adc
        old = self._iir.get(key)
        self._iir[key] = adc if old is None else (old * (coeff - 1) + adc) / coeff
        return min(ADC_TP_MAX, round(self._iir[key]))

    # -- reads and status -------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        if self.pointer == REG_DATA and self._read_index == 0:
            self.data_reads += 1
        return super().read(n)

    def describe(self) -> dict[str, Any]:
        measuring = self.measuring
        return {
            **super().describe(),
            "mode": ("sleep", "forced", "forced", "normal")[self.mode],
            "measuring": measuring,
            "measurements": self.measurements,
            "data_reads": self.data_reads,
            "filter": FILTER_COEFF[(self.values[REG_CONFIG] >> 2) & 0x07],
        }


def _quantize(adc: int, osrs: int) -> int:
    # "3.4.2"/"3.4.3": a T or P word has 16 + (osrs - 1) bits (x1: 16, x16: 20); the rest read 0.
    drop = 5 - min(osrs, 5)
    return min(ADC_TP_MAX, (adc + (1 << drop >> 1)) >> drop << drop)


def _data_bytes(adc_p: int, adc_t: int, adc_h: int) -> list[int]:
    # press_msb/lsb/xlsb[7:4], temp_msb/lsb/xlsb[7:4], hum_msb/lsb ("5.4.7".."5.4.9").
    return [
        adc_p >> 12,
        (adc_p >> 4) & 0xFF,
        (adc_p & 0x0F) << 4,
        adc_t >> 12,
        (adc_t >> 4) & 0xFF,
        (adc_t & 0x0F) << 4,
        adc_h >> 8,
        adc_h & 0xFF,
    ]


def attach(
    vb: Any,
    bus: int,
    addr: int,
    part: int = 1,
    temperature: dict[str, float] | None = None,
    humidity: dict[str, float] | None = None,
    pressure: dict[str, float] | None = None,
    noise_seed: int = 0,
    typical_timing: bool = False,
) -> Bme280:
    """The MODELS factory: `attach model=bme280 bus=i2c0 [addr=0x77] [part=1|2]
    [temperature={"offset": 0.4, "gain": 1.01, "noise": 0.02}] [humidity=...] [pressure=...]
    [noise_seed=N] [typical_timing=true]` (deviations in °C, %RH, hPa)."""
    if part not in PARTS:
        raise ValueError(f"bme280 part must be one of {sorted(PARTS)}, not {part!r}")
    return Bme280(
        vb.clock.now_ms,
        address=addr or 0x76,
        nvm=PARTS[part],
        temperature=Deviation(**(temperature or {})),
        humidity=Deviation(**(humidity or {})),
        pressure=Deviation(**(pressure or {})),
        noise_seed=noise_seed,
        typical_timing=typical_timing,
    )
