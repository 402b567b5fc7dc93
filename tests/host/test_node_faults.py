"""What the firmware does when things go wrong: a sensor detached, a crash loop, a hang, a lost
retained state. Each node keeps working on what it still has, says what is wrong, and stays
reachable."""

import pytest
from fwnode import CYCLE, SHT41, firmware_node

from host_tools.protocol.framing import Frame, Text

SENSORS = [{"kind": "battery"}, {"kind": "sht4x"}]

# Uplinks with bugs, installed as the module the firmware looks for (motekit/up_<name>.py):
# a real way for a deployed node to crash or hang in its duty cycle.
CRASHING_UPLINK = """
class Uplink:
    RADIO = "ble"

    def __init__(self, board, st, cfg):
        pass

    def send(self, report):
        return 1 // 0
"""
HANGING_UPLINK = CRASHING_UPLINK.replace("return 1 // 0", "while True:\n            pass")


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_a_detached_sensor_is_reported_missing_while_the_others_keep_reporting(board: str) -> None:
    cfg = {"sample_period": 60, "host_wait_ms": 0, "sensors": SENSORS}
    with firmware_node(board, cfg, models=[SHT41], speed=200) as fw:
        first = fw.wait_event("report")["data"]
        assert set(first["samples"][0]["values"]) == {
            "battery.voltage",
            "sht4x.temperature",
            "sht4x.humidity",
        }
        fw.control("fault", target="i2c0:0x44", spec="detach")
        rep = fw.wait_event("report", timeout_s=30)["data"]
        assert rep["reason"] == ["change", "alarm"]  # channels vanished, a sensor failed
        assert rep["faults"] == ["sht4x"]
        s = rep["samples"][-1]
        assert s["missing"] == ["sht4x"]
        assert set(s["values"]) == {"battery.voltage"}  # the battery kept reporting
        assert "sht4x@i2c 0x44: no answer" in fw.log_text()  # the error, on the console
        # it stays missing without a report each wake, and comes back with an alarm
        line = fw.wait_text(r"motekit: cycle \d+ .* missing=sht4x, next")
        assert "report=" not in line[0]
        fw.control("clear_faults")
        rep = fw.wait_event("report", timeout_s=30)["data"]
        assert rep["reason"] == ["change", "alarm"] and rep["faults"] == []
        assert "sht4x.temperature" in rep["samples"][-1]["values"]
        with fw.client.session(wait_s=20):
            entries = fw.client.request("logs")["entries"]
        texts = [e[1] + " " + e[2] for e in entries]
        assert any(t.startswith("W sht4x missing: sht4x@i2c 0x44: no answer") for t in texts)
        assert any(t == "I sht4x is back" for t in texts)


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_a_crash_loop_enters_safe_mode_and_the_host_gets_it_out(board: str) -> None:
    cfg = {"sample_period": 60, "host_wait_ms": 0, "uplinks": ["console", "bthome"]}
    extra = {"/lib/motekit/up_bthome.py": CRASHING_UPLINK}
    with firmware_node(board, cfg, extra=extra) as fw:
        causes = []
        for _ in range(4):
            m = fw.wait_text(r"motekit \S+ board=\S+ reset=(\w+)")
            causes.append(m[1])
            if "ZeroDivisionError" not in fw.log_text():
                fw.wait_text(r"ZeroDivisionError")
        # three boots crashed (the traceback is on the console); the fourth is in safe mode
        fw.wait_text(r"safe mode, the duty cycle is off")
        assert causes[0] == "PWRON_RESET"
        assert causes[1:] == ["SOFT_RESET" if board == "sim-esp32" else "WDT_RESET"] * 3
        assert fw.wait_event("listen")["mode"] == "safe"
        c = fw.client
        assert c.catch(10)["was_held"] is True  # safe mode holds the node by itself
        info = c.request("info")
        assert info["mode"] == "safe"
        assert info["safe_reason"].startswith("the app failed 3 boots in a row")
        assert "ZeroDivisionError" in info["safe_reason"]
        # the host fixes the config and lets it run: it samples and reports again
        c.request("config", op="set", key="uplinks", value=["console"])
        c.request("release")
        rep = fw.wait_event("report")["data"]
        if board == "sim-esp32":
            # RTC memory kept the sample the crashes never sent: nothing lost
            assert rep["reason"] == ["batch"] and len(rep["samples"]) == 1
            assert rep["seq"] == 3  # each failed send used a number: gaps show lost attempts
        else:
            # rp2 keeps retained state in RAM, which a reset clears: it starts afresh, and its
            # sequence number resumes from the flash reservation, past every number used
            assert rep["reason"] == ["first"]
            assert rep["seq"] >= 3
        # the crash counter is clear: a reset boots into the duty cycle, not safe mode
        fw.reset()
        start = len(fw.seen)
        fw.wait_text(r"reset=PWRON_RESET")
        fw.wait_text(r"motekit: cycle 1 ")
        assert "safe mode" not in "\n".join(i.text for i in fw.seen[start:] if isinstance(i, Text))


def test_a_hang_is_reset_by_the_watchdog_and_counts_as_a_crash() -> None:
    cfg = {"host_wait_ms": 0, "watchdog_ms": 1000, "uplinks": ["console", "lorawan"]}
    extra = {"/lib/motekit/up_lorawan.py": HANGING_UPLINK}
    with firmware_node("sim-esp32", cfg, extra=extra) as fw:
        causes = [fw.wait_text(r"reset=(\w+)")[1] for _ in range(4)]
        assert causes == ["PWRON_RESET", "WDT_RESET", "WDT_RESET", "WDT_RESET"]
        fw.wait_text(r"safe mode")
        with fw.client.session(wait_s=10):
            info = fw.client.request("info")
        assert info["mode"] == "safe" and info["reset_cause"] == "WDT_RESET"
        assert "WDT_RESET" in info["safe_reason"]


def test_a_hang_after_a_report_never_repeats_its_sequence_number() -> None:
    # A wake reports (console), then hangs in its next uplink: the watchdog resets it with RTC
    # memory as last saved, before that report's number was used. Numbers must not repeat.
    hang_after_first = HANGING_UPLINK.replace(
        "    def send(self, report):\n", "    def send(self, report):\n        if report['seq']:\n"
    ).replace(
        "        while True:\n            pass", "            while True:\n                pass"
    )
    cfg = {"sample_period": 60, "heartbeat": 60, "host_wait_ms": 0, "watchdog_ms": 1000,
           "uplinks": ["console", "lorawan"]}  # fmt: skip
    extra = {"/lib/motekit/up_lorawan.py": hang_after_first}
    with firmware_node("sim-esp32", cfg, extra=extra, speed=200) as fw:
        fw.wait_text(r"safe mode", timeout_s=60)
        seqs = [i.obj["data"]["seq"] for i in fw.seen if isinstance(i, Frame) and
                i.obj.get("ev") == "report"]  # fmt: skip
    assert len(seqs) >= 3 and len(set(seqs)) == len(seqs), seqs


def test_lost_retained_state_starts_afresh_and_never_repeats_a_sequence_number() -> None:
    cfg = {"sample_period": 60, "host_wait_ms": 0, "heartbeat": 60}
    with firmware_node("sim-esp32", cfg, speed=200) as fw:
        seqs = [fw.wait_event("report")["data"]["seq"] for _ in range(3)]
        assert seqs == [0, 1, 2]
        fw.control("reset", kind="power_on")  # RTC memory is lost with the power
        after = fw.wait_event("report")["data"]
        assert after["reason"] == ["first"]
        assert after["seq"] > seqs[-1]
        for item in fw.seen:
            if isinstance(item, Text) and CYCLE.search(item.text):
                break
        assert not any(isinstance(i, Frame) and i.obj.get("err") for i in fw.seen)
