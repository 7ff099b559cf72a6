"""Issue 14, the two-worker kill loop's seed 7: a batch handed past the committed offset skips input.

Records fetched around a rebalance are dropped unacked; the fetcher's position has already moved
past them. If the next batch of the partition is handed on, the dropped records are never
processed in that assignment, and when a later owner reads them again stage 2 takes them for
replays: orders lost, first-order credits moved. `PROMO_DROP_FIRST_FETCH=1` makes the worker drop
the first fetched batch of every partition that way, deterministically; the consumer must read the
skipped records back (streams/worker/transport.py: `_from_start`). Scored by identities, not sums: every
order_id once in the right cell, every participant and credit on the right event.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streams.kit.audit import compare, identities_of, ledger_identities
from streams.kit.harness import Pipeline, WorkerProcess, wait_until
from streams.kit.producer import send_records
from streams.kit.truth import compute_truth, identities
from streams.lab.killloop import read_ledger
from streams.users import import_existing
from tests.integration.conftest import start_worker
from tests.integration.test_pipeline import rejections_reach, simulate

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("more_input", [True, False], ids=["next-batch", "end-of-stream"])
def test_records_dropped_after_the_fetcher_moved_past_them_are_read_back(
    env: Pipeline, workers: list[WorkerProcess], more_input: bool
) -> None:
    """more_input: records follow the dropped batch (read back when the next batch comes), or not
    (read back when the fetcher has nothing more while the high watermark is past: the sweep)."""
    env.extra.update({"PROMO_DROP_FIRST_FETCH": "1", "PROMO_AUDIT": "1"})
    settings = env.settings()
    sim = simulate(env, 8000, seed=41)
    worker = start_worker(workers, env, "w1", sink=True)
    deadline = time.monotonic() + 60
    while "[^Worker]: Ready" not in worker.log(tail=10**7):  # assigned: it fetches what comes next
        assert worker.alive and time.monotonic() < deadline, worker.log()
        time.sleep(0.1)

    async def go() -> list[Any]:
        await import_existing(settings, sim.existing_buyers)
        if not more_input:
            return await send_records(settings, sim.records, paced=False)
        first = await send_records(settings, sim.records[:2000], paced=False)
        await asyncio.sleep(1.0)  # the first batches are dropped; the next ones begin past them
        return first + await send_records(settings, sim.records[2000:], paced=False)

    sent = asyncio.run(go())
    truth = compute_truth(sent, sim.existing_buyers)
    assert wait_until(worker, "/api/totals", truth.totals, timeout=120) == truth.totals, worker.log()
    assert rejections_reach(worker, truth) == truth.rejected

    report = compare(identities_of(identities(sent, sim.existing_buyers)),
                     ledger_identities(asyncio.run(read_ledger(settings))[0]))  # fmt: skip
    assert report.checked > 3000 and report.exact, report.examples

    # Every input and routed partition lost its first batch and had it read back.
    consumer = worker.get("/health")["consumer"]
    assert consumer["gaps_filled"] >= 4 * env.partitions, consumer
    log = worker.log(tail=10**7)
    assert log.count("skipped records back") == consumer["gaps_filled"]
    how = "where handing goes on; read" if more_input else "while the high watermark is"
    assert how in log, log
