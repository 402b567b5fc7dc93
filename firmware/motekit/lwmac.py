# LoRaWAN 1.0.4 downlinks on the node: the checks of a data downlink (DevAddr, MIC, FCntDown
# never going back), its decryption, then the MAC commands (TS001-1.0.4 chapter 5) in its FOpts
# or FPort-0 payload, with our answers queued for the next uplink; and the ADR back-off
# (4.3.1.1). motekit.lorawan imports it only when a frame is heard in an RX window or the
# back-off steps, so a wake without a downlink does not pay for it.
#
#   ok = lwmac.down(mac, n, snr)  # the n bytes in mac._rxbuf -> True when it was for us
#   lwmac.process(mac, cmds)    # cmds: the decrypted command bytes; mac.s gets the answers
#   lwmac.adr_backoff(mac)
#   lwmac.cut(answers, n)       # the answers that fit n bytes, whole commands only
import binascii
import struct

from micropython import const

from motekit import log, lwcrypto

# Downlink command payload lengths by CID (after the CID byte); 0xFF: not a downlink command we
# know (TxParamSetupReq 0x09 is not used in EU868/US915), which stops the parsing (chapter 5:
# the rest cannot be framed).
_DOWN_LEN = b"\xff\xff\x02\x04\x01\x04\x00\x05\x01\xff\x04\xff\xff\x05"
# Uplink command lengths by CID, CID included; 0: not ours.
_UP_LEN = b"\x00\x00\x01\x02\x01\x02\x03\x02\x01\x00\x02\x00\x00\x01"
_LINK_CHECK = const(0x02)
_LINK_ADR = const(0x03)
_DUTY_CYCLE = const(0x04)
_RX_PARAM = const(0x05)
_DEV_STATUS = const(0x06)
_NEW_CHANNEL = const(0x07)
_RX_TIMING = const(0x08)
_DL_CHANNEL = const(0x0A)
_DEVICE_TIME = const(0x0D)
_KEEP = const(15)  # LinkADRReq DataRate / TXPower 15: keep the current value
_UNCONF_DOWN = const(0x60)  # MHDR MType (4.2.1)
_CONF_DOWN = const(0xA0)
_ACK = const(0x20)  # FCtrl (4.3.1)
_FPENDING = const(0x10)
_BATTERY_FULL_V = 4.2  # DevStatusAns: a Li-ion cell; empty is cfg critical_battery_v


def _freq(p, i):
    return (p[i] | p[i + 1] << 8 | p[i + 2] << 16) * 100


def down(mac, n, snr):
    # A data downlink in _rxbuf: ours, MIC right, FCntDown ahead of the last one (4.3.1.5,
    # 4.4); then ACK, MAC commands, FPending, application data. -> True when accepted.
    b = mac._rxbuf
    if n < 12:
        return False
    mhdr = b[0]
    mt = mhdr & 0xE0
    if (mt != _UNCONF_DOWN and mt != _CONF_DOWN) or mhdr & 3:
        return False
    s = mac.s
    addr, fctrl, f16 = struct.unpack_from("<IBH", b, 1)
    if addr != s["a"]:
        return False
    i = 8 + (fctrl & 15)
    end = n - 4
    if i > end:
        return False
    nk, ak = mac.session_keys()
    msg = memoryview(b)[:end]
    mic = bytes(b[end:n])
    last = s.get("fd", -1)
    fc = f16
    if last >= 0:
        fc = last - (last & 0xFFFF) + f16
        if fc <= last:
            if lwcrypto.data_mic(nk, addr, fc, False, msg) == mic:
                mac.count("replay")
                log.warning("lorawan: replayed downlink FCnt %d ignored" % fc)
                return False
            fc += 0x10000
    if fc > 0xFFFFFFFF or lwcrypto.data_mic(nk, addr, fc, False, msg) != mic:
        mac.count("bad_mic")
        return False
    fport = b[i] if i < end else None
    if fport == 0 and i > 8:
        return False  # FOpts and FPort 0 together: the frame is discarded (4.3.1.6)
    s["fd"] = fc
    s["ac"] = 0  # any downlink resets ADR_ACK_CNT
    s.pop("sa", None)  # the answers repeated until a downlink have arrived
    s["snr"] = int(snr)
    if mt == _CONF_DOWN:
        s["ack"] = 1
    if fctrl & _ACK:
        mac._acked = True
    mac._pending = bool(fctrl & _FPENDING)
    cmds = bytes(b[8:i])
    data = b""
    if fport is not None:
        data = lwcrypto.frm_crypt(nk if fport == 0 else ak, addr, fc, False, b[i + 1 : end])
        if fport == 0:
            cmds = data
    if cmds:
        process(mac, cmds)
    # FCntDown (and the settings) in flash before anything else happens: after a power loss a
    # replay of this frame is refused, an ACK-only one included (it could otherwise end a
    # confirmed uplink's retries). At most one write per uplink: docs/lorawan.md, "Flash wear".
    mac.save()
    if fport:
        mac.down = (fport, data)
        log.info("lorawan: downlink FPort %d, %d bytes" % (fport, len(data)))
    return True


def process(mac, cmds):
    s = mac.s
    reg = mac.reg
    ans = bytearray()
    sticky = bytearray()  # answered in every uplink until a downlink arrives
    i = 0
    n = len(cmds)
    while i < n:
        cid = cmds[i]
        ln = _DOWN_LEN[cid] if cid < len(_DOWN_LEN) else 0xFF
        if ln == 0xFF or i + 1 + ln > n:
            log.warning("lorawan: MAC command 0x%02x unknown or cut: the rest is ignored" % cid)
            break
        p = cmds[i + 1 : i + 1 + ln]
        i += 1 + ln
        if cid == _LINK_ADR:
            blk = [p]  # a block of contiguous LinkADRReq is one atomic command (LinkADRReq, ch. 5)
            while i + 5 <= n and cmds[i] == _LINK_ADR:
                blk.append(cmds[i + 1 : i + 5])
                i += 5
            status = _link_adr(mac, blk)
            for _ in blk:
                ans.append(_LINK_ADR)
                ans.append(status)
        elif cid == _LINK_CHECK:
            mac.stats["lc_margin"] = p[0]
            mac.stats["lc_gw"] = p[1]
            log.info("lorawan: link check: margin %d dB, %d gateway(s)" % (p[0], p[1]))
        elif cid == _DUTY_CYCLE:
            m = p[0] & 15
            mac.dc().max_dc(m)
            if m:
                s["mdc"] = m
            else:
                s.pop("mdc", None)
            ans.append(_DUTY_CYCLE)
        elif cid == _RX_PARAM:
            o1 = (p[0] >> 4) & 7
            r2 = p[0] & 15
            f = _freq(p, 1)
            status = reg.rx_param_setup(o1, r2, f)
            if status == 7:
                s["o1"], s["r2"], s["f2"] = o1, r2, f
            sticky.append(_RX_PARAM)
            sticky.append(status)
        elif cid == _DEV_STATUS:
            m = max(-32, min(31, s.get("snr", 0)))
            ans.append(_DEV_STATUS)
            ans.append(_battery(mac))
            ans.append(m & 0x3F)
        elif cid == _NEW_CHANNEL:
            ch = p[0]
            status = reg.new_channel(ch, _freq(p, 1), p[4] & 15, p[4] >> 4)
            if status == 3:
                s["ch"] = reg.state()
                _set_dl(s, ch, None)  # a channel (re)defined downlinks on its own frequency
            ans.append(_NEW_CHANNEL)
            ans.append(status)
        elif cid == _RX_TIMING:
            s["d1"] = (p[0] & 15) or 1
            sticky.append(_RX_TIMING)
        elif cid == _DL_CHANNEL:
            if reg.name != "EU868":  # a fixed channel plan has no DlChannelReq (RP002 2.5)
                break
            from motekit import lwregion

            ch = p[0]
            f = _freq(p, 1)
            status = (2 if reg.channel(ch) else 0) | (1 if lwregion.band(f) >= 0 else 0)
            if status == 3:
                _set_dl(s, ch, f)
            sticky.append(_DL_CHANNEL)
            sticky.append(status)
        elif cid == _DEVICE_TIME:
            # GPS seconds and 1/256 s at the end of the uplink that asked (DeviceTimeAns, ch. 5).
            secs, frac = struct.unpack("<IB", p)
            s["dto"] = secs * 1000 + (frac * 1000 >> 8) - mac._tx_wall
    if ans:
        s["ma"] = s.get("ma", "") + binascii.hexlify(bytes(ans)).decode()
    if sticky:
        s["sa"] = binascii.hexlify(bytes(sticky)).decode()


def _set_dl(s, ch, f):
    dl = [e for e in s.get("dl", ()) if e[0] != ch]
    if f is not None:
        dl.append([ch, f])
    if dl:
        s["dl"] = dl
    else:
        s.pop("dl", None)


def _link_adr(mac, blk):
    # -> the LinkADRAns status for every request of the block. The masks apply in order, the
    # data rate, TXPower and NbTrans come from the last request. With ADR off (cfg lorawan_adr)
    # the channel mask and NbTrans are still taken, data rate and power are refused unless
    # "keep" (TS001-1.0.4 4.3.1.1: "SHOULD accept the channel mask controls ... even when the
    # ADR bit is not set").
    s = mac.s
    last = blk[-1]
    dr = last[0] >> 4
    pw = last[0] & 15
    masks = [p[1] | p[2] << 8 for p in blk]
    cntls = [(p[3] >> 4) & 7 for p in blk]
    adr = mac.cfg["lorawan_adr"]
    if adr:
        status = mac.reg.link_adr(dr, pw, masks, cntls)
    else:
        status = mac.reg.link_adr(_KEEP, _KEEP, masks, cntls) & 1
        status |= (2 if dr == _KEEP else 0) | (4 if pw == _KEEP else 0)
    if status == 7 or (not adr and status & 1):
        if adr and dr != _KEEP:
            s["dr"] = dr
        if adr and pw != _KEEP:
            s["pw"] = pw
        s["nb"] = (last[3] & 15) or 1  # NbTrans 0: the default, 1
        s["ch"] = mac.reg.state()
    return status


def _battery(mac):
    # DevStatusAns battery (ch. 5): 0 external power, 1..254 the level, 255 unknown.
    v = mac.battery_v
    if v is None:
        return 255
    lo = mac.cfg.get("critical_battery_v", 3.2)
    x = (v - lo) / (_BATTERY_FULL_V - lo)
    return max(1, min(254, 1 + int(x * 253 + 0.5)))


def adr_backoff(mac):
    # 4.3.1.1: no downlink for ADR_ACK_LIMIT + ADR_ACK_DELAY uplinks: first full power, then one
    # data rate lower at every further ADR_ACK_DELAY; at the lowest, the default channels again.
    s = mac.s
    reg = mac.reg
    lo = reg.uplink_dr_range[0]
    if s["pw"] != 0:
        s["pw"] = 0
    elif s["dr"] > lo:
        s["dr"] -= 1
    if s["dr"] <= lo:
        from motekit import lwsession

        fresh = lwsession.fresh_region(mac.cfg)
        for j in range(len(reg.mask)):
            reg.mask[j] |= fresh.mask[j]
        s["ch"] = reg.state()
    s["dr"] = reg.clamp_dr(s["dr"])
    mac.count("backoff")
    log.info("lorawan: no downlink for %d uplinks: DR%d, TXPower %d" % (s["ac"], s["dr"], s["pw"]))
    mac.save()


def cut(o, n):
    # The leading whole answers of o that fit n bytes.
    i = 0
    while i < len(o):
        k = _UP_LEN[o[i]] if o[i] < len(_UP_LEN) else 0
        if not k or i + k > n:
            break
        i += k
    return o[:i]
