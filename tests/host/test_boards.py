"""Board definitions: complete, consistent, checked on load, and every virtual board mirrors a
real one. Each check of host_tools.boards has a case here that makes it fail."""

import json
from pathlib import Path
from typing import Any

import pytest

from host_tools.boards import (
    board_names,
    boards_dir,
    load_board,
    resolved_board_json,
    virtual_board_names,
)
from host_tools.devtools.typecheck import PROFILES
from host_tools.errors import ConfigError
from host_tools.firmware_files import node_files

IDENTITY = ("name", "description", "virtual", "mirrors")
DELETE = object()


@pytest.mark.parametrize("name", board_names())
def test_board_is_complete(name: str) -> None:
    board = load_board(name)  # runs every check
    assert "extends" not in board
    fl = board["flash"]
    assert fl["fs_bytes"] % fl["fs_block_size"] == 0
    assert fl["fs_offset"] + fl["fs_bytes"] <= fl["size_bytes"]
    assert board["micropython"]["heap_bytes"] > 32 * 1024
    assert board["micropython"]["heap_source"] and fl["fs_source"], "figures need a source"
    assert board["power"]["source"] and board["pins_source"], "figures need a source"
    for bus in board["pins"]["i2c"] + board["pins"]["spi"]:
        for role, pin in bus.items():
            if role != "id":
                assert pin in board["gpio"], f"{name}: {role} pin {pin} is not a GPIO"


@pytest.mark.parametrize("name", board_names())
def test_every_stubs_profile_is_a_typecheck_profile(name: str) -> None:
    assert load_board(name)["stubs_profile"] in PROFILES  # the five with pinned stubs


def test_the_boards_of_issue_3_are_there() -> None:
    assert {
        "esp32-devkitc",
        "rpi-pico",
        "esp32-s3-devkitc",
        "esp32-c3-devkitm",
        "heltec-wifi-lora32-v3",
        "ttgo-lora32-v1",
        "rpi-pico-w",
        "rpi-pico-lora-sx1262",
    } <= set(board_names())


@pytest.mark.parametrize(
    ("name", "spi", "radio"),
    [
        (
            "heltec-wifi-lora32-v3",
            {"sck": 9, "mosi": 10, "miso": 11},
            {"chip": "sx1262", "nss": 8, "reset": 12, "busy": 13, "dio1": 14},
        ),
        (
            "ttgo-lora32-v1",
            {"sck": 5, "mosi": 27, "miso": 19},
            {"chip": "sx1276", "nss": 18, "reset": 14, "dio0": 26},
        ),
        (
            "rpi-pico-lora-sx1262",
            {"sck": 10, "mosi": 11, "miso": 12},
            {"chip": "sx1262", "nss": 3, "reset": 15, "busy": 2, "dio1": 20},
        ),
    ],
)
def test_lora_boards_have_their_real_pin_maps(
    name: str, spi: dict[str, int], radio: dict[str, Any]
) -> None:
    pins = load_board(name)["pins"]
    bus = next(b for b in pins["spi"] if b["id"] == pins["radio"]["spi"])
    assert {k: bus[k] for k in spi} == spi
    assert {k: pins["radio"][k] for k in radio} == radio
    assert "lora" in load_board(name)["radios"]


def test_heltec_v3_power_and_battery_pins() -> None:
    pins = load_board("heltec-wifi-lora32-v3")["pins"]
    assert (pins["sensor_power"], pins["sensor_power_active_low"]) == (36, True)
    assert pins["battery_adc"] == {"pin": 1, "divider": 4.9, "enable_pin": 37, "enable_level": 1}
    assert (pins["led"], pins["button"]) == (35, 0)
    assert {"id": 1, "scl": 18, "sda": 17} in pins["i2c"]


@pytest.mark.parametrize(
    ("name", "mode", "rtc_bytes", "wdt_ms"),
    [
        ("esp32-devkitc", "deep", 2048, 1073741823),
        ("esp32-s3-devkitc", "deep", 2048, 1073741823),
        ("esp32-c3-devkitm", "deep", 2048, 1073741823),
        ("heltec-wifi-lora32-v3", "deep", 2048, 1073741823),
        ("ttgo-lora32-v1", "deep", 2048, 1073741823),
        ("rpi-pico", "light", 0, 8388),
        ("rpi-pico-w", "light", 0, 8388),
        ("rpi-pico-lora-sx1262", "light", 0, 8388),
    ],
)
def test_sleep_and_watchdog_per_port(name: str, mode: str, rtc_bytes: int, wdt_ms: int) -> None:
    board = load_board(name)
    assert board["sleep"] == {"mode": mode, "rtc_memory_bytes": rtc_bytes}
    assert board["watchdog_max_ms"] == wdt_ms


@pytest.mark.parametrize("name", virtual_board_names())
def test_virtual_board_mirrors_its_real_board(name: str) -> None:
    sim = load_board(name)
    real = load_board(sim["mirrors"])
    assert not real.get("virtual")
    strip = lambda b: {k: v for k, v in b.items() if k not in IDENTITY}  # noqa: E731
    assert strip(sim) == strip(real)


def test_the_virtual_boards_are_listed_and_only_they() -> None:
    assert {"sim-esp32", "sim-rp2"} <= set(virtual_board_names())
    assert all(load_board(n)["virtual"] for n in virtual_board_names())
    assert not {"esp32-devkitc", "rpi-pico", "rpi-pico-w"} & set(virtual_board_names())


def test_unknown_board_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown board 'nope'") as err:
        load_board("nope")
    assert "sim-esp32" in err.value.hint


# ---- extends -------------------------------------------------------------------------------


def test_pico_w_is_the_pico_with_its_radio_pins_taken() -> None:
    pico, pico_w = load_board("rpi-pico"), load_board("rpi-pico-w")
    assert pico_w["stubs_profile"] == "rpi-pico-w"
    assert pico_w["flash"]["size_bytes"] == pico["flash"]["size_bytes"]  # inherited
    assert pico_w["flash"]["fs_bytes"] == 848 * 1024  # overridden
    assert not {23, 24, 25} & set(pico_w["gpio"])
    assert pico_w["pins"]["led"] is None and pico_w["pins"]["names"] is None
    assert pico_w["pins"]["battery_adc"]["pin"] == 29
    assert pico_w["pins"]["battery_adc"]["divider"] == 3.0
    assert "CYW43439" in pico_w["pins"]["battery_adc"]["shared_with"]
    assert pico_w["pins"]["i2c"] == pico["pins"]["i2c"]
    assert pico_w["radios"] == ["ble"] and pico_w["power"]["radio_ma"].keys() == {"ble_tx"}
    assert pico_w["sleep"] == pico["sleep"]


def test_pico_lora_hat_is_the_pico_with_the_radio() -> None:
    pico, hat = load_board("rpi-pico"), load_board("rpi-pico-lora-sx1262")
    assert hat["pins"]["button"] is None  # GP15 is the radio's reset
    assert hat["pins"]["spi"] == pico["pins"]["spi"]
    assert hat["gpio"] == pico["gpio"] and hat["micropython"] == pico["micropython"]
    assert hat["power"]["supply_v"] == pico["power"]["supply_v"]
    assert hat["power"]["radio_ma"] == {"lora_tx": 45, "lora_rx": 5.3}


@pytest.fixture
def real() -> dict[str, dict[str, Any]]:
    """Resolved copies of real boards to build test boards from (read before the dir moves)."""
    return {
        n: load_board(n)
        for n in (
            "esp32-devkitc",
            "esp32-s3-devkitc",
            "esp32-c3-devkitm",
            "rpi-pico",
            "ttgo-lora32-v1",
        )
    }


@pytest.fixture
def tmp_boards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOTE_BOARDS_DIR", str(tmp_path))
    return tmp_path


def write_board(root: Path, name: str, board: dict[str, Any]) -> Path:
    path = root / name / "board.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(board))
    return path


def test_extends_merges_objects_replaces_the_rest_and_null_clears(
    real: dict[str, Any], tmp_boards: Path
) -> None:
    write_board(tmp_boards, "base", {**real["rpi-pico"], "name": "base"})
    write_board(
        tmp_boards,
        "variant",
        {
            "extends": "base",
            "name": "variant",
            "flash": {"fs_bytes": 4096 * 10, "fs_offset": 4096},  # merged key by key
            "gpio": list(range(0, 23)) + [25, 29],  # a list replaces
            "pins": {"button": None, "onewire": 21, "names": None},  # null clears
            "default_freq_hz": 48_000_000,
        },
    )
    base, variant = load_board("base"), load_board("variant")
    assert "extends" not in variant
    assert variant["flash"] == {**base["flash"], "fs_bytes": 40960, "fs_offset": 4096}
    assert variant["gpio"] == list(range(0, 23)) + [25, 29]
    assert variant["pins"]["button"] is None and variant["pins"]["names"] is None
    assert variant["pins"]["onewire"] == 21
    assert variant["pins"]["i2c"] == base["pins"]["i2c"]
    assert variant["default_freq_hz"] == 48_000_000
    assert variant["description"] == base["description"]


def test_extends_chains(real: dict[str, Any], tmp_boards: Path) -> None:
    write_board(tmp_boards, "a", {**real["rpi-pico"], "name": "a"})
    write_board(tmp_boards, "b", {"extends": "a", "name": "b", "unique_id_bytes": 4})
    write_board(tmp_boards, "c", {"extends": "b", "name": "c", "pins": {"led": None}})
    c = load_board("c")
    assert (c["name"], c["unique_id_bytes"], c["pins"]["led"]) == ("c", 4, None)
    assert c["pins"]["names"] == {"LED": 25}


def test_an_extends_cycle_is_an_error(real: dict[str, Any], tmp_boards: Path) -> None:
    write_board(tmp_boards, "a", {"extends": "b", "name": "a"})
    write_board(tmp_boards, "b", {"extends": "a", "name": "b"})
    with pytest.raises(ConfigError, match="extends: cycle a -> b -> a"):
        load_board("a")


def test_extends_an_unknown_board_names_the_file(tmp_boards: Path) -> None:
    path = write_board(tmp_boards, "v", {"extends": "nope", "name": "v"})
    with pytest.raises(ConfigError, match="extends: unknown board 'nope'") as err:
        load_board("v")
    assert str(path) in str(err.value)


def test_extends_must_name_a_board(real: dict[str, Any], tmp_boards: Path) -> None:
    write_board(tmp_boards, "v", {**real["rpi-pico"], "name": "v", "extends": ["rpi-pico"]})
    with pytest.raises(ConfigError, match="extends: must be a board name"):
        load_board("v")


def test_a_bad_variant_names_the_variant_file(real: dict[str, Any], tmp_boards: Path) -> None:
    write_board(tmp_boards, "base", {**real["rpi-pico"], "name": "base"})
    path = write_board(tmp_boards, "v", {"extends": "base", "name": "v", "pins": {"led": 23}})
    with pytest.raises(ConfigError, match="pins.led: pin 23 is not in gpio") as err:
        load_board("v")
    assert str(err.value).startswith(str(path))


def test_the_node_gets_the_resolved_board(tmp_path: Path) -> None:
    files = node_files("rpi-pico-w", tmp_path)
    on_node = json.loads(files["/board.json"].read_text())
    full = load_board("rpi-pico-w")
    assert "extends" not in on_node
    # Everything but the documentation, which would only take the node's heap.
    documentation = {"description", "pins_source", "sleep_source", "watchdog_source"}
    assert set(full) - set(on_node) == documentation
    assert on_node["pins"] == full["pins"] and on_node["sleep"] == full["sleep"]
    assert "source" not in on_node["power"] and "heap_source" not in on_node["micropython"]
    assert on_node["power"]["radio_ma"] == full["power"]["radio_ma"]
    assert len(files["/board.json"].read_text()) < len(json.dumps(full)) * 0.6
    assert files["/board.json"].parent == tmp_path  # not the raw file in boards/
    assert json.loads(resolved_board_json("rpi-pico-w")) == on_node
    raw = json.loads((boards_dir() / "rpi-pico-w" / "board.json").read_text())
    assert raw["extends"] == "rpi-pico"


# ---- every check fails on a bad board ---------------------------------------------------------


def mutate(board: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    board = json.loads(json.dumps(board))
    *parents, last = dotted.split(".")
    obj: Any = board
    for key in parents:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    if value is DELETE:
        del obj[last]
    else:
        obj[int(last) if isinstance(obj, list) else last] = value
    return board


BAD = [
    # (real board to start from, field to change, new value, expected field: problem)
    ("rpi-pico", "power", DELETE, "power: missing"),
    ("rpi-pico", "watchdog_max_ms", "8388", "watchdog_max_ms: must be an integer"),
    ("rpi-pico", "unique_id_bytes", True, "unique_id_bytes: must be an integer"),
    ("rpi-pico", "virtual", 0, "virtual: must be true or false"),
    ("rpi-pico", "sleep_mode", "deep", "sleep_mode: unknown field"),
    ("rpi-pico", "pins_source", " ", "pins_source: a source must be a non-empty string"),
    ("rpi-pico", "schema", 2, "schema: is 2"),
    ("rpi-pico", "port", "stm32", "port: 'stm32' is not one of esp32, rp2"),
    ("rpi-pico", "virtual", True, "mirrors: a virtual board names"),
    ("rpi-pico", "micropython.heap_bytes", 0, "micropython.heap_bytes: must be a positive"),
    ("rpi-pico", "micropython.heap_source", "", "micropython.heap_source: the heap figure"),
    ("rpi-pico", "micropython.build", "rpi pico", "micropython.build: must be MicroPython's"),
    ("rpi-pico", "micropython.version", "v1.29", "micropython.version: must be a MicroPython"),
    ("rpi-pico", "micropython.mpy_march", "xtensawin", "micropython.mpy_march: an rp2040 runs"),
    ("esp32-c3-devkitm", "micropython.mpy_march", "xtensawin", "an esp32c3 runs rv32imc"),
    ("rpi-pico", "micropython.image_offset", 0, "micropython.image_offset: the MicroPython"),
    ("esp32-devkitc", "micropython.image_offset", 0, "image of an esp32 is at 0x1000"),
    ("esp32-s3-devkitc", "micropython.image_offset", DELETE, "image of an esp32s3 is at 0x0"),
    ("rpi-pico", "flash.fs_bytes", 4096 * 1000, "flash.fs_bytes: the partition ends past"),
    ("rpi-pico", "flash.fs_bytes", 1441792 - 100, "flash.fs_bytes: the partition must start"),
    ("rpi-pico", "flash.fs_source", DELETE, "flash.fs_source: missing"),
    ("rpi-pico", "gpio", [0, 1, 1], "gpio: must list distinct pin numbers"),
    ("rpi-pico", "input_only_gpio", [40], "input_only_gpio: pin 40 is not in gpio"),
    ("rpi-pico", "freqs_hz", [], "freqs_hz: must list positive frequencies"),
    ("rpi-pico", "default_freq_hz", 200_000_000, "default_freq_hz: 200000000 is not in"),
    ("rpi-pico", "watchdog_max_ms", 0, "watchdog_max_ms: must be positive"),
    # every pin in pins is a GPIO
    ("rpi-pico", "pins.led", 40, "pins.led: pin 40 is not in gpio"),
    ("rpi-pico", "pins.spi.0.miso", 24, "pins.spi[0].miso: pin 24 is not in gpio"),
    ("rpi-pico", "pins.i2c.0.sda", 23, "pins.i2c[0].sda: pin 23 is not in gpio"),
    ("rpi-pico", "pins.battery_adc.pin", 30, "pins.battery_adc.pin: pin 30 is not in gpio"),
    ("rpi-pico", "pins.names.LED", 23, "pins.names.LED: 23 is not a pin in gpio"),
    ("ttgo-lora32-v1", "pins.radio.dio0", 37, "pins.radio.dio0: pin 37 is not in gpio"),
    ("rpi-pico", "pins.led", "25", "pins.led: must be a pin number"),
    # output pins are not input-only
    ("esp32-devkitc", "pins.led", 34, "pins.led: pin 34 is input-only"),
    ("esp32-devkitc", "pins.sensor_power", 36, "pins.sensor_power: pin 36 is input-only"),
    ("esp32-devkitc", "pins.spi.0.sck", 39, "pins.spi[0].sck: pin 39 is input-only"),
    ("ttgo-lora32-v1", "pins.radio.nss", 34, "pins.radio.nss: pin 34 is input-only"),
    ("ttgo-lora32-v1", "pins.radio.reset", 39, "pins.radio.reset: pin 39 is input-only"),
    # one role per pin
    ("rpi-pico", "pins.button", 14, "pins.sensor_power: pin 14 is also pins.button"),
    ("ttgo-lora32-v1", "pins.radio.nss", 2, "pins.radio.nss: pin 2 is also pins.led"),
    # pins fields
    ("rpi-pico", "pins.sensor_power", DELETE, "pins.sensor_power: missing"),
    ("rpi-pico", "pins.buzzer", 3, "pins.buzzer: unknown field"),
    ("rpi-pico", "pins.spi", {"id": 1}, "pins.spi: must be a list of buses"),
    ("rpi-pico", "pins.spi.0.cs", 3, "pins.spi[0].cs: unknown field"),
    (
        "rpi-pico",
        "pins.i2c",
        [{"id": 0, "scl": 5, "sda": 4}, {"id": 0, "scl": 7, "sda": 6}],
        "pins.i2c[1].id: must be a distinct bus id",
    ),
    ("rpi-pico", "pins.sensor_power_active_low", "yes", "pins.sensor_power_active_low"),
    ("rpi-pico", "pins.battery_adc.divider", 0.5, "pins.battery_adc.divider: is the ratio"),
    ("rpi-pico", "pins.battery_adc.enable_pin", 13, "pins.battery_adc.enable_level: enable_pin"),
    (
        "rpi-pico",
        "pins.battery_adc",
        {"pin": 29, "divider": 3, "enable_pin": 13, "enable_level": 2},
        "pins.battery_adc.enable_level: is the level",
    ),
    ("rpi-pico", "pins.battery_adc", 29, "pins.battery_adc: must be"),
    # the radio
    ("ttgo-lora32-v1", "pins.radio.spi", 2, "pins.radio.spi: 2 is not a bus id in pins.spi"),
    ("ttgo-lora32-v1", "pins.radio.chip", "sx1280", "pins.radio.chip: 'sx1280' is not one of"),
    ("ttgo-lora32-v1", "pins.radio.busy", 32, "pins.radio.busy: unknown field"),
    ("ttgo-lora32-v1", "pins.radio.dio0", DELETE, "pins.radio.dio0: missing"),
    ("ttgo-lora32-v1", "pins.radio.tcxo_mv", 1800, "pins.radio.tcxo_mv: unknown field"),
    ("ttgo-lora32-v1", "pins.radio", None, "radios: lists 'lora' exactly when pins.radio"),
    ("ttgo-lora32-v1", "radios", ["ble"], "radios: lists 'lora' exactly when pins.radio"),
    ("rpi-pico", "radios", ["wifi"], "radios: must list distinct radios out of ble, lora"),
    ("rpi-pico", "radios", ["ble", "ble"], "radios: must list distinct radios"),
    # sleep
    ("rpi-pico", "sleep.mode", "hibernate", "sleep.mode: 'hibernate' is not one of deep, light"),
    ("rpi-pico", "sleep.rtc_memory_bytes", -1, "sleep.rtc_memory_bytes: must be a non-negative"),
    ("rpi-pico", "sleep.wake_pin", 3, "sleep.wake_pin: unknown field"),
    # power
    ("rpi-pico", "power.sleep_ua", 0, "power.sleep_ua: must be a positive number"),
    ("rpi-pico", "power.active_ma", -25, "power.active_ma: must be a positive number"),
    ("rpi-pico", "power.supply_v", "3.3", "power.supply_v: must be a positive number"),
    ("rpi-pico", "power.source", "", "power.source: the power figures need a source"),
    ("esp32-devkitc", "power.radio_ma", {}, "power.radio_ma: needs exactly ['ble_tx']"),
    ("rpi-pico", "power.radio_ma", {"ble_tx": 100}, "power.radio_ma: needs exactly []"),
    ("ttgo-lora32-v1", "power.radio_ma.lora_rx", 0, "power.radio_ma.lora_rx: must be a positive"),
    ("ttgo-lora32-v1", "power.radio_ma.lora_rx", DELETE, "power.radio_ma: needs exactly"),
]


@pytest.mark.parametrize(("base", "field", "value", "message"), BAD)
def test_a_bad_board_is_refused_naming_the_file_and_field(
    real: dict[str, Any], tmp_boards: Path, base: str, field: str, value: Any, message: str
) -> None:
    board = mutate({**real[base], "name": "bad"}, field, value)
    path = write_board(tmp_boards, "bad", board)
    with pytest.raises(ConfigError) as err:
        load_board("bad")
    assert str(err.value).startswith(f"{path}: "), err.value
    assert message in str(err.value)


def test_the_unchanged_copies_load(real: dict[str, Any], tmp_boards: Path) -> None:
    # The BAD cases fail for their change alone: their starting points are good boards.
    for name, board in real.items():
        write_board(tmp_boards, name, board)
        assert load_board(name) == board


def test_an_input_only_pin_may_read(real: dict[str, Any], tmp_boards: Path) -> None:
    # SPI MISO, a button and the battery divider only read: input-only pins are fine there.
    board = mutate(real["esp32-devkitc"], "pins.spi.0.miso", 34)
    board = mutate(board, "pins.button", 39)
    write_board(tmp_boards, "esp32-devkitc", board)
    assert load_board("esp32-devkitc")["pins"]["spi"][0]["miso"] == 34


def test_the_name_must_match_the_folder(real: dict[str, Any], tmp_boards: Path) -> None:
    write_board(tmp_boards, "other", real["rpi-pico"])
    with pytest.raises(ConfigError, match="name: is 'rpi-pico', expected 'other'"):
        load_board("other")


def test_invalid_json_names_the_file(tmp_boards: Path) -> None:
    path = tmp_boards / "broken" / "board.json"
    path.parent.mkdir()
    path.write_text("{")
    with pytest.raises(ConfigError, match="invalid JSON") as err:
        load_board("broken")
    assert str(path) in str(err.value)
