"""BTHome v2 advertisements from the rig's node, heard the way `mote scan` hears them: the virtual
air on a virtual board, the host's Bluetooth adapter (bleak) on a bench. The node reports a wake
through its bthome uplink as a non-connectable burst, and the adverts decode to the node's own
readings. Boards without BLE skip. The node is left with the test's config, as after any HIL
test: each installs its own.

Plain adverts: that test leaves the node's keys alone. Encrypted adverts (AES-CCM with the bind
key, docs/bthome.md) must decrypt with the node's bind key to its readings, each with a counter
of its own: a virtual board is provisioned with a new bind key into a temporary registry (`mote
provision --radios ble`); on a bench the test writes no key and runs only when the bench's
registry (--registry or MOTE_REGISTRY) holds the one the node has (its fingerprint in `mote
info`), else it skips saying so. Home Assistant's parser is checked against the same encryption
in tests/host/test_bthome_node.py.

    pytest hil_tests/test_bthome.py --port /dev/ttyUSB0 --board esp32-devkitc  # BLE adapter
    pytest hil_tests/test_bthome.py --port /dev/ttyUSB0 --board esp32-devkitc \\
        --registry ~/.local/share/motekit/registry.json                       # and encrypted
"""

import time
from pathlib import Path
from typing import Any

import pytest
from test_sensors import Mote, held

from host_tools.bthome import BTHomeAdvert
from host_tools.errors import MoteError
from host_tools.hil.node import Node
from host_tools.provision import BINDKEY, fingerprint
from host_tools.registry import Registry
from host_tools.scan import AirSource, BleakSource, KeyRing, Scanner, ScanResult, Source
from host_tools.sim.air import Air

COUNT = 3  # adverts per burst
LISTEN_S = 60.0
QUIET_S = 5.0  # no advert for this long: the burst has ended


@pytest.fixture(autouse=True)
def _ble(board: dict[str, Any]) -> None:
    # Autouse: runs before `node`, so a board without BLE is not started or reset.
    if "ble" not in board["radios"]:
        pytest.skip(f"{board['name']} has no BLE radio (board.json radios)")


def _source(node: Node) -> Source:
    if node.sim is not None:
        return AirSource(Air())  # the air the virtual board advertises on ($MOTE_AIR)
    try:
        source = BleakSource()
        source.start()
    except MoteError as e:
        pytest.skip(f"no Bluetooth adapter to hear the node: {e}")
    return source


def _ble_address(device_id: str) -> str:
    # An ESP32's Bluetooth address is its base MAC (the device id) plus 2 (ESP-IDF esp_read_mac).
    mac = (int(device_id, 16) + 2) % (1 << 48)
    return ":".join(f"{b:02X}" for b in mac.to_bytes(6, "big"))


def _burst(
    node: Node, mote: Mote, address: str, encrypt: bool, keys: KeyRing
) -> list[BTHomeAdvert]:
    """Configure the bthome uplink, reboot the node and return the adverts of its first report
    (each one as often as it was heard)."""
    source = _source(node)
    try:
        mote("config", "set", "uplinks", '["console", "bthome"]')
        mote("config", "set", "bthome_encrypt", "true" if encrypt else "false")
        mote("config", "set", "ble_adv_count", str(COUNT))
        mote("reboot")  # after its host window the node's first cycle reports ("first")
        heard: list[ScanResult] = []
        scanner = Scanner(source, keys, dedupe=False)
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
    assert all(a.encrypted == encrypt and a.error is None for a in adverts), adverts
    # A report too big for one advert is split; each advert goes out unchanged at least COUNT
    # times (the controller repeats it at the interval, so a scanner may hear it more often).
    by_packet: dict[int | None, list[bytes]] = {}
    for a in adverts:
        by_packet.setdefault(a.packet_id, []).append(a.service_data)
    assert all(len(set(data)) == 1 for data in by_packet.values()), by_packet
    assert all(len(data) >= COUNT for data in by_packet.values()), [a.packet_id for a in adverts]
    return adverts


def _check_values(adverts: list[BTHomeAdvert], sample: dict[str, Any]) -> None:
    values: dict[str, float] = {}
    for a in adverts:
        values.update(a.values)
    for channel, v in sample["values"].items():
        quantity = channel.split(".")[1]
        if quantity in ("temperature", "humidity"):
            assert any(
                k.split("_")[0] == quantity and abs(x - v) < 2.0 for k, x in values.items()
            ), (channel, v, values)


def test_a_report_goes_out_as_a_burst_of_bthome_adverts_with_the_nodes_readings(
    node: Node, rig: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    mote = held(node, rig, capsys)
    info = mote("info")
    sample = mote("read", "--sensor", info["config"]["sensors"][0])["samples"][0]
    adverts = _burst(node, mote, _ble_address(info["device_id"]), False, KeyRing())
    _check_values(adverts, sample)


def test_encrypted_adverts_decrypt_with_the_nodes_bind_key_to_its_readings(
    node: Node,
    rig: dict[str, Any],
    bench_registry: Registry | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if node.sim is None and bench_registry is None:
        pytest.skip(
            "encrypted BTHome on a bench needs the node's bind key: pass --registry FILE (or "
            "set MOTE_REGISTRY), the registry `mote provision` recorded the node in"
        )
    mote = held(node, rig, capsys)
    info = mote("info")
    if node.sim is not None:
        registry = Registry(tmp_path / "registry.json")
        mote("provision", "--registry", str(registry.path), "--radios", "ble")
        info = mote("info")
    else:
        assert bench_registry is not None
        registry = bench_registry
        record = registry.get(info["device_id"]) or {}
        key = (record.get("bthome") or {}).get("bind_key")
        on_node = info["secrets"].get(BINDKEY)
        if not key or fingerprint(bytes.fromhex(key)) != on_node:
            pytest.skip(
                f"{registry.path} does not hold the bind key node {info['device_id']} has "
                f"(fingerprint {on_node}): provision it with mote provision --registry "
                f"{registry.path}, or pass the registry that did"
            )
    keys = KeyRing.from_registry(registry)
    address = _ble_address(info["device_id"])
    assert keys.get(address) is not None, f"no bind key for {address} in {registry.path}"
    sample = mote("read", "--sensor", info["config"]["sensors"][0])["samples"][0]
    adverts = _burst(node, mote, address, True, keys)
    # Each advertisement has a counter of its own (the nonce must never repeat), and the
    # packet id is its low byte.
    counters = sorted({a.counter for a in adverts})
    assert len(counters) == len({a.service_data for a in adverts}), adverts
    assert all(a.packet_id == a.counter & 0xFF for a in adverts)
    _check_values(adverts, sample)
