# The enabled sensors, built from /config.json "sensors" and /board.json: buses and pins come
# from the board file (never a board name in code), drivers from /lib/<kind>.py with the common
# shape of drivers/sensor.py. One failing sensor never stops the others: its channels are left
# out of the sample, it is listed in "missing", and its error is kept.
#
#   hub = Sensors(board, cfg["sensors"])
#   s = hub.sample(n=3, outlier=3.5)  # {"t":..., "values": {"sht4x.temperature": 21.4, ...},
#                                     #  "missing": [...], "errors": {...}, "raw": {...}}
import time

import machine
from micropython import const

# kind -> (module, class, default bus, default address)
_KINDS = {
    "battery": ("battery", "Battery", "adc", None),
    "sht4x": ("sht4x", "SHT4x", "i2c0", 0x44),
    "bme280": ("bme280", "BME280", "i2c0", 0x76),
    "ds18b20": ("ds18b20", "DS18B20", "onewire", None),
    "scd41": ("scd41", "SCD41", "i2c0", 0x62),
    "ina219": ("ina219", "INA219", "i2c0", 0x40),
    "soil": ("soil", "Soil", "adc", None),
}
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
# A sensor whose conversion takes this long (a DS18B20 at 11-12 bits, an SCD41's 5 s single
# shot) is read once per sample, not filter_n times: its chip averages internally, and N slow
# conversions would multiply the time awake.
_SLOW_MS = const(300)
_WAIT_SLICE_MS = const(1000)  # the longest sleep between watchdog feeds
# The switched rail's own rise (a load switch's turn-on and the decoupling charging) before a
# chip's power-up time starts: an SHT4x alone would otherwise be addressed right at its 1 ms
# t_PU and can still NACK.
_RAIL_RISE_MS = const(2)


def unload_drivers():
    # Drop the driver modules a console `read` imported (and the buses it built are dropped
    # with the hub): between requests of a long console session their bytecode would sit
    # between the requests' garbage and split the heap into holes too small for the next
    # command. A duty cycle never calls this: it reads once and sleeps.
    import sys

    for module, _, _, _ in _KINDS.values():
        sys.modules.pop(module, None)
    sys.modules.pop("analog", None)
    sys.modules.pop("sensor", None)


def sensor_id(entry):
    return entry.get("id") or entry["kind"]


class Sensors:
    def __init__(self, board, entries, feed=None):
        self._board = board
        self._feed = feed  # called at least every second while waiting: the watchdog's feed()
        self._entries = entries
        self._buses = {}  # type: dict
        self._devs = None  # type: dict | None  # sensor id -> driver, or its error text
        pins = board.get("pins", {})
        p = pins.get("sensor_power")
        self._power = machine.Pin(p, machine.Pin.OUT, value=0) if p is not None else None
        self.ids = [sensor_id(e) for e in entries]
        self.sensors_ms = 0
        self.decimals = {}  # type: dict  # channel -> decimal places of the driver's resolution

    # --- buses from the board file -------------------------------------------------------------
    def _bus(self, name, entry):
        if name == "adc":
            # Each analog sensor has its own pin: the board's battery divider, or options.pin.
            opts = entry.get("options") or {}
            if entry["kind"] == "battery":
                spec = self._board.get("pins", {}).get("battery_adc")
                if not spec:
                    raise OSError("this board has no battery ADC pin")
                return machine.ADC(machine.Pin(spec["pin"])), {"divider": spec["divider"]}
            if "pin" not in opts:
                raise ValueError("%s needs options.pin (an ADC pin)" % sensor_id(entry))
            return machine.ADC(machine.Pin(opts["pin"])), {}
        if name in self._buses:
            return self._buses[name], {}
        pins = self._board.get("pins", {})
        if name.startswith("i2c"):
            for spec in pins.get("i2c", ()):
                if "i2c%d" % spec["id"] == name:
                    bus = machine.I2C(
                        spec["id"], scl=machine.Pin(spec["scl"]), sda=machine.Pin(spec["sda"])
                    )
                    self._buses[name] = bus
                    return bus, {}
        elif name == "onewire" and pins.get("onewire") is not None:
            import onewire

            ow = onewire.OneWire(machine.Pin(pins["onewire"]))
            self._buses[name] = ow
            return ow, {}
        raise OSError("this board has no bus %s" % name)

    def _open(self):
        devs = {}  # type: dict
        self._devs = devs
        for entry in self._entries:
            sid = sensor_id(entry)
            kind = entry["kind"]
            module, cls, default_bus, default_addr = _KINDS[kind]
            try:
                mod = __import__(module)
            except ImportError:
                devs[sid] = "no %s driver in this firmware" % kind
                continue
            try:
                bus, extra = self._bus(entry.get("bus") or default_bus, entry)
                opts = dict(entry.get("options") or {})
                opts.update(extra)
                opts.pop("pin", None)
                addr = entry.get("addr", default_addr)
                args = (bus,) if addr is None else (bus, addr)
                devs[sid] = getattr(mod, cls)(*args, **opts)
            except (OSError, ValueError, TypeError, RuntimeError) as e:
                devs[sid] = _why(e)

    # --- power ------------------------------------------------------------------------------
    def power_on(self):
        if self._power is not None:
            self._power.on()
        warmup = 0
        for entry in self._entries:
            mod = _KINDS[entry["kind"]][0]
            try:
                warmup = max(warmup, getattr(__import__(mod), _KINDS[entry["kind"]][1]).WARMUP_MS)
            except (ImportError, AttributeError):
                pass
        if self._power is not None:
            self._wait(warmup + _RAIL_RISE_MS)
        self._open()

    def _wait(self, ms):
        # time.sleep_ms(ms), feeding the watchdog in between: a 5 s CO2 measurement outlasts the
        # RP2040's longest watchdog timeout (8.4 s) together with the warm-up.
        while ms > 0:
            step = min(ms, _WAIT_SLICE_MS)
            time.sleep_ms(step)
            ms -= step
            if self._feed is not None:
                self._feed()

    def power_off(self):
        self._devs = None
        if self._power is not None:
            self._power.off()

    # --- sampling ---------------------------------------------------------------------------
    def sample(self, n=1, outlier=0.0, raw=False):
        t0 = time.ticks_ms()
        own_power = self._devs is None
        if own_power:
            self.power_on()
        readings = {}  # type: dict  # channel -> [values]
        counts = {}
        errors = {}
        live = {}
        devs = self._devs or {}
        for sid, dev in devs.items():
            if isinstance(dev, str):
                errors[sid] = dev
            else:
                live[sid] = dev
        once = set()  # slow sensors: read on the first round only
        for i in range(n):
            wait = 0
            for sid in list(live):
                if sid in once:
                    continue
                try:
                    ms = live[sid].start()
                except (OSError, ValueError, RuntimeError) as e:
                    errors[sid] = _why(e)
                    del live[sid]
                    continue
                if ms >= _SLOW_MS:
                    once.add(sid)
                wait = max(wait, ms)
            if i and not wait and len(once) == len(live):
                break  # every sensor left is a slow one, already read
            self._wait(wait)
            for sid in list(live):
                dev = live[sid]
                if sid in once and i:
                    continue
                try:
                    vals = dev.read()
                except (OSError, ValueError, RuntimeError) as e:
                    errors[sid] = _why(e)
                    del live[sid]
                    continue
                res = getattr(dev, "RESOLUTION", ())
                for j, (q, v) in enumerate(zip(dev.QUANTITIES, vals)):
                    ch = sid + "." + q
                    readings.setdefault(ch, []).append(v)
                    if j < len(res):
                        self.decimals[ch] = _decimals(res[j])
                if raw and not i:
                    for q, v in zip(dev.QUANTITIES, dev.raw()):
                        counts[sid + "." + q] = v
        values = {}
        for ch, xs in readings.items():
            if ch.split(".")[0] in live:
                values[ch] = robust_mean(xs, outlier)
        if own_power:
            self.power_off()
        self.sensors_ms += time.ticks_diff(time.ticks_ms(), t0)
        out = {
            "t": time.time(),
            "values": values,
            "missing": [sid for sid in self.ids if sid in errors],
            "errors": errors,
        }
        if raw:
            out["counts"] = counts
        return out


def _why(e):
    return "%s: %s" % (type(e).__name__, e) if not isinstance(e, OSError) else str(e)


def _decimals(resolution):
    # 0.01 -> 2, 0.5 -> 1, 1 -> 0: how many decimals a value of that resolution needs.
    d = 0
    while resolution < 0.999999 and d < 6:
        resolution *= 10
        d += 1
    return d


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def robust_mean(xs, k):
    # The median of the readings; with k > 0, readings further than k robust standard deviations
    # (1.4826 * MAD) from it are dropped and the rest averaged.
    m = median(xs)
    if k <= 0 or len(xs) < 3:
        return m
    mad = median([abs(x - m) for x in xs]) * _MAD_TO_SIGMA
    kept = [x for x in xs if abs(x - m) <= k * mad] if mad else [x for x in xs if x == m]
    return sum(kept) / len(kept)
