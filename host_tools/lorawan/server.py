"""A bench LoRaWAN 1.0.x network server for the devices in the host registry (`mote gateway`).

    server = NetworkServer(Registry().devices().values(), StateFile(state_path_for(reg.path)))
    result = server.handle(phy, RxMeta(868_100_000, 7, rssi_dbm=-60, snr_db=9, t_ms=t_sim_ms))
    print(result.event)                       # one dict per frame heard: join, uplink, rejected...
    if result.downlink:                       # at most one answer, for RX1 (or RX2)
        send(result.downlink.phy, result.downlink.freq_hz, result.downlink.sf,
             at=result.downlink.t_ms)         # uplink end + 1 s (5 s for a join accept)
    server.queue(dev_eui, fport=2, payload=b"\\x01", confirmed=False)
    server.queue_mac(dev_eui, mac.dev_status_req())

Pure logic: frames in, events and downlinks out; the only I/O is the state file (used DevNonces
and sessions, so a restart neither accepts a DevNonce twice nor forgets a session or its
counters), replaced atomically and private (it holds session keys).

What it does (LoRaWAN 1.0.3 specification sections in brackets): joins of registry devices
(6.2: known DevEUI and JoinEUI, MIC, a DevNonce never accepted twice, a fresh DevAddr and
AppNonce, session keys, a join accept with RX1DROffset/RX2DR/RxDelay and for EU868 a CFList of
five channels); data frames (4.3: the session by DevAddr, the 32-bit FCnt rebuilt from the 16 on
air, MIC, old counters rejected as replays, the same frame heard twice dropped as a duplicate,
a confirmed frame sent again answered with a new ACK, FRMPayload decrypted and decoded with
host_tools.payload); MAC commands (5: LinkCheckAns, DeviceTimeAns, answers to what it asked
matched and applied, unanswered requests sent again); ADR (Semtech's recommended algorithm: the
best SNR of the last 20 uplinks against the SF's demodulation floor and a 10 dB margin, then
LinkADRReq); an optional channel restriction for single-channel gateways (LinkADRReq ChMask).

`passive=True` (when frames are forwarded to a real network server): nothing is answered;
joins are followed by watching the real server's join accepts (observe_downlink), so uplinks of
registry devices are still checked and decoded.
"""

import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from host_tools.errors import ConfigError, MoteError, RegistryError
from host_tools.lorawan import frames, mac
from host_tools.lorawan.adr import HISTORY as ADR_HISTORY
from host_tools.lorawan.adr import adr_target, link_adr_reqs, margin_db, max_adr_dr
from host_tools.lorawan.netstate import (
    STATE_VERSION,
    Device,
    Record,
    StateFile,
    devices_from_records,
    state_path_for,
)
from host_tools.lorawan.region import Region, region

__all__ = [
    "Device",
    "Downlink",
    "NetworkServer",
    "Result",
    "RxMeta",
    "StateFile",
    "devices_from_records",
    "state_path_for",
]

Event = dict[str, Any]
RECEIVE_DELAY1_S = 1  # 1.0.3 7 (Regional Parameters: RECEIVE_DELAY1 1 s, RECEIVE_DELAY2 +1 s)
JOIN_ACCEPT_DELAY1_MS = 5000
JOIN_ACCEPT_DELAY2_MS = 6000
DEDUP_MS = 500  # the same frame again within this: another gateway's (or source's) copy
MAC_TRIES = 3  # a request the node does not answer is sent this many times in all
# The five extra EU868 channels of the CFList: The Things Network's EU868 plan (also
# ChirpStack's default), 867.1-867.9 MHz, DR0-5.
EU868_CF_LIST = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)
_FOPTS_MAX = 15
_NO_DR = (ValueError, KeyError, IndexError, MoteError)  # what a region says for a DR it lacks
# A request the network sends, and the answer that settles it (5, table 4).
_ANSWERS = {
    "LinkADRReq": "LinkADRAns",
    "DutyCycleReq": "DutyCycleAns",
    "RXParamSetupReq": "RXParamSetupAns",
    "DevStatusReq": "DevStatusAns",
    "NewChannelReq": "NewChannelAns",
    "RXTimingSetupReq": "RXTimingSetupAns",
    "TxParamSetupReq": "TxParamSetupAns",
    "DlChannelReq": "DlChannelAns",
}
# Answers a node repeats in every uplink until it receives a downlink (5.4, 5.7).
_STICKY = ("RXParamSetupAns", "RXTimingSetupAns", "DlChannelAns")


def load_region(name: str, sub_band: int | None = None) -> Region:
    """The region of a registry device (US915 without a sub-band: sub-band 2, as provisioned)."""
    if name == "US915":
        return region(name, sub_band=sub_band or 2)
    return region(name)


# ---- what goes in and out ----------------------------------------------------------------------


@dataclass(frozen=True)
class RxMeta:
    """How a frame was heard. `t_ms`: the source's clock at the end of the uplink (a virtual
    node's t_sim_ms, a gateway node's ticks), which downlink times count from; `time_s`: Unix
    time of the reception (DeviceTimeAns, the event's time), else the server's clock."""

    freq_hz: int
    sf: int
    bw_hz: int = 125_000
    rssi_dbm: float = 0.0
    snr_db: float = 0.0
    t_ms: int | None = None
    time_s: float | None = None


@dataclass(frozen=True)
class Downlink:
    """An answer to transmit `delay_ms` after the end of the uplink (t_ms when it had one)."""

    dev_eui: str
    phy: bytes
    freq_hz: int
    sf: int
    bw_hz: int
    dr: int
    window: str  # "rx1" or "rx2"
    delay_ms: int
    t_ms: int | None


@dataclass(frozen=True)
class Result:
    event: Event
    downlink: Downlink | None = None


@dataclass
class _Queued:
    fport: int
    payload: bytes
    confirmed: bool


@dataclass
class _Runtime:
    """Per-device state that need not survive a restart."""

    queue: deque[_Queued] = field(default_factory=deque)
    mac_queue: list[mac.Command] = field(default_factory=list)
    awaiting: list[tuple[mac.Command, int]] = field(default_factory=list)  # (request, tries)
    snr: deque[float] = field(default_factory=lambda: deque(maxlen=ADR_HISTORY))
    restricted: bool = False  # the channel restriction went out with this session
    confirmed_down: int | None = None  # FCntDown of a confirmed downlink not acked yet


# ---- the server --------------------------------------------------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _decoder() -> Callable[..., dict[str, Any]] | None:
    try:
        from host_tools.payload import decode
    except ImportError:
        return None
    return decode


class NetworkServer:
    def __init__(
        self,
        records: Iterable[Record],
        state: StateFile | None = None,
        *,
        net_id: int = 0x000000,
        rx1_dr_offset: int = 0,
        rx2_dr: int | None = None,
        rx_delay_s: int = RECEIVE_DELAY1_S,
        window: str = "rx1",
        adr: bool = True,
        channels_hz: Iterable[int] | None = None,
        passive: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        region_loader: Callable[[str, int | None], Region] = load_region,
    ) -> None:
        if window not in ("rx1", "rx2"):
            raise ConfigError(f"downlink window {window!r} must be rx1 or rx2")
        if not 1 <= rx_delay_s <= 15:
            raise ConfigError(f"RX1 delay {rx_delay_s} s must be 1..15")
        self.net_id = net_id
        self.rx1_dr_offset = rx1_dr_offset
        self.rx2_dr = rx2_dr
        self.rx_delay_s = rx_delay_s
        self.window = window
        self.adr = adr
        self.channels_hz = sorted(set(channels_hz)) if channels_hz else None
        self.passive = passive
        self._rng = rng or random.SystemRandom()
        self._clock = clock
        self._region_loader = region_loader
        self._regions: dict[tuple[str, int | None], Region] = {}
        self._state_file = state
        self.state = state.load() if state is not None else self._empty_state()
        self._runtime: dict[str, _Runtime] = {}
        self._pending_joins: dict[str, int] = {}  # passive: dev_eui -> DevNonce of its request
        self._decode = _decoder()
        self.devices: dict[str, Device] = {}
        self.reload(records)

    @staticmethod
    def _empty_state() -> dict[str, Any]:
        return {"version": STATE_VERSION, "join_nonce": 0, "devices": {}}

    def reload(self, records: Iterable[Record]) -> None:
        """Take the registry's devices again (a device provisioned while the server runs)."""
        self.devices = {d.eui: d for d in devices_from_records(records)}
        for dev in self.devices.values():
            self._region(dev)  # an unknown region fails now, not at its first frame

    # ---- the public API -----------------------------------------------------------------------

    def handle(self, phy: bytes, meta: RxMeta) -> Result:
        """One frame heard: its event, and the downlink to send, if any."""
        try:
            frame = frames.parse(phy)
        except frames.FrameError as exc:
            return Result(self._event("rejected", phy, meta, reason="malformed", error=str(exc)))
        if isinstance(frame, frames.JoinRequest):
            return self._join(frame, phy, meta)
        if isinstance(frame, frames.DataFrame) and frame.uplink:
            return self._data(frame, phy, meta)
        return Result(
            self._event(
                "rejected",
                phy,
                meta,
                reason="downlink",
                error="a downlink frame heard on the uplink path",
            )
        )

    def queue(self, dev_eui: str, fport: int, payload: bytes, confirmed: bool = False) -> None:
        """Send `payload` on `fport` in the device's next downlink (after earlier ones)."""
        dev = self._device(dev_eui)
        if not 1 <= fport <= 223:
            raise ConfigError(f"FPort {fport} must be 1..223 for application data")
        if len(payload) > 242:
            raise ConfigError(f"a downlink payload of {len(payload)} bytes never fits (max 242)")
        self._rt(dev.eui).queue.append(_Queued(fport, bytes(payload), confirmed))

    def queue_mac(self, dev_eui: str, command: mac.Command) -> None:
        """Send a MAC command (mac.dev_status_req(), ...) in the device's next downlink."""
        dev = self._device(dev_eui)
        mac.encode([command])  # refuses a bad command now
        self._rt(dev.eui).mac_queue.append(dict(command))

    def observe_downlink(self, phy: bytes) -> Event | None:
        """Passive mode: a downlink another network server sent. A join accept for a pending
        join of a registry device starts its session here; an event says so."""
        try:
            frame = frames.parse(phy)
        except frames.FrameError:
            return None
        if not isinstance(frame, frames.EncryptedJoinAccept):
            return None
        for eui, dev_nonce in list(self._pending_joins.items()):
            dev = self.devices.get(eui)
            if dev is None or dev.app_key is None:
                continue
            try:
                accept = frames.decrypt_join_accept(phy, dev.app_key)
            except frames.FrameError:
                continue
            del self._pending_joins[eui]
            self._start_session(dev, accept, dev_nonce)
            self._save()
            return {
                "event": "join_accept",
                "dev_eui": eui,
                "device_id": dev.device_id,
                "dev_addr": f"{accept.dev_addr:08x}",
            }
        return None

    def session(self, dev_eui: str) -> dict[str, Any] | None:
        """A device's current session as persisted (keys included: do not print it)."""
        return self._dev_state(dev_eui.lower()).get("session")

    # ---- joins -------------------------------------------------------------------------------

    def _join(self, frame: frames.JoinRequest, phy: bytes, meta: RxMeta) -> Result:
        eui = f"{frame.dev_eui:016x}"
        info = {"dev_eui": eui, "dev_nonce": frame.dev_nonce}
        dev = self.devices.get(eui)
        if dev is None or dev.activation != "otaa" or dev.app_key is None:
            why = "not in the registry" if dev is None else "an ABP device (it does not join)"
            return self._rejected(phy, meta, "unknown_device", f"DevEUI {eui}: {why}", **info)
        info["device_id"] = dev.device_id
        if frame.join_eui != dev.join_eui:
            return self._rejected(
                phy,
                meta,
                "join_eui",
                f"JoinEUI {frame.join_eui:016x} is not the registry's {dev.join_eui:016x}",
                **info,
            )
        if not frame.mic_ok(dev.app_key):
            return self._rejected(phy, meta, "mic", "join request MIC does not match", **info)
        st = self._dev_state(eui)
        if frame.dev_nonce in st["dev_nonces"]:
            return self._rejected(
                phy,
                meta,
                "devnonce_reused",
                f"DevNonce {frame.dev_nonce} was accepted before: a replayed join request",
                **info,
            )
        st["dev_nonces"].append(frame.dev_nonce)
        if self.passive:
            self._pending_joins[eui] = frame.dev_nonce
            self._save()
            return Result(self._event("join", phy, meta, passive=True, **info))
        region = self._region(dev)
        self.state["join_nonce"] = (self.state["join_nonce"] + 1) & 0xFFFFFF
        rx2_dr = self.rx2_dr if self.rx2_dr is not None else region.rx2_default[1]
        cf_list = (
            frames.cf_list_frequencies(list(EU868_CF_LIST)) if region.name == "EU868" else None
        )
        accept = frames.JoinAccept(
            app_nonce=self.state["join_nonce"],
            net_id=self.net_id,
            dev_addr=self._new_dev_addr(),
            rx1_dr_offset=self.rx1_dr_offset,
            rx2_dr=rx2_dr,
            rx_delay=self.rx_delay_s,
            cf_list=cf_list,
        )
        self._start_session(dev, accept, frame.dev_nonce)
        self._save()  # the DevNonce is spent before the accept can go out
        downlink = self._schedule(
            dev,
            accept.encrypt(dev.app_key),
            meta,
            rx1_dr_offset=0,
            rx2=region.rx2_default,
            delay_ms=JOIN_ACCEPT_DELAY1_MS,
        )
        event = self._event("join", phy, meta, dev_addr=f"{accept.dev_addr:08x}", **info)
        return Result(event, downlink)

    def _start_session(self, dev: Device, accept: frames.JoinAccept, dev_nonce: int) -> None:
        assert dev.app_key is not None
        nwk, app = accept.session_keys(dev.app_key, dev_nonce)
        region = self._region(dev)
        channels = [f for f, _, _ in region.join_channels()] if region.name == "EU868" else []
        if accept.cf_list is not None and region.name == "EU868":
            kind, extra = frames.cf_list_decode(accept.cf_list)
            if kind == 0 and isinstance(extra, list):
                channels += [f for f in extra if f]
        self._dev_state(dev.eui)["session"] = {
            "dev_addr": f"{accept.dev_addr:08x}",
            "nwk_s_key": nwk.hex(),
            "app_s_key": app.hex(),
            "fcnt_up": -1,  # the last counter accepted; none yet
            "fcnt_down": 0,
            "rx1_dr_offset": accept.rx1_dr_offset,
            "rx2_dr": accept.rx2_dr,
            "rx2_freq": region.rx2_default[0],
            "rx_delay": max(1, accept.rx_delay),
            "tx_power": 0,
            "channels": channels,
            "joined": _iso(self._clock()),
        }
        self._runtime.pop(dev.eui, None)  # a new session starts with nothing pending

    def _new_dev_addr(self) -> int:
        # NwkID (the 7 top bits) from the NetID's low bits (NetID type 0: 6 bits NwkID), the
        # rest random, never one another device uses.
        nwk_id = self.net_id & 0x7F
        used = {d.dev_addr for d in self.devices.values() if d.dev_addr is not None}
        used |= {
            int(s["session"]["dev_addr"], 16)
            for s in self.state["devices"].values()
            if s.get("session")
        }
        while True:
            addr = (nwk_id << 25) | self._rng.getrandbits(25)
            if addr not in used and addr & 0x1FFFFFF:
                return addr

    # ---- data frames -------------------------------------------------------------------------

    def _find_session(self, dev_addr: int) -> tuple[Device, dict[str, Any]] | None:
        text = f"{dev_addr:08x}"
        for eui, st in self.state["devices"].items():
            sess = st.get("session")
            if sess and sess["dev_addr"] == text and eui in self.devices:
                return self.devices[eui], sess
        for dev in self.devices.values():
            if dev.activation == "abp" and dev.dev_addr == dev_addr:
                assert dev.nwk_s_key is not None and dev.app_s_key is not None
                st = self._dev_state(dev.eui)
                sess = st.get("session")
                if sess is None or sess.get("nwk_s_key") != dev.nwk_s_key.hex():
                    region = self._region(dev)
                    st["session"] = sess = {
                        "dev_addr": text,
                        "nwk_s_key": dev.nwk_s_key.hex(),
                        "app_s_key": dev.app_s_key.hex(),
                        "fcnt_up": -1,
                        "fcnt_down": 0,
                        "rx1_dr_offset": 0,
                        "rx2_dr": region.rx2_default[1],
                        "rx2_freq": region.rx2_default[0],
                        "rx_delay": RECEIVE_DELAY1_S,
                        "tx_power": 0,
                        "channels": [f for f, _, _ in region.join_channels()]
                        if region.name == "EU868"
                        else [],
                        "joined": None,
                    }
                return dev, sess
        return None

    def _data(self, frame: frames.DataFrame, phy: bytes, meta: RxMeta) -> Result:
        addr = f"{frame.dev_addr:08x}"
        found = self._find_session(frame.dev_addr)
        base = {"dev_addr": addr, "fcnt16": frame.fcnt, "confirmed": frame.confirmed}
        if found is None:
            return self._rejected(
                phy, meta, "unknown_dev_addr", f"no session with DevAddr {addr}", **base
            )
        dev, sess = found
        base |= {"dev_eui": dev.eui, "device_id": dev.device_id}
        nwk = bytes.fromhex(sess["nwk_s_key"])
        last = sess["fcnt_up"]
        try:
            new = frames.full_fcnt(frame.fcnt, last + 1)
        except frames.FrameError as exc:  # past 2**32: only a new session (a join) goes on
            return self._rejected(phy, meta, "fcnt_exhausted", str(exc), **base)
        # The counter it would have if it were old: this 65536-epoch, or the one before.
        old = (last & ~0xFFFF) | frame.fcnt if last >= 0 else -1
        if old > last:
            old -= 0x10000
        if old >= 0 and frame.mic_ok(nwk, old):
            base["fcnt"] = old
            if old == last and phy.hex() == sess.get("last_phy"):
                return self._again(dev, sess, frame, phy, meta, base)
            what = (
                "the same counter as the last frame, with other content"
                if old == last
                else (f"older than the last accepted FCnt {last}")
            )
            return self._rejected(phy, meta, "replay", f"FCnt {old}: {what}", **base)
        if not frame.mic_ok(nwk, new):
            return self._rejected(phy, meta, "mic", "MIC does not match the session", **base)
        base["fcnt"] = new
        sess["fcnt_up"] = new
        sess["last_phy"] = phy.hex()
        sess["last_t_ms"] = meta.t_ms
        sess["last_time_s"] = self._now(meta)
        rt = self._rt(dev.eui)
        event = self._event("uplink", phy, meta, **base)
        up_dr = self._uplink_dr(dev, meta)
        event["dr"] = up_dr
        event["adr"] = frame.fctrl.adr
        event["ack"] = frame.fctrl.ack
        if rt.confirmed_down is not None:
            event["downlink_acked"] = frame.fctrl.ack
            rt.confirmed_down = None
        plain = b""
        if frame.fport is not None:
            plain = frame.payload(nwk, bytes.fromhex(sess["app_s_key"]), new)
        commands = mac.parse(plain if frame.fport == 0 else frame.fopts, uplink=True)
        event["fport"] = frame.fport
        event["mac"] = commands
        if frame.fport:
            event["payload"] = plain.hex()
            self._decode_into(
                event, frame.fport, plain, datetime.fromtimestamp(self._now(meta), UTC)
            )
        else:
            event["values"] = None
        answers, need = self._mac_in(dev, sess, rt, commands, meta, event)
        if self.passive:
            self._save()
            return Result(event)
        if self.adr and frame.fctrl.adr and up_dr is not None:
            rt.snr.append(meta.snr_db)
            self._adr(dev, sess, rt, up_dr)
        if self.channels_hz and not rt.restricted and up_dr is not None:
            self._restrict(dev, sess, rt, up_dr)
        need = need or frame.fctrl.adr_ack_req
        downlink = self._answer(
            dev, sess, rt, meta, up_dr, ack=frame.confirmed, mac_out=answers, need=need, event=event
        )
        self._save()
        return Result(event, downlink)

    def _again(
        self,
        dev: Device,
        sess: dict[str, Any],
        frame: frames.DataFrame,
        phy: bytes,
        meta: RxMeta,
        base: dict[str, Any],
    ) -> Result:
        # The last frame, heard again: a second copy of one transmission (dropped), or the
        # node sending it again (1.0.3 4.3.1.3: a confirmed frame is retransmitted with the same
        # FCnt until acknowledged; NbTrans repeats an unconfirmed one): acknowledged again.
        if meta.t_ms is not None and sess.get("last_t_ms") is not None:
            close = abs(meta.t_ms - sess["last_t_ms"]) < DEDUP_MS
        else:
            close = abs(self._now(meta) - sess.get("last_time_s", 0.0)) < DEDUP_MS / 1000
        if close:
            return Result(self._event("duplicate", phy, meta, **base))
        sess["last_t_ms"] = meta.t_ms
        sess["last_time_s"] = self._now(meta)
        event = self._event("retransmission", phy, meta, **base)
        event["fport"] = frame.fport
        if self.passive or not frame.confirmed:
            return Result(event)
        rt = self._rt(dev.eui)
        up_dr = self._uplink_dr(dev, meta)
        downlink = self._answer(
            dev, sess, rt, meta, up_dr, ack=True, mac_out=[], need=True, event=event
        )
        self._save()
        return Result(event, downlink)

    def _decode_into(self, event: Event, fport: int, plain: bytes, recv_time: datetime) -> None:
        if self._decode is None:
            event["values"] = None
            event["note"] = "host_tools.payload is not available: payload left as hex"
            return
        try:
            decoded = self._decode(fport, plain, recv_time=recv_time)
        except (MoteError, ValueError, KeyError, IndexError, TypeError) as exc:
            event["values"] = None
            event["decode_error"] = str(exc) or type(exc).__name__
            return
        samples = decoded.get("samples") if isinstance(decoded, dict) else None
        values = samples[-1].get("values") if samples else None
        event["values"] = values if isinstance(values, dict) else None
        event["decoded"] = decoded

    # ---- MAC commands ------------------------------------------------------------------------

    def _mac_in(
        self,
        dev: Device,
        sess: dict[str, Any],
        rt: _Runtime,
        commands: list[mac.Command],
        meta: RxMeta,
        event: Event,
    ) -> tuple[list[mac.Command], bool]:
        # The node's commands: answers to send back now, and whether a downlink is needed even
        # without anything in it (a sticky answer stops only when one arrives).
        out: list[mac.Command] = []
        need = False
        for cmd in commands:
            name = cmd["cmd"]
            if name == "LinkCheckReq":
                out.append(mac.link_check_ans(margin_db(meta.snr_db, meta.sf), 1))
            elif name == "DeviceTimeReq":
                out.append(mac.device_time_ans(self._now(meta)))
            elif name in _ANSWERS.values():
                need = need or name in _STICKY
                self._settle(sess, rt, cmd, event)
        # Requests the node did not answer: lost downlink; send them again (a few times).
        for request, tries in rt.awaiting:
            if tries < MAC_TRIES:
                rt.mac_queue.insert(0, dict(request, _tries=tries))
            else:
                event.setdefault("mac_unanswered", []).append(request["cmd"])
        rt.awaiting = []
        return out, need

    def _settle(self, sess: dict[str, Any], rt: _Runtime, ans: mac.Command, event: Event) -> None:
        for i, (request, _) in enumerate(rt.awaiting):
            if _ANSWERS.get(request["cmd"]) == ans["cmd"]:
                del rt.awaiting[i]
                break
        else:
            return  # an answer to nothing we sent (or a sticky repeat): nothing to apply
        name = request["cmd"]
        if name == "DevStatusReq":
            sess["dev_status"] = {"battery": ans["battery"], "margin": ans["margin"]}
            event["dev_status"] = sess["dev_status"]
        elif not mac.acked(ans):
            event.setdefault("mac_refused", []).append(name)
        elif name == "LinkADRReq":
            sess["tx_power"] = request["tx_power"]
            sess["nb_trans"] = request["nb_trans"]
        elif name == "RXParamSetupReq":
            sess["rx1_dr_offset"] = request["rx1_dr_offset"]
            sess["rx2_dr"] = request["rx2_dr"]
            sess["rx2_freq"] = request["freq_hz"]
        elif name == "RXTimingSetupReq":
            sess["rx_delay"] = max(1, request["delay_s"])
        elif name == "DutyCycleReq":
            sess["max_dc"] = request["max_dc"]
        elif name == "NewChannelReq":
            channels = sess.setdefault("channels", [])
            while len(channels) <= request["index"]:
                channels.append(0)
            channels[request["index"]] = request["freq_hz"]

    def _adr(self, dev: Device, sess: dict[str, Any], rt: _Runtime, up_dr: int) -> None:
        # host_tools/lorawan/adr.py: once the history is full and nothing is pending.
        if len(rt.snr) < ADR_HISTORY or self._adr_pending(rt):
            return
        region = self._region(dev)
        power = sess.get("tx_power", 0)
        target = adr_target(
            rt.snr,
            sf=region.dr(up_dr)[0],
            dr=up_dr,
            power=power,
            max_dr=max_adr_dr(region),
            max_power=max(region.tx_power_indices),
        )
        if target != (up_dr, power):
            rt.mac_queue.extend(self._link_adr(dev, sess, *target))
            rt.snr.clear()  # judge the new setting on its own uplinks

    @staticmethod
    def _adr_pending(rt: _Runtime) -> bool:
        return any(c["cmd"] == "LinkADRReq" for c in rt.mac_queue) or any(
            c["cmd"] == "LinkADRReq" for c, _ in rt.awaiting
        )

    def _restrict(self, dev: Device, sess: dict[str, Any], rt: _Runtime, up_dr: int) -> None:
        # A single-channel bench gateway: tell the node to use only the channels it hears.
        rt.restricted = True
        if not self._adr_pending(rt):
            rt.mac_queue.extend(self._link_adr(dev, sess, up_dr, sess.get("tx_power", 0)))

    def _link_adr(
        self, dev: Device, sess: dict[str, Any], dr: int, power: int
    ) -> list[mac.Command]:
        return link_adr_reqs(
            self._region(dev),
            dr,
            power,
            nb_trans=sess.get("nb_trans", 1) or 1,
            channels=sess.get("channels") or [],
            only_hz=self.channels_hz,
        )

    # ---- downlinks ---------------------------------------------------------------------------

    def _answer(
        self,
        dev: Device,
        sess: dict[str, Any],
        rt: _Runtime,
        meta: RxMeta,
        up_dr: int | None,
        *,
        ack: bool,
        mac_out: list[mac.Command],
        need: bool,
        event: Event,
    ) -> Downlink | None:
        commands = mac_out + rt.mac_queue
        if not (ack or need or commands or rt.queue):
            return None
        region = self._region(dev)
        window, dl_freq, dl_dr, delay = self._window(
            region,
            meta,
            up_dr,
            sess["rx1_dr_offset"],
            (sess["rx2_freq"], sess["rx2_dr"]),
            sess["rx_delay"] * 1000,
        )
        room = region.max_payload(dl_dr)
        # MAC commands first: in FOpts when they fit (15 bytes), else alone on FPort 0.
        fopts_cmds: list[mac.Command] = []
        used = 0
        for cmd in commands:
            n = mac.size(_clean(cmd))
            if used + n > min(_FOPTS_MAX, room):
                break
            fopts_cmds.append(cmd)
            used += n
        fport: int | None = None
        payload = b""
        confirmed = False
        sent = fopts_cmds
        if len(fopts_cmds) < len(commands):
            # Too many for FOpts: all MAC commands (that fit the data rate) on FPort 0 now, the
            # application's payload in a later downlink.
            sent, used = [], 0
            for cmd in commands:
                n = mac.size(_clean(cmd))
                if used + n > room:
                    break
                sent.append(cmd)
                used += n
            fport, payload = 0, mac.encode([_clean(c) for c in sent])
            fopts = b""
        else:
            fopts = mac.encode([_clean(c) for c in fopts_cmds])
            head = rt.queue[0] if rt.queue else None
            if head is not None and len(head.payload) > room:
                rt.queue.popleft()
                event["downlink_dropped"] = (
                    f"{len(head.payload)} bytes on FPort {head.fport}: more than DR{dl_dr} "
                    f"carries ({room})"
                )
            elif head is not None and len(head.payload) <= room - len(fopts):
                rt.queue.popleft()
                fport, payload, confirmed = head.fport, head.payload, head.confirmed
            # else: it fits without these MAC commands: in the next downlink
        for cmd in sent:
            if cmd in rt.mac_queue:
                rt.mac_queue.remove(cmd)
            if cmd["cmd"] in _ANSWERS:
                rt.awaiting.append((_clean(cmd), cmd.get("_tries", 0) + 1))
        fcnt = sess["fcnt_down"]
        mtype = frames.MType.CONFIRMED_DOWN if confirmed else frames.MType.UNCONFIRMED_DOWN
        fctrl = frames.FCtrl(adr=self.adr, ack=ack, f_pending=bool(rt.queue or rt.mac_queue))
        phy = frames.build_data(
            mtype,
            int(sess["dev_addr"], 16),
            fcnt,
            nwk_s_key=bytes.fromhex(sess["nwk_s_key"]),
            app_s_key=bytes.fromhex(sess["app_s_key"]),
            fport=fport,
            payload=payload,
            fopts=fopts,
            fctrl=fctrl,
        )
        sess["fcnt_down"] = fcnt + 1
        if confirmed:
            rt.confirmed_down = fcnt
        sf, bw = region.dr(dl_dr)
        event["downlink"] = {
            "fcnt": fcnt,
            "window": window,
            "freq": dl_freq,
            "dr": dl_dr,
            "ack": ack,
            "fport": fport,
            "confirmed": confirmed,
            "mac": [_clean(c) for c in sent],
        }
        return Downlink(
            dev.eui,
            phy,
            dl_freq,
            sf,
            bw,
            dl_dr,
            window,
            delay,
            None if meta.t_ms is None else meta.t_ms + delay,
        )

    def _schedule(
        self,
        dev: Device,
        phy: bytes,
        meta: RxMeta,
        *,
        rx1_dr_offset: int,
        rx2: tuple[int, int],
        delay_ms: int,
    ) -> Downlink | None:
        region = self._region(dev)
        up_dr = self._uplink_dr(dev, meta)
        window, freq, dr, delay = self._window(region, meta, up_dr, rx1_dr_offset, rx2, delay_ms)
        sf, bw = region.dr(dr)
        t = None if meta.t_ms is None else meta.t_ms + delay
        return Downlink(dev.eui, phy, freq, sf, bw, dr, window, delay, t)

    def _window(
        self,
        region: Region,
        meta: RxMeta,
        up_dr: int | None,
        rx1_dr_offset: int,
        rx2: tuple[int, int],
        rx1_delay_ms: int,
    ) -> tuple[str, int, int, int]:
        # (window, freq, DR, delay after the uplink): RX1 as the region maps the uplink, or RX2
        # (one second later) when asked, or when RX1 has no mapping for this uplink.
        if self.window == "rx1" and up_dr is not None:
            try:
                freq, dr = region.rx1(meta.freq_hz, up_dr, rx1_dr_offset)
                return "rx1", freq, dr, rx1_delay_ms
            except _NO_DR:
                pass
        return "rx2", rx2[0], rx2[1], rx1_delay_ms + 1000

    # ---- helpers -----------------------------------------------------------------------------

    def _region(self, dev: Device) -> Region:
        key = (dev.region, dev.sub_band if dev.region == "US915" else None)
        if key not in self._regions:
            try:
                self._regions[key] = self._region_loader(*key)
            except (ValueError, KeyError, MoteError) as exc:
                raise RegistryError(
                    f"device {dev.device_id}: region {dev.region!r} is not supported ({exc})"
                ) from None
        return self._regions[key]

    def _uplink_dr(self, dev: Device, meta: RxMeta) -> int | None:
        region = self._region(dev)
        # The node picks from uplink_dr_range itself; the network may move it up to DR6 (EU868
        # SF7/250 kHz, US915 DR4 on a 500 kHz channel).
        lo, hi = region.uplink_dr_range
        for d in range(lo, max(hi, 6) + 1):
            with contextlib.suppress(*_NO_DR):
                if tuple(region.dr(d)) == (meta.sf, meta.bw_hz):
                    return d
        return None

    def _device(self, dev_eui: str) -> Device:
        dev = self.devices.get(dev_eui.lower().replace(":", "").replace("-", ""))
        if dev is None:
            raise ConfigError(
                f"no LoRaWAN device with DevEUI {dev_eui} in the registry",
                hint="mote registry list shows the provisioned devices",
            )
        return dev

    def _dev_state(self, eui: str) -> dict[str, Any]:
        return self.state["devices"].setdefault(eui, {"dev_nonces": [], "session": None})  # type: ignore[no-any-return]

    def _rt(self, eui: str) -> _Runtime:
        return self._runtime.setdefault(eui, _Runtime())

    def _now(self, meta: RxMeta) -> float:
        return meta.time_s if meta.time_s is not None else self._clock()

    def _save(self) -> None:
        if self._state_file is not None:
            self._state_file.save(self.state)

    def _event(self, kind: str, phy: bytes, meta: RxMeta, **fields: Any) -> Event:
        event: Event = {
            "event": kind,
            "dev_eui": None,
            "device_id": None,
            "dev_addr": None,
            "fcnt": None,
            "fport": None,
            "values": None,
        }
        event |= fields
        event |= {
            "phy": phy.hex(),
            "rssi": meta.rssi_dbm,
            "snr": meta.snr_db,
            "freq": meta.freq_hz,
            "sf": meta.sf,
            "bw": meta.bw_hz,
            "t": meta.t_ms,
            "time": _iso(self._now(meta)),
        }
        event.setdefault("mac", [])
        return event

    def _rejected(self, phy: bytes, meta: RxMeta, reason: str, error: str, **fields: Any) -> Result:
        return Result(self._event("rejected", phy, meta, reason=reason, error=error, **fields))


def _clean(cmd: mac.Command) -> mac.Command:
    return {k: v for k, v in cmd.items() if not k.startswith("_")}
