# LoRaWAN 1.0.4 OTAA join on the node (TS001-1.0.4 6.2): a Join-Request on a join channel, the
# Join-Accept in RX1 (JOIN_ACCEPT_DELAY1, 5 s) or RX2 (6 s), decrypted and MIC-checked, the
# session keys derived and the session saved (lwsession). DevNonce is a counter (6.2.5) reserved
# in flash (motekit.nvcounter) before a request goes out, so no value is ever sent twice,
# whatever reset or power loss comes. Retries: at most _TRIES requests per wake, then a back-off
# across wakes (7 "Retransmissions back-off"). Imported by lorawan.Mac.join only.
#
#   if lwjoin.join(mac): ...     # True: mac.s is the new session, saved in /lorawan.json
import binascii
import struct

from micropython import const

from motekit import log, lorawan, lwcrypto, lwsession
from motekit.nvcounter import NvCounter

NONCE_PATH = "/lwnonce.json"
NONCE_STEP = 8  # DevNonce values reserved per flash write (a reset skips at most this)
_TRIES = const(2)  # join requests per wake
_JOIN_REQUEST = const(0x00)  # MHDR (4.2.1)
_JOIN_ACCEPT = const(0x20)
_HOUR_MS = const(3_600_000)


def _eui(cfg, key):
    h = cfg[key]
    if len(h) != 16:
        raise ValueError("OTAA needs %s (16 hex digits)" % key)
    b = binascii.unhexlify(h)
    return bytes(b[7 - i] for i in range(8))  # little-endian on air, as every multi-byte field


def join(mac):
    s = mac.s
    cfg = mac.cfg
    key = mac.keys.get("appkey") or mac.keys.get("nwkkey")
    if not key:
        raise ValueError("OTAA needs the secret lorawan.appkey (mote provision)")
    head = bytes((_JOIN_REQUEST,)) + _eui(cfg, "lorawan_join_eui") + _eui(cfg, "lorawan_dev_eui")
    now = mac.now_ms()
    jt = s.get("jt", 0)
    if now < jt:
        log.info("lorawan: join back-off: next request in %d s" % ((jt - now) // 1000))
        return False
    nonce = NvCounter(NONCE_PATH, s, "dn", NONCE_STEP)
    chans = mac.reg.join_channels()
    if cfg["lorawan_single_channel"]:
        chans = chans[:1]  # and only lorawan_dr: a single-channel gateway hears nothing else
    # Data rates from the configured one down to the slowest the join channels offer, one per
    # request, round and round (EU868 DR5..DR0; US915 DR4 at 500 kHz and DR0 at 125 kHz).
    drs = []
    for d in range(min(cfg["lorawan_dr"], max(c[2] for c in chans)), -1, -1):
        if any(c[1] <= d <= c[2] for c in chans):
            drs.append(d)
            if cfg["lorawan_single_channel"]:
                break
    if not drs:
        drs.append(min(c[1] for c in chans))
    for _ in range(_TRIES):
        jc = s.get("jc", 0)
        dr = drs[jc % len(drs)]
        f = _channel(mac, dr, mac.toa(dr, 23), chans)
        if f is None:
            log.info("lorawan: join deferred by the duty cycle")
            return False
        if nonce.value() > 0xFFFF:
            raise RuntimeError("every DevNonce of this JoinEUI is used: change the JoinEUI")
        dn = nonce.next()  # reserved in flash before the request goes out
        req = head + struct.pack("<H", dn)
        req += lwcrypto.join_request_mic(key, req)
        s["jc"] = jc + 1
        t_end = mac.transmit(f, dr, req)
        mac.count("jreq")
        _backoff(mac, mac.toa(dr, len(req)))
        ok = mac.windows(t_end, f, dr, lambda n, snr, dn=dn: _accept(mac, key, dn, n), True)
        if ok:
            mac.count("joins")
            log.info("lorawan: joined, DevAddr %08x (DevNonce %d)" % (mac.s["a"], dn))
            return True
        if mac.s.get("jt", 0) > mac.now_ms():
            break
    log.info("lorawan: no join accept (request %d)" % s.get("jc", 0))
    return False


def _channel(mac, dr, toa, chans):
    # A join channel for dr whose band the duty cycle allows now or within lorawan's short wait,
    # a random one of those free soonest (reservoir sampling); None: the request is deferred.
    dc = mac.dc()
    for _ in range(2):
        now = mac.now_ms()
        f = None
        wait = n = 0
        for c in chans:
            if c[1] <= dr <= c[2]:
                w = dc.wait_ms(c[0], now, toa)
                if f is None or w < wait:
                    f, wait, n = c[0], w, 1
                elif w == wait:
                    n += 1
                    if mac.rnd(16) % n == 0:
                        f = c[0]
        if f is None:
            raise ValueError("no join channel for DR%d" % dr)
        if wait == 0:
            return f
        if wait > lorawan.WAIT_MAX_MS:
            return None
        mac.sleep_ms(wait)
    return None


def _backoff(mac, toa):
    # Aggregated join duty cycle (TS001-1.0.4 7; RP002): 1 % in the first hour of attempts,
    # 0.1 % up to hour 11, 0.01 % after: as a time-off of ToA x (1/dc - 1) after each request.
    s = mac.s
    now = mac.now_ms()
    j0 = s.setdefault("j0", now)
    age = now - j0
    den = 100 if age < _HOUR_MS else 1000 if age < 11 * _HOUR_MS else 10000
    s["jt"] = now + int(toa * (den - 1)) + 1


def _accept(mac, key, dn, n):
    # A Join-Accept in mac's RX buffer -> True when it is ours and the session is saved.
    b = mac._rxbuf
    if (n != 17 and n != 33) or b[0] != _JOIN_ACCEPT:
        return False
    plain = lwcrypto.join_accept_decrypt(key, bytes(b[:n]))
    if not lwcrypto.join_accept_ok(key, plain):
        return False
    jn = plain[1] | plain[2] << 8 | plain[3] << 16
    old = mac.s
    if jn == old.get("jn"):
        # The JoinNonce of the session we have: a replayed accept (6.2.6) would give keys the
        # network does not have.
        log.warning("lorawan: join accept with the last JoinNonce again: ignored")
        return False
    addr, dl, rxd = struct.unpack_from("<IBB", plain, 7)
    nk, ak = lwcrypto.session_keys(key, plain[1:4], plain[4:7], dn)
    s = {"id": old["id"], "a": addr, "fu": 0, "fl": 0, "fd": -1, "jn": jn}
    for k in lwsession.RADIO_STATE + ("dn", "dn_lim", "hi"):
        if k in old:
            s[k] = old[k]
    for k in ("jt", "j0", "jc"):
        s.pop(k, None)
    s["nk"] = binascii.hexlify(nk).decode()
    s["ak"] = binascii.hexlify(ak).decode()
    reg = lwsession.fresh_region(mac.cfg)
    mac.reg = reg
    mac.s = s
    lwsession.defaults(mac)
    s["o1"] = (dl >> 4) & 7  # DLSettings (6.2.6): RX1DROffset, RX2 data rate
    s["r2"] = dl & 15
    s["d1"] = (rxd & 15) or 1  # RxDelay: 0 means 1 s
    if n == 33 and reg.apply_cflist(plain[13:29]):
        s["ch"] = reg.state()
        if s.get("one"):
            lwsession.single(mac)  # the CFList's channels are known, and left off
    mac._skeys = None
    try:
        mac.save(lorawan.FCNT_STEP)  # the first FCntUp reservation goes with the session
    except OSError:
        mac.s = old
        raise
    s["fl"] = lorawan.FCNT_STEP
    mac.st["lw"] = s
    mac.dc().max_dc(0)
    return True
