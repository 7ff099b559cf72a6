"""The sink: reads the deltas topic and writes it to ClickHouse, exactly once per routed offset.

It runs in every worker when ClickHouse is a server (Kafka spreads the deltas partitions over the
workers) and only in the one process that owns the store when ClickHouse is embedded. Each poll
becomes one INSERT whose marker rows move each routed partition's "written up to" offset; a batch
at or below the marker is a redelivery and is skipped. When a write fails the sink keeps the batch,
stops polling (Kafka holds the backlog, so memory stays bounded), re-reads the markers — the failed
write may in fact have landed — and retries with backoff; offsets are committed only after a write.
Only what can heal is retried (no answer, or a code in `clickhouse.TRANSIENT_CODES`); any other
error stops the sink and the worker with the error and its code, and the batch stays in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams import crashpoints
from streams.config import Settings, dsn_secrets, request_timeout_s, scrub
from streams.contract.topics import Topic
from streams.contract.wire import decode_delta_rows
from streams.errors import SinkError
from streams.kafka import note_first_waiting, side_consumer, true_end_offset
from streams.sink.clickhouse import ClickHouseStore, SinkLogEntry, error_code, is_transient
from streams.sink.markers import DeltaGate, Verdict
from streams.statelog import StateLog

log = logging.getLogger(__name__)
T = TypeVar("T")
# sink_log rows wait about this long to be written (longer while a write is being retried); each
# keeps the time of its own write.
LOG_EVERY_S = 1.0


@dataclass
class SinkHealth:
    """What /health reports about the sink."""

    batches_written: int = 0
    rows_written: int = 0
    redeliveries_skipped: int = 0
    fenced_skipped: int = 0  # batches of a zombie owner (streams/sink/markers.py)
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    # While failing: "unreachable" (no answer: refused, reset, timed out) or "failing" (ClickHouse
    # answered with an error), and since when (epoch seconds). Empty and 0 when writes go through.
    failure_kind: str = ""
    failing_since: float = 0.0
    last_write_at: float = 0.0
    last_write_ms: float = 0.0
    # Routed partition -> routed offset written up to: the sink's DeltaGate.written itself (the
    # same dict, set with the gate), so what /health shows is what the sink judges by.
    markers: dict[int, int] = field(default_factory=dict)
    writing: bool = False  # a write is in flight (chaos tests kill a worker exactly then)

    @property
    def ok(self) -> bool:
        return self.consecutive_failures == 0


class _ForgetOnRebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition's first record is per assignment: forgotten when it moves either way."""

    def __init__(self, first: dict[TopicPartition, tuple[int, float]]) -> None:
        self.first = first

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        for tp in revoked:
            self.first.pop(tp, None)

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        for tp in assigned:
            self.first.pop(tp, None)


class DeltaSink:
    """Consumes `deltas` and writes to ClickHouse; start with `run()`, stop with `stop()`."""

    def __init__(
        self,
        settings: Settings,
        store: ClickHouseStore,
        *,
        max_records: int = 5000,
        backoff_s: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self.settings = settings
        self.store = store
        self.max_records = max_records
        self.backoff_s = backoff_s
        self.health = SinkHealth()
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        # Per deltas partition, the first offset of the batch being written (fetched, not yet in the
        # store): the consumer's position is past it, but the numbers are not (streams/alerts/freshness.py).
        self.writing_from: dict[TopicPartition, int] = {}
        # Per partition, the first record fetched in this assignment: (offset, Kafka timestamp, epoch s),
        # what dates a backlog found waiting (streams/alerts/freshness.py, PositionClock).
        self.first_waiting: dict[TopicPartition, tuple[int, float]] = {}
        self._log_pending: list[SinkLogEntry] = []
        self._log_flushed_at = 0.0
        self.schema_ready = asyncio.Event()
        self.gate = DeltaGate()  # what is written, and which owner may write (streams/sink/markers.py)
        self._set_gate(self.gate)
        self.state_log = StateLog(log, "ClickHouse")

    async def _until_done(self, what: str, fn: Callable[[], T]) -> T:
        """Run a ClickHouse call until it succeeds, with backoff while the failure is transient;
        failures show on /health, and a permanent one stops the sink (and so the worker)."""
        delay = self.backoff_s[0]
        while True:
            try:
                result = await self.store.call(fn)
            except Exception as exc:
                self._failed(exc, what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            self.health.consecutive_failures = 0
            self.health.failure_kind, self.health.failing_since = "", 0.0
            self.state_log.recovered()
            return result

    def _failed(self, exc: Exception, what: str, delay: float) -> None:
        """Count a failure; raise SinkError (stopping the sink, never skipping) when retrying cannot help."""
        self.health.failures += 1
        self.health.consecutive_failures += 1
        text = scrub(str(exc), *dsn_secrets(self.settings.clickhouse_dsn))  # /health and the logs show it
        self.health.last_error = f"{what}: {type(exc).__name__}: {text}"[:500]
        self.health.failure_kind = "failing" if error_code(exc) is not None else "unreachable"
        if not self.health.failing_since:
            self.health.failing_since = time.time()
        if not is_transient(exc):
            code = error_code(exc)
            log.error("ClickHouse %s failed with a permanent error (%s); stopping", what, self.health.last_error)
            raise SinkError(
                f"ClickHouse {what} failed with a permanent error"
                + (f" (code {code})" if code is not None else "")
                + f": {text}",
                code=code,
            ) from exc
        self.state_log.failed(f"{self.health.last_error[:300]} (retrying with backoff, now {delay:.1f} s)")

    async def run(self) -> None:
        topic = self.settings.topic(Topic.DELTAS)
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=f"{self.settings.app_id}-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            fetch_max_wait_ms=100,  # a quiet partition must not hold back a fresh delta (see transport.py)
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            # A join may take up to the session timeout (the group waits for members that were in
            # it): a request timing out first never joins. With aiokafka's 40 s, a session of 45 s
            # or more (Kafka's default since 3.0) left the sink without partitions: no numbers at all.
            request_timeout_ms=int(request_timeout_s(self.settings) * 1000),
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=int(self.settings.rebalance_timeout_s * 1000) + 5_000,
        )
        await self._until_done("schema", self.store.apply_schema)
        self.schema_ready.set()
        markers = await self._until_done("reading markers", self.store.written_markers)
        generations = await self._until_done("reading owner generations", self.store.written_generations)
        self._set_gate(DeltaGate(generations, markers))
        await self._check_same_log(markers)
        consumer.subscribe([topic], listener=_ForgetOnRebalance(self.first_waiting))
        await consumer.start()
        try:
            while not self._stopping.is_set():
                records = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if records:
                    # Fetched, not yet in ClickHouse: how far the sink has got is where this batch starts.
                    self.writing_from = {tp: batch[0].offset for tp, batch in records.items() if batch}
                    for tp, batch in records.items():
                        if batch:
                            note_first_waiting(self.first_waiting, tp, batch[0])
                    try:
                        await self._write(records)
                    finally:
                        self.writing_from = {}
                    await consumer.commit()
                    crashpoints.reached("sink.committed")
                else:
                    await self._flush_log()
        finally:
            self._consumer = None
            try:
                await self._flush_log(force=True)  # first: leaving the group may be cut short
            finally:
                await consumer.stop()

    async def _write(self, records: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        facts: list[list[Any]] = []
        rejections: list[list[Any]] = []
        markers: dict[int, int] = {}
        logged: list[tuple[int, int, int, int, int]] = []  # sink_log fields known before the write
        gate = self.gate.copy()
        for batch in records.values():
            for record in batch:
                delta = decode_delta_rows(record.value)
                verdict = gate.judge(delta.partition, delta.to_offset, delta.generation, delta.fence)
                if verdict is Verdict.REDELIVERY:
                    self.health.redeliveries_skipped += 1
                if verdict is Verdict.FENCED:
                    self.health.fenced_skipped += 1
                    log.warning(
                        "skipped a deltas batch of %s[%d] (routed offsets to %d) from owner generation %d: "
                        "generation %d owns the partition now", record.topic, record.partition, delta.to_offset,
                        delta.generation, gate.generations.get(delta.partition, 0),
                    )  # fmt: skip
                if verdict is not Verdict.WRITE:
                    continue
                facts += delta.facts
                rejections += delta.rejections
                markers[delta.partition] = max(markers.get(delta.partition, -1), delta.to_offset)
                rows = len(delta.facts) + len(delta.rejections)
                logged.append((delta.partition, delta.to_offset, rows, delta.max_event_ts, delta.max_ingest_ms))
        generations = gate.raised_since(self.gate)
        if not markers and not generations:
            return
        await self._insert_with_retry(facts, rejections, markers, generations)
        self._set_gate(gate)
        crashpoints.reached("sink.written")
        # Now, not `last_write_at`: a write found landed after a failure does not set that.
        elapsed_ms, written_at_ms = self.health.last_write_ms, int(time.time() * 1000)
        self._log_pending += [(written_at_ms, *fields, elapsed_ms) for fields in logged]
        await self._flush_log()

    async def _flush_log(self, *, force: bool = False) -> None:
        """Write the pending sink_log rows, at most every `LOG_EVERY_S` unless `force`.

        Each row carries the time of its own write. An INSERT of its own after every write cost
        two thirds as much as the write of the numbers (3.7% of the worker at 50% load)."""
        if not self._log_pending or (not force and time.monotonic() - self._log_flushed_at < LOG_EVERY_S):
            return
        entries, self._log_pending = self._log_pending, []
        self._log_flushed_at = time.monotonic()
        try:
            await self.store.call(self.store.log_write, entries)
        except Exception as exc:  # telemetry only: never let it block the numbers
            log.warning("could not write sink_log: %s", exc)

    async def _insert_with_retry(
        self,
        facts: list[list[Any]],
        rejections: list[list[Any]],
        markers: dict[int, int],
        generations: dict[int, int],
    ) -> None:
        delay = self.backoff_s[0]
        while True:
            started = time.monotonic()
            self.health.writing = True
            try:
                rows = await self.store.call(self.store.insert_wire_rows, facts, rejections, markers, generations)
            except Exception as exc:
                self.health.writing = False
                self._failed(exc, "write", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_s[1])
                if await self._landed_anyway(markers, generations):
                    return
                continue
            self.health.writing = False
            self.health.last_write_ms = (time.monotonic() - started) * 1000
            self.health.batches_written += 1
            self.health.rows_written += rows
            self.health.consecutive_failures = 0
            self.health.last_write_at = time.time()
            return

    async def _landed_anyway(self, markers: dict[int, int], generations: dict[int, int]) -> bool:
        """After a failure: did the write land (a timeout after the server committed it)?"""
        try:
            written = await self.store.call(self.store.written_markers)
            fenced = await self.store.call(self.store.written_generations) if generations else {}
        except Exception:  # still down; the caller keeps retrying
            return False
        if all(written.get(p, -1) >= to for p, to in markers.items()) and all(
            fenced.get(p, 0) >= g for p, g in generations.items()
        ):
            self.health.consecutive_failures = 0
            return True
        return False

    def _set_gate(self, gate: DeltaGate) -> None:
        # One record of what is written: the gate's. /health shows its dict; between a write landing
        # and this call nothing awaits, so /health never sees the two apart.
        self.gate = gate
        self.health.markers = gate.written

    async def _check_same_log(self, markers: dict[int, int]) -> None:
        """Refuse a store written from another broker log (an in-memory broker restarted, say).

        Its markers would be ahead of this log, and every new batch would be skipped as a redelivery.
        """
        if not markers:
            return
        routed = self.settings.topic(Topic.ROUTED)
        async with side_consumer(self.settings.bootstrap) as consumer:
            for partition, written_to in sorted(markers.items()):
                end = await true_end_offset(consumer, TopicPartition(routed, partition))
                if end <= written_to:
                    raise SinkError(
                        f"the ClickHouse store holds {routed}[{partition}] up to offset {written_to} but the "
                        f"broker's log ends at {end}: it was written from another broker log. Use a new "
                        "store (or a new topic prefix), or restore the broker's data.",
                        partition=partition,
                    )

    def stop(self) -> None:
        self._stopping.set()
