"""Bytes to and from a node: serial ports and ptys (`serial.py`), reset wiring (`reset.py`).

Every transport has the same small shape, which the protocol layer relies on:

    name: str                           # what to call it in messages (the port path)
    read(timeout_s) -> bytes            # b"" when nothing came in time; TransportError when gone
    write(data)                         # all of it, or TransportError
    close()                             # idempotent
"""

from typing import Protocol


class Transport(Protocol):
    name: str

    def read(self, timeout_s: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...
