"""config.set() under power cuts: whichever flash write of a save the power fails in, the node
boots to the old configuration or the new one, never to defaults and never to a crash.

The board is prepared once (firmware/motekit/{store,config}.py and schema.json on its littlefs,
configuration A saved) and stopped; its flash image is the snapshot every run starts from, so
each run's save makes the same flash writes. Run n cuts the power at the save's n-th write. The
runs go on until the save completes with the cut still pending: that run proves the save makes
exactly n - 1 writes, so every one of them was cut in an earlier run.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from simnode import at_repl, status, stop

from host_tools.boards import load_board
from host_tools.hil.node import Node
from host_tools.sim.launcher import SimProcess

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware" / "motekit"
FILES = ("__init__.py", "store.py", "config.py", "schema.json")
OLD = {"sample_period": 120, "log_level": "debug", "batch": 4}  # saved once, key by key
NEW_SENSORS = [
    {"kind": "battery"},
    {"kind": "sht4x", "id": "air", "bus": "i2c0", "addr": 68},
    {"kind": "ds18b20", "id": "water", "addr": "28ff4a1b2c3d4e5f"},
]
LOAD = "from motekit import config\nimport json\nprint(json.dumps(config.load()))"
RECOVERED = "config.json unreadable, using last good copy"
MAX_RUNS = 100  # far above what a save of a small file takes; the loop must end before this


def copy_firmware(node: Node) -> None:
    node.exec(
        "import os\nfor d in ('/lib', '/lib/motekit'):\n    try:\n        os.mkdir(d)\n"
        "    except OSError:\n        pass"
    )
    for name in FILES:
        text = (FIRMWARE / name).read_text()
        node.exec(f"with open('/lib/motekit/{name}', 'w') as f:\n    f.write({text!r})")


def load(node: Node) -> tuple[dict[str, Any], list[str]]:
    cfg, problems = json.loads(node.exec(LOAD))
    return cfg, problems


def prepare(boot: Any, board: str, state: Path) -> dict[str, Any]:
    """A board with the firmware and configuration A saved; returns A as load() sees it."""
    node = boot(board, state_dir=state)
    copy_firmware(node)
    defaults, problems = load(node)
    assert problems == []
    for key, value in OLD.items():
        node.exec(
            f"from motekit import config\ncfg, _ = config.load()\n"
            f"config.set(cfg, {key!r}, {value!r})"
        )
    old, problems = load(node)
    assert problems == []
    assert old == {**defaults, **OLD} and old != defaults
    stop(node)
    return old


def save_new(node: Node) -> bool:
    """Start the second save on the node; True if it completed, False if the power failed."""
    node.exec("from motekit import config\ncfg, _ = config.load()")
    node.read_until(b">")  # the raw prompt left unread by the last exec
    code = f"config.set(cfg, 'sensors', {NEW_SENSORS!r})\nprint('SA' + 'VED')"
    node.write(code.encode() + b"\x04")
    # Either the raw REPL's end of output (OK ... \x04 stderr \x04 >) or the friendly prompt
    # of the reboot after a cut.
    out = node.read_until(r"\x04[^\x04]*\x04>|>>> ", timeout=20)
    if out.endswith(b">>> "):
        assert b"SAVED" not in out
        node.transport.in_raw_repl = False
        return False
    assert out.endswith(b"SAVED\r\n\x04\x04>"), out[-300:]
    node.write(b"\x02")  # leave the raw REPL (its prompt is read): the next exec enters afresh
    node.read_until(b">>> ")
    node.transport.in_raw_repl = False
    return True


@pytest.mark.timeout(300)
@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_a_power_cut_at_any_write_of_a_save_leaves_the_old_or_the_new_config(
    boot: Any, request: pytest.FixtureRequest, tmp_path: Path, board: str
) -> None:
    snapshot = tmp_path / "snapshot"
    old = prepare(boot, board, snapshot)
    new = {**old, "sensors": NEW_SENSORS}
    outcomes: dict[int, str] = {}
    for n in range(1, MAX_RUNS + 1):
        state = tmp_path / f"run{n}"
        shutil.copytree(snapshot, state)
        with SimProcess(board, state_dir=state, baud=0) as sim:
            node = Node(sim.port, load_board(board), sim)
            request.node.motekit_node = node  # the HIL plugin attaches its log to a failure
            try:
                at_repl(node)
                boots = status(node)["boots"]
                writes = status(node)["flash_writes"]
                sim.control.request("cut_power_at_write", n=n)
                completed = save_new(node)
                st = status(node)
                if completed:
                    # The cut never came: the save made fewer than n writes.
                    assert st["boots"] == boots
                    made = st["flash_writes"] - writes
                    assert made == n - 1, (n, made)
                    assert load(node) == (new, [])
                    break
                assert st["boots"] == boots + 1  # one power-on reboot, no crash loop
                assert st["history"][-1]["kind"] == "power_on"
                cfg, problems = load(node)
                assert cfg in (old, new), (n, cfg)
                assert problems in ([], [RECOVERED]), (n, problems)
                outcomes[n] = ("old" if cfg == old else "new") + (" recovered" if problems else "")
            finally:
                node.close()
        shutil.rmtree(state)
    else:
        pytest.fail(f"the save still had writes left after {MAX_RUNS} cuts")
    # Every write of the save was cut once. A cut at the first write cannot have changed
    # anything, and some cut fell between the two renames (config.json gone, the old one in
    # config.json.bak): the recovery path was exercised, not only the untouched file.
    assert sorted(outcomes) == list(range(1, n))
    assert outcomes[1] == "old", outcomes
    assert "old recovered" in outcomes.values(), outcomes
