# The uplinks (firmware/motekit/uplinks.py): which get a report, and what critical battery stops.
from motekit import log, uplinks

log.echo = False


class _Radio:
    RADIO = "lora"
    radio_ms = None

    def __init__(self, fail=False):
        self.got = []
        self.fail = fail

    def send(self, report):
        if self.fail:
            raise OSError("radio busy")
        self.got.append(report)


class _Wired:
    RADIO = None

    def __init__(self):
        self.got = []

    def send(self, report):
        self.got.append(report)


def test_every_uplink_gets_the_report_and_radio_time_is_charged_per_radio():
    radio, wired = _Radio(), _Wired()
    radio_ms = {}
    took = uplinks.send_all([("lorawan", radio), ("console", wired)], {"seq": 1}, True, radio_ms)
    assert took == ["lorawan", "console"]
    assert radio.got == [{"seq": 1}] and wired.got == [{"seq": 1}]
    # No measure from the uplink: its send time at the radio's TX current.
    assert list(radio_ms) == ["lora_tx"] and radio_ms["lora_tx"] >= 0


def test_an_uplink_that_measures_its_radio_is_charged_what_it_measured():
    radio = _Radio()
    radio.radio_ms = {"lora_tx": 41, "lora_rx": 30}
    radio_ms = {"lora_tx": 1}
    uplinks.send_all([("lorawan", radio)], {"seq": 1}, True, radio_ms)
    assert radio_ms == {"lora_tx": 42, "lora_rx": 30}


def test_the_energy_estimate_charges_each_radio_figure_of_the_board():
    from motekit import stats

    power = {"supply_v": 3.0, "active_ma": 10, "sleep_ua": 100, "radio_ma": {}}
    power["radio_ma"] = {"lora_tx": 100, "lora_rx": 10, "ble_tx": 130}
    # 3 V x (10 mA x 1 s + 100 mA x 0.1 s + 10 mA x 0.2 s + 0.1 mA x 10 s) = 69 mJ
    got = stats.energy_mj(power, 1000, {"lora_tx": 100, "lora_rx": 200}, 10000)
    assert abs(got - 69.0) < 1e-9, got
    # The BLE uplink's figure is charged too (a mismatch of names once charged nothing).
    assert stats.energy_mj(power, 1000, {"ble_tx": 1000}, 0) == 3.0 * (10 + 130)


def test_critical_battery_stops_the_radios_not_the_wire():
    radio, wired = _Radio(), _Wired()
    took = uplinks.send_all([("lorawan", radio), ("console", wired)], {"seq": 2}, False, {})
    assert took == ["console"] and radio.got == []


def test_a_failing_uplink_is_logged_and_the_others_still_send():
    log.clear()
    bad, wired = _Radio(fail=True), _Wired()
    took = uplinks.send_all([("lorawan", bad), ("console", wired)], {"seq": 3}, True, {})
    assert took == ["console"]
    assert log.entries()[-1][1:] == ["E", "uplink lorawan: radio busy"]


def test_an_uplink_this_firmware_lacks_is_named_once():
    log.clear()
    # A build trimmed of a radio's module (motekit/up_<name>.py): named once, not every wake.
    got = uplinks.open_uplinks(["console", "nosuch"], {}, {}, {})
    assert [name for name, _ in got] == ["console"]
    uplinks.open_uplinks(["nosuch"], {}, {}, {})
    assert [e[2] for e in log.entries()] == ["uplink nosuch: not in this firmware"]
