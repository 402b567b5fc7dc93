# A network server and a node for the LoRaWAN MAC's device tests, on the fakes of _lwfake.py:
# Net answers join requests (RX1 or RX2), checks each data uplink's MIC, records (DevAddr,
# FCnt), sends queued downlinks and ACKs; Node wakes and sleeps like a board.
#
#   node = Node(abp_cfg())            # flash cleaned, a Net answering
#   node.send(b"frame"); node.sleep()  # retained state through JSON, the MAC rebuilt
import struct

from _lwfake import (  # noqa: F401  re-exported for the tests
    ABP_KEYS,
    APPKEY,
    APPSKEY,
    CUTS,
    DEV_EUI,
    JOIN_EUI,
    KEYS,
    MIN,
    NWKSKEY,
    WRITES,
    Clock,
    PowerCut,
    Radio,
    Rnd,
    abp_cfg,
    cfg,
    clean_flash,
    rt,
)
from motekit import lorawan, lwcrypto, lwregion


def downlink(
    nk, ak, addr, fcnt, fport=None, data=b"", fopts=b"", ack=False, conf=False, pending=False
):
    fctrl = (0x20 if ack else 0) | (0x10 if pending else 0) | len(fopts)
    msg = struct.pack("<BIBH", 0xA0 if conf else 0x60, addr, fctrl, fcnt & 0xFFFF) + fopts
    if fport is not None:
        msg += bytes((fport,)) + lwcrypto.frm_crypt(ak if fport else nk, addr, fcnt, False, data)
    return msg + lwcrypto.data_mic(nk, addr, fcnt, False, msg)


class Net:
    # A network server for the tests: answers join requests (in RX1 or RX2), checks each data
    # uplink's MIC, records (DevAddr, FCnt), sends queued downlinks, ACKs confirmed uplinks.
    def __init__(self, radio, appkey=APPKEY, nk=None, ak=None, addr=None):
        radio.net = self
        self.appkey = appkey
        self.sessions = {}  # addr -> [nk, ak, fcnt_down]
        if addr is not None:
            self.sessions[addr] = [nk, ak, 0]
        self.next_addr = 0x26010000
        self.jn = 0
        self.join = True  # answer join requests
        self.window = 1  # 1: RX1, 2: RX2
        self.rx1_offset = 0
        self.rx_delay = 1
        self.dlsettings = 0
        self.cflist = None
        self.ack = True
        self.queue = []  # [{"fport":, "data":, "fopts":, "conf":, "pending":}]
        self.frames = []  # (addr, fcnt32, confirmed, fopts, fport, plain payload)
        self.bad = 0
        self.last = None  # the last downlink sent (phy), for replays

    def _when(self, radio, t_end, delay_s, join):
        f, sf, bw = radio.conf[0], radio.conf[1], radio.conf[2]
        if self.window == 2:
            return t_end + delay_s * 1000 + 1000, 869525000, 12, 125000
        off = 0 if join else self.rx1_offset
        dsf = min(12, sf + off) if bw == 125000 else sf
        return t_end + delay_s * 1000, f, dsf, bw

    def __call__(self, radio, phy, t_end):
        mt = phy[0] & 0xE0
        if mt == 0:
            if not self.join:
                return
            dn = struct.unpack_from("<H", phy, 17)[0]
            assert lwcrypto.join_request_mic(self.appkey, phy[:19]) == phy[19:]
            self.jn += 1
            addr = self.next_addr
            self.next_addr += 1
            jn = struct.pack("<I", self.jn)[:3]
            net_id = b"\x13\x00\x00"
            plain = b"\x20" + jn + net_id + struct.pack("<IBB", addr, self.dlsettings, 0)
            if self.cflist:
                plain += self.cflist
            plain += lwcrypto.mic(self.appkey, plain)
            nk, ak = lwcrypto.session_keys(self.appkey, jn, net_id, dn)
            self.sessions[addr] = [nk, ak, 0]
            t, f, sf, bw = self._when(radio, t_end, 5, True)
            self.last = lwcrypto.join_accept_encrypt(self.appkey, plain)
            radio.down(t, f, sf, bw, self.last)
            return
        addr, fctrl, f16 = struct.unpack_from("<IBH", phy, 1)
        sess = self.sessions.get(addr)
        if sess is None:
            return
        nk, ak = sess[0], sess[1]
        fc = self._fcnt(addr, f16)
        if lwcrypto.data_mic(nk, addr, fc, True, phy[:-4]) != phy[-4:]:
            self.bad += 1
            return
        i = 8 + (fctrl & 15)
        fport = phy[i] if i < len(phy) - 4 else None
        data = b""
        if fport is not None:
            data = lwcrypto.frm_crypt(ak if fport else nk, addr, fc, True, phy[i + 1 : -4])
        conf = mt == 0x80
        self.frames.append((addr, fc, conf, bytes(phy[8:i]), fport, data))
        d = self.queue.pop(0) if self.queue else None
        if d is None and not (conf and self.ack):
            return
        d = d or {}
        sess[2] += 1
        self.last = downlink(
            nk,
            ak,
            addr,
            sess[2],
            d.get("fport"),
            d.get("data", b""),
            d.get("fopts", b""),
            conf and self.ack,
            d.get("conf", False),
            d.get("pending", False),
        )
        t, f, sf, bw = self._when(radio, t_end, self.rx_delay, False)
        radio.down(t, f, sf, bw, self.last)

    def _fcnt(self, addr, f16):
        best = f16
        for a, fc, _, _, _, _ in self.frames:
            if a == addr and fc >= best:
                best = fc - (fc & 0xFFFF) + f16
                if best < fc:
                    best += 0x10000
        return best


class Node:
    # One node: its clock and radio stay, its MAC is rebuilt at every wake as on a board.
    def __init__(self, conf=None, keys=None, net=True, **kw):
        clean_flash()
        CUTS.at = -1
        self.cfg = conf or cfg()
        abp = self.cfg["lorawan_activation"] == "abp"
        self.keys = keys or (ABP_KEYS if abp else KEYS)
        self.clock = Clock()
        self.radio = Radio(self.clock)
        self.rnd = Rnd()
        self.st = {}
        self.net = None
        if net:
            if abp:
                self.net = Net(self.radio, nk=NWKSKEY, ak=APPSKEY, addr=0x49BE7DF1)
            else:
                self.net = Net(self.radio)
        self.mac = self.wake(**kw)

    def wake(self, warm=True, region=None):
        self.mac = lorawan.Mac(
            self.radio,
            region or lwregion.region(self.cfg["lorawan_region"], self.cfg["lorawan_sub_band"]),
            self.st,
            self.cfg,
            self.keys,
            warm,
            self.clock,
            self.rnd,
        )
        return self.mac

    def sleep(self, ms=5 * MIN):
        # Deep sleep: retained state as RTC memory holds it, the MAC rebuilt.
        self.st = rt(self.st)
        self.clock.t += ms
        return self.wake()

    def send(self, *frames, confirmed=False):
        return self.mac.uplink(list(frames), 1, confirmed)
