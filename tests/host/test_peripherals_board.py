"""BoardHardware: buses from a board definition, a bare board, faults by target, describe()."""

import json

import pytest

from host_tools.sim.peripherals.adc import AnalogInput, Esp32Adc, Rp2Adc
from host_tools.sim.peripherals.board_hw import BoardHardware
from host_tools.sim.peripherals.environment import Environment
from host_tools.sim.peripherals.faults import CorruptReplies
from host_tools.sim.peripherals.i2c import I2CNack, I2CTimeout, RegisterDevice
from host_tools.sim.peripherals.models.eeprom24 import At24c32
from host_tools.sim.peripherals.onewire import OneWireDevice
from host_tools.sim.peripherals.spi import SPIDevice

ESP32_BOARD = {
    "port": "esp32",
    "pins": {
        "i2c": [{"id": 0, "scl": 22, "sda": 21}, {"id": 1, "scl": 26, "sda": 25}],
        "spi": [{"id": 1, "sck": 18, "mosi": 23, "miso": 19}],
        "onewire": 4,
        "battery_adc": {"pin": 35, "divider": 2.0},
    },
}
RP2_BOARD = {"port": "rp2", "pins": {"i2c": [{"id": 0, "scl": 5, "sda": 4}], "spi": []}}


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


class Selectable(SPIDevice):
    def __init__(self, cs):
        super().__init__(cs)
        self.edges = []

    def select(self, active):
        self.edges.append(active)

    def transfer(self, mosi):
        return b"\x5a" * len(mosi)


def test_a_bare_board_has_its_buses_and_nothing_on_them():
    hw = BoardHardware(ESP32_BOARD)
    assert hw.i2c(0).scl == 22 and hw.i2c(1).sda == 25
    assert hw.i2c(0).scan() == []
    with pytest.raises(I2CNack):
        hw.i2c(1).readfrom(0x76, 1)
    assert hw.spi(1).transfer(b"\x9f\x00") == b"\xff\xff"
    assert hw.onewire(4).reset() is False
    assert hw.onewire(17).reset() is False  # any GPIO, nothing wired
    assert hw.adc(34).read_u16() == 0  # an unwired analog pin


def test_a_minimal_board_needs_only_port_and_pins():
    hw = BoardHardware({"port": "esp32", "pins": {}})
    assert hw.describe()["i2c"] == []
    with pytest.raises(ValueError, match="has no I2C bus 0"):
        hw.i2c(0)


def test_unknown_buses_and_ports_are_refused_with_what_exists():
    hw = BoardHardware(ESP32_BOARD)
    with pytest.raises(ValueError, match=r"no I2C bus 2; it has \[0, 1\]"):
        hw.i2c(2)
    with pytest.raises(ValueError, match=r"no SPI bus 0; it has \[1\]"):
        hw.spi(0)
    with pytest.raises(ValueError, match="unknown port 'stm32'"):
        BoardHardware({"port": "stm32", "pins": {}})


def test_battery_pin_reads_supply_through_the_divider_and_follows_the_environment():
    hw = BoardHardware(ESP32_BOARD, environment=Environment(supply_v=3.7))
    adc = hw.adc(35)
    assert isinstance(adc, Esp32Adc)
    adc.atten(Esp32Adc.ATTN_11DB)
    assert hw.adc(35).read_uv() == pytest.approx(1_850_000, abs=1000)  # atten persisted
    hw.environment.set(supply_v=3.2)
    assert hw.adc(35).read_uv() == pytest.approx(1_600_000, abs=1000)


def test_rp2_boards_get_rp2_conversions_and_the_core_temperature_sensor():
    hw = BoardHardware(RP2_BOARD, environment=Environment(temperature_c=27.0))
    assert isinstance(hw.adc(26), Rp2Adc)
    assert hw.adc(30).read_u16() == pytest.approx(0.706 / 3.3 * 65535, abs=20)


def test_attach_binds_the_boards_environment_and_wires_each_kind():
    hw = BoardHardware(ESP32_BOARD)
    eeprom = hw.attach("i2c", 0, At24c32(Clock()))
    assert eeprom.env is hw.environment
    assert hw.i2c(0).scan() == [0x50]
    probe = hw.attach("onewire", 4, OneWireDevice(0x28, 1))
    assert hw.onewire(4).reset() is True
    assert probe.measure()["temperature_c"] == 22.0
    soil = hw.attach("adc", 32, AnalogInput(32, lambda env: env["soil_moisture_pct"] / 100))
    assert soil.pin == 32
    assert hw.adc(32).read_uv() == pytest.approx(350_000, abs=1000)
    with pytest.raises(ValueError, match="unknown bus kind 'uart'"):
        hw.attach("uart", 0, RegisterDevice(0x10))
    with pytest.raises(ValueError, match="RegisterDevice cannot be attached to spi"):
        hw.attach("spi", 1, RegisterDevice(0x10))
    with pytest.raises(ValueError, match="pin 33 attached to pin 32"):
        hw.attach("adc", 32, AnalogInput(33, lambda env: 0.0))
    with pytest.raises(ValueError, match="different environment"):
        hw.attach("i2c", 1, RegisterDevice(0x11, env=Environment()))


def test_pin_writes_reach_spi_chip_selects_and_read_back():
    hw = BoardHardware(ESP32_BOARD)
    dev = hw.attach("spi", 1, Selectable(5))
    assert hw.pin_read(5) == 0  # never driven
    hw.pin_write(5, 1)
    hw.pin_write(5, 0)
    assert hw.pin_read(5) == 0
    assert hw.spi(1).transfer(b"\x00") == b"\x5a"
    hw.pin_write(5, 1)
    assert hw.pin_read(5) == 1
    assert dev.edges == [True, False]


def test_faults_by_bus_address_target_and_by_name():
    clock = Clock()
    hw = BoardHardware(ESP32_BOARD)
    hw.attach("i2c", 0, At24c32(clock))
    hw.attach("i2c", 0, RegisterDevice(0x76, name="bme280"))

    hw.apply_fault("i2c0:0x50", "detach")
    assert hw.i2c(0).scan() == [0x76]
    hw.apply_fault("bme280", "detach")
    assert hw.i2c(0).scan() == []
    hw.clear_faults("i2c0:80")
    assert hw.i2c(0).scan() == [0x50]
    hw.clear_faults()
    assert hw.i2c(0).scan() == [0x50, 0x76]

    hw.apply_fault("i2c0", "stuck")
    with pytest.raises(I2CTimeout):
        hw.i2c(0).readfrom(0x76, 1)
    assert hw.i2c(1).scan() == []  # the other bus is fine (and empty)
    hw.clear_faults()
    assert hw.i2c(0).readfrom(0x76, 1) == b"\x00"


def test_faults_on_spi_and_onewire_targets():
    hw = BoardHardware(ESP32_BOARD)
    hw.attach("spi", 1, Selectable(5))
    probe = hw.attach("onewire", 4, OneWireDevice(0x28, 0x1234))
    hw.pin_write(5, 0)
    hw.apply_fault("spi1:cs5", "detach")
    assert hw.spi(1).transfer(b"\x00") == b"\xff"
    hw.apply_fault(f"onewire4:{probe.rom.hex()}", CorruptReplies(prob=0.5, seed=9))
    assert probe.faults == (CorruptReplies(prob=0.5, seed=9),)
    hw.apply_fault("onewire4", "stuck")
    assert hw.onewire(4).read_bit() == 0


@pytest.mark.parametrize(
    "target", ["i2c0:0x51", "i2c7", "spi1:cs9", "onewire4:00", "onewire5", "i2c0:zz", "nothing"]
)
def test_bad_targets_name_the_forms(target):
    hw = BoardHardware(ESP32_BOARD)
    hw.attach("i2c", 0, RegisterDevice(0x76, name="bme280"))
    with pytest.raises(ValueError) as info:
        hw.apply_fault(target, "detach")
    assert repr(target) in str(info.value)
    assert "i2c<id>[:<address>]" in str(info.value)
    assert "bme280" in str(info.value)


def test_ambiguous_names_and_device_faults_on_buses_are_refused():
    hw = BoardHardware(ESP32_BOARD)
    hw.attach("i2c", 0, RegisterDevice(0x76, name="bme280"))
    hw.attach("i2c", 1, RegisterDevice(0x76, name="bme280"))
    with pytest.raises(ValueError, match="is ambiguous"):
        hw.apply_fault("bme280", "stale")
    with pytest.raises(ValueError, match="applies to a device"):
        hw.apply_fault("i2c0", "corrupt:0.1")
    with pytest.raises(ValueError, match="bad fault spec"):
        hw.apply_fault("i2c0:0x76", "melt")


def test_power_on_reset_resets_every_model():
    hw = BoardHardware(ESP32_BOARD)
    dev = hw.attach("i2c", 0, RegisterDevice(0x76))
    dev.define(0xF4, reset=0x01)
    hw.i2c(0).writeto_mem(0x76, 0xF4, b"\x27")
    hw.power_on_reset()
    assert hw.i2c(0).readfrom_mem(0x76, 0xF4, 1) == b"\x01"


def test_describe_is_a_json_inventory():
    hw = BoardHardware(ESP32_BOARD, environment=Environment(supply_v=3.6))
    hw.attach("i2c", 0, At24c32(Clock()))
    hw.attach("spi", 1, Selectable(5))
    probe = hw.attach("onewire", 4, OneWireDevice(0x28, 0xABCDEF))
    hw.apply_fault("eeprom24", "corrupt:0.2")
    hw.apply_fault("i2c1", "stuck")
    hw.pin_write(5, 0)

    status = json.loads(json.dumps(hw.describe()))
    assert status["port"] == "esp32"
    assert status["environment"]["supply_v"] == 3.6
    i2c0, i2c1 = status["i2c"]
    assert i2c0["devices"] == [
        {
            "name": "eeprom24",
            "model": "At24c32",
            "faults": ["corrupt:0.2"],
            "address": 0x50,
            "size": 4096,
            "busy": False,
        }
    ]
    assert i2c1 == {"id": 1, "scl": 26, "sda": 25, "faults": ["stuck"], "devices": []}
    assert status["spi"][0]["devices"][0]["cs"] == 5
    assert status["onewire"] == [
        {
            "pin": 4,
            "faults": [],
            "devices": [
                {
                    "name": "onewiredevice",
                    "model": "OneWireDevice",
                    "faults": [],
                    "rom": probe.rom.hex(),
                }
            ],
        }
    ]
    assert status["adc"] == [{"pin": 35, "source": "battery", "volts": 1.8}]
    assert status["pins"] == [{"pin": 5, "level": 0}]


RAILED_BOARD = {**ESP32_BOARD, "pins": {**ESP32_BOARD["pins"], "sensor_power": 25}}


def test_the_sensor_rail_feeds_i2c_onewire_and_switched_inputs_but_not_spi_or_the_battery():
    hw = BoardHardware(RAILED_BOARD)
    chip = hw.attach("i2c", 0, RegisterDevice(0x76))
    chip.define(0xF4, reset=0x01)
    probe = hw.attach("onewire", 4, OneWireDevice(0x28, 0xABCDEF))
    radio = hw.attach("spi", 1, Selectable(5))
    soil = hw.attach("adc", 34, AnalogInput(34, lambda env: 0.8, "soil", switched=True))
    assert hw.rail_on is False  # the enable pin is undriven after reset: off
    with pytest.raises(I2CNack):
        hw.i2c(0).readfrom_mem(0x76, 0xF4, 1)
    assert hw.onewire(4).reset() is False  # no presence pulse
    assert hw.adc(34).read_uv() == 0
    assert hw.adc(35).read_uv() > 0  # the battery divider is not switched
    hw.pin_write(5, 0)
    assert radio.edges == [True]  # SPI is on the main supply

    hw.pin_write(25, 1)
    assert hw.rail_on is True
    hw.i2c(0).writeto_mem(0x76, 0xF4, b"\x27")
    assert hw.i2c(0).readfrom_mem(0x76, 0xF4, 1) == b"\x27"
    assert hw.onewire(4).reset() is True
    assert hw.adc(34).read_uv() == pytest.approx(0.8e6, rel=0.01)
    assert probe.answers and chip.answers and soil.powered

    hw.pin_write(25, 1)  # no edge: no reset
    assert hw.i2c(0).readfrom_mem(0x76, 0xF4, 1) == b"\x27"
    hw.pin_write(25, 0)
    hw.pin_write(25, 1)  # off and on again: every chip on the rail restarts from reset
    assert hw.i2c(0).readfrom_mem(0x76, 0xF4, 1) == b"\x01"

    hw.cpu_reset()  # a reset releases the pins: rail off, chip selects back high
    assert hw.rail_on is False and hw.pin_read(25) == 0
    assert radio.edges == [True, False]
    assert hw.describe()["sensor_rail"] == {"pin": 25, "on": False}


def test_a_board_without_a_sensor_switch_keeps_its_sensors_powered():
    hw = BoardHardware(ESP32_BOARD)
    hw.attach("i2c", 0, RegisterDevice(0x76))
    hw.cpu_reset()
    assert hw.rail_on is True
    hw.i2c(0).writeto(0x76, b"\x00")
    assert hw.describe()["sensor_rail"] == {"pin": None, "on": True}
