"""What goes onto a node: modules compiled to .mpy, data files, the resolved board file and a
manifest of all of them."""

import hashlib
import json
import re
from pathlib import Path

from host_tools import firmware_files

REPO = Path(__file__).resolve().parents[2]


def test_modules_go_as_mpy_and_data_as_it_is(tmp_path: Path) -> None:
    files = firmware_files.node_files("sim-rp2", tmp_path)
    assert files["/boot.py"] == REPO / "firmware" / "boot.py"
    assert files["/main.py"] == REPO / "firmware" / "main.py"
    app = files["/lib/motekit/app.mpy"]
    assert app.read_bytes()[:1] == b"M"  # the .mpy header's magic
    assert files["/lib/motekit/schema.json"] == REPO / "firmware" / "motekit" / "schema.json"
    assert "/lib/sht4x.mpy" in files and "/lib/motekit/app.py" not in files
    assert json.loads(files["/board.json"].read_text())["name"] == "sim-rp2"


def test_the_manifest_names_every_file_with_its_hash(tmp_path: Path) -> None:
    files = firmware_files.node_files("sim-esp32", tmp_path)
    path = firmware_files.manifest_file("sim-esp32", files, tmp_path)
    m = json.loads(path.read_text())
    version = re.search(r'"(.+)"', (REPO / "firmware/motekit/__init__.py").read_text())
    assert version and m["fw"] == version[1] and m["board"] == "sim-esp32"
    assert set(m["files"]) == set(files)
    for node_path, sha in m["files"].items():
        assert sha == hashlib.sha256(files[node_path].read_bytes()).hexdigest()
