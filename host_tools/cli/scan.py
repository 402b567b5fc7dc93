"""`mote scan`: BTHome adverts from a Bluetooth adapter or the virtual air, decoded.

    mote scan                                  # the adapter, a live table, until Ctrl-C
    mote scan --sim --json                     # the virtual air ($MOTE_AIR), one JSON per line
    mote scan --air bench1 --duration 60 --registry keys.json --json

--json prints one object per advert (repeats of one burst once), a contract: address,
device_id, rssi, time, t_sim_ms, name, service_data (hex, after the UUID), encrypted,
trigger_based, packet_id, counter, values {name: number}, objects [{id, name, value, unit}],
error, warnings (docs/bthome.md).
"""

import json
import time
from contextlib import ExitStack

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from host_tools.bthome import OBJECTS
from host_tools.cli.provision import registry_option
from host_tools.errors import ConfigError
from host_tools.registry import Registry
from host_tools.scan import AirSource, BleakSource, KeyRing, Scanner, ScanResult, Source

_REFRESH_S = 1.0  # the live table's ages tick at least this often
_TEXTUAL = ("event", "text", "raw", "command", "firmware")  # objects shown beside the values


@click.command()
@click.option("--sim", is_flag=True, help="Listen to the virtual air instead of an adapter.")
@click.option(
    "--air",
    "air_name",
    metavar="NAME",
    help="The virtual air to listen to (implies --sim; default: $MOTE_AIR, else 'default').",
)
@click.option(
    "--adapter",
    metavar="NAME",
    help="Bluetooth adapter to scan with, e.g. hci1 (Linux; default: the system's).",
)
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop after S seconds (default: until Ctrl-C).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="Stop after N adverts (the repeats of one burst count once).",
)
@registry_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per advert, one per line.")
def scan(
    sim: bool,
    air_name: str | None,
    adapter: str | None,
    duration_s: float | None,
    count: int | None,
    registry_path: str | None,
    as_json: bool,
) -> None:
    """Print the BTHome adverts nodes send, decrypted with the registry's bind keys."""
    sim = sim or air_name is not None
    if sim and adapter:
        raise ConfigError("--adapter names a Bluetooth adapter; --sim listens to the virtual air")
    keys = KeyRing.from_registry(Registry(registry_path))
    deadline = None if duration_s is None else time.monotonic() + duration_s
    with ExitStack() as stack:
        source: Source
        if sim:
            source = stack.enter_context(AirSource(air_name))
        else:
            bleak_source = stack.enter_context(BleakSource(adapter=adapter))
            if bleak_source.note:
                click.echo(f"warning: {bleak_source.note}", err=True)
            source = bleak_source
        scanner = Scanner(source, keys)
        out = _JsonOutput() if as_json else _HumanOutput(stack)
        shown = 0
        try:
            while count is None or shown < count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                result = scanner.poll(out.wait_s(remaining))
                if result is None:
                    out.tick()
                    continue
                out.show(result)
                shown += 1
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a scan without --duration ends: not an error
        out.done()
    out.summary(scanner)  # after the live table has gone


class _JsonOutput:
    def wait_s(self, remaining: float | None) -> float | None:
        return remaining

    def tick(self) -> None:
        pass

    def show(self, result: ScanResult) -> None:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, separators=(",", ":")))

    def done(self) -> None:
        pass

    def summary(self, scanner: Scanner) -> None:
        pass


class _HumanOutput:
    """A live table (one row per device) on a terminal, one line per advert otherwise."""

    def __init__(self, stack: ExitStack) -> None:
        self.console = Console(highlight=False)
        self.rows: dict[str, tuple[ScanResult, float]] = {}
        self.live: Live | None = None
        if self.console.is_terminal:
            self.live = stack.enter_context(
                Live(self._table(), console=self.console, auto_refresh=False)
            )

    def wait_s(self, remaining: float | None) -> float | None:
        if self.live is None:
            return remaining
        return _REFRESH_S if remaining is None else min(_REFRESH_S, remaining)

    def tick(self) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def show(self, result: ScanResult) -> None:
        self.rows[result.advert.address] = (result, time.monotonic())
        if self.live is None:
            self.console.print(escape(_line(result)), soft_wrap=True)
        else:
            self.live.update(self._table(), refresh=True)

    def done(self) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def summary(self, scanner: Scanner) -> None:
        click.echo(
            f"{len(self.rows)} device(s), {scanner.heard - scanner.not_bthome} BTHome advert(s) "
            f"heard ({scanner.repeats} repeat(s)), {scanner.not_bthome} other advert(s)",
            err=True,
        )

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for col in ("address", "device", "values", "rssi", "encrypted", "age"):
            table.add_column(col, overflow="fold")
        now = time.monotonic()
        for address, (result, seen) in sorted(self.rows.items()):
            adv = result.advert
            values = _values(result)
            table.add_row(
                escape(address),
                escape(result.device_id or adv.name or ""),
                f"[red]{escape(values)}[/]" if adv.error else escape(values),
                "" if result.rssi is None else f"{result.rssi} dBm",
                "yes" if adv.encrypted else "no",
                f"{now - seen:.0f} s",
            )
        return table


def _values(result: ScanResult) -> str:
    adv = result.advert
    if adv.error:
        return adv.error
    parts = [f"{k}={v}" for k, v in adv.values.items()]
    parts += [f"{o.name}={o.value}" for o in adv.objects if OBJECTS[o.object_id].kind in _TEXTUAL]
    return "  ".join(parts + [f"({w})" for w in adv.warnings])


def _line(result: ScanResult) -> str:
    adv = result.advert
    clock = time.strftime("%H:%M:%S", time.localtime(result.t_wall))
    device = result.device_id or adv.name or "-"
    rssi = "" if result.rssi is None else f"{result.rssi} dBm"
    enc = "encrypted" if adv.encrypted else "plain"
    return f"{clock}  {adv.address}  {device}  {rssi}  {enc}  {_values(result)}"
