"""flash_uf2() (host_tools/flashing/uf2.py) against a fake bench: a tmp dir as the RPI-RP2
drive, a fake port list, a fake bootloader request that mounts the drive, and a board that
reboots into MicroPython once a whole UF2 lands on it. The real bootloader request runs against
the virtual board (real MicroPython)."""

import errno
import hashlib
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from simnode import status

from host_tools.boards import load_board
from host_tools.errors import ConfigError, FlashError, TransportError
from host_tools.flashing import uf2
from host_tools.flashing.images import Image, find_image
from host_tools.flashing.uf2 import PortInfo, copy_uf2, flash_uf2, is_rp2_drive

PORT = "/dev/ttyACM0"
INFO = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"
FAST: dict[str, Any] = {"timeout_s": 0.3, "poll_s": 0.01}


def micropython(device: str) -> PortInfo:
    return PortInfo(device, 0x2E8A, 0x0005)


def uf2_image(blocks: int = 300) -> bytes:
    out = b""
    for i in range(blocks):
        head = struct.pack(
            "<8I", 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000 + 256 * i, 256, i, blocks, 0xE48BFF56
        )
        out += head + bytes([i % 256]) * 476 + struct.pack("<I", 0x0AB16F30)
    return out


class Bench:
    """One RP2040 on a USB cable, as the host sees it."""

    def __init__(self, root: Path, image_bytes: int, running: bool = True) -> None:
        self.drive = root / "media" / "RPI-RP2"
        self.image_bytes = image_bytes
        self.ports: list[PortInfo] = [micropython(PORT)] if running else []
        self.calls: list[tuple[str, ...]] = []
        self.how = "repl"
        self.bootloader_mounts = True  # the request works
        self.takes_uf2 = True  # the boot ROM reboots once the UF2 is written
        self.comes_back_as: PortInfo | None = micropython(PORT)
        self.flashed = b""
        if not running:
            self.mount()

    def mount(self) -> None:
        self.drive.mkdir(parents=True)
        (self.drive / "INFO_UF2.TXT").write_text(INFO)

    def _react(self) -> None:
        """The boot ROM: a whole UF2 on the drive is written to flash, then it reboots."""
        if not self.takes_uf2 or not self.drive.exists():
            return
        for f in self.drive.glob("*.uf2"):
            if f.stat().st_size == self.image_bytes:
                self.flashed = f.read_bytes()
                for child in self.drive.iterdir():
                    child.unlink()
                self.drive.rmdir()
                if self.comes_back_as is not None:
                    self.ports.append(self.comes_back_as)

    def find_drives(self) -> list[Path]:
        self._react()
        return [self.drive] if is_rp2_drive(self.drive) else []

    def list_ports(self) -> list[PortInfo]:
        self._react()
        return list(self.ports)

    def enter_bootloader(self, port: str) -> str:
        self.calls.append(("bootloader", port))
        if self.bootloader_mounts:
            self.ports = [p for p in self.ports if p.device != port]
            self.mount()
        return self.how

    def boundaries(self) -> dict[str, Any]:
        return {
            "find_drives": self.find_drives,
            "list_ports": self.list_ports,
            "enter_bootloader": self.enter_bootloader,
        }


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTE_IMAGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def image(tmp_path: Path) -> Image:
    path = tmp_path / "RPI_PICO-20250911-v1.29.0.uf2"
    path.write_bytes(uf2_image())
    return find_image(load_board("rpi-pico"), image=path)


def bench(tmp_path: Path, image: Image, **kw: Any) -> Bench:
    return Bench(tmp_path, image.size, **kw)


# ---- the way through --------------------------------------------------------------------


def test_a_running_board_is_sent_to_its_bootloader_flashed_and_found_again(
    tmp_path: Path, image: Image
) -> None:
    b = bench(tmp_path, image)
    seen: list[tuple[str, int, int]] = []
    port = flash_uf2(
        load_board("rpi-pico"), PORT, image, progress=lambda *a: seen.append(a),
        **b.boundaries(), **FAST,
    )  # fmt: skip
    assert port == PORT
    assert b.calls == [("bootloader", PORT)]
    assert b.flashed == image.path.read_bytes()
    assert seen[0] == ("copy", 0, image.size) and seen[-1] == ("copy", image.size, image.size)
    dones = [done for _, done, _ in seen]
    assert dones == sorted(dones) and len(set(dones)) > 2


def test_a_board_already_in_bootsel_skips_the_bootloader_step(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image, running=False)
    port = flash_uf2(load_board("rpi-pico"), None, image, **b.boundaries(), **FAST)
    assert port == PORT and b.calls == []
    assert b.flashed == image.path.read_bytes()


def test_a_named_port_that_is_gone_with_a_drive_mounted_is_in_bootsel(
    tmp_path: Path, image: Image
) -> None:
    b = bench(tmp_path, image, running=False)
    assert flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST) == PORT
    assert b.calls == []


def test_the_board_may_come_back_under_another_name(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    b.ports.append(PortInfo("/dev/ttyUSB0", 0x10C4, 0xEA60))  # a CP2102 bridge: not ours
    b.ports.append(micropython("/dev/ttyACM3"))  # another Pico, there before the flash
    b.comes_back_as = micropython("/dev/ttyACM1")
    port = flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST)
    assert port == "/dev/ttyACM1"


def test_a_drive_path_given_is_watched_for_the_drive(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    other = tmp_path / "media" / "OTHER"  # another board in BOOTSEL: not this one's
    other.mkdir(parents=True)
    (other / "INFO_UF2.TXT").write_text(INFO)
    port = flash_uf2(
        load_board("rpi-pico"), PORT, image, drive=b.drive,
        list_ports=b.list_ports, enter_bootloader=b.enter_bootloader, **FAST,
    )  # fmt: skip
    assert port == PORT and b.flashed == image.path.read_bytes()
    assert list(other.iterdir()) == [other / "INFO_UF2.TXT"]


# ---- refusals and timeouts --------------------------------------------------------------


def test_an_image_that_is_not_a_uf2_is_refused_before_anything_happens(
    tmp_path: Path, image: Image
) -> None:
    b = bench(tmp_path, image)
    esp = Image(image.path, image.sha256, image.size, "ESP32_GENERIC", "1.29.0", "esp", "esp32")
    touched: list[str] = []

    def spy(name: str, fn: Any) -> Any:
        def called(*args: Any) -> Any:
            touched.append(name)
            return fn(*args)

        return called

    with pytest.raises(FlashError, match="an ESP32 image, and rpi-pico is an RP2040 board"):
        flash_uf2(
            load_board("rpi-pico"), PORT, esp, find_drives=spy("drives", b.find_drives),
            list_ports=spy("ports", b.list_ports), enter_bootloader=b.enter_bootloader, **FAST,
        )  # fmt: skip
    assert touched == [] and b.calls == []


def test_an_esp_board_is_not_flashed_with_a_uf2(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    with pytest.raises(ConfigError, match="not an RP2040 board"):
        flash_uf2(load_board("esp32-devkitc"), PORT, image, **b.boundaries(), **FAST)
    assert b.calls == []


@pytest.mark.parametrize(
    ("how", "words"), [("repl", "was asked into"), ("touch", "did not answer")]
)
def test_no_drive_appearing_times_out(tmp_path: Path, image: Image, how: str, words: str) -> None:
    b = bench(tmp_path, image)
    b.bootloader_mounts = False
    b.how = how
    started = time.monotonic()
    with pytest.raises(FlashError) as e:
        flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST)
    assert time.monotonic() - started < 2
    assert str(e.value).startswith("no RPI-RP2 drive appeared within 0.3 s") and words in str(
        e.value
    )
    assert "hold BOOTSEL" in e.value.hint and "--drive PATH" in e.value.hint


def test_a_board_that_does_not_take_the_uf2_times_out(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    b.takes_uf2 = False
    with pytest.raises(FlashError, match="did not take the UF2: .* is still mounted"):
        flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST)


def test_a_board_that_does_not_come_back_times_out(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    b.comes_back_as = None
    with pytest.raises(FlashError, match="did not come back as MicroPython within 0.3 s"):
        flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST)
    assert b.flashed == image.path.read_bytes()


def test_nothing_to_reach_the_board_by(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image)
    b.ports = []
    with pytest.raises(TransportError, match=f"no serial port {PORT}, and no RPI-RP2 drive"):
        flash_uf2(load_board("rpi-pico"), PORT, image, **b.boundaries(), **FAST)
    with pytest.raises(FlashError, match="no RPI-RP2 drive mounted") as e:
        flash_uf2(load_board("rpi-pico"), None, image, **b.boundaries(), **FAST)
    assert "BOOTSEL" in e.value.hint and b.calls == []


def test_two_boards_in_bootsel_are_not_guessed_between(tmp_path: Path, image: Image) -> None:
    b = bench(tmp_path, image, running=False)
    other = tmp_path / "media" / "RPI-RP2 1"
    other.mkdir()
    (other / "INFO_UF2.TXT").write_text(INFO)
    drives = lambda: [b.drive, other]  # noqa: E731
    with pytest.raises(FlashError, match="more than one RPI-RP2 drive") as e:
        flash_uf2(load_board("rpi-pico"), None, image, find_drives=drives,
                  list_ports=b.list_ports, **FAST)  # fmt: skip
    assert "--drive" in e.value.hint
    assert not list(b.drive.glob("*.uf2")) and not list(other.glob("*.uf2"))


# ---- the copy and the drive finder ------------------------------------------------------


def test_copy_failing_midway_is_an_error(tmp_path: Path, image: Image) -> None:
    with pytest.raises(FlashError, match=f"failed after 0 of {image.size} bytes"):
        copy_uf2(image.path, tmp_path / "not-mounted")


def test_the_drive_vanishing_once_every_byte_is_written_is_success(
    tmp_path: Path, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    def vanished(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")  # the board rebooted under the fsync

    monkeypatch.setattr(uf2.os, "fsync", vanished)
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    copy_uf2(image.path, drive)
    assert (drive / image.path.name).read_bytes() == image.path.read_bytes()


def test_the_image_is_not_copied_onto_itself(image: Image) -> None:
    data = image.path.read_bytes()
    with pytest.raises(FlashError, match="not an RPI-RP2 drive"):
        copy_uf2(image.path, image.path.parent)
    assert image.path.read_bytes() == data


def test_an_rp2_drive_is_known_by_its_info_file(tmp_path: Path) -> None:
    (tmp_path / "INFO_UF2.TXT").write_text(INFO)
    assert is_rp2_drive(tmp_path)
    (tmp_path / "INFO_UF2.TXT").write_text("UF2 Bootloader v1.0\nBoard-ID: RP2350\n")
    assert not is_rp2_drive(tmp_path)
    assert not is_rp2_drive(tmp_path / "nowhere")


def test_fat_mount_points_come_from_the_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(
        "/dev/sda1 / ext4 rw,relatime 0 0\n"
        "/dev/sdb1 /media/pat/RPI-RP2 vfat rw,nosuid,nodev 0 0\n"
        "/dev/sdc1 /mnt/my\\040pico msdos rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
    )
    assert uf2._fat_mounts(table) == [Path("/media/pat/RPI-RP2"), Path("/mnt/my pico")]
    assert uf2._fat_mounts(tmp_path / "none") == []


# ---- the real bootloader request, against the virtual board ------------------------------


def test_the_bootloader_is_reached_through_micropythons_repl(boot: Any) -> None:
    node = boot("sim-rp2")
    node.close()  # let go of the port, as another program would
    assert uf2.request_bootloader(node.port) == "repl"
    deadline = time.monotonic() + 5
    while status(node)["mode"] != "bootloader":
        assert time.monotonic() < deadline, status(node)
        time.sleep(0.05)


def test_no_repl_falls_back_to_the_1200_baud_touch() -> None:
    master, slave = os.openpty()  # a port where nothing answers
    try:
        started = time.monotonic()
        assert uf2.request_bootloader(os.ttyname(slave), repl_timeout_s=0.3) == "touch"
        assert time.monotonic() - started < 3
    finally:
        os.close(master)
        os.close(slave)


def test_image_fixture_is_a_real_uf2(image: Image) -> None:
    assert (image.format, image.chip) == ("uf2", "rp2040")
    assert image.sha256 == hashlib.sha256(image.path.read_bytes()).hexdigest()
