"""The SX1262 model (host_tools/sim/peripherals/models/sx126x.py): commands over SPI, the BUSY
line, modes, IRQs, the board's TCXO and RF switch, with a hand-driven clock. What it shares with
the SX1276 model (air rules, link) is tested in test_sx127x_model.py."""

import pytest
from handclock import Clock
from test_sx127x_model import Port

from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.sim.air import Frame, LoraMeta
from host_tools.sim.peripherals.models.sx126x import BOOT_MS, Sx126x
from host_tools.sim.peripherals.spi import SPIBus

CS = 8
STBY_RC, FS, RX, TX = 0x20, 0x40, 0x50, 0x60  # GetStatus chip mode bits 6:4
IRQ_ALL = b"\x08\x02\x77\x02\x63\x00\x00\x00\x00"  # SetDioIrqParams: mask, DIO1 mask


class Chip:
    """An SX1262 on an SPI bus, driven command by command as a driver would."""

    def __init__(self, tcxo_mv: int = 0, rf_switch: bool = False) -> None:
        self.clock = Clock()
        self.model = Sx126x(self.clock, cs=CS, tcxo_mv=tcxo_mv, rf_switch=rf_switch)
        self.bus = SPIBus(1)
        self.bus.attach(self.model)
        self.port = Port()
        self.model.core.port = self.port
        self.clock.now += BOOT_MS

    def cmd(self, data: bytes, wait: bool = True) -> bytes:
        if wait:
            while self.model.busy():
                self.clock.now += 0.01
        self.bus.pin_changed(CS, 0)
        try:
            return self.bus.transfer(data)
        finally:
            self.bus.pin_changed(CS, 1)

    def status(self) -> int:
        return self.cmd(b"\xc0\x00")[1]

    def irq(self) -> int:
        r = self.cmd(b"\x12\x00\x00\x00")
        return (r[2] << 8) | r[3]

    def lora(self, freq_hz: int = 868_100_000, sf: int = 7, iq_invert: bool = False) -> None:
        if self.model.board_tcxo_mv:
            self.cmd(b"\x97\x02\x00\x01\x40")  # DIO3 at 1.8 V, 5 ms
        if self.model.board_rf_switch:
            self.cmd(b"\x9d\x01")
        self.cmd(b"\x8a\x01")  # LoRa
        rf = round(freq_hz * (1 << 25) / 32e6)
        self.cmd(b"\x86" + rf.to_bytes(4, "big"))
        self.cmd(bytes([0x8B, sf, 0x04, 0x01, 1 if sf >= 11 else 0]))  # 125 kHz, 4/5, LDRO
        self.cmd(bytes([0x8C, 0, 8, 0, 0xFF, 1, 1 if iq_invert else 0]))
        self.cmd(b"\x0d\x07\x36" + (b"\x09" if iq_invert else b"\x0d"))  # errata 15.4
        self.cmd(b"\x0d\x07\x40\x34\x44")  # public sync word
        self.cmd(IRQ_ALL)

    def tx(self, payload: bytes, timeout_steps: int = 0) -> None:
        self.cmd(bytes([0x8C, 0, 8, 0, len(payload), 1, 0]))
        self.cmd(b"\x0e\x00" + payload)
        self.cmd(b"\x83" + timeout_steps.to_bytes(3, "big"))


def test_busy_is_high_while_the_chip_boots_and_commands_then_are_lost() -> None:
    clock = Clock()
    chip = Sx126x(clock, cs=CS)
    bus = SPIBus(1)
    bus.attach(chip)
    assert chip.busy() == 1
    bus.pin_changed(CS, 0)
    bus.transfer(b"\x8a\x01")  # SetPacketType while booting: ignored
    bus.pin_changed(CS, 1)
    assert chip.ignored_busy == 1 and chip.packet_type == 0
    clock.now += BOOT_MS
    assert chip.busy() == 0
    chip.nreset(0)
    assert chip.busy() == 1  # held in reset
    clock.now += 0.2
    chip.nreset(1)
    assert chip.busy() == 1  # cold start after NRESET (8.1)
    clock.now += BOOT_MS
    assert chip.busy() == 0


def test_status_registers_and_the_standby_rule_for_packet_type() -> None:
    c = Chip()
    assert c.status() == STBY_RC
    assert c.cmd(b"\x1d\x07\x40\x00\x00\x00")[4:] == b"\x14\x24"  # private sync word at POR
    c.cmd(b"\xc1")  # SetFs
    assert c.status() >> 4 == 4
    c.cmd(b"\x8a\x01")  # SetPacketType outside STDBY_RC: failure to execute (13.4.2)
    assert c.status() == 0x40 | (5 << 1) and c.model.packet_type == 0
    c.cmd(b"\x80\x00")
    c.cmd(b"\x8a\x01")
    assert c.cmd(b"\x11\x00\x00")[2] == 1
    c.cmd(b"\xee")  # no such opcode
    assert c.status() & 0x0E == 4 << 1


def test_tx_ends_with_txdone_on_dio1_falls_back_to_standby_and_goes_on_the_air() -> None:
    c = Chip()
    c.lora(sf=8)
    start = c.clock.now
    c.tx(b"\x40hello")
    assert c.status() >> 4 == 6
    toa = time_on_air_ms(6, sf=8, bw_hz=125_000)
    c.clock.now = start + toa - 0.2
    assert c.model.dio1() == 0
    c.clock.now = start + toa + 0.1
    assert c.model.dio1() == 1 and c.irq() == 0x0001 and c.status() == STBY_RC
    ((payload, meta, t_sim_ms),) = c.port.sent
    assert payload == b"\x40hello" and t_sim_ms == int(start + toa + 0.05)
    assert (meta.freq_hz, meta.sf, meta.bw_hz) == (868_100_000, 8, 125_000)
    c.cmd(b"\x02\xff\xff")
    assert c.irq() == 0 and c.model.dio1() == 0


def test_the_tx_timeout_ends_a_tx_that_lasts_longer() -> None:
    c = Chip()
    c.lora(sf=12)
    c.tx(b"x" * 40, timeout_steps=64 * 100)  # 100 ms
    c.clock.now += 101
    assert c.irq() == 0x0200 and not c.port.sent and c.status() == STBY_RC


def test_a_tcxo_board_needs_dio3_powering_it() -> None:
    c = Chip(tcxo_mv=1800)
    assert c.cmd(b"\x17\x00\x00\x00")[3] & 0x20  # XOSC_START_ERR since power-on (13.3.6)
    c.cmd(b"\x8a\x01")
    c.cmd(b"\x83\x00\x00\x00")  # SetTx with the TCXO unpowered
    assert c.status() == STBY_RC | (5 << 1)
    c.cmd(b"\x97\x01\x00\x01\x40")  # 1.7 V: not enough for this board's 1.8 V part
    c.cmd(b"\x83\x00\x00\x00")
    assert c.status() >> 4 == 2
    c.cmd(b"\x07\x00\x00")
    c.lora()
    c.tx(b"ok")
    assert c.status() >> 4 == 6


def test_an_rf_switch_on_dio2_must_be_enabled_for_the_tx_to_leave_the_board() -> None:
    c = Chip(rf_switch=True)
    c.cmd(b"\x8a\x01")
    c.lora()
    c.cmd(b"\x9d\x00")  # DIO2 not driving the switch
    c.tx(b"x")
    c.clock.now += 100
    c.model.update()
    assert not c.port.sent and "RF switch" in (c.model.core.counters.last_unaired or "")
    c.cmd(b"\x9d\x01")
    c.tx(b"x")
    c.clock.now += 100
    c.model.update()
    assert len(c.port.sent) == 1


def test_rx_single_times_out_in_steps_and_continuous_does_not() -> None:
    c = Chip()
    c.lora(iq_invert=True)
    c.cmd(b"\x82\x00\x02\x80")  # 640 steps = 10 ms
    c.clock.now += 9.9
    assert c.irq() == 0 and c.status() >> 4 == 5
    c.clock.now += 0.2
    assert c.irq() == 0x0200 and c.model.dio1() == 1 and c.status() == STBY_RC
    c.cmd(b"\x02\xff\xff")
    c.cmd(b"\x82\xff\xff\xff")  # continuous
    c.clock.now += 10_000
    assert c.irq() == 0 and c.status() >> 4 == 5


def test_a_downlink_is_received_with_buffer_status_and_packet_status() -> None:
    c = Chip()
    c.lora(sf=9, iq_invert=True)
    c.cmd(b"\x8f\x00\x80")  # RX base 0x80
    t = c.clock.now + 3
    meta = LoraMeta(868_100_000, 9, rssi_dbm=-104.5, snr_db=-6.75, dir="down", dst="n")
    c.model.core.receive(Frame("gw", b"\x60abc", meta, int(t)))
    c.cmd(b"\x82\x00\x19\x00")  # 100 ms
    c.clock.now = int(t) + 1
    assert c.irq() & 0x0014 == 0x0014  # PreambleDetected, HeaderValid
    c.clock.now += time_on_air_ms(4, sf=9, bw_hz=125_000, crc=False)
    assert c.irq() == 0x0016 and c.model.dio1() == 1 and c.status() == STBY_RC
    assert c.cmd(b"\x13\x00\x00\x00")[2:] == b"\x04\x80"  # 13.5.2: length, start
    assert c.cmd(b"\x1e\x80\x00" + bytes(4))[3:] == b"\x60abc"
    r = c.cmd(b"\x14\x00\x00\x00\x00")
    assert -r[2] / 2 == -104.5 and (r[3] - 256) / 4 == -6.75


def test_inverted_iq_rx_needs_the_errata_register_fix() -> None:
    c = Chip()
    c.lora(iq_invert=True)
    c.cmd(b"\x0d\x07\x36\x0d")  # 0x0736 bit 2 left set: errata 15.4 not applied
    c.model.core.receive(Frame("gw", b"x", LoraMeta(868_100_000, 7, dir="down", dst="n"), 1005))
    c.cmd(b"\x82\xff\xff\xff")
    c.clock.now += 100
    assert c.irq() & 0x0002 == 0


def test_sleep_warm_keeps_the_configuration_and_cold_does_not() -> None:
    c = Chip()
    c.lora(freq_hz=868_500_000)
    c.cmd(b"\x0e\x00abc")
    c.cmd(b"\x84\x04")  # warm start
    assert c.model.busy() == 1 and c.model.describe()["mode"] == "sleep"
    c.clock.now += 1000
    c.cmd(b"\xc0\x00", wait=False)  # lost: the chip is asleep; its NSS edge wakes it
    assert c.model.ignored_busy == 1 and c.model.busy() == 1
    c.clock.now += 0.35
    assert c.status() == STBY_RC
    assert c.model.freq_hz == 868_500_000 and c.model.packet_type == 1
    assert c.cmd(b"\x1e\x00\x00\x00\x00\x00")[3:] == b"\x00\x00\x00"  # the buffer is lost
    c.cmd(b"\x84\x00")  # cold start
    c.bus.pin_changed(CS, 0)
    c.bus.pin_changed(CS, 1)
    c.clock.now += 3.5
    assert c.model.packet_type == 0 and c.model.freq_hz != 868_500_000


@pytest.mark.parametrize(("tcxo_mv", "rf_switch"), [(1800, True)])
def test_describe_reports_the_boards_wiring_state(tcxo_mv: int, rf_switch: bool) -> None:
    c = Chip(tcxo_mv=tcxo_mv, rf_switch=rf_switch)
    c.lora()
    d = c.model.describe()
    assert d["tcxo_mv"] == 1800 and d["rf_switch"] and d["packet_type"] == "lora"
    assert d["freq_hz"] == 868_100_000 and d["commands"]["0x97"] == 1
