"""Environment: defaults, validation that names the key and range, observers, atomic updates."""

import math

import pytest

from host_tools.sim.peripherals.environment import QUANTITIES, Environment


def test_defaults_are_documented_values_with_units_in_keys():
    env = Environment()
    assert env["temperature_c"] == 22.0
    assert env["humidity_rh"] == 45.0
    assert env["pressure_hpa"] == 1013.25
    assert env["co2_ppm"] == 420.0
    assert env["supply_v"] == 3.7
    assert env["soil_moisture_pct"] == 35.0
    assert env["light_lux"] == 300.0
    assert set(env) == set(QUANTITIES)
    assert len(env) == len(QUANTITIES)


def test_constructor_overrides_are_validated():
    assert Environment(temperature_c=-5.5)["temperature_c"] == -5.5
    with pytest.raises(ValueError, match="humidity_rh"):
        Environment(humidity_rh=101)


def test_set_and_item_assignment_change_values():
    env = Environment()
    env.set(temperature_c=30, co2_ppm=1200.5)
    env["light_lux"] = 50_000
    assert env.snapshot()["temperature_c"] == 30.0
    assert isinstance(env["temperature_c"], float)
    assert env["co2_ppm"] == 1200.5
    assert env["light_lux"] == 50_000.0


def test_unknown_key_names_the_allowed_keys():
    env = Environment()
    with pytest.raises(ValueError) as info:
        env.set(temperature=20.0)
    message = str(info.value)
    assert "'temperature'" in message
    for key in QUANTITIES:
        assert key in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected_with_the_key(value):
    env = Environment()
    with pytest.raises(ValueError, match="pressure_hpa must be finite"):
        env.set(pressure_hpa=value)
    assert env["pressure_hpa"] == 1013.25


@pytest.mark.parametrize(
    ("key", "value", "range_text"),
    [
        ("temperature_c", 295.15, "-100..200"),  # kelvin typed as °C
        ("pressure_hpa", 101325.0, "0..1200"),  # Pa typed as hPa
        ("supply_v", 3700.0, "0..6"),  # mV typed as V
        ("humidity_rh", -0.1, "0..100"),
        ("soil_moisture_pct", 100.5, "0..100"),
        ("co2_ppm", -1.0, "0..1e+06"),
        ("light_lux", 250_000.0, "0..200000"),
    ],
)
def test_out_of_range_values_name_key_and_range(key, value, range_text):
    env = Environment()
    with pytest.raises(ValueError) as info:
        env.set(**{key: value})
    assert key in str(info.value)
    assert range_text in str(info.value)


def test_range_bounds_are_inclusive():
    env = Environment(humidity_rh=100.0, supply_v=0.0)
    assert env["humidity_rh"] == 100.0
    assert env["supply_v"] == 0.0


@pytest.mark.parametrize("value", ["22", None, True])
def test_non_numbers_are_rejected(value):
    with pytest.raises(ValueError, match="temperature_c must be a number"):
        Environment().set(temperature_c=value)


def test_a_bad_value_leaves_every_value_unchanged():
    env = Environment()
    with pytest.raises(ValueError):
        env.set(temperature_c=30.0, humidity_rh=150.0)
    assert env["temperature_c"] == 22.0


def test_observers_see_only_real_changes_and_can_unsubscribe():
    env = Environment()
    seen = []
    unsubscribe = env.subscribe(lambda key, old, new: seen.append((key, old, new)))
    env.set(temperature_c=25.0, humidity_rh=45.0)  # humidity unchanged: no notification
    env["supply_v"] = 3.3
    assert seen == [("temperature_c", 22.0, 25.0), ("supply_v", 3.7, 3.3)]
    unsubscribe()
    env.set(temperature_c=26.0)
    assert len(seen) == 2


def test_snapshot_is_a_copy():
    env = Environment()
    snap = env.snapshot()
    snap["temperature_c"] = 99.0
    env.set(humidity_rh=10.0)
    assert env["temperature_c"] == 22.0
    assert snap["humidity_rh"] == 45.0


def test_quantities_cannot_be_deleted():
    env = Environment()
    with pytest.raises(TypeError):
        del env["temperature_c"]
    assert env["temperature_c"] == 22.0
