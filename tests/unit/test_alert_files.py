"""The plan and series CSV readers (streams/alerts/plan.py): what they accept, and errors with line numbers."""

from __future__ import annotations

import numpy as np
import pytest

from streams.alerts.plan import PlanError, parse_plan_csv, parse_series_csv, plan_from_series
from streams.alerts.scope import Scope

T0 = 1_794_326_400.0  # 2026-11-10T16:00:00Z


def test_a_plan_with_scopes() -> None:
    plan = parse_plan_csv(
        "minute,metric,expected,campaign_id,channel\n"
        "2026-11-10T16:00:00Z,orders,100,,\n"
        "2026-11-10T16:01:00Z,orders,120,,\n"
        "2026-11-11T00:02:00+08:00,orders,90,,\n"
        "2026-11-10T16:00:00Z,interactions,3000,双11主会场,\n"
        "2026-11-10T16:00:00Z,orders,10,双11主会场,wechat\n"
    )
    assert plan.t0 == T0
    series = plan.series(Scope(), "orders")
    assert series is not None and list(series) == [100, 120, 90]
    assert plan.series(Scope("双11主会场", "wechat"), "orders") is not None
    again = parse_plan_csv(plan.to_csv())
    assert again.keys == plan.keys
    np.testing.assert_array_equal(again.rates[:, :1], plan.rates[:, :1])


def test_hourly_rows_spread_over_their_minutes() -> None:
    plan = parse_plan_csv("minute,metric,expected\n2026-11-10T16:00:00Z,orders,600\n2026-11-10T17:00:00Z,orders,1200\n")
    series = plan.series(Scope(), "orders")
    assert series is not None and len(series) == 120 and series[0] == 10 and series[60] == 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: empty file"),
        ("ts,metric,expected\n", "line 1: the header"),
        ("minute,metric,expected\n", "line 2: no rows"),
        ("minute,metric,expected\n2026-11-10T16:00:00,orders,1\n", "line 2: '2026-11-10T16:00:00' has no UTC offset"),
        ("minute,metric,expected\nyesterday,orders,1\n", "line 2: 'yesterday' is not an ISO 8601 time"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,clicks,1\n", "line 2: unknown metric 'clicks'"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,lots\n", "line 2: expected 'lots' is not a number"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,-1\n", "line 2: expected must be a finite number"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders\n", "line 2: 2 columns, expected 3"),
        ("minute,metric,expected,campaign_id,channel\n2026-11-10T16:00:00Z,orders,1,,wechat\n", "line 2: a channel"),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:00Z,orders,2\n",
            "line 3: orders at 2026-11-10T16:00:00Z for total is listed twice",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:30Z,orders,2\n",
            "whole minutes apart",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:02:00Z,orders,1\n"
            "2026-11-10T16:03:00Z,orders,1\n2026-11-10T16:03:30Z,orders,1\n",
            "whole minutes",
        ),
    ],
)
def test_plan_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan_csv(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_series_at_any_regular_step() -> None:
    rows = "".join(f"2026-11-10T16:{m:02d}:00Z,orders,{m}\n" for m in range(0, 10, 5))
    series = parse_series_csv("ts,metric,value\n" + rows)
    assert series.step_s == 300 and list(series.values[(Scope(), "orders")]) == [0, 5]
    with pytest.raises(PlanError, match="the step is 5 s"):
        parse_series_csv("ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:05Z,orders,1\n")
    with pytest.raises(PlanError, match="off the file's regular step"):
        parse_series_csv(
            "ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:01:00Z,orders,1\n"
            "2026-11-10T16:02:30Z,orders,1\n"
        )


def test_plan_from_a_stored_day() -> None:
    counts = np.arange(12, dtype=float)  # two minutes of 10 s buckets
    plan = plan_from_series(T0, 10, {(Scope("c1"), "orders"): counts})
    series = plan.series(Scope("c1"), "orders")
    assert series is not None and list(series) == [15, 51]
