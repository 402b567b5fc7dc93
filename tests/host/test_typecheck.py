"""host_tools.devtools.typecheck on small MicroPython trees, against the real board stubs.

The stubs are installed once into .venv/stubs/ (PyPI the first time, as `make typecheck` does)
and shared by every test here.
"""

import subprocess
import textwrap
from pathlib import Path

import pytest

from host_tools.devtools import typecheck
from host_tools.errors import ConfigError

ALL = sorted(typecheck.PROFILES)

CLEAN = textwrap.dedent(
    """\
    # Blinks the LED: a file every board loads.
    import time

    import machine
    from micropython import const

    _LED_PIN = const(2)


    def blink(times):
        led = machine.Pin(_LED_PIN, machine.Pin.OUT)
        start = time.ticks_ms()
        for _ in range(times):
            led.value(not led.value())
            time.sleep_ms(100)
        return time.ticks_diff(time.ticks_ms(), start)
    """
)

BLE = textwrap.dedent(
    """\
    import bluetooth


    def start():
        ble = bluetooth.BLE()
        ble.active(True)
        return ble
    """
)


@pytest.fixture(scope="session")
def stubs() -> Path:
    for profile in ALL:
        typecheck.install_stubs(profile)
    return typecheck.STUBS_DIR


pytestmark = pytest.mark.usefixtures("stubs")


def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path.resolve()


def check(root: Path, profile: str) -> typecheck.ProfileResult:
    return typecheck.check_profile(profile, typecheck.source_files(root), root)


@pytest.mark.parametrize("profile", ALL)
def test_clean_micropython_passes(tmp_path, profile):
    path = write(tmp_path, "firmware/blink.py", CLEAN)
    result = check(tmp_path, profile)
    assert result.files == [path]
    assert (result.errors, result.output) == (0, "")


def test_bluetooth_without_marker_fails_only_where_the_board_lacks_it(tmp_path):
    write(tmp_path, "drivers/beacon.py", BLE)
    pico = check(tmp_path, "rpi-pico")
    assert pico.errors == 1
    missing = 'Cannot find implementation or library stub for module named "bluetooth"'
    assert f"drivers/beacon.py:1: error: {missing}" in pico.output
    for profile in ("esp32", "esp32-s3", "esp32-c3", "rpi-pico-w"):
        assert check(tmp_path, profile).errors == 0, profile


def test_marked_file_is_skipped_where_the_capability_is_missing(tmp_path):
    path = write(tmp_path, "drivers/beacon.py", "# Beacon.\n# motekit: requires=ble\n" + BLE)
    pico = check(tmp_path, "rpi-pico")
    assert (pico.files, pico.skipped, pico.ok) == ([], [path], True)
    assert "no files to check" in typecheck.summary(pico)
    esp32 = check(tmp_path, "esp32")
    assert (esp32.files, esp32.errors) == ([path], 0)


def test_importing_a_skipped_file_fails_at_the_import(tmp_path):
    write(tmp_path, "drivers/beacon.py", "# motekit: requires=ble\n" + BLE)
    write(tmp_path, "drivers/app.py", "import beacon\n\nbeacon.start()\n")
    pico = check(tmp_path, "rpi-pico")
    assert pico.errors == 1
    assert 'drivers/app.py:1: error: Import of "beacon" ignored' in pico.output
    assert check(tmp_path, "esp32").errors == 0


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import subprocess\n", 1),
        ("from pathlib import Path\n", 1),
        ("import click\n", 1),  # installed in the host venv, not on a board
        ("import time\ntime.monotonic()\n", 2),
        ("import json\njson.dumps({}, indent=2)\n", 2),
    ],
    ids=["subprocess", "pathlib", "host-package", "time.monotonic", "json.dumps-indent"],
)
@pytest.mark.parametrize("profile", ALL)
def test_cpython_only_api_fails_on_every_profile(tmp_path, profile, source, line):
    write(tmp_path, "firmware/host_only.py", source)
    result = check(tmp_path, profile)
    assert result.errors >= 1
    assert f"firmware/host_only.py:{line}: error:" in result.output


@pytest.mark.parametrize("profile", ["esp32", "rpi-pico"])
def test_wrong_call_signatures_are_errors(tmp_path, profile):
    source = textwrap.dedent(
        """\
        import time

        import machine


        def run():
            time.ticks_ms(5)
            machine.Pin("x", 99, 1, 2, 3, 4)
            time.monotonic()
        """
    )
    write(tmp_path, "firmware/bad_calls.py", source)
    result = check(tmp_path, profile)
    assert result.errors == 3
    for line in (7, 8, 9):
        assert f"firmware/bad_calls.py:{line}: error:" in result.output


def test_syntax_error_fails_the_profile(tmp_path):
    write(tmp_path, "firmware/broken.py", "def f(:\n")
    result = check(tmp_path, "esp32")
    assert not result.ok
    assert "firmware/broken.py:1: error:" in result.output


def test_unknown_capability_is_refused(tmp_path):
    write(tmp_path, "drivers/radio.py", "# motekit: requires=ble,lora\nimport bluetooth\n")
    with pytest.raises(ConfigError, match="unknown capability lora"):
        check(tmp_path, "esp32")


def test_marker_after_the_first_line_of_code_does_not_count(tmp_path):
    path = write(tmp_path, "drivers/late.py", "import time\n# motekit: requires=ble\n")
    assert typecheck.required_capabilities(path) == frozenset()


@pytest.mark.parametrize("profile", ALL)
def test_capability_table_matches_the_stubs(stubs, profile):
    # A capability is listed exactly when the profile's stubs ship the module that provides it.
    for capability, module in typecheck.CAPABILITIES.items():
        shipped = (stubs / profile / f"{module}.pyi").is_file()
        assert shipped == (capability in typecheck.PROFILES[profile].capabilities), capability


def test_cli_exit_codes_and_summary(tmp_path, capsys):
    write(tmp_path, "drivers/beacon.py", BLE)
    argv = ["--root", str(tmp_path), "--profile", "esp32", "--profile", "rpi-pico"]
    assert typecheck.main(argv) == 1
    out = capsys.readouterr().out
    assert "[rpi-pico] drivers/beacon.py:1: error:" in out
    assert "typecheck esp32      ok    1 files clean" in out
    assert "typecheck rpi-pico   FAIL  1 errors in 1 files" in out
    assert typecheck.main([*argv[:4], str(tmp_path / "drivers")]) == 0


def test_cli_no_files_is_success(tmp_path, capsys):
    assert typecheck.main(["--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(ALL)
    assert all(line.endswith("ok    no files to check") for line in lines)


def test_install_is_skipped_when_the_pins_are_unchanged(tmp_path, monkeypatch):
    pyproject = tmp_path / "pyproject.toml"
    calls = []

    def fake_pip(command, **_):
        calls.append(command)
        Path(command[command.index("--target") + 1]).mkdir(parents=True)
        return subprocess.CompletedProcess(command, 0)

    def pin(version):
        pyproject.write_text(
            f'[project.optional-dependencies]\nstubs-rpi-pico = ["pico-stubs=={version}"]\n'
        )

    monkeypatch.setattr(typecheck.subprocess, "run", fake_pip)
    pin("1.0")
    target = typecheck.install_stubs("rpi-pico", tmp_path / "stubs", pyproject)
    typecheck.install_stubs("rpi-pico", tmp_path / "stubs", pyproject)
    assert len(calls) == 1 and calls[0][-1] == "pico-stubs==1.0"
    pin("1.1")
    assert typecheck.install_stubs("rpi-pico", tmp_path / "stubs", pyproject) == target
    assert len(calls) == 2 and calls[1][-1] == "pico-stubs==1.1"
    assert (target / ".motekit-requirements").read_text() == "pico-stubs==1.1\n"
