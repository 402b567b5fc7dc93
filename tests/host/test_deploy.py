"""mote deploy's rules on a virtual board: what it copies, removes and never touches, how it
checks what arrived, and each of its errors (one line, its exit code)."""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from simnode import Mote, at_repl

from host_tools import deploy as deploy_mod
from host_tools import firmware_files
from host_tools.deploy import deploy
from host_tools.errors import DeployError
from host_tools.hil.node import Node
from host_tools.nodefs import NodeFs


def at_prompt(node: Node) -> str:
    """Free the port for mote (the fixture's Node holds it)."""
    node.close()
    return node.port


def test_a_fresh_node_gets_everything_then_nothing(boot: Any, tmp_path: Path) -> None:
    port = at_prompt(boot("sim-rp2"))
    build = firmware_files.build("sim-rp2", tmp_path)
    first = deploy(port, "sim-rp2", hold=True)
    assert first.board == "sim-rp2" and first.build == build.id
    assert sorted(first.copied) == sorted(build.files) and first.previous_build is None
    assert first.bytes == sum(e["size"] for e in build.manifest["files"].values())
    again = deploy(port)  # the board from the node's own /board.json
    assert (again.copied, again.removed, again.bytes) == ([], [], 0)
    assert again.unchanged == len(build.files) and again.previous_build == build.id


def test_stale_files_go_and_the_nodes_data_stays(boot: Any, tmp_path: Path) -> None:
    port = at_prompt(boot())
    deploy(port, "sim-esp32", start=False)
    with NodeFs.open(port) as fs:
        # What an older firmware left: a driver it had, listed in its manifest; a source file
        # that would shadow a module; and the node's own data, listed by a (broken) manifest.
        manifest = json.loads(fs.read("/manifest.json") or b"")
        for path in ("/lib/old_driver.mpy", "/config.json", "/cal.json", "/secrets.json"):
            manifest["files"][path] = {"sha256": "0" * 64, "size": 1}
        manifest["files"]["/lib/motekit/app.mpy"]["sha256"] = "0" * 64  # an older app
        manifest["build"] = "older"
        fs.write("/manifest.json", json.dumps(manifest).encode())
        fs.write("/lib/old_driver.mpy", b"M old")
        fs.write("/lib/sensor.py", b"raise ImportError('stale source')\n")
        for path in ("/config.json", "/cal.json", "/secrets.json"):
            fs.write(path, b'{"mine": true}')
        fs.t.exit_raw_repl()  # left at the REPL: the firmware does not run with the stale files
    result = deploy(port, "sim-esp32", hold=True)  # held: no deep sleep before we look
    assert result.copied == ["/lib/motekit/app.mpy"]
    assert sorted(result.removed) == ["/lib/old_driver.mpy", "/lib/sensor.py"]
    with NodeFs.open(port) as fs:
        hashes = fs.hashes(["/lib/old_driver.mpy", "/lib/sensor.py"])
        assert hashes == {"/lib/old_driver.mpy": None, "/lib/sensor.py": None}
        for path in ("/config.json", "/cal.json", "/secrets.json"):
            assert fs.read(path) == b'{"mine": true}', path


def test_full_copies_everything_and_repairs_what_the_manifest_hides(
    boot: Any, tmp_path: Path
) -> None:
    port = at_prompt(boot())
    deploy(port, "sim-esp32", start=False)
    with NodeFs.open(port) as fs:
        fs.write("/lib/motekit/log.mpy", b"damaged")  # behind the manifest's back
        fs.t.exit_raw_repl()
    build = firmware_files.build("sim-esp32", tmp_path)
    result = deploy(port, "sim-esp32", full=True, hold=True)
    assert sorted(result.copied) == sorted(build.files)
    with NodeFs.open(port) as fs:
        assert fs.hashes(["/lib/motekit/log.mpy"])["/lib/motekit/log.mpy"] == build.entry(
            "/lib/motekit/log.mpy"
        )


def test_a_file_that_does_not_arrive_intact_is_an_error_and_the_next_deploy_mends_it(
    boot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = at_prompt(boot())
    real = NodeFs.write

    def flaky(self: NodeFs, path: str, data: bytes, progress: Any = None) -> None:
        if path == "/lib/motekit/app.mpy":
            data = data[:-1] + bytes([data[-1] ^ 0x01])  # one bit flipped on the way
        real(self, path, data, progress)

    monkeypatch.setattr(NodeFs, "write", flaky)
    with pytest.raises(DeployError) as err:
        deploy(port, "sim-esp32")
    assert err.value.err == "not_intact" and "/lib/motekit/app.mpy" in str(err.value)
    monkeypatch.setattr(NodeFs, "write", real)
    with NodeFs.open(port) as fs:
        assert fs.read("/deploying") is not None  # the node stays at its REPL
    result = deploy(port, "sim-esp32")
    assert result.resumed and result.copied == ["/lib/motekit/app.mpy"]


def test_hold_leaves_the_node_held(boot: Any, mote: Mote) -> None:
    port = at_prompt(boot())
    deploy(port, "sim-esp32", hold=True)
    rc, out, err = mote("hold", "--port", port, "--json", "--wait", "2")
    assert rc == 0, err
    assert json.loads(out)["was_held"] is True


def test_the_cli_prints_one_summary_object(boot: Any, mote: Mote) -> None:
    port = at_prompt(boot())
    rc, out, err = mote("deploy", "--port", port, "--board", "sim-esp32", "--json")
    assert rc == 0, err
    summary = json.loads(out)
    assert set(summary) == {
        "port",
        "board",
        "fw",
        "build",
        "previous_build",
        "copied",
        "removed",
        "unchanged",
        "bytes",
        "seconds",
        "resumed",
        "copied_files",
        "removed_files",
    }
    assert summary["copied"] == len(summary["copied_files"]) > 0
    rc, out, err = mote("deploy", "--port", port, "--wait", "10")
    assert rc == 0, err
    assert "up to date" in out and summary["build"] in out


# ---- errors ------------------------------------------------------------------------------------


def test_no_board_file_and_no_board_given(boot: Any, mote: Mote) -> None:
    port = at_prompt(boot())
    rc, out, err = mote("deploy", "--port", port, "--wait", "1")
    assert (rc, out) == (7, "")
    assert (
        err.splitlines()[0] == f"error: the node on {port} has no /board.json: which board is it?"
    )
    assert err.splitlines()[1].startswith("hint: pass --board NAME")


def test_a_port_where_nothing_answers(mote: Mote) -> None:
    # A pty with nobody behind it: no motekit, no REPL (a board without MicroPython, asleep).
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        rc, out, err = mote("deploy", "--port", port, "--board", "sim-esp32", "--wait", "1")
    finally:
        os.close(master)
        os.close(slave)
    assert (rc, out) == (7, "")
    lines = err.splitlines()
    assert lines[0] == f"error: no answer from the node on {port} within 1 s, and no REPL"
    assert "asleep" in lines[1] and "mote flash" in lines[1] and len(lines) == 2


def test_a_missing_port_and_a_busy_one(boot: Any, mote: Mote) -> None:
    rc, _, err = mote("deploy", "--port", "/dev/ttyNOPE9")
    assert rc == 3 and err.startswith("error: no serial port /dev/ttyNOPE9\n")
    node = boot()  # the fixture's Node keeps the port open, exclusively
    at_repl(node)
    rc, _, err = mote("deploy", "--port", node.port)
    assert rc == 3 and err.startswith(f"error: {node.port} is busy")


def test_reset_needs_an_rts_line(boot: Any, mote: Mote) -> None:
    port = at_prompt(boot())  # a pty has no control lines
    rc, out, err = mote("deploy", "--port", port, "--reset")
    assert (rc, out) == (3, "")
    assert err.startswith(f"error: cannot reset the node on {port}: the port has no RTS line")


def test_no_port(mote: Mote, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTE_PORT", raising=False)
    rc, _, err = mote("deploy")
    assert rc == 2 and err.startswith("error: no port given")


def test_a_node_that_reports_another_build_after_the_deploy(
    boot: Any, monkeypatch: pytest.MonkeyPatch, mote: Mote
) -> None:
    port = at_prompt(boot())
    real = deploy_mod.build

    def other_id(board: str, workdir: Path) -> firmware_files.Build:
        b = real(board, workdir)
        b.manifest = {**b.manifest, "build": "not-what-runs"}
        return b

    real_check = deploy_mod._check_running

    def check(port: str, result: Any, wait_s: float, hold: bool) -> None:
        result.build = "expected-build"  # what the host thinks it deployed
        real_check(port, result, wait_s, hold)

    monkeypatch.setattr(deploy_mod, "build", other_id)
    monkeypatch.setattr(deploy_mod, "_check_running", check)
    rc, _, err = mote("deploy", "--port", port, "--board", "sim-esp32")
    assert rc == 7
    assert "reports firmware" in err and "expected 0" in err and "build expected-build" in err
