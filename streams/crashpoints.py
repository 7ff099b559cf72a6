"""Named step boundaries where the kill loop of `promo chaos` can crash a worker on purpose.

`PROMO_CRASH_AT=NAME:N` makes the process SIGKILL itself the N-th time it reaches the boundary
NAME (N defaults to 1): no goodbye, no flush, no commit, exactly as an outside `kill -9` at that
instant. `PROMO_PAUSE_AT=NAME:N` freezes it there with SIGSTOP instead (the zombie test resumes it).
Unset (always, in production) every `reached()` is two dictionary misses. The names, in the
order an event passes them (docs/RELIABILITY.md has the invariant each one tests):

- `ingest.sent`       stage 1's routed messages and dead letters acknowledged, offsets not yet acked
- `aggregate.folded`  stage 2 folded a batch into its state, nothing sent yet
- `aggregate.sent`    stage 2's deltas acknowledged, the snapshot not yet saved
- `aggregate.saved`   a stage-2 snapshot written
- `aggregate.fenced`   a new owner's fence acknowledged on the deltas log, nothing read yet
- `aggregate.recovered` a routed partition rebuilt (snapshot plus replay), before its first batch
- `commit.before`     the consumer is about to commit offsets
- `commit.after`      offsets committed
- `sink.written`      the ClickHouse insert landed, the sink's offsets not yet committed
- `sink.committed`    the sink's offsets committed
"""

from __future__ import annotations

import os
import signal

NAMES = (
    "ingest.sent",
    "aggregate.folded",
    "aggregate.sent",
    "aggregate.saved",
    "aggregate.fenced",
    "aggregate.recovered",
    "commit.before",
    "commit.after",
    "sink.written",
    "sink.committed",
)


def parse(spec: str) -> tuple[str, int] | None:
    """`NAME[:N]` -> (NAME, N); None for an empty spec. A bad spec is a ValueError saying why."""
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in NAMES:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(NAMES)}")
    n = int(count) if count else 1
    if n < 1:
        raise ValueError(f"crash point count must be >= 1, got {n}")
    return name, n


class CrashPoints:
    """Counts arrivals at the armed boundary and signals the process at the chosen one: SIGKILL, or
    SIGSTOP for `PROMO_PAUSE_AT` (a worker frozen mid-step, as a zombie is, until a test sends SIGCONT)."""

    def __init__(self, spec: str = "", sig: signal.Signals = signal.SIGKILL) -> None:
        parsed = parse(spec)
        self.armed: dict[str, int] = {} if parsed is None else {parsed[0]: parsed[1]}
        self.sig = sig

    def reached(self, name: str) -> None:
        left = self.armed.get(name)
        if left is None:
            return
        if left > 1:
            self.armed[name] = left - 1
            return
        del self.armed[name]  # once: a paused process that is resumed goes on
        os.kill(os.getpid(), self.sig)


# One per process, armed from the environment of the process (the kill loop sets it on a restart).
_points = CrashPoints(os.environ.get("PROMO_CRASH_AT", ""))
_pauses = CrashPoints(os.environ.get("PROMO_PAUSE_AT", ""), signal.SIGSTOP)


# `PROMO_DROP_FIRST_FETCH=1`: the consumer drops, unacked, the first fetched batch of every
# partition in every assignment, after the fetcher's position has moved past it, as it drops records
# fetched across a rebalance. A consumer that then hands the next batch on loses the dropped records.
DROP_FIRST_FETCH = os.environ.get("PROMO_DROP_FIRST_FETCH", "") == "1"


def reached(name: str) -> None:
    """A step boundary: kills (PROMO_CRASH_AT) or freezes (PROMO_PAUSE_AT) this process here when
    the variable names it (see module docstring)."""
    _points.reached(name)
    _pauses.reached(name)
