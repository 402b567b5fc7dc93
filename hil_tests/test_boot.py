"""The node boots our firmware, reports itself, and survives soft resets and deep sleep."""

import re

import pytest

from host_tools.hil.node import Node

BANNER = r"motekit (\S+) board=(\S+) reset=(\w+)\r?\n"


def boot_banner(node: Node, timeout: float = 15) -> tuple[str, str, str]:
    m = re.search(BANNER.encode(), node.read_until(BANNER, timeout=timeout))
    assert m
    return m[1].decode(), m[2].decode(), m[3].decode()


def test_node_boots_and_reports_its_version(node: Node, firmware_version: str) -> None:
    node.install_firmware({"version": 2, "sample_period": 60, "host_wait_ms": 3000})
    node.hard_reset()
    version, board, cause = boot_banner(node)
    assert version == firmware_version
    assert board == node.board["name"]
    assert cause == "PWRON_RESET"  # the reset button is a power-on reset on both ports
    node.interrupt_to_repl()
    assert node.eval("__import__('motekit').VERSION") == firmware_version


def test_node_survives_a_soft_reset(node: Node) -> None:
    node.install_firmware({"version": 2, "sample_period": 60, "host_wait_ms": 3000})
    node.hard_reset()
    boot_banner(node)
    node.interrupt_to_repl()
    node.write(b"left_behind = 42\r")
    node.read_until(b">>> ")
    node.write(b"\x04")  # Ctrl-D: soft reset
    node.read_until(b"MPY: soft reboot")
    _, _, cause = boot_banner(node)  # main.py runs again...
    assert cause == "PWRON_RESET"  # ...and the reset cause is the hardware's, unchanged
    node.interrupt_to_repl()
    out = node.exec("print('left_behind' in globals())")
    assert out.strip() == "False"  # the heap was cleared


def test_node_sleeps_between_cycles_and_keeps_its_state(node: Node) -> None:
    node.install_firmware({"version": 2, "sample_period": 10, "host_wait_ms": 500})
    node.hard_reset()
    boot_banner(node)
    out = node.read_until(r"motekit: cycle 1 t=(\d+) .*, next in (\d+) ms")
    m = re.search(rb"cycle 1 t=(\d+) .*, next in (\d+) ms", out)
    assert m and 9000 < int(m[2]) <= 10000
    if node.board["sleep"]["mode"] == "deep":
        _, _, cause = boot_banner(node, timeout=30)
        assert cause == "DEEPSLEEP_RESET"
    # the next cycle counts on (RTC memory, or RAM through lightsleep) and keeps the grid
    out = node.read_until(r"motekit: cycle 2 t=(\d+) ", timeout=30)
    t2 = re.search(rb"cycle 2 t=(\d+) ", out)
    assert t2 and abs(int(t2[1]) - int(m[1]) - 10) <= 1


def test_file_deployed_with_mpremote_lands_on_littlefs_and_survives_reset(
    node: Node, tmp_path
) -> None:
    import subprocess
    import sys

    payload = bytes(range(256)) * 8
    src = tmp_path / "probe.bin"
    src.write_bytes(payload)
    node.close()
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpremote",
            "connect",
            node.port,
            "fs",
            "cp",
            str(src),
            ":probe.bin",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cp.returncode == 0, cp.stderr
    node.hard_reset()
    node.interrupt_to_repl()
    assert node.eval("__import__('os').stat('probe.bin')[6]") == len(payload)
    digest = node.exec(
        "import hashlib, binascii\n"
        "h = hashlib.sha256()\n"
        "with open('probe.bin', 'rb') as f:\n"
        "    h.update(f.read())\n"
        "print(binascii.hexlify(h.digest()).decode())"
    ).strip()
    import hashlib

    assert digest == hashlib.sha256(payload).hexdigest()
    if node.virtual:
        # The filesystem is the board's littlefs partition, not a host folder.
        fs = node.eval("__import__('os').statvfs('/')")
        assert fs[0] * fs[2] == node.board["flash"]["fs_bytes"]
    node.exec("import os\nos.remove('probe.bin')")


@pytest.mark.parametrize("expr, check", [("len(__import__('machine').unique_id())", "uid")])
def test_identity_matches_the_board(node: Node, expr: str, check: str) -> None:
    assert node.eval(expr) == node.board["unique_id_bytes"]
