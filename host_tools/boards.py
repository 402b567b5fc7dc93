"""Board definitions: the JSON files under boards/<name>/board.json (fields: docs/boards.md).

A variant may start with `"extends": "<base>"`: its JSON is deep-merged over the base's resolved
definition (objects merge key by key, anything else replaces, and `null` clears the base's
value). load_board() returns the resolved definition after checking it; resolved_board_json() is
what a node gets as /board.json (the same, less its documentation strings).
"""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from host_tools.errors import ConfigError

Board = dict[str, Any]
Fail = Callable[[str, str], NoReturn]  # fail(field, problem) raises ConfigError

SCHEMA = 1
PORTS = ("esp32", "rp2")  # the MicroPython ports Motekit supports
RADIOS = ("ble", "lora")
SLEEP_MODES = ("deep", "light")
# Radio chip -> (pins it needs, optional pins, optional settings) in pins.radio.
RADIO_CHIPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "sx1262": (("nss", "reset", "busy", "dio1"), (), ("dio2_rf_switch", "tcxo_mv")),
    "sx1276": (("nss", "reset", "dio0"), ("dio1",), ()),
}
# What runs on each MCU: mpy-cross's -march for its native code, and where esptool writes
# MicroPython's combined image (bootloader included): 0x1000 on the ESP32, 0 on the S3 and C3
# (the install notes on micropython.org/download); None: an RP2040 takes a UF2, no offset.
_MCU_IMAGE: dict[str, tuple[str, int | None]] = {
    "esp32": ("xtensawin", 0x1000),
    "esp32s3": ("xtensawin", 0),
    "esp32c3": ("rv32imc", 0),
    "rp2040": ("armv6m", None),
}
# power.radio_ma keys each radio needs (and the only ones allowed).
RADIO_CURRENTS = {"ble": ("ble_tx",), "lora": ("lora_tx", "lora_rx")}

_TOP: dict[str, type | tuple[type, ...]] = {
    "schema": int,
    "name": str,
    "description": str,
    "virtual": bool,
    "mcu": str,
    "port": str,
    "stubs_profile": str,
    "micropython": dict,
    "flash": dict,
    "gpio": list,
    "input_only_gpio": list,
    "freqs_hz": list,
    "default_freq_hz": int,
    "unique_id_bytes": int,
    "pins": dict,
    "radios": list,
    "sleep": dict,
    "watchdog_max_ms": int,
    "power": dict,
}
_PINS_REQUIRED = ("i2c", "spi", "onewire", "led", "button", "sensor_power", "battery_adc")
_PINS_OPTIONAL = ("names", "radio", "rgb_led", "sensor_power_active_low")
_OUTPUT, _INPUT = True, False
# pins fields that hold one pin number (or null), and whether the pin drives an output.
_SINGLE_PINS = (
    ("onewire", _OUTPUT),
    ("led", _OUTPUT),
    ("button", _INPUT),
    ("sensor_power", _OUTPUT),
    ("rgb_led", _OUTPUT),
)


def boards_dir() -> Path:
    """The boards/ folder: $MOTE_BOARDS_DIR, else the one beside this package in the checkout."""
    env = os.environ.get("MOTE_BOARDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "boards"


def board_names() -> list[str]:
    return sorted(p.parent.name for p in boards_dir().glob("*/board.json"))


def load_board(name: str) -> Board:
    """The resolved definition of board `name` (extends applied), checked; else ConfigError."""
    path = _path(name)
    board = _resolve(name, ())
    if board.get("name") != name:
        raise ConfigError(f"{path}: name: is {board.get('name')!r}, expected {name!r}")
    check_board(board, str(path))
    return board


def resolved_board_json(name: str) -> str:
    """The node's /board.json for board `name`: the resolved definition, compact, without its
    documentation (description and the *_source texts, a third of the file), which would only
    take heap on the node: the firmware keeps the board in RAM while it runs."""
    return json.dumps(_undocumented(load_board(name)), separators=(",", ":"))


def _undocumented(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _undocumented(v)
            for k, v in value.items()
            if k != "description" and k != "source" and not k.endswith("_source")
        }
    return value


def virtual_board_names() -> list[str]:
    # Only the flag is read: a board that fails its checks is listed, and refused when chosen.
    return [n for n in board_names() if _resolve(n, ()).get("virtual") is True]


# -- reading and extends ---------------------------------------------------------------------


def _path(name: str) -> Path:
    return boards_dir() / name / "board.json"


def _read(name: str) -> Board:
    path = _path(name)
    if not path.is_file():
        raise ConfigError(
            f"unknown board {name!r}", hint="known boards: " + ", ".join(board_names())
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a board file holds one JSON object")
    return raw


def _resolve(name: str, chain: tuple[str, ...]) -> Board:
    raw = _read(name)
    base = raw.pop("extends", None)
    if base is None:
        return raw
    path = _path(name)
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends: must be a board name, not {base!r}")
    if base in chain or base == name:
        cycle = " -> ".join((*chain, name, base))
        raise ConfigError(f"{path}: extends: cycle {cycle}")
    if not _path(base).is_file():
        raise ConfigError(
            f"{path}: extends: unknown board {base!r}",
            hint="known boards: " + ", ".join(board_names()),
        )
    return _merge(_resolve(base, (*chain, name)), raw)


def _merge(base: Board, over: Board) -> Board:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value  # a scalar, a list, or null: replaces (null clears)
    return out


# -- checks ----------------------------------------------------------------------------------


def check_board(board: Board, where: str) -> None:
    """Raise ConfigError naming `where` and the field for the first thing wrong with `board`."""

    def fail(field: str, problem: str) -> NoReturn:
        raise ConfigError(f"{where}: {field}: {problem}")

    for key, kind in _TOP.items():
        if key not in board:
            fail(key, "missing")
        if not _is(board[key], kind):
            fail(key, f"must be {_kind_name(kind)}, not {board[key]!r}")
    for key, value in board.items():
        if key in _TOP or key == "mirrors":
            continue
        if key.endswith("_source"):
            if not (isinstance(value, str) and value.strip()):
                fail(key, "a source must be a non-empty string")
            continue
        fail(key, "unknown field")
    if board["schema"] != SCHEMA:
        fail("schema", f"is {board['schema']}, this Motekit reads schema {SCHEMA}")
    if board["port"] not in PORTS:
        fail("port", f"{board['port']!r} is not one of {', '.join(PORTS)}")
    mirrors = board.get("mirrors")
    if board["virtual"] and not (isinstance(mirrors, str) and mirrors):
        fail("mirrors", "a virtual board names the real board it mirrors")
    _check_micropython(board["micropython"], board["mcu"], fail)
    _check_flash(board["flash"], fail)
    gpio = _check_gpio(board, fail)
    freqs = board["freqs_hz"]
    if not freqs or not all(_is(f, int) and f > 0 for f in freqs):
        fail("freqs_hz", "must list positive frequencies in Hz")
    if board["default_freq_hz"] not in freqs:
        fail("default_freq_hz", f"{board['default_freq_hz']} is not in freqs_hz")
    for key in ("unique_id_bytes", "watchdog_max_ms"):
        if board[key] <= 0:
            fail(key, "must be positive")
    spi_ids = _check_pins(board["pins"], gpio, set(board["input_only_gpio"]), fail)
    radios = board["radios"]
    if len(set(radios)) != len(radios) or not all(r in RADIOS for r in radios):
        fail("radios", f"must list distinct radios out of {', '.join(RADIOS)}, not {radios!r}")
    has_lora_pins = board["pins"].get("radio") is not None
    if ("lora" in radios) != has_lora_pins:
        fail("radios", "lists 'lora' exactly when pins.radio describes the LoRa chip")
    if has_lora_pins and board["pins"]["radio"]["spi"] not in spi_ids:
        fail("pins.radio.spi", f"{board['pins']['radio']['spi']} is not a bus id in pins.spi")
    _check_sleep(board["sleep"], fail)
    _check_power(board["power"], radios, fail)


def _check_micropython(mp: Board, mcu: str, fail: Fail) -> None:
    keys = ("build", "version", "mpy_march", "heap_bytes", "heap_source")
    _only_keys(mp, keys, "micropython", fail, optional=("image_offset",))
    if not (isinstance(mp["build"], str) and re.fullmatch(r"[A-Z0-9_]+", mp["build"])):
        fail("micropython.build", "must be MicroPython's board build name, like ESP32_GENERIC")
    if not (isinstance(mp["version"], str) and re.fullmatch(r"\d+\.\d+\.\d+", mp["version"])):
        fail("micropython.version", "must be a MicroPython release like 1.29.0")
    march, offset = _MCU_IMAGE.get(mcu, (None, None))
    if mp["mpy_march"] != march:
        fail("micropython.mpy_march", f"an {mcu} runs {march} code, not {mp['mpy_march']!r}")
    if mp.get("image_offset") != offset:
        where = "is not written by esptool (UF2)" if offset is None else f"is at {offset:#x}"
        fail("micropython.image_offset", f"the MicroPython image of an {mcu} {where}")
    if not (_is(mp["heap_bytes"], int) and mp["heap_bytes"] > 0):
        fail("micropython.heap_bytes", "must be a positive number of bytes")
    if not (isinstance(mp["heap_source"], str) and mp["heap_source"].strip()):
        fail("micropython.heap_source", "the heap figure needs a source")


def _check_flash(fl: Board, fail: Fail) -> None:
    keys = ("size_bytes", "fs_offset", "fs_bytes", "fs_block_size")
    _only_keys(fl, (*keys, "fs_source"), "flash", fail)
    for key in keys:
        least = 0 if key == "fs_offset" else 1
        if not (_is(fl[key], int) and fl[key] >= least):
            fail(f"flash.{key}", f"must be an integer of at least {least}")
    if not (isinstance(fl["fs_source"], str) and fl["fs_source"].strip()):
        fail("flash.fs_source", "the partition figures need a source")
    if fl["fs_bytes"] % fl["fs_block_size"] or fl["fs_offset"] % fl["fs_block_size"]:
        fail("flash.fs_bytes", "the partition must start and end on a block boundary")
    if fl["fs_offset"] + fl["fs_bytes"] > fl["size_bytes"]:
        fail("flash.fs_bytes", "the partition ends past the end of the flash")


def _check_gpio(board: Board, fail: Fail) -> set[int]:
    gpio = board["gpio"]
    if not all(_is(p, int) and p >= 0 for p in gpio) or len(set(gpio)) != len(gpio):
        fail("gpio", "must list distinct pin numbers")
    for pin in board["input_only_gpio"]:
        if pin not in gpio:
            fail("input_only_gpio", f"pin {pin!r} is not in gpio")
    return set(gpio)


def _check_pins(pins: Board, gpio: set[int], input_only: set[int], fail: Fail) -> set[int]:
    """Check pins and return the SPI bus ids. Every pin has one role and is a GPIO."""
    _only_keys(pins, _PINS_REQUIRED, "pins", fail, _PINS_OPTIONAL, "(null when the board has none)")
    roles: list[tuple[str, Any, bool]] = []  # (field, pin, drives an output)
    buses = {
        "i2c": (("scl", _OUTPUT), ("sda", _OUTPUT)),
        "spi": (("sck", _OUTPUT), ("mosi", _OUTPUT), ("miso", _INPUT)),
    }
    spi_ids: set[int] = set()
    for kind, lines in buses.items():
        if not isinstance(pins[kind], list):
            fail(f"pins.{kind}", "must be a list of buses ([] when there is none)")
        ids: set[int] = set()
        for i, bus in enumerate(pins[kind]):
            field = f"pins.{kind}[{i}]"
            if not isinstance(bus, dict):
                fail(field, "must be an object")
            _only_keys(bus, ("id", *(name for name, _ in lines)), field, fail)
            if not _is(bus["id"], int) or bus["id"] in ids:
                fail(f"{field}.id", f"must be a distinct bus id, not {bus['id']!r}")
            ids.add(bus["id"])
            roles += [(f"{field}.{name}", bus[name], out) for name, out in lines]
        if kind == "spi":
            spi_ids = ids
    for key, out in _SINGLE_PINS:
        if pins.get(key) is not None:
            roles.append((f"pins.{key}", pins[key], out))
    active_low = pins.get("sensor_power_active_low")
    if active_low is not None and (
        not isinstance(active_low, bool) or pins["sensor_power"] is None
    ):
        fail("pins.sensor_power_active_low", "a true/false for the board's sensor_power pin")
    roles += _battery_roles(pins["battery_adc"], fail)
    if pins.get("radio") is not None:
        roles += _radio_roles(pins["radio"], fail)
    seen: dict[int, str] = {}
    for field, pin, out in roles:
        if not _is(pin, int):
            fail(field, f"must be a pin number, not {pin!r}")
        if pin not in gpio:
            fail(field, f"pin {pin} is not in gpio")
        if out and pin in input_only:
            fail(field, f"pin {pin} is input-only (input_only_gpio) and cannot drive an output")
        if pin in seen:
            fail(field, f"pin {pin} is also {seen[pin]}")
        seen[pin] = field
    names = pins.get("names")
    if names is not None:
        if not isinstance(names, dict):
            fail("pins.names", "must map names to pin numbers")
        for alias, pin in names.items():
            if not (_is(pin, int) and pin in gpio):
                fail(f"pins.names.{alias}", f"{pin!r} is not a pin in gpio")
    return spi_ids


def _battery_roles(adc: Any, fail: Fail) -> list[tuple[str, Any, bool]]:
    if adc is None:
        return []
    field = "pins.battery_adc"
    if not isinstance(adc, dict):
        fail(field, 'must be {"pin": N, "divider": R} or null')
    _only_keys(adc, ("pin", "divider"), field, fail, ("enable_pin", "enable_level", "shared_with"))
    if not (_is(adc["divider"], (int, float)) and adc["divider"] >= 1):
        fail(f"{field}.divider", "is the ratio supply / pin voltage, at least 1")
    roles = [(f"{field}.pin", adc["pin"], _INPUT)]
    if ("enable_pin" in adc) != ("enable_level" in adc):
        fail(f"{field}.enable_level", "enable_pin and enable_level come together")
    if "enable_pin" in adc:
        if adc["enable_level"] not in (0, 1) or isinstance(adc["enable_level"], bool):
            fail(f"{field}.enable_level", "is the level (0 or 1) that connects the divider")
        roles.append((f"{field}.enable_pin", adc["enable_pin"], _OUTPUT))
    if "shared_with" in adc and not (isinstance(adc["shared_with"], str) and adc["shared_with"]):
        fail(f"{field}.shared_with", "must say what else uses the pin")
    return roles


def _radio_roles(radio: Any, fail: Fail) -> list[tuple[str, Any, bool]]:
    field = "pins.radio"
    if not isinstance(radio, dict):
        fail(field, "must be an object or null")
    chip = radio.get("chip")
    if chip not in RADIO_CHIPS:
        fail(f"{field}.chip", f"{chip!r} is not one of {', '.join(RADIO_CHIPS)}")
    needed, optional_pins, settings = RADIO_CHIPS[chip]
    _only_keys(radio, ("chip", "spi", *needed), field, fail, (*optional_pins, *settings))
    if not _is(radio["spi"], int):
        fail(f"{field}.spi", "must be the id of a bus in pins.spi")
    if "dio2_rf_switch" in radio and not isinstance(radio["dio2_rf_switch"], bool):
        fail(f"{field}.dio2_rf_switch", "must be true or false")
    if "tcxo_mv" in radio and not (_is(radio["tcxo_mv"], int) and radio["tcxo_mv"] > 0):
        fail(f"{field}.tcxo_mv", "is the TCXO supply in millivolts")
    outputs = ("nss", "reset")
    return [
        (f"{field}.{name}", radio[name], name in outputs)
        for name in (*needed, *optional_pins)
        if name in radio
    ]


def _check_sleep(sleep: Board, fail: Fail) -> None:
    _only_keys(sleep, ("mode", "rtc_memory_bytes"), "sleep", fail)
    if sleep["mode"] not in SLEEP_MODES:
        fail("sleep.mode", f"{sleep['mode']!r} is not one of {', '.join(SLEEP_MODES)}")
    if not (_is(sleep["rtc_memory_bytes"], int) and sleep["rtc_memory_bytes"] >= 0):
        fail("sleep.rtc_memory_bytes", "must be a non-negative number of bytes")


def _check_power(power: Board, radios: list[str], fail: Fail) -> None:
    _only_keys(power, ("supply_v", "sleep_ua", "active_ma", "radio_ma", "source"), "power", fail)
    for key in ("supply_v", "sleep_ua", "active_ma"):
        if not (_is(power[key], (int, float)) and power[key] > 0):
            fail(f"power.{key}", f"must be a positive number, not {power[key]!r}")
    currents = power["radio_ma"]
    if not isinstance(currents, dict):
        fail("power.radio_ma", "must map radio states to mA")
    wanted = {key for radio in radios for key in RADIO_CURRENTS.get(radio, ())}
    if set(currents) != wanted:
        fail("power.radio_ma", f"needs exactly {sorted(wanted)} for radios {radios}")
    for key, ma in currents.items():
        if not (_is(ma, (int, float)) and ma > 0):
            fail(f"power.radio_ma.{key}", f"must be a positive number of mA, not {ma!r}")
    if not (isinstance(power["source"], str) and power["source"].strip()):
        fail("power.source", "the power figures need a source")


def _only_keys(
    obj: Board,
    required: tuple[str, ...],
    field: str,
    fail: Fail,
    optional: tuple[str, ...] = (),
    if_missing: str = "",
) -> None:
    for key in required:
        if key not in obj:
            fail(f"{field}.{key}", f"missing {if_missing}".rstrip())
    for key in obj:
        if key not in required and key not in optional:
            fail(f"{field}.{key}", "unknown field")


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    # JSON true/false are Python ints; a count or a pin is never a bool.
    if isinstance(value, bool):
        return kind is bool or (isinstance(kind, tuple) and bool in kind)
    return isinstance(value, kind)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        str: "a string",
        bool: "true or false",
        dict: "an object",
        list: "a list",
    }
    return names.get(kind, str(kind)) if isinstance(kind, type) else "a number"
