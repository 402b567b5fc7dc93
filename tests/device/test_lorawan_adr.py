# The ADR back-off of the node's LoRaWAN MAC (TS001-1.0.4 4.3.1.1; firmware/motekit/lorawan.py
# and lwmac.py): 260 uplinks without a downlink, through the fake network of _lwnet.py. A file of
# its own: a long loop wants the heap the other MAC tests' bytecode would take.
import gc

import _lwnet as n
from motekit import log

log.echo = False
Node = n.Node


def test_adr_backoff_after_limit_and_delay():
    node = Node(n.abp_cfg(lorawan_adr=True))
    node.st["lw"]["pw"] = 3
    node.st["lw"]["ch"] = {"m": "0600"}  # channel 0 off
    node.sleep()
    req = []
    seen = {}
    for i in range(260):
        del node.radio.sent[:-1], node.radio.opened[:], node.net.frames[:]
        gc.collect()
        node.send(b"a")
        fctrl = node.radio.uplinks()[-1][2][5]
        assert fctrl & 0x80
        req.append(bool(fctrl & 0x40))
        s = node.st["lw"]
        seen.setdefault((s["dr"], s["pw"]), i + 1)
        node.sleep(10 * n.MIN)
    # ADRACKReq from the 65th uplink without a downlink (ADR_ACK_CNT >= ADR_ACK_LIMIT).
    assert req[:64] == [False] * 64 and req[64]
    # After LIMIT + DELAY uplinks full power, then one DR lower every ADR_ACK_DELAY.
    assert seen[(5, 0)] == 96
    assert seen[(4, 0)] == 128 and seen[(3, 0)] == 160 and seen[(0, 0)] == 256
    assert not req[-1]  # the lowest DR at full power: nothing left to ask for
    assert node.mac.reg.enabled(0)  # default channels back at the lowest DR
    assert node.st["lws"]["backoff"] == 6
    # A downlink resets ADR_ACK_CNT.
    node.st["lw"]["dr"] = 5
    node.net.queue.append({})
    node.send(b"b")
    node.sleep()
    node.send(b"c")
    assert not node.radio.uplinks()[-1][2][5] & 0x40 and node.st["lw"]["ac"] == 1
