"""Fixtures for integration tests: the real embedded broker and real workers (chdb store).

One broker serves the session; each test gets its own topic prefix and consumer groups, so tests
do not see each other's data. Workers are real `promo worker` processes (streams.kit.harness); every
fixture stops what it starts, also when the test fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from streams.kafka import free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.users import import_existing


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(free_port(), log_path=log) as embedded:
        yield embedded


@pytest.fixture
def env(broker: EmbeddedBroker, tmp_path: Path) -> Pipeline:
    return Pipeline(broker.url, tmp_path)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(workers: list[WorkerProcess], env: Pipeline, name: str, *, sink: bool) -> WorkerProcess:
    worker = WorkerProcess(env, name, sink=sink).start()
    workers.append(worker)
    return worker


async def send_simulated(settings: Any, existing: list[str], records: list[Any]) -> list[Any]:
    """The existing buyers imported (if any), then the records, as fast as the broker takes them."""
    if existing:
        await import_existing(settings, existing)
    return await send_records(settings, records, paced=False)


def project(rows: list[dict[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    return sorted((r["campaign_id"], r["channel"], *(int(r[c]) for c in columns)) for r in rows)


def wait_for_columns(
    worker: WorkerProcess, truth: list[dict[str, Any]], columns: Sequence[str], timeout: float = 120
) -> list[dict[str, Any]]:
    """Poll the worker's totals until `columns` equal the truth's (per campaign and channel); the last totals.

    For tests of what is *shown* (the view): they need the numbers they show to have landed, not
    every counter exact (the pipeline's own tests hold it to that).
    """
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if not worker.alive:
            raise RuntimeError(f"worker {worker.name} died:\n{worker.log()}")
        rows = worker.try_get("/api/totals") or []
        if project(rows, columns) == project(truth, columns):
            break
        time.sleep(0.5)
    return rows
