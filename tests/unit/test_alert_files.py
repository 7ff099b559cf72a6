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
        ("ts,metric,expected\n", "line 1: missing column(s) minute; unknown column(s) 'ts' (the header is"),
        ("minute,metric,expected,campaign_id\n", "line 1: missing column(s) channel (the header is"),
        ("metric,minute,expected\n", "line 1: the header must be minute,metric,expected or"),
        ("minute,metric,expected\n", "line 2: no rows"),
        (
            "minute,metric,expected\n2026-11-10T16:00:00,orders,1\n",
            "line 2: '2026-11-10T16:00:00' has no UTC offset (write 2026-11-10T16:00:00Z for UTC, or "
            "2026-11-10T16:00:00+08:00 for Beijing time)",
        ),
        ("minute,metric,expected\nyesterday,orders,1\n", "line 2: 'yesterday' is not an ISO 8601 time"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,clicks,1\n", "line 2: unknown metric 'clicks'"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,lots\n", "line 2: expected 'lots' is not a number"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,-1\n", "line 2: expected must be a finite number"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders\n", "line 2: 2 columns, expected 3"),
        ("minute,metric,expected,campaign_id,channel\n2026-11-10T16:00:00Z,orders,1,,wechat\n", "line 2: a channel"),
        # A plan posted to the worker as JSON can hold a lone surrogate (`"\\udcff"`): no store writes it.
        (
            "minute,metric,expected,campaign_id,channel\n2026-11-10T16:00:00Z,orders,1,c\udcff,\n",
            "line 2: not UTF-8 text (a lone surrogate)",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:00Z,orders,2\n",
            "line 3: orders at 2026-11-10T16:00:00Z for total is listed twice",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:30Z,orders,2\n",
            "line 3: 2026-11-10T16:00:30Z is not a whole minute",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:02:00Z,orders,1\n"
            "2026-11-10T16:03:00Z,orders,1\n2026-11-10T16:03:30Z,orders,1\n",
            "line 5: 2026-11-10T16:03:30Z is not a whole minute",
        ),
        # An outside probe: year 9999's last minute + a minute is no date (a traceback after the plan was
        # stored); before 1970 no counts are stored.
        (
            "minute,metric,expected\n9999-12-31T23:59:00Z,orders,5\n",
            "line 2: '9999-12-31T23:59:00Z' is not from 1970 to 9998",
        ),
        (
            "minute,metric,expected\n1900-06-01T00:00:00Z,orders,5\n",
            "line 2: '1900-06-01T00:00:00Z' is not from 1970 to 9998",
        ),
        # A review's plans that blinded the detector or asked for GiBs: refused, naming the line.
        (
            "minute,metric,expected\n2026-11-10T16:00:30Z,orders,1\n",
            "line 2: 2026-11-10T16:00:30Z is not a whole minute",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1e308\n",
            "line 2: expected must be a finite number from 0 to 1e+12, not 1e308",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,0\n2026-11-10T16:01:00Z,orders,0\n",
            "line 2: every expected value is 0",
        ),
        (
            "minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n9998-11-10T16:00:00Z,orders,1\n",
            "line 3: 9998-11-10T16:00:00Z is 2,911,713 days after 2026-11-10T16:00:00Z (line 2); the plan may span at "
            "most 31 days",
        ),
        (
            "minute,metric,expected\n9999-12-31T23:59:00-14:00,orders,1\n",
            "line 2: '9999-12-31T23:59:00-14:00' is out of the range",
        ),
        # An outside probe: float() read these as numbers, and csv an open quote as the rest of the file.
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,1_000\n", "line 2: expected '1_000' is not a number"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,١٢\n", "line 2: expected '١٢' is not a number"),
        (
            'minute,metric,expected\n2026-11-10T16:00:00Z,orders,2\n2026-11-10T16:01:00Z,orders,"1\n',
            "line 3: not CSV: unexpected end of data (a quote left open, or text after a closing one?)",
        ),
        (
            'minute,metric,expected\n2026-11-10T16:00:00Z,orders,"2"5\n',
            "line 2: not CSV: ',' expected after '\"'",
        ),
        (
            "minute,metric,expected,campaign_id,channel\n2026-11-10T16:00:00Z,orders,1,,\n"
            + "".join(f"2026-12-10T16:00:00Z,orders,1,c{i},\n" for i in range(500)),
            "line 502: the plan would be 43,286,400 values (every series at every 60 s from 2026-11-10T16:00:00Z); at "
            "most 20,000,000",
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


def test_a_series_with_a_missing_row_is_an_error_not_a_zero() -> None:
    # A review: a 10 s series with one row deleted read as a 100% outage at that step, and rows at
    # 16:00:00, 16:00:10 and 16:10:00 as 61 steps of 10 s. Within a series every step has its row.
    rows = [f"2026-11-10T16:00:{s:02d}Z,orders,5" for s in range(0, 60, 10)]
    del rows[3]
    with pytest.raises(PlanError) as caught:
        parse_series_csv("ts,metric,value\n" + "\n".join(rows) + "\n")
    assert str(caught.value) == (
        "line 5: gap in orders for total: no row at 2026-11-10T16:00:30Z (the file's step is 10 s; write 0 for a "
        "step with no events)"
    )
    with pytest.raises(PlanError) as caught:
        parse_series_csv("ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:10Z,orders,1\n"
                         "2026-11-10T16:10:00Z,orders,1\n")  # fmt: skip
    assert str(caught.value).startswith("line 4: gap in orders for total: no rows from 2026-11-10T16:00:20Z to "
                                        "2026-11-10T16:09:50Z (58 steps)")  # fmt: skip
    # Each series is gapless on its own: a campaign may start later than the total (nothing is learnt,
    # so nothing expected, before its first row) ...
    text = (
        "ts,metric,value,campaign_id,channel\n"
        + "".join(f"2026-11-10T16:{m:02d}:00Z,orders,5,,\n" for m in range(10))
        + "".join(f"2026-11-10T16:{m:02d}:00Z,orders,2,c1,app\n" for m in range(3, 10))
    )
    series = parse_series_csv(text)
    assert list(series.values[(Scope("c1", "app"), "orders")]) == [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]
    with pytest.raises(PlanError, match="line 13: gap in orders for c1/app: no row at 2026-11-10T16:04:00Z"):
        parse_series_csv(text.replace("2026-11-10T16:04:00Z,orders,2,c1,app\n", ""))
    # ... but not end before the file does: the steps after its last row read as no events, an outage
    # (an outside probe: a critical alert on a total exported for 2 h beside a campaign for 3 h).
    with pytest.raises(PlanError) as caught:
        parse_series_csv(text.replace("".join(f"2026-11-10T16:0{m}:00Z,orders,5,,\n" for m in (8, 9)), ""))
    assert str(caught.value) == (
        "line 9: orders for total ends at 2026-11-10T16:07:00Z, before the file's last step (2026-11-10T16:09:00Z): "
        "the steps after it would read as no events, an outage. End every series at the same step (write 0 where "
        "nothing happened), or give its campaign's scheduled end (--campaigns)"
    )


def test_a_series_spanning_a_century_is_refused_before_it_takes_memory() -> None:
    with pytest.raises(PlanError, match=r"^line 3: 2126-11-10T16:00:00Z is 36,524 days after .* at most 31 days$"):
        parse_series_csv("ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2126-11-10T16:00:00Z,orders,1\n")


def test_a_stored_plan_the_checks_now_refuse_is_left_out_not_a_dead_detector(caplog: pytest.LogCaptureFixture) -> None:
    from streams.alerts.runner import stored_plan

    assert stored_plan("") is None
    assert stored_plan("minute,metric,expected\n2026-11-10T16:00:00Z,orders,5\n") is not None
    with caplog.at_level("ERROR"):
        assert stored_plan("minute,metric,expected\n2026-11-10T16:00:30Z,orders,5\n") is None
    assert "the stored plan is not used: line 2: 2026-11-10T16:00:30Z is not a whole minute" in caplog.text
