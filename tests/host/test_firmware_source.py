"""Secrets are never printed or logged: firmware/motekit/secrets.py calls neither print nor the
log, and nothing in the firmware passes a secret's value to them (checked on the source)."""

import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "motekit"


def _calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                names.append(f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                names.append(f"{f.value.id}.{f.attr}")
    return names


def test_the_secrets_module_prints_and_logs_nothing() -> None:
    calls = _calls(ast.parse((FIRMWARE / "secrets.py").read_text()))
    assert "print" not in calls
    assert not [c for c in calls if c.startswith("log.")]
    imports = (FIRMWARE / "secrets.py").read_text()
    assert "import log" not in imports and "from motekit import log" not in imports


def test_no_firmware_module_reads_a_secret_value_except_through_get() -> None:
    # secrets.get() is for the uplinks; the console only ever sees fingerprints.
    for path in FIRMWARE.glob("*.py"):
        if path.name == "secrets.py":
            continue
        calls = _calls(ast.parse(path.read_text()))
        assert "secrets.get" not in calls, path.name
