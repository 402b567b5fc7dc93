# Virtual-board `_onewire`: the 1-Wire bit and byte primitives the ports implement in C,
# served by the supervisor's 1-Wire bus model. `onewire` (beside it) builds on these.
import struct

import _simlink
from micropython import const

_OP = const(0x4F)


def _op(pin, op, value=0):
    p = pin if isinstance(pin, int) else pin._id
    return _simlink.call(_OP, struct.pack("<HBB", p, op, value))[1]


def reset(pin):
    return bool(_op(pin, 0)[0])


def readbit(pin):
    return _op(pin, 1)[0]


def readbyte(pin):
    return _op(pin, 2)[0]


def writebit(pin, value):
    _op(pin, 3, value & 1)


def writebyte(pin, value):
    _op(pin, 4, value & 0xFF)


def crc8(data):
    # Dallas/Maxim CRC-8 (polynomial x^8 + x^5 + x^4 + 1, reflected 0x8C).
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc
