"""Grafana dashboards as code: the war room, a campaign drill-down and pipeline health.

Plain Python that emits Grafana 10+ dashboard JSON for the official ClickHouse datasource plugin
(`grafana-clickhouse-datasource`): every panel target is raw SQL (`editorType: "sql"`) over the
tables of `streams/sink/clickhouse.py`, using the plugin's macros (`$__timeFilter(col)`,
`$__timeInterval(col)`, `$__interval_s`). The datasource is referenced by uid `promo-clickhouse`,
which `deploy/grafana/provisioning/datasources/clickhouse.yaml` provisions.

Layout of this module, after the grafana-foundation-sdk habit: SQL fragments, then the panel
presets (one small factory per panel kind, each returning a fresh dict), then one function per
dashboard, then `build_all` / `write_all` / `main`. The JSON is written sorted and indented so it
diffs cleanly; `python -m streams.dashboards.grafana dashboards/` regenerates the committed files.

Counters in `promo.facts` are deltas (a moved credit is -1 here, +1 there), so every number is a
`sum()`, never a `count()` or a single row's value.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

Json = dict[str, Any]

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "promo-clickhouse"
TIMEZONE = "Asia/Shanghai"
REFRESH = "5s"
TAGS = ("promo",)

# Plugin query formats (its `Format` enum) and the matching query types.
FORMAT_TIMESERIES = 0
FORMAT_TABLE = 1

# --------------------------------------------------------------------------------------------
# SQL fragments

FACTS = "promo.facts"  # fact rows only (src_partition < 0 AND reason = '')
FACTS_MINUTE = "promo.facts_minute"
CAMPAIGN_NAMES = "promo.campaign_names"  # the newest `promo campaigns import` of each campaign
PIPELINE_STATUS = "promo.pipeline_status"  # the worker's state every 10 s
SINK_LOG = "promo.sink_log"
ALERTS = "promo.alerts"  # the drop detector's incidents (streams/alerts/), a version per change
ACKS = "promo.alert_acks"  # who acknowledged an incident, and when
DETECTOR = "detector"  # its heartbeat's `worker` in promo.pipeline_status

# The social channels of the headline number ("52% of new ordering users came from WeChat and QQ").
SOCIAL_CHANNELS = ("wechat", "mobileqq", "jingxi")
CHANNEL_NAMES = {
    "wechat": "微信",
    "mobileqq": "手Q",
    "jingxi": "京喜",
    "app": "京东App",
    "web": "网页",
    "other": "其他",
}


def _sql_list(values: Sequence[str]) -> str:
    # Only for the constants above (plain ASCII/CJK, no quotes); never for user-supplied values.
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


SOCIAL_SQL = "(" + ", ".join(f"'{c}'" for c in SOCIAL_CHANNELS) + ")"
# "微信 wechat"; a channel the platform does not know yet is shown as sent.
CHANNEL_LABEL = (
    f"transform(channel, {_sql_list(list(CHANNEL_NAMES))}, "
    f"{_sql_list([f'{zh} {en}' for en, zh in CHANNEL_NAMES.items()])}, channel)"
)
TIER_LABEL = "if(city_tier = 0, '未知 unknown', concat(toString(city_tier), '线城市 tier ', toString(city_tier)))"
# The campaign variable, bound without quoting pitfalls: Grafana percent-encodes the value (only
# A-Z a-z 0-9 - _ . ~ and %XX remain, so no quote or backslash can reach the SQL) and ClickHouse
# decodes it back to the exact string, whatever Unicode a campaign id holds.
CAMPAIGN = "decodeURLComponent('${campaign:percentencode}')"
# Per-minute rates from buckets of `$__interval_s` seconds (never less than a minute: see `interval`).
PER_MINUTE = "* 60 / $__interval_s"
# The settled point: every panel of a screen counts only the minutes before it, so tiles, tables and
# series read the same minutes and agree with each other, however the sink's writes interleave with
# the panels' queries (Grafana runs each panel's query on its own). A minute is settled once it is
# over and its last seconds have had time to land (the pipeline's freshness is about a second at
# p99); an unfinished minute would also plot as a plunge on a wall screen. The point is computed
# from the refresh's range end (`$__toTime`, one value for every panel of a refresh), not from each
# query's own now(): two panels of one refresh get the same point even when they run seconds apart.
# now() only caps a range that ends in the future, and lets a range wholly in the past count all of it.
SETTLE_S = 5
SETTLED_UNTIL = (
    f"toStartOfMinute(if($__toTime + 1 <= now() - {SETTLE_S}, $__toTime + 1, least($__toTime, now()) - {SETTLE_S}))"
)
SETTLED_BUCKETS = f"time + $__interval_s <= {SETTLED_UNTIL}"
# Whole buckets only: one that began before the range holds part of its minutes (an outside probe: the
# first point of a chart from 21:25 in 2-minute buckets at half height), and none after the settled point.
WHOLE_BUCKETS = f"time >= $__fromTime AND {SETTLED_BUCKETS}"
# The day's totals beside a chart of the last hour: the tiles, tables and bars count the business day
# (00:00 in Asia/Shanghai) that holds the range's end, up to the settled point. "Today" by default,
# and the day being looked at when the range is moved into the past.
DAY_START = f"toStartOfDay($__toTime, '{TIMEZONE}')"
TODAY = f"minute >= {DAY_START} AND minute < {SETTLED_UNTIL}"
DAY_NOTE = (
    "Today: the business day (00:00 Asia/Shanghai) of the range's end, up to the settled minute, whatever the "
    "range; the charts show the range itself (the last hour by default)."
)
# Charts show the dashboard's range: the last hour by default, in one-minute buckets a wall can read.
DEFAULT_RANGE = "now-1h"


# --------------------------------------------------------------------------------------------
# Presets: one factory per panel kind


class Grid(NamedTuple):
    """A panel's place on the 24-column grid."""

    x: int
    y: int
    w: int
    h: int


def datasource() -> Json:
    return {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}


def target(sql: str, fmt: int) -> Json:
    """One raw-SQL query of the ClickHouse plugin."""
    return {
        "datasource": datasource(),
        "editorType": "sql",
        "format": fmt,
        "queryType": "timeseries" if fmt == FORMAT_TIMESERIES else "table",
        "rawSql": sql.strip(),
        "refId": "A",
    }


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": c, "value": v} for v, c in steps)],
    }


def display_names(names: Mapping[str, str] | None) -> list[Json]:
    """Field overrides that show a SQL column under a bilingual name."""
    return [
        {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "displayName", "value": name}]}
        for column, name in (names or {}).items()
    ]


def _panel(kind: str, title: str, sql: str, grid: Grid, fmt: int, *, description: str, unit: str) -> Json:
    return {
        "datasource": datasource(),
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": grid._asdict(),
        "interval": "1m",  # the series are per minute; a finer bucket would only show gaps
        "options": {},
        "targets": [target(sql, fmt)],
        "title": title,
        "type": kind,
    }


def stat(
    title: str,
    sql: str,
    grid: Grid,
    *,
    unit: str = "short",
    decimals: int | None = 0,
    color: str = "green",
    steps: Sequence[tuple[float, str]] = (),
    names: Mapping[str, str] | None = None,
    description: str = "",
    no_value: str = "0",
    mappings: Mapping[int, str] | None = None,
) -> Json:
    """Big numbers for the wall: one value per column of a one-row result. `mappings` shows a value
    as a text (Grafana's value mappings; the colour stays the thresholds')."""
    panel = _panel("stat", title, sql, grid, FORMAT_TABLE, description=description, unit=unit)
    panel["fieldConfig"]["defaults"].update(
        {"color": {"mode": "thresholds"}, "noValue": no_value, "thresholds": thresholds(color, *steps)}
    )
    if mappings:
        panel["fieldConfig"]["defaults"]["mappings"] = [
            {"type": "value", "options": {str(v): {"index": i, "text": t} for i, (v, t) in enumerate(mappings.items())}}
        ]
    if decimals is not None:
        panel["fieldConfig"]["defaults"]["decimals"] = decimals
    panel["fieldConfig"]["overrides"] = display_names(names)
    panel["options"] = {
        "colorMode": "background" if steps else "value",
        "graphMode": "none",
        "justifyMode": "center",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/", "values": False},
        "showPercentChange": False,
        "textMode": "value_and_name" if names else "value",
        "wideLayout": True,
    }
    return panel


def timeseries(
    title: str,
    sql: str,
    grid: Grid,
    *,
    unit: str = "short",
    names: Mapping[str, str] | None = None,
    description: str = "",
    stack: bool = False,
    fill: bool = True,
) -> Json:
    """Lines over time; the SQL returns `time` and one column per series (or label columns after
    `time` in its ORDER BY), and ends with its ORDER BY. Only whole buckets ended by the settled point
    are drawn (`WHOLE_BUCKETS`). With `fill`, a bucket with no rows between a series' first and the
    panel's last bucket with rows is a 0 (per label): a minute with no events had none, and without its
    row the line ran straight across an outage (an outside probe); a Nullable column reads NULL there
    (a gap). Not for latencies: a minute with no writes had none."""
    order = sql.rindex(" ORDER BY ")
    keys = [key.strip() for key in sql[order + len(" ORDER BY ") :].split(",")]
    if keys[0] != "time":
        raise ValueError(f"a time series is ordered by time first, not {keys}")
    if fill:
        # From a series' first bucket with events (a range with none stays "no data", not a line of 0s
        # where nothing was measured) to the last bucket any series of the panel has: a channel that
        # stopped while the others go on reads 0, but a pipeline behind (nothing written yet for the
        # last minutes) is no plunge of every series at the right edge (a review).
        last = "assumeNotNull((SELECT max(time) FROM src))"
        filled = f"time WITH FILL TO {last} + $__interval_s STEP $__interval_s"
        sql = (f"WITH src AS (SELECT * FROM ({sql[:order]}) WHERE {WHOLE_BUCKETS}) "
               f"SELECT * FROM (SELECT * FROM src ORDER BY {', '.join([*keys[1:], filled])}) "
               f"ORDER BY {', '.join(keys)}")  # fmt: skip  # Grafana reads a long frame by time
    else:
        sql = f"SELECT * FROM ({sql[:order]}) WHERE {WHOLE_BUCKETS} ORDER BY {', '.join(keys)}"
    note = (f"Whole buckets in the range only, up to the settled minute every panel of the screen counts to: the "
            f"current one is drawn {SETTLE_S} s after it ends.")  # fmt: skip
    if fill:
        note += " A bucket with no events is 0."
    description = f"{description} {note}" if description else note
    panel = _panel("timeseries", title, sql, grid, FORMAT_TIMESERIES, description=description, unit=unit)
    panel["fieldConfig"]["defaults"]["custom"] = {
        "drawStyle": "line",
        "fillOpacity": 15 if stack else 0,
        "lineWidth": 2,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    panel["fieldConfig"]["overrides"] = display_names(names)
    panel["options"] = {
        "legend": {"calcs": ["sum"], "displayMode": "table", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def barchart(
    title: str,
    sql: str,
    grid: Grid,
    *,
    x_field: str,
    unit: str = "short",
    names: Mapping[str, str] | None = None,
    description: str = "",
    horizontal: bool = False,
) -> Json:
    """Bars per category; the SQL returns the category column `x_field` and numeric columns."""
    panel = _panel("barchart", title, sql, grid, FORMAT_TABLE, description=description, unit=unit)
    panel["fieldConfig"]["defaults"]["color"] = {"mode": "palette-classic"}
    panel["fieldConfig"]["overrides"] = display_names(names)
    panel["options"] = {
        "barWidth": 0.8,
        "groupWidth": 0.7,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "orientation": "horizontal" if horizontal else "vertical",
        "showValue": "always",
        "stacking": "none",
        "tooltip": {"mode": "single", "sort": "none"},
        "xField": x_field,
        "xTickLabelRotation": 0,
    }
    return panel


def table(
    title: str,
    sql: str,
    grid: Grid,
    *,
    names: Mapping[str, str],
    units: Mapping[str, str] | None = None,
    links: Mapping[str, tuple[str, str]] | None = None,
    description: str = "",
) -> Json:
    """Rows as returned; columns shown under `names`, with optional units and data links per column."""
    panel = _panel("table", title, sql, grid, FORMAT_TABLE, description=description, unit="short")
    overrides = display_names(names)
    for column, unit in (units or {}).items():
        unit_property = {"id": "unit", "value": unit}
        overrides.append({"matcher": {"id": "byName", "options": column}, "properties": [unit_property]})
    for column, (link_title, url) in (links or {}).items():
        overrides.append(
            {
                "matcher": {"id": "byName", "options": column},
                "properties": [{"id": "links", "value": [{"title": link_title, "url": url}]}],
            }
        )
    panel["fieldConfig"]["overrides"] = overrides
    panel["options"] = {"cellHeight": "md", "footer": {"show": False}, "showHeader": True}
    return panel


def campaign_variable() -> Json:
    # Biggest GMV of the day (and of the range, when it starts earlier) first, and not re-sorted: the
    # drill-down opens on the campaign that matters most right now, not the alphabetically first.
    sql = (
        f"SELECT campaign_id FROM {FACTS} WHERE minute >= least($__fromTime, {DAY_START}) "
        f"AND minute < {SETTLED_UNTIL} GROUP BY campaign_id ORDER BY sum(gmv_fen) DESC, campaign_id"
    )
    return {
        "current": {},
        "datasource": datasource(),
        "definition": sql,
        "includeAll": False,
        "label": "活动 / Campaign",
        "multi": False,
        "name": "campaign",
        "options": [],
        "query": sql,
        "refresh": 2,  # on time range change: a campaign that starts mid-sale appears
        "sort": 0,
        "type": "query",
    }


def dashboard(
    uid: str,
    title: str,
    panels: Sequence[Json],
    *,
    time_from: str = DEFAULT_RANGE,
    variables: Sequence[Json] = (),
    description: str = "",
) -> Json:
    """A kiosk-friendly dashboard: Shanghai time, 5 s refresh, panels numbered in order."""
    numbered = [{**p, "id": i} for i, p in enumerate(panels, start=1)]
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": list(TAGS),
                "title": "大促 / Promo",
                "type": "dashboards",
            }
        ],
        "liveNow": False,
        "panels": numbered,
        "refresh": REFRESH,
        "schemaVersion": 39,
        "tags": list(TAGS),
        "templating": {"list": list(variables)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "timezone": TIMEZONE,
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "monday",
    }


# --------------------------------------------------------------------------------------------
# Dashboards


def war_room(*, time_from: str = DEFAULT_RANGE) -> Json:
    """大促作战室: the sale-day numbers on the wall: the day's totals, and the last hour's charts."""
    in_range = f"FROM {FACTS} WHERE $__timeFilter(minute)"
    today = f"FROM {FACTS} WHERE {TODAY}"
    panels = [
        stat("今日成交额 / GMV today", f"SELECT sum(gmv_fen) / 100 AS gmv_yuan {today}", Grid(0, 0, 5, 5),
             unit="currencyCNY", decimals=2, description=f"Sum of accepted orders' amount_fen, in yuan. {DAY_NOTE}"),
        stat("今日订单 / Orders today", f"SELECT sum(orders) AS orders {today}", Grid(5, 0, 3, 5),
             description=DAY_NOTE),
        stat("今日新增下单用户 / New ordering users today", f"SELECT sum(new_users) AS new_users {today}",
             Grid(8, 0, 3, 5),
             description=f"People whose first order ever is today (not imported buyers). {DAY_NOTE}"),
        stat(
            "今日社交渠道新客占比 / Social share of new users today",
            # Summed per channel first: a plain sum per channel is what the projections hold.
            f"SELECT 100 * sumIf(new_users, channel IN {SOCIAL_SQL}) / nullIf(sum(new_users), 0) AS social_pct "
            f"FROM (SELECT channel, sum(new_users) AS new_users {today} GROUP BY channel)",
            Grid(11, 0, 4, 5), unit="percent", decimals=1, color="blue", no_value="-",
            description="New ordering users from WeChat, Mobile QQ and Jingxi, as a share of all new ordering "
            f"users. {DAY_NOTE}",
        ),
        stat("今日互动人次 / Interactions today", f"SELECT sum(interactions) AS interactions {today}",
             Grid(15, 0, 3, 5), description=DAY_NOTE),
        stat("今日参与人数 / Participants today", f"SELECT sum(participants) AS participants {today}",
             Grid(18, 0, 3, 5), description=DAY_NOTE),
        stat(
            "数据新鲜度 / Data freshness",
            f"SELECT dateDiff('millisecond', maxOrNull(max_ingest), now64(3)) / 1000 AS freshness_s "
            f"FROM {SINK_LOG} WHERE written_at > now64(3) - INTERVAL 15 MINUTE",
            Grid(21, 0, 3, 5), unit="s", decimals=1, steps=((10, "orange"), (30, "red")), no_value="无写入 / no writes",
            description="Seconds since the newest event now in ClickHouse reached Kafka (from the sink's log, "
            "written once a second: up to a second high). Orange after 10 s, red after 30 s: nothing new has "
            "reached the screen. Either the pipeline is behind (the banner then says so, and a lag alert "
            "comes after 60 s) or no events are arriving (the pipeline is caught up and the banner is "
            "empty; the drop alerts judge that).",
        ),
        timeseries(
            "每分钟成交额 (按事件时间, 所选时段) / GMV per minute (event time, selected range), vs the day before",
            # The same minute 24 hours earlier, shifted onto today's axis: the day before a sale is
            # the baseline a war room compares with. NULL, not 0, where a series has no data: a gap (a
            # minute with no sales today too: a break in the line, never a line drawn across it).
            "SELECT time, sum(today) AS gmv_yuan, sum(before) AS day_before FROM ("
            f"SELECT $__timeInterval(minute) AS time, sum(gmv_fen) / 100 {PER_MINUTE} AS today, NULL AS before "
            f"{in_range} GROUP BY time "
            "UNION ALL SELECT toStartOfInterval(toDateTime(minute + INTERVAL 1 DAY), INTERVAL $__interval_s second) "
            f"AS time, NULL AS today, sum(gmv_fen) / 100 {PER_MINUTE} AS before FROM {FACTS} "
            "WHERE minute >= $__fromTime - INTERVAL 1 DAY AND minute <= $__toTime - INTERVAL 1 DAY GROUP BY time"
            ") GROUP BY time ORDER BY time",
            Grid(0, 5, 8, 8), unit="currencyCNY",
            names={"gmv_yuan": "成交额 / GMV", "day_before": "前一日同刻 / Same minute, day before"},
        ),
        timeseries(
            "每分钟订单 (按事件时间, 所选时段) / Orders per minute (event time, selected range)",
            f"SELECT $__timeInterval(minute) AS time, sum(orders) {PER_MINUTE} AS orders, "
            f"sum(new_users) {PER_MINUTE} AS new_users {in_range} GROUP BY time ORDER BY time",
            Grid(8, 5, 8, 8), names={"orders": "订单 / Orders", "new_users": "新客 / New users"},
        ),
        timeseries(
            "每分钟互动与参与 (按事件时间, 所选时段) / "
            "Interactions and participants per minute (event time, selected range)",
            f"SELECT $__timeInterval(minute) AS time, sum(interactions) {PER_MINUTE} AS interactions, "
            f"sum(participants) {PER_MINUTE} AS participants {in_range} GROUP BY time ORDER BY time",
            Grid(16, 5, 8, 8),
            names={"interactions": "互动人次 / Interactions", "participants": "参与人数 / Participants"},
        ),
        barchart(
            "今日分渠道新客 / New users by channel today",
            f"SELECT {CHANNEL_LABEL} AS channel_name, sum(new_users) AS new_users {today} "
            "GROUP BY channel_name ORDER BY new_users DESC, channel_name",
            Grid(12, 13, 6, 10), x_field="channel_name", names={"new_users": "新客 / New users"},
            description=DAY_NOTE,
        ),
        table(
            "今日活动排行 / Campaign leaderboard today",
            # Names from `promo campaigns import` where known (promo.campaign_names), else the id.
            "SELECT if(n.name = '', t.campaign_id, n.name) AS campaign_name, t.campaign_id AS campaign_id, "
            "gmv_yuan, orders, new_users, participants FROM ("
            f"SELECT campaign_id, sum(gmv_fen) / 100 AS gmv_yuan, sum(orders) AS orders, "
            f"sum(new_users) AS new_users, sum(participants) AS participants {today} "
            # `orders` in HAVING is the alias, sum(orders): ClickHouse resolves aliases first.
            "GROUP BY campaign_id HAVING sum(interactions) + orders != 0"
            f") AS t LEFT JOIN {CAMPAIGN_NAMES} AS n ON n.campaign_id = t.campaign_id "
            "ORDER BY gmv_yuan DESC, campaign_id",
            Grid(0, 13, 12, 10),
            names={"campaign_name": "活动 / Campaign", "campaign_id": "ID", "gmv_yuan": "成交额 / GMV",
                   "orders": "订单 / Orders", "new_users": "新客 / New users",
                   "participants": "参与人数 / Participants"},
            units={"gmv_yuan": "currencyCNY"}, description=DAY_NOTE,
            links={"campaign_id": ("下钻 / Drill down",
                                   "/d/promo-campaign?var-campaign=${__value.raw:percentencode}&${__url_time_range}")},
        ),
        barchart(
            "今日分城市等级新客 / New users by city tier today",
            f"SELECT {TIER_LABEL} AS tier, sum(new_users) AS new_users {today} "
            "GROUP BY city_tier ORDER BY city_tier",
            Grid(18, 13, 6, 10), x_field="tier", names={"new_users": "新客 / New users"},
            description=f"Tier 0 is an order without a city tier. {DAY_NOTE}",
        ),
        firing_alerts(Grid(0, 23, 24, 6)),
    ]  # fmt: skip
    board = dashboard(
        "promo-war-room", "大促作战室 / War room", panels, time_from=time_from,
        description="618 / Double 11 live numbers: GMV, orders, new ordering users and where they come from.",
    )  # fmt: skip
    board["annotations"]["list"] = [alert_annotations()]
    return board


def firing_alerts(grid: Grid, campaign: str | None = None) -> Json:
    """The drop detector's incidents firing now, in the order of the view's banner: a lag, then critical, newest
    first (`promo worker --alerts`). GMV in yuan, as the tiles (in fen it read 100x too high beside them),
    the onset with its date, and who acknowledged it (an outside probe: an ack showed nowhere on screen).
    A reopened incident: "since" its reopening's onset, sorted by that opening, acked only by an ack given
    since it reopened, as the banner says it (before, the first opening's, and an ack of an earlier one).
    `campaign` (the drill-down's): that campaign's own incidents and the pipeline's lag, which holds every
    number on it (the drill-down a room opens to look closer had no such table: an outside probe)."""
    amount = "if(a.metric = 'gmv_fen', round(a.{0} / 100), round(a.{0}))"
    mine = f" AND (a.campaign_id = {campaign} OR a.kind = 'lag')" if campaign else ""
    return table(
        "本活动正在告警 / This campaign's firing alerts" if campaign else "正在告警 / Firing alerts",
        f"SELECT formatDateTime(coalesce(a.reopened_from, a.started_at), '%m-%d %H:%i:%S', '{TIMEZONE}') AS since, "
        "if(a.kind = 'lag', '数据延迟 / lag', a.metric) AS what, "
        "if(a.campaign_id IS NULL, '全部 / total', "
        "concat(a.campaign_id, if(a.channel IS NULL, '', concat(' / ', a.channel)))) AS scope, a.severity AS severity, "
        f"{amount.format('observed')} AS observed, {amount.format('expected')} AS expected, a.basis AS basis, "
        f"if(k.at >= a.opened_at, k.who, '') AS acked_by, a.message AS message FROM {ALERTS} AS a FINAL "
        f"LEFT JOIN (SELECT id, argMax(acked_by, acked_at) AS who, max(acked_at) AS at FROM {ACKS} GROUP BY id) "
        f"AS k ON k.id = a.id WHERE a.source = 'live' AND a.resolved_at IS NULL{mine} "
        "ORDER BY a.kind != 'lag', a.severity != 'critical', a.opened_at DESC LIMIT 20",
        grid,
        names={"since": "自 / Since", "what": "指标 / Metric", "scope": "范围 / Scope", "severity": "级别 / Severity",
               "observed": "实际 / Observed (GMV ¥)", "expected": "预期 / Expected (GMV ¥)", "basis": "依据 / Basis",
               "acked_by": "确认 / Acked by", "message": "说明 / Message"},
        description="Incidents the drop detector has open: a drop against the plan, the scope's share of its "
        "parent or its recent level, or the pipeline lagging (then no drop is judged). docs/ALERTS.md.",
    )  # fmt: skip


def alert_annotations(campaign: str | None = None) -> Json:
    """The detector's incidents as regions on every time series: onset to resolution (or now)."""
    scope = f" AND campaign_id = {campaign}" if campaign else ""
    sql = (
        "SELECT started_at AS time, coalesce(resolved_at, now64(3)) AS timeEnd, "
        "concat(if(kind = 'lag', 'lag', concat(metric, ' ', severity)), ': ', message) AS text, "
        f"concat(kind, ',', severity) AS tags FROM {ALERTS} FINAL WHERE source = 'live'{scope} "
        "AND started_at <= $__toTime AND coalesce(resolved_at, now64(3)) >= $__fromTime"
    )
    return {
        "datasource": datasource(),
        "enable": True,
        "iconColor": "red",
        "name": "告警 / Alerts",
        "target": {**target(sql, FORMAT_TABLE), "refId": "Alerts"},
    }


def campaign_drilldown(*, time_from: str = DEFAULT_RANGE) -> Json:
    """One campaign: its funnel, its share-driven growth, its channels and entry points (the day's
    totals), and its last hour per minute."""
    in_range = f"FROM {FACTS} WHERE campaign_id = {CAMPAIGN} AND $__timeFilter(minute)"
    today = f"FROM {FACTS} WHERE campaign_id = {CAMPAIGN} AND {TODAY}"
    panels = [
        stat("今日成交额 / GMV today", f"SELECT sum(gmv_fen) / 100 AS gmv_yuan {today}", Grid(0, 0, 5, 5),
             unit="currencyCNY", decimals=2, description=DAY_NOTE),
        stat("今日订单 / Orders today", f"SELECT sum(orders) AS orders {today}", Grid(5, 0, 4, 5),
             description=DAY_NOTE),
        stat("今日新增下单用户 / New ordering users today", f"SELECT sum(new_users) AS new_users {today}",
             Grid(9, 0, 5, 5), description=DAY_NOTE),
        stat(
            "今日分享与分享带来的新客 / Shares and new users via share today",
            f"SELECT sum(shares) AS shares, sum(new_users_via_share) AS new_users_via_share {today}",
            Grid(14, 0, 10, 5), color="purple", description=DAY_NOTE,
            names={"shares": "分享次数 / Shares", "new_users_via_share": "分享带来的新客 / New users via share"},
        ),
        barchart(
            "今日转化漏斗 / Funnel today: participants → buyers",
            "SELECT s.1 AS stage, s.2 AS people FROM ("
            f"SELECT sum(participants) AS p, sum(buyers) AS b, sum(new_users) AS n {today}"
            ") ARRAY JOIN [('1 参与 / Participants', p), ('2 下单 / Buyers', b), ('3 新客 / New users', n)] AS s",
            Grid(0, 5, 8, 9), x_field="stage", names={"people": "人数 / People"}, description=DAY_NOTE,
        ),
        timeseries(
            "分渠道每分钟互动 (按事件时间, 所选时段) / Interactions per minute by channel (event time, selected range)",
            f"SELECT $__timeInterval(minute) AS time, channel, sum(interactions) {PER_MINUTE} AS interactions "
            f"{in_range} GROUP BY time, channel ORDER BY time, channel",
            Grid(8, 5, 8, 9), stack=True,
        ),
        timeseries(
            "分渠道每分钟订单 (按事件时间, 所选时段) / Orders per minute by channel (event time, selected range)",
            f"SELECT $__timeInterval(minute) AS time, channel, sum(orders) {PER_MINUTE} AS orders "
            f"{in_range} GROUP BY time, channel ORDER BY time, channel",
            Grid(16, 5, 8, 9), stack=True,
        ),
        table(
            "今日入口 / Entry points today",
            f"SELECT if(entry = '', '(无 none)', entry) AS entry_point, sum(interactions) AS interactions, "
            f"sum(participants) AS participants, sum(shares) AS shares, sum(orders) AS orders, "
            f"sum(gmv_fen) / 100 AS gmv_yuan, sum(new_users) AS new_users {today} "
            "GROUP BY entry_point ORDER BY interactions DESC, entry_point",
            Grid(0, 14, 24, 9),
            names={"entry_point": "入口 / Entry", "interactions": "互动人次 / Interactions",
                   "participants": "参与人数 / Participants", "shares": "分享 / Shares", "orders": "订单 / Orders",
                   "gmv_yuan": "成交额 / GMV", "new_users": "新客 / New users"},
            units={"gmv_yuan": "currencyCNY"},
            description=f"A person is counted at the entry of the event that earned the credit (their earliest). "
            f"{DAY_NOTE}",
        ),
        firing_alerts(Grid(0, 23, 24, 6), campaign=CAMPAIGN),
    ]  # fmt: skip
    board = dashboard(
        "promo-campaign", "活动下钻 / Campaign drill-down", panels, time_from=time_from,
        variables=[campaign_variable()],
        description="One campaign: funnel, shares, channels and entry points.",
    )  # fmt: skip
    # The campaign's own incidents as regions on its charts (an outside probe: the war room had them, the
    # drill-down a room opens to look closer had none)
    board["annotations"]["list"] = [alert_annotations(CAMPAIGN)]
    return board


def pipeline_health(*, time_from: str = "now-1h") -> Json:
    """Is the screen telling the truth: rejections, lateness, freshness and ClickHouse writes."""
    rejected = f"FROM {FACTS_MINUTE} WHERE src_partition < 0 AND reason != ''"
    # sink_log holds a row per partition per delta batch (over a million on a Double 11 day), so
    # these read the columns computed at insert (`minute`, `lag_ms`) and take both quantiles from
    # one state (`quantilesExact`): the same exact values as two quantileExact, at half the work.
    per_minute = f"FROM {SINK_LOG} WHERE $__timeFilter(minute) GROUP BY time"
    panels = [
        table(
            "拒收原因 / Rejected by reason",
            # Rejections are kept by the minute they arrived; stores written before 2026-12-05 hold
            # unreadable ones (invalid_json, ...) at minute 0: counted whatever the range.
            f"SELECT topic, reason, sum(rejected) AS rejected {rejected} "
            "AND ($__timeFilter(minute) OR minute = toDateTime(0)) "
            "GROUP BY topic, reason HAVING rejected != 0 ORDER BY rejected DESC, topic, reason",
            Grid(0, 0, 8, 9),
            names={"topic": "主题 / Topic", "reason": "原因 / Reason", "rejected": "拒收 / Rejected"},
            description="Dead-lettered elements by the minute they arrived.",
        ),
        timeseries(
            "每分钟迟到事件 (按到达时间) / Late events per minute (arrival time)",
            f"SELECT $__timeInterval(minute) AS time, sum(rejected) {PER_MINUTE} AS late {rejected} "
            "AND reason = 'late' AND $__timeFilter(minute) GROUP BY time ORDER BY time",
            Grid(8, 0, 8, 9), names={"late": "迟到 / Late"},
            description="Events more than the allowed lateness behind their partition's newest event, "
            "counted in the minute they arrived (so a burst of late events shows now, not in the past).",
        ),
        timeseries(
            "每分钟接收事件 (按事件时间) / Accepted events per minute by topic (event time)",
            # Aliases differ from the columns: ClickHouse would read `shares` in the first sum as the alias.
            f"SELECT $__timeInterval(minute) AS time, (sum(interactions) - sum(shares)) {PER_MINUTE} AS click_events, "
            f"sum(shares) {PER_MINUTE} AS share_events, sum(orders) {PER_MINUTE} AS order_events "
            f"FROM {FACTS} WHERE $__timeFilter(minute) GROUP BY time ORDER BY time",
            Grid(16, 0, 8, 9),
            names={"click_events": "点击 / Clicks", "share_events": "分享 / Shares", "order_events": "订单 / Orders"},
        ),
        timeseries(
            "数据延迟 (按写入时间) / Freshness p50 / p99 (ingest → written, by write time)",
            "SELECT time, q[1] AS p50_ms, q[2] AS p99_ms FROM ("
            f"SELECT $__timeInterval(minute) AS time, quantilesExact(0.5, 0.99)(lag_ms) AS q {per_minute}"
            ") ORDER BY time",
            Grid(0, 9, 12, 9), unit="ms", names={"p50_ms": "p50", "p99_ms": "p99"}, fill=False,
            description="From the newest Kafka record of a batch to its ClickHouse write.",
        ),
        timeseries(
            "ClickHouse 写入耗时 (按写入时间) / ClickHouse write latency (by write time)",
            "SELECT time, q[1] AS p50_ms, q[2] AS p99_ms, max_ms FROM ("
            "SELECT $__timeInterval(minute) AS time, quantilesExact(0.5, 0.99)(write_ms) AS q, "
            f"max(write_ms) AS max_ms {per_minute}"
            ") ORDER BY time",
            Grid(12, 9, 12, 9), unit="ms", names={"p50_ms": "p50", "p99_ms": "p99", "max_ms": "max"}, fill=False,
        ),
        stat(
            "管道状态 / Pipeline state",
            # The worker writes its state every 10 s (promo.pipeline_status); no row for 30 s is a
            # worker gone, or a store it cannot write: 3.
            # (max over no row is 1970, so an empty table is "no heartbeat" too.)
            f"SELECT if(max(ts) < now() - 30, 3, argMax(code, ts)) AS state FROM {PIPELINE_STATUS} "
            f"WHERE ts > now() - INTERVAL 10 MINUTE AND worker != '{DETECTOR}'",
            Grid(0, 18, 18, 4), steps=((1, "orange"), (2, "red")), no_value="3",
            mappings={0: "正常 / OK", 1: "延迟或启动中 / Behind or starting", 2: "数字停了 / Numbers stopped",
                      3: "无心跳 / No heartbeat", 4: "Kafka 不可达 / Broker unreachable",
                      5: "Kafka 日志丢失, 需重启 worker / Broker lost its log: restart the worker"},
            description="The same states as the local view's banner: behind or starting (amber); ClickHouse "
            "unreachable or refusing writes, a stage stalled (red); no heartbeat from the worker for 30 s (red); "
            "the Kafka broker not answering (red: start it, `promo broker`); the broker back without its log "
            "(red: restart the worker with a fresh store). The message of the newest row says which.",
        ),
        stat(
            "告警检测器 / Drop detector",
            # Its heartbeat every 10 s (streams/alerts/runner.py); none for 30 s is a detector gone: the
            # wall would show no alert while the numbers fall. Grafana alerts on it too (promo-watchdog).
            f"SELECT if(max(ts) < now() - 30, 3, argMax(code, ts)) AS state FROM {PIPELINE_STATUS} "
            f"WHERE ts > now() - INTERVAL 10 MINUTE AND worker = '{DETECTOR}'",
            Grid(18, 18, 6, 4), steps=((2, "red"),), no_value="3",
            mappings={0: "运行中 / Running", 2: "读写失败 / Failing", 3: "无心跳 / No heartbeat"},
            description="The drop detector's own heartbeat (`promo worker --alerts`). No heartbeat: no alert "
            "would reach the war room.",
        ),
    ]  # fmt: skip
    return dashboard(
        "promo-health", "管道健康 / Pipeline health", panels, time_from=time_from,
        description="Rejections, late events, freshness and ClickHouse write latency.",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Output


def build_all() -> dict[str, Json]:
    """File name -> dashboard JSON, for every dashboard."""
    boards = (war_room(), campaign_drilldown(), pipeline_health())
    return {f"{board['uid']}.json": board for board in boards}


def watchdog_rules() -> Json:
    """Grafana alert rules (file provisioning, deploy/grafana/provisioning/alerting/): the drop
    detector's heartbeat stopped for 30 s, or the pipeline's. A silent detector would let the numbers
    fall with no alert: Grafana, which reads the same store, watches the watcher."""

    def rule(uid: str, title: str, where: str, summary: str) -> Json:
        sql = (f"SELECT dateDiff('second', max(ts), now()) AS silent_s FROM {PIPELINE_STATUS} "
               f"WHERE ts > now() - INTERVAL 1 DAY AND {where}")  # fmt: skip
        return {
            "uid": uid,
            "title": title,
            "condition": "C",
            "data": [
                {
                    "refId": "A",
                    "relativeTimeRange": {"from": 600, "to": 0},
                    "datasourceUid": DATASOURCE_UID,
                    "model": {**target(sql, FORMAT_TABLE), "refId": "A"},
                },
                {
                    "refId": "C",
                    "datasourceUid": "__expr__",
                    "model": {
                        "refId": "C",
                        "type": "threshold",
                        "expression": "A",
                        "conditions": [{"evaluator": {"type": "gt", "params": [30]}}],
                    },
                },
            ],
            "noDataState": "Alerting",  # no row at all: never started, or the table is gone
            "execErrState": "Alerting",  # the store does not answer: nobody is watching either
            "for": "0s",
            "annotations": {"summary": summary},
            "labels": {"team": "war-room", "severity": "critical"},
        }

    return {
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": "promo-watchdog",
            "folder": "大促 / Promo",
            "interval": "10s",
            "rules": [
                rule("promo-detector-heartbeat", "告警检测器无心跳 / Drop detector silent", f"worker = '{DETECTOR}'",
                     "The drop detector wrote no heartbeat for 30 s: no drop alert can reach the war room. "
                     "Check the worker started with --alerts."),
                rule("promo-pipeline-heartbeat", "管道无心跳 / Pipeline silent", f"worker != '{DETECTOR}'",
                     "No worker wrote its state for 30 s: the numbers on the wall have stopped."),
            ],
        }],
    }  # fmt: skip


WATCHDOG_FILE = "promo-watchdog.json"


def render(board: Json) -> str:
    return json.dumps(board, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path | str) -> list[Path]:
    """Write every dashboard to `directory/<uid>.json`; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in build_all().items():
        path = out / name
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m streams.dashboards.grafana [DIRECTORY]   (default: dashboards/)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    for path in write_all(args[0] if args else "dashboards"):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
