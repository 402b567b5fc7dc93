"""What a virtual board keeps between runs of `mote sim --state DIR`.

- `flash.bin`: the littlefs partition image, the size of the real board's filesystem partition.
- `power.json`: the power state: simulated clock, RTC wall-clock offset, RTC memory, whether the
  node was in deep sleep (and until when), the unique id and the environment.
Stopping `mote sim` freezes the virtual world; the next run resumes it. A node that was awake
when stopped cannot resume mid-instruction: it comes back with a power-on reset.
"""

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Both ports start their RTC at 2000-01-01 00:00:00 after power-on.
RTC_EPOCH_2000 = 946684800


@dataclass
class PowerState:
    sim_ms: float = 0.0
    rtc_offset_s: float = RTC_EPOCH_2000
    rtc_memory_hex: str = ""
    asleep_until_ms: float | None = None  # None: awake (or never booted)
    sleeping_forever: bool = False
    unique_id_hex: str = ""
    environment: dict[str, float] = field(default_factory=dict)
    boots: int = 0


class StateDir:
    def __init__(self, path: Path | None) -> None:
        self.temporary = path is None
        self.path = Path(tempfile.mkdtemp(prefix="mote-sim-")) if path is None else Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.flash_path = self.path / "flash.bin"
        self.power_path = self.path / "power.json"
        self.boot_params_path = self.path / "boot.json"

    def ensure_flash(self, size: int) -> None:
        """Create an erased flash image, or refuse one of another size (another board's)."""
        if self.flash_path.exists():
            actual = self.flash_path.stat().st_size
            if actual != size:
                raise ValueError(
                    f"{self.flash_path} is {actual} bytes but this board's filesystem is {size}"
                )
            return
        with open(self.flash_path, "wb") as f:
            f.write(b"\xff" * size)

    def erase_flash(self, size: int) -> None:
        self.flash_path.unlink(missing_ok=True)
        self.ensure_flash(size)

    def load_power(self, unique_id_bytes: int) -> PowerState:
        state = PowerState()
        if self.power_path.exists():
            raw: dict[str, Any] = json.loads(self.power_path.read_text())
            known = PowerState.__dataclass_fields__
            state = PowerState(**{k: v for k, v in raw.items() if k in known})
        if len(bytes.fromhex(state.unique_id_hex)) != unique_id_bytes:
            state.unique_id_hex = secrets.token_hex(unique_id_bytes)
        return state

    def save_power(self, state: PowerState) -> None:
        tmp = self.power_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1))
        os.replace(tmp, self.power_path)
