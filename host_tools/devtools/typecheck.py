"""`make typecheck`: firmware/ and drivers/ checked by mypy against each board's MicroPython stubs.

    python -m host_tools.devtools.typecheck [--profile P ...] [--install-only] [--root DIR] [PATHS]

Each profile's official stub package, pinned in pyproject.toml's `stubs-<profile>` extra, is
installed once into .venv/stubs/<profile>/. It brings a reduced standard library
(micropython-stdlib-stubs) that mypy uses *instead of* CPython's typeshed, so `import subprocess`
or `json.dumps(obj, indent=2)` is an error here, as it would be on the board.

Capabilities: a MicroPython file that needs something not every board has says so in its header
comments, before its first line of code:

    # motekit: requires=ble            (several: `# motekit: requires=ble,wifi`)

A profile checks only the files whose requirements it meets. So an unmarked file importing
`bluetooth` fails on rpi-pico, whose stubs have no such module, and a file importing a marked one
fails at that import on the profiles that skip it (the board would not have it either).
"""

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import ConfigError, MoteError

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
STUBS_DIR = REPO / ".venv" / "stubs"
SOURCE_DIRS = ("firmware", "drivers")

# Capability -> the stub module that proves a profile has it (the tests hold PROFILES to this).
CAPABILITIES = {"ble": "bluetooth", "wifi": "network"}


@dataclass(frozen=True)
class Profile:
    platform: str  # sys.platform on the board, so `if sys.platform == "rp2":` narrows as there
    capabilities: frozenset[str]


# Board profile -> what its firmware offers. Its stubs are the pyproject extra `stubs-<profile>`.
PROFILES: dict[str, Profile] = {
    "esp32": Profile("esp32", frozenset({"ble", "wifi"})),
    "esp32-s3": Profile("esp32", frozenset({"ble", "wifi"})),
    "esp32-c3": Profile("esp32", frozenset({"ble", "wifi"})),
    "rpi-pico": Profile("rp2", frozenset()),
    # The Pico W's CYW43 radio does both: its stubs ship `bluetooth` and `network`.
    "rpi-pico-w": Profile("rp2", frozenset({"ble", "wifi"})),
}

# The oldest target mypy 2.4 accepts, so the closest to MicroPython's grammar (e.g. no except*).
_PYTHON_VERSION = "3.10"
_MARKER = ".motekit-requirements"  # written last by install_stubs: the install is complete
_REQUIRES = re.compile(r"#\s*motekit:\s*requires\s*=(.*)")


@dataclass
class ProfileResult:
    profile: str
    files: list[Path]  # what the profile loads, all checked
    skipped: list[Path]  # files needing a capability the profile lacks
    errors: int
    output: str  # mypy's diagnostics, paths relative to the root

    @property
    def ok(self) -> bool:
        return self.errors == 0


# --- stubs ---------------------------------------------------------------------------------------


def stub_requirements(profile: str, pyproject: Path = PYPROJECT) -> list[str]:
    try:
        with pyproject.open("rb") as f:
            extras = tomllib.load(f)["project"]["optional-dependencies"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ConfigError(f"cannot read the stub pins from {pyproject}: {exc!r}") from exc
    if f"stubs-{profile}" not in extras:
        raise ConfigError(
            f"{pyproject} has no extra 'stubs-{profile}'",
            hint="every profile in PROFILES needs its pinned stubs in optional-dependencies",
        )
    return list(extras[f"stubs-{profile}"])


def install_stubs(profile: str, stubs_dir: Path = STUBS_DIR, pyproject: Path = PYPROJECT) -> Path:
    """Install the profile's stubs extra into stubs_dir/<profile>, unless it is already there."""
    requirements = stub_requirements(profile, pyproject)
    wanted = "\n".join(requirements) + "\n"
    target = stubs_dir / profile
    marker = target / _MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return target
    # Install beside the target and swap it in: an interrupted install never looks complete.
    staging = stubs_dir / f".{profile}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    stubs_dir.mkdir(parents=True, exist_ok=True)
    # With dependencies: each board package needs micropython-stdlib-stubs, its standard library.
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--target",
        str(staging),
        *requirements,
    ]
    if subprocess.run(command).returncode != 0:
        raise MoteError(
            f"could not install the {profile} stubs ({' '.join(requirements)})",
            hint="the first install needs PyPI; pip's own message is above",
        )
    (staging / _MARKER).write_text(wanted, encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


# --- sources -------------------------------------------------------------------------------------


def source_files(root: Path, paths: Sequence[Path] = ()) -> list[Path]:
    """The *.py files under `paths`, by default under root's firmware/ and drivers/ if present."""
    if not paths:
        paths = [root / name for name in SOURCE_DIRS if (root / name).is_dir()]
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(path.rglob("*.py"))
        elif path.is_file():
            found.add(path)
        else:
            raise ConfigError(f"no such file or directory: {path}")
    return sorted(p.resolve() for p in found)


def required_capabilities(path: Path) -> frozenset[str]:
    needs: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line and not line.startswith("#"):
                break  # the header ends at the first line of code
            match = _REQUIRES.match(line)
            if match:
                needs.update(name.strip() for name in match.group(1).split(",") if name.strip())
    unknown = needs - CAPABILITIES.keys()
    if unknown:
        raise ConfigError(
            f"{path}: unknown capability {', '.join(sorted(unknown))} in '# motekit: requires='",
            hint=f"known capabilities: {', '.join(sorted(CAPABILITIES))}",
        )
    return frozenset(needs)


def module_name(path: Path) -> str:
    # The name mypy gives a file: up through the enclosing packages (folders with __init__.py).
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


# --- checking ------------------------------------------------------------------------------------


def _stub_packages(stubs: Path) -> list[str]:
    # Every module the board package installed. stdlib/ is the typeshed tree, already silenced.
    names = []
    for entry in sorted(stubs.iterdir()):
        if entry.suffix == ".pyi":
            names.append(entry.stem)
        elif (entry / "__init__.pyi").is_file():
            names += [entry.name, f"{entry.name}.*"]
    return names


def _mypy_config(profile: str, stubs: Path, skipped: list[Path]) -> str:
    lines = [
        "[mypy]",
        f"custom_typeshed_dir = {stubs}",  # the board's standard library, not the host's
        f"mypy_path = {stubs}",  # machine, time, bluetooth...: these win over typeshed's names
        "no_site_packages = True",  # never resolve an import from the host venv
        f"platform = {PROFILES[profile].platform}",
        f"python_version = {_PYTHON_VERSION}",
        "check_untyped_defs = True",  # most firmware is unannotated: check those bodies too
        "error_summary = False",
        "",
        # The stubs trip some of mypy's own checks (redefinitions, overlaps): not our errors.
        f"[mypy-{','.join(_stub_packages(stubs))}]",
        "ignore_errors = True",
    ]
    if skipped:
        # Importing a file this profile skips is an error at the import, not in that file.
        lines += [
            "",
            f"[mypy-{','.join(sorted({module_name(p) for p in skipped}))}]",
            "follow_imports = error",
        ]
    return "\n".join(lines) + "\n"


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def check_profile(
    profile: str, sources: Sequence[Path], root: Path, stubs_dir: Path = STUBS_DIR
) -> ProfileResult:
    """Type-check the sources `profile` loads. The stubs must be installed (install_stubs)."""
    root = root.resolve()
    stubs = stubs_dir / profile
    if not (stubs / _MARKER).is_file():
        raise ConfigError(
            f"the {profile} stubs are not installed in {stubs}",
            hint="python -m host_tools.devtools.typecheck --install-only",
        )
    have = PROFILES[profile].capabilities
    files = [p for p in sources if required_capabilities(p) <= have]
    skipped = [p for p in sources if p not in files]
    if not files:
        return ProfileResult(profile, [], skipped, 0, "")
    if importlib.util.find_spec("mypy") is None:
        raise MoteError("mypy is not installed", hint="pip install -e '.[dev]'")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "MYPY_CACHE_DIR")}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mypy.ini"
        config.write_text(_mypy_config(profile, stubs.resolve(), skipped), encoding="utf-8")
        # Beside the stubs, whose analysis is most of the work; one per profile, as each has
        # its own `machine`. mypy revalidates cached sources by content hash.
        cache = stubs_dir / ".mypy_cache" / profile
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            *(_shown(p, root) for p in files),
        ]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    errors = sum(": error: " in line for line in done.stdout.splitlines())
    # Exit 1 is a failed check and 2 a blocking one (a syntax error, a module found twice), both
    # with diagnostics. Anything else, or a failure without them, is mypy itself failing.
    if done.returncode not in (0, 1, 2) or (done.returncode != 0) != (errors > 0):
        raise MoteError(
            f"mypy failed on profile {profile} (exit {done.returncode})",
            hint=(done.stderr or done.stdout).strip()[-500:],
        )
    return ProfileResult(profile, files, skipped, errors, done.stdout)


def summary(result: ProfileResult) -> str:
    if not result.files:
        detail = "no files to check"
    elif result.ok:
        detail = f"{len(result.files)} files clean"
    else:
        detail = f"{result.errors} errors in {len(result.files)} files"
    if result.skipped:
        detail += f" ({len(result.skipped)} skipped: capability missing)"
    return f"typecheck {result.profile:<10} {'ok' if result.ok else 'FAIL':<4}  {detail}"


# --- command line --------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    profiles = list(dict.fromkeys(args.profile or PROFILES))
    stubs = {p: install_stubs(p, args.stubs_dir) for p in profiles}
    if args.install_only:
        for profile, where in stubs.items():
            print(f"typecheck {profile:<10} stubs ready in {where}")
        return 0
    sources = source_files(args.root, [Path(p) for p in args.paths])
    results = [check_profile(p, sources, args.root, args.stubs_dir) for p in profiles]
    for result in results:
        for line in result.output.splitlines():
            print(f"[{result.profile}] {line}")
    for result in results:
        print(summary(result))
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host_tools.devtools.typecheck")
    parser.add_argument("paths", nargs="*", help="files or folders (default: firmware/ drivers/)")
    parser.add_argument(
        "--profile",
        action="append",
        choices=sorted(PROFILES),
        help="check only this board profile (repeatable; default: all)",
    )
    parser.add_argument("--install-only", action="store_true", help="install the stubs and stop")
    parser.add_argument("--root", type=Path, default=REPO, help="tree holding firmware/, drivers/")
    parser.add_argument("--stubs-dir", type=Path, default=STUBS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except MoteError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
