# The drivers' continuous reception (listen() and poll(), docs/radios.md), one check for both
# chips: test_sx127x.py and test_sx126x.py call it with their chip's status and formula.
#
#   _listen.back_to_back(driver, counters, chip, toa_ms, "rx")
import time

import _devtest
import _simctl


def poll_frames(dev, buf, count, limit_ms=3000):
    # Poll the listening radio until `count` packets came (or limit_ms), doing some work of its
    # own after each: longer than a preamble, shorter than a packet.
    got = []
    t0 = time.ticks_ms()
    while len(got) < count and time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
        p = dev.poll(buf)
        if p is not None:
            got.append((bytes(buf[: p[0]]), p[1], p[2]))
            time.sleep_ms(10)
    return got


def back_to_back(dev, counters, chip, toa_ms, rx_mode):
    # Frames that start as the previous one ends are all heard, without re-arming the radio;
    # a CRC error is no packet; send() and sleep() end the listening. rx_mode: the chip's
    # status mode while it listens.
    buf = bytearray(255)
    dev.configure(868_100_000, 7, 125_000)  # normal IQ: a gateway hearing uplinks
    _devtest.raises(RuntimeError, dev.poll, buf)  # not listening: listen() first
    dev.listen()
    windows = counters()["rx_windows"]
    assert dev.poll(buf) is None  # nothing yet, and still listening
    payloads = [bytes([0x40, i]) + b"\xab" * (4 + 3 * i) for i in range(4)]
    start = _simctl.request("lora_frame", payload_hex=payloads[0].hex(), freq_hz=868_100_000,
                            sf=7, dir="up", delay_ms=30, rssi_dbm=-91.0)["t_sim_ms"]  # fmt: skip
    for prev, phy in zip(payloads, payloads[1:]):
        start += toa_ms(len(prev), 7, 125_000)  # starts as the previous one ends
        _simctl.request("lora_frame", payload_hex=phy.hex(), freq_hz=868_100_000, sf=7,
                        dir="up", t_sim_ms=start, rssi_dbm=-91.0)  # fmt: skip
    got = poll_frames(dev, buf, len(payloads))
    assert [g[0] for g in got] == payloads, got
    assert all(abs(g[1] - -91) <= 1 and g[2] == 9.0 for g in got), got
    assert counters()["rx_windows"] == windows  # never re-armed
    assert chip()["mode"] == rx_mode
    # A CRC error is no packet; the radio keeps listening for the next one.
    _simctl.request("lora_frame", payload_hex="05", freq_hz=868_100_000, sf=7, dir="up",
                    crc_error=True, delay_ms=20)  # fmt: skip
    _simctl.request("lora_frame", payload_hex="06", freq_hz=868_100_000, sf=7, dir="up",
                    delay_ms=200)  # fmt: skip
    got = poll_frames(dev, buf, 1)
    assert [g[0] for g in got] == [b"\x06"], got
    # A send ends continuous RX.
    dev.send(b"x", 2000)
    _devtest.raises(RuntimeError, dev.poll, buf)
    dev.listen()
    dev.sleep()
    _devtest.raises(RuntimeError, dev.poll, buf)
