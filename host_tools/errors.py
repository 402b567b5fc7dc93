"""The error types every layer raises, and the exit code each one maps to.

The CLI's single handler (host_tools.cli.main) prints one line, `error: <message>`, plus a hint
when there is one, and exits with the class's code. Nothing classifies errors by message text.
"""


class MoteError(Exception):
    """A failure the user can act on. `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(MoteError):
    """A bad option, board name, or file given by the user."""

    exit_code = 2


class TransportError(MoteError):
    """The serial link or pty could not be opened, or broke."""

    exit_code = 3


class SimError(MoteError):
    """The virtual board could not start or was driven into an impossible state."""

    exit_code = 4


class ProtocolError(MoteError):
    """The node answered badly, refused a request, or did not answer.

    `err` is the node's error code (`bad_value`, `bad_key`, ...) for a refused request, or the
    host's own for what it found: `timeout`, `repl` (the node is at the MicroPython REPL),
    `bad_version`, `bad_reply`.
    """

    exit_code = 5

    def __init__(self, message: str, hint: str = "", err: str = "") -> None:
        super().__init__(message, hint)
        self.err = err


class FlashError(MoteError):
    """Writing MicroPython failed or was refused: wrong chip, image missing or damaged,
    bootloader not reached, verify mismatch."""

    exit_code = 6


class DeployError(MoteError):
    """Copying the firmware onto a node failed or was refused (no MicroPython REPL, a file that
    did not arrive intact, the node reporting another firmware after the reboot). `err` tells
    them apart: `no_repl`, `no_answer`, `no_board`, `not_intact`, `not_back`, `not_started`,
    `wrong_build`, `failed` (the node raised running a step)."""

    exit_code = 7

    def __init__(self, message: str, hint: str = "", err: str = "failed") -> None:
        super().__init__(message, hint)
        self.err = err


class RegistryError(MoteError):
    """The host registry of provisioned devices cannot be read or written, or refuses a change
    (a device already registered without --force)."""

    exit_code = 8


class CalibrationError(MoteError):
    """A calibration cannot be made or applied: too few or unstable points, a fit refused (NaN,
    ill-conditioned, a reference outside the sensor's range), a verification that failed (the
    previous calibration is then back in place), a history with nothing to roll back to."""

    exit_code = 9
