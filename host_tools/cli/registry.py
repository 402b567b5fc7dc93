"""`mote registry list|show|export`: the host registry of provisioned devices.

    mote registry list
    mote registry show a1b2c3d4e5f6 --show-secrets
    mote registry export --format tts --output devices.csv        # created 0600

--json (list, show) prints one object, a contract: list -> {"registry": PATH, "devices":
[{device_id, board, fw, state, provisioned_at, radios, ble_address, lorawan_region,
lorawan_activation, dev_eui, history}]}; show -> the record, keys left out unless
--show-secrets. Exports hold keys by nature: to stdout, or with --output to a file created 0600.
"""

import json
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from host_tools.cli.provision import registry_option
from host_tools.errors import ConfigError, RegistryError
from host_tools.provision import ACTIVATIONS, REGIONS
from host_tools.registry import FORMATS, Record, Registry, export, redact, summary, write_private


@click.group()
def registry() -> None:
    """The host registry of provisioned devices: list, show, export."""


@registry.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_(registry_path: str | None, as_json: bool) -> None:
    """Every registered device (no keys)."""
    reg = Registry(registry_path)
    rows = [summary(r) for _, r in sorted(reg.devices().items())]
    if as_json:
        click.echo(json.dumps({"registry": str(reg.path), "devices": rows}))
        return
    console = Console(highlight=False)
    if not rows:
        console.print(escape(f"no devices in {reg.path}"))
        return
    table = Table(box=None, pad_edge=False)
    for col in ("device", "board", "fw", "radios", "LoRaWAN", "state", "provisioned"):
        table.add_column(col)
    for s in rows:
        lora = f"{s['lorawan_region']} {s['lorawan_activation']}" if s["lorawan_region"] else ""
        cells = [s["device_id"], s["board"], s["fw"], ",".join(s["radios"]), lora, s["state"],
                 s["provisioned_at"]]  # fmt: skip
        table.add_row(*(escape(str(c or "")) for c in cells))
    console.print(table)


@registry.command()
@click.argument("device")
@registry_option
@click.option("--show-secrets", is_flag=True, help="Include the keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
def show(device: str, registry_path: str | None, show_secrets: bool, as_json: bool) -> None:
    """One device's record (DEVICE: its device id), with its history."""
    reg = Registry(registry_path)
    record = reg.get(device)
    if record is None:
        raise RegistryError(
            f"no device {device} in {reg.path}", hint="mote registry list shows the device ids"
        )
    shown = record if show_secrets else redact(record)
    if as_json:
        click.echo(json.dumps(shown))
        return
    _show(shown, show_secrets)


def _show(record: Record, with_keys: bool) -> None:
    console = Console(highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in ("device_id", "board", "fw", "state", "provisioned_at"):
        table.add_row(key, escape(str(record.get(key))))
    for section in ("bthome", "lorawan"):
        for k, v in (record.get(section) or {}).items():
            if v is not None:
                table.add_row(escape(f"{section}.{k}"), escape(str(v)))
    for name, fp in (record.get("fingerprints") or {}).items():
        table.add_row(escape(f"fingerprint {name}"), escape(fp))
    for i, old in enumerate(record.get("history") or [], 1):
        text = f"{old.get('provisioned_at')} {old.get('state')} {old.get('fingerprints')}"
        table.add_row(f"history {i}", escape(text))
    console.print(table)
    if not with_keys:
        console.print("(keys left out; --show-secrets prints them)")


@registry.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to export for."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (created 0600) instead of stdout.",
)
@click.option("--region", type=click.Choice(REGIONS), help="Only devices of this LoRaWAN region.")
@click.option("--activation", type=click.Choice(ACTIVATIONS), help="Only OTAA or ABP devices.")
@click.option("--application-id", default="", metavar="UUID", help="ChirpStack application id.")
@click.option(
    "--device-profile-id", default="", metavar="UUID", help="ChirpStack device profile id."
)
@registry_option
def export_(
    fmt: str,
    output: Path | None,
    region: str | None,
    activation: str | None,
    application_id: str,
    device_profile_id: str,
    registry_path: str | None,
) -> None:
    """Export the provisioned devices, keys included: tts (The Things Stack CSV import),
    chirpstack (ChirpStack v4 API requests), ha-bthome (Home Assistant BTHome bind keys)."""
    reg = Registry(registry_path)
    text = export(
        reg.devices().values(),
        fmt,
        region=region,
        activation=activation,
        application_id=application_id,
        device_profile_id=device_profile_id,
    )
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_private(output, text.encode())
    except OSError as exc:
        raise ConfigError(
            f"cannot write {output}: {exc.strerror or exc}",
            hint="give --output a file in a directory you can write",
        ) from exc
    click.echo(f"wrote {output} (mode 0600)", err=True)
