"""`mote gateway`: a bench LoRaWAN network server behind a gateway node or the virtual air.

    mote gateway --sim --json                      # the virtual air ($MOTE_AIR), one line per frame
    mote gateway --port /dev/ttyUSB0               # a node flashed in gateway role
    mote gateway --port /dev/ttyUSB0 --forward eu1.cloud.thethings.network:1700

--json prints one JSON object per frame heard, a contract (docs/gateway.md): `event` ("uplink",
"join", "duplicate", "retransmission", "rejected"; with --forward also "forwarded_downlink"
and "join_accept"), dev_eui, device_id, dev_addr, fcnt, fport, phy (hex), values, rssi, snr,
freq, sf, bw, dr, confirmed, mac, t, time, and `reason`/`error` for a rejected frame.
"""

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from host_tools.cli.options import port_option
from host_tools.cli.provision import registry_option
from host_tools.errors import ConfigError
from host_tools.gateway import Gateway, SerialGateway, SimGateway, Source
from host_tools.lorawan import forwarder as fw
from host_tools.lorawan.server import NetworkServer, StateFile, state_path_for
from host_tools.registry import Registry


@click.command()
@port_option
@click.option("--sim", is_flag=True, help="Listen to the virtual air instead of a gateway node.")
@click.option(
    "--air",
    "air_name",
    metavar="NAME",
    help="With --sim: the air to listen on (default: $MOTE_AIR, else 'default').",
)
@registry_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per frame, one per line.")
@click.option(
    "--forward",
    metavar="HOST:PORT",
    help="Relay every frame to a real network server (Semtech UDP packet forwarder) and send "
    "its downlinks; the bench server then only decodes, it never answers.",
)
@click.option(
    "--gateway-eui",
    metavar="HEX",
    help="The gateway EUI given to the network server (default: this host's MAC as EUI-64).",
)
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop after S seconds (default: run until Ctrl-C).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N frames heard.",
)
@click.option(
    "--window",
    type=click.Choice(["rx1", "rx2"]),
    default="rx1",
    show_default=True,
    help="The receive window answers go in.",
)
@click.option("--adr/--no-adr", default=True, show_default=True, help="Adaptive data rate.")
@click.option(
    "--restrict-channels/--all-channels",
    "restrict",
    default=None,
    help="Tell nodes (LinkADRReq) to use only the gateway node's channel (default: on with "
    "--port, which hears one channel; off with --sim).",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="With --port: how long to try to reach the gateway node.",
)
def gateway(
    port: str | None,
    sim: bool,
    air_name: str | None,
    registry_path: str | None,
    as_json: bool,
    forward: str | None,
    gateway_eui: str | None,
    duration_s: float | None,
    count: int | None,
    window: str,
    adr: bool,
    restrict: bool | None,
    wait_s: float,
) -> None:
    """Receive LoRa frames and act as a bench LoRaWAN network server for registry devices."""
    if sim == bool(port):
        raise ConfigError(
            "give either --port (a node in gateway role) or --sim (the virtual air)",
            hint="mote gateway --sim, or mote gateway --port /dev/ttyUSB0",
        )
    if air_name and not sim:
        raise ConfigError("--air is for --sim")
    eui = fw.parse_eui(gateway_eui) if gateway_eui else fw.default_gateway_eui()
    registry = Registry(registry_path)
    records = registry.devices().values()
    state = StateFile(state_path_for(registry.path))
    state.acquire()
    try:
        with _source(port, sim, air_name, wait_s) as source:
            channels = None
            if restrict or (restrict is None and not sim):
                channel = getattr(source, "channel", None)
                if isinstance(channel, dict) and isinstance(channel.get("freq"), int):
                    channels = [channel["freq"]]
            server = NetworkServer(records, state, window=window, adr=adr, channels_hz=channels)
            forwarder = fw.UdpForwarder(forward, eui) if forward else None
            show = _printer(as_json)
            # On stderr in --json mode too (stdout stays JSON): a script knows it is listening.
            _banner(source, server, forward, eui)
            gw = Gateway(
                source,
                server,
                forwarder=forwarder,
                on_event=show,
                reload=lambda: registry.devices().values(),
            )
            try:
                gw.run(duration_s, count)
            finally:
                if forwarder is not None:
                    forwarder.close()
    except KeyboardInterrupt:
        pass  # the normal way to stop it (Ctrl-C, SIGTERM), at any point once it started
    finally:
        state.close()


class _SourceContext:
    def __init__(self, source: Any, closer: Any = None) -> None:
        self.source = source
        self.closer = closer

    def __enter__(self) -> Source:
        return self.source  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self.source.close()
        if self.closer is not None:
            self.closer.close()


def _source(port: str | None, sim: bool, air_name: str | None, wait_s: float) -> _SourceContext:
    if sim:
        from host_tools.sim.air import Air

        return _SourceContext(SimGateway(Air(air_name)))
    from host_tools.transport.serial import SerialTransport

    assert port is not None
    transport = SerialTransport(port)
    try:
        return _SourceContext(SerialGateway(transport, wait_s=wait_s), transport)
    except BaseException:
        transport.close()
        raise


def _banner(source: Source, server: NetworkServer, forward: str | None, eui: bytes) -> None:
    err = Console(stderr=True, highlight=False)
    n = len(server.devices)
    what = f"gateway on {source.name}: {n} LoRaWAN device(s) from the registry"
    channel = getattr(source, "channel", None)
    if isinstance(channel, dict):
        what += f", listening on {channel.get('freq', 0) / 1e6:.3f} MHz SF{channel.get('sf')}"
    err.print(escape(what))
    if forward:
        err.print(escape(f"forwarding to {forward} as gateway {eui.hex().upper()} (passive)"))


def _printer(as_json: bool) -> Any:
    if as_json:

        def show_json(event: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
            sys.stdout.flush()

        return show_json
    console = Console(highlight=False, soft_wrap=True)  # one line per frame, never wrapped

    def show(event: dict[str, Any]) -> None:
        console.print(_human(event))

    return show


_STYLE = {"uplink": "green", "join": "cyan", "rejected": "red", "duplicate": "dim"}


def _human(e: dict[str, Any]) -> str:
    kind = e.get("event", "?")
    style = _STYLE.get(kind, "yellow")
    who = e.get("device_id") or e.get("dev_eui") or e.get("dev_addr") or e.get("src") or "?"
    parts = [f"[{style}]{kind:<14}[/{style}]", escape(str(who))]
    if e.get("fcnt") is not None:
        parts.append(f"fcnt {e['fcnt']}")
    if e.get("fport") is not None:
        parts.append(f"port {e['fport']}")
    if kind == "join" and e.get("dev_addr"):
        parts.append(f"-> {e['dev_addr']}")
    if e.get("values"):
        parts.append(escape(" ".join(f"{k}={v}" for k, v in e["values"].items())))
    if kind == "rejected":
        parts.append(escape(f"{e.get('reason')}: {e.get('error')}"))
    if e.get("mac"):
        parts.append(escape("mac " + ",".join(c.get("cmd", "?") for c in e["mac"])))
    if e.get("rssi") is not None:
        parts.append(f"{e['rssi']:g} dBm {e.get('snr', 0):g} dB SF{e.get('sf')}")
    dl = e.get("downlink")
    if dl:
        state = "sent" if dl.get("sent", True) else f"NOT sent ({dl.get('error')})"
        parts.append(escape(f"answer {dl.get('window')} {state}"))
    return "  ".join(parts)
