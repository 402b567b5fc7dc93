# The node application: wake, sample, decide, report, sleep; always reachable from a laptop.
#
#   from motekit import app
#   app.run()                      # from /main.py; returns only when the host stops it
#
# Each wake: reset cause -> crash bookkeeping (safe mode after cfg safe_mode_after crashes in a
# row) -> host-wait window after a power-on or reset (not after a deep-sleep wake) -> watchdog on
# -> power the sensors, sample, filter, calibrate -> decide -> uplinks -> save retained state ->
# sleep until the next period, kept wake to wake. Boards with RTC memory deep sleep; the others
# (rp2, whose deepsleep loses RAM) stay in this loop and lightsleep. docs/node-files.md has more.
import json
import sys
import time

import machine

from motekit import VERSION, cal, config, log, report, stats, store
from motekit.retained import Retained
from motekit.sensors import Sensors

_CAUSES = ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET")
_HYSTERESIS_V = 0.1  # battery must recover this far above a threshold to leave it


def reset_cause_name():
    cause = machine.reset_cause()
    for name in _CAUSES:
        if getattr(machine, name, None) == cause:
            return name
    return "UNKNOWN_%d" % cause


def _now_ms():
    return time.time_ns() // 1_000_000


class App:
    def __init__(self):
        self.boot_ticks = time.ticks_ms()
        board, _ = store.read_json("/board.json")
        self.board = board if isinstance(board, dict) else {}
        self.cause = reset_cause_name()
        self.cfg, self.problems = config.load()
        log.set_level(self.cfg["log_level"])
        self.cal, self.cal_problems = cal.load()
        sleep = self.board.get("sleep") or {}
        self.deep = sleep.get("mode", "deep") == "deep"
        self.retained = Retained(sleep.get("rtc_memory_bytes", 0) if self.deep else 0)
        st = self.retained.load()
        if st is None:
            st = {}
            if self.retained.problem == "crc":
                log.warning("retained state failed its CRC: starting afresh")
        else:
            log.restore(st.get("log", []), st.get("drop", 0))
        self.st = st
        self.mode = "run"
        self.safe_reason = None
        self.wdt = None
        self.wdt_ms = 0
        self.hub = None
        self._console = None
        for p in self.problems:
            log.warning("config: " + p)
        for p in self.cal_problems:
            log.warning(p)

    # Modules most wakes never need are imported when needed: on an ESP32 every wake is a boot,
    # and each module's bytecode costs heap (docs/node-files.md, "Heap budget").
    @property
    def console(self):
        if self._console is None:
            from motekit import console

            self._console = console.Console(self._handlers)
        return self._console

    def _handlers(self):
        from motekit import commands

        return commands.handlers(self)

    # --- things the console commands call -------------------------------------------------------
    def configured(self):
        log.set_level(self.cfg["log_level"])
        self.problems = []

    def calibrated(self):
        # /cal.json changed (the `cal` command): load it again.
        self.cal, self.cal_problems = cal.load()

    def sample(self, raw=False, hub=None):
        hub = hub or Sensors(self.board, self.cfg["sensors"], self.feed)
        self.hub = hub
        s = hub.sample(self.cfg["filter_n"], self.cfg["outlier"], raw)
        values = s["values"]
        if raw:
            s["raw"] = {ch: self._round(hub, ch, v) for ch, v in values.items()}
        uncal = cal.apply(self.cal, values)
        for ch in values:
            values[ch] = self._round(hub, ch, values[ch])
        if uncal:
            s["uncal"] = uncal  # calibrated channels whose calibration could not be applied
        return s

    def _round(self, hub, ch, v):
        d = hub.decimals.get(ch)
        return v if d is None else round(v, d)

    # --- boot -------------------------------------------------------------------------------------
    def boot(self):
        print("motekit %s board=%s reset=%s" % (VERSION, self.board.get("name"), self.cause))
        self.st["wakes"] = self.st.get("wakes", 0) + 1
        if self.cause != "DEEPSLEEP_RESET":
            self.st.pop("next", None)  # a reset starts a new schedule: no missed periods
        if self.cause == "WDT_RESET":
            # A hang: RTC memory holds the last save, which can be older than the numbers that
            # went out since. The report sequence resumes from its flash reservation.
            self.st.pop("seq", None)
            self.st.pop("seq_lim", None)
        crashes = self.retained.crashes(self.st)
        if crashes >= self.cfg["safe_mode_after"]:
            why = self.retained.crash_why(self.st) or self.cause
            self.mode = "safe"
            self.safe_reason = "the app failed %d boots in a row (last: %s)" % (crashes, why)
            log.error("SAFE MODE: " + self.safe_reason)
            print("motekit: safe mode, the duty cycle is off; `mote release` runs it again")
        else:
            self.retained.set_crashes(self.st, crashes + 1)

    def crashed(self, exc):
        why = "%s: %s" % (type(exc).__name__, exc)
        log.error("crash: " + why)
        try:
            self.retained.set_crashes(self.st, self.retained.crashes(self.st), why)
            self.retained.save(self.st)
        except (OSError, ValueError) as e:
            print("motekit: could not save state: %s" % e)

    # --- console mode -----------------------------------------------------------------------------
    def listen(self, window_ms):
        # Serve the console for window_ms (or until released when held or in safe mode).
        # Returns "run", "reboot" or ("sleep", ms).
        start = time.ticks_ms()
        from motekit import console

        console.event("listen", ms=window_ms if self.mode == "run" else -1, mode=self._mode())
        if self.mode == "run":
            print("motekit: host window %d ms (send hold to stay awake)" % window_ms)
        while True:
            if self.wdt is not None:
                self.wdt.feed()
            left = 500
            if self.mode == "run":
                left = min(left, window_ms - time.ticks_diff(time.ticks_ms(), start))
                if left <= 0:
                    return "run"
            self.console.serve(left)
            action = self.console.after
            if action is not None:
                self.console.after = None
                if action == "release":
                    if self.mode == "safe":
                        self.retained.set_crashes(self.st, 0)
                        log.info("safe mode left by the host")
                    self.mode = "run"
                    return "run"
                return action

    def _mode(self):
        return "window" if self.mode == "run" else self.mode

    # --- the duty cycle ---------------------------------------------------------------------------
    def feed(self):
        # Called through long waits (sensor conversions): the watchdog, and a host waiting for
        # the reply to a console request.
        if self.wdt is not None:
            self.wdt.feed()
        if self._console is not None:
            self._console.busy()

    def arm_watchdog(self):
        if self.wdt is None:
            self.wdt_ms = min(self.cfg["watchdog_ms"], self.board.get("watchdog_max_ms", 8000))
            self.wdt = machine.WDT(timeout=self.wdt_ms)

    def cycle(self, t0):
        st = self.st
        cfg = self.cfg
        stats.reset_peak()
        writes0 = store.writes
        now = _now_ms()
        if "next" not in st:
            st["next"] = now
        due = st["next"]  # when this wake was due: the schedule, whatever the boot cost
        hub = Sensors(self.board, cfg["sensors"], self.feed)
        hub.power_on()
        stats.mark()
        s = self.sample(hub=hub)
        hub.power_off()
        stats.mark()
        alarms = self._alarms(s)
        self._ema(s["values"])
        now_s = time.time()
        queued = {"t": s["t"], "values": s["values"]}
        if s["missing"]:
            queued["missing"] = s["missing"]
        if "uncal" in s:
            queued["uncal"] = s["uncal"]
        reasons, send = report.decide(st, queued, cfg, now_s, alarms)
        cap = self.retained.capacity
        if not send and st["batch"] and cap and len(json.dumps(st["batch"])) > cap // 2:
            send = True  # the batch must fit in RTC memory: send what we have
            reasons.append("batch")
        stats.mark()
        radio_ms = {}  # type: dict
        if send:
            from motekit import uplinks
            from motekit.nvcounter import NvCounter

            seq = NvCounter("/seq.json", st, "seq").next()
            rep = report.build(st, seq, reasons, self._battery(s), st.get("faults", []))
            ups = uplinks.open_uplinks(cfg["uplinks"], self.board, st, cfg, self.feed)
            took = uplinks.send_all(ups, rep, not st.get("crit"), radio_ms)
            log.debug("report %d (%s) to %s" % (seq, ",".join(reasons), ",".join(took)))
            st["batch"] = []
            st["last_up"] = now_s
        stats.mark()
        # Wake to wake: the next wake is one period after this one was due, whatever this cost.
        period_ms = cfg["sample_period"] * 1000
        if st.get("low"):
            period_ms *= cfg["low_battery_factor"]
        nxt = st["next"] + period_ms
        now = _now_ms()
        missed = 0
        while nxt <= now:
            nxt += period_ms
            missed += 1
        if missed:
            log.warning("missed %d period(s)" % missed)
        st["next"] = nxt
        sleep_ms = nxt - now
        awake_ms = time.ticks_diff(time.ticks_ms(), t0)
        cyc = stats.cycle(
            self.board,
            awake_ms,
            hub.sensors_ms,
            radio_ms,
            store.writes - writes0,
            sleep_ms,
            cfg["battery_mah"],
        )
        st["stats"] = cyc
        tot = st.setdefault("tot", {})
        stats.add_totals(tot, cyc, send, missed)
        vals = " ".join("%s=%s" % (k, _fmt(v)) for k, v in s["values"].items())
        print(
            "motekit: cycle %d t=%d %s%s%s, next in %d ms"
            % (
                tot["cycles"],
                due // 1000,
                vals,
                " missing=" + ",".join(s["missing"]) if s["missing"] else "",
                " report=" + ",".join(reasons) if send else "",
                sleep_ms,
            )
        )
        return sleep_ms

    def _battery(self, s):
        for e in self.cfg["sensors"]:
            if e["kind"] == "battery":
                return s["values"].get((e.get("id") or "battery") + ".voltage")
        return None

    def _alarms(self, s):
        st = self.st
        cfg = self.cfg
        alarms = []
        faults = st.get("faults", [])
        for sid in s["missing"]:
            if sid not in faults:
                log.warning("%s missing: %s" % (sid, s["errors"].get(sid)))
                alarms.append("alarm")
        for sid in faults:
            if sid not in s["missing"]:
                log.info("%s is back" % sid)
                alarms.append("alarm")
        st["faults"] = s["missing"]
        v = self._battery(s)
        if v is not None:
            low, crit = st.get("low", False), st.get("crit", False)
            if not low and v < cfg["low_battery_v"]:
                st["low"] = True
                log.warning("battery low (%.2f V): period x%d" % (v, cfg["low_battery_factor"]))
                alarms.append("low_battery")
            elif low and v > cfg["low_battery_v"] + _HYSTERESIS_V:
                st["low"] = False
                log.info("battery ok (%.2f V)" % v)
            if not crit and v < cfg["critical_battery_v"]:
                st["crit"] = True
                log.error("battery critical (%.2f V): radio off" % v)
            elif crit and v > cfg["critical_battery_v"] + _HYSTERESIS_V:
                st["crit"] = False
                log.info("battery above critical (%.2f V): radio on" % v)
        return alarms

    def _ema(self, values):
        a = self.cfg["ema_alpha"]
        if a <= 0:
            self.st.pop("ema", None)
            return
        ema = self.st.setdefault("ema", {})
        for ch, v in values.items():
            prev = ema.get(ch)
            ema[ch] = v if prev is None else a * v + (1 - a) * prev
            values[ch] = self._round(self.hub, ch, ema[ch])

    # --- sleeping ---------------------------------------------------------------------------------
    def sleep_until(self, target_ms):
        # Sleep to a wall-clock time (ms since 2000), measured now: saving the state and
        # anything else done since the cycle ended does not make the wake late.
        self.retained.save(self.st)
        if self.deep:
            machine.deepsleep(max(1, target_ms - _now_ms()))
        # No RTC memory: lightsleep, in slices the watchdog outlives, to the target.
        while True:
            left = target_ms - _now_ms()
            if left <= 0:
                return
            if self.wdt is not None:
                self.wdt.feed()
                left = min(left, self.wdt_ms // 2)
            machine.lightsleep(left)

    def main(self):
        if self.mode == "safe":
            action = self.listen(-1)
        elif self.cause != "DEEPSLEEP_RESET" and self.cfg["host_wait_ms"] > 0:
            action = self.listen(self.cfg["host_wait_ms"])
        else:
            action = "run"
        t0 = 0 if self.cause == "DEEPSLEEP_RESET" else time.ticks_ms()
        while True:
            if action == "reboot":
                self.retained.save(self.st)
                time.sleep_ms(50)  # let the reply leave the UART
                machine.reset()
            if action == "run":
                self.arm_watchdog()
                self.cycle(t0)
                target = self.st["next"]
                if self.retained.crashes(self.st):
                    self.retained.set_crashes(self.st, 0)
                if _input_waiting():
                    self.console.serve(0)  # a hold sent while we were awake
                if self.mode == "held":
                    action = self.listen(-1)
                    if action == "run":  # released: this period's cycle is done, sleep it out
                        action = ("sleep", None)
                    continue
            else:  # ("sleep", ms) from the console: for ms, or to the next wake
                ms = action[1]
                target = self.st.get("next", _now_ms()) if ms is None else _now_ms() + ms
            self.sleep_until(target)
            action = "run"
            t0 = time.ticks_ms()


def _input_waiting():
    import select

    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    return bool(p.poll(0))


def _fmt(v):
    return "%.2f" % v if isinstance(v, float) else str(v)


def run():
    app = App()
    app.boot()
    try:
        if app.cfg["role"] == "gateway" and app.mode != "safe":
            from motekit import gateway

            gateway.run(app)  # forwards LoRa frames over the console; never returns
        else:
            app.main()
    except KeyboardInterrupt:
        app.retained.set_crashes(app.st, max(0, app.retained.crashes(app.st) - 1))
        print("motekit: stopped by host")
    except Exception as e:  # noqa: BLE001  the last line of defence: log, count, restart
        sys.print_exception(e)
        app.crashed(e)
        time.sleep_ms(100)
        machine.reset()
