"""A stalled stage on a live worker: /health answers 503 naming the stage, its partitions and lag,
the worker logs it once, and clears when the stage moves again; a quiet stream is no stall.

The stall is real: the fault file (PROMO_FAULT_FILE) says `stall-stage:aggregate`, and stage 2 holds
its batches (without blocking the event loop) while it does, with input waiting behind them.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from streams.kit.harness import Pipeline, WorkerProcess, wait_until
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth
from tests.integration.conftest import send_simulated, start_worker

pytestmark = pytest.mark.integration

AFTER_S = 3.0


def health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the body of /health."""
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=10) as resp:  # loopback
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def poll_health(worker: WorkerProcess, until: Any, timeout: float) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    status, doc = 0, {}
    while time.monotonic() < deadline:
        assert worker.alive, worker.log()
        status, doc = health(worker)
        if until(status, doc):
            break
        time.sleep(0.3)
    return status, doc


def test_a_stalled_stage_is_an_error_and_a_quiet_stream_is_not(env: Pipeline, workers: list[WorkerProcess]) -> None:
    fault = env.root / "fault"
    env.extra.update({"PROMO_STALL_AFTER_S": str(AFTER_S), "PROMO_FAULT_FILE": str(fault)})
    sim = generate(SimConfig(events=3000, seed=11, partitions=env.partitions, duration_s=3.0))
    half = len(sim.records) // 2
    settings = env.settings()
    worker = start_worker(workers, env, "stall", sink=True)

    # Some traffic first, all processed: every stage then has known lags, all zero.
    first = asyncio.run(send_simulated(settings, sim.existing_buyers, sim.records[:half]))
    truth = compute_truth(first, sim.existing_buyers)
    assert wait_until(worker, "/api/totals", truth.totals) == truth.totals, worker.log()

    # Quiet, with the fault armed: stage 2 would stall on a batch, but no input comes, so nothing
    # waits and nothing is wrong, for well over the threshold.
    fault.write_text("stall-stage:aggregate\n")
    quiet_until = time.monotonic() + AFTER_S * 2
    while time.monotonic() < quiet_until:
        status, doc = health(worker)
        assert (status, doc["ok"], doc["stalls"]["stalled"]) == (200, True, []), doc
        time.sleep(0.5)
    assert doc["stalls"]["after_s"] == AFTER_S
    assert doc["stalls"]["lag"] == {"ingest": 0, "aggregate": 0, "sink": 0}, doc["stalls"]

    # Input arrives, stage 2 holds it: after the threshold, 503 with the stage, partitions and lag.
    sent = first + asyncio.run(send_simulated(settings, [], sim.records[half:]))
    status, doc = poll_health(
        worker, lambda s, d: any(x["stage"] == "aggregate" for x in d["stalls"]["stalled"]), timeout=30
    )
    assert status == 503 and doc["ok"] is False, doc
    (stalled,) = [x for x in doc["stalls"]["stalled"] if x["stage"] == "aggregate"]
    assert stalled["lag"] > 0 and stalled["no_progress_s"] >= AFTER_S, stalled
    assert stalled["partitions"] and {p["topic"] for p in stalled["partitions"]} == {settings.topic("routed")}
    lags = [p["lag"] for p in stalled["partitions"]]
    assert all(lag > 0 for lag in lags) and sum(lags) == stalled["lag"], stalled
    assert doc["sink"]["ok"] is True  # the sink's own state is not what failed
    time.sleep(1.5)  # a few more samples while stalled: still logged once
    assert worker.log(tail=200_000).count("stage aggregate stalled") == 1, worker.log()

    # The stage moves again: 200, logged once as cleared, and the totals are exact.
    fault.unlink()
    status, doc = poll_health(worker, lambda s, d: s == 200 and not d["stalls"]["stalled"], timeout=30)
    assert (status, doc["ok"]) == (200, True), doc
    truth = compute_truth(sent, sim.existing_buyers)
    assert wait_until(worker, "/api/totals", truth.totals) == truth.totals, worker.log()
    log = worker.log(tail=200_000)
    assert log.count("stage aggregate stalled") == 1 and log.count("stage aggregate no longer stalled") == 1, log
    assert health(worker)[0] == 200
