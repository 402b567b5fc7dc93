# The board's LoRa radio, built from /board.json: pins.radio names the chip and its pins,
# pins.spi the bus (docs/boards.md). The driver modules (drivers/sx127x.py, drivers/sx126x.py)
# are imported only for the chip the board has.
#
#   from motekit import radio
#   r = radio.open_radio(board)          # an SX127x or SX126x, reset and identity-checked
#   r.configure(868_100_000, sf=7, bw_hz=125_000)
#   r.send(b"...", 2000); r.sleep()
#
# Raises OSError("this board has no LoRa radio") on a board without one, and the driver's
# OSError when the chip does not answer.
import machine
from micropython import const

# 10 MHz is the SX127x's SPI limit (datasheet 2.5.7); the SX126x takes 16 MHz.
_SPI_HZ = const(8_000_000)


def open_radio(board):
    pins = board.get("pins", {})
    r = pins.get("radio")
    if not r:
        raise OSError("this board has no LoRa radio")
    bus = None
    for spec in pins.get("spi", ()):
        if spec["id"] == r["spi"]:
            bus = spec
    if bus is None:
        raise OSError("pins.radio.spi %s is not a bus in pins.spi" % r["spi"])
    Pin = machine.Pin
    spi = machine.SPI(
        bus["id"],
        baudrate=_SPI_HZ,
        polarity=0,
        phase=0,
        sck=Pin(bus["sck"]),
        mosi=Pin(bus["mosi"]),
        miso=Pin(bus["miso"]),
    )
    cs = Pin(r["nss"], Pin.OUT, value=1)
    reset = Pin(r["reset"], Pin.OUT, value=1)
    chip = r.get("chip")
    if chip == "sx1276":
        from sx127x import SX127x

        return SX127x(spi, cs, reset, Pin(r["dio0"], Pin.IN))
    if chip == "sx1262":
        from sx126x import SX126x

        return SX126x(
            spi,
            cs,
            reset,
            Pin(r["busy"], Pin.IN),
            Pin(r["dio1"], Pin.IN),
            dio2_rf_switch=bool(r.get("dio2_rf_switch", False)),
            tcxo_mv=r.get("tcxo_mv", 0),
        )
    raise OSError("no driver for LoRa chip %s" % chip)
