"""The issue's done-when, from the outside: `make flash BOARD=sim-esp32` leaves a virtual node
running the firmware with its keys in the registry; `mote deploy` right after copies nothing;
changing one firmware file copies exactly that file; a deploy killed half-way and run again
leaves a consistent node."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simnode import Mote, flash_image

from host_tools import firmware_files
from host_tools.nodefs import NodeFs
from host_tools.sim import running
from host_tools.sim.control import SimControl

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Registry, persistent virtual boards and the running-board list under tmp_path; every
    virtual board started in the test is stopped at the end."""
    env = {
        "MOTE_REGISTRY": str(tmp_path / "registry.json"),
        "MOTE_SIM_HOME": str(tmp_path / "sims"),
        "MOTE_RUNTIME_DIR": str(tmp_path / "run"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MOTE_PORT", raising=False)
    yield env
    for rb in running.running_boards():
        os.kill(rb.pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{rb.pid}").exists():
                break
            time.sleep(0.05)


def node_files_match(rb: running.RunningBoard, build: firmware_files.Build) -> None:
    """Independently of the deploy and of MicroPython: the virtual board's flash image, read
    with littlefs-python, holds every file of the build, the build's manifest, and no deploy
    mark. Read while the node sleeps: a snapshot taken during a write may be torn."""
    _asleep(rb)
    fs = flash_image(Path(rb.state_dir), rb.board)
    for path in build.files:
        with fs.open(path, "rb") as f:
            data = f.read()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == build.entry(path), path
    with fs.open("/manifest.json", "r") as f:
        assert json.load(f) == build.manifest
    assert "deploying" not in fs.listdir("/")


def test_make_flash_deploy_again_change_one_file_and_an_interrupted_deploy(
    home: dict[str, str],
    mote: Mote,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1. make flash BOARD=sim-esp32: a virtual board started, flashed, deployed, provisioned.
    proc = subprocess.run(
        ["make", "-s", "flash", "BOARD=sim-esp32"],
        cwd=REPO,
        env={**os.environ, **home},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (rb,) = running.running_boards()
    assert rb.board == "sim-esp32" and Path(rb.state_dir) == tmp_path / "sims" / "sim-esp32"
    registry = json.loads(Path(home["MOTE_REGISTRY"]).read_text())
    ((device_id, record),) = registry["devices"].items()
    assert record["state"] == "complete" and record["board"] == "sim-esp32"
    assert len(record["bthome"]["bind_key"]) == 32
    assert record["bthome"]["bind_key"] not in proc.stdout + proc.stderr  # never printed
    _wake(rb)  # released, it sleeps its 60 s period: the button wakes it
    rc, out, err = mote("info", "--port", "sim:sim-esp32", "--json", "--wait", "10")
    assert rc == 0, err
    info = json.loads(out)
    build = firmware_files.build("sim-esp32", tmp_path / "b1")
    assert info["device_id"] == device_id and info["build"] == build.id
    assert info["secrets"] == record["fingerprints"]

    # 2. mote deploy right after: nothing to copy.
    _wake(rb)
    rc, out, err = mote("deploy", "--port", "sim:sim-esp32", "--json", "--wait", "10")
    assert rc == 0, err
    summary = json.loads(out)
    assert (summary["copied"], summary["removed"], summary["bytes"]) == (0, 0, 0)
    assert summary["unchanged"] == len(build.files) and summary["build"] == build.id

    # 3. One firmware file changed: exactly that file is copied.
    tree = tmp_path / "checkout"
    for part in ("firmware", "drivers"):
        shutil.copytree(REPO / part, tree / part)
    soil = tree / "drivers" / "soil.py"
    soil.write_text(soil.read_text() + "\n_DEPLOY_TEST = 1\n")
    monkeypatch.setattr(firmware_files, "REPO", tree)
    _wake(rb)
    rc, out, err = mote("deploy", "--port", rb.port, "--json", "--wait", "10")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["copied_files"] == ["/lib/soil.mpy"] and summary["removed"] == 0
    changed = firmware_files.build("sim-esp32", tmp_path / "b2")
    assert summary["build"] == changed.id != build.id
    node_files_match(rb, changed)
    monkeypatch.setattr(firmware_files, "REPO", REPO)

    # 4. A full deploy killed half-way, then deployed again: a consistent node.
    _wake(rb)
    assert mote("hold", "--port", rb.port, "--wait", "10")[0] == 0
    writes0 = _status(rb)["flash_writes"]
    killed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "host_tools.cli.main",
            "deploy",
            "--port",
            rb.port,
            "--full",
            "--wait",
            "10",
        ],
        env={**os.environ, **home},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while _status(rb)["flash_writes"] < writes0 + 40:  # well into copying the files
        assert killed.poll() is None, f"the deploy ended before the kill: {killed.stderr.read()!r}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    with NodeFs.open(rb.port) as fs:  # the node knows the deploy did not finish
        assert fs.read("/deploying") is not None
        fs.t.exit_raw_repl()
    rc, out, err = mote("deploy", "--port", rb.port, "--json", "--wait", "5")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["resumed"] is True and summary["build"] == build.id
    assert summary["copied"] < len(build.files)  # finished, not started over
    node_files_match(rb, build)
    # and the keys survived every deploy
    _asleep(rb)
    image = flash_image(Path(rb.state_dir), rb.board)  # kept: littlefs frees it with the object
    with image.open("/secrets.json", "r") as f:
        secrets = json.load(f)
    assert secrets["bthome.bindkey"] == record["bthome"]["bind_key"]


def _asleep(rb: running.RunningBoard) -> None:
    deadline = time.monotonic() + 30
    while _status(rb)["mode"] != "asleep":
        assert time.monotonic() < deadline, "the node never went to sleep"
        time.sleep(0.05)


def _wake(rb: running.RunningBoard) -> None:
    """Once the node sleeps its period, press the button (a deep-sleep wake)."""
    _asleep(rb)
    _control(rb, "wake")


def _control(rb: running.RunningBoard, cmd: str) -> dict[str, Any]:
    with SimControl(rb.control) as ctl:
        return ctl.request(cmd)


def _status(rb: running.RunningBoard) -> dict[str, Any]:
    return _control(rb, "status")
