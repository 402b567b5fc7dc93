"""The local cache of MicroPython images that `mote flash` writes, and what an image is.

    image = add_image(Path("~/Downloads/ESP32_GENERIC_S3-20250911-v1.26.1.bin"))
    image = find_image(load_board("esp32-s3-devkitc"))       # cached, re-hashed, checked
    image = find_image(board, image=Path("firmware.uf2"))     # a file of the user's, checked

An image is told from its bytes, never its name: an ESP image (the combined bootloader +
partition table + app that micropython.org ships as .bin) by its header's chip id, a UF2 by its
blocks' family id. The name gives only the build and version, as micropython.org names its
downloads (BUILD[-VARIANT]-YYYYMMDD-vX.Y.Z.bin|uf2). Nothing here downloads anything.

The cache is a directory (cache_dir()) holding the images and manifest.json:
{"version": 1, "images": [{"file", "sha256", "size", "build", "version", "format", "chip",
"added"}]}, written atomically. A cached image is re-hashed whenever it is used.
"""

import hashlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from host_tools import userdirs
from host_tools.errors import ConfigError, FlashError

Board = dict[str, Any]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
DOWNLOADS = "https://micropython.org/download"

CHIP_NAMES = {"esp32": "ESP32", "esp32s3": "ESP32-S3", "esp32c3": "ESP32-C3", "rp2040": "RP2040"}
_FORMAT_OF_PORT = {"esp32": "esp", "rp2": "uf2"}
_EXTENSION = {"esp": "bin", "uf2": "uf2"}

# ESP image header (esptool bin_image.py): 8 bytes (magic 0xE9, segment count, flash mode,
# flash size/freq, entry point), then the 16-byte extended header "<BBBBHBHH4BB", whose u16
# chip id is at offset 8 + 4 = 12. The ids are esptool's targets/*.py IMAGE_CHIP_ID.
_ESP_MAGIC = 0xE9
_ESP_HEADER_BYTES = 24
_ESP_CHIP_ID_AT = 12
_ESP_MAX_SEGMENTS = 16  # ESP-IDF's ESP_IMAGE_MAX_SEGMENTS
_ESP_CHIPS = {0: "esp32", 5: "esp32c3", 9: "esp32s3"}
_ESP_OTHER_CHIPS = {
    2: "ESP32-S2", 12: "ESP32-C2", 13: "ESP32-C6", 16: "ESP32-H2", 18: "ESP32-P4", 23: "ESP32-C5",
}  # fmt: skip

# UF2 (github.com/microsoft/uf2, README.md and uf2.h): 512-byte blocks, a 32-byte header of
# little-endian u32 (magic0, magic1, flags, target address, payload size, block number, number
# of blocks, file size or family id), 476 bytes of data, and magicEnd.
_UF2_BLOCK = 512
_UF2_MAGIC0 = 0x0A324655  # "UF2\n"
_UF2_MAGIC1 = 0x9E5D5157
_UF2_MAGIC_END = 0x0AB16F30
_UF2_MAX_PAYLOAD = 476
_UF2_NOT_MAIN_FLASH = 0x00000001
_UF2_FAMILY_PRESENT = 0x00002000
# Family ids from microsoft/uf2 utils/uf2families.json.
_UF2_FAMILIES = {0xE48BFF56: "rp2040"}
_UF2_OTHER_FAMILIES = {
    0xE48BFF57: "RP2 absolute (unpartitioned) downloads",
    0xE48BFF58: "RP2 data partitions",
    0xE48BFF59: "RP2350 (Arm, secure)",
    0xE48BFF5A: "RP2350 (RISC-V)",
    0xE48BFF5B: "RP2350 (Arm, non-secure)",
    0x1C5F21B0: "ESP32",
    0xBFDD4EEE: "ESP32-S2",
    0xC47E5767: "ESP32-S3",
    0xD42BA06C: "ESP32-C3",
}

# micropython.org's download names: ESP32_GENERIC_S3-20250911-v1.26.1.bin,
# ESP32_GENERIC-SPIRAM-20250911-v1.26.1.bin (a variant is part of the build: another firmware),
# RPI_PICO-20250911-v1.27.0-preview.123.gabcdef012.uf2; the date is optional here.
_NAME = re.compile(
    r"(?P<build>[A-Z0-9_]+(?:-[A-Z0-9_]+)*?)(?:-(?P<date>\d{8}))?"
    r"-v(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)\.(?:bin|uf2)"
)
_VERSION = re.compile(r"v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$")  # at the end of the stem
_BUILD = re.compile(r"[A-Z0-9_]+(?:-[A-Z0-9_]+)*")


@dataclass(frozen=True)
class Image:
    path: Path
    sha256: str
    size: int
    build: str  # MicroPython's build name (board[-variant]), "" when unknown
    version: str  # "1.26.1", "" when unknown
    format: str  # "esp" | "uf2"
    chip: str  # esp32 | esp32s3 | esp32c3 | rp2040
    note: str = ""  # said to the user: another version than the board's, a file of theirs
    added: str = ""  # when it entered the cache (ISO 8601), "" for a file outside it


# ---- where the cache is -------------------------------------------------------------------


def cache_dir() -> Path:
    """$MOTE_IMAGE_CACHE, else images/ in the user's cache directory (~/.cache/motekit)."""
    env = os.environ.get("MOTE_IMAGE_CACHE")
    return Path(env).expanduser() if env else userdirs.cache_dir() / "images"


# ---- what a file is -----------------------------------------------------------------------


def identify(data: bytes, name: str) -> tuple[str, str]:
    """(format, chip) of an image's bytes; FlashError naming `name` if it is not one we take."""
    if data[:1] == bytes([_ESP_MAGIC]):
        return "esp", _esp_chip(data, name)
    if data[:4] == struct.pack("<I", _UF2_MAGIC0):
        return "uf2", _uf2_chip(data, name)
    raise FlashError(
        f"{name} is not a MicroPython image: neither an ESP image (.bin) nor a UF2",
        hint=f"download the firmware for the board from {DOWNLOADS}/",
    )


def _esp_chip(data: bytes, name: str) -> str:
    if len(data) < _ESP_HEADER_BYTES or not 1 <= data[1] <= _ESP_MAX_SEGMENTS:
        raise FlashError(
            f"{name} starts like an ESP image but its header is damaged or cut short",
            hint="download it again",
        )
    (chip_id,) = struct.unpack_from("<H", data, _ESP_CHIP_ID_AT)
    if chip_id in _ESP_CHIPS:
        return _ESP_CHIPS[chip_id]
    if chip_id in _ESP_OTHER_CHIPS:
        raise FlashError(
            f"{name} is an image for an {_ESP_OTHER_CHIPS[chip_id]}, a chip Motekit has no "
            "board for",
            hint="Motekit boards have an ESP32, ESP32-S3, ESP32-C3 or RP2040 (see boards/)",
        )
    raise FlashError(
        f"{name} has an unknown chip id {chip_id} in its ESP image header",
        hint="is it an ESP8266 image, or damaged? download the board's image again",
    )


def _uf2_chip(data: bytes, name: str) -> str:
    if len(data) % _UF2_BLOCK:
        raise FlashError(
            f"{name} is a truncated UF2: {len(data)} bytes is not a whole number of "
            f"{_UF2_BLOCK}-byte blocks",
            hint="download it again",
        )
    families: dict[int | None, tuple[int, set[int]]] = {}  # family -> (numBlocks, seen)
    for at in range(0, len(data), _UF2_BLOCK):
        m0, m1, flags, _addr, size, block_no, num_blocks, family = struct.unpack_from(
            "<8I", data, at
        )
        (end,) = struct.unpack_from("<I", data, at + _UF2_BLOCK - 4)
        if (m0, m1, end) != (_UF2_MAGIC0, _UF2_MAGIC1, _UF2_MAGIC_END):
            raise FlashError(
                f"{name} is a damaged UF2: block {at // _UF2_BLOCK} has no UF2 magic",
                hint="download it again",
            )
        if flags & _UF2_NOT_MAIN_FLASH:
            continue  # not for the flash (a comment or a file container's extra): skipped
        if size > _UF2_MAX_PAYLOAD or block_no >= num_blocks:
            raise FlashError(
                f"{name} is a damaged UF2: block {at // _UF2_BLOCK} is inconsistent",
                hint="download it again",
            )
        key = family if flags & _UF2_FAMILY_PRESENT else None
        expected, seen = families.setdefault(key, (num_blocks, set()))
        if num_blocks != expected:
            raise FlashError(
                f"{name} is a damaged UF2: its blocks disagree on how many there are",
                hint="download it again",
            )
        seen.add(block_no)
    chips = {_UF2_FAMILIES.get(f) if f is not None else None for f in families}
    if len(chips) != 1 or None in chips:
        found = ", ".join(_family_name(f) for f in families if f not in _UF2_FAMILIES)
        raise FlashError(
            f"{name} is a UF2 for {found or 'no flash at all'}, not for an RP2040",
            hint=f"download the board's own build (RPI_PICO, RPI_PICO_W...) from {DOWNLOADS}/",
        )
    for expected, seen in families.values():
        if len(seen) != expected:
            raise FlashError(
                f"{name} is a truncated UF2: {len(seen)} of its {expected} blocks are there",
                hint="download it again",
            )
    (chip,) = chips
    assert chip is not None
    return chip


def _family_name(family: int | None) -> str:
    if family is None:
        return "no family id (an old or generic UF2)"
    return _UF2_OTHER_FAMILIES.get(family, f"family {family:#010x}")


def parse_name(file_name: str) -> tuple[str, str] | None:
    """(build, version) from a micropython.org download name, None if it is not one."""
    m = _NAME.fullmatch(file_name)
    return (m["build"], m["version"]) if m else None


def _version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    number, _, pre = version.partition("-")
    try:
        parts = tuple(int(p) for p in number.split("."))
    except ValueError:
        parts = ()
    return parts, 0 if pre else 1, pre  # 1.27.0-preview.x sorts before 1.27.0


# ---- the cache ----------------------------------------------------------------------------


def add_image(path: Path, cache: Path | None = None, build: str | None = None) -> Image:
    """Copy the image at `path` into the cache and record it; the recorded Image.

    The build and version come from the file name (micropython.org's naming) unless `build` is
    given; the version must be in the name either way. Re-adding a file name replaces it."""
    cache = cache or cache_dir()
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no file {path}")
    if build is not None and not _BUILD.fullmatch(build):
        raise ConfigError(
            f"--build {build!r} is not a MicroPython build name",
            hint="like ESP32_GENERIC_S3 or RPI_PICO_W, as on micropython.org/download",
        )
    if path.name == MANIFEST:
        raise ConfigError(f"an image cannot be called {MANIFEST}")
    data = path.read_bytes()
    fmt, chip = identify(data, path.name)
    parsed = parse_name(path.name)
    if parsed is not None:
        build = build or parsed[0]
        version = parsed[1]
    elif build is None:
        raise FlashError(
            f"cannot tell the MicroPython build and version from the name {path.name}",
            hint="keep micropython.org's name (like ESP32_GENERIC_S3-20250911-v1.26.1.bin), or "
            "pass --build BUILD with a name that ends in -vX.Y.Z",
        )
    else:
        m = _VERSION.search(Path(path.name).stem)
        if m is None:
            raise FlashError(
                f"no MicroPython version in the name {path.name}",
                hint="rename it to end in -vX.Y.Z.bin or .uf2, like micropython.org's downloads",
            )
        version = m[1]
    image = Image(
        path=cache / path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        build=build,
        version=version,
        format=fmt,
        chip=chip,
        added=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    cache.mkdir(parents=True, exist_ok=True)
    entries = [e for e in _read_manifest(cache) if e.get("file") != path.name]
    if path.resolve() != image.path.resolve():
        _copy_atomically(path, image.path)
    entries.append(_entry(image))
    _write_manifest(cache, entries)
    return image


def list_images(cache: Path | None = None) -> list[Image]:
    """The cache's images as the manifest records them (not re-hashed), by build and version."""
    cache = cache or cache_dir()
    images = [_from_entry(cache, e) for e in _read_manifest(cache)]
    return sorted(images, key=lambda i: (i.build, _version_key(i.version)))


def find_image(board: Board, image: Path | None = None, cache: Path | None = None) -> Image:
    """The image to write onto `board`: the file `image`, else the cache's entry for the board's
    MicroPython build (its version preferred, else the newest, with a note). Always checked
    against the board: ESP chip or UF2 family; a cached file is re-hashed."""
    if image is not None:
        found = _outside_image(Path(image).expanduser(), board)
    else:
        cache = cache or cache_dir()
        found = _cached_image(board, cache)
    check_fits(found, board)
    return found


def _outside_image(path: Path, board: Board) -> Image:
    if not path.is_file():
        raise ConfigError(f"no image file {path}", hint="check the --image path")
    data = path.read_bytes()
    fmt, chip = identify(data, path.name)
    build, version = parse_name(path.name) or ("", "")
    mp = board["micropython"]
    note = ""
    if (build, version) != ("", "") and (build, version) != (mp["build"], mp["version"]):
        note = (
            f"{path.name} is {build} v{version}; board {board['name']} is tested with "
            f"{mp['build']} v{mp['version']}"
        )
    return Image(path, hashlib.sha256(data).hexdigest(), len(data), build, version, fmt, chip, note)


def _cached_image(board: Board, cache: Path) -> Image:
    mp = board["micropython"]
    build, version = mp["build"], mp["version"]
    same_build = [_from_entry(cache, e) for e in _read_manifest(cache) if e.get("build") == build]
    if not same_build:
        ext = _EXTENSION[_FORMAT_OF_PORT.get(board["port"], "esp")]
        raise FlashError(
            f"no MicroPython image for {board['name']} ({build} v{version}) in {cache}",
            hint=f"download {build}-<date>-v{version}.{ext} from {DOWNLOADS}/{build}/ and run "
            "`mote images add FILE`, or pass --image FILE",
        )
    exact = [i for i in same_build if i.version == version]
    if exact:
        chosen = exact[0]
    else:
        chosen = max(same_build, key=lambda i: _version_key(i.version))
        chosen = _with_note(
            chosen,
            f"no {build} v{version} in the cache (board {board['name']} is tested with it); "
            f"using v{chosen.version}",
        )
    _check_hash(chosen)
    return chosen


def _check_hash(image: Image) -> None:
    try:
        data = image.path.read_bytes()
    except FileNotFoundError:
        raise FlashError(
            f"the cached image {image.path.name} is gone from {image.path.parent}",
            hint="add it again with `mote images add FILE`",
        ) from None
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise FlashError(
            f"the cached image {image.path} is damaged: its sha256 is not the one recorded",
            hint=f"download {image.path.name} again and run `mote images add FILE`",
        )
    fmt, chip = identify(data, image.path.name)
    if (fmt, chip) != (image.format, image.chip):
        raise FlashError(
            f"{MANIFEST} in {image.path.parent} says {image.path.name} is for {image.chip}, its "
            f"bytes say {chip}",
            hint="add the image again with `mote images add FILE`",
        )


def read_verified(image: Image) -> bytes:
    """The image's bytes, if they still hash to image.sha256."""
    try:
        data = image.path.read_bytes()
    except FileNotFoundError:
        raise FlashError(f"the image {image.path} is gone") from None
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise FlashError(
            f"{image.path} changed since it was checked",
            hint="run mote flash again (and `mote images add FILE` if it is a cached image)",
        )
    return data


def check_fits(image: Image, board: Board) -> None:
    """FlashError unless `image` is for `board`: an ESP image for its chip, or an RP2040 UF2."""
    wanted_format = _FORMAT_OF_PORT.get(board["port"])
    mcu = board["mcu"]
    what = f"an {CHIP_NAMES.get(image.chip, image.chip)} image"
    if image.format == "uf2":
        what = f"a UF2 for an {CHIP_NAMES.get(image.chip, image.chip)}"
    if image.format != wanted_format or image.chip != mcu:
        raise FlashError(
            f"{image.path.name} is {what}, and {board['name']} is an "
            f"{CHIP_NAMES.get(mcu, mcu)} board",
            hint=f"use the {board['micropython']['build']} build from "
            f"{DOWNLOADS}/{board['micropython']['build']}/, or check --board",
        )


def _with_note(image: Image, note: str) -> Image:
    return replace(image, note=note)


# ---- the manifest -------------------------------------------------------------------------


def _entry(image: Image) -> dict[str, Any]:
    return {
        "file": image.path.name,
        "sha256": image.sha256,
        "size": image.size,
        "build": image.build,
        "version": image.version,
        "format": image.format,
        "chip": image.chip,
        "added": image.added,
    }


def _from_entry(cache: Path, e: dict[str, Any]) -> Image:
    return Image(
        path=cache / e["file"],
        sha256=e["sha256"],
        size=e["size"],
        build=e["build"],
        version=e["version"],
        format=e["format"],
        chip=e["chip"],
        added=e.get("added", ""),
    )


_ENTRY_FIELDS = {"file", "sha256", "size", "build", "version", "format", "chip"}


def _read_manifest(cache: Path) -> list[dict[str, Any]]:
    path = cache / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise _damaged(path, str(exc)) from exc
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise _damaged(path, f"not a version {MANIFEST_VERSION} manifest")
    entries = doc.get("images")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and e.keys() >= _ENTRY_FIELDS for e in entries
    ):
        raise _damaged(path, "its images list is malformed")
    for e in entries:
        if Path(e["file"]).name != e["file"]:  # a file name only, never a path out of the cache
            raise _damaged(path, f"{e['file']!r} is not a file name")
    return entries


def _damaged(path: Path, why: str) -> FlashError:
    return FlashError(
        f"the image cache's manifest {path} is damaged ({why})",
        hint="delete it and add the images again with `mote images add FILE`",
    )


def _write_manifest(cache: Path, entries: list[dict[str, Any]]) -> None:
    text = json.dumps({"version": MANIFEST_VERSION, "images": entries}, indent=2) + "\n"
    _replace_atomically(cache / MANIFEST, lambda f: f.write(text.encode()))


def _copy_atomically(src: Path, dest: Path) -> None:
    with open(src, "rb") as s:
        _replace_atomically(dest, lambda f: shutil.copyfileobj(s, f))


def _replace_atomically(dest: Path, fill: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file beside `dest`, fsync it, then rename it over `dest`: a
    crash leaves the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return  # directories cannot be opened for fsync there; NTFS journals the rename
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
