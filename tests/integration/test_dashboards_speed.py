"""What keeps the dashboards fast, checked without timing anything.

- `promo dashboards bench` runs every dashboard query on a filled store (a CI-sized day) and reports
  its structure, the exact event total, no failing query, and which table or projection each read.
- The schema's one ordered list of migrations: a store of each older version, with data, reaches a
  new store's schema (v2 builds the projections the wide panels read for the parts it already has).

Each store is opened in a subprocess: chdb is one engine per process, and the dashboard tests hold
one in this process.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streams.kit.harness import PROMO
from streams.sink.clickhouse import FACTS_PROJECTIONS, MIGRATIONS, SCHEMA_VERSION

pytestmark = pytest.mark.integration

EVENTS = 200_000


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("dashboards-bench")
    # The day ends at 23:00 Beijing (yesterday's 15:00 UTC), whenever the suite runs: "today" is then 23
    # hours of it, the panels' worst case. Ending at the wall clock, "today" was whatever had passed
    # since 00:00 Beijing, and an hour of it read the fact table instead of a projection (a fresh-clone
    # run at 00:55 Beijing failed that way; cheap either way, but not what the test is about).
    end = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)
    result = subprocess.run(
        [PROMO, "dashboards", "bench", "--events", str(EVENTS), "--repeat", "2", "--sample-events", "20000",
         "--work-dir", str(work), "--json", "--end", end.isoformat()],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_bench_runs_every_dashboard_query_on_a_full_day(bench: dict[str, Any]) -> None:
    from streams.dashboards.grafana import build_all
    from streams.lab.bench_dashboards import dashboard_queries

    fill = bench["fill"]
    # Exactly the events asked for, as the store counts them, over the day's 1440 minutes.
    assert fill["events"] == fill["accepted_in_store"] == EVENTS
    assert fill["rejected_in_store"] > 0 and fill["optimized"] is True
    assert fill["tables"]["facts_minute"]["rows"] > 1440 and fill["tables"]["sink_log"]["rows"] == 1440 * 240 * 4
    assert fill["store_bytes"] > 0
    assert set(bench["ranges"]) == {"day", "hour"}
    expected = {(q.dashboard, q.panel) for q in dashboard_queries(build_all())}
    assert len(expected) == sum(len(b["panels"]) for b in build_all().values()) + 1  # + the campaign variable
    rows = bench["queries"]
    assert {(r["dashboard"], r["panel"]) for r in rows} == expected
    assert sorted(r["range"] for r in rows) == sorted(["day", "hour"] * len(expected))
    for row in rows:
        assert row["error"] is None, row
        assert row["p50_ms"] > 0 and row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert isinstance(row["over_budget"], bool) and row["reads"]
    # A real campaign was bound: the drill-down found its numbers.
    assert bench["campaign"]
    drill = [r for r in rows if r["dashboard"] == "promo-campaign" and r["panel"].startswith("今日入口")]
    assert drill and all(r["rows"] > 0 for r in drill)


def test_wide_panels_read_a_projection_not_the_whole_table(bench: dict[str, Any]) -> None:
    """The 100 ms budget rests on this: a panel over a day without a campaign filter reads pre-summed rows."""
    day = {r["panel"]: r["reads"] for r in bench["queries"] if r["range"] == "day"}
    war_room = {r["panel"] for r in bench["queries"] if r["dashboard"] == "promo-war-room"}
    # The one stat that reads sink_log, and the incidents table (promo.alerts): not facts.
    war_room = {title for title in war_room if "freshness" not in title and "Firing alerts" not in title}
    assert war_room
    for title in war_room:
        assert day[title] in FACTS_PROJECTIONS, (title, day[title])


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# One line, so that it dedents with the scripts it goes into.
DESCRIBE = (
    "describe = lambda store: {"
    "'tables': [[r['name'], r['create_table_query']] for r in store.query_rows("
    "\"SELECT name, create_table_query FROM system.tables WHERE database = 'promo' ORDER BY name\")], "
    "'versions': [r['version'] for r in store.query_rows('SELECT version FROM promo.schema_version ORDER BY 1')]}"
)


def test_a_new_store_gets_every_migration() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("old", range(1, SCHEMA_VERSION))
def test_a_store_of_each_older_version_upgrades_to_a_new_stores_schema(tmp_path: Path, old: int) -> None:
    """A store left by version `old`, with data, opened by this version: the same tables, views,
    projections and indices as a new store, its data kept, and what the upgrade builds built for
    the parts it already had. Opening it twice changes nothing."""
    fresh = json.loads(
        _run_python(f"""
        import json
        from streams.sink import clickhouse as ch
        from tests.helpers import insert_deltas
        {DESCRIBE}
        store = ch.ClickHouseStore("chdb://{tmp_path}/fresh")
        store.apply_schema()
        print(json.dumps(describe(store)))
        store.close_sync()
        store.executor.shutdown()
    """)
        .strip()
        .splitlines()[-1]
    )
    out = _run_python(f"""
        import json, time
        from streams.contract.facts import Deltas, FactKey
        from streams.sink import clickhouse as ch
        from tests.helpers import insert_deltas
        {DESCRIBE}
        store = ch.ClickHouseStore("chdb://{tmp_path}/store")
        for migration in ch.MIGRATIONS[:{old}]:    # a store as version {old} left it, with data
            for statement in migration.statements:
                store.command(statement)
            store.command(f"INSERT INTO promo.schema_version VALUES ({{migration.version}}, now64(3))")
        deltas = Deltas()
        deltas.add(FactKey("c1", "wechat", "group", 3, 1_762_790_400_000), 3, 2)
        insert_deltas(store, deltas, {{0: 7}})
        now_ms = int(time.time() * 1000)           # written_at within sink_log's 7-day TTL
        store.log_write([(now_ms, 0, 7, 1, 1_762_790_400_000, 1_762_790_400_000, 5.0)])
        store.apply_schema()
        store.apply_schema()                       # twice: nothing fails, nothing doubles
        for _ in range(600):                       # the upgrade's mutations run in the background
            if not store.query_rows("SELECT 1 FROM system.mutations WHERE database = 'promo' AND NOT is_done"):
                break
            time.sleep(0.1)
        print(json.dumps({{
            **describe(store),
            "projections": sorted({{r["name"] for r in store.query_rows(
                "SELECT name FROM system.projection_parts WHERE database = 'promo' AND active")}}),
            "orders": store.totals()[0]["orders"],
            "lag": store.query_rows("SELECT lag_ms, minute FROM promo.sink_log")[0]["lag_ms"],
        }}))
        store.close_sync()
        store.executor.shutdown()
    """)
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["versions"] == fresh["versions"] == list(range(1, SCHEMA_VERSION + 1))
    assert doc["tables"] == fresh["tables"]
    assert doc["projections"] == sorted(FACTS_PROJECTIONS)  # built for the part written before v2
    assert doc["orders"] == 2
    assert doc["lag"] >= 0
