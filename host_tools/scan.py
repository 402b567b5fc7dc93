"""The scan service: BTHome adverts heard on the virtual air or a Bluetooth adapter, decoded.

    keys = KeyRing.from_registry(Registry())          # bind keys by BLE address
    with AirSource("bench") as source:                # or BleakSource(): a real adapter
        for result in Scanner(source, keys).results(duration_s=10):
            print(result.to_json())

A source yields what it hears as Heard(address, advertising data, rssi). The Scanner keeps the
BTHome adverts, decrypts them with the registry's bind key for their address, and drops the
repeats of one advertising burst: the same (address, counter) for an encrypted advert, (address,
packet id) for a plain one, (address, service data) for a plain one without a packet id, seen
again within `dedupe_window_s`.

No CLI here (host_tools/cli/scan.py is `mote scan`). Errors are host_tools.errors types:
ScanError when the adapter cannot be used, RegistryError for a damaged registry.
"""

import asyncio
import collections
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

from host_tools.bthome import (
    AD_COMPLETE_NAME,
    AD_SERVICE_DATA_16,
    KEY_LEN,
    UUID_LE,
    BTHomeAdvert,
    decode_adv,
    mac_bytes,
)
from host_tools.errors import RegistryError, TransportError
from host_tools.registry import Registry
from host_tools.sim.air import KIND_BLE_ADV, Air, AirListener, BleAdvMeta

DEDUPE_WINDOW_S = 30.0
_DEDUPE_KEYS = 16  # per address: a packet id comes round again only after 256 others
_BT_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"  # 16-bit UUIDs in the 128-bit base UUID
_MAX_AD_LEN = 255  # an AD structure's length byte: it counts the AD type and the data


class ScanError(TransportError):
    """The Bluetooth adapter could not be used: none, switched off, no permission, or the
    platform's Bluetooth stack (through bleak) failed."""


class Heard(NamedTuple):
    """One advertisement as a source heard it."""

    address: str  # "AA:BB:CC:DD:EE:FF" (macOS: CoreBluetooth's per-host UUID instead)
    data: bytes  # legacy advertising data: AD structures
    rssi: int | None
    t_sim_ms: int | None = None  # the virtual board's clock when it sent it (virtual air only)


class Source(Protocol):
    def recv(self, timeout_s: float | None) -> Heard | None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Sources


class AirSource:
    """BLE advertisements on a virtual air (`air`: a name, default $MOTE_AIR, or an Air)."""

    def __init__(self, air: Air | str | None = None) -> None:
        self.air = air if isinstance(air, Air) else Air(air)
        self.listener = AirListener(self.air, kinds=[KIND_BLE_ADV], name="mote-scan")

    def recv(self, timeout_s: float | None) -> Heard | None:
        frame = self.listener.recv(timeout_s)
        if frame is None:
            return None
        assert isinstance(frame.meta, BleAdvMeta)  # the listener takes ble-adv frames only
        return Heard(frame.meta.addr, frame.payload, frame.meta.rssi_dbm, frame.t_sim_ms)

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BleakSource:
    """BLE advertisements from a Bluetooth adapter, through bleak.

    Scans passively where the platform can: Windows, and Linux with BlueZ's advertisement
    monitor (BlueZ 5.56+, filtered on BTHome's service data); when BlueZ refuses, it falls back
    to active scanning and says why in `note`. macOS (CoreBluetooth) scans actively only.
    `scanner_class` stands in for bleak.BleakScanner (tests pass a fake); bleak's event loop runs
    inside recv(), in this thread.
    """

    def __init__(
        self,
        scanner_class: Callable[..., Any] | None = None,
        *,
        passive: bool | None = None,
        adapter: str | None = None,
        platform: str | None = None,
    ) -> None:
        platform = platform or sys.platform
        self._scanner_class = scanner_class
        self._passive = platform != "darwin" if passive is None else passive
        self._adapter = adapter
        self._platform = platform
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Heard] | None = None
        self._scanner: Any = None
        self.mode: str | None = None  # "passive" or "active" once started
        self.note: str | None = None  # why passive scanning was not used, when asked for

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start scanning. ScanError when the adapter cannot be used."""
        from bleak.exc import BleakBluetoothNotAvailableError, BleakError

        cls = self._scanner_class
        if cls is None:
            from bleak import BleakScanner

            cls = BleakScanner
        self._loop = asyncio.new_event_loop()
        self._queue = asyncio.Queue()
        try:
            if self._passive:
                try:
                    self._scanner = self._start(cls, passive=True)
                    self.mode = "passive"
                    return
                except BleakBluetoothNotAvailableError:
                    raise
                except BleakError as exc:
                    self.note = f"passive scanning is not available ({exc}); scanning actively"
            self._scanner = self._start(cls, passive=False)
            self.mode = "active"
        except (BleakError, OSError) as exc:
            self.close()
            why = str(exc.args[0] if exc.args else "") or type(exc).__name__
            if isinstance(exc, OSError) and exc.strerror:
                why = exc.strerror
            if isinstance(exc, FileNotFoundError) and self._platform.startswith("linux"):
                why = "no system D-Bus socket to reach BlueZ (is the bluetooth service running?)"
            raise ScanError(
                f"cannot scan with the Bluetooth adapter: {why}",
                hint="check that an adapter is present and powered on (bluetoothctl show), and "
                "that you may use it; or listen to the virtual air with --sim",
            ) from exc
        except BaseException:  # Ctrl-C while bleak starts: leave nothing running
            self.close()
            raise

    def _start(self, cls: Callable[..., Any], *, passive: bool) -> Any:
        assert self._loop is not None
        bluez: dict[str, Any] = {}
        if self._adapter:
            bluez["adapter"] = self._adapter
        if passive and self._platform.startswith("linux"):
            from bleak.args.bluez import OrPattern
            from bleak.assigned_numbers import AdvertisementDataType

            # BlueZ's passive scanning reports only what matches a pattern: BTHome's UUID at
            # the start of 16-bit-UUID service data.
            bluez["or_patterns"] = [
                OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, UUID_LE)
            ]

        async def create_and_start() -> Any:
            # Created inside the running loop: bleak's backends bind to it on construction.
            scanner = cls(
                detection_callback=self._on_advert,
                scanning_mode="passive" if passive else "active",
                bluez=bluez,
            )
            await scanner.start()
            return scanner

        return self._loop.run_until_complete(create_and_start())

    def _on_advert(self, device: Any, adv: Any) -> None:
        # bleak calls this on its event loop, which only runs inside recv() and start().
        assert self._queue is not None
        self._queue.put_nowait(Heard(str(device.address).upper(), adv_bytes(adv), adv.rssi))

    def recv(self, timeout_s: float | None) -> Heard | None:
        if self._loop is None or self._queue is None or self._scanner is None:
            raise RuntimeError("BleakSource.recv() before start()")
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            return self._loop.run_until_complete(asyncio.wait_for(self._queue.get(), timeout_s))
        except TimeoutError:
            return None

    def close(self) -> None:
        """Stop scanning and release the adapter. Idempotent."""
        from bleak.exc import BleakError

        loop, scanner = self._loop, self._scanner
        self._scanner = self._loop = None
        if loop is None:
            return
        try:
            if scanner is not None:
                with contextlib.suppress(BleakError, OSError):  # adapter gone: nothing to stop
                    loop.run_until_complete(scanner.stop())
            loop.run_until_complete(_cancel_others())
        finally:
            loop.close()


async def _cancel_others() -> None:
    # Tasks left on the loop (a wait cut short by Ctrl-C, bleak's own): cancel and reap them,
    # so that closing the loop does not warn about pending tasks.
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def adv_bytes(adv: Any) -> bytes:
    """Advertising data rebuilt from bleak's AdvertisementData (platforms hand over parsed
    fields, not the bytes): a service data element per 16-bit UUID, then the local name."""
    out = bytearray()
    for uuid, data in adv.service_data.items():
        short = uuid16(uuid)
        if short is None or len(data) + 3 > _MAX_AD_LEN:
            continue
        out += bytes([len(data) + 3, AD_SERVICE_DATA_16]) + short.to_bytes(2, "little") + data
    if adv.local_name:
        name = adv.local_name.encode()[: _MAX_AD_LEN - 1]
        out += bytes([len(name) + 1, AD_COMPLETE_NAME]) + name
    return bytes(out)


def uuid16(uuid: str) -> int | None:
    """The 16-bit UUID a 128-bit one stands for ("0000fcd2-0000-1000-8000-00805f9b34fb" ->
    0xFCD2), or None when it is not in the Bluetooth base UUID."""
    u = uuid.lower()
    if len(u) == 36 and u.startswith("0000") and u.endswith(_BT_BASE_UUID_TAIL):
        return int(u[4:8], 16)
    return None


# ---------------------------------------------------------------------------------------------
# Bind keys


@dataclass(frozen=True)
class Binding:
    """A registered device's BLE address and BTHome bind key."""

    device_id: str
    address: str
    key: bytes = field(repr=False)  # a secret: never printed


class KeyRing:
    """Bind keys by BLE address (upper case)."""

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._by_address = {b.address.upper(): b for b in bindings}

    @classmethod
    def from_registry(cls, registry: Registry) -> "KeyRing":
        """The bind keys of every registry record with a BTHome part and a known address; a
        complete record wins over a pending one at the same address. RegistryError when a
        record's key or address is damaged."""
        chosen: dict[str, tuple[bool, Binding]] = {}
        for device_id, record in sorted(registry.devices().items()):
            ble = record.get("bthome")
            if not isinstance(ble, dict) or not ble.get("ble_address"):
                continue
            try:
                address = str(ble["ble_address"]).upper()
                mac_bytes(address)
                key = bytes.fromhex(str(ble.get("bind_key")))
                if len(key) != KEY_LEN:
                    raise ValueError
            except ValueError:
                raise RegistryError(
                    f"device {device_id} in {registry.path} has a damaged BTHome bind key or "
                    "BLE address",
                    hint=f"mote registry show {device_id} shows the record; provision it again "
                    "with --force",
                ) from None
            complete = record.get("state") == "complete"
            if address in chosen and chosen[address][0] and not complete:
                continue
            chosen[address] = (complete, Binding(device_id, address, key))
        return cls(b for _, b in chosen.values())

    def get(self, address: str) -> Binding | None:
        return self._by_address.get(address.upper())

    def __len__(self) -> int:
        return len(self._by_address)


# ---------------------------------------------------------------------------------------------
# The scanner


@dataclass(frozen=True)
class ScanResult:
    """One BTHome advert (not a repeat of one already reported) and how it arrived."""

    advert: BTHomeAdvert
    rssi: int | None
    device_id: str | None  # from the registry, when it knows the address
    t_wall: float  # time.time() when received
    t_sim_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object `mote scan --json` prints: a contract (docs/bthome.md)."""
        record = self.advert.to_json()
        out: dict[str, Any] = {"address": record.pop("address"), "device_id": self.device_id}
        out["rssi"] = self.rssi
        out["time"] = round(self.t_wall, 3)
        out["t_sim_ms"] = self.t_sim_ms
        out.update(record)
        return out


class Scanner:
    """Decodes, decrypts and de-duplicates what a source hears."""

    def __init__(
        self,
        source: Source,
        keys: KeyRing | None = None,
        *,
        dedupe: bool = True,
        dedupe_window_s: float = DEDUPE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.keys = keys if keys is not None else KeyRing()
        self.dedupe = dedupe
        self.dedupe_window_s = dedupe_window_s
        self._clock = clock
        self._recent: dict[str, collections.OrderedDict[tuple[str, object], float]] = {}
        self.heard = 0  # every advertisement the source delivered
        self.not_bthome = 0  # ... without BTHome service data
        self.repeats = 0  # ... that repeated one already reported

    def poll(self, timeout_s: float | None) -> ScanResult | None:
        """The next new BTHome advert, waiting up to `timeout_s` (None: for ever); None when
        none came in that time."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - self._clock())
            heard = self.source.recv(remaining)
            if heard is None:
                return None
            result = self._decode(heard)
            if result is not None:
                return result
            if deadline is not None and self._clock() >= deadline:
                return None

    def results(self, duration_s: float | None = None) -> Iterator[ScanResult]:
        """New BTHome adverts until `duration_s` has passed (None: for ever)."""
        deadline = None if duration_s is None else self._clock() + duration_s
        while True:
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                return
            result = self.poll(remaining)
            if result is not None:
                yield result

    def _decode(self, heard: Heard) -> ScanResult | None:
        self.heard += 1
        binding = self.keys.get(heard.address)
        advert = decode_adv(heard.address, heard.data, binding.key if binding else None)
        if advert is None:
            self.not_bthome += 1
            return None
        if self.dedupe and self._is_repeat(advert):
            self.repeats += 1
            return None
        device_id = binding.device_id if binding else None
        return ScanResult(advert, heard.rssi, device_id, time.time(), heard.t_sim_ms)

    def _is_repeat(self, advert: BTHomeAdvert) -> bool:
        key: tuple[str, object]
        if advert.encrypted and advert.counter is not None:
            key = ("counter", advert.counter)
        elif advert.packet_id is not None:
            key = ("packet_id", advert.packet_id)
        else:
            key = ("service_data", advert.service_data)
        now = self._clock()
        recent = self._recent.setdefault(advert.address, collections.OrderedDict())
        seen = recent.get(key)
        if seen is not None and now - seen <= self.dedupe_window_s:
            return True
        recent.pop(key, None)
        recent[key] = now
        while len(recent) > _DEDUPE_KEYS:
            recent.popitem(last=False)
        return False
