"""Motekit host tools: the CPython package behind the `mote` command."""

__version__ = "0.1.0"
