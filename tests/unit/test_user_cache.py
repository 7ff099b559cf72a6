"""The bounded user cache: stage 2 with most users on disk gives exactly the numbers of stage 2 with all in memory.

Real RocksDB snapshots in a temporary directory (local files, no broker). The log is the
simulator's: out-of-order and late events, duplicates, orders, and imports of existing buyers
both before and after their orders, so evicted users come back with every kind of history.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.aggregate.fold import PartitionOutput, RoutedPartition
from streams.aggregate.state import Snapshot, UserCache
from streams.config import Settings
from streams.contract.facts import Deltas
from streams.contract.wire import encode_existing
from streams.ingest.stage import Ingest, IngestOutput
from streams.kit.simulate import SimConfig, generate
from tests.helpers import rejected_by_reason


def routed_log(seed: int, events: int = 4000, per_message: int = 40) -> tuple[Settings, list[bytes]]:
    """Routed messages of one partition, cut into small stage-1 batches, imports in the middle."""
    settings = Settings(partitions=1)
    sim = generate(SimConfig(events=events, seed=seed, partitions=1, users=events // 4))
    ingest = Ingest(settings.stages)
    messages: list[bytes] = []
    offsets: dict[str, int] = {}
    for start in range(0, len(sim.records), per_message):
        out = IngestOutput(generation=1)
        for record in sim.records[start : start + per_message]:
            offset = offsets.get(record.kind, 0)
            offsets[record.kind] = offset + 1
            ingest.process(settings.topic(record.kind), 0, offset, record.timestamp_ms, record.value, out)
        messages += [value for _, value in out.messages()]
        if start == per_message * 20:
            messages.append(encode_existing(list(sim.existing_buyers)))
    return settings, messages


def fold(partition: RoutedPartition, messages: list[bytes], save: bool) -> tuple[Deltas, int]:
    """All deltas, and the most users held in memory right after a save."""
    total, most = Deltas(), 0
    for offset, value in enumerate(messages):
        out = PartitionOutput()
        partition.apply(offset, value, out)
        total.merge(out.deltas)
        if save:
            partition.users.save(partition.next_offset, partition.src_seen, 7, partition.src_watermark)
            most = max(most, len(partition.users))
    return total, most


@pytest.mark.parametrize(("seed", "capacity"), [(1, 10), (2, 50), (3, 1)])
def test_most_users_on_disk_give_the_same_numbers_as_all_in_memory(tmp_path: Path, seed: int, capacity: int) -> None:
    settings, messages = routed_log(seed)
    everything = RoutedPartition(0, settings.stages)
    expected, _ = fold(everything, messages, save=False)

    snapshot = Snapshot.open(tmp_path, 0)
    assert snapshot is not None
    bounded = RoutedPartition(0, settings.stages)
    bounded.users = UserCache(snapshot, capacity)
    got, most = fold(bounded, messages, save=True)
    assert got.totals() == expected.totals()
    assert rejected_by_reason(got) == rejected_by_reason(expected)
    assert most <= capacity < len(everything.users)
    assert bounded.users.loaded > 0 and bounded.users.evicted > 0  # users did leave and come back
    assert snapshot.users() == everything.users.memory
    snapshot.close()


def test_a_crash_between_saves_loses_only_what_a_replay_from_the_snapshot_redoes(tmp_path: Path) -> None:
    """Dirty users are pinned in memory and never reach the snapshot outside a save: after a crash
    the snapshot is the exact state at its offset, and replaying from there restores the rest."""
    settings, messages = routed_log(4)
    expected, _ = fold(RoutedPartition(0, settings.stages), messages, save=False)

    snapshot = Snapshot.open(tmp_path, 0)
    assert snapshot is not None
    first = RoutedPartition(0, settings.stages)
    first.users = UserCache(snapshot, 20)
    half = len(messages) // 2
    before, _ = fold(first, messages[:half], save=True)
    out = PartitionOutput()
    first.apply(half, messages[half], out)  # folded, emitted, then the worker dies before the next save
    before.merge(out.deltas)
    snapshot.close()

    reopened = Snapshot.open(tmp_path, 0)
    assert reopened is not None
    meta = reopened.meta()
    assert meta.next_offset == half
    second = RoutedPartition(0, settings.stages, emitted_to=half)
    second.users = UserCache(reopened, 20)
    second.src_seen, second.next_offset = meta.src_seen, meta.next_offset
    second.hear_watermarks(meta.watermarks)
    for offset in range(meta.next_offset, len(messages)):
        step = PartitionOutput()
        second.apply(offset, messages[offset], step)
        before.merge(step.deltas)
        second.users.save(second.next_offset, second.src_seen, 7, second.src_watermark)
    assert before.totals() == expected.totals()
    reopened.close()


def test_without_a_snapshot_every_user_stays_in_memory() -> None:
    cache = UserCache(None, capacity=1)
    for user in ("a", "b", "c"):
        cache.take(user)
    cache.save(3, {}, 7, {})
    assert len(cache) == 3 and cache.capacity == 0


def test_a_save_keeps_the_users_it_just_wrote_and_drops_the_oldest(tmp_path: Path) -> None:
    snapshot = Snapshot.open(tmp_path, 0)
    assert snapshot is not None
    cache = UserCache(snapshot, capacity=2)
    cache.take("a").max_ts = 1
    cache.take("b").max_ts = 1
    cache.save(1, {}, 7, {})
    cache.take("c")
    cache.save(1, {}, 7, {})
    assert list(cache.memory) == ["b", "c"]
    cache.take("a")  # read back from the snapshot
    assert cache.loaded == 1
    cache.save(2, {}, 7, {})
    assert list(cache.memory) == ["c", "a"]
    snapshot.close()
