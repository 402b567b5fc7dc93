"""Options shared by the commands that talk to a node."""

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

PORT_HELP = (
    "Serial port, a virtual board's pty, or sim:BOARD for a running virtual board "
    "(env MOTE_PORT; `mote ports` lists them)."
)


def _resolve(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from host_tools.sim.running import resolve_port

    return resolve_port(value) if value else value


def port_option(fn: F) -> F:
    return click.option("--port", envvar="MOTE_PORT", callback=_resolve, help=PORT_HELP)(fn)
