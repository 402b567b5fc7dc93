"""Device tests: pytest collects tests/device/test_*.py and runs them inside MicroPython.

Each file runs once per virtual board (sim-esp32 and sim-rp2 unless the file says
`# devtest: boards=sim-esp32`; `# devtest: speed=20` makes its sleeps pass 20 times faster,
for drivers that wait seconds for a conversion) in script mode on a fresh node: the real
unix-port interpreter with the board's heap, a littlefs root, the machine shims and device
models. firmware/ and drivers/ are importable as on a node's /lib, compiled to .mpy as the
deploy installs them (an ESP32's heap cannot compile the whole firmware from source); the test
files are compiled the same way. The tests of one file share one
node, in order.
A failure shows the MicroPython traceback; CPython-only code fails here as it would on a board.
"""

import ast
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host_tools.firmware_files import lib_tree

REPO = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "node"
DEFAULT_BOARDS = ("sim-esp32", "sim-rp2")
MARK = "\x1edevtest:"
_BOARDS_LINE = re.compile(r"^#\s*devtest:\s*boards=([\w,\- ]+)$", re.M)
_SPEED_LINE = re.compile(r"^#\s*devtest:\s*speed=(\d+(?:\.\d+)?)$", re.M)


@dataclass
class Result:
    status: str  # pass | fail | skip | missing
    output: str
    detail: str = ""


@dataclass
class FileRun:
    exit_code: int
    output: str
    results: dict[str, Result]


def test_names(source: str) -> list[str]:
    """Top-level `test_*` functions, in file order."""
    tree = ast.parse(source)
    return [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]


def boards_for(source: str) -> tuple[str, ...]:
    m = _BOARDS_LINE.search(source)
    if not m:
        return DEFAULT_BOARDS
    return tuple(b.strip() for b in m[1].split(",") if b.strip())


def speed_for(source: str) -> float:
    m = _SPEED_LINE.search(source)
    return float(m[1]) if m else 1.0


def parse_output(output: str, names: list[str]) -> dict[str, Result]:
    results: dict[str, Result] = {}
    current: str | None = None
    lines: list[str] = []
    for line in output.split("\n"):  # not splitlines(): it breaks lines at \x1e too
        if not line.startswith(MARK):
            if current is not None:
                lines.append(line)
            continue
        verb, _, rest = line[len(MARK) :].partition(" ")
        if verb == "start":
            current, lines = rest, []
        elif verb in ("pass", "fail", "skip") and current is not None:
            name, _, detail = rest.partition(" ")
            results[name] = Result(verb, "\n".join(lines), detail)
            current = None
    if current is not None:  # the node died or hung inside this test
        results[current] = Result("fail", "\n".join(lines) + "\n(the test never finished)")
    return results


def _compiled(root: Path, out: Path) -> Path:
    """`root` as the deploy puts it in /lib: modules as .mpy, data files copied, under `out`."""
    for rel, src in lib_tree(root, out).items():
        if not src.is_relative_to(out):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
    return out


def run_file(
    path: Path, names: list[str], board: str, timeout_s: float = 120.0, speed: float = 1.0
) -> FileRun:
    """Run `names` from the device test file `path` on a fresh `board`."""
    with tempfile.TemporaryDirectory(prefix="devtest-") as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(f"import _devtest\n_devtest.run({path.stem!r}, {names!r})\n")
        cmd = [sys.executable, "-m", "host_tools.sim.script", "--board", board]
        cmd += ["--timeout", str(timeout_s), "--speed", str(speed)]
        for host, node in (
            (HARNESS_DIR, "/.devtest"),
            # Compiled too: a big test file's source does not compile in an ESP32's heap.
            (_compiled(path.parent, Path(tmp) / "tests"), "/.tests"),
            (_compiled(REPO / "firmware", Path(tmp) / "firmware"), "/.firmware"),
            (_compiled(REPO / "drivers", Path(tmp) / "drivers"), "/.drivers"),
        ):
            cmd += ["--mount", f"{host}:{node}"]
        cmd.append(str(driver))
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout_s + 30, cwd=REPO, check=False
        )
    output = proc.stdout.decode(errors="replace").replace("\r\n", "\n")
    output += proc.stderr.decode(errors="replace")
    return FileRun(proc.returncode, output, parse_output(output, names))
