"""The soil probe model on a bare BoardHardware: response curve, rail and settle, supply,
per-part deviation, the attach factory's pin checks."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from handclock import Clock

from host_tools.boards import load_board
from host_tools.sim.commands import MODELS
from host_tools.sim.peripherals.adc import Esp32Adc
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.deviation import Deviation
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.models.soil import (
    AIR_MV,
    BOW,
    SETTLE_MS,
    WATER_MV,
    SoilProbe,
    attach,
)

BOARDS = Path(__file__).resolve().parents[2] / "boards"


def board(name):
    return load_board(name)  # resolved: a board that "extends" another gets its fields


def virtual_board(name):
    """What a MODELS factory is given: the board definition, its hardware and its clock."""
    definition = board(name)
    return SimpleNamespace(
        board=definition, hw=BoardHardware(definition), clock=SimpleNamespace(now_ms=Clock())
    )


def settled_probe(**kw):
    """A probe always powered and long settled, read directly in mV."""
    clock = Clock()
    probe = SoilProbe(32, clock, **kw)
    clock.now += 10 * 1000.0
    return clock, probe


def mv(probe, env):
    return probe.volts(env) * 1000.0


def test_the_response_runs_from_the_cited_air_to_water_end_points_with_a_bow():
    _, probe = settled_probe()
    env = Environment()
    assert (AIR_MV, WATER_MV, BOW) == (2540.0, 1270.0, 0.3)
    for moisture, expected in ((0.0, 2540.0), (100.0, 1270.0), (50.0, 1809.75), (25.0, 2151.0625)):
        env.set(soil_moisture_pct=moisture)
        assert mv(probe, env) == pytest.approx(expected, abs=1e-9)
    # After a two-point calibration at the ends the middle reads 7.5 points wet of the truth.
    env.set(soil_moisture_pct=50.0)
    assert 100 * (2540.0 - mv(probe, env)) / (2540.0 - 1270.0) == pytest.approx(57.5)
    readings = []
    for moisture in range(0, 101):
        env.set(soil_moisture_pct=float(moisture))
        readings.append(mv(probe, env))
    assert all(a > b for a, b in zip(readings, readings[1:], strict=False))  # wetter: lower
    _, linear = settled_probe(bow=0.0)
    env.set(soil_moisture_pct=50.0)
    assert mv(linear, env) == pytest.approx(1905.0)


def test_a_per_part_deviation_in_millivolts_and_its_noise_is_seeded():
    env = Environment(soil_moisture_pct=100.0)
    _, part = settled_probe(deviation=Deviation(offset=-30.0, gain=1.02))
    assert mv(part, env) == pytest.approx(1270.0 * 1.02 - 30.0)
    _, a = settled_probe(deviation=Deviation(noise=5.0), noise_seed=7)
    _, b = settled_probe(deviation=Deviation(noise=5.0), noise_seed=7)
    first = [mv(a, env) for _ in range(50)]
    assert first == [mv(b, env) for _ in range(50)]
    assert len(set(first)) == 50 and all(abs(x - 1270.0) < 5.0 * 5 for x in first)
    spread = sum((x - 1270.0) ** 2 for x in first) / len(first)
    assert 2.0 < math.sqrt(spread) < 8.0


def test_the_output_is_zero_with_the_rail_off_and_settles_after_it_comes_on():
    vb = virtual_board("sim-esp32")
    hw, clock = vb.hw, vb.clock.now_ms
    env = hw.environment
    env.set(soil_moisture_pct=0.0)
    probe = hw.attach("adc", 32, attach(vb, 32, 0))
    assert probe.powered is False and hw.rail_on is False  # after reset the rail is off
    assert hw.adc(32).read_uv() == 0
    clock.now += 5000.0
    hw.pin_write(25, 1)  # board.json pins.sensor_power: the rail comes on now
    assert probe.volts(env) == 0.0  # the output capacitor starts empty
    clock.now += SETTLE_MS
    assert probe.volts(env) == pytest.approx(2.540 * (1 - math.exp(-1)))
    clock.now += 400.0 - SETTLE_MS  # the driver's WARMUP_MS after power-on
    assert probe.volts(env) * 1000 == pytest.approx(2540.0, abs=0.2)
    hw.adc(32).atten(Esp32Adc.ATTN_11DB)
    # 2540 mV is just past the ESP32's 2450 mV calibrated range at 11 dB: slightly compressed.
    assert 2_530_000 <= hw.adc(32).read_uv() <= 2_541_000
    hw.pin_write(25, 0)
    assert probe.volts(env) == 0.0 and hw.adc(32).read_uv() == 0
    clock.now += 1.0
    hw.pin_write(25, 1)  # on again: the settle starts over
    assert probe.volts(env) == 0.0
    hw.pin_write(25, 1)  # no edge: nothing restarts
    clock.now += 1000.0
    assert probe.volts(env) == pytest.approx(2.540)
    hw.cpu_reset()  # a reset or deep sleep releases the enable pin
    assert probe.volts(env) == 0.0


def test_an_early_read_is_low_so_reads_wetter_than_the_truth():
    clock = Clock()
    probe = SoilProbe(26, clock, settle_ms=SETTLE_MS)
    env = Environment(soil_moisture_pct=50.0)
    final = 1809.75
    for after_ms, fraction in ((0.0, 0.0), (20.0, 0.3935), (100.0, 0.9179), (200.0, 0.99326)):
        clock.now = 1000.0 + after_ms
        assert mv(probe, env) == pytest.approx(final * fraction, rel=1e-3)
    clock.now = 1000.0 + 400.0
    assert final - mv(probe, env) < 0.1  # WARMUP_MS = 400: settled within 0.1 mV
    instant = SoilProbe(26, clock, settle_ms=0.0)
    assert mv(instant, env) == pytest.approx(final)


def test_on_an_ldo_board_the_output_follows_a_sagging_supply_but_not_on_a_pico():
    env = Environment(soil_moisture_pct=100.0, supply_v=3.7)
    _, esp32 = settled_probe(rail_follows_supply=True)
    _, rp2 = settled_probe()
    assert mv(esp32, env) == pytest.approx(1270.0)  # a 3.7 V battery: the LDO gives 3.3 V
    env.set(supply_v=3.0)
    assert mv(esp32, env) == pytest.approx(1270.0 * 3.0 / 3.3)
    assert mv(rp2, env) == pytest.approx(1270.0)  # the Pico's buck-boost holds 3.3 V
    assert attach(virtual_board("sim-esp32"), 32, 0).rail_follows_supply is True
    assert attach(virtual_board("sim-rp2"), 26, 0).rail_follows_supply is False


def test_the_factory_takes_adc_pins_only_and_json_options():
    kind, factory = MODELS["soil"]
    assert kind == "adc" and factory is attach
    esp32 = virtual_board("sim-esp32")
    for pin in (32, 33, 34, 36, 39):
        assert factory(esp32, pin, 0).pin == pin
    for pin in (25, 4, 0, 37):  # ADC2, a plain GPIO, a strapping pin, not on a WROOM
        with pytest.raises(ValueError, match=f"GPIO{pin} is not one on esp32"):
            factory(esp32, pin, 0)
    with pytest.raises(ValueError, match="GPIO35 is the board's battery divider"):
        factory(esp32, 35, 0)
    rp2 = virtual_board("sim-rp2")
    for pin in (26, 27, 28):
        assert factory(rp2, pin, 0).pin == pin
    for pin in (29, 15, 30):  # VSYS/3, a plain GPIO, the temperature sensor's channel
        with pytest.raises(ValueError, match=r"GPIO\d+ is not one on rp2040 \(\[26, 27, 28\]\)"):
            factory(rp2, pin, 0)
    s3 = virtual_board("sim-esp32-s3-sx1262")  # ADC1 is GPIO1..10 on an ESP32-S3
    for pin in (2, 6, 10):  # GPIO1 is the Heltec V3's battery divider
        assert factory(s3, pin, 0).pin == pin
    for pin in (11, 33, 36):  # ADC2; the ESP32's ADC1 pins are none of the S3's
        with pytest.raises(ValueError, match=f"GPIO{pin} is not one on esp32s3"):
            factory(s3, pin, 0)
    part = factory(
        esp32, 33, 0, air_mv=2700, water_mv=1200, bow=0.1, offset=-12, gain=1.01, noise_seed=3
    )
    assert (part.air_mv, part.water_mv, part.bow) == (2700, 1200, 0.1)
    assert part.deviation == Deviation(offset=-12.0, gain=1.01)
    with pytest.raises(TypeError):
        factory(esp32, 33, 0, colour="red")
    with pytest.raises(ValueError, match="lower in water than in air"):
        factory(esp32, 33, 0, air_mv=1000, water_mv=1200)
    with pytest.raises(ValueError, match="bow"):
        factory(esp32, 33, 0, bow=1.5)


def test_an_analog_probe_is_no_fault_target_and_is_described_with_its_pin():
    vb = virtual_board("sim-rp2")
    vb.hw.attach("adc", 26, attach(vb, 26, 0))
    with pytest.raises(ValueError, match="matches nothing"):
        vb.hw.apply_fault("adc26", "detach")
    vb.hw.pin_write(14, 1)
    vb.clock.now_ms.now += 1000.0
    (entry,) = [a for a in vb.hw.describe()["adc"] if a["pin"] == 26]
    assert entry["source"] == "soil"
    assert entry["volts"] == pytest.approx(2.540 - 1.270 * (0.35 + 0.3 * 0.35 * 0.65), abs=1e-6)
