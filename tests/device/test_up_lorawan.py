# The LoRaWAN uplink module (firmware/motekit/up_lorawan.py) as motekit.uplinks drives it: keys
# from /secrets.json, the report through motekit.payload into frames, the result in the log.
# The radio is _lwnet's fake; the clock is the board's (RX windows really wait, sped up).
# devtest: speed=50
import binascii

import _lwfake as n
from motekit import log, lwcrypto, payload, secrets, uplinks

log.echo = False
BOARD = {"name": "sim-lora", "radios": ["ble", "lora"]}
SENSORS = [{"kind": "sht4x", "id": "sht41", "bus": "i2c0"}]
REPORT = {
    "seq": 7,
    "reason": ["first"],
    "samples": [{"t": 1000, "values": {"sht41.temperature": 21.5, "sht41.humidity": 40.2}}],
    "battery_v": 3.9,
    "faults": [],
}


def _uplink(cfg, st):
    fed = []
    got = uplinks.open_uplinks(["lorawan"], BOARD, st, cfg, lambda: fed.append(1))
    assert [name for name, _ in got] == ["lorawan"]
    up = got[0][1]
    up.radio = n.Radio(n.Clock())  # the MAC keeps the board's clock: its waits are real
    return up, fed


def test_a_board_without_a_lora_radio_is_refused():
    # open_uplinks logs the OSError and leaves the uplink out.
    assert uplinks.open_uplinks(["lorawan"], {"radios": ["ble"]}, {}, {}) == []
    assert log.entries()[-1][2] == "uplink lorawan: this board has no LoRa radio"


def test_abp_report_goes_out_as_one_encrypted_frame():
    n.clean_flash()
    secrets.set("lorawan.nwkskey", binascii.hexlify(n.NWKSKEY).decode())
    secrets.set("lorawan.appskey", binascii.hexlify(n.APPSKEY).decode())
    cfg = n.abp_cfg(sensors=SENSORS, lorawan_fport=9)
    st = {}
    up, fed = _uplink(cfg, st)
    radio_ms = {}
    took = uplinks.send_all([("lorawan", up)], REPORT, True, radio_ms)
    assert took == ["lorawan"]
    # Charged for the energy estimate: the MAC's time on air and RX windows, not the send's
    # wall time (which includes the two RX delays).
    assert radio_ms == up.mac.radio_ms and radio_ms["lora_tx"] > 0 and "lora_rx" in radio_ms
    ups = up.radio.uplinks()
    assert len(ups) == 1
    addr, fc, phy = ups[0]
    assert (addr, fc, phy[8]) == (0x49BE7DF1, 0, 9)  # DevAddr, FCnt, FPort from the config
    plain = lwcrypto.frm_crypt(n.APPSKEY, addr, 0, True, phy[9:-4])
    assert [plain] == payload.encode(REPORT, 222, SENSORS)  # EU868 DR5: one frame
    assert lwcrypto.data_mic(n.NWKSKEY, addr, 0, True, phy[:-4]) == phy[-4:]
    assert fed  # the watchdog was fed through the RX windows
    assert log.entries()[-1][2] == "lorawan: report 7: 1 frame(s) sent, 0 deferred, FCnt 0, DR5"
    text = " ".join(e[2] for e in log.entries())
    assert binascii.hexlify(n.NWKSKEY).decode() not in text


def test_otaa_before_a_join_keeps_the_report_and_says_so():
    n.clean_flash()
    secrets.set("lorawan.appkey", binascii.hexlify(n.APPKEY).decode())
    cfg = n.cfg(sensors=SENSORS)
    st = {}
    up, _ = _uplink(cfg, st)
    assert uplinks.send_all([("lorawan", up)], REPORT, True, {}) == []
    assert "not joined yet; report 7 kept" in log.entries()[-1][2]
    assert len(up.radio.nonces()) >= 1  # it tried
    assert len(st["lw"]["q"]) == 1 and st["lws"]["deferred"] == 1
