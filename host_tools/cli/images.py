"""`mote images add|list|path`: the local cache of MicroPython images that `mote flash` writes.

    mote images add ~/Downloads/ESP32_GENERIC_S3-20250911-v1.26.1.bin
    mote images add firmware.uf2 --build RPI_PICO      # a name that does not say (needs -vX.Y.Z)
    mote images list --json
    MOTE_IMAGE_CACHE=/srv/images mote images path

`list --json` prints one JSON list of the manifest's entries plus each file's path (a contract);
the rest is human output, free to change.
"""

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from host_tools.flashing.images import CHIP_NAMES, Image, add_image, cache_dir, list_images


@click.group()
def images() -> None:
    """The cache of MicroPython images that `mote flash` writes (nothing is downloaded)."""


@images.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--build",
    metavar="BUILD",
    help="MicroPython's build name (ESP32_GENERIC_S3, RPI_PICO_W...) when the file name does "
    "not start with it.",
)
def add(file: Path, build: str | None) -> None:
    """Check FILE (an ESP .bin or an RP2040 .uf2 from micropython.org) and copy it into the
    cache."""
    image = add_image(file, build=build)
    _console().print(
        escape(
            f"added {image.path.name}: {image.build} v{image.version}, "
            f"{CHIP_NAMES.get(image.chip, image.chip)} {image.format} image, {image.size} bytes, "
            f"sha256 {image.sha256}"
        ),
        soft_wrap=True,
    )


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the images as one JSON list.")
def list_(as_json: bool) -> None:
    """The cached images."""
    found = list_images()
    if as_json:
        click.echo(json.dumps([_json(i) for i in found]))
        return
    console = _console()
    if not found:
        console.print(escape(f"no images in {cache_dir()}"))
        console.print("add one with `mote images add FILE` (downloads: micropython.org/download)")
        return
    table = Table(box=None, pad_edge=False)
    for name in ("build", "version", "chip", "format", "size", "added"):
        table.add_column(name, no_wrap=True)
    table.add_column("file", overflow="fold")
    for i in found:
        table.add_row(
            *(escape(v) for v in (i.build, i.version, CHIP_NAMES.get(i.chip, i.chip), i.format)),
            str(i.size),
            escape(i.added[:10]),  # the date
            escape(i.path.name),
        )
    console.print(table)


@images.command("path")
def path() -> None:
    """Print the cache directory ($MOTE_IMAGE_CACHE overrides it)."""
    click.echo(str(cache_dir()))


def _json(i: Image) -> dict[str, Any]:
    return {
        "file": i.path.name,
        "path": str(i.path),
        "sha256": i.sha256,
        "size": i.size,
        "build": i.build,
        "version": i.version,
        "format": i.format,
        "chip": i.chip,
        "added": i.added,
    }


def _console() -> Console:
    return Console(highlight=False)  # looked up per call: tests capture sys.stdout
