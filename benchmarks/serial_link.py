"""Upload throughput over the virtual serial link (mpremote fs cp), throttled vs wire rate.

At 115200 baud 8N1 the wire carries 11,520 bytes/s; mpremote's raw-paste protocol encodes the
file, so the useful rate is lower. The ratio to the unthrottled link shows what --baud costs.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools.sim.launcher import SimProcess

SIZE = 16 * 1024


def upload_seconds(baud: int, src: Path) -> float:
    with SimProcess("sim-esp32", baud=baud) as sim:
        cmd = [sys.executable, "-m", "mpremote", "connect", sim.port, "fs", "cp", str(src), ":f"]
        subprocess.run([*cmd[:5], "exec", "pass"], check=True, capture_output=True)  # warm up
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "payload.bin"
        src.write_bytes(bytes(range(256)) * (SIZE // 256))
        slow = upload_seconds(115200, src)
        fast = upload_seconds(0, src)
    wire = 115200 / 10
    print(f"{SIZE} bytes at 115200 baud: {slow:.2f} s = {SIZE / slow:,.0f} B/s")
    print(f"  useful rate / wire rate ({wire:,.0f} B/s) = {SIZE / slow / wire:.2f}")
    print(f"{SIZE} bytes unthrottled:    {fast:.2f} s")
    print(f"throttled / unthrottled time = {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
