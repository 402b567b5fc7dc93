"""`mote ports`: the serial ports a node may be on, with a board guess, and the virtual boards.

    mote ports
    mote ports --json     # one JSON list: [{"device": ..., "kind": "usb", "vid": 4292, ...}]

Human output may change; the --json fields are a contract (host_tools.ports.PortInfo).
"""

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from serial.tools.list_ports import comports

from host_tools.ports import PortInfo, list_ports


def _running_boards() -> list[Any]:
    """The virtual boards running on this machine (their ptys take --port like a USB port)."""
    from host_tools.sim.running import running_boards

    return list(running_boards())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of the ports.")
def ports(as_json: bool) -> None:
    """Serial ports with their USB ids and a board guess, then the running virtual boards."""
    found = list_ports(lister=comports, virtual=_running_boards)
    if as_json:
        click.echo(json.dumps([p.to_json() for p in found]))
    elif not found:
        click.echo("no serial ports found: plug a board in, or start a virtual one with `mote sim`")
    else:
        _table(found)


def _table(found: list[PortInfo]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("device", no_wrap=True)
    table.add_column("VID:PID", no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_column("guess", overflow="fold")
    for p in found:
        vid_pid = p.vid_pid or ("virtual" if p.kind == "virtual" else "-")
        table.add_row(escape(p.device), vid_pid, escape(p.description), escape(p.guess or "-"))
    Console(highlight=False).print(table)  # made per call: tests capture sys.stdout
