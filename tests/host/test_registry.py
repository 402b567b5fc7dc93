"""The host registry (host_tools/registry.py) and `mote registry list|show|export`: a private
file (0700 directory, 0600 file, a readable one refused), atomic replacement, the lock, history
on --force, and each export format parsed back and checked against the records."""

import csv
import io
import json
import multiprocessing
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from host_tools import registry as registry_mod
from host_tools.boards import load_board
from host_tools.cli.main import main
from host_tools.errors import ConfigError, RegistryError
from host_tools.provision import LoraOptions, fingerprint, plan, record_secrets
from host_tools.registry import Record, Registry, default_path, export, redact

ESP_ID = "a1b2c3d4e5f6"
RP_ID = "e660583883532c2f"

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def record(
    device_id: str = ESP_ID,
    board: str = "ttgo-lora32-v1",
    lora: LoraOptions | None = None,
    radios: tuple[str, ...] | None = None,
    state: str = "complete",
) -> Record:
    b = load_board(board)
    info = {"device_id": device_id, "board": board, "fw": "0.3.0"}
    lo = lora if lora is not None else LoraOptions(region="EU868")
    rec = plan(info, b, radios if radios is not None else tuple(b["radios"]), lo)
    rec["state"] = state
    return rec


def registered(reg: Registry, *records: Record) -> Registry:
    with reg.edit() as devices:
        for r in records:
            devices[r["device_id"]] = r
    return reg


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "data" / "motekit" / "registry.json")


def mote(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# ---- where it lives -----------------------------------------------------------------------


def test_default_path_follows_env_then_xdg_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("MOTE_REGISTRY", str(tmp_path / "mine.json"))
    assert default_path() == tmp_path / "mine.json"
    monkeypatch.delenv("MOTE_REGISTRY")
    assert default_path() == tmp_path / "home" / ".local/share/motekit/registry.json"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "motekit" / "registry.json"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")  # the XDG spec says so
    assert default_path() == tmp_path / "home" / ".local/share/motekit/registry.json"


def test_default_path_on_macos_and_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTE_REGISTRY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_path() == tmp_path / "Library/Application Support/motekit/registry.json"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert default_path() == tmp_path / "Roaming" / "motekit" / "registry.json"


# ---- the private file -----------------------------------------------------------------------


@posix_only
def test_created_private_whatever_the_umask(reg: Registry) -> None:
    old = os.umask(0)
    try:
        reg.add_pending(record(state="pending"))
    finally:
        os.umask(old)
    assert mode(reg.path.parent) == 0o700
    assert mode(reg.path) == 0o600
    assert mode(reg.path.with_name("registry.json.lock")) == 0o600
    data = json.loads(reg.path.read_text())
    assert data["version"] == 1 and list(data["devices"]) == [ESP_ID]


@posix_only
@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused(reg: Registry, bits: int) -> None:
    registered(reg, record())
    before = reg.path.read_bytes()
    reg.path.chmod(bits)
    for action in (
        reg.devices,
        reg.check_writable,
        lambda: reg.add_pending(record(RP_ID, "rpi-pico-w")),
    ):
        with pytest.raises(RegistryError) as e:
            action()
        assert f"mode {bits:04o}" in str(e.value) and e.value.hint == f"chmod 600 {reg.path}"
        assert e.value.exit_code == 8
    assert reg.path.read_bytes() == before


@posix_only
def test_the_cli_refuses_it_in_one_line(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    registered(reg, record())
    reg.path.chmod(0o644)
    rc, out, err = mote(capsys, "registry", "list", "--registry", str(reg.path))
    assert (rc, out) == (8, "")
    assert err.splitlines() == [
        f"error: the registry {reg.path} is open to other users (mode 0644) and holds device keys",
        f"hint: chmod 600 {reg.path}",
    ]


def test_bad_json_and_a_newer_version_are_refused_and_kept(reg: Registry) -> None:
    reg.path.parent.mkdir(parents=True)
    for text, words in (
        ('{"version": 1, "devices": {', "is not valid JSON"),
        ('{"version": 2, "devices": {}}', "has version 2; this mote reads version 1"),
        ("[]", "is not a Motekit registry"),
    ):
        fd = os.open(reg.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, text.encode())
        os.close(fd)
        for action in (reg.devices, reg.check_writable, lambda: reg.add_pending(record())):
            with pytest.raises(RegistryError) as e:
                action()
            assert words in str(e.value) and e.value.hint
        assert reg.path.read_text() == text  # never overwritten


def test_a_registry_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    reg = Registry(blocker / "registry.json")
    with pytest.raises(RegistryError) as e:
        reg.check_writable()
    assert str(e.value).startswith(f"cannot write the registry {reg.path}: ")
    assert "--registry FILE or MOTE_REGISTRY" in e.value.hint
    with pytest.raises(RegistryError) as e:
        reg.devices()
    assert str(e.value).startswith(f"cannot read the registry {reg.path}: ")
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(RegistryError) as e:
        Registry(tmp_path / "a-dir").devices()
    assert "cannot read the registry" in str(e.value)


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RegistryError) as e:
            Registry(ro / "registry.json").check_writable()
        assert "Permission denied" in str(e.value)
    finally:
        ro.chmod(0o700)


def test_writes_are_atomic(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registered(reg, record())
    before = reg.path.read_bytes()

    def replace_fails(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_mod.os, "replace", replace_fails)
    with pytest.raises(RegistryError) as e:
        reg.add_pending(record(RP_ID, "rpi-pico-w", state="pending"))
    assert "No space left on device" in str(e.value)
    assert reg.path.read_bytes() == before  # the old file, whole
    leftovers = [p.name for p in reg.path.parent.iterdir()]
    assert sorted(leftovers) == ["registry.json", "registry.json.lock"]  # no temporary file


def test_a_change_that_raises_is_not_saved(reg: Registry) -> None:
    registered(reg, record())
    with pytest.raises(KeyError), reg.edit() as devices:
        del devices[ESP_ID]
        raise KeyError("changed my mind")
    assert ESP_ID in reg.devices()


# ---- the lock ---------------------------------------------------------------------------------


@pytest.mark.skipif(registry_mod.fcntl is None, reason="flock is POSIX")
def test_a_held_lock_makes_others_wait_then_give_up(tmp_path: Path) -> None:
    import fcntl

    reg = Registry(tmp_path / "registry.json", lock_timeout_s=0.3)
    reg.check_writable()
    fd = os.open(tmp_path / "registry.json.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(RegistryError) as e:
            reg.add_pending(record(state="pending"))
        assert "locked by another mote process" in str(e.value)
    finally:
        os.close(fd)
    reg.add_pending(record(state="pending"))  # free again
    assert ESP_ID in reg.devices()


def _add_many(path: str, first: int, n: int) -> None:
    reg = Registry(path)
    for i in range(first, first + n):
        with reg.edit() as devices:
            devices[f"{i:012x}"] = {"device_id": f"{i:012x}", "state": "complete"}


@pytest.mark.skipif(registry_mod.fcntl is None, reason="flock is POSIX")
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "registry.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(path, 100 * k, 25)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = set(Registry(path).devices())
    assert got == {f"{100 * k + i:012x}" for k in range(4) for i in range(25)}


# ---- records ----------------------------------------------------------------------------------


def test_registered_needs_force_and_force_keeps_the_old_record(reg: Registry) -> None:
    first = record(state="pending")
    reg.add_pending(first)
    reg.complete(ESP_ID, first["fingerprints"])
    with pytest.raises(RegistryError) as e:
        reg.add_pending(record(state="pending"))
    assert f"device {ESP_ID} is already registered" in str(e.value) and "--force" in e.value.hint
    assert reg.devices()[ESP_ID]["fingerprints"] == first["fingerprints"]

    second = record(state="pending")
    reg.add_pending(second, force=True)
    third = record(state="pending")
    reg.add_pending(third, force=True)
    now = reg.devices()[ESP_ID]
    assert now["fingerprints"] == third["fingerprints"] and now["state"] == "pending"
    history = now["history"]
    assert [h["fingerprints"] for h in history] == [first["fingerprints"], second["fingerprints"]]
    assert history[0]["state"] == "complete" and history[1]["state"] == "pending"
    assert all("history" not in h for h in history)  # flat, newest last
    assert history[0]["lorawan"]["app_key"] == first["lorawan"]["app_key"]


def test_complete_needs_a_pending_record(reg: Registry) -> None:
    with pytest.raises(RegistryError):
        reg.complete(ESP_ID, {})
    rec = record(state="pending")
    reg.add_pending(rec)
    done = reg.complete(ESP_ID, rec["fingerprints"])
    assert done["state"] == "complete" and reg.devices()[ESP_ID]["state"] == "complete"
    assert done["provisioned_at"].endswith("Z")
    with pytest.raises(RegistryError):
        reg.complete(ESP_ID, {})


def test_redact_drops_every_key_history_included(reg: Registry) -> None:
    rec = record()
    rec["history"] = [record(), record(lora=LoraOptions(region="EU868", abp=True))]
    shown = json.dumps(redact(rec))
    keys = [k for r in (rec, *rec["history"]) for k in record_secrets(r).values()]
    assert len(keys) == 7
    assert not any(k in shown for k in keys)
    assert redact(rec)["fingerprints"] == rec["fingerprints"]
    assert "app_key" in rec["lorawan"]  # the original is untouched


# ---- exports ----------------------------------------------------------------------------------


def tts_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter=";"))


def test_tts_otaa_csv() -> None:
    eu = record()
    us = record(RP_ID, "rpi-pico-lora-sx1262", LoraOptions(region="US915", sub_band=3))
    text = export([us, eu, record("00112233aabb", state="pending")], "tts")
    assert text.splitlines()[0] == (
        "id;dev_eui;join_eui;name;description;frequency_plan_id;lorawan_version;"
        "lorawan_phy_version;app_key"
    )
    rows = tts_rows(text)
    assert [r["id"] for r in rows] == [f"motekit-{ESP_ID}", f"motekit-{RP_ID}"]  # complete only
    by_id = {r["id"]: r for r in rows}
    for rec, plan_id in ((eu, "EU_863_870_TTN"), (us, "US_902_928_FSB_3")):
        row = by_id[f"motekit-{rec['device_id']}"]
        lora = rec["lorawan"]
        assert row["dev_eui"] == lora["dev_eui"] and row["join_eui"] == "0000000000000000"
        assert row["app_key"] == lora["app_key"] and len(row["app_key"]) == 32
        assert row["frequency_plan_id"] == plan_id
        assert row["lorawan_version"] == "MAC_V1_0_3"
        assert row["lorawan_phy_version"] == "PHY_V1_0_3_REV_A"
    assert by_id[f"motekit-{ESP_ID}"]["dev_eui"] == "a1b2c3fffed4e5f6"


def test_tts_abp_csv_and_filters() -> None:
    otaa = record()
    abp = record(RP_ID, "rpi-pico-lora-sx1262", LoraOptions(region="US915", abp=True))
    with pytest.raises(ConfigError) as e:
        export([otaa, abp], "tts")
    assert "--activation otaa" in e.value.hint
    rows = tts_rows(export([otaa, abp], "tts", activation="abp"))
    assert len(rows) == 1
    lora = abp["lorawan"]
    assert rows[0]["dev_addr"] == lora["dev_addr"]
    assert rows[0]["app_s_key"] == lora["app_s_key"]
    assert rows[0]["f_nwk_s_int_key"] == lora["nwk_s_key"]  # LoRaWAN 1.0.x NwkSKey
    assert "app_key" not in rows[0]
    assert rows[0]["frequency_plan_id"] == "US_902_928_FSB_2"
    assert [r["id"] for r in tts_rows(export([otaa, abp], "tts", region="EU868"))] == [
        f"motekit-{ESP_ID}"
    ]
    with pytest.raises(RegistryError) as e2:
        export([otaa], "tts", region="US915")
    assert "no provisioned device with LoRaWAN keys for US915" in str(e2.value)


def test_chirpstack_json() -> None:
    otaa = record()
    abp = record(RP_ID, "rpi-pico-lora-sx1262", LoraOptions(region="EU868", abp=True))
    with pytest.raises(ConfigError):
        export([otaa], "chirpstack")
    doc = json.loads(
        export([otaa, abp], "chirpstack", application_id="app", device_profile_id="dp")
    )
    assert doc["format"] == "motekit-chirpstack-v4"
    got = {d["device_id"]: d for d in doc["devices"]}
    o = got[ESP_ID]["requests"]
    assert [(r["method"], r["path"]) for r in o] == [
        ("POST", "/api/devices"),
        ("POST", f"/api/devices/{otaa['lorawan']['dev_eui']}/keys"),
    ]
    device = o[0]["body"]["device"]
    assert device["devEui"] == otaa["lorawan"]["dev_eui"]
    assert (device["applicationId"], device["deviceProfileId"]) == ("app", "dp")
    assert device["joinEui"] == "0000000000000000"
    keys = o[1]["body"]["deviceKeys"]
    assert keys["nwkKey"] == otaa["lorawan"]["app_key"]  # 1.0.x: the AppKey goes in nwkKey
    assert keys["devEui"] == device["devEui"]
    a = got[RP_ID]["requests"]
    assert a[1]["path"] == f"/api/devices/{abp['lorawan']['dev_eui']}/activate"
    act = a[1]["body"]["deviceActivation"]
    nwk = abp["lorawan"]["nwk_s_key"]
    assert (act["nwkSEncKey"], act["sNwkSIntKey"], act["fNwkSIntKey"]) == (nwk, nwk, nwk)
    assert act["appSKey"] == abp["lorawan"]["app_s_key"]
    assert act["devAddr"] == abp["lorawan"]["dev_addr"] and act["fCntUp"] == 0


def test_ha_bthome_csv() -> None:
    esp = record(board="esp32-devkitc")
    pico = record(RP_ID, "rpi-pico-w")
    lora_only = record("0011223344556677", "rpi-pico-lora-sx1262")
    rows = list(csv.DictReader(io.StringIO(export([pico, esp, lora_only], "ha-bthome"))))
    assert [r["device_id"] for r in rows] == [ESP_ID, RP_ID]
    assert rows[0]["address"] == "A1:B2:C3:D4:E5:F8"  # base MAC + 2
    assert rows[0]["bindkey"] == esp["bthome"]["bind_key"] and len(rows[0]["bindkey"]) == 32
    assert rows[0]["note"] == ""
    assert rows[1]["address"] == "" and "address unknown" in rows[1]["note"]
    assert fingerprint(bytes.fromhex(rows[1]["bindkey"])) == pico["fingerprints"]["bthome.bindkey"]


# ---- the CLI ----------------------------------------------------------------------------------


def test_cli_list_and_show(reg: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    rec = record()
    rec["history"] = [record()]
    registered(reg, rec, record(RP_ID, "rpi-pico-w", state="pending"))
    at = ["--registry", str(reg.path)]
    rc, out, err = mote(capsys, "registry", "list", "--json", *at)
    assert rc == 0, err
    listed = json.loads(out)
    assert listed["registry"] == str(reg.path)
    assert [(d["device_id"], d["state"], d["radios"]) for d in listed["devices"]] == [
        (ESP_ID, "complete", ["ble", "lora"]),
        (RP_ID, "pending", ["ble"]),
    ]
    assert listed["devices"][0]["history"] == 1
    assert listed["devices"][0]["dev_eui"] == rec["lorawan"]["dev_eui"]
    keys = record_secrets(rec).values()
    assert not any(k in out for k in keys)

    rc, out, _ = mote(capsys, "registry", "show", ESP_ID.upper(), "--json", *at)
    assert rc == 0 and json.loads(out) == redact(rec)
    rc, out, _ = mote(capsys, "registry", "show", ESP_ID, *at)
    assert rc == 0 and ESP_ID in out and not any(k in out for k in keys)
    rc, out, _ = mote(capsys, "registry", "show", ESP_ID, "--json", "--show-secrets", *at)
    assert rc == 0 and json.loads(out) == rec
    rc, out, err = mote(capsys, "registry", "show", "ffffffffffff", *at)
    assert (rc, out) == (8, "") and err.startswith("error: no device ffffffffffff in ")


def test_cli_list_of_no_registry_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none" / "registry.json"
    rc, out, _ = mote(capsys, "registry", "list", "--json", "--registry", str(path))
    assert rc == 0 and json.loads(out) == {"registry": str(path), "devices": []}
    assert not path.parent.exists()  # reading creates nothing


def test_cli_export_to_stdout_and_to_a_private_file(
    reg: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = record()
    registered(reg, rec)
    monkeypatch.setenv("MOTE_REGISTRY", str(reg.path))
    rc, out, err = mote(capsys, "registry", "export", "--format", "tts")
    assert rc == 0, err
    assert tts_rows(out)[0]["app_key"] == rec["lorawan"]["app_key"]

    dest = tmp_path / "devices.csv"
    dest.write_text("old")
    dest.chmod(0o644)
    rc, out, err = mote(capsys, "registry", "export", "--format", "tts", "--output", str(dest))
    assert rc == 0 and out == ""
    assert tts_rows(dest.read_text())[0]["app_key"] == rec["lorawan"]["app_key"]
    if os.name == "posix":
        assert mode(dest) == 0o600  # replaced, not rewritten in place with its old mode

    rc, out, err = mote(capsys, "registry", "export", "--format", "ha-bthome", "--output",
                        str(tmp_path / "missing-dir" / "x.csv"))  # fmt: skip
    assert (rc, out) == (2, "") and err.startswith("error: cannot write ")

    rc, out, err = mote(capsys, "registry", "export", "--format", "chirpstack")
    assert rc == 2 and "--application-id" in err
    rc, out, err = mote(capsys, "registry", "export", "--format", "tts", "--region", "US915")
    assert rc == 8 and out == "" and len(err.splitlines()) == 2


# ---- calibration history --------------------------------------------------------------------


def cert(cert_id: str, channel: str = "sht41.temperature", device_id: str = ESP_ID) -> Record:
    return {"id": cert_id, "device_id": device_id, "channel": channel, "state": "applied"}


C1, C2, C3 = "c20261121T101500Z-0001", "c20261121T111500Z-0002", "c20261122T090000Z-0003"


def test_calibrations_add_list_filter_and_update(reg: Registry) -> None:
    assert reg.calibrations(ESP_ID) == []
    reg.add_calibration(cert(C1))
    reg.add_calibration(cert(C2, "sht41.humidity"))
    reg.add_calibration(cert(C3))
    reg.add_calibration(cert(C1, device_id=RP_ID))  # ids are per device
    assert [c["id"] for c in reg.calibrations(ESP_ID)] == [C1, C2, C3]  # oldest first
    assert [c["id"] for c in reg.calibrations(ESP_ID.upper(), "sht41.temperature")] == [C1, C3]
    assert [c["id"] for c in reg.calibrations(ESP_ID, "sht41.humidity")] == [C2]
    assert reg.calibrations(ESP_ID, "soil.moisture") == []
    assert [c["device_id"] for c in reg.calibrations(RP_ID)] == [RP_ID]

    updated = reg.update_calibration(ESP_ID, C1, state="rolled_back", notes=["restored rev 2"])
    assert updated == {**cert(C1), "state": "rolled_back", "notes": ["restored rev 2"]}
    again = Registry(reg.path).calibrations(ESP_ID)
    assert [(c["id"], c["state"]) for c in again] == [
        (C1, "rolled_back"),
        (C2, "applied"),
        (C3, "applied"),
    ]
    assert Registry(reg.path).calibrations(RP_ID)[0]["state"] == "applied"  # the other C1
    data = json.loads(reg.path.read_text())
    assert data["version"] == 1 and set(data) == {"version", "devices", "calibrations"}
    if os.name == "posix":
        assert mode(reg.path) == 0o600


def test_unknown_or_repeated_certificate_ids_are_refused(reg: Registry) -> None:
    reg.add_calibration(cert(C1))
    before = reg.path.read_bytes()
    with pytest.raises(RegistryError) as e:
        reg.update_calibration(ESP_ID, C2, state="rolled_back")
    assert f"no calibration {C2} of device {ESP_ID}" in str(e.value) and e.value.hint
    with pytest.raises(RegistryError) as e:
        reg.update_calibration(RP_ID, C1, state="rolled_back")
    assert f"no calibration {C1} of device {RP_ID}" in str(e.value)
    with pytest.raises(RegistryError) as e:
        reg.add_calibration(cert(C1, "sht41.humidity"))
    assert "already" in str(e.value)
    with pytest.raises(ValueError):
        reg.update_calibration(ESP_ID, C1, id=C2)
    with pytest.raises(ValueError):
        reg.add_calibration({"device_id": ESP_ID})
    assert reg.path.read_bytes() == before  # nothing written


def test_a_registry_without_calibrations_reads_as_empty(reg: Registry) -> None:
    reg.path.parent.mkdir(parents=True, mode=0o700)
    old = {"version": 1, "devices": {ESP_ID: {"device_id": ESP_ID, "state": "complete"}}}
    fd = os.open(reg.path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(old).encode())
    os.close(fd)
    assert reg.calibrations(ESP_ID) == [] and reg.calibrations(ESP_ID, "x.temperature") == []
    with pytest.raises(RegistryError):
        reg.update_calibration(ESP_ID, C1, state="cleared")
    reg.add_calibration(cert(C1))
    data = json.loads(reg.path.read_text())
    assert data["devices"] == old["devices"]
    assert data["calibrations"] == {ESP_ID: [cert(C1)]}


def test_devices_and_calibrations_leave_each_other_alone(reg: Registry) -> None:
    rec = record(state="pending")
    reg.add_pending(rec)
    devices = reg.devices()
    reg.add_calibration(cert(C1))
    reg.update_calibration(ESP_ID, C1, state="declined")
    assert reg.devices() == devices  # calibration writes keep the devices
    history = reg.calibrations(ESP_ID)
    reg.complete(ESP_ID, rec["fingerprints"])
    reg.add_pending(record(RP_ID, "rpi-pico-w", state="pending"))
    with reg.edit() as devs:
        del devs[RP_ID]
    assert reg.calibrations(ESP_ID) == history  # device writes keep the history
    assert history[0]["state"] == "declined"
    assert reg.devices()[ESP_ID]["state"] == "complete"


def test_a_damaged_calibrations_object_is_refused_and_kept(reg: Registry) -> None:
    reg.path.parent.mkdir(parents=True, mode=0o700)
    damaged_ones: list[Any] = [[], {ESP_ID: {"id": C1}}, {ESP_ID: ["not a record"]}]
    for damaged in damaged_ones:
        text = json.dumps({"version": 1, "devices": {}, "calibrations": damaged})
        fd = os.open(reg.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, text.encode())
        os.close(fd)
        for action in (
            lambda: reg.calibrations(ESP_ID),
            lambda: reg.add_calibration(cert(C2)),
            lambda: reg.add_pending(record()),
        ):
            with pytest.raises(RegistryError) as e:
                action()
            assert "damaged calibrations object" in str(e.value)
        assert reg.path.read_text() == text
