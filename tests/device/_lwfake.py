# Fakes for the LoRaWAN device tests (test_lorawan*.py, test_up_lorawan.py): a clock that only
# moves when slept on, a radio that records what it sends and hears the downlinks scheduled for
# the RX window it opens, power cuts injected at any numbered point (a flash write, a
# transmission, a reception), configs and keys. _lwnet.py adds a network server and a Node.
#
#   clock = Clock(); radio = Radio(clock)
#   radio.down(t_ms, 868100000, 7, 125000, phy)   # heard by an RX window open at t_ms
import binascii
import json
import os
import struct

from motekit import lorawan, lwregion, store

APPKEY = bytes(range(16))
NWKSKEY = binascii.unhexlify("44024241ed4ce9a68c6a8bc055233fd3")
APPSKEY = binascii.unhexlify("ec925802ae430ca77fd3dd73cb2cc588")
DEV_EUI = "0004a30b001c0530"
JOIN_EUI = "70b3d57ed0000000"
WALL0 = 800_000_000_000  # ms since 2000: late 2025
MIN = 60000


class PowerCut(BaseException):
    # Not an Exception: nothing in the firmware may catch it, as nothing catches a power cut.
    pass


class Cuts:
    # Numbered points where a test cuts the power: at = n raises PowerCut at the n-th point.
    def __init__(self):
        self.n = 0
        self.at = -1
        self.last = None

    def point(self, what):
        self.last = what
        if self.n == self.at:
            self.n += 1
            raise PowerCut(what)
        self.n += 1


CUTS = Cuts()
WRITES = {}  # path -> files written (flash wear, per file)
_write_json = store.write_json


def _cut_write(path, obj):
    CUTS.point("before write " + path)
    _write_json(path, obj)
    WRITES[path] = WRITES.get(path, 0) + 1
    CUTS.point("after write " + path)


store.write_json = _cut_write


def clean_flash():
    for p in (lorawan.PATH, "/lwnonce.json", lorawan.DC_PATH):  # lwjoin.NONCE_PATH
        for suffix in ("", ".bak", ".new"):
            try:
                os.remove(p + suffix)
            except OSError:
                pass


def cfg(**kw):
    c = {
        "lorawan_region": "EU868",
        "lorawan_sub_band": 2,
        "lorawan_activation": "otaa",
        "lorawan_dev_eui": DEV_EUI,
        "lorawan_join_eui": JOIN_EUI,
        "lorawan_dev_addr": "",
        "lorawan_confirmed": False,
        "lorawan_retries": 3,
        "lorawan_adr": False,
        "lorawan_dr": 5,
        "lorawan_single_channel": False,
        "lorawan_fport": 1,
        "critical_battery_v": 3.2,
        "sensors": [],
    }
    c.update(kw)
    return c


def abp_cfg(**kw):
    c = cfg(lorawan_activation="abp", lorawan_dev_addr="49be7df1")
    c.update(kw)
    return c


KEYS = {"appkey": APPKEY, "nwkkey": None}
ABP_KEYS = {"nwkskey": NWKSKEY, "appskey": APPSKEY}


class Clock:
    # ticks and the wall clock move together, and only when something sleeps or the radio
    # spends time on air.
    def __init__(self):
        self.t = 1000
        self.wall0 = WALL0  # the wall clock is wall0 + t; a power-on may set it back

    def ticks_ms(self):
        return self.t

    def sleep_ms(self, ms):
        self.t += ms

    def now_ms(self):
        return self.wall0 + self.t

    def restart_wall(self):
        # A power-on without a set RTC: the wall clock starts again at the epoch.
        self.wall0 = -self.t


class Rnd:
    # Deterministic "random" bits: a counter.
    def __init__(self):
        self.n = 0

    def __call__(self, bits):
        self.n += 1
        return self.n & ((1 << bits) - 1)


def rt(st):
    # Retained state as RTC memory keeps it: JSON, nothing else survives.
    return json.loads(json.dumps(st))


class Radio:
    def __init__(self, clock):
        self.clock = clock
        self.sent = []  # (t_end, freq, sf, bw, power_dbm, phy)
        self.opened = []  # RX windows: (t_open, timeout_ms, freq, sf, bw)
        self.downs = []  # scheduled downlinks: [t_start, freq, sf, bw, phy, snr]
        self.conf = None
        self.net = None  # called with (radio, phy, t_end) after each transmission
        self.sleeps = 0

    def configure(
        self,
        freq_hz,
        sf,
        bw_hz,
        cr=1,
        power_dbm=14,
        sync_word=0x34,
        preamble=8,
        iq_invert=False,
        crc=True,
    ):
        assert sync_word == 0x34 and preamble == 8 and cr == 1
        assert 2 <= power_dbm <= 20
        self.conf = (freq_hz, sf, bw_hz, power_dbm, iq_invert, crc)

    def send(self, data, timeout_ms):
        f, sf, bw, dbm, iq, crc = self.conf
        assert not iq and crc, "uplinks: normal IQ, CRC on"
        CUTS.point("before send")
        toa = lwregion.time_on_air_ms(len(data), sf=sf, bw_hz=bw)
        assert timeout_ms > toa
        self.clock.t += int(toa) + 1
        self.sent.append((self.clock.t, f, sf, bw, dbm, bytes(data)))
        CUTS.point("after send")
        if self.net is not None:
            self.net(self, bytes(data), self.clock.t)

    def recv(self, buf, timeout_ms):
        f, sf, bw, dbm, iq, crc = self.conf
        assert iq and not crc, "downlinks: inverted IQ, no CRC"
        t0 = self.clock.t
        self.opened.append((t0, timeout_ms, f, sf, bw))
        CUTS.point("recv")
        for d in self.downs:
            t, df, dsf, dbw, phy, snr = d
            if (df, dsf, dbw) == (f, sf, bw) and t0 <= t <= t0 + timeout_ms:
                self.downs.remove(d)
                buf[: len(phy)] = phy
                self.clock.t = t + int(lwregion.time_on_air_ms(len(phy), sf=sf, bw_hz=bw)) + 1
                return len(phy), -70, snr
        self.clock.t = t0 + timeout_ms
        return None

    def sleep(self):
        self.sleeps += 1

    def down(self, t, freq, sf, bw, phy, snr=7.0):
        self.downs.append([t, freq, sf, bw, phy, snr])

    def uplinks(self):
        # [(dev_addr, fcnt16, phy)] of the data frames sent.
        out = []
        for s in self.sent:
            phy = s[5]
            if phy[0] & 0xE0 in (0x40, 0x80):
                addr, _, fc = struct.unpack_from("<IBH", phy, 1)
                out.append((addr, fc, phy))
        return out

    def nonces(self):
        return [struct.unpack_from("<H", s[5], 17)[0] for s in self.sent if s[5][0] == 0]
