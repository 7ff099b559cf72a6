"""Kafka plumbing outside Faust: topic creation, side reads of a partition, local port checks.

Measured quirk of the embedded tansu build: ListOffsets(latest) answers with the base offset of the
last record batch plus one, not the true end, while a fetch's high-watermark is right. So nothing
here trusts `end_offsets`; `true_end_offset` asks a fetch instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.config import Settings
from streams.contract.topics import INPUTS, Topic
from streams.errors import BrokerError
from streams.statelog import StateLog

# Explicit configs on every topic: some clients (quixstreams) fail on a topic without retention.ms.
EVENT_TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}
LOG_TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}
HEARTBEAT_TOPIC_CONFIG = {"retention.ms": str(3600 * 1000), "cleanup.policy": "delete"}
# A side read that gets no fetch answered for this long gives up with BrokerError (never "empty").
STALL_S = 120.0
INPUT_SUFFIXES = INPUTS


def note_first_waiting(first: dict[TopicPartition, tuple[int, float]], tp: TopicPartition, record: Any) -> None:
    """Keep the first record of an assignment's first batch, by offset and Kafka timestamp (epoch s),
    if it carries one (a producer may send none: -1) and none is kept for `tp` yet: what dates a
    backlog a stage found waiting (streams/alerts/freshness.py, PositionClock)."""
    stamp = getattr(record, "timestamp", None)
    if tp not in first and isinstance(stamp, int) and stamp > 0:
        first[tp] = (record.offset, stamp / 1000)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the pipeline reads or writes, with explicit configs."""
    n = settings.partitions
    specs = [TopicSpec(settings.topic(s), n, EVENT_TOPIC_CONFIG) for s in INPUT_SUFFIXES]
    specs.append(TopicSpec(settings.topic(Topic.DLQ), n, EVENT_TOPIC_CONFIG))
    # The routed log (events and imported existing buyers) is what the per-user state is rebuilt
    # from, and deltas tell what was already emitted: both are kept without a time limit.
    specs.append(TopicSpec(settings.topic(Topic.ROUTED), n, LOG_TOPIC_CONFIG))
    specs.append(TopicSpec(settings.topic(Topic.DELTAS), n, LOG_TOPIC_CONFIG))
    # Campaign names and schedules: small, read whole by the sink at every start; one partition
    # keeps the imports in order (the newest wins).
    specs.append(TopicSpec(settings.topic(Topic.CAMPAIGNS), 1, LOG_TOPIC_CONFIG))
    # Every worker's freshness, a record a second: only the last minutes matter to anyone.
    specs.append(TopicSpec(settings.topic(Topic.HEARTBEATS), 1, HEARTBEAT_TOPIC_CONFIG))
    return specs


async def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in topic_specs(settings) if s.name not in existing]
        if wanted:
            new = [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in wanted]
            # Another worker may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            created = [s.name for s in wanted]
        await _check_partitions(admin, settings)
    finally:
        await admin.close()
    return created


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    routed = settings.topic(Topic.ROUTED)
    described = await admin.describe_topics([routed, settings.topic(Topic.DELTAS)])
    for topic in described:
        have = len(topic["partitions"])
        if have != settings.partitions:
            raise BrokerError(
                f"topic {topic['topic']} has {have} partitions but PROMO_PARTITIONS is "
                f"{settings.partitions}; they must match (the routing is by partition count)"
            )


# -- side reads ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def side_consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer for reading one partition on the side (recovery, tails)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14: stopping a consumer that never fetched re-raises the cancellation of
            # its own internal task. Only a cancellation aimed at us may pass.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


async def follow_partition(
    bootstrap: str,
    tp: TopicPartition,
    handle: Callable[[list[ConsumerRecord]], Awaitable[None]],
    failing: StateLog,
    *,
    back: int | None = None,
    poll_ms: int = 1000,
    retry_s: float = 5.0,
) -> None:
    """Read one partition for ever: from its beginning (`back` None) or `back` records before its end,
    then as it grows, handing each fetch's records to `handle` (an empty fetch too). Trouble (the
    broker away, `handle` failing) is said once through `failing` and retried from the start."""
    while True:
        try:
            async with side_consumer(bootstrap) as consumer:
                consumer.assign([tp])
                if back is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    await consumer.seek_to_end(tp)
                    consumer.seek(tp, max(await consumer.position(tp) - back, 0))
                while True:
                    batch = await consumer.getmany(tp, timeout_ms=poll_ms)
                    await handle(batch.get(tp, []))
                    failing.recovered()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failing.failed(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(retry_s)


async def true_end_offset(consumer: AIOKafkaConsumer, tp: TopicPartition, *, stall_s: float = STALL_S) -> int:
    """The offset after the last record, from a fetch's high-watermark (see module docstring)."""
    consumer.assign([tp])
    reported = (await consumer.end_offsets([tp]))[tp]
    if reported == 0:
        return 0
    consumer.seek(tp, reported - 1)
    return max(int(reported), await _answered_highwater(consumer, tp, stall_s))


async def _answered_highwater(consumer: AIOKafkaConsumer, tp: TopicPartition, stall_s: float) -> int:
    """The high watermark of the first fetch answered for `tp` since it was assigned. Until then it
    is unknown, not 0: a loaded host or a slow broker can take longer than one poll to answer."""
    deadline = time.monotonic() + stall_s
    while (high := consumer.highwater(tp)) is None:
        if time.monotonic() > deadline:
            raise BrokerError(f"no fetch of {tp.topic}[{tp.partition}] answered in {stall_s:.0f} s")
        await consumer.getmany(tp, timeout_ms=1000, max_records=1)
    return int(high)


async def read_range(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int,
    stop: int,
    on_record: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None] | None],
    *,
    stall_s: float = STALL_S,
) -> int:
    """Feed records with start <= offset < stop to `on_record`, in order; returns the count.

    Stops short of `stop` only where the log does: when a fetch answered with a high watermark at
    or below the position, or when `start` is past the log's end (the consumer, reset to its
    earliest offset, brings records below `start`; a start below the log's first offset reads from
    there). An empty poll is not the end: before the first answer the high watermark is
    unknown, and taking that for an empty log once made a recovery under load read nothing of a
    deltas log and emit a batch a second time. Raises BrokerError after `stall_s` without a record."""
    if stop <= start:
        return 0
    consumer.assign([tp])
    consumer.seek(tp, start)
    seen = 0
    progressed_at = time.monotonic()
    while True:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
        records = batch.get(tp, [])
        if not records:
            high = consumer.highwater(tp)
            if high is not None and high <= await consumer.position(tp):
                return seen  # the partition ends before `stop`
            if time.monotonic() - progressed_at > stall_s:
                raise BrokerError(f"no record of {tp.topic}[{tp.partition}] read in {stall_s:.0f} s "
                                  f"(at offset {start + seen}, reading to {stop}; high watermark {high})")  # fmt: skip
            continue
        for record in records:
            if record.offset < start + seen:
                return seen  # reset to the earliest offset: `start` is past the end of the log
            if record.offset >= stop:
                return seen
            result = on_record(record)
            if result is not None:
                await result
            seen += 1
            if record.offset == stop - 1:
                return seen
        progressed_at = time.monotonic()  # after the records: a slow `on_record` is no stalled broker


async def record_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes] | None:
    """The record at `offset`, or None when the partition has none there."""
    found: list[ConsumerRecord[bytes, bytes]] = []
    await read_range(consumer, tp, offset, offset + 1, found.append)
    return found[0] if found else None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False
