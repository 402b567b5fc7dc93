"""`mote flash` as a user runs it. For an ESP32 board only esptool is faked (the FakeLink of
test_flash_esp.py): on its hard reset the virtual ESP32 behind the port comes up as a freshly
flashed MicroPython (its flash erased), and the real deploy follows. Virtual boards and
`--port sim:BOARD` are exercised for real."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from simnode import Mote
from test_flash_esp import FakeChip, FakeLink, full_image

from host_tools import firmware_files
from host_tools.flashing import esp
from host_tools.flashing.images import add_image
from host_tools.sim import running
from host_tools.sim.launcher import SimProcess


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTE_IMAGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MOTE_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MOTE_SIM_HOME", str(tmp_path / "sims"))
    monkeypatch.delenv("MOTE_PORT", raising=False)


@pytest.fixture
def sim_esp32() -> Iterator[SimProcess]:
    with SimProcess("sim-esp32", baud=0) as sim:
        yield sim


def cached_image(tmp_path: Path, chip: str = "esp32") -> None:
    path = tmp_path / "ESP32_GENERIC-20261101-v1.29.0.bin"
    path.write_bytes(full_image(chip))
    add_image(path)


class ResettingLink(FakeLink):
    """esptool's side faked; its hard reset boots the virtual ESP32 as new MicroPython."""

    def __init__(self, chip: FakeChip, port: str, sim: SimProcess) -> None:
        super().__init__(chip, port)
        self.sim = sim

    def hard_reset(self) -> None:
        super().hard_reset()
        self.sim.control.request("erase_flash")


def esp_behind(sim: SimProcess, chip: str, tmp_path: Path, mp: pytest.MonkeyPatch) -> FakeChip:
    """An image in the cache and esptool faked: an ESP chip of `chip` behind the sim's port."""
    cached_image(tmp_path)
    fake = FakeChip(chip)
    mp.setattr(esp, "EsptoolLink", lambda port: ResettingLink(fake, port, sim))
    return fake


def test_an_esp32_is_flashed_and_deployed(
    tmp_path: Path,
    sim_esp32: SimProcess,
    monkeypatch: pytest.MonkeyPatch,
    mote: Mote,
) -> None:
    chip = esp_behind(sim_esp32, "esp32", tmp_path, monkeypatch)
    args = ("flash", "--board", "esp32-devkitc", "--port", sim_esp32.port, "--json", "--hold")
    rc, out, err = mote(*args)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["image"]["file"] == "ESP32_GENERIC-20261101-v1.29.0.bin"
    flash = summary["flash"]
    assert flash["chip"] == "esp32" and flash["offset"] == 0x1000 and flash["verified"]
    assert (flash["erased"], flash["erase_reason"]) == (True, "no partition table on the chip")
    image = (tmp_path / "cache" / "ESP32_GENERIC-20261101-v1.29.0.bin").read_bytes()
    assert bytes(chip.flash[0x1000 : 0x1000 + len(image)]) == image
    build = firmware_files.build("esp32-devkitc", tmp_path / "b")
    assert summary["deploy"]["build"] == build.id
    assert summary["deploy"]["copied"] == len(build.files)
    rc, out, err = mote("info", "--port", sim_esp32.port, "--json", "--wait", "10")
    assert rc == 0, err
    assert json.loads(out)["board"] == "esp32-devkitc"


def test_the_wrong_chip_is_refused_and_nothing_is_written(
    tmp_path: Path,
    sim_esp32: SimProcess,
    monkeypatch: pytest.MonkeyPatch,
    mote: Mote,
) -> None:
    chip = esp_behind(sim_esp32, "esp32s3", tmp_path, monkeypatch)
    rc, out, err = mote("flash", "--board", "esp32-devkitc", "--port", sim_esp32.port)
    assert rc == 6 and "deploying" not in out
    assert err.splitlines()[0] == (
        f"error: {sim_esp32.port} has an ESP32-S3, but esp32-devkitc is an ESP32 board"
    )
    assert not any(c.startswith(("write", "erase")) for c in chip.calls)


def test_a_missing_image_says_what_to_download_from_where(
    mote: Mote,
) -> None:
    rc, out, err = mote("flash", "--board", "heltec-wifi-lora32-v3", "--port", "/dev/x")
    assert rc == 6 and out == ""
    first, hint = err.splitlines()
    assert first.startswith("error: no MicroPython image for heltec-wifi-lora32-v3")
    assert "https://micropython.org/download/ESP32_GENERIC_S3/" in hint
    assert "mote images add" in hint


def test_an_esp32_needs_a_port(mote: Mote) -> None:
    rc, _, err = mote("flash", "--board", "esp32-devkitc")
    assert rc == 2 and err.startswith("error: no port given")


# ---- virtual boards -----------------------------------------------------------------------------


def test_a_virtual_board_is_erased_and_deployed_through_its_pty(
    sim_esp32: SimProcess, mote: Mote, tmp_path: Path
) -> None:
    args = ("flash", "--board", "sim-esp32", "--port", "sim:sim-esp32", "--json")
    rc, out, err = mote(*args)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["port"] == sim_esp32.port and summary["virtual"] is True
    assert summary["image"] is None and summary["flash"] == {"erased": True}
    assert summary["deploy"]["copied"] == len(firmware_files.build("sim-esp32", tmp_path).files)
    history = sim_esp32.control.request("status")["history"]
    assert any(h["kind"] == "power_on" for h in history[1:])  # the erase power-cycled it


def test_a_virtual_board_of_another_kind_is_refused(sim_esp32: SimProcess, mote: Mote) -> None:
    rc, _, err = mote("flash", "--board", "sim-rp2", "--port", sim_esp32.port)
    assert rc == 2
    assert err.splitlines()[0] == f"error: {sim_esp32.port} is a virtual sim-esp32, not a sim-rp2"


def test_a_virtual_board_takes_no_image(sim_esp32: SimProcess, mote: Mote, tmp_path: Path) -> None:
    image = tmp_path / "x.bin"
    image.write_bytes(b"x")
    rc, _, err = mote("flash", "--board", "sim-esp32", "--image", str(image))
    assert rc == 2 and "takes no image" in err


def test_sim_port_names_a_running_board_or_says_how_to_start_one(
    sim_esp32: SimProcess, mote: Mote
) -> None:
    assert running.resolve_port("sim:sim-esp32") == sim_esp32.port
    assert running.resolve_port("/dev/ttyUSB0") == "/dev/ttyUSB0"
    rc, _, err = mote("info", "--port", "sim:sim-rp2")
    assert rc == 2
    first, hint = err.splitlines()
    assert first == "error: no virtual board sim-rp2 is running"
    assert hint == (
        "hint: start one with `mote sim --board sim-rp2 --detach` (or `make flash BOARD=sim-rp2`)"
    )


def test_detach_and_stop(tmp_path: Path, mote: Mote) -> None:
    rc, out, err = mote("sim", "--board", "sim-rp2", "--detach")
    assert rc == 0, err
    (rb,) = running.running_boards()
    assert out.strip() == rb.port and rb.board == "sim-rp2"
    assert Path(rb.state_dir) == tmp_path / "sims" / "sim-rp2"  # persistent, not temporary
    assert (Path(rb.state_dir) / "flash.bin").exists()
    rc, out, err = mote("sim", "--board", "sim-rp2", "--stop")
    assert rc == 0, err
    assert out.strip() == f"stopped the virtual sim-rp2 on {rb.port}"
    for _ in range(100):
        if not running.running_boards():
            break
        time.sleep(0.05)
    assert running.running_boards() == []
    rc, _, err = mote("sim", "--board", "sim-rp2", "--stop")
    assert rc == 4 and err.startswith("error: no virtual sim-rp2 is running")


def test_a_dead_boards_record_is_ignored_and_cleaned_up(tmp_path: Path) -> None:
    rb = running.RunningBoard("sim-esp32", "/dev/null", 999_999_999, "/x.sock", str(tmp_path))
    path = running.register(rb)
    assert running.running_boards() == []
    assert not path.exists()


def test_detach_refuses_options_it_cannot_pass_on(mote: Mote) -> None:
    rc, _, err = mote("sim", "--board", "sim-esp32", "--detach", "--speed", "10")
    assert rc == 2 and err.startswith("error: --detach takes only --board and --state")
