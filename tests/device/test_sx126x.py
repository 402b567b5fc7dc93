# The SX126x driver (drivers/sx126x.py) and motekit.radio against the SX1262 model soldered on
# the virtual Heltec WiFi LoRa 32 V3 (sim-esp32-s3-sx1262: DIO2 RF switch, 1.8 V TCXO). No air
# in script mode: `lora_frame` puts a frame on this node's air, the model's counters and status
# say what went out. TX waits sleep (20x faster here); RX windows keep their real length.
# devtest: boards=sim-esp32-s3-sx1262
# devtest: speed=20
import time

import _devtest
import _listen
import _simctl
from machine import SPI, Pin
from motekit import radio
from sx126x import SX126x

BOARD = {
    "pins": {
        "spi": [{"id": 1, "sck": 9, "mosi": 10, "miso": 11}],
        "radio": {
            "chip": "sx1262",
            "spi": 1,
            "nss": 8,
            "reset": 12,
            "busy": 13,
            "dio1": 14,
            "dio2_rf_switch": True,
            "tcxo_mv": 1800,
        },
    }
}
EU_RX2 = 869_525_000
_radio = []


def chip():
    for bus in _simctl.request("status")["hardware"]["spi"]:
        for dev in bus["devices"]:
            if dev["chip"] == "sx1262":
                return dev
    raise AssertionError("no sx1262 on this board")


def counters():
    return chip()["counters"]


def spi():
    return SPI(1, baudrate=8_000_000, sck=Pin(9), mosi=Pin(10), miso=Pin(11))


def build(rf_switch=True, tcxo_mv=1800):
    return SX126x(spi(), Pin(8), Pin(12), Pin(13), Pin(14), rf_switch, tcxo_mv)


def make(rf_switch=True, tcxo_mv=1800):
    _simctl.request("clear_faults")
    _simctl.request("lora_link", loss=0.0, out_of_range=False, rssi_dbm=None, snr_db=None)
    return build(rf_switch, tcxo_mv)


def toa_ms(n, sf, bw_hz):
    # Semtech's formula (DS_SX1261-2 6.1.4) for explicit header, CR 4/5, preamble 8, CRC on.
    t_sym = (1 << sf) * 1000 / bw_hz
    de = 1 if t_sym > 16 else 0
    blocks = -(-(8 * n - 4 * sf + 44) // (4 * (sf - 2 * de)))
    return (12.25 + 8 + max(blocks * 5, 0)) * t_sym


def r():
    if not _radio:
        _radio.append(make())
    return _radio[0]


def test_open_radio_builds_the_boards_chip_with_its_wiring():
    dev = radio.open_radio(BOARD)
    assert type(dev).__name__ == "SX126x"
    c = chip()
    assert c["tcxo_mv"] == 1800 and c["rf_switch"] and c["packet_type"] == "lora"
    assert c["device_errors"] == 0  # the POR's XOSC start error is cleared
    assert c["ignored_busy"] == 0  # every command waited for BUSY low


def test_no_chip_is_an_oserror():
    _simctl.request("fault", target="spi1:cs8", spec="detach")
    try:
        e = _devtest.raises(OSError, build)
        assert "not STDBY_RC" in str(e), str(e)
    finally:
        _simctl.request("clear_faults")


def test_a_command_sent_while_busy_is_lost():
    # The chip boots for 3.5 ms after NRESET: a command then is ignored (8.3.1). The driver
    # waits; raw SPI that does not wait is counted by the model.
    make()
    before = chip()["ignored_busy"]
    rst, cs = Pin(12, Pin.OUT, value=1), Pin(8, Pin.OUT, value=1)
    rst(0)
    time.sleep_ms(1)
    rst(1)
    cs(0)
    spi().write(b"\x80\x00")  # SetStandby, without waiting for BUSY
    cs(1)
    assert chip()["ignored_busy"] == before + 1
    make()  # a fresh driver recovers the chip


def test_configure_refuses_what_the_chip_cannot_do():
    dev = r()
    for kwargs in ({"sf": 13}, {"bw_hz": 100_000}, {"cr": 0}, {"power_dbm": 23}):
        args = {"freq_hz": 868_100_000, "sf": 7, "bw_hz": 125_000}
        args.update(kwargs)
        _devtest.raises(ValueError, dev.configure, **args)
    _devtest.raises(ValueError, dev.configure, 1_000_000_000, 7, 125_000)
    _devtest.raises(ValueError, SX126x, spi(), Pin(8), Pin(12), Pin(13), Pin(14), tcxo_mv=1900)


def test_configure_sets_frequency_power_and_calibrates_the_band_image():
    dev = r()
    dev.configure(868_100_000, 7, 125_000, power_dbm=14)
    c = chip()
    assert c["freq_hz"] == 868_100_000 and c["tx_power_dbm"] == 14
    assert c["image_calibration"] == [0xD7, 0xDB]  # 9.2.1: 863-870 MHz
    dev.configure(915_000_000, 10, 125_000, power_dbm=22)
    c = chip()
    assert c["freq_hz"] == 915_000_000 and c["tx_power_dbm"] == 22
    assert c["image_calibration"] == [0xE1, 0xE9]  # 902-928 MHz


def test_send_takes_its_time_on_air_and_goes_out():
    dev = r()
    dev.configure(868_100_000, 7, 125_000)
    before = counters()["tx_aired"]
    t0 = time.ticks_ms()
    dev.send(b"hello world", 2000)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert took + 1 >= 41, took  # 41.2 ms on air (4.1.1.7's formula, CR 4/5), simulated time
    assert counters()["tx_aired"] == before + 1
    assert chip()["mode"] == "stdby_rc"


def test_sf12_needs_ldro_and_gets_it():
    dev = r()
    dev.configure(868_100_000, 12, 125_000)
    before = counters()
    dev.send(b"\x40" * 4, 5000)
    after = counters()
    assert after["tx_aired"] == before["tx_aired"] + 1 and after["tx_unaired"] == 0


def test_the_chips_own_tx_timeout_and_ours():
    dev = r()
    dev.configure(868_100_000, 12, 125_000)
    e = _devtest.raises(OSError, dev.send, b"x" * 50, 100)
    assert e.errno == 110  # SetTx's own timeout (13.1.4) or the driver's, whichever came first
    assert chip()["mode"] != "tx"  # and the chip is not left transmitting


def test_a_downlink_in_the_window_is_received_with_rssi_and_snr():
    dev = r()
    dev.configure(EU_RX2, 9, 125_000, iq_invert=True)
    _simctl.request(
        "lora_frame",
        payload_hex="60aabbcc",
        freq_hz=EU_RX2,
        sf=9,
        delay_ms=300,
        rssi_dbm=-97.0,
        snr_db=-3.25,
    )
    buf = bytearray(255)
    n, rssi, snr = dev.recv(buf, 2000)
    assert bytes(buf[:n]) == b"\x60\xaa\xbb\xcc"
    assert rssi == -97 and snr == -3.25  # 13.5.3: -RssiPkt/2, SnrPkt/4


def test_nothing_outside_the_window_or_on_another_channel_or_iq():
    # As in test_sx127x.py: frames go on the air before the window opens, so a slow node only
    # makes the window later.
    dev = r()
    buf = bytearray(255)
    dev.configure(EU_RX2, 9, 125_000, iq_invert=True)
    _simctl.request("lora_frame", payload_hex="01", freq_hz=EU_RX2, sf=9)
    time.sleep_ms(30)
    assert dev.recv(buf, 40) is None  # its preamble had passed
    _simctl.request("lora_frame", payload_hex="02", freq_hz=EU_RX2, sf=9, delay_ms=1000)
    assert dev.recv(buf, 40) is None  # after the timeout
    _simctl.request("lora_frame", payload_hex="03", freq_hz=868_300_000, sf=9, delay_ms=300)
    _simctl.request("lora_frame", payload_hex="04", freq_hz=EU_RX2, sf=9, delay_ms=400)
    got = dev.recv(buf, 2000)
    assert got is not None and buf[0] == 4  # the other channel's frame was not heard
    dev.configure(EU_RX2, 9, 125_000, iq_invert=False)
    _simctl.request("lora_frame", payload_hex="05", freq_hz=EU_RX2, sf=9, delay_ms=300)
    _simctl.request("lora_frame", payload_hex="06", freq_hz=EU_RX2, sf=9, delay_ms=400, dir="up")
    got = dev.recv(buf, 2000)
    assert got is not None and buf[0] == 6  # normal IQ: the uplink, not the downlink
    assert counters()["rx_timeouts"] >= 2


def test_a_crc_error_is_no_packet_and_loss_drops_frames():
    dev = r()
    buf = bytearray(255)
    dev.configure(868_100_000, 7, 125_000)
    _simctl.request(
        "lora_frame",
        payload_hex="05",
        freq_hz=868_100_000,
        sf=7,
        dir="up",
        crc_error=True,
        delay_ms=300,
    )
    assert dev.recv(buf, 1000) is None
    _simctl.request(
        "lora_frame", payload_hex="06", freq_hz=868_100_000, sf=7, dir="up", delay_ms=300
    )
    assert dev.recv(buf, 1000) == (1, -60, 9.0) and buf[0] == 6
    _simctl.request("lora_link", out_of_range=True)
    try:
        before = counters()
        _simctl.request(
            "lora_frame", payload_hex="07", freq_hz=868_100_000, sf=7, dir="up", delay_ms=300
        )
        assert dev.recv(buf, 1000) is None
        dev.send(b"lost", 1000)
        after = counters()
        assert after["rx_lost"] == before["rx_lost"] + 1
        assert after["tx_lost"] == before["tx_lost"] + 1
    finally:
        _simctl.request("lora_link", out_of_range=False)


def test_a_long_wait_uses_continuous_rx_and_still_finishes_a_packet():
    # 300 s is past SetRx's 262 s: continuous reception, the driver's clock ends it.
    dev = r()
    buf = bytearray(255)
    dev.configure(923_300_000, 7, 500_000, iq_invert=True)
    _simctl.request("lora_frame", payload_hex="0809", freq_hz=923_300_000, sf=7, bw_hz=500_000,
                    delay_ms=300)  # fmt: skip
    got = dev.recv(buf, 300_000)
    assert got is not None and bytes(buf[:2]) == b"\x08\x09"


def test_the_boards_wiring_matters_tcxo_and_rf_switch():
    # Without the TCXO powered by DIO3 the oscillator does not start: no TX (13.3.6).
    dev = make(tcxo_mv=0)
    dev.configure(868_100_000, 7, 125_000)
    e = _devtest.raises(OSError, dev.send, b"x", 200)
    assert e.errno == 110
    assert chip()["device_errors"] & 0x20  # XOSC_START_ERR
    # Without DIO2 driving the antenna switch the TX completes but never leaves the board.
    dev = make(rf_switch=False)
    dev.configure(868_100_000, 7, 125_000)
    before = counters()["tx_unaired"]
    dev.send(b"x", 200)
    c = counters()
    assert c["tx_unaired"] == before + 1 and "RF switch" in c["last_unaired"]
    _radio.clear()


def test_sleep_is_a_warm_start_that_keeps_the_configuration():
    dev = r()
    dev.configure(868_300_000, 8, 125_000)
    dev.sleep()
    c = chip()
    assert c["mode"] == "sleep" and c["busy"]  # BUSY stays high in SLEEP
    before = counters()["tx_aired"]
    dev.send(b"after sleep", 2000)  # NSS wakes it; no configure() in between
    after = chip()
    assert after["counters"]["tx_aired"] == before + 1 and after["freq_hz"] == 868_300_000
    assert after["ignored_busy"] == c["ignored_busy"]  # the wake waited for BUSY


def test_listen_hears_back_to_back_frames_and_stays_in_rx():
    _listen.back_to_back(r(), counters, chip, toa_ms, "rx")
