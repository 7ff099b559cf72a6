"""A ClickHouse error that retrying cannot heal stops the worker, non-zero, with the error and its
code (issue 15: the sink retried every exception forever and looked alive). The real chdb engine,
given a store whose `promo.facts_minute` is not ours: every statement on it fails with code 47."""

from __future__ import annotations

import time

import pytest

from streams.kit.harness import Pipeline, WorkerProcess
from streams.sink.clickhouse import ClickHouseStore
from tests.integration.conftest import start_worker

pytestmark = pytest.mark.integration


def test_a_permanent_clickhouse_error_stops_the_worker_with_its_code(
    env: Pipeline, workers: list[WorkerProcess]
) -> None:
    store = ClickHouseStore(f"chdb://{env.store}")
    try:
        store.command("CREATE DATABASE promo")
        store.command("CREATE TABLE promo.facts_minute (x Int32) ENGINE = MergeTree ORDER BY x")
    finally:
        store.close_sync()
    worker = start_worker(workers, env, "owner", sink=True)
    deadline = time.monotonic() + 120
    while worker.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.alive, "the worker kept running on an error that cannot heal"
    assert worker.process is not None and worker.process.returncode != 0
    log = worker.log()
    assert "failed with a permanent error (code 47)" in log, log[-3000:]
    assert "UNKNOWN_IDENTIFIER" in log
    # said once, in one line: no page of tracebacks around it (an outside probe counted six)
    assert "Traceback" not in log and "We experienced a crash" not in log, log[-3000:]
    assert "promo: error: the worker stopped: ClickHouse" in log, log[-3000:]
