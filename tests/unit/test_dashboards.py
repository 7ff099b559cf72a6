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

import pytest

from streams.config import Settings
from streams.contract.facts import Deltas
from streams.dashboards.grafana import (
    CHANNEL_NAMES,
    DATASOURCE_UID,
    SETTLE_S,
    SETTLED_BUCKETS,
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
from streams.sink.clickhouse import ClickHouseStore
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
    range: Range

    def rows(self, panel: Json, *, rng: Range | None = None, **variables: str) -> list[dict[str, Any]]:
        sql, params = expand(panel["targets"][0]["rawSql"], rng or self.range, variables)
        return self.store.query_rows(sql, params)


def feed(sim: Simulation, settings: Settings) -> tuple[Deltas, dict[int, int], int]:
    """The two stages in-process, as the agents run them: returns the deltas and the markers."""
    return fold_in_process(sim.records, sim.existing_buyers, settings)


@pytest.fixture(scope="session")
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
            day = dt.timedelta(days=1)
            start = dt.datetime.fromtimestamp(cfg.start_ms / 1000, tz=dt.UTC) - day
            rng = Range(start, dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=1))
            yield World(store, truth, deltas, ingest_ms, rng)
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
    rows = world.rows(p, campaign=campaign)
    assert rows, f"{p['title']} returned nothing over the data's range"
    if p["type"] == "timeseries":
        times = [r["time"] for r in rows]
        assert times == sorted(times)


def test_war_room_stats(world: World) -> None:
    truth = world.truth
    gmv = only(world.rows(panel("promo-war-room", "GMV")))["gmv_yuan"]
    assert gmv == pytest.approx(truth_sum(truth, "gmv_fen") / 100, abs=1e-9)
    assert only(world.rows(panel("promo-war-room", "Orders")))["orders"] == truth_sum(truth, "orders")
    new_users = truth_sum(truth, "new_users")
    assert new_users > 0
    assert only(world.rows(panel("promo-war-room", "New ordering users")))["new_users"] == new_users
    assert only(world.rows(panel("promo-war-room", "Interactions")))["interactions"] == truth_sum(truth, "interactions")
    assert only(world.rows(panel("promo-war-room", "Participants")))["participants"] == truth_sum(truth, "participants")
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
    assert only(world.rows(panel("promo-war-room", "GMV"), rng=before))["gmv_yuan"] == 0
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

    assert only(rows("GMV"))["gmv_yuan"] == pytest.approx(want("gmv_fen") / 100, abs=1e-9)
    assert only(rows("Orders"))["orders"] == want("orders")
    assert only(rows("New ordering users"))["new_users"] == want("new_users")
    shares = only(rows("Shares and new users via share"))
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
    gmv_other = only(world.rows(panel("promo-campaign", "GMV"), campaign=other))["gmv_yuan"]
    assert gmv_other == pytest.approx(truth_sum(truth, "gmv_fen", campaign=other) / 100, abs=1e-9)


def test_campaign_ids_with_quotes_cannot_break_the_sql(world: World) -> None:
    hostile = "双11'); DROP TABLE promo.facts_minute; --\\"
    assert only(world.rows(panel("promo-campaign", "Orders"), campaign=hostile))["orders"] == 0
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
    series = panel("promo-war-room", "Orders per minute (event time)")
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
    gmv = panel("promo-war-room", "GMV per minute (event time), vs the day before")
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
    }  # fmt: skip
