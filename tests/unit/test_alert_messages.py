"""What a notification says and how the CLI reads scopes and times (pure; no store, no HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import typer

from streams.alerts.detector import Alert, Detector, Scope, Step
from streams.alerts.messages import Context, render
from streams.alerts.notify import Message
from streams.alerts.runner import FLAP_HOLD_S, FlapGate, acknowledged, build_step, notification_event, with_digest
from streams.alerts.scope import parse_scope as scope_of
from streams.alerts.store import AlertRow, Silence
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
    assert "to=now" in msg.text and "to=now" in render(DROP, "reminder", ctx).text  # going on: up to now
    assert f"to={int((T0 + 300 + 900) * 1000)}" in render({**DROP, "resolved_at": T0 + 300}, "resolved", ctx).text
    english = render(DROP, "fired", Context({}, 0.0, language="en"))
    assert english.title == "[CRITICAL] d11 / wechat orders down 95%"
    assert "expected 240 (its ratio to the campaign's other channels), observed 12; since 00:00:05" in english.text
    resolved = render({**DROP, "resolved_at": T0 + 300}, "resolved", ctx)
    assert resolved.title == "【恢复】双11主会场 / 微信 订单数" and "00:00:05–00:05:05" in resolved.text
    assert "提醒" in render(DROP, "reminder", ctx).title


def test_a_time_on_another_day_than_the_message_carries_its_date() -> None:
    # A notification probe: Beijing HH:MM:SS without a date. A drop since 23:58:10 on the eve, told at
    # 00:20 (a reminder) and resolved on 11.11; and one on the same day, with no date.
    eve = T0 - 115  # 23:58:10 on 11.10 in Beijing
    ctx = Context({}, 0.0, language="en", now=T0 + 1200)
    assert "since 11-10 23:58:10" in render({**DROP, "started_at": eve}, "reminder", ctx).text
    resolved = render({**DROP, "started_at": eve, "resolved_at": T0 + 300}, "resolved", ctx)
    assert "the drop of 11-10 23:58:10–00:05:05 is over" in resolved.text
    assert "since 00:00:05" in render(DROP, "fired", ctx).text
    zh = render({**DROP, "started_at": eve}, "fired", Context({}, 0.0, now=T0 + 20))
    assert "自 11-10 23:58:10 起" in zh.text
    assert "since 23:58:10" in render({**DROP, "started_at": eve}, "fired", Context({}, 0.0, language="en")).text


def test_gmv_is_shown_in_yuan_and_a_lag_alert_says_drops_are_not_judged() -> None:
    gmv = render({**DROP, "metric": "gmv_fen", "expected": 1_000_000.0, "observed": 50_000.0}, "fired",
                 Context({}, 0.0, language="en"))  # fmt: skip
    assert "expected ¥10,000" in gmv.text and "observed ¥500" in gmv.text
    lag = render({**DROP, "kind": "lag", "metric": None, "campaign_id": None, "channel": None, "observed": 75.0},
                 "fired", Context({}, 75.0))  # fmt: skip
    assert lag.title == "【延迟】数据管道落后" and "不判断下跌" in lag.text


def test_a_digest_carries_what_the_rate_held_back_and_what_failed_each_as_what_it_was() -> None:
    from streams.alerts.runner import Held

    held = [Message("t1", "x"), Message("t2", "y")]
    assert with_digest(Message("now", "body"), []) == Message("now", "body")
    merged = with_digest(Message("now", "body"), held, "en")
    assert merged.title == "now" and "2 more held back by the rate limit:\n- t1\n- t2" in merged.text
    # An outside probe: failed deliveries were called "held back by the rate limit", in both languages at once
    mixed = [Held(Message("t1", "x"), "a1", "fired@1", True), Held(Message("t2", "y"), "a2", "fired@1", False)]
    zh = with_digest(Message("now", "body"), mixed).text
    assert zh == "body\n\n另有 1 条因频率限制合并：\n- t2\n\n另有 1 条因发送失败补发：\n- t1", zh
    assert "more" not in zh and "rate limit" not in zh
    # ... and the JSON webhook each one's own fields, in order (an outside probe: only the titles, as text)
    fields = [Held(Message("t1", "x", {"event": "reopened", "id": "a1"}), "a1", "reopened@1", True),
              Held(Message("t2", "y", {"event": "escalated", "id": "a2"}), "a2", "escalated@1", False)]  # fmt: skip
    doc = with_digest(Message("now", "body", {"event": "resolved", "id": "a3"}), fields).fields
    assert doc["event"] == "resolved" and doc["id"] == "a3"
    assert doc["digest"] == [{"event": "reopened", "id": "a1", "failed": True},
                             {"event": "escalated", "id": "a2", "failed": False}]  # fmt: skip


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


@pytest.mark.parametrize(
    ("text", "scope"),
    [("total", Scope()), ("c01", Scope("c01")), ("c01/wechat", Scope("c01", "wechat")),
     ("2026/双11", Scope("2026/双11")), ("2026/双11/app", Scope("2026/双11", "app")),
     # split at the last '/' only before a known channel: otherwise all of it is the campaign id
     ("c01/nosuchchannel", Scope("c01/nosuchchannel")), ("c01/wechat/x", Scope("c01/wechat/x")),
     # spaces around the '/' before a channel are a typo, not part of the campaign id (an outside probe)
     ("c01 /wechat", Scope("c01", "wechat")), ("c01/ wechat", Scope("c01", "wechat")),
     # any id the contract takes: a full-width space is no control character (a review)
     ("双11\u3000主会场", Scope("双11\u3000主会场"))],
)  # fmt: skip
def test_one_scope_grammar(text: str, scope: Scope) -> None:
    assert scope_of(text) == scope
    assert scope_of(scope.label()) == scope or "/" in (scope.campaign_id or "")


@pytest.mark.parametrize("text", ["", "c01/", "/wechat", "c01//app", " / ", "x" * 65, "c0\n1", "c01/\x1b[31m"])
def test_a_scope_with_an_empty_part_or_too_long_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"scope|64"):
        scope_of(text)
    with pytest.raises(typer.Exit) as exc:
        parse_scope(text)
    assert exc.value.exit_code == 2


def test_the_simulators_channels_are_its_own() -> None:
    assert scope_of("c01/wallet", ("wechat", "wallet")) == Scope("c01", "wallet")
    assert scope_of("c01/wallet") == Scope("c01/wallet")  # not a channel of the contract


def _silence_doc(**change: object) -> dict[str, object]:
    return {"kind": "silence", "metric": "", "campaign_id": "c01", "channel": "wechat", "until": T0 + 3600,
            "reason": "maintenance", "created_by": "ops", "created_at": T0, **change}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [({"until": T0 + 8 * 86400}, "at most 7 days"), ({"until": 1e300}, "at most 7 days"),
     ({"until": float("nan")}, "at most 7 days"), ({"until": T0 - 1}, "in the future"),
     ({"channel": "we/chat"}, "no scope"), ({"campaign_id": "", "channel": "app"}, "empty part"),
     ({"campaign_id": "c01/"}, "empty part"), ({"metric": "clicks"}, "metric"),
     ({"created_at": float("inf")}, "created_at"), ({"kind": "lift"}, "kind"),
     ({"until": 10**400}, "a silence needs"), ({"reason": "a\nb"}, "one line of text"),
     ({"created_by": "ops\x07"}, "one line of text")],
)  # fmt: skip
def test_a_silence_from_json_is_checked_as_the_worker_gets_it(change: dict[str, object], message: str) -> None:
    assert Silence.from_doc(_silence_doc(), now=T0).until == T0 + 3600
    # The fields say the scope outright: a channel outside the contract's list (kept as sent) is one.
    douyin = Silence.from_doc(_silence_doc(channel="douyin"), now=T0)
    assert douyin.scope == "c01/douyin" and douyin.covers("orders", "c01", "douyin", T0)
    assert not douyin.covers("orders", "c01", "wechat", T0)
    with pytest.raises(ValueError, match=message) as exc:
        Silence.from_doc(_silence_doc(**change), now=T0)
    assert "\n" not in str(exc.value)


def test_a_lifted_silence_covers_nothing_from_then_and_keeps_its_id() -> None:
    silence = Silence.from_doc(_silence_doc(), now=T0)
    assert silence.covers("orders", "c01", "wechat", T0 + 60) and not silence.covers("orders", "c01", "app", T0)
    lifted = silence.__class__(**{**silence.__dict__, "lifted_at": T0 + 120})
    assert lifted.covers("orders", "c01", "wechat", T0 + 60) and not lifted.covers("orders", "c01", "wechat", T0 + 120)
    assert lifted.id == silence.id and lifted.listing(T0 + 121)["active"] is False


def test_times_are_iso_or_relative_and_anything_else_is_exit_2() -> None:
    assert parse_time("2026-11-11T00:30:00+08:00", "--until") == T0 - 5 + 1800
    assert parse_time("2026-11-10T16:30:00Z", "--until") == T0 - 5 + 1800
    assert parse_time("+30m", "--until", now=1000.0) == 2800.0
    assert parse_time("+2h", "--until", now=0.0) == 7200.0
    assert parse_time("now", "--to", now=1234.5) == 1234.5  # as the view says it (replay --to now was refused)
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
    assert msg.title.endswith("已到排期开始时间，没有任何数据") and "开始，至今没有任何" in msg.text
    assert "预期 0" not in msg.text  # no count was expected: its start was (an outside probe)
    english = render({**DROP, "expected": None, "observed": 0.0, "basis": "schedule"}, "fired",
                     Context({}, 0.0, language="en"))  # fmt: skip
    assert english.title.endswith(": nothing has arrived") and "scheduled to start at" in english.text
    alert = Alert("n1", "drop", "interactions", Scope("c"), T0, T0 + 120, None, math.nan, 0.0, "schedule", "critical",
                  "nothing arrived")  # fmt: skip
    assert json.loads(json.dumps(banner_alert(alert), allow_nan=False))["expected"] is None


def test_the_banner_shows_lag_then_critical_newest_first_and_a_reopening_since_its_own_onset() -> None:
    """An outside probe: the banner showed the oldest three incidents first, so a never-started campaign's
    alert kept two newer critical ones under "+2 more"; and a reopened lag alert said "since" the first
    stall's onset. Lag first (nothing is judged meanwhile), then critical, newest first."""
    from streams.alerts.detector import Alert
    from streams.alerts.runner import banner_alerts

    def alert(i: str, at: float, severity: str, kind: str = "drop") -> Alert:
        return Alert(i, kind, None if kind == "lag" else "orders", Scope("c"), at - 30, at, None, 100.0, 5.0,
                     "history", severity, i)  # fmt: skip

    old, warn, new, lag = (alert("old", T0, "critical"), alert("warn", T0 + 600, "warning"),
                           alert("new", T0 + 300, "critical"), alert("lag", T0 + 10, "warning", "lag"))  # fmt: skip
    lag.opened_at, lag.reopened_from = T0 + 900, T0 + 880  # reopened by a second stall
    shown = banner_alerts([old, warn, new, lag])
    assert [a["id"] for a in shown] == ["lag", "new", "old", "warn"], shown
    assert shown[0]["since_ms"] == (T0 + 880) * 1000 and shown[1]["since_ms"] == (T0 + 270) * 1000, shown


def test_the_banner_says_who_acknowledged_this_opening_and_which_silence_covers_it() -> None:
    """An outside probe: an ack or a silence changed nothing on the screen the room watches."""
    from streams.alerts.detector import Alert
    from streams.alerts.runner import banner_alerts
    from streams.alerts.store import Silence

    wechat = Alert("w", "drop", "orders", Scope("c08", "wechat"), T0, T0 + 30, None, 100.0, 0.0, "history",
                   "critical", "w")  # fmt: skip
    app = Alert("a", "drop", "orders", Scope("c08", "app"), T0, T0 + 40, None, 100.0, 0.0, "history", "critical", "a")
    app.opened_at = T0 + 900  # reopened after the ack below: the ack was for the first opening
    acked = {"w": ("duty-李", T0 + 60.0), "a": ("duty-李", T0 + 60.0)}
    silences = [
        Silence("silence", "", "c08", "wechat", T0 + 1800, "payments team on it", "ops", T0 + 100),
        Silence("silence", "", "c09", "", T0 + 3600, "other campaign", "ops", T0 + 100),
    ]
    shown = {a["id"]: a for a in banner_alerts([wechat, app], acked, silences, T0 + 200)}
    assert shown["w"]["acked_by"] == "duty-李" and shown["a"]["acked_by"] is None, shown
    assert shown["w"]["silenced_until_ms"] == (T0 + 1800) * 1000, shown
    assert shown["w"]["silence_reason"] == "payments team on it", shown
    assert shown["a"]["silenced_until_ms"] is None and shown["a"]["silence_reason"] is None, shown
    later = banner_alerts([wechat], acked, silences, T0 + 1900)[0]  # the silence ended
    assert later["silenced_until_ms"] is None and later["acked_by"] == "duty-李", later


def test_a_launch_as_a_trickle_says_how_much_of_the_plan_arrived() -> None:
    doc = {**DROP, "metric": "interactions", "expected": 2400.0, "observed": 190.0, "basis": "schedule"}
    msg = render(doc, "fired", Context({"d11": "双11主会场"}, 0.0))
    assert msg.title == "【严重】双11主会场 / 微信 排期开始后只到了计划的 8%"
    assert "预期 2,400（按计划，以其他活动的实际规模折算），实际 190" in msg.text and "没有任何" not in msg.text
    english = render(doc, "fired", Context({}, 0.0, language="en"))
    assert english.title == "[CRITICAL] d11 / wechat: 8% of the plan after its start"
    assert "expected 2,400 interactions (the plan, scaled as the other campaigns run), observed 190" in english.text


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


def test_a_reopened_or_escalated_drop_says_so_and_each_state_change_is_its_own_notification() -> None:
    ctx = Context({"d11": "双11主会场"}, 0.0)
    assert render(DROP, "escalated", ctx).title == "【严重】双11主会场 / 微信 订单数 下跌 95%（已升级为严重）"
    warning = {**DROP, "severity": "warning", "observed": 120.0}
    assert render(warning, "reopened", ctx).title == "【下跌】双11主会场 / 微信 订单数 下跌 50%（恢复后再次下跌）"
    assert render(DROP, "escalated", Context({}, 0.0, language="en")).title.endswith("down 95% (now critical)")
    lag = {**DROP, "kind": "lag", "metric": None, "campaign_id": None, "channel": None, "observed": 75.0}
    assert render(lag, "reopened", ctx).title == "【延迟】数据管道落后（再次）"
    # A reopened incident says "since" its new onset, and its end names that stretch only (an outside
    # probe: "the drop of 00:00:05-00:11:10 is over", across the recovery told at 00:05:05)
    again = {**DROP, "reopened_from": T0 + 400}
    assert (
        "自 00:06:45 起" in render(again, "reopened", ctx).text
        and "00:00:05" not in render(again, "reopened", ctx).text
    )
    assert "自 00:06:45 起" in render(again, "reminder", ctx).text
    ended = render({**again, "resolved_at": T0 + 665}, "resolved", Context({}, 0.0, language="en"))
    assert "the drop of 00:06:45–00:11:10 is over" in ended.text, ended.text
    assert "自 00:00:05 起" in render({**DROP, "reopened_from": None}, "fired", ctx).text

    # An ack holds for the opening it was given in (an outside probe: acked while resolved, the reopened
    # incident got no reminder)
    opening = Alert("a1", "drop", "orders", Scope("d11"), T0, T0 + 20, None, 240.0, 12.0, "plan", "critical", "")
    assert not acknowledged(opening, None) and acknowledged(opening, T0 + 30)
    opening.opened_at = T0 + 400  # reopened
    assert not acknowledged(opening, T0 + 30) and acknowledged(opening, T0 + 401)

    # One incident's life: fired as a warning, raised to critical, resolved, fired again within
    # minutes (the same id), resolved again. Each change is a notification of its own name (sent once
    # each, also across restarts); a change that tells nothing new (a child folded under it) repeats one.
    alert = Alert("a1", "drop", "orders", Scope("d11", "wechat"), T0, T0 + 20, None, 240.0, 120.0, "history",
                  "warning", "")  # fmt: skip
    names = [notification_event(alert)]
    alert.children = (Scope("d11", "wechat"),)
    assert notification_event(alert) == names[0]
    alert.severity, alert.raised_at = "critical", T0 + 60
    names.append(notification_event(alert))
    alert.resolved_at = T0 + 300
    names.append(notification_event(alert))
    alert.resolved_at, alert.opened_at, alert.raised_at = None, T0 + 400, math.nan
    names.append(notification_event(alert))
    alert.resolved_at = T0 + 600
    names.append(notification_event(alert))
    assert [n.split("@")[0] for n in names] == ["fired", "escalated", "resolved", "fired", "resolved"]
    assert len(set(names)) == 5, names


def test_the_children_that_moved_are_named_as_the_room_knows_them() -> None:
    """Under a campaign, its channels by their names; under the total, campaigns by name (they were ids:
    "also down: c02/web, c02/app" in a room that knows the campaign as 双11主会场)."""
    names = {"d11": "双11主会场", "2026/双11": "双11预售", "c07": "家电会场"}
    campaign = {**DROP, "channel": None, "children": ["d11/wechat", "d11/app", "d11/web"]}
    assert "一同下跌：微信、APP、web" in render(campaign, "fired", Context(names, 0.0)).text
    assert "also down: wechat, app, web\n" in render(campaign, "fired", Context(names, 0.0, language="en")).text
    total = {**DROP, "campaign_id": None, "channel": None, "children": ["2026/双11", "c07", "c99", "d11/wechat",
                                                                         "c99/app", "c07/web"]}  # fmt: skip
    assert "一同下跌：双11预售、家电会场、c99、双11主会场 / 微信、c99 / APP、家电会场 / web" in render(
        total, "fired", Context(names, 0.0)).text  # fmt: skip
    many = {**total, "children": [f"c{i}" for i in range(9)]}
    english = render(many, "fired", Context({}, 0.0, language="en")).text
    assert "also down: c0, c1, c2, c3, c4, c5 and 3 more" in english
    assert "c5 等 9 个" in render(many, "fired", Context({}, 0.0)).text


def _lag_steps(lags: list[float]) -> list[Step]:
    """Steps 10 s apart with these lags and a steady count (no drop to judge)."""
    values = {(Scope(), "interactions"): 100.0}
    return [Step(T0 + 10 * i, T0 + 10 * i - 5, lag, values) for i, lag in enumerate(lags)]


class Room:
    """What the runner does with the gate (AlertRunner.tick): each change decided, told unless a
    silence covers it, then held reopens that are due; `heard` is what reached the room."""

    def __init__(self) -> None:
        self.gate, self.heard, self.silenced = FlapGate(), list[tuple[str, float]](), False

    def change(self, alert: Alert, now: float) -> str | None:
        event = self.gate.decide(alert, now)
        self._tell(alert, event, now)
        return event

    def tick(self, firing: list[Alert], now: float) -> None:
        for alert, event in self.gate.due(firing, now):
            self._tell(alert, event, now)

    def _tell(self, alert: Alert, event: str | None, now: float) -> None:
        if event is not None and not self.silenced and (alert.id, event) not in {(alert.id, e) for e, _ in self.heard}:
            self.heard.append((event, now - T0))
            self.gate.told(alert, event, now)

    def kinds(self) -> list[str]:
        return [e.split("@")[0] for e, _ in self.heard]


def _through(room: Room, det: Detector, steps: list[Step], restore_at: int | None = None) -> int:
    changes = 0
    for i, step in enumerate(steps):
        if i == restore_at:
            room.gate = FlapGate.from_doc(json.loads(json.dumps(room.gate.to_doc())))
        for alert in det.step(step):
            changes += 1
            room.change(alert, step.at)
        room.tick(det.firing(), step.at)
    return changes


def test_a_flapping_incident_is_told_a_few_times_not_at_every_flap() -> None:
    """A lag hovering at 60 s (55 / 65, 20 s each) for 10 minutes: told fired, resolved, the first
    reopen and its resolution; the later reopens are held (shorter than FLAP_HOLD_S), their
    resolutions not told. Every change is still in promo.alerts (the detector returns each)."""
    room = Room()
    changes = _through(
        room, Detector(), _lag_steps([20.0] * 6 + [65.0 if (i // 2) % 2 == 0 else 55.0 for i in range(60)])
    )
    assert changes >= 25, changes
    assert room.kinds() == ["fired", "resolved", "fired", "resolved"], room.heard


def test_a_held_reopen_that_stays_open_is_told_and_so_is_its_end() -> None:
    """The flaps settle into a real stall: the reopen held back is told once it has stayed open
    FLAP_HOLD_S, and its resolution after it; restored from the runner's state file midway."""
    room = Room()
    lags = [20.0] * 6 + [65.0, 65.0, 55.0, 55.0, 65.0, 65.0, 55.0, 55.0] + [90.0] * 12 + [5.0] * 3
    _through(room, Detector(), _lag_steps(lags), restore_at=16)
    assert room.kinds() == ["fired", "resolved", "fired", "resolved", "fired", "resolved"], room.heard
    assert room.heard[4][1] == 140 + FLAP_HOLD_S, (
        room.heard
    )  # reopened at 140 s (the second reopen), told a minute later


def _orders(opened: float) -> Alert:
    return Alert("a1", "drop", "orders", Scope("d11"), T0, T0 + 20, None, 240.0, 120.0, "history", "warning", "",
                 opened_at=opened)  # fmt: skip


def test_a_later_change_of_a_told_reopen_neither_holds_it_nor_hides_its_end() -> None:
    room = Room()
    alert = _orders(T0 + 20)
    assert room.change(alert, T0 + 20) == f"fired@{T0 + 20:.0f}"
    alert.resolved_at = T0 + 100
    assert room.change(alert, T0 + 100) == f"resolved@{T0 + 100:.0f}"
    alert.resolved_at, alert.opened_at = None, T0 + 200
    told = room.change(alert, T0 + 200)
    assert told == f"fired@{T0 + 200:.0f}"
    alert.children = (Scope("d11", "wechat"),)  # a child folded under it: the same name again (sends nothing)
    assert room.change(alert, T0 + 210) == told
    # ... also 35 minutes on, when the gate has forgotten when it told that reopen.
    room.tick([alert], T0 + 2300)
    assert room.change(alert, T0 + 2300) == told
    alert.resolved_at = T0 + 2400
    assert room.change(alert, T0 + 2400) == f"resolved@{T0 + 2400:.0f}"
    assert room.kinds() == ["fired", "resolved", "fired", "resolved"]


def test_a_held_reopen_raised_to_critical_is_told_and_so_is_its_end() -> None:
    room = Room()
    alert = _orders(T0 + 20)
    for at, change in ((T0 + 20, "open"), (T0 + 100, "resolve"), (T0 + 200, "open"), (T0 + 300, "resolve"),
                       (T0 + 400, "open")):  # fmt: skip
        alert.resolved_at, alert.opened_at = (at, alert.opened_at) if change == "resolve" else (None, at)
        room.change(alert, at)
    assert room.kinds() == ["fired", "resolved", "fired", "resolved"]  # the second reopen is held
    alert.severity, alert.raised_at = "critical", T0 + 420
    assert room.change(alert, T0 + 420) == f"escalated@{T0 + 420:.0f}"
    alert.resolved_at = T0 + 440  # before the hold would have told it: the room was told it is critical
    assert room.change(alert, T0 + 440) == f"resolved@{T0 + 440:.0f}"
    assert room.kinds()[-2:] == ["escalated", "resolved"]


def test_a_room_a_silence_left_believing_it_fires_is_told_when_it_ends() -> None:
    """Fired, resolved, reopened (told), then a silence hides its resolution: the room's last word is
    "down again". A reopen after the silence (within the flap window: held) that ends within the hold
    must still be told as resolved, or the room is left believing it fires."""
    room = Room()
    alert = _orders(T0 + 20)
    for at, change in ((T0 + 20, "open"), (T0 + 100, "resolve"), (T0 + 200, "open")):
        alert.resolved_at, alert.opened_at = (at, alert.opened_at) if change == "resolve" else (None, at)
        room.change(alert, at)
    room.silenced = True
    alert.resolved_at = T0 + 300
    room.change(alert, T0 + 300)
    room.silenced = False
    alert.resolved_at, alert.opened_at = None, T0 + 400
    room.change(alert, T0 + 400)
    alert.resolved_at = T0 + 430
    room.change(alert, T0 + 430)
    assert room.kinds()[-1] == "resolved" and room.heard[-1][1] == 430, room.heard


def test_a_reopen_that_is_an_outage_is_told_at_once_even_when_it_ends_within_the_hold() -> None:
    """Fired, resolved, reopened (told), resolved; a second reopen as a warning is held, but one that
    is critical (an outage again) is told at once, and its end too, though it lasted under FLAP_HOLD_S."""
    room = Room()
    alert = _orders(T0 + 20)
    for at, change in ((T0 + 20, "open"), (T0 + 100, "resolve"), (T0 + 200, "open"), (T0 + 300, "resolve")):
        alert.resolved_at, alert.opened_at = (at, alert.opened_at) if change == "resolve" else (None, at)
        room.change(alert, at)
    alert.resolved_at, alert.opened_at, alert.severity = None, T0 + 400, "critical"
    assert room.change(alert, T0 + 400) == f"fired@{T0 + 400:.0f}"
    alert.resolved_at = T0 + 430
    room.tick([], T0 + 430)
    assert room.change(alert, T0 + 430) == f"resolved@{T0 + 430:.0f}"
    assert room.kinds() == ["fired", "resolved", "fired", "resolved", "fired", "resolved"], room.heard
    # The same reopen as a warning is held, and, ended within the hold, never told.
    alert.resolved_at, alert.opened_at, alert.severity = None, T0 + 500, "warning"
    assert room.change(alert, T0 + 500) is None
    alert.resolved_at = T0 + 530
    assert room.change(alert, T0 + 530) is None


def test_an_incident_closed_by_a_fresh_start_is_not_said_to_have_recovered() -> None:
    """A detector that started afresh closes what its store still held open (runner: `_close_orphans`): the
    room hears "closed", without a verdict, in both languages, for a drop and for a lag."""
    for language, title, said in (("zh", "【关闭】", "未判断是否恢复"), ("en", "[closed]", "without a verdict")):
        ctx = Context({"d11": "双11主会场"}, 0.0, language=language)
        msg = render({**DROP, "resolved_at": T0 + 600}, "closed", ctx)
        assert msg.title.startswith(title) and said in msg.text and "00:00:05" in msg.text, msg
        assert "恢复】" not in msg.title and "[resolved]" not in msg.title
        lag = render({**DROP, "kind": "lag", "metric": None, "resolved_at": T0 + 600}, "closed", ctx)
        assert lag.title.startswith(title) and ("重新判断延迟" in lag.text or "judged anew" in lag.text), lag
