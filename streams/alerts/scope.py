"""What the detector judges: the metrics and the scopes (total, campaign, campaign x channel).

Apart from detector.py so that the plan reader can use them without importing the detector;
`streams.alerts.detector` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

METRICS: tuple[str, ...] = ("interactions", "shares", "orders", "gmv_fen", "new_users")


@total_ordering
@dataclass(frozen=True)
class Scope:
    """total: Scope(); campaign: Scope("c1"); campaign x channel: Scope("c1", "wechat").

    Ordered total first, then campaigns, then channels (dataclass ordering would compare None with
    a string and raise)."""

    campaign_id: str | None = None
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.channel is not None and self.campaign_id is None:
            raise ValueError("a channel scope needs its campaign")

    def _key(self) -> tuple[int, str, str]:
        return (self.depth, self.campaign_id or "", self.channel or "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Scope):
            return NotImplemented
        return self._key() < other._key()

    def parent(self) -> Scope | None:
        if self.channel is not None:
            return Scope(self.campaign_id)
        if self.campaign_id is not None:
            return Scope()
        return None

    @property
    def depth(self) -> int:
        return (self.campaign_id is not None) + (self.channel is not None)

    def encloses(self, other: Scope) -> bool:
        """Self is other or one of its ancestors."""
        scope: Scope | None = other
        while scope is not None:
            if scope == self:
                return True
            scope = scope.parent()
        return False

    def label(self) -> str:
        if self.campaign_id is None:
            return "total"
        return self.campaign_id if self.channel is None else f"{self.campaign_id}/{self.channel}"
