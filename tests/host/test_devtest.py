"""The device-test runner: MicroPython tests run in the real interpreter, failures show its
traceback, and code that only CPython accepts fails."""

from pathlib import Path

import pytest

from host_tools.devtools import devtest


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_names_in_file_order_and_boards_marker() -> None:
    src = "# devtest: boards=sim-rp2\ndef test_b(): pass\ndef helper(): pass\ndef test_a(): pass\n"
    assert devtest.test_names(src) == ["test_b", "test_a"]
    assert devtest.boards_for(src) == ("sim-rp2",)
    assert devtest.boards_for("def test_x(): pass\n") == devtest.DEFAULT_BOARDS
    assert devtest.speed_for("# devtest: speed=20\ndef test_x(): pass\n") == 20.0
    assert devtest.speed_for("def test_x(): pass\n") == 1.0


def test_pass_fail_skip_and_output_are_reported_per_test(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "test_mixed.py",
        "import _devtest\n"
        "def test_ok():\n    print('hello from the node')\n"
        "def test_bad():\n    x = 1\n    assert x == 2, 'x is %d' % x\n"
        "def test_skipped():\n    _devtest.skip('no radio')\n",
    )
    run = devtest.run_file(path, ["test_ok", "test_bad", "test_skipped"], "sim-esp32")
    assert run.results["test_ok"].status == "pass"
    assert "hello from the node" in run.results["test_ok"].output
    bad = run.results["test_bad"]
    assert bad.status == "fail"
    # MicroPython's own traceback, pointing into the file as the node sees it.
    assert 'File "test_mixed.py", line 6, in test_bad' in bad.output
    assert "AssertionError: x is 1" in bad.output
    assert run.results["test_skipped"].status == "skip"
    assert run.results["test_skipped"].detail == "no radio"


@pytest.mark.parametrize(
    "body, error",
    [
        ("import dataclasses\n", "ImportError"),
        ("x = 'motekit'.removeprefix('mote')\n", "AttributeError"),
        ("import subprocess\n", "ImportError"),
    ],
)
def test_cpython_only_features_fail_under_micropython(
    tmp_path: Path, body: str, error: str
) -> None:
    path = write(tmp_path, "test_cpy.py", "def test_it():\n    " + body)
    run = devtest.run_file(path, ["test_it"], "sim-esp32")
    assert run.results["test_it"].status == "fail"
    assert error in run.results["test_it"].output


def test_a_test_that_hangs_is_reported_not_lost(tmp_path: Path) -> None:
    path = write(tmp_path, "test_hang.py", "def test_forever():\n    while True:\n        pass\n")
    run = devtest.run_file(path, ["test_forever"], "sim-esp32", timeout_s=2)
    assert run.exit_code == 124
    assert run.results["test_forever"].status == "fail"
    assert "never finished" in run.results["test_forever"].output


def test_firmware_is_importable_as_on_a_node(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "test_fw.py",
        "import motekit, sys, os\n"
        "def test_it():\n    assert motekit.VERSION\n    assert 'boot.py' in os.listdir('/')\n",
    )
    run = devtest.run_file(path, ["test_it"], "sim-esp32")
    assert run.results["test_it"].status == "pass", run.output


def test_a_speed_marker_makes_sleeps_pass_faster(tmp_path: Path) -> None:
    # A minute of sleep at 200x is a third of a second; at 1x it would outlast the timeout.
    path = write(
        tmp_path,
        "test_speed.py",
        "import time\ndef test_sleep():\n"
        "    t0 = time.ticks_ms()\n    time.sleep_ms(60000)\n"
        "    assert time.ticks_diff(time.ticks_ms(), t0) >= 60000\n",
    )
    run = devtest.run_file(path, ["test_sleep"], "sim-esp32", timeout_s=30, speed=200)
    assert run.results["test_sleep"].status == "pass", run.output
