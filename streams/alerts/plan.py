"""The war room's plan and a user's own history as the detector reads them (issue 17 item 4, item 8).

Pure (numpy and the standard library): the CLI and the store do the I/O.

- `Plan`: expected counts per minute for (scope, metric), on a regular minute grid. The detector
  uses its *shape* and scales its level to live traffic, so a plan may be off in level.
- `parse_plan_csv`: `minute,metric,expected[,campaign_id,channel]`, minute ISO 8601 UTC (`Z` or an
  offset), the format of `promo plan import`. Every line is checked; errors carry line numbers.
- `plan_from_series`: a plan from a stored day's counts (`promo plan from-day DATE`).
- `parse_series_csv`: `ts,metric,value[,campaign_id,channel]` at any regular step from 10 s to 1 h,
  the file of `promo alerts backtest`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
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


class PlanError(ValueError):
    """A file the user gave cannot be read; the message names the line and says why, in one line."""


def parse_utc(text: str) -> float:
    """ISO 8601 with `Z` or an offset -> epoch seconds. A time without an offset is refused: whose midnight?"""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (write 2026-11-10T16:00:00Z)")
    return when.timestamp()


def iso_utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


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

    def series(self, scope: Scope, metric: str) -> FloatArray | None:
        try:
            row: FloatArray = self.rates[self.keys.index((scope, metric))]
            return row
        except ValueError:
            return None

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


@dataclass(frozen=True)
class _Parsed:
    t0: float
    step_s: float
    series: dict[tuple[Scope, str], FloatArray]


def _parse_table(text: str, columns: tuple[str, ...], what: str) -> _Parsed:
    """The common reader of the plan and series files: header, then time,metric,number[,campaign_id,channel]."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    if not rows:
        raise PlanError(f"line 1: empty file; expected the header {','.join(columns)} (the last two optional)")
    header = [c.strip().lower() for c in rows[0]]
    if header not in (list(columns[:3]), list(columns)):
        raise PlanError(
            f"line 1: the header must be {','.join(columns[:3])} or {','.join(columns)}, not {','.join(header)}"
        )
    cells: list[tuple[int, float, str, float, Scope]] = []
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise PlanError(f"line {number}: {len(row)} columns, expected {len(header)}")
        try:
            when = parse_utc(row[0])
        except ValueError as exc:
            raise PlanError(f"line {number}: {exc}") from None
        metric = row[1].strip()
        if metric not in METRICS:
            raise PlanError(f"line {number}: unknown metric {metric!r}; one of {', '.join(METRICS)}")
        try:
            value = float(row[2])
        except ValueError:
            raise PlanError(f"line {number}: {columns[2]} {row[2]!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise PlanError(f"line {number}: {columns[2]} must be a finite number >= 0, not {row[2].strip()}")
        campaign = row[3].strip() or None if len(row) == 5 else None
        channel = row[4].strip() or None if len(row) == 5 else None
        if channel and not campaign:
            raise PlanError(f"line {number}: a channel needs its campaign_id (the scopes are total, campaign, "
                            "campaign x channel)")  # fmt: skip
        cells.append((number, when, metric, value, Scope(campaign, channel)))
    if not cells:
        raise PlanError(f"line 2: no rows after the header in {what}")
    times = np.unique(np.array([c[1] for c in cells]))
    steps = np.diff(times)
    step = float(steps.min()) if len(steps) else 60.0
    t0 = float(times[0])
    seen: set[tuple[float, str, Scope]] = set()
    series: dict[tuple[Scope, str], FloatArray] = {}
    n = round((times[-1] - t0) / step) + 1 if len(steps) else 1
    for number, when, metric, value, scope in cells:
        index = (when - t0) / step
        if abs(index - round(index)) > 1e-6:
            raise PlanError(f"line {number}: {iso_utc(when)} is off the file's regular step of {step:g} s")
        if (when, metric, scope) in seen:
            raise PlanError(f"line {number}: {metric} at {iso_utc(when)} for {scope.label()} is listed twice")
        seen.add((when, metric, scope))
        series.setdefault((scope, metric), np.zeros(n))[round(index)] = value
    return _Parsed(t0, step, series)


def parse_plan_csv(text: str) -> Plan:
    """`minute,metric,expected[,campaign_id,channel]`; raises PlanError('line N: why')."""
    parsed = _parse_table(text, PLAN_COLUMNS, "the plan")
    if parsed.step_s % 60:
        raise PlanError(f"line 2: the minutes must be whole minutes apart; the smallest gap is {parsed.step_s:g} s")
    if parsed.step_s != 60:  # a coarser plan (say hourly rows) spreads each row over its minutes
        return plan_from_series(parsed.t0, parsed.step_s, parsed.series)
    return Plan(parsed.t0, parsed.series)


@dataclass(frozen=True)
class Series:
    """A user's history: counts per (scope, metric) per step of `step_s` seconds from `t0`."""

    t0: float
    step_s: float
    values: dict[tuple[Scope, str], FloatArray]


def parse_series_csv(text: str) -> Series:
    """`ts,metric,value[,campaign_id,channel]` at a regular step of 10 s to 1 h; raises PlanError('line N: why')."""
    parsed = _parse_table(text, SERIES_COLUMNS, "the series")
    if not MIN_STEP_S <= parsed.step_s <= MAX_STEP_S:
        raise PlanError(f"line 2: the step is {parsed.step_s:g} s; it must be from {MIN_STEP_S} s to {MAX_STEP_S} s")
    return Series(parsed.t0, parsed.step_s, parsed.series)
