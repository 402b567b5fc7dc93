"""Semtech SX1276/77/78 LoRa transceiver on SPI, at the level of its registers.

    radio = Sx127x(clock.now_ms, cs=18)
    hw.attach("spi", 1, radio); hw.drive_pin(26, radio.dio0); hw.watch_pin(14, radio.nreset)
    radio.core.port = lora_link            # the board's virtual air (radio_link.LoraLink)

Behaviour follows the SX1276/77/78/79 datasheet (rev. 7, May 2020; sections cited):
- SPI (4.3): first byte address with bit 7 set for a write, then data; bursts auto-increment
  the address, except RegFifo (0x00), which reads or writes the FIFO at RegFifoAddrPtr;
- identity: RegVersion (0x42) is 0x12; held in reset (NRESET low) the chip does not answer:
  MISO floats (0xFF), writes are lost. A pulse of at least 100 us resets the registers (7.2);
  accesses within the 10 ms after power-on or the 5 ms after a reset are counted
  (`early_access`) but served: the node's pin writes reach the supervisor asynchronously, so
  on a loaded host the release can be seen late and a driver that waited would look early;
- RegOpMode (4.1.3): LongRangeMode changes only in SLEEP; the LoRa registers 0x0D..0x3F are
  the FSK ones until it is set (writes then do not reach the LoRa page); the FIFO is cleared in
  SLEEP and not accessible there; TX and RXSINGLE return to STDBY at their end;
- TX sends RegPayloadLength bytes from RegFifoTxBaseAddr for its time on air, then TxDone;
  RXSINGLE waits RegSymbTimeout symbols for a preamble, then RxTimeout; RXCONTINUOUS keeps
  listening; a packet lands at RegFifoRxBaseAddr (single) with RegRxNbBytes,
  RegFifoRxCurrentAddr, RegPktSnrValue, RegPktRssiValue (5.5.5, HF or LF offset by band),
  ValidHeader and RxDone; RegModemStat shows a packet under way;
- IRQ flags are cleared by writing 1s and are not raised when masked (RegIrqFlagsMask);
  DIO0/DIO1 follow RegDioMapping1 (00: RxDone / RxTimeout, 01: TxDone);
- IQ: RegInvertIQ (0x33) bit 6 inverts RX with RegInvertIQ2 (0x3B) 0x19, bit 0 clear inverts
  TX (Semtech LoRaMac-node); an RX inversion without the matching 0x3B hears nothing;
- what goes on the air and what is heard is lora.LoraCore's (docs/radios.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..environment import Environment
from ..spi import SPIDevice
from .lora import LoraCore, Modem, nominal_hz

VERSION = 0x12
POR_MS = 10.0  # 7.1 "POR": 10 ms after the supply
RESET_READY_MS = 5.0  # 7.2.2 "Manual Reset": 5 ms after NRESET is released
RESET_MIN_MS = 0.1  # NRESET low for at least 100 us
FXOSC_HZ = 32_000_000

# Registers (6.4).
FIFO = 0x00
OP_MODE = 0x01
FRF_MSB, FRF_MID, FRF_LSB = 0x06, 0x07, 0x08
PA_CONFIG = 0x09
OCP = 0x0B
FIFO_ADDR_PTR = 0x0D
FIFO_TX_BASE = 0x0E
FIFO_RX_BASE = 0x0F
FIFO_RX_CURRENT = 0x10
IRQ_FLAGS_MASK = 0x11
IRQ_FLAGS = 0x12
RX_NB_BYTES = 0x13
RX_HEADER_CNT = 0x14
RX_PACKET_CNT = 0x16
MODEM_STAT = 0x18
PKT_SNR = 0x19
PKT_RSSI = 0x1A
RSSI_VALUE = 0x1B
HOP_CHANNEL = 0x1C
MODEM_CONFIG1 = 0x1D
MODEM_CONFIG2 = 0x1E
SYMB_TIMEOUT_LSB = 0x1F
PREAMBLE_MSB, PREAMBLE_LSB = 0x20, 0x21
PAYLOAD_LENGTH = 0x22
FIFO_RX_BYTE_ADDR = 0x25
MODEM_CONFIG3 = 0x26
INVERT_IQ = 0x33
SYNC_WORD = 0x39
INVERT_IQ2 = 0x3B
DIO_MAPPING1 = 0x40
REG_VERSION = 0x42
PA_DAC = 0x4D

LORA = 0x80
SLEEP, STDBY, FSTX, TX, FSRX, RX_CONTINUOUS, RX_SINGLE, CAD = range(8)
MODE_NAMES = ("sleep", "stdby", "fstx", "tx", "fsrx", "rxcontinuous", "rxsingle", "cad")

IRQ_RX_TIMEOUT = 0x80
IRQ_RX_DONE = 0x40
IRQ_PAYLOAD_CRC_ERROR = 0x20
IRQ_VALID_HEADER = 0x10
IRQ_TX_DONE = 0x08
IRQ_CAD_DONE = 0x04

BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
HF_MIN_HZ = 525_000_000  # the HF port (band 1) above, LF below: RSSI offsets -157 / -164
NOISE_FLOOR_DBM = -120.0

# Reset values of the LoRa page (Table 41, "Default" column), others 0x00.
_RESET = {
    OP_MODE: 0x09,
    0x02: 0x1A,
    0x03: 0x0B,
    0x05: 0x52,
    FRF_MSB: 0x6C,
    FRF_MID: 0x80,
    PA_CONFIG: 0x4F,
    0x0A: 0x09,
    OCP: 0x2B,
    0x0C: 0x20,
    FIFO_TX_BASE: 0x80,
    MODEM_CONFIG1: 0x72,
    MODEM_CONFIG2: 0x70,
    SYMB_TIMEOUT_LSB: 0x64,
    PREAMBLE_LSB: 0x08,
    PAYLOAD_LENGTH: 0x01,
    0x23: 0xFF,
    MODEM_CONFIG3: 0x04,
    0x31: 0xC3,
    INVERT_IQ: 0x27,
    0x37: 0x0A,
    SYNC_WORD: 0x12,
    INVERT_IQ2: 0x1D,
    REG_VERSION: VERSION,
    0x44: 0x2D,
    0x4B: 0x09,
    PA_DAC: 0x84,
    0x61: 0x13,
    0x62: 0x0E,
    0x63: 0x5B,
    0x64: 0xDB,
    0x70: 0xD0,
}
_READ_ONLY = {FIFO_RX_CURRENT, RX_NB_BYTES, *range(0x14, 0x1D), FIFO_RX_BYTE_ADDR, REG_VERSION}
_FSK_PAGE = range(0x0D, 0x40)  # addresses whose meaning depends on LongRangeMode


def rssi_registers(rssi_dbm: float, snr_db: float, hf: bool) -> tuple[int, int]:
    """(RegPktSnrValue, RegPktRssiValue) for a packet, the inverse of 5.5.5."""
    offset = -157 if hf else -164
    snr_q = max(-128, min(127, round(snr_db * 4)))
    # SNR < 0: RSSI = offset + PacketRssi + SNR; else RSSI = offset + 16/15 * PacketRssi.
    pkt = rssi_dbm - offset - snr_q / 4 if snr_q < 0 else (rssi_dbm - offset) * 15 / 16
    return snr_q & 0xFF, max(0, min(255, round(pkt)))


class Sx127x(SPIDevice):
    """An SX1276 (or 77/78) on an SPI bus: registers, FIFO, modes, IRQ flags and DIO lines."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        cs: int,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(cs, env=env, name=name or "sx1276")
        self._now_ms = now_ms
        self.core = LoraCore(now_ms)
        self.regs = bytearray(0x80)
        self.fsk = bytearray(0x40)  # the FSK page of 0x0D..0x3F, where LoRa writes go too early
        self.fifo = bytearray(256)
        self._addr: int | None = None
        self._write = False
        self._nreset_low_at: float | None = None
        self.ignored_spi = 0  # transfers while the chip was held in reset
        self.early_access = 0  # transfers within POR_MS / RESET_READY_MS (served; see above)
        self.reset()

    # -- power and reset ---------------------------------------------------------------------

    def reset(self) -> None:
        """Power-on reset: registers to defaults, the chip busy for POR_MS."""
        super().reset()
        self._load_defaults()
        self._ready_ms = self._now_ms() + POR_MS

    def _load_defaults(self) -> None:
        self.regs[:] = bytes(0x80)
        for reg, value in _RESET.items():
            self.regs[reg] = value
        self.fsk[:] = bytes(0x40)
        self.fifo[:] = bytes(256)
        self.core.reset()

    def nreset(self, level: int) -> None:
        """The NRESET pin driven by the node (low: held in reset)."""
        now = self._now_ms()
        if not level:
            if self._nreset_low_at is None:
                self._nreset_low_at = now
            return
        low_at, self._nreset_low_at = self._nreset_low_at, None
        if low_at is not None and now - low_at >= RESET_MIN_MS:
            self._load_defaults()
            self._ready_ms = now + RESET_READY_MS

    @property
    def ready(self) -> bool:
        return self._nreset_low_at is None

    # -- pins --------------------------------------------------------------------------------

    def dio0(self) -> int:
        self.update()
        mapping = self.regs[DIO_MAPPING1] >> 6
        flag = (IRQ_RX_DONE, IRQ_TX_DONE, IRQ_CAD_DONE, 0)[mapping]
        return 1 if self.regs[IRQ_FLAGS] & flag else 0

    def dio1(self) -> int:
        self.update()
        mapping = (self.regs[DIO_MAPPING1] >> 4) & 3
        flag = (IRQ_RX_TIMEOUT, 0, 0x01, 0)[mapping]  # RxTimeout, FhssChange, CadDetected
        return 1 if self.regs[IRQ_FLAGS] & flag else 0

    # -- SPI ---------------------------------------------------------------------------------

    def select(self, active: bool) -> None:
        self._addr = None

    def transfer(self, mosi: bytes) -> bytes:
        if not self.ready:
            self.ignored_spi += 1
            return b"\xff" * len(mosi)
        if self._now_ms() < self._ready_ms:
            self.early_access += 1
        self.update()
        out = bytearray(len(mosi))
        for i, byte in enumerate(mosi):
            if self._addr is None:
                self._addr = byte & 0x7F
                self._write = bool(byte & 0x80)
                continue
            if self._write:
                self.write_reg(self._addr, byte)
            else:
                out[i] = self.read_reg(self._addr)
            if self._addr != FIFO:
                self._addr = (self._addr + 1) & 0x7F
        return bytes(out)

    @property
    def lora(self) -> bool:
        return bool(self.regs[OP_MODE] & LORA)

    @property
    def mode(self) -> int:
        return self.regs[OP_MODE] & 7

    def read_reg(self, reg: int) -> int:
        if reg == FIFO:
            if self.mode == SLEEP or not self.lora:
                return 0
            ptr = self.regs[FIFO_ADDR_PTR]
            self.regs[FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
            return self.fifo[ptr]
        if reg in _FSK_PAGE and not self.lora:
            return self.fsk[reg]
        if reg == MODEM_STAT:
            return self._modem_stat()
        if reg == RSSI_VALUE:
            heard = self.core.packet_under_way
            dbm = heard.rssi_dbm if heard is not None else NOISE_FLOOR_DBM
            return max(0, min(255, round(dbm + (157 if self._hf else 164))))
        return self.regs[reg]

    def write_reg(self, reg: int, value: int) -> None:
        if reg == FIFO:
            if self.mode == SLEEP or not self.lora:
                return  # 4.1.2.3: the FIFO is not accessible in SLEEP
            ptr = self.regs[FIFO_ADDR_PTR]
            self.fifo[ptr] = value
            self.regs[FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
            return
        if reg == OP_MODE:
            self._set_op_mode(value)
            return
        if reg in _FSK_PAGE and not self.lora:
            self.fsk[reg] = value
            return
        if reg == IRQ_FLAGS:
            self.regs[IRQ_FLAGS] &= ~value & 0xFF
            return
        if reg in _READ_ONLY:
            return
        self.regs[reg] = value

    def _set_op_mode(self, value: int) -> None:
        old = self.regs[OP_MODE]
        if (value ^ old) & LORA and old & 7 != SLEEP:
            value = (value & ~LORA) | (old & LORA)  # LongRangeMode: only in SLEEP
        self.regs[OP_MODE] = value
        new_mode = value & 7
        if new_mode == old & 7 and (value ^ old) & LORA == 0:
            return
        self.core.stop()
        if new_mode == SLEEP:
            self.fifo[:] = bytes(256)
        if not self.lora:
            return  # the FSK modem is not modelled
        if new_mode == TX:
            base, n = self.regs[FIFO_TX_BASE], self.regs[PAYLOAD_LENGTH]
            payload = bytes(self.fifo[(base + i) & 0xFF] for i in range(n))
            self.core.start_tx(self.modem(tx=True), payload)
        elif new_mode in (RX_SINGLE, RX_CONTINUOUS):
            modem = self.modem(tx=False)
            if new_mode == RX_SINGLE:
                symbols = ((self.regs[MODEM_CONFIG2] & 3) << 8) | self.regs[SYMB_TIMEOUT_LSB]
                self.core.start_rx(modem, symbols * modem.symbol_ms, single=True)
            else:
                self.core.start_rx(modem, None, single=False)
        elif new_mode == CAD:
            self._raise(IRQ_CAD_DONE)  # channel activity detection: never any activity
            self.regs[OP_MODE] = (self.regs[OP_MODE] & ~7) | STDBY

    # -- time --------------------------------------------------------------------------------

    def next_event_ms(self) -> float | None:
        return self.core.next_event_ms()

    def update(self) -> None:
        """Bring TX and RX up to now: end a TX (it goes on the air), finish a reception."""
        now = self._now_ms()
        mode = self.mode
        if mode == TX and self.core.poll_tx(now) == "done":
            self._raise(IRQ_TX_DONE)
            self._to_standby()
        elif mode in (RX_SINGLE, RX_CONTINUOUS):
            outcome = self.core.poll_rx(now)
            if outcome == "done":
                self._store_packet(mode == RX_SINGLE)
                if mode == RX_SINGLE:
                    self._to_standby()
            elif outcome == "timeout":
                self._raise(IRQ_RX_TIMEOUT)
                self._to_standby()

    def _to_standby(self) -> None:
        self.regs[OP_MODE] = (self.regs[OP_MODE] & ~7) | STDBY

    def _raise(self, flag: int) -> None:
        if not self.regs[IRQ_FLAGS_MASK] & flag:
            self.regs[IRQ_FLAGS] |= flag

    def _store_packet(self, single: bool) -> None:
        heard = self.core.rx_packet
        assert heard is not None
        start = self.regs[FIFO_RX_BASE] if single else self.regs[FIFO_RX_BYTE_ADDR]
        n = len(heard.payload)
        for i, byte in enumerate(heard.payload):
            self.fifo[(start + i) & 0xFF] = byte
        self.regs[FIFO_RX_CURRENT] = start
        self.regs[FIFO_RX_BYTE_ADDR] = (start + n) & 0xFF
        self.regs[RX_NB_BYTES] = n
        snr, rssi = rssi_registers(heard.rssi_dbm, heard.snr_db, self._hf)
        self.regs[PKT_SNR] = snr
        self.regs[PKT_RSSI] = rssi
        crc_on = 0x40 if heard.crc else 0
        self.regs[HOP_CHANNEL] = (self.regs[HOP_CHANNEL] & ~0x40) | crc_on
        for reg in (RX_HEADER_CNT, RX_PACKET_CNT):
            count = ((self.regs[reg] << 8) | self.regs[reg + 1]) + 1
            self.regs[reg] = (count >> 8) & 0xFF
            self.regs[reg + 1] = count & 0xFF
        self._raise(IRQ_VALID_HEADER)
        self._raise(IRQ_RX_DONE)
        if heard.crc_error and heard.crc:
            self._raise(IRQ_PAYLOAD_CRC_ERROR)

    def _modem_stat(self) -> int:
        self.update()
        if self.core.packet_under_way is not None:
            return 0x0F  # signal detected, synchronized, RX on-going, header info valid
        return 0x00 if self.core.receiving else 0x10  # modem clear when idle

    # -- what the registers say --------------------------------------------------------------

    @property
    def freq_hz(self) -> int:
        frf = (self.regs[FRF_MSB] << 16) | (self.regs[FRF_MID] << 8) | self.regs[FRF_LSB]
        return nominal_hz(frf * FXOSC_HZ / (1 << 19))

    @property
    def _hf(self) -> bool:
        return self.freq_hz > HF_MIN_HZ

    def modem(self, tx: bool) -> Modem:
        r = self.regs
        bw_code = r[MODEM_CONFIG1] >> 4
        fault = None
        bw = BANDWIDTHS_HZ[bw_code] if bw_code < len(BANDWIDTHS_HZ) else 0
        if not bw:
            fault = f"reserved bandwidth code {bw_code}"
        cr = (r[MODEM_CONFIG1] >> 1) & 7
        if not 1 <= cr <= 4:
            fault, cr = f"reserved coding rate {cr}", 1
        sf = max(6, r[MODEM_CONFIG2] >> 4)
        iq_tx = not r[INVERT_IQ] & 0x01
        iq_rx = bool(r[INVERT_IQ] & 0x40)
        if not tx and r[INVERT_IQ2] != (0x19 if iq_rx else 0x1D):
            fault = "RegInvertIQ2 (0x3B) does not match RegInvertIQ's RX inversion"
        return Modem(
            freq_hz=self.freq_hz,
            sf=sf,
            bw_hz=bw or 125_000,
            cr=cr,
            preamble=(r[PREAMBLE_MSB] << 8) | r[PREAMBLE_LSB],
            explicit=not r[MODEM_CONFIG1] & 1,
            crc=bool(r[MODEM_CONFIG2] & 0x04),
            ldro=bool(r[MODEM_CONFIG3] & 0x08),
            iq_invert=iq_tx if tx else iq_rx,
            public_sync=r[SYNC_WORD] == 0x34,
            lora=self.lora,
            fault=fault,
        )

    def tx_power_dbm(self) -> int:
        """What PaConfig/PaDac set on PA_BOOST (5.4.3), or on RFO."""
        pa = self.regs[PA_CONFIG]
        out = pa & 0x0F
        if pa & 0x80:
            return out + (5 if self.regs[PA_DAC] & 0x07 == 0x07 else 2)
        max_power = 10.8 + 0.6 * ((pa >> 4) & 7)
        return round(max_power - (15 - out))

    def ocp_ma(self) -> int | None:
        """The over-current limit (5.4.4), None when it is off."""
        ocp = self.regs[OCP]
        if not ocp & 0x20:
            return None
        trim = ocp & 0x1F
        return 45 + 5 * trim if trim <= 15 else -30 + 10 * trim if trim <= 27 else 240

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "chip": "sx1276",
            "mode": ("lora-" if self.lora else "fsk-") + MODE_NAMES[self.mode],
            "freq_hz": self.freq_hz,
            "tx_power_dbm": self.tx_power_dbm(),
            "ocp_ma": self.ocp_ma(),
            "irq_flags": self.regs[IRQ_FLAGS],
            "ignored_spi": self.ignored_spi,
            "early_access": self.early_access,
            **self.core.describe(),
        }
