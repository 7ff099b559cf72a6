"""Issue 17 end to end: the broker frozen (SIGSTOP) for 75 s under a steady stream, the worker and
its detector running on.

An outside probe: broker pauses of 30-70 s raised critical drop alerts on every metric of the total
within 10 s, and no lag alert. The worker's consumers stood at the end their last fetch had said,
so every partition read caught up, "complete as of now", while the producers' events waited for the
broker. A log's end is now known as of the fetch that answered with it (streams/alerts/freshness.py):
when the answers stop, the partitions age. What the war room must see: no drop alert, neither while
the broker is away nor while the backlog comes in; a lag alert once the data is more than 60 s old;
resolved after the catch-up.

What the probe hit depends on where the pause lands: between batches, every stage stands at its
end and read caught up; inside one, the stage waits on the broker with a record in hand and its lag
grows either way (as in most runs of this test, which then passes without the fix too). The unit
test `test_a_caught_up_partition_whose_broker_stops_answering_ages_from_the_last_answer` pins the
first case; this one holds the whole path, worker to alerts, through a real pause.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka import free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from tests.integration.test_alerts_live import _epoch, alerts, start_steady_stream

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of its own: this test freezes it, and the session's broker serves other tests."""
    own = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def test_a_paused_broker_is_a_lag_alert_and_never_a_drop_alert(
    broker: EmbeddedBroker, env: Pipeline, workers: list[WorkerProcess]
) -> None:
    env.extra.update({"PROMO_ALERTS": "1", "PROMO_ALERTS_LANGUAGE": "en"})
    worker = WorkerProcess(env, "w", sink=True).start()
    workers.append(worker)
    sending = start_steady_stream(env, 160.0, seed=11)  # its sends wait for the broker (up to 300 s)
    try:
        time.sleep(40.0)  # the detector has a starting point and steady traffic to judge by
        broker.pause()
        paused_at = time.time()
        time.sleep(75.0)
        broker.resume()
        resumed_at = time.time()
        time.sleep(35.0)  # the backlog comes in and is caught up; the stream still flows
        assert worker.alive, worker.log()
        found = alerts(env)
        drops = [a for a in found if a["kind"] == "drop"]
        assert drops == [], (drops, worker.log(tail=20_000))
        lags = [a for a in found if a["kind"] == "lag"]
        assert len(lags) == 1, (found, worker.log(tail=20_000))
        (lag,) = lags
        # The data is 60 s old about 60 s into the pause; evaluated every 10 s
        assert paused_at + 55 <= _epoch(lag["detected_at"]) <= paused_at + 60 + 10 + 5, (lag, paused_at)
        assert lag["resolved_at"] is not None and _epoch(lag["resolved_at"]) <= resumed_at + 35, (lag, resumed_at)
    finally:
        sending.join()
