"""`mote`: the entry point and its single error handler.

Each sub-command lives in its own module in this package and is registered below. A command
raises host_tools.errors.MoteError (or a subclass) for anything the user can fix; `main()` turns
it into one line on stderr and a non-zero exit code. `--debug` shows the traceback instead.
"""

import signal
import sys
from typing import Any

import click

from host_tools import __version__
from host_tools.errors import MoteError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mote")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Motekit host tools: talk to sensor nodes, real or virtual."""
    ctx.obj = {"debug": debug}


def _register() -> None:
    # Imported here so that `mote --help` stays fast and a broken optional command
    # cannot break the others at import time.
    from host_tools.cli import (
        air,
        calibrate,
        console,
        deploy,
        flash,
        gateway,
        images,
        node,
        ports,
        provision,
        registry,
        scan,
        sim,
    )

    cli.add_command(sim.sim)
    cli.add_command(sim.simctl)
    cli.add_command(flash.flash)
    cli.add_command(deploy.deploy_cmd)
    cli.add_command(images.images)
    cli.add_command(provision.provision)
    cli.add_command(registry.registry)
    cli.add_command(ports.ports)
    cli.add_command(console.console)
    cli.add_command(air.air)
    cli.add_command(gateway.gateway)
    cli.add_command(scan.scan)
    cli.add_command(calibrate.calibrate)
    for command in node.COMMANDS:
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run `mote` with `argv` (default: sys.argv[1:]) and return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    previous = _stop_on_sigterm()
    try:
        rv = cli.main(args=args, prog_name="mote", standalone_mode=False)
    except MoteError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The system refused something (a path, a port, a socket): say what, in one line.
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            raise
        click.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: run with --debug for the traceback, and please report it", err=True)
        return 70
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rv if isinstance(rv, int) else 0


def _stop_on_sigterm() -> Any:
    """SIGTERM (kill, a service manager, a test) stops a command as Ctrl-C does, so it cleans up
    (an air registration, a serial port, a half-written file); `mote sim` sets its own. Returns
    the previous handler, or None where signals cannot be set (not the main thread)."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
