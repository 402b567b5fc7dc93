"""The bench reset sequences, against a fake serial port that records its control lines."""

import pytest

from host_tools.boards import load_board
from host_tools.hil.reset import ClassicReset, NoResetLine, reset_for


class FakePort:
    """Records every (line, level) change, as a USB-UART bridge would drive it."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []
        self._dtr = self._rts = False

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, level: bool) -> None:
        self._dtr = level
        self.changes.append(("dtr", level))

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, level: bool) -> None:
        self._rts = level
        self.changes.append(("rts", level))


def test_classic_reset_pulses_en_with_gpio0_high() -> None:
    port = FakePort()
    ClassicReset(pulse_s=0)(port)  # type: ignore[arg-type]
    # DTR (GPIO0) is never asserted, so the chip boots from flash, not into the bootloader;
    # RTS (EN) is asserted then released: one reset pulse, ending released.
    assert ("dtr", True) not in port.changes
    assert [c for c in port.changes if c[0] == "rts"] == [("rts", True), ("rts", False)]
    assert port.rts is False


def test_board_picks_its_reset_wiring() -> None:
    assert isinstance(reset_for(load_board("esp32-devkitc")), ClassicReset)
    assert isinstance(reset_for(load_board("rpi-pico")), NoResetLine)
    with pytest.raises(NotImplementedError):
        NoResetLine()(FakePort())  # type: ignore[arg-type]
