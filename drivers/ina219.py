# TI INA219 bus voltage, current and power monitor on I2C, in the common driver shape
# (sensor.py). Datasheet: TI SBOS448G (December 2015); its section and table titles are cited.
#
#   m = INA219(machine.I2C(0), 0x40, shunt_ohms=0.1, max_current_a=3.2)
#   time.sleep_ms(m.start())      # 2 ms at 12 bits: one triggered shunt + bus conversion
#   v, a, w = m.read()            # (3.696, 0.045, 0.166): V at IN-, A (signed), W (magnitude)
#   m.raw()                       # (bus counts, current reg, power reg, shunt reg) of that read
#
# Duty cycled: construction resets the chip, checks it, writes the calibration and powers it
# down; start() triggers one shunt-then-bus conversion; read() checks CNVR, reads the results
# and powers the chip down again (after a triggered conversion it only idles, it does not power
# down by itself: 0.7 mA typical against 6 uA).
#
# Options: shunt_ohms, max_current_a (the largest current expected: it picks the PGA range and
# the calibration), bus_range (16 or 32 V), samples (1..128, averaged) or bits (9..12).
import time

from micropython import const
from sensor import ConfigError, CrcError, RangeError, SensorError, bus_error

_DEBUG = const(False)

# "Serial Bus Address": A0/A1 strapping gives 0x40..0x4F; 0x40 with both to GND.
_ADDR = const(0x40)

# "Register Maps", Table 2 "Summary of Register Set": 16-bit registers, MSB first. A read
# returns the register the pointer last named ("Writing to and Reading from the INA219").
_REG_CONFIG = const(0x00)
_REG_SHUNT = const(0x01)  # signed, 10 uV LSB
_REG_BUS = const(0x02)  # bits 15-3: 4 mV LSB; bit 1 CNVR, bit 0 OVF
_REG_POWER = const(0x03)  # Power_LSB = 20 * Current_LSB; reading it clears CNVR
_REG_CURRENT = const(0x04)  # signed, Current_LSB
_REG_CAL = const(0x05)  # bit 0 always reads 0

# "Configuration Register (address = 00h) [reset = 399Fh]".
_CONFIG_POR = const(0x399F)  # 32 V, PGA /8, 12-bit, continuous shunt and bus
_RST = const(0x8000)  # bit 15: the same as a power-on reset, self-clearing
_BRNG_32V = const(0x2000)  # bit 13: 1 = 32 V full scale, 0 = 16 V
_PG_SHIFT = const(11)  # bits 12-11: PGA /1 /2 /4 /8 = +-40 +-80 +-160 +-320 mV
_BADC_SHIFT = const(7)  # bits 10-7: bus ADC resolution / averaging
_SADC_SHIFT = const(3)  # bits 6-3: shunt ADC resolution / averaging
_ADC_AVERAGE = const(0b1000)  # 1nnn: 2^nnn samples at 12 bits
_MODE_POWER_DOWN = const(0b000)  # Table "Mode Settings"
_MODE_TRIGGERED = const(0b011)  # shunt and bus, triggered (one shunt then one bus conversion)

# "Bus Voltage Register (address = 02h)".
_CNVR = const(0x0002)  # conversion ready: set after the conversions and the maths
_OVF = const(0x0001)  # math overflow: current or power out of range
_BUS_SHIFT = const(3)
_BUS_FS_16V = const(4000)  # counts at full scale: 16 V / 4 mV; 32 V: 8000
_SHUNT_FS = const(4000)  # counts at PGA /1 full scale: 40 mV / 10 uV; doubles per PGA step

# "ADC Settings" table and "Electrical Characteristics" ADC conversion time, maximum in us:
# 9, 10, 11, 12 bits. An average of n samples takes n 12-bit conversions (the table's typical
# figures are n * 532 us; the maximum is taken as n * 586 us).
_CONV_US = (93, 163, 304, 586)
_CONV_12BIT_US = const(586)
_WAKE_US = const(40)  # "Full recovery from Power-Down requires 40 us"

# "Programming the Calibration Register": Cal = trunc(0.04096 / (Current_LSB * R_SHUNT)),
# Current_LSB = Maximum Expected Current / 2^15; here in integers (nA, uOhm), as a board's
# single-precision floats cannot hold the products: 0.04096 A*Ohm = 4.096e13 nA*uOhm.
_CAL_MAX = const(0xFFFE)


def calibrate(shunt_ohms, max_current_a):
    # -> (PGA setting 0..3, Current_LSB in nA, calibration register value) for a shunt and the
    # largest current expected. The PGA is the smallest range holding shunt_ohms *
    # max_current_a; Current_LSB is max_current_a / 2^15 rounded up to 1, 2 or 5 times a power
    # of ten nA (further up while Cal would not fit its 16 bits). Datasheet example
    # ("Register Results for the Example Circuit"): 2 mOhm, 20 A -> (0, 1000000, 20480).
    r_uohm = round(shunt_ohms * 1000000)
    i_ua = round(max_current_a * 1000000)
    if r_uohm < 1 or i_ua < 1:
        raise ConfigError("ina219 shunt_ohms and max_current_a must be at least 1e-6")
    drop_pv = r_uohm * i_ua  # the full-scale shunt voltage in pV
    pga = 0
    while drop_pv > 40000000000 << pga:  # 40 mV << PGA setting
        pga += 1
        if pga > 3:
            raise ConfigError(
                "ina219 shunt_ohms * max_current_a is %d mV, beyond the 320 mV range"
                % (drop_pv // 1000000000)
            )
    lsb_min = (i_ua * 1000 + 32767) // 32768
    decade = 1
    while True:
        for step in (1, 2, 5):
            lsb = decade * step
            if lsb >= lsb_min:
                cal = 40960000000000 // (lsb * r_uohm)
                if cal <= _CAL_MAX:
                    return pga, lsb, cal & _CAL_MAX  # bit 0 of the register is always 0
        decade *= 10


def _adc_field(samples, bits):
    # -> (the 4-bit ADC field, its maximum conversion time in us); ConfigError if not allowed.
    if type(samples) is int and type(bits) is int:  # not bool, float or str from the config
        if samples == 1 and 9 <= bits <= 12:
            return bits - 9, _CONV_US[bits - 9]
        if bits == 12 and samples in (2, 4, 8, 16, 32, 64, 128):
            n = 0
            while 1 << n < samples:
                n += 1
            return _ADC_AVERAGE | n, samples * _CONV_12BIT_US
    raise ConfigError(
        "ina219 samples must be 1, 2, 4, ..., 128 (bits 12) or bits 9..12 (samples 1), "
        "not samples=%r bits=%r" % (samples, bits)
    )


def _signed(word):
    return word - 0x10000 if word & 0x8000 else word


class INA219:
    KIND = "ina219"
    QUANTITIES = ("voltage", "current", "power")
    UNITS = ("V", "A", "W")
    # 4 mV; Current_LSB and Power_LSB of the default calibration (0.1 Ohm, 3.2 A). An instance
    # has its own, from its calibration.
    RESOLUTION = (0.004, 0.0001, 0.002)
    # The datasheet gives no power-up time (its only start-up figure is the 40 us recovery
    # from power-down); 1 ms is a margin over that.
    WARMUP_MS = 1

    def __init__(
        self,
        bus,
        addr=_ADDR,
        shunt_ohms=0.1,
        max_current_a=3.2,
        bus_range=32,
        samples=1,
        bits=12,
        **unknown,
    ):
        if unknown:
            raise ConfigError("ina219 has no option %s" % ", ".join(sorted(unknown)))
        for name, value in (("shunt_ohms", shunt_ohms), ("max_current_a", max_current_a)):
            if type(value) not in (int, float) or not 0 < value < 1000000:
                raise ConfigError("ina219 %s must be a positive number, not %r" % (name, value))
        if bus_range not in (16, 32) or type(bus_range) is bool:
            raise ConfigError("ina219 bus_range must be 16 or 32 (V), not %r" % (bus_range,))
        adc, conv_us = _adc_field(samples, bits)
        pga, lsb_na, cal = calibrate(shunt_ohms, max_current_a)
        self._bus = bus
        self._addr = addr
        self._where = "ina219@i2c 0x%02x" % addr
        # The config for power-down; start() adds the triggered mode.
        self._config = (
            (_BRNG_32V if bus_range == 32 else 0)
            | pga << _PG_SHIFT
            | adc << _BADC_SHIFT
            | adc << _SADC_SHIFT
            | _MODE_POWER_DOWN
        )
        self._shunt_fs = _SHUNT_FS << pga
        self._bus_fs = _BUS_FS_16V * bus_range // 16
        # Shunt conversion, then bus conversion, after waking from power-down; whole ms up.
        self._wait_ms = (2 * conv_us + _WAKE_US + 999) // 1000
        # The LSBs the chip's registers really have: Cal was truncated (and bit 0 dropped), so
        # Current_LSB = 0.04096 / (Cal * R_SHUNT) exactly; Power_LSB = 20 * Current_LSB.
        self._current_lsb = 40960.0 / (cal * round(shunt_ohms * 1000000))
        self._power_lsb = 20 * self._current_lsb
        self.RESOLUTION = (0.004, lsb_na / 1000000000, 20 * lsb_na / 1000000000)
        self._buf = bytearray(2)
        self._check = bytearray(2)
        self._started = False
        self._ready_at = time.ticks_ms()  # when the conversion start() triggered is done
        self._vbus_reg = 0  # the registers of the last read()
        self._current_reg = 0
        self._power_reg = 0
        self._shunt_reg = 0
        self._have_raw = False

        # The identity check: the INA219 has no ID register, so reset it and expect the
        # configuration register's reset value.
        self._write(_REG_CONFIG, _RST)
        config = self._reg(_REG_CONFIG)
        if config != _CONFIG_POR:
            raise SensorError(
                "%s: not an INA219 (configuration 0x%04x after reset, not 0x%04x)"
                % (self._where, config, _CONFIG_POR)
            )
        self._write(_REG_CAL, cal)
        self._write(_REG_CONFIG, self._config)  # power-down: the reset left it converting

    # --- the common shape -------------------------------------------------------------------
    def start(self):
        # Writing a triggered mode starts one conversion (even when that mode is already set)
        # and clears CNVR ("Basic ADC Functions").
        self._write(_REG_CONFIG, self._config | _MODE_TRIGGERED)
        self._started = True
        self._ready_at = time.ticks_add(time.ticks_ms(), self._wait_ms)
        return self._wait_ms

    def read(self):
        if not self._started:
            raise RuntimeError(self._where + ": read() without start()")
        self._fetch()
        self._started = False
        self._write(_REG_CONFIG, self._config)  # power-down until the next start()
        if self._vbus_reg & _OVF:
            raise RangeError(
                self._where + ": math overflow, current beyond the calibration (max_current_a)"
            )
        if not -self._shunt_fs < self._shunt_reg < self._shunt_fs:
            raise RangeError(
                "%s: shunt voltage at the PGA's full scale (+-%d mV)"
                % (self._where, self._shunt_fs // 100)
            )
        counts = self._vbus_reg >> _BUS_SHIFT
        if counts >= self._bus_fs:
            raise RangeError(
                "%s: bus voltage at the %d V range's full scale"
                % (self._where, self._bus_fs // 250)
            )
        return (
            counts * 0.004,
            self._current_reg * self._current_lsb,
            self._power_reg * self._power_lsb,
        )

    def raw(self):
        # (bus voltage register >> 3 in 4 mV, current register (signed, Current_LSB), power
        # register (Power_LSB), shunt voltage register (signed, 10 uV)): one int per quantity,
        # then the shunt voltage, which does not depend on the calibration.
        if not self._have_raw:
            raise RuntimeError(self._where + ": raw() before any read()")
        return (
            self._vbus_reg >> _BUS_SHIFT,
            self._current_reg,
            self._power_reg,
            self._shunt_reg,
        )

    # --- the bus ----------------------------------------------------------------------------
    def _fetch(self):
        # The results of the triggered conversion into the _*_reg attributes; allocates nothing
        # unless it raises.
        vbus = self._reg(_REG_BUS)
        if not vbus & _CNVR:
            early_ms = time.ticks_diff(self._ready_at, time.ticks_ms())
            if 0 < early_ms <= self._wait_ms:
                # The conversion carries on; a later read() gets it.
                raise SensorError("%s: busy for %d ms more" % (self._where, early_ms))
            raise SensorError(self._where + ": no conversion ready")
        if self._reg(_REG_CONFIG) != self._config | _MODE_TRIGGERED:
            # A power-on reset since start() (a glitch on the sensor rail): the calibration is
            # gone and the chip converts continuously again.
            self._started = False
            raise SensorError(self._where + ": configuration lost (the chip was reset)")
        self._vbus_reg = vbus
        self._shunt_reg = _signed(self._reg(_REG_SHUNT))
        self._current_reg = _signed(self._reg(_REG_CURRENT))
        self._power_reg = self._reg(_REG_POWER)  # clears CNVR
        self._have_raw = True

    def _reg(self, reg):
        # One register, read twice: the pointer stays, so the second read needs no pointer
        # write. The INA219 has no CRC; two reads that differ are a reply corrupted on the bus
        # (the registers do not change once converted): read twice once more, then CrcError.
        a = self._buf
        b = self._check
        try:
            for _ in range(2):
                self._bus.readfrom_mem_into(self._addr, reg, a)
                self._bus.readfrom_into(self._addr, b)
                if a[0] == b[0] and a[1] == b[1]:
                    return (a[0] << 8) | a[1]
                if _DEBUG:
                    print(self._where, "register", reg, "differs between reads, again")
        except OSError as e:
            raise bus_error(self._where, e) from None
        raise CrcError("%s: register 0x%02x differs between two reads" % (self._where, reg))

    def _write(self, reg, value):
        b = self._buf
        b[0] = value >> 8
        b[1] = value & 0xFF
        try:
            self._bus.writeto_mem(self._addr, reg, b)
        except OSError as e:
            raise bus_error(self._where, e) from None
