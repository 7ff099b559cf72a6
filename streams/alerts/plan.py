"""The war room's plan and a user's own history as the detector reads them (issue 17 item 4, item 8).

Pure (numpy and the standard library): the CLI and the store do the I/O.

- `Plan`: expected counts per minute for (scope, metric), on a regular minute grid. The detector
  uses its *shape* and scales its level to live traffic, so a plan may be off in level.
- `parse_plan_csv`: `minute,metric,expected[,campaign_id,channel]`, minute ISO 8601 UTC (`Z` or an
  offset, a whole minute), the format of `promo plan import`. Every line is checked; errors carry
  line numbers. A plan of zeros is refused: it expects nothing.
- `plan_from_series`: a plan from a stored day's counts (`promo plan from-day DATE`).
- `parse_series_csv`: `ts,metric,value[,campaign_id,channel]` at any regular step from 10 s to 1 h,
  the file of `promo alerts backtest`. A series (scope, metric) has a row at every step from its
  first to the file's last: a missing row is an error, not a zero (a zero would read as an outage).

Both files: values from 0 to 1e12, a span of at most 31 days, at most 20 million values laid out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.alerts.scope import METRICS, Scope

FloatArray = npt.NDArray[Any]  # numpy's float dtypes do not survive arithmetic in the stubs

PLAN_COLUMNS = ("minute", "metric", "expected", "campaign_id", "channel")
SERIES_COLUMNS = ("ts", "metric", "value", "campaign_id", "channel")
MIN_STEP_S = 10
MAX_STEP_S = 3600
MAX_SPAN_S = 31 * 86400  # a file spanning longer is a typo (a year off), and its grid would not fit in memory
MAX_VALUE = 1e12  # a count (or fen of GMV) a step above this is no count; the detector's sums would overflow
MAX_VALUES = 20_000_000  # the grid of every series x every step (160 MB): a few sparse rows must not ask for GiBs


class PlanError(ValueError):
    """A file the user gave cannot be read; the message names the line and says why, in one line."""


FIRST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC).timestamp()
LAST_TIME = dt.datetime(9999, 1, 1, tzinfo=dt.UTC).timestamp()


def parse_utc(text: str) -> float:
    """ISO 8601 with `Z` or an offset -> epoch seconds. A time without an offset is refused: whose midnight?"""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        plain = text.strip()  # whose midnight? Say it: the same time as UTC or as Beijing time
        raise ValueError(f"{text!r} has no UTC offset (write {plain}Z for UTC, or {plain}+08:00 for Beijing time)")
    try:
        when.astimezone(dt.UTC)  # year 9999 at -14:00 is in year 10000 in UTC, which no date holds
    except OverflowError:
        raise ValueError(f"{text!r} is out of the range of dates") from None
    return when.timestamp()


def iso_utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


def iso(value: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, as every `--json` line and the JSON webhook give times."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PlanRow:
    minute: float  # epoch seconds of the minute's start
    metric: str
    expected: float
    scope: Scope


class Plan:
    """Expected count per minute for each (scope, metric), on one grid starting at `t0` (epoch s).

    Minutes the plan does not list count as 0 (the campaign is not running then)."""

    def __init__(self, t0: float, series: Mapping[tuple[Scope, str], FloatArray], step_s: float = 60.0) -> None:
        self.t0 = float(t0)
        self.step_s = float(step_s)
        self.keys: tuple[tuple[Scope, str], ...] = tuple(sorted(series))
        n = max((len(v) for v in series.values()), default=0)
        self.rates = np.zeros((len(self.keys), n))
        for i, key in enumerate(self.keys):
            self.rates[i, : len(series[key])] = np.asarray(series[key], dtype=float)

    def __len__(self) -> int:
        return len(self.keys)

    def span(self) -> tuple[float, float]:
        """The start of its first minute and the end of its last (epoch s)."""
        return self.t0, self.t0 + self.rates.shape[1] * self.step_s

    def series(self, scope: Scope, metric: str) -> FloatArray | None:
        try:
            row: FloatArray = self.rates[self.keys.index((scope, metric))]
            return row
        except ValueError:
            return None

    def campaigns(self) -> list[str]:
        """The campaign ids its series name."""
        return sorted({scope.campaign_id for scope, _ in self.keys if scope.campaign_id})

    def rows(self) -> Iterator[PlanRow]:
        for i, (scope, metric) in enumerate(self.keys):
            for j, value in enumerate(self.rates[i]):
                if value:
                    yield PlanRow(self.t0 + j * self.step_s, metric, float(value), scope)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(PLAN_COLUMNS)
        for row in self.rows():
            writer.writerow([iso_utc(row.minute), row.metric, f"{row.expected:g}", row.scope.campaign_id or "",
                             row.scope.channel or ""])  # fmt: skip
        return out.getvalue()


def plan_from_series(t0: float, step_s: float, series: Mapping[tuple[Scope, str], FloatArray]) -> Plan:
    """A plan from a stored day's counts at `step_s` resolution: per-minute sums, the day's shape as
    the next sale's plan (`promo plan from-day`). The detector rescales its level to live traffic."""
    if step_s <= 0 or (60 % step_s and step_s % 60):
        raise PlanError(f"a step of {step_s:g} s does not fit whole minutes")
    out: dict[tuple[Scope, str], FloatArray] = {}
    for key, values in series.items():
        values = np.asarray(values, dtype=float)
        if step_s <= 60:
            per = round(60 / step_s)
            pad = (-len(values)) % per
            out[key] = np.concatenate([values, np.zeros(pad)]).reshape(-1, per).sum(axis=1)
        else:  # coarser than a minute: spread each bucket evenly over its minutes
            out[key] = np.repeat(values / (step_s / 60), int(step_s // 60))
    return Plan(t0, out)


class CsvSyntaxError(PlanError):
    """A CSV text that is not CSV: a quote left open, text after a closing quote."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number, self.reason = number, reason


def csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """The rows of a CSV text (a byte-order mark dropped), each with the line it starts on: a quoted
    cell may hold a line break, and a row number would then name the wrong line. Strict: a quote
    left open read as the rest of the file (`orders,"1` was the value 1); raises CsvSyntaxError."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    rows, read = [], 0
    try:
        for row in reader:
            rows.append((read + 1, row))
            read = reader.line_num
    except csv.Error as exc:
        raise CsvSyntaxError(read + 1, f"not CSV: {exc} (a quote left open, or text after a closing one?)") from None
    return rows


def header_problem(header: list[str], columns: tuple[str, ...], required: int) -> str | None:
    """What is wrong with a CSV header that must be the first `required` of `columns` or all of them,
    in that order, or None. Names the columns missing and those unknown, not the whole header: a
    header with three of four columns lacks one, it holds nothing unknown."""
    if header in (list(columns[:required]), list(columns)):
        return None
    forms = f"{','.join(columns[:required])} or {','.join(columns)}"
    wanted = columns if any(c in columns[required:] for c in header) else columns[:required]
    missing = [c for c in wanted if c not in header]
    unknown = [c for c in header if c not in columns]
    if not missing and not unknown:  # out of order, or a column twice
        return f"the header must be {forms} (in that order, each once), not {','.join(header)}"
    found = [f"missing column(s) {', '.join(missing)}"] if missing else []
    found += [f"unknown column(s) {', '.join(repr(c) for c in unknown)}"] if unknown else []
    return f"{'; '.join(found)} (the header is {forms})"


def _lone_surrogate(text: str) -> int | None:
    """Where `text` holds a lone surrogate (what a JSON `\\udcff` or undecodable bytes become), or
    None: no store can write it, and a plan the worker is posted is stored only if it parses."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


@dataclass(frozen=True)
class _Cell:
    number: int  # the line in the file
    when: float
    metric: str
    value: float
    scope: Scope


def _read_cells(text: str, columns: tuple[str, ...], what: str) -> list[_Cell]:
    """The common reader of the plan and series files: header, then time,metric,number[,campaign_id,channel]."""
    surrogate = _lone_surrogate(text)
    if surrogate is not None:
        raise PlanError(f"line {text.count(chr(10), 0, surrogate) + 1}: not UTF-8 text (a lone surrogate)")
    rows = csv_rows(text)
    if not rows:
        raise PlanError(f"line 1: empty file; expected the header {','.join(columns)} (the last two optional)")
    header = [c.strip().lower() for c in rows[0][1]]
    problem = header_problem(header, columns, 3)
    if problem is not None:
        raise PlanError(f"line 1: {problem}")
    cells: list[_Cell] = []
    for number, row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise PlanError(f"line {number}: {len(row)} columns, expected {len(header)}")
        try:
            when = parse_utc(row[0])
        except ValueError as exc:
            raise PlanError(f"line {number}: {exc}") from None
        if not FIRST_TIME <= when < LAST_TIME:  # year 9999's last minute + a step is no date (a traceback, once
            # the plan was stored); before 1970 no counts are, and before 1901 Shanghai kept local mean time
            raise PlanError(f"line {number}: {row[0].strip()!r} is not from 1970 to 9998")
        metric = row[1].strip()
        if metric not in METRICS:
            raise PlanError(f"line {number}: unknown metric {metric!r}; one of {', '.join(METRICS)}")
        try:  # float() also reads 1_000 and other scripts' digits (١٢): a number here is ASCII, no '_'
            if "_" in row[2] or not row[2].isascii():
                raise ValueError(row[2])
            value = float(row[2])
        except ValueError:
            raise PlanError(f"line {number}: {columns[2]} {row[2]!r} is not a number") from None
        if not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
            raise PlanError(
                f"line {number}: {columns[2]} must be a finite number from 0 to {MAX_VALUE:g}, not {row[2].strip()}"
            )
        campaign = row[3].strip() or None if len(row) == 5 else None
        channel = row[4].strip() or None if len(row) == 5 else None
        if channel and not campaign:
            raise PlanError(f"line {number}: a channel needs its campaign_id (the scopes are total, campaign, "
                            "campaign x channel)")  # fmt: skip
        cells.append(_Cell(number, when, metric, value, Scope(campaign, channel)))
    if not cells:
        raise PlanError(f"line 2: no rows after the header in {what}")
    first, last = min(cells, key=lambda c: c.when), max(cells, key=lambda c: c.when)
    if last.when - first.when > MAX_SPAN_S:  # before anything is laid out on a grid that long
        raise PlanError(
            f"line {last.number}: {iso_utc(last.when)} is {(last.when - first.when) / 86400:,.0f} days after "
            f"{iso_utc(first.when)} (line {first.number}); {what} may span at most {MAX_SPAN_S // 86400} days"
        )
    return cells


def _step_of(cells: list[_Cell]) -> tuple[float, float]:
    """The first time and the regular step: the smallest gap between two times (60 s for one time)."""
    times = np.unique(np.array([c.when for c in cells]))
    return float(times[0]), float(np.diff(times).min()) if len(times) > 1 else 60.0


def _grid(
    cells: list[_Cell], t0: float, step: float, what: str, gapless: bool, unit_s: float
) -> dict[tuple[Scope, str], FloatArray]:
    """The cells on one grid from `t0` at `step`; a time no row lists is 0. `gapless`: within each
    series (scope, metric), from its first row to its last, every step must have its row. `unit_s`:
    the finest step the caller lays the grid out at (a plan's minutes), for the size it will take."""
    n = round((max(c.when for c in cells) - t0) / step) + 1
    values = len({(c.scope, c.metric) for c in cells}) * n * max(1, round(step / unit_s))
    if values > MAX_VALUES:
        raise PlanError(f"line {cells[-1].number}: {what} would be {values:,} values (every series at every "
                        f"{unit_s:g} s from {iso_utc(t0)}); at most {MAX_VALUES:,}: fewer series or a shorter "
                        "span")  # fmt: skip
    seen: dict[tuple[Scope, str], dict[int, int]] = {}  # the line of each series' every index
    series: dict[tuple[Scope, str], FloatArray] = {}
    for cell in cells:
        index = (cell.when - t0) / step
        if abs(index - round(index)) > 1e-6:
            raise PlanError(f"line {cell.number}: {iso_utc(cell.when)} is off the file's regular step of {step:g} s "
                            "(the smallest gap between two of its times; every row is on it)")  # fmt: skip
        lines = seen.setdefault((cell.scope, cell.metric), {})
        if round(index) in lines:
            raise PlanError(f"line {cell.number}: {cell.metric} at {iso_utc(cell.when)} for {cell.scope.label()} "
                            "is listed twice")  # fmt: skip
        lines[round(index)] = cell.number
        series.setdefault((cell.scope, cell.metric), np.zeros(n))[round(index)] = cell.value
    if gapless:
        gaps = []  # (line after the gap, series, first missing index, steps missing)
        for (scope, metric), lines in seen.items():
            indices = sorted(lines)
            for before, after in itertools.pairwise(indices):
                if after - before > 1:
                    gaps.append((lines[after], f"{metric} for {scope.label()}", before + 1, after - before - 1))
                    break
        if gaps:
            number, name, missing, count = min(gaps)
            first = iso_utc(t0 + missing * step)
            absent = (
                f"no row at {first}"
                if count == 1
                else f"no rows from {first} to {iso_utc(t0 + (missing + count - 1) * step)} ({count} steps)"
            )
            raise PlanError(f"line {number}: gap in {name}: {absent} (the file's step is {step:g} s; write 0 for "
                            "a step with no events)")  # fmt: skip
    return series


def parse_plan_csv(text: str) -> Plan:
    """`minute,metric,expected[,campaign_id,channel]`; raises PlanError('line N: why')."""
    cells = _read_cells(text, PLAN_COLUMNS, "the plan")
    for cell in cells:
        if cell.when % 60:
            raise PlanError(f"line {cell.number}: {iso_utc(cell.when)} is not a whole minute (minute must be at "
                            ":00 seconds)")  # fmt: skip
    if not any(cell.value for cell in cells):
        raise PlanError(f"line {cells[0].number}: every expected value is 0: a plan of zeros expects nothing, "
                        "and the detector would judge none of its scopes")  # fmt: skip
    t0, step = _step_of(cells)
    series = _grid(cells, t0, step, "the plan", gapless=False, unit_s=60.0)
    if step != 60:  # a coarser plan (say hourly rows) spreads each row over its minutes
        return plan_from_series(t0, step, series)
    return Plan(t0, series)


@dataclass(frozen=True)
class Series:
    """A user's history: counts per (scope, metric) per step of `step_s` seconds from `t0`."""

    t0: float
    step_s: float
    values: dict[tuple[Scope, str], FloatArray]

    @property
    def steps(self) -> int:
        return max(len(v) for v in self.values.values())

    def span(self) -> tuple[float, float]:
        """The start of its first step and the end of its last (epoch s)."""
        return self.t0, self.t0 + self.steps * self.step_s

    def sent(self, key: tuple[Scope, str]) -> tuple[int, int] | None:
        """The first and the last step at which a series counted anything; None when it is 0 throughout."""
        counts = np.flatnonzero(self.values[key] > 0)
        return (int(counts[0]), int(counts[-1])) if len(counts) else None


def parse_series_csv(text: str, ends: Mapping[str, float] | None = None) -> Series:
    """`ts,metric,value[,campaign_id,channel]` at a regular step of 10 s to 1 h, each series (scope,
    metric) with a row at every step from its first to the file's last, or to its campaign's
    scheduled end (`ends`: campaign_id -> epoch s); raises PlanError('line N: why')."""
    cells = _read_cells(text, SERIES_COLUMNS, "the series")
    t0, step = _step_of(cells)
    if not MIN_STEP_S <= step <= MAX_STEP_S:
        raise PlanError(f"line 2: the step is {step:g} s; it must be from {MIN_STEP_S} s to {MAX_STEP_S} s")
    values = _grid(cells, t0, step, "the series", gapless=True, unit_s=step)
    # Every series runs to the file's last step: the detector reads a step with no row as no events,
    # so a series that stopped early read as an outage from there (an outside probe: a critical alert
    # on a total exported for 2 h beside a campaign exported for 3 h). A later start is fine: nothing
    # is learnt, so nothing is expected, before a series' first row.
    end = max(c.when for c in cells)
    last: dict[tuple[Scope, str], _Cell] = {}
    for cell in cells:
        key = (cell.scope, cell.metric)
        if key not in last or cell.when > last[key].when:
            last[key] = cell
    ends = ends or {}
    early = [c for c in last.values() if c.when < end and c.when + step < ends.get(c.scope.campaign_id or "", math.inf)]
    if early:
        cell = min(early, key=lambda c: c.number)
        raise PlanError(f"line {cell.number}: {cell.metric} for {cell.scope.label()} ends at {iso_utc(cell.when)}, "
                        f"before the file's last step ({iso_utc(end)}): the steps after it would read as no "
                        "events, an outage. End every series at the same step (write 0 where nothing happened), "
                        "or give its campaign's scheduled end (--campaigns)")  # fmt: skip
    return Series(t0, step, values)
