"""Which repository files make up a node's filesystem, and a plain copy onto a node.

`install()` copies everything with mpremote, every time: the stand-in for `mote deploy` (which
will compile, diff against the node's manifest and copy only what changed).
"""

import subprocess
import sys
from pathlib import Path

from host_tools.boards import boards_dir
from host_tools.errors import TransportError

REPO = Path(__file__).resolve().parent.parent


def node_files(board: str) -> dict[str, Path]:
    """Map node path -> repository file: boot.py, main.py, /lib/<package>/..., /board.json."""
    fw = REPO / "firmware"
    files = {"/boot.py": fw / "boot.py", "/main.py": fw / "main.py"}
    for root in (fw, REPO / "drivers"):
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if rel.parts[0] in ("boot.py", "main.py") or "__pycache__" in rel.parts:
                continue
            files["/lib/" + rel.as_posix()] = path
    files["/board.json"] = boards_dir() / board / "board.json"
    return files


def install(port: str, board: str, extra: dict[str, Path] | None = None) -> None:
    """Copy the firmware (and `extra` node path -> file) to the node on `port` with mpremote."""
    files = {**node_files(board), **(extra or {})}
    dirs = sorted({p.rsplit("/", 1)[0] for p in files if p.count("/") > 1})
    args = ["connect", port]
    # mkdir of an existing directory fails, so make them from a script that tolerates it.
    mk = f"import os\nfor d in {_parents(dirs)!r}:\n try: os.mkdir(d)\n except OSError: pass"
    args += ["exec", mk]
    for node_path, src in files.items():
        args += ["+", "fs", "cp", str(src), ":" + node_path]
    proc = subprocess.run(
        [sys.executable, "-m", "mpremote", *args], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise TransportError(f"copying firmware to {port} failed: {proc.stderr.strip()[-300:]}")


def _parents(dirs: list[str]) -> list[str]:
    out: list[str] = []
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in out:
                out.append(p)
    return out
