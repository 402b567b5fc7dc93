"""`mote info|read|config|logs|hold|release|reboot|stats|selftest`, driven in-process through
host_tools.cli.main.main() against a fake node (tests/host/fakenode.py) behind a real pty."""

import json
import os
import tty
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakenode import FakeNode
from simnode import Mote

from host_tools.cli.node import parse_value


@pytest.fixture
def pty_node() -> Iterator[Callable[..., tuple[FakeNode | None, str]]]:
    """pty_node(**FakeNode options) -> (fake node, pty path); pty_node(None): nobody there."""
    made: list[tuple[FakeNode | None, int, int]] = []

    def _make(opts: dict[str, Any] | None = {}, **kw: Any) -> tuple[FakeNode | None, str]:  # noqa: B006
        master, slave = os.openpty()
        tty.setraw(slave)
        fake = None if opts is None else FakeNode(master, **{**opts, **kw}).__enter__()
        made.append((fake, master, slave))
        return fake, os.ttyname(slave)

    yield _make
    for fake, master, slave in made:
        if fake is not None:
            fake.__exit__(None, None, None)
        os.close(master)
        os.close(slave)


def one_json(out: str) -> Any:
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


# ---- --json: the contract --------------------------------------------------------------------


def test_info_json(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, err = mote("info", "--port", port, "--json")
    assert (rc, err) == (0, "")
    data = one_json(out)
    assert data["device_id"] == "a1b2c3d4e5f6" and data["proto"] == 1
    assert data["config"]["sample_period"] == 60
    assert data["secrets"] == {"lorawan.appkey": "9f86d081"}
    assert fake.cmds() == ["hold", "info", "release"]  # caught, asked, let go


def test_read_json_with_raw(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("read", "--port", port, "--n", "3", "--raw", "--json")
    assert rc == 0
    samples = one_json(out)["samples"]
    assert [s["values"]["sht4x.temperature"] for s in samples] == [21.5, 22.5, 23.5]
    assert samples[0]["raw"] == {"sht4x.temperature": 21.375, "sht4x.humidity": 40.0}
    assert fake.received[1][1] == {"cmd": "read", "n": 3, "raw": True}


def test_the_port_comes_from_mote_port(
    pty_node: Any, mote: Mote, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, port = pty_node()
    monkeypatch.setenv("MOTE_PORT", port)
    rc, out, _ = mote("stats", "--json")
    assert rc == 0
    assert one_json(out)["totals"]["cycles"] == 42


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("300", 300),
        ("0.5", 0.5),
        ("true", True),
        ('["console","lora"]', ["console", "lora"]),
        ("debug", "debug"),
        ("NaN", "NaN"),
    ],
)
def test_config_values_are_json_when_they_parse(text: str, value: Any) -> None:
    got = parse_value(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("key", "text", "stored", "line"),
    [
        ("sample_period", "300", 300, "sample_period = 300"),
        ("ema_alpha", "0.5", 0.5, "ema_alpha = 0.5"),
        ("led", "true", True, "led = true"),
        ("uplinks", '["console", "lora"]', ["console", "lora"], 'uplinks = ["console", "lora"]'),
        ("log_level", "debug", "debug", 'log_level = "debug"'),
    ],
)
def test_config_set(pty_node: Any, mote: Mote, key: str, text: str, stored: Any, line: str) -> None:
    fake, port = pty_node()
    rc, out, err = mote("config", "set", key, text, "--port", port)
    assert (rc, out, err) == (0, line + "\n", "")
    assert fake.config[key] == stored and type(fake.config[key]) is type(stored)
    assert fake.cmds() == ["hold", "config", "release"]


def test_config_get_reset_and_list(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node(nap=0)
    fake.config["sample_period"] = 120
    assert mote("config", "get", "sample_period", "--port", port)[1] == "sample_period = 120\n"
    rc, out, _ = mote("config", "get", "sample_period", "--port", port, "--json")
    assert one_json(out) == {"key": "sample_period", "value": 120}
    assert mote("config", "reset", "sample_period", "--port", port)[1] == "sample_period = 60\n"
    assert fake.config["sample_period"] == 60
    rc, out, _ = mote("config", "list", "--port", port, "--json")
    data = one_json(out)
    assert [e["key"] for e in data["schema"]][:2] == ["sample_period", "log_level"]
    assert data["values"]["uplinks"] == ["console"]
    rc, out, _ = mote("config", "list", "--port", port)
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("sample_period"))
    assert "10..86400" in row and "seconds between" in row  # the doc folds at 80 columns


# ---- human output ----------------------------------------------------------------------------


def test_info_human(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("info", "--port", port)
    assert rc == 0
    assert "a1b2c3d4e5f6" in out
    assert "fake-esp32 (esp32)" in out
    assert "lorawan.appkey 9f86d081" in out
    assert "sht4x, battery" in out


def test_read_human(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("read", "--port", port, "--raw")
    assert rc == 0
    row = next(line for line in out.splitlines() if "sht4x.temperature" in line)
    assert "2000-01-02 00:00:00" in row and "21.5 °C" in row and "21.375 °C" in row
    assert "missing: bme280 (no answer)" in out


def test_logs_clear(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("logs", "--clear", "--port", port)
    assert rc == 0
    row = next(line for line in out.splitlines() if "bme280" in line)
    assert "2000-01-02 00:01:00" in row and "warning" in row
    assert "3 older entries were dropped" in out and "log cleared" in out
    assert fake.logs == []


def test_hold_then_release(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("hold", "--port", port, "--json")
    assert rc == 0 and one_json(out)["was_held"] is False
    assert fake.cmds() == ["hold"] and fake.held  # not let go: that is the point
    rc, out, _ = mote("info", "--port", port, "--json")
    assert rc == 0 and one_json(out)["mode"] == "held"
    assert fake.cmds() == ["hold", "hold", "info"] and fake.held  # someone else's hold stays
    rc, out, _ = mote("release", "--port", port)
    assert (rc, out) == (0, "released: the node is back to its duty cycle\n")
    assert fake.cmds()[-1] == "release" and not fake.held


def test_reboot(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, _ = mote("reboot", "--port", port, "--json")
    assert rc == 0 and one_json(out) == {"rebooted": True, "via": "console"}
    assert fake.cmds() == ["hold", "reboot"]


def test_reboot_at_the_repl(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node(repl="friendly")
    rc, out, _ = mote("reboot", "--port", port)
    assert rc == 0
    assert "was at the MicroPython REPL" in out
    assert fake.repl == "" and fake.cmds() == ["hold", "release"]


def test_selftest(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, err = mote("selftest", "--port", port)
    assert (rc, err) == (0, "")
    assert "sensor bme280" in out and "FAIL" not in out


def test_a_failed_selftest_exits_non_zero(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node(selftest_ok=False)
    rc, out, err = mote("selftest", "--port", port, "--json")
    assert rc == 1
    assert one_json(out)["ok"] is False
    assert err == "error: self-test failed: sensor bme280\n"


# ---- errors: one line, a hint, non-zero --------------------------------------------------------


def test_a_refused_value_prints_the_nodes_message(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()
    rc, out, err = mote("config", "set", "sample_period", "0", "--port", port, "--json")
    assert rc == 5 and out == ""
    assert err.splitlines() == [
        "error: sample_period: 0 is out of range 10..86400 s",
        "hint: `mote config list` shows the settings and their allowed values",
    ]
    assert fake.config["sample_period"] == 60
    assert fake.cmds() == ["hold", "config", "release"]  # let go after the error too


def test_no_node_is_a_timeout_with_a_hint(pty_node: Any, mote: Mote) -> None:
    _, port = pty_node(None)
    rc, out, err = mote("info", "--port", port, "--wait", "0.5")
    assert rc == 5 and out == ""
    assert err.splitlines() == [
        f"error: no answer from the node on {port} within 0.5 s",
        "hint: is the node awake? reset it or use --wait",
    ]


def test_a_node_at_the_repl(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node(repl="friendly")
    rc, _, err = mote("info", "--port", port)
    assert rc == 5
    lines = err.splitlines()
    assert lines[0] == "error: the node is at the MicroPython REPL, not running motekit"
    assert lines[1].startswith("hint: `mote reboot`")


def test_no_port(mote: Mote, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTE_PORT", raising=False)
    rc, _, err = mote("info")
    assert rc == 2
    assert err.splitlines() == ["error: no port given", "hint: use --port PORT or set MOTE_PORT"]


def test_a_missing_port(mote: Mote) -> None:
    rc, _, err = mote("logs", "--port", "/dev/motekit-no-such-port")
    assert rc == 3
    assert err.splitlines()[0] == "error: no serial port /dev/motekit-no-such-port"


def test_a_busy_port(pty_node: Any, mote: Mote) -> None:
    from host_tools.transport.serial import SerialTransport

    fake, port = pty_node()
    with SerialTransport(port):
        rc, _, err = mote("info", "--port", port)
    assert rc == 3
    assert err.splitlines()[0] == f"error: {port} is busy: another program has it open"
    assert fake.executed == []


def test_reset_pulses_rts_before_catching(
    pty_node: Any, mote: Mote, monkeypatch: pytest.MonkeyPatch
) -> None:
    import host_tools.cli.node as node_cli

    pulses: list[object] = []
    monkeypatch.setattr(node_cli, "ClassicReset", lambda: pulses.append)
    fake, port = pty_node()
    rc, out, err = mote("info", "--port", port, "--reset", "--json")
    assert rc == 0, err
    assert len(pulses) == 1 and pulses[0].port == port  # the open port's pyserial object
    assert one_json(out)["board"]
    rc, _, _ = mote("info", "--port", port, "--json")
    assert rc == 0 and len(pulses) == 1  # no --reset, no pulse


def test_reset_on_a_port_without_rts_is_one_clear_error(pty_node: Any, mote: Mote) -> None:
    fake, port = pty_node()  # a pty has no modem control lines
    rc, _, err = mote("info", "--port", port, "--reset")
    assert rc == 3
    assert err.splitlines()[0].startswith(f"error: cannot reset the node on {port}: the port has")
    assert fake.executed == []
