"""`mote scan` and the scan service (host_tools/scan.py): BTHome adverts put on a private
virtual air by an AirNode, decrypted with a registry's bind key; a fake bleak.BleakScanner for
the adapter path; the error paths; de-duplication of one burst's repeats.

Every test has its own air under tmp_path. Absence is shown by ordering, not by waiting: a
sender's datagrams arrive in order over loopback, so when the N lines asked for with --count end
with the last advert sent, no repeat sent before it was printed. The real adapter is the hardware
boundary: its test is marked `hardware` (run with --port PORT --board NAME on a BLE board).
"""

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bleak.args.bluez import OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakError

from host_tools.boards import load_board
from host_tools.bthome import build_adv_data, build_service_data, decode_adv
from host_tools.errors import RegistryError
from host_tools.provision import LoraOptions, plan
from host_tools.registry import Registry
from host_tools.scan import (
    AirSource,
    Binding,
    BleakSource,
    Heard,
    KeyRing,
    ScanError,
    Scanner,
    adv_bytes,
    uuid16,
)
from host_tools.sim.air import ADV_NONCONN_IND, Air, AirNode, BleAdvMeta, Frame

DEVICE_ID = "a1b2c3d4e5f6"
OTHER_KEY = bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")
STRANGER = "AA:BB:CC:00:00:01"
WAIT_S = 5.0  # only ever reached when a test fails
BTHOME_UUID128 = "0000fcd2-0000-1000-8000-00805f9b34fb"

Mote = Callable[..., tuple[int, str, str]]


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def air_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "air"
    monkeypatch.setenv("MOTE_AIR_DIR", str(root))
    monkeypatch.delenv("MOTE_AIR", raising=False)
    return root


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    """A registry holding one provisioned ESP32 (BLE address and bind key); its record."""
    monkeypatch.delenv("MOTE_REGISTRY", raising=False)
    reg = Registry(tmp_path / "registry.json")
    board = load_board("esp32-devkitc")
    record = plan({"device_id": DEVICE_ID, "fw": "0.3.0"}, board, ("ble",), LoraOptions())
    reg.add_pending(record)
    return reg.path, reg.complete(DEVICE_ID, {})


def node_key(record: dict[str, Any]) -> tuple[str, bytes]:
    return record["bthome"]["ble_address"], bytes.fromhex(record["bthome"]["bind_key"])


def advert(
    address: str, payload: str, *, key: bytes | None = None, counter: int = 0, **frame: Any
) -> Frame:
    """A ble-adv frame from node "node-1" carrying the BTHome objects `payload` (hex)."""
    service = build_service_data(
        bytes.fromhex(payload), address=address, bind_key=key, counter=counter
    )
    meta = BleAdvMeta(address, adv_type=ADV_NONCONN_IND, rssi_dbm=frame.get("rssi", -48))
    return Frame("node-1", build_adv_data(service), meta, frame.get("t_sim_ms", 1234))


def send_when_listening(air: Air, frames: list[Frame]) -> threading.Thread:
    """Send `frames` from AirNode "node-1" as soon as a listener is on `air`."""

    def run() -> None:
        with AirNode(air, "node-1") as node:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                if any(p.role == "listener" for p in air.peers(refresh=True)):
                    for frame in frames:
                        node.send(frame)
                    return
                time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# --- mote scan --sim ---------------------------------------------------------------------------


def test_scan_sim_json_decrypts_with_the_registry_key_and_drops_repeats(
    mote: Mote, air_root: Path, registry: tuple[Path, dict[str, Any]]
) -> None:
    path, record = registry
    address, key = node_key(record)
    first = advert(address, "0001 02660803A00F", key=key, counter=7)  # 21.5 °C, 40 %
    frames = [
        first,
        first,  # a burst repeats the same advert
        advert(STRANGER, "0005 015A"),  # plain, packet id 5, battery 90 %
        advert(STRANGER, "0005 015A"),
        Frame("node-1", bytes.fromhex("020106 05094E6F6465"), first.meta),  # no BTHome
        advert("AA:BB:CC:00:00:02", "0001 015A", key=OTHER_KEY, counter=3),  # key unknown
        advert(address, "0002 015A", key=OTHER_KEY, counter=8),  # not the registry's key
        first,
        advert(address, "0003 02980803A00F", key=key, counter=9, t_sim_ms=61234),  # 22.0 °C
    ]
    thread = send_when_listening(Air("t", root=air_root), frames)
    args = ["--air", "t", "--json", "--count", "5", "--duration", str(WAIT_S), "--registry"]
    rc, out, err = mote("scan", *args, str(path))
    thread.join(WAIT_S)
    assert (rc, err) == (0, "")
    lines = json_lines(out)
    assert [line["counter"] for line in lines] == [7, None, 3, 8, 9]  # repeats dropped
    mine, stranger, unknown, wrong, last = lines
    assert mine == {
        "address": address,
        "device_id": DEVICE_ID,
        "rssi": -48,
        "time": mine["time"],
        "t_sim_ms": 1234,
        "name": None,
        "service_data": build_service_data(
            bytes.fromhex("000102660803A00F"), address=address, bind_key=key, counter=7
        ).hex(),
        "encrypted": True,
        "trigger_based": False,
        "packet_id": 1,
        "counter": 7,
        "values": {"temperature": 21.5, "humidity": 40.0},
        "objects": [
            {"id": 0, "name": "packet_id", "value": 1, "unit": ""},
            {"id": 2, "name": "temperature", "value": 21.5, "unit": "°C"},
            {"id": 3, "name": "humidity", "value": 40.0, "unit": "%"},
        ],
        "error": None,
        "warnings": [],
    }
    assert abs(mine["time"] - time.time()) < 60
    assert stranger["device_id"] is None and stranger["encrypted"] is False
    assert (stranger["packet_id"], stranger["values"]) == (5, {"battery": 90})
    assert stranger["service_data"] == "4000 05015a".replace(" ", "")
    assert unknown["error"] == "encrypted, and no bind key is known for AA:BB:CC:00:00:02"
    assert unknown["values"] == {} and unknown["packet_id"] is None
    assert wrong["device_id"] == DEVICE_ID
    assert wrong["error"] == "decryption failed: wrong bind key, or the advert was altered (MIC)"
    assert (last["values"], last["t_sim_ms"]) == ({"temperature": 22.0, "humidity": 40.0}, 61234)
    assert key.hex() not in out  # the bind key is a secret
    assert not list((air_root / "t").iterdir())  # the listener left the air


def test_scan_sim_uses_mote_air_and_stops_after_the_duration(
    mote: Mote, air_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTE_AIR", "quiet")
    monkeypatch.setenv("MOTE_REGISTRY", str(air_root.parent / "none.json"))
    rc, out, err = mote("scan", "--sim", "--json", "--duration", "0.2")
    assert (rc, out, err) == (0, "", "")
    assert (air_root / "quiet").is_dir() and not list((air_root / "quiet").iterdir())


def test_scan_human_lines_and_summary(
    mote: Mote, air_root: Path, registry: tuple[Path, dict[str, Any]]
) -> None:
    path, record = registry
    address, key = node_key(record)
    first = advert(address, "0001 02660803A00F", key=key, counter=7)
    frames = [first, first, first, advert(address, "0002 015A", key=key, counter=8)]
    thread = send_when_listening(Air("h", root=air_root), frames)
    args = ["--air", "h", "--count", "2", "--duration", str(WAIT_S), "--registry", str(path)]
    rc, out, err = mote("scan", *args)
    thread.join(WAIT_S)
    assert rc == 0
    one, two = out.splitlines()  # not a terminal: a line per advert, no live table
    assert f"{address}  {DEVICE_ID}  -48 dBm  encrypted  temperature=21.5  humidity=40.0" in one
    assert two.endswith("battery=90")
    assert err == "1 device(s), 4 BTHome advert(s) heard (2 repeat(s)), 0 other advert(s)\n"


def test_ctrl_c_ends_a_scan_with_exit_code_0(
    mote: Mote, air_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: AirSource, timeout_s: float | None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(AirSource, "recv", interrupted)
    monkeypatch.setenv("MOTE_REGISTRY", str(air_root.parent / "none.json"))
    rc, out, err = mote("scan", "--air", "c", "--json")
    assert (rc, out, err) == (0, "", "")
    assert not list((air_root / "c").iterdir())


# --- error paths -------------------------------------------------------------------------------


def test_a_registry_that_is_not_json_is_refused(mote: Mote, air_root: Path) -> None:
    bad = air_root.parent / "bad.json"
    bad.write_text("{not json")
    bad.chmod(0o600)
    rc, out, err = mote("scan", "--air", "e", "--duration", "1", "--registry", str(bad))
    assert (rc, out) == (RegistryError.exit_code, "")
    assert err.startswith(f"error: the registry {bad} is not valid JSON")


def test_a_damaged_bind_key_is_refused_without_printing_it(
    mote: Mote, air_root: Path, registry: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = registry
    reg = Registry(path)
    with reg.edit() as devices:
        devices[DEVICE_ID]["bthome"]["bind_key"] = "0123456789abcdef0123"  # 10 bytes
    rc, out, err = mote("scan", "--air", "e", "--duration", "1", "--registry", str(path))
    assert (rc, out) == (8, "")
    assert err == (
        f"error: device {DEVICE_ID} in {path} has a damaged BTHome bind key or BLE address\n"
        f"hint: mote registry show {DEVICE_ID} shows the record; provision it again with --force\n"
    )


def test_adapter_with_sim_is_a_usage_error(mote: Mote, air_root: Path) -> None:
    rc, out, err = mote("scan", "--sim", "--adapter", "hci0", "--duration", "1")
    assert (rc, out) == (2, "")
    assert err == "error: --adapter names a Bluetooth adapter; --sim listens to the virtual air\n"


def test_a_bad_air_name_is_a_usage_error(mote: Mote, air_root: Path) -> None:
    rc, out, err = mote("scan", "--air", "../x", "--duration", "1")
    assert (rc, out) == (2, "")
    assert err.startswith("error: air name '../x' is not 1-64 letters")


# --- the adapter path, with a fake BleakScanner ------------------------------------------------


class FakeScanner:
    """Stands in for bleak.BleakScanner: records how it was made, then reports `adverts`."""

    adverts: list[tuple[BLEDevice, AdvertisementData]] = []
    refuse_passive: BaseException | None = None
    refuse: BaseException | None = None
    interrupt = False  # press Ctrl-C once the adverts are out
    made: list["FakeScanner"] = []

    def __init__(
        self,
        detection_callback: Callable[[BLEDevice, AdvertisementData], None] | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        asyncio.get_running_loop()  # bleak's backends need the loop when they are made
        self.callback = detection_callback
        self.scanning_mode = scanning_mode
        self.kwargs = kwargs
        self.started = self.stopped = False
        self.made.append(self)

    async def start(self) -> None:
        if self.scanning_mode == "passive" and self.refuse_passive is not None:
            raise self.refuse_passive
        if self.refuse is not None:
            raise self.refuse
        self.started = True
        assert self.callback is not None
        for device, adv in self.adverts:
            asyncio.get_running_loop().call_soon(self.callback, device, adv)
        if self.interrupt:
            asyncio.get_running_loop().call_later(0.01, ctrl_c)

    async def stop(self) -> None:
        self.stopped = True


def ctrl_c() -> None:
    raise KeyboardInterrupt


@pytest.fixture
def fake_scanner(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeScanner]]:
    class Fake(FakeScanner):
        adverts = []
        made = []

    import bleak

    monkeypatch.setattr(bleak, "BleakScanner", Fake)
    yield Fake


def ble_advert(address: str, service: bytes, *, name: str | None = None, rssi: int = -70) -> Any:
    data = AdvertisementData(
        local_name=name,
        manufacturer_data={0x0059: b"\x01\x02"},
        service_data={BTHOME_UUID128: service},
        service_uuids=[],
        tx_power=None,
        rssi=rssi,
        platform_data=(),
    )
    return BLEDevice(address.lower(), name, None), data


def test_bleak_source_on_linux_scans_passively_for_bthome(fake_scanner: type[FakeScanner]) -> None:
    service = build_service_data(bytes.fromhex("0007 015A"))
    fake_scanner.adverts = [ble_advert(STRANGER, service, name="n")]
    with BleakSource(platform="linux", adapter="hci1") as source:
        assert (source.mode, source.note) == ("passive", None)
        heard = source.recv(WAIT_S)
        assert source.recv(0.01) is None  # nothing more: a timeout, not an error
    (scanner,) = fake_scanner.made
    assert scanner.scanning_mode == "passive"
    assert scanner.kwargs["bluez"] == {
        "adapter": "hci1",
        "or_patterns": [OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc")],
    }
    assert scanner.started and scanner.stopped
    assert heard == Heard(STRANGER, build_adv_data(service, name="n", flags=None), -70)
    adv = decode_adv(heard.address, heard.data)
    assert adv is not None and (adv.name, adv.packet_id, adv.values) == ("n", 7, {"battery": 90})


@pytest.mark.parametrize(
    ("platform", "mode", "bluez"), [("darwin", "active", {}), ("win32", "passive", {})]
)
def test_bleak_source_scanning_mode_per_platform(
    fake_scanner: type[FakeScanner], platform: str, mode: str, bluez: dict[str, Any]
) -> None:
    with BleakSource(platform=platform) as source:
        assert source.mode == mode
    (scanner,) = fake_scanner.made
    assert (scanner.scanning_mode, scanner.kwargs["bluez"]) == (mode, bluez)


def test_bleak_source_falls_back_to_active_when_bluez_refuses_passive(
    fake_scanner: type[FakeScanner],
) -> None:
    fake_scanner.refuse_passive = BleakError("no AdvertisementMonitor1 (needs BlueZ >= 5.56)")
    with BleakSource(platform="linux") as source:
        assert source.mode == "active"
        assert source.note == (
            "passive scanning is not available (no AdvertisementMonitor1 (needs BlueZ >= 5.56)); "
            "scanning actively"
        )
    assert [s.scanning_mode for s in fake_scanner.made] == ["passive", "active"]
    assert "or_patterns" not in fake_scanner.made[1].kwargs["bluez"]


@pytest.mark.parametrize(
    ("refusal", "message", "tries"),
    [
        (
            BleakBluetoothNotAvailableError(
                "Bluetooth is turned off", BleakBluetoothNotAvailableReason.POWERED_OFF
            ),
            "cannot scan with the Bluetooth adapter: Bluetooth is turned off",
            1,
        ),
        (
            BleakError("No Bluetooth adapters found."),
            "cannot scan with the Bluetooth adapter: No Bluetooth adapters found.",
            2,  # another bleak error: passive, then active scanning tried
        ),
        (
            FileNotFoundError(2, "No such file or directory"),
            "cannot scan with the Bluetooth adapter: no system D-Bus socket to reach BlueZ (is "
            "the bluetooth service running?)",
            1,
        ),
        (
            PermissionError(13, "Permission denied"),
            "cannot scan with the Bluetooth adapter: Permission denied",
            1,
        ),
    ],
    ids=["off", "none", "no-dbus", "permission"],
)
def test_bleak_source_failures_are_scan_errors(
    fake_scanner: type[FakeScanner], refusal: BaseException, message: str, tries: int
) -> None:
    fake_scanner.refuse = refusal
    with pytest.raises(ScanError) as caught:
        BleakSource(platform="linux").start()
    assert str(caught.value) == message and caught.value.exit_code == 3
    assert "--sim" in caught.value.hint
    assert len(fake_scanner.made) == tries  # "not available" and OS errors: no active retry


def test_scan_with_the_adapter_decrypts_and_stops_the_scanner(
    mote: Mote, fake_scanner: type[FakeScanner], registry: tuple[Path, dict[str, Any]]
) -> None:
    path, record = registry
    address, key = node_key(record)
    objects = bytes.fromhex("0009 02660803A00F")
    mine = build_service_data(objects, address=address, bind_key=key, counter=70)
    fake_scanner.adverts = [
        ble_advert(address, mine),
        ble_advert(address, mine, rssi=-75),  # the same advert again
        ble_advert(STRANGER, build_service_data(bytes.fromhex("0003 015A"))),
    ]
    args = ["--json", "--count", "2", "--duration", str(WAIT_S), "--registry", str(path)]
    rc, out, err = mote("scan", *args)
    assert (rc, err) == (0, "")
    one, two = json_lines(out)
    assert (one["address"], one["device_id"], one["rssi"]) == (address, DEVICE_ID, -70)
    assert one["t_sim_ms"] is None
    assert (one["counter"], one["values"]) == (70, {"temperature": 21.5, "humidity": 40.0})
    assert (two["address"], two["packet_id"], two["values"]) == (STRANGER, 3, {"battery": 90})
    (scanner,) = fake_scanner.made
    assert scanner.stopped


def test_ctrl_c_stops_the_adapter_scan_and_exits_0(
    mote: Mote, fake_scanner: type[FakeScanner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTE_REGISTRY", str(tmp_path / "none.json"))
    fake_scanner.adverts = [ble_advert(STRANGER, build_service_data(bytes.fromhex("0003 015A")))]
    fake_scanner.interrupt = True
    rc, out, err = mote("scan", "--json")  # no --duration: Ctrl-C is the only way out
    assert (rc, err) == (0, "")
    assert [line["packet_id"] for line in json_lines(out)] == [3]
    (scanner,) = fake_scanner.made
    assert scanner.stopped


def test_scan_without_an_adapter_fails_with_one_line(
    mote: Mote, fake_scanner: type[FakeScanner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTE_REGISTRY", str(tmp_path / "none.json"))
    fake_scanner.refuse = BleakError("No Bluetooth adapters found.")
    rc, out, err = mote("scan", "--duration", "1")
    assert (rc, out) == (3, "")
    assert err.splitlines() == [
        "error: cannot scan with the Bluetooth adapter: No Bluetooth adapters found.",
        "hint: check that an adapter is present and powered on (bluetoothctl show), and that "
        "you may use it; or listen to the virtual air with --sim",
    ]


def test_scan_warns_when_it_scans_actively(
    mote: Mote, fake_scanner: type[FakeScanner], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTE_REGISTRY", str(tmp_path / "none.json"))
    monkeypatch.setattr("sys.platform", "linux")
    fake_scanner.refuse_passive = BleakError("passive scanning needs BlueZ's experimental mode")
    fake_scanner.adverts = [ble_advert(STRANGER, build_service_data(bytes.fromhex("0003 015A")))]
    rc, out, err = mote("scan", "--json", "--count", "1", "--duration", str(WAIT_S))
    assert rc == 0 and json_lines(out)[0]["values"] == {"battery": 90}
    assert err == (
        "warning: passive scanning is not available (passive scanning needs BlueZ's experimental "
        "mode); scanning actively\n"
    )


def test_adv_bytes_rebuilds_the_bthome_element_from_bleak_fields() -> None:
    _, data = ble_advert(STRANGER, b"\x40\x01\x5a", name="Motekit")
    data = data._replace(
        service_data={
            "0000181a-0000-1000-8000-00805f9b34fb": b"\x01",  # another 16-bit UUID
            "12345678-1234-5678-1234-56789abcdef0": b"\x02",  # 128-bit: no 0x16 element
            BTHOME_UUID128: b"\x40\x01\x5a",
        }
    )
    assert adv_bytes(data) == bytes.fromhex("04161A1801 0616D2FC40015A 08094D6F74656B6974")
    assert uuid16(BTHOME_UUID128.upper()) == 0xFCD2
    assert uuid16("12345678-1234-5678-1234-56789abcdef0") is None


# --- the Scanner and the key ring --------------------------------------------------------------


class ListSource:
    """Hands out `heard` one by one; the clock moves by `step_s` per advert."""

    def __init__(self, heard: list[Heard], clock: list[float], step_s: float = 0.1) -> None:
        self.heard, self.clock, self.step_s = list(heard), clock, step_s

    def recv(self, timeout_s: float | None) -> Heard | None:
        if not self.heard:
            return None
        self.clock[0] += self.step_s
        return self.heard.pop(0)

    def close(self) -> None:
        pass


def scan_all(
    heard: list[Heard], keys: KeyRing | None = None, step_s: float = 0.1, **kw: Any
) -> tuple[list[Any], Scanner]:
    clock = [0.0]
    scanner = Scanner(ListSource(heard, clock, step_s), keys, clock=lambda: clock[0], **kw)
    results = []
    while (result := scanner.poll(None)) is not None:  # None once the list is used up
        results.append(result)
    return results, scanner


def plain(address: str, payload: str) -> Heard:
    return Heard(address, build_adv_data(build_service_data(bytes.fromhex(payload))), -60)


def test_repeats_are_recognised_by_packet_id_counter_or_data() -> None:
    key = OTHER_KEY
    sealed = build_adv_data(
        build_service_data(b"\x01\x5a", address=STRANGER, bind_key=key, counter=1)
    )
    resealed = build_adv_data(
        build_service_data(b"\x01\x5b", address=STRANGER, bind_key=key, counter=2)
    )
    heard = [
        plain(STRANGER, "0001 015A"),
        plain(STRANGER, "0001 015B"),  # same packet id: a repeat, whatever the data says
        plain("AA:BB:CC:00:00:09", "0001 015A"),  # same packet id, another device: new
        plain(STRANGER, "015A"),  # no packet id: the data decides
        plain(STRANGER, "015A"),
        plain(STRANGER, "015B"),
        Heard(STRANGER, sealed, -60),  # encrypted: the counter decides
        Heard(STRANGER, sealed, -61),
        Heard(STRANGER, resealed, -60),
        Heard(STRANGER, b"\x02\x01\x06", -60),  # not BTHome
    ]
    results, scanner = scan_all(heard, KeyRing([Binding("dev", STRANGER, key)]))
    assert [(r.advert.address[-2:], r.advert.packet_id, r.advert.counter) for r in results] == [
        ("01", 1, None),
        ("09", 1, None),
        ("01", None, None),
        ("01", None, None),
        ("01", None, 1),
        ("01", None, 2),
    ]
    assert [r.advert.values["battery"] for r in results] == [90, 90, 90, 91, 90, 91]
    assert {r.device_id for r in results} == {"dev", None}
    assert (scanner.heard, scanner.repeats, scanner.not_bthome) == (10, 3, 1)


def test_a_repeat_after_the_window_is_reported_again() -> None:
    heard = [plain(STRANGER, "0001 015A")] * 3
    results, _ = scan_all(heard, step_s=20.0, dedupe_window_s=30.0)  # at 20, 40, 60 s
    assert len(results) == 2  # 40 s repeats 20 s; 60 s is more than 30 s after 20 s


def test_dedupe_off_reports_every_advert() -> None:
    results, scanner = scan_all([plain(STRANGER, "0001 015A")] * 3, dedupe=False)
    assert len(results) == 3 and scanner.repeats == 0


def test_a_packet_id_coming_round_again_is_new() -> None:
    # 0..255 then 0 again within the window: the old 0 has been forgotten (16 kept per device).
    heard = [plain(STRANGER, f"00{i % 256:02X} 015A") for i in range(258)]
    results, _ = scan_all(heard, step_s=0.01)
    assert [r.advert.packet_id for r in results][-3:] == [255, 0, 1]
    assert len(results) == 258


def test_results_stop_at_the_duration() -> None:
    clock = [0.0]
    source = ListSource([plain(STRANGER, f"00{i:02X} 015A") for i in range(10)], clock, 1.0)
    scanner = Scanner(source, clock=lambda: clock[0])
    assert [r.advert.packet_id for r in scanner.results(duration_s=3.5)] == [0, 1, 2, 3]


def test_key_ring_from_registry(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "r.json")
    esp, rp2 = load_board("esp32-devkitc"), load_board("rpi-pico-w")
    done = plan({"device_id": "a1b2c3d4e5f6", "fw": "1"}, esp, ("ble",), LoraOptions())
    done["state"] = "complete"
    pending = plan({"device_id": "0000c3d4e5f6", "fw": "1"}, esp, ("ble",), LoraOptions())
    pending["bthome"]["ble_address"] = done["bthome"]["ble_address"]  # same address, pending
    no_address = plan({"device_id": "e660583883532c2f", "fw": "1"}, rp2, ("ble",), LoraOptions())
    with reg.edit() as devices:
        for r in (done, pending, no_address):
            devices[r["device_id"]] = r
    ring = KeyRing.from_registry(reg)
    assert len(ring) == 1  # the RP2 board's address is unknown: nothing to match adverts to
    binding = ring.get(done["bthome"]["ble_address"].lower())
    assert binding is not None and binding.device_id == "a1b2c3d4e5f6"
    assert binding.key == bytes.fromhex(done["bthome"]["bind_key"])
    assert done["bthome"]["bind_key"] not in repr(binding)
    assert len(KeyRing.from_registry(Registry(tmp_path / "missing.json"))) == 0


# --- a real adapter ----------------------------------------------------------------------------


@pytest.mark.hardware
def test_a_real_adapter_hears_the_bench_node(node: Any, board: dict[str, Any]) -> None:
    """The bench board advertises a hand-built BTHome advert; the host's adapter must hear it."""
    if "ble" not in board["radios"]:
        pytest.skip(f"{board['name']} has no BLE radio")
    packet_id, centi = random.randrange(256), random.randrange(-2000, 4000)
    payload = bytes([0x00, packet_id, 0x02]) + centi.to_bytes(2, "little", signed=True)
    data = build_adv_data(build_service_data(payload))
    address = node.exec(
        "import bluetooth\n"
        "_b = bluetooth.BLE()\n"
        "_b.active(True)\n"
        f"_b.gap_advertise(100000, bytes.fromhex('{data.hex()}'), connectable=False)\n"
        "print(':'.join('%02X' % x for x in _b.config('mac')[1]))\n"
    ).strip()
    try:
        with BleakSource() as source:
            scanner = Scanner(source)
            deadline = time.monotonic() + 30
            found = None
            while found is None and time.monotonic() < deadline:
                result = scanner.poll(deadline - time.monotonic())
                if result is not None and result.advert.address == address:
                    found = result
    finally:
        node.exec("_b.gap_advertise(None)\n_b.active(False)\n")
    assert found is not None, f"no advert from {address} in 30 s ({scanner.heard} heard)"
    assert found.advert.packet_id == packet_id
    assert found.advert.values == {"temperature": centi / 100}
    assert found.rssi is not None and -127 <= found.rssi <= 20
