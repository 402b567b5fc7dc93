# Semtech SX1276/77/78 LoRa transceiver on SPI, register level, in LoRa mode. Datasheet: Semtech
# "SX1276/77/78/79" rev. 7 (May 2020); sections cited where used. The radio API is shared with
# sx126x.py (docs/radios.md):
#
#   r = SX127x(machine.SPI(1, sck=Pin(5), mosi=Pin(27), miso=Pin(19)),
#              Pin(18), Pin(14), Pin(26))           # cs, reset, dio0: resets, checks RegVersion
#   r.configure(868_100_000, sf=7, bw_hz=125_000)  # cr 1 = 4/5, 14 dBm, sync word 0x34
#   r.send(b"hello", 2000)                         # blocks until TxDone, else OSError(ETIMEDOUT)
#   buf = bytearray(255)
#   got = r.recv(buf, 1000)                        # (n, rssi_dbm, snr_db) or None
#   r.listen()                                     # continuous RX until send/recv/sleep/...
#   got = r.poll(buf)                              # a packet received meanwhile, or None
#   r.sleep()                                      # 0.2 uA; the configuration is kept
#   r.feed = wdt.feed                              # optional: called every 500 ms while waiting
#
# The output is PA_BOOST (every common SX1276 module: RFM95W, TTGO LoRa32, Heltec V2), 2..20 dBm;
# the RFO pin is not used. Interrupts: DIO0 is polled (TxDone/RxDone), RegIrqFlags read for
# RxTimeout, which the datasheet puts on DIO1 (often not wired). SF7..12 only (LoRaWAN's;
# SF6 needs implicit header mode). LowDataRateOptimize is set when a symbol lasts longer than
# 16 ms (4.1.1.6), as LoRaWAN requires.
import time

from micropython import const

_DEBUG = const(False)
_ETIMEDOUT = const(110)

# 6.4 "LoRa Mode Register Map" (addresses; reset values in brackets).
_REG_FIFO = const(0x00)
_REG_OP_MODE = const(0x01)  # [0x09 at POR: FSK, standby]
_REG_FRF_MSB = const(0x06)  # Frf = F * 2^19 / 32 MHz, applied on the LSB write
_REG_PA_CONFIG = const(0x09)  # [0x4F]
_REG_OCP = const(0x0B)  # [0x2B: on, 100 mA]
_REG_LNA = const(0x0C)  # [0x20]
_REG_FIFO_ADDR_PTR = const(0x0D)
_REG_FIFO_TX_BASE = const(0x0E)  # [0x80]
_REG_FIFO_RX_BASE = const(0x0F)  # [0x00]
_REG_FIFO_RX_CURRENT = const(0x10)
_REG_IRQ_FLAGS = const(0x12)  # write 1 to clear
_REG_RX_NB_BYTES = const(0x13)
_REG_MODEM_STAT = const(0x18)
_REG_PKT_SNR = const(0x19)  # signed, quarter dB
_REG_PKT_RSSI = const(0x1A)
_REG_MODEM_CONFIG1 = const(0x1D)  # Bw(7:4) CodingRate(3:1) ImplicitHeaderModeOn(0)
_REG_MODEM_CONFIG2 = const(0x1E)  # SpreadingFactor(7:4) RxPayloadCrcOn(2) SymbTimeout(9:8)
_REG_SYMB_TIMEOUT_LSB = const(0x1F)
_REG_PREAMBLE_MSB = const(0x20)
_REG_PAYLOAD_LENGTH = const(0x22)
_REG_MODEM_CONFIG3 = const(0x26)  # LowDataRateOptimize(3) AgcAutoOn(2)
_REG_DETECT_OPTIMIZE = const(0x31)
_REG_INVERT_IQ = const(0x33)  # [0x27]: InvertIQ RX(6), InvertIQ TX off(0)
_REG_DETECTION_THRESHOLD = const(0x37)
_REG_SYNC_WORD = const(0x39)  # [0x12]; LoRaWAN public networks 0x34
_REG_INVERT_IQ2 = const(0x3B)  # 0x19 with inverted IQ, 0x1D without (Semtech LoRaMac-node)
_REG_DIO_MAPPING1 = const(0x40)  # Dio0Mapping(7:6): 00 RxDone, 01 TxDone
_REG_VERSION = const(0x42)  # 0x12 on SX1276/77/78/79
_REG_PA_DAC = const(0x4D)  # [0x84]; 0x87: +20 dBm on PA_BOOST (5.4.3)

_VERSION = const(0x12)
_WRITE = const(0x80)  # 4.3 "SPI Interface": address MSB set for a write

# RegOpMode (6.4, 4.1.3): LongRangeMode(7) and Mode(2:0). LongRangeMode changes in SLEEP only.
_LORA = const(0x80)
_MODE_SLEEP = const(0x00)
_MODE_STDBY = const(0x01)
_MODE_TX = const(0x03)
_MODE_RX_CONTINUOUS = const(0x05)
_MODE_RX_SINGLE = const(0x06)

# RegIrqFlags bits (6.4).
_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_PAYLOAD_CRC_ERROR = const(0x20)
_IRQ_TX_DONE = const(0x08)

_DIO0_RX_DONE = const(0x00)
_DIO0_TX_DONE = const(0x40)

_MODEM_STAT_SIGNAL = const(0x03)  # signal detected | signal synchronized: a packet under way

_PA_BOOST = const(0x80)
_OCP_ON = const(0x20)
_OCP_TRIM_100MA = const(11)  # 5.4.4: Imax = 45 + 5 * OcpTrim mA
_OCP_TRIM_140MA = const(17)  # Imax = -30 + 10 * OcpTrim mA; +20 dBm draws 120 mA
_LNA_MAX_BOOST = const(0x23)  # G1 (max gain), LnaBoostHf 150 % (HF port)
_DETECT_OPTIMIZE_SF7_12 = const(0xC3)  # 6.4 RegDetectOptimize, SF7..12
_DETECTION_THRESHOLD_SF7_12 = const(0x0A)
_AGC_AUTO = const(0x04)
_LDRO = const(0x08)
_LDRO_SYMBOL_US = const(16000)  # 4.1.1.6: mandated above 16 ms per symbol
_SYMB_TIMEOUT_MAX = const(1023)  # 10 bits over RegModemConfig2(1:0) and RegSymbTimeoutLsb

_FSTEP_NUM = const(15625)  # Fstep = 32 MHz / 2^19 = 15625 / 256 Hz (4.1.4)
_FSTEP_DEN = const(256)
_HF_MIN_HZ = const(525_000_000)  # above: the HF port (band 1, 862-1020 MHz on SX1276)
_RSSI_OFFSET_HF = const(-157)  # 5.5.5
_RSSI_OFFSET_LF = const(-164)

_RESET_LOW_MS = const(1)  # 7.2.2 "Manual Reset": > 100 us low ...
_RESET_READY_MS = const(6)  # ... then 5 ms before the chip is used
_FEED_MS = const(500)
# recv()'s guard against a chip that stopped answering: the window, the longest packet, then
# this. Generous, as only a dead chip reaches it; on the virtual air an empty window may wait
# this long in real time for a gateway-role board's join accept (5 s, docs/virtual-air.md).
_STALL_MS = const(6000)

# 4.1.1.2, RegModemConfig1 Bw codes 0..9.
_BANDWIDTHS = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)


class SX127x:
    def __init__(self, spi, cs, reset, dio0):
        self._spi = spi
        self._cs = cs
        self._reset = reset
        self._dio0 = dio0
        cs.init(cs.OUT, value=1)
        reset.init(reset.OUT, value=1)
        dio0.init(dio0.IN)
        self._hdr = bytearray(1)  # the address byte of a burst
        self._b2 = bytearray(2)  # address + value of one register access
        self.feed = None  # the watchdog's feed(), called while send/recv wait
        self._configured = False
        self._sym_us = 0  # symbol time of the configured modem
        self._max_packet_ms = 0  # the longest packet's time on air, for the guard
        self._iq_invert = False
        self._hf = True
        self._listening = False  # in RXCONTINUOUS by listen(), until another mode
        self.reset()
        version = self._read(_REG_VERSION)
        if version != _VERSION:
            raise OSError(
                "sx127x: RegVersion is 0x%02x, not 0x12 (no chip, wrong pins, or another radio)"
                % version
            )
        # LoRa mode is chosen in SLEEP (4.1.3), then STDBY for the register writes.
        self._write(_REG_OP_MODE, _MODE_SLEEP)
        self._write(_REG_OP_MODE, _LORA | _MODE_SLEEP)
        self._write(_REG_OP_MODE, _LORA | _MODE_STDBY)
        if self._read(_REG_OP_MODE) & _LORA == 0:
            raise OSError("sx127x: LoRa mode does not stick (RegOpMode)")

    def reset(self):
        self._reset(0)
        time.sleep_ms(_RESET_LOW_MS)
        self._reset(1)
        time.sleep_ms(_RESET_READY_MS)
        self._configured = False
        self._listening = False

    # --- the radio API -------------------------------------------------------------------------
    def configure(
        self,
        freq_hz,
        sf,
        bw_hz,
        cr=1,
        power_dbm=14,
        sync_word=0x34,
        preamble=8,
        iq_invert=False,
        crc=True,
    ):
        if not 137_000_000 <= freq_hz <= 1_020_000_000:
            raise ValueError("sx127x: frequency %d Hz is outside 137-1020 MHz" % freq_hz)
        if not 7 <= sf <= 12:
            raise ValueError("sx127x: SF%d: only SF7..SF12" % sf)
        if bw_hz not in _BANDWIDTHS:
            raise ValueError("sx127x: bandwidth %d Hz is not one of %s" % (bw_hz, _BANDWIDTHS))
        if not 1 <= cr <= 4:
            raise ValueError("sx127x: coding rate index %d: 1..4 (4/5..4/8)" % cr)
        if not 2 <= power_dbm <= 20:
            raise ValueError("sx127x: %d dBm: PA_BOOST gives 2..20 dBm" % power_dbm)
        if not 0 <= sync_word <= 0xFF:
            raise ValueError("sx127x: sync word 0x%x is one byte" % sync_word)
        if not 6 <= preamble <= 0xFFFF:
            raise ValueError("sx127x: preamble of %d symbols: 6..65535" % preamble)
        self._standby()
        # 4.1.4 "Frequency Settings": Frf = F / Fstep in integers (F * 2^19 overflows a small
        # int on a 32-bit port): divide by 15625 first, then scale the remainder.
        q, r = divmod(freq_hz, _FSTEP_NUM)
        frf = q * _FSTEP_DEN + (r * _FSTEP_DEN + _FSTEP_NUM // 2) // _FSTEP_NUM
        self._write(_REG_FRF_MSB, frf >> 16)
        self._write(_REG_FRF_MSB + 1, (frf >> 8) & 0xFF)
        self._write(_REG_FRF_MSB + 2, frf & 0xFF)
        self._hf = freq_hz > _HF_MIN_HZ
        # 5.4.3 "High Power +20 dBm Operation" and 5.4.4 "Over Current Protection": PA_BOOST
        # gives Pout = 2 + OutputPower up to 17 dBm; 18..20 dBm need RegPaDac 0x87 (Pout = 5 +
        # OutputPower) and 120 mA, above the OCP's 100 mA default.
        if power_dbm > 17:
            self._write(_REG_PA_DAC, 0x87)
            self._write(_REG_PA_CONFIG, _PA_BOOST | 0x70 | (power_dbm - 5))
            self._write(_REG_OCP, _OCP_ON | _OCP_TRIM_140MA)
        else:
            self._write(_REG_PA_DAC, 0x84)
            self._write(_REG_PA_CONFIG, _PA_BOOST | 0x70 | (power_dbm - 2))
            self._write(_REG_OCP, _OCP_ON | _OCP_TRIM_100MA)
        self._write(_REG_LNA, _LNA_MAX_BOOST)
        bw_code = _BANDWIDTHS.index(bw_hz)
        self._write(_REG_MODEM_CONFIG1, (bw_code << 4) | (cr << 1))  # explicit header
        self._write(_REG_MODEM_CONFIG2, (sf << 4) | (0x04 if crc else 0))
        # 4.1.1.6: a symbol lasts 2^SF / BW; float keeps 2^12 * 10^6 out of long ints.
        self._sym_us = int((1 << sf) * 1_000_000.0 / bw_hz)
        ldro = self._sym_us > _LDRO_SYMBOL_US
        self._write(_REG_MODEM_CONFIG3, _AGC_AUTO | (_LDRO if ldro else 0))
        self._write(_REG_DETECT_OPTIMIZE, _DETECT_OPTIMIZE_SF7_12)
        self._write(_REG_DETECTION_THRESHOLD, _DETECTION_THRESHOLD_SF7_12)
        self._write(_REG_PREAMBLE_MSB, preamble >> 8)
        self._write(_REG_PREAMBLE_MSB + 1, preamble & 0xFF)
        self._write(_REG_SYNC_WORD, sync_word)
        self._write(_REG_FIFO_TX_BASE, 0)
        self._write(_REG_FIFO_RX_BASE, 0)
        self._iq_invert = iq_invert
        # 4.1.1.7 time on air of a 255-byte packet, bounded from above: preamble + 4.25 + 8
        # symbols, then ceil((8 * 255 + 44) / (4 * (SF - 2 * LDRO))) blocks of CR + 4 symbols.
        de = 2 if ldro else 0
        blocks = (2084 + 4 * (sf - de) - 1) // (4 * (sf - de))
        symbols = preamble + 13 + blocks * (cr + 4)
        self._max_packet_ms = symbols * self._sym_us // 1000 + 1
        self._configured = True

    def send(self, data, timeout_ms):
        n = len(data)
        if not 0 < n <= 255:
            raise ValueError("sx127x: a packet is 1..255 bytes, not %d" % n)
        self._check()
        self._standby()
        self._set_iq(tx=True)
        # 4.1.2.3 "FIFO Data Buffer": write the payload from FifoTxBaseAddr.
        self._write(_REG_FIFO_ADDR_PTR, 0)
        self._burst(_REG_FIFO | _WRITE, data, True)
        self._write(_REG_PAYLOAD_LENGTH, n)
        self._write(_REG_DIO_MAPPING1, _DIO0_TX_DONE)
        self._write(_REG_IRQ_FLAGS, 0xFF)
        self._write(_REG_OP_MODE, _LORA | _MODE_TX)
        # 4.1.6 "LoRa Modem State Machine Sequences", transmit: TxDone raises DIO0, then the
        # chip returns to STDBY by itself.
        start = time.ticks_ms()
        fed = start
        while True:
            now = time.ticks_ms()  # before the pin: a slow read cannot fake a timeout
            if self._dio0.value():
                break
            if time.ticks_diff(now, start) >= timeout_ms:
                self._standby()
                raise OSError(_ETIMEDOUT, "sx127x: TX not done within %d ms" % timeout_ms)
            fed = self._feed(now, fed)
            time.sleep_ms(1)
        flags = self._read(_REG_IRQ_FLAGS)
        self._write(_REG_IRQ_FLAGS, 0xFF)
        if not flags & _IRQ_TX_DONE:
            raise OSError("sx127x: DIO0 without TxDone (RegIrqFlags 0x%02x)" % flags)

    def recv(self, buf, timeout_ms):
        self._arm_rx()
        # 4.1.6, receive: RXSINGLE waits RegSymbTimeout symbols for a preamble (then RxTimeout)
        # and keeps receiving a packet it found. Longer waits than its 1023 symbols use
        # RXCONTINUOUS and this clock, and still finish a packet under way (RegModemStat).
        symbols = (timeout_ms * 1000 + self._sym_us - 1) // self._sym_us
        single = symbols <= _SYMB_TIMEOUT_MAX
        if single:
            symbols = max(symbols, 4)
            cfg2 = self._read(_REG_MODEM_CONFIG2) & 0xFC
            self._write(_REG_MODEM_CONFIG2, cfg2 | (symbols >> 8))
            self._write(_REG_SYMB_TIMEOUT_LSB, symbols & 0xFF)
            self._write(_REG_OP_MODE, _LORA | _MODE_RX_SINGLE)
        else:
            self._write(_REG_OP_MODE, _LORA | _MODE_RX_CONTINUOUS)
        # The chip's timeout ends the wait; this guard only catches a chip that stopped
        # answering. No sleep in the loop: an RX window is short, and polling keeps the
        # virtual board's clock in step with the gateway's downlink (docs/radios.md).
        start = time.ticks_ms()
        fed = start
        checked = start
        limit = timeout_ms + self._max_packet_ms + _STALL_MS
        flags = 0
        while True:
            now = time.ticks_ms()
            if self._dio0.value():
                flags = self._read(_REG_IRQ_FLAGS)
                break
            if now != checked:  # at most once a millisecond over SPI
                checked = now
                waited = time.ticks_diff(now, start)
                if single:
                    flags = self._read(_REG_IRQ_FLAGS)
                    if flags & (_IRQ_RX_TIMEOUT | _IRQ_RX_DONE):
                        break
                elif waited >= timeout_ms and not self._read(_REG_MODEM_STAT) & _MODEM_STAT_SIGNAL:
                    break  # nothing under way when our own timeout passed
                if waited >= limit:
                    self._standby()
                    raise OSError(_ETIMEDOUT, "sx127x: no RxDone/RxTimeout (chip not answering)")
                fed = self._feed(now, fed)
        self._write(_REG_IRQ_FLAGS, 0xFF)
        self._standby()
        return self._packet(buf, flags)

    def listen(self):
        # 4.1.6, continuous receive: RXCONTINUOUS keeps listening after every packet (RxDone
        # on DIO0, the packet at FifoRxCurrentAddr) until the mode changes. poll() takes the
        # packets; send(), recv(), configure(), sleep() and reset() end it.
        self._arm_rx()
        self._write(_REG_OP_MODE, _LORA | _MODE_RX_CONTINUOUS)
        self._listening = True

    def poll(self, buf):
        # The packet received since the last poll, or None; the radio stays in RX. A packet
        # with a CRC error is dropped (None). Poll at least once per packet time: the chip
        # keeps one packet, the next RxDone replaces it.
        if not self._listening:
            raise RuntimeError("sx127x: listen() first")
        if not self._dio0.value():
            return None
        flags = self._read(_REG_IRQ_FLAGS)
        got = self._packet(buf, flags)
        self._write(_REG_IRQ_FLAGS, 0xFF)  # after the read: a cleared RxDone frees the FIFO
        return got

    def _arm_rx(self):
        self._check()
        self._standby()
        self._set_iq(tx=False)
        self._write(_REG_FIFO_ADDR_PTR, 0)
        self._write(_REG_DIO_MAPPING1, _DIO0_RX_DONE)
        self._write(_REG_IRQ_FLAGS, 0xFF)

    def _packet(self, buf, flags):
        if not flags & _IRQ_RX_DONE or flags & _IRQ_PAYLOAD_CRC_ERROR:
            if _DEBUG:
                print("sx127x: no packet, RegIrqFlags 0x%02x" % flags)
            return None
        # 4.1.2.3: the packet is at FifoRxCurrentAddr, RegRxNbBytes long.
        n = self._read(_REG_RX_NB_BYTES)
        n = min(n, len(buf))
        self._write(_REG_FIFO_ADDR_PTR, self._read(_REG_FIFO_RX_CURRENT))
        self._burst(_REG_FIFO, memoryview(buf)[:n], False)
        # 5.5.5 "RSSI and SNR in LoRa Mode": SNR = PacketSnr / 4 (two's complement); packet
        # RSSI = offset + 16/15 * PacketRssi when SNR >= 0, offset + PacketRssi + SNR below.
        snr_q = self._read(_REG_PKT_SNR)
        if snr_q > 127:
            snr_q -= 256
        pkt = self._read(_REG_PKT_RSSI)
        offset = _RSSI_OFFSET_HF if self._hf else _RSSI_OFFSET_LF
        rssi = offset + (pkt + int(snr_q / 4) if snr_q < 0 else pkt * 16 // 15)
        return n, rssi, snr_q / 4

    def sleep(self):
        # 4.1.3: SLEEP keeps every register (not the FIFO); 0.2 uA.
        self._listening = False
        self._write(_REG_OP_MODE, _LORA | _MODE_SLEEP)

    # --- internals -----------------------------------------------------------------------------
    def _check(self):
        if not self._configured:
            raise RuntimeError("sx127x: configure() first (or again after reset())")

    def _feed(self, now, fed):
        if self.feed is not None and time.ticks_diff(now, fed) >= _FEED_MS:
            self.feed()
            return now
        return fed

    def _standby(self):
        self._listening = False
        self._write(_REG_OP_MODE, _LORA | _MODE_STDBY)

    def _set_iq(self, tx):
        # RegInvertIQ: bit 6 inverts RX, bit 0 *clear* inverts TX; RegInvertIQ2 follows RX.
        # Only the direction in use is inverted, as Semtech's LoRaMac-node does.
        v = self._read(_REG_INVERT_IQ) & 0xBE
        if not self._iq_invert:
            v |= 0x01
        elif not tx:
            v |= 0x41
        self._write(_REG_INVERT_IQ, v)
        self._write(_REG_INVERT_IQ2, 0x19 if self._iq_invert else 0x1D)

    def _read(self, reg):
        b = self._b2
        b[0] = reg
        b[1] = 0
        self._cs(0)
        try:
            self._spi.write_readinto(b, b)
        finally:
            self._cs(1)
        return b[1]

    def _write(self, reg, value):
        b = self._b2
        b[0] = reg | _WRITE
        b[1] = value
        self._cs(0)
        try:
            self._spi.write(b)
        finally:
            self._cs(1)

    def _burst(self, addr, data, write):
        # 4.3 "SPI Interface", burst access: one address byte, then bytes to or from the FIFO.
        self._hdr[0] = addr
        self._cs(0)
        try:
            self._spi.write(self._hdr)
            if write:
                self._spi.write(data)
            else:
                self._spi.readinto(data)
        finally:
            self._cs(1)
