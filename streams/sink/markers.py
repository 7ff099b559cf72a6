"""Who may write a routed partition's deltas: the owner's generation, and the rule the sink applies.

A stage-2 owner takes a routed partition in a consumer-group generation. Before it reads what was
already emitted, it writes a *fence* to the partition's deltas log: a deltas message with no rows
carrying its generation. Every deltas message it sends afterwards carries the same generation. The
sink keeps, per routed partition, the newest generation seen (stored in ClickHouse with the offset
markers, in the same INSERT) and skips any message from an older one. A worker paused past its
session (SIGSTOP, a long GC) that wakes up and sends for a partition that moved is therefore a
zombie whose batches land after the new owner's fence and are skipped, whatever they cover.

The new owner finds what was emitted by replaying the same rule over the deltas log up to its own
fence (`DeltaGate`), from a checkpoint its snapshot keeps. A checkpoint is only kept once an offset
commit in the owner's generation has succeeded after it: the group coordinator refuses commits from
a member it has evicted, so a confirmed checkpoint cannot lie past a newer owner's fence.

Generations are the group coordinator's (monotonic per group in Kafka and in tansu). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    WRITE = "write"  # new output: write it and move the marker
    REDELIVERY = "redelivery"  # at or below the marker: written before
    FENCED = "fenced"  # from an owner older than the partition's newest: a zombie's
    FENCE = "fence"  # a new owner's fence: nothing to write but its generation


class StaleOwnerError(Exception):
    """This worker's generation is older than one already fenced on the partition: it is a zombie."""


@dataclass(frozen=True)
class Checkpoint:
    """The rule's state for one routed partition just after deltas offset `offset`."""

    offset: int
    generation: int
    written: int  # the routed offset written up to (-1: none)

    def to_list(self) -> list[int]:
        return [self.offset, self.generation, self.written]

    @classmethod
    def from_list(cls, value: object) -> Checkpoint | None:
        if isinstance(value, list) and len(value) == 3 and all(isinstance(x, int) for x in value):
            return cls(*value)
        return None


@dataclass
class DeltaGate:
    """Per routed partition: the newest owner generation and the routed offset written up to."""

    generations: dict[int, int] = field(default_factory=dict)
    written: dict[int, int] = field(default_factory=dict)

    @classmethod
    def starting_at(cls, partition: int, checkpoint: Checkpoint) -> DeltaGate:
        return cls({partition: checkpoint.generation}, {partition: checkpoint.written})

    def copy(self) -> DeltaGate:
        return DeltaGate(dict(self.generations), dict(self.written))

    def judge(self, partition: int, to_offset: int, generation: int, fence: bool) -> Verdict:
        """The verdict on the next deltas message of `partition`, in log order; updates the state."""
        newest = self.generations.get(partition, 0)
        if generation < newest:
            return Verdict.FENCED
        self.generations[partition] = generation
        if fence:
            return Verdict.FENCE
        if to_offset <= self.written.get(partition, -1):
            return Verdict.REDELIVERY
        self.written[partition] = to_offset
        return Verdict.WRITE

    def checkpoint(self, partition: int, offset: int) -> Checkpoint:
        return Checkpoint(offset, self.generations.get(partition, 0), self.written.get(partition, -1))

    def raised_since(self, before: DeltaGate) -> dict[int, int]:
        """The partitions whose newest generation rose since `before`, with the new generation."""
        return {p: g for p, g in self.generations.items() if g > before.generations.get(p, 0)}
