"""Where a calibration point's reference value comes from.

    with parse_reference("port:sim:sim-rp2", quantity_channel="sht4x.temperature",
                         resolve_port=resolve_port, ask=click.prompt, wait_s=5) as ref:
        if ref.live:
            value = ref.read(time.time())       # with each reading
        else:
            value = ref.ask("reference °C")     # once per point, after it is stable

- ManualReference: the user types the value (not live).
- ValueReference: known values, one per point or one for all (not live).
- PortReference: another Motekit node's reading of a channel (live; held while open).
- CsvReference: a reference instrument's log, interpolated at the reading's time (live).

`description` (at most 64 characters) goes into /cal.json's "ref" and the certificate;
`uncertainty` is the reference's own standard uncertainty in the quantity's unit (0: unknown).
"""

import bisect
import contextlib
import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from host_tools.calibration.sensors import QUANTITIES
from host_tools.errors import (
    CalibrationError,
    ConfigError,
    MoteError,
    ProtocolError,
    TransportError,
)
from host_tools.protocol.client import NodeClient
from host_tools.transport.serial import SerialTransport

MAX_DESCRIPTION = 64
MANUAL_TRIES = 3
CHANNEL = re.compile(r"[a-z0-9_]{1,16}\.[a-z0-9_]+")
_LOOKS_LIKE_CHANNEL = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_]+")

FORMS_HINT = (
    "--reference takes: manual (type each value), port:PORT[:SENSOR.QUANTITY] (another node), "
    "csv:FILE (an instrument's log: timestamp,value rows), value:X[,Y...] (known values)"
)


def describe(prefix: str, body: str) -> str:
    """prefix + body in at most MAX_DESCRIPTION characters, keeping body's end (a file's name)."""
    text = prefix + body
    if len(text) <= MAX_DESCRIPTION:
        return text
    keep = MAX_DESCRIPTION - len(prefix) - 3
    return prefix + "..." + body[-keep:] if keep > 0 else text[:MAX_DESCRIPTION]


class Reference:
    """A source of reference values. Live ones are read() with each reading; the others are
    ask()ed once per point, after it is stable."""

    description: str = ""
    uncertainty: float = 0.0
    live: bool = False

    def read(self, t: float) -> float:
        """The reference's value at time t (time.time()); live references only."""
        raise NotImplementedError(f"{type(self).__name__} is not a live reference")

    def ask(self, prompt: str) -> float:
        """The reference value for the point just collected; non-live references only."""
        raise NotImplementedError(f"{type(self).__name__} is a live reference: read() it")

    def at_point(self, index: int) -> None:
        """The session is about to collect point `index` (0, 1, ...)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Reference":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        with contextlib.suppress(MoteError):  # the error that brought us here says more
            self.close()


class ManualReference(Reference):
    """The user reads the reference instrument and types its value; q or quit stops."""

    live = False

    def __init__(self, ask: Callable[[str], str], uncertainty: float = 0.0) -> None:
        self._ask = ask
        self.description = "manual"
        self.uncertainty = uncertainty

    def ask(self, prompt: str) -> float:
        question = prompt
        for _ in range(MANUAL_TRIES):
            try:
                answer = self._ask(question).strip()
            except EOFError:
                raise CalibrationError(
                    "no reference value: the input ended", hint="type a value, or q to quit"
                ) from None
            if answer.lower() in ("q", "quit"):
                raise CalibrationError("calibration stopped at the reference prompt (quit)")
            value, problem = _number(answer)
            if value is not None:
                return value
            question = f"{prompt} ({problem}; q quits)"
        raise CalibrationError(
            f"no reference value after {MANUAL_TRIES} tries: {problem}",
            hint="type the reference instrument's reading as a number such as 23.45, or q to quit",
        )


def _number(text: str) -> tuple[float | None, str]:
    # A typed value, or None and what is wrong with it. "23,4" is refused, not guessed: it may
    # be a decimal comma or a thousands separator ("1,000" ppm).
    if not text:
        return None, "no value typed"
    if "," in text:
        return None, f"{text!r}: use a dot for decimals and no thousands separator"
    try:
        value = float(text)
    except ValueError:
        return None, f"{text!r} is not a number"
    if not math.isfinite(value):
        return None, f"{text!r} is not a finite number"
    return value, ""


class ValueReference(Reference):
    """Known values: one for every point, or one per point. The session sets `index` to the
    point being collected (0, 1, ...) before ask()."""

    live = False

    def __init__(self, values: Sequence[float], uncertainty: float = 0.0) -> None:
        vals = [float(v) for v in values]
        if not vals:
            raise ConfigError("a value reference needs at least one value")
        bad = [v for v in vals if not math.isfinite(v)]
        if bad:
            raise ConfigError(f"reference values must be finite numbers, not {bad[0]}")
        self.values = vals
        self.index = 0
        self.uncertainty = uncertainty
        body = ", ".join(f"{v:g}" for v in vals)
        self.description = describe("value " if len(vals) == 1 else "values ", body)

    @property
    def value(self) -> float:
        """The value for point `index`: the only value, or that point's."""
        if len(self.values) == 1:
            return self.values[0]
        if not 0 <= self.index < len(self.values):
            raise CalibrationError(
                f"point {self.index + 1} has no reference value: "
                f"{len(self.values)} values were given",
                hint="give one reference value per point, or one for all of them",
            )
        return self.values[self.index]

    def at_point(self, index: int) -> None:
        self.index = index

    def ask(self, prompt: str) -> float:
        return self.value


class PortReference(Reference):
    """Another Motekit node on its own serial port: each read() takes one `read` from it and its
    calibrated value of `channel`. The node is held from open() (or the first read) to close().
    """

    live = True

    def __init__(
        self,
        client: NodeClient,
        channel: str,
        *,
        wait_s: float = 5.0,
        name: str | None = None,
        uncertainty: float = 0.0,
        owns_transport: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.wait_s = wait_s
        self.name = name or client.transport.name
        self.uncertainty = uncertainty
        self.description = describe("port:", f"{self.name} {channel}")
        self.timeout_s = timeout_s
        self._owns_transport = owns_transport
        self._open = False

    def open(self) -> "PortReference":
        """Catch (hold) the node and check it has the channel."""
        if not self._open:
            self.client.catch(self.wait_s)
            self._open = True
            try:
                self._value()
            except BaseException:
                self.close()
                raise
        return self

    def __enter__(self) -> "PortReference":
        return self.open()

    def read(self, t: float) -> float:
        self.open()
        return self._value()

    def _value(self) -> float:
        sid = self.channel.split(".")[0]  # its sensor only: quicker, and lighter on its heap
        data = self.client.request("read", timeout=self.timeout_s, sensors=[sid])
        samples = data.get("samples")
        if not isinstance(samples, list) or not samples or not isinstance(samples[0], dict):
            raise ProtocolError(
                f"the reference node on {self.name} sent no sample: {data}", err="bad_reply"
            )
        sample: dict[str, Any] = samples[0]
        values = sample.get("values")
        values = values if isinstance(values, dict) else {}
        sensor = self.channel.split(".", 1)[0]
        if self.channel not in values:
            errors = sample.get("errors")
            if sensor in (sample.get("missing") or []):
                error = errors.get(sensor) if isinstance(errors, dict) else None
                raise CalibrationError(
                    f"the reference node on {self.name} could not read {sensor}"
                    + (f": {error}" if error else ""),
                    hint="check the reference sensor's wiring",
                )
            # Say what the node does have: one full read, only on this way out.
            whole = self.client.request("read", timeout=self.timeout_s)["samples"][0]
            have = ", ".join(sorted(whole.get("values") or {})) or "none"
            raise CalibrationError(
                f"the reference node on {self.name} has no channel {self.channel} "
                f"(its channels: {have})",
                hint="name the channel: --reference port:PORT:SENSOR.QUANTITY",
            )
        if self.channel in (sample.get("uncal") or []):
            raise CalibrationError(
                f"the reference node on {self.name} could not apply its calibration "
                f"to {self.channel}",
                hint="check the reference node's calibration: `mote calibrate --show`",
            )
        value = values[self.channel]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(
                f"the reference node on {self.name} sent {self.channel} = {value!r}",
                err="bad_reply",
            )
        return float(value)

    def close(self) -> None:
        try:
            if self._open:
                self._open = False
                self.client.release_if_caught(timeout=1.0, retries=1)
        finally:
            if self._owns_transport:
                close = getattr(self.client.transport, "close", None)
                if close is not None:
                    close()


def open_port_reference(
    port: str, channel: str, wait_s: float, *, name: str | None = None
) -> PortReference:
    """A PortReference on `port` (resolved already), opened: the node held, `channel` checked.
    `name` is the port as the user gave it (sim:sim-esp32), for messages and the description."""
    label = name or port
    try:
        transport = SerialTransport(port)
    except TransportError as exc:
        raise TransportError(f"reference node: {exc}", hint=exc.hint) from exc
    ref = PortReference(
        NodeClient(transport), channel, wait_s=wait_s, name=label, owns_transport=True
    )
    try:
        return ref.open()
    except ProtocolError as exc:
        ref.close()
        raise ProtocolError(f"reference node on {label}: {exc}", exc.hint, exc.err) from exc
    except BaseException:
        ref.close()
        raise


class CsvReference(Reference):
    """A reference instrument's log: rows "timestamp,value" (a header row allowed, more columns
    ignored, blank and # lines skipped, an empty or NaN value taken as a gap). Timestamps are
    Unix seconds or ISO 8601: with Z or an offset, or naive in this computer's local time.
    read(t) interpolates linearly between the rows around t."""

    live = True

    def __init__(self, path: Path | str, max_gap_s: float = 60.0, uncertainty: float = 0.0) -> None:
        if not max_gap_s > 0:
            raise ConfigError(f"the reference log's largest gap must be more than 0 s: {max_gap_s}")
        self.path = Path(path)
        self.max_gap_s = max_gap_s
        self.uncertainty = uncertainty
        self.description = describe("csv:", self.path.name)
        self.times, self.values = _load_log(self.path)

    @property
    def covers(self) -> str:
        return f"{_when(self.times[0])}..{_when(self.times[-1])}"

    def read(self, t: float) -> float:
        times = self.times
        if not times[0] <= t <= times[-1]:
            raise CalibrationError(
                f"{_when(t)} is outside the reference log {self.path.name}, "
                f"which covers {self.covers}",
                hint="log for the whole calibration, and check both computers' clocks "
                "(naive timestamps are read as this computer's local time)",
            )
        i = bisect.bisect_left(times, t)
        if times[i] == t:
            return self.values[i]
        t0, t1 = times[i - 1], times[i]
        if t1 - t0 > self.max_gap_s:
            raise CalibrationError(
                f"the reference log {self.path.name} has a gap of {t1 - t0:.0f} s around "
                f"{_when(t)} (at most {self.max_gap_s:g} s); it covers {self.covers}",
                hint="log more often, or check that the instrument kept logging",
            )
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def parse_timestamp(text: str) -> float:
    """Unix seconds, or ISO 8601 (Z or an offset; naive is local time); ValueError otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a time")
        return value
    if not text or not text[0].isdigit():
        raise ValueError(f"{text!r} is not a time")
    stamp = datetime.fromisoformat(text)  # ValueError for anything else
    return stamp.timestamp()  # naive: local time


def _load_log(path: Path) -> tuple[list[float], list[float]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"no reference log {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the reference log {path}: {exc}") from exc
    times: list[float] = []
    values: list[float] = []
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip().strip('"') for c in line.split(",")]
        if first:
            first = False
            if not cells[0][:1].isdigit() and cells[0][:1] not in "+-.":
                continue  # a header row: its first cell is no time
        try:
            if len(cells) < 2:
                raise ValueError("expected timestamp,value")
            t = parse_timestamp(cells[0])
            value = _cell_value(cells[1])
        except ValueError as exc:
            raise ConfigError(
                f"{path}, line {lineno}: {exc}: {line.strip()[:60]!r}",
                hint="rows are timestamp,value: Unix seconds or ISO 8601 "
                "(2026-11-21T10:15:00Z), then a number",
            ) from None
        if times and t <= times[-1]:
            raise ConfigError(
                f"{path}, line {lineno}: the time is not after the previous row's",
                hint="the log must be in time order, one row per time",
            )
        if math.isfinite(value):
            times.append(t)
            values.append(value)
        elif not math.isnan(value):
            raise ConfigError(f"{path}, line {lineno}: the value {cells[1]!r} is not finite")
        # NaN or empty: the instrument had no value then; the rows around it make a gap.
    if not times:
        raise ConfigError(
            f"the reference log {path} has no rows",
            hint="rows are timestamp,value, e.g. 2026-11-21T10:15:00Z,21.43",
        )
    return times, values


def _cell_value(text: str) -> float:
    # A log's value; NaN for an empty cell (the instrument had no value then).
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def parse_reference(
    spec: str,
    *,
    quantity_channel: str,
    resolve_port: Callable[[str], str],
    ask: Callable[[str], str],
    wait_s: float,
    uncertainty: float = 0.0,
) -> Reference:
    """The --reference option: manual, port:PORT[:SENSOR.QUANTITY], csv:FILE, value:X[,Y...].
    A port reference is opened (its node held) before this returns. `uncertainty` is the
    reference's standard uncertainty as the user states it (0: not stated)."""
    ref = _parse(spec, quantity_channel, resolve_port, ask, wait_s)
    ref.uncertainty = uncertainty
    return ref


def _parse(
    spec: str,
    quantity_channel: str,
    resolve_port: Callable[[str], str],
    ask: Callable[[str], str],
    wait_s: float,
) -> Reference:
    kind, sep, rest = spec.partition(":")
    if spec == "manual":
        return ManualReference(ask)
    if sep and kind == "port":
        port, channel = split_port_channel(rest, quantity_channel)
        return open_port_reference(resolve_port(port), channel, wait_s, name=port)
    if sep and kind == "csv":
        if not rest:
            raise ConfigError("csv: needs a file: --reference csv:FILE", hint=FORMS_HINT)
        return CsvReference(rest)
    if sep and kind == "value":
        values = []
        for part in rest.split(","):
            value, problem = _number(part.strip())
            if value is None:
                raise ConfigError(f"--reference {spec}: {problem}", hint=FORMS_HINT)
            values.append(value)
        return ValueReference(values)
    raise ConfigError(f"unknown reference {spec!r}", hint=FORMS_HINT)


def split_port_channel(rest: str, default_channel: str) -> tuple[str, str]:
    """ "P2" or "P2:SENSOR.QUANTITY" -> (port, channel). P2 may hold ':' (sim:sim-esp32,
    socket://host:7000): the last ':'-part is the channel only when it looks like one."""
    port, sep, last = rest.rpartition(":")
    if sep and _LOOKS_LIKE_CHANNEL.fullmatch(last):
        channel = last
    else:
        port, channel = rest, default_channel
    if not port:
        raise ConfigError("port: needs a port: --reference port:PORT[:SENSOR.QUANTITY]")
    quantity = channel.partition(".")[2]
    if not CHANNEL.fullmatch(channel) or quantity not in QUANTITIES:
        raise ConfigError(
            f"{channel!r} is not a channel",
            hint="a channel is SENSOR.QUANTITY: a sensor id of 1..16 of a-z 0-9 _, and one of "
            + ", ".join(QUANTITIES),
        )
    return port, channel
