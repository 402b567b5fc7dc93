# The uplinks a report is handed to, by name from /config.json "uplinks". `console` writes the
# report as a protocol event frame on the serial line (docs/protocol.md); the radio uplinks
# (BTHome over BLE, LoRaWAN) come with their own modules and say so when this firmware lacks
# them. RADIO names the uplink's radio ("ble", "lora"; board.json power.radio_ma has its
# "<radio>_tx" and "<radio>_rx" currents). An uplink that measures its radio's time sets
# `radio_ms` ({"lora_tx": ms, "lora_rx": ms}) in send(); otherwise the whole send is charged at
# its radio's TX current, an upper bound.
# An uplink module's Uplink(board, st, cfg) gets /board.json, the retained-state dict (what it
# keeps there survives deep sleep: counters, a session) and the config; its `feed` attribute is
# then set to the watchdog's feed(), which a send that waits (RX windows) calls every second.
import time

from motekit import console, log


class ConsoleUplink:
    RADIO = None

    def send(self, report):
        console.event("report", data=report)


_MISSING = {}  # type: dict


def open_uplinks(names, board, st, cfg, feed=None):
    out = []
    for name in names:
        if name == "console":
            out.append((name, ConsoleUplink()))
            continue
        try:
            mod = __import__("motekit.up_" + name, None, None, ["Uplink"])
            up = mod.Uplink(board, st, cfg)
            up.feed = feed
            out.append((name, up))
        except ImportError:
            if name not in _MISSING:
                _MISSING[name] = True
                log.warning("uplink %s: not in this firmware" % name)
        except (OSError, ValueError, RuntimeError) as e:
            log.error("uplink %s: %s" % (name, e))
    return out


def send_all(uplinks, report, radio_on, radio_ms):
    # Returns the names that took the report; radio time per power figure ("ble_tx",
    # "lora_rx", ...) is added to radio_ms.
    sent = []
    for name, up in uplinks:
        if up.RADIO is not None and not radio_on:
            continue
        t0 = time.ticks_ms()
        try:
            up.send(report)
            sent.append(name)
        except (OSError, ValueError, RuntimeError) as e:
            log.error("uplink %s: %s" % (name, e))
        if up.RADIO is not None:
            spent = getattr(up, "radio_ms", None)
            if not spent:
                spent = {up.RADIO + "_tx": time.ticks_diff(time.ticks_ms(), t0)}
            for k in spent:
                radio_ms[k] = radio_ms.get(k, 0) + spent[k]
    return sent
