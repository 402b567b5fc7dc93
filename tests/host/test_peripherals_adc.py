"""ADC conversions of known voltages on both ports, MicroPython's u16 scaling, the ESP32 knee."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host_tools.sim.peripherals.adc import (
    AnalogInput,
    Esp32Adc,
    Rp2Adc,
    divided_supply,
    rp2_temp_sensor_volts,
    to_u16,
)
from host_tools.sim.peripherals.environment import Environment

# ESP-IDF's documented recommended ranges, mV, by MicroPython ATTN_* value.
RANGES = {0: (100, 950), 1: (100, 1250), 2: (150, 1750), 3: (150, 2450)}
FULL_SCALE_MV = {0: 1100, 1: 1500, 2: 2200, 3: 3900}


def fixed(volts):
    return AnalogInput(34, lambda env: volts, "fixed")


def esp32(volts, atten):
    return Esp32Adc(fixed(volts), Environment(), atten=atten)


def test_to_u16_follows_micropythons_left_shift_convention():
    assert to_u16(0, 12) == 0
    assert to_u16(4095, 12) == 65535
    assert to_u16(2048, 12) == 0x8008
    assert to_u16(1, 12) == 16
    assert to_u16(511, 9) == 65535
    assert to_u16(256, 9) == 0x8040


@pytest.mark.parametrize(
    ("volts", "atten", "raw", "u16", "uv"),
    [
        (0.0, 0, 0, 0, 0),
        (0.5, 0, 1861, 0x7457, 499_902),  # 0.5 / 1.1 V * 4095 = 1861.4
        (1.0, 1, 2730, 0xAAAA, 1_000_000),  # 1.0 / 1.5 V * 4095 = 2730.0
        (1.1, 2, 2048, 0x8008, 1_100_269),
        (2.0, 3, 2100, 0x8348, 2_000_000),  # 2.0 / 3.9 V * 4095 = 2100.0
    ],
)
def test_esp32_known_voltages(volts, atten, raw, u16, uv):
    sample = esp32(volts, atten).sample()
    assert (sample.raw, sample.u16, sample.uv) == (raw, u16, uv)


@pytest.mark.parametrize("atten", [0, 1, 2, 3])
@given(fraction=st.floats(0.0, 1.0))
def test_esp32_read_uv_is_within_one_lsb_inside_the_recommended_range(atten, fraction):
    low, high = RANGES[atten]
    mv = low + (high - low) * fraction
    lsb_uv = FULL_SCALE_MV[atten] * 1000 / 4095
    assert abs(esp32(mv / 1000, atten).read_uv() - mv * 1000) <= lsb_uv / 2 + 1


def test_esp32_reads_low_above_the_recommended_range():
    # 11 dB at 3.3 V: the knee gives ~3.175 V instead of 3.3 V.
    adc = esp32(3.3, Esp32Adc.ATTN_11DB)
    assert adc.read() == 3334
    assert 3_170_000 <= adc.read_uv() <= 3_180_000
    # 0 dB: full scale 1.1 V reads 3.4 % low; the code only saturates at 1.25 V.
    assert esp32(1.1, 0).read() == 3955
    assert esp32(1.2, 0).read() < 4090
    assert esp32(1.25, 0).read() == 4095
    assert esp32(3.0, 0).read_u16() == 65535


@pytest.mark.parametrize("atten", [0, 1, 2, 3])
def test_esp32_codes_never_decrease_with_voltage(atten):
    codes = [esp32(mv / 1000, atten).read() for mv in range(0, 3601, 5)]
    assert codes == sorted(codes)
    assert codes[0] == 0


def test_esp32_negative_input_reads_zero_and_width_keeps_top_bits():
    assert esp32(-0.2, 3).read() == 0
    adc = esp32(2.0, 3)
    adc.width(9)
    assert adc.read() == 2100 >> 3
    assert adc.read_u16() == to_u16(2100 >> 3, 9)
    assert adc.read_uv() == 2_000_000  # calibration uses the full conversion


def test_esp32_attenuation_is_switchable_and_validated():
    adc = esp32(0.5, 0)
    assert adc.read() == 1861
    adc.atten(Esp32Adc.ATTN_11DB)
    assert adc.read() == 525  # 0.5 / 3.9 V * 4095 = 525.0
    with pytest.raises(ValueError, match="attenuation"):
        adc.atten(4)
    with pytest.raises(ValueError, match="width"):
        adc.width(13)


@pytest.mark.parametrize(
    ("volts", "u16", "uv"),
    [
        (0.0, 0, 0),
        (1.0, 19860, 1_000_073),  # 1.0 / 3.3 V * 4095 = 1240.9 -> 1241
        (3.3, 65535, 3_300_000),
        (5.0, 65535, 3_300_000),  # clamps at the reference
        (-0.1, 0, 0),
    ],
)
def test_rp2_known_voltages(volts, u16, uv):
    adc = Rp2Adc(fixed(volts), Environment())
    assert adc.read_u16() == u16
    assert adc.read_uv() == uv


def test_inputs_follow_the_environment():
    env = Environment(supply_v=3.7)
    adc = Esp32Adc(AnalogInput(35, divided_supply(2.0)), env, atten=Esp32Adc.ATTN_11DB)
    assert adc.read_uv() == pytest.approx(1_850_000, abs=1000)
    env.set(supply_v=3.3)
    assert adc.read_uv() == pytest.approx(1_650_000, abs=1000)
    with pytest.raises(ValueError):
        divided_supply(0.0)


def test_rp2_core_temperature_sensor_uses_the_datasheet_line():
    env = Environment(temperature_c=27.0)
    assert rp2_temp_sensor_volts(env) == pytest.approx(0.706)
    adc = Rp2Adc(AnalogInput(30, rp2_temp_sensor_volts), env)
    for celsius in (-10.0, 27.0, 60.0):
        env.set(temperature_c=celsius)
        # The conversion MicroPython's rp2 docs give for ADC(4).
        volts = adc.read_u16() * 3.3 / 65535
        assert 27 - (volts - 0.706) / 0.001721 == pytest.approx(celsius, abs=0.5)
