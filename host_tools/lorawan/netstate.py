"""The bench network server's view of the registry and its own state file.

    devices = devices_from_records(Registry().devices().values())   # LoRaWAN devices, checked
    state = StateFile(state_path_for(registry.path))                 # registry.network.json
    state.acquire()                  # one server per state file: RegistryError otherwise
    data = state.load(); ...; state.save(data)
    state.close()

The state file holds what must survive a restart of `mote gateway`: the DevNonces each device
used, the AppNonce counter and the sessions (DevAddr, session keys, frame counters, RX
settings). It holds keys, so it is written like the registry: 0600, replaced atomically.
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.errors import RegistryError
from host_tools.registry import write_private

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

Record = dict[str, Any]

STATE_VERSION = 1


@dataclass(frozen=True)
class Device:
    """A registry record's LoRaWAN part, checked."""

    device_id: str
    dev_eui: int
    region: str
    sub_band: int | None
    activation: str  # "otaa" | "abp"
    join_eui: int | None = None
    app_key: bytes | None = field(default=None, repr=False)
    dev_addr: int | None = None
    nwk_s_key: bytes | None = field(default=None, repr=False)
    app_s_key: bytes | None = field(default=None, repr=False)

    @property
    def eui(self) -> str:
        return f"{self.dev_eui:016x}"

    @classmethod
    def from_record(cls, record: Record) -> "Device":
        lora = record.get("lorawan") or {}
        device_id = str(record.get("device_id"))
        try:
            activation = lora["activation"]
            common = {
                "device_id": device_id,
                "dev_eui": int(lora["dev_eui"], 16),
                "region": lora["region"],
                "sub_band": lora.get("sub_band"),
                "activation": activation,
            }
            if activation == "otaa":
                return cls(
                    **common,
                    join_eui=int(lora["join_eui"], 16),
                    app_key=_key(lora["app_key"]),
                )
            if activation == "abp":
                return cls(
                    **common,
                    dev_addr=int(lora["dev_addr"], 16),
                    nwk_s_key=_key(lora["nwk_s_key"]),
                    app_s_key=_key(lora["app_s_key"]),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(
                f"device {device_id}: its LoRaWAN record is incomplete or damaged ({exc})",
                hint="provision it again with mote provision --force",
            ) from None
        raise RegistryError(f"device {device_id}: unknown LoRaWAN activation {activation!r}")


def _key(text: str) -> bytes:
    key = bytes.fromhex(text)
    if len(key) != 16:
        raise ValueError("a key is 16 bytes")
    return key


def devices_from_records(records: Iterable[Record]) -> list[Device]:
    """The LoRaWAN devices among registry records (records without a lorawan part skipped)."""
    return [Device.from_record(r) for r in records if r.get("lorawan")]


# ---- the state file ----------------------------------------------------------------------------


def state_path_for(registry_path: Path) -> Path:
    """The server's state file beside the registry: registry.json -> registry.network.json."""
    return registry_path.with_name(registry_path.stem + ".network.json")


class StateFile:
    """The server's persistent state: one private JSON file, replaced atomically on each save,
    and a lock held from acquire() to close() so two servers never share it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None or self._lock_fd is not None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError as exc:
            raise RegistryError(f"cannot create the network state {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RegistryError(
                f"the network state {self.path} is in use by another mote gateway",
                hint="stop the other one: two network servers would reuse frame counters",
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": STATE_VERSION, "join_nonce": 0, "devices": {}}
        except OSError as exc:
            raise RegistryError(f"cannot read the network state {self.path}: {exc}") from exc
        try:
            data = json.loads(raw)
            ok = isinstance(data, dict) and isinstance(data.get("devices"), dict)
        except ValueError:
            ok = False
        if not ok:
            raise RegistryError(
                f"the network state {self.path} is damaged",
                hint="move it aside: devices must then join again (ABP devices keep working "
                "only if their frame counters start over, which they do not)",
            )
        if data.get("version") != STATE_VERSION:
            raise RegistryError(
                f"the network state {self.path} has version {data.get('version')!r}; this mote "
                f"reads {STATE_VERSION}"
            )
        return data  # type: ignore[no-any-return]

    def save(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(self.path, text.encode())
        except OSError as exc:
            raise RegistryError(f"cannot write the network state {self.path}: {exc}") from exc
