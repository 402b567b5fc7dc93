"""Start `mote sim` as a child process and wait until its pty and control socket exist.

This is how tests, `make demo` and the HIL fixture get a virtual board: exactly the command a
user runs, so what they exercise is what ships.
"""

import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools.errors import SimError
from host_tools.sim.control import SimControl


class SimProcess:
    def __init__(
        self,
        board: str = "sim-esp32",
        *,
        state_dir: Path | None = None,
        speed: float = 1.0,
        baud: int = 115200,
        extra_args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mote-sim-run-")
        tmp = Path(self._tmp.name)
        self.state_dir = state_dir or tmp / "state"
        self.log_path = log_path or tmp / "sim.log"
        port_file, control_file = tmp / "port", tmp / "control"
        cmd = [sys.executable, "-m", "host_tools.cli.main", "sim", "--board", board]
        cmd += ["--state", str(self.state_dir), "--speed", str(speed), "--baud", str(baud)]
        cmd += ["--port-file", str(port_file), "--control-file", str(control_file), *extra_args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not (port_file.exists() and control_file.exists()):
            if self.proc.poll() is not None:
                raise SimError(f"mote sim exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SimError("mote sim did not come up within 20 s")
            time.sleep(0.02)
        self.port = port_file.read_text().strip()
        self.control_path = control_file.read_text().strip()
        self.control = SimControl(self.control_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None and hasattr(self, "control"):
            # Quicker than SIGTERM, which waits for the supervisor's select timeout.
            with contextlib.suppress(SimError, OSError, subprocess.TimeoutExpired):
                self.control.request("stop")
                self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if hasattr(self, "control"):
            self.control.close()
        self._tmp.cleanup()
