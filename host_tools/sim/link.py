"""Framing of the private RPC between a virtual node and its supervisor (rom/_simlink.py).

Each frame: magic 0xA5, op (request) or status (reply), sequence, u16 LE payload length,
payload. Sequence 0 marks a one-way notification that gets no reply.
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = 0xA5
_HDR = struct.Struct("<BBBH")

# Requests from the node (see rom/machine.py, rom/time.py, rom/_rom.py).
OP_PIN_SET = 0x50
OP_PIN_GET = 0x51
OP_I2C = 0x49
OP_SPI = 0x53
OP_ADC = 0x41
OP_ONEWIRE = 0x4F
OP_DEEPSLEEP = 0x44
OP_RESET = 0x52
OP_SOFT_RESET = 0x72
OP_WDT_ARM = 0x57
OP_WDT_FEED = 0x77
OP_RTC_MEM = 0x4D
OP_BOOTLOADER = 0x55
OP_INTR = 0x4B
OP_SKIP = 0x7A
OP_FLASH_WRITE = 0x46
OP_POWER_CUT = 0x58
OP_BLE_ADV = 0x42
OP_EXIT = 0x45  # script mode: the script ended (payload: 0 ok, 1 raised)
OP_CONTROL = 0x43  # script mode: a control-channel request (JSON) from the node itself

# Reply statuses.
OK = 0
NACK = 1  # also "cut power now" for OP_FLASH_WRITE
TIMEOUT = 2


class LinkError(Exception):
    """The node sent bytes that are not a frame: the link is out of step."""


@dataclass(frozen=True)
class Request:
    op: int
    seq: int
    payload: bytes

    @property
    def wants_reply(self) -> bool:
        return self.seq != 0


def parse_requests(buf: bytearray) -> Iterator[Request]:
    """Yield every whole frame at the start of `buf`, removing it; partial frames stay."""
    while len(buf) >= _HDR.size:
        magic, op, seq, size = _HDR.unpack_from(buf)
        if magic != MAGIC:
            raise LinkError(f"bad frame magic 0x{magic:02x}")
        end = _HDR.size + size
        if len(buf) < end:
            return
        payload = bytes(buf[_HDR.size : end])
        del buf[:end]
        yield Request(op, seq, payload)


def encode_reply(seq: int, status: int = OK, payload: bytes = b"") -> bytes:
    return _HDR.pack(MAGIC, status, seq, len(payload)) + payload
