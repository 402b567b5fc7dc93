"""Deep sleep on the simulated clock, RTC memory, reset causes per port, and the watchdog.

Time is asserted on the simulated clock (the control channel's `status`), never on the wall
clock: with `--speed 3600` an hour of deep sleep passes in a second.
"""

import re
import time

import pytest
from simnode import send_line, status, stop

from host_tools.hil.node import Node
from host_tools.sim.launcher import SimProcess

HOUR_MS = 3_600_000
WAKE = r"motekit: cycle (\d+)\b[^\r\n]*next in (\d+) ms\r\n"
BANNER = r"motekit \S+ board=(\S+) reset=(\w+)\r\n"


def value_of(node: Node, expr: str) -> bytes:
    """Evaluate at the friendly REPL; return the printed value."""
    out = send_line(node, expr)
    assert out.startswith(expr.encode() + b"\r\n"), out
    return out[len(expr) + 2 : -len(b"\r\n>>> ")]


def boot_line(node: Node, timeout: float = 10) -> tuple[str, str]:
    m = re.search(BANNER.encode(), node.read_until(BANNER, timeout=timeout))
    assert m
    return m[1].decode(), m[2].decode()


def wake_line(node: Node, timeout: float = 10) -> tuple[int, int]:
    m = re.search(WAKE.encode(), node.read_until(WAKE, timeout=timeout))
    assert m
    return int(m[1]), int(m[2])


# ---- the firmware's duty cycle --------------------------------------------------------------


def test_firmware_sleeps_an_hour_per_cycle_and_counts_wakes_in_rtc_memory(boot):
    node = boot("sim-esp32", speed=3600)
    node.install_firmware({"version": 2, "sample_period": 3600, "host_wait_ms": 0})
    node.drain()  # open the port before the reset (and empty it): no boot output is missed
    node.hard_reset()

    assert boot_line(node) == ("sim-esp32", "PWRON_RESET")
    assert wake_line(node)[0] == 1
    first_wake_ms = status(node)["sim_ms"]
    for n in (2, 3):
        assert boot_line(node) == ("sim-esp32", "DEEPSLEEP_RESET")
        n_got, sleep_ms = wake_line(node)
        assert n_got == n  # RTC memory kept the counter
        assert HOUR_MS - 5000 < sleep_ms < HOUR_MS  # the period less this wake's awake time
    st = status(node)
    assert st["sim_ms"] - first_wake_ms >= 2 * HOUR_MS  # simulated time, not wall time
    wakes = [h for h in st["history"] if h["kind"] == "deepsleep"]
    assert [h["cause"] for h in wakes] == [4, 4]  # DEEPSLEEP_RESET
    gap_ms = wakes[1]["sim_ms"] - wakes[0]["sim_ms"]
    assert abs(gap_ms - HOUR_MS) < 1000  # wake to wake: one period, whatever the awake time

    # A power cycle loses RTC memory: the counter starts again.
    assert node.sim is not None
    node.sim.control.request("reset", kind="power_on")
    assert boot_line(node) == ("sim-esp32", "PWRON_RESET")
    assert wake_line(node)[0] == 1


def test_deep_sleep_on_rp2_ends_in_a_watchdog_reboot_without_rtc_memory(boot):
    node = boot("sim-rp2", speed=1000)
    send_line(node, "import machine")
    out = send_line(node, "machine.RTC().memory()")
    assert out.endswith(b"AttributeError: 'RTC' object has no attribute 'memory'\r\n>>> "), out
    t0 = status(node)["sim_ms"]
    node.write(b"machine.deepsleep(1000)\r")
    node.read_until(b'Type "help()" for more information.\r\n>>> ')  # it woke and rebooted
    assert value_of(node, "import machine; machine.reset_cause()") == b"3"  # WDT_RESET
    last = status(node)["history"][-1]
    assert (last["kind"], last["cause"]) == ("deepsleep", 3)
    assert last["sim_ms"] - t0 >= 1000
    assert value_of(node, "hasattr(machine, 'DEEPSLEEP_RESET')") == b"False"


def test_deep_sleep_on_esp32_keeps_rtc_memory_until_power_is_lost(boot):
    node = boot("sim-esp32", speed=1000)
    send_line(node, "import machine")
    send_line(node, "machine.RTC().memory(b'kept')")
    t0 = status(node)["sim_ms"]
    node.write(b"machine.deepsleep(5000)\r")
    node.read_until(b"rst:0x5 (DEEPSLEEP_RESET)")
    node.read_until(b'Type "help()" for more information.\r\n>>> ')
    send_line(node, "import machine")
    assert value_of(node, "machine.reset_cause(), machine.wake_reason()") == b"(4, 4)"
    assert value_of(node, "machine.RTC().memory()") == b"b'kept'"
    assert status(node)["history"][-1]["sim_ms"] - t0 >= 5000

    assert node.sim is not None
    node.sim.control.request("reset", kind="power_on")
    node.read_until(b"rst:0x1 (POWERON_RESET)")
    node.read_until(b">>> ")
    send_line(node, "import machine")
    assert value_of(node, "machine.reset_cause(), machine.RTC().memory()") == b"(1, b'')"


def test_deep_sleep_without_a_time_lasts_until_woken(boot):
    node = boot("sim-esp32", speed=1000)
    node.write(b"import machine; machine.deepsleep()\r")
    node.read_until(b"machine.deepsleep()\r\n")
    deadline = time.monotonic() + 5
    while status(node)["mode"] != "asleep":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    st = status(node)
    assert st["wake_at_ms"] is None  # no timer: asleep for good
    node.write(b"lost")  # the UART does not listen while the CPU sleeps
    deadline = time.monotonic() + 5
    while status(node)["uart_rx_dropped"] < st["uart_rx_dropped"] + 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert node.sim is not None
    node.sim.control.request("wake")  # an external wake source (pin, button)
    node.read_until(b"rst:0x5 (DEEPSLEEP_RESET)")
    node.read_until(b">>> ")
    assert value_of(node, "import machine; machine.reset_cause()") == b"4"  # "lost" is gone


def test_a_deep_sleep_resumes_across_a_restart_with_the_same_state(boot, tmp_path):
    # Stopping `mote sim` freezes the virtual world: the next run finishes the sleep, and the
    # wake keeps RTC memory and the simulated clock.
    state = tmp_path / "state"
    node = boot("sim-esp32", "--state", str(state), speed=1)
    send_line(node, "import machine; machine.RTC().memory(b'before the stop')")
    t0 = status(node)["sim_ms"]
    node.write(b"machine.deepsleep(3_600_000)\r")  # an hour at 1x: only a restart can end it
    deadline = time.monotonic() + 5
    while status(node)["mode"] != "asleep":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    stop(node)
    with SimProcess("sim-esp32", state_dir=state, speed=1, baud=0) as sim:
        st = sim.control.request("status")
        assert st["mode"] == "asleep"  # resumed asleep, not powered on
        assert st["sim_ms"] >= t0 and st["wake_at_ms"] >= t0 + 3_600_000 - 1000
        sim.control.request("wake")
        deadline = time.monotonic() + 5
        while sim.control.request("status")["mode"] != "awake":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        resumed = Node(sim.port, node.board, sim)
        try:
            resumed.interrupt_to_repl()
            assert resumed.exec("import machine\nprint(machine.reset_cause())").strip() == "4"
            assert resumed.exec("print(machine.RTC().memory())").strip() == "b'before the stop'"
        finally:
            resumed.close()


# ---- reset kinds ----------------------------------------------------------------------------

# What the ports report (ports/esp32/modmachine.c, ports/rp2/modmachine.c), what the ESP32 mask
# ROM prints, and whether RTC slow memory (esp32) survives.
ESP32_RESETS = {
    "power_on": (1, "rst:0x1 (POWERON_RESET)", False),
    "button": (1, "rst:0x1 (POWERON_RESET)", False),  # EN is a power-on reset on the ESP32
    "brownout": (1, "rst:0xf (RTCWDT_BROWN_OUT_RESET)", False),
    "software": (5, "rst:0xc (SW_CPU_RESET)", True),
    "watchdog": (3, "rst:0xc (SW_CPU_RESET)", True),
}
RP2_CAUSES = {"power_on": 1, "button": 1, "brownout": 1, "software": 3, "watchdog": 3}


def test_esp32_reset_kinds_give_the_ports_cause_rom_line_and_rtc_memory(boot):
    node = boot("sim-esp32")
    assert node.sim is not None
    for kind, (cause, rom_line, keeps) in ESP32_RESETS.items():
        send_line(node, "import machine; machine.RTC().memory(b'rtc')")
        node.sim.control.request("reset", kind=kind)
        out = node.read_until(b"for more information.\r\n>>> ")
        assert f"\r\n{rom_line},boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n".encode() in out, kind
        send_line(node, "import machine")
        got = value_of(node, "machine.reset_cause(), machine.RTC().memory()")
        assert got == f"({cause}, {b'rtc' if keeps else b''!r})".encode(), kind


def test_rp2_reset_kinds_give_the_ports_cause(boot):
    node = boot("sim-rp2")
    assert node.sim is not None
    for kind, cause in RP2_CAUSES.items():
        node.sim.control.request("reset", kind=kind)
        out = node.read_until(b"for more information.\r\n>>> ")
        assert out.startswith(b"MicroPython v"), out  # no ROM line on the RP2040
        assert value_of(node, "import machine; machine.reset_cause()") == b"%d" % cause, kind


# ---- watchdog -----------------------------------------------------------------------------


@pytest.mark.parametrize("board", ["sim-esp32", "sim-rp2"])
def test_watchdog_not_fed_reboots_the_node_with_wdt_reset(boot, board):
    node = boot(board)
    send_line(node, "import machine")
    before = status(node)
    send_line(node, "w = machine.WDT(timeout=500)")
    out = node.read_until(b'Type "help()" for more information.\r\n>>> ', timeout=10)
    if board == "sim-esp32":
        assert b"rst:0xc (SW_CPU_RESET)" in out  # the ESP32 ROM's code for a WDT reset
    assert value_of(node, "import machine; machine.reset_cause()") == b"3"  # WDT_RESET
    last = status(node)["history"][-1]
    assert (last["kind"], last["cause"]) == ("watchdog", 3)
    assert last["sim_ms"] - before["sim_ms"] >= 500


def test_watchdog_fed_regularly_does_not_reboot(boot):
    node = boot("sim-esp32", speed=10)  # sleeps 10x faster: 3 simulated seconds in 0.3 s
    node.write(
        b"import machine, time; w = machine.WDT(timeout=500); t0 = time.ticks_ms()\r"
        b"for i in range(30): w.feed(); time.sleep_ms(100)\r\r"
        b"print('fed', i + 1, time.ticks_diff(time.ticks_ms(), t0))\r"
    )
    # The same interpreter finishing the loop proves it was never reset while fed...
    out = node.read_until(r"fed 30 \d+\r\n>>> ", timeout=10)
    elapsed_ms = int(out.split(b"fed 30 ")[1].split(b"\r")[0])
    assert elapsed_ms >= 3000  # ...for six timeouts' worth of simulated time
    # And the watchdog was really armed: left alone now, it fires.
    node.read_until(b"rst:0xc (SW_CPU_RESET)", timeout=10)
    last = status(node)["history"][-1]
    assert (last["kind"], last["cause"]) == ("watchdog", 3)
