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

# The user's heap, reserved as one block before the ROM allocates anything else (argv[2] is its
# size), so that it is contiguous as on a board at boot; released once the ROM is loaded.
_reserve = bytearray(int(sys.argv[2]))

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
sys.modules["gc"] = sys.modules["_gc"]  # user code sees the board's heap (see _gc.py)
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


def _take_the_rest():
    # Fill every free gap outside the reserve with ballast that is never freed, so the user's
    # heap is the reserve alone; then keep a small spare for the REPL to fall back on.
    held = []
    gc.collect()
    size = gc.mem_free()
    while size >= 64:
        try:
            held.append(bytearray(size))
        except MemoryError:
            size //= 2
            continue
        size = min(size, gc.mem_free())
    return held


_spare = bytearray(2048)
_ballast = _take_the_rest()
_reserve = None
gc.collect()
# What the fill itself left behind (its list's old arrays) is taken too.
if gc.mem_free() - P["heap_free_bytes"] >= 64:
    _ballast.append(bytearray(gc.mem_free() - P["heap_free_bytes"] - 16))
_byte = bytearray(1)
_INTR_ON = _simlink.frame(_OP_INTR, b"\x01")
_INTR_OFF = _simlink.frame(_OP_INTR, b"\x00")

_globals = {"__name__": "__main__"}


def _intr(on):
    # Tell the supervisor whether a Ctrl-C byte is an interrupt (code running) or input.
    # Prebuilt frames: this must work even when user code has taken the whole heap.
    _link_tx.write(_INTR_ON if on else _INTR_OFF)


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
    try:
        buf = io.StringIO()
        sys.print_exception(exc, buf)
        for line in buf.getvalue().split("\n"):
            if line and _ROM_FILE not in line and _SHIM_FRAME not in line:
                _out.write(line + "\n")
    except MemoryError:
        sys.print_exception(exc, _out)  # no room to filter: print it as it is


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
            n = _in.readinto(_byte)
        except KeyboardInterrupt:
            return _CTRL_C
        if not n:
            raise SystemExit  # supervisor closed the UART: power is going away
        return _byte[0]


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


_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")


def _continues(text):
    # MicroPython's REPL rules for asking for another line. `text` is the input so far, lines
    # joined by "\n"; it ends in "\n" when the latest line was empty.
    if not text:
        return False
    word = text.split(None, 1)[0] if text.strip() else ""
    for sep in "(:[":
        word = word.split(sep)[0]
    compound = text[0] == "@" or word in _COMPOUND
    parens = 0
    quote = None  # None, or the quote that opened the string: one or three quote characters
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            if text.startswith(ch * 3, i) and quote in (None, ch * 3):
                quote = None if quote else ch * 3
                i += 2
            elif quote in (None, ch):
                quote = None if quote else ch
        elif ch == "\\" and i + 1 < n and text[i + 1] in "'\"\\":
            if quote:
                i += 1
        elif quote is None:
            if ch in "([{":
                parens += 1
            elif ch in ")]}":
                parens -= 1
        i += 1
    if quote is not None and len(quote) == 3:
        return True
    if parens > 0 and quote is None:
        return True
    if text[-1] == "\\":
        return True
    return compound and text[-1] != "\n"


# Line editor state kept across lines, as readline.c keeps it.
_ENABLED = const(1)
_JUST_ADDED = const(2)
_auto = 0
_last_nl = 0
_history = []


def _auto_indent(text):
    # Indent a new continuation line like the line before it, one level more after a colon;
    # not at all after two blank lines.
    global _auto
    if not (_auto & _ENABLED) or len(text) < 2 or text[-1] != "\n":
        return text
    start = text.rfind("\n", 0, len(text) - 1) + 1
    prev = text[start:-1]
    spaces = len(prev) - len(prev.lstrip(" "))
    if start > 0 and not prev.strip(" "):
        before = text[text.rfind("\n", 0, start - 1) + 1 : start - 1]
        if not before.strip(" "):
            return text
    levels = spaces // 4 + (1 if prev.endswith(":") else 0)
    if levels:
        _out.write("    " * levels)
        _auto |= _JUST_ADDED
    return text + "    " * levels


def _erase(n):
    _out.write("\b" * n + "\x1b[K")


def _readline(text, prompt):
    # Edit one more line at the end of `text`; returns (0 or a control code, text).
    global _auto, _last_nl
    orig = len(text)
    hist_i = -1
    _out.write(prompt)
    if not text:
        _auto = _ENABLED
    text = _auto_indent(text)
    while True:
        c = _getc()
        just_added = _auto & _JUST_ADDED
        _auto &= ~_JUST_ADDED
        if _CTRL_A <= c <= _CTRL_E and len(text) == orig:
            return c, text
        if c == _CTRL_C:
            return c, text
        if c in (0x0D, 0x0A):
            if _last_nl in (0, c):
                _last_nl = c
                _out.write("\n")
                line = text[orig:]
                if line and (not _history or _history[0] != line):
                    _history.insert(0, line)
                    del _history[8:]
                return 0, text
            _last_nl = 0  # the second half of a CR LF pair
            continue
        _last_nl = 0
        if c in (0x08, 0x7F):
            if len(text) > orig:
                line = text[orig:]
                n = 4 if len(line) >= 4 and not line.strip(" ") else 1
                text = text[:-n]
                _erase(n)
        elif just_added and c in (0x09, 0x20):
            _auto = 0  # typed or pasted indentation replaces the automatic one
            if c == 0x20:
                text = text[:-3]
                _erase(3)
        elif c == 0x09:
            if text and text[-1] in " \n":
                text += "    "
                _out.write("    ")
        elif c == 0x1B:
            if _getc() != ord("["):
                continue
            final = _getc()
            while final < 0x40:
                final = _getc()
            if final in (ord("A"), ord("B")):
                new = hist_i + 1 if final == ord("A") else hist_i - 1
                if -1 <= new < len(_history):
                    hist_i = new
                    if len(text) > orig:
                        _erase(len(text) - orig)
                    text = text[:orig] + (_history[hist_i] if hist_i >= 0 else "")
                    _out.write(text[orig:])
        elif c >= 0x20:
            ch = chr(c) if c < 0x80 else _utf8_rest(c)
            text += ch
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


def _friendly_repl(banner=True):
    # pyexec's friendly REPL. Returns "soft" for a soft reset or "raw" for Ctrl-A.
    if banner:
        _banner()
    while True:
        ret, text = _readline("", ">>> ")
        if ret == _CTRL_A:
            _out.write("\n")
            return "raw"
        if ret == _CTRL_B:
            _out.write("\n")
            _banner()
            continue
        if ret == _CTRL_C:
            _out.write("\n")
            continue
        if ret == _CTRL_D:
            _out.write("\n")
            return "soft"
        if ret == _CTRL_E:
            if _paste_mode():
                return "soft"
            continue
        if not text:
            continue
        while _continues(text):
            ret, text = _readline(text + "\n", "... ")
            if ret == _CTRL_C:
                _out.write("\n")
                text = ""
                break
            if ret == _CTRL_D:
                break  # ends a compound statement early
        if text and _exec((text, "<stdin>", "single")):
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


def _out_of_memory():
    # User data holds the whole heap: give the REPL the spare so that the user can free it.
    global _spare
    _spare = None
    gc.collect()
    _out.write("\nMemoryError: the heap is full; free something (del ...) to continue\n")
    try:
        _spare = bytearray(2048)
    except MemoryError:
        pass


def _main():
    if P.get("script"):
        _run_script(P["script"])
        return
    kind = P["repl_mode"]
    soft = _run_file("boot.py")
    if not soft and kind == "friendly":
        soft = _run_file("main.py")
    banner = True
    while not soft:
        try:
            nxt = _raw_repl() if kind == "raw" else _friendly_repl(banner)
        except KeyboardInterrupt:
            banner = False
            continue  # a Ctrl-C that landed in the ROM itself: back to the prompt
        except MemoryError:
            _out_of_memory()
            banner = False
            continue
        banner = True
        if nxt == "soft":
            soft = True
        else:
            kind = nxt
    # Like the ports: the REPL kind survives the soft reset.
    _out.write("MPY: soft reboot\n")
    _simlink.call(_OP_SOFT_RESET, b"r" if kind == "raw" else b"f")


_main()
