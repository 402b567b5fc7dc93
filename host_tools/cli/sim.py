"""`mote sim`: run a virtual board in the foreground and print the path of its pty."""

import signal
from pathlib import Path

import click

from host_tools.boards import load_board, virtual_board_names
from host_tools.errors import ConfigError
from host_tools.sim.state import StateDir
from host_tools.sim.supervisor import VirtualBoard


@click.command()
@click.option(
    "--board",
    default="sim-esp32",
    show_default=True,
    help="Virtual board: " + ", ".join(virtual_board_names()) + ".",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep flash and power state here between runs (default: a fresh temporary board).",
)
@click.option("--speed", default=1.0, show_default=True, help="Simulated seconds per real second of sleep.")
@click.option("--baud", default=115200, show_default=True, help="Wire rate of the serial link (0: unthrottled).")
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the pty path to this file once the board is up.",
)
def sim(board: str, state_dir: Path | None, speed: float, baud: int, port_file: Path | None) -> None:
    """Start a virtual node: real MicroPython behind a pty. Runs until interrupted."""
    definition = load_board(board)
    if not definition.get("virtual"):
        raise ConfigError(f"{board} is a real board", hint="use one of " + ", ".join(virtual_board_names()))
    if speed <= 0:
        raise ConfigError("--speed must be > 0")
    if baud < 0:
        raise ConfigError("--baud must be >= 0")
    state = StateDir(state_dir)
    try:
        vb = VirtualBoard(definition, state, speed=speed, baud=baud)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    vb.start()
    click.echo(vb.pty.path)
    if port_file is not None:
        port_file.write_text(vb.pty.path + "\n")
    try:
        vb.run(lambda: stop)
    finally:
        vb.close()
