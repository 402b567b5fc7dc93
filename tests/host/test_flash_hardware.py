"""Flashing a real board with the MicroPython image from the cache (hardware: skipped unless
--port is given).

    pytest tests/host/test_flash_hardware.py --port /dev/ttyUSB0 --board esp32-devkitc
    pytest tests/host/test_flash_hardware.py --port /dev/ttyACM0 --board rpi-pico

The image is the cache's entry for the board (`mote images add FILE`; $MOTE_IMAGE_CACHE picks
another cache); without one the tests skip and say which file to add. They overwrite the board's
MicroPython; files on its filesystem survive unless the partition layout changes.
"""

import re
from typing import Any

import pytest

from host_tools.boards import load_board
from host_tools.errors import FlashError
from host_tools.flashing.esp import flash_esp
from host_tools.flashing.images import Image, find_image
from host_tools.flashing.uf2 import flash_uf2
from host_tools.hil.node import Node

pytestmark = pytest.mark.hardware

MARKER = "/flash_hil_marker.txt"


@pytest.fixture
def bench(pytestconfig: pytest.Config) -> tuple[dict[str, Any], str, Image]:
    port = pytestconfig.getoption("port")
    name = pytestconfig.getoption("board")
    if not port or not name:
        pytest.skip("needs a real board: --port PORT --board NAME")
    board = load_board(name)
    if board["virtual"]:
        pytest.skip(f"{name} is a virtual board: there is nothing to flash")
    try:
        image = find_image(board)
    except FlashError as exc:
        pytest.skip(f"{exc}; {exc.hint}")
    return board, port, image


def flash(board: dict[str, Any], port: str, image: Image) -> tuple[str, bool]:
    """Flash without forcing an erase; the port MicroPython answers on and whether it erased."""
    if board["port"] == "esp32":
        result = flash_esp(board, port, image, erase=None)
        assert result.verified and result.chip == board["mcu"]
        assert result.offset == board["micropython"]["image_offset"]
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", result.mac)
        return port, result.erased
    return flash_uf2(board, port, image), False  # a UF2 leaves the filesystem alone


def at_repl(board: dict[str, Any], port: str) -> Node:
    node = Node(port, board)
    node.interrupt_to_repl(timeout=15)  # after the reset MicroPython boots, then answers
    return node


def test_flashed_micropython_answers_with_the_images_version(
    bench: tuple[dict[str, Any], str, Image],
) -> None:
    board, port, image = bench
    back, _ = flash(board, port, image)
    node = at_repl(board, back)
    try:
        version = node.eval("'%d.%d.%d' % __import__('sys').implementation.version[:3]")
        platform = node.eval("__import__('sys').platform")
    finally:
        node.close()
    assert platform == board["port"]
    if re.fullmatch(r"\d+\.\d+\.\d+", image.version):  # a release, not a preview build
        assert version == image.version


def test_flashing_again_keeps_the_filesystem(bench: tuple[dict[str, Any], str, Image]) -> None:
    board, port, image = bench
    back, _ = flash(board, port, image)  # the layout is the image's from here on
    node = at_repl(board, back)
    try:
        node.exec(f"open({MARKER!r}, 'w').write('kept')")
    finally:
        node.close()
    back, erased = flash(board, back, image)
    assert not erased  # same partition table: no reason to erase
    node = at_repl(board, back)
    try:
        assert node.eval(f"open({MARKER!r}).read()") == "kept"
        node.exec(f"__import__('os').remove({MARKER!r})")
    finally:
        node.close()
