# The BTHome v2 uplink (docs/bthome.md): a report's newest readings and battery % as BTHome
# advertisements, which Home Assistant decodes with no integration work. Encrypted (AES-CCM, the
# bind key "bthome.bindkey") when bthome_encrypt is on and a key is provisioned; the 4-byte
# counter in the nonce never repeats, through deep sleep, resets and power loss. Per report a
# non-connectable burst: each advertisement ble_adv_count times, ble_adv_interval_ms apart, then
# the radio is switched off before the node sleeps.
#
#   up = Uplink(board, st, cfg)     # OSError on a board without BLE (board.json "radios")
#   up.feed = wdt_feed              # called at least every 500 ms through the burst
#   up.send(report)                 # report.build()'s dict
#
# Uplink(board, st, cfg, ble=obj) takes any object with BLE's active/config/gap_advertise.
# A send ends by dropping this module and the ones it imported from sys.modules: their bytecode
# is freed with the uplink at the end of the cycle, for the rest of an ESP32's wake.
#
# motekit: requires=ble
import sys
import time

from micropython import const

from motekit import bthome, log

_CTR_PATH = "/bthome.json"  # the counter's reservation in flash (nvcounter.py)
_CTR_KEY = "bt_ctr"  # in the retained state: the counter, and "bt_ctr_lim" its reservation
_PID_KEY = "bt_pid"  # the packet id of the next plain advertisement, 0..255
# Counter values reserved per flash write: a power loss skips at most this many, so the packet
# id (the counter's low byte when encrypting) moves on by less than the 64 that Home Assistant
# takes for an old packet within 4 s of the last one.
_CTR_STEP = const(32)
_NOKEY_KEY = "bt_nokey"  # set once the missing bind key has been logged
_BOOT_KEY = "bt_boot"  # st["wakes"] when the retained counter was last checked
_MINE = ("motekit.up_bthome", "motekit.bthome", "motekit.aesccm")  # this uplink's own modules
_SECRETS = "motekit.secrets"
_CTR_MAX = const(0xFFFFFFFF)
_FEED_MS = const(500)


class Uplink:
    RADIO = "ble"  # the burst is charged at the BLE TX current throughout: an upper bound

    def __init__(self, board, st, cfg, ble=None):
        if "ble" not in board.get("radios", ()):
            raise OSError("this board has no BLE radio")
        self.feed = None
        self._keep_secrets = _SECRETS in sys.modules  # loaded by others: left alone
        self._st = st
        self._ble = ble
        self._count = cfg["ble_adv_count"]
        self._interval_ms = cfg["ble_adv_interval_ms"]
        self._ccm = None
        self._ctr = None
        if not cfg["bthome_encrypt"]:
            return
        from motekit import secrets

        key = secrets.get("bthome.bindkey")
        if key is None:
            if _NOKEY_KEY not in st:
                st[_NOKEY_KEY] = 1
                log.warning("bthome: no bthome.bindkey is set: advertising unencrypted")
            return
        st.pop(_NOKEY_KEY, None)
        from motekit.aesccm import CCM
        from motekit.nvcounter import NvCounter

        _trust_retained(st)
        self._ccm = CCM(key, 4)
        self._ctr = NvCounter(_CTR_PATH, st, _CTR_KEY, _CTR_STEP)

    def send(self, report):
        try:
            self._send(report)
        finally:
            self._drop()

    def _send(self, report):
        samples = report.get("samples") or ()
        values = samples[-1]["values"] if samples else {}
        volts = report.get("battery_v")
        objs = bthome.objects(values, None if volts is None else bthome.battery_percent(volts))
        if not objs:
            log.debug("bthome: no readings to advertise")
            return
        ble = self._ble
        if ble is None:
            import bluetooth

            ble = bluetooth.BLE()
        ble.active(True)
        try:
            # The address the advertisements carry is the nonce's MAC; ports give it when active.
            mac = ble.config("mac")[1] if self._ccm is not None else None
            advs = self.adverts(objs, mac)
            interval_us = self._interval_ms * 1000
            # Each advertisement restarts advertising: one event each, so a burst is exactly
            # count per advertisement, interleaved, whatever the controller's own timing.
            for _ in range(self._count):
                for adv in advs:
                    ble.gap_advertise(interval_us, adv, connectable=False)
                    self._wait(self._interval_ms)
        finally:
            try:
                ble.gap_advertise(None)
            except OSError:
                pass  # the radio is going off anyway
            ble.active(False)

    def _drop(self):
        import motekit

        for name in _MINE + (() if self._keep_secrets else (_SECRETS,)):
            if name in sys.modules:
                sys.modules.pop(name)
                attr = name[8:]  # after "motekit."
                if hasattr(motekit, attr):
                    delattr(motekit, attr)

    def adverts(self, objs, mac):
        # The AdvData of each advertisement for these objects (bthome.objects()), each with its
        # own packet id and, encrypted, its own counter. Encrypted, the packet id is the
        # counter's low byte, so it too carries on after a power loss; plain, it is kept in the
        # retained state and starts again from 0.
        st = self._st
        ccm = self._ccm
        counter = self._ctr
        info = bthome.INFO_V2 | bthome.INFO_TRIGGER
        room = bthome.ROOM_PLAIN
        if ccm is not None:
            info |= bthome.INFO_ENCRYPTED
            room = bthome.ROOM_ENCRYPTED
        out = []
        for group in bthome.split(objs, room):
            if ccm is None or counter is None:
                pid = st.get(_PID_KEY, 0) & 0xFF
                st[_PID_KEY] = (pid + 1) & 0xFF
                out.append(bthome.advert(info, bthome.payload(pid, group)))
                continue
            n = counter.next()
            if n > _CTR_MAX:
                raise RuntimeError("the encryption counter is used up; set a new bind key")
            ctr = n.to_bytes(4, "little")
            data = bthome.payload(n, group)
            sealed = ccm.encrypt(bthome.nonce(mac, info, ctr), data)
            data = sealed[:-4] + ctr + sealed[-4:]  # ciphertext | counter | MIC
            out.append(bthome.advert(info, data))
        return out

    def _wait(self, ms):
        while ms > 0:
            step = ms if ms < _FEED_MS else _FEED_MS
            time.sleep_ms(step)
            ms -= step
            if self.feed is not None:
                self.feed()


def _trust_retained(st):
    # Once per boot (the app counts boots in st["wakes"]). After a deep-sleep wake the retained
    # state was saved just before the sleep, so its counter is current. After any other reset
    # (watchdog, software, a crash) RTC memory may hold a state saved before the last
    # advertisements went out, and its counter would repeat theirs: the counter resumes from the
    # flash reservation, which is ahead of every value ever used. A power loss empties the
    # state, with the same result.
    boot = st.get("wakes")
    if _BOOT_KEY in st and st[_BOOT_KEY] == boot:
        return
    st[_BOOT_KEY] = boot
    import machine

    if machine.reset_cause() != getattr(machine, "DEEPSLEEP_RESET", -1):
        st.pop(_CTR_KEY, None)
        st.pop(_CTR_KEY + "_lim", None)
