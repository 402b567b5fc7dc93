"""`mote calibrate`: calibrate one channel of a node against a reference (docs/calibration.md).

    mote calibrate --port P --sensor sht41 --quantity temperature \\
        --reference port:/dev/ttyUSB1 --setpoints 10,25,40 \\
        --stimulus "chamber set {setpoint}" --fit poly2 --yes
    mote calibrate --port P --sensor soil --dry-wet
    mote calibrate --port P --sensor scd41 --frc 420
    mote calibrate --port P --show | --rollback/--clear --sensor S --quantity Q
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from host_tools.calibration import frc, history, references, stability
from host_tools.calibration import stimulus as stimuli
from host_tools.calibration.node import NodeSide
from host_tools.calibration.session import UI, Calibration, Plan, Result
from host_tools.cli.node import _open
from host_tools.cli.options import port_option, wait_option
from host_tools.errors import ConfigError
from host_tools.protocol.client import NodeClient
from host_tools.registry import Registry

DRY_WET = ([0.0, 100.0], ["dry (probe in air)", "wet (probe in water up to its line)"])


class CliUI(UI):
    """Messages and progress on stderr (stdout is for --json); questions on the terminal."""

    def __init__(self, yes: bool, console: Console) -> None:
        self.yes = yes
        self.console = console
        self._status: Any = None

    def say(self, text: str) -> None:
        self._stop()
        self.console.print(text, highlight=False, markup=False)

    def pause(self, text: str) -> None:
        self._stop()
        if not self.yes:
            click.prompt(text, default="", show_default=False, prompt_suffix=" ", err=True)

    def confirm(self, record: dict[str, Any]) -> bool:
        self._stop()
        if self.yes:
            return True
        return click.confirm("Write this calibration to the node?", default=True, err=True)

    def progress(self, label: str, status: stability.Status) -> None:
        text = f"{label}: {status.why} ({status.elapsed_s:.0f} s)"
        if self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _ask(text: str) -> str:
    return str(click.prompt(text, err=True))


def _channel(sensor: str | None, quantity: str | None, what: str) -> str:
    if not sensor or not quantity:
        raise ConfigError(f"{what} needs --sensor and --quantity")
    return f"{sensor}.{quantity}"


def _rule(
    quantity: str,
    window: int | None,
    spread: float | None,
    drift: float | None,
    timeout_s: float | None,
    dwell_s: float | None,
) -> stability.Rule:
    rule = stability.default_rule(quantity)
    changes: dict[str, Any] = {}
    for name, value in (
        ("window", window),
        ("spread", spread),
        ("drift_per_min", drift),
        ("timeout_s", timeout_s),
        ("dwell_s", dwell_s),
    ):
        if value is not None:
            changes[name] = value
    return dataclasses.replace(rule, **changes)


def _emit(result: Result, as_json: bool, console: Console) -> None:
    record = result.record
    if as_json:
        click.echo(json.dumps(record))
        return
    state = record["state"]
    console.print(f"{record['channel']}: {state}", highlight=False)
    for name, path in result.files.items():
        console.print(f"  {name}: {path}", highlight=False, markup=False)


@click.command()
@port_option
@click.option("--sensor", help="The sensor id in the node's config (mote config get sensors).")
@click.option(
    "--quantity",
    help="temperature, humidity, pressure, co2, voltage, current, power or moisture.",
)
@click.option(
    "--reference",
    "reference_spec",
    default="manual",
    show_default=True,
    help="Where reference values come from: manual (typed), port:PORT[:SENSOR.QUANTITY] (a "
    "reference node), csv:FILE (an instrument's log: timestamp,value), value:X (a known value).",
)
@click.option(
    "--reference-uncertainty",
    type=click.FloatRange(min=0),
    default=0.0,
    help="The reference's standard uncertainty (k=1), in the quantity's unit; it goes into the "
    "certificate's uncertainty. Default 0: not stated.",
)
@click.option("--setpoints", help="Points to calibrate at, e.g. 10,25,40 (the quantity's unit).")
@click.option(
    "--stimulus",
    help='A command run before each setpoint, e.g. "chamber set {setpoint}" (unattended runs).',
)
@click.option(
    "--fit",
    "fit_kind",
    type=click.Choice(["offset", "linear", "poly2", "poly3"]),
    help="The fit (default: offset for one point, linear for more).",
)
@click.option(
    "--temp-comp",
    "temp_channel",
    metavar="CHANNEL",
    help="Add a temperature term using this channel's reading, e.g. sht41.temperature.",
)
@click.option(
    "--points",
    type=click.IntRange(1, 20),
    help="Without --setpoints: how many points to take (default: what the fit needs).",
)
@click.option(
    "--dry-wet", is_flag=True, help="Soil moisture: two points, dry air 0 %, water 100 %."
)
@click.option("--frc", "frc_ppm", type=int, metavar="PPM", help="SCD41 forced recalibration.")
@click.option("--window", type=click.IntRange(2, 100), help="Readings judged together (5).")
@click.option("--spread", type=click.FloatRange(min=0), help="Max spread of a stable window.")
@click.option("--drift", type=click.FloatRange(min=0), help="Max drift, unit per minute.")
@click.option(
    "--point-timeout",
    "point_timeout_s",
    type=click.FloatRange(min=1),
    help="Give up on a point not stable after this many seconds (300).",
)
@click.option(
    "--dwell",
    "dwell_s",
    type=click.FloatRange(min=0),
    help="Wait this long after each stimulus before reading (a chamber settling).",
)
@click.option("--yes", is_flag=True, help="Do not ask: take points and apply the result.")
@click.option("--no-verify", is_flag=True, help="Apply without the live check (not advised).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where certificates go (default: beside the registry, certificates/<device>).",
)
@click.option(
    "--format",
    "report_format",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="The human-readable certificate's format.",
)
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="MOTE_REGISTRY",
    help="The registry keeping the history (default: the user's data directory).",
)
@click.option("--show", "do_show", is_flag=True, help="List the node's calibrations and history.")
@click.option("--rollback", "do_rollback", is_flag=True, help="Restore the previous calibration.")
@click.option("--clear", "do_clear", is_flag=True, help="Remove a channel's calibration.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@wait_option("How long to try to catch the node (it listens after a reset, and while held).")
def calibrate(
    port: str | None,
    sensor: str | None,
    quantity: str | None,
    reference_spec: str,
    reference_uncertainty: float,
    setpoints: str | None,
    stimulus: str | None,
    fit_kind: str | None,
    temp_channel: str | None,
    points: int | None,
    dry_wet: bool,
    frc_ppm: int | None,
    window: int | None,
    spread: float | None,
    drift: float | None,
    point_timeout_s: float | None,
    dwell_s: float | None,
    yes: bool,
    no_verify: bool,
    out_dir: Path | None,
    report_format: str,
    registry_path: Path | None,
    do_show: bool,
    do_rollback: bool,
    do_clear: bool,
    as_json: bool,
    wait_s: float,
) -> None:
    """Calibrate a sensor of the node against a reference, or show/roll back/clear one."""
    actions = [
        n
        for n, on in (
            ("--show", do_show),
            ("--rollback", do_rollback),
            ("--clear", do_clear),
            ("--frc", frc_ppm is not None),
        )
        if on
    ]
    if len(actions) > 1:
        raise ConfigError(f"{' and '.join(actions)} do not go together")
    if dry_wet:
        quantity = quantity or "moisture"
        if quantity != "moisture" or setpoints or fit_kind not in (None, "linear"):
            raise ConfigError("--dry-wet is the soil moisture shortcut: two points, a linear fit")
    if stimulus:
        stimuli.check_template(stimulus)
    points_at = stimuli.parse_setpoints(setpoints) if setpoints else []
    console = Console(stderr=True)
    ui = CliUI(yes, console)
    registry = Registry(registry_path)
    with _open(port) as transport:
        client = NodeClient(transport)
        with client.session(wait_s):
            node = NodeSide(client)
            if do_show:
                data = history.show(node, registry, _maybe(sensor, quantity))
                return _print(data, as_json, _show_text)
            if do_rollback:
                data = history.rollback(node, registry, _channel(sensor, quantity, "--rollback"))
                return _print(data, as_json, _rollback_text)
            if do_clear:
                data = history.clear(node, registry, _channel(sensor, quantity, "--clear"))
                return _print(data, as_json, _clear_text)
            if not sensor:
                raise ConfigError("--sensor is needed (mote config get sensors lists them)")
            if frc_ppm is not None:
                result = frc.forced_recalibration(
                    node,
                    sensor,
                    frc_ppm,
                    ui,
                    registry=registry,
                    out_dir=out_dir,
                    report_format=report_format,
                )
                return _emit(result, as_json, console)
            if not quantity:
                raise ConfigError("--quantity is needed (e.g. temperature)")
            rule = _rule(quantity, window, spread, drift, point_timeout_s, dwell_s)
            plan = Plan(
                sensor=sensor,
                quantity=quantity,
                stimulus=stimulus,
                fit_kind="linear" if dry_wet else fit_kind,
                temp_channel=temp_channel,
                points=points or 0,
                rule=rule,
                verify=not no_verify,
            )
            if dry_wet:
                plan.setpoints, plan.labels = list(DRY_WET[0]), list(DRY_WET[1])
                if reference_spec == "manual":
                    reference_spec = "value:" + ",".join(f"{v:g}" for v in DRY_WET[0])
            elif points_at:
                plan.setpoints = points_at
            with references.parse_reference(
                reference_spec,
                quantity_channel=plan.channel,
                resolve_port=_resolve_port,
                ask=_ask,
                wait_s=wait_s,
                uncertainty=reference_uncertainty,
            ) as reference:
                run = Calibration(
                    node,
                    reference,
                    plan,
                    ui,
                    registry=registry,
                    out_dir=out_dir,
                    report_format=report_format,
                )
                result = run.run()
            _emit(result, as_json, console)


def _resolve_port(name: str) -> str:
    from host_tools.sim.running import resolve_port

    return resolve_port(name)


def _maybe(sensor: str | None, quantity: str | None) -> str | None:
    return f"{sensor}.{quantity}" if sensor and quantity else None


def _print(data: dict[str, Any], as_json: bool, show: Any) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        show(data)


def _show_text(data: dict[str, Any]) -> None:
    click.echo(f"device {data['device_id']}")
    if not data["entries"]:
        click.echo("  no calibrations on the node")
    for ch, e in sorted(data["entries"].items()):
        poly = ", ".join(f"{c:.6g}" for c in e.get("poly", []))
        temp = e.get("temp")
        extra = f" + {temp['k']:.4g}*({temp['ch']} - {temp['ref']:.4g})" if temp else ""
        click.echo(f"  {ch}: [{poly}]{extra} rev {e.get('rev')} {e.get('at')} ({e.get('id')})")
    for problem in data.get("problems", []):
        click.echo(f"  problem: {problem}")
    if data["history"]:
        click.echo("history (registry):")
    for r in data["history"]:
        err = r.get("max_abs_error")
        err_text = f" max|err| {err:.3g}" if isinstance(err, (int, float)) else ""
        click.echo(f"  {r['date']} {r['channel']} {r['state']} {r['fit']}{err_text} ({r['id']})")


def _rollback_text(data: dict[str, Any]) -> None:
    to = data["restored"] or "uncalibrated"
    click.echo(f"{data['channel']}: rolled back {data['rolled_back']}; now {to}")


def _clear_text(data: dict[str, Any]) -> None:
    what = "calibration removed" if data["removed"] else "had no calibration"
    click.echo(f"{data['channel']}: {what}")
