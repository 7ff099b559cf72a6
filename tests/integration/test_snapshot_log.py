"""Issue 18: a stage-2 snapshot is used only with the routed log it was taken from.

The scenario as reported: a broker whose memory log is gone, the same users import first (the
same bytes as before), the same data directory, a new store and a new stream. Before the fix the
old snapshot passed as this log's, stage 2 dropped the new events as replays, and the totals froze
at a fraction of the truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.kafka import free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess, wait_until
from tests.integration.test_pipeline import send, simulate

pytestmark = pytest.mark.integration


def _run(
    root: Path, store: str, seed: int, workers: list[WorkerProcess], *, state_from: Path | None = None
) -> WorkerProcess:
    """A broker of its own, a worker on `root` as data directory, one stream; exact, then stopped."""
    root.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(free_port(), log_path=root / f"broker-{seed}.log") as broker:
        env = Pipeline(broker.url, root, prefix="issue18.", extra={"PROMO_CLICKHOUSE": f"chdb://{root / store}"})
        if state_from is not None:  # a snapshot copied from another data directory
            shutil.copytree(state_from / "state", root / "state", dirs_exist_ok=True)
        sim = simulate(env, 4000, seed=seed)
        sim = type(sim)(records=sim.records, existing_buyers=sorted({*sim.existing_buyers, "buyer-a", "buyer-b"}))
        worker = WorkerProcess(env, f"run-{seed}", sink=True).start()
        workers.append(worker)
        truth = send(env, sim, paced=False)
        got = wait_until(worker, "/api/totals", truth.totals, timeout=90)
        worker.stop()
        assert got == truth.totals, worker.log()
        return worker


def test_a_snapshot_from_another_broker_log_is_discarded_and_the_run_is_exact(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    first = _run(tmp_path, "store-1", seed=21, workers=workers)
    assert "discarding the state snapshot" not in first.log(tail=10**7)
    assert list((tmp_path / "state").rglob("routed-*")), "the first run saved snapshots"
    second = _run(tmp_path, "store-2", seed=22, workers=workers)
    log = second.log(tail=10**7)
    assert log.count("discarding the state snapshot") >= 1, log
    assert "not taken from this log" in log


def test_a_snapshot_copied_from_another_data_directory_is_discarded(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    _run(tmp_path / "a", "store", seed=31, workers=workers)
    copied = _run(tmp_path / "b", "store", seed=31, workers=workers, state_from=tmp_path / "a")
    assert "discarding the state snapshot" in copied.log(tail=10**7)
