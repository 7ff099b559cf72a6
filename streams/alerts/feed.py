"""What the detector is fed every 10 s: the counts that arrived since the last evaluation, as far as
they are settled.

The store keeps counts by event-time minute, and a minute bucket grows while its events arrive (and
again when a late one does). The detector needs what *arrived* in each 10 s step, so `Feed` keeps
the last read of every (campaign, channel, minute) of a short window and hands on the difference
per campaign and channel. A minute older than the window is frozen: what arrives for it later is
too late to be news.

Only what is settled is handed on. The detector expects a step's counts to be the events of its
span (previous settled_until, settled_until]; the store also holds what the partitions that are not
behind have already written past it. One partition 150 s late while the others are on time: their
counts arrived and were handed on for 150 s before the span that holds them, and when the late one
caught up, its whole span came with a fifth of its counts, an outage at the total on every metric.
So a minute after settled_until waits whole, and the minute holding it is handed on pro rata: the
part up to settled_until of what the bucket holds, which reaches `fill_until` (the time the
partitions have reached on average; the newest minute is not full yet). What arrives later for a
settled minute (a late event) goes on at once.

Pure: the runner reads the window from the store and gives the rows here; the state is JSON-able, so
a restarted detector goes on from the same point without a gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Leaf = tuple[str, str]  # (campaign_id, channel)
Key = tuple[str, str, int]  # (campaign_id, channel, minute as epoch seconds)

WINDOW_S = 900  # the minutes re-read every evaluation: late events within 15 min still count as news
MINUTE_S = 60


def settled_share(minute: int, settled_until: float, fill_until: float) -> float:
    """The share of a minute bucket's counts that lies up to `settled_until`, the bucket holding
    events up to `fill_until` (0 for a minute not begun by then, 1 for one it has passed)."""
    if settled_until >= minute + MINUTE_S or settled_until >= fill_until:
        return 1.0
    if settled_until <= minute:
        return 0.0
    return (settled_until - minute) / (min(fill_until, minute + MINUTE_S) - minute)


@dataclass
class Feed:
    metrics: int
    window_s: int = WINDOW_S
    seen: dict[Key, list[float]] = field(default_factory=dict)
    given: dict[Key, list[float]] = field(default_factory=dict)  # of `seen`, what was handed on
    primed: bool = False

    def update(
        self,
        rows: Iterable[tuple[str, str, int, Sequence[float]]],
        now_s: float,
        settled_until: float = math.inf,
        fill_until: float | None = None,
    ) -> dict[Leaf, list[float]] | None:
        """`rows`: (campaign_id, channel, minute as epoch seconds, the metrics' counts so far) for
        every minute of the window. The increments per leaf since the last call that are settled
        (see the module's text); None on the first call (it only takes the starting point: what was
        settled by then is history, not news; the rest goes on as it settles). `fill_until` defaults
        to settled_until (every partition as far behind as the worst)."""
        fill = settled_until if fill_until is None else max(fill_until, settled_until)
        for campaign, channel, minute, values in rows:
            self.seen[(campaign, channel, int(minute))] = [float(v) for v in values]
        oldest = now_s - self.window_s
        increments: dict[Leaf, list[float]] = {}
        for key, values in list(self.seen.items()):
            expired = key[2] < oldest - MINUTE_S  # out of the window the store is asked for: frozen
            share = 1.0 if expired else settled_share(key[2], settled_until, fill)
            if not self.primed:  # the starting point: what is settled by then is history
                self.given[key] = [share * v for v in values]
                continue
            given = self.given.get(key)
            if given is None:
                given = self.given[key] = [0.0] * self.metrics
            delta = [max(share * v - g, 0.0) for v, g in zip(values, given, strict=True)]
            if any(delta):
                leaf = increments.setdefault((key[0], key[1]), [0.0] * self.metrics)
                for i, d in enumerate(delta):
                    leaf[i] += d
                    given[i] += d
            if expired:
                del self.seen[key], self.given[key]
        if not self.primed:
            self.primed = True
            return None
        return increments

    def to_doc(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "window_s": self.window_s,
            "seen": [[c, ch, m, v] for (c, ch, m), v in self.seen.items()],
            "given": [[c, ch, m, v] for (c, ch, m), v in self.given.items()],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Feed:
        feed = cls(int(doc["metrics"]), int(doc["window_s"]))
        feed.seen = {(str(c), str(ch), int(m)): [float(x) for x in v] for c, ch, m, v in doc["seen"]}
        # A state saved before counts were held back handed everything on.
        given = doc.get("given")
        if given is None:
            feed.given = {k: list(v) for k, v in feed.seen.items()}
        else:
            feed.given = {(str(c), str(ch), int(m)): [float(x) for x in v] for c, ch, m, v in given}
        feed.primed = True
        return feed
