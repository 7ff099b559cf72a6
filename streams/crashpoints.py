"""Named step boundaries where the kill loop of `promo chaos` can crash a worker on purpose.

`PROMO_CRASH_AT=NAME:N` makes the process SIGKILL itself the N-th time it reaches the boundary
NAME (N defaults to 1): no goodbye, no flush, no commit, exactly as an outside `kill -9` at that
instant. Unset (always, in production) every `reached()` is one dictionary miss. The names, in the
order an event passes them (docs/RELIABILITY.md has the invariant each one tests):

- `ingest.sent`       stage 1's routed messages and dead letters acknowledged, offsets not yet acked
- `aggregate.folded`  stage 2 folded a batch into its state, nothing sent yet
- `aggregate.sent`    stage 2's deltas acknowledged, the snapshot not yet saved
- `aggregate.saved`   a stage-2 snapshot written
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
    """Counts arrivals at the armed boundary and kills the process at the chosen one."""

    def __init__(self, spec: str = "") -> None:
        parsed = parse(spec)
        self.armed: dict[str, int] = {} if parsed is None else {parsed[0]: parsed[1]}

    def reached(self, name: str) -> None:
        left = self.armed.get(name)
        if left is None:
            return
        if left > 1:
            self.armed[name] = left - 1
            return
        os.kill(os.getpid(), signal.SIGKILL)


# One per process, armed from the environment of the process (the kill loop sets it on a restart).
_points = CrashPoints(os.environ.get("PROMO_CRASH_AT", ""))


def reached(name: str) -> None:
    """A step boundary: kills this process here when PROMO_CRASH_AT names it (see module docstring)."""
    _points.reached(name)
