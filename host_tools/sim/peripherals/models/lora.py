"""The LoRa modem both radio models share: what goes on the air, what is heard, and when.

    core = LoraCore(clock.now_ms)
    core.port = air_port                             # the board's link to the virtual air
    end_ms = core.start_tx(modem, b"payload")        # on the air after its time on air
    core.start_rx(modem, timeout_ms=20.0)            # then core.poll(now) for the outcome
    core.receive(frame)                              # a frame the air delivered to this node

The chip models (sx127x.py, sx126x.py) turn their registers or commands into a `Modem` and
their IRQ flags from `poll()`. Everything here runs in simulated time (`now_ms`); docs/radios.md
describes the rules:

- a TX lasts its time on air (host_tools/lorawan/airtime.py). It reaches the air only if a
  standard LoRaWAN receiver could demodulate it: LoRa packet type, explicit header, public sync
  word, low data rate optimisation exactly when a symbol exceeds 16 ms, SF7..12 (`tx_unaired`
  counts why not). With normal IQ it is an uplink (`dir: up`), put on the air at its end with
  `t_sim_ms` that end. With inverted IQ (a gateway-role board answering) it is a board
  downlink (`dir: down`, `dst: null`: a LoRa frame names no node), put on the air when it
  starts, with `t_sim_ms` that start and `t_sim_of` that start on the clock of every node this
  radio heard an uplink from in the last minute (the clock offset measured at that uplink's
  end). A port that cannot carry downlinks (no `transmit_down`) leaves it unaired;
- RX hears frames on the same SF and bandwidth, within a quarter of the bandwidth of its
  frequency (the demodulator's offset tolerance), with the IQ polarity of their direction
  (downlinks inverted, uplinks normal), and only if the receiver is listening before the
  frame's preamble has passed but MIN_DETECT_SYMBOLS: rx_open <= start + (8 - 4) symbols, and a
  single reception's timeout had not run out when the frame started (start <= deadline);
- a downlink starts at its `t_sim_ms` (or on arrival when it has none) and is held until then;
  a board downlink at its `t_sim_of` entry for this node (`node_id`), else on arrival; another
  node's uplink (node-to-node, or a gateway board hearing it) started one time on air before
  it arrived. A continuous reception listens again from the end of each packet it received;
- the virtual air is real-time UDP between processes whose simulated clocks may run faster
  than the wall clock, so a downlink for a window can arrive after the window (in simulated
  time). An empty single reception therefore reports its timeout only once `port.latency_s`
  of real time has passed since this radio's last uplink, and, when a gateway-role board
  listens on that uplink's channel (`port.board_wait_s`), only once real time has caught up
  with the window: that board waits for its RX delay on its own clock, which runs at the
  wall-clock rate. A late frame that fits the window is then received as if on time;
- the link (`LinkSettings`) sets RSSI/SNR in both directions (else the sender's figures),
  drops frames with probability `loss` (seeded) or all of them when `out_of_range`, and a frame
  whose SNR is below the SF's demodulation floor is not heard.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from host_tools.lorawan.airtime import symbol_ms, time_on_air_ms
from host_tools.sim.air import LORA_BANDWIDTHS_HZ, Frame, LoraMeta

# Symbols of preamble a receiver needs to lock onto a packet; LoRaWAN frames carry 8.
MIN_DETECT_SYMBOLS = 4
AIR_PREAMBLE = 8
# SX1276 datasheet Table 13 (and SX1262 6.1.1.1): SNR below which a packet of that SF is lost.
SNR_FLOOR_DB = {5: -2.5, 6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
LDRO_SYMBOL_MS = 16.0
_HELD_MS = 60_000.0  # frames older than this (their end) are forgotten
_MAX_HELD = 64
_CLOCKS_MS = 60_000.0  # a board downlink maps its start to the clocks of nodes heard this recently
_MAX_CLOCKS = 16  # air.py's limit on t_sim_of
CODING_RATES = ("4/5", "4/6", "4/7", "4/8")


class AirPort(Protocol):
    """What a radio model needs from the board's virtual air (radio_link.LoraLink)."""

    @property
    def latency_s(self) -> float:
        """Real time the air may take to answer an uplink (0: nobody can answer)."""
        ...

    def transmit(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None: ...

    def listen(self, freq_hz: int | None, sf: int | None) -> None: ...


class BoardAirPort(AirPort, Protocol):
    """A port that also carries board downlinks and knows when a board may answer."""

    def transmit_down(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None: ...

    def board_wait_s(self, window_ms: float) -> float:
        """Real time after this radio's last uplink an empty window `window_ms` (simulated)
        after that uplink's end must wait for a gateway board's answer (0: no board)."""
        ...


@dataclass
class LinkSettings:
    """The path between this radio and the rest of the air (the `lora_link` command)."""

    rssi_dbm: float | None = None  # None: the sender's figure (downlinks), -80 on uplinks
    snr_db: float | None = None  # None: the sender's figure, 7.5 on uplinks
    loss: float = 0.0  # probability that a frame is lost, either way
    out_of_range: bool = False  # nothing gets through
    seed: int = 0

    def check(self) -> None:
        if not (math.isfinite(self.loss) and 0.0 <= self.loss <= 1.0):
            raise ValueError(f"loss must be a probability 0..1, not {self.loss!r}")
        if self.rssi_dbm is not None and not -200 <= self.rssi_dbm <= 30:
            raise ValueError(f"rssi_dbm {self.rssi_dbm!r} is not within -200..30")
        if self.snr_db is not None and not -40 <= self.snr_db <= 40:
            raise ValueError(f"snr_db {self.snr_db!r} is not within -40..40")


@dataclass(frozen=True)
class Modem:
    """A radio's modem settings as its registers or commands left them."""

    freq_hz: int
    sf: int
    bw_hz: int
    cr: int = 1  # 1..4: 4/5..4/8
    preamble: int = 8
    explicit: bool = True
    crc: bool = True
    ldro: bool = False
    iq_invert: bool = False
    public_sync: bool = True  # sync word 0x34 (SX127x) / 0x3444 (SX126x)
    lora: bool = True  # the LoRa modem is selected (not FSK)
    fault: str | None = None  # a chip setting that breaks demodulation, said by the chip model

    @property
    def symbol_ms(self) -> float:
        return symbol_ms(self.sf, self.bw_hz)

    def problem(self) -> str | None:
        """Why a LoRaWAN peer could not demodulate this modem's packets, or None."""
        if self.fault is not None:
            return self.fault
        if not self.lora:
            return "the LoRa modem is not selected (FSK mode)"
        if not 7 <= self.sf <= 12:
            return f"SF{self.sf} (not modelled on the air)"
        if self.bw_hz not in LORA_BANDWIDTHS_HZ:
            return f"bandwidth {self.bw_hz} Hz"
        if not self.explicit:
            return "implicit header"
        if not self.public_sync:
            return "sync word is not the public 0x34"
        if self.ldro != (self.symbol_ms > LDRO_SYMBOL_MS):
            return "low data rate optimisation is {} at SF{}/{} kHz".format(
                "on" if self.ldro else "off", self.sf, self.bw_hz // 1000
            )
        return None

    def time_on_air_ms(self, n: int) -> float:
        if self.sf < 7:  # SX126x SF5/6 (DS_SX1261-2 6.1.4): 6.25 sync symbols, no -20*IH
            t = self.symbol_ms
            num = 8 * n + (16 if self.crc else 0) - 4 * self.sf + (0 if self.explicit else -20) + 20
            blocks = max(math.ceil(num / (4 * self.sf)), 0)
            return (self.preamble + 6.25 + 8 + blocks * (self.cr + 4)) * t
        return time_on_air_ms(
            n,
            sf=self.sf,
            bw_hz=self.bw_hz,
            cr=self.cr,
            preamble=self.preamble,
            explicit_header=self.explicit,
            crc=self.crc,
            ldro=self.ldro,
        )


@dataclass
class Heard:
    """A frame this radio may hear: when it is on the air in this radio's simulated time."""

    payload: bytes
    meta: LoraMeta
    start_ms: float
    end_ms: float
    crc: bool  # the packet carries a payload CRC (uplinks do, LoRaWAN downlinks do not)
    crc_error: bool = False
    rssi_dbm: float = 0.0
    snr_db: float = 0.0
    real_end: float = 0.0  # time.monotonic() before which it is not complete (board downlinks)


@dataclass
class _Tx:
    modem: Modem
    payload: bytes
    start_ms: float
    end_ms: float
    timeout_at: float | None
    start_wall: float = 0.0  # time.time() at its start


@dataclass
class _Rx:
    modem: Modem
    open_ms: float
    deadline_ms: float | None  # None: continuous, or single without timeout
    single: bool
    caught: Heard | None = None


@dataclass
class Counters:
    tx_started: int = 0
    tx_aired: int = 0
    tx_unaired: int = 0
    tx_lost: int = 0  # link loss or out of range
    tx_timeouts: int = 0
    rx_windows: int = 0
    rx_frames: int = 0
    rx_timeouts: int = 0
    rx_lost: int = 0  # link loss, out of range, below the SNR floor
    last_unaired: str | None = None


class LoraCore:
    """TX and RX of one radio in simulated time, between a chip model and the air."""

    def __init__(self, now_ms: Callable[[], float]) -> None:
        self.now_ms = now_ms
        self.port: AirPort | None = None
        self.node_id: str | None = None  # the board's id on the air (set by its LoraLink)
        # node id -> (its clock minus ours at the end of its last uplink we heard, our time then)
        self._clocks: dict[str, tuple[float, float]] = {}
        self._last_tx_end_ms = -math.inf  # simulated end of this radio's last uplink
        self.link = LinkSettings()
        self._rng = random.Random(self.link.seed)
        self.counters = Counters()
        self._held: list[Heard] = []
        self._tx: _Tx | None = None
        self._rx: _Rx | None = None
        self._last_tx_real = -math.inf
        self.rx_packet: Heard | None = None  # the last packet received (poll_rx "done")

    # -- settings ----------------------------------------------------------------------------

    def set_link(self, **values: Any) -> LinkSettings:
        """Change some link settings (rssi_dbm, snr_db, loss, out_of_range, seed)."""
        merged = {**asdict(self.link), **values}
        link = LinkSettings(**merged)
        link.check()
        if "seed" in values or link.seed != self.link.seed:
            self._rng = random.Random(link.seed)
        self.link = link
        return link

    def _lost(self) -> bool:
        if self.link.out_of_range:
            return True
        return self.link.loss > 0 and self._rng.random() < self.link.loss

    # -- state -------------------------------------------------------------------------------

    @property
    def transmitting(self) -> bool:
        return self._tx is not None

    @property
    def receiving(self) -> bool:
        return self._rx is not None

    @property
    def packet_under_way(self) -> Heard | None:
        """The packet being received (preamble found, not yet complete)."""
        return self._rx.caught if self._rx is not None else None

    def stop(self) -> None:
        """The chip left TX or RX by a mode change: an unfinished TX never reaches the air."""
        self._tx = None
        self._rx = None

    def reset(self) -> None:
        self.stop()
        self._held.clear()
        self._clocks.clear()
        if self.port is not None:
            self.port.listen(None, None)

    def next_event_ms(self) -> float | None:
        """Simulated time of the next thing that happens without the node asking (a TX end)."""
        return self._tx.end_ms if self._tx is not None else None

    # -- TX ----------------------------------------------------------------------------------

    def start_tx(self, modem: Modem, payload: bytes, timeout_ms: float | None = None) -> float:
        """Start transmitting now; returns the simulated time the TX ends."""
        now = self.now_ms()
        self._rx = None
        end = now + modem.time_on_air_ms(len(payload))
        timeout_at = now + timeout_ms if timeout_ms else None
        self._tx = _Tx(modem, bytes(payload), now, end, timeout_at, time.time())
        self.counters.tx_started += 1
        if modem.iq_invert:
            self._air(self._tx)  # a board downlink is aired as it starts (see the header)
        return end

    def poll_tx(self, now: float) -> str | None:
        """'done' when the TX ended (and it is on the air), 'timeout' when the chip's own TX
        timeout came first, else None."""
        tx = self._tx
        if tx is None:
            return None
        if tx.timeout_at is not None and tx.timeout_at < tx.end_ms and now >= tx.timeout_at:
            self._tx = None
            self.counters.tx_timeouts += 1
            return "timeout"
        if now < tx.end_ms:
            return None
        self._tx = None
        if not tx.modem.iq_invert:
            self._air(tx)
        return "done"

    def _air(self, tx: _Tx) -> None:
        why = tx.modem.problem()
        port = self.port
        if why is None and tx.modem.iq_invert and not hasattr(port, "transmit_down"):
            why = "inverted IQ (a downlink): this radio's port carries no board downlinks"
        if why is None and tx.modem.freq_hz not in range(137_000_000, 1_020_000_001):
            why = f"frequency {tx.modem.freq_hz} Hz"
        if why is not None:
            self.counters.tx_unaired += 1
            self.counters.last_unaired = why
            return
        link = self.link
        snr = 7.5 if link.snr_db is None else link.snr_db
        if self._lost() or snr < SNR_FLOOR_DB[tx.modem.sf]:
            self.counters.tx_lost += 1
            return
        meta = LoraMeta(
            freq_hz=tx.modem.freq_hz,
            sf=tx.modem.sf,
            bw_hz=tx.modem.bw_hz,
            cr=CODING_RATES[tx.modem.cr - 1],
            rssi_dbm=-80.0 if link.rssi_dbm is None else link.rssi_dbm,
            snr_db=snr,
            t_wall_start=round(tx.start_wall, 3),
        )
        if tx.modem.iq_invert:
            meta = dataclasses.replace(
                meta, dir="down", t_sim_of=self._t_sim_of(tx.start_ms), t_wall_start=None
            )
            port.transmit_down(tx.payload, meta, int(tx.start_ms))  # type: ignore[union-attr]
        else:
            self._last_tx_real = time.monotonic()
            self._last_tx_end_ms = tx.end_ms
            if port is not None:
                port.transmit(tx.payload, meta, int(tx.end_ms))
        self.counters.tx_aired += 1

    def _t_sim_of(self, start_ms: float) -> tuple[tuple[str, int], ...]:
        # This radio's `start_ms` on the clocks of the nodes it heard recently.
        recent = sorted(self._clocks.items(), key=lambda kv: -kv[1][1])[:_MAX_CLOCKS]
        return tuple(
            sorted(
                (node, max(0, int(round(start_ms + offset))))
                for node, (offset, heard_ms) in recent
                if heard_ms > start_ms - _CLOCKS_MS
            )
        )

    # -- RX ----------------------------------------------------------------------------------

    def start_rx(self, modem: Modem, timeout_ms: float | None, single: bool = True) -> None:
        """Listen from now: single reception with a timeout (None: none), or continuous."""
        now = self.now_ms()
        self._tx = None
        deadline = now + timeout_ms if single and timeout_ms else None
        self._rx = _Rx(modem, now, deadline, single)
        self.counters.rx_windows += 1
        if self.port is not None and not modem.iq_invert and modem.problem() is None:
            self.port.listen(modem.freq_hz, modem.sf)  # other nodes' uplinks, node-to-node

    def receive(self, frame: Frame) -> None:
        """A frame the air delivered (a downlink for this node, a board's downlink, or another
        node's uplink)."""
        meta = frame.meta
        if not isinstance(meta, LoraMeta):
            return
        now = self.now_ms()
        down = meta.dir == "down"
        toa = self.frame_toa(frame)
        real_end = 0.0
        end = None
        if down and meta.dst is None:  # a board's: aired at its start, by a clock not ours
            mine = dict(meta.t_sim_of or ()).get(self.node_id or "")
            start = float(mine) if mine is not None else now
            real_end = time.monotonic() + toa / 1000.0  # its sender transmits that long
        elif down:
            start = float(frame.t_sim_ms) if frame.t_sim_ms is not None else now
        else:
            # Sent at its end, by a clock that is not ours and that may have run faster than
            # the wall clock during the TX: it was on the air for the real time it took.
            real_ms = toa
            if meta.t_wall_start is not None:
                real_ms = min(toa, max(0.0, (frame.t_wall - meta.t_wall_start) * 1000.0))
            start, end = now - real_ms, now
            if frame.t_sim_ms is not None:
                self._clocks[frame.src] = (frame.t_sim_ms - now, now)
                if len(self._clocks) > 4 * _MAX_CLOCKS:
                    oldest = min(self._clocks, key=lambda k: self._clocks[k][1])
                    del self._clocks[oldest]
        if end is None:
            end = start + toa
        self.hear(Heard(frame.payload, meta, start, end, crc=not down, real_end=real_end))

    @staticmethod
    def frame_toa(frame: Frame) -> float:
        """A frame's time on air as LoRaWAN sends it: 8 preamble symbols, explicit header, a
        payload CRC on uplinks only, LDRO when a symbol exceeds 16 ms."""
        meta = frame.meta
        if not isinstance(meta, LoraMeta) or not 7 <= meta.sf <= 12:
            return 0.0
        return time_on_air_ms(
            len(frame.payload),
            sf=meta.sf,
            bw_hz=meta.bw_hz,
            cr=CODING_RATES.index(meta.cr) + 1,
            preamble=AIR_PREAMBLE,
            crc=meta.dir == "up",
        )

    def hear(self, heard: Heard) -> None:
        """Hold a frame until the radio may receive it; link loss and SNR floor apply."""
        now = self.now_ms()
        self._held = [h for h in self._held if h.end_ms > now - _HELD_MS][-_MAX_HELD:]
        link = self.link
        heard.rssi_dbm = heard.meta.rssi_dbm if link.rssi_dbm is None else link.rssi_dbm
        heard.snr_db = heard.meta.snr_db if link.snr_db is None else link.snr_db
        floor = SNR_FLOOR_DB.get(heard.meta.sf, 0.0)
        if self._lost() or heard.snr_db < floor:
            self.counters.rx_lost += 1
            return
        self._held.append(heard)

    def poll_rx(self, now: float) -> str | None:
        """The RX outcome by `now`: 'done' (the packet is in rx_packet), 'timeout', or None
        while listening or receiving ('header' when a packet was found meanwhile is not
        reported separately: see packet_under_way)."""
        rx = self._rx
        if rx is None:
            return None
        if rx.caught is None:
            rx.caught = self._catch(rx, now)
        if rx.caught is not None:
            if now < rx.caught.end_ms or time.monotonic() < rx.caught.real_end:
                return None
            self.rx_packet = rx.caught
            self.counters.rx_frames += 1
            self._held.remove(rx.caught)
            if rx.single:
                self._rx = None
            else:
                # Continuous: listening again from RxDone (the packet's end), so a frame that
                # starts right after it is heard however late the driver polls.
                rx.open_ms = rx.caught.end_ms
                rx.caught = None
            return "done"
        if rx.single and rx.deadline_ms is not None and now >= rx.deadline_ms:
            if time.monotonic() < self._last_tx_real + self._answer_wait_s(rx.deadline_ms):
                return None  # a downlink for this window may still be on its way
            self._rx = None
            self.counters.rx_timeouts += 1
            return "timeout"
        return None

    def _answer_wait_s(self, deadline_ms: float) -> float:
        # Real time after the last uplink during which a downlink for a window ending at
        # deadline_ms may still arrive: a host tool's latency, or a board's RX delay too.
        port = self.port
        if port is None:
            return 0.0
        wait = port.latency_s
        board_wait = getattr(port, "board_wait_s", None)
        if board_wait is not None and math.isfinite(self._last_tx_end_ms):
            wait = max(wait, board_wait(deadline_ms - self._last_tx_end_ms))
        return wait

    def _catch(self, rx: _Rx, now: float) -> Heard | None:
        found: Heard | None = None
        for h in self._held:
            if h.start_ms > now or not self._matches(rx.modem, h):
                continue
            t_sym = symbol_ms(h.meta.sf, h.meta.bw_hz)
            if rx.open_ms > h.start_ms + (AIR_PREAMBLE - MIN_DETECT_SYMBOLS) * t_sym:
                continue  # the radio started listening after the preamble had passed
            if rx.deadline_ms is not None and h.start_ms > rx.deadline_ms:
                continue
            if found is None or h.start_ms < found.start_ms:
                found = h
        return found

    @staticmethod
    def _matches(modem: Modem, h: Heard) -> bool:
        meta = h.meta
        if modem.problem() is not None:
            return False
        if meta.sf != modem.sf or meta.bw_hz != modem.bw_hz:
            return False
        if abs(meta.freq_hz - modem.freq_hz) > modem.bw_hz / 4:
            return False
        return modem.iq_invert == (meta.dir == "down")

    def describe(self) -> dict[str, Any]:
        return {
            "link": asdict(self.link),
            "counters": asdict(self.counters),
            "held_frames": len(self._held),
            "state": "tx" if self._tx else "rx" if self._rx else "idle",
        }


def nominal_hz(hz: float) -> int:
    """A synthesizer frequency (61 Hz steps on SX127x, 0.95 Hz on SX126x) as the channel it
    was set for: rounded to 100 Hz, which recovers every LoRaWAN channel (multiples of 100 kHz).
    """
    return int(round(hz / 100.0)) * 100
