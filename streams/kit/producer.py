"""Sending simulated records to the input topics: as fast as the broker takes them, or paced."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from streams.config import Settings
from streams.errors import BrokerError
from streams.kit.simulate import Record
from streams.users import _producer

# How long a send may wait for the broker before the stream fails: a broker paused for a minute or two
# (the outage tests) is waited out; with aiokafka's 30 s the simulator died on a 35 s pause, its truth
# unwritten (an outside probe). A request that times out is sent again, and a copy the broker had
# taken would be a duplicate the pipeline rejects: so the wait is longer than any pause tested.
SEND_TIMEOUT_S = 300.0
REBASE_MEMORY = 400_000  # recent events remembered for retries; the simulator retries within a minute


class Rebaser:
    """Moves a record's event times onto the real clock at the moment it is sent.

    A retry is an exact copy and must stay one: an event sent again gets the shift of its first
    sending, or which copy counts would depend on arrival order. Remembered per event (`event_id`
    and `ts`), not per message: a client retrying one event of a batch a collector sent re-sends
    that element alone, whose bytes are not the batch's; shifted afresh, compressed time put it up
    to a minute before the original, and after a worker restart the copy read first took the
    participant's, buyer's or new user's credit to its own channel (an outside probe, 2026-12-06)."""

    def __init__(self) -> None:
        # An OrderedDict, not a dict: `del d[next(iter(d))]` on a plain dict walks the deleted
        # slots at its front each time, 32 µs a record at 200,000 remembered (the sender's
        # largest cost); popitem(last=False) is O(1).
        self.memory: OrderedDict[tuple[str, int], int] = OrderedDict()

    def __call__(self, record: Record, now_ms: int) -> bytes:
        try:
            doc = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return record.value
        elements = doc if isinstance(doc, list) else [doc]
        moved = False
        for element in elements:
            if isinstance(element, dict) and type(element.get("ts")) is int:
                event_id = element.get("event_id")
                key = (event_id if isinstance(event_id, str) else repr(event_id), element["ts"])
                shift = self.memory.get(key)
                if shift is None:
                    shift = self.memory[key] = now_ms - record.timestamp_ms
                    if len(self.memory) > REBASE_MEMORY:
                        self.memory.popitem(last=False)
                element["ts"] += shift
                moved = True
        return orjson.dumps(doc) if moved else record.value


async def send_records(
    settings: Settings,
    records: Sequence[Record],
    *,
    paced: bool = True,
    real_clock: bool = False,
) -> list[Record]:
    """Send records in order; returns them as sent (with the record timestamps actually used).

    paced: honour each record's `send_at_s`; otherwise send as fast as the broker takes them.
    real_clock: stamp each record with the real send time, and shift the `ts` of its events by as
        much, so that event times run on the real clock while the traffic keeps the simulator's
        (compressed) shape; lateness, future and freshness then mean what they mean live.
    """
    producer = await _producer(settings, SEND_TIMEOUT_S)
    sent: list[Record] = []
    pending = []
    rebase = Rebaser()
    started = time.monotonic()
    try:
        for record in records:
            if paced:
                delay = record.send_at_s - (time.monotonic() - started)
                if delay > 0.002:
                    await asyncio.sleep(delay)
            if real_clock:
                now_ms = int(time.time() * 1000)
                record = replace(record, timestamp_ms=now_ms, value=rebase(record, now_ms))
            topic = settings.topic(record.kind)
            pending.append(
                await producer.send(
                    topic, record.value, key=record.key, partition=record.partition, timestamp_ms=record.timestamp_ms
                )
            )
            sent.append(record)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    except KafkaError as exc:
        # One line, as every other failure of a command: which records the broker may not have
        said = f"{type(exc).__name__} after {len(sent)} of {len(records)} records were sent"
        raise BrokerError(f"the broker at {settings.broker} did not take the stream ({said}): no ground truth") from exc
    finally:
        await producer.stop()
    return sent


@dataclass
class Progress:
    """How far a `send_paced` has got, for whoever watches it."""

    records: int = 0  # handed to the producer so far


async def send_paced(
    settings: Settings, records: Sequence[Record], tick_s: float = 0.005, progress: Progress | None = None
) -> int:
    """Send records at their `send_at_s` on the real clock (as `send_records(paced=True,
    real_clock=True)`), as one produce batch per topic partition every `tick_s`; returns how many.

    For a steady load that the sender must not fall behind: a `send` per record costs tens of µs
    of Python, and at 17,500 records/s that sender, sharing two cores with the broker and the
    worker, kept up only 9,500. Order within a partition is the record order, as with `send`."""
    producer = await _producer(settings, SEND_TIMEOUT_S)
    rebase = Rebaser()
    topics = {kind: settings.topic(kind) for kind in {r.kind for r in records}}
    pending: list[asyncio.Future[Any]] = []
    started, i, n = time.monotonic(), 0, len(records)

    async def send(batch: BatchBuilder, where: tuple[str, int]) -> asyncio.Future[Any]:
        batch.close()  # complete: no linger
        future: asyncio.Future[Any] = await producer.send_batch(batch, topics[where[0]], partition=where[1])
        return future

    try:
        while i < n:
            due = time.monotonic() - started
            now_ms = int(time.time() * 1000)
            batches: dict[tuple[str, int], BatchBuilder] = {}
            while i < n and records[i].send_at_s <= due:
                record = records[i]
                value = rebase(record, now_ms)
                where = (record.kind, record.partition)
                batch = batches.get(where)
                if batch is None or batch.append(key=record.key, value=value, timestamp=now_ms) is None:
                    if batch is not None:  # full: send it, and start the next with this record
                        pending.append(await send(batch, where))
                    batch = batches[where] = producer.create_batch()
                    batch.append(key=record.key, value=value, timestamp=now_ms)
                i += 1
            for where, batch in batches.items():
                pending.append(await send(batch, where))
            if progress is not None:
                progress.records = i
            for future in [f for f in pending if f.done()]:
                future.result()  # a failed send fails the sender (the rest are gathered below)
            pending = [f for f in pending if not f.done()]
            if i < n:
                await asyncio.sleep(max(tick_s, records[i].send_at_s - (time.monotonic() - started)))
        await asyncio.gather(*pending)
    finally:
        for future in pending:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: one failure is reported, not one per batch
        await producer.stop()
    return n
