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
import zlib

from aiokafka import ConsumerRecord, TopicPartition

from streams.agents.base import BatchAgent
from streams.config import Settings
from streams.kafka import last_record, read_range, side_consumer
from streams.pipeline import PartitionOutput, RoutedPartition
from streams.state import Snapshot, UserCache
from streams.transport import Batch, PromoApp
from streams.wire import decode_deltas, encode_deltas

log = logging.getLogger(__name__)


class AggregateAgent(BatchAgent):
    def __init__(self, app: PromoApp, settings: Settings) -> None:
        super().__init__(app, settings)
        self.partitions: dict[int, RoutedPartition] = {}
        self.snapshots: dict[int, Snapshot] = {}
        self.identity: dict[int, int] = {}  # crc32 of each routed partition's first record
        self.state_root = settings.data_dir.resolve() / "state" / settings.app_id
        self.unsaved: set[int] = set()  # routed partitions folded further than their snapshot
        self.saved_at = time.monotonic()
        self.counters = {"messages": 0, "batches": 0, "recoveries": 0, "recovery_s": 0.0, "replayed": 0}

    async def recover(self, partition: int, upto: int) -> RoutedPartition:
        started = time.monotonic()
        routed = TopicPartition(self.settings.topic("routed"), partition)
        async with side_consumer(self.settings.bootstrap) as consumer:
            last = await last_record(consumer, TopicPartition(self.settings.topic("deltas"), partition))
            emitted_to = decode_deltas(last.value).to_offset if last is not None and last.value else -1
            state = RoutedPartition(partition, self.settings, emitted_to=emitted_to)
            first: list[int] = []
            await read_range(consumer, routed, 0, 1, lambda r: first.append(zlib.crc32(r.value or b"")))
            if first:
                self.identity[partition] = first[0]
            start = self._load_snapshot(partition, state)

            def feed(record: ConsumerRecord[bytes, bytes]) -> None:
                if record.value is not None:
                    state.apply(record.offset, record.value, PartitionOutput())
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

    def _load_snapshot(self, partition: int, state: RoutedPartition) -> int:
        """Put `state` on the local snapshot, when it belongs to this log; the offset to replay from.

        Only the bookkeeping is read: users come back from the snapshot one by one as they return."""
        snapshot = self.snapshots.get(partition) or Snapshot.open(self.state_root, partition)
        if snapshot is None:
            return 0  # no snapshot to fall back on: every user of the partition stays in memory
        self.snapshots[partition] = snapshot
        meta = snapshot.meta()
        if meta.next_offset > 0 and meta.log_identity != self.identity.get(partition):
            log.warning("snapshot of routed partition %d is from another log; starting from 0", partition)
            snapshot.clear()
            meta = snapshot.meta()
        state.users = UserCache(snapshot, self.settings.user_cache)
        if meta.next_offset == 0:
            return 0
        state.src_seen, state.next_offset = meta.src_seen, meta.next_offset
        state.hear_watermarks(meta.watermarks)
        return meta.next_offset

    def _save(self, partition: int, state: RoutedPartition) -> None:
        identity = self.identity.get(partition)
        if identity is not None:
            state.users.save(state.next_offset, state.src_seen, identity, state.src_watermark)

    def _save_snapshots(self, touched: set[int]) -> None:
        for partition in touched:
            state = self.partitions.get(partition)
            if state is not None:
                self._save(partition, state)
        touched.clear()

    async def handle(self, batch: Batch, generation: int) -> None:
        outputs: dict[int, PartitionOutput] = {}
        messages = 0
        for tp, records in batch:
            partition = tp.partition
            state = self.partitions.get(partition)
            if state is None:
                state = self.partitions[partition] = await self.recover(partition, records[0].offset)
            out = outputs.get(partition)
            if out is None:
                out = outputs[partition] = PartitionOutput()
            for record in records:
                if record.value is not None:
                    if record.offset == 0:
                        self.identity[partition] = zlib.crc32(record.value)
                    state.apply(record.offset, record.value, out)
            messages += len(records)
        producer = self.app.producer
        pending = []
        deltas_topic, dlq = self.settings.topic("deltas"), self.settings.topic("dlq")
        for partition, out in outputs.items():
            if not out:
                continue
            for dead in out.dead:
                pending.append(await producer.send(dlq, dead.reason.encode(), dead.value, None, None, dead.headers))
            value = encode_deltas(partition, out.to_offset, out.deltas, out.max_event_ts, out.max_ingest_ms)
            pending.append(await producer.send(deltas_topic, None, value, partition, None, None))
        if pending:
            await asyncio.gather(*pending)
        for partition, out in outputs.items():
            if out:
                self.partitions[partition].emitted_to = out.to_offset
        # After the output is acknowledged: a snapshot never runs ahead of what was emitted. Not
        # after every batch: a snapshot only shortens the replay of a recovery, and writing every
        # touched user each batch cost a tenth of the worker's time at full speed.
        self.unsaved.update(outputs)
        if time.monotonic() - self.saved_at >= self.settings.snapshot_interval_s:
            self._save_snapshots(self.unsaved)
            self.saved_at = time.monotonic()
        else:
            # Users changed since the last save are pinned in memory; at a high rate of distinct
            # users, save before the interval rather than let them outgrow the cache.
            for partition in [p for p in self.unsaved if self.partitions[p].users.over_budget]:
                self._save(partition, self.partitions[partition])
                self.unsaved.discard(partition)
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
        routed = self.settings.topic("routed")
        # Every batch's output is acknowledged here (the caller holds `busy`): save before letting go.
        leaving = {tp.partition for tp in revoked if tp.topic == routed}
        self._save_snapshots(leaving & self.unsaved)
        self.unsaved -= leaving
        for tp in revoked:
            if tp.topic == routed:
                self.partitions.pop(tp.partition, None)
                snapshot = self.snapshots.pop(tp.partition, None)
                if snapshot is not None:
                    snapshot.close()  # another worker on this host may open it next
