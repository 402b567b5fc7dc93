"""`mote provision` and host_tools/provision.py: the key and identifier rules, fingerprint
checks against a fake node that gets them wrong, every error before the node is touched, and
the whole job against a virtual board running the real firmware."""

import hashlib
import json
import os
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakenode import FakeNode, Refused
from fwnode import FirmwareNode, firmware_node

from host_tools import provision as prov
from host_tools.boards import load_board
from host_tools.cli.main import main
from host_tools.errors import ConfigError, ProtocolError, RegistryError
from host_tools.registry import Record, Registry
from host_tools.sim.radio_link import bluetooth_mac as sim_bluetooth_mac

ESP_ID = "a1b2c3d4e5f6"
FW_CONFIG = {"sample_period": 60, "host_wait_ms": 3000, "sensors": [{"kind": "battery"}]}
LORA_KEYS = ("lorawan_region", "lorawan_sub_band", "lorawan_activation", "lorawan_dev_eui",
             "lorawan_join_eui", "lorawan_dev_addr")  # fmt: skip


def mote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# ---- the rules --------------------------------------------------------------------------------


def test_dev_eui_rules() -> None:
    esp = load_board("ttgo-lora32-v1")
    assert prov.dev_eui_for(ESP_ID, esp) == "a1b2c3fffed4e5f6"  # OUI, FF FE, the rest
    rp2 = load_board("rpi-pico-lora-sx1262")
    # the locally administered bit set, the group bit cleared; the rest is the flash id
    assert prov.dev_eui_for("e660583883532c2f", rp2) == "e660583883532c2f"
    assert prov.dev_eui_for("01ffeeddccbbaa99", rp2) == "02ffeeddccbbaa99"
    assert prov.dev_eui_for("ff00000000000000", rp2) == "fe00000000000000"
    with pytest.raises(ConfigError) as e:
        prov.dev_eui_for("a1b2c3d4e5f6", rp2)
    assert "--dev-eui" in e.value.hint


def test_ble_address_is_base_mac_plus_two_as_on_the_virtual_board() -> None:
    esp = load_board("esp32-devkitc")
    assert prov.ble_address(ESP_ID, esp) == "A1:B2:C3:D4:E5:F8"
    assert prov.ble_address("ffffffffffff", esp) == "00:00:00:00:00:01"  # wraps around
    assert prov.ble_address("e660583883532c2f", load_board("rpi-pico-w")) is None
    for mac in ("a1b2c3d4e5f6", "fffffffffffe", "000000000000", "3c71bf0000ff"):
        base = bytes.fromhex(mac)
        assert prov.bluetooth_mac(base) == sim_bluetooth_mac(base)  # one rule, sim and host


def test_keys_and_dev_addr() -> None:
    keys = {prov.new_key() for _ in range(200)}
    assert len(keys) == 200 and all(len(k) == 16 for k in keys)
    k = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert prov.fingerprint(k) == hashlib.sha256(k).hexdigest()[:8]
    addrs = [prov.random_dev_addr() for _ in range(2000)]
    assert all(len(a) == 8 for a in addrs)
    values = [int(a, 16) for a in addrs]
    assert all(0 < v < 1 << 25 for v in values)  # NetID type 0, NwkID 0
    assert max(values) >= 1 << 24  # all 25 bits are used


@pytest.mark.parametrize(
    ("lora", "words"),
    [
        (prov.LoraOptions(region="AS923"), "--lorawan-region must be one of EU868, US915"),
        (prov.LoraOptions(region="EU868", sub_band=2), "--sub-band is for US915 only"),
        (prov.LoraOptions(region="US915", sub_band=9), "--sub-band must be 1..8"),
        (prov.LoraOptions(region="EU868", dev_addr="01020304"), "--dev-addr is for ABP"),
        (prov.LoraOptions(region="EU868", abp=True, join_eui="00" * 8), "--join-eui is for OTAA"),
        (prov.LoraOptions(dev_eui="12345"), "--dev-eui must be 16 hex digits"),
        (prov.LoraOptions(join_eui="zz" * 8), "--join-eui must be 16 hex digits"),
        (prov.LoraOptions(abp=True, dev_addr="0102030405"), "--dev-addr must be 8 hex digits"),
    ],
)
def test_contradicting_options_are_refused(lora: prov.LoraOptions, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        prov.check_lora_options(lora)
    assert words in str(e.value)


def test_radios_option() -> None:
    assert prov.parse_radios("ble, LORA,ble") == ("ble", "lora")
    assert prov.parse_radios("") == ()
    with pytest.raises(ConfigError) as e:
        prov.parse_radios("ble,wifi")
    assert "'wifi'" in str(e.value)


def test_plan_otaa_abp_and_ble() -> None:
    board = load_board("ttgo-lora32-v1")
    info = {"device_id": ESP_ID.upper(), "board": board["name"], "fw": "0.3.0"}
    rec = prov.plan(info, board, ("ble", "lora"), prov.LoraOptions(region="US915"))
    assert rec["device_id"] == ESP_ID and rec["state"] == "pending" and rec["fw"] == "0.3.0"
    assert rec["bthome"]["ble_address"] == "A1:B2:C3:D4:E5:F8"
    lora = rec["lorawan"]
    assert (lora["region"], lora["sub_band"], lora["activation"]) == ("US915", 2, "otaa")
    assert lora["join_eui"] == "0000000000000000" and lora["dev_eui"] == "a1b2c3fffed4e5f6"
    assert set(rec["fingerprints"]) == {"bthome.bindkey", "lorawan.appkey"}
    for name, hexkey in prov.record_secrets(rec).items():
        assert rec["fingerprints"][name] == prov.fingerprint(bytes.fromhex(hexkey))
    assert prov.record_settings(rec) == {
        "lorawan_region": "US915",
        "lorawan_activation": "otaa",
        "lorawan_dev_eui": "a1b2c3fffed4e5f6",
        "lorawan_join_eui": "0000000000000000",
        "lorawan_dev_addr": "",
        "lorawan_sub_band": 2,
    }

    abp = prov.plan(
        info,
        board,
        ("lora",),
        prov.LoraOptions(
            region="EU868", abp=True, dev_addr="26:01:1B:2C", dev_eui="70B3D57ED0000001"
        ),
    )
    lora = abp["lorawan"]
    assert "bthome" not in abp and lora["sub_band"] is None
    assert (lora["dev_addr"], lora["dev_eui"]) == ("26011b2c", "70b3d57ed0000001")
    assert set(abp["fingerprints"]) == {"lorawan.nwkskey", "lorawan.appskey"}
    assert lora["nwk_s_key"] != lora["app_s_key"]
    assert prov.record_settings(abp)["lorawan_join_eui"] == ""
    assert "lorawan_sub_band" not in prov.record_settings(abp)

    with pytest.raises(ConfigError) as e:
        prov.plan(info, board, ("lora",), prov.LoraOptions())
    assert "--lorawan-region" in e.value.hint
    with pytest.raises(ProtocolError) as e2:
        prov.plan({**info, "device_id": "a1b2"}, board, ("ble",), prov.LoraOptions())
    assert e2.value.err == "bad_reply"


# ---- the fingerprint checks, on a fake node in memory -------------------------------------------


class MemNode:
    """A node as `provision` sees it: requests in, replies out, and knobs to get things wrong."""

    def __init__(self, board: str = "ttgo-lora32-v1", device_id: str = ESP_ID) -> None:
        self.info = {"device_id": device_id, "board": board, "fw": "0.3.0"}
        self.secrets: dict[str, str] = {}  # name -> fingerprint
        self.config: dict[str, Any] = {k: "" for k in LORA_KEYS}
        self.lorawan_settings = True
        self.bad_reply_fp: set[str] = set()  # secret names whose set reply is wrong
        self.lose_on_flash: set[str] = set()  # secret names stored damaged
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def request(self, cmd: str, timeout: float = 2.0, retries: int = 2, **args: Any) -> Any:
        self.requests.append((cmd, args))
        if cmd == "info":
            return dict(self.info, secrets=dict(self.secrets))
        if cmd == "config":
            if not self.lorawan_settings or args["key"] not in self.config:
                raise ProtocolError(f"no such setting: {args['key']}", err="bad_key")
            if args["op"] == "set":
                self.config[args["key"]] = args["value"]
            return {"key": args["key"], "value": self.config[args["key"]]}
        assert cmd == "secret"
        if args["op"] == "list":
            return {"secrets": dict(self.secrets)}
        name, key = args["name"], bytes.fromhex(args["value"])
        fp = prov.fingerprint(key)
        self.secrets[name] = prov.fingerprint(key[::-1]) if name in self.lose_on_flash else fp
        return {"name": name, "fingerprint": "00000000" if name in self.bad_reply_fp else fp}

    def writes(self) -> list[str]:
        return [a.get("name") or a["key"] for c, a in self.requests if a.get("op") == "set"]


EU = prov.Options(lora=prov.LoraOptions(region="EU868"))


def rec_of(outcome: prov.Outcome) -> Record:
    assert outcome.record is not None
    return outcome.record


@pytest.mark.parametrize(
    ("knob", "where"), [("bad_reply_fp", "in its reply"), ("lose_on_flash", "when read back")]
)
def test_a_fingerprint_mismatch_leaves_a_pending_record_that_a_rerun_completes(
    tmp_path: Path, knob: str, where: str
) -> None:
    reg = Registry(tmp_path / "registry.json")
    node = MemNode()
    getattr(node, knob).add("lorawan.appkey")
    with pytest.raises(ProtocolError) as e:
        prov.provision(node, reg, EU)
    assert e.value.err == "bad_fingerprint" and where in str(e.value)
    assert "run mote provision again" in e.value.hint and str(reg.path) in e.value.hint
    pending = reg.devices()[ESP_ID]
    assert pending["state"] == "pending"
    key = pending["lorawan"]["app_key"]
    assert key not in str(e.value)  # fingerprints in messages, never keys

    getattr(node, knob).clear()
    out = prov.provision(node, reg, EU)
    assert out.action == "resumed"
    done = reg.devices()[ESP_ID]
    assert done["state"] == "complete" and done["lorawan"]["app_key"] == key  # the same keys
    assert node.secrets["lorawan.appkey"] == prov.fingerprint(bytes.fromhex(key))
    assert "history" not in done


def test_a_stored_setting_that_differs_is_an_error(tmp_path: Path) -> None:
    class Stubborn(MemNode):
        def request(self, cmd: str, timeout: float = 2.0, retries: int = 2, **args: Any) -> Any:
            reply = super().request(cmd, timeout, retries, **args)
            if cmd == "config" and args.get("key") == "lorawan_dev_eui" and args["op"] == "set":
                return {"key": "lorawan_dev_eui", "value": "0000000000000000"}
            return reply

    reg = Registry(tmp_path / "registry.json")
    with pytest.raises(ProtocolError) as e:
        prov.provision(Stubborn(), reg, EU)
    assert "lorawan_dev_eui" in str(e.value) and reg.devices()[ESP_ID]["state"] == "pending"


def test_a_firmware_without_lorawan_settings_is_refused_before_any_write(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.json")
    node = MemNode()
    node.lorawan_settings = False
    with pytest.raises(ProtocolError) as e:
        prov.provision(node, reg, EU)
    assert "no LoRaWAN settings" in str(e.value) and "deploy" in e.value.hint
    assert node.writes() == [] and reg.devices() == {}


def test_the_registry_refuses_before_the_node_is_asked_anything(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    node = MemNode()
    with pytest.raises(RegistryError):
        prov.provision(node, Registry(blocker / "registry.json"), EU)
    assert node.requests == []


def test_registered_devices_need_force_if_new_skips_and_force_keeps_history(
    tmp_path: Path,
) -> None:
    reg = Registry(tmp_path / "registry.json")
    node = MemNode()
    first = prov.provision(node, reg, EU)
    assert first.action == "provisioned" and rec_of(first)["state"] == "complete"
    node.requests.clear()
    with pytest.raises(RegistryError) as e:
        prov.provision(node, reg, EU)
    assert "already registered" in str(e.value) and "--force" in e.value.hint
    assert node.writes() == []
    skipped = prov.provision(node, reg, prov.Options(lora=EU.lora, if_new=True))
    assert (skipped.action, skipped.reason) == ("skipped", "registered")
    assert node.writes() == []
    again = prov.provision(node, reg, prov.Options(lora=EU.lora, force=True))
    assert again.action == "provisioned"
    rec = reg.devices()[ESP_ID]
    assert rec["history"][0]["fingerprints"] == rec_of(first)["fingerprints"]
    assert rec["fingerprints"] != rec_of(first)["fingerprints"]


def test_a_board_without_radios(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry.json")
    node = MemNode("rpi-pico", "e660583883532c2f")
    with pytest.raises(ConfigError) as e:
        prov.provision(node, reg, EU)
    assert "rpi-pico has no radio" in str(e.value) and "--radios" in e.value.hint
    out = prov.provision(node, reg, prov.Options(if_new=True))
    assert (out.action, out.reason) == ("skipped", "no_radios")
    bench = prov.provision(node, reg, prov.Options(radios=("ble",)))  # a module wired on
    assert bench.action == "provisioned" and rec_of(bench)["bthome"]["ble_address"] is None
    assert node.writes() == ["bthome.bindkey"] and reg.devices().keys() == {"e660583883532c2f"}


# ---- the CLI over a pty, against the fake node of tests/host/fakenode.py ------------------------


class KeyNode(FakeNode):
    """FakeNode with the `secret` command and the LoRaWAN settings, on a chosen board."""

    def __init__(
        self, fd: int, board: str = "ttgo-lora32-v1", device_id: str = ESP_ID, **kw: Any
    ) -> None:
        super().__init__(fd, **kw)
        self.board = board
        self.device_id = device_id
        self.secrets: dict[str, str] = {}
        self.lorawan: dict[str, Any] = {k: "" for k in LORA_KEYS}

    def _cmd_info(self, req: dict[str, Any]) -> dict[str, Any]:
        info = super()._cmd_info(req)
        return dict(info, board=self.board, device_id=self.device_id, secrets=dict(self.secrets))

    def _cmd_config(self, req: dict[str, Any]) -> dict[str, Any]:
        key = req.get("key")
        if key not in self.lorawan:
            return super()._cmd_config(req)
        if req.get("op") == "set":
            self.lorawan[key] = req["value"]
        return {"key": key, "value": self.lorawan[key]}

    def _cmd_secret(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("op") == "list":
            return {"secrets": dict(self.secrets)}
        if len(req.get("value", "")) != 32:
            raise Refused("bad_value", f"{req.get('name')}: must be 32 hex digits")
        self.secrets[req["name"]] = prov.fingerprint(bytes.fromhex(req["value"]))
        return {"name": req["name"], "fingerprint": self.secrets[req["name"]]}


@pytest.fixture
def key_node() -> Iterator[Callable[..., tuple[KeyNode, str]]]:
    made: list[tuple[KeyNode, int, int]] = []

    def _make(**kw: Any) -> tuple[KeyNode, str]:
        master, slave = os.openpty()
        tty.setraw(slave)
        fake = KeyNode(master, **kw)
        fake.__enter__()
        made.append((fake, master, slave))
        return fake, os.ttyname(slave)

    yield _make
    for fake, master, slave in made:
        fake.__exit__(None, None, None)
        os.close(master)
        os.close(slave)


def test_cli_provision_json_and_secrets_shown_only_when_asked(
    key_node: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, port = key_node()
    reg = tmp_path / "registry.json"
    rc, out, err = mote(capsys, "provision", "--port", port, "--registry", str(reg),
                        "--lorawan-region", "us915", "--sub-band", "1", "--json")  # fmt: skip
    assert (rc, err) == (0, "")
    data = json.loads(out)
    record = Registry(reg).devices()[ESP_ID]
    assert data["action"] == "provisioned" and data["reason"] == ""
    assert (data["device_id"], data["board"], data["fw"]) == (ESP_ID, "ttgo-lora32-v1", "0.2.0")
    assert data["registry"] == str(reg) and data["state"] == "complete"
    assert data["radios"] == ["ble", "lora"]
    assert data["fingerprints"] == fake.secrets == record["fingerprints"]
    assert data["lorawan"] == {"region": "US915", "sub_band": 1, "activation": "otaa",
                               "dev_eui": "a1b2c3fffed4e5f6", "join_eui": "0000000000000000",
                               "dev_addr": None}  # fmt: skip
    assert data["bthome"] == {"ble_address": "A1:B2:C3:D4:E5:F8"}
    assert "keys" not in data
    keys = list(prov.record_secrets(record).values())
    assert not any(k in out for k in keys)
    assert fake.lorawan["lorawan_sub_band"] == 1 and fake.lorawan["lorawan_region"] == "US915"
    assert fake.cmds()[0] == "hold" and fake.cmds()[-1] == "release"

    rc, out, err = mote(capsys, "provision", "--port", port, "--registry", str(reg), "--force",
                        "--lorawan-region", "EU868", "--show-secrets")  # fmt: skip
    assert rc == 0, err
    record = Registry(reg).devices()[ESP_ID]
    for name, key in prov.record_secrets(record).items():
        assert f"{record['fingerprints'][name]}  {key}" in out
    assert len(record["history"]) == 1

    rc, out, err = mote(capsys, "provision", "--port", port, "--registry", str(reg), "--if-new",
                        "--json")  # fmt: skip
    assert rc == 0 and json.loads(out)["action"] == "skipped"
    assert json.loads(out)["reason"] == "registered"


@pytest.mark.parametrize(
    ("make_registry", "words"),
    [
        ("parent-is-a-file", "cannot write the registry"),
        ("open-to-others", "is open to other users"),
        ("bad-json", "is not valid JSON"),
    ],
)
def test_cli_registry_errors_come_before_the_port_is_opened(
    key_node: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], make_registry: str,
    words: str
) -> None:  # fmt: skip
    fake, port = key_node()
    reg = tmp_path / "registry.json"
    if make_registry == "parent-is-a-file":
        (tmp_path / "f").write_text("")
        reg = tmp_path / "f" / "registry.json"
    elif make_registry == "open-to-others":
        reg.write_text('{"version": 1, "devices": {}}')
        reg.chmod(0o644)
    else:
        reg.write_text("{")
        reg.chmod(0o600)
    rc, out, err = mote(capsys, "provision", "--port", port, "--registry", str(reg),
                        "--lorawan-region", "EU868")  # fmt: skip
    assert (rc, out) == (8, "")
    lines = err.splitlines()
    assert len(lines) == 2 and words in lines[0] and lines[1].startswith("hint: ")
    assert bytes(fake.raw_input) == b""  # not one byte sent to the node


@pytest.mark.parametrize(
    ("args", "rc", "words"),
    [
        ([], 2, "which region's frequencies"),  # a LoRa board needs a region
        (["--lorawan-region", "EU868", "--sub-band", "2"], 2, "--sub-band is for US915 only"),
        (["--lorawan-region", "EU868", "--radios", "wifi"], 2, "unknown radio 'wifi'"),
        (["--lorawan-region", "EU868", "--dev-eui", "xyz"], 2, "--dev-eui must be 16 hex"),
    ],
)
def test_cli_option_errors_write_nothing(
    key_node: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], rc: int,
    words: str
) -> None:  # fmt: skip
    fake, port = key_node()
    reg = tmp_path / "registry.json"
    got, out, err = mote(capsys, "provision", "--port", port, "--registry", str(reg), *args)
    assert (got, out) == (rc, "") and words in err.splitlines()[0]
    assert fake.secrets == {} and not any(fake.lorawan.values())
    assert Registry(reg).devices() == {}


def test_cli_no_port_a_bad_device_id_and_no_radio(
    key_node: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MOTE_PORT", raising=False)
    reg = tmp_path / "registry.json"
    monkeypatch.setenv("MOTE_REGISTRY", str(reg))
    rc, _, err = mote(capsys, "provision")
    assert rc == 2 and err.startswith("error: no port given")

    fake, port = key_node(board="rpi-pico-w", device_id="a1b2c3d4e5f6")  # 6 bytes: not a Pico's
    rc, _, err = mote(capsys, "provision", "--port", port)
    assert rc == 5 and "device id 'a1b2c3d4e5f6' is not 8 bytes of hex" in err
    assert fake.cmds()[-1] == "release"  # let go after the error

    fake, port = key_node(board="rpi-pico", device_id="e660583883532c2f")
    rc, out, err = mote(capsys, "provision", "--port", port)
    assert (rc, out) == (2, "") and "rpi-pico has no radio" in err and "--radios" in err
    rc, out, err = mote(capsys, "provision", "--port", port, "--if-new", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert (data["action"], data["reason"], data["state"]) == ("skipped", "no_radios", None)
    assert fake.secrets == {} and Registry(reg).devices() == {}


# ---- end to end: the real firmware on a virtual ESP32 -------------------------------------------


def node_secrets(fw: FirmwareNode) -> tuple[dict[str, str], dict[str, Any]]:
    """The node's secret fingerprints and LoRaWAN settings, asked over our own port."""
    from host_tools.protocol.client import NodeClient
    from host_tools.transport.serial import SerialTransport

    with SerialTransport(fw.sim.port) as t:
        c = NodeClient(t)
        with c.session(10):
            fps = c.request("secret", op="list")["secrets"]
            settings = {k: c.request("config", op="get", key=k)["value"] for k in LORA_KEYS}
    return fps, settings


def test_provision_a_virtual_esp32_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg_path = tmp_path / "data" / "registry.json"
    with firmware_node("sim-esp32", FW_CONFIG) as fw:
        assert fw.client.catch(10)["held"] is True  # held: awake for every command below
        fw.let_go_of_port()
        device_id = fw.control("status")["unique_id"]
        at = ["--port", fw.sim.port, "--wait", "10", "--registry", str(reg_path)]

        # a registry that cannot be written: refused before the node hears anything
        (tmp_path / "file").write_text("")
        bad = ["--registry", str(tmp_path / "file" / "registry.json")]
        rc, out, err = mote(capsys, "provision", *at[:4], *bad)
        assert (rc, out) == (8, "") and "cannot write the registry" in err
        assert node_secrets(fw)[0] == {}

        # the board's radio: BLE, so a BTHome bind key
        rc, out, err = mote(capsys, "provision", *at, "--json")
        assert rc == 0, err
        data = json.loads(out)
        assert data["device_id"] == device_id and data["board"] == "sim-esp32"
        assert list(data["fingerprints"]) == ["bthome.bindkey"] and data["lorawan"] is None
        fps, _ = node_secrets(fw)
        assert fps == data["fingerprints"]
        rec = Registry(reg_path).devices()[device_id]
        assert rec["state"] == "complete" and rec["fingerprints"] == fps
        assert prov.fingerprint(bytes.fromhex(rec["bthome"]["bind_key"])) == fps["bthome.bindkey"]
        assert rec["bthome"]["ble_address"] == prov.ble_address(device_id, load_board("sim-esp32"))
        if os.name == "posix":
            assert reg_path.stat().st_mode & 0o777 == 0o600

        # registered: refused without --force, left alone with --if-new
        rc, out, err = mote(capsys, "provision", *at)
        assert rc == 8 and "already registered" in err and "--force" in err
        rc, out, err = mote(capsys, "provision", *at, "--if-new", "--json")
        assert rc == 0 and json.loads(out)["action"] == "skipped"
        assert node_secrets(fw)[0] == fps

        # --force with a LoRa module on the bench: new keys, old record in history
        rc, out, err = mote(capsys, "provision", *at, "--force", "--radios", "ble,lora",
                            "--lorawan-region", "US915", "--sub-band", "2", "--json")  # fmt: skip
        assert rc == 0, err
        data = json.loads(out)
        fps2, settings = node_secrets(fw)
        assert fps2 == data["fingerprints"]
        assert set(fps2) == {"bthome.bindkey", "lorawan.appkey"}
        assert fps2["bthome.bindkey"] != fps["bthome.bindkey"]
        dev_eui = data["lorawan"]["dev_eui"]
        assert dev_eui == device_id[:6] + "fffe" + device_id[6:]
        assert settings == {"lorawan_region": "US915", "lorawan_sub_band": 2,
                            "lorawan_activation": "otaa", "lorawan_dev_eui": dev_eui,
                            "lorawan_join_eui": "0000000000000000",
                            "lorawan_dev_addr": ""}  # fmt: skip
        rec = Registry(reg_path).devices()[device_id]
        assert rec["fingerprints"] == fps2
        assert [h["fingerprints"] for h in rec["history"]] == [fps]

        # ABP: DevAddr and session keys; the node keeps what it had besides
        abp = ["--abp", "--lorawan-region", "EU868", "--dev-addr", "01ABCDEF"]
        rc, out, err = mote(capsys, "provision", *at, "--force", "--radios", "lora", *abp, "--json")
        assert rc == 0, err
        fps3, settings = node_secrets(fw)
        assert settings["lorawan_activation"] == "abp"
        assert settings["lorawan_dev_addr"] == "01abcdef" and settings["lorawan_join_eui"] == ""
        rec = Registry(reg_path).devices()[device_id]
        for name in ("lorawan.nwkskey", "lorawan.appskey"):
            assert fps3[name] == rec["fingerprints"][name]
        assert len(rec["history"]) == 2
        assert rec["lorawan"]["app_s_key"] not in out + err
