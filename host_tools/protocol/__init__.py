"""The console protocol (docs/protocol.md): framing, and the NodeClient over a transport."""
