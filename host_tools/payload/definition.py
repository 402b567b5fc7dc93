"""The one definition of the LoRaWAN report payload: sensor kinds, quantities and their scaling,
and the header bits. Everything else is derived from this module:

- the node encoder's tables (the generated block of firmware/motekit/payload.py),
- the host decoder (host_tools/payload/decoder.py reads these tables at run time),
- the JavaScript `decodeUplink` for The Things Stack and ChirpStack
  (host_tools/payload/decodeUplink.js, rendered from decodeUplink.template.js).

After a change here run `python -m host_tools.payload.generate`; tests/host/test_payload.py fails
while a generated file is stale. docs/payload.md describes the format byte by byte.

Changing what a frame means (a code, a width, a scale, a bit) needs a new VERSION: decoders in
the field read frames by their version. Adding a kind with a new code, or a quantity at the end,
does not change how an older frame reads.
"""

from dataclasses import dataclass

# The header's top 2 bits: VERSION for a frame of this format, SHORT for its short form (one
# sensor of the bitmap and no flags: kind and seq share the header byte, the sensor bitmap byte
# goes). 0 is unused; 3 is kept to announce a longer version field.
VERSION = 1
SEQ_BITS = 6  # the report's seq modulo 64, to spot lost reports
SHORT = 2
SHORT_SEQ_BITS = 3  # a short frame's seq: modulo 8 (bits 5-3 hold the kind code)

# Byte 1: bit 7 says the flags byte follows, bits 0..6 are the kinds 0..6 at instance 0.
HAS_FLAGS = 0x80
BITMAP_KINDS = 7

# The flags byte.
F_SPARSE = 0x80  # each sample starts with a bitmap of the channels it carries
F_BATTERY = 0x40  # the report's battery voltage follows the descriptors (part 0 only)
F_FAULTS = 0x20  # descriptors of the faulty sensors follow (part 0 only)
F_UNCAL = 0x10  # each sample carries a bitmap of its uncalibrated channels
F_DESCRIPTORS = 0x08  # sensor descriptors follow (instances > 0, kinds >= 7)
F_PART = 0x04  # the part byte follows: the report is split over several frames
F_INCOMPLETE = 0x02  # the node left values of this report out (see docs/payload.md)
F_RESERVED = 0x01  # must be 0 in version 1

# The part byte: bit 7 says more parts follow, bits 0..6 are the part index.
PART_MORE = 0x80
PART_MAX = 127

# A descriptor byte is the sensor's key (kind << 3 | instance) shifted left once, bit 0 set on
# the last descriptor of a list.
MAX_KINDS = 16
MAX_INSTANCES = 8

VARINT_MAX = (1 << 28) - 1  # time offsets: at most 4 bytes of 7 bits


@dataclass(frozen=True)
class Quantity:
    """How one quantity travels: value * 10**decimals, rounded, in `width` big-endian bytes."""

    code: int
    name: str
    unit: str
    decimals: int
    width: int
    signed: bool
    why: str  # the drivers whose resolution the scale matches, and the range it covers

    @property
    def reserved(self) -> int:
        """The raw code (as an unsigned integer) meaning "no valid value"."""
        return 1 << (8 * self.width - 1) if self.signed else (1 << (8 * self.width)) - 1

    @property
    def low(self) -> int:
        """The smallest integer sent as a value."""
        return -(1 << (8 * self.width - 1)) + 1 if self.signed else 0

    @property
    def high(self) -> int:
        """The largest integer sent as a value."""
        return (1 << (8 * self.width - 1)) - 1 if self.signed else (1 << (8 * self.width)) - 2


@dataclass(frozen=True)
class Kind:
    """A sensor kind (the config's "kind"): its code and its driver's QUANTITIES, in order."""

    code: int
    name: str
    quantities: tuple[str, ...]


# Codes are the index; the order is the config schema's thresholds order.
QUANTITIES: tuple[Quantity, ...] = (
    Quantity(
        0, "temperature", "C", 2, 2, True, "sht4x/bme280/scd41 0.01 C, ds18b20 0.0625 C; ±327.67"
    ),
    Quantity(1, "humidity", "%RH", 2, 2, True, "sht4x/bme280/scd41 0.01 %RH; ±327.67"),
    Quantity(2, "pressure", "hPa", 2, 3, True, "bme280 0.01 hPa; ±83886.07"),
    Quantity(3, "co2", "ppm", 0, 2, False, "scd41 1 ppm; 0..65534"),
    Quantity(4, "voltage", "V", 3, 2, True, "battery 0.001 V, ina219 0.004 V; ±32.767"),
    Quantity(5, "current", "A", 5, 3, True, "ina219 0.0001 A (configurable); ±83.88607"),
    Quantity(6, "power", "W", 4, 3, True, "ina219 0.002 W (configurable); ±838.8607"),
    Quantity(7, "moisture", "%", 1, 2, True, "soil 0.1 %; ±3276.7"),
)

KINDS: tuple[Kind, ...] = (
    Kind(0, "battery", ("voltage",)),
    Kind(1, "sht4x", ("temperature", "humidity")),
    Kind(2, "bme280", ("temperature", "humidity", "pressure")),
    Kind(3, "ds18b20", ("temperature",)),
    Kind(4, "scd41", ("co2", "temperature", "humidity")),
    Kind(5, "ina219", ("voltage", "current", "power")),
    Kind(6, "soil", ("moisture",)),
)

QUANTITY = {q.name: q for q in QUANTITIES}
KIND = {k.name: k for k in KINDS}
KIND_BY_CODE = {k.code: k for k in KINDS}

# The report's battery_v travels as a battery voltage.
BATTERY_QUANTITY = "voltage"


def _check() -> None:
    # The definition's own consistency, at import: a bad edit fails every user at once.
    assert [q.code for q in QUANTITIES] == list(range(len(QUANTITIES)))
    assert [k.code for k in KINDS] == list(range(len(KINDS)))
    assert len(KINDS) <= MAX_KINDS
    assert BITMAP_KINDS <= 1 << (6 - SHORT_SEQ_BITS)  # a short frame's kind field holds them
    for k in KINDS:
        assert 1 <= len(k.quantities) <= 4, k  # a channel's key holds 2 bits of quantity index
        assert all(q in QUANTITY for q in k.quantities), k
    for q in QUANTITIES:
        assert 1 <= q.width <= 3 and 0 <= q.decimals <= 6, q


_check()
