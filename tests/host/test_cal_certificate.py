"""Calibration certificates (host_tools/calibration/certificate.py): the JSON record read back
whole, the HTML and Markdown reports (facts, points, verdict, everything escaped), the residual
plot (a PNG of the stated size, the same bytes each time), and the refusals."""

import html
import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from host_tools.calibration import certificate
from host_tools.calibration.certificate import (
    build_record,
    new_id,
    plot_residuals,
    render_html,
    render_markdown,
    write_certificate,
)
from host_tools.errors import ConfigError

CERT_ID = "c20261121T101500Z-3f2a"
C0, C1 = -0.12345678901234567, 1.0123456789012345  # full precision must survive
HOSTILE = "<script>alert('x')</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def point(setpoint: float, raw: float, reference: float) -> dict[str, Any]:
    predicted = C0 + C1 * raw
    return {
        "setpoint": setpoint,
        "raw": raw,
        "reference": reference,
        "temperature": 23.5,
        "raw_spread": 0.02,
        "reference_spread": 0.01,
        "n": 12,
        "t": "2026-11-21T10:10:00Z",
        "predicted": predicted,
        "residual": reference - predicted,
    }


def fields(**changes: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "id": CERT_ID,
        "date": "2026-11-21T10:15:00Z",
        "device_id": "a1b2c3d4e5f6",
        "board": "esp32-devkitc",
        "fw": "0.7.0",
        "build": "7f3e2a1",
        "sensor": "sht41",
        "kind": "sht4x",
        "serial": "0a1b2c3d",
        "quantity": "humidity",
        "unit": "%RH",
        "channel": "sht41.humidity",
        "reference": {"source": "port:/dev/ttyUSB1 sht41.humidity", "uncertainty": 0.4},
        "points": [point(20, 21.7, 21.9), point(50, 51.1, 51.6), point(80, 79.9, 81.0)],
        "fit": {
            "kind": "linear",
            "poly": [C0, C1],
            "temp": {"ch": "sht41.temperature", "ref": 25.0, "k": -0.05},
            "r2": 0.999876,
            "rmse": 0.083,
            "max_abs_error": 0.11,
            "uncertainty": 0.93,
            "dof": 1,
            "condition": 14.2,
        },
        "stated_accuracy": 1.8,
        "before": {"max_abs_error": 1.1},
        "verification": {
            "ok": True,
            "tolerance": 1.0,
            "readings": [
                {"raw": 40.2, "value": 40.6, "reference": 40.5, "error": 0.1},
                {"raw": 40.3, "value": 40.7, "reference": 40.4, "error": 0.3},
            ],
        },
        "entry": {
            "poly": [C0, C1],
            "temp": {"ch": "sht41.temperature", "ref": 25.0, "k": -0.05},
            "id": CERT_ID,
            "at": "2026-11-21T10:15:00Z",
            "ref": "port:/dev/ttyUSB1 sht41.humidity",
            "rev": 3,
        },
        "state": "applied",
        "notes": ["chamber door opened once at point 2"],
    }
    f.update(changes)
    return f


# ---- ids and records --------------------------------------------------------------------------


def test_new_id_format() -> None:
    at = datetime(2026, 11, 21, 10, 15, 0, tzinfo=UTC)
    got = new_id(at)
    assert re.fullmatch(r"c20261121T101500Z-[0-9a-f]{4}", got)
    assert len(got) == 22 <= 40  # fits /cal.json's "id"
    cet = timezone(timedelta(hours=1))
    assert new_id(datetime(2026, 11, 21, 11, 15, 0, tzinfo=cet)).startswith("c20261121T101500Z-")
    assert new_id(datetime(2026, 11, 21, 10, 15, 0)).startswith("c20261121T101500Z-")  # naive: UTC
    assert len({new_id(at) for _ in range(40)}) > 1  # the random part varies
    before = datetime.now(UTC).replace(microsecond=0)
    now = datetime.strptime(new_id()[1:16], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    assert before <= now <= datetime.now(UTC)


def test_build_record_fills_id_date_version_and_defaults() -> None:
    f = fields()
    for key in ("id", "date", "serial", "verification", "entry", "notes"):
        del f[key]
    rec = build_record(**f)
    assert certificate.ID_RE.fullmatch(rec["id"]) and rec["certificate"] == 1
    stamp = datetime.strptime(rec["date"], "%Y-%m-%dT%H:%M:%SZ")
    assert rec["id"][1:16] == stamp.strftime("%Y%m%dT%H%M%S")  # one instant for both
    assert (rec["serial"], rec["verification"], rec["entry"], rec["notes"]) == (
        None,
        None,
        None,
        [],
    )
    assert build_record(**fields())["id"] == CERT_ID  # a given id is kept


@pytest.mark.parametrize("key", [k for k in certificate.REQUIRED if k not in certificate.DEFAULTS])
def test_build_record_refuses_a_missing_field(key: str) -> None:
    f = fields()
    del f[key]
    with pytest.raises(ValueError, match=f"needs '{key}'"):
        build_record(**f)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"reference": {"source": "manual"}}, "'reference' needs 'uncertainty'"),
        ({"reference": None}, "'reference' must be an object"),
        ({"fit": {"kind": "linear", "poly": [0, 1]}}, "'fit' needs 'temp'"),
        ({"before": {}}, "'before' needs 'max_abs_error'"),
        ({"verification": {"ok": True, "tolerance": 1}}, "'verification' needs 'readings'"),
        ({"points": [{"raw": 1.0}]}, "point 1 needs 'setpoint'"),
        ({"state": "done"}, "state 'done' is not one of"),
        ({"id": "../../etc/passwd"}, "is not of the form"),
        ({"id": CERT_ID + "\n"}, "is not of the form"),
        ({"notes": "text"}, "'notes' must be a list"),
    ],
)
def test_build_record_refuses_a_malformed_field(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        build_record(**fields(**change))


def test_build_record_makes_numbers_plain_json() -> None:
    fit = dict(fields()["fit"], poly=np.array([C0, C1]), r2=np.float64(0.5), dof=np.int64(1))
    fit["condition"] = float("inf")
    pts = [dict(point(20, 21.7, 21.9), n=np.int32(7), raw=np.float32(21.5))]
    rec = build_record(**fields(fit=fit, points=pts, stated_accuracy=float("nan")))
    assert rec["fit"]["poly"] == [C0, C1] and type(rec["fit"]["poly"]) is list
    assert type(rec["fit"]["r2"]) is float and type(rec["fit"]["dof"]) is int
    assert rec["fit"]["condition"] is None and rec["stated_accuracy"] is None  # no NaN in JSON
    assert type(rec["points"][0]["n"]) is int and rec["points"][0]["raw"] == 21.5
    json.dumps(rec, allow_nan=False)
    with pytest.raises(ValueError, match="cannot hold"):
        build_record(**fields(notes=[object()]))


# ---- files ------------------------------------------------------------------------------------


def test_the_json_round_trips_with_every_field(tmp_path: Path) -> None:
    rec = build_record(**fields())
    paths = write_certificate(rec, tmp_path / "certs")
    assert paths == {
        "json": tmp_path / "certs" / f"{CERT_ID}.json",
        "png": tmp_path / "certs" / f"{CERT_ID}.png",
        "html": tmp_path / "certs" / f"{CERT_ID}.html",
    }
    text = paths["json"].read_text()
    back = json.loads(text)
    assert back == rec
    assert back == {**fields(), "certificate": 1}  # every field, as given
    assert text == json.dumps(rec, indent=2, sort_keys=True) + "\n"
    assert back["fit"]["poly"] == [C0, C1]  # to the last bit
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == sorted(
        p.name for p in paths.values()
    )


def facts_present(text: str, esc: Any) -> None:
    for value in (
        "a1b2c3d4e5f6",
        "sht41.humidity",
        "0a1b2c3d",  # serial
        "%RH",
        "2026-11-21T10:15:00Z",
        "port:/dev/ttyUSB1 sht41.humidity",
        "0.7.0",
        "7f3e2a1",
        repr(C0),
        repr(C1),  # coefficients in full precision
        "0.999876",  # R²
        "0.083",  # RMSE
        "±0.93",  # expanded uncertainty
        "±1.8",  # stated accuracy
        "1.1",  # before
        "-0.05",  # temperature term
        "21.7",  # a point's raw value
        "81",  # a point's reference
        "40.7",  # a verification reading
        "chamber door opened once at point 2",
        f"{CERT_ID}.png",
    ):
        assert esc(value) in text, value


def test_the_html_report(tmp_path: Path) -> None:
    rec = build_record(**fields())
    page = write_certificate(rec, tmp_path)["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    facts_present(page, lambda v: html.escape(v))
    assert "Calibration certificate: device a1b2c3d4e5f6, channel sht41.humidity" in page
    assert "PASS: 2 of 2 readings within ±1 %RH" in page
    assert f'<img src="{CERT_ID}.png"' in page
    assert "<script" not in page.lower() and "http" not in page  # self-contained, no scripts
    # The points table: one row per point (3), plus its header.
    points = page.split("<h2>Points</h2>")[1].split("</table>")[0]
    assert points.count("<tr>") == 4 and "51.6" in points


def test_the_markdown_report(tmp_path: Path) -> None:
    rec = build_record(**fields())
    paths = write_certificate(rec, tmp_path, fmt="md")
    assert set(paths) == {"json", "png", "md"} and paths["md"].name == f"{CERT_ID}.md"
    text = paths["md"].read_text()
    assert text.startswith("# Calibration certificate: device a1b2c3d4e5f6, channel sht41.humidity")
    facts_present(text, lambda v: v)
    assert "**PASS: 2 of 2 readings within ±1 %RH of the reference.**" in text
    assert f"]({CERT_ID}.png)" in text
    points = text.split("## Points")[1].split("##")[0].strip().splitlines()
    assert len(points) == 2 + 3 and all(r.startswith("|") for r in points)


def test_a_failed_verification_and_none_in_the_reports() -> None:
    failed = fields(state="failed_verification")
    failed["verification"] = dict(failed["verification"], ok=False)
    failed["verification"]["readings"][1]["error"] = 1.7
    rec = build_record(**failed)
    assert "FAIL: 1 of 2 readings within ±1 %RH" in render_html(rec)
    assert "**FAIL: 1 of 2 readings" in render_markdown(rec)
    unverified = build_record(**fields(verification=None, serial=None))
    for text in (render_html(unverified), render_markdown(unverified)):
        assert "Not verified" in text and "PASS" not in text and "FAIL" not in text
        assert "serial unknown" in text


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_hostile_text_is_escaped(tmp_path: Path, fmt: str) -> None:
    rec = build_record(
        **fields(
            sensor=HOSTILE,
            channel=f"{HOSTILE}.humidity",
            reference={"source": f"csv:{HOSTILE}|x", "uncertainty": 0.1},
            notes=[HOSTILE, "two\nlines | pipe"],
        )
    )
    text = write_certificate(rec, tmp_path, fmt=fmt)[fmt].read_text()
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text
    if fmt == "html":
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    else:
        assert "csv:&lt;script&gt;alert('x')&lt;/script&gt;\\|x" in text  # no stray cell
        assert "two lines \\| pipe" in text
    # The plot's title and labels survive text that matplotlib would read as mathematics.
    plot_residuals(build_record(**fields(channel="$\\frac{", device_id="$x")), tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_plot_is_a_png_of_the_stated_size_and_deterministic(tmp_path: Path) -> None:
    rec = build_record(**fields())
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    plot_residuals(rec, a)
    plot_residuals(rec, b)
    data = a.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pixels = imread(a)
    width, height = (int(x * certificate.PLOT_DPI) for x in certificate.PLOT_SIZE_IN)
    assert pixels.shape[:2] == (height, width) == (500, 800)
    assert data == b.read_bytes()  # no timestamp, no software name
    assert b"tEXt" not in data and b"matplotlib" not in data.lower()
    assert pixels.std() > 0.01  # something was drawn
    other = dict(fields(), points=[point(20, 25.0, 21.9), point(80, 70.0, 81.0)])
    plot_residuals(build_record(**other), b)
    assert b.read_bytes() != data  # it shows the points


def test_a_record_without_fit_or_points_still_reports(tmp_path: Path) -> None:
    frc = fields(
        sensor="scd41",
        kind="scd41",
        quantity="co2",
        unit="ppm",
        channel="scd41.co2",
        points=[],
        fit=None,
        before=None,
        stated_accuracy=None,
        verification=None,
        entry=None,
        state="frc",
    )
    rec = build_record(**frc)
    paths = write_certificate(rec, tmp_path, fmt="md")
    assert json.loads(paths["json"].read_text()) == rec
    assert imread(paths["png"]).shape[:2] == (500, 800)
    text = paths["md"].read_text()
    assert "no correction on the node" in text and "scd41.co2" in text


def test_write_certificate_refusals(tmp_path: Path) -> None:
    rec = build_record(**fields())
    with pytest.raises(ValueError, match="format 'pdf'"):
        write_certificate(rec, tmp_path / "a", fmt="pdf")
    with pytest.raises(ValueError, match="is not of the form"):
        write_certificate(dict(rec, id="../escape"), tmp_path / "a")
    assert not (tmp_path / "a").exists() and not (tmp_path / "escape.json").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as e:
        write_certificate(rec, blocker / "certs")
    assert f"cannot write the certificate {CERT_ID} into {blocker / 'certs'}" in str(e.value)
    assert e.value.hint and e.value.exit_code == 2


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_a_config_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="Permission denied"):
            write_certificate(build_record(**fields()), ro)
    finally:
        ro.chmod(0o700)
