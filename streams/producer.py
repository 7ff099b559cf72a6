"""Sending to the pipeline: simulated records to the input topics, and existing-buyer imports.

Imports go straight to the routed topic, to the partition that owns each user, because the routed
log is what per-user state is rebuilt from: an import is then applied in the same order on every
replay, whether it came before or after the user's orders.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.config import Settings
from streams.errors import BrokerError
from streams.simulate import Record
from streams.wire import encode_existing, route

IMPORT_CHUNK = 5000


async def _producer(settings: Settings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    try:
        await asyncio.wait_for(producer.start(), 30)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        await producer.stop()
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    return producer


async def send_records(
    settings: Settings,
    records: Sequence[Record],
    *,
    paced: bool = True,
    real_clock: bool = False,
) -> list[Record]:
    """Send records in order; returns them as sent (with the record timestamps actually used).

    paced: honour each record's `send_at_s`; otherwise send as fast as the broker takes them.
    real_clock: stamp each record with the real send time instead of the simulated one.
    """
    producer = await _producer(settings)
    sent: list[Record] = []
    pending = []
    started = time.monotonic()
    try:
        for record in records:
            if paced:
                delay = record.send_at_s - (time.monotonic() - started)
                if delay > 0.002:
                    await asyncio.sleep(delay)
            if real_clock:
                record = replace(record, timestamp_ms=int(time.time() * 1000))
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
    finally:
        await producer.stop()
    return sent


def group_by_partition(user_ids: Iterable[str], partitions: int) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for user_id in user_ids:
        groups[route(user_id, partitions)].append(user_id)
    return groups


async def import_existing(settings: Settings, user_ids: Sequence[str]) -> int:
    """Mark users as existing buyers; returns how many were sent."""
    producer = await _producer(settings)
    topic = settings.topic("routed")
    try:
        pending = []
        for partition, users in sorted(group_by_partition(user_ids, settings.partitions).items()):
            for start in range(0, len(users), IMPORT_CHUNK):
                chunk = users[start : start + IMPORT_CHUNK]
                pending.append(await producer.send(topic, encode_existing(chunk), partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(user_ids)


def read_user_file(text: str) -> list[str]:
    """One user_id a line; blank lines and `#` comments skipped; ids checked like the contract's."""
    users: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        user = line.strip()
        if not user or user.startswith("#"):
            continue
        if len(user) > 64:
            raise ValueError(f"line {number}: a user_id has at most 64 characters")
        users.append(user)
    return users
