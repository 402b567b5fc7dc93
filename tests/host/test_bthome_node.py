"""BTHome v2 from the node, decoded by Home Assistant's own parser (bthome-ble 3.25.0).

The oracle: the node's encoder and uplink (firmware/motekit/bthome.py, up_bthome.py) run in
MicroPython on a virtual ESP32 and print what they would put on the air; bthome-ble decodes it,
plain and encrypted, and must read the values that went in. End to end: a firmware node with the
bthome uplink and a bind key advertises on its virtual air; a listener decodes the bursts to the
environment's values, and the encryption counter never repeats through deep sleep and power loss.
"""

import ast
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from bluetooth_data_tools import parse_advertisement_data_bytes
from bthome_ble import BTHomeBluetoothDeviceData
from fwnode import SHT41, firmware_node
from habluetooth import BluetoothServiceInfoBleak

from host_tools.calibration.sensors import QUANTITIES
from host_tools.devtools import devtest
from host_tools.sim.air import ADV_NONCONN_IND, Air, AirListener, BleAdvMeta, Frame
from host_tools.sim.radio_link import bluetooth_mac

REPO = Path(__file__).resolve().parents[2]
KEY_HEX = "231d39c1d7cc1ab1aee224cd096db932"
KEY = bytes.fromhex(KEY_HEX)
ORACLE_MAC = "54:48:E6:8F:80:A5"
UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
# Our quantity -> Home Assistant's sensor key (bthome-ble's device classes) and decimals on air.
HA_KEY = {
    "temperature": ("temperature", 2),
    "humidity": ("humidity", 2),
    "pressure": ("pressure", 2),
    "co2": ("carbon_dioxide", 0),
    "voltage": ("voltage", 3),
    "current": ("current", 3),
    "power": ("power", 2),
    "moisture": ("moisture", 2),
}
# Each type's range on air (bthome.io/format): what a value outside it is clamped to.
RANGE = {
    "temperature": (-327.68, 327.67),
    "humidity": (0, 655.35),
    "pressure": (0, 167772.15),
    "co2": (0, 65535),
    "voltage": (0, 65.535),
    "current": (-32.768, 32.767),
    "power": (0, 167772.15),
    "moisture": (0, 655.35),
}

ALL = {
    "sht4x.temperature": 21.37,
    "sht4x.humidity": 48.21,
    "bme280.pressure": 1008.83,
    "scd41.co2": 1234,
    "battery.voltage": 3.912,
    "ina219.current": -0.734,
    "ina219.power": 2.71,
    "soil.moisture": 31.5,
}
SEVERAL = {
    "sht4x.temperature": 21.4,
    "bme280.temperature": 21.9,
    "scd41.temperature": -3.25,
    "sht4x.humidity": 48.0,
    "scd41.humidity": 51.5,
    "bme280.humidity": 49.75,
    "bme280.pressure": 998.1,
}
MANY = {f"ds{i}.temperature": 10.0 + i * 1.25 for i in range(7)}
EXTREMES = {
    "a.temperature": -40.004,
    "a.humidity": -0.3,
    "b.temperature": 400.0,
    "c.current": 3.2,
    "d.voltage": 26.0,
    "e.co2": 40000,
    "f.pressure": 1100.0,
}
# (name, encrypted, values, battery_v): run in this order on one node (one retained state).
CASES = [
    ("all-plain", False, ALL, 3.84),
    ("all-enc", True, ALL, 3.84),
    ("several-enc", True, SEVERAL, None),
    ("many-plain", False, MANY, 4.2),
    ("many-enc", True, MANY, 4.2),
    ("extremes-enc", True, EXTREMES, 3.3),
]
BATTERY_PCT = {3.84: 50, 4.2: 100, 3.3: 0, None: None}  # docs/bthome.md's curve points

EMITTER = """\
import binascii

from motekit import secrets, up_bthome

secrets.PATH = "/secrets_oracle.json"
CASES = {cases!r}


class Radio:
    # Stands in for bluetooth.BLE(): keeps what would go on the air.
    def __init__(self):
        self.on = False
        self.sent = []

    def active(self, on=None):
        if on is not None:
            self.on = on
        return self.on

    def config(self, name):
        return (0, binascii.unhexlify({mac!r}))

    def gap_advertise(self, interval_us, adv_data=None, connectable=True):
        if adv_data is not None:
            self.sent.append(adv_data)


def test_emit():
    secrets.set("bthome.bindkey", {key!r})
    st = {{}}
    for name, encrypt, values, battery_v in CASES:
        radio = Radio()
        cfg = {{"ble_adv_count": 1, "ble_adv_interval_ms": 20, "bthome_encrypt": encrypt}}
        up = up_bthome.Uplink({{"radios": ["ble"]}}, st, cfg, radio)
        up.send({{"seq": 0, "reason": [], "samples": [{{"t": 0, "values": values}}],
                  "battery_v": battery_v, "faults": []}})
        assert not radio.on
        for adv in radio.sent:
            print("ADV %s %s" % (name, binascii.hexlify(adv).decode()))
"""


def service_info(adv: bytes, address: str, at_s: float | None) -> BluetoothServiceInfoBleak:
    """What Home Assistant's Bluetooth stack hands an integration for one advertisement heard
    at `at_s` (monotonic seconds; now if None)."""
    name, uuids, service_data, manufacturer_data, tx_power = parse_advertisement_data_bytes(adv)
    return BluetoothServiceInfoBleak(
        name=name or address,
        address=address,
        rssi=-60,
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=uuids,
        source="local",
        device=BLEDevice(address, None, {}),
        advertisement=None,
        connectable=False,
        time=time.monotonic() if at_s is None else at_s,
        tx_power=tx_power,
        raw=adv,
    )


def ha_values(
    parser: BTHomeBluetoothDeviceData, adv: bytes, address: str, at_s: float | None = None
) -> dict[str, Any]:
    """The sensor values this advertisement gave the parser (its own, not earlier ones')."""
    before = dict(parser._sensor_values_updates)  # noqa: SLF001  values persist between updates
    update = parser.update(service_info(adv, address, at_s))
    return {
        k.key: v.native_value
        for k, v in update.entity_values.items()
        if k.key != "signal_strength" and before.get(k) is not v
    }


def expected(quantity: str, value: float) -> float:
    lo, hi = RANGE[quantity]
    places = HA_KEY[quantity][1]
    return round(min(max(value, lo), hi), places)


def by_quantity(per_advert: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """HA key -> [(advert index, value)] in HA's numbering order (key, key_1, key_2, ...)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for i, values in enumerate(per_advert):
        keys = [k for k in values if k not in ("packet_id", "battery")]
        for key in sorted(keys, key=lambda k: int(k.rpartition("_")[2]) if k[-1].isdigit() else 0):
            base = re.sub(r"_\d+$", "", key)
            out.setdefault(base, []).append((i, values[key]))
    return out


@pytest.fixture(scope="module")
def node_adverts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Each case's advertisements, as the node's MicroPython built them."""
    path = tmp_path_factory.mktemp("oracle") / "test_bthome_oracle.py"
    cases = [(n, e, v, b) for n, e, v, b in CASES]
    path.write_text(EMITTER.format(cases=cases, mac=ORACLE_MAC.replace(":", ""), key=KEY_HEX))
    run = devtest.run_file(path, ["test_emit"], "sim-esp32", speed=20)
    result = run.results.get("test_emit")
    assert result is not None and result.status == "pass", run.output[-3000:]
    out: dict[str, list[bytes]] = {name: [] for name, *_ in CASES}
    for line in result.output.splitlines():
        if line.startswith("ADV "):
            _, name, hexdata = line.split()
            out[name].append(bytes.fromhex(hexdata))
    return out


@pytest.mark.parametrize("name, encrypted, values, battery_v", CASES, ids=[c[0] for c in CASES])
def test_home_assistant_reads_what_the_node_encoded(
    node_adverts: dict[str, list[bytes]],
    name: str,
    encrypted: bool,
    values: dict[str, float],
    battery_v: float | None,
) -> None:
    advs = node_adverts[name]
    assert advs, f"{name}: nothing advertised"
    per_advert = []
    for adv in advs:
        assert len(adv) <= 31 and adv[:3] == b"\x02\x01\x06"
        _, _, service_data, _, _ = parse_advertisement_data_bytes(adv)
        assert list(service_data) == [UUID]
        assert service_data[UUID][0] == (0x45 if encrypted else 0x44)  # v2, trigger based
        parser = BTHomeBluetoothDeviceData(KEY if encrypted else None)
        got = ha_values(parser, adv, ORACLE_MAC)
        assert parser.encryption_scheme.value == ("bthome_bindkey" if encrypted else "none")
        if encrypted:
            assert parser.bindkey_verified and not parser.decryption_failed, name
        assert "packet_id" in got, (name, got)
        per_advert.append(got)

    # Every reading, scaled and clamped as the object's type allows, in channel order.
    quantities = by_quantity(per_advert)
    want: dict[str, list[float]] = {}
    for ch in sorted(values, key=lambda c: (c.rpartition(".")[2], c)):
        q = ch.rpartition(".")[2]
        want.setdefault(HA_KEY[q][0], []).append(expected(q, values[ch]))
    got_values = {k: [v for _, v in vs] for k, vs in quantities.items()}
    assert got_values.keys() == want.keys(), (name, got_values)
    for key, vs in want.items():
        assert got_values[key] == pytest.approx(vs, abs=1e-9), (name, key)
    batteries = [a["battery"] for a in per_advert if "battery" in a]
    assert batteries == ([] if battery_v is None else [BATTERY_PCT[battery_v]])
    # Sensors of one quantity share an advertisement when they fit in one (13 bytes of objects
    # encrypted, 21 plain), so Home Assistant's numbering (temperature_1, _2) stays put.
    room = 13 if encrypted else 21
    for key, items in quantities.items():
        if (4 if key in ("pressure", "power") else 3) * len(items) <= room:
            assert len({i for i, _ in items}) == 1, (name, key, items)
    # The fewest advertisements that hold it all, give or take the keeping together.
    size = sum(len(a) - 8 - (8 if encrypted else 0) - 2 for a in advs)
    assert len(advs) <= size // room + 2, (name, len(advs))


def test_every_quantity_the_drivers_produce_has_an_object() -> None:
    # firmware/motekit/bthome.py's QUANTITIES against the host's table of quantities, so a new
    # one is not silently left out of the advertisements.
    tree = ast.parse((REPO / "firmware" / "motekit" / "bthome.py").read_text())
    node = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "QUANTITIES"
    )
    assert set(ast.literal_eval(node)) == set(QUANTITIES) == set(HA_KEY)
    assert {ch.rpartition(".")[2] for ch in ALL} == set(QUANTITIES)


def test_one_receiver_takes_every_advert_in_turn(node_adverts: dict[str, list[bytes]]) -> None:
    # As Home Assistant sees one node: a parser per device, advertisements within seconds. No
    # advertisement may look like a duplicate (packet id) or a replay (counter).
    parsers = {False: BTHomeBluetoothDeviceData(), True: BTHomeBluetoothDeviceData(KEY)}
    pids: dict[bool, list[int]] = {False: [], True: []}
    counters = []
    for name, encrypted, *_ in CASES:
        for adv in node_adverts[name]:
            parser = parsers[encrypted]
            got = ha_values(parser, adv, ORACLE_MAC)
            assert "packet_id" in got, (name, got)
            pids[encrypted].append(got["packet_id"])
            if encrypted:
                counters.append(int(parser.encryption_counter))
    assert pids[False] == list(range(len(pids[False])))  # one packet id per advertisement
    assert counters == list(range(len(counters)))  # one counter per encrypted advertisement
    assert pids[True] == [c & 0xFF for c in counters]  # encrypted: the counter's low byte


def test_the_wrong_bind_key_reads_nothing(node_adverts: dict[str, list[bytes]]) -> None:
    adv = node_adverts["all-enc"][0]
    wrong = BTHomeBluetoothDeviceData(bytes(16))
    assert ha_values(wrong, adv, ORACLE_MAC) == {}
    assert not wrong.bindkey_verified
    # The nonce holds the MAC: the right key with another address fails too.
    other = BTHomeBluetoothDeviceData(KEY)
    assert ha_values(other, adv, "54:48:E6:8F:80:A6") == {}


# --- end to end on the virtual board -------------------------------------------------------------

BME280 = {"model": "bme280", "bus": "i2c0", "addr": 0x76}
COUNT = 3
E2E_CONFIG = {
    "sample_period": 60,
    "host_wait_ms": 1000,
    "sensors": [{"kind": "battery"}, {"kind": "sht4x"}, {"kind": "bme280"}],
    "thresholds": {"temperature": 0},  # a report every wake
    "uplinks": ["bthome"],
    "ble_adv_count": COUNT,
    "ble_adv_interval_ms": 100,
    "bthome_encrypt": True,
}
ENV = {"temperature_c": 18.5, "humidity_rh": 62.0, "pressure_hpa": 1002.5, "supply_v": 3.84}
REPORT_LINE = r"motekit: cycle \d+ .* report="


@pytest.fixture
def private_air(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Air:
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    monkeypatch.setenv("MOTE_AIR", "bthome")
    return Air("bthome", root=tmp_path / "air")


def drain(listener: AirListener, quiet_s: float = 0.5) -> list[Frame]:
    frames = []
    while (f := listener.recv(timeout_s=quiet_s)) is not None:
        frames.append(f)
    return frames


def bursts(frames: list[Frame], boots_ms: list[float]) -> list[list[Frame]]:
    """The frames of each wake (each boot: a deep-sleep wake is a boot), wakes with none left
    out."""
    out: dict[float, list[Frame]] = {}
    for f in frames:
        assert f.t_sim_ms is not None
        boot = max(t for t in boots_ms if t <= f.t_sim_ms)
        out.setdefault(boot, []).append(f)
    return [out[t] for t in sorted(out)]


def test_a_virtual_node_advertises_its_readings_and_never_repeats_a_counter(
    private_air: Air,
) -> None:
    secrets = json.dumps({"bthome.bindkey": KEY_HEX})
    with AirListener(private_air, kinds=["ble-adv"]) as listener:
        with firmware_node(
            "sim-esp32",
            E2E_CONFIG,
            models=[SHT41, BME280],
            extra={"/secrets.json": secrets},
            speed=2000,
        ) as fw:
            fw.control("env", **ENV)  # within the host window: before the first sample
            for _ in range(3):  # three wakes, deep sleep between them
                fw.wait_text(REPORT_LINE, timeout_s=60)
            fw.reset("power_on")  # power loss: RTC memory (and the retained counter) gone
            for _ in range(2):
                fw.wait_text(REPORT_LINE, timeout_s=60)
            status = fw.control("status")
        frames = drain(listener)  # the board has stopped: everything it sent is queued here

    history = status["history"]
    power_on_ms = max(h["sim_ms"] for h in history if h["kind"] == "power_on")
    assert [h["kind"] for h in history].count("deepsleep") >= 3, history
    address = ":".join(f"{b:02X}" for b in bluetooth_mac(bytes.fromhex(status["unique_id"])))
    assert frames and all(f.src == status["node_id"] for f in frames)
    metas = [f.meta for f in frames]
    assert all(isinstance(m, BleAdvMeta) for m in metas)
    assert {(m.addr, m.adv_type) for m in metas if isinstance(m, BleAdvMeta)} == {
        (address, ADV_NONCONN_IND)
    }

    groups = bursts(frames, [h["sim_ms"] for h in history])
    parser = BTHomeBluetoothDeviceData(KEY)  # Home Assistant's view of this one node
    counters: list[tuple[int, int]] = []  # (t_sim_ms, counter) per advertisement
    for n, burst in enumerate(groups):
        payloads = [f.payload for f in burst]
        distinct = list(dict.fromkeys(payloads))
        # battery %, 2 temperatures, 2 humidities, pressure, voltage: 2 encrypted adverts,
        # each COUNT times, interleaved. The board was stopped at some point of the last one.
        pattern = distinct * COUNT
        assert len(distinct) == 2, [p.hex() for p in payloads]
        if n < len(groups) - 1:
            assert payloads == pattern, [p.hex() for p in payloads]
        else:
            assert payloads == pattern[: len(payloads)], [p.hex() for p in payloads]
        values: dict[str, Any] = {}
        for adv in distinct:
            service = parse_advertisement_data_bytes(adv)[2][UUID]
            ctr = int.from_bytes(service[-8:-4], "little")
            t_ms = burst[payloads.index(adv)].t_sim_ms or 0
            counters.append((t_ms, ctr))
            values.update(ha_values(parser, adv, address, t_ms / 1000))  # heard at node time
        assert values["temperature_1"] == pytest.approx(ENV["temperature_c"], abs=0.2)
        assert values["temperature_2"] == pytest.approx(ENV["temperature_c"], abs=0.2)
        assert values["humidity_1"] == pytest.approx(ENV["humidity_rh"], abs=1.0)
        assert values["humidity_2"] == pytest.approx(ENV["humidity_rh"], abs=1.0)
        assert values["pressure"] == pytest.approx(ENV["pressure_hpa"], abs=0.5)
        assert values["voltage"] == pytest.approx(ENV["supply_v"], abs=0.05)
        assert abs(values["battery"] - 50) <= 3
    before = [c for t, c in counters if t < power_on_ms]
    after = [c for t, c in counters if t > power_on_ms]
    assert len(before) >= 6 and len(after) >= 4, counters
    ctrs = [c for _, c in counters]
    assert ctrs == sorted(set(ctrs)), ctrs  # strictly increasing: never repeated
    # The power loss resumed from the reservation in flash (reserved 32 values at a time), past
    # every value used before it.
    assert after[0] > before[-1] and after[0] % 32 == 0, counters
