"""The console requests a calibration makes (docs/protocol.md, `cal` and `read`), and what the
firmware does with a /cal.json entry, mirrored on the host.

    node = NodeSide(client)               # a NodeClient inside session(): the node is held
    node.kind_of("sht41")                 # "sht4x", from the node's config
    raw_value(node.sample(), "sht41.temperature")
"""

from __future__ import annotations

from typing import Any

from host_tools.errors import CalibrationError, ConfigError, ProtocolError
from host_tools.protocol.client import NodeClient

READ_TIMEOUT_S = 20.0  # one `read`: the sensors' warm-up and conversions (an SCD41 takes 5 s)
FRC_TIMEOUT_S = 40.0  # powering up, one 5 s measurement, the 400 ms FRC, an EEPROM write


class NodeSide:
    """The console requests a calibration makes, on a caught (held) node."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self._info: dict[str, Any] | None = None
        self._sensors: list[dict[str, Any]] | None = None

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self.client.request("info", timeout=5.0)
        return self._info

    def sensor_entries(self) -> list[dict[str, Any]]:
        if self._sensors is None:
            reply = self.client.request("config", op="get", key="sensors")
            self._sensors = list(reply["value"])
        return self._sensors

    def kind_of(self, sensor: str) -> str:
        for entry in self.sensor_entries():
            if (entry.get("id") or entry["kind"]) == sensor:
                return str(entry["kind"])
        known = ", ".join(e.get("id") or e["kind"] for e in self.sensor_entries()) or "none"
        raise ConfigError(
            f"the node has no sensor {sensor!r} (its sensors: {known})",
            hint="--sensor takes a sensor id from the node's config (mote config get sensors)",
        )

    def sample(self, channels: tuple[str, ...] = ()) -> dict[str, Any]:
        """One sample with raw (uncalibrated) values beside the calibrated ones; with channels,
        of their sensors only (quicker, and less of the node's heap)."""
        args: dict[str, Any] = {}
        if channels:
            args["sensors"] = sorted({ch.split(".")[0] for ch in channels})
        reply = self.client.request("read", timeout=READ_TIMEOUT_S, n=1, raw=True, **args)
        return reply["samples"][0]  # type: ignore[no-any-return]

    def cal_get(self) -> dict[str, Any]:
        return self.client.request("cal", op="get", timeout=5.0)

    def cal_set(self, channel: str, entry: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = self.client.request("cal", op="set", channel=channel, entry=entry, timeout=5.0)
        except ProtocolError as exc:
            if exc.err == "bad_value":
                raise CalibrationError(
                    f"the node refused the calibration: {exc}",
                    hint="the fit's coefficients are outside what the firmware accepts",
                ) from exc
            raise
        return reply["entry"]  # type: ignore[no-any-return]

    def cal_clear(self, channel: str) -> bool:
        return bool(self.client.request("cal", op="clear", channel=channel)["removed"])

    def ident(self, sensor: str) -> str | None:
        try:
            reply = self.client.request("cal", op="ident", sensor=sensor, timeout=READ_TIMEOUT_S)
        except ProtocolError:
            return None  # the certificate says "no serial"; calibration does not need it
        serial = reply.get("serial")
        return str(serial) if serial else None

    def frc(self, sensor: str, ppm: int) -> dict[str, Any]:
        try:
            return self.client.request(
                "cal", op="frc", sensor=sensor, ppm=ppm, timeout=FRC_TIMEOUT_S
            )
        except ProtocolError as exc:
            if exc.err in ("failed", "bad_args", "bad_value"):
                raise CalibrationError(
                    f"forced recalibration refused: {exc}",
                    hint="the SCD41 must have measured the reference air; keep it there and retry",
                ) from exc
            raise


def raw_value(sample: dict[str, Any], channel: str) -> float:
    """The channel's uncalibrated reading in a sample, or why there is none."""
    raw = sample.get("raw") or {}
    if channel in raw:
        return float(raw[channel])
    sid = channel.split(".")[0]
    why = (sample.get("errors") or {}).get(sid)
    if why:
        raise CalibrationError(f"{channel}: the sensor failed: {why}", hint="check its wiring")
    raise CalibrationError(
        f"the node's samples have no channel {channel} (they have: {', '.join(sorted(raw))})",
        hint="check --sensor and --quantity against mote read --raw",
    )


def apply_entry(entry: dict[str, Any] | None, raw: float, temperature: float | None) -> float:
    """What the firmware makes of `raw` with /cal.json `entry` (None: uncalibrated)."""
    if not entry:
        return raw
    value = sum(c * raw**i for i, c in enumerate(entry["poly"]))
    temp = entry.get("temp")
    if temp and temperature is not None:
        value += temp["k"] * (temperature - temp["ref"])
    return float(value)


def without_rev(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "rev"}
