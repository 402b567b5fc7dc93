"""The SCD41's forced recalibration (FRC) at a known CO2 level, with a certificate.

The correction lives in the chip's EEPROM, not in /cal.json, so it cannot be rolled back here.
"""

from __future__ import annotations

import time
from pathlib import Path

from host_tools.calibration import certificate, sensors, stability
from host_tools.calibration.history import certificates_dir
from host_tools.calibration.node import NodeSide, raw_value
from host_tools.calibration.session import UI, Result, iso
from host_tools.errors import CalibrationError, ConfigError
from host_tools.registry import Registry


def forced_recalibration(
    node: NodeSide,
    sensor: str,
    ppm: int,
    ui: UI,
    *,
    registry: Registry,
    out_dir: Path | None = None,
    report_format: str = "html",
    rule: stability.Rule | None = None,
) -> Result:
    """The SCD41's own forced recalibration (FRC) at a known CO2 level: wait for steady
    readings, send the chip the reference, check its readings after."""
    kind = node.kind_of(sensor)
    if kind != "scd41":
        raise ConfigError(f"--frc is the SCD41's command; {sensor} is a {kind}")
    if not 400 <= ppm <= 2000:
        raise ConfigError(f"--frc {ppm}: the reference must be 400..2000 ppm (fresh air is ~420)")
    channel = f"{sensor}.co2"
    rule = rule or stability.default_rule("co2")

    def collect(label: str) -> stability.Collected:
        return stability.collect(
            lambda: stability.Reading(
                t=time.time(), raw=raw_value(node.sample((channel,)), channel)
            ),
            rule,
            progress=lambda st: ui.progress(label, st),
        )

    ui.pause(f"Keep the SCD41 in air of {ppm} ppm CO2 (outdoors: ~420), then press Enter")
    before = collect("before FRC")
    reply = node.frc(sensor, ppm)
    ui.say(f"FRC done: the chip corrected by {reply.get('correction_ppm')} ppm")
    after = collect("after FRC")
    tolerance = sensors.accuracy(kind, "co2", ppm)
    readings = [
        {"value": r.raw, "reference": float(ppm), "error": r.raw - ppm} for r in after.readings
    ]
    ok = all(abs(r["error"]) <= tolerance for r in readings)
    info = node.info()
    spec = sensors.spec(kind, "co2")
    record = certificate.build_record(
        device_id=info.get("device_id"),
        board=info.get("board"),
        fw=info.get("fw"),
        build=info.get("build"),
        sensor=sensor,
        kind=kind,
        serial=node.ident(sensor),
        quantity="co2",
        unit=spec.unit if spec else "ppm",
        channel=channel,
        reference={"source": f"value:{ppm}", "uncertainty": 0.0},
        points=[
            {
                "setpoint": float(ppm),
                "label": "FRC",
                "raw": before.raw,
                "reference": float(ppm),
                "temperature": None,
                "raw_spread": before.raw_spread,
                "reference_spread": 0.0,
                "n": before.n,
                "t": iso(before.t),
                "before": before.raw,
                "predicted": after.raw,
                "residual": ppm - after.raw,
            }
        ],
        fit={
            "kind": "frc",
            "poly": [],
            "temp": None,
            "correction_ppm": reply.get("correction_ppm"),
            "r2": None,
            "rmse": abs(ppm - after.raw),
            "max_abs_error": max(abs(r["error"]) for r in readings),
            "uncertainty": tolerance,
            "dof": 0,
            "condition": None,
        },
        stated_accuracy=tolerance,
        before={"max_abs_error": abs(ppm - before.raw), "calibration": None},
        verification={"ok": ok, "tolerance": tolerance, "readings": readings},
        entry=None,
        state="frc" if ok else "failed_verification",
        notes=["the correction is kept in the SCD41's EEPROM; it cannot be rolled back"],
    )
    files = certificate.write_certificate(
        record, out_dir or certificates_dir(registry, str(record["device_id"])), report_format
    )
    record["files"] = {k: str(v) for k, v in files.items()}
    registry.add_calibration(record)
    if not ok:
        raise CalibrationError(
            f"after the FRC the SCD41 reads {after.raw:.0f} ppm, not within {tolerance:.0f} of "
            f"{ppm} (certificate {files.get('json', '')})",
            hint="the air was probably not steady at the reference level; repeat in still air",
        )
    return Result(record, files)
