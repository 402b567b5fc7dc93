# Bosch BME280 humidity, pressure and temperature sensor on I2C, in the common driver shape
# (sensor.py). Datasheet: Bosch Sensortec "BME280 Combined humidity and pressure sensor",
# BST-BME280-DS002 (revision 1.6, September 2018); its section and table titles are cited.
#
#   s = BME280(machine.I2C(0), 0x76)       # chip id, then the trimming parameters, once
#   time.sleep_ms(s.start())               # one forced measurement: 10 ms at x1/x1/x1
#   t_c, rh, hpa = s.read()                # (21.37, 48.12, 1013.25)
#   s.raw()                                # (adc_T, adc_H, adc_P): QUANTITIES order
#
# Options: oversample_t, oversample_h, oversample_p (1, 2, 4, 8 or 16) and iir_filter (0 = off,
# 2, 4, 8 or 16). The defaults are "3.5.1 Weather monitoring": forced mode, x1 each, filter off.
# The filter works across the forced measurements of one driver's life (the chip resets it when
# the config register is written, as construction does, and at power-on).
#
# Compensation: the datasheet's integer code, computed so that every intermediate stays a small
# int on a 32-bit port (31 bits: 2**30 and beyond is a heap-allocated long int) for any reading
# in the operating range. Where a product would not fit (five in the pressure code, and dig_H2's
# in humidity, close to the limit), it is split into high and low parts with the identical
# result; tests/host/test_peripherals_bme280.py checks both properties. Pressure
# uses the 32-bit variant ("8.2 Pressure compensation in 32 bit fixed point": "an accuracy of
# typically 1 Pa (1-sigma)", in 1 Pa steps; against the 64-bit code about +1 Pa mean, 1.2 Pa
# sigma, 6 Pa at worst over the operating range): the 64-bit code makes about twenty long ints
# per reading (terms of 2**47), the garbage this module avoids. 1 Pa is 1 % of the +-1 hPa
# absolute accuracy.
#
# No CRC on this chip: a block read counts once two reads in a row agree, so one corrupted reply
# costs a re-read and a corrupting bus raises CrcError rather than returning garbage.
import struct
import time

from micropython import const
from sensor import ConfigError, CrcError, RangeError, SensorError, bus_error, check_range

# "6.2 I2C interface": 0x76 with SDO to GND, 0x77 with SDO to VDDIO.
_ADDR = const(0x76)
_ADDR_ALT = const(0x77)

# "5.3 Memory map" (Table 18).
_REG_TRIM_TP = const(0x88)  # calib00..calib25: dig_T1..dig_P9, (0xA0), dig_H1 at 0xA1
_REG_ID = const(0xD0)  # 5.4.1 "id": 0x60 on a BME280
_REG_TRIM_H = const(0xE1)  # calib26..: dig_H2..dig_H6 in 0xE1..0xE7
_REG_CTRL_HUM = const(0xF2)  # 5.4.3 osrs_h[2:0]; takes effect at the next ctrl_meas write
_REG_STATUS = const(0xF3)  # 5.4.4
_REG_CTRL_MEAS = const(0xF4)  # 5.4.5 osrs_t[7:5], osrs_p[4:2], mode[1:0]
_REG_CONFIG = const(0xF5)  # 5.4.6 t_sb[7:5], filter[4:2], spi3w_en[0]
_REG_DATA = const(0xF7)  # 5.4.7-5.4.9 press 0xF7..0xF9, temp 0xFA..0xFC, hum 0xFD..0xFE

_CHIP_ID = const(0x60)
# The BMP280 (no humidity) answers at the same addresses: 0x56, 0x57 samples, 0x58 production.
_BMP280_ID_MIN = const(0x56)
_BMP280_ID_MAX = const(0x58)
_MEASURING = const(0x08)  # status bit 3: a conversion is running
_MODE_FORCED = const(0x01)  # mode[1:0] = 01: one measurement, then back to sleep
# 5.4.5 (osrs_p, osrs_t) and 5.4.3 (osrs_h): a skipped measurement reads 0x80000 (T, P) or
# 0x8000 (H), which are also the data registers' reset values.
_SKIPPED_TP = const(0x80000)
_SKIPPED_H = const(0x8000)
_TRIM_TP_LEN = const(26)
_TRIM_H_LEN = const(7)

# "1. Specification": operating range -40..85 °C and 300..1100 hPa. With the part's absolute
# accuracy (1 °C, 1 hPa) at the ends, a value outside is a fault, never a reading.
_T_MIN_C = const(-41)
_T_MAX_C = const(86)
_P_MIN_HPA = const(299)
_P_MAX_HPA = const(1101)

# "9.1 Measurement time", maximum, in us: 1250 + 2300 * T_os + (2300 * P_os + 575)
# + (2300 * H_os + 575), the P and H terms dropped for a skipped (0) measurement.
_T_BASE_US = const(1250)
_PER_SAMPLE_US = const(2300)
_PH_EXTRA_US = const(575)


def measure_time_us(os_t, os_p, os_h):
    # t_measure,max in us for oversampling factors (0 = skipped, 1..16).
    us = _T_BASE_US + _PER_SAMPLE_US * os_t
    if os_p:
        us += _PER_SAMPLE_US * os_p + _PH_EXTRA_US
    if os_h:
        us += _PER_SAMPLE_US * os_h + _PH_EXTRA_US
    return us


# "4.2.3 Compensation formulas". `trim` is the 18 trimming parameters in Table 16's order:
# dig_T1..T3 (0..2), dig_P1..P9 (3..11), dig_H1..H6 (12..17).
def fine_temperature(adc_t, trim):
    # BME280_compensate_T_int32 up to t_fine; T in 0.01 °C is (t_fine * 5 + 128) >> 8.
    t1 = trim[0]
    var1 = (((adc_t >> 3) - (t1 << 1)) * trim[1]) >> 11
    b = (adc_t >> 4) - t1
    return var1 + ((((b * b) >> 12) * trim[2]) >> 14)


def pressure_pa(adc_p, t_fine, trim):
    # BME280_compensate_P_int32 ("8.2"): pressure in Pa.
    var1 = (t_fine >> 1) - 64000
    a = var1 >> 2
    sq = (a >> 11) * a + (((a & 2047) * a) >> 11)  # ((var1 >> 2) * (var1 >> 2)) >> 11
    var2 = sq * trim[8] + ((var1 * trim[7]) << 1)
    var2 = (var2 >> 2) + (trim[6] << 16)
    # (((dig_P3 * (sq >> 2)) >> 3) + ((dig_P2 * var1) >> 1)) >> 18, var1 split at bit 9
    p2 = trim[4]
    y = ((trim[5] * (sq >> 2)) >> 3) + ((p2 * (var1 & 511)) >> 1)
    var1 = 32768 + ((p2 * (var1 >> 9) + (y >> 8)) >> 10)
    p1 = trim[3]
    var1 = ((var1 >> 8) * p1 + (((var1 & 255) * p1) >> 8)) >> 7  # (var1 * dig_P1) >> 15
    if var1 == 0:
        return 0  # as the datasheet: no division by zero (0 Pa is then out of range)
    u = (1048576 - adc_p) - (var2 >> 12)
    q = u // var1
    r = u - q * var1
    # p = u * 3125; p < 0x80000000 ? (p << 1) / var1 : (p / var1) * 2, with u = q * var1 + r
    # (u * 3125 < 0x80000000 is u < 687195)
    p = q * 6250 + (r * 6250) // var1 if u < 687195 else (q * 3125 + (r * 3125) // var1) * 2
    var1 = (trim[11] * (((p >> 3) * (p >> 3)) >> 13)) >> 12
    var2 = ((p >> 2) * trim[10]) >> 13
    return p + ((var1 + var2 + trim[9]) >> 4)


def humidity_q10(adc_h, t_fine, trim):
    # bme280_compensate_H_int32: %RH in Q22.10 (1024 = 1 %RH), clamped to 0..100 %RH.
    v = t_fine - 76800
    x = ((adc_h << 14) - (trim[15] << 20) - trim[16] * v + 16384) >> 15
    m = ((((v * trim[17]) >> 10) * (((v * trim[14]) >> 11) + 32768)) >> 10) + 2097152
    h2 = trim[13]
    v = x * ((m >> 14) * h2 + (((m & 16383) * h2 + 8192) >> 14))  # (m * dig_H2 + 8192) >> 14
    s = v >> 15
    v -= (((s * s) >> 7) * trim[12]) >> 4
    if v < 0:
        v = 0
    elif v > 419430400:
        v = 419430400
    return v >> 12


def _osrs(name, factor):
    # Oversampling factor -> osrs code: x1 -> 1, x2 -> 2, x4 -> 3, x8 -> 4, x16 -> 5.
    code = 1
    for f in (1, 2, 4, 8, 16):
        if factor == f and factor is not True:
            return code
        code += 1
    raise ConfigError("bme280 %s must be 1, 2, 4, 8 or 16, not %r" % (name, factor))


class BME280:
    KIND = "bme280"
    QUANTITIES = ("temperature", "humidity", "pressure")
    UNITS = ("C", "%RH", "hPa")
    RESOLUTION = (0.01, 0.01, 0.01)
    WARMUP_MS = 2  # "1.1 General electrical specification": start-up time t_startup 2 ms max

    def __init__(
        self, bus, addr=_ADDR, oversample_t=1, oversample_h=1, oversample_p=1, iir_filter=0
    ):
        if addr != _ADDR and addr != _ADDR_ALT:
            raise ConfigError("bme280 address is 0x76 or 0x77 (SDO low or high), not %r" % addr)
        osrs_t = _osrs("oversample_t", oversample_t)
        osrs_h = _osrs("oversample_h", oversample_h)
        osrs_p = _osrs("oversample_p", oversample_p)
        # "5.4.6 Register 0xF5 config", filter[2:0]: off, 2, 4, 8, 16 -> 0..4 (Table 28).
        if iir_filter is True or iir_filter not in (0, 2, 4, 8, 16):
            raise ConfigError(
                "bme280 iir_filter must be 0 (off), 2, 4, 8 or 16, not %r" % iir_filter
            )
        filt = 0 if not iir_filter else _osrs("iir_filter", iir_filter) - 1
        self._bus = bus
        self._addr = addr
        self._where = "bme280@i2c 0x%02x" % addr
        # ctrl_hum then ctrl_meas in one write ("6.2.1 I2C write": register/data pairs): the
        # humidity setting only takes effect with the ctrl_meas write after it.
        meas = (osrs_t << 5) | (osrs_p << 2) | _MODE_FORCED
        self._start_cmd = bytearray((_REG_CTRL_HUM, osrs_h, _REG_CTRL_MEAS, meas))
        us = measure_time_us(1 << (osrs_t - 1), 1 << (osrs_p - 1), 1 << (osrs_h - 1))
        self._wait_ms = (us + 999) // 1000
        self._status = bytearray(1)
        self._buf = bytearray(8)  # press[3] temp[3] hum[2], as the chip sends them
        self._chk = bytearray(8)  # the second read of the same block
        self._pending = False  # a start() whose result read() has not fetched
        self._ready_at = time.ticks_ms()  # when the last start()'s measurement is done
        self._adc_t = -1  # the raw words of the last read(); -1 before any
        self._adc_h = -1
        self._adc_p = -1

        chip = bytearray(1)
        self._read_checked(_REG_ID, chip, bytearray(1))
        if chip[0] != _CHIP_ID:
            if _BMP280_ID_MIN <= chip[0] <= _BMP280_ID_MAX:
                raise SensorError(
                    "%s: chip id 0x%02x is a BMP280 (no humidity), not a BME280"
                    % (self._where, chip[0])
                )
            raise SensorError("%s: chip id 0x%02x is not a BME280's 0x60" % (self._where, chip[0]))
        # "4.2.2 Trimming parameter readout" (Table 16), read once: little-endian words; dig_H4
        # and dig_H5 are signed 12-bit, packed as 0xE4[7:0] 0xE5[3:0] and 0xE6[7:0] 0xE5[7:4].
        b = bytearray(_TRIM_TP_LEN)
        self._read_checked(_REG_TRIM_TP, b, bytearray(_TRIM_TP_LEN))
        e = bytearray(_TRIM_H_LEN)
        self._read_checked(_REG_TRIM_H, e, bytearray(_TRIM_H_LEN))
        h2, h3, e4, e5, e6, h6 = struct.unpack("<hBbBbb", e)  # 0xE4, 0xE6 signed: 12-bit
        trim = struct.unpack_from("<HhhHhhhhhhhh", b)  # dig_T1..dig_P9
        self.trimming = trim + (b[25], h2, h3, e4 * 16 | (e5 & 0x0F), e6 * 16 | (e5 >> 4), h6)
        # The filter coefficient; writing config also resets the filter ("3.4.4 IIR filter").
        self._write(_REG_CONFIG, filt << 2)

    # --- the common shape -------------------------------------------------------------------
    def start(self):
        try:
            self._bus.writeto(self._addr, self._start_cmd)
        except OSError as e:
            raise bus_error(self._where, e) from None
        self._pending = True
        self._ready_at = time.ticks_add(time.ticks_ms(), self._wait_ms)
        return self._wait_ms

    def read(self):
        if not self._pending:
            raise RuntimeError(self._where + ": read() without start()")
        self._fetch()
        adc_t = self._adc_t
        adc_p = self._adc_p
        adc_h = self._adc_h
        if adc_t == _SKIPPED_TP and adc_p == _SKIPPED_TP and adc_h == _SKIPPED_H:
            # All three at their reset values: the chip was reset (power) since start(). The
            # driver never skips a measurement, and one word alone at 0x80000 is a reading
            # (1 in 65536 at x1 oversampling): only all three together are refused.
            raise RangeError(self._where + ": no measurement in the data registers (reset value)")
        trim = self.trimming
        t_fine = fine_temperature(adc_t, trim)
        t = ((t_fine * 5 + 128) >> 8) / 100
        check_range(self._where, "temperature", t, _T_MIN_C, _T_MAX_C, "C")
        p = pressure_pa(adc_p, t_fine, trim) / 100
        check_range(self._where, "pressure", p, _P_MIN_HPA, _P_MAX_HPA, "hPa")
        return (t, humidity_q10(adc_h, t_fine, trim) / 1024, p)

    def raw(self):
        if self._adc_t < 0:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (self._adc_t, self._adc_h, self._adc_p)

    # --- the bus ----------------------------------------------------------------------------
    def _fetch(self):
        # "5.4.4 status": while `measuring` is set the data registers still hold the previous
        # result; the conversion carries on and a later read() gets it.
        self._read(_REG_STATUS, self._status)
        if self._status[0] & _MEASURING:
            left = time.ticks_diff(self._ready_at, time.ticks_ms())
            if left > 0:
                raise SensorError("%s: busy for %d ms more" % (self._where, left))
            raise SensorError(self._where + ": busy measuring (past its maximum time)")
        # "4. Data readout": one burst 0xF7..0xFE, so the chip's shadowing keeps it consistent.
        self._read_checked(_REG_DATA, self._buf, self._chk)
        self._pending = False
        b = self._buf
        self._adc_p = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        self._adc_t = (b[3] << 12) | (b[4] << 4) | (b[5] >> 4)
        self._adc_h = (b[6] << 8) | b[7]

    def _read_checked(self, reg, buf, chk):
        # Read the block at `reg` into buf until two reads in a row agree (four reads at most).
        self._read(reg, buf)
        for _ in range(3):
            self._read(reg, chk)
            if chk == buf:
                return
            buf, chk = chk, buf
        raise CrcError(self._where + ": no two reads agree (corrupted bus; the chip has no CRC)")

    def _read(self, reg, buf):
        try:
            self._bus.readfrom_mem_into(self._addr, reg, buf)
        except OSError as e:
            raise bus_error(self._where, e) from None

    def _write(self, reg, value):
        try:
            self._bus.writeto_mem(self._addr, reg, bytes((value,)))
        except OSError as e:
            raise bus_error(self._where, e) from None
