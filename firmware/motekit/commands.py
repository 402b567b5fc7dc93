# The console commands (docs/protocol.md, "Commands"): each takes the request dict and returns
# the reply's data, or raises console.Refused. They act on the running App (app.py).
import binascii
import gc
import os
import time

import machine

from motekit import VERSION, cal, config, console, log, secrets, sensors
from motekit import stats as stats_mod
from motekit.console import Refused


def _op(req, ops):
    op = req.get("op")
    if op not in ops:
        raise Refused("bad_args", "op must be one of %s" % ", ".join(ops))
    return op


def fs_free():
    try:
        st = os.statvfs("/")
        return st[0] * st[4]
    except (OSError, AttributeError):
        return -1


def _deployed():
    from motekit import deployed

    return deployed


def _free_heap():
    gc.collect()  # what is free for live objects, not what garbage happens to hold
    return gc.mem_free()


def handlers(app):
    def ping(req):
        return {"proto": console.PROTO}

    def hold(req):
        was = app.mode in ("held", "safe")
        if app.mode != "safe":
            app.mode = "held"
        return {"held": True, "was_held": was, "proto": console.PROTO, "mode": app.mode}

    def release(req):
        app.console.after = "release"
        return {"held": False}

    def info(req):
        cfg = app.cfg
        out = {
            "device_id": binascii.hexlify(machine.unique_id()).decode(),
            "board": app.board.get("name"),
            "mcu": app.board.get("mcu"),
            "fw": VERSION,
            "build": _deployed().build(),
            "proto": console.PROTO,
            "reset_cause": app.cause,
            "uptime_ms": time.ticks_ms(),
            "wakes": app.st.get("wakes", 0),
            "mode": app.mode,
            "config": {
                "sample_period": cfg["sample_period"],
                "heartbeat": cfg["heartbeat"],
                "batch": cfg["batch"],
                "sensors": [sensors.sensor_id(e) for e in cfg["sensors"]],
                "uplinks": cfg["uplinks"],
            },
            "secrets": secrets.fingerprints(),
            "free_heap": _free_heap(),
            "fs_free": fs_free(),
        }
        if app.mode == "safe":
            out["safe_reason"] = app.safe_reason
        if app.problems:
            out["config_problems"] = app.problems
        if app.cal_problems:
            out["cal_problems"] = app.cal_problems
        return out

    def read(req):
        n = req.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise Refused("bad_args", "n must be 1..10")
        raw = req.get("raw", False) is True
        only = req.get("sensors")  # a list of sensor ids: read just those (calibration)
        if only is not None and not isinstance(only, list):
            raise Refused("bad_args", "sensors must be a list of sensor ids")
        hub = None
        if only is not None:
            entries = [e for e in app.cfg["sensors"] if sensors.sensor_id(e) in only]
            hub = sensors.Sensors(app.board, entries, app.feed)
        out = {"samples": [app.sample(raw=raw, hub=hub) for _ in range(n)]}
        # Between console requests the drivers' bytecode would sit among each request's
        # garbage and leave only holes for the next command (sensors.unload_drivers).
        app.hub = None
        sensors.unload_drivers()
        return out

    def config_cmd(req):
        op = _op(req, ("list", "get", "set", "reset"))
        if op == "list":
            return {"values": app.cfg, "schema": config.entries(), "version": config.VERSION}
        key = req["key"]
        if not isinstance(key, str):
            raise Refused("bad_args", "key must be a string")
        try:
            if op == "get":
                return {"key": key, "value": config.get(app.cfg, key)}
            if op == "set":
                value = config.set(app.cfg, key, req["value"])
            else:
                value = config.reset(app.cfg, key)
        except config.UnknownKey as e:
            raise Refused("bad_key", str(e)) from None
        except config.Invalid as e:
            raise Refused("bad_value", str(e)) from None
        app.configured()
        log.info("config %s set" % key)
        return {"key": key, "value": value}

    def secret(req):
        op = _op(req, ("set", "list"))
        if op == "list":
            return {"secrets": secrets.fingerprints()}
        name, value = req["name"], req["value"]
        try:
            fp = secrets.set(name, value)
        except ValueError as e:
            raise Refused("bad_value", str(e)) from None
        log.info("secret %s set (%s)" % (name, fp))
        return {"name": name, "fingerprint": fp}

    def cal_cmd(req):
        # calcmd.py for this request only: its heap is free again for the next `read`.
        return cal.rules(lambda calcmd: calcmd.handle(app, req))

    def logs(req):
        out = {"entries": log.entries(), "dropped": log.dropped()}
        if req.get("clear") is True:
            log.clear()
        return out

    def stats(req):
        out = {"last": app.st.get("stats", {}), "totals": app.st.get("tot", {})}
        if "lws" in app.st:  # the LoRaWAN uplink's counters (docs/lorawan.md, "Stats")
            out["lorawan"] = app.st["lws"]
        return out

    def selftest(req):
        checks = []

        def check(name, ok, msg=""):
            checks.append({"name": name, "ok": ok, "msg": msg})

        check("board", bool(app.board.get("name")), "board.json: %s" % app.board.get("name"))
        check("config", not app.problems, "; ".join(app.problems) or "valid")
        free = fs_free()
        check("filesystem", free > 16384, "%d bytes free" % free)
        n = sum(1 for e in app.cal.values() if e is not None)
        msg = "%d channel(s) calibrated" % n
        check("calibration", not app.cal_problems, "; ".join([msg] + app.cal_problems))
        s = app.sample()
        for sid in s["missing"]:
            check("sensor " + sid, False, s["errors"].get(sid, "missing"))
        for ch, v in s["values"].items():
            check("sensor " + ch, True, "%s" % v)
        fps = secrets.fingerprints()
        if "lorawan" in app.cfg["uplinks"] and "lorawan.appkey" not in fps:
            check("secrets", False, "lorawan uplink enabled but lorawan.appkey not set")
        stats_mod.mark()
        check("heap", True, "%d bytes free, peak %d" % (gc.mem_free(), stats_mod.peak()))
        return {"ok": all(c["ok"] for c in checks), "checks": checks}

    def reboot(req):
        app.console.after = "reboot"
        return {}

    def deploy(req):
        # A deploy begins: mark it, then reset into the REPL (main.py sees the mark), where the
        # host copies files with the watchdog off and the app stopped.
        _deployed().begin()
        app.console.after = "reboot"
        return {"reboot": True}

    def sleep(req):
        ms = req.get("ms")
        if ms is not None and (not isinstance(ms, int) or ms < 0):
            raise Refused("bad_args", "ms must be a non-negative integer")
        app.console.after = ("sleep", ms)
        return {}

    return {
        "ping": ping,
        "hold": hold,
        "release": release,
        "info": info,
        "read": read,
        "config": config_cmd,
        "secret": secret,
        "cal": cal_cmd,
        "logs": logs,
        "stats": stats,
        "selftest": selftest,
        "reboot": reboot,
        "deploy": deploy,
        "sleep": sleep,
    }
