"""A node's duty cycle over a simulated day: wake to wake with no drift, reports on change and on
heartbeat, the environment followed, stats and the heap budget of docs/node-files.md."""

import re
from pathlib import Path

import pytest
from fwnode import CYCLE, SHT41, firmware_node

from host_tools.protocol.framing import Frame, Text

PERIOD_S = 300
HEARTBEAT_S = 3600
DAY_S = 24 * 3600
CONFIG = {
    "sample_period": PERIOD_S,
    "heartbeat": HEARTBEAT_S,
    "host_wait_ms": 500,
    "sensors": [{"kind": "battery"}, {"kind": "sht4x"}],
    "thresholds": {"temperature": 0.5, "humidity": 2.0, "voltage": 0.05},
    "battery_mah": 2000,
}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "node-files.md"


def heap_budget(board: str) -> int:
    """The per-cycle peak heap budget stated in docs/node-files.md for `board`."""
    m = re.search(rf"^\| `{board}` \| ([\d,]+) bytes \|", DOCS.read_text(), re.M)
    assert m, f"docs/node-files.md states no heap budget for {board}"
    return int(m[1].replace(",", ""))


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_a_simulated_day_of_duty_cycles(board: str) -> None:
    with firmware_node(board, CONFIG, models=[SHT41], speed=20000) as fw:
        cycles: list[tuple[int, int, str]] = []
        reports: list[dict] = []
        changed_at = None
        for item in fw.items(timeout_s=240):
            if isinstance(item, Text) and (m := CYCLE.search(item.text)):
                cycles.append((int(m[1]), int(m[2]), m[3]))
                t = int(m[2]) - cycles[0][1]
                if changed_at is None and t >= 6 * 3600:
                    fw.control("env", temperature_c=25.0)  # a warm spell from hour 6
                    changed_at = t
                if t >= DAY_S:
                    break
            elif isinstance(item, Frame) and item.obj.get("ev") == "report":
                reports.append(item.obj["data"])
        assert cycles and cycles[-1][1] - cycles[0][1] >= DAY_S, fw.log_text()

        # Wake to wake: cycle i is due at t0 + i * period (t is when each wake was due; the
        # awake time, real host time here, never shifts the schedule).
        t0 = cycles[0][1]
        for i, (n, t, _) in enumerate(cycles):
            assert n == i + 1
            assert abs(t - (t0 + i * PERIOD_S)) <= 1, (i, t - t0)
        assert len(cycles) == DAY_S // PERIOD_S + 1
        if board == "sim-esp32":
            # and the board woke when it was due: deep-sleep wakes one period apart
            wakes = [
                h["sim_ms"] for h in fw.control("status")["history"] if h["kind"] == "deepsleep"
            ]
            gaps = [b - a for a, b in zip(wakes, wakes[1:], strict=False)]
            assert len(gaps) >= 10 and all(abs(g - PERIOD_S * 1000) < 1000 for g in gaps), gaps

        # Reports: the first, a heartbeat each hour while nothing changes, and the warm spell.
        reasons = [tuple(r["reason"]) for r in reports]
        assert reasons[0] == ("first",)
        assert [r["seq"] for r in reports] == list(range(len(reports)))
        heartbeats = [r for r in reports if "heartbeat" in r["reason"]]
        assert 20 <= len(heartbeats) <= 24, reasons
        changes = [r for r in reports if "change" in r["reason"]]
        assert len(changes) == 1, reasons  # 22.0 -> 25.0 °C once; the rest is steady
        sample = changes[0]["samples"][-1]
        assert sample["values"]["sht4x.temperature"] == pytest.approx(25.0, abs=0.2)
        assert sample["t"] - t0 >= changed_at
        assert all(r["samples"][-1]["values"]["battery.voltage"] > 3.5 for r in reports)
        assert all(r["faults"] == [] for r in reports)

        # Catch it at a wake: the stats it kept all day.
        with fw.client.session(wait_s=30):
            stats = fw.client.request("stats")
        tot = stats["totals"]
        assert tot["missed_periods"] == 0
        assert tot["cycles"] >= len(cycles)
        # the wake that answered may have run more cycles (and reports) than we watched
        assert 0 <= tot["reports"] - len(reports) <= tot["cycles"] - len(cycles)
        last = stats["last"]
        assert last["sensors_ms"] >= 0 and last["awake_ms"] >= last["sensors_ms"]
        assert last["energy_mj"] > 0 and last["avg_ua"] > 0 and last["battery_days"] > 0
        assert 0 < tot["peak_heap"] <= heap_budget(board), tot
