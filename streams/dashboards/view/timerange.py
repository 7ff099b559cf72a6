"""Grafana time ranges for the local view: `now/d`, `now-1h`, epoch milliseconds; bucket widths.

A dashboard's range is relative (`"from": "now/d", "to": "now"`) and read in the dashboard's
timezone (Asia/Shanghai: `now/d` is the start of the business day there, not in UTC). A request may
override either end with `?from=&to=`; both are checked strictly (a short relative expression in
the grammar below, or epoch milliseconds as Grafana writes them into URLs) and anything else is
refused, never guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from streams.dashboards.view.macros import Range
from streams.errors import ViewRequestError

# now, now-15m, now+1h, now/d, now-1d/d. Units: s m h d w (no months or years: not needed here).
_RELATIVE = re.compile(r"now(?:(?P<sign>[+-])(?P<amount>\d{1,6})(?P<unit>[smhdw]))?(?:/(?P<round>[smhdw]))?")
_EPOCH_MS = re.compile(r"\d{12,14}")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
MAX_SPAN = dt.timedelta(days=400)
# Bucket widths a chart may use, as Grafana rounds `$__interval`; at least the panel's own minimum.
NICE_INTERVALS_S = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 604_800)
MAX_POINTS = 720  # a day in two-minute buckets: as fine as a wall chart can show


def _floor(moment: dt.datetime, unit: str) -> dt.datetime:
    if unit == "s":
        return moment.replace(microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    return day - dt.timedelta(days=day.weekday())  # "w": weeks start on Monday, as the dashboards say


def parse_time(expr: str, now: dt.datetime, tz: ZoneInfo, *, round_up: bool) -> dt.datetime:
    """One end of a range. `round_up` is for the `to` end: `now/d` there is the end of today.

    Raises ViewRequestError for anything outside the grammar, or an instant before 2000 or after 2100.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if _EPOCH_MS.fullmatch(expr):
        moment = dt.datetime.fromtimestamp(int(expr) / 1000, tz=dt.UTC)
    else:
        match = _RELATIVE.fullmatch(expr)
        if match is None:
            raise ViewRequestError(
                f"time {expr[:40]!r} is neither epoch milliseconds nor like now, now-1h, now/d, now-1d/d"
            )
        moment = now.astimezone(tz)
        if match["amount"] is not None:
            step = dt.timedelta(seconds=int(match["amount"]) * _UNIT_S[match["unit"]])
            moment = moment + step if match["sign"] == "+" else moment - step
        if match["round"] is not None:
            unit = match["round"]
            moment = _floor(moment, unit)
            if round_up:
                moment += dt.timedelta(seconds=_UNIT_S[unit]) - dt.timedelta(milliseconds=1)
    if not _EARLIEST <= moment <= _LATEST:
        raise ViewRequestError(f"time {expr!r} is outside 2000-2100")
    return moment.astimezone(tz)


def parse_interval(text: str) -> int:
    """A panel's minimum interval ("1m", "30s", "1h") in seconds."""
    match = re.fullmatch(r"(\d{1,5})([smhd])", text)
    if match is None:
        raise ValueError(f"interval {text!r} is not like 30s, 1m, 1h")
    return int(match[1]) * _UNIT_S[match[2]]


def bucket_seconds(span: dt.timedelta, minimum_s: int = 60) -> int:
    """The width of a chart's buckets: the range in at most MAX_POINTS, rounded up to a nice width."""
    wanted = max(span.total_seconds() / MAX_POINTS, minimum_s)
    return next((s for s in NICE_INTERVALS_S if s >= wanted), NICE_INTERVALS_S[-1])


def resolve(time_from: str, time_to: str, now: dt.datetime, tz: ZoneInfo, *, minimum_interval_s: int = 60) -> Range:
    """The instants of a range and its bucket width; refuses an empty, inverted or too long range."""
    start = parse_time(time_from, now, tz, round_up=False)
    end = parse_time(time_to, now, tz, round_up=True)
    if end <= start:
        raise ViewRequestError(f"the range {time_from!r} to {time_to!r} is empty or inverted")
    if end - start > MAX_SPAN:
        raise ViewRequestError(f"the range {time_from!r} to {time_to!r} is longer than {MAX_SPAN.days} days")
    return Range(start, end, bucket_seconds(end - start, minimum_interval_s))
