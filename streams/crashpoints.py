"""Named step boundaries where the lab may act on a worker: the hook points, and nothing more.

The product only says where it is (`reached(NAME)`) and asks whether to drop a fetched batch
(`drop_fetched`). What happens there is the lab's (streams/lab/crash.py: SIGKILL for the kill loop of
`promo chaos`, SIGSTOP for its zombie, a dropped first fetch for the rebalance-gap test), installed
from outside by `promo worker` when its environment asks for it; the product reads no environment
for this. With nothing installed (always, in production) `reached()` is one dictionary miss and
`drop_fetched()` is None. The names, in the order an event passes them (docs/RELIABILITY.md has the
invariant each one tests):

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

from collections.abc import Callable
from typing import Any

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

Hook = Callable[[], None]
# Given a fetched topic partition, whether this assignment has handed it a batch yet, and the consumer
# generation: True drops the batch unacked, after the fetcher's position has moved past it (as a
# rebalance drops records); the consumer then checks the partition's next batch for the gap.
DropFetched = Callable[[Any, bool, int], bool]


# What the lab installed; one set per process (a worker is one process). Mutated only by install()
# before the worker starts, and by tests.
_at: dict[str, Hook] = {}
_drop: list[DropFetched] = []  # at most one


def reached(name: str) -> None:
    """A step boundary: runs what the lab installed at `name`, if anything (see module docstring)."""
    hook = _at.get(name)
    if hook is not None:
        hook()


def drop_fetched() -> DropFetched | None:
    """The installed drop-fetched hook, or None (the consumer's drain loop reads it once)."""
    return _drop[0] if _drop else None


def install(name: str, hook: Hook) -> None:
    """Run `hook` each time `name` is reached, after any hook installed there before."""
    if name not in NAMES:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(NAMES)}")
    before = _at.get(name)
    if before is None:
        _at[name] = hook
        return

    def both() -> None:
        before()
        hook()

    _at[name] = both


def install_drop_fetched(hook: DropFetched) -> None:
    _drop[:] = [hook]


def uninstall() -> None:
    """Remove every hook (for tests that install some in their own process)."""
    _at.clear()
    _drop.clear()
