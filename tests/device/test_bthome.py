# BTHome v2 on the node: the encoder (firmware/motekit/bthome.py) and the uplink
# (up_bthome.py): objects, order, scaling, split, the burst, encryption and its counter.
# The same adverts decoded by Home Assistant's own parser: tests/host/test_bthome_node.py.
# devtest: speed=20
import binascii
import gc
import os

import _devtest
import machine
from motekit import bthome, log, secrets, store
from motekit.aesccm import CCM

try:
    import bluetooth  # noqa: F401  esp32 profile only, as on the boards

    HAS_BLE = True
except ImportError:
    HAS_BLE = False

log.echo = False
secrets.PATH = "/secrets_bthome.json"
KEY_HEX = "231d39c1d7cc1ab1aee224cd096db932"
KEY = binascii.unhexlify(KEY_HEX)
MAC = binascii.unhexlify("5448e68f80a5")
BOARD = {"radios": ["ble"]}
CFG = {"ble_adv_count": 3, "ble_adv_interval_ms": 20, "bthome_encrypt": False}
REPORT = {
    "seq": 4,
    "reason": ["first"],
    "samples": [
        {"t": 100, "values": {"sht4x.temperature": 19.0}},
        {"t": 160, "values": {"sht4x.temperature": 25.06, "sht4x.humidity": 50.55}},
    ],
    "battery_v": 3.84,
    "faults": [],
}


def hx(b):
    return binascii.hexlify(b).decode()


def _clean():
    for path in (secrets.PATH, "/bthome.json"):
        for suffix in ("", ".bak", ".new"):
            try:
                os.remove(path + suffix)
            except OSError:
                pass


class FakeBLE:
    # Records what the uplink does with the radio.
    def __init__(self, fail_at=None):
        self.on = False
        self.calls = []
        self.fail_at = fail_at

    def active(self, on=None):
        if on is not None:
            self.on = bool(on)
            self.calls.append(("active", self.on))
        return self.on

    def config(self, name):
        assert name == "mac" and self.on, "the MAC is read with the radio on"
        return (0, MAC)

    def gap_advertise(self, interval_us, adv_data=None, connectable=True):
        assert self.on, "advertising with the radio off"
        if adv_data is not None and len(self.adverts()) == self.fail_at:
            raise OSError(5)
        self.calls.append(("adv", interval_us, adv_data, connectable))

    def adverts(self):
        return [c[2] for c in self.calls if c[0] == "adv" and c[2] is not None]


def _service_data(adv):
    # -> (device info, the bytes after it) from an AdvData: Flags then BTHome service data.
    assert adv[:3] == b"\x02\x01\x06", hx(adv)
    n = adv[3]
    assert adv[4] == 0x16 and adv[5:7] == b"\xd2\xfc" and len(adv) == 4 + n, hx(adv)
    return adv[7], adv[8:]


def _uplink(cfg=None, st=None, ble=None, boot=False):
    # boot=True: the first uplink since a (non deep-sleep) reset; else one later in the boot.
    from motekit import up_bthome

    st = {} if st is None else st
    if boot:
        st.pop("bt_boot", None)
    else:
        st["bt_boot"] = st.get("wakes")
    return up_bthome.Uplink(BOARD, st, _cfg(cfg or {}), ble or FakeBLE())


# --- the encoder -------------------------------------------------------------------------------


def test_every_quantity_has_the_specs_object():
    # bthome.io/format: id, bytes, signed, decimal places.
    assert bthome.spec("temperature") == (0x02, 2, True, 2)
    assert bthome.spec("humidity") == (0x03, 2, False, 2)
    assert bthome.spec("pressure") == (0x04, 3, False, 2)
    assert bthome.spec("co2") == (0x12, 2, False, 0)
    assert bthome.spec("voltage") == (0x0C, 2, False, 3)
    assert bthome.spec("current") == (0x5D, 2, True, 3)
    assert bthome.spec("power") == (0x0B, 3, False, 2)
    assert bthome.spec("moisture") == (0x14, 2, False, 2)
    assert bthome.spec("light") is None
    assert len(bthome.QUANTITIES) == 8


def test_objects_are_scaled_little_endian_and_in_object_id_order():
    values = {
        "ina.power": 69.14,
        "soil.moisture": 30.74,
        "ina.current": -1.5,
        "ina.voltage": 3.074,
        "scd41.co2": 1250,
        "bme.pressure": 1008.83,
        "sht.humidity": 50.55,
        "sht.temperature": 25.06,
    }
    got = [hx(o) for o in bthome.objects(values, 93)]
    assert got == [
        "015d",  # battery 93 %
        "02ca09",  # 25.06 °C (the spec's example)
        "03bf13",  # 50.55 %
        "04138a01",  # 1008.83 hPa (the spec's example)
        "0b021b00",  # 69.14 W
        "0c020c",  # 3.074 V
        "12e204",  # 1250 ppm
        "14020c",  # 30.74 %
        "5d24fa",  # -1.500 A, signed
    ], got


def test_several_sensors_of_one_quantity_repeat_the_object_in_channel_order():
    values = {"z.temperature": 1.0, "a.temperature": -12.34, "m.humidity": 40.0, "m.temperature": 2}
    got = [hx(o) for o in bthome.objects(values)]
    assert got == ["022efb", "02c800", "026400", "03a00f"], got  # a, m, z; then humidity


def test_out_of_range_values_are_clamped_and_non_numbers_left_out():
    values = {
        "s.humidity": -0.3,  # a calibration can push a dry reading below 0
        "s.temperature": 400.0,
        "t.temperature": float("-inf"),
        "u.temperature": float("nan"),
        "v.temperature": True,
        "w.temperature": "21.5",
        "x.light": 300.0,
        "nodot": 1.0,
    }
    got = [hx(o) for o in bthome.objects(values)]
    assert got == ["02ff7f", "020080", "030000"], got
    assert bthome.objects({}) == [] and [hx(o) for o in bthome.objects({}, 150)] == ["0196"]


def test_battery_percent_follows_the_cell_curve():
    assert bthome.battery_percent(4.3) == 100
    assert bthome.battery_percent(4.20) == 100
    assert bthome.battery_percent(3.84) == 50
    assert bthome.battery_percent(3.82) == 45  # halfway between 3.80 V (40 %) and 3.84 V
    assert bthome.battery_percent(3.61) == 5
    assert bthome.battery_percent(3.30) == 0
    assert bthome.battery_percent(2.9) == 0
    last = -1
    for mv in range(3200, 4300, 10):
        p = bthome.battery_percent(mv / 1000)
        assert isinstance(p, int) and 0 <= p <= 100 and p >= last, (mv, p)
        last = p


def test_split_keeps_each_advert_in_room_and_same_id_objects_together():
    values = {}
    for i in range(3):
        values["t%d.temperature" % i] = 20.0 + i
        values["h%d.humidity" % i] = 40.0 + i
    values["b.pressure"] = 1000.0
    values["c.co2"] = 600
    objs = bthome.objects(values, 80)  # 2 + 9 + 9 + 4 + 3 = 27 bytes of objects
    assert len(bthome.split(objs, bthome.ROOM_PLAIN)) == 2
    groups = bthome.split(objs, bthome.ROOM_ENCRYPTED)  # 13 bytes of objects each
    assert [[o[0] for o in g] for g in groups] == [
        [0x01, 0x02, 0x02, 0x02],
        [0x03, 0x03, 0x03, 0x04],
        [0x12],
    ]
    assert [o for g in groups for o in g] == objs
    # Six temperatures (18 bytes) cannot share one advertisement: they fill and spill over.
    many = bthome.objects({"t%d.temperature" % i: i for i in range(6)}, 50)
    groups = bthome.split(many, bthome.ROOM_ENCRYPTED)
    assert [len(g) for g in groups] == [4, 3] and [o for g in groups for o in g] == many
    for room in (bthome.ROOM_PLAIN, bthome.ROOM_ENCRYPTED):
        for g in bthome.split(many, room):
            assert sum(len(o) for o in g) + 2 <= room


def test_advert_layout_and_limit():
    data = bthome.payload(7, [bytes((2, 0xCA, 9)), bytes((3, 0xBF, 0x13))])
    adv = bthome.advert(bthome.INFO_V2, data)
    assert hx(adv) == "020106" + "0c16d2fc40" + "0007" + "02ca09" + "03bf13"
    assert len(bthome.advert(bthome.INFO_V2, bytes(bthome.ROOM_PLAIN))) == bthome.ADV_MAX
    e = _devtest.raises(ValueError, bthome.advert, bthome.INFO_V2, bytes(bthome.ROOM_PLAIN + 1))
    assert "32 bytes" in str(e)
    n = bthome.nonce(MAC, 0x41, b"\x00\x11\x22\x33")
    assert hx(n) == "5448e68f80a5d2fc4100112233"  # bthome.io/encryption's nonce


# --- the uplink --------------------------------------------------------------------------------


def test_a_board_without_ble_does_not_offer_it():
    from motekit import up_bthome

    for board in ({"radios": []}, {"radios": ["lora"]}, {}):
        e = _devtest.raises(OSError, up_bthome.Uplink, board, {}, CFG)
        assert str(e) == "this board has no BLE radio"
    assert up_bthome.Uplink.RADIO == "ble"  # charged at board.json power.radio_ma.ble_tx


def test_plain_burst_interleaves_each_advert_count_times_then_switches_the_radio_off():
    _clean()
    ble = FakeBLE()
    st = {}
    up = _uplink({"ble_adv_count": 3, "ble_adv_interval_ms": 25}, st, ble)
    rep = dict(REPORT)
    rep["samples"] = [
        {
            "t": 1,
            "values": {
                "a.temperature": 21.0,
                "b.temperature": 22.0,
                "c.temperature": 23.0,
                "a.humidity": 40.0,
                "b.humidity": 41.0,
                "c.humidity": 42.0,
                "d.pressure": 990.0,
                "e.co2": 800,
                "f.voltage": 3.3,
            },
        }
    ]
    up.send(rep)
    calls = ble.calls
    assert calls[0] == ("active", True) and calls[-1] == ("active", False)
    assert calls[-2] == ("adv", None, None, True)  # gap_advertise(None): stop
    advs = [c for c in calls if c[0] == "adv" and c[2] is not None]
    assert all(c[1] == 25000 and c[3] is False for c in advs)  # interval, non-connectable
    distinct = []
    for c in advs:
        if c[2] not in distinct:
            distinct.append(c[2])
    assert len(distinct) == 2  # 2 + 2 + 9 + 9 + 4 + 3 + 3 = 32 bytes > 23: two advertisements
    assert [c[2] for c in advs] == distinct * 3  # A B A B A B
    pids = []
    for adv in distinct:
        assert len(adv) <= 31
        info, rest = _service_data(adv)
        assert info == 0x44  # version 2, trigger based, not encrypted
        assert rest[0] == 0x00
        pids.append(rest[1])
    assert pids == [0, 1] and st["bt_pid"] == 2
    assert "bthome.json" not in os.listdir("/")  # no counter when not encrypting


def test_the_newest_sample_and_battery_are_sent():
    ble = FakeBLE()
    up = _uplink({"ble_adv_count": 1}, {"bt_pid": 255}, ble)
    up.send(REPORT)
    (adv,) = ble.adverts()
    info, rest = _service_data(adv)
    # packet id 255, battery 50 % (3.84 V), 25.06 °C, 50.55 % (not the older 19.0 °C)
    assert hx(rest) == "00ff" + "0132" + "02ca09" + "03bf13", hx(rest)
    rep = dict(REPORT)
    rep["battery_v"] = None
    ble2 = FakeBLE()
    _uplink({"ble_adv_count": 1}, {}, ble2).send(rep)
    assert hx(_service_data(ble2.adverts()[0])[1]) == "0000" + "02ca09" + "03bf13"


def test_nothing_to_say_keeps_the_radio_off():
    ble = FakeBLE()
    rep = {
        "seq": 1,
        "reason": [],
        "samples": [{"t": 1, "values": {"x.light": 5.0}}],
        "battery_v": None,
        "faults": ["sht4x"],
    }
    _uplink({}, {}, ble).send(rep)
    rep["samples"] = []
    _uplink({}, {}, ble).send(rep)
    assert ble.calls == []


def test_the_radio_goes_off_when_advertising_fails():
    ble = FakeBLE(fail_at=1)
    e = _devtest.raises(OSError, _uplink({}, {}, ble).send, REPORT)
    assert e.args[0] == 5
    assert ble.calls[-1] == ("active", False) and not ble.on


def test_a_long_burst_feeds_the_watchdog():
    ble = FakeBLE()
    up = _uplink({"ble_adv_count": 2, "ble_adv_interval_ms": 1200}, {}, ble)
    fed = []
    up.feed = lambda: fed.append(1)
    up.send(REPORT)
    assert len(ble.adverts()) == 2
    assert len(fed) == 6  # 1200 ms waits in 500 ms slices: 3 feeds each


def _decrypt(adv, key=KEY, mac=MAC):
    # -> (counter, plain payload) of an encrypted advertisement.
    info, rest = _service_data(adv)
    assert info == 0x45, info  # version 2, trigger based, encrypted
    ctr = rest[-8:-4]
    plain = CCM(key, 4).decrypt(bthome.nonce(mac, info, ctr), rest[:-8] + rest[-4:])
    n = int.from_bytes(ctr, "little")
    assert plain[:2] == bytes((0, n & 0xFF)), "the packet id is the counter's low byte"
    return n, plain


def test_encrypted_adverts_decrypt_and_each_has_its_own_counter():
    _clean()
    secrets.set("bthome.bindkey", KEY_HEX)
    ble = FakeBLE()
    st = {}
    up = _uplink({"bthome_encrypt": True, "ble_adv_count": 2}, st, ble, boot=True)
    rep = dict(REPORT)
    rep["samples"] = [
        {
            "t": 1,
            "values": {
                "a.temperature": 21.5,
                "b.temperature": 22.5,
                "a.humidity": 40.25,
                "c.pressure": 1001.5,
            },
        }
    ]
    up.send(rep)
    advs = ble.adverts()
    assert len(advs) == 4 and advs[0] == advs[2] and advs[1] == advs[3] and advs[0] != advs[1]
    got = [_decrypt(a) for a in advs[:2]]
    assert [c for c, _ in got] == [0, 1]
    assert hx(got[0][1]) == "0000" + "0132" + "026608" + "02ca08" + "03b90f", hx(got[0][1])
    assert hx(got[1][1]) == "0001" + "04368701", hx(got[1][1])
    assert all(len(a) <= 31 for a in advs)
    # The counter is reserved ahead in flash, once per 32 values; no plain packet id is kept.
    obj, _ = store.read_json("/bthome.json")
    assert obj == {"next": 32} and st["bt_ctr"] == 2 and st["bt_ctr_lim"] == 32
    assert "bt_pid" not in st


def test_the_counter_never_repeats_through_sleep_resets_and_power_loss():
    _clean()
    secrets.set("bthome.bindkey", KEY_HEX)
    seen = []

    def burst(st, cause=None):
        # One report's burst; cause: the reset a new boot started with (None: the same boot).
        from motekit import up_bthome

        real = machine.reset_cause
        if cause is not None:
            st["wakes"] = st.get("wakes", 0) + 1  # as app.boot() counts them
            machine.reset_cause = lambda: cause
        try:
            ble = FakeBLE()
            cfg = _cfg({"bthome_encrypt": True, "ble_adv_count": 1})
            up_bthome.Uplink(BOARD, st, cfg, ble).send(REPORT)
        finally:
            machine.reset_cause = real
        seen.extend(_decrypt(a)[0] for a in ble.adverts())

    st = {}
    burst(st, machine.PWRON_RESET)
    burst(st)  # a later cycle of the same boot (rp2: no deep sleep)
    assert seen == [0, 1], seen
    if hasattr(machine, "DEEPSLEEP_RESET"):
        # A deep-sleep wake: the retained state was saved just before the sleep and is trusted.
        burst(st, machine.DEEPSLEEP_RESET)
        assert seen[-1] == 2, seen
    stale = dict(st)  # what RTC memory holds ...
    burst(st)  # ... when this burst goes out and a watchdog reset comes before the next save
    burst(stale, machine.WDT_RESET)  # not a deep-sleep wake: resume from the flash reservation
    assert seen[-1] == 32, seen
    burst({}, machine.PWRON_RESET)  # a power loss: no retained state at all
    assert seen[-1] == 64, seen
    assert all(b > a for a, b in zip(seen, seen[1:])), seen
    assert store.read_json("/bthome.json")[0] == {"next": 96}


def _cfg(extra):
    c = dict(CFG)
    c.update(extra)
    return c


def test_the_counter_stops_rather_than_wrap():
    _clean()
    secrets.set("bthome.bindkey", KEY_HEX)
    st = {"bt_ctr": 0xFFFFFFFF, "bt_ctr_lim": 0x100000040}  # a deep-sleep wake, late in life
    ble = FakeBLE()
    up = _uplink({"bthome_encrypt": True, "ble_adv_count": 1}, st, ble)
    up.send({"samples": [{"t": 1, "values": {"a.co2": 500}}], "battery_v": None})
    assert _decrypt(ble.adverts()[0])[0] == 0xFFFFFFFF
    ble = FakeBLE()
    up = _uplink({"bthome_encrypt": True, "ble_adv_count": 1}, st, ble)
    e = _devtest.raises(RuntimeError, up.send, REPORT)
    assert "used up" in str(e) and ble.adverts() == [] and not ble.on


def test_encryption_without_a_bind_key_sends_plain_and_says_so_once():
    _clean()
    log.clear()
    st = {}
    for _ in range(2):
        ble = FakeBLE()
        _uplink({"bthome_encrypt": True, "ble_adv_count": 1}, st, ble).send(REPORT)
        assert _service_data(ble.adverts()[0])[0] == 0x44
    warnings = [e[2] for e in log.entries() if e[1] == "W"]
    assert warnings == ["bthome: no bthome.bindkey is set: advertising unencrypted"]
    # Once a key is set, the next uplink encrypts.
    secrets.set("bthome.bindkey", KEY_HEX)
    ble = FakeBLE()
    _uplink({"bthome_encrypt": True, "ble_adv_count": 1}, st, ble).send(REPORT)
    assert _service_data(ble.adverts()[0])[0] == 0x45 and "bt_nokey" not in st


def test_the_boards_own_radio_and_the_heap_it_takes():
    if not HAS_BLE:
        _devtest.skip("no bluetooth module on this board")
    import sys

    import bluetooth as bt

    _clean()
    secrets.set("bthome.bindkey", KEY_HEX)
    names = ("motekit.up_bthome", "motekit.bthome", "motekit.aesccm", "motekit.secrets")
    for name in names:
        sys.modules.pop(name, None)
    st = {}
    gc.collect()
    before = gc.mem_alloc()
    from motekit import up_bthome

    up = up_bthome.Uplink(BOARD, st, _cfg({"bthome_encrypt": True, "ble_adv_count": 2}))
    gc.collect()
    held = gc.mem_alloc() - before
    up.send(REPORT)
    assert bt.BLE().active() is False  # switched off after the burst
    assert st["bt_ctr"] == 1
    # The send dropped the modules it loaded: they go with the uplink when the cycle ends.
    assert not [n for n in names if n in sys.modules]
    del up, up_bthome
    gc.collect()
    left = gc.mem_alloc() - before
    print("heap: %d bytes while the uplink is open, %d after the cycle" % (held, left))
    assert held < 12000 and left < 1000, (held, left)
