"""The payload codec end to end: the node encoder (firmware/motekit/payload.py, run in the
MicroPython unix port) -> the host decoder (host_tools.payload) for hundreds of random reports,
and the generated decodeUplink.js (run in QuickJS, ChirpStack's engine, and Duktape, an ES 5.1
engine like The Things Stack's) giving the same data; the definition held to the drivers; the
generated files held to the definition; the sizes against Cayenne LPP (pycayennelpp as oracle)
that docs/payload.md states.
"""

import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from host_tools.errors import ProtocolError
from host_tools.payload import decode, definition, generate, merge, sensor_name

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"

# EU868 DR0..2, DR3, DR4..7 and US915 DR0, DR1, DR2, DR3..4 (RP002-1.0.4 2.4.6 and 2.5.6: N
# with FOpts empty), and two odd sizes.
MAX_LENS = (11, 24, 51, 53, 115, 125, 222, 242)

_NODE_SCRIPT = """
import json, sys
from motekit import payload
with open(sys.argv[1]) as f:
    for line in f:  # one case a line: the heap holds one report at a time
        rep, max_len, sensors = json.loads(line)
        try:
            print(json.dumps([f.hex() for f in payload.encode(rep, max_len, sensors)]))
        except ValueError as e:
            print(json.dumps("ValueError: " + str(e)))
"""


def node_encode(cases: Sequence[tuple[dict[str, Any], int, Any]]) -> list[list[bytes] | str]:
    """payload.encode(report, max_len, sensors) for each case, in one MicroPython run."""
    with tempfile.TemporaryDirectory(prefix="payload-") as tmp:
        script = Path(tmp) / "encode.py"
        script.write_text(_NODE_SCRIPT)
        data = Path(tmp) / "cases.json"
        data.write_text("".join(json.dumps(c) + "\n" for c in cases))
        env = dict(os.environ, MICROPYPATH=str(REPO / "firmware"))
        proc = subprocess.run(
            [str(MICROPYTHON), "-X", "heapsize=1M", str(script), str(data)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(cases)
    return [r if isinstance(r, str) else [bytes.fromhex(h) for h in r] for r in out]


# --- JavaScript ----------------------------------------------------------------------------------
_JS_BATCH = """
function runAll(inputs) {
  var out = [];
  for (var i = 0; i < inputs.length; i++) {
    var x = inputs[i];
    var input = {bytes: x.bytes, fPort: x.fPort};
    if (x.recvMs !== null) { input.recvTime = new Date(x.recvMs); }
    if (x.sensors !== null) { input.variables = {sensors: JSON.stringify(x.sensors)}; }
    out.push(decodeUplink(input));
  }
  return JSON.stringify(out);
}
"""


def _js_inputs(frames: Sequence[tuple[int, bytes, Any, datetime | None]]) -> str:
    return json.dumps(
        [
            {
                "bytes": list(data),
                "fPort": fport,
                "sensors": sensors,
                "recvMs": None if t is None else int(t.timestamp() * 1000),
            }
            for fport, data, sensors, t in frames
        ]
    )


def js_quickjs(js: str, frames: Sequence[tuple[int, bytes, Any, datetime | None]]) -> list[Any]:
    quickjs = pytest.importorskip("quickjs")
    ctx = quickjs.Context()
    ctx.eval(js)
    ctx.eval(_JS_BATCH)
    return json.loads(ctx.eval(f"runAll({_js_inputs(frames)})"))


def js_duktape(js: str, frames: Sequence[tuple[int, bytes, Any, datetime | None]]) -> list[Any]:
    dukpy = pytest.importorskip("dukpy")
    return json.loads(dukpy.evaljs([js, _JS_BATCH, f"runAll({_js_inputs(frames)})"]))


ENGINES = {"quickjs": js_quickjs, "duktape": js_duktape}


def host_result(fport: int, data: bytes, sensors: Any, t: datetime | None) -> dict[str, Any]:
    """What decodeUplink must return for this frame: decode()'s dict, or its error."""
    try:
        return {"data": decode(fport, data, sensors, t)}
    except ProtocolError as e:
        return {"errors": [str(e)]}


# --- random reports ----------------------------------------------------------------------------
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _random_sensors(rng: random.Random, custom_ids: bool) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    used: set[str] = set()
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(list(definition.KIND))
        n = counts.get(kind, 0)
        if n >= definition.MAX_INSTANCES:
            continue
        counts[kind] = n + 1
        if custom_ids:
            while True:
                sid = "".join(rng.choice(_ID_CHARS) for _ in range(rng.randint(1, 16)))
                if sid not in used and sid not in definition.KIND:
                    break
            entries.append({"kind": kind, "id": sid})
        else:
            sid = kind if n == 0 else f"{kind}_{n + 1}"
            entries.append({"kind": kind, **({"id": sid} if n else {})})
        used.add(sid)
    return entries


def _sid(e: dict[str, Any]) -> str:
    return str(e.get("id") or e["kind"])


def _random_value(rng: random.Random, q: definition.Quantity) -> float | int:
    scale = 10**q.decimals
    pick = rng.random()
    if pick < 0.05:
        n = q.low
    elif pick < 0.1:
        n = q.high
    elif pick < 0.6:
        n = rng.randint(q.low, q.high)
    else:  # mostly realistic magnitudes
        n = rng.randint(max(q.low, -5000), min(q.high, 200_000))
    return n if q.decimals == 0 else round(n / scale, q.decimals)


def random_report(rng: random.Random, sensors: list[dict[str, Any]]) -> dict[str, Any]:
    t = rng.randint(0, 10**9)
    samples = []
    for _ in range(rng.randint(1, 16)):
        values: dict[str, Any] = {}
        missing = []
        for e in sensors:
            if rng.random() < 0.12:
                missing.append(_sid(e))
                continue
            for qn in definition.KIND[e["kind"]].quantities:
                q = definition.QUANTITY[qn]
                v: Any = _random_value(rng, q)
                if rng.random() < 0.02:  # a value the codec cannot carry
                    v = rng.choice([(q.high + 1) / 10**q.decimals, -1e9, 1e12])
                values[f"{_sid(e)}.{qn}"] = v
        s: dict[str, Any] = {"t": t, "values": values}
        if missing:
            s["missing"] = missing
        uncal = [ch for ch in values if rng.random() < 0.08]
        if uncal:
            s["uncal"] = uncal
        samples.append(s)
        t += rng.choice([10, 60, 61, 300, 900, 3600, 86400, 400_000]) + rng.randint(0, 5)
    newest = samples[-1]["values"]
    battery = next((e for e in sensors if e["kind"] == "battery"), None)
    bv = newest.get(f"{_sid(battery)}.voltage") if battery else None
    if rng.random() < 0.15:
        bv = rng.choice([None, 3.3, 4.2, 2.0])
    faults = list(samples[-1].get("missing", []))
    if rng.random() < 0.1:
        faults = [_sid(e) for e in sensors if rng.random() < 0.3]
    return {
        "seq": rng.randint(0, 2**20),
        "reason": ["change"],
        "samples": samples,
        "battery_v": bv,
        "faults": faults,
    }


def _encodable(q: definition.Quantity, v: Any) -> bool:
    if not isinstance(v, int | float) or not math.isfinite(v):
        return False
    return q.low <= round(v * 10**q.decimals) <= q.high


def expected(
    report: dict[str, Any], sensors: list[dict[str, Any]], seq_mod: int = 64
) -> dict[str, Any]:
    """What merge(decode(frame) for each frame) must give for a report of these sensors (seq_mod
    8 when it went as a short frame)."""
    kind_of = {_sid(e): e["kind"] for e in sensors}
    newest = report["samples"][-1]["t"]
    samples = []
    for s in report["samples"]:
        out: dict[str, Any] = {"t": s["t"] - newest, "values": {}}
        bad = []
        for ch, v in s["values"].items():
            sid, qn = ch.rsplit(".", 1)
            assert qn in definition.KIND[kind_of[sid]].quantities
            if _encodable(definition.QUANTITY[qn], v):
                out["values"][ch] = v
            else:
                bad.append(ch)
        for key, items in (("missing", s.get("missing", [])), ("uncal", s.get("uncal", []))):
            if items:
                out[key] = sorted(items)
        if bad:
            out["out_of_range"] = sorted(bad)
        samples.append(out)
    bv = report["battery_v"]
    if bv is not None and not _encodable(definition.QUANTITY["voltage"], bv):
        bv = None
    return {
        "version": definition.VERSION,
        "seq": report["seq"] % seq_mod,
        "battery_v": bv,
        "faults": sorted(set(report["faults"])),
        "samples": samples,
    }


def normalised(merged: dict[str, Any]) -> dict[str, Any]:
    out = {k: merged[k] for k in ("version", "seq", "battery_v")}
    out["faults"] = sorted(merged["faults"])
    out["samples"] = [
        {k: sorted(v) if isinstance(v, list) else v for k, v in s.items() if k != "time"}
        for s in merged["samples"]
    ]
    return out


def check_frames(frames: list[bytes], max_len: int, seq: int) -> None:
    assert frames and all(len(f) <= max_len for f in frames), [len(f) for f in frames]
    if len(frames) == 1:
        f = frames[0]
        if f[0] >> 6 == definition.SHORT:
            assert f[0] & 7 == seq % 8
        else:
            assert f[0] == 0x40 | seq % 64
            # The short form is used whenever it applies: one sensor of the bitmap, no flags.
            assert f[1] & definition.HAS_FLAGS or bin(f[1]).count("1") != 1, f.hex()
        return
    for i, f in enumerate(frames):
        assert f[0] == 0x40 | seq % 64
        assert f[1] & definition.HAS_FLAGS and f[2] & definition.F_PART
        assert f[3] == i | (definition.PART_MORE if i < len(frames) - 1 else 0)


def _cases(seed: int, count: int) -> list[tuple[dict[str, Any], int, list[dict[str, Any]], bool]]:
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        custom = i % 2 == 0
        sensors = _random_sensors(rng, custom)
        cases.append((random_report(rng, sensors), rng.choice(MAX_LENS), sensors, custom))
    return cases


@pytest.fixture(scope="module")
def round_trips() -> list[dict[str, Any]]:
    """Random reports, their frames from the node encoder, and the host's decoding of them."""
    cases = _cases(seed=6, count=400)
    encoded = node_encode([(rep, n, s if custom else None) for rep, n, s, custom in cases])
    out = []
    for (rep, max_len, sensors, custom), frames in zip(cases, encoded, strict=True):
        assert not isinstance(frames, str), frames
        given = sensors if custom else None
        decoded = [decode(1, f, given) for f in frames]
        out.append(
            {
                "report": rep,
                "max_len": max_len,
                "sensors": sensors,
                "given": given,
                "frames": frames,
                "decoded": decoded,
                "merged": merge(decoded),
            }
        )
    return out


# --- round trips ---------------------------------------------------------------------------------
def test_random_reports_round_trip_through_the_node_encoder_and_host_decoder(
    round_trips: list[dict[str, Any]],
) -> None:
    exact = 0
    for rt in round_trips:
        rep, merged = rt["report"], rt["merged"]
        check_frames(rt["frames"], rt["max_len"], rep["seq"])
        short = rt["frames"][0][0] >> 6 == definition.SHORT
        assert merged["seq_mod"] == (8 if short else 64)
        want = expected(rep, rt["sensors"], merged["seq_mod"])
        got = normalised(merged)
        if not merged["incomplete"]:
            assert got == want, (rt["max_len"], rep)
            exact += 1
            continue
        # Values were left out (only ever for frames too small for them): the frames say so,
        # and what arrived is right.
        assert rt["max_len"] <= 24, (rt["max_len"], rep)
        by_t = {s["t"]: s for s in want["samples"]}
        for s in got["samples"]:
            assert s["values"].items() <= by_t[s["t"]]["values"].items()
    assert exact >= 0.9 * len(round_trips)
    assert {len(rt["frames"]) > 1 for rt in round_trips} == {True, False}
    assert any(rt["frames"][0][0] >> 6 == definition.SHORT for rt in round_trips)


def test_a_report_that_fits_one_frame_is_not_split_and_from_51_bytes_nothing_is_lost(
    round_trips: list[dict[str, Any]],
) -> None:
    for rt in round_trips:
        if rt["max_len"] >= 51:
            assert not rt["merged"]["incomplete"], rt["report"]
        one = [d for d in rt["decoded"] if d["part"] == 0 and not d["more"]]
        assert len(one) == (len(rt["frames"]) == 1)


def test_negative_temperatures_and_every_extreme_round_trip() -> None:
    sensors = [{"kind": k.name} for k in definition.KINDS]
    reports = []
    for pick in ("low", "high"):
        values = {}
        for k in definition.KINDS:
            for qn in k.quantities:
                q = definition.QUANTITY[qn]
                n = q.low if pick == "low" else q.high
                values[f"{k.name}.{qn}"] = n if q.decimals == 0 else n / 10**q.decimals
        reports.append(
            {"seq": 63, "samples": [{"t": 5, "values": values}], "battery_v": 2.5, "faults": []}
        )
    reports.append(
        {
            "seq": 64,
            "samples": [
                {"t": 5, "values": {"ds18b20.temperature": -55.0, "sht4x.temperature": -0.01}}
            ],
            "battery_v": None,
            "faults": [],
        }
    )
    encoded = node_encode([(r, 242, sensors) for r in reports])
    for rep, frames in zip(reports, encoded, strict=True):
        assert not isinstance(frames, str)
        got = merge([decode(1, f, sensors) for f in frames])
        assert got["samples"][0]["values"] == rep["samples"][0]["values"]
        assert "out_of_range" not in got["samples"][0]
        assert got["seq"] == rep["seq"] % got["seq_mod"] and got["battery_v"] == rep["battery_v"]


def test_without_a_sensor_list_the_host_names_sensors_by_kind_and_instance() -> None:
    rep = {
        "seq": 9,
        "samples": [
            {
                "t": 100,
                "values": {"ds18b20.temperature": -3.5, "ds18b20_3.temperature": 4.25},
                "missing": ["ds18b20_2"],
            }
        ],
        "battery_v": None,
        "faults": ["ds18b20_2"],
    }
    [frames] = node_encode([(rep, 51, None)])
    assert not isinstance(frames, str)
    got = decode(1, frames[0])
    assert got["samples"] == [
        {
            "t": 0,
            "values": {"ds18b20.temperature": -3.5, "ds18b20_3.temperature": 4.25},
            "missing": ["ds18b20_2"],
        }
    ]
    assert got["faults"] == ["ds18b20_2"]
    # With the node's list the same frame names its ids.
    sensors = [
        {"kind": "ds18b20", "id": "air"},
        {"kind": "ds18b20", "id": "probe"},
        {"kind": "ds18b20"},
    ]
    named = decode(1, frames[0], sensors)
    assert named["samples"][0]["values"] == {"air.temperature": -3.5, "ds18b20.temperature": 4.25}
    assert named["samples"][0]["missing"] == ["probe"] and named["faults"] == ["probe"]


def test_sensor_names() -> None:
    assert sensor_name(3 << 3) == "ds18b20"
    assert sensor_name(3 << 3 | 1) == "ds18b20_2"
    sensors = [{"kind": "sht4x"}, {"kind": "ds18b20", "id": "a"}, {"kind": "ds18b20", "id": "b"}]
    assert sensor_name(3 << 3 | 1, sensors) == "b"
    assert sensor_name(1 << 3, sensors) == "sht4x"
    assert sensor_name(3 << 3 | 2, sensors) == "ds18b20_3"  # not in the list: the default


def test_sample_times_come_from_the_reception_time() -> None:
    got = decode(
        1,
        bytes.fromhex("4683b01107040e74083413ecac0201000e74"),
        None,
        datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC),
    )
    assert [s["t"] for s in got["samples"]] == [-300, 0]
    assert [s["time"] for s in got["samples"]] == [
        "2024-03-01T11:55:00.250Z",
        "2024-03-01T12:00:00.250Z",
    ]
    naive = decode(1, bytes.fromhex("46030e74fe661192"), None, datetime(2024, 3, 1, 12))
    assert naive["samples"][0]["time"] == "2024-03-01T12:00:00.000Z"


# --- the JavaScript decoder ---------------------------------------------------------------------
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_decode_uplink_gives_the_host_decoders_data(
    engine: str, round_trips: list[dict[str, Any]]
) -> None:
    js = generate.javascript()
    t0 = datetime(2025, 1, 16, 15, 29, 37, 123_000, tzinfo=UTC)
    frames = []
    for i, rt in enumerate(round_trips):
        for f in rt["frames"]:
            frames.append(
                (1 + i % 223, f, rt["given"], t0 + timedelta(seconds=i) if i % 3 else None)
            )
    got = ENGINES[engine](js, frames)
    assert len(got) == len(frames) > 500
    for (fport, data, sensors, t), result in zip(frames, got, strict=True):
        want = host_result(fport, data, sensors, t)
        assert result.get("data") == want.get("data"), data.hex()
        assert "errors" not in result
        assert isinstance(result["warnings"], list)
        if want["data"]["incomplete"]:
            assert any("left" in w for w in result["warnings"])


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_decode_uplink_fails_where_the_host_decoder_fails(engine: str) -> None:
    rng = random.Random(66)
    frames: list[tuple[int, bytes, Any, datetime | None]] = []
    valid = bytes.fromhex("4683b01107040e74083413ecac0201000e74ac0207000e7e07d01388")
    for cut in range(len(valid)):
        frames.append((1, valid[:cut], None, None))
    for _ in range(1500):
        n = rng.randint(0, 24)
        frames.append(
            (
                rng.choice([1, 1, 1, 0, 224, 5]),
                bytes([rng.choice([0x40, 0x80]) | rng.getrandbits(6)]) + rng.randbytes(n),
                None,
                None,
            )
        )
    got = ENGINES[engine](generate.javascript(), frames)
    failures = 0
    for (fport, data, sensors, t), result in zip(frames, got, strict=True):
        want = host_result(fport, data, sensors, t)
        assert result.get("data") == want.get("data"), data.hex()
        assert result.get("errors") == want.get("errors"), data.hex()
        failures += "errors" in want
    assert 100 < failures < len(frames)


def test_chirpstack_calls_decode_uplink_so() -> None:
    # ChirpStack v4 (chirpstack/src/codec/js/mod.rs) evaluates the codec followed by
    # `decodeUplink(chirpstack_input)`, non-strict, with recvTime a Date and the device variables
    # as strings; a non-empty `errors` fails the uplink, else `data` is taken.
    quickjs = pytest.importorskip("quickjs")
    ctx = quickjs.Context()
    sensors = json.dumps([{"kind": "battery"}, {"kind": "sht4x", "id": "inside"}])
    ctx.eval(
        "var chirpstack_input = {bytes: [0x46, 0x03, 0x0e, 0x74, 0xfe, 0x66, 0x11, 0x92], fPort: 7,"
        " recvTime: new Date(Date.UTC(2014, 6, 8, 9, 10, 11)), variables: {sensors: "
        + json.dumps(sensors)
        + "}};"
    )
    script = generate.javascript() + "\n\nJSON.stringify(decodeUplink(chirpstack_input))"
    res = json.loads(ctx.eval(script))
    assert res["data"]["samples"] == [
        {
            "t": 0,
            "values": {
                "battery.voltage": 3.7,
                "inside.temperature": -4.1,
                "inside.humidity": 44.98,
            },
            "time": "2014-07-08T09:10:11.000Z",
        }
    ]
    bad = json.loads(ctx.eval("JSON.stringify(decodeUplink({bytes: [0x46], fPort: 7}))"))
    assert bad == {"errors": ["frame ends at byte 1, before the sensor bitmap"]}


def test_a_decoder_for_one_nodes_ids() -> None:
    js = generate.javascript([{"kind": "battery", "id": "cell"}, {"kind": "sht4x", "id": "in"}])
    assert 'var SENSORS = [{"kind": "battery", "id": "cell"}, {"kind": "sht4x", "id": "in"}];' in js
    [res] = js_duktape(js, [(1, bytes.fromhex("46030e74fe661192"), None, None)])
    assert res["data"]["samples"][0]["values"] == {
        "cell.voltage": 3.7,
        "in.temperature": -4.1,
        "in.humidity": 44.98,
    }
    assert res["data"]["battery_v"] == 3.7


def test_decode_uplink_is_ecmascript_5_and_small_enough_for_the_things_stack() -> None:
    js = generate.JS_FILE.read_text()
    code = re.sub(r"//[^\n]*|\"(?:\\.|[^\"\\])*\"", "", js)
    assert not re.search(r"\b(let|const|class)\b|=>|`", code)
    assert len(js.encode()) < 40960  # The Things Stack's limit for a JavaScript formatter


# --- generated files -------------------------------------------------------------------------
def test_the_generated_files_are_current() -> None:
    assert generate.stale() == [], "run: python -m host_tools.payload.generate"
    assert generate.node_block() in generate.NODE_FILE.read_text()
    assert generate.JS_FILE.read_text() == generate.javascript()


def test_a_definition_change_makes_the_files_stale_and_generate_rewrites_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "payload.py"
    js = tmp_path / "decodeUplink.js"
    node.write_text(generate.NODE_FILE.read_text())
    js.write_text(generate.JS_FILE.read_text())
    monkeypatch.setattr(generate, "NODE_FILE", node)
    monkeypatch.setattr(generate, "JS_FILE", js)
    monkeypatch.setattr(generate, "REPO", tmp_path)
    assert generate.main(["--check"]) == 0
    monkeypatch.setattr(definition, "VERSION", 2)
    assert generate.main(["--check"]) == 1
    assert "stale: payload.py" in capsys.readouterr().out
    assert generate.main([]) == 0
    assert "_VERSION = const(2)" in node.read_text() and "var VERSION = 2;" in js.read_text()
    assert node.read_text().endswith(generate.NODE_FILE.read_text().split(generate.END)[1])
    assert generate.main(["--check"]) == 0


# --- the definition against the drivers and the config -------------------------------------
def _driver_classes() -> dict[str, dict[str, Any]]:
    import ast

    out = {}
    for path in sorted((REPO / "drivers").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ClassDef):
                continue
            attrs = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                    with contextlib.suppress(ValueError):
                        attrs[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            if "KIND" in attrs:
                out[attrs["KIND"]] = attrs
    return out


def _decimals(resolution: float) -> int:
    # firmware/motekit/sensors.py _decimals(): the decimals the node rounds a value to
    d = 0
    while resolution < 0.999999 and d < 6:
        resolution *= 10
        d += 1
    return d


def test_every_driver_kind_is_defined_with_its_quantities_units_and_resolution() -> None:
    from host_tools.calibration.sensors import spec

    drivers = _driver_classes()
    assert set(drivers) == set(definition.KIND)
    for kind, attrs in drivers.items():
        k = definition.KIND[kind]
        assert tuple(attrs["QUANTITIES"]) == k.quantities, kind
        for qn, unit, res in zip(k.quantities, attrs["UNITS"], attrs["RESOLUTION"], strict=True):
            q = definition.QUANTITY[qn]
            assert unit == q.unit, (kind, qn)
            # the node rounds to the driver's resolution: the codec's step carries it exactly
            assert _decimals(res) <= q.decimals, (kind, qn, res)
            s = spec(kind, qn)
            if s is not None:  # the measuring range travels
                assert q.low <= s.low * 10**q.decimals and s.high * 10**q.decimals <= q.high


def test_kinds_and_quantities_are_the_configs() -> None:
    schema = json.loads((REPO / "firmware" / "motekit" / "schema.json").read_text())
    keys = {e["key"]: e for e in schema["keys"]}
    assert [k.name for k in definition.KINDS] == keys["sensors"]["kinds"]
    assert [q.name for q in definition.QUANTITIES] == keys["thresholds"]["keys"]


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fport", "hexdata", "message"),
    [
        (0, "46030e74fe661192", "FPort 0 carries no report (reports use FPort 1..223)"),
        (224, "46030e74fe661192", "FPort 224 carries no report (reports use FPort 1..223)"),
        (1, "", "frame ends at byte 0, before the header"),
        (1, "c6030e74", "payload format version 3: this decoder reads version 1"),
        (1, "06030e74", "payload format version 0: this decoder reads version 1"),
        (1, "b90e74", "short frame of sensor kind 7: only kinds 0..6 have one"),
        (1, "830e", "frame ends at byte 2, before a value of battery.voltage"),
        (1, "46030e74fe66", "frame ends at byte 6, before a value of sht4x.humidity"),
        (1, "468101", "reserved flag bit set: a newer payload format?"),
        (1, "46880831", "sensor ds18b20 listed twice"),
        (1, "468008f1", "unknown sensor kind 15 at byte 3"),
        (1, "4681400e740e74ffffffff01", "time offset longer than 4 bytes at byte 10"),
        (1, "468144810e74", "battery voltage in a part other than 0"),
    ],
)
def test_malformed_frames_are_refused_with_one_line(fport: int, hexdata: str, message: str) -> None:
    with pytest.raises(ProtocolError) as e:
        decode(fport, bytes.fromhex(hexdata))
    assert str(e.value) == message and e.value.err == "bad_payload"


def test_a_cut_frame_fails_or_gives_the_newest_samples() -> None:
    valid = bytes.fromhex("4683b01107040e74083413ecac0201000e74ac0207000e7e07d01388")
    whole = decode(1, valid)["samples"]
    for cut in range(len(valid)):
        try:
            got = decode(1, valid[:cut])["samples"]
        except ProtocolError:
            continue
        # no count travels: LoRaWAN's MIC vouches for the length; a cut at a sample boundary
        # reads as fewer samples, the newest ones, shifted to the newest at t=0
        assert len(got) < len(whole)


def test_merge_says_when_a_part_is_missing() -> None:
    rep = {
        "seq": 5,
        "samples": [{"t": 60 * i, "values": {"battery.voltage": 3.7 + i / 1000}} for i in range(8)],
        "battery_v": 3.707,
        "faults": [],
    }
    [frames] = node_encode([(rep, 11, None)])
    assert not isinstance(frames, str) and len(frames) >= 3
    parts = [decode(1, f) for f in frames]
    assert merge(parts)["incomplete"] is False and merge(parts)["parts"] == len(frames)
    assert merge(parts[:1] + parts[2:])["incomplete"] is True
    assert merge(parts[:-1])["incomplete"] is True
    assert len(merge(parts)["samples"]) == 8
    other = decode(1, bytes.fromhex("47030e74fe661192"))
    with pytest.raises(ProtocolError, match="frames of different reports"):
        merge([parts[0], other])


# --- against Cayenne LPP --------------------------------------------------------------------------
def _lpp_size(report: dict[str, Any], sensors: list[dict[str, Any]]) -> int:
    """The same readings as Cayenne LPP (pycayennelpp): one channel per sensor quantity, and a
    Unix-time item before each sample of a batch (LPP has no other way to date a sample)."""
    lpp = pytest.importorskip("cayennelpp")
    kind_of = {_sid(e): e["kind"] for e in sensors}
    frame = lpp.LppFrame()
    add = {
        "temperature": frame.add_temperature,
        "humidity": frame.add_humidity,
        "pressure": frame.add_barometer,
        "co2": frame.add_concentration,
        "voltage": frame.add_voltage,
        "current": frame.add_current,
        "power": frame.add_power,
        "moisture": frame.add_percentage,
    }
    channels: dict[str, int] = {}
    for s in report["samples"]:
        if len(report["samples"]) > 1:
            frame.add_unix_time(255, int(s["t"]))
        for ch, v in s["values"].items():
            sid, qn = ch.rsplit(".", 1)
            assert qn in definition.KIND[kind_of[sid]].quantities
            n = channels.setdefault(ch, len(channels))
            add[qn](n, v)
    return len(bytes(frame))


def _sample(t: int, sensors: list[dict[str, Any]], i: int = 0) -> dict[str, Any]:
    typical = {
        "temperature": 21.43 - i / 10,
        "humidity": 44.98,
        "pressure": 1013.25,
        "co2": 612,
        "voltage": 3.712,
        "current": 0.1234,
        "power": 0.458,
        "moisture": 35.5,
    }
    return {
        "t": t,
        "values": {
            f"{_sid(e)}.{qn}": typical[qn]
            for e in sensors
            for qn in definition.KIND[e["kind"]].quantities
        },
    }


BATTERY = {"kind": "battery"}
REPRESENTATIVE: list[tuple[str, list[dict[str, Any]], int]] = [
    ("battery voltage alone", [BATTERY], 1),
    ("DS18B20 alone", [{"kind": "ds18b20"}], 1),
    ("SHT41 + battery", [BATTERY, {"kind": "sht4x", "id": "sht41"}], 1),
    ("BME280 + battery", [BATTERY, {"kind": "bme280"}], 1),
    ("SCD41 + battery", [BATTERY, {"kind": "scd41"}], 1),
    ("INA219 + battery", [BATTERY, {"kind": "ina219"}], 1),
    (
        "2 × DS18B20 + soil + battery",
        [
            BATTERY,
            {"kind": "ds18b20", "id": "air"},
            {"kind": "ds18b20", "id": "pipe"},
            {"kind": "soil"},
        ],
        1,
    ),
    ("all seven kinds", [{"kind": k.name} for k in definition.KINDS], 1),
    ("batch of 4: SHT41 + battery, 5 min apart", [BATTERY, {"kind": "sht4x", "id": "sht41"}], 4),
    ("batch of 16: BME280 + battery, 1 min apart", [BATTERY, {"kind": "bme280"}], 16),
]


def representative_sizes() -> list[tuple[str, int, int, int, int]]:
    """(name, values, our bytes, LPP bytes, our frames at 51 bytes) per representative report."""
    reports = []
    for _name, sensors, n in REPRESENTATIVE:
        step = 300 if n == 4 else 60
        samples = [_sample(10**6 + step * i, sensors, i) for i in range(n)]
        bv = samples[-1]["values"].get("battery.voltage")
        reports.append({"seq": 17, "samples": samples, "battery_v": bv, "faults": []})
    cases = [(r, 242, s) for r, (_n, s, _k) in zip(reports, REPRESENTATIVE, strict=True)]
    cases += [(r, 51, s) for r, (_n, s, _k) in zip(reports, REPRESENTATIVE, strict=True)]
    encoded = node_encode(cases)
    out = []
    for i, (name, sensors, _n) in enumerate(REPRESENTATIVE):
        one, at51 = encoded[i], encoded[len(REPRESENTATIVE) + i]
        assert not isinstance(one, str) and not isinstance(at51, str)
        assert len(one) == 1  # 242 bytes hold each of them
        got = merge([decode(1, f, sensors) for f in one])
        assert normalised(got) == expected(reports[i], sensors, got["seq_mod"])
        values = sum(len(s["values"]) for s in reports[i]["samples"])
        out.append((name, values, len(one[0]), _lpp_size(reports[i], sensors), len(at51)))
    return out


def test_smaller_than_cayenne_lpp_and_the_docs_say_by_how_much() -> None:
    sizes = representative_sizes()
    doc = (REPO / "docs" / "payload.md").read_text()
    for name, values, ours, lpp, frames51 in sizes:
        assert ours < lpp, (name, ours, lpp)
        row = f"| {name} | {values} | {ours} | {lpp} | {frames51} |"
        assert row in doc, f"docs/payload.md lacks the row: {row}"
