"""Stage 2's snapshot policy (streams/aggregate/snapshots.py): pure, the clock given."""

from __future__ import annotations

from streams.aggregate.snapshots import SnapshotPolicy, ahead_of_output, log_identity
from streams.sink.markers import DeltaGate


def test_every_interval_all_folded_partitions_in_between_only_the_over_budget() -> None:
    policy = SnapshotPolicy(interval_s=2.0, saved_at=0.0)
    policy.folded([0, 1, 2])
    assert policy.to_save(1.0, over_budget=lambda p: p == 1) == [1]  # before the interval: the cache is full
    assert policy.to_save(1.5, over_budget=lambda p: False) == []
    policy.folded([3])
    assert policy.to_save(2.0, over_budget=lambda p: False) == [0, 2, 3]  # the interval is up
    assert policy.unsaved == set() and policy.saved_at == 2.0
    assert policy.to_save(3.0, over_budget=lambda p: True) == []  # nothing folded since


def test_revoked_partitions_are_saved_once_before_they_go() -> None:
    policy = SnapshotPolicy(interval_s=2.0)
    policy.folded([0, 1, 2])
    assert policy.leaving(p for p in [1, 2, 5]) == [1, 2]
    assert policy.unsaved == {0}
    assert policy.leaving([1]) == []


def test_a_snapshot_is_tied_to_its_log_only_when_something_was_folded() -> None:
    first, last = (0, 1_000, 7), (41, 2_000, 9)
    assert log_identity(None, last, None) is None and log_identity(first, None, None) is None
    assert log_identity(first, last, None) == {"first": first, "last": last}
    assert log_identity(first, last, [12, 3, 40]) == {"first": first, "last": last, "deltas": [12, 3, 40]}


def test_a_zombies_snapshot_is_ahead_of_the_accepted_output_and_a_live_owners_is_not() -> None:
    """CI's loss of 2026-12-05, replayed through the sink's own rule (DeltaGate), no I/O: owner 1
    wrote routed offsets up to 10; owner 2 fenced the partition; owner 1, resumed, sent 11..30 (the
    broker took it, the sink will skip it) and saved its snapshot at 31. Owner 2 replays the deltas
    log up to its own fence: accepted up to 10, so the snapshot at 31 must not be resumed from."""
    gate = DeltaGate()
    gate.judge(3, -1, 1, True)  # owner 1's fence
    gate.judge(3, 10, 1, False)  # owner 1 writes 0..10
    gate.judge(3, -1, 2, True)  # owner 2's fence: its recovery reads the log up to here
    accepted = gate.written.get(3, -1)
    assert accepted == 10
    assert ahead_of_output(31, accepted)  # the zombie's snapshot: rebuilt from the log instead
    assert not ahead_of_output(11, accepted)  # owner 1's snapshot after its written batch: fine
    assert not ahead_of_output(0, -1)  # no snapshot
