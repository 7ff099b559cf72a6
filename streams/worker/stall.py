"""Stalled stages: input waiting and nothing processed for `stall_after_s`, told apart from a quiet stream.

A stage (ingest, aggregate, the sink) that hangs on one batch shows nothing on /health by itself:
its counters just stop, as they do when no events come. What tells the two apart is the lag, per
partition the broker's high-watermark minus the next offset the stage will process: a quiet stream
has none, a stalled stage has some and does not move. The worker samples every stage about once a
second and feeds `StallWatch.observe` with the lags it knows (None where it does not: a partition
never fetched) and a count that grows whenever the stage finishes work (batches handled, say). The
stage is stalled once input has waited `after_s` with that count unchanged; it clears as soon as
the count moves again or nothing waits any more. `observe` returns a `Change` only when the state
flips, so the worker logs each stall once when it starts and once when it ends.

Pure: no Kafka, no Faust, no clock of its own (the caller passes `now`), so the rules are tested
on tables (tests/unit/test_stall.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Stall(Generic[K]):
    """A stage with input waiting and nothing processed since `since`."""

    stage: str
    since: float  # when input began to wait with nothing processed (the caller's clock)
    lags: Mapping[K, int]  # the partitions with input waiting, as last seen

    @property
    def lag(self) -> int:
        return sum(self.lags.values())


@dataclass(frozen=True)
class Change(Generic[K]):
    """A stage started (`stalled`) or stopped being stalled; `stall` is the one that began or ended."""

    stage: str
    stalled: bool
    stall: Stall[K]
    at: float
    progressed: bool = False  # on a clear: the stage processed again (else: nothing waits any more)

    @property
    def duration_s(self) -> float:
        return self.at - self.stall.since


@dataclass
class _Stage(Generic[K]):
    processed: int | None = None
    waiting_since: float | None = None
    lags: dict[K, int | None] = field(default_factory=dict)
    stall: Stall[K] | None = None


class StallWatch(Generic[K]):
    """Per stage: is input waiting, and has anything been processed in the last `after_s` seconds?"""

    def __init__(self, after_s: float) -> None:
        if after_s <= 0:
            raise ValueError(f"after_s must be positive, got {after_s}")
        self.after_s = after_s
        self._stages: dict[str, _Stage[K]] = {}

    def observe(self, stage: str, lags: Mapping[K, int | None], processed: int, now: float) -> Change[K] | None:
        """One sample of a stage: its lag per partition (None: unknown) and its work count so far.

        Returns the change when the stage became stalled or stopped being stalled, else None.
        """
        st = self._stages.setdefault(stage, _Stage())
        waiting = {k: lag for k, lag in lags.items() if lag is not None and lag > 0}
        progressed = st.processed is not None and processed != st.processed
        st.processed = processed
        st.lags = dict(lags)
        if not waiting:
            st.waiting_since = None  # a quiet stream (or caught up): nothing to be late with
        elif progressed or st.waiting_since is None:
            st.waiting_since = now  # the clock starts when input waits, and again on every progress
        stalled = st.waiting_since is not None and now - st.waiting_since >= self.after_s
        if stalled:
            assert st.waiting_since is not None
            began = st.stall is None
            st.stall = Stall(stage, st.waiting_since, waiting)
            return Change(stage, True, st.stall, now) if began else None
        if st.stall is not None:
            ended, st.stall = st.stall, None
            return Change(stage, False, ended, now, progressed=progressed)
        return None

    def stalled(self) -> list[Stall[K]]:
        """The stages stalled as of their last sample."""
        return [st.stall for st in self._stages.values() if st.stall is not None]

    def lag(self, stage: str) -> int | None:
        """A stage's total known lag as last sampled; None when no partition's lag was known."""
        st = self._stages.get(stage)
        if st is None:
            return None
        known = [lag for lag in st.lags.values() if lag is not None]
        return sum(known) if known else None

    def stages(self) -> list[str]:
        return list(self._stages)
