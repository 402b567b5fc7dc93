"""Provisioning: per-device radio keys made on the host, written to a node, checked, recorded.

    reg = Registry()
    reg.check_writable()                   # before the port is even opened
    with SerialTransport(port) as t:
        node = NodeClient(t)
        with node.session(wait_s=5):
            outcome = provision(node, reg, Options(lora=LoraOptions(region="EU868")))

Which keys a node gets follows its board's radios (or Options.radios): "ble" -> a BTHome bind
key, "lora" -> LoRaWAN keys and settings (OTAA: AppKey, the LoRaWAN 1.0.x root key; ABP: DevAddr,
NwkSKey, AppSKey). Keys come from `secrets.token_bytes`; the node gets them through its
write-only `secret` command (docs/protocol.md) and answers with fingerprints, which must match
the ones computed here, in its reply and again in a `secret list` read back.

Order, so nothing is lost: the registry is checked (writable, device not registered unless
force) before the node is written; a pending record with the keys is saved; the node is
written and read back; the record is marked complete. A failure in between leaves the pending
record, and running provision again resumes it with the same keys.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from host_tools.boards import RADIOS, Board, load_board
from host_tools.errors import ConfigError, MoteError, ProtocolError
from host_tools.registry import Record, Registry, already_registered, now_utc

KEY_BYTES = 16
REGIONS = ("EU868", "US915")
ACTIVATIONS = ("otaa", "abp")
US915_SUB_BAND = 2  # The Things Network's and most gateways' default in the US
JOIN_EUI = "0000000000000000"  # The Things Stack's JoinEUI for devices without a join server
# ABP DevAddr: NetID type 0, NwkID 0 (the NetIDs 000000/000001 are for private networks): the
# 25-bit NwkAddr is the whole address, 0x00000001..0x01FFFFFF.
DEV_ADDR_BITS = 25
# The node's secret names (firmware/motekit/secrets.py).
BINDKEY = "bthome.bindkey"
APPKEY = "lorawan.appkey"
NWKSKEY = "lorawan.nwkskey"
APPSKEY = "lorawan.appskey"
_SECRET_TIMEOUT_S = 4.0  # the node saves the file before it answers

_HEX = re.compile(r"[0-9a-fA-F]+")


class Node(Protocol):
    """What provisioning needs of a node: NodeClient.request, on a caught node."""

    def request(
        self, cmd: str, timeout: float = 2.0, retries: int = 2, **args: Any
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LoraOptions:
    region: str | None = None  # EU868 | US915; needed when LoRaWAN keys are made
    sub_band: int | None = None  # US915 only, 1..8 (default US915_SUB_BAND)
    abp: bool = False
    dev_eui: str | None = None  # hex; default: derived from the device id
    join_eui: str | None = None  # hex; default JOIN_EUI
    dev_addr: str | None = None  # hex, ABP; default: random under NwkID 0


@dataclass(frozen=True)
class Options:
    lora: LoraOptions = field(default_factory=LoraOptions)
    radios: tuple[str, ...] | None = None  # None: the board's own
    force: bool = False  # provision a registered device again, with new keys
    if_new: bool = False  # a registered device (or one without radios) is left alone


@dataclass
class Outcome:
    action: str  # "provisioned" | "resumed" (a pending record finished) | "skipped"
    device_id: str
    board: str
    fw: str
    record: Record | None  # the registry's record (None when skipped without one)
    reason: str = ""  # when skipped: "registered" | "no_radios"


# ---- rules --------------------------------------------------------------------------------


def fingerprint(key: bytes) -> str:
    """The node's fingerprint of a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def check_hex(text: str, n_bytes: int, what: str) -> str:
    """`text` as lower-case hex of exactly n_bytes bytes (':' and '-' allowed), else
    ConfigError naming `what`."""
    digits = text.replace(":", "").replace("-", "").strip()
    if len(digits) != 2 * n_bytes or not _HEX.fullmatch(digits):
        raise ConfigError(
            f"{what} must be {2 * n_bytes} hex digits ({n_bytes} bytes), not {text!r}"
        )
    return digits.lower()


def parse_radios(text: str) -> tuple[str, ...]:
    """`ble,lora` -> ("ble", "lora"); ConfigError for anything else."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in RADIOS]
    if bad:
        raise ConfigError(
            f"--radios: unknown radio {bad[0]!r}",
            hint="a comma-separated list of " + ", ".join(RADIOS),
        )
    return names


def bluetooth_mac(base: bytes) -> bytes:
    """An ESP32-family chip's Bluetooth address: its base MAC (machine.unique_id()) plus 2, as
    ESP-IDF's esp_read_mac derives it (the virtual board's BLE uses the same rule)."""
    return ((int.from_bytes(base[:6], "big") + 2) % (1 << 48)).to_bytes(6, "big")


def ble_address(device_id: str, board: Board) -> str | None:
    """The node's Bluetooth address as Home Assistant shows it (AA:BB:...), None when this
    board's address cannot be known from its device id (RP2 boards)."""
    if board["port"] != "esp32":
        return None
    mac = bluetooth_mac(bytes.fromhex(device_id))
    return ":".join(f"{b:02X}" for b in mac)


def dev_eui_for(device_id: str, board: Board) -> str:
    """The DevEUI a node gets unless --dev-eui says otherwise.

    ESP32 family: the base MAC widened to EUI-64 by FF FE after the OUI (IEEE's MAC-48 to
    EUI-64 mapping), unique under Espressif's OUI. RP2040: its flash chip's 8-byte unique id is
    not an IEEE-assigned identifier, so it is marked locally administered (bit 0x02 of the first
    byte set, and 0x01 cleared: an individual, not a group, address); production fleets should
    pass --dev-eui from their own IEEE block.
    """
    raw = bytes.fromhex(device_id)
    if board["port"] == "esp32" and len(raw) == 6:
        return (raw[:3] + b"\xff\xfe" + raw[3:]).hex()
    if board["port"] == "rp2" and len(raw) == 8:
        return (bytes([(raw[0] & 0xFC) | 0x02]) + raw[1:]).hex()
    raise ConfigError(
        f"no DevEUI rule for a {len(raw)}-byte device id on a {board['port']} board",
        hint="give the DevEUI with --dev-eui HEX",
    )


def random_dev_addr() -> str:
    return f"{secrets.randbelow((1 << DEV_ADDR_BITS) - 1) + 1:08x}"


# ---- the plan: a pending record ----------------------------------------------------------------


def check_lora_options(lo: LoraOptions) -> None:
    """ConfigError for options that contradict each other (before anything is touched)."""
    if lo.region is not None and lo.region not in REGIONS:
        raise ConfigError(
            f"--lorawan-region must be one of {', '.join(REGIONS)}, not {lo.region!r}"
        )
    if lo.sub_band is not None:
        if lo.region != "US915":
            raise ConfigError("--sub-band is for US915 only", hint="add --lorawan-region US915")
        if not 1 <= lo.sub_band <= 8:
            raise ConfigError(f"--sub-band must be 1..8, not {lo.sub_band}")
    if lo.dev_addr is not None and not lo.abp:
        raise ConfigError("--dev-addr is for ABP", hint="add --abp, or leave --dev-addr out")
    if lo.join_eui is not None and lo.abp:
        raise ConfigError("--join-eui is for OTAA (ABP devices do not join)")
    for text, n, what in ((lo.dev_eui, 8, "--dev-eui"), (lo.join_eui, 8, "--join-eui"),
                          (lo.dev_addr, 4, "--dev-addr")):  # fmt: skip
        if text is not None:
            check_hex(text, n, what)


def plan(info: dict[str, Any], board: Board, radios: tuple[str, ...], lo: LoraOptions) -> Record:
    """A pending record for the node `info` describes: fresh keys for `radios`, their
    fingerprints, and the LoRaWAN settings."""
    device_id = _device_id(info, board)
    record: Record = {
        "device_id": device_id,
        "board": board["name"],
        "fw": info.get("fw"),
        "provisioned_at": now_utc(),
        "state": "pending",
    }
    keys: dict[str, bytes] = {}
    if "ble" in radios:
        keys[BINDKEY] = new_key()
        address = ble_address(device_id, board)
        record["bthome"] = {"bind_key": keys[BINDKEY].hex(), "ble_address": address}
    if "lora" in radios:
        if lo.region is None:
            raise ConfigError(
                f"{board['name']} gets LoRaWAN keys: which region's frequencies does it use?",
                hint="add --lorawan-region EU868 or --lorawan-region US915",
            )
        dev_eui = (
            check_hex(lo.dev_eui, 8, "--dev-eui") if lo.dev_eui else dev_eui_for(device_id, board)
        )
        lora: Record = {
            "region": lo.region,
            "sub_band": (lo.sub_band or US915_SUB_BAND) if lo.region == "US915" else None,
            "activation": "abp" if lo.abp else "otaa",
            "dev_eui": dev_eui,
        }
        if lo.abp:
            keys[NWKSKEY], keys[APPSKEY] = new_key(), new_key()
            addr = check_hex(lo.dev_addr, 4, "--dev-addr") if lo.dev_addr else random_dev_addr()
            lora |= {"join_eui": None, "dev_addr": addr, "nwk_s_key": keys[NWKSKEY].hex(),
                     "app_s_key": keys[APPSKEY].hex()}  # fmt: skip
        else:
            keys[APPKEY] = new_key()
            join = check_hex(lo.join_eui, 8, "--join-eui") if lo.join_eui else JOIN_EUI
            lora |= {"join_eui": join, "app_key": keys[APPKEY].hex()}
        record["lorawan"] = lora
    record["fingerprints"] = {name: fingerprint(key) for name, key in keys.items()}
    return record


def record_secrets(record: Record) -> dict[str, str]:
    """The node's secret name -> key (hex) that `record` holds."""
    out = {}
    ble, lora = record.get("bthome") or {}, record.get("lorawan") or {}
    if ble:
        out[BINDKEY] = ble["bind_key"]
    if lora.get("activation") == "abp":
        out[NWKSKEY], out[APPSKEY] = lora["nwk_s_key"], lora["app_s_key"]
    elif lora:
        out[APPKEY] = lora["app_key"]
    return out


def record_settings(record: Record) -> dict[str, Any]:
    """The node's config keys and values for `record`'s LoRaWAN part ({} without one)."""
    lora = record.get("lorawan")
    if not lora:
        return {}
    abp = lora["activation"] == "abp"
    out: dict[str, Any] = {
        "lorawan_region": lora["region"],
        "lorawan_activation": lora["activation"],
        "lorawan_dev_eui": lora["dev_eui"],
        "lorawan_join_eui": "" if abp else lora["join_eui"],
        "lorawan_dev_addr": lora["dev_addr"] if abp else "",
    }
    if lora["region"] == "US915":
        out["lorawan_sub_band"] = lora["sub_band"]
    return out


def _device_id(info: dict[str, Any], board: Board) -> str:
    device_id = info.get("device_id")
    n = board["unique_id_bytes"]
    if not (isinstance(device_id, str) and len(device_id) == 2 * n and _HEX.fullmatch(device_id)):
        raise ProtocolError(
            f"the node's device id {device_id!r} is not {n} bytes of hex, as {board['name']} has",
            err="bad_reply",
        )
    return device_id.lower()


# ---- writing to the node ------------------------------------------------------------------


def check_firmware(node: Node, record: Record) -> None:
    """Refuse, before anything is written, a firmware without the LoRaWAN settings."""
    if not record.get("lorawan"):
        return
    try:
        node.request("config", op="get", key="lorawan_region")
    except ProtocolError as exc:
        if exc.err != "bad_key":
            raise
        raise ProtocolError(
            "the node's firmware has no LoRaWAN settings (lorawan_region is unknown to it)",
            hint="deploy a current Motekit firmware to the node, then provision it",
            err="bad_key",
        ) from exc


def write(node: Node, record: Record) -> dict[str, str]:
    """Write `record`'s settings and keys to the node and check them: each `secret set` reply
    and a `secret list` afterwards must show the fingerprints computed here. Returns them."""
    for key, value in record_settings(record).items():
        stored = node.request("config", op="set", key=key, value=value).get("value")
        if str(stored).lower() != str(value).lower():
            raise ProtocolError(
                f"the node stored {key} = {stored!r}, not {value!r}", err="bad_reply"
            )
    want = {}
    for name, hexkey in record_secrets(record).items():
        want[name] = fingerprint(bytes.fromhex(hexkey))
        got = node.request("secret", timeout=_SECRET_TIMEOUT_S, op="set", name=name, value=hexkey)
        _compare(name, want[name], got.get("fingerprint"), "in its reply")
    listed = node.request("secret", op="list").get("secrets")
    if not isinstance(listed, dict):
        raise ProtocolError("the node's secret list has no secrets object", err="bad_reply")
    for name, fp in want.items():
        _compare(name, fp, listed.get(name), "when read back")
    return want


def _compare(name: str, want: str, got: Any, where: str) -> None:
    if got != want:
        raise ProtocolError(
            f"fingerprint mismatch for {name} {where}: the node has {got!r}, the host wrote {want}",
            err="bad_fingerprint",
        )


# ---- the whole job ------------------------------------------------------------------------------


def provision(node: Node, registry: Registry, opts: Options) -> Outcome:
    """Provision the caught `node` and record it in `registry` (see the module's comment)."""
    check_lora_options(opts.lora)
    registry.check_writable()
    info = node.request("info")
    board = load_board(str(info.get("board")))
    device_id = _device_id(info, board)
    fw = str(info.get("fw"))
    old = registry.get(device_id)
    resume = old is not None and old.get("state") == "pending" and not opts.force
    if old is not None and not resume:
        if opts.if_new:
            return Outcome("skipped", device_id, board["name"], fw, old, reason="registered")
        if not opts.force:
            raise already_registered(old)
    if resume:
        assert old is not None
        record = old
    else:
        radios = opts.radios if opts.radios is not None else tuple(board["radios"])
        if not radios:
            if opts.if_new:
                return Outcome("skipped", device_id, board["name"], fw, None, reason="no_radios")
            raise ConfigError(
                f"{board['name']} has no radio: there are no keys to provision",
                hint="a bench with a radio module wired to it: add --radios ble,lora (those "
                "it has)",
            )
        record = plan(info, board, radios, opts.lora)
    check_firmware(node, record)
    if not resume:
        registry.add_pending(record, force=opts.force)
    try:
        fingerprints = write(node, record)
    except MoteError as exc:
        again = (
            f"the keys are kept as pending in {registry.path}: run mote provision again to "
            "write the same keys and check them"
        )
        exc.hint = f"{exc.hint}; {again}" if exc.hint else again
        raise
    done = registry.complete(device_id, fingerprints)
    return Outcome("resumed" if resume else "provisioned", device_id, board["name"], fw, done)
