"""The dashboards: committed JSON is what the code generates, and every panel's SQL gives the truth.

The SQL check runs each panel's query, with the plugin's macros expanded as the plugin expands
them, against a real (embedded, chdb) ClickHouse store filled by the pure pipeline in-process from
a seeded simulation (no broker), and compares with the simulator's independent oracle.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streams.alerts.store import AlertRow, ack, write_alerts
from streams.config import Settings
from streams.contract.facts import COUNTERS, Deltas
from streams.dashboards.grafana import (
    CHANNEL_NAMES,
    DATASOURCE_UID,
    SETTLE_S,
    SETTLED_BUCKETS,
    SETTLED_UNTIL,
    TODAY,
    Json,
    build_all,
    render,
    write_all,
)
from streams.dashboards.view.macros import Range, expand, grafana_percentencode
from streams.errors import MacroError
from streams.kit.fold import fold_in_process
from streams.kit.simulate import SimConfig, Simulation, generate
from streams.kit.truth import Truth, compute_truth
from streams.sink.clickhouse import INSERT_COLUMNS, ClickHouseStore
from streams.worker.app import STATUS_CODES
from tests.helpers import insert_deltas, rejected_by_reason

ROOT = Path(__file__).resolve().parents[2]
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{2,}")
PARTITIONS = 2
WRITE_MS = (5.0, 7.0, 40.0)  # sink_log entries the health panels must read back
LAG_MS = 2_000
SOCIAL = ("wechat", "mobileqq", "jingxi")  # the headline number's channels, stated here on purpose


# --------------------------------------------------------------------------------------------
# What the plugin does to a query before ClickHouse sees it (streams/dashboards/view/macros.py, shared with
# the local view)


def test_expand_binds_variables_safely() -> None:
    rng = Range(dt.datetime(2025, 11, 10, tzinfo=dt.UTC), dt.datetime(2025, 11, 11, tzinfo=dt.UTC))
    sql, params = expand("WHERE $__timeFilter(minute) AND c = ${campaign} AND d = $campaign", rng, {"campaign": "x'"})
    assert sql == "WHERE minute >= toDateTime(1762732800) AND minute <= toDateTime(1762819200) " + (
        "AND c = {campaign:String} AND d = {campaign:String}"
    )
    assert params == {"campaign": "x'"}
    hostile = "双11'); DROP TABLE promo.facts_minute; --\\"
    # Grafana pastes the percent-encoded text between the quotes; here it is a bound parameter too.
    sql, params = expand("decodeURLComponent('${campaign:percentencode}')", rng, {"campaign": hostile})
    assert sql == "decodeURLComponent({campaign__percentencoded:String})"
    assert params == {"campaign__percentencoded": grafana_percentencode(hostile)}
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]+", params["campaign__percentencoded"])


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WHERE c = ${campaign:csv}", "cannot be bound"),
        ("WHERE c = ${campaign:percentencode}", "cannot be bound"),  # unquoted: Grafana would paste it as SQL
        ("WHERE c = ${other}", "'other' is not set"),
        ("WHERE $__unknownMacro(minute)", "unexpanded macro"),
    ],
)
def test_expand_refuses_what_it_cannot_bind(sql: str, message: str) -> None:
    rng = Range(dt.datetime(2025, 11, 10, tzinfo=dt.UTC), dt.datetime(2025, 11, 11, tzinfo=dt.UTC))
    with pytest.raises(MacroError, match=message):
        expand(sql, rng, {"campaign": "x"})


# --------------------------------------------------------------------------------------------
# One store for the whole session (chdb is one engine per process)


@dataclass
class World:
    store: ClickHouseStore
    truth: Truth
    deltas: Deltas
    max_ingest_ms: int
    range: Range  # from the day before the sale to the evening of its business day (2025-11-11, Shanghai)
    recent: Range  # the last hour and the next: the sink's log of writes is from just now

    def rows(self, panel: Json, *, rng: Range | None = None, **variables: str) -> list[dict[str, Any]]:
        sql = panel["targets"][0]["rawSql"]
        default = self.recent if "promo.sink_log" in sql else self.range
        sql, params = expand(sql, rng or default, variables)
        return self.store.query_rows(sql, params)


def feed(sim: Simulation, settings: Settings) -> tuple[Deltas, dict[int, int], int]:
    """The two stages in-process, as the agents run them: returns the deltas and the markers."""
    return fold_in_process(sim.records, sim.existing_buyers, settings)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    cfg = SimConfig(events=3000, seed=5, partitions=PARTITIONS)
    sim = generate(cfg)
    deltas, markers, max_ingest_ms = feed(sim, Settings(partitions=PARTITIONS))
    truth = compute_truth(sim.records, sim.existing_buyers)
    with tempfile.TemporaryDirectory() as tmp:
        store = ClickHouseStore(f"chdb://{tmp}/store")
        try:
            store.apply_schema()
            insert_deltas(store, deltas, markers)
            # Two minutes ago: a series draws only finished minutes (grafana.SETTLED_BUCKETS).
            now_ms = int(time.time() * 1000) - 120_000
            ingest_ms = now_ms - LAG_MS
            store.log_write(
                (now_ms, p, markers[p], 1, max_ingest_ms, ingest_ms, ms)
                for p, ms in zip([0, 1, 0], WRITE_MS, strict=True)
            )
            # One incident firing, one resolved: the war room lists the first (and annotates both).
            at = now_ms / 1000
            firing = AlertRow("f1", "drop", "orders", "c1", "wechat", at - 60, at, None, 100.0, 5.0,
                              "share-of-parent", "critical", "orders on c1/wechat 95% below expected")  # fmt: skip
            resolved = AlertRow("r1", "lag", None, None, None, at - 600, at - 500, at - 400, 60.0, 75.0, "freshness",
                                "warning", "pipeline 75 s behind")  # fmt: skip
            gmv = AlertRow("g1", "drop", "gmv_fen", "c1", None, at - 90, at - 30, None, 1_762_774.0, 131_024.0,
                           "ratio:gmv_fen/interactions", "warning", "gmv_fen on c1 93% below expected")  # fmt: skip
            write_alerts(store, [firing, resolved, gmv])
            ack(store, "f1", "duty-李", at + 5)  # after it was detected: an ack holds for that opening
            day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
            # The sale starts at 00:00 Shanghai: its day's totals are the tiles' "today" up to 20:00.
            sale = dt.datetime.fromtimestamp(cfg.start_ms / 1000, tz=dt.UTC)
            assert cfg.sale_span_s < 20 * 3600
            rng = Range(sale - day, sale + 20 * hour)
            now = dt.datetime.now(tz=dt.UTC)
            yield World(store, truth, deltas, ingest_ms, rng, Range(now - hour, now + hour))
        finally:
            store.close_sync()
            store.executor.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Helpers over the truth and the panels


def num(row: Mapping[str, object], column: str) -> int:
    value = row[column]
    assert isinstance(value, int), (column, value)
    return value


def truth_sum(truth: Truth, column: str, *, campaign: str | None = None, channels: Any = None) -> int:
    return sum(
        num(row, column)
        for row in truth.totals
        if (campaign is None or row["campaign_id"] == campaign) and (channels is None or row["channel"] in channels)
    )


def panel(board: str, english: str) -> Json:
    """The panel whose English title is `english`, or else the one panel whose English title holds it."""
    panels = build_all()[f"{board}.json"]["panels"]
    matches = [p for p in panels if p["title"].split(" / ", 1)[-1] == english]
    matches = matches or [p for p in panels if english in p["title"].split(" / ", 1)[-1]]
    assert len(matches) == 1, f"{english!r}: {[p['title'] for p in matches]}"
    found: Json = matches[0]
    return found


def only(rows: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return rows[0]


def series_total(rows: list[dict[str, Any]], column: str, rng: Range) -> float:
    """Undo the per-minute rate: the series summed over its buckets."""
    return sum(float(r[column] or 0) for r in rows) * rng.interval_s / 60


def all_panels() -> list[tuple[str, Json]]:
    return [(name, p) for name, board in build_all().items() for p in board["panels"]]


# --------------------------------------------------------------------------------------------
# The JSON


def test_committed_json_is_what_the_code_generates(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(build_all())
    for path in written:
        committed = ROOT / "dashboards" / path.name
        assert committed.exists(), f"{committed} missing: run python -m streams.dashboards.grafana dashboards/"
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is stale: run python -m streams.dashboards.grafana dashboards/"
        )
    assert sorted(p.name for p in (ROOT / "dashboards").glob("*.json")) == sorted(build_all())


def test_dashboards_are_kiosk_ready() -> None:
    boards = build_all()
    assert {b["uid"] for b in boards.values()} == {"promo-war-room", "promo-campaign", "promo-health"}
    assert boards["promo-war-room.json"]["title"] == "大促作战室 / War room"
    for board in boards.values():
        assert board["timezone"] == "Asia/Shanghai" and board["refresh"] == "5s"
        assert HAN.search(board["title"]) and LATIN.search(board["title"]) and " / " in board["title"]
        assert render(board) == render(build_all()[f"{board['uid']}.json"])  # deterministic
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)
        for p in board["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24
    variables = boards["promo-campaign.json"]["templating"]["list"]
    assert [v["name"] for v in variables] == ["campaign"]
    assert variables[0]["query"].startswith("SELECT campaign_id FROM promo.facts")
    assert variables[0]["sort"] == 0  # the query's order (biggest GMV first) is kept


def test_grafana_provisioning_points_at_the_panels_datasource_and_holds_no_secret() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasource = (provisioning / "datasources" / "clickhouse.yaml").read_text(encoding="utf-8")
    assert re.search(rf"^\s+uid: {DATASOURCE_UID}$", datasource, re.MULTILINE)
    assert re.search(r"^\s+type: grafana-clickhouse-datasource$", datasource, re.MULTILINE)
    for key in ("host", "username", "password"):
        value = re.search(rf"^\s+{key}: (.+)$", datasource, re.MULTILINE)
        assert value is not None and re.fullmatch(r"\$\{[A-Z_]+\}", value.group(1)), f"{key} must come from the env"
    provider = (provisioning / "dashboards" / "promo.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s+type: file$", provider, re.MULTILINE)
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards/promo$", provider, re.MULTILINE)


@pytest.mark.parametrize(("board", "p"), all_panels(), ids=[f"{b}:{p['title']}" for b, p in all_panels()])
def test_every_panel_is_wired_to_clickhouse(board: str, p: Json) -> None:
    assert p["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": DATASOURCE_UID}
    assert HAN.search(p["title"]) and LATIN.search(p["title"]) and " / " in p["title"]
    assert len(p["targets"]) == 1
    t = p["targets"][0]
    assert t["datasource"]["uid"] == DATASOURCE_UID and t["editorType"] == "sql" and t["rawSql"]
    expected = (0, "timeseries") if p["type"] == "timeseries" else (1, "table")
    assert (t["format"], t["queryType"]) == expected
    # Counters are deltas: a number is always a sum, never a count of rows.
    assert "count(" not in t["rawSql"].lower()


# --------------------------------------------------------------------------------------------
# The SQL, against the truth


def test_the_store_holds_the_truth(world: World) -> None:
    """The pipeline is right (tested elsewhere); this pins the ground the panel checks stand on."""
    assert world.store.totals() == world.truth.totals
    assert sum(rejected_by_reason(world.deltas).values()) == sum(world.truth.rejected.values())


@pytest.mark.parametrize(("board", "p"), all_panels(), ids=[f"{b}:{p['title']}" for b, p in all_panels()])
def test_every_panel_runs(world: World, board: str, p: Json) -> None:
    campaign = str(world.truth.totals[0]["campaign_id"])
    if "promo.alerts" in p["targets"][0]["rawSql"]:
        campaign = "c1"  # the world's incidents are there
    rows = world.rows(p, campaign=campaign)
    assert rows, f"{p['title']} returned nothing over the data's range"
    if p["type"] == "timeseries":
        times = [r["time"] for r in rows]
        assert times == sorted(times)


def test_war_room_stats(world: World) -> None:
    truth = world.truth
    gmv = only(world.rows(panel("promo-war-room", "GMV today")))["gmv_yuan"]
    assert gmv == pytest.approx(truth_sum(truth, "gmv_fen") / 100, abs=1e-9)
    assert only(world.rows(panel("promo-war-room", "Orders today")))["orders"] == truth_sum(truth, "orders")
    new_users = truth_sum(truth, "new_users")
    assert new_users > 0
    assert only(world.rows(panel("promo-war-room", "New ordering users today")))["new_users"] == new_users
    for column in ("interactions", "participants"):
        assert only(world.rows(panel("promo-war-room", f"{column.title()} today")))[column] == truth_sum(truth, column)
    social = only(world.rows(panel("promo-war-room", "Social share")))["social_pct"]
    expected = 100 * truth_sum(truth, "new_users", channels=SOCIAL) / new_users
    assert 0 < expected < 100
    assert social == pytest.approx(expected, abs=1e-9)


def test_war_room_series_add_up(world: World) -> None:
    truth, rng = world.truth, world.range
    orders = world.rows(panel("promo-war-room", "Orders per minute"))
    assert series_total(orders, "orders", rng) == pytest.approx(truth_sum(truth, "orders"))
    assert series_total(orders, "new_users", rng) == pytest.approx(truth_sum(truth, "new_users"))
    activity = world.rows(panel("promo-war-room", "Interactions and participants"))
    assert series_total(activity, "interactions", rng) == pytest.approx(truth_sum(truth, "interactions"))
    assert series_total(activity, "participants", rng) == pytest.approx(truth_sum(truth, "participants"))
    # Wider buckets: the per-minute rate is scaled, the total is the same.
    five = Range(rng.start, rng.end, interval_s=300)
    coarse = world.rows(panel("promo-war-room", "Orders per minute"), rng=five)
    assert len(coarse) < len(orders)
    assert series_total(coarse, "orders", five) == pytest.approx(truth_sum(truth, "orders"))


def test_new_users_by_channel_and_tier(world: World) -> None:
    truth = world.truth
    by_channel = {r["channel_name"].split()[-1]: r["new_users"] for r in world.rows(panel("promo-war-room", "channel"))}
    expected = {str(r["channel"]): 0 for r in truth.totals}
    for r in truth.totals:
        expected[str(r["channel"])] += num(r, "new_users")
    assert by_channel == expected
    assert set(by_channel) <= set(CHANNEL_NAMES)
    tiers = world.rows(panel("promo-war-room", "city tier"))
    assert sum(r["new_users"] for r in tiers) == truth_sum(truth, "new_users")
    from_deltas: Counter[int] = Counter()
    for key, counters in world.deltas.facts.items():
        from_deltas[key.city_tier] += counters[6]
    labels = {0 if r["tier"].endswith("unknown") else int(r["tier"].split()[-1]): r["new_users"] for r in tiers}
    assert labels == {t: n for t, n in from_deltas.items()}


def test_leaderboard_is_per_campaign_truth(world: World) -> None:
    rows = world.rows(panel("promo-war-room", "leaderboard"))
    campaigns = sorted({str(r["campaign_id"]) for r in world.truth.totals})
    assert sorted(r["campaign_id"] for r in rows) == campaigns
    for row in rows:
        c = row["campaign_id"]
        assert row["gmv_yuan"] == pytest.approx(truth_sum(world.truth, "gmv_fen", campaign=c) / 100, abs=1e-9)
        for column in ("orders", "new_users", "participants"):
            assert row[column] == truth_sum(world.truth, column, campaign=c), (c, column)
    gmv = [r["gmv_yuan"] for r in rows]
    assert gmv == sorted(gmv, reverse=True)


def test_freshness(world: World) -> None:
    freshness = only(world.rows(panel("promo-war-room", "freshness")))["freshness_s"]
    expected = time.time() - world.max_ingest_ms / 1000
    assert LAG_MS / 1000 <= freshness <= expected + 5


def test_a_range_without_data_shows_nothing(world: World) -> None:
    before = Range(world.range.start - dt.timedelta(days=3), world.range.start - dt.timedelta(days=2))
    assert only(world.rows(panel("promo-war-room", "GMV today"), rng=before))["gmv_yuan"] == 0
    assert world.rows(panel("promo-war-room", "leaderboard"), rng=before) == []
    assert world.rows(panel("promo-health", "Late events"), rng=before) == []


def test_campaign_drilldown_is_the_campaigns_truth(world: World) -> None:
    truth = world.truth
    campaigns = {str(r["campaign_id"]) for r in truth.totals}
    biggest = max(sorted(campaigns), key=lambda c: truth_sum(truth, "gmv_fen", campaign=c))

    def rows(english: str, **kw: Any) -> list[dict[str, Any]]:
        return world.rows(panel("promo-campaign", english), campaign=biggest, **kw)

    def want(column: str) -> int:
        return truth_sum(truth, column, campaign=biggest)

    assert only(rows("GMV today"))["gmv_yuan"] == pytest.approx(want("gmv_fen") / 100, abs=1e-9)
    assert only(rows("Orders today"))["orders"] == want("orders")
    assert only(rows("New ordering users today"))["new_users"] == want("new_users")
    shares = only(rows("Shares and new users via share today"))
    assert (shares["shares"], shares["new_users_via_share"]) == (want("shares"), want("new_users_via_share"))
    funnel = rows("Funnel")
    assert [r["stage"][0] for r in funnel] == ["1", "2", "3"]
    assert [r["people"] for r in funnel] == [want("participants"), want("buyers"), want("new_users")]
    for english, column in (("Interactions per minute", "interactions"), ("Orders per minute", "orders")):
        series = rows(english)
        per_channel: Counter[str] = Counter()
        for r in series:
            per_channel[r["channel"]] += round(float(r[column]) * world.range.interval_s / 60)
        expected = Counter({str(r["channel"]): num(r, column) for r in truth.totals if r["campaign_id"] == biggest})
        assert +per_channel == +expected, english
    entries = rows("Entry points")
    for column in ("interactions", "participants", "shares", "orders", "new_users"):
        assert sum(r[column] for r in entries) == want(column), column
    assert sum(r["gmv_yuan"] for r in entries) == pytest.approx(want("gmv_fen") / 100, abs=1e-6)
    # Another campaign's numbers are not this one's.
    other = next(c for c in sorted(campaigns) if c != biggest)
    gmv_other = only(world.rows(panel("promo-campaign", "GMV today"), campaign=other))["gmv_yuan"]
    assert gmv_other == pytest.approx(truth_sum(truth, "gmv_fen", campaign=other) / 100, abs=1e-9)


def test_campaign_ids_with_quotes_cannot_break_the_sql(world: World) -> None:
    hostile = "双11'); DROP TABLE promo.facts_minute; --\\"
    assert only(world.rows(panel("promo-campaign", "Orders today"), campaign=hostile))["orders"] == 0
    assert world.store.totals() == world.truth.totals


def test_pipeline_health(world: World) -> None:
    truth, rng = world.truth, world.range
    rejected: Counter[str] = Counter()
    for r in world.rows(panel("promo-health", "Rejected by reason")):
        rejected[r["reason"]] += r["rejected"]
    assert dict(rejected) == truth.rejected
    assert truth.rejected.get("late", 0) > 0
    late = world.rows(panel("promo-health", "Late events"))
    assert series_total(late, "late", rng) == pytest.approx(truth.rejected["late"])
    accepted = world.rows(panel("promo-health", "Accepted events"))
    clicks = truth_sum(truth, "interactions") - truth_sum(truth, "shares")
    assert series_total(accepted, "click_events", rng) == pytest.approx(clicks)
    assert series_total(accepted, "share_events", rng) == pytest.approx(truth_sum(truth, "shares"))
    assert series_total(accepted, "order_events", rng) == pytest.approx(truth_sum(truth, "orders"))
    columns = ("click_events", "share_events", "order_events")
    assert sum(series_total(accepted, c, rng) for c in columns) == pytest.approx(truth.accepted)
    lag = only(world.rows(panel("promo-health", "Freshness p50")))
    assert LAG_MS <= lag["p50_ms"] <= LAG_MS + 5_000
    writes = only(world.rows(panel("promo-health", "write latency")))
    assert (writes["p50_ms"], writes["p99_ms"], writes["max_ms"]) == (7.0, 40.0, 40.0)


def test_a_series_never_draws_the_unfinished_minute(world: World) -> None:
    """Orders two minutes ago and orders now: the series holds the finished minute only, so its last
    point is never a minute a few seconds old plunging on a wall screen. The panel's own SQL, its
    table swapped for those two rows, on the real engine."""
    series = panel("promo-war-room", "Orders per minute (event time, selected range)")
    now = dt.datetime.now(tz=dt.UTC)
    rng = Range(now - dt.timedelta(minutes=10), now + dt.timedelta(minutes=1))
    sql, params = expand(series["targets"][0]["rawSql"], rng, {})
    rows_now = (
        "(SELECT toDateTime(now() - 120) AS minute, 3 AS orders, 1 AS new_users "
        "UNION ALL SELECT now() AS minute, 5 AS orders, 2 AS new_users)"
    )
    assert sql.count("FROM promo.facts WHERE") == 1, sql
    rows = world.store.query_rows(sql.replace("FROM promo.facts WHERE", f"FROM {rows_now} WHERE"), params)
    assert [(r["orders"], r["new_users"]) for r in rows] == [(3, 1)], rows
    finished = rows[0]["time"].replace(tzinfo=dt.UTC) if rows[0]["time"].tzinfo is None else rows[0]["time"]
    assert finished + dt.timedelta(seconds=60 + SETTLE_S) <= dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=1)
    # Every series panel of every board carries the rule.
    for _, p in all_panels():
        if p["type"] == "timeseries":
            assert SETTLED_BUCKETS in p["targets"][0]["rawSql"], p["title"]


def test_the_campaign_list_opens_on_the_biggest_gmv(world: World) -> None:
    variable = build_all()["promo-campaign.json"]["templating"]["list"][0]
    sql, params = expand(variable["query"], world.range, {})
    listed = [r["campaign_id"] for r in world.store.query_rows(sql, params)]
    by_gmv = sorted({str(r["campaign_id"]) for r in world.truth.totals},
                    key=lambda c: (-truth_sum(world.truth, "gmv_fen", campaign=c), c))  # fmt: skip
    assert listed == by_gmv and listed[0] != sorted(listed)[0]


def test_gmv_per_minute_adds_up_and_compares_with_the_day_before(world: World) -> None:
    gmv = panel("promo-war-room", "GMV per minute (event time, selected range), vs the day before")
    rows = world.rows(gmv)
    assert series_total(rows, "gmv_yuan", world.range) == pytest.approx(truth_sum(world.truth, "gmv_fen") / 100)
    # The whole sale (it starts a day after the world's range does), seen from the day after: it is
    # all "the day before", and nothing of that day itself.
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    sale = world.range.start + day
    after = Range(sale + day - hour, sale + day + 20 * hour)
    shifted = world.rows(gmv, rng=after)
    assert series_total(shifted, "day_before", after) == pytest.approx(truth_sum(world.truth, "gmv_fen") / 100)
    assert series_total(shifted, "gmv_yuan", after) == 0
    assert all(r["gmv_yuan"] is None for r in shifted)  # a gap, not a line drawn at zero


def test_the_pipeline_state_panel_reads_the_workers_heartbeat(world: World) -> None:
    state = panel("promo-health", "Pipeline state")
    rng = Range(dt.datetime.now(tz=dt.UTC) - dt.timedelta(hours=1), dt.datetime.now(tz=dt.UTC))
    assert only(world.rows(state, rng=rng))["state"] == 3  # no row at all: no heartbeat
    now_ms = int(time.time() * 1000)
    world.store.log_status(now_ms - 60_000, "w1", 0, "ok", "")
    assert only(world.rows(state, rng=rng))["state"] == 3  # the newest row is a minute old
    world.store.log_status(now_ms - 2_000, "w1", 2, "store_unreachable", "ClickHouse does not answer")
    assert only(world.rows(state, rng=rng))["state"] == 2
    texts = state["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: v["text"].split(" / ")[1] for k, v in texts.items()} == {
        "0": "OK", "1": "Behind or starting", "2": "Numbers stopped", "3": "No heartbeat",
        "4": "Broker unreachable", "5": "Broker lost its log: restart the worker",
    }  # fmt: skip
    # Every state the worker writes has its text on the panel.
    assert {str(code) for code in STATUS_CODES.values()} <= set(texts)
    world.store.log_status(now_ms - 1_000, "w1", STATUS_CODES["broker_unreachable"], "broker_unreachable", "")
    assert only(world.rows(state, rng=rng))["state"] == 4


# --------------------------------------------------------------------------------------------
# The default range: the last hour in the charts, the day's totals beside it (issue 16)

DAY_BOARDS = ("promo-war-room.json", "promo-campaign.json")


def test_the_default_range_is_the_last_hour_with_the_days_totals_beside_it() -> None:
    """The charts span the last hour (not the day from 00:00, squashed into its right-most 2%); the
    tiles, bars and tables beside them count the whole business day, and their titles say so."""
    boards = build_all()
    for name in DAY_BOARDS:
        board = boards[name]
        assert board["time"] == {"from": "now-1h", "to": "now"}, name
        for p in board["panels"]:
            sql, english = p["targets"][0]["rawSql"], p["title"].split(" / ", 1)[-1]
            if "FROM promo.facts " not in sql:
                continue  # freshness: the sink's log, not counts
            if p["type"] == "timeseries":
                assert "$__timeFilter(minute)" in sql and "selected range" in english, p["title"]
                assert TODAY not in sql, p["title"]
            else:
                assert TODAY in sql and "$__timeFilter" not in sql, p["title"]
                assert "today" in english.lower() and "今日" in p["title"], p["title"]


def test_tiles_count_the_business_day_while_charts_show_the_last_hour(world: World) -> None:
    """On the real engine: the sale's last hour selected, the tiles still hold its whole day."""
    sale = world.range.start + dt.timedelta(days=1)  # 2025-11-11 00:00 Shanghai
    last_hour = Range(sale + dt.timedelta(hours=1), sale + dt.timedelta(hours=2))
    orders = truth_sum(world.truth, "orders")
    assert only(world.rows(panel("promo-war-room", "Orders today"), rng=last_hour))["orders"] == orders
    leaderboard = world.rows(panel("promo-war-room", "leaderboard"), rng=last_hour)
    assert sum(r["orders"] for r in leaderboard) == orders
    series = world.rows(panel("promo-war-room", "Orders per minute (event time, selected range)"), rng=last_hour)
    in_hour = series_total(series, "orders", last_hour)
    assert 0 < in_hour < orders
    assert all(last_hour.start <= r["time"].replace(tzinfo=dt.UTC) < last_hour.end for r in series)
    # The business day is Shanghai's: an hour that ends at 00:30 there counts from 00:00, not from
    # 08:00 the day before (UTC's midnight).
    early = Range(sale - dt.timedelta(minutes=30), sale + dt.timedelta(minutes=30))
    in_first_half_hour = series_total(
        world.rows(panel("promo-war-room", "Orders per minute (event time, selected range)"), rng=early),
        "orders", early,
    )  # fmt: skip
    assert only(world.rows(panel("promo-war-room", "Orders today"), rng=early))["orders"] == in_first_half_hour


# --------------------------------------------------------------------------------------------
# One settled point for every panel (issue 16): Grafana queries each panel on its own


def facts_panels() -> list[tuple[str, Json]]:
    return [(b, p) for b, p in all_panels() if "FROM promo.facts " in p["targets"][0]["rawSql"]]


def test_every_counting_panel_is_bounded_by_the_same_settled_point() -> None:
    for board, p in facts_panels():
        assert SETTLED_UNTIL in p["targets"][0]["rawSql"], (board, p["title"])
    variable = build_all()["promo-campaign.json"]["templating"]["list"][0]
    assert SETTLED_UNTIL in variable["query"]


def _facts_row(campaign: str, minute: dt.datetime, orders: int, gmv_fen: int) -> list[Any]:
    counters = {c: 0 for c in COUNTERS} | {"orders": orders, "gmv_fen": gmv_fen, "buyers": orders}
    row = {"campaign_id": campaign, "channel": "app", "entry": "", "city_tier": 1, "minute": int(minute.timestamp()),
           "topic": "", "reason": "", "src_partition": -1, **counters, "rejected": 0, "batch_to": 0}  # fmt: skip
    return [row[c] for c in INSERT_COLUMNS]


def test_tiles_and_tables_agree_while_the_sink_writes_between_their_queries(world: World) -> None:
    """Grafana runs the orders tile, then the leaderboard, each on its own; the sink writes the
    current minute's events in between. Both stop at the same settled point (from the refresh's
    range end), so they agree; without the bound they would not. On the real engine."""
    to = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    settled = (to - dt.timedelta(seconds=SETTLE_S)).replace(second=0)
    day_start = to.astimezone(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0)
    if settled - dt.timedelta(minutes=1) < day_start:  # the first minute of the Shanghai day: no settled minute yet
        time.sleep(70)
        to = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
        settled = (to - dt.timedelta(seconds=SETTLE_S)).replace(second=0)
    live = Range(to - dt.timedelta(hours=1), to)
    probe = "settled-probe"
    written = [
        _facts_row(probe, settled - dt.timedelta(minutes=1), 2, 1234),  # a finished minute
        _facts_row(probe, settled, 5, 999),  # the minute now filling
    ]
    tile, table = panel("promo-war-room", "Orders today"), panel("promo-war-room", "leaderboard")
    try:
        world.store.insert_rows("promo.facts_minute", [written[0]], INSERT_COLUMNS)
        orders_tile = only(world.rows(tile, rng=live))["orders"]
        unbounded_before = _unbounded_orders(world, tile, live)
        world.store.insert_rows("promo.facts_minute", [written[1]], INSERT_COLUMNS)  # the sink, between
        board = {r["campaign_id"]: r for r in world.rows(table, rng=live)}
        assert orders_tile == board[probe]["orders"] == 2
        assert board[probe]["gmv_yuan"] == pytest.approx(12.34)
        assert only(world.rows(tile, rng=live))["orders"] == 2  # and again, after the write
        # The same tile without the bound moves with the write: what the bound prevents.
        assert _unbounded_orders(world, tile, live) == unbounded_before + 5
    finally:  # the counters are deltas: the opposite rows take the probe out again
        undo = [_facts_row(probe, settled - dt.timedelta(minutes=1), -2, -1234), _facts_row(probe, settled, -5, -999)]
        world.store.insert_rows("promo.facts_minute", undo, INSERT_COLUMNS)
    assert world.store.totals() == world.truth.totals


def _unbounded_orders(world: World, tile: Json, rng: Range) -> int:
    sql = tile["targets"][0]["rawSql"].replace(f" AND minute < {SETTLED_UNTIL}", "")
    assert SETTLED_UNTIL not in sql
    return int(only(world.rows({"targets": [{"rawSql": sql}]}, rng=rng))["orders"])


def test_the_watchdog_rules_are_committed_as_generated_and_watch_the_detector() -> None:
    from streams.dashboards.grafana import WATCHDOG_FILE, render, watchdog_rules

    committed = ROOT / "deploy" / "grafana" / "provisioning" / "alerting" / WATCHDOG_FILE
    assert committed.read_text(encoding="utf-8") == render(watchdog_rules()), f"{committed} is stale"
    (group,) = watchdog_rules()["groups"]
    rules = {r["uid"]: r for r in group["rules"]}
    detector = rules["promo-detector-heartbeat"]
    assert "worker = 'detector'" in detector["data"][0]["model"]["rawSql"]
    assert detector["noDataState"] == detector["execErrState"] == "Alerting"
    assert detector["data"][1]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [30]}
    assert "worker != 'detector'" in rules["promo-pipeline-heartbeat"]["data"][0]["model"]["rawSql"]


def test_the_war_room_marks_alerts_and_lists_the_firing_ones(world: World) -> None:
    from streams.dashboards.grafana import war_room

    board = war_room()
    (annotation,) = board["annotations"]["list"]
    assert "promo.alerts FINAL" in annotation["target"]["rawSql"] and "timeEnd" in annotation["target"]["rawSql"]
    rows = world.rows(panel("promo-war-room", "Firing alerts"))
    # The drill-down marks the campaign's own incidents (an outside probe: it had no alert regions)
    (mine,) = build_all()["promo-campaign.json"]["annotations"]["list"]
    texts = {}
    for campaign in ("c1", "c2"):
        sql, params = expand(mine["target"]["rawSql"], world.recent, {"campaign": campaign})
        texts[campaign] = sorted(str(r["text"]) for r in world.store.query_rows(sql, params))
    assert texts == {"c1": ["gmv_fen warning: gmv_fen on c1 93% below expected",
                            "orders critical: orders on c1/wechat 95% below expected"], "c2": []}, texts  # fmt: skip
    # critical first, then newest; who acknowledged it; GMV in yuan as the tiles show it (an outside probe)
    assert [(r["what"], r["scope"], r["severity"], r["acked_by"]) for r in rows] == [
        ("orders", "c1 / wechat", "critical", "duty-李"),
        ("gmv_fen", "c1", "warning", ""),
    ]
    assert (rows[1]["observed"], rows[1]["expected"]) == (1310, 17628), rows[1]
    # ... and the drill-down lists the campaign's own (an outside probe: it had no firing table)
    for campaign, listed in (("c1", ["orders", "gmv_fen"]), ("c2", [])):
        mine = world.rows(panel("promo-campaign", "This campaign's firing alerts"), campaign=campaign)
        assert [r["what"] for r in mine] == listed, (campaign, mine)


def test_a_minute_without_events_is_drawn_as_0_per_series_and_a_partial_first_bucket_not_at_all(world: World) -> None:
    """An outside probe: a campaign's channel with no events for three minutes (an outage) had no rows
    there, and the chart drew a straight line across it; and a chart from 21:25 in 2-minute buckets drew
    its first point (21:24-21:26, one minute of it in range) at half height. The panels' own SQL, their
    table swapped for fixed rows, on the real engine."""
    t0 = 1_794_326_400  # 2026-11-11 00:00 Beijing, on every bucket grid

    def rows_of(english: str, board: str, rows: list[tuple[int, str, int]], rng: Range) -> list[dict[str, Any]]:
        table = " UNION ALL ".join(
            f"SELECT toDateTime({t}) AS minute, 'c1' AS campaign_id, '{ch}' AS channel, {n} AS orders, "
            f"0 AS new_users, {n} AS interactions" for t, ch, n in rows
        )  # fmt: skip
        sql, params = expand(panel(board, english)["targets"][0]["rawSql"], rng, {"campaign": "c1"})
        return world.store.query_rows(sql.replace("FROM promo.facts WHERE", f"FROM ({table}) WHERE"), params)

    at = dt.datetime.fromtimestamp
    # WeChat sends every minute but 2-4; the app only in minutes 3 and 7.
    sent = [(t0 + 60 * m, "wechat", 10) for m in range(8) if not 2 <= m <= 4] + [
        (t0 + 180, "app", 5),
        (t0 + 420, "app", 5),
    ]
    rng = Range(at(t0, dt.UTC), at(t0 + 480, dt.UTC))
    by_channel = rows_of("Orders per minute by channel", "promo-campaign", sent, rng)
    got = [(int(r["time"].timestamp()) - t0, r["channel"], r["orders"]) for r in by_channel]
    assert [g for g in got if g[1] == "wechat"] == [(60 * m, "wechat", 0 if 2 <= m <= 4 else 10) for m in range(8)]
    assert [g for g in got if g[1] == "app"] == [(60 * m, "app", 5 if m in (3, 7) else 0) for m in range(3, 8)]
    assert [g[0] for g in got] == sorted(g[0] for g in got)  # by time: Grafana reads a long frame so
    # The war room's series from 00:01 in 2-minute buckets: 00:00-00:02 holds one minute of the range.
    total = rows_of("Orders per minute (event time", "promo-war-room", sent, Range(at(t0 + 60, dt.UTC),
                    at(t0 + 480, dt.UTC), interval_s=120))  # fmt: skip
    assert [(int(r["time"].timestamp()) - t0, r["orders"]) for r in total] == [(120, 2.5), (240, 5.0), (360, 12.5)]
    # Nothing written yet for the range's last minutes (a pipeline behind, a catch-up): the series end
    # with the last minute any of them has, not in 0s at the right edge of the wall (a review).
    late = rows_of("Orders per minute by channel", "promo-campaign", sent, Range(at(t0, dt.UTC), at(t0 + 900, dt.UTC)))
    assert max(int(r["time"].timestamp()) - t0 for r in late) == 420, late
