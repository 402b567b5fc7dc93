"""The host registry of provisioned devices: one private JSON file, its records and exports.

    reg = Registry()                        # $MOTE_REGISTRY, else the user's data directory
    reg.check_writable()                    # before touching a node
    reg.add_pending(record)                 # keys chosen, not yet on the node
    reg.complete(device_id, fingerprints)   # the node has them, read back and checked
    text = export(reg.devices().values(), "tts")

The file is {"version": 1, "devices": {device_id: record}}. It holds device keys, so it is created
0600 in a 0700 directory, replaced atomically (a 0600 temporary file in the same directory,
fsync, os.replace), and a file other users can read is refused, as ssh refuses a private key.
A lock file beside it (flock) keeps two mote processes from losing each other's changes.

A record: device_id, board, fw, provisioned_at (ISO 8601 UTC), state ("pending" | "complete"),
bthome {bind_key, ble_address} when BLE, lorawan {region, sub_band, activation, dev_eui,
join_eui, app_key | dev_addr, nwk_s_key, app_s_key} when LoRa, fingerprints {secret name: fp},
history [older records, newest last].

Calibration history sits beside the devices, each device's certificates oldest first (the
records host_tools.calibration.certificate builds; readers that predate it ignore the key):

    reg.add_calibration(record)                         # record["device_id"], record["id"]
    reg.calibrations(device_id, "sht41.humidity")       # [record, ...] oldest first
    reg.update_calibration(device_id, cert_id, state="rolled_back")

    {"version": 1, "devices": {...}, "calibrations": {device_id: [record, ...]}}
"""

import contextlib
import csv
import io
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from host_tools import userdirs
from host_tools.errors import ConfigError, RegistryError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

Record = dict[str, Any]

VERSION = 1
ENV = "MOTE_REGISTRY"
LOCK_TIMEOUT_S = 10.0
# Where each key sits in a record (section, field); `redact` drops these.
KEY_FIELDS = (
    ("bthome", "bind_key"),
    ("lorawan", "app_key"),
    ("lorawan", "nwk_s_key"),
    ("lorawan", "app_s_key"),
)
FORMATS = ("tts", "chirpstack", "ha-bthome")
# The LoRaWAN version Motekit nodes speak (1.0.x: the AppKey is the root key), as each network
# server names it.
TTS_MAC_VERSION = "MAC_V1_0_3"
TTS_PHY_VERSION = "PHY_V1_0_3_REV_A"
_LOCK_POLL_S = 0.05


def default_path() -> Path:
    """$MOTE_REGISTRY, else motekit/registry.json in the user's data directory."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else userdirs.data_dir() / "registry.json"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_path()
        self.lock_timeout_s = lock_timeout_s

    # ---- reading ----------------------------------------------------------------------------

    def devices(self) -> dict[str, Record]:
        """Every record by device id; {} when the file does not exist yet."""
        return self._read()["devices"]  # type: ignore[no-any-return]

    def get(self, device_id: str) -> Record | None:
        return self.devices().get(device_id.lower())

    def calibrations(self, device_id: str, channel: str | None = None) -> list[Record]:
        """The certificates of `device_id` (of `channel` only, when given), oldest first; []
        for a device never calibrated or a registry without a calibrations object."""
        history = self._read().get("calibrations", {}).get(device_id.lower(), [])
        return [r for r in history if channel is None or r.get("channel") == channel]

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                self._check_private(os.fstat(f.fileno()))
                raw = f.read()
        except FileNotFoundError:
            return {"version": VERSION, "devices": {}}
        except OSError as exc:  # a directory, a path through a file, no permission
            raise self._cannot("read", exc) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(
                f"the registry {self.path} is not valid JSON ({exc})",
                hint="restore it from a backup or move it aside; mote will not overwrite it",
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
            raise RegistryError(
                f"the registry {self.path} is not a Motekit registry (no devices object)",
                hint="point --registry or MOTE_REGISTRY at the registry file",
            )
        calibrations = data.get("calibrations", {})
        if not isinstance(calibrations, dict) or not all(
            isinstance(h, list) and all(isinstance(r, dict) for r in h)
            for h in calibrations.values()
        ):
            raise RegistryError(
                f"the registry {self.path} has a damaged calibrations object (each device's "
                "history must be a list of records)",
                hint="restore it from a backup or move it aside; mote will not overwrite it",
            )
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise RegistryError(
                f"the registry {self.path} has version {version!r}; this mote reads version "
                f"{VERSION}",
                hint="update Motekit's host tools (pip install -U motekit) to use it",
            )
        return data

    def _check_private(self, st: os.stat_result) -> None:
        if os.name != "posix":
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise RegistryError(
                f"the registry {self.path} is open to other users (mode {mode:04o}) and holds "
                "device keys",
                hint=f"chmod 600 {self.path}",
            )

    # ---- writing ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise RegistryError unless the registry can be read and replaced: its directory
        exists or can be made, a file can be created there, and the current file (if any) is
        private, valid and of a version this mote writes."""
        with self._locked():
            self._read()
            probe = self.path.with_name(f".{self.path.name}.probe-{os.getpid()}")
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise self._cannot("write", exc) from exc

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Record]]:
        """Locked read-modify-write of the devices: changes are saved when the block ends
        without an exception."""
        with self._edit_all() as data:
            yield data["devices"]

    @contextlib.contextmanager
    def _edit_all(self) -> Iterator[dict[str, Any]]:
        # The whole file, so that a change to one part keeps the others as they were.
        with self._locked():
            data = self._read()
            yield data
            data["version"] = VERSION
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
            try:
                write_private(self.path, text.encode())
            except OSError as exc:
                raise self._cannot("write", exc) from exc

    def add_pending(self, record: Record, *, force: bool = False) -> None:
        """Record `record` (state "pending"). A device already registered needs `force`, and
        its record then moves into the new one's history."""
        device_id = record["device_id"]
        with self.edit() as devices:
            old = devices.get(device_id)
            if old is not None and not force:
                raise already_registered(old)
            if old is not None:
                older = old.pop("history", [])
                record["history"] = [*older, old]
            devices[device_id] = record

    def complete(self, device_id: str, fingerprints: dict[str, str]) -> Record:
        """Mark the pending record of `device_id` complete with the fingerprints read back."""
        with self.edit() as devices:
            record = devices.get(device_id)
            if record is None or record.get("state") != "pending":
                raise RegistryError(
                    f"no pending provisioning of {device_id} in {self.path} to complete",
                    hint="another mote changed the registry meanwhile: run mote provision again",
                )
            record["state"] = "complete"
            record["fingerprints"] = dict(fingerprints)
            record["provisioned_at"] = now_utc()
            return record

    def add_calibration(self, record: Record) -> None:
        """Append a certificate to its device's history (record["device_id"]). Its id
        (record["id"]) must be new for that device."""
        device_id, cert_id = record.get("device_id"), record.get("id")
        if not isinstance(device_id, str) or not isinstance(cert_id, str):
            raise ValueError("a calibration record needs a device_id and an id (strings)")
        with self._edit_all() as data:
            history = data.setdefault("calibrations", {}).setdefault(device_id.lower(), [])
            if any(r.get("id") == cert_id for r in history):
                raise RegistryError(
                    f"calibration {cert_id} of device {device_id} is already in {self.path}",
                    hint="a certificate id is recorded once; make a new one for a new calibration",
                )
            history.append(record)

    def update_calibration(self, device_id: str, cert_id: str, **changes: Any) -> Record:
        """Change fields of a recorded certificate (its state, notes, ...); the updated record.
        Its id and device_id stay."""
        if "id" in changes or "device_id" in changes:
            raise ValueError("a certificate's id and device_id cannot change")
        with self._edit_all() as data:
            history = data.get("calibrations", {}).get(device_id.lower(), [])
            for record in history:
                if record.get("id") == cert_id:
                    record.update(changes)
                    return record
            raise RegistryError(
                f"no calibration {cert_id} of device {device_id} in {self.path}",
                hint=f"mote calibrate --show lists the certificates of {device_id}",
            )

    # ---- the lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError as exc:
            raise self._cannot("write", exc) from exc
        try:
            self._lock(fd)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                else:
                    import msvcrt

                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise RegistryError(
                        f"the registry {self.path} is locked by another mote process "
                        f"(waited {self.lock_timeout_s:g} s)",
                        hint="let the other mote command finish, then try again",
                    ) from None
                time.sleep(_LOCK_POLL_S)

    def _cannot(self, what: str, exc: OSError) -> RegistryError:
        why = exc.strerror or str(exc)
        return RegistryError(
            f"cannot {what} the registry {self.path}: {why}",
            hint="give a registry you can write with --registry FILE or MOTE_REGISTRY, or fix "
            f"the permissions of {self.path.parent}",
        )


def already_registered(record: Record) -> RegistryError:
    when = record.get("provisioned_at", "?")
    state = "registered" if record.get("state") == "complete" else "pending (not finished)"
    return RegistryError(
        f"device {record['device_id']} is already {state} since {when}",
        hint="add --force to provision it again with new keys (its record is kept in history)",
    )


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, the file readable by its owner only (0600)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def redact(record: Record) -> Record:
    """A copy of `record` without its keys (fingerprints stay), history included."""
    out = json.loads(json.dumps(record))
    for rec in [out, *out.get("history", [])]:
        for section, field in KEY_FIELDS:
            if isinstance(rec.get(section), dict):
                rec[section].pop(field, None)
    return out  # type: ignore[no-any-return]


def summary(record: Record) -> dict[str, Any]:
    """What `mote registry list` shows of a record: no keys."""
    lora = record.get("lorawan") or {}
    ble = record.get("bthome") or {}
    return {
        "device_id": record["device_id"],
        "board": record.get("board"),
        "fw": record.get("fw"),
        "state": record.get("state"),
        "provisioned_at": record.get("provisioned_at"),
        "radios": [r for r, part in (("ble", ble), ("lora", lora)) if part],
        "ble_address": ble.get("ble_address"),
        "lorawan_region": lora.get("region"),
        "lorawan_activation": lora.get("activation"),
        "dev_eui": lora.get("dev_eui"),
        "history": len(record.get("history", [])),
    }


# ---- exports ------------------------------------------------------------------------------


def export(
    records: Iterable[Record],
    fmt: str,
    *,
    region: str | None = None,
    activation: str | None = None,
    application_id: str = "",
    device_profile_id: str = "",
) -> str:
    """The complete records in one of FORMATS. Raises RegistryError when none qualifies."""
    done = [r for r in records if r.get("state") == "complete"]
    if fmt == "ha-bthome":
        chosen = [r for r in done if r.get("bthome")]
        what = "with a BTHome bind key"
    elif fmt in ("tts", "chirpstack"):
        chosen = [
            r
            for r in done
            if r.get("lorawan")
            and region in (None, r["lorawan"].get("region"))
            and activation in (None, r["lorawan"].get("activation"))
        ]
        what = "with LoRaWAN keys" + (f" for {region}" if region else "")
        what += f" ({activation.upper()})" if activation else ""
    else:
        raise ConfigError(f"unknown export format {fmt!r}", hint="one of " + ", ".join(FORMATS))
    if not chosen:
        raise RegistryError(
            f"no provisioned device {what} to export",
            hint="mote registry list shows what the registry holds",
        )
    chosen.sort(key=lambda r: r["device_id"])
    if fmt == "ha-bthome":
        return _ha_bthome(chosen)
    if fmt == "tts":
        return _tts(chosen)
    if not (application_id and device_profile_id):
        raise ConfigError(
            "a ChirpStack export needs --application-id and --device-profile-id",
            hint="copy both UUIDs from the ChirpStack web interface (the application's page and "
            "the device profile's page)",
        )
    return _chirpstack(chosen, application_id, device_profile_id)


def frequency_plan(lora: Record) -> str:
    """The Things Stack's frequency plan id for a record's region (and US915 sub-band)."""
    if lora.get("region") == "US915":
        return f"US_902_928_FSB_{lora.get('sub_band') or 2}"
    return "EU_863_870_TTN"


def _name(record: Record) -> str:
    return f"motekit-{record['device_id']}"


def _tts(records: list[Record]) -> str:
    # The Things Stack's end-device CSV: `;`-separated, a header row naming known columns.
    kinds = {r["lorawan"]["activation"] for r in records}
    if len(kinds) > 1:
        raise ConfigError(
            "these devices mix OTAA and ABP, which one The Things Stack CSV cannot hold (an "
            "empty app_key would still mark an ABP device as joining)",
            hint="export each kind on its own: --activation otaa, then --activation abp",
        )
    abp = kinds == {"abp"}
    head = ["id", "dev_eui", "join_eui", "name", "description", "frequency_plan_id",
            "lorawan_version", "lorawan_phy_version"]  # fmt: skip
    head += ["dev_addr", "app_s_key", "f_nwk_s_int_key"] if abp else ["app_key"]
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\n")
    w.writerow(head)
    for r in records:
        lora = r["lorawan"]
        row = [
            _name(r),
            lora["dev_eui"],
            lora.get("join_eui") or "0000000000000000",
            _name(r),
            f"{r.get('board')}, firmware {r.get('fw')}",
            frequency_plan(lora),
            TTS_MAC_VERSION,
            TTS_PHY_VERSION,
        ]
        # LoRaWAN 1.0.x: The Things Stack keeps the NwkSKey as the FNwkSIntKey.
        row += (
            [lora["dev_addr"], lora["app_s_key"], lora["nwk_s_key"]] if abp else [lora["app_key"]]
        )
        w.writerow(row)
    return out.getvalue()


def _chirpstack(records: list[Record], application_id: str, device_profile_id: str) -> str:
    # ChirpStack v4 has no import file: its API creates a device, then sets its keys (OTAA) or
    # activates it (ABP). Each device carries those requests' bodies for the REST API proxy.
    devices = []
    for r in records:
        lora = r["lorawan"]
        eui = lora["dev_eui"]
        device = {
            "devEui": eui,
            "name": _name(r),
            "description": f"{r.get('board')}, firmware {r.get('fw')}",
            "applicationId": application_id,
            "deviceProfileId": device_profile_id,
            "tags": {"motekit_device_id": r["device_id"], "motekit_board": str(r.get("board"))},
        }
        requests: list[dict[str, Any]] = [
            {"method": "POST", "path": "/api/devices", "body": {"device": device}}
        ]
        if lora["activation"] == "abp":
            device["joinEui"] = "0000000000000000"
            nwk = lora["nwk_s_key"]  # LoRaWAN 1.0.x: one NwkSKey in all three network keys
            activation = {
                "devEui": eui,
                "devAddr": lora["dev_addr"],
                "appSKey": lora["app_s_key"],
                "nwkSEncKey": nwk,
                "sNwkSIntKey": nwk,
                "fNwkSIntKey": nwk,
                "fCntUp": 0,
                "nFCntDown": 0,
                "aFCntDown": 0,
            }
            path = f"/api/devices/{eui}/activate"
            requests.append(
                {"method": "POST", "path": path, "body": {"deviceActivation": activation}}
            )
        else:
            device["joinEui"] = lora["join_eui"]
            # LoRaWAN 1.0.x: ChirpStack takes the AppKey in nwkKey.
            keys = {"devEui": eui, "nwkKey": lora["app_key"], "appKey": "0" * 32}
            path = f"/api/devices/{eui}/keys"
            requests.append({"method": "POST", "path": path, "body": {"deviceKeys": keys}})
        devices.append({"device_id": r["device_id"], "dev_eui": eui, "requests": requests})
    doc = {"format": "motekit-chirpstack-v4", "devices": devices}
    return json.dumps(doc, indent=2) + "\n"


def _ha_bthome(records: list[Record]) -> str:
    # What Home Assistant's BTHome integration asks for each discovered device: its Bluetooth
    # address (how the device shows up) and a 32-hex-digit bind key.
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["address", "bindkey", "device_id", "board", "note"])
    for r in records:
        ble = r["bthome"]
        address = ble.get("ble_address") or ""
        note = (
            ""
            if address
            else "Bluetooth address unknown for this board: find the device among Home "
            "Assistant's discovered BTHome devices"
        )
        w.writerow([address, ble["bind_key"], r["device_id"], r.get("board"), note])
    return out.getvalue()
