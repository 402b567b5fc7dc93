# The battery driver (drivers/battery.py) on each virtual board's battery ADC pin, whose voltage
# is the environment's supply_v through the board's divider (boards/*/board.json).
import _devtest
import _simctl
import machine
from _fakeadc import Sequence
from battery import Battery
from sensor import ConfigError, RangeError

ESP32 = _simctl.request("status")["board"] == "sim-esp32"
PIN, DIVIDER = (35, 2.0) if ESP32 else (29, 3.0)
# The models are noise-free, so the reading is the supply within a few ADC steps (ESP32 11 dB:
# 0.95 mV at the pin, x2; RP2040: 0.81 mV, x3). 10 mV also covers the ESP32's flattening just
# above its 2450 mV range. A real part is worse (ESP32 calibrated, and RP2040 with the Pico's
# 3.3 V reference: tens of mV); the bench measures that.
TOLERANCE_V = 0.01


def adc():
    # As the firmware builds it from board.json: no attenuation given.
    return machine.ADC(machine.Pin(PIN))


class _U16Only:
    # An ADC with read_u16() only, as on the rp2 port (the virtual rp2's shim also has read_uv).
    def __init__(self, adc):
        self.read_u16 = adc.read_u16


def test_the_driver_has_the_common_shape():
    b = Battery(adc(), divider=DIVIDER)
    assert (b.KIND, b.QUANTITIES, b.UNITS) == ("battery", ("voltage",), ("V",))
    assert len(b.RESOLUTION) == 1
    assert b.WARMUP_MS == 0
    assert b.start() == 0
    _devtest.raises(RuntimeError, b.raw)


def test_reads_the_supply_through_the_divider():
    a = adc()
    b = Battery(a, divider=DIVIDER)  # on the ESP32 it sets 11 dB on `a`
    for supply_v in (3.0, 3.3, 3.7, 4.2, 4.8):
        _simctl.request("env", supply_v=supply_v)
        (volts,) = b.read()
        assert abs(volts - supply_v) <= TOLERANCE_V, (supply_v, volts)
        assert b.raw() == (a.read_u16(),)  # the model is noise-free: every sample the same
    _simctl.request("env", supply_v=0.0)  # on USB power with no battery: a reading of 0 V
    assert b.read()[0] <= TOLERANCE_V


def test_read_u16_and_vref_without_read_uv():
    # The rp2 port's path: read_u16() * vref / 65535. On the ESP32 at 11 dB the code spans
    # 3.9 V, linear inside the calibrated range in the model (not on a real ESP32).
    a = adc()
    if ESP32:
        a.atten(machine.ADC.ATTN_11DB)
    b = Battery(_U16Only(a), divider=DIVIDER, vref=3.9 if ESP32 else 3.3)
    for supply_v in (3.2, 4.1):
        _simctl.request("env", supply_v=supply_v)
        assert abs(b.read()[0] - supply_v) <= TOLERANCE_V


def test_samples_are_averaged():
    b = Battery(Sequence([10000, 20000, 30000, 40001]), divider=3.0, samples=4, vref=3.3)
    (volts,) = b.read()
    assert b.raw() == (25000,)
    assert abs(volts - 25000.25 * 3.3 / 65535 * 3.0) < 1e-9


def test_a_saturated_pin_raises_range_error():
    # Both boards: an ADC pinned at its top code.
    b = Battery(Sequence([52000, 65535]), divider=2.0, samples=2)
    e = _devtest.raises(RangeError, b.read)
    assert str(e).startswith("battery@adc: ADC at full scale")
    assert isinstance(e, OSError)
    assert b.raw() == (58768,)  # the codes are kept for diagnosis
    if ESP32:
        # The wrong attenuation for this divider: 0 dB saturates above about 1.1 V at the pin.
        _simctl.request("env", supply_v=3.7)
        b = Battery(adc(), divider=DIVIDER, atten=machine.ADC.ATTN_0DB)
        _devtest.raises(RangeError, b.read)


def test_bad_options_raise_config_error():
    e = _devtest.raises(ConfigError, Battery, adc(), divider=0.5)
    assert isinstance(e, ValueError)
    _devtest.raises(ConfigError, Battery, adc(), samples=0)
    _devtest.raises(ConfigError, Battery, adc(), samples=1000)
    _devtest.raises(ConfigError, Battery, adc(), vref=0)
    # An ADC without atten() (rp2) cannot take one.
    _devtest.raises(ConfigError, Battery, _U16Only(adc()), atten=3)
