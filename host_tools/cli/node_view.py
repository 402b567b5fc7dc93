"""Human output for the node commands (host_tools/cli/node.py): text and rich tables.

Free to change, unlike --json. Each function takes a reply's data as docs/protocol.md gives it
and tolerates fields it does not know or that are missing.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from host_tools.calibration.sensors import UNITS

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # the node's clock counts from here
_LEVELS = {"D": "debug", "I": "info", "W": "warning", "E": "error"}
_INFO_KEYS = (
    "device_id", "board", "mcu", "fw", "proto", "mode", "safe_reason", "reset_cause",
    "uptime_ms", "wakes", "config", "config_problems", "secrets", "free_heap", "fs_free",
)  # fmt: skip


def _console() -> Console:
    return Console(highlight=False)  # looked up per call: tests capture sys.stdout


def _print(text: str) -> None:
    _console().print(escape(text))


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _plain(v: Any) -> str:
    return v if isinstance(v, str) else _json(v)


def _time(t: Any) -> str:
    if isinstance(t, int | float) and not isinstance(t, bool):
        return (_EPOCH + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S")
    return _plain(t)


def _kv(rows: list[tuple[str, str]], title: str | None = None) -> None:
    table = Table(show_header=False, box=None, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in rows:
        table.add_row(escape(k), escape(v))
    _console().print(table)


def info(d: dict[str, Any]) -> None:
    rows = [
        ("device", _plain(d.get("device_id"))),
        ("board", f"{d.get('board')} ({d.get('mcu')})"),
        ("firmware", f"{d.get('fw')}, console protocol {d.get('proto')}"),
        ("mode", _plain(d.get("mode")) + (f": {d['safe_reason']}" if d.get("safe_reason") else "")),
        ("reset", f"{d.get('reset_cause')}, {d.get('wakes')} wakes, "
                  f"up {_ms(d.get('uptime_ms'))}"),
    ]  # fmt: skip
    cfg = d.get("config")
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            rows.append((k, ", ".join(map(str, v)) if isinstance(v, list) else _plain(v)))
    for problem in d.get("config_problems") or []:
        rows.append(("config problem", _plain(problem)))
    secrets = d.get("secrets")
    if isinstance(secrets, dict):
        listed = "  ".join(f"{name} {fp}" for name, fp in secrets.items())
        rows.append(("secrets", listed or "none"))
    rows.append(("free heap", _bytes(d.get("free_heap"))))
    rows.append(("free flash", _bytes(d.get("fs_free"))))
    rows += [(k, _plain(v)) for k, v in d.items() if k not in _INFO_KEYS]
    _kv(rows)


def _ms(v: Any) -> str:
    return f"{v / 1000:.1f} s" if isinstance(v, int | float) else _plain(v)


def _bytes(v: Any) -> str:
    return f"{v:,} B" if isinstance(v, int) and v >= 0 else _plain(v)


def value(channel: str, v: Any) -> str:
    """A channel's value with its unit: 21.5 °C."""
    unit = UNITS.get(channel.rpartition(".")[2], "")
    text = f"{v:.6g}" if isinstance(v, float) else _plain(v)
    return f"{text} {unit}".rstrip()


def samples(d: dict[str, Any]) -> None:
    rows = d.get("samples") or []
    with_raw = any("raw" in s for s in rows)
    table = Table(box=None, pad_edge=False)
    for col in ("time", "channel", "value") + (("raw",) if with_raw else ()):
        table.add_column(col, justify="right" if col in ("value", "raw") else "left")
    missing: dict[str, str] = {}
    for s in rows:
        raw = s.get("raw") or {}
        for ch, v in (s.get("values") or {}).items():
            cells = [_time(s.get("t")), ch, value(ch, v)]
            if with_raw:
                cells.append(value(ch, raw[ch]) if ch in raw else "")
            table.add_row(*map(escape, cells))
        for sensor in s.get("missing") or []:
            missing[sensor] = (s.get("errors") or {}).get(sensor, "missing")
    _console().print(table)
    for sensor, why in missing.items():
        _print(f"missing: {sensor} ({why})")


def setting(d: dict[str, Any]) -> None:
    _print(f"{d.get('key')} = {_json(d.get('value'))}")


def _allowed(e: dict[str, Any]) -> str:
    if "min" in e or "max" in e:
        return f"{e.get('min', '')}..{e.get('max', '')}"
    if "choices" in e:
        return " | ".join(map(str, e["choices"]))
    if "items" in e:
        return f"list of {_plain(e['items'])}"
    return ""


def config_list(d: dict[str, Any]) -> None:
    values = d.get("values") or {}
    table = Table(box=None, pad_edge=False)
    for col in ("key", "value", "default", "unit", "allowed", "doc"):
        table.add_column(col, overflow="fold")
    for e in d.get("schema") or []:
        key = e.get("key")
        cells = [key, _json(values.get(key)), _json(e.get("default")), e.get("unit") or "",
                 _allowed(e), e.get("doc") or ""]  # fmt: skip
        table.add_row(*(escape(_plain(c)) for c in cells))
    _console().print(table)


def logs(d: dict[str, Any], cleared: bool = False) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("time", "level", "text"):
        table.add_column(col, overflow="fold")
    for entry in d.get("entries") or []:
        t, level, text = (list(entry) + [None, None, None])[:3]
        table.add_row(
            escape(_time(t)), escape(_LEVELS.get(level, _plain(level))), escape(_plain(text))
        )
    _console().print(table)
    if d.get("dropped"):
        _print(f"({d['dropped']} older entries were dropped)")
    if cleared:
        _print("log cleared on the node")


def stats(d: dict[str, Any]) -> None:
    for title, key in (("last cycle", "last"), ("totals", "totals")):
        part = d.get(key) or {}
        if part:
            _kv([(k, _plain(v)) for k, v in part.items()], title=title)
        else:
            _print(f"{title}: none yet")
    if d.get("lorawan"):  # joins, uplinks, acks, retries, duty-cycle deferrals (docs/lorawan.md)
        _kv([(k, _plain(v)) for k, v in d["lorawan"].items()], title="lorawan")


def selftest(d: dict[str, Any]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("check", "result", "detail"):
        table.add_column(col, overflow="fold")
    for c in d.get("checks") or []:
        result = "ok" if c.get("ok") else "FAIL"
        table.add_row(escape(_plain(c.get("name"))), result, escape(_plain(c.get("msg", ""))))
    _console().print(table)


def held(d: dict[str, Any]) -> None:
    already = " (it was held already)" if d.get("was_held") else ""
    _print(f"held: the node stays awake until `mote release`{already}")


def released(d: dict[str, Any]) -> None:
    _print("released: the node is back to its duty cycle")


def rebooted(d: dict[str, Any]) -> None:
    if d.get("via") == "repl":
        _print("the node was at the MicroPython REPL: soft-reset it, and motekit is running")
    else:
        _print("rebooting the node")
