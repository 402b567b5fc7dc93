# Virtual-board `onewire`: the OneWire class the esp32 and rp2 ports ship frozen, written here
# from its documented API (reset, read/write bits and bytes, select_rom, scan, crc8).
# scan() is the ROM search of Maxim application note 187, with MicroPython's limits.
import _onewire
from micropython import const


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = const(0xF0)
    MATCH_ROM = const(0x55)
    SKIP_ROM = const(0xCC)

    def __init__(self, pin):
        self.pin = pin

    def reset(self, required=False):
        present = _onewire.reset(self.pin)
        if required and not present:
            raise OneWireError
        return present

    def readbit(self):
        return _onewire.readbit(self.pin)

    def readbyte(self):
        return _onewire.readbyte(self.pin)

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = _onewire.readbyte(self.pin)

    def writebit(self, value):
        _onewire.writebit(self.pin, value)

    def writebyte(self, value):
        _onewire.writebyte(self.pin, value)

    def write(self, buf):
        for b in buf:
            _onewire.writebyte(self.pin, b)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(OneWire.MATCH_ROM)
        self.write(rom)

    def crc8(self, data):
        return _onewire.crc8(data)

    def scan(self):
        # As MicroPython's onewire.scan(): at most 255 search passes, and no CRC or family
        # check (callers check ROMs themselves); a search that nobody answers ends it.
        roms = []
        rom = bytearray(8)
        last_conflict = -1
        for _ in range(255):
            if not self.reset():
                return roms
            self.writebyte(OneWire.SEARCH_ROM)
            conflict = -1
            for bit in range(64):
                b = self.readbit()
                comp = self.readbit()
                if b and comp:
                    return roms  # nobody answered this bit: the bus changed under us
                if b == comp:  # devices disagree: take 1 below the last branch point
                    if bit < last_conflict:
                        b = (rom[bit // 8] >> (bit % 8)) & 1
                    else:
                        b = 1 if bit == last_conflict else 0
                    if b == 0:
                        conflict = bit
                if b:
                    rom[bit // 8] |= 1 << (bit % 8)
                else:
                    rom[bit // 8] &= ~(1 << (bit % 8))
                self.writebit(b)
            roms.append(bytearray(rom))
            last_conflict = conflict
            if last_conflict < 0:
                return roms
        return roms
