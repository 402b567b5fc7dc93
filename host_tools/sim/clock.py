"""The simulated clock shared by a virtual node and its supervisor.

Simulated time runs at the wall-clock rate while the node is awake and `speed` times faster
while it sleeps: sleeps are skipped ahead. Both sides compute now = real time since a reference
+ the reference's simulated time, so they agree without messages; each skip the node makes is
reported to the supervisor (rom/time.py) and added here.
"""

import time
from typing import Any


class SimClock:
    def __init__(self, speed: float = 1.0, sim_ms: float = 0.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        self._real_ref_ns = time.time_ns()
        self._sim_ref_ms = float(sim_ms)

    def now_ms(self) -> float:
        return (time.time_ns() - self._real_ref_ns) / 1e6 + self._sim_ref_ms

    def skip(self, ms: float) -> None:
        self._sim_ref_ms += ms

    def advance_to(self, sim_ms: float) -> None:
        """Jump forward to `sim_ms` (never backwards)."""
        now = self.now_ms()
        if sim_ms > now:
            self.skip(sim_ms - now)

    def real_seconds(self, sim_ms: float) -> float:
        """How long a sleep of `sim_ms` lasts on the wall clock."""
        return max(0.0, sim_ms) / self.speed / 1000.0

    def node_params(self, boot_sim_ms: float, rtc_offset_s: float) -> dict[str, Any]:
        return {
            "speed": self.speed,
            "real_ref_ns": self._real_ref_ns,
            "sim_ref_ms": self._sim_ref_ms,
            "boot_sim_ms": boot_sim_ms,
            "rtc_offset_s": rtc_offset_s,
        }
