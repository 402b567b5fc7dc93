"""A motekit node in CPython, as far as the console protocol goes: for the host-side tests.

It speaks docs/protocol.md over a file descriptor (one end of a socketpair, or a pty's master)
from a thread, with its own framing code (binascii, regexes), not host_tools'. Its knobs model
what a real node does to a host: sleeping through frames, losing a reply, sitting at the
MicroPython REPL, speaking another protocol version.

    with FakeNode(fd, wake_after=3) as node:    # asleep for the first 3 frames
        ...
        node.executed                           # [(id, cmd), ...] what it ran, once each
"""

import binascii
import json
import os
import re
import select
import threading
import time
from typing import Any

_FRAME = re.compile(rb"@M(\d) (\d{1,5}) (.*) ([0-9a-f]{8})", re.DOTALL)
BANNER = (
    b"MicroPython v1.29.0 on 2026-01-01; Fake board with ESP32\r\n"
    b'Type "help()" for more information.\r\n'
)

SCHEMA: list[dict[str, Any]] = [
    {"key": "sample_period", "type": "int", "default": 60, "unit": "s", "min": 10, "max": 86400,
     "doc": "seconds between wakes"},
    {"key": "log_level", "type": "str", "default": "info", "unit": "",
     "choices": ["debug", "info", "warning", "error"], "doc": "lowest level kept"},
    {"key": "uplinks", "type": "list", "default": ["console"], "unit": "", "items": "str",
     "doc": "where reports go"},
    {"key": "ema_alpha", "type": "float", "default": 0.0, "unit": "", "min": 0.0, "max": 1.0,
     "doc": "smoothing"},
    {"key": "led", "type": "bool", "default": False, "unit": "", "doc": "blink on wake"},
]  # fmt: skip


def frame(fid: int, obj: dict[str, Any], version: int = 1) -> bytes:
    # As MicroPython's json.dumps writes it: ", " and ": " separators.
    head = f"@M{version} {fid} {json.dumps(obj)} ".encode()
    return head + b"%08x\r\n" % (binascii.crc32(head) & 0xFFFFFFFF)


class FakeNode:
    def __init__(
        self,
        fd: int,
        *,
        held: bool = False,
        wake_after: int = 0,
        nap: int = 2,
        repl: str = "",
        prompt: bool = False,
        main_py: bool = True,
        speaks: int = 1,
        says_proto: int = 1,
        refuse_version: bool = False,
        selftest_ok: bool = True,
    ) -> None:
        self.fd = fd
        self.held = held
        self.asleep_for = 0 if held else wake_after  # frames slept through before a window
        self.nap = nap  # frames slept through after a release (its duty cycle), then a window
        self.repl = repl  # "", "friendly" or "raw": where a stopped node sits
        self.prompt = prompt  # its last prompt is still to be read (else it was lost)
        self.main_py = main_py  # a soft reset starts motekit
        self.speaks = speaks
        self.says_proto = says_proto
        self.refuse_version = refuse_version
        self.selftest_ok = selftest_ok
        self.drop_reply: set[str] = set()  # commands whose first reply is lost on the way
        self.refuse_once: set[str] = set()  # commands whose first frame arrives damaged
        self.override: dict[str, dict[str, Any]] = {}  # cmd -> the whole reply to send
        self.before_reply: list[bytes] = []  # sent before the next reply (text, events)
        # cmd -> (n, seconds): works that long before replying, sending `busy` every interval
        self.slow: dict[str, tuple[int, float]] = {}
        self.received: list[tuple[int, dict[str, Any]]] = []  # frames heard while listening
        self.ignored: list[bytes] = []  # frames sent while it slept
        self.executed: list[tuple[int, str]] = []
        self.raw_input = bytearray()  # every byte the host sent
        self.config: dict[str, Any] = {e["key"]: e["default"] for e in SCHEMA}
        self.logs = [[86400, "I", "boot"], [86460, "W", "bme280: no answer"]]
        self._line = bytearray()
        self._block = False  # the friendly REPL is in a `... ` continuation
        self._last_id = -1
        self._last_reply = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "FakeNode":
        if self.repl == "raw":
            self._out(b"raw REPL; CTRL-B to exit\r\n>")
        elif self.repl == "friendly" and self.prompt:
            self._out(b">>> ")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def cmds(self) -> list[str]:
        return [cmd for _, cmd in self.executed]

    def emit(self, data: bytes) -> None:
        with self._lock:
            self._out(data)

    # ---- the line --------------------------------------------------------------------------

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw_input += data
                for c in data:
                    self._byte(c)

    def _byte(self, c: int) -> None:
        if self.repl == "raw":
            if c == 0x02:  # Ctrl-B: to the friendly REPL
                self.repl = "friendly"
                self._out(b"\r\n" + BANNER + b">>> ")
            return  # everything else waits for a Ctrl-D that never comes
        if self.repl == "friendly":
            self._repl_byte(c)
            return
        if c == 0x0A:
            self._frame_line(bytes(self._line).rstrip(b"\r"))
            self._line.clear()
        elif len(self._line) < 1024:
            self._line.append(c)

    def _repl_byte(self, c: int) -> None:
        # Just enough of MicroPython's readline and pyexec for a host that types frames.
        if c == 0x03:  # Ctrl-C: drop the line
            self._line.clear()
            self._block = False
            self._out(b"\r\n>>> ")
        elif c == 0x02:
            self._out(b"\r\n" + BANNER + b">>> ")
        elif c == 0x04 and not self._line:
            self._out(b"\r\nMPY: soft reboot\r\n")
            if self.main_py:
                self.repl = ""
                self._boot()
            else:
                self._out(BANNER + b">>> ")
        elif c in (0x0A, 0x0D):
            line = bytes(self._line)
            self._line.clear()
            self._out(b"\r\n")
            if line.startswith(b"@") or (self._block and line.strip()):
                self._block = True  # a decorator: the REPL waits for the rest
                self._out(b"... ")
            elif self._block or line.strip():
                self._block = False
                self._out(b"Traceback (most recent call last):\r\n  File \"<stdin>\", line 1\r\n"
                          b"SyntaxError: invalid syntax\r\n>>> ")  # fmt: skip
            else:
                self._out(b">>> ")
        elif c >= 0x20:
            self._line.append(c)
            self._out(bytes([c]))  # readline echoes as it goes, after the prompt

    def _boot(self) -> None:
        self.held = False
        self.asleep_for = 0
        self._last_id = -1
        self._out(b"motekit 0.2.0 board=fake reset=PWRON_RESET\r\n")
        self._send(0, {"ev": "listen", "ms": 3000, "mode": "window"})

    def _send(self, fid: int, obj: dict[str, Any]) -> bytes:
        out = frame(fid, obj, self.speaks)
        self._out(out)
        return out

    def _frame_line(self, raw: bytes) -> None:
        if not raw.startswith(b"@M"):
            return
        if self.asleep_for > 0:
            self.ignored.append(raw)
            self.asleep_for -= 1
            if self.asleep_for == 0:  # woke up: the host-wait window opens
                self._out(b"motekit: host window 3000 ms (send hold to stay awake)\r\n")
                self._send(0, {"ev": "listen", "ms": 3000, "mode": "window"})
            return
        m = _FRAME.fullmatch(raw)
        crc_ok = m and binascii.crc32(raw[: m.start(4)]) & 0xFFFFFFFF == int(m[4], 16)
        if not m or not crc_ok:
            self._send(0, {"ok": False, "err": "bad_frame", "msg": "crc mismatch"})
            return
        if int(m[1]) != self.speaks or self.refuse_version:
            msg = f"this node speaks protocol {self.says_proto}"
            self._send(0, {"ok": False, "err": "bad_version", "msg": msg, "proto": self.says_proto})
            return
        fid, req = int(m[2]), json.loads(m[3])
        cmd = req.get("cmd")
        if cmd in self.refuse_once:
            self.refuse_once.discard(cmd)
            self._send(0, {"ok": False, "err": "bad_frame", "msg": "crc mismatch"})
            return
        self.received.append((fid, req))
        for data in self.before_reply:
            self._out(data)
        self.before_reply = []
        if fid == self._last_id:
            self._out(self._last_reply)
            return
        n_busy, interval = self.slow.get(cmd, (0, 0.0))
        for _ in range(n_busy):
            time.sleep(interval)
            self._send(fid, {"busy": True})
        time.sleep(interval)
        reply = self.override.get(cmd) or self._execute(cmd, req)
        self.executed.append((fid, cmd))
        self._last_id = fid
        self._last_reply = frame(fid, reply, self.speaks)
        if cmd in self.drop_reply:
            self.drop_reply.discard(cmd)
        else:
            self._out(self._last_reply)
        if cmd == "release" and reply.get("ok"):
            self.asleep_for = self.nap  # back to its duty cycle: samples, then sleeps
        if cmd == "reboot":
            self._boot()

    # ---- the commands ----------------------------------------------------------------------

    def _execute(self, cmd: str, req: dict[str, Any]) -> dict[str, Any]:
        fn = getattr(self, "_cmd_" + str(cmd), None)
        if fn is None:
            return {"ok": False, "err": "unknown_cmd", "msg": f"unknown command {cmd!r}"}
        try:
            return {"ok": True, "data": fn(req)}
        except Refused as e:
            return {"ok": False, "err": e.err, "msg": e.msg}

    def _cmd_ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"proto": self.says_proto}

    def _cmd_hold(self, req: dict[str, Any]) -> dict[str, Any]:
        was, self.held = self.held, True
        return {"held": True, "was_held": was, "proto": self.says_proto, "mode": "held"}

    def _cmd_release(self, req: dict[str, Any]) -> dict[str, Any]:
        self.held = False
        return {"held": False}

    def _cmd_reboot(self, req: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _cmd_info(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "device_id": "a1b2c3d4e5f6",
            "board": "fake-esp32",
            "mcu": "esp32",
            "fw": "0.2.0",
            "proto": self.says_proto,
            "reset_cause": "PWRON_RESET",
            "uptime_ms": 1234,
            "wakes": 7,
            "mode": "held" if self.held else "window",
            "config": {"sample_period": self.config["sample_period"], "heartbeat": 3600,
                       "batch": 1, "sensors": ["sht4x", "battery"], "uplinks": ["console"]},
            "secrets": {"lorawan.appkey": "9f86d081"},
            "free_heap": 81234,
            "fs_free": 1900544,
        }  # fmt: skip

    def _cmd_read(self, req: dict[str, Any]) -> dict[str, Any]:
        n = req.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise Refused("bad_args", "n must be 1..10")
        samples = []
        for i in range(n):
            s: dict[str, Any] = {
                "t": 86400 + i,
                "values": {"sht4x.temperature": 21.5 + i, "sht4x.humidity": 40.25},
                "missing": ["bme280"],
                "errors": {"bme280": "no answer"},
            }
            if req.get("raw") is True:
                s["raw"] = {"sht4x.temperature": 21.375 + i, "sht4x.humidity": 40.0}
            samples.append(s)
        return {"samples": samples}

    def _cmd_config(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "list":
            return {"values": dict(self.config), "schema": SCHEMA, "version": 1}
        key = req["key"]
        entry = next((e for e in SCHEMA if e["key"] == key), None)
        if entry is None:
            raise Refused("bad_key", f"no such setting: {key}")
        if op == "get":
            return {"key": key, "value": self.config[key]}
        if op == "reset":
            self.config[key] = entry["default"]
            return {"key": key, "value": entry["default"]}
        if op != "set":
            raise Refused("bad_args", "op must be one of list, get, set, reset")
        value = req["value"]
        types: dict[str, type | tuple[type, ...]] = {
            "int": int, "float": (int, float), "str": str, "list": list, "bool": bool
        }  # fmt: skip
        ok_type = isinstance(value, types[entry["type"]]) and (
            entry["type"] == "bool" or not isinstance(value, bool)
        )
        if not ok_type:
            raise Refused("bad_value", f"{key}: must be {entry['type']}")
        if "min" in entry and not entry["min"] <= value <= entry["max"]:
            rng = f"{entry['min']}..{entry['max']} {entry['unit']}"
            raise Refused("bad_value", f"{key}: {value} is out of range {rng}")
        if "choices" in entry and value not in entry["choices"]:
            raise Refused("bad_value", f"{key}: must be one of {entry['choices']}")
        self.config[key] = value
        return {"key": key, "value": value}

    def _cmd_logs(self, req: dict[str, Any]) -> dict[str, Any]:
        out = {"entries": list(self.logs), "dropped": 3}
        if req.get("clear") is True:
            self.logs = []
        return out

    def _cmd_stats(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "last": {"awake_ms": 812, "sensors_ms": 120, "sleep_ms": 59188},
            "totals": {"cycles": 42, "reports": 5, "missed": 0},
        }

    def _cmd_selftest(self, req: dict[str, Any]) -> dict[str, Any]:
        checks = [
            {"name": "board", "ok": True, "msg": "board.json: fake-esp32"},
            {"name": "sensor bme280", "ok": self.selftest_ok, "msg": "no answer"},
        ]
        return {"ok": all(c["ok"] for c in checks), "checks": checks}


class Refused(Exception):
    def __init__(self, err: str, msg: str) -> None:
        super().__init__(msg)
        self.err = err
        self.msg = msg
