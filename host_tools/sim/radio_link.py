"""The node's radios on the virtual air: BLE advertising (esp32 profile) and LoRa chips.

gap_advertise() on the node hands over the payload; the supervisor repeats it at the
advertising interval while the node is awake and the radio on, as the controller does on a real
chip. Intervals are kept in real time while awake (simulated time runs at the wall-clock rate
then), with a floor of 20 ms, the BLE minimum for legacy advertising.

A LoRa board's chip (board.json pins.radio) is a register/command-level model on its SPI bus
(peripherals/models/sx127x.py, sx126x.py), wired at power-on by soldered_radio(); LoraLink
connects it to the air (docs/radios.md).
"""

import os
import struct
import time
from typing import Any

from host_tools.sim import link
from host_tools.sim.air import (
    ADV_IND,
    ADV_NONCONN_IND,
    ROLE_LISTENER,
    ROLE_NODE,
    AirNode,
    BleAdvMeta,
    Frame,
    LoraMeta,
)
from host_tools.sim.clock import SimClock
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.models.sx126x import Sx126x
from host_tools.sim.peripherals.models.sx127x import Sx127x

_MIN_INTERVAL_S = 0.020


def bluetooth_mac(base: bytes) -> bytes:
    """The ESP32's Bluetooth address: its base MAC (machine.unique_id()) plus 2 (ESP-IDF's
    esp_read_mac); rom/bluetooth.py reports the same from BLE().config("mac")."""
    return ((int.from_bytes(base[:6], "big") + 2) % (1 << 48)).to_bytes(6, "big")


class BleAdvertiser:
    def __init__(self, air_node: AirNode, mac: bytes, clock: SimClock) -> None:
        self.air_node = air_node
        self.addr = ":".join(f"{b:02X}" for b in bluetooth_mac(mac))
        self.clock = clock
        self._payload = b""
        self._interval_s = 0.0
        self._connectable = False
        self._next = 0.0
        self.sent = 0

    def handle(self, req: link.Request) -> None:
        interval_us, connectable, adv_len, resp_len = struct.unpack_from("<IBBB", req.payload)
        adv = req.payload[7 : 7 + adv_len]
        if interval_us == 0 or not adv:
            self.stop()
            return
        self._payload = adv
        self._connectable = bool(connectable)
        self._interval_s = max(_MIN_INTERVAL_S, interval_us / 1e6)
        self._next = time.monotonic()
        self.tick()

    def stop(self) -> None:
        self._payload = b""

    def next_due(self) -> float | None:
        return self._next if self._payload else None

    def tick(self) -> None:
        if not self._payload or time.monotonic() < self._next:
            return
        meta = BleAdvMeta(
            addr=self.addr, adv_type=ADV_IND if self._connectable else ADV_NONCONN_IND
        )
        frame = Frame(
            src=self.air_node.node_id,
            payload=self._payload,
            meta=meta,
            t_sim_ms=int(self.clock.now_ms()),  # the air format's t_sim_ms is an integer
        )
        self.air_node.send(frame)
        self.sent += 1
        self._next = time.monotonic() + self._interval_s


# ---- LoRa ------------------------------------------------------------------------------------

# Real time an empty RX window waits after this node's last uplink before it reports its
# timeout, when a LoRa listener (a gateway) is on the air: the air is UDP between processes,
# and a host gateway needs a few milliseconds to answer while the node's simulated clock may
# run far ahead (models/lora.py). $MOTE_AIR_LATENCY_S overrides it.
AIR_LATENCY_S = 0.25
# A gateway-role board on the air answers on its own clock, which runs at the wall-clock rate
# while it listens: a node's empty RX window waits in real time until that board's RX delay
# has passed since the uplink (docs/virtual-air.md, "Board downlinks"), plus this much.
BOARD_LATENCY_S = 0.25


class LoraLink:
    """The board's LoRa radio model on the virtual air (the model's AirPort).

    The model puts its uplinks on the air through transmit() and its downlinks (inverted IQ:
    a gateway-role board answering) through transmit_down(); frames the air delivers to this
    node go to the model through deliver(); tick() lets a TX end on time when the node does
    not poll the chip. Without an air (script mode, --no-air) frames go nowhere and the radio
    hears only what the `lora_frame` control command injects.
    """

    def __init__(self, model: Sx127x | Sx126x, air_node: AirNode | None) -> None:
        self.model = model
        self.air_node = air_node
        self.sent = 0
        self._last_up: tuple[int, int] | None = None  # (freq_hz, sf) of the last uplink
        model.core.port = self
        model.core.node_id = air_node.node_id if air_node is not None else None
        env = os.environ.get("MOTE_AIR_LATENCY_S")
        self._latency_s = AIR_LATENCY_S if env is None else max(0.0, float(env))

    @property
    def latency_s(self) -> float:
        """The grace an empty RX window waits for: none unless someone may answer."""
        if self.air_node is None or self._latency_s == 0:
            return 0.0
        for peer in self.air_node.air.peers():
            if peer.role == ROLE_LISTENER and "lora-up" in peer.channels:
                return self._latency_s
        return 0.0

    def board_wait_s(self, window_ms: float) -> float:
        """How long (real time after the last uplink) an empty RX window ending `window_ms`
        after that uplink waits for a gateway-role board: one listens on the uplink's channel
        (a node registered for it), and it answers after its RX delay at the wall-clock rate."""
        if self.air_node is None or self._last_up is None:
            return 0.0
        channel = "lora-up:{}:{}".format(*self._last_up)
        for peer in self.air_node.air.peers():
            board = peer.role == ROLE_NODE and peer.port != self.air_node.port
            if board and channel in peer.channels:
                return max(0.0, window_ms) / 1000.0 + BOARD_LATENCY_S
        return 0.0

    # AirPort
    def transmit(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None:
        self._last_up = (meta.freq_hz, meta.sf)
        if self.air_node is None:
            return
        self.air_node.send(Frame(self.air_node.node_id, payload, meta, t_sim_ms))
        self.sent += 1

    def transmit_down(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None:
        """A downlink this board's radio transmits: to every node on the air (dst None)."""
        if self.air_node is None:
            return
        self.air_node.send(Frame(self.air_node.node_id, payload, meta, t_sim_ms))
        self.sent += 1

    def listen(self, freq_hz: int | None, sf: int | None) -> None:
        if self.air_node is not None and self.air_node.lora_rx != (
            None if freq_hz is None else (freq_hz, sf)
        ):
            self.air_node.set_lora_rx(freq_hz, sf)

    def deliver(self, frame: Frame) -> None:
        self.model.core.receive(frame)

    def next_due(self, clock: SimClock) -> float | None:
        """Monotonic time at which the model has something to do on its own (a TX end)."""
        at = self.model.next_event_ms()
        if at is None:
            return None
        return time.monotonic() + max(0.0, at - clock.now_ms()) / 1000.0

    def tick(self) -> None:
        self.model.update()


def soldered_radio(board: dict[str, Any], hw: BoardHardware, clock: SimClock) -> Sx127x | Sx126x:
    """The board's LoRa chip (board.json pins.radio) as a model on its bus, pins wired."""
    spec = board["pins"]["radio"]
    model = radio_model(hw, clock, spec["chip"], spec)
    hw.attach("spi", spec["spi"], model)
    return model


def radio_model(
    hw: BoardHardware, clock: SimClock, chip: str, pins: dict[str, Any]
) -> Sx127x | Sx126x:
    """A radio model with pins {"nss", "reset", "dio0" | "busy" + "dio1", "dio2_rf_switch",
    "tcxo_mv"} wired: its outputs drive the MCU's inputs, its reset input is watched. The
    caller attaches it to its SPI bus."""
    model: Sx127x | Sx126x
    outputs: tuple[str, ...]
    if chip == "sx1276":
        model = Sx127x(clock.now_ms, cs=int(pins["nss"]))
        outputs = ("dio0", "dio1")
    elif chip == "sx1262":
        model = Sx126x(
            clock.now_ms,
            cs=int(pins["nss"]),
            tcxo_mv=int(pins.get("tcxo_mv") or 0),
            rf_switch=bool(pins.get("dio2_rf_switch", False)),
        )
        outputs = ("busy", "dio1")
    else:
        raise ValueError(f"no model for LoRa chip {chip!r}; known: sx1276, sx1262")
    for name in outputs:
        if pins.get(name) is not None:
            hw.drive_pin(int(pins[name]), getattr(model, name))
    if pins.get("reset") is not None:
        hw.watch_pin(int(pins["reset"]), model.nreset)
    return model
