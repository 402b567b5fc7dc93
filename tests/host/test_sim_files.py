"""The virtual board's filesystem through the tools a user has: mpremote against the pty, files
that outlive resets, power cycles and restarts of `mote sim --state DIR`, and littlefs's power-cut
safety. The flash image is also read with littlefs-python, an oracle independent of MicroPython.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import littlefs
import pytest
from simnode import flash_image, status, stop

from host_tools.hil.node import Node

# machine.reset() (a software reset) as each port reports it: SOFT_RESET on esp32, WDT_RESET on rp2.
SOFTWARE_RESET_CAUSE = {"sim-esp32": 5, "sim-rp2": 3}
ALL_BYTES = bytes(range(256)) * 16  # 4 KiB, every byte value, crosses a flash block boundary


def wait_for_boot(node: Node, kind: str, after: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll the control channel until boot number `after` + 1 or later, of `kind`, happened."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = status(node)
        if st["boots"] > after and st["history"][-1]["kind"] == kind:
            return st
        assert time.monotonic() < deadline, f"no {kind} boot within {timeout_s} s: {st['history']}"
        time.sleep(0.02)


def mpremote(port: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"mpremote {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def read_image(node: Node) -> littlefs.LittleFS:
    """Mount a copy of the node's flash.bin with littlefs-python (MicroPython's lfs2 geometry)."""
    assert node.sim is not None
    return flash_image(Path(node.sim.state_dir), node.board["name"])


# ---- mpremote -----------------------------------------------------------------------------


def test_mpremote_exec_and_run(boot, tmp_path):
    node = boot()
    node.close()  # mpremote opens the port exclusively
    assert mpremote(node.port, "exec", "print(sum(range(10)))") == "45\n"
    # `run` uploads with raw-paste mode: a script of many flow-control windows.
    script = tmp_path / "big.py"
    lines = [f"v{i} = {i} * 2  # {'padding ' * 4}" for i in range(150)]
    script.write_text("\n".join(lines) + "\nprint(sum(globals()['v%d' % i] for i in range(150)))\n")
    assert script.stat().st_size > 5000
    assert mpremote(node.port, "run", str(script)) == f"{sum(range(150)) * 2}\n"


def test_mpremote_fs_copies_every_byte_value_both_ways_then_removes(boot, tmp_path):
    node = boot("sim-rp2")
    node.close()
    src, back = tmp_path / "all.bin", tmp_path / "back.bin"
    src.write_bytes(ALL_BYTES)
    mpremote(node.port, "fs", "cp", str(src), ":all.bin")
    listing = mpremote(node.port, "fs", "ls")
    assert f"{len(ALL_BYTES)} all.bin" in " ".join(listing.split())
    mpremote(node.port, "fs", "cp", ":all.bin", str(back))
    assert back.read_bytes() == ALL_BYTES
    # The node's own view of the file agrees with the host's.
    out = mpremote(
        node.port, "exec", "print(open('all.bin', 'rb').read() == bytes(range(256)) * 16)"
    )
    assert out == "True\n"
    mpremote(node.port, "fs", "rm", ":all.bin")
    assert "all.bin" not in mpremote(node.port, "fs", "ls")
    assert "all.bin" not in read_image(node).listdir("/")  # gone from the flash image too


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_mpremote_reset_then_a_new_connection_sees_a_software_reset(boot, board):
    node = boot(board)
    node.close()
    before = status(node)["boots"]
    assert mpremote(node.port, "reset") == ""
    # mpremote returns before the node resets (it sleeps 100 ms first): wait for the reboot.
    st = wait_for_boot(node, "software", before)
    assert st["reset_cause"] == SOFTWARE_RESET_CAUSE[board]
    out = mpremote(node.port, "exec", "import machine; print(machine.reset_cause())")
    assert out == f"{SOFTWARE_RESET_CAUSE[board]}\n"


# ---- persistence --------------------------------------------------------------------------


def check_file(node: Node) -> None:
    out = node.exec("print(open('/keep.bin', 'rb').read() == bytes(range(256)) * 16)")
    assert out.strip() == "True"


def test_a_file_survives_reset_power_cycle_and_restart_with_the_same_state(boot, tmp_path):
    state = tmp_path / "state"
    node = boot("sim-esp32", state_dir=state)
    node.exec("with open('/keep.bin', 'wb') as f:\n    f.write(bytes(range(256)) * 16)")
    check_file(node)

    before = status(node)["boots"]
    node.hard_reset()  # the control channel's reset button
    wait_for_boot(node, "button", before)
    check_file(node)

    before = status(node)["boots"]
    assert node.sim is not None
    node.sim.control.request("reset", kind="power_on")
    node.transport.in_raw_repl = False
    wait_for_boot(node, "power_on", before)
    check_file(node)

    stop(node)  # `mote sim` exits; flash.bin stays in the state dir
    lfs = read_image(node)
    assert sorted(lfs.listdir("/")) == ["boot.py", "keep.bin"]
    with lfs.open("keep.bin", "rb") as f:
        assert f.read() == ALL_BYTES
    assert lfs.stat("keep.bin").size == len(ALL_BYTES)

    again = boot("sim-esp32", state_dir=state)
    check_file(again)
    assert status(again)["history"][0]["kind"] == "power_on"  # it was awake when stopped


def test_erase_flash_leaves_a_blank_board_that_formats_itself(boot):
    node = boot("sim-esp32")
    node.exec("open('/keep.txt', 'w').write('x')")
    assert node.sim is not None
    node.sim.control.request("erase_flash")
    node.transport.in_raw_repl = False
    out = node.read_until(b">>> ")
    assert b"rst:0x1 (POWERON_RESET)" in out and b"Performing initial setup" in out
    assert node.exec("import os\nprint(os.listdir('/'))").strip() == "['boot.py']"


def test_littlefs_python_reads_what_the_node_wrote(boot):
    node = boot("sim-rp2")
    node.exec(
        "import os\nos.mkdir('/logs')\n"
        "with open('/logs/day1.csv', 'w') as f:\n    f.write('t,v\\n' + '1,2\\n' * 3000)\n"
    )
    lfs = read_image(node)
    assert lfs.listdir("/") == ["logs"]  # the rp2 port writes no boot.py
    with lfs.open("logs/day1.csv", "r") as f:
        assert f.read() == "t,v\n" + "1,2\n" * 3000


# ---- power cuts ---------------------------------------------------------------------------


def rewrite(node: Node, letter: str) -> None:
    node.exec(f"with open('/f.txt', 'w') as f:\n    f.write({letter!r} * 8000)")


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 0.95])
def test_power_cut_during_a_rewrite_leaves_the_old_or_the_new_file(boot, fraction):
    node = boot()
    rewrite(node, "A")
    # How many flash programs/erases a rewrite takes, to place cuts across all of it.
    writes0 = status(node)["flash_writes"]
    rewrite(node, "A")
    total = status(node)["flash_writes"] - writes0
    assert total > 10
    n = max(1, round(fraction * total))

    before = status(node)["boots"]
    assert node.sim is not None
    node.sim.control.request("cut_power_at_write", n=n)
    node.read_until(b">")  # the raw prompt left unread by the last exec
    node.write(b"with open('/f.txt', 'w') as f:\n    f.write('B' * 8000)\x04")
    out = node.read_until(b">>> ")  # it dies mid-write and comes back at the friendly REPL
    st = wait_for_boot(node, "power_on", before)
    assert st["boots"] == before + 1
    assert b"rst:0x1 (POWERON_RESET)" in out
    assert b"Performing initial setup" not in out  # mounted: no reformat after the cut
    node.transport.in_raw_repl = False

    report = "d = open('/f.txt').read()\nprint(len(d), d.count('A'), d.count('B'))"
    length, a, b = (int(v) for v in node.exec(report).split())
    assert length == 8000 and (a, b) in ((8000, 0), (0, 8000)), (n, total, length, a, b)
    # littlefs-python sees the same committed state. (Keep the LittleFS object alive while a
    # file of it is open: littlefs-python's file handles do not, and it crashes.)
    lfs = read_image(node)
    with lfs.open("f.txt", "r") as f:
        content = f.read()
    assert content in ("A" * 8000, "B" * 8000)
    assert content[0] == ("A" if a else "B")
    # And the filesystem still takes writes.
    rewrite(node, "C")
    assert node.exec("print(open('/f.txt').read() == 'C' * 8000)").strip() == "True"
