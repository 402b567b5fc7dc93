"""`mote provision` on a node running the firmware: keys for the board's radios go in through
the console's write-only `secret` command, and the fingerprints the node reads back match the
registry's keys. Runs on the virtual board in CI and unchanged on a bench with --port --board
(the registry lives in the test's tmp_path; $MOTE_LORAWAN_REGION picks a LoRa bench's region,
EU868 by default: the node is held throughout and transmits nothing)."""

import json
import os
from pathlib import Path

import pytest

from host_tools.cli.main import main
from host_tools.hil.node import Node
from host_tools.provision import fingerprint, record_secrets, record_settings
from host_tools.registry import Registry

CONFIG = {"version": 2, "sample_period": 60, "host_wait_ms": 3000}


def test_provision_writes_keys_that_the_node_reads_back(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    radios = node.board["radios"]
    if not radios:
        pytest.skip(f"{node.board['name']} has no radio to provision")
    node.install_firmware(CONFIG)
    node.hard_reset()
    assert node.console().catch(15)["held"] is True  # held: awake for the CLI
    node.close()  # the CLI opens the port itself

    registry = tmp_path / "registry.json"
    args = ["provision", "--port", node.port, "--wait", "15", "--registry", str(registry)]
    args += ["--force", "--json"]
    if "lora" in radios:
        args += ["--lorawan-region", os.environ.get("MOTE_LORAWAN_REGION", "EU868")]
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)
    record = Registry(registry).devices()[data["device_id"]]
    assert record["state"] == "complete" and record["board"] == node.board["name"]
    keys = record_secrets(record)
    assert set(keys) == set(data["fingerprints"]) != set()
    assert not any(k in out + err for k in keys.values())  # keys only with --show-secrets

    c = node.console()
    c.catch(15)
    assert c.request("info")["device_id"] == data["device_id"]
    on_node = c.request("secret", op="list")["secrets"]
    for name, key in keys.items():
        assert on_node[name] == fingerprint(bytes.fromhex(key)) == record["fingerprints"][name]
    for key, value in record_settings(record).items():
        assert c.request("config", op="get", key=key)["value"] == value
    c.request("release")
