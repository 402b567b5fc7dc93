"""Board definitions: complete, consistent, and every virtual board mirrors a real one."""

import pytest

from host_tools.boards import board_names, load_board, virtual_board_names
from host_tools.errors import ConfigError

REQUIRED = ("name", "mcu", "port", "stubs_profile", "micropython", "flash", "gpio", "pins")
IDENTITY = ("name", "description", "virtual", "mirrors")


@pytest.mark.parametrize("name", board_names())
def test_board_is_complete(name: str) -> None:
    board = load_board(name)
    for key in REQUIRED:
        assert key in board, f"{name} lacks {key}"
    fl = board["flash"]
    assert fl["fs_bytes"] % fl["fs_block_size"] == 0
    assert fl["fs_offset"] + fl["fs_bytes"] <= fl["size_bytes"]
    assert board["micropython"]["heap_bytes"] > 32 * 1024
    assert board["micropython"]["heap_source"] and fl["fs_source"], "figures need a source"
    for bus in board["pins"].get("i2c", []) + board["pins"].get("spi", []):
        for role, pin in bus.items():
            if role != "id":
                assert pin in board["gpio"], f"{name}: {role} pin {pin} is not a GPIO"


@pytest.mark.parametrize("name", virtual_board_names())
def test_virtual_board_mirrors_its_real_board(name: str) -> None:
    sim = load_board(name)
    real = load_board(sim["mirrors"])
    assert not real.get("virtual")
    strip = lambda b: {k: v for k, v in b.items() if k not in IDENTITY}  # noqa: E731
    assert strip(sim) == strip(real)


def test_unknown_board_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown board 'nope'") as err:
        load_board("nope")
    assert "sim-esp32" in err.value.hint
