"""`send_paced`, the bench's steady sender, against the real broker: all records, in order, on the real clock."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition

from streams.kafka import ensure_topics, read_range, side_consumer
from streams.kit.harness import Pipeline
from streams.kit.producer import Progress, send_paced
from streams.kit.simulate import SimConfig, generate

pytestmark = pytest.mark.integration


def event_ids(value: bytes) -> list[object] | bytes:
    """A value's event ids in order; the bytes themselves when unparsable (they go as they are)."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    return [e.get("event_id") if isinstance(e, dict) else e for e in (doc if isinstance(doc, list) else [doc])]


def test_paced_records_arrive_complete_in_order_and_spread_over_their_schedule(env: Pipeline) -> None:
    settings = env.settings()
    sim = generate(SimConfig(events=3_000, seed=5, partitions=env.partitions, batch_rate=0.2))
    span_s = 1.5
    step = span_s / len(sim.records)
    records = [replace(r, send_at_s=i * step) for i, r in enumerate(sim.records)]

    async def go() -> dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]]:
        await ensure_topics(settings)
        started_ms = time.time() * 1000
        progress = Progress()
        assert await send_paced(settings, records, progress=progress) == len(records)
        assert progress.records == len(records)
        got: dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]] = {}
        async with side_consumer(settings.bootstrap) as consumer:
            for kind, partition in {(r.kind, r.partition) for r in records}:
                out = got[(kind, partition)] = []
                want = sum(1 for r in records if (r.kind, r.partition) == (kind, partition))
                await read_range(consumer, TopicPartition(settings.topic(kind), partition), 0, want, out.append)
        for rows in got.values():
            assert all(r.timestamp >= started_ms - 1 for r in rows)  # stamped on the real clock
        return got

    got = asyncio.run(go())
    for (kind, partition), rows in got.items():
        sent = [r for r in records if (r.kind, r.partition) == (kind, partition)]
        assert len(rows) == len(sent)
        # Same events in the same order; only their ts moved, all by the shift of their sending.
        for row, rec in zip(rows, sent, strict=True):
            assert event_ids(row.value or b"") == event_ids(rec.value)
        assert [r.timestamp for r in rows] == sorted(r.timestamp for r in rows)
    stamps = sorted(r.timestamp for rows in got.values() for r in rows)
    # Paced, not all at once: the records went out over (about) their schedule, never ahead of it.
    assert stamps[-1] - stamps[0] >= span_s * 1000 * 0.9
