"""`mote deploy` on the node: the firmware for its board goes on from a bare MicroPython, the node
comes back running this build, and a second deploy finds nothing to copy. Runs on the virtual
board in CI and unchanged on a bench with --port --board (it deploys this checkout's firmware
to the bench's node, which is what a bench runs anyway)."""

import json
from pathlib import Path
from typing import Any

import pytest

from host_tools import firmware_files
from host_tools.cli.main import main
from host_tools.hil.node import Node


def mote(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    assert rc == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_deploy_then_nothing_left_to_copy(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board = node.board["name"]
    node.close()  # the CLI opens the port itself
    build = firmware_files.build(board, tmp_path)
    port = ("--port", node.port)

    first = mote(capsys, "deploy", *port, "--board", board, "--hold", "--json", "--wait", "15")
    assert first["board"] == board and first["build"] == build.id
    assert first["copied"] + first["unchanged"] == len(build.files)
    info = mote(capsys, "info", *port, "--json")
    assert (info["fw"], info["build"], info["board"]) == (build.manifest["fw"], build.id, board)

    again = mote(capsys, "deploy", *port, "--json", "--wait", "15")  # held: caught at once
    assert (again["copied"], again["removed"], again["bytes"]) == (0, 0, 0)
    assert again["unchanged"] == len(build.files)
    assert mote(capsys, "release", *port, "--json")["held"] is False
