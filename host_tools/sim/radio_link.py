"""The node's radios on the virtual air: BLE advertising (esp32 profile).

gap_advertise() on the node hands over the payload; the supervisor repeats it at the
advertising interval while the node is awake and the radio on, as the controller does on a real
chip. Intervals are kept in real time while awake (simulated time runs at the wall-clock rate
then), with a floor of 20 ms, the BLE minimum for legacy advertising.
"""

import struct
import time

from host_tools.sim import link
from host_tools.sim.air import ADV_IND, ADV_NONCONN_IND, AirNode, BleAdvMeta, Frame
from host_tools.sim.clock import SimClock

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
