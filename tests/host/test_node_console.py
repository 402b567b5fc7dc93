"""The firmware's console over the `mote` CLI and the protocol client, on virtual boards: the
issue's checks (`mote info --json`, `mote read --json`, a refused and an accepted `config set`
that survives a reset) and the other commands."""

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from fwnode import SHT41, FirmwareNode, firmware_node

from host_tools.cli.main import main
from host_tools.errors import ProtocolError
from host_tools.protocol.framing import encode

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
CONFIG = {
    "sample_period": 60,
    "host_wait_ms": 3000,
    "sensors": [{"kind": "battery"}, {"kind": "sht4x"}],
}
VERSION = re.search(r'VERSION = "([^"]+)"', (FIRMWARE / "motekit" / "__init__.py").read_text())[1]


def mote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def mote_json(capsys: pytest.CaptureFixture[str], fw: FirmwareNode, *args: str) -> Any:
    rc, out, err = mote(capsys, *args, "--port", fw.sim.port, "--wait", "10", "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_info_read_and_config_from_the_cli(board: str, capsys: pytest.CaptureFixture[str]) -> None:
    with firmware_node(board, CONFIG, models=[SHT41]) as fw:
        fw.let_go_of_port()
        port = ["--port", fw.sim.port]
        assert mote_json(capsys, fw, "hold")["held"] is True

        info = mote_json(capsys, fw, "info")
        status = fw.control("status")
        assert info["board"] == board and info["fw"] == VERSION and info["proto"] == 1
        assert info["device_id"] == status["unique_id"]
        assert info["reset_cause"] == "PWRON_RESET"
        assert info["mode"] == "held"
        assert info["config"]["sensors"] == ["battery", "sht4x"]
        assert info["config"]["sample_period"] == 60
        assert info["secrets"] == {}
        assert info["free_heap"] > 0 and info["fs_free"] > 0

        fw.control("env", temperature_c=31.5, humidity_rh=60.0, supply_v=3.9)
        sample = mote_json(capsys, fw, "read", "--raw")["samples"][0]
        v = sample["values"]
        assert v["sht4x.temperature"] == pytest.approx(31.5, abs=0.2)
        assert v["sht4x.humidity"] == pytest.approx(60.0, abs=1.8)
        assert v["battery.voltage"] == pytest.approx(3.9, abs=0.05)
        assert sample["missing"] == [] and sample["raw"] == v  # no calibration yet
        assert len(mote_json(capsys, fw, "read", "--n", "3")["samples"]) == 3

        rc, out, err = mote(capsys, "config", "set", "sample_period", "0", *port)
        assert rc != 0 and out == ""
        assert err.splitlines()[0] == "error: sample_period: 0 is out of range 10..86400 s"
        rc, out, err = mote(capsys, "config", "set", "sample_period", "300", *port)
        assert rc == 0, err
        assert "sample_period = 300" in out
        mote_json(capsys, fw, "reboot")  # ends the hold; the node restarts
        got = mote_json(capsys, fw, "config", "get", "sample_period")
        assert got == {"key": "sample_period", "value": 300}
        fw.control("reset", kind="power_on")
        assert mote_json(capsys, fw, "config", "get", "sample_period")["value"] == 300
        assert mote_json(capsys, fw, "info")["reset_cause"] == "PWRON_RESET"


def test_other_commands_over_the_client() -> None:
    with firmware_node("sim-esp32", CONFIG, models=[SHT41]) as fw:
        c = fw.client
        held = c.catch(10)
        assert held["held"] is True and held["was_held"] is False

        # secrets: write-only, a fingerprint back, never the value
        key = "00112233445566778899aabbccddeeff"
        got = c.request("secret", op="set", name="lorawan.appkey", value=key)
        fp = hashlib.sha256(bytes.fromhex(key)).hexdigest()[:8]
        assert got == {"name": "lorawan.appkey", "fingerprint": fp}
        assert c.request("info")["secrets"] == {"lorawan.appkey": fp}
        with pytest.raises(ProtocolError) as e:
            c.request("secret", op="set", name="lorawan.appkey", value="0011")
        assert e.value.err == "bad_value" and "0011" not in str(e.value)
        assert key not in "".join(c.log) and key not in json.dumps(list(c.events))

        # calibration is applied to readings
        entry = {"poly": [-0.5, 1.0]}
        c.request("cal", op="set", channel="sht4x.temperature", entry=entry)
        entries = c.request("cal", op="get")["entries"]
        assert entries == {"sht4x.temperature": {"poly": [-0.5, 1.0], "rev": 1}}
        s = c.request("read", raw=True)["samples"][0]
        assert s["values"]["sht4x.temperature"] == pytest.approx(
            s["raw"]["sht4x.temperature"] - 0.5
        )

        # config list carries the schema; unknown keys and bad commands are refused clearly
        listed = c.request("config", op="list")
        assert listed["values"]["sample_period"] == 60
        assert {e["key"] for e in listed["schema"]} >= {"sample_period", "heartbeat", "batch"}
        with pytest.raises(ProtocolError) as e:
            c.request("config", op="set", key="colour", value=1)
        assert e.value.err == "bad_key"
        with pytest.raises(ProtocolError) as e:
            c.request("launch")
        assert e.value.err == "unknown_cmd"

        test = c.request("selftest")
        assert test["ok"] is True, test
        names = {ch["name"] for ch in test["checks"]}
        assert {"board", "config", "filesystem", "sensor sht4x.temperature"} <= names
        fw.control("fault", target="i2c0:0x44", spec="detach")
        test = c.request("selftest")
        assert test["ok"] is False
        bad = [ch for ch in test["checks"] if not ch["ok"]]
        assert bad[0]["name"] == "sensor sht4x" and "no answer" in bad[0]["msg"]
        fw.control("clear_faults")

        logs = c.request("logs")
        assert any("config sample_period" not in e[2] for e in logs["entries"])
        assert any(e[1] == "I" and "secret lorawan.appkey set" in e[2] for e in logs["entries"])
        c.request("logs", clear=True)
        assert c.request("logs")["entries"] == []

        # sleep: the node leaves console mode and its next wake comes one period on
        c.request("sleep", ms=2000)
        banner = fw.wait_text(r"motekit \S+ board=sim-esp32 reset=(\w+)", timeout_s=20)
        assert banner[1] == "DEEPSLEEP_RESET"
        fw.wait_text(r"motekit: cycle \d+ ")


def test_the_node_survives_garbage_and_damaged_frames() -> None:
    rng = random.Random(7)
    good = encode(4321, {"cmd": "config", "op": "set", "key": "sample_period", "value": 10})
    with firmware_node("sim-rp2", CONFIG) as fw:
        c = fw.client
        c.catch(10)
        boots = fw.control("status")["boots"]
        for i in range(240):
            kind = i % 4
            if kind == 0:  # line noise (not Ctrl-C, which is the REPL's interrupt)
                line = bytes(rng.choice([b for b in range(256) if b != 3]) for _ in range(80))
            elif kind == 1:  # a frame with one bit flipped
                line = bytearray(good[:-1])
                pos, bit = rng.randrange(len(line)), 1 << rng.randrange(8)
                if line[pos] ^ bit in (3, 10):
                    continue
                line[pos] ^= bit
            elif kind == 2:  # a frame cut short
                line = good[: rng.randrange(1, len(good) - 1)]
            else:  # a frame far too long for the node's buffer
                line = b"@M1 9 " + b"x" * 3000 + b" 00000000"
            c.transport.write(bytes(line) + b"\n")
        assert c.request("ping", timeout=10)["proto"] == 1
        assert c.bad_frames >= 60  # the node answered damaged frames with errors...
        assert c.request("config", op="get", key="sample_period")["value"] == 60  # ...ran none
        assert c.request("info")["mode"] == "held"
        assert fw.control("status")["boots"] == boots  # and never restarted
