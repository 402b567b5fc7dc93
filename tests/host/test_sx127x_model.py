"""The SX1276 model (host_tools/sim/peripherals/models/sx127x.py) and the LoRa core it shares
with the SX1262 model (models/lora.py), at register level with a hand-driven clock."""

import pytest
from handclock import Clock

from host_tools.lorawan.airtime import symbol_ms, time_on_air_ms
from host_tools.sim.air import Frame, LoraMeta
from host_tools.sim.peripherals.models import lora
from host_tools.sim.peripherals.models.sx127x import Sx127x, rssi_registers
from host_tools.sim.peripherals.spi import SPIBus

CS = 18
LORA_STDBY, LORA_SLEEP, LORA_TX = 0x81, 0x80, 0x83
LORA_RX_CONT, LORA_RX_SINGLE = 0x85, 0x86


class Port:
    """A stand-in for the board's air: records what the radio transmits and listens to."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.sent: list[tuple[bytes, LoraMeta, int]] = []
        self.listening: list[tuple[int | None, int | None]] = []

    def transmit(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None:
        self.sent.append((payload, meta, t_sim_ms))

    def listen(self, freq_hz: int | None, sf: int | None) -> None:
        self.listening.append((freq_hz, sf))


class Chip:
    """An SX1276 on an SPI bus, driven as a driver would: register reads, writes, bursts."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.model = Sx127x(self.clock, cs=CS)
        self.bus = SPIBus(1)
        self.bus.attach(self.model)
        self.port = Port()
        self.model.core.port = self.port
        self.clock.now += 10  # power-on reset done

    def xfer(self, data: bytes) -> bytes:
        self.bus.pin_changed(CS, 0)
        try:
            return self.bus.transfer(data)
        finally:
            self.bus.pin_changed(CS, 1)

    def read(self, reg: int) -> int:
        return self.xfer(bytes([reg, 0]))[1]

    def write(self, reg: int, value: int) -> None:
        self.xfer(bytes([reg | 0x80, value]))

    def lora(self, freq_hz: int = 868_100_000, sf: int = 7, bw_code: int = 7, crc: bool = True):
        self.write(0x01, LORA_SLEEP)
        self.write(0x01, LORA_STDBY)
        frf = round(freq_hz * (1 << 19) / 32e6)
        for i, reg in enumerate((0x06, 0x07, 0x08)):
            self.write(reg, (frf >> (16 - 8 * i)) & 0xFF)
        self.write(0x1D, (bw_code << 4) | (1 << 1))
        self.write(0x1E, (sf << 4) | (0x04 if crc else 0))
        ldro = symbol_ms(sf, (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000,
                              500000)[bw_code]) > 16  # fmt: skip
        self.write(0x26, 0x04 | (0x08 if ldro else 0))
        self.write(0x39, 0x34)

    def invert_rx(self) -> None:
        self.write(0x33, 0x67)
        self.write(0x3B, 0x19)

    def tx(self, payload: bytes) -> None:
        self.write(0x0E, 0)
        self.write(0x0D, 0)
        self.xfer(b"\x80" + payload)
        self.write(0x22, len(payload))
        self.write(0x40, 0x40)  # DIO0 = TxDone
        self.write(0x01, LORA_TX)


def downlink(payload: bytes, t_sim_ms: float, freq_hz: int = 868_100_000, sf: int = 7, **kw):
    meta = LoraMeta(freq_hz, sf, dir="down", dst="node", **kw)
    return Frame("gw", payload, meta, int(t_sim_ms))


def test_the_chip_answers_out_of_reset_and_counts_accesses_before_it_is_ready() -> None:
    clock = Clock()
    chip = Sx127x(clock, cs=CS)
    bus = SPIBus(1)
    bus.attach(chip)
    bus.pin_changed(CS, 0)
    assert bus.transfer(b"\x42\x00")[1] == 0x12  # RegVersion, though within POR's 10 ms
    bus.pin_changed(CS, 1)
    assert chip.early_access == 1
    clock.now += 10
    chip.nreset(0)
    bus.pin_changed(CS, 0)
    assert bus.transfer(b"\x42\x00") == b"\xff\xff"  # held in reset: MISO floats
    bus.pin_changed(CS, 1)
    assert chip.ignored_spi == 1


def test_a_reset_pulse_restores_defaults_and_a_too_short_one_is_ignored() -> None:
    c = Chip()
    c.write(0x39, 0x34)
    c.model.nreset(0)
    c.clock.now += 0.05  # < 100 us
    c.model.nreset(1)
    assert c.read(0x39) == 0x34
    c.model.nreset(0)
    c.clock.now += 0.2
    c.model.nreset(1)
    early = c.model.early_access
    assert c.read(0x01) == 0x09  # FSK standby, as after power-on
    assert c.model.early_access == early + 1  # 5 ms before it should be used (7.2.2)
    c.clock.now += 5
    c.write(0x01, 0x00)
    c.write(0x01, LORA_SLEEP)
    assert c.read(0x39) == 0x12  # RegSyncWord's reset value
    assert c.model.early_access == early + 1


def test_long_range_mode_changes_in_sleep_only_and_lora_registers_need_it() -> None:
    c = Chip()
    c.write(0x39, 0x34)  # FSK mode: this is the FSK page, not RegSyncWord
    c.write(0x01, LORA_SLEEP)  # from FSK standby: LongRangeMode ignored, the mode changes
    assert c.read(0x01) == 0x00
    c.write(0x01, LORA_SLEEP)  # in SLEEP it takes
    assert c.read(0x01) == LORA_SLEEP
    assert c.read(0x39) == 0x12  # the early write never reached the LoRa page


def test_fifo_bursts_move_the_pointer_and_sleep_clears_the_fifo() -> None:
    c = Chip()
    c.lora()
    c.write(0x0D, 0x10)
    c.xfer(b"\x80abc")
    assert c.read(0x0D) == 0x13
    c.write(0x0D, 0x10)
    assert c.xfer(b"\x00\x00\x00\x00")[1:] == b"abc"
    c.write(0x01, LORA_SLEEP)
    c.xfer(b"\x80zz")  # not accessible in sleep
    c.write(0x01, LORA_STDBY)
    c.write(0x0D, 0x10)
    assert c.xfer(b"\x00\x00\x00")[1:] == b"\x00\x00"


def test_tx_lasts_its_time_on_air_then_txdone_and_the_frame_on_the_air() -> None:
    c = Chip()
    c.lora(sf=9)
    start = c.clock.now
    c.tx(b"\x40payload")
    toa = time_on_air_ms(8, sf=9, bw_hz=125_000)
    c.clock.now = start + toa - 0.1
    assert c.model.dio0() == 0 and not c.port.sent
    assert c.model.next_event_ms() == pytest.approx(start + toa)
    c.clock.now = start + toa
    assert c.model.dio0() == 1
    assert c.read(0x12) & 0x08 and c.read(0x01) == LORA_STDBY
    ((payload, meta, t_sim_ms),) = c.port.sent
    assert payload == b"\x40payload" and t_sim_ms == int(start + toa)
    assert (meta.freq_hz, meta.sf, meta.bw_hz, meta.cr, meta.dir) == (868_100_000, 9, 125_000,
                                                                      "4/5", "up")  # fmt: skip
    c.write(0x12, 0x08)
    assert c.read(0x12) == 0 and c.model.dio0() == 0


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        (lambda c: c.write(0x39, 0x12), "sync word"),
        (lambda c: c.write(0x26, 0x04 | 0x08), "low data rate optimisation is on"),
        # A port without transmit_down (a radio on no board air): board downlinks cannot go.
        (lambda c: c.write(0x33, 0x26), "inverted IQ (a downlink): this radio's port carries"),
        (lambda c: c.write(0x1D, 0x73), "implicit header"),
    ],
)
def test_what_a_lorawan_receiver_cannot_demodulate_does_not_reach_the_air(setup, why) -> None:
    c = Chip()
    c.lora()
    setup(c)
    c.tx(b"x")
    c.clock.now += 100
    assert c.model.dio0() == 1  # the chip still finishes its TX
    assert not c.port.sent
    counters = c.model.core.counters
    assert counters.tx_unaired == 1 and why in (counters.last_unaired or "")


class BoardPort(Port):
    """The board's air as radio_link gives it: it also carries board downlinks."""

    def __init__(self) -> None:
        super().__init__()
        self.down: list[tuple[bytes, LoraMeta, int]] = []

    def transmit_down(self, payload: bytes, meta: LoraMeta, t_sim_ms: int) -> None:
        self.down.append((payload, meta, t_sim_ms))

    def board_wait_s(self, window_ms: float) -> float:
        return 0.0


def test_an_inverted_iq_transmission_goes_out_as_a_board_downlink_when_it_starts() -> None:
    # A gateway-role board answering a node (docs/virtual-air.md, "Board downlinks").
    c = Chip()
    port = BoardPort()
    c.model.core.port = port
    c.lora()
    c.write(0x33, 0x26)  # InvertIQ on TX
    start = c.clock.now
    c.tx(b"\x20accept")
    c.model.update()
    ((payload, meta, t_sim_ms),) = port.down
    assert payload == b"\x20accept" and t_sim_ms == int(start)  # aired as it starts
    assert (meta.dir, meta.dst, meta.freq_hz, meta.sf) == ("down", None, 868_100_000, 7)
    assert not port.sent and c.model.core.counters.tx_aired == 1


def test_sf12_at_125_khz_without_ldro_is_not_aired() -> None:
    c = Chip()
    c.lora(sf=12)
    c.write(0x26, 0x04)
    c.tx(b"x")
    c.clock.now += 2000
    c.model.update()
    assert not c.port.sent and "is off at SF12" in (c.model.core.counters.last_unaired or "")


def test_rx_single_times_out_after_its_symbols_unless_masked() -> None:
    c = Chip()
    c.lora()
    c.write(0x1F, 10)  # 10 symbols of 1.024 ms
    c.write(0x40, 0x00)  # DIO0 RxDone, DIO1 RxTimeout
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now += 10.2
    assert c.model.dio1() == 0 and c.read(0x01) == LORA_RX_SINGLE
    c.clock.now += 0.1
    assert c.model.dio1() == 1 and c.read(0x12) == 0x80 and c.read(0x01) == LORA_STDBY
    c.write(0x12, 0xFF)
    c.write(0x11, 0x80)  # RxTimeout masked
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now += 20
    assert c.read(0x12) == 0 and c.read(0x01) == LORA_STDBY


def test_a_downlink_is_received_when_it_starts_inside_the_window() -> None:
    c = Chip()
    c.lora()
    c.invert_rx()
    t = c.clock.now + 5
    c.model.core.receive(downlink(b"\x60down", t, rssi_dbm=-101.0, snr_db=-4.5))
    c.write(0x1F, 20)
    c.write(0x0F, 0x20)  # RX base
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now = t + 1
    assert c.read(0x18) & 0x0B == 0x0B and c.model.dio0() == 0  # under way, header valid
    c.clock.now = t + time_on_air_ms(5, sf=7, bw_hz=125_000, crc=False)
    assert c.model.dio0() == 1 and c.read(0x12) == 0x50  # RxDone, ValidHeader
    assert c.read(0x13) == 5 and c.read(0x10) == 0x20 and c.read(0x01) == LORA_STDBY
    assert c.read(0x1C) & 0x40 == 0  # LoRaWAN downlinks carry no payload CRC
    c.write(0x0D, 0x20)
    assert c.xfer(b"\x00" * 6)[1:] == b"\x60down"
    snr_raw, rssi_raw = c.read(0x19), c.read(0x1A)
    assert (snr_raw - 256) / 4 == -4.5
    assert -157 + rssi_raw + (snr_raw - 256) / 4 == pytest.approx(-101.0, abs=0.5)  # 5.5.5


@pytest.mark.parametrize(
    ("rssi", "snr", "hf"), [(-60.0, 9.0, True), (-118.0, -7.25, True), (-70.0, 2.0, False)]
)
def test_packet_rssi_registers_invert_the_datasheet_formulas(rssi, snr, hf) -> None:
    snr_raw, pkt = rssi_registers(rssi, snr, hf)
    snr_q = snr_raw - 256 if snr_raw > 127 else snr_raw
    offset = -157 if hf else -164
    back = offset + pkt + snr_q / 4 if snr_q < 0 else offset + pkt * 16 / 15
    assert snr_q / 4 == snr and back == pytest.approx(rssi, abs=1.1)


@pytest.mark.parametrize(("open_after_symbols", "heard"), [(-2.0, True), (3.9, True), (4.1, False)])
def test_the_receiver_must_listen_before_the_preamble_has_passed(open_after_symbols, heard):
    c = Chip()
    c.lora()
    c.invert_rx()
    t = c.clock.now + 50
    c.model.core.receive(downlink(b"x", t))
    c.write(0x1F, 50)
    c.clock.now = t + open_after_symbols * symbol_ms(7, 125_000)
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now = t + 100
    assert bool(c.read(0x12) & 0x40) == heard


@pytest.mark.parametrize(("offset_hz", "heard"), [(0, True), (31_000, True), (32_000, False)])
def test_frequency_tolerance_is_a_quarter_of_the_bandwidth(offset_hz, heard) -> None:
    c = Chip()
    c.lora()
    c.invert_rx()
    t = c.clock.now + 2
    c.model.core.receive(downlink(b"x", t, freq_hz=868_100_000 + offset_hz))
    c.write(0x01, LORA_RX_CONT)
    c.clock.now += 50
    assert bool(c.read(0x12) & 0x40) == heard


def test_rx_inversion_needs_invertiq2() -> None:
    c = Chip()
    c.lora()
    c.write(0x33, 0x67)  # RX inverted, but 0x3B left at 0x1D
    t = c.clock.now + 2
    c.model.core.receive(downlink(b"x", t))
    c.write(0x01, LORA_RX_CONT)
    c.clock.now += 50
    assert c.read(0x12) & 0x40 == 0


def test_a_late_downlink_fits_the_window_while_the_air_may_still_answer(monkeypatch) -> None:
    real = [100.0]
    monkeypatch.setattr(lora.time, "monotonic", lambda: real[0])
    c = Chip()
    c.port.latency_s = 0.25
    c.lora()
    c.tx(b"up")
    c.clock.now += 100
    c.model.update()  # on the air at real time 100.0
    c.write(0x12, 0xFF)
    c.invert_rx()
    c.write(0x1F, 10)
    rx_open = c.clock.now
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now += 30  # the window's 10 symbols are over in simulated time ...
    real[0] += 0.1  # ... but only 0.1 s of real time has passed: no RxTimeout yet
    assert c.read(0x12) == 0 and c.read(0x01) == LORA_RX_SINGLE
    c.model.core.receive(downlink(b"late", rx_open + 2))  # the gateway's answer arrives
    assert c.read(0x18) & 0x0B == 0x0B  # found in the window; it is still on the air
    c.clock.now += 40
    assert c.read(0x12) & 0x40 and c.read(0x13) == 4
    # Without an answer the timeout comes once the air's latency has passed.
    c.write(0x12, 0xFF)
    c.write(0x01, LORA_RX_SINGLE)
    c.clock.now += 30
    assert c.read(0x12) == 0
    real[0] += 0.2
    assert c.read(0x12) == 0x80


def test_link_loss_is_seeded_and_out_of_range_and_the_snr_floor_drop_frames() -> None:
    c = Chip()
    core = c.model.core
    core.set_link(loss=0.5, seed=3)
    for i in range(40):
        core.receive(downlink(bytes([i]), c.clock.now + 1000))
    first = core.counters.rx_lost
    assert 5 < first < 35
    core.set_link(loss=0.0, out_of_range=True)
    core.receive(downlink(b"x", c.clock.now))
    assert core.counters.rx_lost == first + 1
    core.set_link(out_of_range=False, snr_db=-8.0)  # below SF7's -7.5 dB
    core.receive(downlink(b"x", c.clock.now))
    assert core.counters.rx_lost == first + 2
    with pytest.raises(ValueError, match="loss"):
        core.set_link(loss=1.5)


def test_another_nodes_uplink_is_heard_on_the_rx_channel_with_normal_iq() -> None:
    c = Chip()
    c.lora(freq_hz=868_300_000, sf=8)
    c.write(0x01, LORA_RX_CONT)
    assert c.port.listening[-1] == (868_300_000, 8)  # node-to-node: the air's lora-up channel
    c.clock.now += 100
    up = Frame("node-2", b"\x40up", LoraMeta(868_300_000, 8, rssi_dbm=-70.0), 5)
    c.model.core.receive(up)  # it ended now, having started one time on air ago
    assert c.read(0x12) & 0x40 and c.read(0x13) == 3
    assert c.read(0x1C) & 0x40  # uplinks carry a payload CRC
    assert c.read(0x01) == LORA_RX_CONT  # continuous reception goes on
