"""The bench reset sequences now live with the serial transport; this name stays for hil/."""

from host_tools.transport.reset import ClassicReset, NoResetLine, reset_for

__all__ = ["ClassicReset", "NoResetLine", "reset_for"]
