"""The Semtech UDP packet-forwarder protocol, version 2 (Semtech lora_gateway/packet_forwarder
PROTOCOL.TXT, "Basic communication protocol between Lora gateway and server"): how `mote gateway
--forward HOST:PORT` hands every frame it hears to a real network server (The Things Stack,
ChirpStack's gateway bridge) and takes its downlinks back.

    fwd = UdpForwarder("eu1.cloud.thethings.network:1700", gateway_eui)
    fwd.push([RxPacket(phy, 868_100_000, 7, 125_000, "4/5", -60, 9.5, tmst, time.time())])
    for tx in fwd.poll():           # PULL_RESP: a downlink to transmit at tx.tmst
        ...                         # transmit it, then
        fwd.ack(tx)                 # TX_ACK ("NONE", or the reason it was not sent)
    fwd.tick()                      # PULL_DATA keepalive and stat reports when due

Datagrams: version (2) | token (2 random bytes) | identifier | [gateway EUI, 8 bytes] | [JSON].
PUSH_DATA (0) carries {"rxpk": [...]} and/or {"stat": {...}} and is answered by PUSH_ACK (1);
PULL_DATA (2) every `keepalive_s` opens the downlink path (PULL_ACK, 4); the server sends
PULL_RESP (3) with {"txpk": {...}}, which the gateway answers with TX_ACK (5) and
{"txpk_ack": {"error": ...}}. No threads: poll() reads what is waiting on the socket.

Timestamps: `tmst` is the gateway's free-running microsecond counter (32 bits, wrapping) at the
end of the uplink; the network server schedules RX1 at tmst + 1 s (5 s for a join accept), so a
source only has to map its own clock onto this counter consistently.
"""

import base64
import json
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from host_tools.errors import ConfigError, MoteError

VERSION: Final = 2
PUSH_DATA: Final = 0x00
PUSH_ACK: Final = 0x01
PULL_DATA: Final = 0x02
PULL_RESP: Final = 0x03
PULL_ACK: Final = 0x04
TX_ACK: Final = 0x05
_NAMES: Final = {
    PUSH_DATA: "PUSH_DATA",
    PUSH_ACK: "PUSH_ACK",
    PULL_DATA: "PULL_DATA",
    PULL_RESP: "PULL_RESP",
    PULL_ACK: "PULL_ACK",
    TX_ACK: "TX_ACK",
}
_WITH_EUI: Final = (PUSH_DATA, PULL_DATA, TX_ACK)  # gateway -> server datagrams

# TX_ACK error values (PROTOCOL.TXT 6.2).
TX_OK: Final = "NONE"
TX_TOO_LATE: Final = "TOO_LATE"
TX_TOO_EARLY: Final = "TOO_EARLY"
TX_COLLISION: Final = "COLLISION_PACKET"
TX_FREQ: Final = "TX_FREQ"
TX_POWER: Final = "TX_POWER"

TMST_MODULO: Final = 1 << 32
KEEPALIVE_S: Final = 10.0  # the reference packet forwarder's keepalive_interval default
STAT_INTERVAL_S: Final = 30.0  # its stat_interval default
_MAX_DATAGRAM: Final = 65535


class ForwarderError(MoteError):
    """A network server could not be reached, or spoke something that is not this protocol."""


@dataclass(frozen=True)
class RxPacket:
    """An uplink as the gateway heard it (one rxpk object)."""

    phy: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    cr: str
    rssi_dbm: float
    snr_db: float
    tmst: int  # gateway microsecond counter at the end of the uplink, 32 bits
    time_s: float | None = None  # Unix time of the reception, when the gateway knows it


@dataclass(frozen=True)
class TxPacket:
    """A downlink the network server asks for (one txpk object)."""

    token: int
    phy: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    cr: str = "4/5"
    power_dbm: int | None = None
    tmst: int | None = None  # when to transmit on the gateway's counter; None: immediately
    immediate: bool = False
    iq_invert: bool = True
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Datagram:
    """One datagram of this protocol, decoded."""

    version: int
    token: int
    ident: int
    eui: bytes | None = None
    body: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return _NAMES.get(self.ident, f"0x{self.ident:02x}")


# ---- codec ------------------------------------------------------------------------------------


def datr(sf: int, bw_hz: int) -> str:
    """The LoRa datarate string: "SF7BW125"."""
    return f"SF{sf}BW{bw_hz // 1000}"


def parse_datr(text: object) -> tuple[int, int]:
    """ "SF9BW125" -> (9, 125000); ValueError otherwise."""
    if not isinstance(text, str) or not text.startswith("SF") or "BW" not in text:
        raise ValueError(f"datr {text!r} is not a LoRa datarate like 'SF7BW125'")
    sf_text, _, bw_text = text[2:].partition("BW")
    if not (sf_text.isdigit() and bw_text.isdigit()):
        raise ValueError(f"datr {text!r} is not a LoRa datarate like 'SF7BW125'")
    sf, bw_khz = int(sf_text), int(bw_text)
    if not 5 <= sf <= 12 or bw_khz not in (125, 250, 500):
        raise ValueError(f"datr {text!r}: SF5..SF12 at 125, 250 or 500 kHz")
    return sf, bw_khz * 1000


def _mhz(freq_hz: int) -> float:
    return round(freq_hz / 1e6, 6)


def rxpk(pkt: RxPacket) -> dict[str, Any]:
    """The rxpk object of PROTOCOL.TXT 4 for `pkt`."""
    obj: dict[str, Any] = {}
    if pkt.time_s is not None:
        stamp = datetime.fromtimestamp(pkt.time_s, UTC)
        obj["time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    obj |= {
        "tmst": pkt.tmst % TMST_MODULO,
        "chan": 0,
        "rfch": 0,
        "freq": _mhz(pkt.freq_hz),
        "stat": 1,  # CRC checked and good: a source only hands over good frames
        "modu": "LORA",
        "datr": datr(pkt.sf, pkt.bw_hz),
        "codr": pkt.cr,
        "rssi": int(round(pkt.rssi_dbm)),
        "lsnr": round(float(pkt.snr_db), 1),
        "size": len(pkt.phy),
        "data": base64.b64encode(pkt.phy).decode("ascii"),
    }
    return obj


def _head(token: int, ident: int) -> bytes:
    return bytes([VERSION]) + token.to_bytes(2, "big") + bytes([ident])


def encode_push_data(
    token: int, eui: bytes, rxpks: list[dict[str, Any]], stat: dict[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {}
    if rxpks:
        body["rxpk"] = rxpks
    if stat is not None:
        body["stat"] = stat
    return _head(token, PUSH_DATA) + eui + json.dumps(body, separators=(",", ":")).encode()


def encode_pull_data(token: int, eui: bytes) -> bytes:
    return _head(token, PULL_DATA) + eui


def encode_tx_ack(token: int, eui: bytes, error: str = TX_OK) -> bytes:
    body = json.dumps({"txpk_ack": {"error": error}}, separators=(",", ":")).encode()
    return _head(token, TX_ACK) + eui + body


def encode_pull_resp(token: int, txpk: dict[str, Any]) -> bytes:
    """What a network server sends (for tests and fakes)."""
    return _head(token, PULL_RESP) + json.dumps({"txpk": txpk}).encode()


def decode(data: bytes) -> Datagram:
    """Parse one datagram; ValueError says what is wrong with it."""
    if len(data) < 4:
        raise ValueError(f"datagram of {len(data)} bytes is shorter than a header")
    version, token, ident = data[0], int.from_bytes(data[1:3], "big"), data[3]
    if version not in (1, 2):
        raise ValueError(f"protocol version {version} (this forwarder speaks 2)")
    if ident not in _NAMES:
        raise ValueError(f"unknown identifier 0x{ident:02x}")
    rest = data[4:]
    eui = None
    if ident in _WITH_EUI:
        if len(rest) < 8:
            raise ValueError(f"{_NAMES[ident]} without its gateway EUI")
        eui, rest = rest[:8], rest[8:]
    body = None
    if rest:
        try:
            body = json.loads(rest)
        except ValueError as exc:
            raise ValueError(f"{_NAMES[ident]} JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError(f"{_NAMES[ident]} JSON is not an object")
    return Datagram(version, token, ident, eui, body)


def parse_txpk(token: int, obj: object) -> TxPacket:
    """A txpk object (PROTOCOL.TXT 6) as a TxPacket; ValueError for what this gateway cannot send
    (FSK, a missing field, data that does not match its size)."""
    if not isinstance(obj, dict):
        raise ValueError("PULL_RESP without a txpk object")
    if obj.get("modu", "LORA") != "LORA":
        raise ValueError(f"modulation {obj.get('modu')!r}: this gateway sends LoRa only")
    sf, bw_hz = parse_datr(obj.get("datr"))
    freq = obj.get("freq")
    if not isinstance(freq, int | float) or isinstance(freq, bool):
        raise ValueError(f"txpk freq {freq!r} is not a number of MHz")
    try:
        phy = base64.b64decode(obj.get("data", ""), validate=True)
    except (ValueError, TypeError):
        raise ValueError("txpk data is not base64") from None
    if "size" in obj and obj["size"] != len(phy):
        raise ValueError(f"txpk size {obj['size']} but {len(phy)} bytes of data")
    immediate = obj.get("imme") is True
    tmst = obj.get("tmst")
    if not immediate and (not isinstance(tmst, int) or isinstance(tmst, bool)):
        raise ValueError("txpk has neither imme nor a tmst (GPS-timed downlinks are not supported)")
    power = obj.get("powe")
    return TxPacket(
        token=token,
        phy=phy,
        freq_hz=int(round(freq * 1e6)),
        sf=sf,
        bw_hz=bw_hz,
        cr=str(obj.get("codr", "4/5")),
        power_dbm=power if isinstance(power, int) and not isinstance(power, bool) else None,
        tmst=None if immediate else int(tmst) % TMST_MODULO,  # type: ignore[arg-type]
        immediate=immediate,
        iq_invert=obj.get("ipol", True) is not False,
        raw=dict(obj),
    )


# ---- addresses and the gateway EUI --------------------------------------------------------------


def parse_host_port(text: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); ConfigError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"--forward {text!r} is not HOST:PORT",
            hint="e.g. --forward eu1.cloud.thethings.network:1700 (Semtech UDP listens on 1700)",
        )
    return host, int(port_text)


def default_gateway_eui() -> bytes:
    """This host's MAC widened to EUI-64 with FF FE in the middle (how packet forwarders usually
    derive gateway_ID), so it is the same on every run."""
    mac = uuid.getnode().to_bytes(6, "big")
    return mac[:3] + b"\xff\xfe" + mac[3:]


def parse_eui(text: str) -> bytes:
    cleaned = text.replace(":", "").replace("-", "")
    try:
        eui = bytes.fromhex(cleaned)
    except ValueError:
        eui = b""
    if len(eui) != 8:
        raise ConfigError(f"gateway EUI {text!r} is not 8 bytes of hex (16 digits)")
    return eui


# ---- the forwarder ----------------------------------------------------------------------------


@dataclass
class ForwarderStats:
    pushed: int = 0  # PUSH_DATA sent with rxpk
    push_acks: int = 0
    pulls: int = 0
    pull_acks: int = 0
    downlinks: int = 0  # PULL_RESP received
    tx_acks: int = 0
    bad: int = 0  # datagrams that were not this protocol, or unexpected
    last_bad: str = ""
    rx_ok: int = 0  # frames handed over, for the stat object
    tx_done: int = 0  # downlinks acknowledged without error


class UdpForwarder:
    """The gateway side of the protocol over one UDP socket to `server` ("host:port").

    `now` is the monotonic clock deciding keepalives (tests pass their own).
    """

    def __init__(
        self,
        server: str,
        gateway_eui: bytes,
        *,
        keepalive_s: float = KEEPALIVE_S,
        stat_interval_s: float = STAT_INTERVAL_S,
        now: Any = time.monotonic,
    ) -> None:
        if len(gateway_eui) != 8:
            raise ConfigError("a gateway EUI is 8 bytes")
        self.server = server
        self.eui = bytes(gateway_eui)
        self.keepalive_s = keepalive_s
        self.stat_interval_s = stat_interval_s
        self.stats = ForwarderStats()
        self._now = now
        host, port = parse_host_port(server)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise ConfigError(
                f"cannot resolve the network server {host!r}: {exc.strerror}",
                hint="check the host name in --forward, and that this machine has DNS",
            ) from None
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(addr)  # only datagrams from the server get through
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ForwarderError(f"cannot open a UDP socket to {server}: {exc}") from exc
        self._sock = sock
        self._pending_push: set[int] = set()
        self._pending_pull: set[int] = set()
        self._next_pull = -1e18
        self._next_stat = now() + stat_interval_s
        self.last_ack_s: float | None = None  # monotonic time of the last ACK of any kind

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "UdpForwarder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, data: bytes) -> None:
        try:
            self._sock.send(data)
        except OSError:
            # An ICMP "port unreachable" from an earlier datagram, or no route: UDP is lossy by
            # contract, and a server that does not answer shows in the missing acks.
            self.stats.bad += 1
            self.stats.last_bad = f"send to {self.server} failed"

    def push(self, packets: list[RxPacket]) -> int:
        """PUSH_DATA with one rxpk per packet; the token it used."""
        token = secrets.randbelow(1 << 16)
        self._pending_push.add(token)
        self._send(encode_push_data(token, self.eui, [rxpk(p) for p in packets]))
        self.stats.pushed += 1
        self.stats.rx_ok += len(packets)
        return token

    def tick(self) -> None:
        """Send PULL_DATA (keepalive, and at start) and a stat report when they are due."""
        now = self._now()
        if now >= self._next_pull:
            token = secrets.randbelow(1 << 16)
            self._pending_pull.add(token)
            self._send(encode_pull_data(token, self.eui))
            self.stats.pulls += 1
            self._next_pull = now + self.keepalive_s
        if now >= self._next_stat:
            self._next_stat = now + self.stat_interval_s
            token = secrets.randbelow(1 << 16)
            self._pending_push.add(token)
            self._send(encode_push_data(token, self.eui, [], self._stat()))

    def _stat(self) -> dict[str, Any]:
        s = self.stats
        acked = 100.0 * s.push_acks / s.pushed if s.pushed else 0.0
        return {
            "time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S GMT"),
            "rxnb": s.rx_ok,
            "rxok": s.rx_ok,
            "rxfw": s.rx_ok,
            "ackr": round(acked, 1),
            "dwnb": s.downlinks,
            "txnb": s.tx_done,
        }

    def poll(self) -> list[TxPacket]:
        """Read every waiting datagram: count the acks, return the downlinks (PULL_RESP) asked
        for. A PULL_RESP this gateway cannot send is answered with a TX_ACK error at once."""
        out: list[TxPacket] = []
        while True:
            try:
                data = self._sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return out
            except ConnectionRefusedError:
                self.stats.bad += 1
                self.stats.last_bad = f"{self.server} refused (nothing listens on that port?)"
                continue
            try:
                dg = decode(data)
            except ValueError as exc:
                self._bad(str(exc))
                continue
            if dg.ident == PUSH_ACK and dg.token in self._pending_push:
                self._pending_push.discard(dg.token)
                self.stats.push_acks += 1
                self.last_ack_s = self._now()
            elif dg.ident == PULL_ACK and dg.token in self._pending_pull:
                self._pending_pull.discard(dg.token)
                self.stats.pull_acks += 1
                self.last_ack_s = self._now()
            elif dg.ident == PULL_RESP:
                self.stats.downlinks += 1
                try:
                    out.append(parse_txpk(dg.token, (dg.body or {}).get("txpk")))
                except ValueError as exc:
                    self._bad(f"PULL_RESP refused: {exc}")
                    self._send(encode_tx_ack(dg.token, self.eui, "TX_FREQ"))
            else:
                self._bad(f"unexpected {dg.name} (token {dg.token})")

    def _bad(self, why: str) -> None:
        self.stats.bad += 1
        self.stats.last_bad = why

    def ack(self, tx: TxPacket, error: str = TX_OK) -> None:
        """TX_ACK for a downlink: "NONE" when it went out (or was scheduled), else the reason."""
        self._send(encode_tx_ack(tx.token, self.eui, error))
        self.stats.tx_acks += 1
        if error == TX_OK:
            self.stats.tx_done += 1
