"""Calibrating one channel of a node: collect points, fit, apply, verify, keep a certificate.

    with NodeClient(transport).session(wait_s=5) as client:
        node = NodeSide(client)
        plan = Plan(sensor="sht41", quantity="temperature", setpoints=[10, 25, 40],
                    stimulus="mote simctl --control /tmp/c env temperature_c={setpoint}")
        result = Calibration(node, reference, plan, ui).run()    # a Result; raises on refusal

The steps, each a method below: identify the node and the sensor; for each setpoint run the
stimulus (or ask the user to set the point), then collect readings of the raw (uncalibrated)
value until they and the reference are stable; fit; show the fit and ask (unless --yes); write
the /cal.json entry, read it back, and check live calibrated readings against the reference.
A verification that fails puts the previous entry back. Whatever the outcome past the fit, a
certificate is written and kept in the registry's history.

Rollback, clear and show work from the node's /cal.json and the registry's history; the SCD41's
forced recalibration is the chip's own command (its correction lives in the chip's EEPROM, not
in /cal.json, so it cannot be rolled back from here).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.calibration import certificate, fit, sensors, stability, stimulus
from host_tools.calibration.history import certificates_dir
from host_tools.calibration.node import NodeSide, apply_entry, raw_value, without_rev
from host_tools.calibration.references import Reference
from host_tools.errors import CalibrationError, ConfigError
from host_tools.registry import Registry

CHANNEL = re.compile(r"[a-z0-9_]{1,16}\.[a-z0-9]+")
_SENSOR_RETRIES = 2  # reads again when a sensor failed in a sample; then its error is raised
_READBACK_REL = 1e-5  # a coefficient read back: the node keeps 32-bit floats on a real board


@dataclass
class Plan:
    """What the user asked for."""

    sensor: str
    quantity: str
    setpoints: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # shown instead of the setpoint ("dry")
    stimulus: str | None = None
    fit_kind: str | None = None  # None: offset for one point, linear for more
    temp_channel: str | None = None
    points: int = 0  # without setpoints: how many points to take (0: what the fit needs)
    rule: stability.Rule | None = None
    verify: bool = True

    @property
    def channel(self) -> str:
        return f"{self.sensor}.{self.quantity}"


class UI:
    """How a calibration talks to the user; the CLI gives its own, tests a scripted one."""

    def say(self, text: str) -> None:  # pragma: no cover - overridden
        pass

    def pause(self, text: str) -> None:
        """Wait until the user has done what `text` asks (Enter)."""

    def confirm(self, record: dict[str, Any]) -> bool:
        return True

    def progress(self, label: str, status: stability.Status) -> None:
        pass


@dataclass
class Result:
    record: dict[str, Any]
    files: dict[str, Path]


# ---- a calibration -----------------------------------------------------------------------------


class Calibration:
    def __init__(
        self,
        node: NodeSide,
        reference: Reference,
        plan: Plan,
        ui: UI,
        *,
        registry: Registry,
        out_dir: Path | None = None,
        report_format: str = "html",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.reference = reference
        self.plan = plan
        self.ui = ui
        self.registry = registry
        self.out_dir = out_dir
        self.report_format = report_format
        self.clock = clock
        self.channel = plan.channel
        self.kind = ""
        self.spec: sensors.SensorSpec | None = None
        self.rule = plan.rule or stability.default_rule(plan.quantity)
        self._channels = tuple(ch for ch in (self.channel, plan.temp_channel) if ch)

    # -- the whole run --------------------------------------------------------------------------

    def run(self) -> Result:
        self._identify()
        previous = self.node.cal_get().get("entries", {}).get(self.channel)
        points, collected = self._collect_points()
        result_fit = self._fit(points)
        record = self._record(points, collected, result_fit, previous)
        self._show(record)
        if not self.ui.confirm(record):
            record["state"] = "declined"
            return self._keep(record)
        entry = result_fit.to_entry(self.plan.temp_channel)
        entry.update(id=record["id"], at=record["date"], ref=self.reference.description[:64])
        stored = self.node.cal_set(self.channel, entry)
        self._check_readback(entry)
        record["entry"] = stored
        if not self.plan.verify:
            record["state"] = "applied"
            record["notes"].append("not verified (--no-verify)")
            return self._keep(record)
        verification = self._verify(result_fit, points[-1].reference)
        record["verification"] = verification
        if verification["ok"]:
            record["state"] = "applied"
            return self._keep(record)
        self._restore(previous)
        record["state"] = "failed_verification"
        record["notes"].append(
            "previous calibration restored" if previous else "the channel is uncalibrated again"
        )
        kept = self._keep(record)
        worst = max(abs(r["error"]) for r in verification["readings"])
        raise CalibrationError(
            f"verification failed: calibrated {self.channel} is {worst:.4g} {self._unit()} from "
            f"the reference, more than {verification['tolerance']:.4g} "
            f"({'previous calibration restored' if previous else 'calibration removed'}; "
            f"certificate {kept.files.get('json', '')})",
            hint="check that the reference and the sensor share the same conditions, then retry",
        )

    # -- steps ----------------------------------------------------------------------------------

    def _identify(self) -> None:
        if self.plan.quantity not in sensors.QUANTITIES:
            raise ConfigError(
                f"unknown quantity {self.plan.quantity!r}",
                hint=f"one of {', '.join(sensors.QUANTITIES)}",
            )
        self.kind = self.node.kind_of(self.plan.sensor)
        self.spec = sensors.spec(self.kind, self.plan.quantity)
        if self.spec is None:
            raise ConfigError(
                f"a {self.kind} does not measure {self.plan.quantity}",
                hint="mote read --raw shows the node's channels",
            )
        tch = self.plan.temp_channel
        if tch is not None and (not CHANNEL.fullmatch(tch) or tch == self.channel):
            raise ConfigError(
                f"--temp-comp {tch!r} must name another channel, like sht41.temperature",
            )
        if self.plan.fit_kind is not None and self.plan.fit_kind not in fit.KINDS:
            raise ConfigError(f"--fit must be one of {', '.join(fit.KINDS)}")

    def _point_plan(self) -> list[tuple[str, float | None]]:
        if self.plan.setpoints:
            labels = self.plan.labels or [f"{s:g} {self._unit()}" for s in self.plan.setpoints]
            return list(zip(labels, self.plan.setpoints, strict=True))
        temperature = self.plan.temp_channel is not None
        n = self.plan.points or fit.min_points(self.plan.fit_kind or "linear", temperature)
        return [(f"point {i + 1} of {n}", None) for i in range(n)]

    def _collect_points(self) -> tuple[list[fit.Point], list[stability.Collected]]:
        points: list[fit.Point] = []
        collected: list[stability.Collected] = []
        for i, (label, setpoint) in enumerate(self._point_plan()):
            self.reference.at_point(i)
            if self.plan.stimulus and setpoint is not None:
                self.ui.say(f"{label}: running the stimulus")
                stimulus.run_stimulus(self.plan.stimulus, setpoint)
            else:
                self.ui.pause(
                    f"Bring {self.channel} and the reference to {label}, then press Enter"
                )
            got = self._collect(label)
            ref = got.reference
            if ref is None:
                ref = self.reference.ask(f"Reference value at {label} ({self._unit()})")
            assert self.spec is not None
            sensors.check_reference(self.kind, self.plan.quantity, ref)
            points.append(
                fit.Point(
                    raw=got.raw,
                    reference=ref,
                    temperature=got.temperature,
                    raw_spread=got.raw_spread,
                    reference_spread=got.reference_spread,
                    n=got.n,
                    t=got.t,
                )
            )
            collected.append(got)
            self.ui.say(
                f"{label}: raw {got.raw:.5g}, reference {ref:.5g} {self._unit()} ({got.n} readings)"
            )
        return points, collected

    def _collect(self, label: str, calibrated: bool = False) -> stability.Collected:
        def read() -> stability.Reading:
            sample = self.node.sample(self._channels)
            for _ in range(_SENSOR_RETRIES):  # a glitch on a bench is not a failed point
                if not (sample.get("missing") or ()):
                    break
                sample = self.node.sample(self._channels)
            t = self.clock()
            if calibrated:
                if self.channel in (sample.get("uncal") or ()):
                    raise CalibrationError(
                        f"the node did not apply the new calibration of {self.channel}",
                        hint="mote info shows cal_problems",
                    )
                value = float((sample.get("values") or {}).get(self.channel, math.nan))
            else:
                value = raw_value(sample, self.channel)
            tch = self.plan.temp_channel
            temperature = raw_value(sample, tch) if tch else None
            ref = self.reference.read(t) if self.reference.live else None
            return stability.Reading(t=t, raw=value, temperature=temperature, reference=ref)

        return stability.collect(
            read,
            self.rule,
            reference_rule=self.rule if self.reference.live else None,
            progress=lambda st: self.ui.progress(label, st),
        )

    def _fit(self, points: list[fit.Point]) -> fit.Fit:
        distinct = len({p.raw for p in points})
        kind = self.plan.fit_kind or fit.choose_kind(distinct)
        assert self.spec is not None
        return fit.fit_points(
            points,
            kind,
            temperature=self.plan.temp_channel is not None,
            reference_uncertainty=self.reference.uncertainty,
            sensor_range=(self.spec.low, self.spec.high),
        )

    def _record(
        self,
        points: list[fit.Point],
        collected: list[stability.Collected],
        f: fit.Fit,
        previous: dict[str, Any] | None,
    ) -> dict[str, Any]:
        info = self.node.info()
        rows = []
        before = []
        labels = [label for label, _ in self._point_plan()]
        for i, (p, label) in enumerate(zip(points, labels, strict=True)):
            predicted = f.predict(p.raw, p.temperature)
            was = apply_entry(previous, p.raw, p.temperature)
            before.append(abs(p.reference - was))
            rows.append(
                {
                    "setpoint": self.plan.setpoints[i] if self.plan.setpoints else None,
                    "label": label,
                    "raw": p.raw,
                    "reference": p.reference,
                    "temperature": p.temperature,
                    "raw_spread": p.raw_spread,
                    "reference_spread": p.reference_spread,
                    "n": p.n,
                    "t": iso(p.t),
                    "before": was,
                    "predicted": predicted,
                    "residual": p.reference - predicted,
                }
            )
        accuracy = min(sensors.accuracy(self.kind, self.plan.quantity, p.reference) for p in points)
        return certificate.build_record(
            device_id=info.get("device_id"),
            board=info.get("board"),
            fw=info.get("fw"),
            build=info.get("build"),
            sensor=self.plan.sensor,
            kind=self.kind,
            serial=self.node.ident(self.plan.sensor),
            quantity=self.plan.quantity,
            unit=self._unit(),
            channel=self.channel,
            reference={
                "source": self.reference.description,
                "uncertainty": self.reference.uncertainty,
            },
            points=rows,
            fit=_fit_dict(f, self.plan.temp_channel),
            stated_accuracy=accuracy,
            before={"max_abs_error": max(before), "calibration": _entry_id(previous)},
            verification=None,
            entry=None,
            state="pending",
            notes=[],
        )

    def _show(self, record: dict[str, Any]) -> None:
        f = record["fit"]
        coeffs = ", ".join(f"{c:.6g}" for c in f["poly"])
        self.ui.say(
            f"fit {f['kind']}: [{coeffs}]"
            + (f" + {f['temp']['k']:.4g}*(T - {f['temp']['ref']:.4g})" if f.get("temp") else "")
            + f"; R² {f['r2']:.6f}, max |error| {f['max_abs_error']:.3g}, uncertainty (k=2) "
            f"{f['uncertainty']:.3g} {self._unit()}; stated accuracy "
            f"{record['stated_accuracy']:.3g}; before: max |error| "
            f"{record['before']['max_abs_error']:.3g}"
        )

    def _check_readback(self, entry: dict[str, Any]) -> None:
        got = self.node.cal_get().get("entries", {}).get(self.channel)
        if got is None or got.get("id") != entry["id"] or not _close(got["poly"], entry["poly"]):
            raise CalibrationError(
                f"the node's /cal.json does not hold the calibration just written to "
                f"{self.channel}",
                hint="the node's filesystem may be full or failing: mote info shows fs_free",
            )
        if entry.get("temp") and not _close(
            [got["temp"]["k"], got["temp"]["ref"]], [entry["temp"]["k"], entry["temp"]["ref"]]
        ):
            raise CalibrationError(f"the node's temperature term for {self.channel} differs")

    def _verify(self, f: fit.Fit, last_reference: float) -> dict[str, Any]:
        """Live calibrated readings against the reference, where the last point was taken. A
        typed or fixed reference is not read again: the conditions are the last point's."""
        tolerance = max(f.uncertainty, f.max_abs_error) + self.rule.spread
        got = self._collect("verification", calibrated=True)
        readings = []
        for r in got.readings:
            ref = r.reference if r.reference is not None else last_reference
            readings.append({"value": r.raw, "reference": ref, "error": r.raw - ref})
        ok = all(abs(r["error"]) <= tolerance for r in readings)
        return {"ok": ok, "tolerance": tolerance, "readings": readings}

    def _restore(self, previous: dict[str, Any] | None) -> None:
        if previous is None:
            self.node.cal_clear(self.channel)
        else:
            self.node.cal_set(self.channel, without_rev(previous))

    def _keep(self, record: dict[str, Any]) -> Result:
        files = certificate.write_certificate(record, self._out(record), self.report_format)
        record["files"] = {k: str(v) for k, v in files.items()}
        self.registry.add_calibration(record)
        return Result(record, files)

    def _out(self, record: dict[str, Any]) -> Path:
        if self.out_dir is not None:
            return self.out_dir
        return certificates_dir(self.registry, str(record["device_id"]))

    def _unit(self) -> str:
        return sensors.unit_label(self.spec.unit) if self.spec is not None else ""


# ---- helpers ------------------------------------------------------------------------------------


def _fit_dict(f: fit.Fit, temp_channel: str | None) -> dict[str, Any]:
    temp = None
    if f.temp_k is not None and temp_channel is not None:
        temp = {"ch": temp_channel, "ref": f.temp_ref, "k": f.temp_k}
    return {
        "kind": f.kind,
        "poly": list(f.poly),
        "temp": temp,
        "r2": f.r2,
        "rmse": f.rmse,
        "max_abs_error": f.max_abs_error,
        "uncertainty": f.uncertainty,
        "dof": f.dof,
        "condition": f.condition,
    }


def _entry_id(entry: dict[str, Any] | None) -> str | None:
    return None if entry is None else entry.get("id")


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=_READBACK_REL, abs_tol=1e-12) for x, y in zip(a, b, strict=True)
    )


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
