"""Issue 17 end to end: the whole worker (consumers, sink and detector) frozen by SIGSTOP for 80 s
under a steady stream, then resumed; then a real outage.

A stopped VM or a GC pause of the only worker stops the detector with it: nothing is judged while
it is frozen. What the war room must see when it wakes: a `lag` alert at its first evaluations (the
data is 80 s old), no drop alert (neither on the catch-up nor on the step that jumps over the frozen
minute), the lag alert resolved once the worker has caught up; then, when the stream stops for good,
critical drop alerts at the total within seconds. (Where the broker expires the frozen worker's
session, its partitions are revoked and assigned again on waking; the freshness clock keeps their
history for that: tests/unit/test_alert_inputs.py. On the embedded broker this test passes with or
without that rule.)
"""

from __future__ import annotations

import signal
import time

import pytest

from streams.kafka import free_port
from streams.kit.harness import Pipeline, WorkerProcess
from tests.integration.test_alerts_live import (
    _epoch,
    alerts,
    assert_the_end_of_the_stream_is_an_outage,
    start_steady_stream,
)

pytestmark = pytest.mark.integration


def test_a_frozen_worker_wakes_to_a_lag_alert_and_no_drop_alert(env: Pipeline, workers: list[WorkerProcess]) -> None:
    env.extra.update({"PROMO_ALERTS": "1", "PROMO_ALERTS_LANGUAGE": "en"})
    worker = WorkerProcess(env, "w", sink=True, view_port=free_port()).start()
    workers.append(worker)
    sending = start_steady_stream(env, 185.0, seed=7)  # ends some seconds after the checks below
    try:
        time.sleep(45.0)  # the detector has a starting point and steady traffic to judge by
        assert worker.process is not None and worker.alive, worker.log()
        stopped_at = time.time()
        worker.process.send_signal(signal.SIGSTOP)
        time.sleep(80.0)
        worker.process.send_signal(signal.SIGCONT)
        resumed_at = time.time()
        time.sleep(40.0)  # caught up; the stream still flows
        assert worker.alive, worker.log()
        found = alerts(env)
        drops = [a for a in found if a["kind"] == "drop"]
        assert drops == [], (drops, worker.log())
        lags = [a for a in found if a["kind"] == "lag"]
        assert len(lags) == 1, (found, worker.log())
        (lag,) = lags
        # Frozen, the detector judged nothing; its first evaluations after the resume see 80 s of lag.
        assert resumed_at <= _epoch(lag["detected_at"]) <= resumed_at + 15, (lag, stopped_at, resumed_at)
        assert lag["resolved_at"] is not None, (lag, worker.log())
        assert _epoch(lag["resolved_at"]) <= resumed_at + 40, (lag, resumed_at)
    finally:
        sending.join()
    assert_the_end_of_the_stream_is_an_outage(env)
