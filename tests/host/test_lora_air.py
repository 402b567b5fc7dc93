"""The LoRa virtual boards on the virtual air: the real drivers (drivers/sx127x.py, sx126x.py)
in the node's MicroPython, the chip models in the supervisor, and a host AirListener playing
the gateway, all in this process (the supervisor is stepped by the test's loop)."""

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from host_tools.boards import load_board
from host_tools.lorawan.airtime import time_on_air_ms
from host_tools.sim import link
from host_tools.sim.air import Air, AirListener, Frame, LoraMeta
from host_tools.sim.commands import board_commands
from host_tools.sim.state import StateDir
from host_tools.sim.supervisor import VirtualBoard

REPO = Path(__file__).resolve().parents[2]
BOARDS = ("sim-esp32-sx1276", "sim-esp32-s3-sx1262")
UP_HZ = 868_100_000
RX2_HZ = 869_525_000

# The node's side: open the board's radio from its own pins (as motekit.radio does on a node),
# then the test's body. RESULT lines go back to the test as JSON.
PRELUDE = """
import sys
sys.path.append("/.drivers")
sys.path.append("/.firmware")
import json, time, _simctl
from motekit import radio
r = radio.open_radio({board})
buf = bytearray(255)
def result(**kv):
    print("RESULT " + json.dumps(kv))
def sim_ms():
    return _simctl.request("status")["sim_ms"]
def counters():
    for bus in _simctl.request("status")["hardware"]["spi"]:
        for dev in bus["devices"]:
            return dev["counters"]
def wait_until(t, ms):
    # Sleep until `ms` after ticks value t.
    left = ms - time.ticks_diff(time.ticks_ms(), t)
    if left > 0:
        time.sleep_ms(left)
"""


class Gateway:
    """Answers each uplink with the downlink `answer` gives, `delay_s` of real time later (a
    network server takes that long; the node's simulated clock does not wait for it)."""

    def __init__(self, answer: Callable[[Frame], dict[str, Any]], delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self._due: list[tuple[float, str, dict[str, Any]]] = []

    def heard(self, frame: Frame) -> None:
        self._due.append((time.monotonic() + self.delay_s, frame.src, self.answer(frame)))

    def poll(self, listener: AirListener) -> None:
        now = time.monotonic()
        for item in [d for d in self._due if d[0] <= now]:
            self._due.remove(item)
            _, node, kwargs = item
            listener.send_downlink(node, **kwargs)


@pytest.fixture
def air(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Air]:
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "air"))
    yield Air("lora-test", root=tmp_path / "air")


def run_node(
    tmp_path: Path,
    air: Air,
    board: str,
    body: str,
    gateway: Gateway | None = None,
    speed: float = 1.0,
    timeout_s: float = 30.0,
) -> tuple[list[dict[str, Any]], list[Frame], VirtualBoard]:
    """Run `body` on a fresh `board` on `air`; a listener hears every uplink and may answer.
    Returns the node's RESULTs, the frames heard, and the (closed) board."""
    definition = load_board(board)
    pins = {"spi": definition["pins"]["spi"], "radio": definition["pins"]["radio"]}
    script_dir = tmp_path / "script"
    script_dir.mkdir(exist_ok=True)
    (script_dir / "node.py").write_text(PRELUDE.format(board=repr({"pins": pins})) + body)
    out = bytearray()
    state = StateDir(None)
    vb = VirtualBoard(
        definition,
        state,
        baud=0,
        air=air.name,
        speed=speed,
        script="/.test/node.py",
        host_mounts=[
            (str(script_dir), "/.test"),
            (str(REPO / "drivers"), "/.drivers"),
            (str(REPO / "firmware"), "/.firmware"),
        ],
        log=lambda m: out.extend(f"[sim] {m}\n".encode()),
    )
    vb.output_tap = out.extend
    commands = board_commands(vb, lambda: None)
    vb.link_handlers[link.OP_CONTROL] = lambda req: json.dumps(
        commands.handle(json.loads(req.payload))
    ).encode()
    heard: list[Frame] = []
    with AirListener(air, kinds=["lora"], name="gw") as listener:
        vb.start()
        deadline = time.monotonic() + timeout_s
        try:
            while vb.script_exit is None and time.monotonic() < deadline:
                vb.step(0.002)
                while (frame := listener.recv(timeout_s=0)) is not None:
                    heard.append(frame)
                    if gateway is not None:
                        gateway.heard(frame)
                if gateway is not None:
                    gateway.poll(listener)
        finally:
            vb.close()
            shutil.rmtree(state.path, ignore_errors=True)
    text = out.decode(errors="replace")
    assert vb.script_exit == 0, text
    results = [json.loads(line[7:]) for line in text.splitlines() if line.startswith("RESULT ")]
    return results, heard, vb


@pytest.mark.parametrize("board", BOARDS)
def test_an_uplink_is_heard_with_its_meta_at_the_end_of_its_time_on_air(
    tmp_path: Path, air: Air, board: str
) -> None:
    body = """
_simctl.request("lora_link", rssi_dbm=-93.5, snr_db=4.25)
r.configure(868_100_000, 9, 125_000, cr=2)
t0 = sim_ms()
r.send(b"\\x40hello", 2000)
result(t0=t0, t1=sim_ms())
"""
    results, heard, vb = run_node(tmp_path, air, board, body)
    (res,) = results
    (frame,) = heard
    meta = frame.meta
    assert isinstance(meta, LoraMeta)
    assert frame.src == vb.node_id and frame.payload == b"\x40hello"
    assert (meta.freq_hz, meta.sf, meta.bw_hz, meta.cr, meta.dir) == (
        UP_HZ,
        9,
        125_000,
        "4/6",
        "up",
    )
    assert (meta.rssi_dbm, meta.snr_db) == (-93.5, 4.25)
    toa = time_on_air_ms(6, sf=9, bw_hz=125_000, cr=2)
    # t_sim_ms is the end of the transmission (TxDone), in the node's simulated time.
    assert frame.t_sim_ms is not None
    assert res["t0"] + toa - 1 <= frame.t_sim_ms <= res["t1"]


@pytest.mark.parametrize("board", BOARDS)
def test_sf12_takes_its_time_on_air_in_simulated_time(tmp_path: Path, air: Air, board: str) -> None:
    body = """
r.configure(868_100_000, 12, 125_000)
t0, k0 = sim_ms(), time.ticks_ms()
r.send(bytes(51), 5000)
result(t0=t0, ticks=time.ticks_diff(time.ticks_ms(), k0))
"""
    results, heard, _ = run_node(tmp_path, air, board, body, speed=500)
    (res,) = results
    (frame,) = heard
    toa = time_on_air_ms(51, sf=12, bw_hz=125_000)  # 2466 ms
    assert toa > 2400
    # At least its time on air; the rest is the driver's SPI setup, slower on a loaded host.
    assert frame.t_sim_ms is not None and toa - 1 <= frame.t_sim_ms - res["t0"] < toa + 1000
    assert toa - 1 <= res["ticks"] < toa + 1000  # the node waited that long, in its time


# The node's Class A exchange: an uplink, then an RX window around RX1, one second after its
# end, on the uplink's channel with inverted IQ, opened `early` ms before and lasting `window`
# ms, as a stack allows for its timing error (a MicroPython GC pause, a loaded host): the radio
# must be listening before the preamble has passed. The gateway answers on `freq`, `delay` ms
# after the uplink's t_sim_ms.
EXCHANGE = """
for case in {cases}:
    r.configure(868_100_000, 7, 125_000)
    r.send(case.encode(), 2000)
    t_end = time.ticks_ms()
    r.configure(868_100_000, 7, 125_000, iq_invert={iq})
    wait_until(t_end, 1000 - {early})
    got = r.recv(buf, {window})
    result(case=case, got=None if got is None else [bytes(buf[:got[0]]).decode(), got[1], got[2]])
"""
# For a window of [600, 1300] ms after the uplink's end: tolerates a node 400 ms late.
ANSWERS = {
    "rx1": (UP_HZ, 1000),  # in the window
    "early": (UP_HZ, 500),  # its preamble is over before the window opens
    "late": (UP_HZ, 1700),  # after the window's timeout
    "freq": (868_300_000, 1000),  # another channel
}
RX1 = ["dn-rx1", -88, 6.5]


def answer(frame: Frame) -> dict[str, Any]:
    case = frame.payload.decode()
    freq, delay = ANSWERS[case]
    assert frame.t_sim_ms is not None
    return {
        "payload": b"dn-" + frame.payload,
        "freq_hz": freq,
        "sf": 7,
        "rssi_dbm": -88.0,
        "snr_db": 6.5,
        "t_sim_ms": frame.t_sim_ms + delay,
    }


@pytest.mark.parametrize("board", BOARDS)
def test_a_downlink_for_the_rx_window_is_received_and_others_are_not(
    tmp_path: Path, air: Air, board: str
) -> None:
    # The gateway answers at once: each downlink is held by the model until its time.
    body = EXCHANGE.format(cases=list(ANSWERS), iq=True, early=400, window=700)
    results, heard, _ = run_node(tmp_path, air, board, body, gateway=Gateway(answer), speed=20)
    got = {r["case"]: r["got"] for r in results}
    assert got == {"rx1": RX1, "early": None, "late": None, "freq": None}
    assert len(heard) == 4


@pytest.mark.parametrize("board", BOARDS)
def test_a_downlink_that_arrives_after_its_window_in_simulated_time_is_still_received(
    tmp_path: Path, air: Air, board: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 1000x the node's second before RX1 passes in a millisecond; its 120 ms window ends
    # (in simulated time) before the gateway's answer, 0.2 s of real time later, arrives. The
    # model waits for the air (MOTE_AIR_LATENCY_S, raised here for a loaded host) and receives
    # what fit the window. test_sx127x_model.py covers the rule itself.
    monkeypatch.setenv("MOTE_AIR_LATENCY_S", "1.5")
    body = EXCHANGE.format(cases=["rx1"], iq=True, early=100, window=120)
    gateway = Gateway(answer, delay_s=0.2)
    results, _, _ = run_node(tmp_path, air, board, body, gateway=gateway, speed=1000)
    assert results == [{"case": "rx1", "got": RX1}]


@pytest.mark.parametrize("board", BOARDS)
def test_a_receiver_with_normal_iq_does_not_hear_a_downlink(
    tmp_path: Path, air: Air, board: str
) -> None:
    body = EXCHANGE.format(cases=["rx1"], iq=False, early=400, window=700)
    results, _, _ = run_node(tmp_path, air, board, body, gateway=Gateway(answer), speed=20)
    assert results == [{"case": "rx1", "got": None}]


@pytest.mark.parametrize("board", BOARDS)
def test_the_link_sets_rssi_snr_and_drops_frames(tmp_path: Path, air: Air, board: str) -> None:
    body = """
_simctl.request("lora_link", loss=0.5, seed=7)
r.configure(868_100_000, 7, 125_000)
for i in range(20):
    r.send(bytes([i]), 1000)
lost = counters()["tx_lost"]
_simctl.request("lora_link", loss=0.0, out_of_range=True)
r.send(b"out", 1000)
result(lost=lost, aired=counters()["tx_aired"])
"""
    results, heard, _ = run_node(tmp_path, air, board, body, speed=50)
    (res,) = results
    assert 0 < res["lost"] < 20
    assert len(heard) == 20 - res["lost"] == res["aired"]
    # Which frames got through is the seeded RNG's: the same on both chips' models.
    assert [f.payload[0] for f in heard] == KEPT_WITH_SEED_7


def _kept_with_seed(seed: int, n: int, loss: float) -> list[int]:
    import random

    rng = random.Random(seed)
    return [i for i in range(n) if not rng.random() < loss]


KEPT_WITH_SEED_7 = _kept_with_seed(7, 20, 0.5)


def test_an_empty_window_waits_for_the_air_only_when_a_gateway_listens(air: Air) -> None:
    from host_tools.sim.air import AirNode
    from host_tools.sim.clock import SimClock
    from host_tools.sim.peripherals.models.sx127x import Sx127x
    from host_tools.sim.radio_link import AIR_LATENCY_S, LoraLink

    model = Sx127x(SimClock().now_ms, cs=18)
    assert LoraLink(model, None).latency_s == 0.0  # no air: nobody can answer
    with AirNode(air, "node-x") as node:
        lora = LoraLink(model, node)
        with AirListener(air, kinds=["ble-adv"]):
            assert lora.latency_s == 0.0  # a BLE scanner sends no downlinks
        with AirListener(air, kinds=["lora"]):
            node.air.peers(refresh=True)
            assert lora.latency_s == AIR_LATENCY_S


# --- board to board: a gateway-role board's downlinks, continuous reception -------------------


class HandClock:
    """A board's simulated clock, moved by hand: every board has its own."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _deliver(link: Any, node: Any, want: int = 1) -> list[Frame]:
    # Frames the air brought this board's AirNode, handed to its radio as the supervisor does.
    import select

    got: list[Frame] = []
    deadline = time.monotonic() + 2.0
    while len(got) < want and time.monotonic() < deadline:
        select.select([node.fileno()], [], [], 0.05)
        while (frame := node.recv_nowait()) is not None:
            link.deliver(frame)
            got.append(frame)
    return got


def test_a_gateway_boards_downlink_lands_in_the_nodes_window_on_the_nodes_clock(air: Air) -> None:
    from host_tools.sim.air import AirNode
    from host_tools.sim.peripherals.models.lora import Modem
    from host_tools.sim.peripherals.models.sx127x import Sx127x
    from host_tools.sim.radio_link import BOARD_LATENCY_S, LoraLink

    gw_clock, nd_clock = HandClock(500.0), HandClock(50_000.0)  # two boards, two clocks
    gw, nd = Sx127x(gw_clock, cs=18), Sx127x(nd_clock, cs=18)
    up = Modem(UP_HZ, 7, 125_000)
    down = Modem(UP_HZ, 7, 125_000, iq_invert=True)
    with (
        AirNode(air, "gw") as gw_node,
        AirNode(air, "nd") as nd_node,
        AirListener(air, kinds=["lora"], name="log") as listener,
    ):
        gw_link, nd_link = LoraLink(gw, gw_node), LoraLink(nd, nd_node)
        gw.core.start_rx(up, None, single=False)  # the gateway listens on its channel
        assert nd_link.board_wait_s(1020.0) == 0.0  # no uplink yet
        end = nd.core.start_tx(up, b"\x40uplink")
        nd_clock.now = end
        assert nd.core.poll_tx(end) == "done"  # on the air at its end
        # A gateway board listens on that uplink's channel: an empty window waits for its
        # answer in real time, as long as the window is after the uplink.
        assert nd_link.board_wait_s(1020.0) == pytest.approx(1.02 + BOARD_LATENCY_S)
        gw_clock.now = 1000.0  # the uplink arrives when the gateway's clock says 1000
        assert [f.payload for f in _deliver(gw_link, gw_node)] == [b"\x40uplink"]
        assert gw.core.poll_rx(gw_clock.now) == "done"
        assert gw.core.rx_packet is not None and gw.core.rx_packet.payload == b"\x40uplink"
        # RX1: one second after RxDone on the gateway's clock; on the air as it starts.
        gw_clock.now = 2000.0
        sent_at = time.monotonic()
        gw.core.start_tx(down, b"\x60accept")
        (frame,) = _deliver(nd_link, nd_node)
        assert isinstance(frame.meta, LoraMeta) and frame.t_sim_ms == 2000
        assert frame.meta.dir == "down" and frame.meta.dst is None
        assert frame.meta.t_sim_of == (("nd", round(end + 1000)),)  # RX1 on the node's clock
        # The node's window opens 20 ms early; its clock has since run far ahead (it slept).
        nd_clock.now = end + 980
        nd.core.start_rx(down, 60.0, single=True)
        nd_clock.now = end + 9000
        # Complete once the gateway's TX has ended in real time too (it transmits for its time
        # on air at the wall-clock rate): the node cannot answer before it is off the air.
        while nd.core.poll_rx(nd_clock.now) != "done":
            assert time.monotonic() < sent_at + 2.0
        down_toa = time_on_air_ms(7, sf=7, bw_hz=125_000, crc=False)  # downlinks: no CRC
        assert time.monotonic() - sent_at >= down_toa / 1000
        heard = nd.core.rx_packet
        assert heard is not None and heard.payload == b"\x60accept"
        assert heard.start_ms == pytest.approx(end + 1000, abs=1)
        # In the window, but on another channel, or with normal IQ: not heard.
        for modem in (Modem(868_300_000, 7, 125_000, iq_invert=True), up):
            gw_clock.now += 5000
            gw.core.start_tx(down, b"\x60again")
            _deliver(nd_link, nd_node)
            nd_clock.now += 5000
            nd.core.start_rx(modem, 60.0, single=True)
            nd.core.poll_rx(nd_clock.now)
            assert nd.core.rx_packet is heard  # nothing new
        logged = listener.recv(0.2)
        assert logged is not None and logged.payload == b"\x40uplink"  # no downlinks there
        assert listener.recv(0.1) is None


def test_continuous_rx_hears_a_frame_starting_as_the_last_ended_however_late_it_is_polled() -> None:
    from host_tools.sim.peripherals.models.lora import Heard, Modem
    from host_tools.sim.peripherals.models.sx127x import Sx127x

    clock = HandClock(1000.0)
    core = Sx127x(clock, cs=18).core
    modem = Modem(UP_HZ, 7, 125_000)
    core.start_rx(modem, None, single=False)
    meta = LoraMeta(UP_HZ, 7)
    toa = time_on_air_ms(4, sf=7, bw_hz=125_000)
    first = Heard(b"\x40one", meta, 1010.0, 1010.0 + toa, crc=True)
    second = Heard(b"\x40two", meta, first.end_ms, first.end_ms + toa, crc=True)
    core.hear(first)
    core.hear(second)
    # Polled 20 ms (20 symbols) after the first ended: the second's preamble is long past, but
    # the chip has listened since the first's RxDone.
    clock.now = first.end_ms + 20
    assert core.poll_rx(clock.now) == "done" and core.rx_packet is first
    assert core.poll_rx(clock.now) is None  # the second is still on the air
    clock.now = second.end_ms
    assert core.poll_rx(clock.now) == "done" and core.rx_packet is second
    assert core.receiving  # and still listening


def test_a_board_hears_an_uplink_for_the_real_time_its_sender_took_to_transmit_it() -> None:
    # A node running faster than the wall clock (it sleeps while it waits for TxDone) sends an
    # SF12 frame of 1.3 s in a few real milliseconds: a gateway board that has listened for
    # only 0.2 s (it was transmitting before) still hears it, but not one that just opened.
    from host_tools.sim.peripherals.models.lora import Modem
    from host_tools.sim.peripherals.models.sx127x import Sx127x

    toa = time_on_air_ms(20, sf=12, bw_hz=125_000)
    assert toa > 1000
    for listened_ms, t_wall_start, heard in (
        (200.0, 99.95, True),  # 50 ms of real TX
        (200.0, None, False),  # no t_wall_start: on the air for its whole time on air
        (20.0, 99.6, False),  # 400 ms of real TX: opened after the preamble had passed
    ):
        clock = HandClock(10_000.0)
        core = Sx127x(clock, cs=18).core
        core.start_rx(Modem(UP_HZ, 12, 125_000, ldro=True), None, single=False)
        meta = LoraMeta(UP_HZ, 12, t_wall_start=t_wall_start)
        clock.now += listened_ms
        core.receive(Frame("node", bytes(20), meta, 777, t_wall=100.0))
        got = core.poll_rx(clock.now)
        assert (got == "done") is heard, (listened_ms, t_wall_start)
        if heard:
            assert core.rx_packet is not None and core.rx_packet.end_ms == clock.now
