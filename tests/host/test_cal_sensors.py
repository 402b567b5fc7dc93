"""host_tools.calibration.sensors: one spec per driver quantity with the driver's unit, the
accuracy bands the datasheets state, and the reference range check with its message."""

import ast
import math
from pathlib import Path

import pytest

from host_tools.calibration import sensors
from host_tools.calibration.sensors import (
    SensorSpec,
    accuracy,
    check_reference,
    in_range,
    require_spec,
    spec,
    unit_label,
)
from host_tools.errors import CalibrationError, ConfigError

DRIVERS = Path(__file__).resolve().parents[2] / "drivers"


def driver_quantities() -> dict[str, tuple[tuple[str, str], ...]]:
    """kind -> ((quantity, unit), ...) read from drivers/*.py's class attributes (the modules
    are MicroPython, so they are parsed, not imported)."""
    found = {}
    for path in sorted(DRIVERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            attrs = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                    name = stmt.targets[0].id
                    if name in ("KIND", "QUANTITIES", "UNITS"):
                        attrs[name] = ast.literal_eval(stmt.value)
            if len(attrs) == 3:
                found[attrs["KIND"]] = tuple(zip(attrs["QUANTITIES"], attrs["UNITS"], strict=True))
    return found


def test_the_drivers_are_found() -> None:
    # The parser above is the oracle of the next test: it must see all seven kinds.
    assert set(driver_quantities()) == {
        "sht4x",
        "bme280",
        "ds18b20",
        "scd41",
        "ina219",
        "soil",
        "battery",
    }


def test_one_spec_per_driver_quantity_with_the_drivers_unit() -> None:
    expected = {(kind, q): unit for kind, pairs in driver_quantities().items() for q, unit in pairs}
    assert {key: s.unit for key, s in sensors.SPECS.items()} == expected
    assert set(sensors.KINDS) == {kind for kind, _ in expected}


@pytest.mark.parametrize("key", sorted(sensors.SPECS))
def test_specs_are_consistent(key: tuple[str, str]) -> None:
    s = sensors.SPECS[key]
    assert (s.kind, s.quantity) == key
    assert s.low < s.high
    assert s.accuracy, "at least one band"
    for low, high, abs_error, rel_error in s.accuracy:
        assert low < high
        assert abs_error >= 0 and rel_error >= 0 and abs_error + rel_error > 0
    assert s.source
    # Stated accuracy is positive everywhere in the range, ends included.
    for value in (s.low, (s.low + s.high) / 2, s.high):
        assert s.accuracy_at(value) > 0


@pytest.mark.parametrize(
    "kind, quantity, value, expected",
    [
        # SHT40/41 typical: ±0.2 °C over 0..65 °C, ±0.4 towards the ends; ±1.8 %RH 10..90.
        ("sht4x", "temperature", 25.0, 0.2),
        ("sht4x", "temperature", 0.0, 0.2),
        ("sht4x", "temperature", 65.0, 0.2),
        ("sht4x", "temperature", -30.0, 0.4),
        ("sht4x", "temperature", 100.0, 0.4),
        ("sht4x", "humidity", 50.0, 1.8),
        ("sht4x", "humidity", 95.0, 3.5),
        ("sht4x", "humidity", 5.0, 3.5),
        # BME280: one band each; outside it the band's figure still applies.
        ("bme280", "temperature", 20.0, 1.0),
        ("bme280", "temperature", -20.0, 1.0),
        ("bme280", "humidity", 90.0, 3.0),
        ("bme280", "pressure", 1013.25, 1.0),
        # DS18B20 t_ERR.
        ("ds18b20", "temperature", 85.0, 0.5),
        ("ds18b20", "temperature", -10.0, 0.5),
        ("ds18b20", "temperature", 100.0, 2.0),
        ("ds18b20", "temperature", -40.0, 2.0),
        # SCD41 CO2: abs + rel * value by band.
        ("scd41", "co2", 800.0, 50.0 + 0.025 * 800),
        ("scd41", "co2", 1500.0, 50.0 + 0.03 * 1500),
        ("scd41", "co2", 3000.0, 40.0 + 0.05 * 3000),
        ("scd41", "temperature", 25.0, 0.8),
        ("scd41", "temperature", 50.0, 1.5),
        ("scd41", "humidity", 40.0, 6.0),
        ("scd41", "humidity", 80.0, 9.0),
        # INA219: ±0.5 % plus the absolute term.
        ("ina219", "voltage", 12.0, 0.004 + 0.005 * 12.0),
        ("ina219", "current", -1.0, 0.002 + 0.005 * 1.0),
        ("ina219", "power", 5.0, 0.01 + 0.01 * 5.0),
        # Soil: what Motekit states after an in-soil calibration.
        ("soil", "moisture", 0.0, 3.0),
        ("soil", "moisture", 55.0, 3.0),
        ("battery", "voltage", 4.0, 0.06 + 0.02 * 4.0),
    ],
)
def test_accuracy_by_band(kind: str, quantity: str, value: float, expected: float) -> None:
    assert accuracy(kind, quantity, value) == pytest.approx(expected, rel=1e-12)


def test_outside_all_bands_the_widest_band_applies() -> None:
    # SCD41 CO2 at 300 ppm is below every band; the widest is 2000..5000 ppm, ±(40 + 5 %).
    assert accuracy("scd41", "co2", 300.0) == pytest.approx(40.0 + 0.05 * 300.0)
    # SHT4x at 130 °C: the widest band is -40..125 at ±0.4, not the tighter 0..65 at ±0.2.
    assert accuracy("sht4x", "temperature", 130.0) == pytest.approx(0.4)
    # A made-up spec whose widest band is listed first and is not the loosest.
    s = SensorSpec("x", "y", "V", 0, 10, ((0, 1, 0.5, 0.0), (2, 10, 0.1, 0.0)), "test")
    assert s.accuracy_at(1.5) == pytest.approx(0.1)
    assert s.accuracy_at(0.5) == pytest.approx(0.5)


def test_the_first_containing_band_wins() -> None:
    # 1000 ppm sits at the edge of two SCD41 bands: the first listed (400..1000) states it.
    assert accuracy("scd41", "co2", 1000.0) == pytest.approx(50.0 + 0.025 * 1000)


@pytest.mark.parametrize(
    "kind, quantity, inside, outside",
    [
        ("sht4x", "temperature", (-40.0, 125.0, 20.0), (-40.01, 125.01, 130.0)),
        ("sht4x", "humidity", (0.0, 100.0), (-0.1, 100.1)),
        ("bme280", "temperature", (-40.0, 85.0), (-41.0, 86.0)),
        ("bme280", "pressure", (300.0, 1100.0), (299.0, 1101.0)),
        ("ds18b20", "temperature", (-55.0, 125.0), (-56.0, 126.0)),
        ("scd41", "co2", (400.0, 5000.0), (399.0, 5001.0)),
        ("scd41", "temperature", (-10.0, 60.0), (-11.0, 61.0)),
        ("ina219", "voltage", (0.0, 26.0), (-0.1, 26.1)),
        ("ina219", "current", (-3.2, 3.2), (-3.3, 3.3)),
        ("soil", "moisture", (0.0, 100.0), (-1.0, 101.0)),
        ("battery", "voltage", (0.0, 5.5), (-0.1, 5.6)),
    ],
)
def test_ranges(
    kind: str, quantity: str, inside: tuple[float, ...], outside: tuple[float, ...]
) -> None:
    for value in inside:
        assert in_range(kind, quantity, value), value
        check_reference(kind, quantity, value)
    for value in outside:
        assert not in_range(kind, quantity, value), value
        with pytest.raises(CalibrationError):
            check_reference(kind, quantity, value)


def test_check_reference_message() -> None:
    with pytest.raises(CalibrationError) as got:
        check_reference("sht4x", "temperature", 130.0)
    assert str(got.value) == "reference 130 °C is outside the sht4x's range -40..125 °C"
    assert "range" in got.value.hint
    assert got.value.exit_code == 9
    with pytest.raises(CalibrationError) as got:
        check_reference("soil", "moisture", 104.5)
    assert str(got.value) == "reference 104.5 % is outside the soil's range 0..100 %"
    with pytest.raises(CalibrationError) as got:
        check_reference("scd41", "co2", 350.0)
    assert str(got.value) == "reference 350 ppm is outside the scd41's range 400..5000 ppm"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_not_a_number_is_never_in_range(value: float) -> None:
    assert not in_range("sht4x", "humidity", value)
    with pytest.raises(CalibrationError, match="is not a number"):
        check_reference("sht4x", "humidity", value)


def test_unknown_pairs() -> None:
    assert spec("sht4x", "pressure") is None
    assert spec("nope", "temperature") is None
    assert spec("bme280", "pressure") is sensors.SPECS[("bme280", "pressure")]
    with pytest.raises(ConfigError) as got:
        accuracy("sht4x", "pressure", 1000.0)
    assert str(got.value) == "a sht4x does not measure pressure"
    assert got.value.hint == "a sht4x measures temperature, humidity"
    with pytest.raises(ConfigError) as got:
        in_range("nope", "temperature", 20.0)
    assert "'nope'" in str(got.value) and "sht4x" in got.value.hint
    with pytest.raises(ConfigError):
        check_reference("ds18b20", "humidity", 50.0)
    assert require_spec("soil", "moisture").unit == "%"


def test_unit_label() -> None:
    assert unit_label("C") == "°C"
    assert unit_label("%RH") == "%RH"
    assert unit_label("hPa") == "hPa"
