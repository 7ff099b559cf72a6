"""Fixtures for integration tests: the real embedded broker and real workers (chdb store).

One broker serves the session; each test gets its own topic prefix and consumer groups, so tests
do not see each other's data. Workers are real `promo worker` processes (streams.harness); every
fixture stops what it starts, also when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.harness import Pipeline, WorkerProcess
from streams.kafka import EmbeddedBroker, free_port


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
