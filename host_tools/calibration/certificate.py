"""Calibration certificates: the JSON record (a contract), its report and its residual plot.

    record = build_record(device_id=..., channel="sht41.humidity", ..., state="applied")
    paths = write_certificate(record, Path("certs"), fmt="html")
    # {"json": certs/<id>.json, "png": certs/<id>.png, "html": certs/<id>.html}

The record is a plain JSON object, versioned by "certificate": 1, and is what the registry keeps
in its calibration history (Registry.add_calibration):

    id                "c" + UTC YYYYmmddTHHMMSSZ + "-" + 4 hex digits (new_id)
    certificate       1
    device_id, board, fw, build
    sensor, kind, serial (None when the chip has none)
    quantity, unit, channel ("<sensor>.<quantity>")
    date              ISO 8601 UTC, e.g. "2026-11-21T10:15:00Z"
    reference         {source, uncertainty (the reference's standard uncertainty)}
    points            [{setpoint, raw, reference, temperature, raw_spread, reference_spread, n,
                        t, predicted, residual (reference - predicted)}], optionally with
                        label and before (what the node read then, with its previous
                        calibration; the plot's "before" uses it, else raw)
    fit               {kind, poly [c0..cn], temp ({ch, ref, k} or None), r2, rmse,
                       max_abs_error, uncertainty (expanded, k=2), dof, condition} or None
                       (a forced recalibration inside the chip has no fit)
    stated_accuracy   the sensor's stated accuracy at the points (the smallest), or None
    before            {max_abs_error}: raw against reference at the points (optionally
                       calibration: the previous entry's certificate id), or None
    verification      {ok, tolerance, readings [{raw, value, reference, error}]} or None
    entry             the /cal.json entry as the node stored it (with its rev), or None
    state             one of STATES ("pending" while a session builds it, before the outcome)
    notes             [text]

Numbers are plain JSON numbers: numpy scalars and arrays become floats and lists, and a
non-finite float becomes null (JSON has no NaN).

The report (HTML or Markdown) is for people: the facts, the points, the verification and the
plot. The HTML is one file apart from the PNG beside it, without scripts, every value escaped.
"""

import html
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from host_tools.errors import ConfigError

Record = dict[str, Any]

CERTIFICATE = 1
STATES = ("applied", "failed_verification", "declined", "rolled_back", "cleared", "frc")
# A record may be built before its outcome is known; it is kept with one of STATES.
BUILD_STATES = ("pending", *STATES)
FORMATS = ("html", "md")
ID_RE = re.compile(r"c\d{8}T\d{6}Z-[0-9a-f]{4}")
# Keys every record has, and the keys of its parts (checked when the part is not None).
REQUIRED = (
    "device_id", "board", "fw", "build", "sensor", "kind", "serial", "quantity", "unit",
    "channel", "reference", "points", "fit", "stated_accuracy", "before", "verification",
    "entry", "state", "notes",
)  # fmt: skip
FIT = ("kind", "poly", "temp", "r2", "rmse", "max_abs_error", "uncertainty", "dof", "condition")
PARTS = {
    "reference": ("source", "uncertainty"),
    "fit": FIT,
    "before": ("max_abs_error",),
    "verification": ("ok", "tolerance", "readings"),
}
POINT_KEYS = ("setpoint", "raw", "reference", "temperature", "raw_spread", "reference_spread",
              "n", "t", "predicted", "residual")  # fmt: skip
# The report's points table: (key, heading, in the channel's unit); a column no point has a
# value in is left out.
POINT_COLUMNS = (
    ("label", "point", False),
    ("setpoint", "setpoint", False),
    ("raw", "raw", True),
    ("before", "before", True),
    ("reference", "reference", True),
    ("temperature", "temperature", False),
    ("predicted", "calibrated", True),
    ("residual", "residual", True),
    ("raw_spread", "raw spread", True),
    ("reference_spread", "reference spread", True),
    ("n", "n", False),
)
# The verification table likewise: (key, heading), all in the channel's unit.
VERIFY_COLUMNS = (
    ("raw", "raw"),
    ("value", "calibrated"),
    ("reference", "reference"),
    ("error", "error"),
)
# What may be left out of build_record's fields, and its value then.
DEFAULTS: dict[str, Callable[[], Any]] = {
    "serial": lambda: None,
    "verification": lambda: None,
    "entry": lambda: None,
    "notes": list,
}
# The residual plot: 800 x 500 pixels.
PLOT_SIZE_IN = (8.0, 5.0)
PLOT_DPI = 100


def new_id(now: datetime | None = None) -> str:
    """A certificate id: "c20261121T101500Z-3f2a" (`now` in UTC, then 4 random hex digits)."""
    return "c" + _utc(now).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def build_record(**fields: Any) -> Record:
    """The certificate record from `fields`: id and date filled when absent (the same instant),
    "certificate" set, serial/verification/entry None and notes [] when absent, numbers made
    plain JSON. Raises ValueError naming a missing or malformed field."""
    now = _utc(None)
    record: Record = {"id": new_id(now), "date": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    record.update(fields)
    record["certificate"] = CERTIFICATE
    for key, default in DEFAULTS.items():
        record.setdefault(key, default())
    for key in REQUIRED:
        if key not in record:
            raise ValueError(f"a certificate needs {key!r}")
    if not isinstance(record["id"], str) or not ID_RE.fullmatch(record["id"]):
        raise ValueError(f"certificate id {record['id']!r} is not of the form {new_id()!r}")
    if record["state"] not in BUILD_STATES:
        raise ValueError(f"certificate state {record['state']!r} is not one of {BUILD_STATES}")
    for part, keys in PARTS.items():
        value = record[part]
        if value is None and part != "reference":
            continue
        if not isinstance(value, dict):
            raise ValueError(f"a certificate's {part!r} must be an object")
        for key in keys:
            if key not in value:
                raise ValueError(f"a certificate's {part!r} needs {key!r}")
    if not isinstance(record["points"], list | tuple):
        raise ValueError("a certificate's 'points' must be a list")
    for i, point in enumerate(record["points"], 1):
        if not isinstance(point, dict):
            raise ValueError(f"certificate point {i} must be an object")
        missing = [k for k in POINT_KEYS if k not in point]
        if missing:
            raise ValueError(f"certificate point {i} needs {missing[0]!r}")
    if not isinstance(record["notes"], list | tuple):
        raise ValueError("a certificate's 'notes' must be a list of text")
    return plain(record)  # type: ignore[no-any-return]


def plain(value: Any) -> Any:
    """`value` as plain JSON types: numpy scalars and arrays to numbers and lists, tuples to
    lists, non-finite floats to None. Raises ValueError for anything JSON cannot hold."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalars (.tolist() gives the Python number) and arrays
        return plain(value.tolist())
    raise ValueError(f"a certificate cannot hold {type(value).__name__} {value!r}")


def to_json(record: Record) -> str:
    """The certificate's JSON text: indent 2, sorted keys, a final newline."""
    return json.dumps(plain(record), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_certificate(record: Record, out_dir: Path, fmt: str = "html") -> dict[str, Path]:
    """Write <id>.json, <id>.png and <id>.html (fmt "html") or <id>.md (fmt "md") into
    `out_dir` (made when missing); the paths by kind ("json", "png", fmt). Raises ValueError
    for another fmt or a malformed id, ConfigError when the directory cannot be written."""
    if fmt not in FORMATS:
        raise ValueError(f"certificate format {fmt!r} is not one of {FORMATS}")
    cert_id = record.get("id")
    if not isinstance(cert_id, str) or not ID_RE.fullmatch(cert_id):
        raise ValueError(f"certificate id {cert_id!r} is not of the form {new_id()!r}")
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"{cert_id}.{kind}" for kind in ("json", "png", fmt)}
    text = to_json(record)
    report = render_html(record) if fmt == "html" else render_markdown(record)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths["json"].write_text(text, encoding="utf-8")
        plot_residuals(record, paths["png"])
        paths[fmt].write_text(report, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the certificate {cert_id} into {out_dir}: {exc.strerror or exc}",
            hint="give a directory you can write for certificates",
        ) from exc
    return paths


# ---- the plot -------------------------------------------------------------------------------


def plot_residuals(record: Record, path: Path) -> None:
    """The residual plot as a PNG of PLOT_SIZE_IN at PLOT_DPI: against each point's reference,
    the error after calibration (reference - calibrated) and before it (reference - raw), a
    band of ± the expanded uncertainty and lines at ± the stated accuracy. The same record
    gives the same bytes (no timestamp or software name in the file)."""
    unit = _mpl(record.get("unit") or "")
    fit = record.get("fit") or {}
    points = record.get("points") or []
    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    uncertainty = _number(fit.get("uncertainty"))
    if uncertainty is not None:
        label = f"±{uncertainty:.3g} {unit}: expanded uncertainty (k=2)"
        ax.axhspan(-uncertainty, uncertainty, color="tab:blue", alpha=0.15, label=label)
    accuracy = _number(record.get("stated_accuracy"))
    if accuracy is not None:
        label = f"±{accuracy:.3g} {unit}: stated accuracy"
        ax.axhline(accuracy, color="tab:red", linestyle="--", linewidth=1, label=label)
        ax.axhline(-accuracy, color="tab:red", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.8)
    # Before: what the node read then (p["before"]: with its previous calibration, if any).
    before = _series(points, lambda p: _diff(p.get("reference"), _before(p)))
    after = _series(points, lambda p: _diff(p.get("reference"), p.get("predicted")))
    if before[0]:
        ax.plot(*before, "s", color="tab:gray", label="before: reference − reading")
    if after[0]:
        ax.plot(*after, "o", color="tab:blue", label="after: reference − calibrated")
    if not points:
        ax.text(0.5, 0.5, "no points", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"reference ({unit})")
    ax.set_ylabel(f"error ({unit})")
    ax.set_title(f"{_mpl(record.get('channel', '?'))} on {_mpl(record.get('device_id', '?'))}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    # print_png draws at the figure's size and dpi whatever the user's savefig settings.
    canvas.print_png(str(path), metadata={"Software": None})


def _series(
    points: Iterable[Record], error: Callable[[Record], float | None]
) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for p in points:
        x, y = _number(p.get("reference")), error(p)
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def _before(point: Record) -> Any:
    return point.get("before") if _number(point.get("before")) is not None else point.get("raw")


def _diff(a: Any, b: Any) -> float | None:
    x, y = _number(a), _number(b)
    return None if x is None or y is None else x - y


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mpl(text: Any) -> str:
    # Matplotlib reads $...$ as mathematics; a value is shown as it is.
    return str(text).replace("$", r"\$")


# ---- the reports ----------------------------------------------------------------------------


def render_html(record: Record) -> str:
    """The report as one HTML page (no scripts; the plot is <id>.png beside it)."""
    e = _html
    title = _title(record)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>",
        "body { font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }",
        "table { border-collapse: collapse; margin: 1em 0; }",
        "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }",
        "td.num { text-align: right; font-family: monospace; }",
        ".pass { color: #060; font-weight: bold; } .fail { color: #a00; font-weight: bold; }",
        "img { max-width: 100%; }",
        "</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
        '<table class="facts">',
    ]
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _facts(record)]
    out.append("</table>")
    out.append("<h2>Points</h2>")
    out += _html_table(*_points_table(record))
    out.append("<h2>Verification</h2>")
    verdict, ok = _verdict(record)
    css = "" if ok is None else (' class="pass"' if ok else ' class="fail"')
    out.append(f"<p{css}>{e(verdict)}</p>")
    head, rows = _verification_table(record)
    if rows:
        out += _html_table(head, rows)
    notes = _notes(record)
    if notes:
        out.append("<h2>Notes</h2>")
        out.append("<ul>")
        out += [f"<li>{e(n)}</li>" for n in notes]
        out.append("</ul>")
    out.append("<h2>Residuals</h2>")
    out.append(f'<p><img src="{e(_image(record))}" alt="{e(_alt(record))}"></p>')
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def render_markdown(record: Record) -> str:
    """The report as Markdown (the plot is <id>.png beside it)."""
    m = _md
    out = [f"# {m(_title(record))}", "", "| | |", "|---|---|"]
    out += [f"| {m(k)} | {m(v)} |" for k, v in _facts(record)]
    out += ["", "## Points", ""]
    out += _md_table(*_points_table(record))
    verdict, ok = _verdict(record)
    out += ["", "## Verification", "", f"**{m(verdict)}**" if ok is not None else m(verdict)]
    head, rows = _verification_table(record)
    if rows:
        out += [""] + _md_table(head, rows)
    notes = _notes(record)
    if notes:
        out += ["", "## Notes", ""] + [f"- {m(n)}" for n in notes]
    out += ["", "## Residuals", "", f"![{m(_alt(record))}]({_image(record)})", ""]
    return "\n".join(out)


def _html(value: Any) -> str:
    return html.escape(str(value), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def _md(value: Any) -> str:
    # Markdown passes raw HTML through: escape it as HTML, then Markdown's own punctuation.
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def _html_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{_html(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{_html(c)}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return out


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out


def _title(record: Record) -> str:
    return (
        f"Calibration certificate: device {record.get('device_id', '?')}, "
        f"channel {record.get('channel', '?')}"
    )


def _image(record: Record) -> str:
    return f"{record.get('id', '')}.png"


def _alt(record: Record) -> str:
    return f"Residuals of {record.get('channel', '?')} before and after calibration"


def _fmt(value: Any) -> str:
    """A value for people: numbers to 6 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _full(value: Any) -> str:
    """A number in full precision (the shortest text that reads back to the same float)."""
    return repr(float(value)) if isinstance(value, int | float) else _fmt(value)


def _with_unit(value: Any, unit: str, plus_minus: bool = False) -> str:
    if value is None:
        return "–"
    return f"{'±' if plus_minus else ''}{_fmt(value)} {unit}".rstrip()


def _facts(record: Record) -> list[tuple[str, str]]:
    unit = str(record.get("unit") or "")
    ref = record.get("reference") or {}
    fit = record.get("fit")
    before = record.get("before") or {}
    serial = record.get("serial") if record.get("serial") is not None else "unknown"
    facts = [
        ("Certificate", f"{record.get('id')} (certificate format {record.get('certificate')})"),
        ("Device id", str(record.get("device_id"))),
        ("Board", _fmt(record.get("board"))),
        ("Channel", str(record.get("channel"))),
        ("Sensor", f"{record.get('sensor')} ({record.get('kind')}), serial {serial}"),
        ("Quantity", f"{record.get('quantity')} ({unit})"),
        ("Date (UTC)", str(record.get("date"))),
        ("Reference", str(ref.get("source"))),
        ("Reference uncertainty (standard)", _with_unit(ref.get("uncertainty"), unit, True)),
        ("Firmware", f"{_fmt(record.get('fw'))} (build {_fmt(record.get('build'))})"),
        ("State", str(record.get("state"))),
    ]
    if fit is None or not fit.get("poly"):
        kind = "none" if fit is None else fit.get("kind")
        facts.append(("Fit", f"{kind}: no correction on the node (the sensor corrects itself)"))
    else:
        facts += [
            ("Fit", f"{fit.get('kind')}: {_formula(fit)}"),
            *((f"c{i}", _full(c)) for i, c in enumerate(fit.get("poly") or [])),
        ]
    if fit is not None:
        temp = fit.get("temp")
        if temp:
            facts += [
                ("Temperature term", f"k·(T − ref), T = uncalibrated {temp.get('ch')}"),
                ("k", _full(temp.get("k"))),
                ("ref", _full(temp.get("ref"))),
            ]
        facts += [
            ("R²", _fmt(fit.get("r2"))),
            ("RMSE", _with_unit(fit.get("rmse"), unit)),
            ("Max |error| after", _with_unit(fit.get("max_abs_error"), unit)),
            ("Expanded uncertainty (k=2)", _with_unit(fit.get("uncertainty"), unit, True)),
            ("Degrees of freedom", _fmt(fit.get("dof"))),
            ("Condition number", _fmt(fit.get("condition"))),
        ]
        facts += [(k.replace("_", " "), _fmt(v)) for k, v in sorted(fit.items()) if k not in FIT]
    was = _with_unit(before.get("max_abs_error"), unit)
    if before.get("max_abs_error") is not None:
        previous = before.get("calibration")
        was += f" (with calibration {previous})" if previous else " (uncalibrated)"
    facts += [
        ("Stated accuracy", _with_unit(record.get("stated_accuracy"), unit, True)),
        ("Max |error| before", was),
    ]
    entry = record.get("entry")
    if entry:
        facts.append(("/cal.json entry", f"rev {_fmt(entry.get('rev'))}: " + _compact(entry)))
    return facts


def _formula(fit: Record) -> str:
    powers = {0: "", 1: "·x", 2: "·x²", 3: "·x³"}
    terms = [f"c{i}{powers.get(i, f'·x^{i}')}" for i in range(len(fit.get("poly") or []))]
    text = "y = " + " + ".join(terms) + " (x: uncalibrated reading)"
    if fit.get("temp"):
        text = text.replace(" (x", " + k·(T − ref) (x", 1)
    return text


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)


def _points_table(record: Record) -> tuple[list[str], list[list[str]]]:
    unit = str(record.get("unit") or "")
    u = f" ({unit})" if unit else ""
    points = record.get("points") or []
    columns = [c for c in POINT_COLUMNS if any(p.get(c[0]) is not None for p in points)]
    head = ["#"] + [name + (u if with_unit else "") for _, name, with_unit in columns]
    rows = [[str(i)] + [_fmt(p.get(key)) for key, _, _ in columns] for i, p in enumerate(points, 1)]
    return head, rows


def _verdict(record: Record) -> tuple[str, bool | None]:
    ver = record.get("verification")
    if not ver:
        return "Not verified against the reference.", None
    unit = str(record.get("unit") or "")
    tol = _with_unit(ver.get("tolerance"), unit, True)
    readings = ver.get("readings") or []
    limit = _number(ver.get("tolerance"))
    errors = [_number(r.get("error")) for r in readings]
    within = sum(1 for x in errors if x is not None and limit is not None and abs(x) <= limit)
    ok = bool(ver.get("ok"))
    word = "PASS" if ok else "FAIL"
    return f"{word}: {within} of {len(readings)} readings within {tol} of the reference.", ok


def _verification_table(record: Record) -> tuple[list[str], list[list[str]]]:
    unit = str(record.get("unit") or "")
    u = f" ({unit})" if unit else ""
    readings = (record.get("verification") or {}).get("readings") or []
    columns = [c for c in VERIFY_COLUMNS if any(r.get(c[0]) is not None for r in readings)]
    head = ["#"] + [name + u for _, name in columns]
    rows = [[str(i)] + [_fmt(r.get(key)) for key, _ in columns] for i, r in enumerate(readings, 1)]
    return head, rows


def _notes(record: Record) -> list[str]:
    return [str(n) for n in record.get("notes") or []]


def _utc(now: datetime | None) -> datetime:
    # A naive datetime is taken as UTC.
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
