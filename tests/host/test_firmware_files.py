"""What goes onto a node: modules compiled to .mpy for the board's architecture, data files, the
resolved board file, and a manifest of all of them with a build id."""

import hashlib
import json
from pathlib import Path

import pytest

from host_tools import firmware_files
from host_tools.errors import MoteError

REPO = Path(__file__).resolve().parents[2]


def test_modules_go_as_mpy_and_data_as_it_is(tmp_path: Path) -> None:
    files = firmware_files.node_files("sim-rp2", tmp_path)
    assert files["/boot.py"] == REPO / "firmware" / "boot.py"
    assert files["/main.py"] == REPO / "firmware" / "main.py"
    app = files["/lib/motekit/app.mpy"]
    assert app.read_bytes()[:1] == b"M"  # the .mpy header's magic
    assert files["/lib/motekit/schema.json"] == REPO / "firmware" / "motekit" / "schema.json"
    assert "/lib/sht4x.mpy" in files and "/lib/motekit/app.py" not in files
    assert json.loads(files["/board.json"].read_text())["name"] == "sim-rp2"


def _compiled_with(march: str, tmp_path: Path) -> bytes:
    # A module with native code: the only kind whose .mpy records the architecture.
    src = tmp_path / "nat.py"
    src.write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    return firmware_files._compile(src, tmp_path / march / "nat.mpy", march).read_bytes()


@pytest.mark.parametrize(("march", "arch"), [("xtensawin", 10), ("armv6m", 4), ("rv32imc", 11)])
def test_modules_are_compiled_for_the_boards_architecture(
    march: str, arch: int, tmp_path: Path
) -> None:
    # The .mpy header's third byte holds the architecture in its top bits (py/persistentcode.h
    # MPY_FEATURE_ENCODE_ARCH): a native module compiled without -march would not load.
    assert _compiled_with(march, tmp_path)[2] >> 2 == arch


def test_the_board_file_picks_the_march(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []
    real = firmware_files._compile

    def spy(src: Path, out: Path, march: str | None) -> Path:
        seen.append(march)
        return real(src, out, march)

    monkeypatch.setattr(firmware_files, "_compile", spy)
    firmware_files.node_files("sim-rp2", tmp_path / "rp2")
    assert set(seen) == {"armv6m"}
    seen.clear()
    firmware_files.node_files("sim-esp32", tmp_path / "esp32")
    assert set(seen) == {"xtensawin"}


def test_the_manifest_names_every_file_with_its_hash_and_size(tmp_path: Path) -> None:
    b = firmware_files.build("sim-esp32", tmp_path)
    m = b.manifest
    assert m["version"] == 1 and m["board"] == "sim-esp32"
    assert m["fw"] == firmware_files.firmware_version() != "unknown"
    assert set(m["files"]) == set(b.files)
    for node_path, entry in m["files"].items():
        data = b.files[node_path].read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert not set(m["files"]) & {"/config.json", "/cal.json", "/secrets.json", "/manifest.json"}


def test_the_build_id_follows_the_files(tmp_path: Path) -> None:
    a = firmware_files.build("sim-esp32", tmp_path / "a")
    again = firmware_files.build("sim-esp32", tmp_path / "b")
    assert a.id == again.id and len(a.id) == 16
    other_board = firmware_files.build("sim-rp2", tmp_path / "c")
    assert other_board.id != a.id  # board.json differs
    files = dict(a.files)
    changed = tmp_path / "main.py"
    changed.write_text(files["/main.py"].read_text() + "\n# changed\n")
    files["/main.py"] = changed
    assert firmware_files.manifest("sim-esp32", files)["build"] != a.id


def test_the_build_id_is_in_the_manifests_head_for_every_board(tmp_path: Path) -> None:
    # The node's `info` reads only the first 200 bytes (firmware/motekit/deployed.py).
    from host_tools.boards import board_names

    longest = max(board_names(), key=len)
    b = firmware_files.build(longest, tmp_path)
    head = json.dumps(b.manifest)[:200]
    assert f'"build": "{b.id}"' in head


# ---- the compile cache --------------------------------------------------------------------


def _counting_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = firmware_files.subprocess.run

    def run(cmd, **kw):  # type: ignore[no-untyped-def]
        calls.append(cmd)
        return real(cmd, **kw)

    monkeypatch.setattr(firmware_files.subprocess, "run", run)
    return calls


def test_a_module_is_compiled_once_then_served_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTEKIT_CACHE", str(tmp_path / "cache"))
    calls = _counting_runs(monkeypatch)
    src = tmp_path / "m.py"
    src.write_text("import micropython\n@micropython.native\ndef f():\n    return 1\n")
    first = firmware_files._compile(src, tmp_path / "a" / "m.mpy", "xtensawin").read_bytes()
    again = firmware_files._compile(src, tmp_path / "b" / "m.mpy", "xtensawin").read_bytes()
    assert len(calls) == 1 and first == again
    assert len(list((tmp_path / "cache" / "mpy").iterdir())) == 1

    # Another architecture, or another source, is compiled anew.
    armv6m = firmware_files._compile(src, tmp_path / "c" / "m.mpy", "armv6m").read_bytes()
    src.write_text("import micropython\n@micropython.native\ndef f():\n    return 1234567\n")
    changed = firmware_files._compile(src, tmp_path / "d" / "m.mpy", "xtensawin").read_bytes()
    assert len(calls) == 3
    assert armv6m[2] >> 2 == 4 and first[2] >> 2 == 10  # the architecture each was asked for
    assert changed != first


def test_a_failed_compile_raises_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTEKIT_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "bad.py"
    src.write_text("def f(:\n")
    with pytest.raises(MoteError, match="mpy-cross failed on .*bad.py"):
        firmware_files._compile(src, tmp_path / "out" / "bad.mpy", None)
    assert list((tmp_path / "cache" / "mpy").iterdir()) == []  # no entry, no temporary file
    src.write_text("def f(x):\n    return x\n")
    assert firmware_files._compile(src, tmp_path / "out" / "bad.mpy", None).read_bytes()[0] == 77


def test_the_cache_lives_in_the_users_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOTEKIT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert firmware_files._cache_dir() == tmp_path / "motekit" / "mpy"
