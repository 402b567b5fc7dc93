"""The board's LoRa radio through the deployed firmware (motekit.radio and the chip's driver).

A bench needs no gateway: the chip must answer its identity check, a transmission must take at
least its time on air and end with TxDone, an RX window with nobody sending must end empty,
and the radio must come back from sleep. On a virtual LoRa board the frame must also be heard
on the virtual air. Boards without a radio skip.

    pytest hil_tests/test_lora_radio.py --board sim-esp32-sx1276          # virtual, fresh board
    pytest hil_tests/test_lora_radio.py --board sim-esp32-s3-sx1262
    pytest hil_tests/test_lora_radio.py --port /dev/ttyUSB0 --board ttgo-lora32-v1

On a bench the radio transmits for real: at the lowest power, on MOTE_LORA_HZ (default 868.1
MHz, an EU868 channel; use a frequency your region allows, e.g. 903900000 for US915), with an
antenna or a dummy load connected.
"""

import os
from typing import Any

import pytest

from host_tools.hil.node import Node
from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.sim.air import Air, AirListener, Frame, LoraMeta

FREQ_HZ = int(os.environ.get("MOTE_LORA_HZ", "868100000"))
PAYLOAD = b"motekit-hil"
CLASSES = {"sx1276": "SX127x", "sx1262": "SX126x"}
LOWEST_DBM = {"sx1276": 2, "sx1262": -9}


@pytest.fixture
def lora_node(node: Node, board: dict[str, Any]) -> Node:
    if "lora" not in board["radios"]:
        pytest.skip(f"{board['name']} has no LoRa radio (board.json radios)")
    node.install_firmware()
    node.interrupt_to_repl()
    return node


def open_radio(node: Node, chip: str) -> None:
    node.exec(
        "import json, time\n"
        "from motekit import radio\n"
        "r = radio.open_radio(json.load(open('/board.json')))\n"
        f"r.configure({FREQ_HZ}, 7, 125000, power_dbm={LOWEST_DBM[chip]})\n"
        "buf = bytearray(255)\n"
    )


def test_the_radio_answers_transmits_for_its_time_on_air_listens_and_sleeps(
    lora_node: Node, board: dict[str, Any]
) -> None:
    # One test, so that the firmware is deployed once (20 s at 115200 baud).
    chip = board["pins"]["radio"]["chip"]
    listener = None
    if lora_node.sim is not None:
        listener = AirListener(Air(), kinds=["lora"], name="hil-lora")
    try:
        open_radio(lora_node, chip)
        assert lora_node.eval("type(r).__name__") == CLASSES[chip]
        lora_node.exec(
            f"t0 = time.ticks_ms()\nr.send({PAYLOAD!r}, 2000)\n"
            "took = time.ticks_diff(time.ticks_ms(), t0)\n"
        )
        took = lora_node.eval("took")
        # TxDone cannot come before the packet has been on air for its whole time.
        assert took >= time_on_air_ms(len(PAYLOAD), sf=7, bw_hz=125_000) - 1
        lora_node.exec("r.sleep()")
        lora_node.exec(f"r.send({PAYLOAD!r}, 2000)")  # wakes from sleep, configuration kept
        # An RX window with inverted IQ, as a node listens for downlinks: nobody is sending.
        lora_node.exec(f"r.configure({FREQ_HZ}, 12, 125000, iq_invert=True)")
        assert lora_node.eval("r.recv(buf, 100)") is None
        lora_node.exec("r.sleep()")
        if lora_node.sim is not None:
            assert listener is not None
            status = lora_node.sim.control.request("status")
            mine: list[Frame] = []
            while len(mine) < 2:
                frame = listener.recv(timeout_s=5.0)
                assert frame is not None, f"heard {mine} from {status['node_id']}"
                if frame.src == status["node_id"]:
                    mine.append(frame)
            for f in mine:
                assert isinstance(f.meta, LoraMeta) and f.payload == PAYLOAD
                assert (f.meta.freq_hz, f.meta.sf, f.meta.dir) == (FREQ_HZ, 7, "up")
            (spi,) = status["hardware"]["spi"]
            assert spi["devices"][0]["mode"] in ("sleep", "lora-sleep")
    finally:
        if listener is not None:
            listener.close()
