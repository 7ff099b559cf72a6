"""Stage 2's snapshot policy (streams/aggregate/snapshots.py): pure, the clock given."""

from __future__ import annotations

from streams.aggregate.snapshots import SnapshotPolicy, log_identity


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
