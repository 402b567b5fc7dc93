"""flash_esp() (host_tools/flashing/esp.py) against a fake esptool link holding a flash image in
memory, plus the real EsptoolLink's log routing and port errors (no board needed for those)."""

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from esptool.util import FatalError, NotImplementedInROMError

from host_tools.boards import load_board
from host_tools.errors import FlashError, MoteError, TransportError
from host_tools.flashing.esp import EspResult, EsptoolLink, flash_esp
from host_tools.flashing.images import Image, find_image

PORT = "/dev/ttyFAKE0"
CHIP_IDS = {"esp32": 0, "esp32s3": 9, "esp32c3": 5}
OFFSETS = {"esp32": 0x1000, "esp32s3": 0, "esp32c3": 0}
TABLE_AT, APP_AT = 0x8000, 0x10000


def partition_table(app_size: int = 0x1F0000) -> bytes:
    """Two ESP-IDF partition entries (magic 0x50AA, type, subtype, offset, size, label, flags),
    then the MD5 entry's magic, padded with erased flash to the 0xC00-byte region."""
    nvs = struct.pack("<2sBBII16sI", b"\xaa\x50", 1, 2, 0x9000, 0x6000, b"nvs", 0)
    app = struct.pack("<2sBBII16sI", b"\xaa\x50", 0, 0, APP_AT, app_size, b"factory", 0)
    md5 = b"\xeb\xeb" + b"\xff" * 14 + bytes(range(16))
    return (nvs + app + md5).ljust(0xC00, b"\xff")


def full_image(chip: str, table: bytes | None = None, app: int = 0x3000) -> bytes:
    """MicroPython's combined image as micropython.org ships it: bootloader (an ESP image header
    with the chip id) at the image offset, the partition table at 0x8000, the app at 0x10000."""
    offset = OFFSETS[chip]
    header = struct.pack("<BBBBI", 0xE9, 3, 2, 0x20, 0x40080000) + struct.pack(
        "<BBBBHBHH4BB", 0xEE, 0, 0, 0, CHIP_IDS[chip], 0, 0, 0xFFFF, 0, 0, 0, 0, 1
    )
    data = bytearray(b"\xff" * (APP_AT - offset + app))
    data[: len(header)] = header
    data[TABLE_AT - offset : TABLE_AT - offset + 0xC00] = (
        partition_table() if table is None else table
    )
    data[APP_AT - offset :] = bytes(i % 251 for i in range(app))
    return bytes(data)


class FakeChip:
    """What is on the other end of the port: a chip with a flash."""

    def __init__(self, chip: str = "esp32", flash_bytes: int = 4 * 1024 * 1024) -> None:
        self.chip = chip
        self.flash = bytearray(b"\xff" * flash_bytes)
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}  # method name -> raised when called
        self.corrupt_write = False

    def holds(self, at: int, data: bytes) -> None:
        self.flash[at : at + len(data)] = data


class FakeLink:
    def __init__(self, chip: FakeChip, port: str) -> None:
        self.fake = chip
        self.port = port
        self.chip = ""

    def _call(self, name: str) -> None:
        self.fake.calls.append(name)
        if name in self.fake.fail:
            raise self.fake.fail[name]

    def connect(self) -> None:
        self._call("connect")
        self.chip = self.fake.chip

    def mac(self) -> str:
        self._call("mac")
        return "24:0a:c4:00:11:22"

    def read_flash(self, offset: int, size: int) -> bytes:
        self._call(f"read {offset:#x}+{size:#x}")
        return bytes(self.fake.flash[offset : offset + size])

    def erase_flash(self) -> None:
        self._call("erase")
        self.fake.flash[:] = b"\xff" * len(self.fake.flash)

    def write_flash(
        self, offset: int, data: bytes, progress: Callable[[int, int], None] | None
    ) -> None:
        self._call(f"write {offset:#x}")
        for at in range(0, len(data), 0x4000):
            chunk = data[at : at + 0x4000]
            self.fake.flash[offset + at : offset + at + len(chunk)] = chunk
            if progress:
                progress(at + len(chunk), len(data))
        if self.fake.corrupt_write:
            self.fake.flash[offset + 100] ^= 0x01

    def flash_md5(self, offset: int, size: int) -> str:
        import hashlib

        self._call("md5")
        return hashlib.md5(bytes(self.fake.flash[offset : offset + size])).hexdigest()

    def hard_reset(self) -> None:
        self._call("reset")

    def close(self) -> None:
        self.fake.calls.append("close")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTE_IMAGE_CACHE", str(tmp_path / "cache"))


def image_for(tmp_path: Path, board: dict[str, Any], data: bytes) -> Image:
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    return find_image(board, image=path)


def run(
    chip: FakeChip, board: dict[str, Any], image: Image, erase: bool | None = None, **kw: Any
) -> EspResult:
    return flash_esp(
        board, PORT, image, erase=erase, link_factory=lambda p: FakeLink(chip, p), **kw
    )


# ---- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("board_name", "mcu"), [("esp32-devkitc", "esp32"), ("esp32-s3-devkitc", "esp32s3")]
)
def test_the_image_lands_at_the_chips_offset(tmp_path: Path, board_name: str, mcu: str) -> None:
    board = load_board(board_name)
    data = full_image(mcu)
    chip = FakeChip(mcu)
    result = run(chip, board, image_for(tmp_path, board, data))
    offset = OFFSETS[mcu]
    assert board["micropython"]["image_offset"] == offset
    assert chip.flash[offset : offset + len(data)] == data
    assert chip.flash[:offset] == b"\xff" * offset  # nothing written before the image
    assert result == EspResult(
        chip=mcu, mac="24:0a:c4:00:11:22", erased=True,
        erase_reason="no partition table on the chip", offset=offset,
        bytes_written=len(data), verified=True,
    )  # fmt: skip
    assert chip.calls == [
        "connect", "mac", "read 0x8000+0xc00", "erase", f"write {offset:#x}", "md5", "reset",
        "close",
    ]  # fmt: skip


def test_the_filesystem_is_kept_when_the_partition_table_is_the_same(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    data = full_image("esp32")
    chip = FakeChip("esp32")
    chip.holds(TABLE_AT, partition_table())
    chip.holds(0x200000, b"littlefs user files")  # the vfs partition
    result = run(chip, board, image_for(tmp_path, board, data))
    assert (result.erased, result.erase_reason) == (False, "partition table unchanged")
    assert "erase" not in chip.calls
    assert chip.flash[0x200000 : 0x200000 + 19] == b"littlefs user files"


def test_a_new_partition_layout_erases(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    chip = FakeChip("esp32")
    chip.holds(TABLE_AT, partition_table(app_size=0x180000))  # an older MicroPython's layout
    chip.holds(0x200000, b"old files")
    result = run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert (result.erased, result.erase_reason) == (True, "partition table differs")
    assert chip.calls.index("erase") < chip.calls.index("write 0x1000")
    assert chip.flash[0x200000 : 0x200000 + 9] == b"\xff" * 9


@pytest.mark.parametrize(("erase", "erased", "reason"), [(True, True, "asked"), (False, False, "")])
def test_erase_asked_or_ruled_out_does_not_look_at_the_table(
    tmp_path: Path, erase: bool, erased: bool, reason: str
) -> None:
    board = load_board("esp32-s3-devkitc")
    chip = FakeChip("esp32s3")
    chip.holds(TABLE_AT, partition_table(app_size=0x100000))  # differs: erase=False keeps it
    result = run(chip, board, image_for(tmp_path, board, full_image("esp32s3")), erase=erase)
    assert (result.erased, result.erase_reason) == (erased, reason)
    assert ("erase" in chip.calls) is erased
    assert not any(c.startswith("read") for c in chip.calls)


def test_progress_rises_to_the_image_size(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    data = full_image("esp32", app=0x20000)
    seen: list[tuple[str, int, int]] = []
    image = image_for(tmp_path, board, data)
    run(FakeChip("esp32"), board, image, erase=True, progress=lambda *a: seen.append(a))
    assert seen[:2] == [("erase", 0, 1), ("erase", 1, 1)]
    writes = [(done, total) for step, done, total in seen if step == "write"]
    assert len(writes) > 3
    assert all(total == len(data) for _, total in writes)
    dones = [done for done, _ in writes]
    assert dones == sorted(set(dones)) and dones[-1] == len(data)


# ---- refusals -----------------------------------------------------------------------------


def test_a_chip_that_is_not_the_boards_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    board = load_board("esp32-devkitc")
    chip = FakeChip("esp32s3")
    with pytest.raises(FlashError) as e:
        run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert str(e.value) == f"{PORT} has an ESP32-S3, but esp32-devkitc is an ESP32 board"
    assert "--board" in e.value.hint
    assert chip.calls == ["connect", "close"]
    assert chip.flash == b"\xff" * len(chip.flash)


def test_an_image_for_another_chip_is_refused_before_the_port_is_opened(tmp_path: Path) -> None:
    s3 = load_board("esp32-s3-devkitc")
    image = image_for(tmp_path, s3, full_image("esp32s3"))
    chip = FakeChip("esp32")
    with pytest.raises(FlashError, match="an ESP32-S3 image, and esp32-devkitc is an ESP32"):
        run(chip, load_board("esp32-devkitc"), image)
    assert chip.calls == []


def test_an_image_without_a_partition_table_is_refused(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    data = full_image("esp32", table=b"\xff" * 0xC00)  # an app-only .bin, say
    chip = FakeChip("esp32")
    with pytest.raises(FlashError, match="not a full MicroPython image"):
        run(chip, board, image_for(tmp_path, board, data))
    assert chip.calls == []


def test_an_image_bigger_than_the_flash_is_refused(tmp_path: Path) -> None:
    board = {**load_board("esp32-devkitc")}
    board["flash"] = {**board["flash"], "size_bytes": 0x10000}
    chip = FakeChip("esp32")
    with pytest.raises(FlashError, match="does not fit the 64 KiB flash"):
        run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert chip.calls == []


def test_an_image_changed_since_it_was_found_is_refused(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    image = image_for(tmp_path, board, full_image("esp32"))
    image.path.write_bytes(full_image("esp32", app=0x10))
    chip = FakeChip("esp32")
    with pytest.raises(FlashError, match="changed since it was checked"):
        run(chip, board, image)
    assert chip.calls == []


def test_a_verify_mismatch_fails_and_does_not_reset(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    chip = FakeChip("esp32")
    chip.corrupt_write = True
    with pytest.raises(FlashError, match="verify failed") as e:
        run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert "--erase" in e.value.hint
    assert "reset" not in chip.calls and chip.calls[-1] == "close"


# ---- esptool's exceptions ---------------------------------------------------------------------


def fails(method: str, exc: BaseException, tmp_path: Path) -> tuple[MoteError, FakeChip]:
    board = load_board("esp32-devkitc")
    chip = FakeChip("esp32")
    chip.fail[method] = exc
    with pytest.raises(MoteError) as e:
        run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert chip.calls[-1] == "close"  # the port is let go whatever happened
    return e.value, chip


def test_no_bootloader_answering_says_how_to_get_into_it(tmp_path: Path) -> None:
    exc = FatalError(
        "Failed to connect to ESP32: No serial data received.\n"
        "For troubleshooting steps visit: https://docs.espressif.com/projects/esptool/"
    )
    err, _ = fails("connect", exc, tmp_path)
    assert type(err) is FlashError
    assert str(err) == (
        f"no ESP bootloader answered on {PORT} (Failed to connect to ESP32: No serial data "
        "received.)"
    )
    assert "hold BOOT" in err.hint and "EN" in err.hint


def test_an_esptool_error_while_writing_is_one_line(tmp_path: Path) -> None:
    mismatch = FatalError("MD5 of file does not match data in flash!\nmore")
    err, chip = fails("write 0x1000", mismatch, tmp_path)
    assert type(err) is FlashError
    assert str(err) == (
        f"writing MicroPython failed on {PORT}: MD5 of file does not match data in flash!"
    )
    assert "reset" not in chip.calls


def test_an_esptool_subclass_error_is_mapped_too(tmp_path: Path) -> None:
    rom = type("ROM", (), {"CHIP_NAME": "ESP32"})()
    err, _ = fails("erase", NotImplementedInROMError(rom, FakeLink.erase_flash), tmp_path)
    assert type(err) is FlashError
    assert str(err) == (
        f"erasing the flash failed on {PORT}: ESP32 ROM does not support function erase_flash."
    )


def test_a_port_that_goes_away_is_a_transport_error(tmp_path: Path) -> None:
    err, _ = fails("write 0x1000", serial.SerialException("device disconnected"), tmp_path)
    assert type(err) is TransportError
    assert str(err) == f"{PORT} went away while writing MicroPython (device disconnected)"
    assert err.exit_code == 3


def test_other_exceptions_are_not_disguised(tmp_path: Path) -> None:
    board = load_board("esp32-devkitc")
    chip = FakeChip("esp32")
    chip.fail["mac"] = ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError):
        run(chip, board, image_for(tmp_path, board, full_image("esp32")))
    assert chip.calls[-1] == "close"


# ---- the real esptool boundary, without a board -------------------------------------------


def test_esptool_output_goes_to_the_link_not_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from esp_pylib.logger import EspLog
    from esptool.logger import log

    messages: list[str] = []
    bars: list[tuple[int, int]] = []
    link = EsptoolLink(PORT, on_message=messages.append)
    with link._output(lambda done, total: bars.append((done, total))):
        before = EspLog.instance
        log.print("Connecting...")
        log.note("Flash will be erased")
        log.warn("Security features enabled")
        log.error("Error when read chip_info")
        with log.progress(total=1000, unit="B") as bar:
            bar.update(400)
            bar.update(600)
    assert capsys.readouterr() == ("", "")
    assert messages == [
        "Connecting...", "Note: Flash will be erased", "Warning: Security features enabled",
        "Error: Error when read chip_info",
    ]  # fmt: skip
    assert bars == [(400, 1000), (1000, 1000)]
    assert EspLog.instance is not before  # esptool's own logger is back
    assert type(EspLog.instance).__name__ == "EsptoolLogger"


@pytest.fixture
def pty_path() -> Iterator[str]:
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_missing_port_is_a_one_line_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError) as e:
        EsptoolLink(str(tmp_path / "ttyUSB9")).connect()
    assert str(e.value) == f"no serial port {tmp_path / 'ttyUSB9'}"


def test_a_busy_port_is_a_one_line_transport_error(pty_path: str) -> None:
    holder = serial.serial_for_url(pty_path, exclusive=True)  # mpremote, screen... has it
    try:
        with pytest.raises(TransportError) as e:
            EsptoolLink(pty_path).connect()
        assert str(e.value) == f"{pty_path} is busy: another program has it open"
    finally:
        holder.close()
