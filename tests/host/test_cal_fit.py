"""host_tools.calibration.fit: coefficients recovered from points made with known ones (exact,
noisy, with a temperature term), statistics against hand computations, every refusal with its
message, and predict()/to_entry() against the /cal.json formula."""

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from host_tools.calibration import fit
from host_tools.calibration.fit import Fit, Point, choose_kind, fit_points, min_points
from host_tools.errors import CalibrationError

# Coefficients used to make the points, per kind: (c0, c1, c2, c3) up to its degree.
TRUE = {
    "offset": (0.7,),
    "linear": (-1.5, 1.04),
    "poly2": (0.8, 0.97, 1.2e-3),
    "poly3": (0.5, 1.1, -2e-3, 1.5e-5),
}
TEMP_K = -0.05


def model(kind: str, coeffs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    if kind == "offset":
        return x + coeffs[0]
    return np.sum([c * x**i for i, c in enumerate(coeffs)], axis=0)


def entry_value(entry: dict[str, Any], raw: float, temperature: float | None) -> float:
    """The firmware's formula for a /cal.json version 2 entry (common contract), written out
    independently of Fit.predict."""
    value = sum(c * raw**i for i, c in enumerate(entry["poly"]))
    if "temp" in entry:
        assert temperature is not None
        value += entry["temp"]["k"] * (temperature - entry["temp"]["ref"])
    return value


def points_of(x: np.ndarray, y: np.ndarray, temps: np.ndarray | None = None) -> list[Point]:
    if temps is None:
        return [Point(raw=float(a), reference=float(b)) for a, b in zip(x, y, strict=True)]
    return [
        Point(raw=float(a), reference=float(b), temperature=float(t))
        for a, b, t in zip(x, y, temps, strict=True)
    ]


# ---- coefficients recovered -------------------------------------------------------------------


@pytest.mark.parametrize("kind", fit.KINDS)
def test_exact_points_recover_the_coefficients(kind: str) -> None:
    x = np.linspace(5.0, 95.0, 7)
    f = fit_points(points_of(x, model(kind, TRUE[kind], x)), kind)
    expected = (TRUE[kind][0], 1.0) if kind == "offset" else TRUE[kind]
    # Exact data: only rounding separates the fit from the truth (condition numbers < 1e4 here).
    assert f.poly == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert f.kind == kind and f.temp_k is None and f.temp_ref is None
    assert f.dof == 7 - (fit.DEGREES[kind] + 1)
    assert f.max_abs_error < 1e-9 and f.rmse < 1e-9 and f.r2 == pytest.approx(1.0, abs=1e-12)
    assert len(f.residuals) == 7


@pytest.mark.parametrize("kind", fit.KINDS)
def test_exact_points_with_a_temperature_term(kind: str) -> None:
    x = np.tile(np.linspace(10.0, 90.0, 5), 3)
    temps = np.repeat([15.0, 25.0, 35.0], 5)
    y = model(kind, TRUE[kind], x) + TEMP_K * (temps - 25.0)
    f = fit_points(points_of(x, y, temps), kind, temperature=True)
    assert f.temp_ref == 25.0  # the points' mean temperature
    assert f.temp_k == pytest.approx(TEMP_K, rel=1e-9)
    expected = (TRUE[kind][0], 1.0) if kind == "offset" else TRUE[kind]
    assert f.poly == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert f.dof == 15 - (fit.DEGREES[kind] + 2)


def test_the_temperature_reference_is_the_mean_rounded_to_hundredths() -> None:
    x = np.array([10.0, 20.0, 10.0, 20.0])
    temps = np.array([20.0, 20.0, 21.0, 22.333])
    y = 1.0 + 1.0 * x + 0.1 * (temps - 20.0)
    f = fit_points(points_of(x, y, temps), "linear", temperature=True)
    assert f.temp_ref == 20.83  # mean 20.83325
    # The fit is consistent with its own (rounded) reference: the data are reproduced.
    assert f.max_abs_error < 1e-9
    assert f.temp_k == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize("kind", fit.KINDS)
@pytest.mark.parametrize("temperature", [False, True])
def test_noisy_points_recover_the_coefficients_within_five_standard_errors(
    kind: str, temperature: bool
) -> None:
    sigma = 0.05
    rng = np.random.default_rng(20261121)
    x = np.tile(np.linspace(0.0, 100.0, 21), 2)
    temps = np.repeat([18.0, 32.0], 21) if temperature else None
    y = model(kind, TRUE[kind], x) + rng.normal(0.0, sigma, x.size)
    if temps is not None:
        y += TEMP_K * (temps - 25.0)
    f = fit_points(points_of(x, y, temps), kind, temperature=temperature)

    # The tolerance: 5 standard errors of each coefficient, from the known noise and the design
    # (covariance sigma^2 (A^T A)^-1), computed here independently of the module.
    columns = [x**i for i in range(fit.DEGREES[kind] + 1)]
    if temps is not None:
        columns.append(temps - 25.0)
    a = np.column_stack(columns)
    stderr = sigma * np.sqrt(np.diag(np.linalg.inv(a.T @ a)))
    got = [f.poly[0]] if kind == "offset" else list(f.poly)
    truth = list(TRUE[kind])
    if temperature:
        assert f.temp_k is not None
        got.append(f.temp_k)
        truth.append(TEMP_K)
    for g, t, se in zip(got, truth, stderr, strict=True):
        assert abs(g - t) <= 5 * se, (g, t, se)
    # The residual statistics reflect the noise: rmse near sigma, R² near 1 but not 1.
    assert 0.5 * sigma < f.rmse < 1.5 * sigma
    assert 0.99 < f.r2 < 1.0
    # The expanded uncertainty is about 2 sigma (the fit's standard error of prediction).
    assert 1.6 * sigma < f.uncertainty < 2.6 * sigma


@pytest.mark.parametrize("kind", ["linear", "poly2", "poly3"])
def test_agrees_with_numpy_polyfit(kind: str) -> None:
    rng = np.random.default_rng(7)
    x = np.linspace(950.0, 1050.0, 15)  # pressure-like: far from 0, the scaling matters
    y = x + rng.normal(0.0, 0.2, x.size) + 1e-4 * (x - 1000.0) ** 2
    f = fit_points(points_of(x, y), kind)
    oracle = np.polyfit(x, y, fit.DEGREES[kind])[::-1]
    predicted_oracle = np.polyval(oracle[::-1], x)
    # Compare predictions (the coefficients themselves are strongly correlated here).
    assert [f.predict(v) for v in x] == pytest.approx(list(predicted_oracle), abs=1e-6)


# ---- statistics by hand -----------------------------------------------------------------------


def test_two_point_linear_is_exact() -> None:
    points = [
        Point(raw=10.0, reference=10.5, raw_spread=0.12, reference_spread=0.06),
        Point(raw=20.0, reference=20.7, raw_spread=0.12, reference_spread=0.06),
    ]
    f = fit_points(points, "linear", reference_uncertainty=0.1)
    # slope 10.2 / 10, intercept 10.5 - 10.2
    assert f.poly == pytest.approx((0.3, 1.02), rel=1e-12)
    assert f.residuals == (0.0, 0.0)
    assert (f.r2, f.rmse, f.max_abs_error, f.dof) == (1.0, 0.0, 0.0, 0)
    # dof 0: only the reference (0.1) and the spreads as rectangular distributions of their
    # full width (spread / sqrt(12)), the raw one through the slope 1.02:
    # u^2 = 0.01 + 0.06^2/12 + (1.02 * 0.12)^2/12 = 0.01 + 0.0003 + 0.00124848
    assert f.uncertainty == pytest.approx(2 * math.sqrt(0.01154848), rel=1e-9)
    # The design [[1, 10], [1, 20]] scaled to unit columns.
    scaled = np.array([[1, 10], [1, 20]]) / np.array([math.sqrt(2), math.sqrt(500)])
    assert f.condition == pytest.approx(np.linalg.cond(scaled), rel=1e-9)


def test_three_point_linear_by_hand() -> None:
    # x 0, 1, 2; y 0, 1, 3: slope Sxy/Sxx = 3/2, intercept 4/3 - 3/2 = -1/6.
    points = [Point(0.0, 0.0), Point(1.0, 1.0), Point(2.0, 3.0)]
    f = fit_points(points, "linear")
    assert f.poly == pytest.approx((-1 / 6, 1.5), rel=1e-12)
    assert f.residuals == pytest.approx((1 / 6, -1 / 3, 1 / 6), rel=1e-12)
    # SS_res 1/6, SS_tot 14/3: R² = 1 - 1/28
    assert f.r2 == pytest.approx(27 / 28, rel=1e-12)
    assert f.rmse == pytest.approx(math.sqrt(1 / 18), rel=1e-12)
    assert f.max_abs_error == pytest.approx(1 / 3, rel=1e-12)
    assert f.dof == 1
    # s² = 1/6; leverages 1/3 + (x - 1)²/2 = 5/6, 1/3, 5/6; the largest u² = s²(1 + 5/6) = 11/36
    assert f.uncertainty == pytest.approx(2 * math.sqrt(11 / 36), rel=1e-12)
    # With a reference of standard uncertainty 0.5: u² = 11/36 + 1/4 = 20/36.
    g = fit_points(points, "linear", reference_uncertainty=0.5)
    assert g.uncertainty == pytest.approx(2 * math.sqrt(20 / 36), rel=1e-12)
    assert g.poly == f.poly


def test_one_point_offset() -> None:
    f = fit_points([Point(raw=20.0, reference=20.3)], "offset", reference_uncertainty=0.05)
    assert f.poly == pytest.approx((0.3, 1.0), rel=1e-12)
    assert f.poly[1] == 1.0
    assert (f.residuals, f.r2, f.dof, f.max_abs_error) == ((0.0,), 1.0, 0, 0.0)
    assert f.uncertainty == pytest.approx(0.1, rel=1e-12)
    assert f.condition == pytest.approx(1.0)
    assert f.predict(25.0) == pytest.approx(25.3)


def test_three_point_offset_by_hand() -> None:
    points = [Point(10.0, 10.1), Point(20.0, 20.3), Point(30.0, 30.2)]
    f = fit_points(points, "offset")
    # c0 = mean(0.1, 0.3, 0.2); residuals -0.1, 0.1, 0
    assert f.poly[0] == pytest.approx(0.2, rel=1e-12)
    assert f.residuals == pytest.approx((-0.1, 0.1, 0.0), abs=1e-12)
    assert f.dof == 2
    # s² = 0.02 / 2, leverage 1/3 each: u² = 0.01 * 4/3
    assert f.uncertainty == pytest.approx(2 * math.sqrt(0.04 / 3), rel=1e-9)
    # SS_tot of the references around 20.2: 102.01 + 0.01 + 100
    assert f.r2 == pytest.approx(1 - 0.02 / 202.02, rel=1e-12)


def test_r2_when_the_references_do_not_vary() -> None:
    # Repeated points at one reference: SS_tot is 0. With residuals R² is 0, not NaN.
    f = fit_points([Point(20.0, 20.0), Point(20.2, 20.0)], "offset")
    assert f.poly[0] == pytest.approx(-0.1)
    assert f.residuals == pytest.approx((0.1, -0.1))
    assert f.r2 == 0.0
    # Without residuals R² is 1.
    g = fit_points([Point(20.0, 20.5), Point(20.0, 20.5)], "offset")
    assert (g.r2, g.max_abs_error, g.dof) == (1.0, 0.0, 1)


def test_the_raw_spread_counts_through_the_slope() -> None:
    # Same raw spread, slope 1 vs slope 3: the raw term's share triples.
    one = fit_points([Point(0.0, 0.0, raw_spread=0.6), Point(10.0, 10.0)], "linear")
    three = fit_points([Point(0.0, 0.0, raw_spread=0.6), Point(10.0, 30.0)], "linear")
    assert one.uncertainty == pytest.approx(2 * 0.6 / math.sqrt(12))
    assert three.uncertainty == pytest.approx(2 * 3 * 0.6 / math.sqrt(12))


def test_a_spread_the_collector_did_not_measure_counts_as_none() -> None:
    # stability.Collected gives reference_spread None without a live reference.
    p = Point(1.0, 2.0, reference_spread=None)
    f = fit_points([p], "offset", reference_uncertainty=0.1)
    assert f.uncertainty == pytest.approx(0.2)


# ---- predict and to_entry ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", fit.KINDS)
def test_predict_and_entry_round_trip(kind: str) -> None:
    rng = np.random.default_rng(3)
    x = np.tile(np.linspace(10.0, 90.0, 6), 2)
    temps = np.repeat([20.0, 30.0], 6)
    y = model(kind, TRUE[kind], x) + TEMP_K * (temps - 25.0) + rng.normal(0, 0.1, x.size)
    points = points_of(x, y, temps)
    f = fit_points(points, kind, temperature=True)
    entry = f.to_entry("sht41.temperature")
    assert set(entry) == {"poly", "temp"}
    assert entry["temp"] == {"ch": "sht41.temperature", "ref": f.temp_ref, "k": f.temp_k}
    assert len(entry["poly"]) == fit.DEGREES[kind] + 1 + (1 if kind == "offset" else 0)
    assert all(type(c) is float for c in entry["poly"])
    for p, r in zip(points, f.residuals, strict=True):
        predicted = f.predict(p.raw, p.temperature)
        assert predicted == pytest.approx(p.reference - r, abs=1e-9)
        assert entry_value(entry, p.raw, p.temperature) == pytest.approx(predicted, abs=1e-9)
    # A fresh fit made from the entry's own predictions returns the same entry.
    again = fit_points(
        [Point(p.raw, f.predict(p.raw, p.temperature), p.temperature) for p in points],
        kind,
        temperature=True,
    )
    assert again.poly == pytest.approx(f.poly, rel=1e-9, abs=1e-12)
    assert again.temp_k == pytest.approx(f.temp_k, rel=1e-9)


def test_entry_without_a_temperature_term() -> None:
    f = fit_points([Point(10.0, 11.0), Point(20.0, 21.5)], "linear")
    assert f.to_entry(None) == {"poly": [pytest.approx(0.5), pytest.approx(1.05)]}
    # A temperature channel given for a fit without a term is not written.
    assert "temp" not in f.to_entry("sht41.temperature")
    assert entry_value(f.to_entry(), 15.0, None) == pytest.approx(f.predict(15.0))
    assert f.to_entry()["poly"][0] == f.poly[0]
    # The entry is plain JSON.
    import json

    assert json.loads(json.dumps(f.to_entry())) == f.to_entry()


def test_a_temperature_term_needs_its_channel_and_reading() -> None:
    points = [Point(10.0, 10.0, 20.0), Point(10.0, 10.5, 30.0)]
    f = fit_points(points, "offset", temperature=True)
    assert f.temp_k == pytest.approx(0.05) and f.temp_ref == 25.0
    with pytest.raises(CalibrationError, match="needs the temperature"):
        f.predict(10.0)
    with pytest.raises(CalibrationError, match="no temperature channel"):
        f.to_entry(None)
    assert f.predict(10.0, 25.0) == pytest.approx(10.25)


def test_fit_is_frozen() -> None:
    f = fit_points([Point(1.0, 2.0)], "offset")
    assert isinstance(f, Fit)
    with pytest.raises(AttributeError):
        f.r2 = 0.5  # type: ignore[misc]


# ---- choosing -----------------------------------------------------------------------------------


def test_choose_kind() -> None:
    assert choose_kind(1) == "offset"
    assert choose_kind(2) == "linear"
    assert choose_kind(9) == "linear"
    with pytest.raises(CalibrationError, match="no points"):
        choose_kind(0)


def test_min_points() -> None:
    assert [min_points(k) for k in fit.KINDS] == [1, 2, 3, 4]
    assert [min_points(k, temperature=True) for k in fit.KINDS] == [2, 3, 4, 5]
    with pytest.raises(CalibrationError, match="unknown fit kind"):
        min_points("spline")


# ---- refusals -----------------------------------------------------------------------------------


def refused(points: list[Point], kind: str = "linear", **kw: Any) -> CalibrationError:
    with pytest.raises(CalibrationError) as got:
        fit_points(points, kind, **kw)
    assert got.value.exit_code == 9
    assert got.value.hint, "every refusal says what to do"
    return got.value


GOOD = [Point(10.0, 10.2, 20.0), Point(20.0, 20.1, 21.0), Point(30.0, 30.3, 22.0)]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reference", math.nan, "point 3: reference is nan"),
        ("reference", math.inf, "point 3: reference is inf"),
        ("raw", -math.inf, "point 3: raw is -inf"),
        ("raw", math.nan, "point 3: raw is nan"),
        ("temperature", math.nan, "point 3: temperature is nan"),
        ("raw_spread", math.nan, "point 3: raw_spread is nan"),
        ("reference_spread", math.inf, "point 3: reference_spread is inf"),
        ("raw_spread", -0.1, "point 3: raw_spread is negative (-0.1)"),
        ("raw", "12", None),  # a numeric string is a number
        ("raw", None, "point 3: raw is not a number (None)"),
    ],
)
def test_refuses_values_that_are_not_finite_numbers(
    field: str, value: Any, message: str | None
) -> None:
    bad: dict[str, Any] = dict(raw=30.0, reference=30.3, temperature=22.0)
    bad[field] = value
    points = [*GOOD[:2], Point(**bad)]
    if message is None:
        fit_points(points, "linear", temperature=True)
        return
    assert str(refused(points, temperature=True)) == message


def test_a_nan_temperature_is_ignored_without_a_temperature_term() -> None:
    points = [*GOOD[:2], Point(30.0, 30.3, math.nan)]
    assert fit_points(points, "linear").dof == 1


def test_refuses_an_unknown_kind_and_no_points() -> None:
    e = refused(GOOD, "cubic")
    assert str(e) == "unknown fit kind 'cubic'"
    assert e.hint == "one of offset, linear, poly2, poly3"
    assert str(refused([], "linear")) == "no points to fit"


def test_refuses_a_bad_reference_uncertainty() -> None:
    assert "negative" in str(refused(GOOD, reference_uncertainty=-1.0))
    assert "nan" in str(refused(GOOD, reference_uncertainty=math.nan))


@pytest.mark.parametrize(
    "kind, raws, message, hint",
    [
        ("linear", [20.0, 20.0], "a linear fit needs at least 2 distinct raw values; got 1",
         "--fit offset"),
        ("poly2", [10.0, 20.0, 10.0], "a poly2 fit needs at least 3 distinct raw values; got 2",
         "--fit linear"),
        ("poly3", [1.0, 2.0, 3.0, 3.0],
         "a poly3 fit needs at least 4 distinct raw values; got 3", "--fit poly2"),
    ],
)  # fmt: skip
def test_refuses_too_few_distinct_raw_values(
    kind: str, raws: list[float], message: str, hint: str
) -> None:
    e = refused([Point(r, r + 0.1 * i) for i, r in enumerate(raws)], kind)
    assert str(e) == message
    assert hint in e.hint


def test_enough_distinct_raw_values_pass() -> None:
    # The refusal's boundary: exactly the distinct values each kind needs.
    for kind in fit.KINDS:
        n = fit.DEGREES[kind] + 1
        points = [Point(float(i), 2.0 * i + 1.0 if kind != "offset" else i + 1.0) for i in range(n)]
        f = fit_points(points, kind)
        assert f.dof == 0 and f.max_abs_error == 0.0
        assert [f.predict(p.raw) for p in points] == pytest.approx([p.reference for p in points])


def test_a_temperature_term_needs_one_more_distinct_point() -> None:
    # Two raw values at two temperatures, but only two distinct (raw, T) pairs: linear + k
    # has three parameters.
    points = [Point(10.0, 10.0, 20.0), Point(20.0, 20.0, 25.0), Point(20.0, 20.0, 25.0)]
    e = refused(points, "linear", temperature=True)
    assert str(e) == (
        "a linear fit with a temperature term needs at least 3 points with distinct raw values "
        "or temperatures; got 2"
    )
    assert "--fit offset" in e.hint


def test_a_temperature_term_needs_temperatures_at_every_point() -> None:
    points = [Point(10.0, 10.0, 20.0), Point(20.0, 20.0), Point(30.0, 30.0, 22.0)]
    e = refused(points, "linear", temperature=True)
    assert str(e) == "point 2: no temperature"


def test_a_temperature_term_needs_a_temperature_span() -> None:
    points = [Point(10.0, 10.0, 20.0), Point(20.0, 20.0, 20.9), Point(30.0, 30.0, 20.5)]
    e = refused(points, "linear", temperature=True)
    assert str(e).startswith("the points do not span temperatures: 20..20.9, less than 1 °C")
    assert "temperature term" in e.hint
    # 1 °C apart is enough.
    points[1] = Point(20.0, 20.0, 21.0)
    assert fit_points(points, "linear", temperature=True).dof == 0


def test_refuses_a_temperature_that_follows_the_raw_value() -> None:
    # The temperature rises with the setpoint: its column is the raw column, shifted.
    points = [Point(float(x), 1.01 * x, 20.0 + x / 10) for x in (10, 20, 30, 40)]
    e = refused(points, "linear", temperature=True)
    assert str(e).startswith(
        "the linear fit's temperature term cannot be told apart from the raw reading"
    )
    assert "same setpoint at different temperatures" in e.hint


def test_refuses_raw_values_spanning_a_tiny_fraction_of_their_magnitude() -> None:
    points = [Point(1000.0, 1000.0), Point(1000.005, 1000.2)]
    e = refused(points, "linear")
    assert str(e) == (
        "the linear fit is ill-conditioned: the raw values span only 0.005 around 1000, less "
        "than 1e-05 of their magnitude"
    )
    assert "further apart" in e.hint
    # An offset does not need a span.
    assert fit_points(points, "offset").dof == 1


def test_refuses_an_ill_conditioned_design() -> None:
    # A cubic over 1000..1002 hPa: the scaled powers are almost parallel.
    x = np.array([1000.0, 1000.5, 1001.0, 1001.5, 1002.0])
    e = refused(points_of(x, x + 0.1), "poly3")
    assert str(e).startswith("the poly3 fit is ill-conditioned: condition number ")
    assert "(limit 1e+08)" in str(e)
    assert "--fit poly2" in e.hint and "setpoints spread wider" in e.hint
    # The same points fit linearly.
    f = fit_points(points_of(x, x + 0.1), "linear")
    assert f.condition < 1e8
    assert f.poly == pytest.approx((0.1, 1.0), abs=1e-6)


def test_the_condition_limit_is_where_it_says() -> None:
    # A poly2 over a narrowing window around 1000: condition about 4e3, 4e5, 4e7, 4e9 (computed
    # here independently); the refusal follows the 1e8 limit, and both sides are seen.
    outcomes = []
    for half_width in (50.0, 5.0, 0.5, 0.05):
        x = np.linspace(1000.0 - half_width, 1000.0 + half_width, 5)
        a = np.column_stack([x**0, x, x**2])
        cond = np.linalg.cond(a / np.linalg.norm(a, axis=0))
        if cond > fit.MAX_CONDITION:
            assert "condition number" in str(refused(points_of(x, x), "poly2"))
        else:
            assert fit_points(points_of(x, x), "poly2").condition == pytest.approx(cond)
        outcomes.append(cond > fit.MAX_CONDITION)
    assert outcomes == [False, False, False, True]


def test_refuses_a_reference_outside_the_sensor_range() -> None:
    points = [Point(20.0, 20.0), Point(120.0, 130.0)]
    e = refused(points, "linear", sensor_range=(-40.0, 125.0))
    assert str(e) == "point 2: reference 130 is outside the sensor's range -40..125"
    assert fit_points(points, "linear", sensor_range=(-40.0, 130.0)).dof == 0


def test_refuses_coefficients_cal_json_cannot_hold() -> None:
    # Pressure in Pa fitted against hPa readings around 1000: c0 is fine, but a poly2 makes c0
    # far beyond 1e6.
    x = np.array([990.0, 1000.0, 1010.0])
    e = refused(points_of(x, 100.0 * x + 5e4 * (x - 1000.0) ** 2), "poly2")
    assert str(e).startswith("the poly2 fit's coefficient c0 = ")
    assert "(|c| <= 1e+06)" in str(e)
    # A temperature coefficient beyond 1e3.
    points = [Point(10.0, 10.0, 20.0), Point(10.0, 3000.0, 21.0)]
    e = refused(points, "offset", temperature=True)
    assert str(e).startswith("the offset fit's temperature coefficient k = 2990")


# ---- properties ---------------------------------------------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    c0=finite,
    c1=st.floats(0.1, 10.0),
    raws=st.lists(st.floats(-500.0, 500.0), min_size=2, max_size=12, unique=True),
)
def test_linear_recovers_any_line(c0: float, c1: float, raws: list[float]) -> None:
    assume(max(raws) - min(raws) > 1.0)
    x = np.array(raws)
    f = fit_points(points_of(x, c0 + c1 * x), "linear")
    assert f.poly == pytest.approx((c0, c1), rel=1e-7, abs=1e-7)
    assert f.max_abs_error <= 1e-7 * max(1.0, float(np.max(np.abs(c0 + c1 * x))))


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(fit.KINDS),
    data=st.lists(
        st.tuples(st.floats(0.0, 100.0), st.floats(-50.0, 150.0)), min_size=5, max_size=15
    ),
    u_ref=st.floats(0.0, 2.0),
)
def test_statistics_hold_for_any_points(
    kind: str, data: list[tuple[float, float]], u_ref: float
) -> None:
    x = np.array([d[0] for d in data])
    assume(len(set(x.tolist())) >= fit.DEGREES[kind] + 1)
    assume(float(np.max(x) - np.min(x)) > 1.0)
    points = [Point(a, b) for a, b in data]
    try:
        f = fit_points(points, kind, reference_uncertainty=u_ref)
    except CalibrationError as e:
        assert "ill-conditioned" in str(e) or "beyond what /cal.json holds" in str(e)
        return
    residuals = np.array(f.residuals)
    ref = np.array([p.reference for p in points])
    # Least squares with an intercept: residuals sum to zero.
    assert abs(residuals.sum()) <= 1e-6 * max(1.0, float(np.abs(ref).max())) * len(points)
    assert f.r2 <= 1.0 + 1e-12
    assert f.rmse == pytest.approx(math.sqrt(float(np.mean(residuals**2))), rel=1e-9, abs=1e-12)
    assert f.max_abs_error == pytest.approx(float(np.max(np.abs(residuals))), abs=1e-12)
    assert f.uncertainty >= 2 * u_ref - 1e-12
    # With dof > 0 the fit's scatter enters: at least 2 s, s² = SS_res / dof.
    if f.dof > 0:
        s = math.sqrt(float(np.sum(residuals**2)) / f.dof)
        assert f.uncertainty >= 2 * s * (1 - 1e-9)
    for p, r in zip(points, f.residuals, strict=True):
        assert f.predict(p.raw) + r == pytest.approx(p.reference, abs=1e-6)
