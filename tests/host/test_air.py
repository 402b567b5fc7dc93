"""The virtual air: frames between AirNodes and AirListeners on a private loopback air.

Every test uses its own air under tmp_path, so nothing touches a shared registry. Absence is
checked by ordering, not by waiting: datagrams from one socket to another over loopback arrive in
order, so "B's own frame came first" proves the earlier frame was not delivered to B.
"""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from host_tools.cli.air import NoFramesError, air
from host_tools.errors import ConfigError
from host_tools.sim.air import (
    ADV_NONCONN_IND,
    Air,
    AirError,
    AirFrameError,
    AirListener,
    AirNode,
    BleAdvMeta,
    Frame,
    LoraMeta,
    default_root,
)

WAIT_S = 2.0
EU868 = 868_100_000


@pytest.fixture
def test_air(tmp_path: Path) -> Air:
    return Air("test", root=tmp_path)


def ble_frame(src: str, payload: bytes, t_sim_ms: int = 1000) -> Frame:
    meta = BleAdvMeta("AA:BB:CC:DD:EE:01", adv_type=ADV_NONCONN_IND, rssi_dbm=-55)
    return Frame(src, payload, meta, t_sim_ms)


def lora_up(src: str, payload: bytes, sf: int = 7, t_sim_ms: int = 2000) -> Frame:
    return Frame(src, payload, LoraMeta(EU868, sf, rssi_dbm=-97.5, snr_db=6.25), t_sim_ms)


def node_recv(node: AirNode, timeout_s: float = WAIT_S) -> Frame | None:
    """What a supervisor's select loop does: wait on fileno(), then poll."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        frame = node.recv_nowait()
        if frame is not None:
            return frame
        select.select([node], [], [], remaining)
    return node.recv_nowait()


def raw_send(port: int, datagram: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, ("127.0.0.1", port))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


# --- frames ------------------------------------------------------------------------------------


def test_frame_round_trips_with_every_header_field() -> None:
    frame = Frame("node-1", bytes(range(31)), BleAdvMeta("AA:BB:CC:DD:EE:01", 1, 3, -70), 5, 9, 1.5)
    datagram = frame.encode()
    head, _, payload = datagram.partition(b"\n")
    assert json.loads(head) == {
        "v": 1,
        "kind": "ble-adv",
        "src": "node-1",
        "seq": 9,
        "t_sim_ms": 5,
        "t_wall": 1.5,
        "addr": "AA:BB:CC:DD:EE:01",
        "addr_type": 1,
        "adv_type": 3,
        "rssi_dbm": -70,
    }
    assert payload == bytes(range(31))
    assert Frame.decode(datagram) == frame

    down = Frame("gw", b"\n\x00" * 10, LoraMeta(EU868, 9, dir="down", dst="node-2"), None)
    decoded = Frame.decode(down.encode())
    assert decoded == down
    assert decoded.kind == "lora"
    assert decoded.payload == b"\n\x00" * 10  # newlines in the payload survive


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (ble_frame("n", bytes(32)), "ble-adv payload is 32 bytes, limit 31"),
        (lora_up("n", bytes(256)), "lora payload is 256 bytes, limit 255"),
        (Frame("n", b"", BleAdvMeta("aa:bb:cc:dd:ee:01")), "upper-case MAC"),
        (Frame("n", b"", LoraMeta(EU868, 13)), "sf 13"),
        (Frame("n", b"", LoraMeta(EU868, 7, bw_hz=125)), "bw_hz 125 "),
        (Frame("n", b"", LoraMeta(EU868, 7, dir="down", dst="a b")), "dst 'a b'"),
        (Frame("n", b"", LoraMeta(EU868, 7, t_sim_of=(("a", 1),))), "not a board downlink"),
        (
            Frame("n", b"", LoraMeta(EU868, 7, dir="down", t_sim_of=(("a", -1),))),
            r"t_sim_of\['a'\] -1",
        ),
        (
            Frame(
                "n",
                b"",
                LoraMeta(EU868, 7, dir="down", t_sim_of=tuple((f"n{i}", 1) for i in range(17))),
            ),
            "more than 16",
        ),
        (Frame("n", b"", LoraMeta(EU868, 7, dst="x")), "dst 'x' on an uplink"),
        (Frame("has space", b"", LoraMeta(EU868, 7)), "src 'has space'"),
        (Frame("n", bytearray(1), LoraMeta(EU868, 7)), "payload is bytearray"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_invalid_frames(frame: Frame, message: str) -> None:
    with pytest.raises(AirFrameError, match=message.replace("(", r"\(")):
        frame.encode()


def test_payload_limits_are_inclusive() -> None:
    assert len(ble_frame("n", bytes(31)).encode().partition(b"\n")[2]) == 31
    assert len(lora_up("n", bytes(255)).encode().partition(b"\n")[2]) == 255


_DROP = object()


def _header(**changes: object) -> bytes:
    """A valid lora header with some fields changed (or dropped, with _DROP)."""
    head = json.loads(lora_up("n", b"").encode().partition(b"\n")[0])
    head.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del head[key]
    return json.dumps(head).encode()


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (b"no newline at all", "no header line"),
        (b"{not json\nxx", "header is not JSON"),
        (b"[1, 2]\n", "header is a JSON list"),
        (b"[" * 1000 + b"\n", "nested too deeply"),
        (b" " * 1023 + b"{}\n", "header is 1025 bytes, limit 1024"),
        (b"\xff\xfe\n", "header is not JSON"),
        (_header(v=2) + b"\n", "format version 2 is not supported"),
        (_header(v=True) + b"\n", "format version True"),
        (_header(kind="wifi") + b"\n", "unknown kind 'wifi'"),
        (_header(seq=_DROP, sf=_DROP) + b"\n", "lora header lacks seq, sf"),
        (_header(t_wall=float("nan")) + b"\n", "NaN is not a number"),
        (_header() + b"\n" + bytes(256), "lora payload is 256 bytes"),
        (_header() + b"\n" + bytes(5000), "datagram is 5"),
    ],
)
def test_decode_explains_malformed_datagrams(datagram: bytes, message: str) -> None:
    with pytest.raises(AirFrameError, match=message):
        Frame.decode(datagram)


# --- registry ----------------------------------------------------------------------------------


def test_air_name_and_root_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTE_AIR", "bench7")
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path / "airs"))
    assert default_root() == tmp_path / "airs"
    assert Air().path == tmp_path / "airs" / "bench7"
    assert Air("other").path == tmp_path / "airs" / "other"
    monkeypatch.delenv("MOTE_AIR_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert default_root() == tmp_path / "run" / "motekit-air"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_root() == Path(f"/tmp/motekit-air-{os.getuid()}")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".", "x" * 65, "sp ace"])
def test_air_refuses_names_that_are_not_one_path_component(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        Air(name, root=tmp_path)


def test_registration_holds_the_contract_fields_and_close_removes_it(test_air: Air) -> None:
    node = AirNode(test_air, "node-1")
    entry_path = test_air.path / f"{node.port}.json"
    assert json.loads(entry_path.read_text()) == {
        "port": node.port,
        "pid": os.getpid(),
        "role": "node",
        "node_id": "node-1",
        "channels": ["lora-down", "lora-down:node-1"],
    }
    with AirListener(test_air, kinds=["ble-adv"]) as listener:
        assert [(p.port, p.role) for p in test_air.peers()] == sorted(
            [(node.port, "node"), (listener.port, "listener")]
        )
    node.close()
    node.close()  # idempotent
    assert not entry_path.exists()
    assert test_air.peers() == []


def test_stale_entries_are_purged_on_read(test_air: Air) -> None:
    pid = dead_pid()
    stale = test_air.path / "40000.json"
    entry = {"port": 40000, "pid": pid, "role": "node", "node_id": "ghost", "channels": []}
    stale.write_text(json.dumps(entry))
    with AirNode(test_air, "node-1") as node:
        assert [p.port for p in test_air.peers(refresh=True)] == [node.port]
        assert not stale.exists()
        assert test_air.node_ids() == ["node-1"]


def test_a_node_id_can_be_on_an_air_only_once(test_air: Air) -> None:
    with AirNode(test_air, "node-1"), pytest.raises(AirError, match="already on air 'test'"):
        AirNode(test_air, "node-1")


def test_senders_see_participants_that_join_after_the_registry_was_cached(test_air: Air) -> None:
    with AirNode(test_air, "a") as a:
        a.send(lora_up("a", b"nobody"))  # fills a's registry cache
        # Another Air object, as in another process: only the directory tells `a` it joined.
        with AirListener(Air(test_air.name, root=test_air.path.parent)) as listener:
            a.send(lora_up("a", b"late joiner"))
            frame = listener.recv(WAIT_S)
    assert frame is not None and frame.payload == b"late joiner"


def test_a_registry_change_within_one_mtime_tick_is_not_missed(test_air: Air) -> None:
    # Directory mtimes come from a coarse clock: two changes can share one. Pin the mtime to
    # show the sender re-lists a recently changed directory even when its mtime did not move.
    with AirNode(test_air, "a") as a:
        tick = time.time_ns() - 100_000_000
        os.utime(test_air.path, ns=(tick, tick))
        a.send(lora_up("a", b"nobody"))  # caches the registry at mtime `tick`
        with AirListener(Air(test_air.name, root=test_air.path.parent)) as listener:
            os.utime(test_air.path, ns=(tick, tick))
            a.send(lora_up("a", b"same tick"))
            frame = listener.recv(WAIT_S)
    assert frame is not None and frame.payload == b"same tick"


def test_an_old_registry_is_cached_until_its_mtime_moves(test_air: Air) -> None:
    with AirNode(test_air, "a") as a:
        old = time.time_ns() - 10_000_000_000
        os.utime(test_air.path, ns=(old, old))
        a.send(lora_up("a", b"nobody"))  # caches a listing that is not racy
        with AirListener(Air(test_air.name, root=test_air.path.parent)) as listener:
            less_old = old + 5_000_000_000
            os.utime(test_air.path, ns=(less_old, less_old))
            a.send(lora_up("a", b"seen by mtime"))
            frame = listener.recv(WAIT_S)
    assert frame is not None and frame.payload == b"seen by mtime"


def test_senders_route_by_the_channels_a_registration_declares(test_air: Air) -> None:
    # A participant is just a loopback UDP port plus a registry file: here a bare socket.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bare:
        bare.bind(("127.0.0.1", 0))
        bare.settimeout(WAIT_S)
        port = bare.getsockname()[1]
        entry = {
            "port": port,
            "pid": os.getpid(),
            "role": "node",
            "node_id": "bare",
            "channels": ["lora-down:bare", f"lora-up:{EU868}:8"],
        }
        (test_air.path / f"{port}.json").write_text(json.dumps(entry))
        with AirNode(test_air, "a") as a, AirListener(test_air, name="gw") as gateway:
            gateway.send_downlink("a", b"not for bare", freq_hz=EU868, sf=8)
            a.send(ble_frame("a", b"ble: not wanted"))
            a.send(lora_up("a", b"sf7: not wanted", sf=7))
            a.send(lora_up("a", b"sf8", sf=8))
            gateway.send_downlink("bare", b"for bare", freq_hz=EU868, sf=8)
            received = [Frame.decode(bare.recv(2048)).payload for _ in range(2)]
    assert received == [b"sf8", b"for bare"]


# --- delivery ----------------------------------------------------------------------------------


def test_frames_from_two_nodes_reach_the_listener(test_air: Air) -> None:
    with (
        AirNode(test_air, "node-a") as a,
        AirNode(test_air, "node-b") as b,
        AirListener(test_air) as listener,
    ):
        before = time.time()
        sent_a = a.send(ble_frame("node-a", b"\x02\x01\x06\x05\x16\xd2\xfc\x40\x01", 1234))
        a.send(ble_frame("node-a", b"\x02\x01\x06", 1300))
        sent_b = b.send(lora_up("node-b", b"\x40" + bytes(20), t_sim_ms=777))
        got = [listener.recv(WAIT_S) for _ in range(3)]
    assert all(f is not None for f in got)
    by_src: dict[str, list[Frame]] = {}
    for frame in got:
        assert frame is not None
        by_src.setdefault(frame.src, []).append(frame)
    first_a, second_a = by_src["node-a"]
    assert first_a == sent_a
    assert (first_a.seq, second_a.seq) == (0, 1)
    assert first_a.kind == "ble-adv"
    assert first_a.t_sim_ms == 1234
    assert first_a.payload == b"\x02\x01\x06\x05\x16\xd2\xfc\x40\x01"
    assert first_a.meta == BleAdvMeta("AA:BB:CC:DD:EE:01", 0, ADV_NONCONN_IND, -55)
    assert before <= first_a.t_wall <= time.time()
    (lora,) = by_src["node-b"]
    assert lora == sent_b
    assert lora.meta == LoraMeta(EU868, 7, 125_000, "4/5", -97.5, 6.25, "up", None)
    assert lora.payload == b"\x40" + bytes(20)
    assert lora.t_sim_ms == 777


def test_a_listener_gets_only_its_kinds(test_air: Air) -> None:
    with AirNode(test_air, "n") as node, AirListener(test_air, kinds=["ble-adv"]) as listener:
        node.send(lora_up("n", b"lora first"))
        node.send(ble_frame("n", b"ble second"))
        frame = listener.recv(WAIT_S)
        assert frame is not None and frame.payload == b"ble second"
        assert listener.recv(0) is None


def test_a_downlink_reaches_only_its_node(test_air: Air) -> None:
    with (
        AirNode(test_air, "node-a") as a,
        AirNode(test_air, "node-b") as b,
        AirListener(test_air, kinds=["lora"], name="gw") as gateway,
    ):
        sent = gateway.send_downlink("node-a", b"for a", freq_hz=869_525_000, sf=9, t_sim_ms=42)
        gateway.send_downlink("node-b", b"for b", freq_hz=869_525_000, sf=9)
        got_a, got_b = node_recv(a), node_recv(b)
        assert got_a == sent
        assert got_a.src == "gw" and got_a.t_sim_ms == 42
        assert got_a.meta == LoraMeta(869_525_000, 9, 125_000, "4/5", -60.0, 9.0, "down", "node-a")
        assert got_b is not None and got_b.payload == b"for b"  # "for a" would have come first
        assert a.recv_nowait() is None and b.recv_nowait() is None
        # The node's own filter holds even when a datagram reaches it anyway.
        for dst, payload in (("node-a", b"misrouted"), ("node-b", b"routed")):
            raw_send(b.port, Frame("gw", payload, LoraMeta(EU868, 7, dir="down", dst=dst)).encode())
        routed = node_recv(b)
        assert routed is not None and routed.payload == b"routed"
        assert gateway.recv(0) is None  # listeners do not hear downlinks


def test_a_board_downlink_reaches_every_other_node_and_no_listener(test_air: Air) -> None:
    # A gateway-role board's radio transmits with inverted IQ: the frame names no node (dst
    # null) and maps its start to the clocks of the nodes that board heard (t_sim_of).
    meta = LoraMeta(EU868, 7, dir="down", t_sim_of=(("a", 5000), ("b", 12)))
    with (
        AirNode(test_air, "gw") as gw,
        AirNode(test_air, "a") as a,
        AirNode(test_air, "b") as b,
        AirListener(test_air, kinds=["lora"], name="log") as listener,
    ):
        sent = gw.send(Frame("gw", b"\x60answer", meta, 777))
        head = json.loads(sent.encode().partition(b"\n")[0])
        assert head["dst"] is None and head["t_sim_of"] == {"a": 5000, "b": 12}
        got_a, got_b = node_recv(a), node_recv(b)
        assert got_a == sent and got_b == sent
        assert isinstance(got_a.meta, LoraMeta) and got_a.t_sim_ms == 777
        assert got_a.meta.t_sim_of == (("a", 5000), ("b", 12))
        assert gw.recv_nowait() is None  # a node does not hear itself
        gw.send(lora_up("gw", b"marker"))
        frame = listener.recv(WAIT_S)
        assert frame is not None and frame.payload == b"marker"  # the downlink never came
    # Uplinks and addressed downlinks carry no t_sim_of field at all.
    assert "t_sim_of" not in json.loads(lora_up("n", b"").encode().partition(b"\n")[0])


def test_nodes_hear_uplinks_on_their_rx_channel_only(test_air: Air) -> None:
    with AirNode(test_air, "a") as a, AirNode(test_air, "b") as b:
        a.send(lora_up("a", b"before rx"))  # b is not receiving yet; a caches the registry
        b.set_lora_rx(EU868, 7)
        a.send(lora_up("a", b"sf9", sf=9))
        a.send(lora_up("a", b"sf7", sf=7))
        frame = node_recv(b)
        assert frame is not None and frame.payload == b"sf7"
        assert b.recv_nowait() is None
        assert a.recv_nowait() is None  # a node does not hear itself
        # The node's own filter holds even when a datagram reaches it anyway.
        raw_send(b.port, lora_up("a", b"raw sf9", sf=9).encode())
        raw_send(b.port, lora_up("a", b"raw sf7", sf=7).encode())
        frame = node_recv(b)
        assert frame is not None and frame.payload == b"raw sf7"
        b.set_lora_rx(None)
        a.send(lora_up("a", b"after rx"))
        b.send(lora_up("b", b"marker"))  # nothing for b to hear: its queue stays empty
        assert node_recv(b, 0.2) is None


def test_a_node_sends_only_its_own_uplinks(test_air: Air) -> None:
    with AirNode(test_air, "a") as a, AirListener(test_air) as listener:
        with pytest.raises(ValueError, match="not this node"):
            a.send(ble_frame("b", b""))
        with pytest.raises(ValueError, match="unaddressed downlinks only"):
            a.send(Frame("a", b"", LoraMeta(EU868, 7, dir="down", dst="b")))
        with pytest.raises(AirFrameError, match="limit 31"):
            a.send(ble_frame("a", bytes(32)))
        a.send(ble_frame("a", b"ok"))
        frame = listener.recv(WAIT_S)
    assert frame is not None and frame.payload == b"ok"
    assert frame.seq == 0  # refused frames used no sequence number


def test_malformed_datagrams_are_counted_and_skipped(test_air: Air) -> None:
    with AirListener(test_air) as listener:
        raw_send(listener.port, b"garbage")
        raw_send(listener.port, b'{"v":1}\n')
        raw_send(listener.port, _header(v=2) + b"\n")
        raw_send(listener.port, ble_frame("n", b"").encode().replace(b"\n", b"\n" + bytes(40), 1))
        raw_send(listener.port, ble_frame("n", b"good").encode())
        frame = listener.recv(WAIT_S)
        assert frame is not None and frame.payload == b"good"
        assert listener.malformed == 4
        # Valid frames a listener does not take are skipped without counting as malformed.
        downlink = LoraMeta(EU868, 7, dir="down", dst="n")
        raw_send(listener.port, Frame("gw", b"downlink", downlink).encode())
        raw_send(listener.port, ble_frame("n", b"after").encode())
        frame = listener.recv(WAIT_S)
        assert frame is not None and frame.payload == b"after"
        assert listener.malformed == 4
        assert (
            listener.last_malformed == "ble-adv payload is 40 bytes, limit 31 (legacy advertising)"
        )


# --- CLI ---------------------------------------------------------------------------------------


def _send_when_listener_joins(air_obj: Air, frames: list[Frame], sender: AirNode) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(p.role == "listener" for p in air_obj.peers(refresh=True)):
            for frame in frames:
                sender.send(frame)
            return
        time.sleep(0.01)


def test_cli_listen_json_prints_one_object_per_frame(tmp_path: Path) -> None:
    node_air = Air("cli", root=tmp_path)
    with AirNode(node_air, "node-1") as node:
        frames = [ble_frame("node-1", b"\x02\x01\x06"), lora_up("node-1", b"\xff\x00")]
        thread = threading.Thread(target=_send_when_listener_joins, args=(node_air, frames, node))
        thread.start()
        result = CliRunner().invoke(
            air,
            ["listen", "--air", "cli", "--json", "--count", "2", "--timeout", str(WAIT_S)],
            env={"MOTE_AIR_DIR": str(tmp_path)},
        )
        thread.join(WAIT_S)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [(r["kind"], r["src"], r["seq"], r["payload_hex"]) for r in records] == [
        ("ble-adv", "node-1", 0, "020106"),
        ("lora", "node-1", 1, "ff00"),
    ]
    assert records[0]["addr"] == "AA:BB:CC:DD:EE:01" and records[0]["v"] == 1
    assert records[1]["freq_hz"] == EU868 and records[1]["dst"] is None


def test_cli_listen_human_lines(tmp_path: Path) -> None:
    node_air = Air("cli", root=tmp_path)
    with AirNode(node_air, "node-1") as node:
        frames = [lora_up("node-1", b"\xab\xcd")]
        thread = threading.Thread(target=_send_when_listener_joins, args=(node_air, frames, node))
        thread.start()
        result = CliRunner().invoke(
            air,
            ["listen", "--air", "cli", "--kind", "lora", "--count", "1", "--timeout", "2"],
            env={"MOTE_AIR_DIR": str(tmp_path)},
        )
        thread.join(WAIT_S)
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert "lora" in line and "node-1" in line and "-97.5 dBm" in line
    assert "868.100 MHz SF7" in line and line.endswith("abcd")


def test_cli_listen_with_count_and_no_traffic_fails(tmp_path: Path) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(
        air,
        ["listen", "--air", "quiet", "--count", "1", "--timeout", "0.3"],
        env={"MOTE_AIR_DIR": str(tmp_path)},
        standalone_mode=False,
    )
    assert 0.3 <= time.monotonic() - started < WAIT_S
    assert isinstance(result.exception, NoFramesError)
    assert str(result.exception) == "no frames received within 0.3 s"
    assert result.exception.exit_code != 0
    assert result.output == ""
    assert not list((tmp_path / "quiet").iterdir())  # the listener left the air


def test_cli_listen_without_count_exits_zero_on_idle_timeout(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        air, ["listen", "--timeout", "0.2"], env={"MOTE_AIR_DIR": str(tmp_path), "MOTE_AIR": "q"}
    )
    assert result.exit_code == 0
    assert result.output == ""


def test_cli_error_line_through_mote_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        from host_tools.cli.main import cli, main
    except ImportError as exc:
        pytest.skip(f"host_tools.cli.main does not import yet: {exc}")
    if "air" not in cli.commands:
        pytest.skip("the air group is not registered in host_tools.cli.main yet")
    monkeypatch.setenv("MOTE_AIR_DIR", str(tmp_path))
    code = main(["air", "listen", "--air", "quiet", "--count", "1", "--timeout", "0.3"])
    err = capsys.readouterr().err.splitlines()
    assert code != 0
    assert [line for line in err if line.startswith("error:")] == [
        "error: no frames received within 0.3 s"
    ]
