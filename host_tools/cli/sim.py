"""`mote sim`: run a virtual board in the foreground and print the path of its pty.

`mote simctl`: send one control command to a running virtual board.
"""

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import click

from host_tools.boards import load_board, virtual_board_names
from host_tools.errors import ConfigError, SimError
from host_tools.sim.control import ControlServer, SimControl


def _pairs(values: tuple[str, ...], what: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {v!r} is not KEY=VALUE")
        out.append((key.strip(), val.strip()))
    return out


def _write_atomically(path: Path, text: str) -> None:
    # Scripts poll for this file: it must never be seen half written.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None


@click.command()
@click.option(
    "--board",
    default="sim-esp32",
    show_default=True,
    help="Virtual board: " + ", ".join(virtual_board_names()) + ".",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep flash and power state here between runs (default: a fresh temporary board).",
)
@click.option(
    "--speed", default=1.0, show_default=True, help="Simulated seconds per real second of sleep."
)
@click.option(
    "--baud", default=115200, show_default=True, help="Serial wire rate (0: unthrottled)."
)
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the pty path to this file once the board is up.",
)
@click.option(
    "--control-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the control socket's path to this file (for mote simctl and tests).",
)
@click.option("--env", "envs", multiple=True, metavar="KEY=VALUE", help="Set the environment.")
@click.option(
    "--attach",
    "attaches",
    multiple=True,
    metavar="MODEL@BUS[:ADDR]",
    help="Attach a device model, e.g. at24c32@i2c0:0x50.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="TARGET=SPEC",
    help="Inject a fault, e.g. i2c0:0x50=detach.",
)
@click.option(
    "--air", default="", help="Virtual air to transmit on (default: $MOTE_AIR or 'default')."
)
@click.option("--no-air", is_flag=True, help="Radios transmit into nothing.")
@click.option(
    "--detach",
    is_flag=True,
    help="Run in the background (state kept in the user's data dir unless --state); print the "
    "pty and return. Other commands reach it as --port sim:BOARD.",
)
@click.option("--stop", "stop_it", is_flag=True, help="Stop the running virtual BOARD and return.")
def sim(
    board: str,
    state_dir: Path | None,
    speed: float,
    baud: int,
    port_file: Path | None,
    control_file: Path | None,
    envs: tuple[str, ...],
    attaches: tuple[str, ...],
    faults: tuple[str, ...],
    air: str,
    no_air: bool,
    detach: bool,
    stop_it: bool,
) -> None:
    """Start a virtual node: real MicroPython behind a pty. Runs until interrupted."""
    from host_tools.sim import running
    from host_tools.sim.commands import board_commands
    from host_tools.sim.state import StateDir
    from host_tools.sim.supervisor import VirtualBoard

    if stop_it:
        _stop_running(board)
        return
    definition = load_board(board)
    if not definition.get("virtual"):
        raise ConfigError(
            f"{board} is a real board", hint="use one of " + ", ".join(virtual_board_names())
        )
    if speed <= 0:
        raise ConfigError("--speed must be > 0")
    if baud < 0:
        raise ConfigError("--baud must be >= 0")
    if detach:
        if envs or attaches or faults or port_file or control_file or speed != 1 or baud != 115200:
            raise ConfigError(
                "--detach takes only --board and --state",
                hint="use mote simctl --control on the running board for the rest",
            )
        rb = running.start_detached(board, state_dir)
        click.echo(rb.port)
        return
    # Everything the options ask for is checked before a board (and its files) exists.
    startup: list[dict[str, Any]] = []
    env_values = {k: _number(v, f"--env {k}") for k, v in _pairs(envs, "--env")}
    if env_values:
        startup.append({"cmd": "env", **env_values})
    for spec in attaches:
        model, _, where = spec.partition("@")
        bus, _, addr = where.partition(":")
        startup.append({"cmd": "attach", "model": model, "bus": bus, "addr": addr or None})
    for target, fault in _pairs(faults, "--fault"):
        startup.append({"cmd": "fault", "target": target, "spec": fault})
    state = StateDir(state_dir)
    try:
        vb = VirtualBoard(definition, state, speed=speed, baud=baud, air=None if no_air else air)
    except ValueError as exc:
        if state.temporary:
            shutil.rmtree(state.path, ignore_errors=True)
        raise ConfigError(str(exc)) from exc
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    commands = board_commands(vb, request_stop)
    for request in startup:
        reply = commands.handle(request)
        if not reply["ok"]:
            vb.close()
            if state.temporary:
                shutil.rmtree(state.path, ignore_errors=True)
            raise ConfigError(reply["error"])

    server = ControlServer(state.path / "control.sock", commands)
    vb.extra_fds = server.fds()
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    vb.start()
    # Registered before the pty is announced: whoever reads the port file finds it as sim:BOARD.
    running.register(
        running.RunningBoard(board, vb.pty.path, os.getpid(), str(server.path), str(state.path))
    )
    click.echo(vb.pty.path)
    if control_file is not None:
        _write_atomically(control_file, str(server.path) + "\n")
    if port_file is not None:
        _write_atomically(port_file, vb.pty.path + "\n")
    try:
        while not stop:
            vb.extra_fds = server.fds()
            vb.step(0.2)
    finally:
        running.unregister(os.getpid())
        server.close()
        vb.close()
        if state.temporary:
            shutil.rmtree(state.path, ignore_errors=True)  # a throwaway board leaves nothing


def _stop_running(board: str) -> None:
    from host_tools.sim import running

    found = [rb for rb in running.running_boards() if rb.board == board]
    if not found:
        raise SimError(f"no virtual {board} is running")
    for rb in found:
        try:
            with SimControl(rb.control) as ctl:
                ctl.request("stop")
        except (OSError, SimError) as exc:
            raise SimError(f"cannot stop the virtual {board} (pid {rb.pid}): {exc}") from exc
        click.echo(f"stopped the virtual {board} on {rb.port}")


@click.command()
@click.option(
    "--control",
    "controls",
    required=True,
    multiple=True,
    envvar="MOTE_SIM_CONTROL",
    help="The board's control socket (written by mote sim --control-file). Repeat it to send "
    "the same command to several boards (a reference and a device under test in one chamber).",
)
@click.argument("command")
@click.argument("args", nargs=-1, metavar="[KEY=VALUE]...")
def simctl(controls: tuple[str, ...], command: str, args: tuple[str, ...]) -> None:
    """Send COMMAND to a running virtual board and print its JSON reply.

    Commands: status, reset [kind=button|power_on|brownout|software|watchdog],
    env KEY=VALUE..., fault target=T spec=S, clear_faults, attach model=M bus=B [addr=A],
    cut_power_at_write n=N, wake, erase_flash, stop.
    """
    request: dict[str, Any] = {}
    for key, value in _pairs(args, "argument"):
        try:
            request[key] = json.loads(value)
        except json.JSONDecodeError:
            request[key] = value
    for control in controls:
        try:
            with SimControl(control) as ctl:
                reply = ctl.request(command, **request)
        except OSError as exc:
            raise SimError(f"control socket {control}: {exc}") from exc
        click.echo(json.dumps(reply, indent=1))
