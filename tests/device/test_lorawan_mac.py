# LoRaWAN MAC commands (firmware/motekit/lwmac.py) and the ADR back-off, through the node's MAC
# (lorawan.py) and the fake network of _lwnet.py: each request arrives in a downlink's FOpts (or
# FPort 0), each answer is read back from the next uplink the network receives.
import struct

import _lwnet as n
from motekit import log, lorawan, store

log.echo = False
Node = n.Node


def eq(a, b):
    if a != b:
        raise AssertionError("%r != %r" % (a, b))


def f3(hz):
    return struct.pack("<I", hz // 100)[:3]


def exchange(node, fopts=None, **kw):
    # One uplink that gets a downlink with these MAC commands, then one that carries the
    # answers. -> the FOpts of that second uplink.
    d = dict(kw)
    if fopts is not None:
        d["fopts"] = fopts
    node.net.queue.append(d)
    node.send(b"1")
    node.sleep()
    node.send(b"2")
    node.sleep()
    return node.net.frames[-1][3]


def test_link_check_request_and_answer():
    node = Node(n.abp_cfg())
    node.mac.link_check()
    node.net.queue.append({"fopts": b"\x02\x14\x03"})  # LinkCheckAns: margin 20 dB, 3 gateways
    node.send(b"x")
    assert node.net.frames[-1][3] == b"\x02"  # LinkCheckReq in FOpts
    assert node.st["lws"]["lc_margin"] == 20 and node.st["lws"]["lc_gw"] == 3
    node.sleep()
    node.send(b"y")
    assert node.net.frames[-1][3] == b""  # asked once


def test_link_adr_block_applies_masks_in_order_and_the_last_settings():
    node = Node(n.abp_cfg(lorawan_adr=True))
    # DR3/TXPower 3, channels 0+1; then DR5/TXPower 1, channels 1+2, NbTrans 2.
    cmds = b"\x03\x33\x03\x00\x01" + b"\x03\x51\x06\x00\x02"
    eq(exchange(node, cmds), b"\x03\x07\x03\x07")  # one LinkADRAns per request
    s = node.st["lw"]
    assert (s["dr"], s["pw"], s["nb"]) == (5, 1, 2)
    obj, _ = store.read_json(lorawan.PATH)
    assert (obj["dr"], obj["pw"], obj["nb"], obj["ch"]["m"]) == (5, 1, 2, "0600")
    before = len(node.radio.sent)
    node.send(b"3")
    sent = node.radio.sent[before:]
    assert len(sent) == 2  # NbTrans 2, no downlink to stop it
    assert sent[0][5] == sent[1][5]  # the same frame, the same FCnt
    for u in sent:
        assert u[1] in (868300000, 868500000) and u[2] == 7 and u[4] == 12
    assert node.radio.uplinks()[-1][2][5] & 0x80  # FCtrl ADR


def test_link_adr_that_enables_an_undefined_channel_changes_nothing():
    node = Node(n.abp_cfg(lorawan_adr=True))
    eq(exchange(node, b"\x03\x33\x21\x00\x01"), b"\x03\x06")  # channel 5: none
    s = node.st["lw"]
    assert (s["dr"], s["pw"]) == (5, 0) and "ch" not in s


def test_link_adr_with_adr_off_takes_the_mask_only():
    node = Node(n.abp_cfg(lorawan_adr=False))
    eq(exchange(node, b"\x03\x33\x03\x00\x01"), b"\x03\x01")
    s = node.st["lw"]
    assert (s["dr"], s["pw"]) == (5, 0) and s["ch"]["m"] == "0300"
    eq(exchange(node, b"\x03\xff\x07\x00\x01"), b"\x03\x07")  # DR/TXPower 15: keep


def test_duty_cycle_req_limits_the_aggregated_duty_cycle():
    node = Node(n.abp_cfg())
    eq(exchange(node, b"\x04\x0a"), b"\x04")  # MaxDCycle 10: 1/1024 of the time
    assert node.st["lw"]["mdc"] == 10 and node.st["lw"]["dc"]["max"] == 10
    assert node.send(b"3")["sent"] == 1
    node.sleep(10000)  # a DR5 frame of ~50 ms needs ~50 s off now, not the band's ~5 s
    assert node.send(b"4") == {"sent": 0, "deferred": 1}
    node.sleep(60000)
    assert node.send(b"5") == {"sent": 1, "deferred": 1}
    # A power loss keeps the setting (flash), and the duty cycle applies it again.
    node.st = {}
    mac = node.wake(warm=False)
    assert mac.s["mdc"] == 10 and node.st["lw"]["dc"]["max"] == 10
    node.sleep()
    eq(exchange(node, b"\x04\x00"), b"\x04")
    assert "mdc" not in node.st["lw"] and "max" not in node.st["lw"]["dc"]


def test_rx_param_setup_is_answered_until_a_downlink_and_moves_rx2():
    node = Node(n.abp_cfg())
    cmd = b"\x05\x13" + f3(869525000)  # RX1DROffset 1, RX2 DR3
    eq(exchange(node, cmd), b"\x05\x07")
    s = node.st["lw"]
    assert (s["o1"], s["r2"], s["f2"]) == (1, 3, 869525000)
    node.net.rx1_offset = 1
    node.send(b"3")  # no downlink came in between: the answer is repeated
    assert node.net.frames[-1][3] == b"\x05\x07"
    opened = node.radio.opened[-2:]
    assert opened[0][3] == 8 and opened[1][2:4] == (869525000, 9)  # RX1 DR4, RX2 DR3
    node.net.queue.append({})
    node.sleep()
    node.send(b"4")
    node.sleep()
    node.send(b"5")
    assert node.net.frames[-1][3] == b""
    # A frequency outside the band: nothing changes, and the answer says which part failed.
    eq(exchange(node, b"\x05\x00" + f3(100000000)), b"\x05\x06")
    assert node.st["lw"]["f2"] == 869525000 and node.st["lw"]["o1"] == 1


def test_dev_status_answers_battery_and_the_downlinks_snr():
    node = Node(n.abp_cfg())
    node.mac.battery_v = 3.7
    eq(exchange(node, b"\x06"), b"\x06\x80\x07")  # level 128 of 254, margin 7 dB
    node.mac.battery_v = None
    sess = node.net.sessions[0x49BE7DF1]

    def weak(radio, phy, t_end):  # the request heard at -5 dB SNR
        sess[2] += 1
        d = n.downlink(sess[0], sess[1], 0x49BE7DF1, sess[2], fopts=b"\x06")
        radio.down(t_end + 1000, radio.conf[0], radio.conf[1], radio.conf[2], d, -5.0)

    node.radio.net = weak
    node.send(b"x")
    node.sleep()
    node.radio.net = None
    node.send(b"y")
    assert node.radio.uplinks()[-1][2][8:11] == b"\x06\xff\x3b"  # unknown battery, -5 dB


def test_new_channel_is_added_used_and_survives_a_power_loss():
    node = Node(n.abp_cfg())
    eq(exchange(node, b"\x07\x03" + f3(867100000) + b"\x50"), b"\x07\x03")
    assert node.mac.reg.channel(3) == (867100000, 0, 5) and node.mac.reg.enabled(3)
    eq(exchange(node, b"\x07\x01" + f3(867300000) + b"\x50"), b"\x07\x00")  # a default
    node.st = {}
    mac = node.wake(warm=False)
    assert mac.reg.channel(3) == (867100000, 0, 5)
    freqs = set()
    for _ in range(16):
        node.send(b"z")
        freqs.add(node.radio.sent[-1][1])
        node.sleep()
    assert 867100000 in freqs


def test_rx_timing_setup_moves_rx1_and_is_repeated_until_a_downlink():
    node = Node(n.abp_cfg())
    eq(exchange(node, b"\x08\x03"), b"\x08")
    assert node.st["lw"]["d1"] == 3
    t_end = node.radio.sent[-1][0]
    assert node.radio.opened[-2][0] == t_end + 3000 - 20
    assert node.radio.opened[-1][0] == t_end + 4000 - 20
    node.net.rx_delay = 3
    node.net.queue.append({})
    node.send(b"3")
    assert node.net.frames[-1][3] == b"\x08"
    node.sleep()
    node.send(b"4")
    assert node.net.frames[-1][3] == b""
    eq(exchange(node, b"\x08\x00"), b"\x08")
    assert node.st["lw"]["d1"] == 1  # 0 means 1 s


def test_dl_channel_moves_rx1():
    node = Node(n.abp_cfg())
    cmds = b""
    for ch in range(3):
        cmds += b"\x0a" + bytes((ch,)) + f3(869100000)
    eq(exchange(node, cmds), b"\x0a\x03" * 3)
    node.net.window = 2  # the network keeps RX2: RX1 moved, and this fake sends on the uplink's
    node.radio.net = None
    node.send(b"3")
    assert node.radio.opened[-2][2] == 869100000
    node.radio.net = node.net
    node.sleep()
    eq(exchange(node, b"\x0a\x09" + f3(869100000)), b"\x0a\x01")  # no channel 9


def test_device_time():
    node = Node(n.abp_cfg())
    assert node.mac.gps_ms() is None
    node.mac.device_time()
    node.radio.net = None
    node.send(b"t")
    t_end = node.radio.sent[-1][0]
    assert node.radio.uplinks()[-1][2][8] == 0x0D  # DeviceTimeReq
    # The network's answer: GPS time 1400000000.5 s at the end of that uplink.
    fopts = b"\x0d" + struct.pack("<IB", 1400000000, 128)
    node.net.queue.append({"fopts": fopts})
    node.radio.net = node.net
    node.sleep()
    node.send(b"u")
    t_end = node.radio.sent[-1][0]
    gps = node.mac.gps_ms()
    assert gps == 1400000000500 + (node.clock.t - t_end)


def test_an_unknown_command_stops_the_parsing():
    node = Node(n.abp_cfg())
    # DevStatusReq, an unknown CID, DutyCycleReq: only the first is answered (chapter 5).
    eq(exchange(node, b"\x06\x7f\x04\x01"), b"\x06\xff\x07")
    assert "mdc" not in node.st["lw"]


def test_commands_on_fport0_and_long_answers_on_fport0():
    node = Node(n.abp_cfg(lorawan_adr=True))
    cmds = b"\x03\xff\x07\x00\x01" * 8  # a block of 8 LinkADRReq: 16 bytes of answers
    node.net.queue.append({"fport": 0, "data": cmds})
    node.send(b"1")
    node.sleep()
    res = node.send(b"2")
    frame = node.net.frames[-1]
    assert frame[4] == 0 and frame[5] == b"\x03\x07" * 8 and frame[3] == b""
    # The application frame follows when the duty cycle allows: here, at the next wake.
    assert res == {"sent": 0, "deferred": 1}
    node.sleep()
    assert node.mac.uplink([], 1, False) == {"sent": 1, "deferred": 0}
    assert node.net.frames[-1][4:] == (1, b"2")


def test_fopts_with_fport0_is_discarded():
    node = Node(n.abp_cfg())
    node.net.queue.append({"fport": 0, "data": b"\x06", "fopts": b"\x06"})
    node.send(b"1")
    assert "rx1" not in node.st["lws"] and node.st["lw"]["fd"] == -1
