"""`mote ports` and host_tools.ports: the board guess by USB VID:PID, virtual boards, --json."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serial.tools.list_ports_common import ListPortInfo
from simnode import Mote

from host_tools.ports import guess, list_ports


def usb(device: str, vid: int | None, pid: int | None, description: str = "n/a") -> ListPortInfo:
    """A port as pyserial's comports() gives it."""
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.description = vid, pid, description
    if vid is not None:
        p.serial_number, p.manufacturer = "0001", "Maker"
    return p


@dataclass(frozen=True)
class FakeRunningBoard:
    """What host_tools.sim.running.running_boards() returns, field for field."""

    board: str
    port: str
    pid: int
    control: Path
    state_dir: Path


def sim_board(board: str = "sim-esp32", port: str = "/dev/pts/7", pid: int = 4242) -> Any:
    return FakeRunningBoard(board, port, pid, Path("/tmp/ctl"), Path("/tmp/state"))


# ---- the guess table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vid", "pid", "words"),
    [
        (0x10C4, 0xEA60, ["CP210x", "ESP32", "Heltec"]),
        (0x1A86, 0x7523, ["CH340"]),
        (0x1A86, 0x55D4, ["CH9102"]),
        (0x0403, 0x6001, ["FTDI", "FT232R"]),
        (0x0403, 0x6015, ["FTDI", "FT-X"]),
        (0x303A, 0x1001, ["USB-JTAG/serial", "ESP32-S3/C3"]),
        (0x303A, 0x4001, ["TinyUSB", "MicroPython", "ESP32-S2/S3"]),
        (0x2E8A, 0x0005, ["MicroPython", "RP2040"]),
    ],
)
def test_each_known_usb_id_has_its_guess(vid: int, pid: int, words: list[str]) -> None:
    [p] = list_ports(lister=lambda: [usb("/dev/ttyACM0", vid, pid)])
    assert p.kind == "usb" and (p.vid, p.pid) == (vid, pid)
    assert p.vid_pid == f"{vid:04X}:{pid:04X}"
    for w in words:
        assert w in p.guess


@pytest.mark.parametrize(
    ("vid", "pid"),
    [
        (0x1234, 0x5678),  # nobody we know
        (0x2E8A, 0x0003),  # RP2040 in BOOTSEL: a USB drive, never a serial port
        (0x10C4, 0xEA61),  # the right vendor, another product
        (0x303A, 0x80D1),  # a board with its own PID under Espressif's VID
    ],
)
def test_an_unknown_usb_id_guesses_nothing(vid: int, pid: int) -> None:
    [p] = list_ports(lister=lambda: [usb("/dev/ttyUSB3", vid, pid)])
    assert (p.kind, p.guess) == ("usb", "")


def test_a_port_without_usb_ids_is_other_and_pyserials_na_is_dropped() -> None:
    [p] = list_ports(lister=lambda: [usb("/dev/ttyS0", None, None)])
    assert (p.kind, p.vid, p.pid, p.vid_pid, p.guess, p.description) == (
        "other", None, None, "", "", ""
    )  # fmt: skip


def test_ports_are_sorted_then_virtual_boards_follow() -> None:
    found = list_ports(
        lister=lambda: [usb("/dev/ttyUSB1", 0x1A86, 0x7523), usb("/dev/ttyACM0", 0x2E8A, 5)],
        virtual=lambda: [sim_board("sim-esp32", "/dev/pts/9"), sim_board("sim-pico", "/dev/pts/4")],
    )
    assert [p.device for p in found] == ["/dev/ttyACM0", "/dev/ttyUSB1", "/dev/pts/9", "/dev/pts/4"]
    virtual = found[2]
    assert (virtual.kind, virtual.guess, virtual.vid) == ("virtual", "sim-esp32", None)
    assert "sim-esp32" in virtual.description and "4242" in virtual.description


def test_a_pty_listed_twice_shows_once() -> None:
    found = list_ports(
        lister=lambda: [usb("/dev/pts/9", None, None)],
        virtual=lambda: [sim_board(port="/dev/pts/9")],
    )
    assert [p.device for p in found] == ["/dev/pts/9"]


# ---- the command --------------------------------------------------------------------------------


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """machine(usb ports, virtual boards): what `mote ports` finds on this fake machine."""

    def _set(ports: list[ListPortInfo], boards: list[Any] = []) -> None:  # noqa: B006
        monkeypatch.setattr("host_tools.cli.ports.comports", lambda: list(ports))
        monkeypatch.setattr("host_tools.cli.ports._running_boards", lambda: list(boards))

    return _set


def test_json_is_one_list_with_the_documented_fields(mote: Mote, machine: Any) -> None:
    machine(
        [usb("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller")],
        [sim_board()],
    )
    rc, out, err = mote("ports", "--json")
    assert (rc, err) == (0, "")
    assert len(out.splitlines()) == 1
    data = json.loads(out)
    assert data == [
        {
            "device": "/dev/ttyUSB0",
            "kind": "usb",
            "vid": 0x10C4,
            "pid": 0xEA60,
            "serial_number": "0001",
            "manufacturer": "Maker",
            "description": "CP2102 USB to UART Bridge Controller",
            "guess": guess(0x10C4, 0xEA60),
        },
        {
            "device": "/dev/pts/7",
            "kind": "virtual",
            "vid": None,
            "pid": None,
            "serial_number": None,
            "manufacturer": None,
            "description": "virtual board sim-esp32 (mote sim, pid 4242)",
            "guess": "sim-esp32",
        },
    ]
    assert data[0]["guess"].startswith("CP210x")


def test_json_with_no_ports_is_an_empty_list(mote: Mote, machine: Any) -> None:
    machine([])
    assert mote("ports", "--json") == (0, "[]\n", "")


def test_the_table_shows_device_ids_and_guess(mote: Mote, machine: Any) -> None:
    machine(
        [usb("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG/serial debug unit")],
        [sim_board(port="/dev/pts/3")],
    )
    rc, out, err = mote("ports")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["device", "VID:PID", "description", "guess"]
    acm = next(line for line in lines if line.startswith("/dev/ttyACM0"))
    assert "303A:1001" in acm and "Espressif" in acm
    pts = next(line for line in lines if line.startswith("/dev/pts/3"))
    assert "virtual" in pts and "sim-esp32" in pts


def test_no_ports_says_so_and_exits_0(mote: Mote, machine: Any) -> None:
    machine([])
    rc, out, err = mote("ports")
    assert (rc, err) == (0, "")
    assert out.startswith("no serial ports found") and "mote sim" in out


def test_the_virtual_board_registry_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a fake, the command lists what host_tools.sim.running reports."""
    import host_tools.sim.running as running
    from host_tools.cli import ports as cli_ports

    monkeypatch.setattr(running, "running_boards", lambda: [sim_board(port="/dev/pts/8")])
    assert [b.port for b in cli_ports._running_boards()] == ["/dev/pts/8"]
