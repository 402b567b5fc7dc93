"""`mote console`: an interactive terminal on a node's port (host_tools/terminal.py).

    mote console --port /dev/ttyUSB0        # Ctrl-] to exit
    MOTE_PORT=/dev/pts/3 mote console --raw

Keys go to the node as typed, so the MicroPython REPL works; its log lines show as they come,
console-protocol frames readably unless --raw. The `--- ... ---` notices go to stderr, so
`mote console > node.log` keeps only what the node said.
"""

import sys
from typing import BinaryIO

import click

from host_tools.cli.options import port_option
from host_tools.errors import ConfigError
from host_tools.terminal import Console
from host_tools.transport.serial import BAUDRATE, SerialTransport


def _stdio() -> tuple[int, BinaryIO, BinaryIO]:
    """(keys fd, output, notices): the process's stdin, stdout and stderr (tests replace this)."""
    return sys.stdin.fileno(), sys.stdout.buffer, sys.stderr.buffer


@click.command()
@port_option
@click.option("--raw", is_flag=True, help="Show every byte as it comes, frames included.")
@click.option(
    "--baud",
    type=click.IntRange(min=1),
    default=BAUDRATE,
    show_default=True,
    help="Baud rate (USB-CDC ports and ptys ignore it).",
)
def console(port: str | None, raw: bool, baud: int) -> int:
    """Interactive terminal: the node's log and its MicroPython REPL. Ctrl-] exits; a port that
    goes away (the board reset or was unplugged) is reopened when it comes back."""
    if not port:
        raise ConfigError("no port given", hint="use --port PORT or set MOTE_PORT (see mote ports)")
    if sys.platform == "win32":
        raise ConfigError(
            "mote console needs a POSIX terminal (Linux, macOS)",
            hint="on Windows use `python -m serial.tools.miniterm PORT 115200`",
        )
    name: str = port
    first = SerialTransport(name, baud)  # cannot be opened: the usual one-line error, no wait
    try:
        keys_fd, output, notices = _stdio()
        term = Console(
            name,
            lambda: SerialTransport(name, baud),
            input_fd=keys_fd,
            output=output,
            notices=notices,
            raw=raw,
        )
    except BaseException:
        first.close()
        raise
    return term.run(first)
