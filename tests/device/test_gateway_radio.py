# The gateway role (firmware/motekit/gateway.py) on the real SX1276 driver and the radio model of
# the virtual TTGO LoRa32: the radio stays in continuous RX; an uplink put on the board's air
# (the `lora_frame` control command) is heard and becomes a gw_frame event, and so is every one
# of frames sent back to back (each starting as the previous ends); a frame on another channel
# is not heard; a downlink goes out with inverted IQ on the window's channel (a board downlink:
# aired, docs/virtual-air.md) and the radio is back on its channel, normal IQ, hearing the next
# uplink.
# devtest: boards=sim-esp32-sx1276
import time

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
    for _ in range(40):  # 40 steps of 50 ms at most; a frame ends the wait at once
        gw.step()
        if events:
            return events.pop(0)
    raise AssertionError("nothing heard")


def toa_ms(n, sf=7, bw_hz=125000):
    # Semtech's formula (SX1276 datasheet 4.1.1.7): explicit header, CR 4/5, preamble 8, CRC.
    t_sym = (1 << sf) * 1000 / bw_hz
    de = 1 if t_sym > 16 else 0
    blocks = -(-(8 * n - 4 * sf + 44) // (4 * (sf - 2 * de)))
    return (12.25 + 8 + max(blocks * 5, 0)) * t_sym


def test_an_uplink_on_the_gateways_channel_becomes_an_event():
    gw, events = setup()
    _simctl.request("lora_frame", payload_hex="40aabbccdd", freq_hz=EU, sf=7, dir="up",
                    delay_ms=50, rssi_dbm=-90.0, snr_db=6.0)  # fmt: skip
    name, f = hear(gw, events)
    assert name == "gw_frame" and f["phy"] == "40aabbccdd"
    assert abs(f["rssi"] - -90) <= 1 and f["snr"] == 6.0
    assert (f["freq"], f["sf"], f["bw"]) == (EU, 7, 125000)


def test_back_to_back_frames_are_all_heard_and_the_radio_is_never_rearmed():
    gw, events = setup()
    windows = chip()["counters"]["rx_windows"]
    assert chip()["mode"] == "lora-rxcontinuous"
    payloads = ["40%02x%s" % (i, "ab" * (4 + 3 * i)) for i in range(4)]
    start = _simctl.request("lora_frame", payload_hex=payloads[0], freq_hz=EU, sf=7, dir="up",
                            delay_ms=30)["t_sim_ms"]  # fmt: skip
    for prev, phy in zip(payloads, payloads[1:]):
        start += toa_ms(len(prev) // 2)  # this one starts as the previous one ends
        _simctl.request("lora_frame", payload_hex=phy, freq_hz=EU, sf=7, dir="up",
                        t_sim_ms=start)  # fmt: skip
    heard = []
    for _ in payloads:
        heard.append(hear(gw, events))
        time.sleep_ms(12)  # the console's turn: longer than a preamble, shorter than a frame
    assert [f["phy"] for _, f in heard] == payloads
    ts = [f["t"] for _, f in heard]
    assert ts == sorted(ts)
    c = chip()
    assert c["counters"]["rx_windows"] == windows  # one continuous reception all along
    assert c["mode"] == "lora-rxcontinuous"


def test_a_frame_on_another_channel_is_not_heard():
    gw, events = setup()
    _simctl.request("lora_frame", payload_hex="40ee", freq_hz=868_300_000, sf=7, dir="up",
                    delay_ms=10)  # fmt: skip
    _simctl.request("lora_frame", payload_hex="40dd", freq_hz=EU, sf=9, dir="up", delay_ms=10)
    _simctl.request("lora_frame", payload_hex="40cc", freq_hz=EU, sf=7, dir="up", delay_ms=400)
    name, f = hear(gw, events)
    assert f["phy"] == "40cc"  # the two before it were not on the gateway's channel


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
    assert after["tx_aired"] == before["tx_aired"] + 1  # a board downlink (no air here)
    assert after["tx_unaired"] == before["tx_unaired"]
    assert chip()["freq_hz"] == EU  # back on its own channel
    assert chip()["mode"] == "lora-rxcontinuous"
    _simctl.request("lora_frame", payload_hex="4001", freq_hz=EU, sf=7, dir="up", delay_ms=50)
    name, f = hear(gw, events)
    assert name == "gw_frame" and f["phy"] == "4001"
