# What a wake reports (firmware/motekit/report.py): change, heartbeat, batch, alarms.
from motekit import report

CFG = {"thresholds": {"temperature": 0.5, "humidity": 2.0}, "heartbeat": 3600, "batch": 1}


def _s(t, temp, hum=50.0):
    return {"t": t, "values": {"sht4x.temperature": temp, "sht4x.humidity": hum}}


def test_first_sample_is_sent():
    st = {}
    reasons, send = report.decide(st, _s(0, 20.0), CFG, 0, [])
    assert (reasons, send) == (["first"], True)
    assert st["last"] == _s(0, 20.0)["values"] and len(st["batch"]) == 1


def test_change_below_threshold_is_not_sent_above_is():
    st = {"last": _s(0, 20.0)["values"], "last_up": 0, "batch": []}
    assert report.decide(st, _s(60, 20.4), CFG, 60, []) == ([], False)
    assert st["batch"] == [] and st["last"]["sht4x.temperature"] == 20.0
    assert report.decide(st, _s(120, 20.5), CFG, 120, []) == (["change"], True)
    assert st["last"]["sht4x.temperature"] == 20.5


def test_a_quantity_without_threshold_never_triggers_and_a_new_channel_does():
    st = {"last": {"x.co2": 400.0}, "last_up": 0, "batch": []}
    cfg = dict(CFG)
    cfg["thresholds"] = {}
    assert report.decide(st, {"t": 1, "values": {"x.co2": 900.0}}, cfg, 1, [])[1] is False
    assert report.decide(st, {"t": 2, "values": {}}, CFG, 2, []) == (["change"], True)


def test_heartbeat_sends_an_unchanged_sample():
    st = {"last": _s(0, 20.0)["values"], "last_up": 0, "batch": []}
    assert report.decide(st, _s(3599, 20.0), CFG, 3599, []) == ([], False)
    assert report.decide(st, _s(3600, 20.0), CFG, 3600, []) == (["heartbeat"], True)


def test_batching_holds_changes_until_full_but_alarms_flush():
    cfg = dict(CFG)
    cfg["batch"] = 3
    st = {"last": _s(0, 20.0)["values"], "last_up": 0, "batch": []}
    assert report.decide(st, _s(60, 21.0), cfg, 60, []) == (["change"], False)
    assert report.decide(st, _s(120, 22.0), cfg, 120, []) == (["change"], False)
    assert report.decide(st, _s(180, 23.0), cfg, 180, []) == (["change", "batch"], True)
    assert [s["t"] for s in st["batch"]] == [60, 120, 180]
    st["batch"] = []
    assert report.decide(st, _s(240, 23.0), cfg, 240, ["alarm"]) == (["alarm"], True)
    assert len(st["batch"]) == 1


def test_build_carries_the_batch():
    st = {"batch": [_s(1, 20.0)]}
    rep = report.build(st, 7, ["first"], 3.7, ["bme280"])
    assert rep == {
        "seq": 7,
        "reason": ["first"],
        "samples": [_s(1, 20.0)],
        "battery_v": 3.7,
        "faults": ["bme280"],
    }


def test_a_batch_left_by_a_failed_send_goes_at_the_next_wake():
    st = {"last": _s(0, 20.0)["values"], "last_up": 0, "batch": [_s(0, 20.0)]}
    assert report.decide(st, _s(60, 20.0), CFG, 60, []) == (["batch"], True)
    assert len(st["batch"]) == 1  # the unchanged sample is not queued
