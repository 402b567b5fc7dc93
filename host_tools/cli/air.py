"""`mote air`: watch the virtual air that virtual boards transmit on.

mote air listen                              # every frame on air $MOTE_AIR, until Ctrl-C
mote air listen --kind ble-adv --json        # BLE advertisements, one JSON object per line
mote air listen --count 3 --timeout 10       # fail unless 3 frames arrive, 10 s apart at most
"""

import json
import time

import click

from host_tools.errors import MoteError
from host_tools.sim.air import KINDS, Air, AirListener, Frame, LoraMeta


class NoFramesError(MoteError):
    """`listen --count N` gave up before N frames arrived."""


@click.group()
def air() -> None:
    """The virtual air: radio frames between virtual boards and host tools."""


@air.command()
@click.option(
    "--air",
    "air_name",
    metavar="NAME",
    help="Air to listen on (default: $MOTE_AIR, else 'default').",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Only frames of this kind; repeat for several (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame, one per line.")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    help="Stop after N frames; fail if fewer arrive.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop after S seconds without a frame (default: wait for ever).",
)
def listen(
    air_name: str | None,
    kinds: tuple[str, ...],
    as_json: bool,
    count: int | None,
    timeout_s: float | None,
) -> None:
    """Print every frame virtual boards transmit, one line each."""
    received = 0
    with AirListener(Air(air_name), kinds=kinds or None) as listener:
        while count is None or received < count:
            frame = listener.recv(timeout_s)
            if frame is None:
                break
            click.echo(_json_line(frame) if as_json else _human_line(frame))
            received += 1
        if listener.malformed:
            click.echo(
                f"warning: skipped {listener.malformed} malformed datagram(s); "
                f"last: {listener.last_malformed}",
                err=True,
            )
    if count is not None and received < count:
        hint = f"is a virtual board transmitting on air {listener.air.name!r}?"
        if received == 0:
            raise NoFramesError(f"no frames received within {timeout_s:g} s", hint=hint)
        raise NoFramesError(
            f"only {received} of {count} frames received (none in the last {timeout_s:g} s)",
            hint=hint,
        )


def _json_line(frame: Frame) -> str:
    record = frame.header()
    record["payload_hex"] = frame.payload.hex()
    return json.dumps(record, separators=(",", ":"))


def _human_line(frame: Frame) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(frame.t_wall))
    millis = int(frame.t_wall * 1000) % 1000
    meta = frame.meta
    if isinstance(meta, LoraMeta):
        radio = f"{meta.rssi_dbm:g} dBm  {meta.freq_hz / 1e6:.3f} MHz SF{meta.sf}"
    else:
        radio = f"{meta.rssi_dbm} dBm  {meta.addr}"
    return f"{clock}.{millis:03d}  {frame.kind:<7}  {frame.src}  {radio}  {frame.payload.hex()}"
