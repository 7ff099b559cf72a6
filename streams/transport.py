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

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, cast

import faust
from aiokafka import ConsumerRecord, TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import crashpoints

log = logging.getLogger(__name__)

Records = Sequence[ConsumerRecord[bytes, bytes]]
Batch = list[tuple[TopicPartition, Records]]
BatchHandler = Callable[[Batch, int], Awaitable[None]]


FETCH_MAX_WAIT_MS = 100


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per partition, the next offset not yet handed to a handler in this assignment. Not
        # Faust's `_read_offset`: a seek sets that to the offset to read NEXT, a delivery to the
        # offset just read, and reading it one way or the other skips or repeats a record.
        self._handed: dict[TopicPartition, int] = {}

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._handed.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition], generation_id: int = 0) -> None:
        for tp in assigned:
            self._handed.pop(tp, None)  # an assignment starts from the committed offsets
        await super().on_partitions_assigned(assigned, generation_id)

    async def _drain_messages(self, fetcher: Any) -> None:
        app = cast(PromoApp, self.app)
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        handed = self._handed
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                self.diag.unset_flag(CONSUMER_FETCHING)
                await self.sleep(0)  # a fetch can return at once for a long time: let others run
                if self.should_stop:
                    return
                if not records or not self.flow_active:
                    # Fetched across a rebalance: dropped unacked; the assignment that ends the
                    # rebalance seeks every partition back to its committed offset. (Seeking here,
                    # as Faust's getmany does, waits on the consumer thread that is busy with the
                    # rebalance itself: the worker hung there.)
                    continue
                generation = app.consumer_generation_id
                groups: dict[BatchHandler, Batch] = {}
                for tp, fetched in records.items():
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    start = handed.get(tp)
                    batch: Records = fetched
                    if start is not None and batch and batch[0].offset < start:
                        batch = [r for r in batch if r.offset >= start]  # already handed over
                    if not batch:
                        continue
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
        # was sent: the hooks confirm what they saw before it (streams/fencing.py).
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

    def subscribe(self, topic: faust.TopicT, handler: BatchHandler) -> None:
        """Consume every topic of `topic` (one Faust topic may name several) with `handler`."""
        self.topics.add(topic)
        for name in topic.topics:
            self.batch_handlers[name] = handler

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)
