"""How each port reports each kind of reset, and what survives it.

Sources: MicroPython's esp32 port maps ESP-IDF reset reasons to machine constants
(ports/esp32/modmachine.c: POWERON/BROWNOUT -> PWRON_RESET, SW/PANIC -> SOFT_RESET, task or
interrupt WDT -> WDT_RESET, DEEPSLEEP -> DEEPSLEEP_RESET; the EN button is a power-on reset on the
ESP32), and the ESP32 ROM prints `rst:0xN (NAME)` with the chip's own reset code. The rp2 port
knows only PWRON_RESET and WDT_RESET; machine.reset() and deepsleep() both end in a watchdog
reboot there. RTC slow memory (RTC.memory(), esp32 only) survives deep sleep and software or
watchdog resets, not a loss of power.
"""

from dataclasses import dataclass

KINDS = ("power_on", "button", "brownout", "software", "watchdog", "deepsleep")


@dataclass(frozen=True)
class ResetInfo:
    cause: int  # machine.reset_cause() after this reset
    rom_line: str  # what the chip's mask ROM prints, if anything
    keeps_rtc_memory: bool


def _esp32(cause: int, code: int, name: str, keeps: bool) -> ResetInfo:
    line = f"ets Jul 29 2019 12:21:46\n\nrst:0x{code:x} ({name}),boot:0x13 (SPI_FAST_FLASH_BOOT)\n"
    return ResetInfo(cause, line, keeps)


_TABLE = {
    "esp32": {
        "power_on": _esp32(1, 0x1, "POWERON_RESET", False),
        "button": _esp32(1, 0x1, "POWERON_RESET", False),
        "brownout": _esp32(1, 0xF, "RTCWDT_BROWN_OUT_RESET", False),
        "software": _esp32(5, 0xC, "SW_CPU_RESET", True),
        "watchdog": _esp32(3, 0xC, "SW_CPU_RESET", True),
        "deepsleep": _esp32(4, 0x5, "DEEPSLEEP_RESET", True),
    },
    "rp2": {
        "power_on": ResetInfo(1, "", False),
        "button": ResetInfo(1, "", False),
        "brownout": ResetInfo(1, "", False),
        "software": ResetInfo(3, "", False),
        "watchdog": ResetInfo(3, "", False),
        "deepsleep": ResetInfo(3, "", False),
    },
}


def reset_info(port: str, kind: str) -> ResetInfo:
    return _TABLE[port][kind]


_NAMES = {1: "PWRON_RESET", 2: "HARD_RESET", 3: "WDT_RESET", 4: "DEEPSLEEP_RESET", 5: "SOFT_RESET"}


def cause_name(cause: int) -> str:
    """The machine constant's name for a reset_cause() value (same numbers on both ports)."""
    return _NAMES.get(cause, f"UNKNOWN_{cause}")
