"""The facts the pipeline counts: counters, fact and rejection keys, and `Deltas`, their sums.

Stage 2 emits deltas, +1/-1 moves of credit keyed by fact dimensions (campaign, channel, entry,
city tier, minute); merging two `Deltas` is adding them, which is what lets many workers and many
batches combine into one exact total. Pure: no I/O, no clocks, no client library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

MINUTE_MS = 60_000

# Counter columns of a fact row, in the order of `promo.facts_minute` and `promo.campaign_totals`.
COUNTERS = (
    "interactions",
    "participants",
    "shares",
    "orders",
    "gmv_fen",
    "buyers",
    "new_users",
    "new_users_via_share",
)
(I_INTERACTIONS, I_PARTICIPANTS, I_SHARES, I_ORDERS, I_GMV, I_BUYERS, I_NEW, I_NEW_SHARE) = range(len(COUNTERS))


def minute_of(ts_ms: int) -> int:
    """The start of the UTC minute holding `ts_ms`, in ms."""
    return ts_ms - ts_ms % MINUTE_MS


class FactKey(NamedTuple):
    """Dimensions of one row of the per-minute series."""

    campaign_id: str
    channel: str
    entry: str
    city_tier: int
    minute_ms: int


class RejectKey(NamedTuple):
    """Dimensions of one row of rejection counts."""

    topic: str
    reason: str
    campaign_id: str
    channel: str
    minute_ms: int


@dataclass
class Deltas:
    """Summed changes to the facts and rejection counts; the unit a batch writes."""

    facts: dict[FactKey, list[int]] = field(default_factory=dict)
    rejections: dict[RejectKey, int] = field(default_factory=dict)

    def add(self, key: FactKey, column: int, amount: int) -> None:
        row = self.facts.get(key)
        if row is None:
            row = self.facts[key] = [0] * len(COUNTERS)
        row[column] += amount

    def reject(self, key: RejectKey, count: int = 1) -> None:
        self.rejections[key] = self.rejections.get(key, 0) + count

    def merge(self, other: Deltas) -> None:
        for key, row in other.facts.items():
            mine = self.facts.get(key)
            if mine is None:
                self.facts[key] = list(row)
            else:
                for i, amount in enumerate(row):
                    mine[i] += amount
        for rkey, count in other.rejections.items():
            self.reject(rkey, count)

    def __bool__(self) -> bool:
        return bool(self.facts or self.rejections)

    def totals(self) -> dict[tuple[str, str], list[int]]:
        """Per (campaign, channel) sums: the shape of `promo.campaign_totals`."""
        out: dict[tuple[str, str], list[int]] = {}
        for key, row in self.facts.items():
            acc = out.setdefault((key.campaign_id, key.channel), [0] * len(COUNTERS))
            for i, amount in enumerate(row):
                acc[i] += amount
        return out


def iter_rows(deltas: Deltas) -> Iterator[tuple[FactKey, list[int]]]:
    """Fact rows with at least one non-zero counter (a retraction and re-add can cancel out)."""
    for key, row in deltas.facts.items():
        if any(row):
            yield key, row
