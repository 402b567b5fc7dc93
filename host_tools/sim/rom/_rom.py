# The virtual board's boot ROM: what MicroPython's C main loop and pyexec.c do on a real board,
# written for the unix port. The supervisor starts this file once per boot (power-on, reset,
# deep-sleep wake, soft reset) as `micropython -X heapsize=N _rom.py PARAMS.json` with fd 0/1 as
# the UART and fd 3/4 as the link to itself (see _simlink).
#
# Boot: mount the littlefs image at / (format it on first boot), put the shims on sys.path, take
# the board's heap size, run boot.py, then main.py (not after a soft reset from the raw REPL), then
# the friendly or raw REPL, byte-compatible with pyexec.c so that mpremote works unchanged.
import gc
import io
import json
import os
import struct
import sys

import vfs
from micropython import const

_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)
_OP_INTR = const(0x4B)
_OP_SOFT_RESET = const(0x72)
_OP_FLASH_WRITE = const(0x46)
_OP_POWER_CUT = const(0x58)
_OP_EXIT = const(0x45)
_RAW_PASTE_WINDOW = const(128)  # half of MICROPY_REPL_STDIN_BUFFER_MAX (256), as on the ports
_MOUNT = "/.sim"
_ROM_FILE = sys.argv[0]
_SHIM_FRAME = 'File "%s/' % _MOUNT

with open(sys.argv[1]) as _f:
    P = json.load(_f)
_link_rx = open("/dev/fd/3", "rb")
_link_tx = open("/dev/fd/4", "wb")
_flash_file = open(P["flash"]["path"], "r+b")
_in = sys.stdin.buffer
_out = sys.stdout

# The shims are loaded now, from a read-only mount that is removed again before any user code
# runs: like a real board's built-ins they cost no filesystem space and / holds only user files.
sys.path.clear()
sys.path.append(_MOUNT)
vfs.mount(os.VfsPosix(P["rom_dir"]), _MOUNT, readonly=True)
import _simlink  # noqa: E402

_simlink.init(P, _link_rx, _link_tx)
for _name in P["preload"]:
    __import__(_name)
vfs.umount(_MOUNT)
sys.path.clear()
sys.path.extend(["", ".frozen", "/lib"])


class _Flash:
    # Block device over the flash image file. NOR semantics: erase sets 0xFF, programming can
    # only clear bits. Every program/erase is announced to the supervisor, which may answer
    # "power cut": then half of the block is programmed and the CPU stops.
    def __init__(self, f, block_size, count):
        self._f = f
        self._bs = block_size
        self._count = count
        self._ff = b"\xff" * block_size

    def _announce(self, block, data, off):
        status, _ = _simlink.call(_OP_FLASH_WRITE, struct.pack("<IH", block, len(data)))
        if status == 1:
            self._program(block, data[: len(data) // 2], off)
            _simlink.call(_OP_POWER_CUT)
            while True:
                pass

    def _program(self, block, data, off):
        pos = block * self._bs + off
        self._f.seek(pos)
        old = self._f.read(len(data))
        self._f.seek(pos)
        self._f.write(bytes(a & b for a, b in zip(old, data)))

    def readblocks(self, block, buf, off=0):
        self._f.seek(block * self._bs + off)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        off = off or 0
        self._announce(block, buf, off)
        self._program(block, buf, off)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self._count
        if op == 5:  # block size
            return self._bs
        if op == 6:  # erase
            self._announce(arg, self._ff, 0)
            self._f.seek(arg * self._bs)
            self._f.write(self._ff)
            return 0
        return 0


def _mount_flash():
    fl = P["flash"]
    bdev = _Flash(_flash_file, fl["block_size"], fl["block_count"])
    vfs.umount("/")
    try:
        vfs.mount(os.VfsLfs2(bdev), "/")
    except OSError:
        # Blank or corrupt flash: format it, as the ports' _boot.py / inisetup do.
        if P["board"]["port"] == "esp32":
            _out.write("Performing initial setup\n")
        os.VfsLfs2.mkfs(bdev)
        vfs.mount(os.VfsLfs2(bdev), "/")
        if P["board"]["port"] == "esp32":
            with open("boot.py", "w") as f:
                f.write(
                    "# This file is executed on every boot (including wake-boot from deepsleep)\n"
                )
    os.chdir("/")


_mount_flash()

# Give user code the board's heap: the interpreter was started with room for this ROM and the
# shims; what is left above the board's figure is taken by a ballast that is never freed.
gc.collect()
_ballast = bytearray(max(0, gc.mem_free() - P["heap_free_bytes"]))
gc.collect()

_globals = {"__name__": "__main__"}


def _intr(on):
    # Tell the supervisor whether a Ctrl-C byte is an interrupt (code running) or input.
    _simlink.notify(_OP_INTR, b"\x01" if on else b"\x00")


def _exec(code, print_eof=False):
    # pyexec's parse_compile_execute: returns True when the code asked for a soft reset.
    exc = None
    try:
        _intr(True)
        try:
            if isinstance(code, tuple):
                code = compile(code[0], code[1], code[2])
            exec(code, _globals)
        finally:
            _intr(False)
    except BaseException as e:  # noqa: B036  everything the user's code raises ends here
        exc = e
    if print_eof:
        _out.write("\x04")
    if isinstance(exc, SystemExit):
        if print_eof:
            _out.write("\x04")
        return True
    if exc is not None:
        _print_exception(exc)
    if print_eof:
        _out.write("\x04")
    return False


def _print_exception(exc):
    # As on a board, where these are C: no frames from this ROM or the shims.
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    for line in buf.getvalue().split("\n"):
        if line and _ROM_FILE not in line and _SHIM_FRAME not in line:
            _out.write(line + "\n")


def _run_file(name):
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return False
    return _exec((src, name, "exec"))


def _getc():
    # One byte of UART input; a KeyboardInterrupt that lands between two runs counts as Ctrl-C.
    while True:
        try:
            b = _in.read(1)
        except KeyboardInterrupt:
            return _CTRL_C
        if not b:
            raise SystemExit  # supervisor closed the UART: power is going away
        return b[0]


def _banner():
    v = sys.implementation.version
    build = sys.version.split("MicroPython ")[-1].split(" on ")[-1]
    _out.write(
        "MicroPython v%d.%d.%d%s on %s; Motekit virtual %s with %s\n"
        'Type "help()" for more information.\n'
        % (
            v[0],
            v[1],
            v[2],
            "-preview" if len(v) > 3 and v[3] else "",
            build,
            P["board"]["name"],
            P["board"]["mcu"].upper(),
        )
    )


def _raw_repl():
    # Returns "soft" for a soft reset or "friendly" for Ctrl-B.
    _out.write("raw REPL; CTRL-B to exit\n>")
    line = bytearray()
    while True:
        c = _getc()
        if c == _CTRL_A:
            if len(line) == 2 and line[0] == _CTRL_E:
                if _raw_paste(line[1]):
                    return "soft"
                line = bytearray()
                _out.write(">")
                continue
            line = bytearray()
            _out.write("\nraw REPL; CTRL-B to exit\n>")
        elif c == _CTRL_B:
            _out.write("\n")
            return "friendly"
        elif c == _CTRL_C:
            line = bytearray()
        elif c == _CTRL_D:
            _out.write("OK")
            if not line:
                _out.write("\n")
                return "soft"
            src = bytes(line)
            line = bytearray()
            if _exec((src, "<stdin>", "exec"), print_eof=True):
                return "soft"
            _out.write(">")
        else:
            line.append(c)


def _raw_paste(cmd):
    # Raw-paste mode (docs: reference/repl.rst): flow-controlled upload, then compile and run.
    if cmd != ord("A"):
        _out.buffer.write(b"R\x00")
        return False
    _out.buffer.write(b"R\x01" + struct.pack("<H", _RAW_PASTE_WINDOW) + b"\x01")
    src = bytearray()
    remain = _RAW_PASTE_WINDOW
    while True:
        c = _getc()
        if c in (_CTRL_C, _CTRL_D):
            _out.write("\x04")  # tells the host to stop sending
            if c == _CTRL_C:
                return _kbd_eof()
            break
        src.append(c)
        remain -= 1
        if remain == 0:
            _out.write("\x01")
            remain = _RAW_PASTE_WINDOW
    return _exec((bytes(src), "<stdin>", "exec"), print_eof=True)


def _kbd_eof():
    # Ctrl-C during a raw-paste upload: the code is abandoned with a KeyboardInterrupt.
    _out.write("\x04")
    _print_exception(KeyboardInterrupt())
    _out.write("\x04")
    return False


_BLOCK_START = ("if", "while", "for", "def", "class", "with", "try", "async", "@")


def _continues(text):
    # Does this input (lines each ending in "\n") need more lines? MicroPython's REPL rules:
    # an open bracket or triple-quoted string, a trailing backslash, or a compound statement
    # that has not yet been ended by an empty line.
    if not text.strip():
        return False
    depth = 0
    quote = None
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i : i + 3]
            i += 2
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        i += 1
    if quote is not None and len(quote) == 3:
        return True
    if depth > 0:
        return True
    if text.rstrip("\n").endswith("\\"):
        return True
    first = text.split(None, 1)[0]
    word = first.split("(")[0].split(":")[0]
    if word in _BLOCK_START or first.startswith("@") or text.split("\n")[0].rstrip().endswith(":"):
        return not text.endswith("\n\n")
    return False


def _readline(prompt, history, indent=""):
    # Returns the line, or one of the control codes as an int.
    _out.write(prompt + indent)
    line = indent
    hist_i = len(history)
    last_cr = False
    while True:
        c = _getc()
        if c == 0x0A and last_cr:
            last_cr = False
            continue
        last_cr = c == 0x0D
        if c in (0x0D, 0x0A):
            _out.write("\n")
            if line.strip() and (not history or history[-1] != line):
                history.append(line)
                if len(history) > 8:
                    history.pop(0)
            return line
        if c == _CTRL_C:
            return _CTRL_C
        if c in (_CTRL_A, _CTRL_B, _CTRL_D, _CTRL_E):
            if not line.strip():
                return c
            continue
        if c in (0x08, 0x7F):
            if line:
                line = line[:-1]
                _out.write("\b \b")
            continue
        if c == 0x1B:
            seq = _getc()
            if seq != ord("["):
                continue
            final = _getc()
            while final < 0x40:
                final = _getc()
            if final in (ord("A"), ord("B")) and history:
                hist_i = max(0, hist_i - 1) if final == ord("A") else min(len(history), hist_i + 1)
                _out.write("\b \b" * len(line))
                line = history[hist_i] if hist_i < len(history) else ""
                _out.write(line)
            continue
        if c >= 0x20 or c == 0x09:
            ch = chr(c) if c < 0x80 else _utf8_rest(c)
            line += ch
            _out.write(ch)


def _utf8_rest(first):
    more = 1 if first < 0xE0 else 2 if first < 0xF0 else 3
    return bytes([first] + [_getc() for _ in range(more)]).decode()


def _paste_mode():
    _out.write("\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\n=== ")
    buf = bytearray()
    while True:
        c = _getc()
        if c == _CTRL_C:
            _out.write("\n")
            return False
        if c == _CTRL_D:
            _out.write("\n")
            return _exec((bytes(buf), "<stdin>", "exec"))
        buf.append(c)
        if c == 0x0D:
            _out.write("\n=== ")
        else:
            _out.buffer.write(bytes([c]))


def _friendly_repl():
    # Returns "soft" for a soft reset or "raw" for Ctrl-A.
    _banner()
    history = []
    while True:
        text = ""
        prompt = ">>> "
        indent = ""
        while True:
            r = _readline(prompt, history, indent)
            if r == _CTRL_C:
                _out.write("\n")
                text = None
                break
            if r == _CTRL_A and not text:
                _out.write("\n")
                return "raw"
            if r == _CTRL_B and not text:
                _out.write("\n")
                _banner()
                text = None
                break
            if r == _CTRL_D and not text:
                _out.write("\n")
                return "soft"
            if r == _CTRL_E and not text:
                if _paste_mode():
                    return "soft"
                text = None
                break
            if isinstance(r, int):
                continue
            if not r.strip():
                r = ""  # an auto-indented line left blank ends the block
            text += r + "\n"
            if not _continues(text):
                break
            prompt = "... "
            lead = r[: len(r) - len(r.lstrip())]
            indent = lead + "    " if r.rstrip().endswith(":") else (lead if r.strip() else "")
        if text and text.strip() and _exec((text, "<stdin>", "single")):
            return "soft"


def _run_script(script):
    # Script mode (device tests): host folders mounted read-only, then one file run to the end.
    for host_dir, mountpoint in P["host_mounts"]:
        vfs.mount(os.VfsPosix(host_dir), mountpoint, readonly=True)
        sys.path.append(mountpoint)
    with open(script) as f:
        src = f.read()
    ok = True
    try:
        exec(compile(src, script, "exec"), _globals)
    except BaseException as e:  # noqa: B036  reported, then the supervisor is told
        _print_exception(e)
        ok = False
    _simlink.call(_OP_EXIT, b"\x00" if ok else b"\x01")


def _main():
    if P.get("script"):
        _run_script(P["script"])
        return
    kind = P["repl_mode"]
    soft = _run_file("boot.py")
    if not soft and kind == "friendly":
        soft = _run_file("main.py")
    while not soft:
        try:
            nxt = _raw_repl() if kind == "raw" else _friendly_repl()
        except KeyboardInterrupt:
            continue  # a Ctrl-C that landed in the ROM itself: back to the prompt
        if nxt == "soft":
            soft = True
        else:
            kind = nxt
    # Like the ports: the REPL kind survives the soft reset.
    _out.write("MPY: soft reboot\n")
    _simlink.call(_OP_SOFT_RESET, b"r" if kind == "raw" else b"f")


_main()
