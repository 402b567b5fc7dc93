# The virtual node's private link to its supervisor (host_tools/sim/rpc.py is the other end).
# No real board has this module: only the shims beside it (machine, time, bluetooth, ...) use it.
#
# Frames both ways: magic 0xA5, op/status byte, sequence byte, u16 LE payload length, payload.
# A call waits for the reply with its own sequence number, so a reply left unread by a
# KeyboardInterrupt in the middle of a call is skipped by the next one.
import struct

from micropython import const

_MAGIC = const(0xA5)

P = None  # boot parameters (dict) written by the supervisor, set by _rom
_rx = None
_tx = None
_seq = 0
_hdr = bytearray(5)


def init(params, rx, tx):
    global P, _rx, _tx
    P = params
    _rx = rx
    _tx = tx


def frame(op, payload=b"", seq=0):
    return struct.pack("<BBBH", _MAGIC, op, seq, len(payload)) + payload


def _send(op, payload, seq):
    _tx.write(frame(op, payload, seq))


def notify(op, payload=b""):
    # One-way message; the supervisor handles it before any later call.
    _send(op, payload, 0)


def call(op, payload=b""):
    # Returns (status, data). Status 0 is success; the meaning of others is per op.
    global _seq
    _seq = _seq % 255 + 1
    _send(op, payload, _seq)
    while True:
        n = _rx.readinto(_hdr)
        if n != 5 or _hdr[0] != _MAGIC:
            raise OSError(5)  # EIO: link lost or out of step
        status, seq, size = _hdr[1], _hdr[2], _hdr[3] | (_hdr[4] << 8)
        data = _rx.read(size) if size else b""
        if seq == _seq:
            return status, data


def port():
    return P["board"]["port"]


def builtin(name):
    # Import the interpreter's own module `name`, bypassing the shim of the same name that
    # shadows it on sys.path (MicroPython searches the path before its extensible built-ins).
    import sys

    saved = sys.path[:]
    shim = sys.modules.pop(name, None)
    sys.path.clear()
    try:
        return __import__(name)
    finally:
        sys.path.extend(saved)
        if shim is not None:
            sys.modules[name] = shim
        else:
            sys.modules.pop(name, None)
