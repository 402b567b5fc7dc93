"""The virtual board's supervisor: one select loop that plays the board around the interpreter.

It owns the pty (the USB-serial bridge), the simulated clock, the flash image, the RTC memory,
the watchdog and the device models, boots a NodeProcess for every reset or wake, and answers the
node's link requests. Single-threaded on purpose: every event is handled in arrival order.
"""

import json
import os
import select
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from host_tools.boards import Board
from host_tools.sim import link
from host_tools.sim.air import Air, AirNode
from host_tools.sim.clock import SimClock
from host_tools.sim.hw_link import HardwareLink
from host_tools.sim.node import ROM_DIR, NodeProcess, preload_modules
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.radio_link import BleAdvertiser, LoraLink, soldered_radio
from host_tools.sim.resets import reset_info
from host_tools.sim.serial_port import PtyPort
from host_tools.sim.state import RTC_EPOCH_2000, StateDir

# Room for the ROM and shims on top of the board's heap (rom/_rom.py sizes a ballast so that
# user code sees the board's figure).
_ROM_HEAP_ALLOWANCE = 160 * 1024
# What a real port has already allocated by the time main.py runs.
_BOOT_ALLOC_BYTES = 2048
# The interpreter is 64-bit: its objects are twice a board's size in words, and its GC blocks
# (4 words, MICROPY_BYTES_PER_GC_BLOCK) are 32 bytes where a board's are 16. User code gets the
# board's number of GC blocks, so every object takes as many blocks as on the board; `gc` shows
# the board's bytes (rom/_gc.py). docs/virtual-board.md, "Heap".
_HEAP_SCALE = 2
_CRASH_LIMIT = 5  # unexpected interpreter exits within _CRASH_WINDOW_S before we stop rebooting
_CRASH_WINDOW_S = 5.0

Log = Callable[[str], None]


def _stderr_log(msg: str) -> None:
    print(f"[sim] {msg}", file=sys.stderr, flush=True)


class VirtualBoard:
    def __init__(
        self,
        board: Board,
        state: StateDir,
        *,
        speed: float = 1.0,
        baud: int = 115200,
        log: Log = _stderr_log,
        air: str | None = None,
        script: str | None = None,
        host_mounts: list[tuple[str, str]] | None = None,
    ) -> None:
        self.board = board
        self.port_name: str = board["port"]
        self.state = state
        self.log = log
        self.power = state.load_power(board["unique_id_bytes"])
        self.clock = SimClock(speed, self.power.sim_ms)
        state.ensure_flash(board["flash"]["fs_bytes"])
        self.pty = PtyPort(baud)
        self.hw = BoardHardware(board, environment=Environment(**self.power.environment))
        self.node: NodeProcess | None = None
        self.mode = "off"  # off | awake | asleep | bootloader | halted
        self.reset_cause = 0
        self.boot_sim_ms = 0.0
        self.intr_on = False
        self.wake_at_ms: float | None = None
        self.wake_at_real: float | None = None
        self.wdt_timeout_ms: int | None = None
        self.wdt_deadline_ms = 0.0
        self.flash_writes = 0
        self.cut_power_at: int | None = None
        self.rtc_memory = bytes.fromhex(self.power.rtc_memory_hex)
        self.freq_hz = board["default_freq_hz"]
        self.uart_rx_dropped = 0
        self.history: list[dict[str, Any]] = []  # one entry per boot, for status and tests
        self._link_buf = bytearray()
        self._stdin_queue = bytearray()
        self._crashes: list[float] = []
        self._expected_exit = False
        self.extra_fds: dict[int, Callable[[], None]] = {}  # control channel, air, ...
        # Script mode: run one file instead of boot.py/main.py/REPL, then stop.
        self.script = script
        self.host_mounts = host_mounts or []
        self.script_exit: int | None = None
        self.output_tap: Callable[[bytes], None] | None = None
        self.link_handlers: dict[int, Callable[[link.Request], Any]] = {}
        self.link_handlers.update(HardwareLink(board, self.hw).handlers())
        self.node_id = f"{board['name']}-{self.power.unique_id_hex}"
        self.air_node: AirNode | None = None
        self.ble: BleAdvertiser | None = None
        if air is not None and board.get("radios"):
            self.air_node = AirNode(Air(air or None), self.node_id)
        if "ble" in board.get("radios", ()):
            if self.air_node is not None:
                self.ble = BleAdvertiser(
                    self.air_node, bytes.fromhex(self.power.unique_id_hex), self.clock
                )
                self.link_handlers[link.OP_BLE_ADV] = self.ble.handle
            else:
                self.link_handlers[link.OP_BLE_ADV] = lambda req: None  # radio with no air
        # LoRa: the board's soldered chip (pins.radio), and any radio model attached later.
        self.lora: list[LoraLink] = []
        if board["pins"].get("radio") is not None:
            self.add_lora(soldered_radio(board, self.hw, self.clock))

    def add_lora(self, model: Any) -> Any:
        """Connect a LoRa radio model on this board to the board's air (if any)."""
        self.lora.append(LoraLink(model, self.air_node))
        return model

    # ---- power and resets -------------------------------------------------------------

    def start(self) -> None:
        """Resume from the saved power state: finish a deep sleep, or power on."""
        if self.power.asleep_until_ms is not None or self.power.sleeping_forever:
            self._enter_sleep(self.power.asleep_until_ms)
            self.log("resuming deep sleep")
        else:
            self.boot("power_on")

    def boot(self, kind: str, repl_mode: str = "friendly") -> None:
        """Start the interpreter after a reset of `kind` (see resets.KINDS) or a soft reboot."""
        self._stop_node()
        self.wake_at_ms = self.wake_at_real = None
        self.power.asleep_until_ms = None
        self.power.sleeping_forever = False
        if kind != "soft":
            info = reset_info(self.port_name, kind)
            self.reset_cause = info.cause
            if not info.keeps_rtc_memory:
                self.rtc_memory = b""
            if kind in ("power_on", "button", "brownout"):
                self.power.rtc_offset_s = RTC_EPOCH_2000 - self.clock.now_ms() / 1000
            self.boot_sim_ms = self.clock.now_ms()
            self.hw.cpu_reset()  # pins released: the sensor rail goes off
            self.wdt_timeout_ms = None
            self.freq_hz = self.board["default_freq_hz"]
            if info.rom_line:
                self._uart_tx(info.rom_line.encode())
        self.power.boots += 1
        self.history.append(
            {"kind": kind, "cause": self.reset_cause, "sim_ms": self.clock.now_ms()}
        )
        self.intr_on = False
        self._link_buf.clear()
        self._stdin_queue.clear()
        params = self._boot_params(repl_mode)
        self.state.boot_params_path.write_text(json.dumps(params))
        heap = self.board["micropython"]["heap_bytes"] * _HEAP_SCALE + _ROM_HEAP_ALLOWANCE
        self.node = NodeProcess(self.state.boot_params_path, heap, params["heap_free_bytes"])
        self.node.start()
        self.mode = "awake"

    def _boot_params(self, repl_mode: str) -> dict[str, Any]:
        b = self.board
        fl = b["flash"]
        return {
            "board": {
                "name": b["name"],
                "port": b["port"],
                "mcu": b["mcu"],
                "pins": b["pins"],
                "gpio": b["gpio"],
                "input_only_gpio": b.get("input_only_gpio", []),
                "freqs_hz": b["freqs_hz"],
            },
            "flash": {
                "path": str(self.state.flash_path),
                "block_size": fl["fs_block_size"],
                "block_count": fl["fs_bytes"] // fl["fs_block_size"],
            },
            "rom_dir": str(ROM_DIR),
            "preload": preload_modules(b, self.script is not None),
            "repl_mode": repl_mode,
            "reset_cause": self.reset_cause,
            "rtc_memory": list(self.rtc_memory),
            "unique_id": list(bytes.fromhex(self.power.unique_id_hex)),
            "freq_hz": self.freq_hz,
            "heap_bytes": b["micropython"]["heap_bytes"],
            "heap_free_bytes": (b["micropython"]["heap_bytes"] - _BOOT_ALLOC_BYTES) * _HEAP_SCALE,
            "heap_scale": _HEAP_SCALE,
            "clock": self.clock.node_params(self.boot_sim_ms, self.power.rtc_offset_s),
            "script": self.script,
            "host_mounts": self.host_mounts,
        }

    def _stop_node(self) -> None:
        if self.node is not None:
            self._expected_exit = True
            tail = self.node.kill()
            if tail:
                self._uart_tx(tail)
            self.node = None
        self.intr_on = False
        if self.ble is not None:
            self.ble.stop()  # the controller stops advertising when the CPU resets or sleeps

    def _enter_sleep(self, until_ms: float | None) -> None:
        self._stop_node()
        self.hw.cpu_reset()  # deep sleep releases the GPIOs (no gpio hold modelled)
        self.mode = "asleep"
        self.wake_at_ms = until_ms
        if until_ms is None:
            self.wake_at_real = None
        else:
            self.wake_at_real = time.monotonic() + self.clock.real_seconds(
                until_ms - self.clock.now_ms()
            )
        self.power.asleep_until_ms = until_ms
        self.power.sleeping_forever = until_ms is None
        self.save()

    def reset(self, kind: str = "button") -> None:
        self.boot(kind)

    def power_off(self) -> None:
        self._stop_node()
        self.mode = "off"
        self.rtc_memory = b""
        self.hw.power_on_reset()  # the sensors lose power too

    def power_cycle(self, kind: str = "power_on") -> None:
        self.power_off()
        self.boot(kind)

    def wake(self) -> None:
        """An external wake source (pin, button) ends a deep sleep now."""
        if self.mode == "asleep":
            self.boot("deepsleep")

    def cut_power_at_write(self, n: int) -> None:
        """Lose power during the n-th flash program/erase from now (1 = the next one)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self.cut_power_at = self.flash_writes + n

    # ---- the loop ---------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.step(0.2)

    def step(self, max_wait: float) -> None:
        rfds: list[int] = [*self.extra_fds]
        timeout = max_wait
        # The host's bytes pass at the wire rate: select on them only when one may pass now.
        if (rx_wait := self.pty.input_wait_s()) > 0:
            timeout = min(timeout, rx_wait)
        else:
            rfds.append(self.pty.master)
        air_fd = self.air_node.fileno() if self.air_node is not None else -1
        if air_fd >= 0:
            rfds.append(air_fd)
        wfds: list[int] = []
        node = self.node
        if node is not None:
            rfds += [node.stdout_fd, node.link_in_fd]
            if self._stdin_queue:
                wfds.append(node.stdin_fd)
        if self.pty.pending_output():
            timeout = min(timeout, self.pty.wait_s())
        if self.wake_at_real is not None:
            timeout = min(timeout, max(0.0, self.wake_at_real - time.monotonic()))
        if self.ble is not None and (due := self.ble.next_due()) is not None:
            timeout = min(timeout, max(0.0, due - time.monotonic()))
        for lora in self.lora:
            if (due := lora.next_due(self.clock)) is not None:
                timeout = min(timeout, max(0.0, due - time.monotonic()))
        if self.wdt_timeout_ms is not None and self.mode == "awake":
            timeout = min(timeout, max(0.0, (self.wdt_deadline_ms - self.clock.now_ms()) / 1000))
        readable, writable, _ = select.select(rfds, wfds, [], timeout)
        for fd in readable:
            if fd in self.extra_fds:
                self.extra_fds[fd]()
        if air_fd in readable:
            self._air_frames()
        if node is not None and node is self.node:
            if node.stdout_fd in readable:
                self._read_uart_tx(node)
            if self.node is node and node.link_in_fd in readable:
                self._read_link(node)
            if self.node is node and node.stdin_fd in writable:
                self._flush_stdin(node)
        if self.pty.master in readable:
            self._uart_rx(self.pty.read_input())
        self._timers()
        self.pty.pump_output()

    def _air_frames(self) -> None:
        # LoRa frames for this node (downlinks, and uplinks on a set_lora_rx channel): every
        # radio model hears them; whether it is listening then is the model's business.
        assert self.air_node is not None
        while (frame := self.air_node.recv_nowait()) is not None:
            for lora in self.lora:
                lora.deliver(frame)

    def _timers(self) -> None:
        if self.ble is not None:
            self.ble.tick()
        for lora in self.lora:
            lora.tick()  # a TX ends on the air on time, even when the node does not poll
        wake_at = self.wake_at_real
        if self.mode == "asleep" and wake_at is not None and time.monotonic() >= wake_at:
            assert self.wake_at_ms is not None
            self.clock.advance_to(self.wake_at_ms)
            self.boot("deepsleep")
        wdt = self.wdt_timeout_ms is not None and self.mode == "awake"
        if wdt and self.clock.now_ms() > self.wdt_deadline_ms:
            self.log("watchdog expired")
            self.boot("watchdog")
        if self.node is not None and not self.node.alive():
            self._unexpected_exit(self.node)

    def _unexpected_exit(self, node: NodeProcess) -> None:
        tail = node.kill()
        self._uart_tx(tail)
        self.node = None
        status = node.exit_status
        if self.script is not None:
            self.log(f"interpreter exited unexpectedly (wait status {status})")
            self.script_exit = 2
            self.mode = "exited"
            return
        self.log(f"interpreter exited unexpectedly (wait status {status}); rebooting")
        now = time.monotonic()
        self._crashes = [t for t in self._crashes if now - t < _CRASH_WINDOW_S] + [now]
        if len(self._crashes) >= _CRASH_LIMIT:
            self.log("interpreter keeps crashing: node halted until reset")
            self.mode = "halted"
            return
        self.boot("software")

    # ---- UART -------------------------------------------------------------------------

    def _read_uart_tx(self, node: NodeProcess) -> None:
        try:
            data = os.read(node.stdout_fd, 65536)
        except BlockingIOError:
            return
        if data:
            self._uart_tx(data)

    def _uart_tx(self, data: bytes) -> None:
        if self.output_tap is not None:
            self.output_tap(data)
        self.pty.queue_output(data)

    def _uart_rx(self, data: bytes) -> None:
        if not data:
            return
        node = self.node
        if node is None or self.mode != "awake":
            self.uart_rx_dropped += len(data)  # the CPU is not listening
            return
        for b in data:
            if b == 0x03 and self.intr_on and node.sigint_handled():
                node.interrupt()
            else:
                self._stdin_queue.append(b)
        self._flush_stdin(node)

    def _flush_stdin(self, node: NodeProcess) -> None:
        if not self._stdin_queue:
            return
        try:
            n = os.write(node.stdin_fd, self._stdin_queue)
        except BlockingIOError:
            return
        except BrokenPipeError:
            self._stdin_queue.clear()
            return
        del self._stdin_queue[:n]

    # ---- link -------------------------------------------------------------------------

    def _read_link(self, node: NodeProcess) -> None:
        try:
            chunk = os.read(node.link_in_fd, 65536)
        except BlockingIOError:
            return
        self._link_buf += chunk
        try:
            for req in link.parse_requests(self._link_buf):
                reply = self._handle(req)
                if self.node is not node:
                    return  # the request reset or slept the node
                if req.wants_reply:
                    status, payload = reply if isinstance(reply, tuple) else (link.OK, reply or b"")
                    os.write(node.link_out_fd, link.encode_reply(req.seq, status, payload))
        except link.LinkError as exc:
            self.log(f"link error: {exc}; rebooting")
            self.boot("software")

    def _handle(self, req: link.Request) -> Any:
        op, p = req.op, req.payload
        if op == link.OP_INTR:
            self.intr_on = p == b"\x01"
        elif op == link.OP_SKIP:
            self.clock.skip(struct.unpack("<d", p)[0])
        elif op == link.OP_DEEPSLEEP:
            (ms,) = struct.unpack("<q", p)
            self._enter_sleep(None if ms < 0 else self.clock.now_ms() + ms)
        elif op == link.OP_RESET:
            self.boot("software")
        elif op == link.OP_SOFT_RESET:
            self.boot("soft", "raw" if p == b"r" else "friendly")
        elif op == link.OP_BOOTLOADER:
            self._stop_node()
            self.mode = "bootloader"
        elif op == link.OP_WDT_ARM:
            (self.wdt_timeout_ms,) = struct.unpack("<I", p)
            self.wdt_deadline_ms = self.clock.now_ms() + self.wdt_timeout_ms
        elif op == link.OP_WDT_FEED:
            if self.wdt_timeout_ms is not None:
                self.wdt_deadline_ms = self.clock.now_ms() + self.wdt_timeout_ms
        elif op == link.OP_RTC_MEM:
            self.rtc_memory = p
        elif op == link.OP_FLASH_WRITE:
            self.flash_writes += 1
            if self.cut_power_at is not None and self.flash_writes >= self.cut_power_at:
                self.cut_power_at = None
                return (link.NACK, b"")
        elif op == link.OP_POWER_CUT:
            self.log(f"power cut during flash write #{self.flash_writes}")
            self.power_cycle()
        elif op == link.OP_EXIT and self.script is not None:
            self.script_exit = p[0]
            self._stop_node()
            self.mode = "exited"
        elif op in self.link_handlers:
            return self.link_handlers[op](req)
        else:
            self.log(f"unknown link op 0x{op:02x}")
            return (link.NACK, b"")
        return None

    # ---- status and persistence -----------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "board": self.board["name"],
            "pty": self.pty.path,
            "mode": self.mode,
            "reset_cause": self.reset_cause,
            "boots": self.power.boots,
            "sim_ms": self.clock.now_ms(),
            "speed": self.clock.speed,
            "wake_at_ms": self.wake_at_ms,
            "flash_writes": self.flash_writes,
            "rtc_memory_len": len(self.rtc_memory),
            "uart_rx_dropped": self.uart_rx_dropped,
            "history": self.history[-20:],
            "node_id": self.node_id,
            "unique_id": self.power.unique_id_hex,
            "ble_adv_sent": self.ble.sent if self.ble is not None else 0,
            "lora_sent": sum(lora.sent for lora in self.lora),
            "hardware": self.hw.describe(),
        }

    def save(self) -> None:
        self.power.sim_ms = self.clock.now_ms()
        self.power.rtc_memory_hex = self.rtc_memory.hex()
        self.power.environment = self.hw.environment.snapshot()
        self.state.save_power(self.power)

    def close(self) -> None:
        was_awake = self.mode == "awake"
        self._stop_node()
        if was_awake:
            self.power.asleep_until_ms = None
        self.save()
        self.pty.close()
        if self.air_node is not None:
            self.air_node.close()
