"""When a calibration point is stable: the last `window` readings agree (spread) and do not move
(drift), for the node's raw reading and for a live reference alike.

    rule = default_rule("temperature")               # or Rule(spread=..., drift_per_min=...)
    point = collect(read, rule, progress=show)       # read() -> Reading, once per call
    point.raw, point.reference, point.raw_spread     # means of the stable window

Spread is max - min over the window; drift the least-squares slope of the values against their
timestamps (Reading.t, time.time()), per minute. A window holding a NaN or infinite value is never
stable. collect() gives up with a CalibrationError once `timeout_s` has passed since the first
reading (the `dwell_s` wait before it does not count).
"""

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from host_tools.calibration.sensors import UNITS
from host_tools.errors import CalibrationError, ConfigError

TIMEOUT_HINT = (
    "wait for the setup to settle, raise --spread/--drift or --point-timeout, or check the setup "
    "(a sensor in a draught, a reference far from the sensor, a chamber still moving)"
)


@dataclass(frozen=True, kw_only=True)
class Rule:
    window: int = 5  # readings judged together
    spread: float  # max - min over the window, in the quantity's unit
    drift_per_min: float  # |least-squares slope| over the window, unit per minute
    timeout_s: float = 300.0  # from the first reading
    interval_s: float = 0.0  # pause between readings
    dwell_s: float = 0.0  # wait before the first reading (a chamber starting to move)
    unit: str = ""  # for messages only: "spread 0.31 > 0.10 °C"

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ConfigError(f"a stability window needs at least 2 readings, not {self.window}")
        for name in ("spread", "drift_per_min"):
            value = getattr(self, name)
            if math.isnan(value) or value < 0:
                raise ConfigError(f"the stability {name.replace('_', ' ')} must be >= 0: {value}")
        for name in ("timeout_s", "interval_s", "dwell_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0: {value}")
        if self.timeout_s <= 0:
            raise ConfigError("the point timeout must be more than 0 s")
        if (self.window - 1) * self.interval_s >= self.timeout_s:
            raise ConfigError(
                f"{self.window} readings {self.interval_s:g} s apart take longer than the "
                f"point timeout of {self.timeout_s:g} s",
                hint="raise --point-timeout, or read more often",
            )


# Per quantity: (spread, drift per minute). Each is below the stated accuracy of the sensors
# that measure it (docs/drivers.md: SHT4x ±0.2 °C and ±1.8 %RH, DS18B20 ±0.5 °C, BME280 ±1 hPa,
# SCD41 ±(50 ppm + 2.5 %), INA219 ±0.5 %, soil probes several points after calibration), so a
# point that passes is settled to well within what the fit can use; and each is above their
# noise and resolution (0.01 °C, 0.01 %RH, 0.01 hPa, the SCD41's ±10 ppm repeatability, 4 mV and
# 0.1 mA steps on the INA219, 0.1 % for soil), so a settled point does pass.
_DEFAULTS: dict[str, tuple[float, float]] = {
    "temperature": (0.1, 0.1),
    "humidity": (0.5, 0.5),
    "moisture": (1.0, 1.0),
    "co2": (15.0, 15.0),
    "pressure": (0.2, 0.2),
    "voltage": (0.005, 0.005),
    "current": (0.001, 0.001),
    "power": (0.01, 0.01),
}


def default_rule(quantity: str) -> Rule:
    """The stability rule for a quantity (see _DEFAULTS); dataclasses.replace() to adjust."""
    try:
        spread, drift = _DEFAULTS[quantity]
    except KeyError:
        raise ConfigError(
            f"no stability rule for quantity {quantity!r}",
            hint="quantities: " + ", ".join(_DEFAULTS),
        ) from None
    return Rule(spread=spread, drift_per_min=drift, unit=UNITS[quantity])


@dataclass(frozen=True)
class Reading:
    t: float  # time.time() when taken
    raw: float  # the node's filtered, uncalibrated value
    temperature: float | None = None  # the temperature channel's, for a temperature term
    reference: float | None = None  # a live reference's value at t


@dataclass
class Status:
    n: int  # readings in the window so far
    spread: float | None
    drift_per_min: float | None
    ref_spread: float | None
    elapsed_s: float
    stable: bool
    why: str  # "spread 0.31 > 0.10 °C", "collecting 3/5", "stable"
    ref_drift_per_min: float | None = None
    last: Reading | None = None


@dataclass(frozen=True)
class Collected:
    raw: float  # mean of the stable window
    raw_spread: float
    temperature: float | None  # mean, None when the readings carry none
    reference: float | None  # mean, None when the readings carry none
    reference_spread: float | None
    n: int
    t: float  # mean time of the window
    readings: tuple[Reading, ...]


def spread_of(values: Sequence[float]) -> float:
    return max(values) - min(values) if values else 0.0


def slope_per_min(ts: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of values against ts (s), per minute; None without a time span."""
    n = len(ts)
    if n < 2:
        return None
    tm = sum(ts) / n
    vm = sum(values) / n
    stt = sum((t - tm) ** 2 for t in ts)
    if stt <= 0:
        return None
    return 60.0 * sum((t - tm) * (v - vm) for t, v in zip(ts, values, strict=True)) / stt


def judge(
    readings: Sequence[Reading],
    rule: Rule,
    reference_rule: Rule | None = None,
    elapsed_s: float = 0.0,
) -> Status:
    """Whether the last rule.window readings are stable, and why not."""
    window = list(readings)[-rule.window :]
    n = len(window)
    last = window[-1] if window else None
    ts = [r.t for r in window]
    raw = [r.raw for r in window]
    why: list[str] = []

    def status(stable: bool, **kw: float | None) -> Status:
        return Status(
            n=n,
            spread=kw.get("spread"),
            drift_per_min=kw.get("drift"),
            ref_spread=kw.get("ref_spread"),
            ref_drift_per_min=kw.get("ref_drift"),
            elapsed_s=elapsed_s,
            stable=stable,
            why="; ".join(why) if why else "stable",
            last=last,
        )

    bad = _not_finite(window)
    if bad:
        why.append(bad)
        return status(False)
    spread = spread_of(raw)
    drift = slope_per_min(ts, raw)
    refs = [r.reference for r in window]
    has_ref = any(v is not None for v in refs)
    ref_spread = ref_drift = None
    temps = [r.temperature for r in window]
    if any(v is not None for v in temps) and any(v is None for v in temps):
        why.append("temperature missing from some readings")
    if has_ref:
        if any(v is None for v in refs):
            why.append("reference missing from some readings")
        else:
            ref_values = [v for v in refs if v is not None]
            ref_spread = spread_of(ref_values)
            ref_drift = slope_per_min(ts, ref_values)
    values = {"spread": spread, "drift": drift, "ref_spread": ref_spread, "ref_drift": ref_drift}
    if n < rule.window:
        why.insert(0, f"collecting {n}/{rule.window}")
        return status(False, **values)
    if drift is None:
        why.append("no time between readings to judge drift by")
    why.extend(_check("", rule, spread, drift))
    if has_ref and reference_rule is not None and ref_spread is not None:
        why.extend(_check("reference ", reference_rule, ref_spread, ref_drift))
    return status(not why, **values)


def collect(
    read: Callable[[], Reading],
    rule: Rule,
    *,
    reference_rule: Rule | None = None,
    progress: Callable[[Status], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Collected:
    """Read until the last rule.window readings are stable: the raw values by `rule` and, when
    the readings carry a reference and reference_rule is given, the reference by it. The means
    of that window; CalibrationError when rule.timeout_s passes first."""
    if rule.dwell_s > 0:
        sleep(rule.dwell_s)
    window: deque[Reading] = deque(maxlen=rule.window)
    start = clock()
    while True:
        window.append(read())
        st = judge(window, rule, reference_rule, elapsed_s=clock() - start)
        if progress is not None:
            progress(st)
        if st.stable:
            return _collected(tuple(window))
        if st.elapsed_s >= rule.timeout_s:
            raise CalibrationError(
                f"not stable after {rule.timeout_s:g} s: {st.why}"
                f" (last {st.n} readings{_summary(window)})",
                hint=TIMEOUT_HINT,
            )
        if rule.interval_s > 0:
            sleep(rule.interval_s)


def _check(prefix: str, rule: Rule, spread: float, drift: float | None) -> list[str]:
    out = []
    if spread > rule.spread:
        out.append(f"{prefix}spread {_vs(spread, rule.spread, rule.unit)}")
    if drift is not None and abs(drift) > rule.drift_per_min:
        unit = f"{rule.unit}/min" if rule.unit else "/min"
        out.append(f"{prefix}drift {_vs(abs(drift), rule.drift_per_min, unit)}")
    return out


def _vs(value: float, limit: float, unit: str) -> str:
    # Both numbers with the limit's precision plus one digit: "0.31 > 0.10 °C", "22.5 > 15.0".
    digits = 1 if limit <= 0 or not math.isfinite(limit) else 1 - math.floor(math.log10(limit))
    digits = min(max(digits, 1), 6)
    return f"{value:.{digits}f} > {limit:.{digits}f}" + (f" {unit}" if unit else "")


def _not_finite(window: Sequence[Reading]) -> str:
    for i, r in enumerate(window, 1):
        for name in ("raw", "temperature", "reference"):
            v = getattr(r, name)
            if v is not None and not math.isfinite(v):
                what = "" if name == "raw" else f"'s {name}"
                return f"reading {i}/{len(window)}{what} is {v}"
    return ""


def _summary(window: Sequence[Reading]) -> str:
    raw = [r.raw for r in window]
    return ": " + ", ".join(f"{v:.6g}" for v in raw) if raw else ""


def _mean_of(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got and len(got) == len(values) else None


def _collected(window: tuple[Reading, ...]) -> Collected:
    n = len(window)
    raw = [r.raw for r in window]
    refs = [r.reference for r in window]
    ref = _mean_of(refs)
    return Collected(
        raw=sum(raw) / n,
        raw_spread=spread_of(raw),
        temperature=_mean_of([r.temperature for r in window]),
        reference=ref,
        reference_spread=spread_of([v for v in refs if v is not None]) if ref is not None else None,
        n=n,
        t=sum(r.t for r in window) / n,
        readings=window,
    )
