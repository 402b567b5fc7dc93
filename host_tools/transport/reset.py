"""Hard-reset sequences for boards on a real serial port, one small class per wiring.

ESP32 dev boards wire the USB-UART bridge's RTS to EN (through a transistor pair, as esptool's
reset code documents) and DTR to GPIO0; the RP2040's USB CDC has no reset line.
"""

import time

import serial


class ClassicReset:
    """Pulse EN low through RTS while keeping GPIO0 high: a normal boot, not the bootloader."""

    def __init__(self, pulse_s: float = 0.1) -> None:
        self.pulse_s = pulse_s

    def __call__(self, port: serial.Serial) -> None:
        port.dtr = False  # IO0=HIGH: boot from flash
        port.rts = True  # EN=LOW: chip in reset
        time.sleep(self.pulse_s)
        port.rts = False  # EN=HIGH: chip out of reset


class NoResetLine:
    """Boards without a reset line (RP2040 USB CDC): reset from the REPL instead."""

    def __call__(self, port: serial.Serial) -> None:
        raise NotImplementedError("this board has no serial reset line")


def reset_for(board: dict[str, object]) -> ClassicReset | NoResetLine:
    return ClassicReset() if board.get("port") == "esp32" else NoResetLine()
