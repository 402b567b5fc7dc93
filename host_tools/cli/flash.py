"""`mote flash`: MicroPython onto a board, then the firmware (host_tools/flashing/node.py).

    mote flash --board heltec-wifi-lora32-v3 --port /dev/ttyUSB0
    mote flash --board rpi-pico --port /dev/ttyACM0          # or a Pico held in BOOTSEL
    mote flash --board sim-esp32                             # a virtual board, started if need be

--json prints {"board", "port", "virtual", "image": {file, sha256, build, version} or null,
"flash": {what the flashing step reported}, "deploy": mote deploy's summary}.
"""

import json
from pathlib import Path

import click

from host_tools.cli.deploy import describe
from host_tools.cli.options import port_option
from host_tools.cli.progress import bars
from host_tools.flashing.node import flash_node


@click.command()
@click.option("--board", required=True, help="Board name from boards/.")
@port_option
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The MicroPython image (default: the cache, see mote images).",
)
@click.option(
    "--erase/--no-erase",
    default=None,
    help="Erase the whole flash first (default: when the partition table changes).",
)
@click.option(
    "--drive",
    type=click.Path(file_okay=False, path_type=Path),
    help="RP2040: where the RPI-RP2 drive is mounted (default: found).",
)
@click.option("--no-deploy", is_flag=True, help="Only write MicroPython.")
@click.option(
    "--hold", is_flag=True, help="Leave the node held afterwards (`mote release` lets it run)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one summary object.")
def flash(
    board: str,
    port: str | None,
    image: Path | None,
    erase: bool | None,
    drive: Path | None,
    no_deploy: bool,
    hold: bool,
    as_json: bool,
) -> None:
    """Write MicroPython to a board and deploy the firmware."""

    def say(msg: str) -> None:
        if not as_json:
            click.echo(msg)

    with bars() as b:
        result = flash_node(
            board,
            port,
            image_path=image,
            erase=erase,
            drive=drive,
            deploy_firmware=not no_deploy,
            hold=hold,
            progress=b.flash,
            deploy_progress=b.deploy,
            say=say,
        )
    if as_json:
        click.echo(json.dumps(result.summary()))
        return
    if result.deploy is not None:
        click.echo(describe(result.deploy))
    if result.virtual:
        click.echo(f"virtual node running: --port {result.port} (or --port sim:{board})")
