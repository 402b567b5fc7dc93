"""The Motekit HIL pytest plugin: `board` and `node` fixtures for hil_tests/.

By default every test gets a fresh *virtual* board (`mote sim`); with `--port /dev/ttyUSB0
--board NAME` the same tests run against a real board on a bench. Options may also come from
MOTE_PORT and MOTE_BOARD. Each test's node output is attached to its report when it fails.

`--rig FILE` (or MOTE_RIG) describes the sensors wired to the bench (see docs/testing.md);
a virtual board uses hil_tests/rigs/<board>.json, which also says which models to attach.
`--gateway-port PORT` (MOTE_GATEWAY_PORT) is a second board in gateway role for the LoRaWAN
test, `--registry FILE` (MOTE_REGISTRY) the bench's host registry, read for the node's keys.

Each virtual node transmits on an air of its own (`node.air`), and $MOTE_AIR names it while
the test runs, so host tools the test starts (`Air()`, `mote gateway --sim`) hear that node
and no other test's; a $MOTE_AIR set by the user is kept, shared by every node.
"""

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host_tools.boards import load_board
from host_tools.hil.node import Node
from host_tools.registry import Registry
from host_tools.sim.air import Air
from host_tools.sim.launcher import SimProcess

_airs = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("motekit-hil", "Motekit hardware-in-the-loop")
    group.addoption(
        "--port",
        default=os.environ.get("MOTE_PORT"),
        help="Serial port of a real board (default: a fresh virtual board per test; $MOTE_PORT).",
    )
    group.addoption(
        "--board",
        default=os.environ.get("MOTE_BOARD"),
        help="Board name from boards/ (needed with --port; default sim-esp32; $MOTE_BOARD).",
    )
    group.addoption(
        "--rig",
        default=os.environ.get("MOTE_RIG"),
        help="JSON file describing the sensors on the bench (default for a virtual board: "
        "hil_tests/rigs/<board>.json; $MOTE_RIG).",
    )
    group.addoption(
        "--gateway-port",
        default=os.environ.get("MOTE_GATEWAY_PORT"),
        help="Serial port of a second LoRa board flashed in gateway role, for the LoRaWAN tests "
        "on a bench (a virtual board uses the virtual air; $MOTE_GATEWAY_PORT).",
    )
    group.addoption(
        "--registry",
        default=os.environ.get("MOTE_REGISTRY"),
        help="The bench's host registry, read (never written) for the node's keys, e.g. its "
        "BTHome bind key (a virtual board is provisioned into a temporary one; $MOTE_REGISTRY).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "virtual_only: needs the virtual board's control channel")


@pytest.fixture(scope="session")
def board(pytestconfig: pytest.Config) -> dict[str, Any]:
    """The board definition under test."""
    port = pytestconfig.getoption("port")
    name = pytestconfig.getoption("board")
    if port and not name:
        raise pytest.UsageError("--port needs --board NAME (see boards/)")
    definition = load_board(name or "sim-esp32")
    if not port and not definition.get("virtual"):
        raise pytest.UsageError(f"{definition['name']} is a real board: give its --port")
    return definition


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config) -> dict[str, Any]:
    """The bench's sensors: {"sensors": [config entries], "ranges": {quantity: [low, high]},
    "virtual": {"attach": [...], "env": {...}}}. Tests that need it skip on a bench without
    --rig."""
    path = pytestconfig.getoption("rig")
    if path is None:
        if pytestconfig.getoption("port"):
            pytest.skip("describe the sensors wired to this bench in a rig file (--rig FILE)")
        name = pytestconfig.getoption("board") or "sim-esp32"
        path = Path(str(pytestconfig.rootpath)) / "hil_tests" / "rigs" / f"{name}.json"
    try:
        loaded: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise pytest.UsageError(f"rig file {path}: {e}") from None
    if not isinstance(loaded.get("sensors"), list) or not loaded["sensors"]:
        raise pytest.UsageError(f'rig file {path}: needs a non-empty "sensors" list')
    return loaded


@pytest.fixture(scope="session")
def gateway_port(pytestconfig: pytest.Config) -> str | None:
    """The serial port of the bench's gateway board (--gateway-port), None without one."""
    port: str | None = pytestconfig.getoption("gateway_port")
    return port


@pytest.fixture(scope="session")
def bench_registry(pytestconfig: pytest.Config) -> Registry | None:
    """The bench's host registry (--registry), None without one or on a virtual board (whose
    tests provision into a temporary registry). Tests only read it."""
    path = pytestconfig.getoption("registry")
    if path is None or not pytestconfig.getoption("port"):
        return None
    if not Path(path).is_file():
        raise pytest.UsageError(f"--registry {path}: no such file")
    return Registry(path)


@pytest.fixture
def node(request: pytest.FixtureRequest, board: dict[str, Any]) -> Iterator[Node]:
    """A node at its friendly REPL: a fresh virtual board, or the real one after a reset."""
    port = request.config.getoption("port")
    shared_air = os.environ.get("MOTE_AIR")
    with pytest.MonkeyPatch.context() as mp:
        if port:
            n = Node(port, board)
            n.hard_reset()
        else:
            air = shared_air or f"hil-{os.getpid()}-{next(_airs)}"
            mp.setenv("MOTE_AIR", air)
            sim = SimProcess(board["name"], extra_args=("--air", air))
            n = Node(sim.port, board, sim, air=air)
        request.node.motekit_node = n
        try:
            n.interrupt_to_repl()
            yield n
        finally:
            n.close()
            if n.sim is not None:
                n.log += b"\n--- supervisor log ---\n" + n.sim.log().encode()
                n.sim.__exit__(None, None, None)
                if not shared_air:
                    with contextlib.suppress(OSError):
                        Air(n.air).path.rmdir()  # the test's own air, empty once all have left


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    n = getattr(item, "motekit_node", None)
    if n is not None and report.failed:
        report.sections.append(("node log", n.log.decode(errors="replace")[-8000:]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("port"):
        skip = pytest.mark.skip(reason="needs the virtual board's control channel")
        marker = "virtual_only"
    else:
        skip = pytest.mark.skip(reason="needs a real board: run with --port PORT --board NAME")
        marker = "hardware"
    for item in items:
        if item.get_closest_marker(marker):
            item.add_marker(skip)
