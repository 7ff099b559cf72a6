"""Faust's consumer, handing whole fetched batches to the processing code instead of one message at a time.

Faust delivers each fetched record through its Conductor, a Channel queue and a Stream: about three
event-loop turns and four task creations per message, which caps a process at roughly 14,000
messages/s whatever the agent does (docs/PERFORMANCE.md has the profile). This module keeps everything
else of Faust — the app, its consumer group membership, partition assignment and the rebalance
signals, the consumer thread and fetcher, offset tracking and periodic commits, the producer and the
web server — and replaces only the drain loop: every record the fetcher returns goes, as one list per
topic partition, to the batch handler registered for its topic. When the handler returns (its output
acknowledged by the broker) the batch's offsets are marked acked in Faust's own bookkeeping, so Faust
commits them on its usual schedule and on revocation, exactly as it would for a Stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, cast

import faust
from aiokafka import ConsumerRecord, TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import crashpoints
from streams.kafka import note_first_waiting, read_range, side_consumer

log = logging.getLogger(__name__)

STOP_FLUSH_S = 10.0  # how long a stopping worker waits for the broker to take what it still holds
STOP_DEADLINE_S = 60.0  # after this, a stopping `promo worker` exits as it is (see PromoApp.on_stop)

Records = Sequence[ConsumerRecord[bytes, bytes]]
Batch = list[tuple[TopicPartition, Records]]
BatchHandler = Callable[[Batch, int], Awaitable[None]]


FETCH_MAX_WAIT_MS = 100
# A partition still to be checked that got no batch for this long and this many fetches is read back
# to its high watermark (BatchConsumer._swept).
SWEEP_S = 5.0
SWEEP_ROUNDS = 5
# A sweep reads back at most this many offsets at once (a fetch's worth: a partition starved while
# far behind must not be read whole into memory); the rest in later sweeps or batches, the partition
# staying checked until the gap is closed. (A batch's own gap is at most the fetch it was dropped from.)
READ_BACK_MAX = 10_000


def fetch_answers(consumer: Any) -> dict[TopicPartition, float | None]:
    """An aiokafka consumer's assigned partitions, each with the time its last fetch answered (epoch s)."""
    out: dict[TopicPartition, float | None] = {}
    for tp in consumer.assignment():
        with contextlib.suppress(Exception):  # revoked since `assignment()`
            ms = consumer.last_poll_timestamp(tp)
            out[tp] = ms / 1000 if ms is not None else None
    return out


class FreshConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a short fetch long-poll.

    Faust fixes `fetch_max_wait_ms` at 1500. A broker that answers a fetch only when the wait runs
    out (measured on the embedded tansu) then adds up to 1.5 s per hop whenever a partition is
    quiet; the pipeline has two consumer hops before the sink.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """The aiokafka consumer of Faust, with a batch drain loop."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return FreshConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def answered_at(self) -> dict[TopicPartition, float | None]:
        """Per assigned partition, when a fetch last answered for it (epoch s; None: not yet): its
        high watermark is as of then (streams/alerts/freshness.py)."""
        return fetch_answers(self._thread._ensure_consumer())

    def verify_event_path(self, now: float, tp: Any) -> None:
        """Faust's livelock check watches its Stream's inbound time, which this batch transport
        bypasses: after `stream_processing_timeout` (5 min) under steady traffic it logged "Stream has
        not started processing" at ERROR for every partition, every few seconds, while all was well.
        Each stage's progress is judged by the stall watch instead (streams/worker/stall.py)."""
        return None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition, the next offset not yet handed to a handler in this assignment. Not
        # Faust's `_read_offset`: a seek sets that to the offset to read NEXT, a delivery to the
        # offset just read, and reading it one way or the other skips or repeats a record.
        self._handed: dict[TopicPartition, int] = {}
        # Partitions whose next batch may not continue where the last handed one ended: every
        # partition of a new assignment, and any whose fetched records were dropped unacked. The
        # fetcher's position has then moved past records that were never handed over (the drain
        # loop drops records fetched across a rebalance on purpose, and relies on the seek that ends
        # the rebalance to fetch them again); if that seek does not come, handing the next batch on
        # would skip them, and stage 2 would take them for replays when a later owner reads them
        # (docs/RELIABILITY.md, "a rebalance inside a live worker"). So the next batch of such a
        # partition is checked against the committed offset (or the last handed one), and records
        # missing in between are read back with a side consumer.
        self._check: dict[TopicPartition, float] = {}  # partition -> since when (monotonic)
        self._quiet: dict[TopicPartition, int] = {}  # partition to check -> fetches without a batch of it
        self._recheck: set[TopicPartition] = set()  # a gap only partly read back: stays checked
        self._committed_at_assignment: dict[TopicPartition, int] = {}
        # Per partition, the first record handed in this assignment: (offset, Kafka timestamp, epoch s),
        # what dates a backlog found waiting (streams/alerts/freshness.py, PositionClock).
        self.first_waiting: dict[TopicPartition, tuple[int, float]] = {}
        self.gaps_filled = 0  # batches that began past where handing had to go on
        self.gap_records = 0  # records read back into them

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._handed.pop(tp, None)
            self.first_waiting.pop(tp, None)
            self._check.pop(tp, None)
            self._recheck.discard(tp)
            self._committed_at_assignment.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition], generation_id: int = 0) -> None:
        now = time.monotonic()
        for tp in assigned:
            self._handed.pop(tp, None)  # an assignment starts from the committed offsets
            self.first_waiting.pop(tp, None)
            self._committed_at_assignment.pop(tp, None)
            self._check[tp] = now
            self._recheck.discard(tp)
        await super().on_partitions_assigned(assigned, generation_id)

    async def _next_offset(self, tp: TopicPartition) -> int:
        """Where the next handed batch of `tp` must start: after the last handed one, or, first in an
        assignment, at the offset the group has committed (asked of the coordinator, once)."""
        handed = self._handed.get(tp)
        if handed is not None:
            return handed
        start = self._committed_at_assignment.get(tp)
        if start is None:
            thread = self._thread
            committed = await thread.call_thread(thread._ensure_consumer().committed, tp)
            start = self._committed_at_assignment[tp] = committed if committed is not None and committed > 0 else 0
        return start

    async def _read_back(self, tp: TopicPartition, start: int, stop: int, why: str) -> Records:
        """Records start <= offset < stop of `tp`, read with a side consumer (a gap the log really has,
        from compaction or transaction markers, reads back as nothing)."""
        missing: list[ConsumerRecord[bytes, bytes]] = []
        async with side_consumer(cast(PromoApp, self.app).bootstrap) as consumer:
            await read_range(consumer, TopicPartition(tp.topic, tp.partition), start, stop, missing.append)
        log.warning("%s[%d]: %s; read %d skipped records back (offsets %d..%d)",
                    tp.topic, tp.partition, why, len(missing), start, stop - 1)  # fmt: skip
        self.gaps_filled += 1
        self.gap_records += len(missing)
        return missing

    async def _continued(self, tp: TopicPartition, fetched: Records) -> Records:
        """`fetched`, cut or extended so that it continues exactly where handing must go on."""
        if tp in self._check:
            start = await self._next_offset(tp)
            if fetched[0].offset > start:
                why = f"a batch began at {fetched[0].offset}, past {start}, where handing goes on"
                return [*(await self._read_back(tp, start, fetched[0].offset, why)), *fetched]
        else:
            start = self._handed.get(tp, 0)
        if fetched[0].offset < start:
            return [r for r in fetched if r.offset >= start]  # already handed over
        return fetched

    async def _swept(
        self, active: set[TopicPartition] | None, fetched: dict[TopicPartition, Records]
    ) -> dict[TopicPartition, Records]:
        """Partitions still to be checked that have had no batch for SWEEP_S and SWEEP_ROUNDS fetches
        while the fetcher's high watermark is past where handing goes on: the records in between.

        The fetcher returns nothing for a partition whose position reached the high watermark, so
        records it skipped would otherwise wait for the partition's next record. Reading back
        records the fetcher was about to deliver does no harm: they are cut as already handed."""
        now = time.monotonic()
        found: dict[TopicPartition, Records] = {}
        for tp, since in list(self._check.items()):
            if active is not None and tp not in active:
                continue
            if fetched.get(tp):
                self._quiet.pop(tp, None)
                continue
            quiet = self._quiet[tp] = self._quiet.get(tp, 0) + 1
            if now - since < SWEEP_S or quiet < SWEEP_ROUNDS:  # a busy loop is no sign of a gap
                continue
            self._check[tp], self._quiet[tp] = now, 0
            highwater = self.highwater(tp)
            start = await self._next_offset(tp)
            if highwater is not None and highwater > start:
                why = f"no batch for {SWEEP_S:.0f} s while the high watermark is {highwater}"
                stop = min(highwater, start + READ_BACK_MAX)
                records = await self._read_back(tp, start, stop, why)
                if not records and stop < highwater:  # a hole in the log (compaction): read to the end
                    stop = highwater
                    records = await self._read_back(tp, start, stop, why)
                if records:
                    found[tp] = records
                    if stop < highwater:
                        self._recheck.add(tp)  # more to read back: checked again once this is handed
        return found

    async def _drain_messages(self, fetcher: Any) -> None:
        app = cast(PromoApp, self.app)
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        handed = self._handed
        # A lab fault (streams/lab/crash.py), installed before the worker starts; None in production.
        drop_fetched = crashpoints.drop_fetched()
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                self.diag.unset_flag(CONSUMER_FETCHING)
                await self.sleep(0)  # a fetch can return at once for a long time: let others run
                if self.should_stop:
                    return
                if not self.flow_active:
                    # Fetched across a rebalance: dropped unacked; the assignment that ends the
                    # rebalance seeks every partition back to its committed offset, and every
                    # assigned partition is checked (`_check`). (Seeking here, as Faust's getmany
                    # does, waits on the consumer thread that is busy with the rebalance itself:
                    # the worker hung there.)
                    continue
                generation = app.consumer_generation_id
                batches: dict[TopicPartition, Records] = dict(records or {})
                if self._check:
                    batches = {**(await self._swept(active, batches)), **batches}
                if not batches:
                    continue
                groups: dict[BatchHandler, Batch] = {}
                for tp, fetched in batches.items():
                    if not fetched:
                        continue
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        if tp in self._handed:
                            self._check[tp] = time.monotonic()  # dropped past the fetcher's position
                        continue
                    if drop_fetched is not None and drop_fetched(tp, tp in handed, generation):
                        self._check[tp] = time.monotonic()  # dropped past the fetcher's position
                        continue
                    batch = await self._continued(tp, fetched)
                    if not batch:
                        continue
                    if tp not in handed:
                        note_first_waiting(self.first_waiting, tp, batch[0])
                    handler = app.batch_handlers.get(tp.topic)
                    if handler is None:
                        log.warning("no batch handler for %s; %d records left unacked", tp.topic, len(batch))
                        continue
                    groups.setdefault(handler, []).append((tp, batch))
                for handler, batch_group in groups.items():
                    await handler(batch_group, generation)
                    if app.consumer_generation_id != generation:
                        break  # the handler dropped it as stale; Faust re-reads from the committed offsets
                    for tp, batch in batch_group:
                        self._ack_through(tp, batch[0].offset, batch[-1].offset)
                        handed[tp] = batch[-1].offset + 1
                        if tp in self._recheck:  # a gap read back in part: check the next batch too
                            self._recheck.discard(tp)
                            self._check[tp] = time.monotonic()
                        elif self._check.pop(tp, None) is not None:
                            self._quiet.pop(tp, None)
                        app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        # Faust commits from here on its timer, on revocation and when the drain loop asks. A commit
        # the group coordinator accepts proves this worker was a member of its generation when it
        # was sent: the hooks confirm what they saw before it (streams/sink/markers.py).
        confirm = [hook() for hook in cast(PromoApp, self.app).commit_hooks]
        crashpoints.reached("commit.before")
        done: bool = await super().commit(*args, **kwargs)
        if done:
            for then in confirm:
                then()
            crashpoints.reached("commit.after")
        return done

    def _ack_through(self, tp: TopicPartition, first: int, last: int) -> None:
        """Mark offsets first..last acked, as `Consumer.ack` does message by message."""
        committed = self._committed_offset[tp]
        start = first if committed is None else max(first, committed)
        expected = self._handed.get(tp)
        if expected is not None and expected < start and (committed is None or expected >= committed):
            start = expected  # offsets the broker skipped (compaction, transaction markers)
        if start > last:
            return
        self._acked[tp].extend(range(start, last + 1))
        self._n_acked += last + 1 - start


class BatchTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[Any]] = BatchConsumer


class PromoApp(faust.App):
    """A Faust app whose consumer hands whole batches to `batch_handlers[topic]`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handlers: dict[str, BatchHandler] = {}
        # Called before each offset commit; what each returns is called if the commit succeeds.
        self.commit_hooks: list[Callable[[], Callable[[], None]]] = []
        # Set by `promo worker` (a process of its own): a stop that takes longer exits the process.
        self.stop_deadline_s: float | None = None
        self._stop_watchdog: threading.Timer | None = None

    async def on_stop(self) -> None:
        """A stop that hangs is ended: with the broker gone, aiokafka's producer and consumer wait for
        it forever while stopping (an outside probe: a worker 40 s after its broker stopped ignored
        SIGTERM and Ctrl-C until SIGKILL). After `stop_deadline_s` the process exits with one line and
        status 1: like a kill, it loses nothing (offsets are committed only past output the broker
        took, the store's writes are idempotent), and the next start reads on from the last commit."""
        if self.stop_deadline_s is not None and self._stop_watchdog is None:
            deadline = self.stop_deadline_s

            def stuck() -> None:
                sys.stderr.write(f"promo: error: the worker did not stop within {deadline:.0f} s (the broker or "
                                 "ClickHouse does not answer): it exits without the rest of its stop; nothing "
                                 "committed is lost, and the next start reads on from the last commit\n")  # fmt: skip
                sys.stderr.flush()
                os._exit(1)

            self._stop_watchdog = threading.Timer(deadline, stuck)
            self._stop_watchdog.daemon = True
            self._stop_watchdog.start()
        await super().on_stop()

    @property
    def bootstrap(self) -> str:
        """host:port list of the brokers, for the side consumers that read a range back."""
        return ",".join(f"{url.host}:{url.port}" for url in self.conf.broker)

    def subscribe(self, topic: faust.TopicT, handler: BatchHandler) -> None:
        """Consume every topic of `topic` (one Faust topic may name several) with `handler`."""
        self.topics.add(topic)
        for name in topic.topics:
            self.batch_handlers[name] = handler

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    async def _producer_flush(self, logger: Any) -> None:
        """Stopping, Faust waits for every message the producer holds. With the broker gone that is
        forever: a SIGTERM or Ctrl-C left the worker running until SIGKILL (an outside probe: 40 s
        after the broker stopped, still up). Bounded: a batch's offsets are acked only once the broker
        took its output (docs/DESIGN.md), so what is dropped here was never committed, and the next
        start reads it again, as after a kill."""
        try:
            await asyncio.wait_for(super()._producer_flush(logger), STOP_FLUSH_S)
        except TimeoutError:
            log.warning("stopping: the broker took no message for %.0f s; the unsent ones are dropped (their "
                        "input was not committed: the next start reads it again)", STOP_FLUSH_S)  # fmt: skip
