"""`mote`'s single error handler: one line on stderr and a non-zero exit, never a traceback."""

import pytest

from host_tools.cli import main as cli_main
from host_tools.errors import MoteError


def test_a_system_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main.main(["sim", "--state", "/proc/motekit-cannot-be-here"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "/proc/motekit-cannot-be-here" in err


def test_a_mote_error_carries_its_exit_code_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main.main(["flash", "--board", "sim-esp32", "--port", "/dev/null"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2  # ConfigError
    assert err[0] == "error: /dev/null is not a running virtual board's pty"
    assert err[1].startswith("hint: leave out --port")


def test_an_unexpected_exception_is_reported_not_dumped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr("host_tools.cli.sim.load_board", broken)
    rc = cli_main.main(["sim"])
    err = capsys.readouterr().err.splitlines()
    assert rc == 70
    assert err == [
        "error: internal error: KeyError: 'surprise'",
        "hint: run with --debug for the traceback, and please report it",
    ]


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> None:
        raise MoteError("boom")

    monkeypatch.setattr("host_tools.cli.sim.load_board", broken)
    with pytest.raises(MoteError, match="boom"):
        cli_main.main(["--debug", "sim"])
