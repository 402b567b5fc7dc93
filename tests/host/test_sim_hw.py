"""The node's peripherals as user code sees them on a virtual board: an EEPROM model on I2C with
injected faults, the battery ADC following the environment, and BLE advertising on the air.
"""

from pathlib import Path

import pytest
from simnode import control

from host_tools.boards import load_board
from host_tools.errors import SimError
from host_tools.hil.node import Node
from host_tools.sim.air import ADV_IND, Air, AirListener

BOARDS = ("sim-esp32", "sim-rp2")
EEPROM = ("--attach", "at24c32@i2c0:0x50")
NACK_ERRNO = {"sim-esp32": 19, "sim-rp2": 5}  # ENODEV on esp32, EIO on rp2, as the ports raise


# Node-side helpers: the sensor rail, an I2C bus, a guarded EEPROM read, and ACK polling after a
# write. The sim boards' bus devices are fed from the rail their sensor_power pin switches.
I2C_SETUP = """
import machine, time
rail = machine.Pin({rail}, machine.Pin.OUT, value=1)
i2c = machine.I2C(0)
def read(addr, n):
    try:
        return i2c.readfrom_mem(0x50, addr, n, addrsize=16)
    except OSError as e:
        return 'OSError %d' % e.errno
def write(addr, data):
    i2c.writeto_mem(0x50, addr, data, addrsize=16)
    for _ in range(50):  # the chip NACKs during its write cycle (5 ms): ACK polling
        time.sleep_ms(1)
        if 0x50 in i2c.scan():
            return
"""


# ---- I2C ----------------------------------------------------------------------------------


def i2c_setup(board: str) -> str:
    return I2C_SETUP.format(rail=load_board(board)["pins"]["sensor_power"])


@pytest.mark.parametrize("board", BOARDS)
def test_eeprom_on_i2c0_is_found_written_and_read_back(boot, board):
    node = boot(board, *EEPROM)
    node.exec(i2c_setup(board))
    assert node.exec("print(i2c.scan())").strip() == "[80]"
    node.exec("write(0x0123, b'motekit')")
    assert node.exec("print(read(0x0123, 7))").strip() == "b'motekit'"
    assert node.exec("print(read(0x0000, 4))").strip() == "b'\\xff\\xff\\xff\\xff'"  # erased
    # The control channel reports the model where the node found it.
    devices = control(node, "status")["hardware"]["i2c"][0]["devices"]
    assert len(devices) == 1 and devices[0]["address"] == 0x50


def test_eeprom_without_a_model_is_absent(boot):
    node = boot("sim-esp32")
    node.exec(i2c_setup("sim-esp32"))
    assert node.exec("print(i2c.scan())").strip() == "[]"
    assert node.exec("print(read(0, 1))").strip() == "OSError 19"


@pytest.mark.parametrize("board", BOARDS)
def test_detached_eeprom_raises_the_ports_errno_until_faults_are_cleared(boot, board):
    node = boot(board, *EEPROM)
    node.exec(i2c_setup(board))
    node.exec("write(0x0010, b'abc')")
    control(node, "fault", target="i2c0:0x50", spec="detach")
    assert node.exec("print(read(0x0010, 3))").strip() == f"OSError {NACK_ERRNO[board]}"
    assert node.exec("print(i2c.scan())").strip() == "[]"
    control(node, "clear_faults")
    assert node.exec("print(i2c.scan())").strip() == "[80]"
    assert node.exec("print(read(0x0010, 3))").strip() == "b'abc'"  # contents kept


@pytest.mark.parametrize("board", BOARDS)
def test_bus_devices_answer_only_while_the_sensor_rail_is_on(boot, board):
    node = boot(board, *EEPROM)
    node.exec(i2c_setup(board))
    node.exec("write(0x0020, b'kept')")
    rail = control(node, "status")["hardware"]["sensor_rail"]
    assert rail == {"pin": load_board(board)["pins"]["sensor_power"], "on": True}
    node.exec("rail.off()")
    assert node.exec("print(i2c.scan())").strip() == "[]"
    assert node.exec("print(read(0x0020, 4))").strip() == f"OSError {NACK_ERRNO[board]}"
    node.exec("rail.on()")
    assert node.exec("print(read(0x0020, 4))").strip() == "b'kept'"  # EEPROM keeps its data
    # A reset releases every pin: the rail is off until the node drives it again.
    node.hard_reset()
    node.read_until(b">>> ")
    assert control(node, "status")["hardware"]["sensor_rail"]["on"] is False
    node.exec(i2c_setup(board))
    assert node.exec("print(i2c.scan())").strip() == "[80]"


def test_a_bus_error_traceback_shows_only_the_users_frames(boot):
    # On a board machine.I2C is C code: no frames of the shims in the traceback.
    node = boot("sim-esp32")
    node.write(b"import machine; machine.I2C(0).readfrom_mem(0x50, 0, 1)\r")
    out = node.read_until(b">>> ")
    assert out.endswith(
        b"\r\nTraceback (most recent call last):\r\n"
        b'  File "<stdin>", line 1, in <module>\r\n'
        b"OSError: [Errno 19] ENODEV\r\n>>> "
    ), out


def test_bad_fault_and_attach_requests_are_refused(boot):
    node = boot("sim-esp32", *EEPROM)
    with pytest.raises(SimError, match="detach"):  # the reply names the fault forms
        control(node, "fault", target="i2c0:0x50", spec="melt")
    with pytest.raises(SimError, match="at24c32"):  # and the known models
        control(node, "attach", model="nope", bus="i2c0")


# ---- ADC ----------------------------------------------------------------------------------


def battery_reading(node: Node) -> int:
    if node.board["port"] == "esp32":
        return int(node.exec("print(adc.read_uv())"))
    return int(node.exec("print(adc.read_u16())"))


@pytest.mark.parametrize("board", BOARDS)
def test_battery_adc_follows_the_supply_voltage(boot, board):
    node = boot(board)
    pins = load_board(board)["pins"]["battery_adc"]
    if board == "sim-esp32":
        # 11 dB: the range a divided Li-ion cell needs; read_uv() is calibrated microvolts.
        node.exec(f"import machine\nadc = machine.ADC(machine.Pin({pins['pin']}))")
        node.exec("adc.atten(machine.ADC.ATTN_11DB)")
    else:
        node.exec(f"import machine\nadc = machine.ADC({pins['pin']})")
    for supply_v in (3.0, 4.2):
        control(node, "env", supply_v=supply_v)
        pin_v = supply_v / pins["divider"]
        got = battery_reading(node)
        if board == "sim-esp32":
            assert got == pytest.approx(pin_v * 1e6, rel=0.01)
        else:
            # RP2040: 12-bit conversion of 0..3.3 V, scaled to 16 bits by read_u16().
            assert got == pytest.approx(pin_v / 3.3 * 65535, rel=0.01)


# ---- BLE ----------------------------------------------------------------------------------


def test_ble_advertisements_reach_a_listener_on_the_nodes_air(boot, tmp_path: Path, monkeypatch):
    # A private air: its registry under tmp_path, named for this test; `mote sim` inherits both.
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path))
    monkeypatch.setenv("MOTE_AIR", "test-ble")
    payload = b"\x02\x01\x06\x08\x09motekit"
    with AirListener(Air(), kinds=["ble-adv"]) as listener:
        node = boot("sim-esp32")
        node.exec(
            "import bluetooth\nble = bluetooth.BLE()\nble.active(True)\n"
            f"ble.gap_advertise(100_000, {payload!r})"
        )
        mac = node.exec("print(ble.config('mac')[1].hex())").strip()
        base = node.exec("import machine\nprint(machine.unique_id().hex())").strip()
    assert int(mac, 16) == (int(base, 16) + 2) % (1 << 48)  # ESP-IDF: Bluetooth = base MAC + 2
    with AirListener(Air(), kinds=["ble-adv"]) as listener:
        frames = [listener.recv(timeout_s=5) for _ in range(3)]
    assert all(f is not None for f in frames)
    node_id = control(node, "status")["node_id"]
    for f in frames:
        assert f.payload == payload
        assert f.src == node_id
        assert f.meta.addr == ":".join(mac[i : i + 2] for i in range(0, 12, 2)).upper()
        assert f.meta.adv_type == ADV_IND  # connectable by default
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})  # in order, no repeats
    # Repeated at the advertising interval on the simulated clock (100 ms; 20 ms is the floor).
    gaps = [b.t_sim_ms - a.t_sim_ms for a, b in zip(frames, frames[1:], strict=False)]
    assert all(90 <= g <= 1000 for g in gaps), gaps


def test_rp2_has_no_bluetooth_module(boot):
    node = boot("sim-rp2")
    out = node.exec(
        "try:\n    import bluetooth\n    print('imported')\n"
        "except ImportError as e:\n    print('ImportError', e)"
    )
    assert out.strip() == "ImportError no module named 'bluetooth'"
