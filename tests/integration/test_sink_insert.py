"""The sink's columnar insert writes, on the real engine, exactly what the row insert before it wrote.

`ClickHouseStore.insert_wire_rows` hands clickhouse-connect columns and the column types (no row
pivot in Python, no DESCRIBE per insert). The same polls go through it into `promo.facts_minute` and
through the old code (rows, types from DESCRIBE) into a twin table; with merges stopped, both tables
must hold the same rows, one part per insert (the exactly-once markers rely on one atomic insert).

chdb opens one store per process, and the unit tests' session holds one, so the engine runs in a
child process (as in test_dashboards_speed.py).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from streams.contract.facts import COUNTERS
from streams.sink.clickhouse import FACTS_INSERT_TYPES, SINK_LOG_TYPES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MINUTE0 = 1_762_790_400_000
ODD_TEXT = ["双11主会场", "it's", 'say "hi"', "back\\slash", "tab\tnew\nline", "'); DROP TABLE promo.facts_minute; --"]

Poll = tuple[list[list[Any]], list[list[Any]], dict[int, int]]


def polls(seed: int = 11) -> list[Poll]:
    """Sink polls as the writer builds them (every routed partition's rows, keys repeating across
    partitions), and the edge cases: nothing but markers, no rejections, text that must stay data."""
    rng = random.Random(seed)
    campaigns = ["crazy618_lottery", "jingxi_pinpin", "", *ODD_TEXT]
    channels, entries = ["wechat", "app", "douyin", ""], ["feed", "search", "share_card", ""]
    out: list[Poll] = []
    offsets = dict.fromkeys(range(4), 0)
    for i in range(12):
        minute = MINUTE0 + (i // 3) * 60_000
        facts = [
            [rng.choice(campaigns), rng.choice(channels), rng.choice(entries), rng.randint(0, 5),
             minute - rng.choice((0, 60_000)), *(rng.randint(-3, 40) for _ in COUNTERS)]
            for _ in range(rng.choice((0, 1, 300, 700)) if i % 4 else 0)
        ]  # fmt: skip
        if i == 5:
            facts.append(["c", "app", "feed", 255, minute, *([2**62] * len(COUNTERS))])
        rejections = [
            [rng.choice(["clicks", "shares", "orders"]), rng.choice(["malformed", "too_late", "duplicate"]),
             rng.choice(campaigns), rng.choice(channels), minute, rng.randint(1, 9)]
            for _ in range(rng.choice((0, 3, 20)))
        ]  # fmt: skip
        moved = rng.sample(sorted(offsets), rng.randint(1, 4))
        markers: dict[int, int] = {}
        for p in reversed(moved):  # not in partition order: the insert sorts them
            offsets[p] += rng.randint(1, 500)
            markers[p] = offsets[p]
        out.append((facts, rejections, markers))
    return out


# Within sink_log's TTL (7 days), or the row is gone before it is read.
WRITTEN_AT_MS = int(time.time()) * 1000 + 789
WRITTEN_AT = dt.datetime.fromtimestamp(WRITTEN_AT_MS / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

CHILD = """
    import json, sys
    from streams.sink import clickhouse as ch
    from tests.unit.test_sink_columns import old_rows

    store_dir, polls_file, written_at_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = ch.ClickHouseStore(f"chdb://{store_dir}")
    store.apply_schema()
    client = store._connect()
    store.command("CREATE TABLE promo.facts_old AS promo.facts_minute")
    for table in ("facts_minute", "facts_old"):
        store.command(f"SYSTEM STOP MERGES promo.{table}")

    counts = []
    for facts, rejections, markers in json.loads(open(polls_file).read()):
        markers = {int(p): to for p, to in markers.items()}
        written = store.insert_wire_rows(facts, rejections, markers)
        rows = old_rows(facts, rejections, markers)                          # the code before, verbatim
        client.insert("promo.facts_old", rows, column_names=ch.INSERT_COLUMNS)
        counts.append([written, len(rows)])
    store.log_write([(written_at_ms, 3, 77, 700, 1_762_790_460_123, 1_762_790_461_456, 12.5),
                     (written_at_ms, 4, 12, 3, 0, 0, 4.0)])  # existing-buyer imports only: no ingest time

    def table(name):
        return [[str(v) for v in row] for row in client.query(f"SELECT * FROM promo.{name} ORDER BY ALL").result_rows]

    def parts(name):
        return store.query_rows(
            "SELECT count() AS n FROM system.parts WHERE database = 'promo' AND table = {t:String} AND active",
            {"t": name})[0]["n"]

    def types(name):
        return {r["name"]: r["type"] for r in store.query_rows(f"DESCRIBE TABLE promo.{name}")
                if r["default_type"] not in ("MATERIALIZED", "ALIAS")}

    print(json.dumps({
        "counts": counts,
        "new": table("facts_minute"), "old": table("facts_old"),
        "new_parts": parts("facts_minute"), "old_parts": parts("facts_old"),
        "facts_types": types("facts_minute"), "sink_log_types": types("sink_log"),
        "sink_log": [[str(v) for v in r.values()] for r in store.query_rows(
            "SELECT written_at, src_partition, batch_to, rows, max_event_ts, max_ingest, write_ms "
            "FROM promo.sink_log")],
        "markers": store.written_markers(),
    }))
    store.close_sync()
    store.executor.shutdown()
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("sink_insert")
    data = tmp / "polls.json"
    data.write_text(json.dumps(polls()))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(tmp / "store"), str(data), str(WRITTEN_AT_MS)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    doc: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return doc


def test_columnar_insert_writes_the_rows_the_row_insert_wrote(written: dict[str, Any]) -> None:
    expected = polls()
    assert [new for new, _ in written["counts"]] == [old for _, old in written["counts"]]
    assert sum(new for new, _ in written["counts"]) == sum(len(f) + len(r) + len(m) for f, r, m in expected)
    assert written["new"], "nothing was written"
    assert written["new"] == written["old"]
    assert any("DROP TABLE" in str(row[0]) for row in written["new"])  # text stayed data
    # One part per insert, as before: each poll's facts, rejections and markers land together or not.
    assert written["new_parts"] == written["old_parts"] == len(expected)


def test_markers_read_back(written: dict[str, Any]) -> None:
    last: dict[str, int] = {}
    for _, _, markers in polls():
        last.update({str(p): to for p, to in markers.items()})
    assert written["markers"] == last


def test_insert_types_are_the_tables_own(written: dict[str, Any]) -> None:
    """The types the inserts declare (instead of asking DESCRIBE every time) are the schema's."""
    assert written["facts_types"] == dict(FACTS_INSERT_TYPES)
    assert written["sink_log_types"] == dict(SINK_LOG_TYPES)


def test_sink_log_with_declared_types(written: dict[str, Any]) -> None:
    # UTC; each row carries the time of its own write. A batch with no ingest time (existing-buyer
    # imports) is not logged: at 1970 it read as a 56-year p99 on the demo's first screens.
    row = [WRITTEN_AT, "3", "77", "700", "2025-11-10 16:01:00.123000", "2025-11-10 16:01:01.456000", "12.5"]
    assert written["sink_log"] == [row]
