"""Collecting calibration points: stability (scripted readings, a fake clock), the reference
sources (typed, fixed values, a CSV log, another node running the firmware on a virtual board)
and the stimulus command."""

import math
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fwnode import SHT41, firmware_node

from host_tools.calibration import references as refs
from host_tools.calibration.references import (
    CsvReference,
    ManualReference,
    PortReference,
    ValueReference,
    open_port_reference,
    parse_reference,
    split_port_channel,
)
from host_tools.calibration.stability import (
    Reading,
    Rule,
    Status,
    collect,
    default_rule,
    judge,
    slope_per_min,
)
from host_tools.calibration.stimulus import (
    check_template,
    command_for,
    parse_setpoints,
    run_stimulus,
)
from host_tools.errors import CalibrationError, ConfigError, TransportError
from host_tools.protocol.client import NodeClient
from host_tools.transport.serial import SerialTransport

T0 = 1_800_000_000.0  # Reading.t of the first scripted reading (2027-01-15)
TEMP = Rule(spread=0.1, drift_per_min=0.1, timeout_s=30.0, unit="°C")

# ---- stability ---------------------------------------------------------------------------------


class Bench:
    """A fake clock and a scripted reading source: each read takes `read_s` of fake time."""

    def __init__(
        self,
        raws: Iterable[float],
        refs: Iterable[float | None] | None = None,
        temps: Iterable[float | None] | None = None,
        read_s: float = 1.0,
    ) -> None:
        self.now = 1000.0  # the monotonic clock
        self.raws = iter(raws)
        self.refs = iter(refs) if refs is not None else None
        self.temps = iter(temps) if temps is not None else None
        self.read_s = read_s
        self.reads = 0
        self.sleeps: list[float] = []
        self.statuses: list[Status] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def read(self) -> Reading:
        self.now += self.read_s
        self.reads += 1
        return Reading(
            t=T0 + self.now - 1000.0,
            raw=next(self.raws),
            temperature=next(self.temps) if self.temps is not None else None,
            reference=next(self.refs) if self.refs is not None else None,
        )

    def collect(self, rule: Rule, reference_rule: Rule | None = None) -> Any:
        return collect(
            self.read,
            rule,
            reference_rule=reference_rule,
            progress=self.statuses.append,
            clock=self.clock,
            sleep=self.sleep,
        )


def forever(values: list[float]) -> Iterator[float]:
    while True:
        yield from values


def test_a_point_settles_after_its_drift_and_gives_the_means_of_the_stable_window() -> None:
    ramp = [20.0, 20.4, 20.8, 21.2, 21.6]
    flat = [22.0, 22.02, 21.98, 21.98, 22.02, 22.0, 22.0]  # no slope
    bench = Bench(ramp + flat, temps=[25.0 + i * 0.01 for i in range(12)])
    got = bench.collect(TEMP)

    assert bench.reads == 10  # the first window of five flat readings
    assert got.n == 5
    assert [r.raw for r in got.readings] == flat[:5]
    assert got.raw == pytest.approx(22.0)
    assert got.raw_spread == pytest.approx(0.04)
    assert got.temperature == pytest.approx(25.07)  # mean of readings 6..10
    assert got.reference is None and got.reference_spread is None
    assert got.t == pytest.approx(T0 + 8.0)  # readings at T0+6 .. T0+10
    whys = [s.why for s in bench.statuses]
    assert whys[:4] == ["collecting 1/5", "collecting 2/5", "collecting 3/5", "collecting 4/5"]
    assert whys[4] == "spread 1.60 > 0.10 °C; drift 24.00 > 0.10 °C/min"
    assert whys[-1] == "stable" and bench.statuses[-1].stable
    assert not any(s.stable for s in bench.statuses[:-1])
    assert bench.statuses[-1].last == got.readings[-1]


def test_a_point_that_never_settles_times_out_with_what_was_wrong() -> None:
    bench = Bench(forever([20.0, 20.3]))
    with pytest.raises(CalibrationError) as e:
        bench.collect(TEMP)
    msg = str(e.value)
    assert msg.startswith("not stable after 30 s: spread 0.30 > 0.10 °C (last 5 readings: ")
    assert "--point-timeout" in e.value.hint and "--spread" in e.value.hint
    assert e.value.exit_code == 9
    assert bench.reads == 30  # one a second of fake time, timing out at 30 s
    assert bench.statuses[-1].elapsed_s == pytest.approx(30.0)


def test_a_slow_steady_drift_is_caught_by_the_drift_limit_alone() -> None:
    loose = Rule(spread=1.0, drift_per_min=0.1, timeout_s=20.0, unit="°C")
    bench = Bench(20.0 + 0.01 * i for i in range(1000))  # 0.6 °C per minute
    with pytest.raises(CalibrationError) as e:
        bench.collect(loose)
    assert "drift 0.60 > 0.10 °C/min" in str(e.value)
    assert "spread" not in str(e.value).split("(")[0]
    assert bench.statuses[-1].drift_per_min == pytest.approx(0.6)


def test_nan_and_infinite_readings_are_never_stable() -> None:
    bench = Bench([21.0, 21.0, math.nan, 21.0, 21.0, 21.0, 21.0, 21.0, 21.0])
    got = bench.collect(TEMP)
    assert bench.reads == 8  # not before the NaN has left the window
    assert got.raw == 21.0
    assert "reading 3/5 is nan" in bench.statuses[4].why

    bench = Bench(forever([21.0]), refs=forever([math.inf]))
    with pytest.raises(CalibrationError) as e:
        bench.collect(TEMP, reference_rule=TEMP)
    assert "reading 1/5's reference is inf" in str(e.value)

    bench = Bench(forever([21.0]), temps=forever([math.nan]))
    with pytest.raises(CalibrationError, match="temperature is nan"):
        bench.collect(TEMP)


def test_a_live_reference_must_settle_too() -> None:
    raws = [21.0] * 9
    moving = [20.0, 20.5, 21.0, 21.5, 22.0, 22.02, 22.0, 22.02, 22.0]
    bench = Bench(raws, refs=moving)
    got = bench.collect(TEMP, reference_rule=TEMP)
    assert bench.reads == 9
    assert any(s.why.startswith("reference spread 2.00 > 0.10 °C") for s in bench.statuses)
    assert got.reference == pytest.approx(22.008)
    assert got.reference_spread == pytest.approx(0.02)
    assert bench.statuses[-1].ref_spread == pytest.approx(0.02)

    # Without a rule for it, the reference is averaged but not judged.
    bench = Bench(raws, refs=moving)
    got = bench.collect(TEMP)
    assert bench.reads == 5 and got.reference == pytest.approx(21.0)
    assert got.reference_spread == pytest.approx(2.0)

    # A reference missing from some readings of the window is not a stable one.
    status = judge(
        [Reading(T0 + i, 21.0, reference=None if i == 2 else 21.0) for i in range(5)], TEMP
    )
    assert not status.stable and status.why == "reference missing from some readings"


def test_the_dwell_comes_first_and_the_interval_between_readings() -> None:
    rule = Rule(spread=0.1, drift_per_min=0.1, dwell_s=120.0, interval_s=10.0, timeout_s=60.0)
    bench = Bench(forever([21.0]))
    got = bench.collect(rule)
    assert bench.sleeps == [120.0, 10.0, 10.0, 10.0, 10.0]
    assert got.readings[0].t == pytest.approx(T0 + 121.0)
    assert got.readings[-1].t - got.readings[0].t == pytest.approx(44.0)

    # The timeout counts from the first reading, not through the dwell.
    bench = Bench(forever([21.0, 21.5]))
    with pytest.raises(CalibrationError, match="not stable after 30 s"):
        bench.collect(Rule(spread=0.1, drift_per_min=0.1, dwell_s=600.0, timeout_s=30.0))
    assert bench.reads == 30 and bench.sleeps == [600.0]


def test_readings_without_time_between_them_cannot_show_their_drift() -> None:
    same = [Reading(T0, 21.0) for _ in range(5)]
    status = judge(same, TEMP)
    assert not status.stable and status.why == "no time between readings to judge drift by"
    assert slope_per_min([0, 60, 120], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert slope_per_min([0, 30, 60, 90], [5.0, 4.0, 6.0, 5.0]) == pytest.approx(0.4)
    assert slope_per_min([0], [1.0]) is None


def test_default_rules_and_refused_rules() -> None:
    assert default_rule("temperature") == Rule(spread=0.1, drift_per_min=0.1, unit="°C")
    assert default_rule("co2").spread == 15 and default_rule("co2").unit == "ppm"
    assert default_rule("voltage").drift_per_min == 0.005
    assert default_rule("current").spread == 0.001
    rules = {q: default_rule(q) for q in refs.QUANTITIES}
    assert all(r.window == 5 and r.timeout_s == 300 for r in rules.values())
    with pytest.raises(ConfigError, match="no stability rule for quantity 'colour'"):
        default_rule("colour")
    with pytest.raises(ConfigError, match="at least 2 readings"):
        Rule(window=1, spread=0.1, drift_per_min=0.1)
    with pytest.raises(ConfigError, match="spread must be >= 0"):
        Rule(spread=-1, drift_per_min=0.1)
    with pytest.raises(ConfigError, match="more than 0 s"):
        Rule(spread=1, drift_per_min=0.1, timeout_s=0)
    with pytest.raises(ConfigError, match="interval_s"):
        Rule(spread=1, drift_per_min=0.1, interval_s=math.nan)
    with pytest.raises(
        ConfigError, match="5 readings 10 s apart take longer than the point timeout"
    ):
        Rule(spread=1, drift_per_min=0.1, interval_s=10, timeout_s=40)


# ---- typed and fixed references --------------------------------------------------------------


def answers(*texts: str) -> tuple[Callable[[str], str], list[str]]:
    prompts: list[str] = []
    it = iter(texts)

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(it)

    return ask, prompts


def test_a_manual_reference_asks_again_on_garbage_and_stops_on_quit() -> None:
    ask, prompts = answers("abc", "21,5", " 21.5 ")
    ref = ManualReference(ask)
    assert not ref.live and ref.description == "manual"
    assert ref.ask("Reference °C") == 21.5
    assert prompts[0] == "Reference °C"
    assert prompts[1] == "Reference °C ('abc' is not a number; q quits)"
    assert "use a dot for decimals" in prompts[2]

    ask, prompts = answers("x", "", "nan", "22")
    with pytest.raises(CalibrationError) as e:
        ManualReference(ask).ask("Reference")
    assert str(e.value) == "no reference value after 3 tries: 'nan' is not a finite number"
    assert len(prompts) == 3

    for quit_text in ("q", "QUIT"):
        ask, _ = answers(quit_text)
        with pytest.raises(CalibrationError, match="stopped"):
            ManualReference(ask).ask("Reference")

    def ended(prompt: str) -> str:
        raise EOFError

    with pytest.raises(CalibrationError, match="input ended"):
        ManualReference(ended).ask("Reference")


def test_a_value_reference_gives_one_value_for_all_points_or_one_per_point() -> None:
    ice = ValueReference([0.0])
    assert not ice.live and ice.description == "value 0"
    ice.index = 3
    assert ice.ask("ignored") == 0.0

    soil = ValueReference([0, 100])
    assert soil.description == "values 0, 100"
    assert soil.ask("") == 0.0
    soil.index = 1
    assert soil.ask("") == 100.0
    soil.index = 2
    with pytest.raises(CalibrationError, match="point 3 has no reference value: 2 values"):
        soil.ask("")
    with pytest.raises(ConfigError):
        ValueReference([])
    with pytest.raises(ConfigError, match="finite"):
        ValueReference([1.0, math.inf])


# ---- CSV logs ----------------------------------------------------------------------------------


@pytest.fixture
def utc_plus_2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This computer's local time is UTC+2 (naive timestamps in logs are read as local)."""
    monkeypatch.setenv("TZ", "XXX-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def write(tmp_path: Path, text: str, name: str = "ref.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_csv_log_is_interpolated_at_the_reading_time(tmp_path: Path, utc_plus_2: None) -> None:
    # Rows in four timestamp forms, a header, a blank line, a comment, extra columns.
    log = write(
        tmp_path,
        "time,temperature,status\n"
        "2027-01-15T08:00:00Z,20.0,ok\n"
        "2027-01-15T10:00:30+02:00,21.0,ok\n"  # = 08:00:30Z
        "\n"
        "# the logger's comment\n"
        "2027-01-15T10:01:00,22.0\n"  # naive: local time, UTC+2 = 08:01:00Z
        f"{1800000000 + 90},22.0\n"  # Unix seconds = 08:01:30Z
        "2027-01-15 08:02:00Z,23.5\n",
    )
    start = 1800000000.0
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)) == "2027-01-15T08:00:00Z"
    ref = CsvReference(log)
    assert ref.live and ref.description == "csv:ref.csv"
    assert ref.read(start) == 20.0
    assert ref.read(start + 15) == pytest.approx(20.5)
    assert ref.read(start + 45) == pytest.approx(21.5)
    assert ref.read(start + 60) == 22.0
    assert ref.read(start + 80) == pytest.approx(22.0)
    assert ref.read(start + 100) == pytest.approx(22.5)
    assert ref.read(start + 120) == 23.5
    assert ref.covers == "2027-01-15T10:00:00+02:00..2027-01-15T10:02:00+02:00"


def test_times_outside_a_csv_log_or_in_its_gaps_are_refused(
    tmp_path: Path, utc_plus_2: None
) -> None:
    log = write(
        tmp_path,
        "1800000000,20.0\n1800000030,20.5\n1800000060,NaN\n1800000090,\n1800000120,21.0\n",
    )
    ref = CsvReference(log, max_gap_s=60.0)
    assert ref.read(1800000015) == pytest.approx(20.25)
    with pytest.raises(CalibrationError) as e:
        ref.read(1800000100)  # NaN and empty values: 30 s .. 120 s is one 90 s gap
    assert str(e.value) == (
        "the reference log ref.csv has a gap of 90 s around 2027-01-15T10:01:40+02:00 "
        "(at most 60 s); it covers 2027-01-15T10:00:00+02:00..2027-01-15T10:02:00+02:00"
    )
    assert CsvReference(log, max_gap_s=120.0).read(1800000100) == pytest.approx(
        20.5 + 0.5 * 70 / 90
    )
    for t in (1799999999.0, 1800000121.0):
        with pytest.raises(CalibrationError) as e:
            ref.read(t)
        assert "is outside the reference log ref.csv, which covers 2027-01-15T10:00:00" in str(
            e.value
        )
        assert "clocks" in e.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no rows"),
        ("time,value\n\n", "has no rows"),
        ("time,value\n1800000000,20\nyesterday,21\n", "line 3: 'yesterday' is not a time"),
        ("1800000000,20\n1800000030,warm\n", "line 2: 'warm' is not a number"),
        ("1800000000;20\n", "line 1: expected timestamp,value"),
        ("1800000000,20\n1800000000,21\n", "line 2: the time is not after the previous row's"),
        ("1800000060,20\n1800000000,21\n", "line 2: the time is not after"),
        ("1800000000,20\n1800000030,inf\n", "line 2: the value 'inf' is not finite"),
        ("2027-01-15T08:00:00Z,20\n2027-13-01T00:00:00Z,21\n", "line 2:"),
    ],
)
def test_a_bad_csv_log_is_a_config_error_naming_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        CsvReference(write(tmp_path, text))
    assert message in str(e.value)


def test_a_missing_csv_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no reference log .*nothere.csv"):
        CsvReference(tmp_path / "nothere.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read the reference log"):
        CsvReference(tmp_path / "bin.csv")


# ---- parse_reference ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "port", "channel"),
    [
        ("sim:sim-esp32", "sim:sim-esp32", "sht4x.temperature"),
        ("sim:sim-esp32:sht4x.humidity", "sim:sim-esp32", "sht4x.humidity"),
        ("COM3", "COM3", "sht4x.temperature"),
        ("COM3:ref_2.temperature", "COM3", "ref_2.temperature"),
        ("/dev/ttyUSB1:bme280.pressure", "/dev/ttyUSB1", "bme280.pressure"),
        ("socket://localhost:7000", "socket://localhost:7000", "sht4x.temperature"),
        ("rfc2217://10.0.0.2:7000:scd41.co2", "rfc2217://10.0.0.2:7000", "scd41.co2"),
    ],
)
def test_a_port_reference_spec_splits_its_channel_off_the_port(
    rest: str, port: str, channel: str
) -> None:
    assert split_port_channel(rest, "sht4x.temperature") == (port, channel)


@pytest.mark.parametrize(
    ("rest", "message"),
    [
        ("COM3:sht4x.colour", "'sht4x.colour' is not a channel"),
        ("COM3:SHT4x.temperature", "'SHT4x.temperature' is not a channel"),
        ("COM3:a_very_long_sensor_id.temperature", "is not a channel"),
        (":sht4x.temperature", "port: needs a port"),
        ("", "port: needs a port"),
    ],
)
def test_a_bad_port_reference_spec_is_refused(rest: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_port_channel(rest, "sht4x.temperature")


def test_parse_reference_builds_each_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ask(prompt: str) -> str:
        raise AssertionError("nothing is asked while parsing")

    resolved: list[str] = []

    def resolve(port: str) -> str:
        resolved.append(port)
        return "/dev/pts/9" if port.startswith("sim:") else port

    def parse(spec: str) -> refs.Reference:
        return parse_reference(
            spec, quantity_channel="sht4x.humidity", resolve_port=resolve, ask=no_ask, wait_s=7
        )

    assert isinstance(parse("manual"), ManualReference)
    value = parse("value:0")
    assert isinstance(value, ValueReference) and value.values == [0.0]
    value = parse("value:0, 100")
    assert isinstance(value, ValueReference) and value.values == [0.0, 100.0]
    log = write(tmp_path, "1800000000,40.0\n")
    csv = parse(f"csv:{log}")
    assert isinstance(csv, CsvReference) and csv.read(1800000000) == 40.0

    opened: list[tuple[Any, ...]] = []
    sentinel = refs.Reference()

    def fake_open(port: str, channel: str, wait_s: float, *, name: str | None = None) -> Any:
        opened.append((port, channel, wait_s, name))
        return sentinel

    monkeypatch.setattr(refs, "open_port_reference", fake_open)
    assert parse("port:sim:sim-rp2") is sentinel
    assert parse("port:sim:sim-rp2:ref.temperature") is sentinel
    assert parse("port:COM3") is sentinel
    # The uncertainty the user states goes with every form.
    stated = parse_reference(
        "value:0", quantity_channel="a.b", resolve_port=resolve, ask=no_ask, wait_s=1,
        uncertainty=0.05,
    )  # fmt: skip
    assert stated.uncertainty == 0.05
    assert resolved == ["sim:sim-rp2", "sim:sim-rp2", "COM3"]
    assert opened == [
        ("/dev/pts/9", "sht4x.humidity", 7, "sim:sim-rp2"),
        ("/dev/pts/9", "ref.temperature", 7, "sim:sim-rp2"),
        ("COM3", "sht4x.humidity", 7, "COM3"),
    ]

    for bad in (
        "",
        "Manual",
        "manual:x",
        "nope",
        "port",
        "csv:",
        "value:",
        "value:abc",
        "value:1,,2",
    ):
        with pytest.raises(ConfigError) as e:
            parse(bad)
        assert e.value.hint == refs.FORMS_HINT, bad


def test_descriptions_fit_in_64_characters(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 80) / "instrument_log_2026.csv"
    assert refs.describe("csv:", str(long)).endswith("/instrument_log_2026.csv")
    assert len(refs.describe("csv:", str(long))) == 64
    assert refs.describe("port:", "/dev/ttyUSB1 sht41.humidity") == (
        "port:/dev/ttyUSB1 sht41.humidity"
    )


# ---- another node as the reference (the firmware on a virtual board) ---------------------------

CONFIG = {
    "sample_period": 60,
    "host_wait_ms": 3000,
    "sensors": [{"kind": "battery"}, {"kind": "sht4x"}],
}


def wait_asleep(fw: Any, timeout_s: float = 15.0) -> None:
    # Released, the node runs its cycle and sleeps; held, it would stay awake.
    deadline = time.monotonic() + timeout_s
    while fw.control("status")["mode"] == "awake":
        assert time.monotonic() < deadline, "the reference node was not released"
        time.sleep(0.1)


def test_another_node_as_the_reference() -> None:
    with firmware_node("sim-esp32", CONFIG, models=[SHT41]) as fw:
        fw.control("env", temperature_c=23.5, humidity_rh=40.0)
        fw.let_go_of_port()
        with open_port_reference(fw.sim.port, "sht4x.temperature", 10, name="sim:sim-esp32") as ref:
            assert isinstance(ref, PortReference) and ref.live and ref.client.caught
            assert ref.description == "port:sim:sim-esp32 sht4x.temperature"
            assert ref.read(time.time()) == pytest.approx(23.5, abs=0.2)
            fw.control("env", temperature_c=30.0)
            assert ref.read(time.time()) == pytest.approx(30.0, abs=0.2)
            assert fw.control("status")["mode"] == "awake"  # held between readings
        assert ref.client.transport.serial is None  # type: ignore[attr-defined]
        wait_asleep(fw)

        # A channel the node does not have: named with the ones it has; released, port closed.
        fw.reset()
        with pytest.raises(CalibrationError) as e:
            open_port_reference(fw.sim.port, "sht4x.pressure", 10, name="sim:sim-esp32")
        assert str(e.value) == (
            "the reference node on sim:sim-esp32 has no channel sht4x.pressure (its channels: "
            "battery.voltage, sht4x.humidity, sht4x.temperature)"
        )
        wait_asleep(fw)

        # A reference sensor that does not answer.
        fw.reset()
        fw.control("fault", target="i2c0:0x44", spec="detach")
        client = NodeClient(SerialTransport(fw.sim.port))
        with pytest.raises(CalibrationError, match="on sim:sim-esp32 could not read sht4x"):
            PortReference(client, "sht4x.humidity", wait_s=10, name="sim:sim-esp32").open()
        assert not client.caught
        client.transport.close()  # type: ignore[attr-defined]
        wait_asleep(fw)


def test_a_reference_port_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match=r"^reference node: no serial port"):
        open_port_reference(str(tmp_path / "ttyNONE"), "sht4x.temperature", 0.5)


# ---- stimulus ----------------------------------------------------------------------------------


def test_the_stimulus_runs_through_the_shell_with_its_setpoint(tmp_path: Path) -> None:
    out = tmp_path / "setpoint.txt"
    template = "X=at; echo ${X} {setpoint} >> " + shlex.quote(str(out))
    check_template(template)
    for sp in (10.0, 25.5, -5.0, 0.00001):
        run_stimulus(template, sp)
    assert out.read_text().splitlines() == ["at 10", "at 25.5", "at -5", "at 1e-05"]
    assert command_for("set {setpoint}; echo {setpoint}", 40.0) == "set 40; echo 40"


def test_a_failing_stimulus_names_the_command_and_its_last_error_line() -> None:
    with pytest.raises(CalibrationError) as e:
        run_stimulus(
            "echo starting; echo 'chamber: ' {setpoint} >&2; echo 'no link' >&2; exit 3", 25
        )
    assert str(e.value) == (
        "the stimulus command failed (exit 3): echo starting; echo 'chamber: ' 25 >&2; "
        "echo 'no link' >&2; exit 3: no link"
    )
    with pytest.raises(CalibrationError, match=r"\(exit 127\): chamberctl-missing 25: .*not found"):
        run_stimulus("chamberctl-missing {setpoint}", 25)


def test_a_stimulus_that_hangs_is_stopped_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    start = time.monotonic()
    with pytest.raises(CalibrationError) as e:
        run_stimulus(
            f"echo {{setpoint}}; sleep 1; touch {shlex.quote(str(marker))}", 5, timeout_s=0.3
        )
    assert time.monotonic() - start < 1.0
    assert str(e.value).startswith("the stimulus command did not finish within 0.3 s: echo 5;")
    time.sleep(1.5)
    assert not marker.exists()  # the shell's children were killed too


def test_a_stimulus_template_needs_its_setpoint() -> None:
    with pytest.raises(ConfigError, match="has no {setpoint}"):
        check_template("chamberctl set 25")
    with pytest.raises(ConfigError, match="empty"):
        check_template("  ")
    with pytest.raises(ConfigError, match="has no {setpoint}"):
        run_stimulus("true", 25)
    with pytest.raises(ConfigError, match="finite"):
        command_for("set {setpoint}", math.nan)


def test_setpoints_are_parsed_in_order_and_refused_when_bad() -> None:
    assert parse_setpoints("10,25,40") == [10.0, 25.0, 40.0]
    assert parse_setpoints(" 40 , -5.5,1e2") == [40.0, -5.5, 100.0]
    assert parse_setpoints("7") == [7.0]
    for bad, message in [
        ("", "no setpoints"),
        (" ", "no setpoints"),
        ("10,,40", "setpoint 2 of '10,,40' is empty"),
        ("10,", "is empty"),
        ("10,warm", "'warm' is not a number"),
        ("dry,wet", "'dry' is not a number"),
        ("10,nan", "'nan' is not a finite number"),
        ("10,inf", "'inf' is not a finite number"),
        ("10,25,10.0", "setpoint 10.0 is given twice"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_setpoints(bad)
        assert message in str(e.value), bad
        assert "--setpoints 10,25,40" in e.value.hint
