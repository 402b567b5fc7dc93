"""Board definitions: the JSON files under boards/<name>/board.json."""

import json
import os
from pathlib import Path
from typing import Any

from host_tools.errors import ConfigError

Board = dict[str, Any]


def boards_dir() -> Path:
    """The boards/ folder: $MOTE_BOARDS_DIR, else the one beside this package in the checkout."""
    env = os.environ.get("MOTE_BOARDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "boards"


def board_names() -> list[str]:
    return sorted(p.parent.name for p in boards_dir().glob("*/board.json"))


def load_board(name: str) -> Board:
    path = boards_dir() / name / "board.json"
    if not path.is_file():
        raise ConfigError(
            f"unknown board {name!r}", hint="known boards: " + ", ".join(board_names())
        )
    try:
        board: Board = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from exc
    if board.get("name") != name:
        raise ConfigError(f"{path}: 'name' is {board.get('name')!r}, expected {name!r}")
    return board


def virtual_board_names() -> list[str]:
    return [n for n in board_names() if load_board(n).get("virtual")]
