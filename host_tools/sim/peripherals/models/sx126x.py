"""Semtech SX1262 LoRa transceiver on SPI, at the level of its commands, with a BUSY line.

    radio = Sx126x(clock.now_ms, cs=8, tcxo_mv=1800, rf_switch=True)
    hw.attach("spi", 1, radio)
    hw.drive_pin(13, radio.busy); hw.drive_pin(14, radio.dio1); hw.watch_pin(12, radio.nreset)
    radio.core.port = lora_link            # the board's virtual air (radio_link.LoraLink)

Behaviour follows DS_SX1261-2 v2.1 (December 2021; sections cited):
- a command is the bytes of one NSS-low transaction (8.3), executed when NSS rises; MISO
  returns the status byte (13.5.1: chip mode in bits 6:4, command status in bits 3:1) while
  the command goes in, then the reply of a Get command or the bytes of ReadRegister/ReadBuffer;
- BUSY (8.3.1) is high while the chip boots (3.5 ms after power-on or NRESET, 8.1), for a
  short time after every command (longer for calibrations), all through SLEEP, and while it
  wakes from SLEEP on a falling NSS (warm start 340 us, cold 3.5 ms). A command sent while BUSY
  is high is ignored (`ignored_busy` counts them), as the chip does;
- modes STDBY_RC/STDBY_XOSC/FS/TX/RX/SLEEP; TX and single RX fall back to STDBY_RC
  (SetRxTxFallbackMode); SetSleep warm start keeps the configuration, cold start does not;
  the data buffer (256 bytes) is lost in SLEEP;
- SetTx/SetRx timeouts in 15.625 us steps (13.1.4, 13.1.5): 0 no timeout, 0xFFFFFF continuous
  RX; the RX timer stops when a header is found (13.1.7's default);
- IRQs (13.3.1) are raised only when enabled in IrqMask; DIO1 is high while an IRQ in its
  mask is set; ClearIrqStatus clears them;
- the board's wiring matters: with a TCXO (tcxo_mv), TX/RX fail (XOSC_START_ERR, status
  "failure to execute") until SetDIO3AsTcxoCtrl powers it at that voltage or more; with the RF
  switch on DIO2 (rf_switch), a TX reaches the antenna only after SetDIO2AsRfSwitchCtrl(1);
- sync word registers 0x0740/0x0741 (0x3444 public), and the errata 15.4: an RX with inverted
  IQ hears nothing unless bit 2 of register 0x0736 is cleared (and set with standard IQ);
- what goes on the air and what is heard is lora.LoraCore's (docs/radios.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..environment import Environment
from ..spi import SPIDevice
from .lora import LoraCore, Modem, nominal_hz

FXOSC_HZ = 32_000_000
BOOT_MS = 3.5  # 8.1 / 9.2.1: calibration of every block at start-up
WAKE_WARM_MS = 0.34
WAKE_COLD_MS = 3.5
CMD_MS = 0.005  # BUSY after a plain command (not specified; a few microseconds)
MODE_SWITCH_MS = 0.05  # after SetTx/SetRx/SetFs/SetStandby
CALIBRATE_MS = 3.5  # 13.1.12
CALIBRATE_IMAGE_MS = 1.0  # not given in the datasheet: illustrative
RESET_MIN_MS = 0.1  # 8.1: NRESET low for at least 100 us
STEP_MS = 0.015625  # 15.625 us timer steps

# Opcodes (13, "List of Commands").
SET_SLEEP = 0x84
SET_STANDBY = 0x80
SET_FS = 0xC1
SET_TX = 0x83
SET_RX = 0x82
STOP_TIMER_ON_PREAMBLE = 0x9F
SET_RX_DUTY_CYCLE = 0x94
SET_CAD = 0xC5
SET_TX_CONTINUOUS_WAVE = 0xD1
SET_TX_INFINITE_PREAMBLE = 0xD2
SET_REGULATOR_MODE = 0x96
CALIBRATE = 0x89
CALIBRATE_IMAGE = 0x98
SET_PA_CONFIG = 0x95
SET_RX_TX_FALLBACK_MODE = 0x93
WRITE_REGISTER = 0x0D
READ_REGISTER = 0x1D
WRITE_BUFFER = 0x0E
READ_BUFFER = 0x1E
SET_DIO_IRQ_PARAMS = 0x08
GET_IRQ_STATUS = 0x12
CLEAR_IRQ_STATUS = 0x02
SET_DIO2_AS_RF_SWITCH = 0x9D
SET_DIO3_AS_TCXO = 0x97
SET_RF_FREQUENCY = 0x86
SET_PACKET_TYPE = 0x8A
GET_PACKET_TYPE = 0x11
SET_TX_PARAMS = 0x8E
SET_MODULATION_PARAMS = 0x8B
SET_PACKET_PARAMS = 0x8C
SET_CAD_PARAMS = 0x88
SET_BUFFER_BASE = 0x8F
SET_LORA_SYMB_TIMEOUT = 0xA0
GET_STATUS = 0xC0
GET_RSSI_INST = 0x15
GET_RX_BUFFER_STATUS = 0x13
GET_PACKET_STATUS = 0x14
GET_DEVICE_ERRORS = 0x17
CLEAR_DEVICE_ERRORS = 0x07
GET_STATS = 0x10
RESET_STATS = 0x00

# Get commands: opcode -> reply bytes after the status.
_GETS = {
    GET_STATUS: 0,
    GET_PACKET_TYPE: 1,
    GET_IRQ_STATUS: 2,
    GET_RX_BUFFER_STATUS: 2,
    GET_PACKET_STATUS: 3,
    GET_RSSI_INST: 1,
    GET_DEVICE_ERRORS: 2,
    GET_STATS: 6,
}
# Set commands: opcode -> parameter bytes the chip needs (at least).
_PARAMS = {
    SET_SLEEP: 1,
    SET_STANDBY: 1,
    SET_FS: 0,
    SET_TX: 3,
    SET_RX: 3,
    STOP_TIMER_ON_PREAMBLE: 1,
    SET_CAD: 0,
    SET_REGULATOR_MODE: 1,
    CALIBRATE: 1,
    CALIBRATE_IMAGE: 2,
    SET_PA_CONFIG: 4,
    SET_RX_TX_FALLBACK_MODE: 1,
    WRITE_REGISTER: 3,
    READ_REGISTER: 3,
    WRITE_BUFFER: 2,
    READ_BUFFER: 2,
    SET_DIO_IRQ_PARAMS: 8,
    CLEAR_IRQ_STATUS: 2,
    SET_DIO2_AS_RF_SWITCH: 1,
    SET_DIO3_AS_TCXO: 4,
    SET_RF_FREQUENCY: 4,
    SET_PACKET_TYPE: 1,
    SET_TX_PARAMS: 2,
    SET_MODULATION_PARAMS: 4,
    SET_PACKET_PARAMS: 6,
    SET_CAD_PARAMS: 7,
    SET_BUFFER_BASE: 2,
    SET_LORA_SYMB_TIMEOUT: 1,
    CLEAR_DEVICE_ERRORS: 2,
    RESET_STATS: 6,
}

# Chip modes in the status byte (13.5.1); SLEEP has none (the chip does not answer).
STBY_RC, STBY_XOSC, FS, RX, TX = 2, 3, 4, 5, 6
SLEEP = 0
MODE_NAMES = {
    SLEEP: "sleep",
    STBY_RC: "stdby_rc",
    STBY_XOSC: "stdby_xosc",
    FS: "fs",
    RX: "rx",
    TX: "tx",
}
# Command status (13.5.1).
CMD_OK, CMD_DATA, CMD_TIMEOUT, CMD_ERROR, CMD_FAILED, CMD_TX_DONE = 0, 2, 3, 4, 5, 6

IRQ_TX_DONE = 0x0001
IRQ_RX_DONE = 0x0002
IRQ_PREAMBLE = 0x0004
IRQ_SYNC_WORD = 0x0008
IRQ_HEADER_VALID = 0x0010
IRQ_HEADER_ERR = 0x0020
IRQ_CRC_ERR = 0x0040
IRQ_CAD_DONE = 0x0080
IRQ_TIMEOUT = 0x0200

XOSC_START_ERR = 0x0020  # 13.6.1 OpError bit 5

PACKET_GFSK, PACKET_LORA = 0, 1
# 13.4.5.2 bandwidth codes; 13.3.6 TCXO voltage codes.
BW_CODES = {0x00: 7800, 0x08: 10400, 0x01: 15600, 0x09: 20800, 0x02: 31250, 0x0A: 41700}
BW_CODES.update({0x03: 62500, 0x04: 125000, 0x05: 250000, 0x06: 500000})
TCXO_MV = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)

REG_IQ_POLARITY = 0x0736
REG_SYNC_MSB = 0x0740
REG_SYNC_LSB = 0x0741
REG_TX_MODULATION = 0x0889
REG_OCP = 0x08E7
_REG_RESET = {REG_IQ_POLARITY: 0x0D, REG_SYNC_MSB: 0x14, REG_SYNC_LSB: 0x24}
_REG_RESET.update({REG_TX_MODULATION: 0x04, REG_OCP: 0x18, 0x08AC: 0x94, 0x08D8: 0x18})
NOISE_FLOOR_DBM = -120.0


class Sx126x(SPIDevice):
    """An SX1262 on an SPI bus: commands, buffer, modes, IRQs, and its BUSY and DIO1 lines."""

    def __init__(
        self,
        now_ms: Callable[[], float],
        *,
        cs: int,
        tcxo_mv: int = 0,
        rf_switch: bool = False,
        env: Environment | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(cs, env=env, name=name or "sx1262")
        self._now_ms = now_ms
        self.core = LoraCore(now_ms)
        self.board_tcxo_mv = tcxo_mv  # the board's TCXO supply, 0: a crystal
        self.board_rf_switch = rf_switch  # the board's antenna switch hangs on DIO2
        self.buffer = bytearray(256)
        self._bytes = bytearray()
        self._ignored = False
        self._nreset_low_at: float | None = None
        self.ignored_busy = 0  # commands sent while BUSY was high
        self.commands: dict[str, int] = {}
        self.reset()

    # -- power and reset ---------------------------------------------------------------------

    def reset(self) -> None:
        """Power-on reset: a cold start."""
        super().reset()
        self._cold_start()

    def _cold_start(self) -> None:
        now = self._now_ms()
        self.mode = STBY_RC
        self.asleep = False
        self._warm = True
        self._busy_until = now + BOOT_MS
        self.regs = dict(_REG_RESET)
        self.packet_type = PACKET_GFSK
        self.freq_hz = 915_000_000
        self.sf, self.bw_hz, self.cr, self.ldro = 7, 125_000, 1, 0
        self.preamble, self.implicit, self.payload_len, self.crc_on, self.iq_inv = 8, 0, 255, 1, 0
        self.tx_base = self.rx_base = 0
        self.irq = 0
        self.irq_mask = 0
        self.dio1_mask = 0
        self.errors = XOSC_START_ERR if self.board_tcxo_mv else 0  # 13.3.6: POR without TCXO
        self.cmd_status = CMD_OK
        self.tcxo_mv = 0
        self.rf_switch = False
        self.fallback = STBY_RC
        self.power_dbm = 0
        self.pa_config = (0, 0, 0, 0)
        self.regulator = 0
        self.image_band: tuple[int, int] | None = (0xE1, 0xE9)  # 902-928 MHz at POR (9.2.1)
        self.rx_len = 0
        self.rx_start = 0
        self.pkt_rssi = self.pkt_snr = 0.0
        self.buffer[:] = bytes(256)
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
            self._cold_start()

    # -- pins --------------------------------------------------------------------------------

    def busy(self) -> int:
        self.update()
        if self._nreset_low_at is not None or self.asleep:
            return 1
        return 1 if self._now_ms() < self._busy_until else 0

    def dio1(self) -> int:
        self.update()
        return 1 if self.irq & self.dio1_mask else 0

    # -- SPI ---------------------------------------------------------------------------------

    def select(self, active: bool) -> None:
        if active:
            self._bytes = bytearray()
            self._ignored = bool(self.busy())
            if self.asleep and self._nreset_low_at is None:
                # 13.1.1: a falling NSS wakes the chip; warm start keeps the configuration.
                warm = self._warm
                if not warm:
                    self._cold_start()
                self.asleep = False
                self.mode = STBY_RC
                self._busy_until = self._now_ms() + (WAKE_WARM_MS if warm else WAKE_COLD_MS)
            return
        if self._ignored:
            if self._bytes:
                self.ignored_busy += 1
            return
        if self._bytes:
            self._execute(bytes(self._bytes))

    def transfer(self, mosi: bytes) -> bytes:
        if self._ignored:
            self._bytes += mosi
            return b"\xff" * len(mosi)
        self.update()
        out = bytearray(len(mosi))
        for i, byte in enumerate(mosi):
            out[i] = self._miso(len(self._bytes))
            self._bytes.append(byte)
        return bytes(out)

    def _status(self) -> int:
        return (self.mode << 4) | (self.cmd_status << 1)

    def _miso(self, pos: int) -> int:
        # The byte the chip shifts out while receiving byte `pos` of the transaction.
        if pos == 0:
            return self._status()
        op = self._bytes[0]
        if op in _GETS:
            return self._status() if pos == 1 else self._reply(op)[pos - 2]
        if op == READ_REGISTER and pos >= 4:
            addr = (self._bytes[1] << 8) | self._bytes[2]
            return self.regs.get(addr + pos - 4, 0)
        if op == READ_BUFFER and pos >= 3:
            return self.buffer[(self._bytes[1] + pos - 3) & 0xFF]
        return self._status()

    def _reply(self, op: int) -> bytes:
        n = _GETS[op]
        if op == GET_PACKET_TYPE:
            data = bytes([self.packet_type])
        elif op == GET_IRQ_STATUS:
            data = self.irq.to_bytes(2, "big")
        elif op == GET_RX_BUFFER_STATUS:
            data = bytes([self.rx_len, self.rx_start])
        elif op == GET_PACKET_STATUS:
            rssi = max(0, min(255, round(-self.pkt_rssi * 2)))
            snr = max(-128, min(127, round(self.pkt_snr * 4))) & 0xFF
            data = bytes([rssi, snr, rssi])
        elif op == GET_RSSI_INST:
            heard = self.core.packet_under_way
            dbm = heard.rssi_dbm if heard is not None else NOISE_FLOOR_DBM
            data = bytes([max(0, min(255, round(-dbm * 2)))])
        elif op == GET_DEVICE_ERRORS:
            data = self.errors.to_bytes(2, "big")
        else:
            data = bytes(n)
        return data + bytes(256)  # reads past the reply get zeros

    # -- commands ----------------------------------------------------------------------------

    def _execute(self, cmd: bytes) -> None:
        op, p = cmd[0], cmd[1:]
        name = f"0x{op:02x}"
        self.commands[name] = self.commands.get(name, 0) + 1
        busy_ms = CMD_MS
        if op in _GETS:
            self._busy_until = self._now_ms() + busy_ms
            return
        if op not in _PARAMS or len(p) < _PARAMS[op]:
            self.cmd_status = CMD_ERROR  # unknown opcode or parameters missing
            self._busy_until = self._now_ms() + busy_ms
            return
        self.cmd_status = CMD_OK
        if op == SET_STANDBY:
            self.core.stop()
            self.mode = STBY_XOSC if p[0] == 1 and self._xosc_ok() else STBY_RC
            busy_ms = MODE_SWITCH_MS
        elif op == SET_SLEEP:
            self.core.stop()
            self._warm = bool(p[0] & 0x04)
            self.asleep = True
            self.mode = SLEEP
            self.buffer[:] = bytes(256)
        elif op == SET_FS:
            if self._xosc_ok():
                self.core.stop()
                self.mode = FS
            busy_ms = MODE_SWITCH_MS
        elif op == SET_TX:
            self._set_tx(int.from_bytes(p[:3], "big"))
            busy_ms = MODE_SWITCH_MS
        elif op == SET_RX:
            self._set_rx(int.from_bytes(p[:3], "big"))
            busy_ms = MODE_SWITCH_MS
        elif op == SET_CAD:
            self._raise(IRQ_CAD_DONE)  # channel activity detection: never any activity
        elif op in (SET_RX_DUTY_CYCLE, SET_TX_CONTINUOUS_WAVE, SET_TX_INFINITE_PREAMBLE):
            self.cmd_status = CMD_FAILED  # not modelled
        elif op == SET_REGULATOR_MODE:
            self.regulator = p[0]
        elif op == CALIBRATE:
            busy_ms = CALIBRATE_MS
            if self.board_tcxo_mv and not self._tcxo_powered():
                self.errors |= XOSC_START_ERR
        elif op == CALIBRATE_IMAGE:
            self.image_band = (p[0], p[1])
            busy_ms = CALIBRATE_IMAGE_MS
        elif op == SET_PA_CONFIG:
            self.pa_config = (p[0], p[1], p[2], p[3])
            self.regs[REG_OCP] = 0x38 if p[2] == 0 else 0x18  # 13.1.14: 140 / 60 mA
        elif op == SET_RX_TX_FALLBACK_MODE:
            self.fallback = {0x40: FS, 0x30: STBY_XOSC}.get(p[0], STBY_RC)
        elif op == WRITE_REGISTER:
            addr = (p[0] << 8) | p[1]
            for i, value in enumerate(p[2:]):
                self.regs[addr + i] = value
        elif op == WRITE_BUFFER:
            for i, value in enumerate(p[1:]):
                self.buffer[(p[0] + i) & 0xFF] = value
        elif op == SET_DIO_IRQ_PARAMS:
            self.irq_mask = (p[0] << 8) | p[1]
            self.dio1_mask = (p[2] << 8) | p[3]
        elif op == CLEAR_IRQ_STATUS:
            self.irq &= ~((p[0] << 8) | p[1]) & 0xFFFF
        elif op == SET_DIO2_AS_RF_SWITCH:
            self.rf_switch = bool(p[0] & 1)
        elif op == SET_DIO3_AS_TCXO:
            self.tcxo_mv = TCXO_MV[p[0] & 7]
        elif op == SET_RF_FREQUENCY:
            rf = int.from_bytes(p[:4], "big")
            self.freq_hz = nominal_hz(rf * FXOSC_HZ / (1 << 25))
        elif op == SET_PACKET_TYPE:
            if self.mode != STBY_RC:
                self.cmd_status = CMD_FAILED  # 13.4.2: in STDBY_RC only
            else:
                self.packet_type = p[0]
        elif op == SET_TX_PARAMS:
            self.power_dbm = p[0] - 256 if p[0] > 127 else p[0]
        elif op == SET_MODULATION_PARAMS:
            self.sf, bw, self.cr, self.ldro = p[0], p[1], p[2], p[3]
            if bw not in BW_CODES or not 5 <= self.sf <= 12 or not 1 <= self.cr <= 4:
                self.cmd_status = CMD_ERROR
            self.bw_hz = BW_CODES.get(bw, 0)
        elif op == SET_PACKET_PARAMS:
            self.preamble = (p[0] << 8) | p[1]
            self.implicit, self.payload_len, self.crc_on, self.iq_inv = p[2], p[3], p[4], p[5]
        elif op == SET_BUFFER_BASE:
            self.tx_base, self.rx_base = p[0], p[1]
        elif op == CLEAR_DEVICE_ERRORS:
            self.errors = 0
        self._busy_until = self._now_ms() + busy_ms

    def _tcxo_powered(self) -> bool:
        return self.tcxo_mv >= self.board_tcxo_mv

    def _xosc_ok(self) -> bool:
        """Whether the crystal oscillator starts (a TCXO needs DIO3 to power it)."""
        if not self.board_tcxo_mv or self._tcxo_powered():
            return True
        self.errors |= XOSC_START_ERR
        self.cmd_status = CMD_FAILED
        return False

    def _set_tx(self, steps: int) -> None:
        if not self._xosc_ok():
            return
        if self.packet_type != PACKET_LORA:
            self.cmd_status = CMD_FAILED  # the GFSK modem is not modelled
            return
        payload = bytes(self.buffer[(self.tx_base + i) & 0xFF] for i in range(self.payload_len))
        modem = self.modem(tx=True)
        if self.board_rf_switch and not self.rf_switch:
            modem = replace(modem, fault="DIO2 is not driving the RF switch")
        self.mode = TX
        self.core.start_tx(modem, payload, steps * STEP_MS if steps else None)

    def _set_rx(self, steps: int) -> None:
        if not self._xosc_ok():
            return
        if self.packet_type != PACKET_LORA:
            self.cmd_status = CMD_FAILED
            return
        self.mode = RX
        modem = self.modem(tx=False)
        if steps == 0xFFFFFF:
            self.core.start_rx(modem, None, single=False)
        else:
            self.core.start_rx(modem, steps * STEP_MS if steps else None, single=True)

    def modem(self, tx: bool) -> Modem:
        fault = None
        if not self.bw_hz:
            fault = "reserved bandwidth code"
        iq_fix = bool(self.regs.get(REG_IQ_POLARITY, 0) & 0x04)
        if not tx and iq_fix == bool(self.iq_inv):
            fault = "IQ polarity register 0x0736 not set for this IQ (errata 15.4)"
        sync = (self.regs.get(REG_SYNC_MSB, 0) << 8) | self.regs.get(REG_SYNC_LSB, 0)
        return Modem(
            freq_hz=self.freq_hz,
            sf=self.sf,
            bw_hz=self.bw_hz or 125_000,
            cr=self.cr if 1 <= self.cr <= 4 else 1,
            preamble=self.preamble,
            explicit=not self.implicit,
            crc=bool(self.crc_on),
            ldro=bool(self.ldro),
            iq_invert=bool(self.iq_inv),
            public_sync=sync == 0x3444,
            lora=self.packet_type == PACKET_LORA,
            fault=fault,
        )

    # -- time --------------------------------------------------------------------------------

    def next_event_ms(self) -> float | None:
        return self.core.next_event_ms()

    def update(self) -> None:
        """Bring TX and RX up to now: end a TX (it goes on the air), finish a reception."""
        now = self._now_ms()
        if self.mode == TX:
            outcome = self.core.poll_tx(now)
            if outcome == "done":
                self._raise(IRQ_TX_DONE)
                self.mode = self.fallback
            elif outcome == "timeout":
                self._raise(IRQ_TIMEOUT)
                self.mode = self.fallback
        elif self.mode == RX:
            outcome = self.core.poll_rx(now)
            if self.core.packet_under_way is not None:
                self._raise(IRQ_PREAMBLE | IRQ_HEADER_VALID)
            if outcome == "done":
                self._store_packet()
                if not self.core.receiving:
                    self.mode = self.fallback
            elif outcome == "timeout":
                self._raise(IRQ_TIMEOUT)
                self.mode = self.fallback

    def _raise(self, bits: int) -> None:
        self.irq |= bits & self.irq_mask

    def _store_packet(self) -> None:
        heard = self.core.rx_packet
        assert heard is not None
        for i, byte in enumerate(heard.payload):
            self.buffer[(self.rx_base + i) & 0xFF] = byte
        self.rx_len = len(heard.payload)
        self.rx_start = self.rx_base
        self.pkt_rssi, self.pkt_snr = heard.rssi_dbm, heard.snr_db
        self._raise(IRQ_PREAMBLE | IRQ_HEADER_VALID | IRQ_RX_DONE)
        if heard.crc_error and heard.crc:
            self._raise(IRQ_CRC_ERR)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "chip": "sx1262",
            "mode": MODE_NAMES.get(self.mode, str(self.mode)),
            "busy": bool(self.busy()),
            "packet_type": "lora" if self.packet_type == PACKET_LORA else "gfsk",
            "freq_hz": self.freq_hz,
            "tx_power_dbm": self.power_dbm,
            "irq": self.irq,
            "device_errors": self.errors,
            "tcxo_mv": self.tcxo_mv,
            "rf_switch": self.rf_switch,
            "image_calibration": list(self.image_band) if self.image_band else None,
            "ignored_busy": self.ignored_busy,
            "commands": dict(self.commands),
            **self.core.describe(),
        }
