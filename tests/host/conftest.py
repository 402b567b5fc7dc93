"""Fixtures for the host tests."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from simnode import at_repl

from host_tools.boards import load_board
from host_tools.hil.node import Node
from host_tools.sim.launcher import SimProcess


@pytest.fixture
def boot(request: pytest.FixtureRequest) -> Iterator[Callable[..., Node]]:
    """boot(board, *mote_sim_args, **SimProcess_kwargs): a fresh board at its friendly REPL."""
    nodes: list[Node] = []

    def _boot(board: str = "sim-esp32", *args: str, **kw: Any) -> Node:
        kw.setdefault("baud", 0)
        sim = SimProcess(board, extra_args=args, **kw)
        node = Node(sim.port, load_board(board), sim)
        nodes.append(node)
        request.node.motekit_node = node  # the HIL plugin attaches its log to a failure
        at_repl(node)
        return node

    yield _boot
    for node in nodes:
        node.close()
        assert node.sim is not None
        node.sim.__exit__(None, None, None)


@pytest.fixture
def mote(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """mote(*args): run the `mote` CLI in-process; (exit code, stdout, stderr)."""
    from host_tools.cli.main import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    return _run
