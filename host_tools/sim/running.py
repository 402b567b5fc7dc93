"""The virtual boards running on this machine, so that other mote commands can find them.

    running_boards()                 # every live `mote sim`: board, pty, pid, control socket
    resolve_port("sim:sim-esp32")    # -> "/dev/pts/7", the pty of the running sim-esp32
    find("/dev/pts/7")               # -> its RunningBoard (for its control socket), or None
    start_detached("sim-esp32")      # a persistent virtual board in the background

Each `mote sim` writes <runtime dir>/sims/<pid>.json once its pty is up and removes it when it
stops; an entry whose process is gone is ignored and cleaned up.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from host_tools import userdirs
from host_tools.errors import ConfigError, SimError

PREFIX = "sim:"  # a port named sim:<board> is that board's running virtual node


@dataclass(frozen=True)
class RunningBoard:
    board: str
    port: str  # the pty
    pid: int
    control: str  # the control socket (mote simctl --control)
    state_dir: str


def _dir() -> Path:
    env = os.environ.get("MOTE_RUNTIME_DIR")
    return Path(env) if env else userdirs.runtime_dir() / "sims"


def register(rb: RunningBoard) -> Path:
    d = _dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / f"{rb.pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(rb)))
    os.replace(tmp, path)
    return path


def unregister(pid: int) -> None:
    d = _dir()
    (d / f"{pid}.json").unlink(missing_ok=True)
    # The last one out leaves no empty directories behind (motekit/sims, not what holds them).
    mine = [d] if os.environ.get("MOTE_RUNTIME_DIR") else [d, d.parent]
    for empty in mine:
        try:
            empty.rmdir()
        except OSError:
            break


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_boards() -> list[RunningBoard]:
    out = []
    for path in sorted(_dir().glob("*.json")):
        try:
            rb = RunningBoard(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(rb.pid) and Path(rb.port).exists():
            out.append(rb)
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # its mote sim was killed without cleaning up
    return out


def find(port: str) -> RunningBoard | None:
    return next((rb for rb in running_boards() if rb.port == port), None)


def running_board(board: str) -> RunningBoard | None:
    """The running virtual `board`, None when there is none; ConfigError when several are."""
    found = [rb for rb in running_boards() if rb.board == board]
    if len(found) > 1:
        ports = ", ".join(rb.port for rb in found)
        raise ConfigError(
            f"{len(found)} virtual {board} boards are running ({ports})",
            hint="name one by its pty",
        )
    return found[0] if found else None


def resolve_port(port: str) -> str:
    """A port as given by the user: sim:<board> becomes that running virtual board's pty."""
    if not port.startswith(PREFIX):
        return port
    board = port[len(PREFIX) :]
    rb = running_board(board)
    if rb is None:
        raise ConfigError(
            f"no virtual board {board} is running",
            hint=f"start one with `mote sim --board {board} --detach` "
            f"(or `make flash BOARD={board}`)",
        )
    return rb.port


def default_state_dir(board: str) -> Path:
    """Where a persistent virtual board keeps its flash and power state between runs."""
    env = os.environ.get("MOTE_SIM_HOME")
    return (Path(env) if env else userdirs.data_dir() / "sims") / board


def start_detached(
    board: str, state_dir: Path | None = None, timeout_s: float = 20.0
) -> RunningBoard:
    """Start `mote sim --board board` in the background (its own session, so it outlives
    this process), keeping its state in state_dir; return it once it is up."""
    state = state_dir or default_state_dir(board)
    state.mkdir(parents=True, exist_ok=True)
    log = open(state / "sim.log", "ab")  # noqa: SIM115  handed to the child
    cmd = [
        sys.executable,
        "-m",
        "host_tools.cli.main",
        "sim",
        "--board",
        board,
        "--state",
        str(state),
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rb = next((r for r in running_boards() if r.pid == proc.pid), None)
        if rb is not None:
            return rb
        if proc.poll() is not None:
            tail = (state / "sim.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise SimError(f"the virtual {board} did not start: {' '.join(tail) or 'no output'}")
        time.sleep(0.05)
    proc.terminate()
    raise SimError(f"the virtual {board} did not come up within {timeout_s:g} s")
