"""The virtual board's serial line byte for byte: friendly REPL, Ctrl-C, paste mode, raw REPL,
raw-paste flow control, soft reset, the wire-rate throttle, and the heap user code sees.

Each test starts its own `mote sim` (SimProcess) and talks to the pty like a terminal or
mpremote would, waiting on what the node prints. Expected bytes follow MicroPython's pyexec.c
and readline.c, which the ROM (host_tools/sim/rom/_rom.py) reproduces.
"""

import os
import re
import select
import struct
import time

import pytest
from simnode import at_repl, boots, send_line

from host_tools.boards import load_board
from host_tools.hil.node import Node
from host_tools.sim.serial_port import PtyPort

BOARDS = ("sim-esp32", "sim-rp2")
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
# MicroPython's banner: version, build date, board and MCU, then help line and prompt.
BANNER = (
    rb"MicroPython v\d+\.\d+\.\d+\S* on \d{4}-\d\d-\d\d; [^\r\n]+ with (\w+)\r\n"
    rb'Type "help\(\)" for more information\.\r\n>>> '
)
MCU = {"sim-esp32": b"ESP32", "sim-rp2": b"RP2040"}
# machine.reset() (a software reset) as each port reports it: SOFT_RESET on esp32, WDT_RESET on rp2.
SOFTWARE_RESET_CAUSE = {"sim-esp32": 5, "sim-rp2": 3}


# ---- friendly REPL ----------------------------------------------------------------------


@pytest.mark.parametrize("board", BOARDS)
def test_reset_button_prints_rom_line_banner_and_prompt(boot, board):
    node = boot(board)
    assert node.sim is not None
    node.sim.control.request("reset", kind="button")
    out = node.read_until(b">>> ")
    m = re.search(BANNER + b"$", out)
    assert m, out
    assert m[1] == MCU[board]
    before_banner = out[: m.start()]
    if board == "sim-esp32":
        # The ESP32 mask ROM's reset report comes first: the EN button is a power-on reset.
        assert b"\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n" in before_banner
    else:
        assert before_banner == b""  # the RP2040 boot ROM prints nothing


def test_repl_echoes_input_and_prints_expression_values(boot):
    node = boot()
    assert send_line(node, "1 + 2") == b"1 + 2\r\n3\r\n>>> "
    assert send_line(node, "x = 'ab' * 2") == b"x = 'ab' * 2\r\n>>> "  # statements print nothing
    assert send_line(node, "x") == b"x\r\n'abab'\r\n>>> "
    assert send_line(node, "None") == b"None\r\n>>> "  # None is not echoed back


def test_for_block_continues_with_auto_indent_until_dedented(boot):
    node = boot()
    node.write(b"for i in range(3):\r")
    assert node.read_until(b"... ") == b"for i in range(3):\r\n... "
    assert node.read_until(b"    ") == b"    "  # auto-indent after the colon
    node.write(b"print(i * i)\r")
    assert node.read_until(b"...     ") == b"print(i * i)\r\n...     "
    # Backspace takes the auto-indent back (readline.c removes 4 spaces at once), then an empty
    # line ends the block: the documented way to finish a block at the REPL.
    node.write(b"\x7f\r")
    out = node.read_until(b">>> ")
    assert out.endswith(b"\r\n0\r\n1\r\n4\r\n>>> "), out


def test_auto_indent_matches_micropython_readline(boot):
    # MicroPython's own test tests/cmdline/repl_autoindent.py and its expected output, with the
    # cursor movements (\b, ESC[K) removed as its test runner does.
    node = boot()
    typed = "if 1:\rprint(1)\r\r\r\rif 0:\r  print(2)\relse:\r  print(3)\r\r"
    typed += "if 0:\r\tprint(4)\relse:\r\tprint(5)\r\r"
    expected = (
        "if 1:\n...     print(1)\n...     \n...     \n... \n1\n>>> "
        "if 0:\n...      print(2)\n... else:\n...   print(3)\n... \n3\n>>> "
        "if 0:\n...     print(4)\n... else:\n...     print(5)\n... \n5\n>>> "
    )
    node.write(typed.encode())
    out = b"".join(node.read_until(b">>> ") for _ in range(3))
    shown = out.replace(b"\x1b[K", b"").replace(b"\b", b"").replace(b"\r\n", b"\n")
    assert shown.decode() == expected


def test_ctrl_c_interrupts_a_running_loop_and_returns_to_the_prompt(boot):
    node = boot()
    before = boots(node)
    node.write(b"\x05")  # paste mode: define spin() in one go
    node.read_until(b"=== ")
    node.write(b"def spin():\r    print('spin' + 'ning')\r    while True: pass\r\x04")
    node.read_until(b">>> ")
    node.write(b"spin()\r")
    node.read_until(b"spinning\r\n")  # the loop is running now
    node.write(b"\x03")
    assert node.read_until(b">>> ") == (
        b"Traceback (most recent call last):\r\n"
        b'  File "<stdin>", line 1, in <module>\r\n'
        b'  File "<stdin>", line 3, in spin\r\n'
        b"KeyboardInterrupt: \r\n>>> "
    )
    assert send_line(node, "spin.__name__") == b"spin.__name__\r\n'spin'\r\n>>> "  # RAM kept
    assert boots(node) == before  # interrupted, not rebooted


def test_ctrl_c_is_ordinary_data_after_kbd_intr_disabled(boot):
    node = boot()
    before = boots(node)
    send_line(node, "import micropython, sys")
    send_line(node, "micropython.kbd_intr(-1)")
    node.write(b"print('rea' + 'dy'); b = sys.stdin.buffer.read(1)\r")
    node.read_until(b"ready\r\n")  # now blocked in read(1)
    node.write(b"\x03")
    assert node.read_until(b">>> ") == b">>> "  # read(1) returned; no traceback
    assert send_line(node, "b") == b"b\r\nb'\\x03'\r\n>>> "
    assert boots(node) == before  # the byte did not kill or reset the node


def test_ctrl_b_prints_the_banner_and_keeps_state(boot):
    node = boot("sim-rp2")
    send_line(node, "kept = 5")
    node.write(b"\x02")
    out = node.read_until(b">>> ")
    assert re.fullmatch(b"\r\n" + BANNER, out), out
    assert send_line(node, "kept") == b"kept\r\n5\r\n>>> "


def test_paste_mode_runs_an_indented_block(boot):
    node = boot()
    node.write(b"\x05")
    assert node.read_until(b"=== ") == b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
    node.write(b"for i in range(2):\r    print('p', i * 10)\r")
    assert node.read_until(b"=== ", timeout=5) == b"for i in range(2):\r\n=== "
    assert node.read_until(b"=== ") == b"    print('p', i * 10)\r\n=== "
    node.write(b"\x04")
    assert node.read_until(b">>> ") == b"\r\np 0\r\np 10\r\n>>> "


def test_paste_mode_ctrl_c_cancels_without_running(boot):
    node = boot()
    node.write(b"\x05")
    node.read_until(b"=== ")
    node.write(b"ran = True\r\x03")
    node.read_until(b">>> ")
    out = send_line(node, "'ran' in globals()")
    assert out == b"'ran' in globals()\r\nFalse\r\n>>> "


# ---- raw REPL and raw-paste ---------------------------------------------------------------


def test_raw_repl_protocol(boot):
    node = boot()
    node.write(b"\x01")
    assert node.read_until(RAW_BANNER) == b"\r\n" + RAW_BANNER
    node.write(b"print('raw', 6 * 7)\x04")  # nothing is echoed in the raw REPL
    # OK, stdout, EOF, stderr (empty), EOF, then the next prompt.
    assert node.read_until(b"\x04>") == b"OKraw 42\r\n\x04\x04>"
    node.write(b"1/0\x04")
    assert node.read_until(b"\x04>") == (
        b"OK\x04Traceback (most recent call last):\r\n"
        b'  File "<stdin>", line 1, in <module>\r\n'
        b"ZeroDivisionError: divide by zero\r\n\x04>"
    )
    node.write(b"x = 1\rprint(x + 1)\x04")  # several lines in one go
    assert node.read_until(b"\x04>") == b"OK2\r\n\x04\x04>"
    node.write(b"\x02")  # back to the friendly REPL
    out = node.read_until(b">>> ")
    assert re.fullmatch(b"\r\n" + BANNER, out), out


def raw_paste(node: Node, program: bytes) -> tuple[bytes, bytes, int, int]:
    """Upload `program` in raw-paste mode as mpremote does; return (out, err, window, grants).

    Byte-level, straight on the port: call it at the raw REPL's ">" with nothing unread.
    """
    ser = node.serial
    ser.timeout = 10

    def expect(marker: bytes) -> bytes:
        data = ser.read_until(marker)
        assert data.endswith(marker), data
        return data

    ser.write(b"\x05A\x01")
    assert ser.read(2) == b"R\x01"  # raw-paste supported
    window = struct.unpack("<H", ser.read(2))[0]
    assert ser.read(1) == b"\x01"  # a second window granted up front
    remain, grants, i = 2 * window, 1, 0
    while i < len(program):
        while remain == 0 or ser.in_waiting:
            c = ser.read(1)
            assert c == b"\x01", f"unexpected {c!r} during raw-paste upload"
            remain += window
            grants += 1
        chunk = program[i : i + remain]
        ser.write(chunk)
        i += len(chunk)
        remain -= len(chunk)
    ser.write(b"\x04")  # end of data
    # The device acknowledges the end, runs the code, then stdout, EOF, stderr, EOF, prompt.
    ack = expect(b"\x04")
    assert set(ack[:-1]) <= {1}, ack  # only late window grants before the acknowledgement
    out = expect(b"\x04")[:-1]
    err = expect(b"\x04")[:-1]
    assert ser.read(1) == b">"
    return out, err, window, grants


def test_raw_paste_runs_a_program_many_flow_control_windows_long(boot):
    node = boot()
    node.write(b"\x01")
    node.read_until(RAW_BANNER)
    lines = ["total = 0"] + [f"total += {i}  # {'padding ' * 5}" for i in range(100)]
    program = ("\n".join(lines) + "\nprint('total', total)\n").encode()
    assert len(program) > 5000
    out, err, window, grants = raw_paste(node, program)
    assert (out, err) == (b"total 4950\r\n", b"")
    assert window == 128  # half of MICROPY_REPL_STDIN_BUFFER_MAX, as on the ports
    # The node granted a window for every `window` bytes it consumed.
    assert grants >= len(program) // window
    # And the raw REPL still works after the upload.
    node.write(b"print(total - 4950)\x04")
    assert node.read_until(b"\x04>") == b"OK0\r\n\x04\x04>"


def test_raw_paste_reports_a_syntax_error_on_stderr(boot):
    node = boot("sim-rp2")
    node.write(b"\x01")
    node.read_until(RAW_BANNER)
    out, err, _, _ = raw_paste(node, b"print('never')\nx = (1,\n")
    assert out == b""
    assert err.startswith(b'Traceback (most recent call last):\r\n  File "<stdin>", line ')
    assert err.endswith(b"SyntaxError: invalid syntax\r\n")


# ---- soft reset ---------------------------------------------------------------------------


def write_boot_files(node: Node) -> None:
    node.exec(
        "with open('boot.py', 'w') as f:\n    f.write(\"print('boot' + '-ran')\\n\")\n"
        "with open('main.py', 'w') as f:\n    f.write(\"print('main' + '-ran')\\n\")\n"
    )


@pytest.mark.parametrize("board", BOARDS)
def test_ctrl_d_soft_reboots_through_boot_and_main_and_keeps_the_reset_cause(boot, board):
    node = boot(board)
    write_boot_files(node)
    node.leave_raw_repl()
    # Make the hardware reset cause something other than the power-on default first.
    node.write(b"import machine; machine.reset()\r")
    node.read_until(b"main-ran\r\n")
    node.read_until(b">>> ")
    assert send_line(node, "import machine; machine.reset_cause()").endswith(
        b"\r\n%d\r\n>>> " % SOFTWARE_RESET_CAUSE[board]
    )
    send_line(node, "left_behind = 42")
    before = boots(node)
    node.write(b"\x04")
    out = node.read_until(b">>> ")
    m = re.fullmatch(b"\r\nMPY: soft reboot\r\nboot-ran\r\nmain-ran\r\n" + BANNER, out)
    assert m, out  # no chip ROM line: a soft reset does not reset the chip
    assert boots(node) == before + 1
    out = send_line(node, "import machine; 'left_behind' in globals(), machine.reset_cause()")
    assert out.endswith(b"\r\n(False, %d)\r\n>>> " % SOFTWARE_RESET_CAUSE[board])


def test_soft_reset_from_raw_repl_runs_boot_only_and_stays_raw(boot):
    node = boot()
    write_boot_files(node)  # leaves the node in the raw REPL
    node.read_until(b">")  # mpremote's exec leaves the next raw prompt unread
    node.write(b"left_behind = 1\x04")
    node.read_until(b"\x04>")
    node.write(b"\x04")  # Ctrl-D on an empty raw line: soft reset
    out = node.read_until(RAW_BANNER)
    assert out == b"OK\r\nMPY: soft reboot\r\nboot-ran\r\n" + RAW_BANNER  # main.py skipped
    node.write(b"print('left_behind' in globals())\x04")
    assert node.read_until(b"\x04>") == b"OKFalse\r\n\x04\x04>"


# ---- wire rate and heap -------------------------------------------------------------------


def test_output_is_throttled_to_the_wire_rate(boot):
    node = boot(baud=115200)  # 11,520 bytes/s with 8N1 framing
    n = 5760
    start = time.monotonic()
    node.write(b"print('x' * %d)\r" % n)
    out = node.read_until(b">>> ", timeout=10)
    elapsed = time.monotonic() - start
    assert out.count(b"x") == n + 1  # the output and the echoed "'x'"
    # Half a second of wire time at least (a 64-byte burst allowance aside).
    assert elapsed >= (len(out) - 64) / 11520, elapsed


def test_input_past_the_wire_rate_waits_unread_so_the_supervisor_does_not_spin():
    # The host may write faster than the wire carries: what is over the allowance stays in the
    # pty, which is then still readable. The supervisor selects on the master only when
    # input_wait_s() is 0; otherwise it sleeps that long (it spun at 100 % CPU during deploys).
    port = PtyPort(115200)
    slave = os.open(port.path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(slave, b"z" * 1000)
        time.sleep(0.05)
        got = port.read_input()
        assert 0 < len(got) < 1000  # the burst allowance, not all of it
        wait = port.input_wait_s()
        assert 0 < wait <= 1.5 / 11520  # about one byte's time at 11,520 bytes/s
        assert select.select([port.master], [], [], 0)[0]  # the rest is waiting in the pty
        time.sleep(0.01)  # a hundred bytes' time
        assert port.input_wait_s() == 0
        assert 50 <= len(port.read_input()) <= 1000 - len(got)
    finally:
        os.close(slave)
        port.close()


LINE = b"%06d" + b"y" * 73  # 81 bytes a line


def test_unthrottled_output_reaches_a_slower_reader_in_full(boot):
    # At --baud 0 the node writes far faster than a tool reads; nothing may be lost while the
    # tool keeps reading (regression: the pty filled up and the supervisor flushed it).
    node = boot()
    node.write(b"for i in range(2000): print('%06d' % i + 'y' * 73)\r\r")
    out = node.read_until(b">>> ", timeout=30)
    lines = [line for line in out.split(b"\r\n") if line.endswith(b"y" * 73)]
    assert lines == [LINE % i for i in range(2000)]  # 162 KB, complete and in order


def test_output_nobody_reads_does_not_block_the_node(boot):
    node = boot()
    node.write(b"for i in range(4000): print('%06d' % i + 'y' * 73)\r\rdone = True\r")
    node.close()  # the tool goes away; the pty fills up
    at_repl(node)  # reopened: the node finished its loop and answers
    assert send_line(node, "done, i") == b"done, i\r\n(True, 3999)\r\n>>> "


@pytest.mark.parametrize("board", BOARDS)
def test_user_code_sees_the_boards_heap(boot, board):
    node = boot(board)
    heap = load_board(board)["micropython"]["heap_bytes"]
    free = int(node.exec("import gc\ngc.collect()\nprint(gc.mem_free())"))
    # What a real port has left at the REPL: the GC heap less ~2 KiB allocated at boot.
    assert abs(free - (heap - 2048)) <= 4096, free
    probe = (
        "import gc\ngc.collect()\n"
        "def alloc(n):\n"
        "    try:\n        b = bytearray(n)\n        return len(b)\n"
        "    except MemoryError:\n        return 'MemoryError'\n"
        f"print(alloc({heap // 2}), alloc({heap * 2}))"
    )
    assert node.exec(probe).split() == [str(heap // 2), "MemoryError"]


def test_a_full_heap_held_by_user_code_does_not_reboot_the_node(boot):
    node = boot()
    before = boots(node)
    node.write(b"\x05")
    node.read_until(b"=== ")
    node.write(b"x = None\rtry:\r    while True: x = [x, 0]\rexcept MemoryError:\r    pass\r\x04")
    out = node.read_until(b">>> ", timeout=10)
    assert out.endswith(b"=== \r\n>>> "), out  # caught: nothing printed, back at the prompt
    assert boots(node) == before
