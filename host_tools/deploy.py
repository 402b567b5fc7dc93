"""`mote deploy`: bring a node's firmware up to date with this checkout, copying only what changed.

    result = deploy("/dev/ttyUSB0", board="heltec-wifi-lora32-v3", progress=bar)

1. Console: catch the node. If it runs motekit with this very build (the `build` id of its
   /manifest.json, from `info`), let it go: nothing to copy. Otherwise ask it to `deploy`: it
   writes /deploying and resets; main.py sees the mark and stays at the REPL, so the app is
   stopped, the watchdog is off, and a half-copied firmware never runs.
2. Raw REPL (nodefs.py, mpremote's transport): compare the build's manifest with the node's
   /manifest.json — or, after an interrupted deploy (the mark was already there) or without a
   manifest, with hashes computed on the node — copy what differs, check the copies' hashes on
   the node, remove what the old manifest lists and the new one does not, write /manifest.json
   last, then remove the mark. config.json, cal.json and secrets.json are never touched.
3. Soft-reset, catch the node again, and check it reports this build; let it go.

docs/host-tools.md ("Deploy") has the rules for the user.
"""

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.errors import DeployError, MoteError, ProtocolError, TransportError
from host_tools.firmware_files import (
    DEPLOYING_PATH,
    MANIFEST_PATH,
    MANIFEST_VERSION,
    NODE_DATA,
    Build,
    build,
)
from host_tools.nodefs import NodeFs
from host_tools.protocol.client import NodeClient
from host_tools.transport.serial import SerialTransport, open_when_back

# progress(phase, node path, bytes done, bytes in total) — phases: "build", "copy", "verify".
Progress = Callable[[str, str, int, int], None]
# What main.py prints when it stays at the REPL for a deploy (firmware/main.py).
_AT_REPL_FOR_DEPLOY = "a deploy has not finished"
_BACK_S = 20.0  # how long a node may take to come back after a reset


@dataclass
class DeployResult:
    port: str
    board: str
    fw: str
    build: str
    copied: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0
    seconds: float = 0.0
    resumed: bool = False  # an interrupted deploy was found and finished
    previous_build: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "board": self.board,
            "fw": self.fw,
            "build": self.build,
            "previous_build": self.previous_build,
            "copied": len(self.copied),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "resumed": self.resumed,
            "copied_files": self.copied,
            "removed_files": self.removed,
        }


@dataclass
class _Seen:
    """What the console phase found on the node."""

    motekit: bool  # it answered the console protocol (and is now held)
    info: dict[str, Any] | None = None
    was_held: bool = False  # someone held it before us: leave it held
    silent: bool = False  # no answer and no REPL prompt: asleep, hung, or not MicroPython


def deploy(
    port: str,
    board: str | None = None,
    *,
    full: bool = False,
    wait_s: float = 5.0,
    progress: Progress | None = None,
    extra_files: dict[str, Path] | None = None,
    start: bool = True,
    hold: bool = False,
) -> DeployResult:
    """Deploy this checkout's firmware to the node on `port` (see the module docstring).

    `board`: the board definition to deploy for; default the node's own /board.json.
    `full`: copy every file whatever the node has. `extra_files`: node path -> file, written
    after the firmware and not part of it (a starting /config.json for a demo or a test).
    `start=False` leaves the node at its REPL instead of starting the new firmware (for tests
    that reset the node themselves and count its boots). `hold=True` leaves the node held (in
    console mode, awake) for the next command, as `mote hold` does.
    """
    t0 = time.monotonic()
    seen = _console_phase(port, wait_s)
    with tempfile.TemporaryDirectory(prefix="mote-deploy-") as tmp:
        if seen.motekit:
            assert seen.info is not None
            name = board or seen.info.get("board")
            if not isinstance(name, str):
                raise DeployError(
                    "the node does not say which board it is", hint="pass --board", err="no_board"
                )
            local = build(name, Path(tmp))
            same = seen.info.get("build") == local.id and seen.info.get("board") == name
            if same and not full and not extra_files:
                if not (seen.was_held or hold):
                    _request(port, "release")
                return DeployResult(
                    port,
                    name,
                    local.manifest["fw"],
                    local.id,
                    unchanged=len(local.files),
                    seconds=time.monotonic() - t0,
                    previous_build=local.id,
                )
            _begin(port)
        try:
            result = _copy_phase(port, board, full, Path(tmp), progress, extra_files or {}, start)
        except DeployError as exc:
            if seen.silent and exc.err == "no_repl":
                raise DeployError(
                    f"no answer from the node on {port} within {wait_s:g} s, and no REPL",
                    hint="it may be asleep in its duty cycle: reset it (or wake it) and deploy "
                    "within its host window, or give --wait longer than its sample period; "
                    "a board without MicroPython needs `mote flash` first",
                    err="no_answer",
                ) from exc
            raise
    if start:
        _check_running(port, result, wait_s, hold)
    result.seconds = time.monotonic() - t0
    return result


# ---- 1. the console ----------------------------------------------------------------------------


def _console_phase(port: str, wait_s: float) -> _Seen:
    with SerialTransport(port) as t:
        # Ctrl-B first: a node left in the raw REPL (an interrupted deploy) goes back to the
        # friendly one and shows its prompt, which the client recognises at once. A running
        # motekit ignores the line.
        t.write(b"\x02\r\n")
        client = NodeClient(t)
        try:
            client.catch(wait_s)
        except ProtocolError as exc:
            if exc.err in ("repl", "timeout"):
                # The raw REPL phase interrupts whatever runs.
                return _Seen(motekit=False, silent=exc.err == "timeout")
            raise
        info = client.request("info")
        return _Seen(motekit=True, info=info, was_held=bool(client.was_held))


def _request(port: str, cmd: str) -> dict[str, Any]:
    # One request to a node that is held (it listens until released).
    with SerialTransport(port) as t:
        return NodeClient(t).request(cmd)


def _begin(port: str) -> None:
    """Ask the held motekit to mark the deploy and reset into the REPL; wait until it is."""
    t = SerialTransport(port)
    try:
        client = NodeClient(t)
        try:
            client.request("deploy")
        except ProtocolError as exc:
            if exc.err != "unknown_cmd":
                raise
            return  # older firmware: the raw REPL phase stops it with Ctrl-C instead
        _wait_for_text(t, _AT_REPL_FOR_DEPLOY, port)
    finally:
        t.close()


def _wait_for_text(t: SerialTransport, text: str, port: str) -> None:
    # Reading through the reset: a USB port vanishes and comes back; a UART just goes on.
    deadline = time.monotonic() + _BACK_S
    seen = b""
    while time.monotonic() < deadline:
        try:
            seen = (seen + t.read(0.2))[-4096:]
        except TransportError:
            t.close()
            t = open_when_back(port, deadline - time.monotonic())
            continue
        if text.encode() in seen:
            return
    raise DeployError(
        f"the node on {port} did not come back at the REPL after its reset",
        hint="reset it by hand and run mote deploy again",
        err="not_back",
    )


# ---- 2. the raw REPL ---------------------------------------------------------------------------


def _copy_phase(
    port: str,
    board: str | None,
    full: bool,
    tmp: Path,
    progress: Progress | None,
    extra_files: dict[str, Path],
    start: bool,
) -> DeployResult:
    with NodeFs.open(port, wait_s=_BACK_S) as fs:
        interrupted = fs.read(DEPLOYING_PATH) is not None
        old = fs.read_json(MANIFEST_PATH)
        if not (isinstance(old, dict) and old.get("version") == MANIFEST_VERSION):
            old = None
        name = board or _node_board(fs)
        local = build(name, tmp)
        if not interrupted:
            fs.write(DEPLOYING_PATH, b"mote deploy")
        result = DeployResult(port, name, local.manifest["fw"], local.id, resumed=interrupted)
        result.previous_build = old.get("build") if old else None
        have = _what_the_node_has(fs, local, old, trust_manifest=not interrupted, full=full)
        copy = [p for p in local.files if have.get(p) != local.entry(p)]
        result.unchanged = len(local.files) - len(copy)
        remove = _stale(fs, local, old)
        _copy(fs, local, copy, progress, result)
        for path in remove:
            if fs.remove(path):
                result.removed.append(path)
        for node_path, src in extra_files.items():
            fs.makedirs([node_path.rsplit("/", 1)[0]] if node_path.count("/") > 1 else [])
            fs.write_atomically(node_path, src.read_bytes())
        # "build" comes before "files", which the node's `info` relies on (motekit/deployed.py).
        fs.write_atomically(MANIFEST_PATH, json.dumps(local.manifest).encode())
        fs.remove(DEPLOYING_PATH)
        if start:
            fs.soft_reset()
    return result


def _node_board(fs: NodeFs) -> str:
    board = fs.read_json("/board.json")
    name = board.get("name") if isinstance(board, dict) else None
    if not isinstance(name, str):
        raise DeployError(
            f"the node on {fs.port} has no /board.json: which board is it?",
            hint="pass --board NAME (the names are the folders in boards/)",
            err="no_board",
        )
    return name


def _what_the_node_has(
    fs: NodeFs, local: Build, old: dict[str, Any] | None, *, trust_manifest: bool, full: bool
) -> dict[str, tuple[str, int] | None]:
    if full:
        return {}
    if old is not None and trust_manifest:
        files = old.get("files", {})
        return {p: (e["sha256"], e["size"]) for p, e in files.items() if isinstance(e, dict)}
    # No manifest, or one the interrupted deploy may have outdated: look at the files.
    return fs.hashes(local.files)


def _stale(fs: NodeFs, local: Build, old: dict[str, Any] | None) -> list[str]:
    """Files to remove: what the old manifest lists that this build does not, and a stale
    source next to a module this build ships as .mpy (MicroPython imports x.py before x.mpy)."""
    listed = set(old.get("files", {})) if old else set()
    gone = sorted(p for p in listed - set(local.files) if p not in NODE_DATA)
    twins = [p[: -len(".mpy")] + ".py" for p in local.files if p.endswith(".mpy")]
    present = fs.hashes(twins)
    return gone + sorted(p for p, v in present.items() if v is not None)


def _copy(
    fs: NodeFs, local: Build, copy: list[str], progress: Progress | None, result: DeployResult
) -> None:
    total = sum(local.entry(p)[1] for p in copy)
    dirs = sorted({p.rsplit("/", 1)[0] for p in copy if p.count("/") > 1})
    fs.makedirs(dirs)
    done = 0
    for path in copy:
        data = local.files[path].read_bytes()

        def step(n: int, path: str = path, before: int = done) -> None:
            if progress is not None:
                progress("copy", path, before + n, total)

        fs.write(path, data, step)
        done += len(data)
        result.copied.append(path)
        result.bytes += len(data)
    if progress is not None:
        progress("verify", "", 0, len(copy))
    arrived = fs.hashes(copy)
    bad = [p for p in copy if arrived.get(p) != local.entry(p)]
    if bad:
        raise DeployError(
            f"{len(bad)} file(s) did not arrive intact on the node: {', '.join(bad[:3])}",
            hint="run mote deploy again (the node stays at the REPL until a deploy completes)",
            err="not_intact",
        )


# ---- 3. the new firmware runs ------------------------------------------------------------------


def _check_running(port: str, result: DeployResult, wait_s: float, hold: bool) -> None:
    with open_when_back(port, _BACK_S) as t:
        client = NodeClient(t)
        try:
            client.catch(max(wait_s, 10.0))
            info = client.request("info")
        except MoteError as exc:
            raise DeployError(
                f"the files are on the node but it did not start motekit: {exc}",
                hint=f"`mote console --port {port}` shows what it says",
                err="not_started",
            ) from exc
        if not hold:
            with contextlib.suppress(MoteError):
                client.release_if_caught()
    if info.get("build") != result.build or info.get("fw") != result.fw:
        raise DeployError(
            f"after the deploy the node reports firmware {info.get('fw')} build "
            f"{info.get('build')}, expected {result.fw} build {result.build}",
            err="wrong_build",
        )
