"""hil_tests/ use the Motekit HIL plugin (host_tools.hil.pytest_plugin, registered as a pytest11
entry point): `node` is a fresh virtual board, or a real one with --port and --board."""

import re
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"


@pytest.fixture(scope="session")
def firmware_version() -> str:
    text = (FIRMWARE / "motekit" / "__init__.py").read_text()
    m = re.search(r'VERSION = "([^"]+)"', text)
    assert m, "firmware/motekit/__init__.py has no VERSION"
    return m[1]
