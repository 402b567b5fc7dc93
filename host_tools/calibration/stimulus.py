"""Driving the setup to each calibration setpoint with a shell command.

    setpoints = parse_setpoints("10,25,40")
    check_template("chamberctl set {setpoint}")          # when the option is parsed
    run_stimulus("chamberctl set {setpoint}", 25.0)      # runs `chamberctl set 25`

The command runs through the shell with its output captured; it should return once the setup has
been told to move (the point's stability rule, with its dwell, then waits for it to settle).
"""

import contextlib
import math
import os
import signal
import subprocess

from host_tools.errors import CalibrationError, ConfigError

PLACEHOLDER = "{setpoint}"
_KILL_WAIT_S = 5.0  # after killing a command that timed out, for its pipes to close
_TEMPLATE_HINT = (
    'e.g. --stimulus "chamberctl set {setpoint}": {setpoint} becomes each setpoint (10, 25.5)'
)
_SETPOINTS_HINT = "setpoints are numbers separated by commas, each once: --setpoints 10,25,40"


def check_template(template: str) -> None:
    """ConfigError unless the stimulus command holds {setpoint}."""
    if not template.strip():
        raise ConfigError("the stimulus command is empty", hint=_TEMPLATE_HINT)
    if PLACEHOLDER not in template:
        raise ConfigError(
            f"the stimulus command has no {PLACEHOLDER}: {template!r}", hint=_TEMPLATE_HINT
        )


def command_for(template: str, setpoint: float) -> str:
    """The template with every {setpoint} replaced by the setpoint formatted with %g (25, 25.5,
    1e-05). A plain replace, not str.format: shell text such as ${HOME} or awk '{print}' stays
    as it is."""
    check_template(template)
    if not math.isfinite(setpoint):
        raise ConfigError(f"a setpoint must be a finite number, not {setpoint}")
    return template.replace(PLACEHOLDER, f"{setpoint:g}")


def run_stimulus(template: str, setpoint: float, *, timeout_s: float = 600.0) -> None:
    """Run the stimulus command for one setpoint; CalibrationError if it fails or times out."""
    cmd = command_for(template, setpoint)
    # A session of its own, so that a timeout kills the whole process group: killing only the
    # shell would leave its children running, holding the output pipes open.
    posix = os.name == "posix"
    proc = subprocess.Popen(
        cmd,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=posix,
    )
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc, posix)
        raise CalibrationError(
            f"the stimulus command did not finish within {timeout_s:g} s: {cmd}",
            hint="the command should return once the setup has been told to move; "
            "the stability rule then waits for it to settle",
        ) from None
    if proc.returncode != 0:
        how = (
            f"exit {proc.returncode}"
            if proc.returncode > 0
            else f"killed by signal {-proc.returncode}"
        )
        last = _last_line(err)
        raise CalibrationError(
            f"the stimulus command failed ({how}): {cmd}" + (f": {last}" if last else ""),
            hint="run the command by hand to check it",
        )


def _kill(proc: "subprocess.Popen[str]", posix: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        if posix:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    # Something outside the group may still hold the pipes: leave it then.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_KILL_WAIT_S)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def parse_setpoints(text: str) -> list[float]:
    """ "10,25,40" -> [10.0, 25.0, 40.0], in the order given; ConfigError for an empty list or
    item, a value that is not a finite number, or a repeated one."""
    if not text.strip():
        raise ConfigError("no setpoints given", hint=_SETPOINTS_HINT)
    out: list[float] = []
    for i, part in enumerate(text.split(","), 1):
        item = part.strip()
        if not item:
            raise ConfigError(f"setpoint {i} of {text!r} is empty", hint=_SETPOINTS_HINT)
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"setpoint {item!r} is not a number", hint=_SETPOINTS_HINT) from None
        if not math.isfinite(value):
            raise ConfigError(f"setpoint {item!r} is not a finite number", hint=_SETPOINTS_HINT)
        if value in out:
            raise ConfigError(f"setpoint {item} is given twice", hint=_SETPOINTS_HINT)
        out.append(value)
    return out
