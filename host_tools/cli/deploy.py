"""`mote deploy`: copy what changed in firmware/ and drivers/ onto a node (host_tools/deploy.py).

    mote deploy --port /dev/ttyUSB0                 # the board from the node's /board.json
    mote deploy --port sim:sim-esp32 --json         # one summary object (a contract, below)

--json prints {"port", "board", "fw", "build", "previous_build", "copied", "removed",
"unchanged", "bytes", "seconds", "resumed", "copied_files", "removed_files"}.
"""

import json

import click

from host_tools.cli.node import reset_node
from host_tools.cli.options import port_option, wait_option
from host_tools.cli.progress import bars
from host_tools.deploy import DeployResult, deploy
from host_tools.errors import ConfigError
from host_tools.transport.serial import SerialTransport


@click.command("deploy")
@port_option
@click.option("--board", help="Board name from boards/ (default: the node's /board.json).")
@click.option("--full", is_flag=True, help="Copy every file, whatever the node has.")
@wait_option("How long to try to catch a duty-cycling node.")
@click.option(
    "--reset",
    is_flag=True,
    help="Reset the node first through the port's RTS line (ESP32 dev boards), to deploy in "
    "its host window rather than wait for a deep-sleeping node to wake.",
)
@click.option(
    "--hold", is_flag=True, help="Leave the node held afterwards (`mote release` lets it run)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one summary object.")
def deploy_cmd(
    port: str | None,
    board: str | None,
    full: bool,
    wait_s: float,
    reset: bool,
    hold: bool,
    as_json: bool,
) -> None:
    """Compile the firmware for the node's board and copy only what changed."""
    if not port:
        raise ConfigError("no port given", hint="use --port PORT or set MOTE_PORT")
    if reset:
        with SerialTransport(port) as t:
            reset_node(t)
    with bars() as b:
        result = deploy(port, board, full=full, wait_s=wait_s, progress=b.deploy, hold=hold)
    if as_json:
        click.echo(json.dumps(result.summary()))
    else:
        click.echo(describe(result))


def describe(r: DeployResult) -> str:
    if not r.copied and not r.removed:
        return (
            f"{r.port}: up to date, {r.board} firmware {r.fw} build {r.build} "
            f"({r.unchanged} files, {r.seconds:.1f} s)"
        )
    done = f"{len(r.copied)} copied ({r.bytes:,} bytes), {len(r.removed)} removed, "
    done += f"{r.unchanged} unchanged"
    resumed = " (finished an interrupted deploy)" if r.resumed else ""
    return (
        f"{r.port}: {r.board} firmware {r.fw} build {r.build}{resumed}: {done}, "
        f"running, in {r.seconds:.1f} s"
    )
