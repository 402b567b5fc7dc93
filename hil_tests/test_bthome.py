"""BTHome v2 advertisements from the rig's node, heard the way `mote scan` hears them: the virtual
air on a virtual board, the host's Bluetooth adapter (bleak) on a bench. The node reports a wake
through its bthome uplink as a non-connectable burst, and the adverts decode to the node's own
readings. Plain adverts: the test leaves the node's keys alone (encryption and the counter are
checked against Home Assistant's parser in tests/host/test_bthome_node.py). Boards without BLE
skip. The node is left with the test's config, as after any HIL test: each installs its own.

    pytest hil_tests/test_bthome.py --port /dev/ttyUSB0 --board esp32-devkitc  # BLE adapter
"""

import time
from typing import Any

import pytest
from test_sensors import held

from host_tools.errors import MoteError
from host_tools.hil.node import Node
from host_tools.scan import AirSource, BleakSource, Scanner, Source
from host_tools.sim.air import Air

COUNT = 3  # adverts per burst
LISTEN_S = 60.0
QUIET_S = 5.0  # no advert for this long: the burst has ended


def _source(node: Node) -> Source:
    if node.sim is not None:
        return AirSource(Air())  # the air the virtual board advertises on ($MOTE_AIR)
    try:
        source = BleakSource()
        source.start()
    except MoteError as e:
        pytest.skip(f"no Bluetooth adapter to hear the node: {e}")
    return source


def test_a_report_goes_out_as_a_burst_of_bthome_adverts_with_the_nodes_readings(
    node: Node, board: dict[str, Any], rig: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    if "ble" not in board["radios"]:
        pytest.skip(f"{board['name']} has no BLE radio (board.json radios)")
    mote = held(node, rig, capsys)
    info = mote("info")
    # An ESP32's Bluetooth address is its base MAC (the device id) plus 2 (ESP-IDF esp_read_mac).
    mac = (int(info["device_id"], 16) + 2) % (1 << 48)
    address = ":".join(f"{b:02X}" for b in mac.to_bytes(6, "big"))
    sample = mote("read", "--sensor", info["config"]["sensors"][0])["samples"][0]
    source = _source(node)
    try:
        mote("config", "set", "uplinks", '["console", "bthome"]')
        mote("config", "set", "bthome_encrypt", "false")
        mote("config", "set", "ble_adv_count", str(COUNT))
        mote("reboot")  # after its host window the node's first cycle reports ("first")
        heard = []
        scanner = Scanner(source, dedupe=False)
        deadline = time.monotonic() + LISTEN_S
        while time.monotonic() < deadline:
            r = scanner.poll(QUIET_S if heard else 1.0)
            if r is None and heard:
                break  # the burst is over
            if r is not None and r.advert.address == address:
                heard.append(r)
        assert heard, f"no BTHome advert from {address} in {LISTEN_S:.0f} s"
    finally:
        source.close()
    adverts = [r.advert for r in heard]
    assert all(not a.encrypted and a.error is None for a in adverts)
    # A report too big for one advert is split; each advert goes out unchanged at least COUNT
    # times (the controller repeats it at the interval, so a scanner may hear it more often).
    by_packet: dict[int | None, list[bytes]] = {}
    for a in adverts:
        by_packet.setdefault(a.packet_id, []).append(a.service_data)
    assert all(len(set(data)) == 1 for data in by_packet.values()), by_packet
    assert all(len(data) >= COUNT for data in by_packet.values()), [a.packet_id for a in adverts]
    values: dict[str, float] = {}
    for a in adverts:
        values.update(a.values)
    for channel, v in sample["values"].items():
        quantity = channel.split(".")[1]
        if quantity in ("temperature", "humidity"):
            assert any(
                k.split("_")[0] == quantity and abs(x - v) < 2.0 for k, x in values.items()
            ), (channel, v, values)
