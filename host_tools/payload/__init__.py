"""Motekit's LoRaWAN report payload: one definition (definition.py) from which come the node
encoder's tables (firmware/motekit/payload.py), this host decoder, and the generated
decodeUplink.js for The Things Stack and ChirpStack (`python -m host_tools.payload.generate`).
docs/payload.md describes the format.

    from host_tools.payload import decode, merge
    frame = decode(fport, frm_payload, sensors=cfg["sensors"])
"""

from host_tools.payload.decoder import decode, merge, sensor_name

__all__ = ["decode", "merge", "sensor_name"]
