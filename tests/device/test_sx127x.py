# The SX127x driver (drivers/sx127x.py) and motekit.radio against the SX1276 model soldered on
# the virtual TTGO LoRa32 (sim-esp32-sx1276). No air in script mode: the `lora_frame` control
# command puts a frame on this node's air, the model's counters say what went out.
# TX waits poll with sleeps, which run 20x faster here; RX windows poll without sleeping and
# keep their real length, so they are kept short.
# devtest: boards=sim-esp32-sx1276
# devtest: speed=20
import time

import _devtest
import _listen
import _simctl
from machine import SPI, Pin
from motekit import radio
from sx127x import SX127x

BOARD = {
    "pins": {
        "spi": [{"id": 1, "sck": 5, "mosi": 27, "miso": 19}],
        "radio": {"chip": "sx1276", "spi": 1, "nss": 18, "reset": 14, "dio0": 26},
    }
}
EU_RX2 = 869_525_000
_radio = []


def chip():
    for bus in _simctl.request("status")["hardware"]["spi"]:
        for dev in bus["devices"]:
            if dev["chip"] == "sx1276":
                return dev
    raise AssertionError("no sx1276 on this board")


def counters():
    return chip()["counters"]


def build():
    spi = SPI(1, baudrate=8_000_000, sck=Pin(5), mosi=Pin(27), miso=Pin(19))
    return SX127x(spi, Pin(18), Pin(14), Pin(26))


def make():
    _simctl.request("clear_faults")
    _simctl.request("lora_link", loss=0.0, out_of_range=False, rssi_dbm=None, snr_db=None)
    return build()


def r():
    # One driver for the tests that do not rebuild it (construction resets the chip).
    if not _radio:
        _radio.append(make())
    return _radio[0]


def toa_ms(n, sf, bw_hz, crc=True):
    # Semtech's formula (datasheet 4.1.1.7) for explicit header, CR 4/5, preamble 8.
    t_sym = (1 << sf) * 1000 / bw_hz
    de = 1 if t_sym > 16 else 0
    num = 8 * n - 4 * sf + 28 + (16 if crc else 0)
    blocks = -(-num // (4 * (sf - 2 * de)))
    return (12.25 + 8 + max(blocks * 5, 0)) * t_sym


def test_open_radio_builds_the_boards_chip_and_a_board_without_one_is_an_oserror():
    dev = radio.open_radio(BOARD)
    assert type(dev).__name__ == "SX127x"
    e = _devtest.raises(OSError, radio.open_radio, {"pins": {"radio": None, "spi": []}})
    assert "no LoRa radio" in str(e)


def test_identity_is_checked_by_regversion():
    _simctl.request("fault", target="spi1:cs18", spec="detach")
    try:
        e = _devtest.raises(OSError, build)
        assert "RegVersion is 0xff" in str(e), str(e)
    finally:
        _simctl.request("clear_faults")
    make()  # and the chip answers again


def test_configure_refuses_what_the_chip_cannot_do():
    dev = r()
    for kwargs in (
        {"sf": 6},
        {"bw_hz": 100_000},
        {"cr": 5},
        {"power_dbm": 21},
        {"sync_word": 0x134},
    ):
        args = {"freq_hz": 868_100_000, "sf": 7, "bw_hz": 125_000}
        args.update(kwargs)
        _devtest.raises(ValueError, dev.configure, **args)
    _devtest.raises(ValueError, dev.configure, 100_000_000, 7, 125_000)
    fresh = make()
    _devtest.raises(RuntimeError, fresh.send, b"x", 100)


def test_configure_sets_frequency_power_and_current_limit():
    dev = r()
    dev.configure(868_100_000, 7, 125_000, power_dbm=14)
    c = chip()
    assert c["freq_hz"] == 868_100_000 and c["tx_power_dbm"] == 14 and c["ocp_ma"] == 100
    dev.configure(433_175_000, 9, 125_000, power_dbm=20)
    c = chip()
    # +20 dBm needs RegPaDac 0x87 and more than the default 100 mA (5.4.3, 5.4.4).
    assert c["freq_hz"] == 433_175_000 and c["tx_power_dbm"] == 20 and c["ocp_ma"] == 140


def test_send_takes_its_time_on_air_and_goes_out():
    dev = r()
    dev.configure(868_100_000, 7, 125_000)
    before = counters()["tx_aired"]
    t0 = time.ticks_ms()
    dev.send(b"hello world", 2000)
    took = time.ticks_diff(time.ticks_ms(), t0)
    want = toa_ms(11, 7, 125_000)
    assert took + 1 >= want, (took, want)  # simulated time: never shorter than on air
    assert counters()["tx_aired"] == before + 1
    assert chip()["mode"] == "lora-stdby"  # TxDone returns the chip to standby


def test_ldro_follows_the_symbol_time_so_sf12_frames_are_demodulable():
    # The model airs a frame only if LowDataRateOptimize matches LoRaWAN's rule (> 16 ms).
    dev = r()
    for bw in (125_000, 500_000):
        dev.configure(868_100_000, 12, bw)
        before = counters()
        dev.send(b"\x40" * 4, 5000)
        after = counters()
        assert after["tx_aired"] == before["tx_aired"] + 1, after
        assert after["tx_unaired"] == before["tx_unaired"]


def test_send_times_out_when_the_packet_is_longer_than_the_timeout():
    dev = r()
    dev.configure(868_100_000, 12, 125_000)
    e = _devtest.raises(OSError, dev.send, b"x" * 50, 100)
    assert e.errno == 110
    assert chip()["mode"] == "lora-stdby"


def test_send_feeds_the_watchdog_while_it_waits():
    dev = r()
    fed = []
    dev.feed = lambda: fed.append(1)
    try:
        dev.configure(868_100_000, 12, 125_000)
        dev.send(b"y" * 40, 5000)  # about 2.3 s on air
    finally:
        dev.feed = None
    assert len(fed) >= 3


def test_a_downlink_in_the_window_is_received_with_rssi_and_snr():
    dev = r()
    dev.configure(EU_RX2, 9, 125_000, iq_invert=True)
    _simctl.request(
        "lora_frame", payload_hex="60aabbcc", freq_hz=EU_RX2, sf=9, delay_ms=300, rssi_dbm=-97.0
    )
    buf = bytearray(255)
    got = dev.recv(buf, 2000)
    assert got is not None
    n, rssi, snr = got
    assert bytes(buf[:n]) == b"\x60\xaa\xbb\xcc"
    assert abs(rssi - -97) <= 1 and snr == 9.0  # 5.5.5, SNR >= 0: -157 + 16/15 PacketRssi
    # Below the noise (SNR < 0) the other formula, and the 433 MHz band's LF offset (-164).
    dev.configure(433_175_000, 9, 125_000, iq_invert=True)
    _simctl.request(
        "lora_frame",
        payload_hex="01",
        freq_hz=433_175_000,
        sf=9,
        delay_ms=300,
        rssi_dbm=-121.0,
        snr_db=-6.5,
    )
    n, rssi, snr = dev.recv(buf, 2000)
    assert n == 1 and abs(rssi - -121) <= 1 and snr == -6.5


def test_nothing_outside_the_window_or_on_another_channel_or_iq():
    # Each window is opened after its frames were put on the node's air, so a slow node (a
    # loaded host) only opens it later: the frames must be missed for the reason tested.
    dev = r()
    buf = bytearray(255)
    dev.configure(EU_RX2, 9, 125_000, iq_invert=True)
    # Its preamble is over before the window opens: missed, though still on the air.
    _simctl.request("lora_frame", payload_hex="01", freq_hz=EU_RX2, sf=9)
    time.sleep_ms(30)
    assert dev.recv(buf, 40) is None
    # After the window's timeout.
    _simctl.request("lora_frame", payload_hex="02", freq_hz=EU_RX2, sf=9, delay_ms=1000)
    assert dev.recv(buf, 40) is None
    # In the window but on another frequency or SF: the first frame heard is the right one.
    for other in ({"freq_hz": 868_300_000, "sf": 9}, {"freq_hz": EU_RX2, "sf": 10}):
        _simctl.request("lora_frame", payload_hex="03", delay_ms=300, **other)
        _simctl.request("lora_frame", payload_hex="04", freq_hz=EU_RX2, sf=9, delay_ms=400)
        got = dev.recv(buf, 2000)
        assert got is not None and got[0] == 1 and buf[0] == 4, (other, got, buf[0])
    # Normal IQ does not hear a downlink (inverted), but another node's uplink.
    dev.configure(EU_RX2, 9, 125_000, iq_invert=False)
    _simctl.request("lora_frame", payload_hex="05", freq_hz=EU_RX2, sf=9, delay_ms=300)
    _simctl.request("lora_frame", payload_hex="06", freq_hz=EU_RX2, sf=9, delay_ms=400, dir="up")
    got = dev.recv(buf, 2000)
    assert got is not None and buf[0] == 6
    assert chip()["mode"] == "lora-stdby"


def test_a_crc_error_is_no_packet_and_loss_drops_frames():
    dev = r()
    buf = bytearray(255)
    dev.configure(868_100_000, 7, 125_000)  # normal IQ: hears uplinks, which carry a CRC
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
    _simctl.request("lora_link", loss=1.0)
    try:
        before = counters()
        _simctl.request(
            "lora_frame", payload_hex="07", freq_hz=868_100_000, sf=7, dir="up", delay_ms=300
        )
        assert dev.recv(buf, 1000) is None
        dev.send(b"lost", 1000)  # the TX completes; the air never sees it
        after = counters()
        assert after["rx_lost"] == before["rx_lost"] + 1
        assert after["tx_lost"] == before["tx_lost"] + 1
    finally:
        _simctl.request("lora_link", loss=0.0)


def test_a_long_wait_uses_continuous_rx_and_still_finishes_a_packet():
    # SF7 at 500 kHz: 1023 symbols are 262 ms, so a 1 s wait is RXCONTINUOUS.
    dev = r()
    buf = bytearray(255)
    dev.configure(923_300_000, 7, 500_000, iq_invert=True)
    _simctl.request("lora_frame", payload_hex="0809", freq_hz=923_300_000, sf=7, bw_hz=500_000,
                    delay_ms=300)  # fmt: skip
    got = dev.recv(buf, 1000)
    assert got is not None and bytes(buf[:2]) == b"\x08\x09"
    t0 = time.ticks_ms()
    assert dev.recv(buf, 300) is None
    assert time.ticks_diff(time.ticks_ms(), t0) >= 300


def test_inverted_iq_tx_is_a_board_downlink_on_the_air():
    # A gateway answering: on the air for every node (docs/virtual-air.md, "Board downlinks").
    dev = r()
    dev.configure(869_525_000, 9, 125_000, iq_invert=True)
    before = counters()
    dev.send(b"\x60down", 2000)
    after = counters()
    assert after["tx_aired"] == before["tx_aired"] + 1
    assert after["tx_unaired"] == before["tx_unaired"]


def test_sleep_keeps_the_configuration():
    dev = r()
    dev.configure(868_300_000, 8, 125_000)
    dev.sleep()
    assert chip()["mode"] == "lora-sleep"
    before = counters()["tx_aired"]
    dev.send(b"after sleep", 2000)
    assert counters()["tx_aired"] == before + 1
    assert chip()["freq_hz"] == 868_300_000


def test_listen_hears_back_to_back_frames_and_stays_in_rx():
    _listen.back_to_back(r(), counters, chip, toa_ms, "lora-rxcontinuous")
