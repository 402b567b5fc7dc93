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


def wait_option(help_text: str) -> Callable[[F], F]:
    """--wait SECONDS (wait_s): how long to try to catch a node that is not listening yet."""

    def deco(fn: F) -> F:
        return click.option(
            "--wait",
            "wait_s",
            type=click.FloatRange(min=0),
            default=5.0,
            show_default=True,
            metavar="SECONDS",
            help=help_text,
        )(fn)

    return deco
