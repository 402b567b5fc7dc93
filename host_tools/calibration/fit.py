"""Least-squares calibration fits (numpy), their statistics, and the fits refused.

    points = [Point(raw=20.1, reference=20.0), Point(raw=40.3, reference=40.0)]
    f = fit_points(points, "linear", reference_uncertainty=0.05, sensor_range=(-40, 125))
    f.poly, f.r2, f.uncertainty           # (c0, c1), 1.0, expanded uncertainty (k=2)
    f.predict(30.0)                       # c0 + c1*30
    f.to_entry(None)                      # {"poly": [c0, c1]}: a /cal.json version 2 entry

Models, x = the channel's raw (filtered, uncalibrated) reading, T = the temperature channel's:

    offset   y = x + c0                          poly (c0, 1.0): c1 is fixed, not fitted
    linear   y = c0 + c1*x
    poly2    y = c0 + c1*x + c2*x^2
    poly3    y = c0 + c1*x + c2*x^2 + c3*x^3
    temperature=True adds  + k*(T - T_ref),  T_ref = the points' mean temperature (0.01 steps)

Ascending powers of the raw reading, not centred, because that is what the node evaluates
(/cal.json "poly"). The design matrix A (one row per point, one column per fitted parameter;
for offset the target is reference - raw) is solved with np.linalg.lstsq after scaling each
column to unit 2-norm, which removes the spread of magnitudes between x^0 and x^3; its
condition number (2-norm) is `condition`.

Statistics, with n points, p fitted parameters, dof = n - p, residual r_i = reference_i -
predicted_i:

    R^2   = 1 - SS_res / SS_tot,  SS_tot = sum (reference_i - mean reference)^2
            (1.0 when SS_tot and SS_res are both 0; 0.0 when only SS_tot is)
    rmse  = sqrt(SS_res / n),  max_abs_error = max |r_i|

Uncertainty (expanded, k = 2), the largest over the points of the combined standard uncertainty
of a calibrated reading there (GUM, root sum of squares of independent terms):

    u_i^2 = s^2 * (1 + h_i)                   fit: s^2 = SS_res / dof (residual variance with
                                              the degrees-of-freedom correction); s^2 * h_i is
                                              the parameter covariance at the point,
                                              h_i = a_i^T (A^T A)^-1 a_i (its leverage); the 1 is
                                              a new reading's own scatter. Left out when
                                              dof == 0: an exact fit says nothing about scatter.
          + u_ref^2                           the reference's standard uncertainty
                                              (`reference_uncertainty`, k = 1)
          + (reference_spread_i / sqrt(12))^2 the reference's spread over the point's window
          + (p'(x_i) * raw_spread_i / sqrt(12))^2
                                              the raw spread, through the fit's slope there
    uncertainty = 2 * max_i u_i

Spreads are max - min over the stable window (stability.py), taken as a rectangular
distribution of that full width: standard uncertainty spread / sqrt(12). They are not divided by
sqrt(n): consecutive readings of a filtered channel are correlated, so n readings do not
average their scatter away n-fold. With few degrees of freedom k = 2 is optimistic (Student's
t95 for dof = 2 is 4.3); the certificate shows dof beside it.

Refusals (CalibrationError with a hint): an unknown kind; no points; a raw, reference,
temperature or spread that is not a finite number; a reference outside `sensor_range`; too few
distinct raw values for the kind (offset 1, linear 2, poly2 3, poly3 4) and, with a temperature
term, one more distinct (raw, temperature) point and temperatures spanning at least 1 °C; raw
values spanning less than MIN_RELATIVE_SPAN of their magnitude; a column-scaled design matrix
with a condition number above MAX_CONDITION (saying whether the temperature term is to blame);
coefficients beyond what /cal.json holds (|c| <= 1e6, |k| <= 1e3).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from host_tools.errors import CalibrationError

KINDS = ("offset", "linear", "poly2", "poly3")
DEGREES = {"offset": 0, "linear": 1, "poly2": 2, "poly3": 3}
# Above this the column-scaled design matrix loses more than half of a double's digits: the
# coefficients are decided by rounding and the points' noise, not by the points.
MAX_CONDITION = 1e8
# Raw values closer together than this fraction of their magnitude are the same reading: it is
# at most one resolution step of any driver at its usual magnitude (0.01 hPa at 1000 hPa is
# 1e-5; 0.01 °C at 25 °C is 4e-4; 1 ppm at 400 ppm is 2.5e-3), so a slope through them is noise.
MIN_RELATIVE_SPAN = 1e-5
# A temperature term needs points this far apart in temperature (°C).
MIN_TEMPERATURE_SPAN = 1.0
# /cal.json version 2 limits on the numbers the node accepts.
MAX_COEFFICIENT = 1e6
MAX_TEMP_K = 1e3
K_EXPANDED = 2.0
_SQRT12 = math.sqrt(12.0)


@dataclass(frozen=True)
class Point:
    """One calibration point: the means over a stable window of the channel's raw reading, the
    reference and (for a temperature term) the temperature channel; spreads are max - min over
    that window, n the readings in it, t their mean time (time.time()). A reference_spread of
    None (a reference read once, not over the window) counts as 0."""

    raw: float
    reference: float
    temperature: float | None = None
    raw_spread: float = 0.0
    reference_spread: float | None = 0.0
    n: int = 1
    t: float = 0.0


@dataclass(frozen=True)
class Fit:
    """A fit's coefficients and statistics (module docstring: models and formulas)."""

    kind: str
    poly: tuple[float, ...]  # c0..cn, ascending powers of raw; offset: (c0, 1.0)
    temp_k: float | None  # per unit of temperature; None without a temperature term
    temp_ref: float | None
    residuals: tuple[float, ...]  # reference - predicted, per point, in the points' order
    r2: float
    rmse: float
    max_abs_error: float
    uncertainty: float  # expanded, k = 2
    dof: int
    condition: float  # of the column-scaled design matrix

    def predict(self, raw: float, temperature: float | None = None) -> float:
        """The calibrated value of `raw` (with the temperature channel's reading when the fit has
        a temperature term), as the node computes it from to_entry()'s entry."""
        value = 0.0
        for c in reversed(self.poly):
            value = value * raw + c
        if self.temp_k is not None:
            if temperature is None:
                raise CalibrationError(
                    "this fit has a temperature term: predicting needs the temperature",
                    hint="give the temperature channel's reading",
                )
            assert self.temp_ref is not None
            value += self.temp_k * (temperature - self.temp_ref)
        return value

    def to_entry(self, temp_channel: str | None = None) -> dict[str, Any]:
        """The fit as a /cal.json version 2 entry: {"poly": [...]} and, with a temperature term,
        "temp": {"ch": temp_channel, "ref": T_ref, "k": k}. The host adds id, at and ref."""
        entry: dict[str, Any] = {"poly": [float(c) for c in self.poly]}
        if self.temp_k is not None:
            if not temp_channel:
                raise CalibrationError(
                    "this fit has a temperature term but no temperature channel was named",
                    hint="name the channel the temperatures were read from, e.g. sht41.temperature",
                )
            entry["temp"] = {"ch": temp_channel, "ref": self.temp_ref, "k": self.temp_k}
        return entry


def choose_kind(n_distinct: int) -> str:
    """The fit when the user names none: an offset for one distinct raw value, else linear."""
    if n_distinct < 1:
        raise CalibrationError("no points to fit", hint="collect at least one calibration point")
    return "offset" if n_distinct == 1 else "linear"


def min_points(kind: str, temperature: bool = False) -> int:
    """How many distinct points `kind` needs (one more with a temperature term)."""
    return _degree(kind) + 1 + (1 if temperature else 0)


def fit_points(
    points: Sequence[Point],
    kind: str,
    *,
    temperature: bool = False,
    reference_uncertainty: float = 0.0,
    sensor_range: tuple[float, float] | None = None,
) -> Fit:
    """Fit `kind` through `points` (reference against raw), or raise CalibrationError saying
    why not. `reference_uncertainty` is the reference's standard uncertainty (k = 1) in the
    quantity's unit; `sensor_range` (low, high) refuses references outside it."""
    degree = _degree(kind)
    if not points:
        raise CalibrationError("no points to fit", hint="collect at least one calibration point")
    u_ref = _finite_nonnegative("reference_uncertainty", reference_uncertainty)
    raw, ref, temps, raw_spread, ref_spread = _checked(points, temperature)
    if sensor_range is not None:
        _check_range(ref, sensor_range)
    _check_distinct(kind, degree, raw, temps)
    if degree >= 1:
        _check_span(kind, raw)

    temp_ref = None
    if temps is not None:
        temp_ref = round(float(np.mean(temps)), 2)
    design, target = _design(degree, raw, ref, temps, temp_ref)
    norms = np.linalg.norm(design, axis=0)
    norms[norms == 0.0] = 1.0
    scaled = design / norms
    condition = float(np.linalg.cond(scaled))
    if not condition <= MAX_CONDITION:  # also NaN or inf
        _refuse_condition(kind, degree, scaled, condition, temps is not None)
    solution, *_ = np.linalg.lstsq(scaled, target, rcond=None)
    params = solution / norms

    if degree == 0:
        poly: tuple[float, ...] = (float(params[0]), 1.0)
    else:
        poly = tuple(float(c) for c in params[: degree + 1])
    temp_k = float(params[-1]) if temps is not None else None
    _check_coefficients(kind, poly, temp_k)

    n, p = len(raw), design.shape[1]
    dof = n - p
    predicted = design @ params + (raw if degree == 0 else 0.0)
    residuals = ref - predicted
    scale = max(1.0, float(np.max(np.abs(ref))))
    if dof == 0:
        # An exact fit: what is left is rounding, not a deviation of the points.
        residuals[np.abs(residuals) <= 1e-9 * scale] = 0.0
    ss_res = float(np.sum(residuals**2))
    ss_tot = float(np.sum((ref - np.mean(ref)) ** 2))
    if ss_tot > 0.0:
        r2 = 1.0 - ss_res / ss_tot
    else:
        r2 = 1.0 if ss_res <= n * (1e-9 * scale) ** 2 else 0.0

    variance = np.full(n, u_ref**2) + (ref_spread / _SQRT12) ** 2
    slope = _slope(poly, raw)
    variance += (slope * raw_spread / _SQRT12) ** 2
    if dof > 0:
        s2 = ss_res / dof
        q, _r = np.linalg.qr(scaled, mode="reduced")
        leverage = np.sum(q**2, axis=1)
        variance += s2 * (1.0 + leverage)
    uncertainty = K_EXPANDED * float(np.sqrt(np.max(variance)))

    return Fit(
        kind=kind,
        poly=poly,
        temp_k=temp_k,
        temp_ref=temp_ref,
        residuals=tuple(float(r) for r in residuals),
        r2=float(r2),
        rmse=math.sqrt(ss_res / n),
        max_abs_error=float(np.max(np.abs(residuals))),
        uncertainty=uncertainty,
        dof=dof,
        condition=condition,
    )


# ---- checks ---------------------------------------------------------------------------------


def _degree(kind: str) -> int:
    if kind not in DEGREES:
        raise CalibrationError(f"unknown fit kind {kind!r}", hint=f"one of {', '.join(KINDS)}")
    return DEGREES[kind]


def _number(where: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"{where} is not a number ({value!r})", hint="check the readings and the reference"
        ) from None
    if not math.isfinite(number):
        raise CalibrationError(
            f"{where} is {number}",
            hint="a reading or reference that is not a finite number cannot be fitted: "
            "check the sensor and the reference, then take the point again",
        )
    return number


def _finite_nonnegative(where: str, value: Any) -> float:
    number = _number(where, value)
    if number < 0.0:
        raise CalibrationError(f"{where} is negative ({number:g})", hint="it is a spread or a ±")
    return number


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]


def _checked(points: Sequence[Point], temperature: bool) -> Arrays:
    raw, ref, temps, raw_spread, ref_spread = [], [], [], [], []
    for i, p in enumerate(points, start=1):
        raw.append(_number(f"point {i}: raw", p.raw))
        ref.append(_number(f"point {i}: reference", p.reference))
        # A spread the collector did not measure (None) counts as none.
        raw_spread.append(_finite_nonnegative(f"point {i}: raw_spread", p.raw_spread or 0.0))
        ref_spread.append(
            _finite_nonnegative(f"point {i}: reference_spread", p.reference_spread or 0.0)
        )
        if temperature:
            if p.temperature is None:
                raise CalibrationError(
                    f"point {i}: no temperature",
                    hint="a temperature term needs the temperature channel's reading at every "
                    "point; check that the channel is in the node's samples",
                )
            temps.append(_number(f"point {i}: temperature", p.temperature))
    return (
        np.array(raw, dtype=float),
        np.array(ref, dtype=float),
        np.array(temps, dtype=float) if temperature else None,
        np.array(raw_spread, dtype=float),
        np.array(ref_spread, dtype=float),
    )


def _check_range(ref: np.ndarray, sensor_range: tuple[float, float]) -> None:
    low, high = sensor_range
    for i, value in enumerate(ref, start=1):
        if not low <= value <= high:
            raise CalibrationError(
                f"point {i}: reference {value:g} is outside the sensor's range {low:g}..{high:g}",
                hint="calibrate at setpoints inside the sensor's range (and check the "
                "reference's unit)",
            )


def _lower_kinds(degree: int, usable: int) -> str:
    """', or use --fit X' naming the richest kind `usable` distinct values allow, if any."""
    fits = [k for k in KINDS if DEGREES[k] < degree and DEGREES[k] + 1 <= usable]
    return f", or use --fit {fits[-1]}" if fits else ""


def _check_distinct(kind: str, degree: int, raw: np.ndarray, temps: np.ndarray | None) -> None:
    distinct = len(set(raw.tolist()))
    if distinct < degree + 1:
        raise CalibrationError(
            f"a {kind} fit needs at least {degree + 1} distinct raw values; got {distinct}",
            hint="take points at more setpoints" + _lower_kinds(degree, distinct),
        )
    if temps is None:
        return
    pairs = len(set(zip(raw.tolist(), temps.tolist(), strict=True)))
    if pairs < degree + 2:
        raise CalibrationError(
            f"a {kind} fit with a temperature term needs at least {degree + 2} points with "
            f"distinct raw values or temperatures; got {pairs}",
            hint="take another point at another temperature" + _lower_kinds(degree, pairs - 1),
        )
    low, high = float(np.min(temps)), float(np.max(temps))
    if high - low < MIN_TEMPERATURE_SPAN:
        raise CalibrationError(
            f"the points do not span temperatures: {low:.4g}..{high:.4g}, less than "
            f"{MIN_TEMPERATURE_SPAN:g} °C apart, so a temperature term cannot be fitted",
            hint="take points at temperatures at least 1 °C apart, or fit without the "
            "temperature term",
        )


def _check_span(kind: str, raw: np.ndarray) -> None:
    span = float(np.max(raw) - np.min(raw))
    magnitude = float(np.max(np.abs(raw)))
    if span < MIN_RELATIVE_SPAN * magnitude:
        raise CalibrationError(
            f"the {kind} fit is ill-conditioned: the raw values span only {span:.3g} around "
            f"{magnitude:.6g}, less than {MIN_RELATIVE_SPAN:g} of their magnitude",
            hint="take points at setpoints further apart, or use --fit offset",
        )


def _refuse_condition(
    kind: str, degree: int, scaled: np.ndarray, condition: float, with_temp: bool
) -> None:
    if with_temp and np.linalg.cond(scaled[:, :-1]) <= MAX_CONDITION:
        raise CalibrationError(
            f"the {kind} fit's temperature term cannot be told apart from the raw reading: the "
            f"points' temperatures change with it (condition number {condition:.3g}, limit "
            f"{MAX_CONDITION:.0e})",
            hint="take points at the same setpoint at different temperatures, or fit without "
            "the temperature term",
        )
    fewer = [k for k in KINDS if DEGREES[k] < degree]
    raise CalibrationError(
        f"the {kind} fit is ill-conditioned: condition number {condition:.3g} of the scaled "
        f"design matrix (limit {MAX_CONDITION:.0e})",
        hint=(f"use fewer degrees (--fit {fewer[-1]}) or " if fewer else "use ")
        + "setpoints spread wider across the range",
    )


def _check_coefficients(kind: str, poly: tuple[float, ...], temp_k: float | None) -> None:
    for i, c in enumerate(poly):
        if not (math.isfinite(c) and abs(c) <= MAX_COEFFICIENT):
            raise CalibrationError(
                f"the {kind} fit's coefficient c{i} = {c:.4g} is beyond what /cal.json holds "
                f"(|c| <= {MAX_COEFFICIENT:.0e})",
                hint="use fewer degrees, or check the reference's unit",
            )
    if temp_k is not None and not (math.isfinite(temp_k) and abs(temp_k) <= MAX_TEMP_K):
        raise CalibrationError(
            f"the {kind} fit's temperature coefficient k = {temp_k:.4g} is beyond what "
            f"/cal.json holds (|k| <= {MAX_TEMP_K:.0e})",
            hint="check the temperature channel and the points' temperatures",
        )


# ---- numerics -------------------------------------------------------------------------------


def _design(
    degree: int,
    raw: np.ndarray,
    ref: np.ndarray,
    temps: np.ndarray | None,
    temp_ref: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix (columns x^0..x^degree, then T - T_ref) and the target; for an offset
    the slope is fixed at 1, so the target is reference - raw and the only power column x^0."""
    columns = [raw**k for k in range(degree + 1)]
    if temps is not None:
        assert temp_ref is not None
        columns.append(temps - temp_ref)
    target = ref - raw if degree == 0 else ref
    return np.column_stack(columns), target


def _slope(poly: tuple[float, ...], raw: np.ndarray) -> np.ndarray:
    """d(poly)/d(raw) at each raw value."""
    slope = np.zeros_like(raw)
    for k in range(1, len(poly)):
        slope += k * poly[k] * raw ** (k - 1)
    return slope
