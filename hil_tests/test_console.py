"""The console protocol on a node running the firmware: what `mote` relies on, checked on the
virtual board in CI and on a bench with --port."""

import pytest

from host_tools.errors import ProtocolError
from host_tools.hil.node import Node

CONFIG = {"version": 2, "sample_period": 60, "host_wait_ms": 3000}


def caught(node: Node, config: dict | None = None):
    node.install_firmware(config or CONFIG)
    node.hard_reset()
    client = node.console()
    held = client.catch(15)
    assert held["held"] is True
    return client


def test_info_identifies_the_node(node: Node, firmware_version: str) -> None:
    c = caught(node)
    info = c.request("info")
    assert info["board"] == node.board["name"]
    assert info["fw"] == firmware_version and info["proto"] == 1
    assert len(info["device_id"]) == 2 * node.board["unique_id_bytes"]
    assert info["mode"] == "held"
    assert info["config"]["sample_period"] == 60
    c.request("release")


def test_a_refused_setting_changes_nothing_and_an_accepted_one_survives_a_reset(
    node: Node,
) -> None:
    c = caught(node)
    with pytest.raises(ProtocolError) as e:
        c.request("config", op="set", key="sample_period", value=0)
    assert e.value.err == "bad_value"
    assert str(e.value) == "sample_period: 0 is out of range 10..86400 s"
    assert c.request("config", op="get", key="sample_period")["value"] == 60
    assert c.request("config", op="set", key="sample_period", value=300)["value"] == 300
    c.request("reboot")
    c = node.console()
    c.catch(15)
    assert c.request("config", op="get", key="sample_period")["value"] == 300
    c.request("release")


def test_battery_reading_is_plausible(node: Node) -> None:
    if not node.board["pins"].get("battery_adc"):
        pytest.skip("this board has no battery ADC")
    cfg = dict(CONFIG, sensors=[{"kind": "battery"}])
    c = caught(node, cfg)
    sample = c.request("read")["samples"][0]
    assert sample["missing"] == [], sample
    assert 2.5 <= sample["values"]["battery.voltage"] <= 5.0  # a Li-ion cell or USB rail
    c.request("release")


def test_garbage_on_the_line_gets_errors_and_disturbs_nothing(node: Node) -> None:
    c = caught(node)
    before = c.bad_frames
    c.transport.write(b"hello node\n@M1 1 {oops} 00000000\n\xff\xfe@M\n@M1 x\n")
    assert c.request("ping")["proto"] == 1
    assert c.bad_frames >= before + 2  # the damaged frames were answered with errors
    assert c.request("info")["mode"] == "held"
    c.request("release")
