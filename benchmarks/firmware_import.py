"""What it costs a node to load the firmware: modules as source (.py, compiled on the node) vs as
bytecode (.mpy, compiled by mpy-cross at install, what we ship).

Each run boots a virtual sim-rp2 (whose 233 KB heap fits both; an ESP32's 111 KB does not fit
the source) in script mode and imports motekit.app with everything it pulls in, timing the
import on the node's clock and reading the heap before and after with a collection. Times are
host times: the ratio carries over to a board, the milliseconds do not.
"""

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools.firmware_files import lib_tree

REPO = Path(__file__).resolve().parent.parent
N = 7
PROBE = """import gc, sys, time
sys.path.insert(0, "/.fw")
gc.collect()
before = gc.mem_alloc()
t0 = time.ticks_us()
from motekit import app, commands, console, uplinks
took = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print("RESULT", took, gc.mem_alloc() - before)
"""


def tree(kind: str, out: Path) -> Path:
    if kind == "py":
        shutil.copytree(REPO / "firmware", out)
        return out
    for rel, src in lib_tree(REPO / "firmware", out).items():
        if not src.is_relative_to(out):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
    return out


def run(fw: Path, probe: Path) -> tuple[int, int]:
    cmd = [sys.executable, "-m", "host_tools.sim.script", "--board", "sim-rp2"]
    cmd += ["--mount", f"{fw}:/.fw", str(probe)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
    m = re.search(r"RESULT (\d+) (\d+)", out)
    if not m:
        raise SystemExit(f"no result from the node:\n{out}")
    return int(m[1]), int(m[2])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.py"
        probe.write_text(PROBE)
        trees = {k: tree(k, Path(tmp) / k) for k in ("py", "mpy")}
        results: dict[str, list[tuple[int, int]]] = {"py": [], "mpy": []}
        for _ in range(N):  # interleaved, so a busy moment of the machine hits both
            for kind, fw in trees.items():
                results[kind].append(run(fw, probe))
    us = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    heap = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    print(f"importing the firmware on a virtual node, median of {N}:")
    for kind in ("py", "mpy"):
        print(f"  .{kind:<4} {us[kind] / 1000:7.1f} ms   {heap[kind]:7,.0f} bytes kept in the heap")
    print(f"source / bytecode: {us['py'] / us['mpy']:.1f}x the time, ", end="")
    print(f"{heap['py'] / heap['mpy']:.2f}x the heap kept")


if __name__ == "__main__":
    main()
