# Semtech SX1262 LoRa transceiver on SPI, command level, with BUSY handshake. Datasheet: Semtech
# "SX1261/2" DS_SX1261-2 v2.1 (December 2021); sections cited where used. The radio API is
# shared with sx127x.py (docs/radios.md):
#
#   r = SX126x(machine.SPI(1, sck=Pin(9), mosi=Pin(10), miso=Pin(11)), Pin(8), Pin(12),
#              Pin(13), Pin(14), dio2_rf_switch=True, tcxo_mv=1800)  # cs, reset, busy, dio1
#   r.configure(868_100_000, sf=7, bw_hz=125_000)  # cr 1 = 4/5, 14 dBm, sync word 0x34 (0x3444)
#   r.send(b"hello", 2000)                         # blocks until TxDone, else OSError(ETIMEDOUT)
#   buf = bytearray(255)
#   got = r.recv(buf, 1000)                        # (n, rssi_dbm, snr_db) or None
#   r.listen()                                     # continuous RX until send/recv/sleep/...
#   got = r.poll(buf)                              # a packet received meanwhile, or None
#   r.sleep()                                      # warm start: 0.6 uA, configuration kept
#   r.feed = wdt.feed                              # optional: called every 500 ms while waiting
#
# Every command waits for BUSY low first (8.3.1); the chip takes none while BUSY is high.
# Interrupts: DIO1 is polled (TxDone, RxDone, Timeout, CRC and header errors mapped to it).
# The PA settings are the SX1262's (13.1.14, up to +22 dBm); an SX1261 is not supported.
# SF7..12 only (LoRaWAN's). sync_word takes the one-byte SX127x form (0x34 -> 0x3444, 0x12 ->
# 0x1424) or the two-byte register value.
import time

from micropython import const

_DEBUG = const(False)
_ETIMEDOUT = const(110)

# 13 "List of Commands" (opcodes).
_SET_SLEEP = const(0x84)
_SET_STANDBY = const(0x80)
_SET_TX = const(0x83)
_SET_RX = const(0x82)
_SET_REGULATOR_MODE = const(0x96)
_CALIBRATE = const(0x89)
_CALIBRATE_IMAGE = const(0x98)
_SET_PA_CONFIG = const(0x95)
_WRITE_REGISTER = const(0x0D)
_READ_REGISTER = const(0x1D)
_WRITE_BUFFER = const(0x0E)
_READ_BUFFER = const(0x1E)
_SET_DIO_IRQ_PARAMS = const(0x08)
_GET_IRQ_STATUS = const(0x12)
_CLEAR_IRQ_STATUS = const(0x02)
_SET_DIO2_AS_RF_SWITCH = const(0x9D)
_SET_DIO3_AS_TCXO = const(0x97)
_SET_RF_FREQUENCY = const(0x86)
_SET_PACKET_TYPE = const(0x8A)
_SET_TX_PARAMS = const(0x8E)
_SET_MODULATION_PARAMS = const(0x8B)
_SET_PACKET_PARAMS = const(0x8C)
_SET_BUFFER_BASE = const(0x8F)
_GET_STATUS = const(0xC0)
_GET_RX_BUFFER_STATUS = const(0x13)
_GET_PACKET_STATUS = const(0x14)
_CLEAR_DEVICE_ERRORS = const(0x07)

# 12 "Register Map".
_REG_IQ_POLARITY = const(0x0736)  # 15.4: bit 2 cleared with inverted IQ, set without
_REG_SYNC_WORD = const(0x0740)  # and 0x0741: 0x3444 public (LoRaWAN), 0x1424 private
_REG_TX_MODULATION = const(0x0889)  # 15.1: bit 2 cleared at 500 kHz, set otherwise

_STDBY_RC = const(0)
_PACKET_LORA = const(1)
_REGULATOR_DCDC = const(1)  # 13.1.12: the modules this runs on fit the DC-DC inductor
_CALIBRATE_ALL = const(0x7F)
_SLEEP_WARM = const(0x04)  # 13.1.1: warm start, configuration retained
_RAMP_200US = const(0x04)  # 13.4.4

# 13.5.1 GetStatus: chip mode in bits 6:4.
_MODE_STBY_RC = const(2)

# 13.3.1 IRQ bits.
_IRQ_TX_DONE = const(0x0001)
_IRQ_RX_DONE = const(0x0002)
_IRQ_PREAMBLE = const(0x0004)
_IRQ_HEADER_VALID = const(0x0010)
_IRQ_HEADER_ERR = const(0x0020)
_IRQ_CRC_ERR = const(0x0040)
_IRQ_TIMEOUT = const(0x0200)
_IRQ_DIO1 = const(0x0263)  # TxDone RxDone HeaderErr CrcErr Timeout
_IRQ_ALL = const(0x0277)  # the DIO1 set plus PreambleDetected and HeaderValid (read only)

_RX_CONTINUOUS = const(0xFFFFFF)  # 13.1.5 SetRx: timeout in 15.625 us steps; this: continuous
_STEPS_PER_MS = const(64)  # 1 ms / 15.625 us
_STEPS_MAX = const(0xFFFFFE)  # 262 s

_RESET_LOW_MS = const(1)  # 8.1: NRESET low for at least 100 us
_BUSY_MS = const(20)  # longest wait for BUSY: a cold start with calibration is 3.5 ms
_TCXO_DELAY_STEPS = const(320)  # 5 ms for the TCXO to settle, in 15.625 us steps
_LDRO_SYMBOL_US = const(16000)  # 6.1.1.4: low data rate optimisation above 16 ms a symbol
_FEED_MS = const(500)
# recv()'s guard against a chip that stopped answering: the window, the longest packet, then
# this. Generous, as only a dead chip reaches it; on the virtual air an empty window may wait
# this long in real time for a gateway-role board's join accept (5 s, docs/virtual-air.md).
_STALL_MS = const(6000)

# 13.4.5.2 LoRa bandwidth codes, in the order of the Hz values.
_BANDWIDTHS = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
_BW_CODES = b"\x00\x08\x01\x09\x02\x0a\x03\x04\x05\x06"
# 13.3.6 SetDIO3AsTCXOCtrl voltages, 1.6..3.3 V, codes 0..7.
_TCXO_MV = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)
# 9.2.1 Table 9-2 image calibration: (MHz low, MHz high, freq1, freq2).
_IMAGE_BANDS = (
    (430, 440, 0x6B, 0x6F),
    (470, 510, 0x75, 0x81),
    (779, 787, 0xC1, 0xC5),
    (863, 870, 0xD7, 0xDB),
    (902, 928, 0xE1, 0xE9),
)


class SX126x:
    def __init__(self, spi, cs, reset, busy, dio1, dio2_rf_switch=False, tcxo_mv=0):
        if tcxo_mv and tcxo_mv not in _TCXO_MV:
            raise ValueError("sx126x: TCXO supply %d mV is not one of %s" % (tcxo_mv, _TCXO_MV))
        self._spi = spi
        self._cs = cs
        self._reset = reset
        self._busy = busy
        self._dio1 = dio1
        cs.init(cs.OUT, value=1)
        reset.init(reset.OUT, value=1)
        busy.init(busy.IN)
        dio1.init(dio1.IN)
        self._rf_switch = dio2_rf_switch
        self._tcxo_mv = tcxo_mv
        self._cmd_buf = bytearray(10)  # opcode and up to 9 parameters
        self._cmd_mv = memoryview(self._cmd_buf)
        self._rx = bytearray(4)  # status and up to 3 bytes of a reply
        self._rx_mv = memoryview(self._rx)
        self._pkt = bytearray(7)  # SetPacketParams: opcode, preamble(2), header, len, crc, iq
        self.feed = None  # the watchdog's feed(), called while send/recv wait
        self._asleep = False
        self._configured = False
        self._listening = False  # in continuous RX by listen(), until another command
        self._sym_us = 0
        self._max_packet_ms = 0
        self._band = -1
        self.reset()

    def reset(self):
        # 8.1 "Reset": NRESET low >= 100 us; the chip calibrates and raises BUSY meanwhile.
        self._reset(0)
        time.sleep_ms(_RESET_LOW_MS)
        self._reset(1)
        self._asleep = False
        self._configured = False
        self._listening = False
        self._band = -1
        self._wait_busy()
        self._cmd2(_SET_STANDBY, _STDBY_RC)
        status = self._status()
        if (status >> 4) & 7 != _MODE_STBY_RC:
            raise OSError(
                "sx126x: status 0x%02x after reset, not STDBY_RC (no chip or wrong pins)" % status
            )
        if self._tcxo_mv:
            # 13.3.6: DIO3 powers the TCXO, which must run before calibration (13.1.12):
            # recalibrate everything with it, then clear the XOSC start error of the POR.
            self._cmd(
                _SET_DIO3_AS_TCXO, 4, (_TCXO_MV.index(self._tcxo_mv) << 24) | _TCXO_DELAY_STEPS
            )
            self._cmd2(_CALIBRATE, _CALIBRATE_ALL)
            self._cmd(_CLEAR_DEVICE_ERRORS, 2, 0)
        if self._rf_switch:
            self._cmd2(_SET_DIO2_AS_RF_SWITCH, 1)  # 13.3.5: DIO2 high in TX, low otherwise
        self._cmd2(_SET_REGULATOR_MODE, _REGULATOR_DCDC)
        self._cmd2(_SET_PACKET_TYPE, _PACKET_LORA)
        self._cmd(_SET_BUFFER_BASE, 2, 0)  # TX and RX both from 0: one at a time
        # 13.3.1 SetDioIrqParams: IrqMask, DIO1, DIO2, DIO3 masks (16 bits each, MSB first).
        b = self._cmd_buf
        b[0] = _SET_DIO_IRQ_PARAMS
        b[1] = _IRQ_ALL >> 8
        b[2] = _IRQ_ALL & 0xFF
        b[3] = _IRQ_DIO1 >> 8
        b[4] = _IRQ_DIO1 & 0xFF
        for i in range(5, 9):
            b[i] = 0
        self._xfer(self._cmd_mv[:9], None)

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
        if not 150_000_000 <= freq_hz <= 960_000_000:
            raise ValueError("sx126x: frequency %d Hz is outside 150-960 MHz" % freq_hz)
        if not 7 <= sf <= 12:
            raise ValueError("sx126x: SF%d: only SF7..SF12" % sf)
        if bw_hz not in _BANDWIDTHS:
            raise ValueError("sx126x: bandwidth %d Hz is not one of %s" % (bw_hz, _BANDWIDTHS))
        if not 1 <= cr <= 4:
            raise ValueError("sx126x: coding rate index %d: 1..4 (4/5..4/8)" % cr)
        if not -9 <= power_dbm <= 22:
            raise ValueError("sx126x: %d dBm: the SX1262 gives -9..22 dBm" % power_dbm)
        if not 0 <= sync_word <= 0xFFFF:
            raise ValueError("sx126x: sync word 0x%x is not 1 or 2 bytes" % sync_word)
        if not 6 <= preamble <= 0xFFFF:
            raise ValueError("sx126x: preamble of %d symbols: 6..65535" % preamble)
        self._standby()
        # 9.2.1 "Image Calibration": once per band, in STDBY_RC; 13.1.13 CalibrateImage.
        mhz = freq_hz // 1_000_000
        for i in range(len(_IMAGE_BANDS)):
            low, high, f1, f2 = _IMAGE_BANDS[i]
            if low <= mhz <= high and self._band != i:
                self._cmd(_CALIBRATE_IMAGE, 2, (f1 << 8) | f2)
                self._band = i
        # 13.4.1 SetRfFrequency: RfFreq = F * 2^25 / 32 MHz = F * 16384 / 15625, in integers.
        q, r = divmod(freq_hz, 15625)
        self._cmd(_SET_RF_FREQUENCY, 4, q * 16384 + (r * 16384 + 7812) // 15625)
        # 13.1.14 SetPaConfig, Table 13-21 optimal settings (SX1262, deviceSel 0, paLut 1):
        # paDutyCycle/hpMax 2/2 up to 14 dBm, 2/3 at 17, 3/5 at 20, 4/7 at 22.
        if power_dbm > 20:
            duty, hp = 4, 7
        elif power_dbm > 17:
            duty, hp = 3, 5
        elif power_dbm > 14:
            duty, hp = 2, 3
        else:
            duty, hp = 2, 2
        self._cmd(_SET_PA_CONFIG, 4, (duty << 24) | (hp << 16) | 0x0001)
        self._cmd(_SET_TX_PARAMS, 2, ((power_dbm & 0xFF) << 8) | _RAMP_200US)
        # 13.4.5 SetModulationParams (LoRa): SF, BW, CR, LowDataRateOptimize.
        self._sym_us = int((1 << sf) * 1_000_000.0 / bw_hz)
        ldro = 1 if self._sym_us > _LDRO_SYMBOL_US else 0
        bw = _BW_CODES[_BANDWIDTHS.index(bw_hz)]
        self._cmd(_SET_MODULATION_PARAMS, 4, (sf << 24) | (bw << 16) | (cr << 8) | ldro)
        # 13.4.6 SetPacketParams (LoRa), kept whole: send() sets the payload length.
        p = self._pkt
        p[0] = _SET_PACKET_PARAMS
        p[1] = preamble >> 8
        p[2] = preamble & 0xFF
        p[3] = 0  # explicit header
        p[4] = 0xFF
        p[5] = 1 if crc else 0
        p[6] = 1 if iq_invert else 0
        self._xfer(p, None)
        # 15.4 "Optimizing the Inverted IQ Operation": without this the chip loses packets
        # after the first with inverted IQ.
        v = self._read_reg(_REG_IQ_POLARITY)
        self._write_reg(_REG_IQ_POLARITY, (v & 0xFB) if iq_invert else (v | 0x04))
        # 15.1 "Modulation Quality with 500 kHz LoRa Bandwidth".
        v = self._read_reg(_REG_TX_MODULATION)
        self._write_reg(_REG_TX_MODULATION, (v & 0xFB) if bw_hz == 500000 else (v | 0x04))
        if sync_word <= 0xFF:
            # The SX127x's byte 0xXY is the SX126x's 0xX4Y4 (Semtech's LoRaMac-node).
            sync_word = ((sync_word & 0xF0) << 8) | ((sync_word & 0x0F) << 4) | 0x0404
        self._write_reg(_REG_SYNC_WORD, sync_word >> 8)
        self._write_reg(_REG_SYNC_WORD + 1, sync_word & 0xFF)
        de = 2 if ldro else 0
        blocks = (2084 + 4 * (sf - de) - 1) // (4 * (sf - de))
        self._max_packet_ms = (preamble + 13 + blocks * (cr + 4)) * self._sym_us // 1000 + 1
        self._configured = True

    def send(self, data, timeout_ms):
        n = len(data)
        if not 0 < n <= 255:
            raise ValueError("sx126x: a packet is 1..255 bytes, not %d" % n)
        self._check()
        self._standby()
        self._pkt[4] = n
        self._xfer(self._pkt, None)
        # 13.2.1 WriteBuffer at the TX base address (0).
        b = self._cmd_buf
        b[0] = _WRITE_BUFFER
        b[1] = 0
        self._xfer(self._cmd_mv[:2], data)
        self._clear_irq()
        # 13.1.4 SetTx: the chip's own timeout as well, in 15.625 us steps (0: none).
        steps = timeout_ms * _STEPS_PER_MS
        self._cmd(_SET_TX, 3, steps if steps <= _STEPS_MAX else 0)
        start = time.ticks_ms()
        fed = start
        while True:
            now = time.ticks_ms()  # before the pin: a slow read cannot fake a timeout
            if self._dio1.value():
                break
            if time.ticks_diff(now, start) >= timeout_ms:
                self._cmd2(_SET_STANDBY, _STDBY_RC)
                raise OSError(_ETIMEDOUT, "sx126x: TX not done within %d ms" % timeout_ms)
            fed = self._feed(now, fed)
            time.sleep_ms(1)
        irq = self._irq()
        self._clear_irq()
        if not irq & _IRQ_TX_DONE:
            if irq & _IRQ_TIMEOUT:
                raise OSError(_ETIMEDOUT, "sx126x: TX timeout (%d ms)" % timeout_ms)
            raise OSError("sx126x: DIO1 without TxDone (IRQ status 0x%04x)" % irq)

    def recv(self, buf, timeout_ms):
        self._arm_rx()
        # 13.1.5 SetRx: single reception with a timeout that stops once a header is found
        # (13.1.7 default); past 262 s, continuous reception and this clock.
        steps = timeout_ms * _STEPS_PER_MS
        single = 0 < steps <= _STEPS_MAX
        self._cmd(_SET_RX, 3, steps if single else _RX_CONTINUOUS)
        # The chip's timeout ends the wait; this guard only catches a chip that stopped
        # answering. No sleep in the loop (see sx127x.py and docs/radios.md).
        start = time.ticks_ms()
        fed = start
        checked = start
        limit = timeout_ms + self._max_packet_ms + _STALL_MS
        irq = 0
        while True:
            now = time.ticks_ms()
            if self._dio1.value():
                irq = self._irq()
                break
            if now != checked:
                checked = now
                waited = time.ticks_diff(now, start)
                if not single and waited >= timeout_ms:
                    irq = self._irq()
                    if not irq & (_IRQ_PREAMBLE | _IRQ_HEADER_VALID):
                        break  # nothing under way when our own timeout passed
                if waited >= limit:
                    self._cmd2(_SET_STANDBY, _STDBY_RC)
                    raise OSError(_ETIMEDOUT, "sx126x: no RxDone/Timeout (chip not answering)")
                fed = self._feed(now, fed)
        self._clear_irq()
        self._cmd2(_SET_STANDBY, _STDBY_RC)
        return self._packet(buf, irq)

    def listen(self):
        # 13.1.5 SetRx with timeout 0xFFFFFF: continuous mode, the chip stays in RX after every
        # packet (RxDone on DIO1) until another mode is set. poll() takes the packets; send(),
        # recv(), configure(), sleep() and reset() end it.
        self._arm_rx()
        self._cmd(_SET_RX, 3, _RX_CONTINUOUS)
        self._listening = True

    def poll(self, buf):
        # The packet received since the last poll, or None; the radio stays in RX. A packet
        # with a CRC or header error is dropped (None). Poll at least once per packet time:
        # the next packet overwrites the buffer.
        if not self._listening:
            raise RuntimeError("sx126x: listen() first")
        if not self._dio1.value():
            return None
        irq = self._irq()
        got = self._packet(buf, irq)
        self._clear_irq()
        return got

    def _arm_rx(self):
        self._check()
        self._standby()
        self._pkt[4] = 0xFF
        self._xfer(self._pkt, None)
        self._clear_irq()

    def _standby(self):
        self._wake()
        self._cmd2(_SET_STANDBY, _STDBY_RC)
        self._listening = False

    def _packet(self, buf, irq):
        if not irq & _IRQ_RX_DONE or irq & (_IRQ_CRC_ERR | _IRQ_HEADER_ERR):
            if _DEBUG:
                print("sx126x: no packet, IRQ status 0x%04x" % irq)
            return None
        # 13.5.2 GetRxBufferStatus: payload length, start pointer.
        r = self._get(_GET_RX_BUFFER_STATUS, 2)
        n = min(r[1], len(buf))
        start_ptr = r[2]
        # 13.2.4 ReadBuffer: opcode, offset, NOP (status), then the bytes.
        b = self._cmd_buf
        b[0] = _READ_BUFFER
        b[1] = start_ptr
        b[2] = 0
        self._xfer(self._cmd_mv[:3], None, memoryview(buf)[:n])
        # 13.5.3 GetPacketStatus (LoRa): RssiPkt = -x/2 dBm, SnrPkt = signed x/4 dB.
        r = self._get(_GET_PACKET_STATUS, 3)
        snr_q = r[2] - 256 if r[2] > 127 else r[2]
        return n, -(r[1] // 2), snr_q / 4

    def sleep(self):
        # 13.1.1 SetSleep, warm start: the configuration is kept for the next wake.
        if not self._asleep:
            self._cmd2(_SET_SLEEP, _SLEEP_WARM)
            self._asleep = True
        self._listening = False

    # --- internals -----------------------------------------------------------------------------
    def _check(self):
        if not self._configured:
            raise RuntimeError("sx126x: configure() first (or again after reset())")

    def _feed(self, now, fed):
        if self.feed is not None and time.ticks_diff(now, fed) >= _FEED_MS:
            self.feed()
            return now
        return fed

    def _wake(self):
        # 13.1.1: a falling NSS wakes the chip; BUSY stays high until it is in STDBY_RC.
        if self._asleep:
            self._cs(0)
            try:
                self._wait_busy()
            finally:
                self._cs(1)
            self._asleep = False

    def _wait_busy(self):
        if not self._busy.value():
            return
        # Timed from the first high reading, each sample taken before its read: a slow read
        # (a preempted task, a loaded virtual board) cannot fake a timeout.
        start = time.ticks_ms()
        while True:
            now = time.ticks_ms()
            if not self._busy.value():
                return
            if time.ticks_diff(now, start) > _BUSY_MS:
                raise OSError(_ETIMEDOUT, "sx126x: BUSY stays high (no chip, or it hangs)")

    def _xfer(self, cmd, data, into=None):
        # One command: wait for BUSY low, NSS low, opcode and parameters, then either `data`
        # to write or `into` to fill, NSS high (8.3.1).
        self._wait_busy()
        self._cs(0)
        try:
            self._spi.write(cmd)
            if data is not None:
                self._spi.write(data)
            if into is not None:
                self._spi.readinto(into)
        finally:
            self._cs(1)

    def _cmd2(self, opcode, arg):
        b = self._cmd_buf
        b[0] = opcode
        b[1] = arg
        self._xfer(self._cmd_mv[:2], None)

    def _cmd(self, opcode, nbytes, value):
        # opcode, then `value` big-endian over nbytes parameter bytes: fields packed into one
        # int by the caller (every value here stays below 2^30, a small int on a 32-bit port).
        c = self._cmd_buf
        c[0] = opcode
        for i in range(nbytes):
            c[nbytes - i] = (value >> (8 * i)) & 0xFF
        self._xfer(self._cmd_mv[: nbytes + 1], None)

    def _get(self, opcode, nbytes):
        # opcode, then the status and nbytes of reply (13.5): returns the buffer, status first.
        b = self._cmd_buf
        b[0] = opcode
        r = self._rx_mv[: nbytes + 1]
        self._xfer(self._cmd_mv[:1], None, r)
        return self._rx

    def _status(self):
        return self._get(_GET_STATUS, 0)[0]

    def _irq(self):
        r = self._get(_GET_IRQ_STATUS, 2)
        return (r[1] << 8) | r[2]

    def _clear_irq(self):
        self._cmd(_CLEAR_IRQ_STATUS, 2, 0xFFFF)

    def _read_reg(self, addr):
        # 13.2.2 ReadRegister: opcode, address (2), NOP (status), then the value.
        b = self._cmd_buf
        b[0] = _READ_REGISTER
        b[1] = addr >> 8
        b[2] = addr & 0xFF
        r = self._rx_mv[:2]
        self._xfer(self._cmd_mv[:3], None, r)
        return self._rx[1]

    def _write_reg(self, addr, value):
        self._cmd(_WRITE_REGISTER, 3, (addr << 8) | value)
