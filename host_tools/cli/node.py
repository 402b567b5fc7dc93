"""`mote info|read|config|logs|hold|release|reboot|stats|selftest`: one node, over its console.

Each command opens the port, catches the node (docs/protocol.md, "Catching the node"), makes
its request, lets the node go unless it was held before, and prints the reply's data: one JSON
object with --json (a contract), text and tables otherwise (free to change).

    mote info --port /dev/ttyUSB0
    MOTE_PORT=/dev/pts/3 mote config set sample_period 300
"""

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from host_tools.cli import node_view as view
from host_tools.cli.options import port_option, wait_option
from host_tools.errors import ConfigError, MoteError, TransportError
from host_tools.protocol.client import NodeClient
from host_tools.transport.reset import ClassicReset
from host_tools.transport.serial import SerialTransport

F = TypeVar("F", bound=Callable[..., Any])


def node_options(fn: F) -> F:
    fn = click.option(
        "--json", "as_json", is_flag=True, help="Print the reply's data as one JSON object."
    )(fn)
    fn = wait_option(
        "How long to try to catch the node (it listens after a reset, and while held)."
    )(fn)
    fn = click.option(
        "--reset",
        is_flag=True,
        expose_value=False,
        callback=_remember_reset,
        help="Reset the node first through the port's RTS line (ESP32 dev boards' auto-reset "
        "wiring), then catch it in its host window.",
    )(fn)
    return port_option(fn)


def _remember_reset(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    ctx.meta["mote.reset"] = value


def _open(port: str | None) -> SerialTransport:
    if not port:
        raise ConfigError("no port given", hint="use --port PORT or set MOTE_PORT")
    t = SerialTransport(port)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("mote.reset"):
        reset_node(t)
    return t


def reset_node(t: SerialTransport) -> None:
    """Reset the node through the port's RTS line (ESP32 dev boards' auto-reset wiring)."""
    assert t.serial is not None
    try:
        ClassicReset()(t.serial)
    except OSError as exc:
        t.close()
        raise TransportError(
            f"cannot reset the node on {t.name}: the port has no RTS line ({exc.strerror})",
            hint="press the board's reset button (a virtual board: mote simctl ... reset)",
        ) from exc


def _ask(port: str | None, wait_s: float, cmd: str, timeout: float = 2.0, **args: Any) -> Any:
    """Catch the node, make one request, let the node go: the reply's data."""
    with _open(port) as t:
        node = NodeClient(t)
        with node.session(wait_s):
            return node.request(cmd, timeout=timeout, **args)


def _out(data: dict[str, Any], as_json: bool, show: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        click.echo(json.dumps(data))
    else:
        show(data)


def parse_value(text: str) -> Any:
    """A config value from the command line: JSON when it parses (300, 0.5, true, ["a"]),
    else the text itself (info)."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json takes them


# ---- commands ----------------------------------------------------------------------------------


@click.command()
@node_options
def info(port: str | None, wait_s: float, as_json: bool) -> None:
    """What the node is: board, firmware, mode, settings, secrets' fingerprints."""
    _out(_ask(port, wait_s, "info"), as_json, view.info)


@click.command()
@click.option("--n", "n", type=click.IntRange(1, 10), default=1, help="Readings to take (1..10).")
@click.option("--raw", is_flag=True, help="Show the values before calibration too.")
@click.option(
    "--sensor",
    "sensor_ids",
    multiple=True,
    metavar="ID",
    help="Read only this sensor (repeatable); default: all of them.",
)
@node_options
def read(
    n: int, raw: bool, sensor_ids: tuple[str, ...], port: str | None, wait_s: float, as_json: bool
) -> None:
    """Read the sensors now."""
    args: dict[str, Any] = {"sensors": list(sensor_ids)} if sensor_ids else {}
    data = _ask(port, wait_s, "read", timeout=2.0 + 2.0 * n, n=n, raw=raw, **args)
    _out(data, as_json, view.samples)


@click.group()
def config() -> None:
    """Read and change the node's settings (saved on the node at once)."""


@config.command("list")
@node_options
def config_list(port: str | None, wait_s: float, as_json: bool) -> None:
    """Every setting: value, default, unit, allowed values."""
    _out(_ask(port, wait_s, "config", timeout=4.0, op="list"), as_json, view.config_list)


@config.command("get")
@click.argument("key")
@node_options
def config_get(key: str, port: str | None, wait_s: float, as_json: bool) -> None:
    """One setting's value."""
    _out(_ask(port, wait_s, "config", op="get", key=key), as_json, view.setting)


@config.command("set")
@click.argument("key")
@click.argument("value")
@node_options
def config_set(key: str, value: str, port: str | None, wait_s: float, as_json: bool) -> None:
    """Change a setting. VALUE is JSON when it parses (300, 0.5, true, '["console"]'), else
    text (info)."""
    data = _ask(port, wait_s, "config", op="set", key=key, value=parse_value(value))
    _out(data, as_json, view.setting)


@config.command("reset")
@click.argument("key")
@node_options
def config_reset(key: str, port: str | None, wait_s: float, as_json: bool) -> None:
    """Put a setting back to its default."""
    _out(_ask(port, wait_s, "config", op="reset", key=key), as_json, view.setting)


@click.command()
@click.option("--clear", is_flag=True, help="Empty the node's log after reading it.")
@node_options
def logs(clear: bool, port: str | None, wait_s: float, as_json: bool) -> None:
    """The node's recent log entries (kept across deep sleep)."""
    data = _ask(port, wait_s, "logs", clear=clear)
    _out(data, as_json, lambda d: view.logs(d, cleared=clear))


@click.command()
@node_options
def stats(port: str | None, wait_s: float, as_json: bool) -> None:
    """The last duty cycle's figures and the running totals."""
    _out(_ask(port, wait_s, "stats"), as_json, view.stats)


@click.command()
@node_options
def selftest(port: str | None, wait_s: float, as_json: bool) -> None:
    """Check the board, settings, filesystem, sensors and secrets; exit 1 if any check fails."""
    data = _ask(port, wait_s, "selftest", timeout=10.0)
    _out(data, as_json, view.selftest)
    failed = [c for c in data.get("checks", []) if not c.get("ok")]
    if failed or data.get("ok") is not True:
        names = ", ".join(str(c.get("name")) for c in failed) or "see the checks"
        raise MoteError(f"self-test failed: {names}")


@click.command()
@node_options
def hold(port: str | None, wait_s: float, as_json: bool) -> None:
    """Keep the node awake in console mode until `mote release`."""
    with _open(port) as t:
        node = NodeClient(t)
        data = node.catch(wait_s)
    _out(data, as_json, view.held)


@click.command()
@node_options
def release(port: str | None, wait_s: float, as_json: bool) -> None:
    """Let a held node go back to its duty cycle."""
    with _open(port) as t:
        node = NodeClient(t)
        node.catch(wait_s)
        data = node.release()
    _out(data, as_json, view.released)


@click.command()
@node_options
def reboot(port: str | None, wait_s: float, as_json: bool) -> None:
    """Restart the node; one at the MicroPython REPL is soft-reset (Ctrl-D) into motekit."""
    with _open(port) as t:
        via = NodeClient(t).reboot(wait_s)
    _out({"rebooted": True, "via": via}, as_json, view.rebooted)


COMMANDS = [info, read, config, logs, hold, release, reboot, stats, selftest]
