"""What a notification says and how the CLI reads scopes and times (pure; no store, no HTTP)."""

from __future__ import annotations

import datetime as dt

import pytest
import typer

from streams.alerts.detector import Alert, Scope
from streams.alerts.messages import Context, render
from streams.alerts.notify import Message
from streams.alerts.runner import build_step, with_digest
from streams.alerts.store import AlertRow
from streams.cli.alerts import parse_scope, parse_time

T0 = dt.datetime(2026, 11, 10, 16, 0, 5, tzinfo=dt.UTC).timestamp()  # 00:00:05 on 11.11 in Beijing
DROP = {"id": "a1", "kind": "drop", "metric": "orders", "campaign_id": "d11", "channel": "wechat", "started_at": T0,
        "detected_at": T0 + 20, "resolved_at": None, "expected": 240.0, "observed": 12.0,
        "basis": "share-of-parent", "severity": "critical", "message": "", "children": []}  # fmt: skip


def test_a_drop_says_scope_by_name_metric_expected_observed_basis_since_freshness_and_link() -> None:
    ctx = Context({"d11": "双11主会场"}, 3.2, "http://grafana:3000/d/promo-war-room")
    msg = render(DROP, "fired", ctx)
    assert msg.title == "【严重】双11主会场 / 微信 订单数 下跌 95%"
    assert "预期 240（按与本活动其他渠道的比例），实际 12" in msg.text and "自 00:00:05 起" in msg.text
    assert "数据延迟 3 秒" in msg.text
    assert f"from={int((T0 - 1800) * 1000)}" in msg.text and "var-campaign=d11" in msg.text  # 30 min before
    english = render(DROP, "fired", Context({}, 0.0, language="en"))
    assert english.title == "[CRITICAL] d11 / wechat orders down 95%"
    assert "expected 240 (its ratio to the campaign's other channels), observed 12; since 00:00:05" in english.text
    resolved = render({**DROP, "resolved_at": T0 + 300}, "resolved", ctx)
    assert resolved.title == "【恢复】双11主会场 / 微信 订单数" and "00:00:05–00:05:05" in resolved.text
    assert "提醒" in render(DROP, "reminder", ctx).title


def test_gmv_is_shown_in_yuan_and_a_lag_alert_says_drops_are_not_judged() -> None:
    gmv = render({**DROP, "metric": "gmv_fen", "expected": 1_000_000.0, "observed": 50_000.0}, "fired",
                 Context({}, 0.0, language="en"))  # fmt: skip
    assert "expected ¥10,000" in gmv.text and "observed ¥500" in gmv.text
    lag = render({**DROP, "kind": "lag", "metric": None, "campaign_id": None, "channel": None, "observed": 75.0},
                 "fired", Context({}, 75.0))  # fmt: skip
    assert lag.title == "【延迟】数据管道落后" and "不判断下跌" in lag.text


def test_a_digest_carries_what_the_rate_held_back() -> None:
    held = [Message("t1", "x"), Message("t2", "y")]
    assert with_digest(Message("now", "body"), []) == Message("now", "body")
    merged = with_digest(Message("now", "body"), held)
    assert merged.title == "now" and "2 more held back" in merged.text and "- t1\n- t2" in merged.text


def test_a_step_holds_every_scope_level_and_zero_for_a_silent_known_leaf() -> None:
    step = build_step(100.0, 95.0, 0.0, {("c", "wechat"): [5, 1, 2, 300, 1], ("c", "app"): [1, 0, 0, 0, 0]},
                      [("c", "wechat"), ("c", "app"), ("d", "app")])  # fmt: skip
    assert step.values[(Scope("c", "wechat"), "orders")] == 2
    assert step.values[(Scope("c"), "interactions")] == 6
    assert step.values[(Scope(), "gmv_fen")] == 300
    assert step.values[(Scope("d", "app"), "orders")] == 0 and step.values[(Scope("d"), "orders")] == 0


@pytest.mark.parametrize(("text", "scope"), [("total", ("", "")), ("all", ("", "")), ("双11主会场", ("双11主会场", "")),
                                             ("c1/wechat", ("c1", "wechat")), ("a/b/app", ("a/b", "app"))])  # fmt: skip
def test_scopes(text: str, scope: tuple[str, str]) -> None:
    assert parse_scope(text) == scope


def test_times_are_iso_or_relative_and_anything_else_is_exit_2() -> None:
    assert parse_time("2026-11-11T00:30:00+08:00", "--until") == T0 - 5 + 1800
    assert parse_time("2026-11-10T16:30:00Z", "--until") == T0 - 5 + 1800
    assert parse_time("+30m", "--until", now=1000.0) == 2800.0
    assert parse_time("+2h", "--until", now=0.0) == 7200.0
    with pytest.raises(typer.Exit) as exc:
        parse_time("tomorrow", "--until")
    assert exc.value.exit_code == 2
    with pytest.raises(typer.Exit):
        parse_scope("/wechat")


def test_nothing_arrived_at_a_scheduled_start_is_a_full_drop_and_json_safe() -> None:
    import json
    import math

    from streams.alerts.detector import Alert
    from streams.alerts.runner import banner_alert

    msg = render({**DROP, "expected": None, "observed": 0.0, "basis": "schedule"}, "fired", Context({}, 0.0))
    assert msg.title.endswith("下跌 100%") and "按活动排期" in msg.text
    alert = Alert("n1", "drop", "interactions", Scope("c"), T0, T0 + 120, None, math.nan, 0.0, "schedule", "critical",
                  "nothing arrived")  # fmt: skip
    assert json.loads(json.dumps(banner_alert(alert), allow_nan=False))["expected"] is None


def test_an_alert_becomes_one_row_and_prints_as_the_list_does() -> None:
    alert = Alert("a1", "drop", "orders", Scope("c1", "wechat"), 1_794_326_400.0, 1_794_326_430.5, None, 120.0,
                  float("nan"), "plan", "critical", "orders down", (Scope("c1", "app"),), "outage-10s")  # fmt: skip
    row = AlertRow.of(alert, "replay")
    assert (row.id, row.campaign_id, row.channel, row.children, row.source) == (
        "a1", "c1", "wechat", ("c1/app",), "replay")  # fmt: skip
    doc = row.doc()
    assert doc["started_at"] == "2026-11-10T16:00:00.000Z" and doc["detected_at"] == "2026-11-10T16:00:30.500Z"
    assert (doc["resolved_at"], doc["observed"], doc["acked_by"], doc["acked_at"]) == (None, None, None, None)
    assert doc["children"] == ["c1/app"] and doc["metric"] == "orders"
