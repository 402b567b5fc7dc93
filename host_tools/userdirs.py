"""Where mote keeps things for the user, per platform (the XDG base directories on Linux).

data_dir()     # the registry, persistent virtual boards: ~/.local/share/motekit
cache_dir()    # MicroPython images: ~/.cache/motekit
runtime_dir()  # running virtual boards: $XDG_RUNTIME_DIR/motekit, else the temp dir
"""

import os
import sys
import tempfile
from pathlib import Path


def _xdg(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else None  # the spec: ignore relative


def data_dir() -> Path:
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "motekit"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "motekit"
    return (_xdg("XDG_DATA_HOME") or home / ".local" / "share") / "motekit"


def cache_dir() -> Path:
    home = Path.home()
    if (xdg := _xdg("XDG_CACHE_HOME")) is not None:
        return xdg / "motekit"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "motekit"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "motekit"
    return home / ".cache" / "motekit"


def runtime_dir() -> Path:
    if (xdg := _xdg("XDG_RUNTIME_DIR")) is not None:
        return xdg / "motekit"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"motekit-{uid}"
