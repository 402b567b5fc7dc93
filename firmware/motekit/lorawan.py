# LoRaWAN 1.0.4 Class A on the node: the session, uplinks with their RX1/RX2 windows, frame
# counters that never repeat, duty-cycle deferral. This is the path every report takes; the
# session's life (restore from flash, save, deferral queue) is in lwsession.py, the OTAA join in
# lwjoin.py, downlinks with their MAC commands in lwmac.py, each imported only when needed (heap:
# docs/node-files.md). docs/lorawan.md has the behaviour and the spec sections (LoRaWAN L2
# 1.0.4, RP002-1.0.x through motekit.lwregion).
#
#   from motekit import lorawan, lwregion, payload
#   mac = lorawan.Mac(radio, lwregion.region("EU868"), st, cfg, keys, lorawan.warm())
#   if mac.joined or mac.join():
#       res = mac.uplink(payload.encode(report, mac.max_len()), cfg["lorawan_fport"], False)
#
# keys: {"appkey", "nwkkey", "nwkskey", "appskey"} -> bytes or None (motekit.secrets).
# st["lw"] is the session in retained state, with short keys (RTC memory is 2 KB for everything):
#   id  session identity (hash of activation, EUIs, DevAddr, root key)   rg  region (+sub-band)
#   a   DevAddr        nk ak  session keys, hex (OTAA; ABP keys stay in /secrets.json)
#   fu  next FCntUp    fl     its reservation in flash    hi  highest reservation of any session
#   fd  last FCntDown (-1: none yet)        jn  last JoinNonce accepted
#   dr pw nb  data rate, TXPower index, NbTrans     o1 r2 f2 d1  RX1DROffset, RX2 DR/Hz, RX1 s
#   mdc MaxDCycle (DutyCycleReq)    dc  duty-cycle state (lwregion.DutyCycle: bands, aggregated)
#   ch  the channel plan when not the default (lwregion state(): mask, added channels)
#   dl  [[channel index, RX1 Hz], ...] (DlChannelReq)
#   ac  ADR_ACK_CNT     ma sa  MAC answers (next uplink / until a downlink), hex   rq  requests
#   ack ACK the last confirmed downlink     snr  last downlink SNR     dto  GPS - local time, ms
#   q   deferred frames [[fport, base64], ...]    dn dn_lim jt j0 jc  join (lwjoin.py)
# st["lws"] holds the counters `mote stats` shows (docs/lorawan.md, "Stats"). /lorawan.json holds
# what a power loss must not lose, written atomically (motekit.store): at a join, at each
# downlink (FCntDown), when a MAC command changes a setting, and once per FCNT_STEP uplinks (the
# FCntUp reservation). /lwdc.json holds the duty-cycle history, rounded up, rewritten before a
# transmission only when the history grows past it (Mac.keep_dc).
import binascii
import struct
import time

from micropython import const

from motekit import log, lwcrypto, lwregion

PATH = "/lorawan.json"
DC_PATH = "/lwdc.json"  # the duty-cycle history a power loss must not lose (Mac.keep_dc)
FCNT_STEP = 64  # FCntUp values reserved per flash write (NvCounter's rule; tests lower it)
_FOPTS_MAX = const(15)  # 1.0.4 4.3.1.6
_ADR_ACK_LIMIT = const(64)  # 1.0.4 4.3.1.1, RP002 default settings
_ADR_ACK_DELAY = const(32)
_RX2_AFTER_RX1_MS = const(1000)  # RECEIVE_DELAY2 = RECEIVE_DELAY1 + 1 s
_MARGIN_MS = const(20)  # an RX window opens this early and waits this much longer
_RX_SYMBOLS = const(8)  # preamble symbols the radio must catch
WAIT_MAX_MS = 3000  # a duty-cycle wait up to this is waited out; a longer one defers
_RETRY_WAIT_MAX_MS = const(10000)  # ... and for a retransmission of an unacknowledged frame
_TX_GUARD_MS = const(1000)  # a TX gets its time on air plus this before the driver gives up
_SYNC_WORD = const(0x34)  # public LoRaWAN networks
_ANTENNA_DBI = const(2)  # EIRP -> conducted power: a 2 dBi antenna, as RP002 assumes
_DBM_MIN = const(2)
_DBM_MAX = const(20)  # SX127x PA_BOOST's top; the SX1262 goes to 22 but RP002 caps EIRP lower
_UNCONF_UP = const(0x40)
_CONF_UP = const(0x80)
_ACK = const(0x20)  # FCtrl bits (4.3.1)
_ADR = const(0x80)
_ADR_ACK_REQ = const(0x40)

_booted = False


def warm():
    # True when st is what was saved just before a deep sleep: this boot's first call after a
    # deep-sleep wake, or any later call in the same boot. After another reset (watchdog, reset
    # button, crash) RTC memory may hold an older copy, so the session is rebuilt from flash,
    # whose counters are reservations ahead of anything used.
    global _booted
    if _booted:
        return True
    _booted = True
    import machine

    # rp2 has no deep sleep (and no constant for it): its state is in RAM, fresh or lost.
    return machine.reset_cause() == getattr(machine, "DEEPSLEEP_RESET", -1)


def _now_ms():
    # Wall clock, ms: keeps running through deep sleep (the duty-cycle state needs it).
    return time.time_ns() // 1_000_000


def _rand(bits):
    import random

    return random.getrandbits(bits)


def region_tag(cfg):
    name = cfg["lorawan_region"]
    return "%s/%d" % (name, cfg["lorawan_sub_band"]) if name == "US915" else name


def identity(cfg, keys):
    # A short hash of what makes a session: a changed key, EUI, DevAddr or (OTAA) region starts
    # a new one. Hashed, so retained state and /lorawan.json never hold a root key.
    import hashlib

    if cfg["lorawan_activation"] == "abp":
        text = "abp|" + cfg["lorawan_dev_addr"]
        names = ("nwkskey", "appskey")
    else:
        text = "otaa|%s|%s|%s" % (cfg["lorawan_dev_eui"], cfg["lorawan_join_eui"], region_tag(cfg))
        names = ("appkey", "nwkkey")
    h = hashlib.sha256(text.lower().encode())
    for name in names:
        h.update(keys.get(name) or b"-")
    return binascii.hexlify(h.digest()[:4]).decode()


class Mac:
    def __init__(self, radio, reg, st, cfg, keys, warm=True, clock=None, rnd=None):
        self.radio = radio
        self.reg = reg
        self.st = st
        self.cfg = cfg
        self.keys = keys
        # clock: ticks_ms(), sleep_ms(ms), now_ms() (tests inject one); else the time module
        self.clock = clock or time
        self.now_ms = clock.now_ms if clock else _now_ms
        self.rnd = rnd or _rand
        self.feed = None  # the watchdog's feed(): called at least every second while waiting
        self.battery_v = None  # for DevStatusAns
        self.down = None  # the last application downlink: (fport, bytes)
        self.abp = cfg["lorawan_activation"] == "abp"
        self._rxbuf = bytearray(255)
        self._skeys = None
        self._acked = False
        self._pending = False
        self._tx_wall = 0
        # Radio time this Mac spent, for the energy estimate (board.json power.radio_ma):
        # time on air at lora_tx, listening in RX windows at lora_rx.
        self.radio_ms = {"lora_tx": 0, "lora_rx": 0}
        self.stats = st.setdefault("lws", {})
        ident = identity(cfg, keys)
        s = st.get("lw")
        if not isinstance(s, dict):
            s = {}
        self.s = s
        if not warm or s.get("id") != ident or s.get("rg") != region_tag(cfg):
            from motekit import lwsession

            lwsession.restore(self, ident, s, warm)
        elif "ch" in s and not reg.restore(s["ch"]):
            from motekit import lwsession

            lwsession.defaults(self)
        if bool(self.s.get("one")) != cfg["lorawan_single_channel"]:
            # lorawan_single_channel changed under this session: the region's defaults again
            from motekit import lwsession

            self.reg = lwsession.fresh_region(cfg)
            lwsession.defaults(self)
        st["lw"] = self.s
        self.dc().max_dc(self.s.get("mdc", 0))

    # --- session state ----------------------------------------------------------------------------
    def save(self, fl=None):
        # /lorawan.json (lwsession.save); raises when it cannot be written.
        from motekit import lwsession

        lwsession.save(self, fl)

    def defer(self, items, why="duty cycle"):
        from motekit import lwsession

        lwsession.defer(self, items, why)

    def count(self, name, n=1):
        self.stats[name] = self.stats.get(name, 0) + n

    @property
    def joined(self):
        return "a" in self.s and (self.abp or "nk" in self.s)

    def join(self):
        # OTAA: True once a session exists (lwjoin.py); ABP sessions exist from the start.
        if self.joined:
            return True
        from motekit import lwjoin

        return lwjoin.join(self)

    def session_keys(self):
        if self._skeys is None:
            if self.abp:
                nk, ak = self.keys.get("nwkskey"), self.keys.get("appskey")
                if not nk or not ak:
                    raise ValueError("ABP needs the secrets lorawan.nwkskey and lorawan.appskey")
            else:
                nk = binascii.unhexlify(self.s["nk"])
                ak = binascii.unhexlify(self.s["ak"])
            self._skeys = (nk, ak)
        return self._skeys

    # --- what the next uplink carries -------------------------------------------------------------
    def link_check(self):
        # Ask for a LinkCheckAns (stats lc_margin, lc_gw) in the next uplink.
        self.s["rq"] = self.s.get("rq", 0) | 1

    def device_time(self):
        # Ask for a DeviceTimeAns in the next uplink: gps_ms() then works.
        self.s["rq"] = self.s.get("rq", 0) | 2

    def gps_ms(self):
        # GPS time (ms since 1980-01-06, DeviceTimeAns) now, or None before an answer.
        dto = self.s.get("dto")
        return None if dto is None else self.now_ms() + dto

    def fopts(self):
        s = self.s
        o = binascii.unhexlify(s.get("ma", "")) + binascii.unhexlify(s.get("sa", ""))
        rq = s.get("rq", 0)
        if rq & 1:
            o += b"\x02"  # LinkCheckReq
        if rq & 2:
            o += b"\x0d"  # DeviceTimeReq
        return o

    def max_len(self):
        # The application payload that fits one uplink at the current data rate beside the MAC
        # answers waiting; when they are long they go in a frame of their own (FPort 0).
        mx = self.reg.max_payload(self.s["dr"])
        n = len(self.fopts())
        if n <= _FOPTS_MAX and 2 * n <= mx:
            return mx - n
        return mx

    # --- uplinks ----------------------------------------------------------------------------------
    def uplink(self, frames, fport, confirmed):
        # Sends the deferred frames first, then these (bytes each) on fport. A frame the duty
        # cycle does not allow now is deferred with everything after it (retained state, bounded
        # queue, stats "deferred"). -> {"sent": n, "deferred": n}
        s = self.s
        todo = s.pop("q", [])
        for f in frames:
            todo.append([fport, f])
        sent = 0
        for i in range(len(todo)):
            p, f = todo[i]
            if isinstance(f, str):
                f = binascii.a2b_base64(f)
            try:
                r = self.send_frame(p, f, confirmed)
            except OSError:
                self.defer(todo[i:], "radio error")  # kept for the next wake, then raised
                raise
            if r is None:
                self.defer(todo[i:])
                return {"sent": sent, "deferred": len(todo) - i}
            sent += 1
        if self._pending:
            # FPending: the network has more; an empty uplink opens the windows for it, once.
            self._pending = False
            self.send_frame(None, b"", False, _RETRY_WAIT_MAX_MS)
        return {"sent": sent, "deferred": 0}

    def send_frame(self, fport, data, confirmed, wait_max=WAIT_MAX_MS):
        # One application frame (fport None: no FPort, an empty frame). -> True when it went (or
        # was dropped for its size), None when the duty cycle defers it.
        s = self.s
        mx = self.reg.max_payload(s["dr"])
        if len(data) > mx:
            self.count("dropped")
            log.warning("lorawan: %d bytes do not fit DR%d: dropped" % (len(data), s["dr"]))
            return True
        opts = self.fopts()
        if opts and (len(opts) > _FOPTS_MAX or len(opts) + len(data) > mx):
            from motekit import lwmac

            if self._tx(0, lwmac.cut(opts, mx), False, b"", wait_max) is None:
                return None
            opts = self.fopts()  # the answers that stay until a downlink
            if len(opts) + len(data) > mx:
                opts = b""
        return self._tx(fport, data, confirmed, opts, wait_max)

    def _tx(self, fport, data, confirmed, opts, wait_max):
        s = self.s
        dr = s["dr"]
        tries = self.cfg["lorawan_retries"] if confirmed else s.get("nb", 1)
        toa = self.toa(dr, 12 + len(opts) + (0 if fport is None else 1 + len(data)))
        phy = None
        for k in range(tries):
            freq = self.free_channel(dr, toa, _RETRY_WAIT_MAX_MS if k else wait_max)
            if freq is None:
                if phy is None:
                    return None
                log.warning("lorawan: duty cycle: retransmissions stopped")
                break
            if phy is None:
                phy = self._build(fport, data, confirmed, opts)
            else:
                self.count("retries")
            self._acked = False
            t_end = self.transmit(freq, dr, phy)
            if k == 0 and self.cfg["lorawan_adr"]:
                self._adr_count()
            got = self.windows(t_end, freq, dr, self._down, False)
            if confirmed and self._acked:
                self.count("acked")
                return True
            if got and not confirmed:
                break  # 1.0.4 4.3.1.1: NbTrans repetitions stop at a downlink
            if confirmed and k + 1 < tries:
                self.sleep_ms(1000 + self.rnd(11) % 2001)  # RETRANSMIT_TIMEOUT 2 +- 1 s
        if confirmed:
            self.count("nack")
            log.warning("lorawan: FCnt %d not acknowledged" % (s["fu"] - 1))
        return True

    def next_fcnt(self):
        # The FCntUp for a new frame, reserved in flash first (once per FCNT_STEP): after a reset
        # or power loss the counter resumes at the reservation, skipping values, never reusing.
        s = self.s
        n = s["fu"]
        if n > 0xFFFFFFFF:
            raise RuntimeError("FCntUp used up: rejoin (OTAA) or new ABP keys")
        if n >= s["fl"]:
            fl = n + FCNT_STEP
            self.save(fl)
            s["fl"] = fl
        s["fu"] = n + 1
        return n

    def _build(self, fport, data, confirmed, opts):
        # MHDR | DevAddr | FCtrl | FCnt(16) | FOpts | [FPort | FRMPayload] | MIC (4.3, 4.4)
        s = self.s
        fcnt = self.next_fcnt()
        addr = s["a"]
        nk, ak = self.session_keys()
        fctrl = len(opts)
        if self.cfg["lorawan_adr"]:
            fctrl |= _ADR
            if s.get("ac", 0) >= _ADR_ACK_LIMIT and not self._adr_floor():
                fctrl |= _ADR_ACK_REQ
        if s.pop("ack", 0):
            fctrl |= _ACK
        mhdr = _CONF_UP if confirmed else _UNCONF_UP
        msg = struct.pack("<BIBH", mhdr, addr, fctrl, fcnt & 0xFFFF) + opts
        if fport is not None:
            key = nk if fport == 0 else ak
            msg += bytes((fport,)) + lwcrypto.frm_crypt(key, addr, fcnt, True, data)
        s.pop("ma", None)  # the one-time answers and the requests are on their way
        s.pop("rq", None)
        self.count("up")
        self.stats["fcnt"] = fcnt
        self.stats["dr"] = s["dr"]
        return msg + lwcrypto.data_mic(nk, addr, fcnt, True, msg)

    def _adr_floor(self):
        # Lowest data rate at full power: ADRACKReq can ask for nothing more.
        return self.s["dr"] <= self.reg.uplink_dr_range[0] and self.s["pw"] == 0

    def _adr_count(self):
        # ADR_ACK_CNT counts new uplinks since the last downlink (1.0.4 4.3.1.1); past
        # ADR_ACK_LIMIT + ADR_ACK_DELAY, and every ADR_ACK_DELAY after, a back-off step.
        s = self.s
        c = s.get("ac", 0) + 1
        s["ac"] = c
        if c >= _ADR_ACK_LIMIT + _ADR_ACK_DELAY and (c - _ADR_ACK_LIMIT) % _ADR_ACK_DELAY == 0:
            from motekit import lwmac

            lwmac.adr_backoff(self)

    # --- radio ------------------------------------------------------------------------------------
    def dbm(self):
        p = self.reg.tx_power_dbm(self.s["pw"]) - _ANTENNA_DBI
        return max(_DBM_MIN, min(_DBM_MAX, p))

    def dc(self):
        return lwregion.DutyCycle(self.s.setdefault("dc", {}))

    def toa(self, dr, phy_len):
        sf, bw = self.reg.dr(dr)
        return lwregion.time_on_air_ms(phy_len, sf=sf, bw_hz=bw)

    def free_channel(self, dr, toa, wait_max=WAIT_MAX_MS):
        # A random enabled channel for dr whose band the duty cycle allows now (after a wait of
        # up to wait_max ms), or None: the frame is deferred.
        dc = self.dc()
        for _ in range(2):
            now = self.now_ms()
            f = self.reg.pick(dr, self.rnd(16), dc, now, toa)[1]
            wait = dc.wait_ms(f, now, toa)
            if wait == 0:
                return f
            if wait > wait_max:
                return None
            self.sleep_ms(wait)
        return None

    def transmit(self, freq, dr, phy):
        # Sends phy; -> ticks at the end of the transmission, when the RX delays start.
        sf, bw = self.reg.dr(dr)
        r = self.radio
        if hasattr(r, "feed"):
            r.feed = self.feed
        toa = self.toa(dr, len(phy))
        self.keep_dc(freq, toa)  # flash first, then the radio
        r.configure(freq, sf, bw, 1, self.dbm(), _SYNC_WORD, 8, False, True)
        r.send(phy, int(toa) + _TX_GUARD_MS)
        t_end = self.clock.ticks_ms()
        self.radio_ms["lora_tx"] += int(toa + 0.5)
        now = self.now_ms()
        self._tx_wall = now
        self.dc().record(freq, toa, now)
        r.sleep()
        return t_end

    def keep_dc(self, freq, toa):
        # The duty-cycle history as it will be after this transmission (lwregion.DutyCycle.ahead,
        # rounded up) against the record in flash: rewritten only when the history grows past
        # it, so that a power loss never makes the node under-estimate its past air time
        # (lwsession.restore_dc brings it back). Raises when it cannot be written: nothing goes.
        from motekit import store

        rec = self.dc().ahead(freq, toa, self.now_ms() + int(toa) + 1)
        kept, _ = store.read_json(DC_PATH)
        if not isinstance(kept, dict):
            kept = {}
        for k in rec:
            v = rec[k]
            w = kept.get(k)
            try:
                ok = w is not None and (v <= w if k == "agg" else v[0] <= w[0] and v[1] <= w[1])
            except (TypeError, IndexError):
                ok = False  # not what keep_dc writes
            if not ok:
                store.write_json(DC_PATH, rec)
                return

    def windows(self, t_end, freq, dr, handle, join):
        # RX1 then RX2 (1.0.4 3.3); handle(n, snr) -> True for a frame meant for us, which
        # closes the exchange. -> True when one came.
        s = self.s
        reg = self.reg
        if join:
            d1 = 5000  # JOIN_ACCEPT_DELAY1 (RP002 default settings); DELAY2 one second later
            f1, dr1 = reg.rx1(freq, dr, 0)
            f2, dr2 = reg.rx2_default
        else:
            d1 = s["d1"] * 1000
            f1, dr1 = reg.rx1(freq, dr, s["o1"])
            if "dl" in s:  # DlChannelReq
                i = reg.channel_of(freq)
                for j, f in s["dl"]:
                    if j == i:
                        f1 = f
            f2, dr2 = s["f2"], s["r2"]
        got = False
        for w in (1, 2):
            if w == 2:
                d1 += _RX2_AFTER_RX1_MS
                f1, dr1 = f2, dr2
            r = self._rx(t_end, d1, f1, dr1)
            if r is not None and handle(r[0], r[2]):
                self.count("rx%d" % w)
                got = True
                break
        self.radio.sleep()
        return got

    def _rx(self, t_end, delay_ms, freq, dr):
        sf, bw = self.reg.dr(dr)
        c = self.clock
        start = time.ticks_add(t_end, delay_ms - _MARGIN_MS)
        if time.ticks_diff(c.ticks_ms(), start) > _MARGIN_MS:
            return None  # this window is gone (a long frame in RX1)
        self._wait(start)
        sym_ms = max(1, (1 << sf) * 1000 // bw)
        r = self.radio
        r.configure(freq, sf, bw, 1, self.dbm(), _SYNC_WORD, 8, True, False)  # downlinks: no CRC
        t0 = c.ticks_ms()
        try:
            return r.recv(self._rxbuf, 2 * _MARGIN_MS + _RX_SYMBOLS * sym_ms)
        finally:
            self.radio_ms["lora_rx"] += time.ticks_diff(c.ticks_ms(), t0)

    def _wait(self, target):
        c = self.clock
        while True:
            left = time.ticks_diff(target, c.ticks_ms())
            if left <= 0:
                return
            if self.feed is not None:
                self.feed()
            c.sleep_ms(min(left, 500))

    def sleep_ms(self, ms):
        self._wait(time.ticks_add(self.clock.ticks_ms(), ms))

    def _down(self, n, snr):
        # A frame heard in an RX window after a data uplink: lwmac.down checks and applies it.
        from motekit import lwmac

        return lwmac.down(self, n, snr)

    # --- downlinks --------------------------------------------------------------------------------
