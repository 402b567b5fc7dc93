"""Writing MicroPython onto an RP2040 board: bootloader, UF2 copy, and back to MicroPython.

    port = flash_uf2(board, "/dev/ttyACM0", find_image(board), progress=show)

A board running MicroPython is asked into its USB bootloader (BOOTSEL) from the REPL with
machine.bootloader(); a board already in BOOTSEL (an RPI-RP2 drive mounted, its serial port
gone) skips that step. The UF2 is copied onto the drive; the RP2040 writes it, reboots, and
flash_uf2() waits for a MicroPython serial port to come back (the same device path preferred)
and returns it.

The hardware is reached through three small boundaries, each replaceable (the tests use fakes):
find_drives() lists mounted RPI-RP2 drives, list_ports() the serial ports, and
enter_bootloader(port) asks the board on `port` into BOOTSEL.
"""

import os
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial

from host_tools.errors import ConfigError, FlashError, TransportError
from host_tools.flashing import Progress
from host_tools.flashing.images import Image, check_fits, read_verified
from host_tools.transport.serial import SerialTransport

Board = dict[str, Any]

INFO_FILE = "INFO_UF2.TXT"
BOARD_ID = "Board-ID: RPI-RP2"  # what the RP2040 boot ROM writes in INFO_UF2.TXT
# MicroPython's rp2 port: MICROPY_HW_USB_VID/PID in ports/rp2/mpconfigport.h.
MICROPYTHON_VID = 0x2E8A
MICROPYTHON_PID = 0x0005
_CHUNK = 64 * 1024  # copy size per write: whole 512-byte UF2 blocks
_FAT_TYPES = ("vfat", "msdos")  # the boot ROM's drive is FAT12/16
_RAW_REPL = b"raw REPL; CTRL-B to exit\r\n>"
_REPL_TRIES_S = 3.0  # how long to keep interrupting before falling back to the 1200-baud touch
_DRIVE_HINT = (
    "hold BOOTSEL while plugging the board in (a drive RPI-RP2 appears), or mount the drive and "
    "pass --drive PATH"
)


@dataclass(frozen=True)
class PortInfo:
    device: str
    vid: int | None = None
    pid: int | None = None


FindDrives = Callable[[], list[Path]]
ListPorts = Callable[[], list[PortInfo]]
EnterBootloader = Callable[[str], str]  # port -> how: "repl" | "touch"


def flash_uf2(
    board: Board,
    port: str | None,
    image: Image,
    *,
    progress: Progress | None = None,
    drive: Path | None = None,
    timeout_s: float = 30.0,
    find_drives: FindDrives | None = None,
    list_ports: ListPorts | None = None,
    enter_bootloader: EnterBootloader | None = None,
    poll_s: float = 0.2,
) -> str:
    """Write the UF2 `image` onto the RP2040 board on `port` (None: a board already in
    BOOTSEL); the serial port of the MicroPython that comes back. `drive`: where the RPI-RP2
    drive is, or will be, mounted. Each wait (drive, port) lasts at most timeout_s."""
    if board["port"] != "rp2":
        raise ConfigError(f"{board['name']} is not an RP2040 board: it does not take a UF2")
    check_fits(image, board)  # before anything happens to the board
    read_verified(image)
    drives = _drives(find_drives or find_rp2_drives, drive)
    ports = list_ports or list_serial_ports
    before = ports()
    mounted = drives()
    if drive is not None and mounted:
        target = drive  # the drive named is there: its board is in BOOTSEL already
    elif port is not None and _find(before, port) is not None:
        how = (enter_bootloader or request_bootloader)(port)
        target = _wait_drive(drives, set(mounted), timeout_s, poll_s, port, how)
    elif mounted:
        target = _one_drive(mounted)  # in BOOTSEL already, its serial port gone
    elif port is not None:
        raise TransportError(
            f"no serial port {port}, and no RPI-RP2 drive mounted",
            hint=f"is the board plugged in? {_DRIVE_HINT}",
        )
    else:
        raise FlashError(
            "no RPI-RP2 drive mounted, and no port to reach the board by", hint=_DRIVE_HINT
        )
    copy_uf2(image.path, target, progress=progress)
    return _wait_port(ports, drives, target, port, before, timeout_s, poll_s)


def _no_progress(step: str, done: int, total: int) -> None:
    pass


def _drives(find: FindDrives, drive: Path | None) -> FindDrives:
    """The drives to watch: only `drive` when given, and only while it is an RPI-RP2 drive."""
    if drive is None:
        return find
    return lambda: [drive] if is_rp2_drive(drive) else []


def _find(ports: list[PortInfo], port: str) -> str | None:
    """The device in `ports` that is `port` (its name, or a symlink to it such as
    /dev/serial/by-id/...), else None."""
    real = os.path.realpath(port)
    for p in ports:
        if p.device == port or os.path.realpath(p.device) == real:
            return p.device
    return None


def _one_drive(found: list[Path]) -> Path:
    if len(found) > 1:
        names = ", ".join(str(d) for d in found)
        raise FlashError(
            f"more than one RPI-RP2 drive is mounted ({names})",
            hint="unplug the other boards, or pass --drive PATH",
        )
    return found[0]


def _wait_drive(
    drives: FindDrives, old: set[Path], timeout_s: float, poll_s: float, port: str, how: str
) -> Path:
    deadline = time.monotonic() + timeout_s
    while True:
        new = [d for d in drives() if d not in old]
        if new:
            return _one_drive(new)
        if time.monotonic() >= deadline:
            why = (
                f"{port} did not answer at the MicroPython REPL and the 1200-baud touch did not "
                "reboot it"
                if how == "touch"
                else f"the board on {port} was asked into its bootloader"
            )
            raise FlashError(
                f"no RPI-RP2 drive appeared within {timeout_s:g} s ({why})", hint=_DRIVE_HINT
            )
        time.sleep(poll_s)


def _wait_port(
    ports: ListPorts,
    drives: FindDrives,
    drive: Path,
    port: str | None,
    before: list[PortInfo],
    timeout_s: float,
    poll_s: float,
) -> str:
    """The MicroPython port that comes back: `port` itself when it does, else a MicroPython
    rp2 port that was not there before the flash. The drive is looked at only to explain a
    timeout."""
    same_before = _find(before, port) if port is not None else None
    old = {p.device for p in before if p.device != same_before}
    deadline = time.monotonic() + timeout_s
    while True:
        now = ports()
        if port is not None and (same := _find(now, port)) is not None:
            return same
        new = sorted(p.device for p in now if _is_micropython(p) and p.device not in old)
        if new:
            return new[0]
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    if drive in drives():
        raise FlashError(
            f"the board did not take the UF2: {drive} is still mounted {timeout_s:g} s later",
            hint="check that the image is an RP2040 build; unplug the board, hold BOOTSEL, plug "
            "it in and try again",
        )
    raise FlashError(
        f"the board did not come back as MicroPython within {timeout_s:g} s of the copy",
        hint="unplug it and plug it in again, then look for its port "
        "(`python -m serial.tools.list_ports`)",
    )


def _is_micropython(p: PortInfo) -> bool:
    return (p.vid, p.pid) == (MICROPYTHON_VID, MICROPYTHON_PID)


# ---- the boundaries ------------------------------------------------------------------------


def is_rp2_drive(path: Path) -> bool:
    try:
        return BOARD_ID in (path / INFO_FILE).read_text(errors="replace")
    except OSError:
        return False


def find_rp2_drives() -> list[Path]:
    """The mounted RPI-RP2 drives: directories whose INFO_UF2.TXT says Board-ID: RPI-RP2."""
    seen: set[Path] = set()
    found: list[Path] = []
    for d in _candidate_mounts():
        if d not in seen and is_rp2_drive(d):
            found.append(d)
        seen.add(d)
    return found


def _candidate_mounts() -> list[Path]:
    if sys.platform == "win32":
        return [Path(f"{letter}:\\") for letter in string.ascii_uppercase[3:]]  # from D:
    if sys.platform == "darwin":
        return _children(Path("/Volumes"))
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    found = _children(Path("/media") / user) + _children(Path("/run/media") / user)
    return found + _fat_mounts(Path("/proc/mounts"))


def _children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def _fat_mounts(mounts: Path) -> list[Path]:
    """FAT mount points in a /proc/mounts-style table (octal escapes such as \\040 decoded)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] in _FAT_TYPES:
            found.append(Path(fields[1].encode().decode("unicode_escape")))
    return found


def list_serial_ports() -> list[PortInfo]:
    from serial.tools import list_ports

    return [PortInfo(p.device, p.vid, p.pid) for p in list_ports.comports()]


def request_bootloader(port: str, repl_timeout_s: float = _REPL_TRIES_S) -> str:
    """Ask the board on `port` into its USB bootloader; how: "repl" or "touch".

    At the REPL: Ctrl-C until the raw REPL answers, then machine.bootloader(), which never
    returns: the USB port vanishes, so a reply that does not come, or a port that goes away,
    is success. When no REPL answers, the 1200-baud touch: MicroPython reboots into BOOTSEL when
    its CDC port, set to 1200 baud, is closed, but only in builds with
    MICROPY_HW_USB_CDC_1200BPS_TOUCH (shared/tinyusb/mp_usbd_cdc.c, tud_cdc_line_state_cb);
    ports/rp2/mpconfigport.h does not enable it, so stock RPI_PICO builds ignore it, while
    boards such as ARDUINO_NANO_RP2040_CONNECT enable it in their mpconfigboard.h."""
    with SerialTransport(port) as t:
        if _raw_repl(t, repl_timeout_s):
            try:
                t.write(b"import machine\nmachine.bootloader()\x04")
                t.read(timeout_s=0.5)  # "OK", then nothing: the board is gone
            except TransportError:
                pass  # the port vanished under us: the bootloader has it
            return "repl"
    _touch_1200(port)
    return "touch"


def _raw_repl(t: SerialTransport, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    seen = b""
    while time.monotonic() < deadline:
        t.write(b"\r\x03\x03")  # Ctrl-C twice: stop whatever runs
        t.read(timeout_s=0.1)
        t.write(b"\r\x01")  # Ctrl-A: the raw REPL
        end = time.monotonic() + 0.5
        seen = b""
        while time.monotonic() < end:
            seen += t.read(timeout_s=0.1)
            if seen.endswith(_RAW_REPL):
                return True
    return False


def _touch_1200(port: str) -> None:
    try:
        s = serial.serial_for_url(port, baudrate=1200)
        s.dtr = False  # dtr and rts both down with the line at 1200 baud: the touch
        s.rts = False
        s.close()
    except (serial.SerialException, OSError):
        pass  # a port that vanishes on the touch is one that worked


def copy_uf2(src: Path, drive: Path, progress: Progress | None = None) -> None:
    """Copy `src` onto `drive` (unbuffered writes, then fsync) with progress("copy", done,
    total).

    The RP2040 reboots as soon as the last block lands, so an error once every byte has been
    handed to the OS (the fsync or close of a vanished drive) is success here: if the board did
    not get it all, it does not reboot, and the wait for its port says so. An error before that
    is a failure."""
    total = src.stat().st_size
    done = 0
    report = progress or _no_progress
    dest = drive / src.name
    if dest.resolve() == src.resolve():
        raise FlashError(f"{drive} is where the image is, not an RPI-RP2 drive", hint=_DRIVE_HINT)
    try:
        with open(src, "rb") as s, open(dest, "wb", buffering=0) as d:
            report("copy", 0, total)
            while chunk := s.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    n = d.write(view) or 0  # a raw write may take part of it
                    view = view[n:]
                    done += n
                report("copy", done, total)
            os.fsync(d.fileno())
    except OSError as exc:
        if done < total:
            raise FlashError(
                f"copying {src.name} to {drive} failed after {done} of {total} bytes "
                f"({exc.strerror or exc})",
                hint="unplug the board, hold BOOTSEL, plug it in and try again",
            ) from exc
