"""What the detector is fed every 10 s: the counts that arrived since the last evaluation.

The store keeps counts by event-time minute, and a minute bucket grows while its events arrive (and
again when a late one does). The detector needs what *arrived* in each 10 s step, so `Feed` keeps
the last read of every (campaign, channel, minute) of a short window and hands on the difference
per campaign and channel. A minute older than the window is frozen: what arrives for it later is
too late to be news. Pure: the runner reads the window from the store and gives the rows here;
the state is JSON-able, so a restarted detector goes on from the same point without a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Leaf = tuple[str, str]  # (campaign_id, channel)

WINDOW_S = 900  # the minutes re-read every evaluation: late events within 15 min still count as news


@dataclass
class Feed:
    metrics: int
    window_s: int = WINDOW_S
    seen: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    primed: bool = False

    def update(
        self, rows: Iterable[tuple[str, str, int, Sequence[float]]], now_s: float
    ) -> dict[Leaf, list[float]] | None:
        """`rows`: (campaign_id, channel, minute as epoch seconds, the metrics' counts so far) for
        every minute of the window. The increments per leaf since the last call; None on the first
        call (it only takes the starting point: what came before is history, not news)."""
        increments: dict[Leaf, list[float]] = {}
        for campaign, channel, minute, values in rows:
            key = (campaign, channel, int(minute))
            before = self.seen.get(key)
            now_values = [float(v) for v in values]
            self.seen[key] = now_values
            delta = now_values if before is None else [a - b for a, b in zip(now_values, before, strict=True)]
            if any(delta):
                leaf = increments.setdefault((campaign, channel), [0.0] * self.metrics)
                for i, d in enumerate(delta):
                    leaf[i] += d
        oldest = now_s - self.window_s
        for key in [k for k in self.seen if k[2] < oldest - 60]:
            del self.seen[key]  # out of the window the store is asked for: frozen
        if not self.primed:
            self.primed = True
            return None
        return increments

    def to_doc(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "window_s": self.window_s,
            "seen": [[c, ch, m, v] for (c, ch, m), v in self.seen.items()],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Feed:
        feed = cls(int(doc["metrics"]), int(doc["window_s"]))
        feed.seen = {(str(c), str(ch), int(m)): [float(x) for x in v] for c, ch, m, v in doc["seen"]}
        feed.primed = True
        return feed
