"""`mote flash`: placeholder until the host-tools issue lands (esptool / UF2 flashing + deploy)."""

import click

from host_tools.errors import MoteError


class NotYetError(MoteError):
    exit_code = 3


@click.command()
@click.option("--board", required=True, help="Board name from boards/.")
@click.option("--port", envvar="MOTE_PORT", help="Serial port or virtual board pty.")
def flash(board: str, port: str | None) -> None:
    """Flash MicroPython and deploy the firmware (not available yet)."""
    raise NotYetError(
        f"flashing is not implemented yet (board {board})",
        hint="for now copy files with `mpremote connect PORT fs cp`; see docs/virtual-board.md",
    )
