"""The MicroPython image cache (host_tools/flashing/images.py) and `mote images`, on small
synthetic images: an ESP image header with a chip id, a few valid UF2 blocks."""

import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest

from host_tools.boards import load_board
from host_tools.cli import main as cli_main
from host_tools.errors import ConfigError, FlashError
from host_tools.flashing.images import (
    add_image,
    cache_dir,
    find_image,
    identify,
    list_images,
    parse_name,
)

ESP32, ESP32C3, ESP32S3, ESP32S2 = 0, 5, 9, 2
RP2040, RP2350_ARM = 0xE48BFF56, 0xE48BFF59


def esp_image(chip_id: int, body: int = 256) -> bytes:
    """An ESP image header (esptool bin_image.py layout) with `chip_id`, then `body` bytes."""
    common = struct.pack("<BBBBI", 0xE9, 3, 2, 0x20, 0x40080000)
    extended = struct.pack("<BBBBHBHH4BB", 0xEE, 0, 0, 0, chip_id, 0, 0, 0xFFFF, 0, 0, 0, 0, 1)
    return common + extended + bytes(range(256))[:body]


def uf2_image(blocks: int = 3, family: int = RP2040, flags: int = 0x2000) -> bytes:
    out = b""
    for i in range(blocks):
        head = struct.pack(
            "<8I", 0x0A324655, 0x9E5D5157, flags, 0x10000000 + 256 * i, 256, i, blocks, family
        )
        out += head + bytes([i]) * 476 + struct.pack("<I", 0x0AB16F30)
    return out


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("MOTE_IMAGE_CACHE", str(c))
    return c


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    d = tmp_path / "downloads"
    d.mkdir()
    return d


def put(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ---- telling images apart -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("chip_id", "chip"), [(ESP32, "esp32"), (ESP32S3, "esp32s3"), (ESP32C3, "esp32c3")]
)
def test_an_esp_image_is_told_by_its_chip_id(chip_id: int, chip: str) -> None:
    assert identify(esp_image(chip_id), "x.bin") == ("esp", chip)


def test_an_rp2040_uf2_is_told_by_its_family() -> None:
    assert identify(uf2_image(), "x.uf2") == ("uf2", "rp2040")


def test_uf2_blocks_that_are_not_for_the_flash_do_not_count() -> None:
    comment = uf2_image(1, family=0, flags=0x1)  # "not main flash": skipped, whatever it says
    assert identify(uf2_image(2) + comment, "x.uf2") == ("uf2", "rp2040")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04 a zip file" * 10, "neither an ESP image"),
        (b"", "neither an ESP image"),
        (esp_image(ESP32S2), "ESP32-S2"),
        (esp_image(77), "unknown chip id 77"),
        (esp_image(ESP32)[:20], "damaged or cut short"),
        (uf2_image(3)[:-100], "not a whole number"),
        (uf2_image(3)[:1024], "2 of its 3 blocks"),
        (uf2_image(2, family=RP2350_ARM), "RP2350"),
        (uf2_image(2, flags=0), "no family id"),
        (uf2_image(1) + uf2_image(1, family=RP2350_ARM), "RP2350"),
        (uf2_image(2)[:512] + b"\0" * 512, "damaged UF2: block 1"),
    ],
)
def test_what_is_not_a_usable_image_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(FlashError) as e:
        identify(data, "thing.bin")
    assert words in str(e.value) and "thing.bin" in str(e.value)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("ESP32_GENERIC_S3-20250911-v1.26.1.bin", ("ESP32_GENERIC_S3", "1.26.1")),
        ("ESP32_GENERIC-SPIRAM-20250911-v1.26.1.bin", ("ESP32_GENERIC-SPIRAM", "1.26.1")),
        ("RPI_PICO_W-20250911-v1.27.0-preview.12.g0.uf2", ("RPI_PICO_W", "1.27.0-preview.12.g0")),
        ("RPI_PICO-v1.29.0.uf2", ("RPI_PICO", "1.29.0")),
        ("firmware.bin", None),
        ("ESP32_GENERIC-20250911-v1.26.1.zip", None),
    ],
)  # fmt: skip
def test_download_names_give_build_and_version(name: str, parsed: tuple[str, str] | None) -> None:
    assert parse_name(name) == parsed


# ---- adding -------------------------------------------------------------------------------


def test_add_copies_the_image_and_records_it(cache: Path, downloads: Path) -> None:
    data = esp_image(ESP32S3)
    src = put(downloads, "ESP32_GENERIC_S3-20250911-v1.26.1.bin", data)
    image = add_image(src)
    assert image.path == cache / src.name and image.path.read_bytes() == data
    assert (image.build, image.version, image.format, image.chip, image.size) == (
        "ESP32_GENERIC_S3", "1.26.1", "esp", "esp32s3", len(data),
    )  # fmt: skip
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["version"] == 1
    (entry,) = manifest["images"]
    assert entry == {
        "file": src.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "build": "ESP32_GENERIC_S3",
        "version": "1.26.1",
        "format": "esp",
        "chip": "esp32s3",
        "added": image.added,
    }
    assert image.added.startswith("20") and "T" in image.added  # ISO 8601
    assert sorted(p.name for p in cache.iterdir()) == sorted(["manifest.json", src.name])


def test_adding_the_same_name_again_replaces_it(downloads: Path) -> None:
    src = put(downloads, "RPI_PICO-20250911-v1.26.1.uf2", uf2_image(2))
    add_image(src)
    src.write_bytes(uf2_image(3))
    again = add_image(src)
    (only,) = list_images()
    assert only.sha256 == again.sha256 and only.size == 3 * 512


def test_build_option_names_a_file_micropython_org_did_not(downloads: Path) -> None:
    src = put(downloads, "my-pico-v1.26.1.uf2", uf2_image())
    assert (add_image(src, build="RPI_PICO").build, add_image(src, build="RPI_PICO").version) == (
        "RPI_PICO", "1.26.1",
    )  # fmt: skip


def test_build_option_wins_over_the_name(downloads: Path) -> None:
    src = put(downloads, "RPI_PICO-20250911-v1.26.1.uf2", uf2_image())
    assert add_image(src, build="RPI_PICO_W").build == "RPI_PICO_W"


@pytest.mark.parametrize(
    ("name", "build", "error", "words"),
    [
        ("firmware.uf2", None, FlashError, "cannot tell the MicroPython build"),
        ("firmware.uf2", "RPI_PICO", FlashError, "no MicroPython version"),
        ("RPI_PICO-v1.26.1.uf2", "rpi pico", ConfigError, "not a MicroPython build name"),
    ],
)
def test_add_refuses_what_it_cannot_record(
    downloads: Path, name: str, build: str | None, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        add_image(put(downloads, name, uf2_image()), build=build)


def test_add_refuses_a_file_that_is_not_an_image(cache: Path, downloads: Path) -> None:
    with pytest.raises(FlashError, match="not a MicroPython image"):
        add_image(put(downloads, "RPI_PICO-20250911-v1.26.1.uf2", b"<html>404</html>"))
    assert not (cache / "manifest.json").exists()


# ---- finding an image for a board ---------------------------------------------------------


def test_the_boards_version_is_preferred(downloads: Path) -> None:
    board = load_board("rpi-pico")
    assert board["micropython"]["version"] == "1.29.0"
    for version in ("1.29.0", "1.30.0"):
        add_image(put(downloads, f"RPI_PICO-20250911-v{version}.uf2", uf2_image()))
    image = find_image(board)
    assert (image.build, image.version, image.note) == ("RPI_PICO", "1.29.0", "")


def test_another_version_is_used_with_a_note(downloads: Path) -> None:
    for name in (
        "RPI_PICO-20250101-v1.26.1.uf2",
        "RPI_PICO-20250601-v1.27.0-preview.9.gabc.uf2",
        "RPI_PICO-20250911-v1.27.0.uf2",
        "RPI_PICO_W-20250911-v1.29.0.uf2",  # another build: never chosen
    ):
        add_image(put(downloads, name, uf2_image()))
    image = find_image(load_board("rpi-pico"))
    assert (image.build, image.version) == ("RPI_PICO", "1.27.0")
    assert "v1.29.0" in image.note and "using v1.27.0" in image.note


def test_a_missing_image_says_what_to_download_and_from_where(cache: Path) -> None:
    with pytest.raises(FlashError) as e:
        find_image(load_board("esp32-s3-devkitc"))
    assert str(e.value) == (
        f"no MicroPython image for esp32-s3-devkitc (ESP32_GENERIC_S3 v1.29.0) in {cache}"
    )
    assert e.value.hint == (
        "download ESP32_GENERIC_S3-<date>-v1.29.0.bin from "
        "https://micropython.org/download/ESP32_GENERIC_S3/ and run `mote images add FILE`, "
        "or pass --image FILE"
    )


def test_a_missing_rp2_image_is_a_uf2() -> None:
    with pytest.raises(FlashError) as e:
        find_image(load_board("rpi-pico-w"))
    assert "RPI_PICO_W-<date>-v1.29.0.uf2" in e.value.hint


def test_a_damaged_cached_image_is_refused(downloads: Path) -> None:
    image = add_image(put(downloads, "ESP32_GENERIC-20250911-v1.29.0.bin", esp_image(ESP32)))
    data = bytearray(image.path.read_bytes())
    data[-1] ^= 0xFF
    image.path.write_bytes(bytes(data))
    with pytest.raises(FlashError, match="damaged") as e:
        find_image(load_board("esp32-devkitc"))
    assert "ESP32_GENERIC-20250911-v1.29.0.bin" in e.value.hint


def test_a_cached_image_gone_from_the_cache_is_refused(downloads: Path) -> None:
    add_image(put(downloads, "ESP32_GENERIC-20250911-v1.29.0.bin", esp_image(ESP32))).path.unlink()
    with pytest.raises(FlashError, match="is gone"):
        find_image(load_board("esp32-devkitc"))


def test_an_s3_image_for_an_esp32_board_is_refused(downloads: Path) -> None:
    # Named as the ESP32 build, but its header says ESP32-S3.
    add_image(put(downloads, "ESP32_GENERIC-20250911-v1.29.0.bin", esp_image(ESP32S3)))
    with pytest.raises(FlashError) as e:
        find_image(load_board("esp32-devkitc"))
    assert "an ESP32-S3 image, and esp32-devkitc is an ESP32 board" in str(e.value)


@pytest.mark.parametrize(
    ("board", "data", "words"),
    [
        ("esp32-devkitc", esp_image(ESP32S3), "an ESP32-S3 image"),
        ("esp32-s3-devkitc", esp_image(ESP32C3), "an ESP32-C3 image"),
        ("esp32-devkitc", uf2_image(), "a UF2 for an RP2040"),
        ("rpi-pico", esp_image(ESP32), "an ESP32 image, and rpi-pico is an RP2040 board"),
    ],
)
def test_a_given_image_must_fit_the_board(
    downloads: Path, board: str, data: bytes, words: str
) -> None:
    with pytest.raises(FlashError, match=words):
        find_image(load_board(board), image=put(downloads, "custom.bin", data))


def test_a_given_image_is_used_as_is_with_a_note_on_its_version(downloads: Path) -> None:
    src = put(downloads, "RPI_PICO-20250101-v1.26.1.uf2", uf2_image())
    image = find_image(load_board("rpi-pico"), image=src)
    assert (image.path, image.chip, image.version) == (src, "rp2040", "1.26.1")
    assert "tested with RPI_PICO v1.29.0" in image.note
    plain = find_image(load_board("rpi-pico"), image=put(downloads, "firmware.uf2", uf2_image()))
    assert (plain.build, plain.version, plain.note) == ("", "", "")


def test_a_given_image_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no image file"):
        find_image(load_board("rpi-pico"), image=tmp_path / "nope.uf2")


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        json.dumps({"version": 2, "images": []}),
        json.dumps({"version": 1, "images": [{"file": "x.uf2"}]}),
        json.dumps({"version": 1, "images": [{
            "file": "../../etc/passwd", "sha256": "0", "size": 1, "build": "RPI_PICO",
            "version": "1.29.0", "format": "uf2", "chip": "rp2040",
        }]}),
    ],
)  # fmt: skip
def test_a_damaged_manifest_is_refused(cache: Path, manifest: str) -> None:
    cache.mkdir()
    (cache / "manifest.json").write_text(manifest)
    with pytest.raises(FlashError, match="manifest .* is damaged"):
        find_image(load_board("rpi-pico"))


# ---- where the cache is -------------------------------------------------------------------


def test_cache_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("MOTE_IMAGE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MOTE_IMAGE_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "motekit" / "images"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignored
    assert cache_dir() == tmp_path / "home" / ".cache" / "motekit" / "images"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "motekit" / "images"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cache_dir() == tmp_path / "home" / "Library" / "Caches" / "motekit" / "images"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert cache_dir() == tmp_path / "local" / "motekit" / "images"


# ---- mote images ----------------------------------------------------------------------------


def mote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli_main.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_mote_images_add_list_path(
    capsys: pytest.CaptureFixture[str], cache: Path, downloads: Path
) -> None:
    src = put(downloads, "ESP32_GENERIC_C3-20250911-v1.29.0.bin", esp_image(ESP32C3))
    rc, out, err = mote(capsys, "images", "add", str(src))
    assert (rc, err) == (0, "")
    assert "ESP32_GENERIC_C3 v1.29.0" in out and "ESP32-C3" in out

    rc, out, err = mote(capsys, "images", "list", "--json")
    assert (rc, err) == (0, "") and len(out.splitlines()) == 1
    (entry,) = json.loads(out)
    assert entry["file"] == src.name and entry["path"] == str(cache / src.name)
    assert (entry["build"], entry["version"], entry["chip"], entry["format"]) == (
        "ESP32_GENERIC_C3", "1.29.0", "esp32c3", "esp",
    )  # fmt: skip
    assert set(entry) == {
        "file", "path", "sha256", "size", "build", "version", "format", "chip", "added",
    }  # fmt: skip

    rc, out, _ = mote(capsys, "images", "list")
    assert rc == 0 and "ESP32_GENERIC_C3" in out and "1.29.0" in out

    rc, out, _ = mote(capsys, "images", "path")
    assert (rc, out) == (0, f"{cache}\n")


def test_mote_images_list_of_an_empty_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert json.loads(mote(capsys, "images", "list", "--json")[1]) == []
    rc, out, _ = mote(capsys, "images", "list")
    assert rc == 0 and "no images" in out and "mote images add" in out


def test_mote_images_add_errors_are_one_line_and_a_hint(
    capsys: pytest.CaptureFixture[str], downloads: Path, tmp_path: Path
) -> None:
    junk = put(downloads, "RPI_PICO-20250911-v1.29.0.uf2", b"not an image at all")
    rc, out, err = mote(capsys, "images", "add", str(junk))
    assert (rc, out) == (6, "")
    assert err.splitlines() == [
        f"error: {junk.name} is not a MicroPython image: neither an ESP image (.bin) nor a UF2",
        "hint: download the firmware for the board from https://micropython.org/download/",
    ]
    rc, _, err = mote(capsys, "images", "add", str(tmp_path / "missing.uf2"))
    assert rc == 2 and err.startswith("error: no file ")
