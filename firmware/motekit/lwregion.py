# LoRaWAN regional parameters for EU868 and US915, the LoRa time on air, and the duty cycle.
# Sources (docs/lorawan.md, "Regions"): LoRaWAN Regional Parameters RP002-1.0.3 sections 2.4
# (EU863-870) and 2.5 (US902-928); LoRaWAN 1.0.4 (TS001-1.0.4) chapter 5 for LinkADRReq,
# DutyCycleReq, RXParamSetupReq and NewChannelReq; ERC Recommendation 70-03 Annex 1 and ETSI
# EN 300 220-2 for the EU sub-bands; Semtech SX1276 datasheet 4.1.1.7 for the time on air.
# The host keeps the same tables in host_tools/lorawan/region.py (tests hold the two together).
#
#   reg = region("EU868")                      # or region("US915", sub_band=2)
#   sf, bw_hz = reg.dr(5)
#   toa = time_on_air_ms(len(phy), sf=sf, bw_hz=bw_hz)
#   dc = DutyCycle(st.setdefault("dc", {}))    # st: the retained-state dict
#   i, freq = reg.pick(5, random.getrandbits(16), dc, now_ms, toa)
#   wait = dc.wait_ms(freq, now_ms, toa)       # 0: send now; else defer that many ms
#   radio.send(phy, ...); dc.record(freq, toa, now_ms_after_tx_done)
#   rec = dc.ahead(freq, toa, end_ms)  # before it: what flash keeps (motekit.lorawan, keep_dc)
#   dc.restore(rec, now_ms)            # after a power loss: as if that end were now
#
# now_ms is any millisecond clock that keeps counting across deep sleep (not ticks_ms).
from micropython import const

# --- time on air (SX1276 datasheet 4.1.1.7; AN1200.13) ----------------------------------------
_LDRO_SYMBOL_US = const(16000)  # LoRaWAN sets low data rate optimisation above 16 ms symbols


def time_on_air_ms(
    payload_len, *, sf, bw_hz, cr=1, preamble=8, explicit_header=True, crc=True, ldro=None
):
    # Same signature and result as host_tools/lorawan/airtime.py. cr 1..4 = 4/5..4/8; ldro None:
    # as LoRaWAN sets it. Symbol time in whole microseconds when it is one (every LoRaWAN
    # bandwidth), so the sum is exact even with the single-precision floats of a real board.
    if not 7 <= sf <= 12:
        raise ValueError("SF%d: only SF7..SF12 (LoRaWAN's) are supported" % sf)
    if not 1 <= cr <= 4:
        raise ValueError("coding rate index %d: must be 1..4 (4/5..4/8)" % cr)
    if not 0 <= payload_len <= 255:
        raise ValueError("payload of %d bytes: must be 0..255" % payload_len)
    n = (1 << sf) * 1000000
    sym_us = n // bw_hz if n % bw_hz == 0 else n / bw_hz
    de = (sym_us > _LDRO_SYMBOL_US) if ldro is None else ldro
    num = 8 * payload_len - 4 * sf + 28 + (16 if crc else 0) - (0 if explicit_header else 20)
    den = 4 * (sf - (2 if de else 0))
    q = -(-num // den) if num > 0 else 0  # ceil(num / den), never negative
    symbols = 8 + q * (cr + 4)
    return ((4 * preamble + 17) * sym_us / 4 + symbols * sym_us) / 1000


def _ceil_ms(toa_ms):
    t = int(toa_ms)
    return t + 1 if t < toa_ms else t


# --- EU868 sub-bands and their duty cycles ------------------------------------------------------
# ERC/REC 70-03 Annex 1 and ETSI EN 300 220-2: 863-865 MHz 0.1 %, 865-868 1 %, 868.0-868.6 1 %,
# 868.7-869.2 0.1 %, 869.4-869.65 10 %, 869.7-870 1 %. Names after LoRaWAN's g, g1..g4; "g0"/"g"
# split the old "g" (863-868 MHz, 1 %) as the current recommendation does (863-865 is 0.1 %).
# Edges in kHz, then 1/duty cycle.
_BANDS = ("g0", "g", "g1", "g2", "g3", "g4")
_EDGES_KHZ = (863000, 865000, 865000, 868000, 868000, 868600) + (
    868700,
    869200,
    869400,
    869650,
    869700,
    870000,
)
_DEN = (1000, 100, 100, 1000, 10, 100)
_HOUR_MS = const(3600000)  # ETSI's duty cycle is a share of any one-hour period
_SLOT_MS = const(600000)  # the hourly budget is kept in 10-minute slots...
_SLOTS = const(7)  # ...of which a one-hour window can touch seven
_AGG_Q_MS = const(4096)  # DutyCycle.ahead(): the aggregated time-off is kept in these steps


def band(freq_hz):
    # Index into _BANDS of the sub-band holding freq_hz, or -1 outside them all.
    k = freq_hz // 1000
    for b in range(6):
        if _EDGES_KHZ[2 * b] <= k < _EDGES_KHZ[2 * b + 1]:
            return b
    return -1


def band_name(freq_hz):
    b = band(freq_hz)
    return _BANDS[b] if b >= 0 else None


def _fits_band(freq_hz, bw_hz):
    # The whole channel inside one sub-band (a channel across an edge would be charged to one
    # band while it also emits in the next).
    b = band(freq_hz - bw_hz // 2)
    return b >= 0 and b == band(freq_hz + bw_hz // 2 - 1)


class DutyCycle:
    # Per-band time-off after each transmission, ToA x (1/dc - 1) (the LoRaWAN EU868 rule), and a
    # budget over any hour (ETSI's definition of duty cycle), plus the network's aggregated limit
    # (DutyCycleReq, 1/2^MaxDCycle). The state is a plain dict meant for retained memory:
    # {band: [next_ms, slot, s0..s6], "agg": next_ms, "max": MaxDCycle}, only the bands used;
    # s0..s6 are whole ms of time on air ended in each 10-minute slot (a ring, slot = newest).
    def __init__(self, state):
        self.state = state

    def band(self, freq_hz):
        return band_name(freq_hz)

    def max_dc(self, max_dcycle):
        # DutyCycleReq's MaxDCycle: aggregated duty cycle 1/2^max_dcycle, 0 = no limit. Values
        # above 15 are RFU and ignored (returns False).
        if not 0 <= max_dcycle <= 15:
            return False
        if max_dcycle:
            self.state["max"] = max_dcycle
        else:
            self.state.pop("max", None)
            self.state.pop("agg", None)
        return True

    def wait_ms(self, freq_hz, now_ms, toa_ms=0):
        # 0 if a transmission of toa_ms may start at now_ms on freq_hz, else how long to defer
        # it. Without toa_ms the hourly budget is only checked for room left at all.
        t = _ceil_ms(toa_ms)
        st = self.state
        w = st.get("agg", 0) - now_ms
        b = band(freq_hz)
        e = st.get(_BANDS[b]) if b >= 0 else None
        if e:
            w = max(w, e[0] - now_ms, self._budget_wait(e, _HOUR_MS // _DEN[b], now_ms, t))
        return w if w > 0 else 0

    def _budget_wait(self, e, budget, now_ms, t):
        # A window ending with this transmission touches slots k0..newest; the slot it starts in
        # counts whole (conservative). Find the first start time at which it fits the budget.
        if t > budget:
            raise ValueError("%d ms on air exceeds the band's hourly budget" % t)
        newest = e[1]
        k0 = max((now_ms + t - _HOUR_MS) // _SLOT_MS, newest - _SLOTS + 1)
        used = 0
        for k in range(k0, newest + 1):
            used += e[2 + k % _SLOTS]
        if used + t <= budget:
            return 0
        for k in range(k0, newest + 1):
            used -= e[2 + k % _SLOTS]
            if used + t <= budget:
                return (k + 1) * _SLOT_MS + _HOUR_MS - t - now_ms
        return 0  # not reached: an empty window always fits

    def record(self, freq_hz, toa_ms, now_ms):
        # A transmission of toa_ms on freq_hz that ENDED at now_ms (TxDone).
        t = _ceil_ms(toa_ms)
        st = self.state
        m = st.get("max", 0)
        if m:
            st["agg"] = max(st.get("agg", 0), now_ms + t * ((1 << m) - 1) + 1)
        b = band(freq_hz)
        if b < 0:
            return
        e = self._entry(b, now_ms // _SLOT_MS)
        # +1 ms: the air log's end times are whole ms too; never start in the last fraction.
        e[0] = max(e[0], now_ms + t * (_DEN[b] - 1) + 1)
        e[2 + e[1] % _SLOTS] += t  # a clock gone back charges the newest slot

    def _entry(self, b, k):
        # Band b's entry, its ring moved on to slot k (the slots it passes are cleared).
        st = self.state
        e = st.get(_BANDS[b])
        if not e:
            e = [0, k, 0, 0, 0, 0, 0, 0, 0]
            st[_BANDS[b]] = e
        if k > e[1]:
            for j in range(e[1] + 1, min(k, e[1] + _SLOTS) + 1):
                e[2 + j % _SLOTS] = 0
            e[1] = k
        return e

    def ahead(self, freq_hz, toa_ms, end_ms):
        # What a power loss must not lose, as it will be once a transmission of toa_ms on freq_hz
        # ends at end_ms: {band: [time-off left, ToA in the hour before], "agg": time-off left},
        # in ms from that end, rounded up (a band's time-off to 64 ms on air, its ToA to 1/16 of
        # its hourly budget) so that flash is rewritten only when the history grows past it.
        t = _ceil_ms(toa_ms)
        b0 = band(freq_hz)
        st = self.state
        out = {}
        k0 = (end_ms - _HOUR_MS) // _SLOT_MS
        for b in range(6):
            e = st.get(_BANDS[b])
            off = used = 0
            if e:
                off = e[0] - end_ms
                for k in range(max(k0, e[1] - _SLOTS + 1), e[1] + 1):
                    used += e[2 + k % _SLOTS]
            if b == b0:
                off = max(off, t * (_DEN[b] - 1) + 1)
                used += t
            if off > 0 or used > 0:
                q = (_DEN[b] - 1) << 6
                u = (_HOUR_MS // _DEN[b]) >> 4
                out[_BANDS[b]] = [-(-max(off, 0) // q) * q, -(-used // u) * u]
        m = st.get("max", 0)
        a = st.get("agg", 0) - end_ms
        if m:
            a = max(a, t * ((1 << m) - 1) + 1)
        if a > 0:
            out["agg"] = -(-a // _AGG_Q_MS) * _AGG_Q_MS
        return out

    def restore(self, rec, now_ms):
        # A record of ahead() after a power loss: as if its transmission had just ended at now_ms
        # (the node cannot know how long it was off, so it counts that time as zero), merged
        # with what the state already holds (the later time-off, the ToA added in now's slot).
        # Never an under-estimate of the air time the node used before the loss.
        k = now_ms // _SLOT_MS
        for b in range(6):
            v = rec.get(_BANDS[b])
            if v:
                e = self._entry(b, k)
                e[0] = max(e[0], now_ms + int(v[0]))
                e[2 + e[1] % _SLOTS] += int(v[1])
        a = rec.get("agg")
        if a:
            self.state["agg"] = max(self.state.get("agg", 0), now_ms + int(a))


# --- regions ------------------------------------------------------------------------------------
# Data rates: one byte per DR, SF | bandwidth code << 4 (0: 125, 1: 250, 2: 500 kHz), 0 = not a
# LoRa rate we use (FSK, LR-FHSS, RFU). Max FRMPayload N (FOpts empty) per DR, RP002-1.0.3.
_EU_DR = b"\x0c\x0b\x0a\x09\x08\x07\x17"  # DR0..6 SF12..SF7/125, SF7/250 (DR7 FSK: not ours)
_EU_N = b"\x33\x33\x33\x73\xde\xde\xde"  # 51 51 51 115 222 222 222
_US_DR = b"\x0a\x09\x08\x07\x28\x00\x00\x00\x2c\x2b\x2a\x29\x28\x27"  # DR0..3 /125, DR4 SF8/500,
_US_N = b"\x0b\x35\x7d\xf2\xf2\x00\x00\x00\x35\x81\xf2\xf2\xf2\xf2"  # DR8..13 SF12..SF7/500 down
_EU_RX2_HZ = const(869525000)
_US_UP125_HZ = const(902300000)  # channel 0; +200 kHz per channel up to 63
_US_UP500_HZ = const(903000000)  # channel 64; +1.6 MHz per channel up to 71
_US_DOWN_HZ = const(923300000)  # downlink channel 0; +600 kHz up to 7
_ACK_POWER = const(4)  # LinkADRAns status bits (TS001-1.0.4, LinkADRReq)
_ACK_DR = const(2)
_ACK_MASK = const(1)
_KEEP = const(15)  # LinkADRReq DR/TXPower 15: keep the current value (TS001-1.0.4)


class _Region:
    # What both regions share; the subclasses hold the tables and the channel plan.
    name = ""
    nch = 0  # channel slots: EU868 16, US915 72
    dwell_ms = 0  # max time on air of one uplink (0: no limit)
    uplink_dr_range = (0, 0)
    rx2_default = (0, 0)
    sub_band = None  # type: int | None
    mask = bytearray(0)  # bit i of byte i // 8: channel i enabled (each region sets its own)
    _drt = b""
    _n = b""
    _max_up_dr = 0
    _max_eirp = 0
    _max_power_index = 0

    def channel(self, i):  # -> (freq_hz, dr_min, dr_max), or None for an empty slot
        return None

    def _apply_mask(self, m, cm, cntl):
        return False

    def new_channel(self, index, freq_hz, dr_min, dr_max):
        return 0

    def dr(self, dr):
        b = self._drt[dr] if 0 <= dr < len(self._drt) else 0
        if not b:
            raise ValueError("%s has no LoRa data rate DR%d" % (self.name, dr))
        return b & 15, 125000 << (b >> 4)

    def max_payload(self, dr):
        self.dr(dr)
        return self._n[dr]

    def fits(self, dr, phy_len):
        # A PHYPayload of phy_len bytes may go at dr: within M (= N + 8) + MHDR + MIC, and
        # within the dwell time where there is one.
        sf, bw = self.dr(dr)
        if phy_len > self._n[dr] + 13:
            return False
        return not self.dwell_ms or time_on_air_ms(phy_len, sf=sf, bw_hz=bw) <= self.dwell_ms

    def _copy(self, m):
        for j in range(len(m)):
            self.mask[j] = m[j]

    def channel_of(self, freq_hz):
        # Index of the defined channel on freq_hz, or -1.
        for i in range(self.nch):
            c = self.channel(i)
            if c and c[0] == freq_hz:
                return i
        return -1

    def enabled(self, i):
        return 0 <= i < self.nch and bool(self.mask[i >> 3] & (1 << (i & 7)))

    def only(self, freq_hz):
        # The defined channel on freq_hz alone enabled (a single-channel gateway) -> its index.
        i = self.channel_of(freq_hz)
        if i < 0:
            raise ValueError("%s has no channel on %d Hz" % (self.name, freq_hz))
        m = bytearray(len(self.mask))
        self._set(m, i, True)
        self._copy(m)
        return i

    def _set(self, m, i, on):
        if on:
            m[i >> 3] |= 1 << (i & 7)
        else:
            m[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    @property
    def channels(self):
        return [self.channel(i) for i in range(self.nch)]

    def _supports(self, m, dr):
        for i in range(self.nch):
            if m[i >> 3] & (1 << (i & 7)):
                c = self.channel(i)
                if c and c[1] <= dr <= c[2]:
                    return True
        return False

    def clamp_dr(self, dr):
        # dr into uplink_dr_range, then down (or else up) to one an enabled channel supports.
        lo, hi = self.uplink_dr_range
        d = min(max(dr, lo), hi)
        for c in list(range(d, lo - 1, -1)) + list(range(d + 1, hi + 1)):
            if self._supports(self.mask, c):
                return c
        raise ValueError("%s: no enabled channel for any uplink data rate" % self.name)

    def _waits(self, dr, dc, now_ms, toa_ms):
        # (index, freq_hz, wait_ms) of each enabled channel supporting dr.
        for i in range(self.nch):
            c = self.channel(i) if self.enabled(i) else None
            if c and c[1] <= dr <= c[2]:
                yield i, c[0], (dc.wait_ms(c[0], now_ms, toa_ms) if dc else 0)

    def pick(self, dr, rnd, dc=None, now_ms=0, toa_ms=0):
        # A random enabled channel supporting dr -> (index, freq_hz). With a DutyCycle, channels
        # whose band is free now come first; if none is, the one free soonest. rnd: any random
        # non-negative int (e.g. random.getrandbits(16)).
        best = -1
        count = 0
        for _, _, w in self._waits(dr, dc, now_ms, toa_ms):
            if best < 0 or w < best:
                best, count = w, 0
            if w == best:
                count += 1
        if best < 0:
            raise ValueError("%s: no enabled channel for DR%d" % (self.name, dr))
        k = rnd % count
        for i, f, w in self._waits(dr, dc, now_ms, toa_ms):
            if w == best:
                if k == 0:
                    return i, f
                k -= 1
        raise RuntimeError("channel pick")  # not reached: the same channels twice

    def tx_power_dbm(self, index):
        # TXPower index -> max EIRP in dBm (RP002-1.0.3 2.4.3 / 2.5.3). The radio's conducted
        # power is this minus the antenna gain, and capped at what the chip can do.
        if not 0 <= index <= self._max_power_index:
            raise ValueError("%s has no TXPower %d" % (self.name, index))
        return self._max_eirp - 2 * index

    def link_adr(self, dr, tx_power, ch_mask, ch_mask_cntl):
        # LinkADRReq -> LinkADRAns status bits (4 power, 2 data rate, 1 channel mask). ch_mask and
        # ch_mask_cntl may be lists: a block of contiguous LinkADRReq (LoRaWAN 1.0.2+) whose
        # masks apply in order, dr and tx_power from the last. The mask changes only when all three
        # bits are set; the caller then applies dr, tx_power (15: keep) and NbTrans.
        if not isinstance(ch_mask, (list, tuple)):
            ch_mask, ch_mask_cntl = (ch_mask,), (ch_mask_cntl,)
        m = bytearray(self.mask)
        ok = _ACK_MASK
        for cm, cntl in zip(ch_mask, ch_mask_cntl):
            if not self._apply_mask(m, cm, cntl):
                ok = 0
        if ok and not any(m):
            ok = 0
        status = ok
        if dr == _KEEP or (
            0 <= dr <= self._max_up_dr
            and self._drt[dr]
            and self._supports(m if ok else self.mask, dr)
        ):
            status |= _ACK_DR
        if tx_power == _KEEP or 0 <= tx_power <= self._max_power_index:
            status |= _ACK_POWER
        if status == _ACK_POWER | _ACK_DR | _ACK_MASK:
            self._copy(m)
        return status

    def state(self):
        # The channel plan as a small JSON-able dict for the session (retained memory, flash).
        s = {"m": "".join("%02x" % b for b in self.mask)}
        extra = self._extra()
        if extra:
            s["c"] = extra
        return s

    def restore(self, s):
        # Back from state(); False (and unchanged) when it does not fit this region.
        old = self._save()
        try:
            h = s["m"]
            m = bytes(int(h[j : j + 2], 16) for j in range(0, len(h), 2))
            if len(m) == len(self.mask) and any(m):
                for i, f, lo, hi in s.get("c", ()):
                    if self.new_channel(i, f, lo, hi) != 3:
                        raise ValueError
                self._copy(m)
                return True
        except (KeyError, ValueError, TypeError, IndexError):
            pass
        self._undo(old)
        return False

    def _extra(self):
        return None

    def _save(self):
        return bytes(self.mask)

    def _undo(self, old):
        self._copy(old)


class _EU868(_Region):
    name = "EU868"
    nch = 16
    uplink_dr_range = (0, 5)  # DR6 (SF7/250) only on a channel the network adds
    rx2_default = (_EU_RX2_HZ, 0)
    _drt = _EU_DR
    _n = _EU_N
    _max_up_dr = 6
    _max_eirp = 16
    _max_power_index = 7

    def __init__(self):
        c = [None] * 16  # type: list
        for i in range(3):  # the default channels 868.1, 868.3, 868.5 MHz, DR0..5
            c[i] = (868100000 + 200000 * i, 0, 5)
        self._ch = c
        self.mask = bytearray(b"\x07\x00")
        self.sub_band = None

    def channel(self, i):
        return self._ch[i] if 0 <= i < 16 else None

    def join_channels(self):
        return self._ch[:3]

    def rx1(self, freq_hz, dr, rx1_dr_offset):
        # RP002-1.0.3 2.4.7: same frequency, DR - offset (not below DR0); offsets 0..5.
        if not 0 <= rx1_dr_offset <= 5 or not 0 <= dr <= self._max_up_dr:
            raise ValueError("EU868 RX1 for DR%d offset %d" % (dr, rx1_dr_offset))
        return freq_hz, max(dr - rx1_dr_offset, 0)

    def rx_param_setup(self, rx1_dr_offset, rx2_dr, freq_hz):
        # RXParamSetupReq -> status bits (4 RX1DROffset, 2 RX2 data rate, 1 channel).
        s = 4 if 0 <= rx1_dr_offset <= 5 else 0
        s |= 2 if 0 <= rx2_dr <= 6 else 0
        return s | (1 if band(freq_hz) >= 0 else 0)

    def _apply_mask(self, m, cm, cntl):
        if cntl == 6:  # every defined channel on, whatever the mask (RP002-1.0.3 2.4.5)
            for i in range(16):
                self._set(m, i, self._ch[i] is not None)
            return True
        if cntl != 0:
            return False
        for i in range(16):
            if cm >> i & 1 and self._ch[i] is None:
                return False
        m[0], m[1] = cm & 0xFF, cm >> 8 & 0xFF
        return True

    def new_channel(self, index, freq_hz, dr_min, dr_max):
        # NewChannelReq -> status bits (2 data rate range, 1 frequency). Channels 0..2 are the
        # defaults and stay; freq 0 removes a channel; a new one is enabled (TS001-1.0.4).
        if not 3 <= index < 16:
            return 0
        if freq_hz == 0:
            self._ch[index] = None
            self._set(self.mask, index, False)
            return 3
        s = 2 if 0 <= dr_min <= dr_max <= 7 else 0
        bw = 250000 if dr_max >= 6 else 125000
        s |= 1 if _fits_band(freq_hz, bw) else 0
        if s == 3:
            self._ch[index] = (freq_hz, dr_min, dr_max)
            self._set(self.mask, index, True)
        return s

    def apply_cflist(self, cf):
        # Join-accept CFList type 0: five frequencies (24-bit LE x 100 Hz) for channels 3..7,
        # DR0..5. Returns whether it was taken.
        if len(cf) != 16 or cf[15] != 0:
            return False
        for k in range(5):
            f = (cf[3 * k] | cf[3 * k + 1] << 8 | cf[3 * k + 2] << 16) * 100
            if f:
                self.new_channel(3 + k, f, 0, 5)
        return True

    def _extra(self):
        return [[i, c[0], c[1], c[2]] for i, c in enumerate(self._ch) if i >= 3 and c]

    def _save(self):
        return bytes(self.mask), list(self._ch)

    def _undo(self, old):
        self._copy(old[0])
        self._ch = old[1]


class _US915(_Region):
    name = "US915"
    nch = 72
    dwell_ms = 400  # FCC 15.247 dwell time; RP002-1.0.3 2.5.6's N keeps every uplink DR within
    uplink_dr_range = (0, 3)  # DR4 (SF8/500) only when the network asks for it
    rx2_default = (_US_DOWN_HZ, 8)
    _drt = _US_DR
    _n = _US_N
    _max_up_dr = 4
    _max_eirp = 30
    _max_power_index = 14

    def __init__(self, sub_band=None):
        # sub_band 1..8: channels 8(b-1)..8(b-1)+7 and 64+(b-1); None: all 72 (RP002 default).
        if sub_band is not None and not 1 <= sub_band <= 8:
            raise ValueError("US915 sub-band %s: must be 1..8" % sub_band)
        self.sub_band = sub_band
        self.mask = bytearray(9)
        self._default_mask(self.mask)

    def _default_mask(self, m):
        for i in range(72):
            b = self.sub_band
            self._set(m, i, b is None or i // 8 == b - 1 or i == 63 + b)

    def channel(self, i):
        if 0 <= i < 64:
            return (_US_UP125_HZ + 200000 * i, 0, 3)
        if 64 <= i < 72:
            return (_US_UP500_HZ + 1600000 * (i - 64), 4, 4)
        return None

    def join_channels(self):
        # RP002-1.0.3 2.5.2: join at DR0 on the 125 kHz channels and DR4 on the 500 kHz ones.
        m = bytearray(9)
        self._default_mask(m)
        out = []
        for i in range(72):
            if m[i >> 3] & (1 << (i & 7)):
                f = self.channel(i)[0]
                out.append((f, 4, 4) if i >= 64 else (f, 0, 0))
        return out

    def rx1(self, freq_hz, dr, rx1_dr_offset):
        # RP002-1.0.3 2.5.7: 923.3 MHz + (uplink channel mod 8) x 600 kHz; DR from the table
        # (10 + DR - offset, within DR8..13).
        if not 0 <= rx1_dr_offset <= 3 or not 0 <= dr <= 4:
            raise ValueError("US915 RX1 for DR%d offset %d" % (dr, rx1_dr_offset))
        ch = self.channel_of(freq_hz)
        if ch < 0:
            raise ValueError("%d Hz is no US915 uplink channel" % freq_hz)
        return _US_DOWN_HZ + (ch % 8) * 600000, min(max(10 + dr - rx1_dr_offset, 8), 13)

    def channel_of(self, freq_hz):
        # Uplink channel index of freq_hz, or -1. The two grids never meet.
        d = freq_hz - _US_UP125_HZ
        if d % 200000 == 0 and 0 <= d // 200000 < 64:
            return d // 200000
        d = freq_hz - _US_UP500_HZ
        if d % 1600000 == 0 and 0 <= d // 1600000 < 8:
            return 64 + d // 1600000
        return -1

    def rx_param_setup(self, rx1_dr_offset, rx2_dr, freq_hz):
        s = 4 if 0 <= rx1_dr_offset <= 3 else 0
        s |= 2 if 8 <= rx2_dr <= 13 else 0
        d = freq_hz - _US_DOWN_HZ
        return s | (1 if 0 <= d <= 7 * 600000 and d % 600000 == 0 else 0)

    def _apply_mask(self, m, cm, cntl):
        # RP002-1.0.3 2.5.5: 0..3 a block of 16 125 kHz channels; 4 channels 64..71; 5 one bit
        # per sub-band (8 x 125 kHz + its 500 kHz channel); 6/7 all 125 kHz on/off and 64..71.
        if cntl <= 3:
            m[2 * cntl], m[2 * cntl + 1] = cm & 0xFF, cm >> 8 & 0xFF
        elif cntl == 4:
            m[8] = cm & 0xFF
        elif cntl == 5:  # the 8 MSBs are RFU
            for b in range(8):
                m[b] = 0xFF if cm >> b & 1 else 0
            m[8] = cm & 0xFF
        elif cntl in (6, 7):
            for j in range(8):
                m[j] = 0xFF if cntl == 6 else 0
            m[8] = cm & 0xFF
        else:
            return False
        return True

    def new_channel(self, index, freq_hz, dr_min, dr_max):
        # US915 has a fixed channel plan (RP002-1.0.3 2.5.2): NewChannelReq is refused.
        return 0

    def apply_cflist(self, cf):
        # Join-accept CFList type 1 (LoRaWAN 1.0.3+): the channel mask of channels 0..71.
        if len(cf) != 16 or cf[15] != 1 or not any(cf[:9]):
            return False
        self._copy(cf[:9])
        return True


def region(name, sub_band=None):
    # A fresh region with its default channel plan. sub_band: US915 only, 1..8 (None: all).
    if name == "EU868":
        return _EU868()
    if name == "US915":
        return _US915(sub_band)
    raise ValueError("region %r: only EU868 and US915" % name)
