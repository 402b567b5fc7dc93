"""The gateway service behind `mote gateway`: LoRa frames from a source, through the bench network
server, downlinks back through the source; or relayed to a real network server (Semtech UDP).

    with SimGateway(Air("bench")) as source:                 # the virtual air
        gw = Gateway(source, NetworkServer(records, state), on_event=print)
        gw.run(duration_s=60)
    with SerialTransport("/dev/ttyUSB0") as t, SerialGateway(t) as source:    # a gateway node
        Gateway(source, server, forwarder=UdpForwarder("host:1700", eui)).run()

A source hears uplinks (`Heard`: the PHY payload, radio metadata and its own clock at the end of
the uplink) and transmits a downlink a given delay after one of them: `SimGateway` on the virtual
air (the node's simulated time: a downlink for RX1 carries t_sim_ms = uplink end + 1 s), and
`SerialGateway`, a node flashed in gateway role (firmware/motekit/gateway.py) over its console:
events `gw_frame` in, request `gw_send` out, timed on the node's own clock (docs/gateway.md).

With a forwarder, every frame goes to the real network server and its downlinks come back
through the source; the bench server then stays passive (it decodes frames of registry devices
but never answers: two network servers answering one node would break its counters).
"""

import contextlib
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from host_tools.errors import MoteError, ProtocolError
from host_tools.lorawan import forwarder as fw
from host_tools.lorawan import frames
from host_tools.lorawan.server import Downlink, NetworkServer, RxMeta
from host_tools.protocol.client import NodeClient
from host_tools.sim.air import Air, AirListener, LoraMeta
from host_tools.transport import Transport

Event = dict[str, Any]

TMST_MODULO = fw.TMST_MODULO
# How far after an uplink a network server may schedule its answer: RX2 after the longest
# RxDelay (15 s + 1 s), with room to spare.
_MAX_ANSWER_US = 17_000_000
_RELOAD_EVERY_S = 2.0  # re-read the registry at most this often for an unknown device
_RECENT = 64  # uplinks remembered to time forwarded downlinks against


class GatewayError(MoteError):
    """A downlink could not be sent. `code` is the Semtech TX_ACK error it maps to."""

    def __init__(self, message: str, hint: str = "", code: str = fw.TX_TOO_LATE) -> None:
        super().__init__(message, hint)
        self.code = code


@dataclass(frozen=True)
class Heard:
    """An uplink as a source heard it. `t_ms`: the source's clock at the end of the uplink (a
    virtual node's t_sim_ms, a gateway node's ticks_ms), None when it has none; `src`: the
    virtual node that sent it."""

    phy: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    cr: str
    rssi_dbm: float
    snr_db: float
    t_ms: int | None
    time_s: float
    src: str | None = None

    def meta(self) -> RxMeta:
        return RxMeta(
            self.freq_hz, self.sf, self.bw_hz, self.rssi_dbm, self.snr_db, self.t_ms, self.time_s
        )

    @property
    def tmst(self) -> int:
        """The Semtech UDP timestamp: the source's clock in microseconds, 32 bits."""
        ms = self.t_ms if self.t_ms is not None else int(self.time_s * 1000)
        return (ms * 1000) % TMST_MODULO


class Source(Protocol):
    name: str

    def recv(self, timeout_s: float) -> Heard | None: ...

    def transmit(
        self,
        heard: Heard,
        phy: bytes,
        *,
        freq_hz: int,
        sf: int,
        bw_hz: int,
        delay_ms: int,
        power_dbm: int | None = None,
    ) -> None: ...

    def fileno(self) -> int | None: ...

    def close(self) -> None: ...


# ---- the virtual air ---------------------------------------------------------------------------


class SimGateway:
    """A gateway on the virtual air: hears every node's LoRa uplinks (every channel: no
    single-channel limit here), answers a node at its simulated time."""

    def __init__(self, air: Air, name: str = "gateway") -> None:
        self.listener = AirListener(air, kinds=["lora"], name=name)
        self.name = f"sim:{air.name}"

    def __enter__(self) -> "SimGateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int | None:
        return self.listener.fileno()

    def close(self) -> None:
        self.listener.close()

    def recv(self, timeout_s: float) -> Heard | None:
        frame = self.listener.recv(timeout_s)
        if frame is None or not isinstance(frame.meta, LoraMeta):
            return None
        m = frame.meta
        return Heard(
            frame.payload,
            m.freq_hz,
            m.sf,
            m.bw_hz,
            m.cr,
            m.rssi_dbm,
            m.snr_db,
            frame.t_sim_ms,
            frame.t_wall,
            frame.src,
        )

    def transmit(
        self,
        heard: Heard,
        phy: bytes,
        *,
        freq_hz: int,
        sf: int,
        bw_hz: int,
        delay_ms: int,
        power_dbm: int | None = None,
    ) -> None:
        if heard.src is None:
            raise GatewayError("the uplink has no sender to answer", code=fw.TX_FREQ)
        at = None if heard.t_ms is None else heard.t_ms + delay_ms
        self.listener.send_downlink(
            heard.src, phy, freq_hz=freq_hz, sf=sf, bw_hz=bw_hz, t_sim_ms=at
        )


# ---- a gateway node on a serial port ----------------------------------------------------------


class SerialGateway:
    """A node in gateway role (firmware/motekit/gateway.py) over its console.

    It forwards each frame it hears as a `gw_frame` event and transmits on a `gw_send` request
    at its own clock's uplink time + delay. One channel at a time (`channel`, `set_channel`).
    """

    def __init__(
        self, transport: Transport, *, wait_s: float = 5.0, client: NodeClient | None = None
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self._frames: deque[Event] = deque()
        self.sent: deque[Event] = deque(maxlen=100)  # gw_sent events: how each TX went
        self.node = client or NodeClient(transport)
        self.node.on_event = self._on_event
        self.node.catch(wait_s)
        try:
            self.channel = self.node.request("gw_channel")
        except ProtocolError as exc:
            with contextlib.suppress(MoteError):
                self.node.release_if_caught()
            if exc.err == "unknown_cmd":
                raise ProtocolError(
                    f"the node on {transport.name} is not in gateway role",
                    hint="mote config set role gateway --port ..., then mote reboot (its board "
                    "needs a LoRa radio)",
                    err="not_gateway",
                ) from None
            raise

    def __enter__(self) -> "SerialGateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int | None:
        return None  # the transport is read through the client: poll with a timeout

    def close(self) -> None:
        with contextlib.suppress(MoteError):
            self.node.release_if_caught(timeout=1.0, retries=1)

    def _on_event(self, ev: Event) -> None:
        if ev.get("ev") == "gw_frame":
            self._frames.append(ev)
        elif ev.get("ev") == "gw_sent":
            self.sent.append(ev)

    def set_channel(self, freq_hz: int, sf: int, bw_hz: int = 125_000) -> dict[str, Any]:
        self.channel = self.node.request("gw_channel", freq=freq_hz, sf=sf, bw=bw_hz)
        return self.channel

    def recv(self, timeout_s: float) -> Heard | None:
        if not self._frames:
            with contextlib.suppress(ProtocolError):
                self.node.wait_event("gw_frame", timeout_s)
        while self._frames:
            ev = self._frames.popleft()
            try:
                return Heard(
                    bytes.fromhex(ev["phy"]),
                    int(ev["freq"]),
                    int(ev["sf"]),
                    int(ev.get("bw", 125_000)),
                    str(ev.get("cr", "4/5")),
                    float(ev["rssi"]),
                    float(ev["snr"]),
                    int(ev["t"]),
                    time.time(),
                )
            except (KeyError, TypeError, ValueError):
                self.node.bad_frames += 1  # an event this host cannot read: counted, skipped
        return None

    def transmit(
        self,
        heard: Heard,
        phy: bytes,
        *,
        freq_hz: int,
        sf: int,
        bw_hz: int,
        delay_ms: int,
        power_dbm: int | None = None,
    ) -> None:
        if heard.t_ms is None:
            raise GatewayError("the uplink has no gateway timestamp to answer from")
        args: dict[str, Any] = {
            "phy": phy.hex(),
            "freq": freq_hz,
            "sf": sf,
            "bw": bw_hz,
            "ref": heard.t_ms,
            "delay_ms": delay_ms,
        }
        if power_dbm is not None:
            args["power"] = power_dbm
        try:
            data = self.node.request("gw_send", timeout=1.0, retries=1, **args)
        except ProtocolError as exc:
            code = {"bad_value": fw.TX_FREQ, "busy": fw.TX_COLLISION}.get(exc.err, fw.TX_TOO_LATE)
            raise GatewayError(f"the gateway node refused the downlink: {exc}", code=code) from exc
        if not data.get("queued"):
            late = data.get("late_ms")
            raise GatewayError(
                f"the downlink reached the gateway node {late} ms after its window opened",
                hint="a slow serial link or host: use RX2 (--window rx2) for more time",
                code=fw.TX_TOO_LATE,
            )


# ---- the service --------------------------------------------------------------------------------


class Gateway:
    """Frames from `source` through `server` (and `forwarder`), events to `on_event`.

    `reload` returns the registry's records again; it is called (at most every 2 s) when a
    frame comes from a device the server does not know, so a node provisioned while the gateway
    runs is served without a restart.
    """

    def __init__(
        self,
        source: Source,
        server: NetworkServer,
        *,
        forwarder: fw.UdpForwarder | None = None,
        on_event: Callable[[Event], None] | None = None,
        reload: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.server = server
        self.forwarder = forwarder
        self.on_event = on_event
        self._reload = reload
        self._clock = clock
        self._reloaded = -1e18
        self._recent: deque[Heard] = deque(maxlen=_RECENT)
        self.counts: dict[str, int] = {}  # events by kind
        self.heard = 0  # frames from the source
        if forwarder is not None:
            server.passive = True  # the real network server answers; two would clash

    def run(self, duration_s: float | None = None, count: int | None = None) -> None:
        """Serve until `duration_s` passes or `count` frames were heard (None: no limit)."""
        end = None if duration_s is None else self._clock() + duration_s
        while count is None or self.heard < count:
            left = 0.5 if end is None else end - self._clock()
            if left <= 0:
                return
            self.step(min(left, 0.5))

    def step(self, timeout_s: float) -> list[Event]:
        """Wait up to `timeout_s` for something to do, do it; the events it made."""
        out: list[Event] = []
        if self.forwarder is not None:
            self.forwarder.tick()
            fds = [self.forwarder.fileno()]
            src_fd = self.source.fileno()
            if src_fd is not None:
                fds.append(src_fd)
                select.select(fds, [], [], timeout_s)
                heard = self.source.recv(0)
            else:
                heard = self.source.recv(min(timeout_s, 0.1))
        else:
            heard = self.source.recv(timeout_s)
        if heard is not None:
            self.heard += 1
            out.append(self._uplink(heard))
        if self.forwarder is not None:
            out.extend(self._forwarded_downlinks())
        for event in out:
            self.counts[event["event"]] = self.counts.get(event["event"], 0) + 1
            if self.on_event is not None:
                self.on_event(event)
        return out

    def _uplink(self, heard: Heard) -> Event:
        if self.forwarder is not None:
            self._recent.append(heard)
            self.forwarder.push(
                [
                    fw.RxPacket(
                        heard.phy,
                        heard.freq_hz,
                        heard.sf,
                        heard.bw_hz,
                        heard.cr,
                        heard.rssi_dbm,
                        heard.snr_db,
                        heard.tmst,
                        heard.time_s,
                    )
                ]
            )
        result = self.server.handle(heard.phy, heard.meta())
        if (
            result.event.get("reason") in ("unknown_device", "unknown_dev_addr")
            and self._reload is not None
            and self._clock() - self._reloaded >= _RELOAD_EVERY_S
        ):
            self._reloaded = self._clock()
            self.server.reload(self._reload())
            result = self.server.handle(heard.phy, heard.meta())
        event = result.event
        if heard.src is not None:
            event["src"] = heard.src
        if self.forwarder is not None:
            event["forwarded"] = True
        if result.downlink is not None:
            self._send(heard, result.downlink, event)
        return event

    def _send(self, heard: Heard, dl: Downlink, event: Event) -> None:
        info = event.setdefault("downlink", {})
        info |= {"window": dl.window, "delay_ms": dl.delay_ms, "freq": dl.freq_hz, "dr": dl.dr}
        try:
            self.source.transmit(
                heard, dl.phy, freq_hz=dl.freq_hz, sf=dl.sf, bw_hz=dl.bw_hz, delay_ms=dl.delay_ms
            )
            info["sent"] = True
        except GatewayError as exc:
            info["sent"] = False
            info["error"] = str(exc)

    def _forwarded_downlinks(self) -> list[Event]:
        assert self.forwarder is not None
        out: list[Event] = []
        for tx in self.forwarder.poll():
            event: Event = {
                "event": "forwarded_downlink",
                "phy": tx.phy.hex(),
                "freq": tx.freq_hz,
                "sf": tx.sf,
                "bw": tx.bw_hz,
                "tmst": tx.tmst,
            }
            ref = self._match(tx)
            if ref is None:
                self.forwarder.ack(tx, fw.TX_TOO_LATE)
                event |= {"sent": False, "error": "no recent uplink it answers (tmst)"}
                out.append(event)
                continue
            delay_ms = 0 if tx.tmst is None else ((tx.tmst - ref.tmst) % TMST_MODULO) // 1000
            event |= {"src": ref.src, "delay_ms": delay_ms}
            try:
                self.source.transmit(
                    ref,
                    tx.phy,
                    freq_hz=tx.freq_hz,
                    sf=tx.sf,
                    bw_hz=tx.bw_hz,
                    delay_ms=delay_ms,
                    power_dbm=tx.power_dbm,
                )
                self.forwarder.ack(tx)
                event["sent"] = True
            except GatewayError as exc:
                self.forwarder.ack(tx, exc.code)
                event |= {"sent": False, "error": str(exc)}
            out.append(event)
            seen = self.server.observe_downlink(tx.phy)
            if seen is not None:
                out.append(seen)
        return out

    def _match(self, tx: fw.TxPacket) -> Heard | None:
        # The uplink a downlink answers: within the longest RX2 delay before its tmst; of
        # those, one from the device it is addressed to (its DevAddr, or a join request for a
        # join accept), the latest first.
        if tx.tmst is None:
            return self._recent[-1] if self._recent else None
        window = [h for h in self._recent if 0 < (tx.tmst - h.tmst) % TMST_MODULO <= _MAX_ANSWER_US]
        if not window:
            return None
        target = _addressee(tx.phy)
        for h in reversed(window):
            if target is not None and _sender(h.phy) == target:
                return h
        return window[-1]


def _addressee(phy: bytes) -> str | int | None:
    # A downlink's DevAddr, or "join" for a join accept.
    try:
        frame = frames.parse(phy)
    except frames.FrameError:
        return None
    if isinstance(frame, frames.EncryptedJoinAccept):
        return "join"
    if isinstance(frame, frames.DataFrame):
        return frame.dev_addr
    return None


def _sender(phy: bytes) -> str | int | None:
    try:
        frame = frames.parse(phy)
    except frames.FrameError:
        return None
    if isinstance(frame, frames.JoinRequest):
        return "join"
    if isinstance(frame, frames.DataFrame):
        return frame.dev_addr
    return None
