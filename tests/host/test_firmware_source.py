"""Rules the firmware's source keeps, checked on the source: secrets are never printed or logged,
and no board is named in firmware logic (the board file says what the node is)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware" / "motekit"


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


def test_only_the_radio_uplinks_read_a_secret_value() -> None:
    # secrets.get() is for the uplinks (motekit/up_<radio>.py), which hand the key to their
    # radio stack; the console and everything else only ever see fingerprints.
    readers = set()
    for path in FIRMWARE.glob("*.py"):
        if path.name != "secrets.py" and "secrets.get" in _calls(ast.parse(path.read_text())):
            readers.add(path.name)
    assert readers <= {"up_bthome.py", "up_lorawan.py"}, readers


def test_no_board_or_port_is_named_in_firmware_or_driver_logic() -> None:
    boards = {p.parent.name for p in (REPO / "boards").glob("*/board.json")}
    assert "sim-esp32" in boards and "rpi-pico" in boards
    ports = {"esp32", "rp2", "rp2040", "esp32s3", "esp32c3"}
    for path in [*(REPO / "firmware").rglob("*.py"), *(REPO / "drivers").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in boards | ports, f"{path.name}: {node.value!r}"
            if isinstance(node, ast.Attribute) and node.attr == "platform":
                raise AssertionError(f"{path.name} looks at sys.platform")
