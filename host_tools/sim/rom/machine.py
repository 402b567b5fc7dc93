# Virtual-board `machine`: the subset of MicroPython's machine module that Motekit firmware
# uses, with the signatures of the official esp32 and rp2 stubs. Bus transfers, pin levels and
# ADC readings are served by the supervisor's device models (host_tools/sim/peripherals);
# resets and sleeps are carried out by the supervisor, which restarts this interpreter.
#
# Port differences follow the real ports: rp2 has no RTC.memory() and no DEEPSLEEP_RESET (its
# deepsleep ends in a watchdog reset), and an I2C address NACK raises ENODEV on esp32, EIO on rp2.
import struct
import time as _time

import _simlink
from micropython import const

_P = _simlink.P
_PORT = _simlink.port()
_ESP32 = _PORT == "esp32"

_OP_PIN_SET = const(0x50)
_OP_PIN_GET = const(0x51)
_OP_I2C = const(0x49)
_OP_SPI = const(0x53)
_OP_ADC = const(0x41)
_OP_DEEPSLEEP = const(0x44)
_OP_RESET = const(0x52)
_OP_SOFT_RESET = const(0x72)
_OP_WDT_ARM = const(0x57)
_OP_WDT_FEED = const(0x77)
_OP_RTC_MEM = const(0x4D)
_OP_BOOTLOADER = const(0x55)

_ENODEV = const(19)
_EIO = const(5)
_ETIMEDOUT = const(110)

PWRON_RESET = const(1)
WDT_RESET = const(3)
if _ESP32:
    HARD_RESET = const(2)
    DEEPSLEEP_RESET = const(4)
    SOFT_RESET = const(5)
    PIN_WAKE = const(2)
    EXT0_WAKE = const(2)
    EXT1_WAKE = const(3)
    TIMER_WAKE = const(4)
    TOUCHPAD_WAKE = const(5)
    ULP_WAKE = const(6)

_board_pins = _P["board"]["pins"]
_valid_pins = _P["board"]["gpio"]
_input_only = _P["board"].get("input_only_gpio", ())


def _pin_id(pin):
    if isinstance(pin, Pin):
        return pin._id
    if isinstance(pin, str):
        named = _board_pins.get("names", {})
        if pin in named:
            return named[pin]
        raise ValueError("invalid pin")
    if pin not in _valid_pins:
        raise ValueError("invalid pin")
    return pin


class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        self._id = _pin_id(id)
        self._mode = Pin.IN
        self._pull = None
        self._irq = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self._id in _input_only:
                raise ValueError("pin can only be input")
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)

    def value(self, x=None):
        if x is None:
            status, data = _simlink.call(_OP_PIN_GET, struct.pack("<H", self._id))
            return data[0]
        _simlink.notify(_OP_PIN_SET, struct.pack("<HB", self._id, 1 if x else 0))

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def high(self):
        self.value(1)

    def low(self):
        self.value(0)

    def toggle(self):
        self.value(1 - self.value())

    def mode(self, mode=None):
        if mode is None:
            return self._mode
        self.init(mode)

    def pull(self, pull=None):
        if pull is None:
            return self._pull
        self._pull = pull

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        # Edges are not simulated yet: the handler is kept and never called.
        self._irq = handler
        return None

    def __repr__(self):
        return "Pin(%d)" % self._id


class Signal:
    def __init__(self, pin, *, invert=False):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin)
        self._invert = invert

    def value(self, x=None):
        if x is None:
            return self._pin.value() ^ self._invert
        self._pin.value(bool(x) ^ self._invert)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


def _bus_index(kind, id, pins):
    # Find which of the board's wired buses these pins (or this id) name; 255 = unwired pins.
    buses = _board_pins.get(kind, ())
    given = {k: _pin_id(v) for k, v in pins.items() if v is not None}
    for i, bus in enumerate(buses):
        if given:
            if all(bus.get(k) == v for k, v in given.items()):
                return i
        elif bus["id"] == id:
            return i
    if not given and id not in (-1, None) and not 0 <= id <= 1:
        raise ValueError("%s(%s) doesn't exist" % (kind.upper(), id))
    return 255


class I2C:
    def __init__(self, id=-1, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._bus = _bus_index("i2c", id, {"scl": scl, "sda": sda})
        self._freq = freq

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        if scl is not None or sda is not None:
            self._bus = _bus_index("i2c", -1, {"scl": scl, "sda": sda})
        self._freq = freq

    def _xfer(self, addr, wdata, nread, stop):
        flags = (1 if stop else 0) | (2 if nread >= 0 else 0)
        hdr = struct.pack("<BHBH", self._bus, addr, flags, max(nread, 0))
        status, data = _simlink.call(_OP_I2C, hdr + bytes(wdata))
        if status == 1:
            raise OSError(_ENODEV if _ESP32 else _EIO)
        if status == 2:
            raise OSError(_ETIMEDOUT)
        return data

    def scan(self):
        found = []
        for addr in range(0x08, 0x78):
            try:
                self._xfer(addr, b"", -1, True)
                found.append(addr)
            except OSError:
                pass
        return found

    def writeto(self, addr, buf, stop=True):
        data = self._xfer(addr, buf, -1, stop)
        return data[0] | (data[1] << 8)

    def writevto(self, addr, vector, stop=True):
        return self.writeto(addr, b"".join(bytes(v) for v in vector), stop)

    def readfrom(self, addr, nbytes, stop=True):
        return self._xfer(addr, b"", nbytes, stop)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._xfer(addr, b"", len(buf), stop)
        buf[:] = data

    def _memaddr(self, memaddr, addrsize):
        return memaddr.to_bytes(addrsize // 8, "big")

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._xfer(addr, self._memaddr(memaddr, addrsize) + bytes(buf), -1, True)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        self._xfer(addr, self._memaddr(memaddr, addrsize), -1, False)
        return self._xfer(addr, b"", nbytes, True)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        buf[:] = self.readfrom_mem(addr, memaddr, len(buf), addrsize=addrsize)


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        super().__init__(-1, scl=scl, sda=sda, freq=freq, timeout=timeout)


class SPI:
    MSB = const(0)
    LSB = const(1)

    def __init__(
        self,
        id=1,
        baudrate=1000000,
        *,
        polarity=0,
        phase=0,
        bits=8,
        firstbit=0,
        sck=None,
        mosi=None,
        miso=None,
    ):
        self._bus = _bus_index("spi", id, {"sck": sck, "mosi": mosi, "miso": miso})
        self._baudrate = baudrate

    def init(self, baudrate=1000000, *, sck=None, mosi=None, miso=None, **_modes):
        # Mode settings (polarity, phase, bits, firstbit) do not change what the models see.
        self._baudrate = baudrate
        if sck is not None or mosi is not None or miso is not None:
            self._bus = _bus_index("spi", -1, {"sck": sck, "mosi": mosi, "miso": miso})

    def deinit(self):
        pass

    def _xfer(self, wbuf):
        status, data = _simlink.call(_OP_SPI, struct.pack("<B", self._bus) + bytes(wbuf))
        return data

    def write(self, buf):
        self._xfer(buf)

    def read(self, nbytes, write=0x00):
        return self._xfer(bytes([write]) * nbytes)

    def readinto(self, buf, write=0x00):
        buf[:] = self._xfer(bytes([write]) * len(buf))

    def write_readinto(self, write_buf, read_buf):
        read_buf[:] = self._xfer(write_buf)


class SoftSPI(SPI):
    def __init__(
        self,
        baudrate=500000,
        *,
        polarity=0,
        phase=0,
        bits=8,
        firstbit=0,
        sck=None,
        mosi=None,
        miso=None,
    ):
        super().__init__(-1, baudrate, sck=sck, mosi=mosi, miso=miso)


class ADC:
    ATTN_0DB = const(0)
    ATTN_2_5DB = const(1)
    ATTN_6DB = const(2)
    ATTN_11DB = const(3)
    WIDTH_12BIT = const(12)

    def __init__(self, pin, *, atten=None):
        if not _ESP32 and isinstance(pin, int) and not isinstance(pin, bool) and pin <= 4:
            pin = 26 + pin  # rp2: ADC(0..3) are GPIO26..29, 4 is the temperature sensor
        self._pin = _pin_id(pin) if not (not _ESP32 and pin == 30) else 30
        self._atten = ADC.ATTN_0DB if atten is None else atten

    def _read(self):
        status, data = _simlink.call(_OP_ADC, struct.pack("<HB", self._pin, self._atten))
        return struct.unpack("<HI", data)

    def read_u16(self):
        return self._read()[0]

    if _ESP32:
        # The rp2 port's ADC has read_u16() only (ports/rp2/machine_adc.c).

        def atten(self, atten):
            self._atten = atten

        def width(self, bits):
            pass

        def read(self):
            return self._read()[0] >> 4

        def read_uv(self):
            return self._read()[1]


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            t = _time.gmtime()
            # (year, month, day, weekday, hours, minutes, seconds, subseconds)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        y, mo, d, _wd, h, mi, s = datetimetuple[:7]
        _time.set_wall(_time.mktime((y, mo, d, h, mi, s, 0, 0)))

    def init(self, datetimetuple):
        self.datetime(datetimetuple)

    if _ESP32:

        def memory(self, data=None):
            if data is None:
                return bytes(_P["rtc_memory"])
            if len(data) > 2048:
                raise ValueError("buffer too long")
            _P["rtc_memory"] = bytes(data)
            _simlink.call(_OP_RTC_MEM, bytes(data))


class WDT:
    def __init__(self, id=0, timeout=5000):
        _simlink.call(_OP_WDT_ARM, struct.pack("<I", timeout))

    def feed(self):
        _simlink.notify(_OP_WDT_FEED)


def reset_cause():
    return _P["reset_cause"]


if _ESP32:

    def wake_reason():
        return TIMER_WAKE if _P["reset_cause"] == DEEPSLEEP_RESET else 0


def unique_id():
    return bytes(_P["unique_id"])


def freq(hz=None):
    if hz is None:
        return _P["freq_hz"]
    if hz not in _P["board"]["freqs_hz"]:
        raise ValueError("frequency must be one of %s" % (_P["board"]["freqs_hz"],))
    _P["freq_hz"] = hz


def idle():
    _time.sleep_ms(1)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def lightsleep(time_ms=None):
    # The CPU halts and resumes here; time and RAM are kept.
    _time.sleep_ms(time_ms if time_ms else 0)


def deepsleep(time_ms=None):
    # The supervisor powers the CPU down (this process ends) and wakes a fresh interpreter
    # after `time_ms` of simulated time; with no time it sleeps until reset.
    _simlink.call(_OP_DEEPSLEEP, struct.pack("<q", int(time_ms) if time_ms else -1))
    while True:
        _time.sleep_ms(1000)


def reset():
    _simlink.call(_OP_RESET)
    while True:
        _time.sleep_ms(1000)


def soft_reset():
    raise SystemExit


def bootloader(value=None):
    _simlink.call(_OP_BOOTLOADER)
    while True:
        _time.sleep_ms(1000)
