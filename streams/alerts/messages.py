"""What a notification says: the scope by name, the metric, expected against observed and on what
basis, since when, which children moved, how fresh the data is, and a link to the dashboard at the
incident's time range. Chinese by default (the war rooms this is for), English by setting. Pure.
"""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from streams.alerts.notify import Message

SHANGHAI = ZoneInfo("Asia/Shanghai")

METRIC_NAMES = {
    "zh": {
        "interactions": "互动量",
        "shares": "分享数",
        "orders": "订单数",
        "gmv_fen": "GMV",
        "new_users": "新下单用户",
    },
    "en": {
        "interactions": "interactions",
        "shares": "shares",
        "orders": "orders",
        "gmv_fen": "GMV",
        "new_users": "new ordering users",
    },
}
BASIS_NAMES = {
    "zh": {
        "plan": "按计划",
        "share-of-parent": "按与本活动其他渠道的比例",
        "share-of-total": "按与其他活动的比例（随计划变化）",
        "history": "按近期水平",
        "ratio": "按指标间比例",
        "schedule": "按活动排期",
    },
    "en": {
        "plan": "the plan",
        "share-of-parent": "its ratio to the campaign's other channels",
        "share-of-total": "its ratio to the other campaigns, as the plan moves it",
        "history": "its recent level",
        "ratio": "the ratio between metrics",
        "schedule": "the schedule",
    },
}
CHANNEL_NAMES = {"wechat": "微信", "mobileqq": "手Q", "jingxi": "京喜", "app": "APP"}


@dataclass(frozen=True)
class Context:
    """What the message needs beyond the alert row: names, freshness, where the dashboards are."""

    campaign_names: Mapping[str, str]
    lag_s: float
    dashboard_url: str = ""  # e.g. http://grafana:3000/d/promo-war-room; '' for no link
    language: str = "zh"
    now: float = math.nan  # when the message is written (the runner's step): times on another day get their date


def _local(seconds: float, now: float = math.nan) -> str:
    """Beijing time; with its date (MM-DD) when that is not the day of `now`, the message's own time (a
    reminder at 00:20 of a drop "since 23:58:10", a resolution a day on: an outside probe read times
    without a date)."""
    when = dt.datetime.fromtimestamp(seconds, tz=SHANGHAI)
    if math.isfinite(now) and when.date() != dt.datetime.fromtimestamp(now, tz=SHANGHAI).date():
        return when.strftime("%m-%d %H:%M:%S")
    return when.strftime("%H:%M:%S")


def _amount(metric: str | None, value: float) -> str:
    if metric == "gmv_fen":
        return f"¥{value / 100:,.0f}"
    return f"{value:,.0f}"


def scope_text(campaign_id: str | None, channel: str | None, ctx: Context) -> str:
    zh = ctx.language == "zh"
    if campaign_id is None:
        return "全部活动" if zh else "all campaigns"
    name = ctx.campaign_names.get(campaign_id) or campaign_id
    if channel is None:
        return name
    return f"{name} / {CHANNEL_NAMES.get(channel, channel) if zh else channel}"


def child_text(label: str, campaign_id: str | None, ctx: Context) -> str:
    """A child folded under the alert, as the room knows it: under a campaign, its channel (`c02/wechat` ->
    微信); under the total, the campaign by name (a campaign id may hold '/', so the label is looked up whole
    first), or a channel folded straight under it as campaign / channel."""
    if campaign_id is not None and label.startswith(f"{campaign_id}/"):
        channel = label[len(campaign_id) + 1 :]
        return CHANNEL_NAMES.get(channel, channel) if ctx.language == "zh" else channel
    if label in ctx.campaign_names:
        return ctx.campaign_names[label]
    # A channel folded straight under the total (its campaign had no incident): campaign / channel
    head, _, tail = label.rpartition("/")
    if head and (head in ctx.campaign_names or tail in CHANNEL_NAMES):
        return scope_text(head, tail, ctx)
    return label


def link(doc: Mapping[str, Any], ctx: Context) -> str:
    """The dashboard from 30 min before the onset to now while the incident goes on (a reminder's link
    ended 15 min after the detection, before the reminder itself: an outside probe), or to 15 min
    after its resolution."""
    if not ctx.dashboard_url:
        return ""
    start = int((doc["started_at"] - 1800) * 1000)
    resolved = doc.get("resolved_at")
    end: int | str = int((resolved + 900) * 1000) if resolved is not None else "now"
    query: dict[str, Any] = {"from": start, "to": end}
    if doc.get("campaign_id") is not None:
        query["var-campaign"] = doc["campaign_id"]
    sep = "&" if "?" in ctx.dashboard_url else "?"
    return f"{ctx.dashboard_url}{sep}{urllib.parse.urlencode(query)}"


def render(doc: Mapping[str, Any], event: str, ctx: Context) -> Message:
    """`doc`: the alert (times as epoch seconds); `event`: fired, reopened (a re-fire within minutes of
    its resolution: the same incident), escalated (raised from warning to critical), resolved or reminder."""
    zh = ctx.language == "zh"

    def when(seconds: float) -> str:
        return _local(seconds, ctx.now)

    scope = scope_text(doc.get("campaign_id"), doc.get("channel"), ctx)
    # "since": a reopened incident's own onset, not its first one (an outside probe), in every message of it
    again_from = doc.get("reopened_from")
    since_at = again_from if again_from is not None and math.isfinite(again_from) else doc["started_at"]
    fresh = f"数据延迟 {ctx.lag_s:.0f} 秒" if zh else f"data {ctx.lag_s:.0f} s behind"
    if doc["kind"] == "lag":
        if event == "closed":
            title = "【关闭】数据管道延迟告警" if zh else "[closed] pipeline lag alert"
            text = ("检测器重新启动，未能接续之前的状态，此告警关闭；此后重新判断延迟" if zh
                    else "the detector started afresh, without its earlier state: this alert is closed and the "
                    "lag is judged anew from here")  # fmt: skip
        elif event == "resolved":
            title = "【恢复】数据管道已追上" if zh else "[resolved] pipeline caught up"
            back = when(doc["resolved_at"])
            text = f"{back} 起数据恢复实时" if zh else f"live again since {back}"
        else:
            title = "【延迟】数据管道落后" if zh else "[lag] pipeline behind"
            if event == "reopened":
                title += "（再次）" if zh else " (again)"
            since, behind = when(since_at), f"{doc['observed']:.0f}"
            text = (
                f"自 {since} 起落后 {behind} 秒；此期间不判断下跌，大屏数字不是实时的"
                if zh
                else f"{behind} s behind since {since}; drops are not judged meanwhile and the screen is not live"
            )
        return Message(title, text, {"event": event, **doc})
    metric = METRIC_NAMES[ctx.language].get(doc.get("metric") or "", doc.get("metric") or "")
    basis_key = str(doc.get("basis", "")).split(":")[0]
    basis = BASIS_NAMES[ctx.language].get(basis_key, doc.get("basis", ""))
    # A scheduled campaign from which nothing arrived has no expected count (None or NaN): all of it is missing.
    raw = doc.get("expected")
    expected = float(raw) if raw is not None and math.isfinite(float(raw)) else 0.0
    observed = float(doc["observed"])
    drop = (1 - observed / expected) * 100 if expected > 0 else 100.0
    severe = doc.get("severity") == "critical"
    if event == "closed":  # a detector started afresh closed it unjudged (runner: `_close_orphans`)
        title = f"【关闭】{scope} {metric}" if zh else f"[closed] {scope} {metric}"
        text = (
            f"{when(since_at)} 起的下跌告警已关闭，未判断是否恢复：检测器重新启动，未能接续之前的状态；此后重新判断"
            if zh
            else f"the drop alert since {when(since_at)} is closed without a verdict on recovery: the detector "
            "started afresh, without its earlier state, and judges the scope anew from here"
        )
    elif event == "resolved":
        title = f"【恢复】{scope} {metric}" if zh else f"[resolved] {scope} {metric}"
        text = (
            f"{when(since_at)}–{when(doc['resolved_at'])} 的下跌已恢复"
            if zh
            else f"the drop of {when(since_at)}–{when(doc['resolved_at'])} is over"
        )
    else:
        tag = ("【严重】" if severe else "【下跌】") if zh else ("[CRITICAL] " if severe else "[drop] ")
        again = {
            "reminder": "（提醒，尚未确认）" if zh else " (reminder: not acknowledged)",
            "reopened": "（恢复后再次下跌）" if zh else " (down again after it recovered)",
            "escalated": "（已升级为严重）" if zh else " (now critical)",
        }.get(event, "")
        down = f"下跌 {drop:.0f}%" if zh else f"down {drop:.0f}%"
        title = f"{tag}{scope} {metric} {down}{again}"
        text = (
            f"预期 {_amount(doc.get('metric'), expected)}（{basis}），实际 {_amount(doc.get('metric'), observed)}；"
            f"自 {when(since_at)} 起"
            if zh
            else f"expected {_amount(doc.get('metric'), expected)} ({basis}), observed "
            f"{_amount(doc.get('metric'), observed)}; since {when(since_at)}"
        )
        if basis_key == "schedule" and expected > 0 and observed > 0:  # a trickle: the plan scaled by the rest
            title = (
                f"{tag}{scope} 排期开始后只到了计划的 {observed / expected:.0%}{again}"
                if zh
                else f"{tag}{scope}: {observed / expected:.0%} of the plan after its start{again}"
            )
            text = (
                f"排期 {when(since_at)} 开始；{metric}预期 {_amount(doc.get('metric'), expected)}"
                f"（按计划，以其他活动的实际规模折算），实际 {_amount(doc.get('metric'), observed)}"
                if zh
                else f"scheduled to start at {when(since_at)}; expected "
                f"{_amount(doc.get('metric'), expected)} {metric} (the plan, scaled as the other campaigns run), "
                f"observed {_amount(doc.get('metric'), observed)}"
            )
        elif basis_key == "schedule":  # no count was expected: its start was (an outside probe read "expected 0")
            title = (
                f"{tag}{scope} 已到排期开始时间，没有任何数据{again}"
                if zh
                else f"{tag}{scope}: nothing has arrived{again}"
            )
            start = when(since_at)
            text = (f"排期 {start} 开始，至今没有任何{metric}" if zh
                    else f"scheduled to start at {start}; no {metric} has arrived since")  # fmt: skip
        children = [child_text(str(c), doc.get("campaign_id"), ctx) for c in doc.get("children") or []]
        if children:
            more = len(children) - 6
            tail = (f" 等 {len(children)} 个" if zh else f" and {more} more") if more > 0 else ""
            text += ("；一同下跌：" if zh else "; also down: ") + ("、" if zh else ", ").join(children[:6]) + tail
    text += f"\n{fresh}"
    url = link(doc, ctx)
    if url:
        text += f"\n{url}"
    return Message(title, text, {"event": event, **doc})
