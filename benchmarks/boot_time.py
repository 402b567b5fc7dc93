"""Boot cost of a virtual node: fork of the warm supervisor (what we do) vs a fresh spawn.

A duty cycle is one boot per wake, so this decides how many simulated days fit in a test run.
"""

import os
import statistics
import subprocess
import sys
import time

import micropython_run  # type: ignore[import-not-found]

N = 40
ARGV = ["micropython", "-X", "heapsize=300000", "-c", "import gc; gc.collect()"]


def fork_boot() -> None:
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os._exit(micropython_run.run_main(ARGV) or 0)
    os.waitpid(pid, 0)


def spawn_boot() -> None:
    subprocess.run([sys.executable, "-m", "micropython_unix", *ARGV[1:]], check=True)


def measure(fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(N):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    # Interleave the two so that machine load affects both alike.
    forks, spawns = [], []
    for _ in range(3):
        forks.append(measure(fork_boot))
        spawns.append(measure(spawn_boot))
    f, s = statistics.median(forks), statistics.median(spawns)
    print(f"boot by fork:  {f * 1000:7.2f} ms (median of {3 * N})")
    print(f"boot by spawn: {s * 1000:7.2f} ms")
    print(f"spawn / fork = {s / f:.1f}x  -> a day of 60 s duty cycles (1440 boots) costs")
    print(f"  {1440 * f:.1f} s of boots by fork vs {1440 * s:.1f} s by spawn")


if __name__ == "__main__":
    main()
