"""`mote provision`: give a node its radio keys and record it in the host registry.

    mote provision --port /dev/ttyUSB0 --lorawan-region EU868
    mote provision --port /dev/ttyUSB0 --if-new          # what `make flash` runs after flashing

Prints the device, its board and what was written with fingerprints; the keys themselves only
with --show-secrets. --json prints one object (a contract): action ("provisioned", "resumed",
"skipped"), reason (when skipped: "registered", "no_radios"), device_id, board, fw, registry,
state, provisioned_at, radios, fingerprints, lorawan (region, sub_band, activation, dev_eui,
join_eui, dev_addr) or null, bthome (ble_address) or null, and keys {secret name: hex} with
--show-secrets.
"""

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from host_tools import provision as prov
from host_tools.cli.node import _open, node_options
from host_tools.protocol.client import NodeClient
from host_tools.registry import Registry

_PUBLIC_LORA = ("region", "sub_band", "activation", "dev_eui", "join_eui", "dev_addr")


def registry_option(fn: Any) -> Any:
    return click.option(
        "--registry",
        "registry_path",
        envvar="MOTE_REGISTRY",
        metavar="FILE",
        help="The registry file (env MOTE_REGISTRY; default: motekit/registry.json in your data "
        "directory).",
    )(fn)


@click.command()
@registry_option
@click.option(
    "--lorawan-region",
    "region",
    type=click.Choice(prov.REGIONS, case_sensitive=False),
    help="The LoRaWAN region (needed for a node that gets LoRaWAN keys).",
)
@click.option("--sub-band", type=click.IntRange(1, 8), help="US915 sub-band, 1..8 (default 2).")
@click.option("--abp", is_flag=True, help="ABP (DevAddr and session keys) instead of OTAA.")
@click.option("--dev-eui", metavar="HEX", help="DevEUI (default: derived from the device id).")
@click.option("--join-eui", metavar="HEX", help=f"JoinEUI for OTAA (default {prov.JOIN_EUI}).")
@click.option("--dev-addr", metavar="HEX", help="ABP DevAddr (default: random, NwkID 0).")
@click.option(
    "--radios",
    metavar="LIST",
    help="Radios to make keys for, e.g. ble,lora (default: the board's); for a radio module "
    "wired to a board that does not list it.",
)
@click.option("--force", is_flag=True, help="Provision a registered device again, with new keys.")
@click.option("--if-new", is_flag=True, help="Leave a registered device alone and exit 0.")
@click.option("--show-secrets", is_flag=True, help="Print the keys too.")
@node_options
def provision(
    registry_path: str | None,
    region: str | None,
    sub_band: int | None,
    abp: bool,
    dev_eui: str | None,
    join_eui: str | None,
    dev_addr: str | None,
    radios: str | None,
    force: bool,
    if_new: bool,
    show_secrets: bool,
    port: str | None,
    wait_s: float,
    as_json: bool,
) -> None:
    """Give a node its BTHome / LoRaWAN keys and record it in the host registry."""
    lora = prov.LoraOptions(
        region=region.upper() if region else None,
        sub_band=sub_band,
        abp=abp,
        dev_eui=dev_eui,
        join_eui=join_eui,
        dev_addr=dev_addr,
    )
    opts = prov.Options(
        lora=lora,
        radios=prov.parse_radios(radios) if radios is not None else None,
        force=force,
        if_new=if_new,
    )
    prov.check_lora_options(lora)
    registry = Registry(registry_path)
    registry.check_writable()  # before the node is touched
    with _open(port) as t:
        node = NodeClient(t)
        with node.session(wait_s):
            outcome = prov.provision(node, registry, opts)
    data = result(outcome, registry, show_secrets)
    if as_json:
        click.echo(json.dumps(data))
    else:
        _show(data)


def result(outcome: prov.Outcome, registry: Registry, show_secrets: bool) -> dict[str, Any]:
    """The --json object for `outcome`."""
    rec = outcome.record or {}
    lora, ble = rec.get("lorawan"), rec.get("bthome")
    data: dict[str, Any] = {
        "action": outcome.action,
        "reason": outcome.reason,
        "device_id": outcome.device_id,
        "board": outcome.board,
        "fw": outcome.fw,
        "registry": str(registry.path),
        "state": rec.get("state"),
        "provisioned_at": rec.get("provisioned_at"),
        "radios": [r for r, part in (("ble", ble), ("lora", lora)) if part],
        "fingerprints": rec.get("fingerprints", {}),
        "lorawan": {k: lora.get(k) for k in _PUBLIC_LORA} if lora else None,
        "bthome": {"ble_address": ble.get("ble_address")} if ble else None,
    }
    if show_secrets:
        data["keys"] = prov.record_secrets(rec)
    return data


def _show(d: dict[str, Any]) -> None:
    console = Console(highlight=False)
    if d["action"] == "skipped":
        why = {
            "registered": f"already registered ({d['state']}, {d['provisioned_at']}); "
            "nothing written",
            "no_radios": "its board has no radio; nothing to provision",
        }.get(d["reason"], d["reason"])
        console.print(escape(f"{d['device_id']} ({d['board']}): {why}"))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("device", d["device_id"]),
        ("board", f"{d['board']}, firmware {d['fw']}"),
    ]
    if d["bthome"]:
        rows.append(("BLE address", d["bthome"]["ble_address"] or "unknown on this board"))
    lora = d["lorawan"]
    if lora:
        band = f", sub-band {lora['sub_band']}" if lora.get("sub_band") else ""
        rows.append(("LoRaWAN", f"{lora['region']}{band}, {lora['activation'].upper()}"))
        rows.append(("DevEUI", lora["dev_eui"]))
        if lora["activation"] == "abp":
            rows.append(("DevAddr", lora["dev_addr"]))
        else:
            rows.append(("JoinEUI", lora["join_eui"]))
    keys = d.get("keys") or {}
    for name, fp in d["fingerprints"].items():
        shown = f"{fp}  {keys[name]}" if name in keys else fp
        rows.append((name, shown))
    rows.append(("registry", d["registry"]))
    for k, v in rows:
        table.add_row(escape(k), escape(str(v)))
    verb = "resumed and verified" if d["action"] == "resumed" else "provisioned and verified"
    console.print(escape(f"{verb}: keys written, fingerprints read back and matched"))
    console.print(table)
    if not keys:
        console.print("(keys are in the registry; --show-secrets prints them)")
