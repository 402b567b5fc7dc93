"""Writing MicroPython onto an ESP32, ESP32-S3 or ESP32-C3 through esptool's Python API.

    result = flash_esp(board, "/dev/ttyUSB0", find_image(board), erase=None, progress=show)
    result.erased, result.erase_reason        # True, "partition table differs"

flash_esp() checks what it can before touching the board (image for this chip, a full image
with its partition table, fits the flash), refuses a board whose chip is not the board file's,
erases when asked or needed, writes the image at board["micropython"]["image_offset"], checks
the flash's MD5 against the image's, and hard-resets into MicroPython.

EsptoolLink is the only code that imports esptool, lazily (the import costs 0.2 s at start-up).
flash_esp() drives any object with its methods (EspLink): the tests use a fake. esptool's output
never reaches stdout: its messages go to a callback (default: dropped), its progress bar to ours.
"""

import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from host_tools.errors import ConfigError, FlashError, MoteError, TransportError
from host_tools.flashing import Progress
from host_tools.flashing.images import CHIP_NAMES, Image, check_fits, read_verified
from host_tools.transport.serial import open_error

Board = dict[str, Any]

# Where the partition table is and how long it may be: ESP-IDF's CONFIG_PARTITION_TABLE_OFFSET
# default (MicroPython's esp32 boards keep it) and ESP_PARTITION_TABLE_MAX_LEN.
PARTITION_TABLE_AT = 0x8000
PARTITION_TABLE_BYTES = 0xC00
_PARTITION_MAGIC = b"\xaa\x50"  # ESP_PARTITION_MAGIC 0x50AA, little-endian: starts each entry
_ERASED = 0xFF
FLASH_BAUD = 460800  # what micropython.org's install notes use with esptool

_BOOT_HINT = (
    "put the chip in its bootloader: hold BOOT (IO0), press and release EN (RST), release BOOT, "
    "then try again; check that the USB cable carries data"
)
_AGAIN_HINT = "run mote flash again, with --erase if it fails the same way"
_GONE_HINT = (
    "the board was unplugged or reset: plug it in and run mote flash again (with --erase if it "
    "no longer boots)"
)


@dataclass(frozen=True)
class EspResult:
    chip: str  # what esptool detected: esp32 | esp32s3 | esp32c3
    mac: str  # aa:bb:cc:dd:ee:ff
    erased: bool
    erase_reason: str  # why erased: "asked", "partition table differs", "no partition table
    # on the chip"; why not: "partition table unchanged", or "" when erasing was ruled out
    offset: int
    bytes_written: int
    verified: bool


class EspLink(Protocol):
    """An ESP chip in its serial bootloader. `chip` is set by connect()."""

    chip: str

    def connect(self) -> None: ...

    def mac(self) -> str: ...

    def read_flash(self, offset: int, size: int) -> bytes: ...

    def erase_flash(self) -> None: ...

    def write_flash(
        self, offset: int, data: bytes, progress: Callable[[int, int], None] | None
    ) -> None: ...

    def flash_md5(self, offset: int, size: int) -> str: ...

    def hard_reset(self) -> None: ...

    def close(self) -> None: ...


def flash_esp(
    board: Board,
    port: str,
    image: Image,
    *,
    erase: bool | None,
    progress: Progress | None = None,
    link_factory: Callable[[str], EspLink] | None = None,
) -> EspResult:
    """Write `image` onto the ESP board on `port`. erase: True always, False never, None when
    the chip's partition table is not the image's (a new layout: the old filesystem would not
    mount)."""
    offset = _image_offset(board)
    data = _image_bytes(board, image, offset)
    report = progress or _no_progress
    link = (link_factory or EsptoolLink)(port)
    try:
        with _esptool_errors(port, "connecting", fatal=f"no ESP bootloader answered on {port}"):
            link.connect()
        if link.chip != board["mcu"]:
            raise FlashError(
                f"{port} has an {_chip_name(link.chip)}, but {board['name']} is an "
                f"{_chip_name(board['mcu'])} board",
                hint="check --board (boards/ lists them) and --port",
            )
        with _esptool_errors(port, "reading the MAC address"):
            mac = link.mac()
        erased, reason = _erase_decision(link, port, erase, data, offset)
        if erased:
            report("erase", 0, 1)
            with _esptool_errors(port, "erasing the flash"):
                link.erase_flash()
            report("erase", 1, 1)
        with _esptool_errors(port, "writing MicroPython"):
            link.write_flash(offset, data, lambda done, total: report("write", done, total))
        _verify(link, port, offset, data)
        with _esptool_errors(port, "resetting the board"):
            link.hard_reset()
    finally:
        link.close()
    return EspResult(link.chip, mac, erased, reason, offset, len(data), True)


def _no_progress(step: str, done: int, total: int) -> None:
    pass


def _chip_name(chip: str) -> str:
    return CHIP_NAMES.get(chip, chip.upper())


def _image_offset(board: Board) -> int:
    offset = board["micropython"].get("image_offset")
    if board["port"] != "esp32" or not isinstance(offset, int):
        raise ConfigError(f"{board['name']} is not an ESP32-family board: esptool cannot flash it")
    return offset


def _image_bytes(board: Board, image: Image, offset: int) -> bytes:
    """The image's bytes, once everything that needs no board is checked."""
    check_fits(image, board)
    data = read_verified(image)
    table = PARTITION_TABLE_AT - offset
    if data[table : table + len(_PARTITION_MAGIC)] != _PARTITION_MAGIC:
        raise FlashError(
            f"{image.path.name} is not a full MicroPython image: written at {offset:#x} it has "
            f"no partition table at {PARTITION_TABLE_AT:#x}",
            hint="use the .bin from micropython.org/download/"
            f"{board['micropython']['build']}/ (bootloader, partition table and MicroPython)",
        )
    size = board["flash"]["size_bytes"]
    if offset + len(data) > size:
        raise FlashError(
            f"{image.path.name} ({len(data)} bytes at {offset:#x}) does not fit the "
            f"{size // 1024} KiB flash of {board['name']}",
            hint="check --board and the image",
        )
    return data


def _erase_decision(
    link: EspLink, port: str, erase: bool | None, data: bytes, offset: int
) -> tuple[bool, str]:
    if erase is not None:
        return erase, "asked" if erase else ""
    with _esptool_errors(port, "reading the partition table"):
        on_chip = link.read_flash(PARTITION_TABLE_AT, PARTITION_TABLE_BYTES)
    if on_chip[: len(_PARTITION_MAGIC)] != _PARTITION_MAGIC:
        return True, "no partition table on the chip"
    at = PARTITION_TABLE_AT - offset
    # The table region holds the entries then erased flash, in the image as on the chip.
    wanted = data[at : at + PARTITION_TABLE_BYTES].ljust(PARTITION_TABLE_BYTES, bytes([_ERASED]))
    if on_chip != wanted:
        return True, "partition table differs"
    return False, "partition table unchanged"


def _verify(link: EspLink, port: str, offset: int, data: bytes) -> None:
    padded = data + bytes([_ERASED]) * (-len(data) % 4)  # esptool writes whole 32-bit words
    with _esptool_errors(port, "verifying"):
        got = link.flash_md5(offset, len(padded)).lower()
    wanted = hashlib.md5(padded, usedforsecurity=False).hexdigest()
    if got != wanted:
        raise FlashError(
            f"verify failed: the flash of {port} at {offset:#x} does not hold the image (MD5 "
            f"{got}, expected {wanted})",
            hint="run mote flash again with --erase; if it fails again, try another USB cable "
            "or port",
        )


@contextmanager
def _esptool_errors(port: str, step: str, *, fatal: str = "") -> Iterator[None]:
    """esptool's and pyserial's exceptions as one-line MoteErrors, told apart by type."""
    try:
        yield
    except MoteError:
        raise
    except OSError as exc:  # pyserial's SerialException is an OSError
        raise TransportError(
            f"{port} went away while {step} ({_first_line(exc)})", hint=_GONE_HINT
        ) from exc
    except Exception as exc:
        from esptool.util import FatalError

        if not isinstance(exc, FatalError):
            raise
        if fatal:
            raise FlashError(f"{fatal} ({_first_line(exc)})", hint=_BOOT_HINT) from exc
        raise FlashError(f"{step} failed on {port}: {_first_line(exc)}", hint=_AGAIN_HINT) from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# ---- the esptool boundary -----------------------------------------------------------------


class EsptoolLink:
    """esptool on a serial port: detect the chip (esptool's default reset into the bootloader),
    run the flasher stub, and the few operations flash_esp() needs.

    esptool's messages go to `on_message` (default: dropped) and its progress bars to the
    callback of the operation under way; nothing reaches stdout."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = FLASH_BAUD,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.port = port
        self.baud = baud
        self.chip = ""
        self._on_message = on_message
        self._on_progress: Callable[[int, int], None] | None = None
        self._serial: Any = None
        self._esp: Any = None

    def connect(self) -> None:
        import serial
        from esptool import cmds

        # Opened as esptool's ESPLoader opens a port name (exclusively; on Windows RTS and DTR
        # released first, so opening does not reset the chip), but here, so that a missing,
        # busy or forbidden port gets mote's one-line error, told apart by errno.
        s = serial.serial_for_url(self.port, exclusive=True, do_not_open=True)
        if sys.platform == "win32":
            s.rts = False
            s.dtr = False
        try:
            s.open()
        except serial.SerialException as exc:
            raise open_error(self.port, exc) from exc
        self._serial = s
        with self._output():
            esp = cmds.detect_chip(s, connect_mode="default-reset")  # takes an open port too
            esp = cmds.run_stub(esp)
            if esp.IS_STUB and self.baud > esp.ESP_ROM_BAUD:
                esp.change_baud(self.baud)
        self._esp = esp
        self.chip = str(esp.CHIP_NAME).lower().replace("-", "")  # "ESP32-S3" -> "esp32s3"

    def mac(self) -> str:
        with self._output():
            mac = self._connected().read_mac()
        return ":".join(f"{b:02x}" for b in mac) if mac else ""

    def read_flash(self, offset: int, size: int) -> bytes:
        from esptool import cmds

        with self._output():
            data = cmds.read_flash(self._connected(), offset, size, no_progress=True)
        return bytes(data)

    def erase_flash(self) -> None:
        from esptool import cmds

        with self._output():
            cmds.erase_flash(self._connected())

    def write_flash(
        self, offset: int, data: bytes, progress: Callable[[int, int], None] | None
    ) -> None:
        """Write `data` at `offset` (compressed, through the stub). esptool checks the flash's
        MD5 afterwards by itself, and raises FatalError on a mismatch."""
        from esptool import cmds

        def on_bar(sent: int, total: int) -> None:
            # esptool counts what goes over the wire (compressed): scale to the image's bytes.
            if progress is not None and total > 0:
                progress(min(len(data), sent * len(data) // total), len(data))

        with self._output(on_bar):
            cmds.write_flash(self._connected(), [(offset, data)])

    def flash_md5(self, offset: int, size: int) -> str:
        with self._output():
            return str(self._connected().flash_md5sum(offset, size))

    def hard_reset(self) -> None:
        from esptool import cmds

        with self._output():
            cmds.reset_chip(self._connected(), "hard-reset")

    def close(self) -> None:
        s, self._serial, self._esp = self._serial, None, None
        if s is not None:
            s.close()

    def _connected(self) -> Any:
        if self._esp is None:
            raise FlashError(f"esptool is not connected to {self.port}")
        return self._esp

    def _message(self, text: str) -> None:
        if self._on_message is not None and text.strip():
            self._on_message(text)

    def _progress(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total)

    @contextmanager
    def _output(self, progress: Callable[[int, int], None] | None = None) -> Iterator[None]:
        """esptool's log goes to this link while the block runs, then back to what it was."""
        import esptool.logger  # noqa: F401  installs esptool's logger if none is yet
        from esp_pylib.logger import EspLog

        previous = EspLog.instance
        self._on_progress = progress
        EspLog.set_logger(_quiet_logger(self))
        try:
            yield
        finally:
            self._on_progress = None
            if previous is not None:
                EspLog.set_logger(previous)
            else:
                EspLog.instance = None


def _quiet_logger(link: EsptoolLink) -> Any:
    """A logger for esptool (esptool 5 logs through esp_pylib's EspLogBase interface, whose
    progress() context reports through progress_bar()), bound to `link`: messages to its
    callback, progress_bar() to its progress, nothing to stdout."""
    from esp_pylib.logger import EspLogBase
    from esptool.util import FatalError

    class QuietLog(EspLogBase):
        def print(self, *args: Any, **kwargs: Any) -> None:
            link._message(" ".join(str(a) for a in args))

        def note(self, *args: Any) -> None:
            link._message("Note: " + " ".join(str(a) for a in args))

        def hint(self, *args: Any) -> None:
            link._message("Hint: " + " ".join(str(a) for a in args))

        def warn(self, *args: Any, suggestion: str | None = None) -> None:
            link._message("Warning: " + " ".join(str(a) for a in args))

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            link._message("Error: " + " ".join(str(a) for a in args))

        # esptool still calls these older names in places (loader.py: log.error).
        def warning(self, message: str, suggestion: str | None = None) -> None:
            self.warn(message)

        def error(self, message: str, suggestion: str | None = None) -> None:
            self.err(message)

        def debug(self, *args: Any) -> None:
            pass  # esptool's --verbose output

        def die(self, *args: Any, exit_code: int = 1, suggestion: str | None = None) -> Any:
            raise FatalError(" ".join(str(a) for a in args))  # never sys.exit() under mote

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(
            self,
            cur_iter: int,
            total_iters: int,
            prefix: str = "",
            suffix: str = "",
            bar_length: int = 30,
        ) -> None:
            link._progress(cur_iter, total_iters)

    return QuietLog()
