"""A batch a stage cannot finish stops the worker with status 1, and a restart is exact.

The worker does not skip a batch it failed (Faust would restart the agent past it, and the batch
would be lost until the next restart): it stops, and what restarts it (deploy/systemd, a Kubernetes
pod) restarts only a worker that failed, so the status must say so. The fault file's
`fail-stage:aggregate` fails stage 2's next batch as a broker that went away with the batch's
output in flight does (a `BrokerError`); an outside probe saw exactly that stop the worker.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.kit.audit import compare, identities_of, ledger_identities
from streams.kit.harness import Pipeline, WorkerProcess, wait_until
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth, identities
from streams.lab.killloop import read_ledger
from tests.integration.conftest import send_simulated, start_worker

pytestmark = pytest.mark.integration


def test_a_failed_batch_stops_the_worker_with_status_1_and_a_restart_is_exact(
    env: Pipeline, workers: list[WorkerProcess]
) -> None:
    fault = env.root / "fault"
    env.extra.update({"PROMO_FAULT_FILE": str(fault), "PROMO_AUDIT": "1"})
    sim = generate(SimConfig(events=4000, seed=23, partitions=env.partitions, duration_s=3.0))
    half = len(sim.records) // 2
    settings = env.settings()
    worker = start_worker(workers, env, "fails", sink=True)
    first = asyncio.run(send_simulated(settings, sim.existing_buyers, sim.records[:half]))
    truth = compute_truth(first, sim.existing_buyers)
    assert wait_until(worker, "/api/totals", truth.totals) == truth.totals, worker.log()

    fault.write_text("fail-stage:aggregate\n")
    sent = first + asyncio.run(send_simulated(settings, [], sim.records[half:]))
    assert worker.process is not None
    try:
        code = worker.process.wait(timeout=90)  # it stops by itself
    except Exception:
        pytest.fail(f"the worker did not stop on a failed batch:\n{worker.log()}")
    log = worker.log(tail=200_000)
    assert code == 1, (code, log)
    assert "AggregateAgent failed on a batch; stopping the worker" in log, log

    fault.unlink()
    worker.start()  # what a supervisor does on status 1: the restart recovers from the logs, exactly
    truth = compute_truth(sent, sim.existing_buyers)
    assert wait_until(worker, "/api/totals", truth.totals) == truth.totals, worker.log()
    # By identity, not sums: every order and every credit once, in its cell
    report = compare(identities_of(identities(sent, sim.existing_buyers)),
                     ledger_identities(asyncio.run(read_ledger(settings))[0]))  # fmt: skip
    assert report.checked > 1000 and report.exact, report.examples
