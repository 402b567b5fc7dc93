"""LoRaWAN 1.0.x on the host: airtime, regional parameters, frames and crypto, the bench network
server behind `mote gateway` (docs/lorawan.md)."""
