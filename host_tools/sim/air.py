"""The virtual air: the loopback medium that carries virtual boards' radio frames.

Each participant is a UDP socket bound to 127.0.0.1 plus a small JSON file, named after its port,
in the air's registry directory. Virtual-board supervisors join as an `AirNode`, host tools (a
BTHome decoder, a LoRaWAN gateway bridge, `mote air listen`) as an `AirListener`. A sender lists
the registry and sends each frame, as one datagram, to every other participant that wants it.
Nothing leaves the machine: sockets bind to 127.0.0.1 and send to 127.0.0.1, never elsewhere.

    air = Air("bench")  # or MOTE_AIR=bench; the registry is under MOTE_AIR_DIR if set
    with AirNode(air, "node-1") as node, AirListener(air, kinds=["ble-adv"]) as listener:
        node.send(Frame("node-1", b"\\x02\\x01\\x06", BleAdvMeta("AA:BB:CC:DD:EE:01")))
        frame = listener.recv(timeout_s=1.0)

The frame format is a contract versioned by the header's `v`; docs/virtual-air.md describes it.
No threads: every participant is a non-blocking socket for the caller's own select loop.
"""

import atexit
import dataclasses
import json
import math
import os
import re
import select
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from host_tools.errors import ConfigError, SimError

FORMAT_VERSION: Final = 1
KIND_BLE_ADV: Final = "ble-adv"
KIND_LORA: Final = "lora"
KINDS: Final = (KIND_BLE_ADV, KIND_LORA)

# Legacy advertising AdvData limit (Bluetooth Core 5.x, Vol 6 Part B, 2.3.1).
BLE_ADV_MAX_PAYLOAD: Final = 31
# SX126x/SX127x FIFO and PayloadLength register limit.
LORA_MAX_PAYLOAD: Final = 255

# BLE address and advertising types, numbered as MicroPython's _IRQ_SCAN_RESULT reports them.
ADDR_PUBLIC: Final = 0
ADDR_RANDOM: Final = 1
ADV_IND: Final = 0
ADV_DIRECT_IND: Final = 1
ADV_SCAN_IND: Final = 2
ADV_NONCONN_IND: Final = 3
SCAN_RSP: Final = 4

# LoRa bandwidths in Hz, as the SX1276 datasheet names them (RegModemConfig1); SX126x has the
# same ten (SX1262 datasheet 13.4.5), quoted there as 7.81 kHz etc.: a model rounds to these.
LORA_BANDWIDTHS_HZ: Final = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
LORA_CODING_RATES: Final = ("4/5", "4/6", "4/7", "4/8")
LORA_SF_RANGE: Final = range(5, 13)  # SF5/SF6 only on SX126x; the radio model narrows it
LORA_FREQ_RANGE_HZ: Final = range(137_000_000, 1_020_000_001)  # SX127x 137-1020 MHz covers SX126x

_LOOPBACK: Final = "127.0.0.1"  # the only address the air ever binds to or sends to
_MAX_HEADER_BYTES: Final = 1024
_MAX_DATAGRAM_BYTES: Final = _MAX_HEADER_BYTES + 1 + LORA_MAX_PAYLOAD
_RECV_BUFFER_BYTES: Final = 1 << 20  # so a burst from many boards is not dropped by the kernel
_REGISTRY_MAX_AGE_S: Final = 2.0  # re-list at least this often, to purge dead participants
# A directory changed less than this long ago may change again without its mtime moving (the
# kernel stamps mtimes from a coarse clock), so such a listing is not trusted ("racy git").
_REGISTRY_RACY_S: Final = 1.0

_AIR_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # one safe path component
_ID_RE: Final = re.compile(r"[!-~]{1,64}")  # node ids: printable ASCII without spaces
_MAC_RE: Final = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")
_ENTRY_RE: Final = re.compile(r"([0-9]{1,5})\.json")

_COMMON_FIELDS: Final = ("v", "kind", "src", "seq", "t_sim_ms", "t_wall")
_BLE_FIELDS: Final = ("addr", "addr_type", "adv_type", "rssi_dbm")
_LORA_FIELDS: Final = ("freq_hz", "sf", "bw_hz", "cr", "rssi_dbm", "snr_db", "dir")

# Registry channels: what a participant wants senders to send it.
_CH_BLE_ADV: Final = "ble-adv"  # every BLE advertisement
_CH_LORA_UP: Final = "lora-up"  # every LoRa uplink; "lora-up:<freq_hz>:<sf>" for one channel
_CH_LORA_DOWN: Final = "lora-down"  # "lora-down:<node_id>": downlinks to that node
# Every downlink a board's radio transmits (dst null): nodes hear them on any channel and their
# radio model keeps what it is tuned to (docs/virtual-air.md, "Board downlinks").
_CH_LORA_DOWN_ANY: Final = "lora-down"
_MAX_T_SIM_OF: Final = 16  # node clocks a board downlink may name (the header stays < 1 KiB)

ROLE_NODE: Final = "node"
ROLE_LISTENER: Final = "listener"


class AirFrameError(ValueError):
    """A datagram or a Frame that breaks the air frame format."""


class AirError(SimError):
    """The air's registry directory or loopback socket could not be used."""


# ---------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class BleAdvMeta:
    """How a BLE advertisement went out: who sent it and how strong it arrives."""

    addr: str  # "AA:BB:CC:DD:EE:FF", upper case
    addr_type: int = ADDR_PUBLIC
    adv_type: int = ADV_IND
    rssi_dbm: int = -60


@dataclass(frozen=True)
class LoraMeta:
    """How a LoRa packet went out. `dst` names the node a downlink is for (None on uplinks, and
    on a board's downlink, which goes to every node). `t_sim_of` (board downlinks only) gives
    the frame's start on the clocks of the nodes the sending board heard recently: pairs
    (node_id, t_sim_ms), sorted; None on every other frame (and then absent from the header).
    """

    freq_hz: int
    sf: int
    bw_hz: int = 125_000
    cr: str = "4/5"
    rssi_dbm: float = -80.0
    snr_db: float = 7.5
    dir: Literal["up", "down"] = "up"
    dst: str | None = None
    t_sim_of: tuple[tuple[str, int], ...] | None = None
    t_wall_start: float | None = None  # a board's uplink: time.time() when its TX started


@dataclass(frozen=True)
class Frame:
    """One radio frame on the air. `kind` follows from the type of `meta`.

    `t_sim_ms` is the sender's simulated clock, or None when the sender has none (a host tool).
    Senders stamp `seq` and `t_wall` themselves (AirNode.send, AirListener.send_downlink).
    """

    src: str
    payload: bytes
    meta: BleAdvMeta | LoraMeta
    t_sim_ms: int | None = 0
    seq: int = 0
    t_wall: float = 0.0

    @property
    def kind(self) -> str:
        return KIND_LORA if isinstance(self.meta, LoraMeta) else KIND_BLE_ADV

    def header(self) -> dict[str, Any]:
        """The header fields, in wire order: the JSON contract of docs/virtual-air.md."""
        head: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "kind": self.kind,
            "src": self.src,
            "seq": self.seq,
            "t_sim_ms": self.t_sim_ms,
            "t_wall": self.t_wall,
        }
        head.update(dataclasses.asdict(self.meta))
        if isinstance(self.meta, LoraMeta):
            # Fields added within v1: only where they mean something.
            if self.meta.t_sim_of is None:
                del head["t_sim_of"]
            else:
                head["t_sim_of"] = dict(self.meta.t_sim_of)
            if self.meta.t_wall_start is None:
                del head["t_wall_start"]
        return head

    def encode(self) -> bytes:
        """The datagram: compact JSON header, b"\\n", raw payload. AirFrameError if invalid."""
        _check_frame(self)
        head = json.dumps(self.header(), separators=(",", ":"), allow_nan=False).encode()
        if len(head) > _MAX_HEADER_BYTES:
            raise AirFrameError(f"header is {len(head)} bytes, limit {_MAX_HEADER_BYTES}")
        return head + b"\n" + self.payload

    @classmethod
    def decode(cls, datagram: bytes) -> "Frame":
        """Parse and validate one datagram. AirFrameError says what is wrong with it."""
        if len(datagram) > _MAX_DATAGRAM_BYTES:
            raise AirFrameError(
                f"datagram is {len(datagram)} bytes, longer than any frame ({_MAX_DATAGRAM_BYTES})"
            )
        raw_head, newline, payload = datagram.partition(b"\n")
        if not newline:
            raise AirFrameError("no header line (a frame is a JSON header, b'\\n', the payload)")
        if len(raw_head) > _MAX_HEADER_BYTES:
            raise AirFrameError(f"header is {len(raw_head)} bytes, limit {_MAX_HEADER_BYTES}")
        try:
            head = json.loads(raw_head, parse_constant=_reject_constant)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise AirFrameError(f"header is not JSON: {exc}") from None
        except RecursionError:  # "[[[[...": deep nesting is no header either
            raise AirFrameError("header is not JSON: nested too deeply") from None
        if not isinstance(head, dict):
            raise AirFrameError(f"header is a JSON {type(head).__name__}, not an object")
        version = head.get("v")
        if not _is_int(version) or version != FORMAT_VERSION:
            raise AirFrameError(
                f"format version {version!r} is not supported (this reader knows v{FORMAT_VERSION})"
            )
        kind = head.get("kind")
        required: tuple[str, ...]
        if kind == KIND_BLE_ADV:
            required = _COMMON_FIELDS + _BLE_FIELDS
        elif kind == KIND_LORA:
            required = _COMMON_FIELDS + _LORA_FIELDS
        else:
            raise AirFrameError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        missing = [name for name in required if name not in head]
        if missing:
            raise AirFrameError(f"{kind} header lacks {', '.join(missing)}")
        meta: BleAdvMeta | LoraMeta
        if kind == KIND_BLE_ADV:
            meta = BleAdvMeta(head["addr"], head["addr_type"], head["adv_type"], head["rssi_dbm"])
        else:
            meta = LoraMeta(
                head["freq_hz"],
                head["sf"],
                head["bw_hz"],
                head["cr"],
                head["rssi_dbm"],
                head["snr_db"],
                head["dir"],
                head.get("dst"),
                _t_sim_of(head.get("t_sim_of")),
                head.get("t_wall_start"),
            )
        frame = cls(head["src"], payload, meta, head["t_sim_ms"], head["seq"], head["t_wall"])
        _check_frame(frame)
        return frame


def _t_sim_of(value: object) -> tuple[tuple[str, int], ...] | None:
    # The header's {"node-1": 1234, ...} as LoraMeta holds it; _check_lora checks the values.
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AirFrameError(f"t_sim_of {value!r} is not an object of node id -> t_sim_ms")
    return tuple(sorted(value.items()))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _check_id(what: str, value: object) -> None:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise AirFrameError(f"{what} {value!r} is not 1-64 printable ASCII characters")


def _check_frame(frame: Frame) -> None:
    # One validator for both directions, so encode refuses exactly what decode would reject.
    _check_id("src", frame.src)
    if not _is_int(frame.seq) or frame.seq < 0:
        raise AirFrameError(f"seq {frame.seq!r} is not a non-negative integer")
    if frame.t_sim_ms is not None and (not _is_int(frame.t_sim_ms) or frame.t_sim_ms < 0):
        raise AirFrameError(f"t_sim_ms {frame.t_sim_ms!r} is not a non-negative integer or null")
    if not _is_number(frame.t_wall):
        raise AirFrameError(f"t_wall {frame.t_wall!r} is not a number")
    if not isinstance(frame.payload, bytes):
        raise AirFrameError(f"payload is {type(frame.payload).__name__}, not bytes")
    meta = frame.meta
    if isinstance(meta, BleAdvMeta):
        _check_ble(meta, len(frame.payload))
    elif isinstance(meta, LoraMeta):
        _check_lora(meta, len(frame.payload))
    else:
        raise AirFrameError(f"meta is {type(meta).__name__}, not BleAdvMeta or LoraMeta")


def _check_ble(meta: BleAdvMeta, size: int) -> None:
    if size > BLE_ADV_MAX_PAYLOAD:
        raise AirFrameError(
            f"ble-adv payload is {size} bytes, limit {BLE_ADV_MAX_PAYLOAD} (legacy advertising)"
        )
    if not isinstance(meta.addr, str) or not _MAC_RE.fullmatch(meta.addr):
        raise AirFrameError(f"addr {meta.addr!r} is not an upper-case MAC like 'AA:BB:CC:DD:EE:FF'")
    if not _is_int(meta.addr_type) or meta.addr_type not in (ADDR_PUBLIC, ADDR_RANDOM):
        raise AirFrameError(f"addr_type {meta.addr_type!r} is not 0 (public) or 1 (random)")
    if not _is_int(meta.adv_type) or not ADV_IND <= meta.adv_type <= SCAN_RSP:
        raise AirFrameError(f"adv_type {meta.adv_type!r} is not 0-4 (ADV_IND..SCAN_RSP)")
    if not _is_int(meta.rssi_dbm) or not -127 <= meta.rssi_dbm <= 20:
        raise AirFrameError(f"rssi_dbm {meta.rssi_dbm!r} is not an integer in -127..20")


def _check_lora(meta: LoraMeta, size: int) -> None:
    if size > LORA_MAX_PAYLOAD:
        raise AirFrameError(f"lora payload is {size} bytes, limit {LORA_MAX_PAYLOAD}")
    if not _is_int(meta.freq_hz) or meta.freq_hz not in LORA_FREQ_RANGE_HZ:
        raise AirFrameError(f"freq_hz {meta.freq_hz!r} is not an integer in 137-1020 MHz")
    if not _is_int(meta.sf) or meta.sf not in LORA_SF_RANGE:
        raise AirFrameError(f"sf {meta.sf!r} is not an integer in 5..12")
    if not _is_int(meta.bw_hz) or meta.bw_hz not in LORA_BANDWIDTHS_HZ:
        raise AirFrameError(f"bw_hz {meta.bw_hz!r} is not one of {LORA_BANDWIDTHS_HZ}")
    if meta.cr not in LORA_CODING_RATES:
        raise AirFrameError(f"cr {meta.cr!r} is not one of {', '.join(LORA_CODING_RATES)}")
    if not _is_number(meta.rssi_dbm) or not -200 <= meta.rssi_dbm <= 30:
        raise AirFrameError(f"rssi_dbm {meta.rssi_dbm!r} is not a number in -200..30")
    if not _is_number(meta.snr_db) or not -40 <= meta.snr_db <= 40:
        raise AirFrameError(f"snr_db {meta.snr_db!r} is not a number in -40..40")
    if meta.dir == "down":
        if meta.dst is not None:
            _check_id("dst", meta.dst)
    elif meta.dir == "up":
        if meta.dst is not None:
            raise AirFrameError(f"dst {meta.dst!r} on an uplink (only downlinks have one)")
    else:
        raise AirFrameError(f"dir {meta.dir!r} is not 'up' or 'down'")
    if meta.t_wall_start is not None and (meta.dir != "up" or not _is_number(meta.t_wall_start)):
        raise AirFrameError(f"t_wall_start {meta.t_wall_start!r}: only a number, on an uplink")
    if meta.t_sim_of is not None:
        if meta.dir != "down" or meta.dst is not None:
            raise AirFrameError("t_sim_of on a frame that is not a board downlink (dst null)")
        if not isinstance(meta.t_sim_of, tuple) or len(meta.t_sim_of) > _MAX_T_SIM_OF:
            raise AirFrameError(f"t_sim_of names more than {_MAX_T_SIM_OF} nodes")
        for pair in meta.t_sim_of:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise AirFrameError(f"t_sim_of entry {pair!r} is not (node id, t_sim_ms)")
            _check_id("t_sim_of node id", pair[0])
            if not _is_int(pair[1]) or pair[1] < 0:
                raise AirFrameError(f"t_sim_of[{pair[0]!r}] {pair[1]!r} is not an integer >= 0")


def _wants(channels: frozenset[str], frame: Frame) -> bool:
    # Sender-side routing: does a participant registered with `channels` want `frame`?
    meta = frame.meta
    if isinstance(meta, BleAdvMeta):
        return _CH_BLE_ADV in channels
    if meta.dir == "down":
        if meta.dst is None:
            return _CH_LORA_DOWN_ANY in channels
        return f"{_CH_LORA_DOWN}:{meta.dst}" in channels
    return _CH_LORA_UP in channels or f"{_CH_LORA_UP}:{meta.freq_hz}:{meta.sf}" in channels


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Peer:
    """One participant as its registry file describes it."""

    port: int
    pid: int
    role: str
    node_id: str | None
    channels: frozenset[str]


def default_root() -> Path:
    """Where airs live: $MOTE_AIR_DIR, $XDG_RUNTIME_DIR/motekit-air or /tmp/motekit-air-<uid>."""
    if env := os.environ.get("MOTE_AIR_DIR"):
        return Path(env)
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "motekit-air"
    return Path("/tmp") / f"motekit-air-{os.getuid()}"


def _private_dir(path: Path) -> None:
    # Only this user may register on an air: anyone who can write the registry can make senders
    # deliver frames to an arbitrary loopback port.
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise AirError(f"cannot create the air registry {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise AirError(f"air registry {path} is not a directory (a symlink?)")
    if info.st_uid != os.getuid():
        raise AirError(
            f"air registry {path} belongs to uid {info.st_uid}, not to you ({os.getuid()})",
            hint="set MOTE_AIR_DIR to a directory of your own",
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _parse_entry(port: int, text: str) -> Peer | None:
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    pid, role, node_id, channels = (entry.get(k) for k in ("pid", "role", "node_id", "channels"))
    if entry.get("port") != port or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if role not in (ROLE_NODE, ROLE_LISTENER) or not isinstance(channels, list):
        return None
    if node_id is not None and not isinstance(node_id, str):
        return None
    return Peer(port, pid, role, node_id, frozenset(c for c in channels if isinstance(c, str)))


class Air:
    """A named shared medium: the registry directory `<root>/<name>/` of its participants.

    `name` defaults to $MOTE_AIR, then "default"; `root` to default_root().
    """

    def __init__(self, name: str | None = None, root: str | os.PathLike[str] | None = None) -> None:
        self.name = name or os.environ.get("MOTE_AIR") or "default"
        if not _AIR_NAME_RE.fullmatch(self.name) or self.name in (".", ".."):
            raise ConfigError(
                f"air name {self.name!r} is not 1-64 letters, digits, '.', '_' or '-'",
                hint="pick a plain name such as 'default' or 'bench1'",
            )
        root_dir = Path(root) if root is not None else default_root()
        self.path = root_dir / self.name
        _private_dir(root_dir)
        _private_dir(self.path)
        self._peers: list[Peer] = []
        self._listed_mtime_ns: int | None = None
        self._listed_at = -math.inf

    def __repr__(self) -> str:
        return f"Air({self.name!r}, root={str(self.path.parent)!r})"

    def peers(self, refresh: bool = False) -> list[Peer]:
        """Live participants. Cached until the directory changes; dead ones are purged."""
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return []
        now = time.time()
        if (
            not refresh
            and mtime_ns == self._listed_mtime_ns
            and now - self._listed_at < _REGISTRY_MAX_AGE_S
            and now - mtime_ns / 1e9 > _REGISTRY_RACY_S
        ):
            return self._peers
        peers = []
        for entry in os.scandir(self.path):
            match = _ENTRY_RE.fullmatch(entry.name)
            if not match:
                continue
            try:
                text = Path(entry.path).read_text(encoding="utf-8")
            except (FileNotFoundError, UnicodeDecodeError):
                continue  # closed while we listed, or not ours to read
            peer = _parse_entry(int(match.group(1)), text)
            if peer is None:
                continue  # not a registration this version understands: leave it alone
            if not _pid_alive(peer.pid):
                Path(entry.path).unlink(missing_ok=True)  # its process died without closing
                continue
            peers.append(peer)
        peers.sort(key=lambda p: p.port)
        self._peers, self._listed_mtime_ns, self._listed_at = peers, mtime_ns, now
        return peers

    def node_ids(self) -> list[str]:
        """The ids of the virtual boards on this air now."""
        return sorted({p.node_id for p in self.peers() if p.role == ROLE_NODE and p.node_id})

    def _register(self, port: int, role: str, node_id: str | None, channels: set[str]) -> None:
        entry = {
            "port": port,
            "pid": os.getpid(),
            "role": role,
            "node_id": node_id,
            "channels": sorted(channels),
        }
        final = self.path / f"{port}.json"
        temp = self.path / f".{port}.json.tmp"  # written whole, then renamed: never read half
        try:
            temp.write_text(json.dumps(entry) + "\n", encoding="utf-8")
            os.replace(temp, final)
        except OSError as exc:
            raise AirError(f"cannot register on air {self.name!r}: {exc}") from exc
        self._listed_mtime_ns = None

    def _unregister(self, port: int) -> None:
        (self.path / f"{port}.json").unlink(missing_ok=True)
        self._listed_mtime_ns = None


# ---------------------------------------------------------------------------------------------
# Participants


class _Participant:
    """A loopback UDP socket registered on an air. Not thread-safe; no threads inside."""

    def __init__(self, air: Air, role: str, node_id: str | None, channels: set[str]) -> None:
        self.air = air
        self.malformed = 0  # datagrams that were not valid frames, skipped
        self.last_malformed: str | None = None  # why the last one was skipped
        self.send_failures = 0  # datagrams the kernel refused to send
        self._seq = 0
        self._closed = True
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER_BYTES)
            sock.bind((_LOOPBACK, 0))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise AirError(f"cannot open a loopback UDP socket: {exc}") from exc
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._role, self._node_id, self._channels = role, node_id, channels
        try:
            air._register(self.port, role, node_id, channels)
        except AirError:
            sock.close()
            raise
        self._closed = False
        atexit.register(self.close)

    def fileno(self) -> int:
        """The socket, for select(): readable when a datagram is waiting."""
        return self._sock.fileno()

    def close(self) -> None:
        """Leave the air: remove the registration, then close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.air._unregister(self.port)
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _set_channels(self, channels: set[str]) -> None:
        if channels != self._channels:
            self._channels = channels
            self.air._register(self.port, self._role, self._node_id, channels)

    def _stamp(self, frame: Frame) -> Frame:
        stamped = dataclasses.replace(frame, seq=self._seq, t_wall=time.time())
        data = stamped.encode()  # validates before anything is counted or sent
        self._seq += 1
        for peer in self.air.peers():
            if peer.port == self.port or not _wants(peer.channels, stamped):
                continue
            try:
                self._sock.sendto(data, (_LOOPBACK, peer.port))
            except OSError:
                self.send_failures += 1  # like a frame lost in the air; the count shows it
        return stamped

    def _next_frame(self) -> Frame | None:
        # Read waiting datagrams until one is a valid frame this participant accepts.
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                return None
            except ConnectionRefusedError:
                continue  # an ICMP error left over from an earlier send
            try:
                frame = Frame.decode(data)
            except AirFrameError as exc:
                self.malformed += 1
                self.last_malformed = str(exc)
                continue
            if self._accepts(frame):
                return frame

    def _accepts(self, frame: Frame) -> bool:
        raise NotImplementedError


class AirNode(_Participant):
    """A virtual board's radio on the air; its supervisor sends and polls frames through it.

    It receives LoRa downlinks addressed to `node_id`, every board's downlinks (dst None: a
    gateway-role board answering), and, once `set_lora_rx()` has chosen a channel, other
    nodes' LoRa uplinks on that frequency and spreading factor.
    """

    def __init__(self, air: Air, node_id: str) -> None:
        try:
            _check_id("node id", node_id)
        except AirFrameError as exc:
            raise ConfigError(str(exc)) from None
        for peer in air.peers(refresh=True):
            if peer.role == ROLE_NODE and peer.node_id == node_id:
                raise AirError(
                    f"node {node_id!r} is already on air {air.name!r} (pid {peer.pid})",
                    hint="give each virtual board its own node id, or use another air",
                )
        self.node_id = node_id
        self.lora_rx: tuple[int, int] | None = None
        super().__init__(air, ROLE_NODE, node_id, self._lora_channels(node_id, None))

    def __repr__(self) -> str:
        return f"AirNode({self.air.name!r}, {self.node_id!r}, port={self.port})"

    def set_lora_rx(self, freq_hz: int | None, sf: int | None = None) -> None:
        """Receive other nodes' LoRa uplinks on (freq_hz, sf); None stops that."""
        if freq_hz is None:
            self.lora_rx = None
        else:
            if sf is None:
                raise ValueError("set_lora_rx needs sf with freq_hz")
            self.lora_rx = (freq_hz, sf)
        self._set_channels(self._lora_channels(self.node_id, self.lora_rx))

    @staticmethod
    def _lora_channels(node_id: str, rx: tuple[int, int] | None) -> set[str]:
        channels = {f"{_CH_LORA_DOWN}:{node_id}", _CH_LORA_DOWN_ANY}
        if rx is not None:
            channels.add(f"{_CH_LORA_UP}:{rx[0]}:{rx[1]}")
        return channels

    def send(self, frame: Frame) -> Frame:
        """Transmit `frame` to every participant that wants it; returns it as sent.

        Stamps `seq` (counting from 0 per node) and `t_wall`. AirFrameError if the frame is
        invalid (oversize payload, bad metadata); ValueError if it is not this node's: its
        uplinks, or downlinks its radio transmits (dst None: a board cannot address a node).
        """
        if frame.src != self.node_id:
            raise ValueError(f"frame src {frame.src!r} is not this node ({self.node_id!r})")
        if isinstance(frame.meta, LoraMeta) and frame.meta.dir == "down" and frame.meta.dst:
            raise ValueError("a node sends uplinks and unaddressed downlinks only (dst=None)")
        return self._stamp(frame)

    def recv_nowait(self) -> Frame | None:
        """The next frame for this node that is already waiting, or None."""
        return self._next_frame()

    def _accepts(self, frame: Frame) -> bool:
        meta = frame.meta
        if not isinstance(meta, LoraMeta) or frame.src == self.node_id:
            return False
        if meta.dir == "down":
            return meta.dst is None or meta.dst == self.node_id
        return self.lora_rx == (meta.freq_hz, meta.sf)


class AirListener(_Participant):
    """A host tool on the air: every node's frames of `kinds` (default: all), uplinks only.

    Iterating blocks for ever; use recv(timeout_s) to bound the wait. Malformed datagrams are
    skipped and counted in `malformed`.
    """

    def __init__(
        self, air: Air, kinds: Iterable[str] | None = None, *, name: str | None = None
    ) -> None:
        wanted = frozenset(KINDS if kinds is None else kinds)
        unknown = sorted(wanted - set(KINDS))
        if unknown or not wanted:
            raise ValueError(f"kinds must be some of {', '.join(KINDS)}, got {sorted(wanted)}")
        if name is not None:
            _check_id("listener name", name)
        self.kinds = wanted
        channels = set()
        if KIND_BLE_ADV in wanted:
            channels.add(_CH_BLE_ADV)
        if KIND_LORA in wanted:
            channels.add(_CH_LORA_UP)
        super().__init__(air, ROLE_LISTENER, None, channels)
        self.name = name or f"listener-{self.port}"

    def __repr__(self) -> str:
        return f"AirListener({self.air.name!r}, kinds={sorted(self.kinds)}, port={self.port})"

    def recv(self, timeout_s: float | None) -> Frame | None:
        """The next frame, waiting up to `timeout_s` seconds (None: for ever); None on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            frame = self._next_frame()
            if frame is not None:
                return frame
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            select.select([self._sock], [], [], remaining)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.recv(None)
            if frame is not None:
                yield frame

    def send_downlink(
        self,
        node_id: str,
        payload: bytes,
        *,
        freq_hz: int,
        sf: int,
        bw_hz: int = 125_000,
        cr: str = "4/5",
        rssi_dbm: float = -60.0,
        snr_db: float = 9.0,
        t_sim_ms: int | None = None,
    ) -> Frame:
        """Send a LoRa downlink to `node_id`; returns the frame as sent.

        `t_sim_ms` may name the node's simulated time the downlink is meant for (an RX window);
        None says the sender has no simulated clock. Nobody receives it if the node is not on
        the air: check air.node_ids() first to tell.
        """
        meta = LoraMeta(freq_hz, sf, bw_hz, cr, rssi_dbm, snr_db, "down", node_id)
        return self._stamp(Frame(self.name, payload, meta, t_sim_ms))

    def _accepts(self, frame: Frame) -> bool:
        if frame.kind not in self.kinds:
            return False
        return not isinstance(frame.meta, LoraMeta) or frame.meta.dir == "up"
