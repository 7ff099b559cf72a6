"""Stage-2 agent: routed topic → exact per-user state → deltas topic (and duplicate dead letters).

A routed partition this worker has not seen since a (re)assignment is rebuilt before use: the last
deltas record of the same partition tells up to which routed offset output was already emitted,
then the routed partition is replayed from 0 with output muted. Outputs are sent and acked by the
broker before the batch is acked, so a crash at any point repeats work but never loses or doubles it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams import crashpoints
from streams.aggregate.fold import PartitionOutput, RoutedPartition
from streams.aggregate.snapshots import SnapshotPolicy, ahead_of_output, log_identity
from streams.aggregate.state import LogMark, Snapshot, UserCache, log_mark, snapshot_mismatch
from streams.config import Settings
from streams.contract.topics import Topic
from streams.contract.wire import decode_delta_rows, encode_deltas, encode_fence
from streams.kafka import read_range, record_at, side_consumer
from streams.sink.markers import Checkpoint, DeltaGate, StaleOwnerError
from streams.worker.agents.base import BatchAgent
from streams.worker.transport import Batch, PromoApp

log = logging.getLogger(__name__)


class AggregateAgent(BatchAgent):
    def __init__(self, app: PromoApp, settings: Settings) -> None:
        super().__init__(app, settings)
        self.partitions: dict[int, RoutedPartition] = {}
        self.snapshots: dict[int, Snapshot] = {}
        # What ties a snapshot to its routed log (docs/DESIGN.md): the partition's first record,
        # and the last record folded in before the save, each as (offset, timestamp, crc32).
        self.first_mark: dict[int, LogMark] = {}
        self.last_folded: dict[int, ConsumerRecord[bytes, bytes]] = {}
        self.state_root = settings.data_dir.resolve() / "state" / settings.app_id
        self.snapshot_policy = SnapshotPolicy(settings.snapshot_interval_s, saved_at=time.monotonic())
        self.counters = {"messages": 0, "batches": 0, "recoveries": 0, "recovery_s": 0.0, "replayed": 0}
        # Per routed partition, the deltas-log checkpoint after this owner's last acknowledged deltas
        # message, and the newest one an offset commit has since confirmed (streams/sink/markers.py).
        self.delta_pending: dict[int, Checkpoint] = {}
        self.delta_confirmed: dict[int, Checkpoint] = {}
        app.commit_hooks.append(self._before_commit)

    def _before_commit(self) -> Callable[[], None]:
        generation = self.app.consumer_generation_id
        ready = {p: c for p, c in self.delta_pending.items() if c.generation == generation}
        return lambda: self.delta_confirmed.update(ready)

    async def recover(self, partition: int, upto: int, generation: int) -> RoutedPartition:
        started = time.monotonic()
        routed = TopicPartition(self.settings.topic(Topic.ROUTED), partition)
        deltas = TopicPartition(self.settings.topic(Topic.DELTAS), partition)
        # The fence first: from here on the sink skips anything an older owner still sends.
        fence = await (await self.app.producer.send(deltas.topic, None, encode_fence(partition, generation),
                                                    partition, None, None))  # fmt: skip
        crashpoints.reached("aggregate.fenced")
        async with side_consumer(self.settings.bootstrap) as consumer:
            state = RoutedPartition(partition, self.settings.stages)
            first = await self._read_mark(consumer, routed, 0)
            if first is not None:
                self.first_mark[partition] = first
            start = await self._load_snapshot(consumer, routed, state)
            gate = await self._emitted(consumer, deltas, fence.offset, generation)
            written = gate.written.get(partition, -1)
            if ahead_of_output(start, written):
                # Invariant 2 (docs/RELIABILITY.md) checked, not assumed: this snapshot folded offsets
                # whose output the sink did not take (a zombie saved it after its fenced batch).
                # Its users hold credits no written delta carries: rebuild from the log instead.
                log.warning(
                    "discarding the state snapshot of %s[%d] at offset %d: ahead of the output the sink "
                    "accepted (up to %d); rebuilding the partition from its log", routed.topic, partition,
                    start, written,
                )  # fmt: skip
                snapshot = self.snapshots[partition]
                snapshot.clear()
                state = RoutedPartition(partition, self.settings.stages)
                start = state.resume(UserCache(snapshot, self.settings.user_cache), None)
            state.emitted_to = written
            self.delta_pending[partition] = gate.checkpoint(partition, fence.offset)
            emitted_to = state.emitted_to

            def feed(record: ConsumerRecord[bytes, bytes]) -> None:
                if record.value is not None:
                    state.apply(record.offset, record.value, PartitionOutput())
                    self.last_folded[partition] = record
                    if state.users.over_budget:
                        # Everything below `upto` had its output emitted before: a save here
                        # cannot run ahead of it, and it keeps a long replay within the cache.
                        self._save(partition, state)

            seen = await read_range(consumer, routed, start, upto, feed)
        self.counters["replayed"] += seen
        elapsed = time.monotonic() - started
        self.counters["recoveries"] += 1
        self.counters["recovery_s"] += elapsed
        log.info(
            "rebuilt routed partition %d: snapshot at %d, replayed %d messages in %.2fs (emitted up to %d, %d users)",
            partition, start, seen, elapsed, emitted_to, len(state.users),
        )  # fmt: skip  # users in memory; the rest are read back from the snapshot when they return
        return state

    async def _emitted(
        self, consumer: AIOKafkaConsumer, deltas: TopicPartition, fence: int, generation: int
    ) -> DeltaGate:
        """The sink's rule replayed over the deltas log up to this owner's fence: what was written.

        From the checkpoint the snapshot keeps when the log still holds it, else from the start."""
        partition = deltas.partition
        gate, start = DeltaGate(), 0
        snapshot = self.snapshots.get(partition)
        stored = snapshot.meta().log_identity if snapshot is not None else None
        checkpoint = Checkpoint.from_list(stored.get("deltas")) if isinstance(stored, dict) else None
        if checkpoint is not None and checkpoint.offset < fence:
            there = await record_at(consumer, deltas, checkpoint.offset)
            if there is not None and decode_delta_rows(there.value or b"").generation == checkpoint.generation:
                gate, start = DeltaGate.starting_at(partition, checkpoint), checkpoint.offset + 1

        def judge(record: ConsumerRecord[bytes, bytes]) -> None:
            if record.value is not None:
                delta = decode_delta_rows(record.value)
                gate.judge(partition, delta.to_offset, delta.generation, delta.fence)

        await read_range(consumer, deltas, start, fence + 1, judge)
        newest = gate.generations.get(partition, 0)
        if newest > generation:
            raise StaleOwnerError(
                f"{deltas.topic}[{partition}] is fenced by owner generation {newest}, newer than this worker's "
                f"{generation}: the partition has moved on; restarting to rejoin the group"
            )
        return gate

    @staticmethod
    async def _read_mark(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> LogMark | None:
        record = await record_at(consumer, tp, offset)
        return None if record is None else log_mark(record)

    async def _load_snapshot(self, consumer: AIOKafkaConsumer, routed: TopicPartition, state: RoutedPartition) -> int:
        """Put `state` on the local snapshot, when it belongs to this log; the offset to replay from.

        Only the bookkeeping is read: users come back from the snapshot one by one as they return.
        A snapshot is this log's when the log holds, at the same offsets, the same first record and
        the same last folded record (value and timestamp) as when it was saved; else it goes."""
        partition = state.partition
        snapshot = self.snapshots.get(partition) or Snapshot.open(self.state_root, partition)
        if snapshot is None:
            return 0  # no snapshot to fall back on: every user of the partition stays in memory
        self.snapshots[partition] = snapshot
        meta = snapshot.meta()
        if meta.next_offset > 0:
            now = {
                "first": self.first_mark.get(partition),
                "last": await self._read_mark(consumer, routed, meta.next_offset - 1),
            }
            stored = meta.log_identity if isinstance(meta.log_identity, dict) else {}
            why = snapshot_mismatch(stored, now)
            if why is not None:
                log.warning(
                    "discarding the state snapshot of %s[%d] at offset %d (%s): it was not taken from this "
                    "log; rebuilding the partition from its log", routed.topic, partition, meta.next_offset, why,
                )  # fmt: skip
                snapshot.clear()
                meta = snapshot.meta()
        return state.resume(UserCache(snapshot, self.settings.user_cache), meta)

    def _save(self, partition: int, state: RoutedPartition) -> None:
        last = self.last_folded.get(partition)
        if last is None or last.offset != state.next_offset - 1:
            return  # nothing folded since (re)assignment to tie the snapshot to: the last save stands
        checkpoint = self.delta_confirmed.get(partition)
        identity = log_identity(self.first_mark.get(partition), log_mark(last),
                                checkpoint.to_list() if checkpoint is not None else None)  # fmt: skip
        if identity is None:
            return
        state.users.save(state.next_offset, state.src_seen, identity, state.src_watermark)
        crashpoints.reached("aggregate.saved")

    async def handle(self, batch: Batch, generation: int) -> None:
        outputs: dict[int, PartitionOutput] = {}
        messages = 0
        for tp, records in batch:
            partition = tp.partition
            state = self.partitions.get(partition)
            if state is None:
                state = self.partitions[partition] = await self.recover(partition, records[0].offset, generation)
                crashpoints.reached("aggregate.recovered")
            out = outputs.get(partition)
            if out is None:
                out = outputs[partition] = PartitionOutput()
            for record in records:
                if record.value is not None:
                    state.apply(record.offset, record.value, out)
            if records[0].offset == 0:
                self.first_mark[partition] = log_mark(records[0])
            if records[-1].offset + 1 == state.next_offset:
                self.last_folded[partition] = records[-1]
            messages += len(records)
        crashpoints.reached("aggregate.folded")
        producer = self.app.producer
        pending = []
        sent: dict[int, int] = {}  # routed partition -> index of its deltas message in `pending`
        deltas_topic = self.settings.topic(Topic.DELTAS)
        for partition, out in outputs.items():
            if out.to_offset < 0:
                continue  # all muted (already emitted before a restart)
            # Sent even when empty: what the sink accepts must reach every folded offset, so that a
            # recovery can tell a snapshot ahead of the accepted output (a zombie's) from one that is not.
            pending += await self.send_dead(out.dead)
            value = encode_deltas(partition, out.to_offset, out.deltas, out.max_event_ts, out.max_ingest_ms,
                                  out.audit, generation)  # fmt: skip
            sent[partition] = len(pending)
            pending.append(await producer.send(deltas_topic, None, value, partition, None, None))
        acked = await asyncio.gather(*pending) if pending else []
        for partition, index in sent.items():
            to_offset = outputs[partition].to_offset
            self.partitions[partition].emitted_to = to_offset
            self.delta_pending[partition] = Checkpoint(acked[index].offset, generation, to_offset)
        crashpoints.reached("aggregate.sent")
        # After the output is acknowledged: a snapshot never runs ahead of what was emitted
        # (streams/aggregate/snapshots.py says which partitions are due).
        self.snapshot_policy.folded(outputs)
        for partition in self.snapshot_policy.to_save(time.monotonic(), lambda p: self.partitions[p].users.over_budget):
            self._save(partition, self.partitions[partition])
        self.counters["messages"] += messages
        self.counters["batches"] += 1

    def user_counts(self) -> dict[str, int]:
        """Users of this worker's routed partitions: in memory, read back from a snapshot, evicted."""
        caches = [state.users for state in self.partitions.values()]
        return {
            "in_memory": sum(len(c) for c in caches),
            "read_back": sum(c.loaded for c in caches),
            "evicted": sum(c.evicted for c in caches),
        }

    def forget(self, revoked: set[TopicPartition]) -> None:
        routed = self.settings.topic(Topic.ROUTED)
        # Every batch's output is acknowledged here (the caller holds `busy`): save before letting go.
        for partition in self.snapshot_policy.leaving(tp.partition for tp in revoked if tp.topic == routed):
            state = self.partitions.get(partition)
            if state is not None:
                self._save(partition, state)
        for tp in revoked:
            if tp.topic == routed:
                self.partitions.pop(tp.partition, None)
                self.last_folded.pop(tp.partition, None)
                self.delta_pending.pop(tp.partition, None)
                self.delta_confirmed.pop(tp.partition, None)
                snapshot = self.snapshots.pop(tp.partition, None)
                if snapshot is not None:
                    snapshot.close()  # another worker on this host may open it next
