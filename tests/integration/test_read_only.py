"""Read commands never change the store (issue 15): `promo totals` on a store no worker has written
says so (exit 2) without building the schema, and leaves the store as it found it. The real chdb engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.kit.harness import Pipeline
from streams.sink.clickhouse import ClickHouseStore

pytestmark = pytest.mark.integration


def databases(store_dir: Path) -> set[str]:
    store = ClickHouseStore(f"chdb://{store_dir}")
    try:
        return {row["name"] for row in store.query_rows("SELECT name FROM system.databases")}
    finally:
        store.close_sync()


def test_totals_on_a_store_without_tables_builds_nothing(env: Pipeline) -> None:
    before = databases(env.store)
    assert "promo" not in before
    result = env.promo("totals", "--json")
    # An error, not an empty answer ("no sales"): no worker ever wrote here (issue 16).
    assert result.returncode == 2 and result.stdout == ""
    assert "has no tables: no worker has written to it yet" in result.stderr
    assert databases(env.store) == before  # no `promo` database, no tables, no schema_version row


def test_totals_reads_a_store_a_worker_built_without_writing_to_it(env: Pipeline) -> None:
    store = ClickHouseStore(f"chdb://{env.store}")
    try:
        store.apply_schema()
        versions = store.query_rows("SELECT count() AS n FROM promo.schema_version")
    finally:
        store.close_sync()
    result = env.promo("totals", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    store = ClickHouseStore(f"chdb://{env.store}")
    try:
        assert store.query_rows("SELECT count() AS n FROM promo.schema_version") == versions
    finally:
        store.close_sync()
