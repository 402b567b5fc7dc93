# Virtual-board `bluetooth` (esp32 profile only; the rp2 profile does not load it, so importing
# it there fails as on a Pico). Advertising only: each gap_advertise() hands the payload to the
# supervisor, which repeats it on the virtual air at the advertising interval while the node is
# awake. Scanning, connections and GATT are not simulated.
import struct

import _simlink
from micropython import const

_OP_BLE_ADV = const(0x42)
FLAG_READ = const(0x0002)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)


class UUID:
    def __init__(self, value):
        self._v = value

    def __eq__(self, other):
        return isinstance(other, UUID) and self._v == other._v

    def __repr__(self):
        return "UUID(%r)" % (self._v,)


class BLE:
    _instance = None

    def __new__(cls):
        # bluetooth.BLE() returns the one radio object, as on the port.
        if BLE._instance is None:
            BLE._instance = object.__new__(cls)
            BLE._instance._active = False
            BLE._instance._name = "MPY ESP32"
        return BLE._instance

    def __init__(self):
        pass

    def active(self, active=None):
        if active is None:
            return self._active
        self._active = bool(active)
        if not self._active:
            self._advertise(0, b"", b"", False)
        return self._active

    def config(self, *names, **kwargs):
        if "gap_name" in kwargs:
            self._name = kwargs["gap_name"]
        if names:
            if names[0] == "mac":
                # The base MAC (machine.unique_id()) plus 2, as ESP-IDF derives it.
                base = int.from_bytes(bytes(_simlink.P["unique_id"])[:6], "big")
                return (0, ((base + 2) % (1 << 48)).to_bytes(6, "big"))
            if names[0] == "gap_name":
                return self._name
            raise ValueError("unknown config param")
        return None

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if not self._active:
            raise OSError(19)  # ENODEV: the radio is off
        if adv_data is not None and len(adv_data) > 31:
            raise ValueError("advertising data too long")
        self._advertise(interval_us or 0, adv_data or b"", resp_data or b"", connectable)

    def _advertise(self, interval_us, adv, resp, connectable):
        hdr = struct.pack("<IBBB", interval_us, 1 if connectable else 0, len(adv), len(resp))
        _simlink.call(_OP_BLE_ADV, hdr + bytes(adv) + bytes(resp))
