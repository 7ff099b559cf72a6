"""Stage 2's snapshot policy: when a routed partition's state is saved, and what ties it to its log.

Pure (the clock and the states are given): the aggregate agent asks this module which partitions
to save after a batch and what identity to store, and does the I/O. The rules:

- A snapshot is saved only after the batch's output is acknowledged, so it never runs ahead of what
  was emitted (docs/RELIABILITY.md, invariant 2); the agent calls `to_save` only then.
- Not after every batch: a snapshot only shortens a recovery's replay, and writing every touched user
  each batch cost a tenth of the worker's time at full speed. Every `interval_s`, the partitions
  folded since the last save; in between, only those whose unsaved users outgrow the cache.
- A snapshot is tied to its log by the partition's first record and the last record folded into it
  (offset, timestamp, crc: `state.log_mark`); with the deltas checkpoint an offset commit confirmed,
  recovery can start the sink's rule from there instead of the log's start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.aggregate.state import LogMark


@dataclass
class SnapshotPolicy:
    interval_s: float
    saved_at: float = 0.0
    unsaved: set[int] = field(default_factory=set)  # routed partitions folded further than their snapshot

    def folded(self, partitions: Iterable[int]) -> None:
        """These partitions' output was just acknowledged: their state is ahead of their snapshot."""
        self.unsaved.update(partitions)

    def to_save(self, now: float, over_budget: Callable[[int], bool]) -> list[int]:
        """The partitions to save now (and count as saved): all unsaved ones once the interval is up,
        else only those whose unsaved users outgrow the user cache."""
        if now - self.saved_at >= self.interval_s:
            self.saved_at = now
            due = sorted(self.unsaved)
        else:
            due = sorted(p for p in self.unsaved if over_budget(p))
        self.unsaved.difference_update(due)
        return due

    def leaving(self, partitions: Iterable[int]) -> list[int]:
        """Partitions being revoked: the unsaved ones are saved before they go."""
        leaving = set(partitions)
        going = sorted(self.unsaved & leaving)
        self.unsaved -= leaving
        return going


def log_identity(first: LogMark | None, last: LogMark | None, checkpoint: list[Any] | None) -> dict[str, Any] | None:
    """What ties a snapshot to its routed log, or None when nothing was folded to tie it to."""
    if first is None or last is None:
        return None
    identity: dict[str, Any] = {"first": first, "last": last}
    if checkpoint is not None:
        identity["deltas"] = checkpoint
    return identity


def ahead_of_output(snapshot_next_offset: int, accepted_to: int) -> bool:
    """Invariant 2 checked (docs/RELIABILITY.md): a snapshot that folded routed offsets past the
    output the sink accepted (`accepted_to`, the sink's rule replayed to this owner's fence) cannot
    be resumed from: the credits it holds for those offsets are in no written delta (a zombie saved
    it after its fenced batch). Every folded batch sends a deltas message, so a live owner's
    snapshot never fails this."""
    return snapshot_next_offset - 1 > accepted_to
