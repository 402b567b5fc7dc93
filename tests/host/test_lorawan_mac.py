"""MAC commands on the network side (host_tools/lorawan/mac.py): the bytes of LoRaWAN 1.0.3
chapter 5, both directions, and how parsing ends on what it does not know."""

import pytest

from host_tools.lorawan import mac


def test_the_nodes_commands_parse_to_their_fields() -> None:
    # LinkCheckReq | LinkADRAns (power, DR, mask all ok) | DevStatusAns (battery 200, margin
    # -5: 6-bit two's complement 0x3B) | RXParamSetupAns (RX2 DR refused) | DeviceTimeReq
    data = bytes.fromhex("02030706c83b05050d")
    assert mac.parse(data, uplink=True) == [
        {"cmd": "LinkCheckReq"},
        {"cmd": "LinkADRAns", "power_ack": True, "dr_ack": True, "ch_mask_ack": True},
        {"cmd": "DevStatusAns", "battery": 200, "margin": -5},
        {"cmd": "RXParamSetupAns", "rx1_dr_offset_ack": True, "rx2_dr_ack": False,
         "channel_ack": True},
        {"cmd": "DeviceTimeReq"},
    ]  # fmt: skip


def test_the_networks_commands_have_the_specified_bytes() -> None:
    cmds = [
        mac.link_check_ans(12.7, 1),
        # DR5, power index 2, channels 0-7, ChMaskCntl 0, NbTrans 1 (1.0.3 5.3)
        mac.link_adr_req(5, 2, 0x00FF, 0, 1),
        mac.duty_cycle_req(7),
        # RX1DRoffset 1, RX2 DR3 at 869.525 MHz: 8695250 = 0x84ADD2, little-endian
        mac.rx_param_setup_req(1, 3, 869_525_000),
        mac.dev_status_req(),
        # channel 3 at 867.1 MHz (8671000 = 0x844F18), DR0..5
        mac.new_channel_req(3, 867_100_000, 0, 5),
        mac.rx_timing_setup_req(2),
    ]
    assert mac.encode(cmds).hex() == (
        "020c01" "0352ff0001" "0407" "0513d2ad84" "06" "07" "03184f84" "50" "0802"
    )  # fmt: skip


def test_every_command_round_trips_in_its_own_direction() -> None:
    down = [
        mac.link_check_ans(254, 3),
        mac.link_adr_req(3, 7, 0xFF00, 7, 2),
        mac.duty_cycle_req(15),
        mac.rx_param_setup_req(7, 15, 923_300_000),
        mac.dev_status_req(),
        mac.new_channel_req(15, 0, 0, 0),
        mac.rx_timing_setup_req(15),
        {"cmd": "TxParamSetupReq", "downlink_dwell": True, "uplink_dwell": False, "max_eirp": 5},
        {"cmd": "DlChannelReq", "index": 4, "freq_hz": 868_500_000},
        mac.device_time_ans(1_700_000_000.5),
    ]
    assert mac.parse(mac.encode(down), uplink=False) == down
    up = [
        {"cmd": "LinkCheckReq"},
        {"cmd": "LinkADRAns", "power_ack": False, "dr_ack": True, "ch_mask_ack": False},
        {"cmd": "DutyCycleAns"},
        {"cmd": "RXParamSetupAns", "rx1_dr_offset_ack": True, "rx2_dr_ack": True,
         "channel_ack": False},
        {"cmd": "DevStatusAns", "battery": 255, "margin": 31},
        {"cmd": "DevStatusAns", "battery": 0, "margin": -32},
        {"cmd": "NewChannelAns", "dr_range_ok": False, "freq_ok": True},
        {"cmd": "RXTimingSetupAns"},
        {"cmd": "TxParamSetupAns"},
        {"cmd": "DlChannelAns", "uplink_freq_exists": True, "freq_ok": False},
        {"cmd": "DeviceTimeReq"},
    ]  # fmt: skip
    assert mac.parse(mac.encode(up, uplink=True), uplink=True) == up


def test_an_unknown_command_ends_parsing_and_keeps_the_rest() -> None:
    # 1.0.3 5: a receiver stops at a CID it does not know (it cannot tell its length).
    got = mac.parse(bytes.fromhex("0280aabb02"), uplink=True)
    assert got == [{"cmd": "LinkCheckReq"}, {"cmd": "Unknown", "cid": 0x80, "data": "80aabb02"}]


def test_a_command_cut_short_is_flagged_not_raised() -> None:
    assert mac.parse(bytes.fromhex("0206"), uplink=True) == [
        {"cmd": "LinkCheckReq"},
        {"cmd": "Truncated", "cid": 6, "data": "06"},
    ]
    assert mac.parse(b"", uplink=True) == []


@pytest.mark.parametrize(
    ("cmd", "uplink", "message"),
    [
        ({"cmd": "NoSuchReq"}, False, "unknown MAC command"),
        ({"cmd": "LinkADRAns"}, False, "sent by a node"),
        (mac.dev_status_req(), True, "sent by the network"),
        (mac.link_adr_req(16, 0, 0), False, "dr must be an integer 0..15"),
        (mac.link_adr_req(1, 0, 0x10000), False, "ch_mask"),
        (mac.new_channel_req(3, 867_100_050, 0, 5), False, "multiple of 100 Hz"),
        ({"cmd": "DevStatusAns", "battery": 1, "margin": 32}, True, "margin"),
        (mac.duty_cycle_req(True), False, "max_dc"),  # a bool is not a number here
    ],
)
def test_encode_refuses_what_cannot_go_on_air(cmd: mac.Command, uplink: bool, message: str) -> None:
    with pytest.raises(mac.MacError, match=message):
        mac.encode([cmd], uplink=uplink)


def test_link_check_margin_is_clamped_to_its_byte() -> None:
    assert mac.link_check_ans(-3.0)["margin"] == 0
    assert mac.link_check_ans(300)["margin"] == 254


def test_device_time_is_gps_time_with_leap_seconds() -> None:
    # 2024-01-01T00:00:00Z = Unix 1704067200; GPS = Unix - 315964800 + 18 leap seconds.
    ans = mac.device_time_ans(1_704_067_200.25)
    assert ans == {"cmd": "DeviceTimeAns", "gps_s": 1_388_102_418, "frac": 64}
    assert mac.gps_to_unix(ans["gps_s"], ans["frac"]) == 1_704_067_200.25


def test_sizes_and_acks() -> None:
    assert mac.size(mac.link_adr_req(0, 0, 1)) == 5
    assert mac.size({"cmd": "DeviceTimeReq"}) == 1
    assert mac.acked({"cmd": "LinkADRAns", "power_ack": True, "dr_ack": True,
                      "ch_mask_ack": True})  # fmt: skip
    assert not mac.acked({"cmd": "NewChannelAns", "dr_range_ok": True, "freq_ok": False})
    assert mac.acked({"cmd": "DutyCycleAns"})
