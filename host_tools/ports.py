"""The serial ports a node may be on: USB ports with a board guess, and running virtual boards.

    for p in list_ports(virtual=running_boards):
        print(p.device, p.vid_pid, p.guess)     # /dev/ttyUSB0 10C4:EA60 CP210x USB-UART: ...

A guess comes from the USB VID:PID alone (the table below): it names the chip behind the port
and the boards that usually carry it, never more. An unknown VID:PID guesses "".
"""

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from serial.tools.list_ports import comports

Kind = Literal["usb", "virtual", "other"]

# VID:PID -> what is behind the port. Sources:
# - 10C4:EA60, 1A86:7523, 1A86:55D4, 0403:6001, 0403:6015: the USB-UART bridge chips' stock IDs
#   (Silicon Labs CP210x, WCH CH340/CH341 and CH9102, FTDI FT232R and FT-X); mu-editor's ESP mode
#   (mu/modes/esp.py) matches 10C4:EA60, 1A86:7523 and 0403:6015 for ESP32 boards the same way.
# - 303A:1001: Espressif's USB-Serial/JTAG peripheral (ESP32-S3/C3/C6 native USB), the same in
#   the ROM bootloader and in firmware that uses it: esptool's `USB_JTAG_SERIAL_PID = 0x1001`
#   (esp_pylib/constants.py, with `ESPRESSIF_VID = 0x303A`).
# - 303A:4001: TinyUSB's default CDC-only PID under Espressif's VID (esp_tinyusb
#   usb_descriptors.c: `USB_TUSB_PID = 0x4000 | CDC<<0 | MSC<<1 | ...`), which MicroPython on
#   ESP32-S2/S3 enumerates as when it drives the native USB-OTG port itself (espressif/usb-pids
#   PR #382: "the TinyUSB default PID 0x4001 is shared with every ESP32-S3 devkit").
#   Boards with their own PID (Unexpected Maker, Arduino Nano ESP32, ...) guess "".
# - 2E8A:0005: MicroPython's own USB CDC on RP2040/RP2350 (micropython ports/rp2/mpconfigport.h:
#   `MICROPY_HW_USB_PID (0x0005) // RP2 MicroPython` under the Raspberry Pi VID 0x2E8A).
#   2E8A:0003, an RP2040 held in BOOTSEL, is a USB drive and not a serial port: `mote flash`
#   finds it, this list never shows it.
_GUESSES: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "CP210x USB-UART: most ESP32 dev boards (Heltec V3, TTGO)",
    (0x1A86, 0x7523): "CH340/CH341 USB-UART: ESP32 dev boards",
    (0x1A86, 0x55D4): "CH9102 USB-UART: ESP32 dev boards",
    (0x0403, 0x6001): "FTDI FT232R USB-UART",
    (0x0403, 0x6015): "FTDI FT-X USB-UART",
    (0x303A, 0x1001): "Espressif USB-JTAG/serial: ESP32-S3/C3 native USB (ROM or MicroPython)",
    (0x303A, 0x4001): "Espressif TinyUSB CDC: MicroPython on ESP32-S2/S3 native USB",
    (0x2E8A, 0x0005): "MicroPython on RP2040 (Raspberry Pi Pico)",
}


@dataclass(frozen=True)
class PortInfo:
    """One port. `to_json()` is the `mote ports --json` contract (docs/host-tools.md)."""

    device: str  # what --port takes: /dev/ttyUSB0, COM3, a virtual board's pty
    vid: int | None  # USB vendor id, None when not a USB port
    pid: int | None  # USB product id
    serial_number: str | None
    manufacturer: str | None
    description: str  # the system's name for it ("" if none); a virtual board: its board
    guess: str  # what is probably behind it ("" if unknown); a virtual board: its board name
    kind: Kind

    @property
    def vid_pid(self) -> str:
        """ "10C4:EA60", or "" for a port without USB ids."""
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04X}:{self.pid:04X}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunningBoardLike(Protocol):
    """What list_ports needs of host_tools.sim.running.RunningBoard."""

    @property
    def board(self) -> str: ...

    @property
    def port(self) -> str: ...

    @property
    def pid(self) -> int: ...


def guess(vid: int | None, pid: int | None) -> str:
    """The board guess for a USB VID:PID, "" when unknown."""
    if vid is None or pid is None:
        return ""
    return _GUESSES.get((vid, pid), "")


def list_ports(
    *,
    lister: Callable[[], Iterable[Any]] = comports,
    virtual: Callable[[], Iterable[RunningBoardLike]] = lambda: (),
) -> list[PortInfo]:
    """The system's serial ports (sorted by device), then the running virtual boards.

    `lister` returns pyserial ListPortInfo-like objects; `virtual` the running virtual boards
    (host_tools.sim.running.running_boards; none by default).
    """
    found = sorted((_from_pyserial(p) for p in lister()), key=lambda p: p.device)
    seen = {p.device for p in found}
    for b in virtual():
        if b.port in seen:
            continue
        seen.add(b.port)
        found.append(
            PortInfo(
                device=b.port,
                vid=None,
                pid=None,
                serial_number=None,
                manufacturer=None,
                description=f"virtual board {b.board} (mote sim, pid {b.pid})",
                guess=b.board,
                kind="virtual",
            )
        )
    return found


def _from_pyserial(p: Any) -> PortInfo:
    vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
    description = getattr(p, "description", None) or ""
    if description == "n/a":  # pyserial's placeholder for "no description"
        description = ""
    return PortInfo(
        device=str(p.device),
        vid=vid,
        pid=pid,
        serial_number=getattr(p, "serial_number", None),
        manufacturer=getattr(p, "manufacturer", None),
        description=description,
        guess=guess(vid, pid),
        kind="usb" if vid is not None else "other",
    )
