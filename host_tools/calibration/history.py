"""A node's calibrations over time: show them, roll one back, clear one.

The node's /cal.json holds the current entry per channel (with the certificate id that made it);
the registry's history holds every certificate. A rollback finds the current entry's certificate
in the history and writes back the one applied before it (or clears the channel when there was
none), marking the current one rolled back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from host_tools.calibration.node import NodeSide, without_rev
from host_tools.errors import CalibrationError
from host_tools.registry import Registry


def certificates_dir(registry: Registry, device_id: str) -> Path:
    """Where certificates go by default: beside the registry, one folder per device."""
    return registry.path.parent / "certificates" / device_id


def show(node: NodeSide, registry: Registry, channel: str | None) -> dict[str, Any]:
    """The node's calibrations now and the registry's history of them."""
    info = node.info()
    device_id = str(info.get("device_id"))
    current = node.cal_get()
    entries = current.get("entries", {})
    if channel is not None:
        entries = {ch: e for ch, e in entries.items() if ch == channel}
    history = registry.calibrations(device_id, channel)
    return {
        "device_id": device_id,
        "entries": entries,
        "problems": current.get("problems", []),
        "history": [_summary(r) for r in history],
    }


def rollback(node: NodeSide, registry: Registry, channel: str) -> dict[str, Any]:
    """Put back the calibration `channel` had before its current one (none: uncalibrated)."""
    device_id = str(node.info().get("device_id"))
    current = node.cal_get().get("entries", {}).get(channel)
    applied = [r for r in registry.calibrations(device_id, channel) if r.get("state") == "applied"]
    if current is None and not applied:
        raise CalibrationError(
            f"{channel} has no calibration to roll back",
            hint="mote calibrate --show lists the node's calibrations",
        )
    now = [r for r in applied if r["id"] == (current or {}).get("id")]
    if current is not None and not now:
        raise CalibrationError(
            f"{channel}'s calibration on the node ({current.get('id')}) is not in this "
            "registry's history, so its predecessor is unknown",
            hint="use the registry it was made with (--registry), or --clear it",
        )
    if current is None:
        raise CalibrationError(
            f"{channel} is uncalibrated on the node; nothing to roll back",
            hint="mote calibrate --show lists the history",
        )
    older = applied[: applied.index(now[-1])]
    if older:
        target = older[-1]
        node.cal_set(channel, without_rev(target["entry"]))
        restored = target["id"]
    else:
        node.cal_clear(channel)
        restored = None
    registry.update_calibration(device_id, now[-1]["id"], state="rolled_back")
    return {"channel": channel, "rolled_back": now[-1]["id"], "restored": restored}


def clear(node: NodeSide, registry: Registry, channel: str) -> dict[str, Any]:
    """Remove `channel`'s calibration from the node; its record is marked cleared."""
    device_id = str(node.info().get("device_id"))
    current = node.cal_get().get("entries", {}).get(channel)
    removed = node.cal_clear(channel)
    cert = (current or {}).get("id")
    if cert and any(r["id"] == cert for r in registry.calibrations(device_id, channel)):
        registry.update_calibration(device_id, cert, state="cleared")
    return {"channel": channel, "removed": removed, "calibration": cert}


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    f = r.get("fit") or {}
    return {
        "id": r.get("id"),
        "channel": r.get("channel"),
        "date": r.get("date"),
        "state": r.get("state"),
        "fit": f.get("kind"),
        "max_abs_error": f.get("max_abs_error"),
        "uncertainty": f.get("uncertainty"),
        "reference": (r.get("reference") or {}).get("source"),
        "files": r.get("files", {}),
    }
