"""A worker that finds a backlog waiting dates it by the first waiting record's Kafka timestamp.

A worker restarted after minutes down, or one taking a killed worker's partitions over, finds records
that have waited that long. It used to say "30 s behind" of them (a flat guess) in its heartbeats,
and the detector, which trusts the newest word on a partition, could take minutes that were not
counted yet as settled (an outside probe: "30.0 s" for a 130 s backlog). Here the backlog is
produced first, stamped two minutes ago, and stage 1 holds its first batch (the fault file), so the
backlog stays: every heartbeat that names the partition says it is about two minutes behind, but for
the moment before the stage holds a record of it, when it says the guess marked as such (the fleet
then keeps an older word where there is one: tests/unit/test_alert_inputs.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest
from aiokafka import TopicPartition

from streams.alerts.freshness import UNKNOWN_BEHIND_S, Heartbeat, read_heartbeat
from streams.contract.topics import Topic
from streams.kafka import ensure_topics, read_range, side_consumer, true_end_offset
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate

pytestmark = pytest.mark.integration

WAITED_S = 120.0


async def heartbeats(env: Pipeline) -> list[Heartbeat]:
    settings = env.settings()
    tp = TopicPartition(settings.topic(Topic.HEARTBEATS), 0)
    found: list[Heartbeat] = []
    async with side_consumer(settings.bootstrap) as consumer:
        end = await true_end_offset(consumer, tp)
        await read_range(consumer, tp, 0, end, lambda r: found.append(b) if (b := read_heartbeat(r.value)) else None)
    return found


def test_a_backlog_found_waiting_is_as_old_as_its_first_record(env: Pipeline, workers: list[WorkerProcess]) -> None:
    settings = env.settings()
    asyncio.run(ensure_topics(settings))
    sim = generate(SimConfig(events=2000, seed=5, partitions=env.partitions, duration_s=2.0))
    clicks = [r for r in sim.records if r.kind == Topic.CLICKS and r.partition == 0][:200]
    assert len(clicks) >= 50
    stamped = int((time.time() - WAITED_S) * 1000)
    asyncio.run(send_records(settings, [replace(r, timestamp_ms=stamped) for r in clicks], paced=False))
    key = f"{settings.topic(Topic.CLICKS)}:0"

    fault = env.root / "fault"
    fault.write_text("stall-stage:ingest\n")  # stage 1 holds its first batch: the backlog stays
    worker = WorkerProcess(env, "late", sink=True).start(env={"PROMO_FAULT_FILE": str(fault)})
    workers.append(worker)
    started = time.time()
    said: list[tuple[float, float, bool]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and sum(not guess for *_, guess in said) < 5:
        assert worker.alive, worker.log()
        time.sleep(2.0)
        said = [(b.at, b.lags[key], key in b.undated) for b in asyncio.run(heartbeats(env)) if key in b.lags]
    assert sum(not guess for *_, guess in said) >= 5, (said, worker.log())
    for at, lag, guess in said:
        # As old as the record that waits longest: stamped WAITED_S before the test started, so at
        # least that (and the heartbeat's age since); the 30 s guess only as such.
        assert guess or lag >= WAITED_S + (at - started) - 2.0, (json.dumps(said), UNKNOWN_BEHIND_S)
    fault.unlink()
