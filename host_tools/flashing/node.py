"""`mote flash`: MicroPython onto a board, then the firmware onto MicroPython (deploy).

    result = flash_node("heltec-wifi-lora32-v3", "/dev/ttyUSB0", progress=show)
    result.port                    # where the node is now (an RP2040 may come back elsewhere)

ESP32 family: esptool (esp.py); RP2040: the UF2 drive (uf2.py); a virtual board (sim-*): no image
— its flash is erased through the running virtual board's control channel (a virtual board of
that kind is started in the background when none runs and no port is given), which leaves
MicroPython with an empty filesystem as on a freshly flashed chip. Then deploy.py copies the
firmware, for every kind alike.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.boards import load_board
from host_tools.deploy import DeployResult, deploy
from host_tools.deploy import Progress as DeployProgress
from host_tools.errors import ConfigError, SimError
from host_tools.flashing import Progress
from host_tools.flashing.esp import flash_esp
from host_tools.flashing.images import Image, find_image
from host_tools.flashing.uf2 import flash_uf2
from host_tools.sim import running
from host_tools.sim.control import SimControl
from host_tools.transport.serial import open_when_back

Say = Callable[[str], None]


@dataclass
class FlashResult:
    board: str
    port: str
    virtual: bool
    image: Image | None = None
    flash: dict[str, Any] = field(default_factory=dict)  # what the flashing step reported
    deploy: DeployResult | None = None

    def summary(self) -> dict[str, Any]:
        image = None
        if self.image is not None:
            image = {
                "file": self.image.path.name,
                "sha256": self.image.sha256,
                "build": self.image.build,
                "version": self.image.version,
            }
        return {
            "board": self.board,
            "port": self.port,
            "virtual": self.virtual,
            "image": image,
            "flash": self.flash,
            "deploy": self.deploy.summary() if self.deploy else None,
        }


def flash_node(
    board_name: str,
    port: str | None,
    *,
    image_path: Path | None = None,
    erase: bool | None = None,
    drive: Path | None = None,
    deploy_firmware: bool = True,
    hold: bool = False,
    progress: Progress | None = None,
    deploy_progress: DeployProgress | None = None,
    say: Say = lambda _msg: None,
) -> FlashResult:
    board = load_board(board_name)
    if board.get("virtual"):
        if image_path is not None or drive is not None:
            raise ConfigError(f"{board_name} is a virtual board: it takes no image or drive")
        result = _flash_virtual(board_name, port, say)
    else:
        if not port and board["port"] == "esp32":
            raise ConfigError("no port given", hint="use --port PORT or set MOTE_PORT")
        image = find_image(board, image_path)
        if image.note:
            say(image.note)
        if board["port"] == "esp32":
            assert port is not None
            say(f"writing {image.path.name} with esptool")
            esp = flash_esp(board, port, image, erase=erase, progress=progress)
            flash = {
                "chip": esp.chip,
                "mac": esp.mac,
                "erased": esp.erased,
                "erase_reason": esp.erase_reason,
                "offset": esp.offset,
                "bytes": esp.bytes_written,
                "verified": esp.verified,
            }
        else:
            say(f"copying {image.path.name} to the RPI-RP2 drive")
            port = flash_uf2(board, port, image, progress=progress, drive=drive)
            flash = {"chip": "rp2040", "bytes": image.size, "verified": False}
        assert port is not None
        # A board with native USB (ESP32-S3/C3 USB-JTAG, RP2040) re-enumerates after its
        # reset: its port is gone for a moment.
        open_when_back(port, 15.0).close()
        result = FlashResult(board_name, port, False, image, flash)
    if deploy_firmware:
        say(f"deploying the firmware to {result.port}")
        result.deploy = deploy(
            result.port, board_name, progress=deploy_progress, wait_s=10, hold=hold
        )
    return result


def _flash_virtual(board: str, port: str | None, say: Say) -> FlashResult:
    if port:
        rb = running.find(port)
        if rb is None:
            raise ConfigError(
                f"{port} is not a running virtual board's pty",
                hint=f"leave out --port to use (or start) a virtual {board}; `mote ports` "
                "lists the running ones",
            )
        if rb.board != board:
            raise ConfigError(f"{port} is a virtual {rb.board}, not a {board}")
    else:
        found = running.running_board(board)
        if found is not None:
            rb = found
            say(f"using the virtual {board} on {rb.port}")
        else:
            rb = running.start_detached(board)
            say(f"started a virtual {board} on {rb.port} (state in {rb.state_dir})")
    try:
        with SimControl(rb.control) as ctl:
            ctl.request("erase_flash")  # SimError if it refuses
    except OSError as exc:
        raise SimError(f"cannot reach the virtual {board}'s control socket: {exc}") from exc
    say("erased its flash: MicroPython with an empty filesystem")
    return FlashResult(board, rb.port, True, flash={"erased": True})
