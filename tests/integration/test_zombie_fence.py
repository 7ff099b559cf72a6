"""Issue 14 part 3: a zombie stage-2 owner cannot get a delta batch counted (streams/sink/markers.py).

The deltas log is written here in the one order that hurts: the old owner's batch lands after the
new owner's fence and before the new owner's own output for the same routed offsets, which covers
more. Without the generation check the sink would take the zombie's batch (it is above the marker)
and then the new owner's (above it again), counting the overlap twice. The real broker and the real
ClickHouse engine; the kill loop (tests/integration/test_kill_loop.py) does the same with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from streams.contract.facts import COUNTERS, Deltas, FactKey
from streams.contract.wire import encode_deltas, encode_fence
from streams.kafka import ensure_topics
from streams.kit.harness import Pipeline
from streams.sink.clickhouse import ClickHouseStore
from streams.sink.writer import DeltaSink

pytestmark = pytest.mark.integration

MINUTE = 1_762_000_020_000


def orders(n: int, campaign: str = "c1") -> Deltas:
    deltas = Deltas()
    row = [0] * len(COUNTERS)
    row[COUNTERS.index("orders")] = n
    row[COUNTERS.index("gmv_fen")] = 100 * n
    deltas.facts[FactKey(campaign, "wechat", "feed", 1, MINUTE)] = row
    return deltas


def delta(to: int, n: int, generation: int) -> bytes:
    return encode_deltas(0, to, orders(n), MINUTE, MINUTE, None, generation)


async def produce(env: Pipeline, values: list[bytes], kind: str = "deltas") -> None:
    settings = env.settings()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(kind), value, partition=0)
    finally:
        await producer.stop()


async def sink_until(env: Pipeline, written_to: int, generation: int) -> dict[str, int]:
    """Run a sink on the store until partition 0 is written up to `written_to` in `generation`."""
    settings = env.settings()
    store = ClickHouseStore(settings.clickhouse_dsn)
    sink = DeltaSink(settings, store)
    task = asyncio.create_task(sink.run())
    try:
        deadline = time.monotonic() + 180  # generous: the schema DDL alone is slow on a loaded machine
        while not (sink.gate.written.get(0) == written_to and sink.gate.generations.get(0) == generation):
            if task.done():
                task.result()
            assert time.monotonic() < deadline, f"the sink did not get to {written_to}: {sink.gate}, {sink.health}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything after it in the log is read too
        health = {"fenced": sink.health.fenced_skipped, "redeliveries": sink.health.redeliveries_skipped}
    finally:
        sink.stop()
        await task
        await store.close()
    return health


def totals(env: Pipeline) -> tuple[int, int, dict[int, int], dict[int, int]]:
    store = ClickHouseStore(env.settings().clickhouse_dsn)
    try:
        (row,) = store.totals()
        return row["orders"], row["gmv_fen"], store.written_markers(), store.written_generations()
    finally:
        store.close_sync()


def test_a_zombie_batch_between_the_fence_and_the_new_owners_output_is_not_counted(env: Pipeline) -> None:
    asyncio.run(ensure_topics(env.settings()))
    # The routed log the deltas cover (a restarted sink checks that the store is this log's).
    asyncio.run(produce(env, [b"{}"] * 31, "routed"))
    asyncio.run(produce(env, [
        encode_fence(0, 1),
        delta(10, 5, 1),  # owner A, routed offsets 0..10: 5 orders
        encode_fence(0, 2),  # A paused past its session; B took the partition and fenced it
        delta(20, 3, 1),  # A wakes up and sends 11..20: 3 orders (a zombie's batch)
        delta(25, 3 + 4, 2),  # B's first output: 11..25, the same 3 orders and 4 more
    ]))  # fmt: skip
    health = asyncio.run(sink_until(env, 25, 2))
    assert health["fenced"] == 1
    assert totals(env) == (12, 1200, {0: 25}, {0: 2})  # 5 + 7, not 5 + 3 + 7

    # A sink that restarts reads the generation back from the store and goes on fencing.
    asyncio.run(produce(env, [delta(30, 9, 1), delta(30, 1, 2)]))
    health = asyncio.run(sink_until(env, 30, 2))
    assert health["fenced"] == 1
    assert totals(env) == (13, 1300, {0: 30}, {0: 2})


def test_the_sink_keeps_one_record_of_what_it_wrote(env: Pipeline) -> None:
    """/health's markers are the sink's gate, not a second copy kept in step beside it."""
    asyncio.run(ensure_topics(env.settings()))
    asyncio.run(produce(env, [b"{}"] * 16, "routed"))
    asyncio.run(produce(env, [encode_fence(0, 1), delta(7, 2, 1), delta(15, 1, 1)]))

    async def run() -> None:
        settings = env.settings()
        store = ClickHouseStore(settings.clickhouse_dsn)
        sink = DeltaSink(settings, store)
        task = asyncio.create_task(sink.run())
        try:
            deadline = time.monotonic() + 180
            while sink.gate.written.get(0) != 15:
                if task.done():
                    task.result()
                assert time.monotonic() < deadline, f"the sink did not get to 15: {sink.gate}, {sink.health}"
                await asyncio.sleep(0.1)
            assert sink.health.markers is sink.gate.written
            assert sink.health.markers == await store.call(store.written_markers) == {0: 15}
        finally:
            sink.stop()
            await task
            await store.close()

    asyncio.run(run())
