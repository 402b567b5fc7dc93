"""NodeClient against a fake node (tests/host/fakenode.py) over a socketpair."""

import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakenode import FakeNode, frame

from host_tools.errors import ProtocolError, TransportError
from host_tools.protocol.client import AWAKE_HINT, NodeClient


class SocketTransport:
    """The transport shape (host_tools.transport) over one end of a socketpair."""

    name = "socketpair"

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return b""
        data = self.sock.recv(65536)
        if not data:
            raise TransportError("socketpair closed")
        return data

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


Pair = Callable[..., tuple[FakeNode, NodeClient]]


@pytest.fixture
def pair() -> Iterator[Pair]:
    """pair(first_id=None, **FakeNode options) -> (fake node, client), torn down after."""
    made: list[tuple[FakeNode, socket.socket, socket.socket]] = []

    def _pair(first_id: int | None = 100, **opts: Any) -> tuple[FakeNode, NodeClient]:
        host, node_end = socket.socketpair()
        fake = FakeNode(node_end.fileno(), **opts).__enter__()
        made.append((fake, host, node_end))
        return fake, NodeClient(SocketTransport(host), first_id=first_id)

    yield _pair
    for fake, host, node_end in made:
        fake.__exit__(None, None, None)
        host.close()
        node_end.close()


def hold_ids(fake: FakeNode) -> set[bytes]:
    return {raw.split(b" ")[1] for raw in fake.ignored}


# ---- ids and retries -------------------------------------------------------------------------


def test_ids_are_fresh_and_wrap_past_65535_to_1(pair: Pair) -> None:
    fake, client = pair(first_id=65534)
    client.catch(2)
    assert client.request("ping") == {"proto": 1}
    client.request("info")
    assert [fid for fid, _ in fake.received] == [65534, 65535, 1]
    assert fake.cmds() == ["hold", "ping", "info"]


def test_a_session_starts_at_a_random_id(pair: Pair) -> None:
    ids = set()
    for _ in range(3):
        fake, client = pair(first_id=None)
        client.request("ping")
        ids.add(fake.received[0][0])
    assert all(1 <= i <= 65535 for i in ids)
    assert len(ids) > 1  # three equal draws from 65535: 1 in 4e9
    with pytest.raises(ValueError):
        NodeClient(SocketTransport(socket.socket()), first_id=0)


def test_a_lost_reply_is_retried_with_the_same_id_and_run_once(pair: Pair) -> None:
    fake, client = pair()
    fake.drop_reply.add("config")
    data = client.request("config", timeout=0.3, op="set", key="sample_period", value=300)
    assert data == {"key": "sample_period", "value": 300}
    sent = [(fid, req["cmd"]) for fid, req in fake.received]
    assert sent == [(100, "config"), (100, "config")]
    assert fake.executed == [(100, "config")]
    # The next request is a new id, and the late duplicate reply is not taken for its answer.
    assert client.request("config", op="get", key="sample_period")["value"] == 300
    assert fake.received[-1][0] == 101


@pytest.mark.timeout(20)
def test_a_frame_the_node_refuses_is_sent_again_at_once(pair: Pair) -> None:
    fake, client = pair()
    fake.refuse_once.add("info")
    # With a minute per try, only resending on the node's bad_frame answer finishes in time.
    assert client.request("info", timeout=60, retries=1)["board"] == "fake-esp32"
    assert client.bad_frames == 1
    assert fake.executed == [(100, "info")]


def test_busy_frames_keep_a_slow_request_waiting_without_a_resend(pair: Pair) -> None:
    fake, client = pair()
    fake.slow["read"] = (4, 0.2)  # 1 s of work with a timeout of 0.5 s
    data = client.request("read", timeout=0.5, retries=0)
    assert data["samples"]
    assert [req["cmd"] for _, req in fake.received] == ["read"]  # never sent twice
    assert fake.executed == [(100, "read")]


def test_without_busy_frames_a_slow_request_times_out(pair: Pair) -> None:
    fake, client = pair()
    fake.slow["read"] = (0, 1.0)
    with pytest.raises(ProtocolError) as exc:
        client.request("read", timeout=0.3, retries=0)
    assert exc.value.err == "timeout"


def test_busy_frames_cannot_keep_a_request_waiting_forever(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("host_tools.protocol.client.MAX_BUSY_S", 0.5)
    fake, client = pair()
    fake.slow["read"] = (20, 0.1)  # busy for 2 s
    with pytest.raises(ProtocolError) as exc:
        client.request("read", timeout=0.3, retries=0)
    assert exc.value.err == "timeout"


def test_no_reply_is_a_timeout_error_after_every_try(pair: Pair) -> None:
    fake, client = pair(wake_after=1000)
    with pytest.raises(ProtocolError) as exc:
        client.request("info", timeout=0.1, retries=2)
    assert exc.value.err == "timeout"
    assert str(exc.value) == "no reply to info from the node on socketpair (3 tries, 0.1 s each)"
    assert exc.value.hint == AWAKE_HINT
    assert len(fake.ignored) == 3 and hold_ids(fake) == {b"100"}


def test_a_request_too_long_for_the_node_is_not_sent(pair: Pair) -> None:
    fake, client = pair()
    with pytest.raises(ProtocolError) as exc:
        client.request("config", op="set", key="uplinks", value=["x" * 1000])
    assert exc.value.err == "too_long"
    client.request("ping")
    assert fake.cmds() == ["ping"]


# ---- replies ---------------------------------------------------------------------------------


def test_a_refusal_carries_the_nodes_err_and_msg(pair: Pair) -> None:
    fake, client = pair()
    with pytest.raises(ProtocolError) as exc:
        client.request("config", op="set", key="sample_period", value=0)
    assert exc.value.err == "bad_value"
    assert str(exc.value) == "sample_period: 0 is out of range 10..86400 s"
    assert "mote config list" in exc.value.hint
    assert exc.value.exit_code == 5
    with pytest.raises(ProtocolError) as exc:
        client.request("frobnicate")
    assert exc.value.err == "unknown_cmd" and "frobnicate" in str(exc.value)
    assert fake.config["sample_period"] == 60


@pytest.mark.parametrize(
    "reply", [{"ok": True}, {"ok": True, "data": [1]}, {"ok": "yes"}, {"ok": False}]
)
def test_a_malformed_reply_is_an_error(pair: Pair, reply: dict[str, Any]) -> None:
    fake, client = pair()
    fake.override["stats"] = reply
    with pytest.raises(ProtocolError) as exc:
        client.request("stats")
    assert exc.value.err == "bad_reply"


def test_events_and_log_text_go_aside(pair: Pair) -> None:
    fake, client = pair()
    seen_events: list[dict[str, Any]] = []
    seen_text: list[str] = []
    client.on_event, client.on_text = seen_events.append, seen_text.append
    report = {"ev": "report", "data": {"seq": 4, "reason": ["first"], "samples": []}}
    fake.before_reply = [b"motekit: cycle 1\r\n", frame(0, report), b"@M1 garbage\r\n"]
    assert client.request("ping") == {"proto": 1}
    assert seen_events == [report] and list(client.events) == [report]
    assert seen_text == ["motekit: cycle 1"] and list(client.log) == ["motekit: cycle 1"]
    assert client.bad_frames == 1
    fake.emit(frame(0, {"ev": "report", "data": {"seq": 5}}))
    assert client.wait_event("report", 2)["data"] == {"seq": 5}
    with pytest.raises(ProtocolError) as exc:
        client.wait_event("report", 0.1)
    assert exc.value.err == "timeout"


# ---- catching the node -----------------------------------------------------------------------


def test_catch_keeps_sending_one_hold_until_the_window_opens(pair: Pair) -> None:
    fake, client = pair(wake_after=3)
    data = client.catch(5)
    assert data["held"] is True and data["was_held"] is False
    assert client.caught is True and client.was_held is False
    assert len(fake.ignored) == 3
    ids = hold_ids(fake) | {str(fid).encode() for fid, _ in fake.received}
    assert ids == {b"100"}  # every try is the same request
    assert fake.executed == [(100, "hold")] and fake.held
    client.release_if_caught()
    assert fake.cmds() == ["hold", "release"] and not fake.held
    assert client.caught is False


def test_a_node_already_held_stays_held(pair: Pair) -> None:
    fake, client = pair(held=True)
    with client.session(2):
        assert client.request("ping") == {"proto": 1}
    assert client.was_held is True
    assert fake.cmds() == ["hold", "ping"] and fake.held


def test_a_session_releases_the_node_even_when_a_request_fails(pair: Pair) -> None:
    fake, client = pair()
    with pytest.raises(ProtocolError, match="out of range"), client.session(2):
        client.request("config", op="set", key="sample_period", value=5)
    assert fake.cmds() == ["hold", "config", "release"] and not fake.held


def test_keep_held_leaves_it_held(pair: Pair) -> None:
    fake, client = pair()
    with client.session(2, keep_held=True):
        pass
    assert fake.cmds() == ["hold"] and fake.held


def test_a_sleeping_node_is_a_timeout_with_a_hint(pair: Pair) -> None:
    fake, client = pair(wake_after=10**6)
    with pytest.raises(ProtocolError) as exc:
        client.catch(0.6)
    assert exc.value.err == "timeout"
    assert str(exc.value) == "no answer from the node on socketpair within 0.6 s"
    assert exc.value.hint == "is the node awake? reset it or use --wait"
    assert fake.ignored and hold_ids(fake) == {b"100"}


# ---- the REPL and versions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "opts",
    [{"repl": "friendly"}, {"repl": "friendly", "prompt": True}, {"repl": "raw"}],
)
def test_the_repl_is_recognised(pair: Pair, opts: dict[str, Any]) -> None:
    fake, client = pair(**opts)
    with pytest.raises(ProtocolError) as exc:
        client.catch(30)  # recognised long before this
    assert exc.value.err == "repl"
    assert str(exc.value) == "the node is at the MicroPython REPL, not running motekit"
    assert "mote reboot" in exc.value.hint
    assert fake.executed == []
    assert b"\x03" not in fake.raw_input and b"\x04" not in fake.raw_input


def test_a_prompt_followed_by_more_output_is_no_repl(pair: Pair) -> None:
    fake, client = pair()
    # Left over from before: the first reply lands on the prompt's line (so it is log text),
    # the next try's reply is a frame.
    fake.emit(b"\r\n>>> ")
    assert client.catch(2)["held"] is True
    assert client.log[-1].startswith(">>> @M1 100 ")


@pytest.mark.parametrize("repl", ["friendly", "raw"])
def test_reboot_at_the_repl_soft_resets_into_motekit(pair: Pair, repl: str) -> None:
    fake, client = pair(repl=repl)
    assert client.reboot(5) == "repl"
    assert fake.repl == ""  # motekit runs
    # Caught after the soft reset to check motekit answers, then let go.
    assert fake.cmds() == ["hold", "release"] and not fake.held
    assert b"\x02\x04" in fake.raw_input


def test_reboot_at_the_repl_without_motekit_says_so(pair: Pair) -> None:
    fake, client = pair(repl="friendly", main_py=False)
    with pytest.raises(ProtocolError) as exc:
        client.reboot(5)
    assert exc.value.err == "repl"
    assert "main.py did not start motekit" in str(exc.value)
    assert fake.raw_input.count(b"\x04") == 1


def test_reboot_over_the_console_is_not_followed_by_a_release(pair: Pair) -> None:
    fake, client = pair()
    assert client.reboot(2) == "console"
    assert fake.cmds() == ["hold", "reboot"]
    assert client.caught is False


@pytest.mark.parametrize(
    "opts",
    [{"speaks": 2, "says_proto": 2}, {"says_proto": 2}, {"refuse_version": True, "says_proto": 2}],
)
def test_another_protocol_version_is_refused(pair: Pair, opts: dict[str, Any]) -> None:
    fake, client = pair(**opts)
    with pytest.raises(ProtocolError) as exc:
        client.catch(5)
    assert exc.value.err == "bad_version"
    assert str(exc.value) == "the node speaks console protocol 2; this mote speaks protocol 1"
    assert "deploy the firmware" in exc.value.hint


def test_ping_and_info_check_the_version_too(pair: Pair) -> None:
    fake, client = pair(held=True, says_proto=2)
    for cmd in ("ping", "info"):
        with pytest.raises(ProtocolError) as exc:
            client.request(cmd)
        assert exc.value.err == "bad_version"
