# The gateway role (firmware/motekit/gateway.py) on the real SX1276 driver and the radio model of
# the virtual TTGO LoRa32: an uplink put on the board's air (the `lora_frame` control command)
# is heard and becomes a gw_frame event; a downlink goes out with inverted IQ on the window's
# channel (the model completes it without airing it: the air routes downlinks by node id) and
# the radio is back on its channel, normal IQ, hearing the next uplink.
# devtest: boards=sim-esp32-sx1276
import _simctl
from motekit import gateway, log, radio

log.echo = False
EU = 868_100_000
_gw = []


def chip():
    for bus in _simctl.request("status")["hardware"]["spi"]:
        for dev in bus["devices"]:
            if dev["chip"] == "sx1276":
                return dev
    raise AssertionError("no sx1276 on this board")


def setup():
    if not _gw:
        board = {
            "pins": {
                "spi": [{"id": 1, "sck": 5, "mosi": 27, "miso": 19}],
                "radio": {"chip": "sx1276", "spi": 1, "nss": 18, "reset": 14, "dio0": 26},
            }
        }
        events = []
        gw = gateway.Gateway(radio.open_radio(board), (EU, 7, 125000),
                             lambda name, **f: events.append((name, f)))  # fmt: skip
        _gw.append((gw, events))
    return _gw[0]


def hear(gw, events):
    for _ in range(20):  # 20 slices of 200 ms at most; a frame ends the wait at once
        gw.step()
        if events:
            return events.pop(0)
    raise AssertionError("nothing heard")


def test_an_uplink_on_the_gateways_channel_becomes_an_event():
    gw, events = setup()
    _simctl.request("lora_frame", payload_hex="40aabbccdd", freq_hz=EU, sf=7, dir="up",
                    delay_ms=50, rssi_dbm=-90.0, snr_db=6.0)  # fmt: skip
    name, f = hear(gw, events)
    assert name == "gw_frame" and f["phy"] == "40aabbccdd"
    assert abs(f["rssi"] - -90) <= 1 and f["snr"] == 6.0
    assert (f["freq"], f["sf"], f["bw"]) == (EU, 7, 125000)


def test_a_downlink_goes_out_inverted_and_the_gateway_listens_again():
    gw, events = setup()
    before = chip()["counters"]
    ref = gw.clock()
    got = gw.send({"phy": "60a1b2c3d4", "freq": 869525000, "sf": 9, "bw": 125000, "ref": ref,
                   "delay_ms": 300})  # fmt: skip
    assert got["queued"] is True
    while not events:
        gw.step()
    name, f = events.pop(0)
    assert name == "gw_sent" and f["ok"] is True and f["late_ms"] >= 0, f
    after = chip()["counters"]
    assert after["tx_started"] == before["tx_started"] + 1
    assert after["tx_unaired"] == before["tx_unaired"] + 1  # inverted IQ: a downlink
    assert "inverted IQ" in after["last_unaired"]
    assert chip()["freq_hz"] == EU  # back on its own channel
    _simctl.request("lora_frame", payload_hex="4001", freq_hz=EU, sf=7, dir="up", delay_ms=50)
    name, f = hear(gw, events)
    assert name == "gw_frame" and f["phy"] == "4001"
