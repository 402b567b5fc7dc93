"""`mote sim` and `mote simctl` on the command line: bad input exits non-zero with one `error:`
line (and maybe a hint), never a traceback; the control socket answers bad requests with an
error reply and keeps serving.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.boards import boards_dir
from host_tools.cli.main import main
from host_tools.errors import SimError
from host_tools.sim.launcher import SimProcess

COMMANDS = [
    "attach",
    "clear_faults",
    "cut_power_at_write",
    "env",
    "erase_flash",
    "fault",
    "reset",
    "status",
    "stop",
    "wake",
]


def mote(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Run `mote ARGV` in-process; return (exit code, stdout, stderr lines)."""
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.splitlines()


def assert_one_error_line(err: list[str], text: str) -> None:
    assert err, "nothing on stderr"
    assert err[0].startswith("error: ") and text in err[0], err
    assert all(line.startswith("hint: ") for line in err[1:]), err  # no traceback
    assert len(err) <= 2, err


# ---- mote sim -------------------------------------------------------------------------------


def test_unknown_board_exits_2_naming_the_known_ones(capsys):
    rc, out, err = mote(capsys, "sim", "--board", "nope")
    assert (rc, out) == (2, "")
    assert_one_error_line(err, "unknown board 'nope'")
    assert "sim-esp32" in err[1] and "sim-rp2" in err[1]  # the hint lists the boards


def test_a_real_board_is_refused(capsys, tmp_path, monkeypatch):
    # A boards/ folder with a real board beside the virtual ones.
    for name in ("sim-esp32", "sim-rp2"):
        shutil.copytree(boards_dir() / name, tmp_path / name)
    real = json.loads((tmp_path / "sim-esp32" / "board.json").read_text())
    real.update(name="esp32-devkitc", virtual=False)
    (tmp_path / "esp32-devkitc").mkdir()
    (tmp_path / "esp32-devkitc" / "board.json").write_text(json.dumps(real))
    monkeypatch.setenv("MOTE_BOARDS_DIR", str(tmp_path))
    rc, out, err = mote(capsys, "sim", "--board", "esp32-devkitc")
    assert (rc, out) == (2, "")
    assert_one_error_line(err, "esp32-devkitc is a real board")
    assert err[1] == "hint: use one of sim-esp32, sim-rp2"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--speed", "0"], "--speed must be > 0"),
        (["--speed", "-3600"], "--speed must be > 0"),
        (["--baud", "-1"], "--baud must be >= 0"),
    ],
)
def test_bad_rates_exit_2(capsys, args, text):
    rc, out, err = mote(capsys, "sim", *args)
    assert (rc, out) == (2, "")
    assert_one_error_line(err, text)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--attach", "nope@i2c0:0x50"], "unknown model 'nope'; known: at24c32"),
        (["--attach", "at24c32@spi1"], "at24c32 goes on an i2c bus"),
        (["--fault", "i2c0=melt"], "'melt'"),
        (["--env", "supply_v"], "--env 'supply_v' is not KEY=VALUE"),
    ],
)
def test_bad_startup_options_exit_2(capsys, tmp_path, args, text):
    rc, out, err = mote(capsys, "sim", "--state", str(tmp_path / "state"), *args)
    assert (rc, out) == (2, "")
    assert_one_error_line(err, text)


def test_a_non_numeric_environment_value_exits_2(tmp_path):
    # In a child process: this error is raised after the board is built.
    proc = subprocess.run(
        [sys.executable, "-m", "host_tools.cli.main", "sim", "--state", str(tmp_path / "s")]
        + ["--env", "supply_v=lots"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert_one_error_line(proc.stderr.splitlines(), "--env supply_v: 'lots' is not a number")


def test_a_state_dir_of_another_board_is_refused(capsys, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "flash.bin").write_bytes(b"\xff" * 4096)
    rc, out, err = mote(capsys, "sim", "--board", "sim-rp2", "--state", str(state))
    assert (rc, out) == (2, "")
    assert_one_error_line(err, "this board's filesystem is 1441792")


def test_a_temporary_board_leaves_nothing_behind(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.main", "sim", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert any(tmp.iterdir())  # the temporary board is in $TMPDIR while it runs
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert list(tmp.iterdir()) == []


# ---- mote simctl and the control socket ---------------------------------------------------


def test_simctl_without_a_board_exits_non_zero_with_one_line(capsys, tmp_path):
    rc, out, err = mote(capsys, "simctl", "--control", str(tmp_path / "none.sock"), "status")
    assert (rc, out) == (SimError.exit_code, "")
    assert_one_error_line(err, "none.sock")
    assert len(err) == 1


def test_simctl_talks_to_a_running_board(capsys):
    with SimProcess("sim-rp2", baud=0) as sim:
        rc, out, err = mote(capsys, "simctl", "--control", sim.control_path, "status")
        assert (rc, err) == (0, [])
        assert json.loads(out)["board"] == "sim-rp2"
        rc, out, err = mote(capsys, "simctl", "--control", sim.control_path, "env", "supply_v=3.1")
        assert rc == 0
        assert json.loads(out)["environment"]["supply_v"] == 3.1
        rc, out, err = mote(capsys, "simctl", "--control", sim.control_path, "fly")
        assert (rc, out) == (SimError.exit_code, "")
        assert_one_error_line(err, "unknown command 'fly'")
        rc, out, err = mote(
            capsys, "simctl", "--control", sim.control_path, "reset", "kind=sideways"
        )
        assert rc == SimError.exit_code
        assert_one_error_line(err, "reset kind must be one of power_on, button, brownout")


def ask(sock: socket.socket, line: bytes) -> dict:
    sock.sendall(line + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "the board closed the control socket"
        buf += chunk
    return json.loads(buf)


def test_control_socket_answers_bad_requests_and_keeps_serving():
    with SimProcess("sim-esp32", baud=0) as sim, socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(sim.control_path)
        reply = ask(sock, b'{"cmd": "bogus"}')
        assert reply["ok"] is False
        assert reply["error"] == "unknown command 'bogus'; known: " + ", ".join(COMMANDS)
        assert ask(sock, b"not json")["error"].startswith("bad request")
        assert ask(sock, b"[1, 2]")["error"] == "bad request: request must be a JSON object"
        assert ask(sock, b'{"cmd": "status", "colour": "red"}')["ok"] is False  # unknown arg
        assert ask(sock, b'{"cmd": "cut_power_at_write", "n": 0}')["ok"] is False
        status = ask(sock, b'{"cmd": "status"}')
        assert status["ok"] is True and status["board"] == "sim-esp32"


def test_stop_command_ends_mote_sim_cleanly():
    with SimProcess("sim-esp32", baud=0) as sim:
        assert sim.control.request("stop") == {"ok": True}
        assert sim.proc.wait(10) == 0
        assert not Path(sim.control_path).exists()  # the socket is removed on the way out
