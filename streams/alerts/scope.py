"""What the detector judges: the metrics and the scopes (total, campaign, campaign x channel).

Apart from detector.py so that the plan reader can use them without importing the detector;
`streams.alerts.detector` re-exports both."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import total_ordering

from streams.contract.events import KNOWN_CHANNELS
from streams.contract.ids import has_control

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

    def said(self) -> str:
        """The label as messages and the CLI say it back: a campaign whose id is a word for the total
        (`total`, `all`, `*`) or holds a '/' as `campaign 'total'`, `campaign 'c01/douyin'`: "interactions on
        total" read as the total's (an outside probe), and `c01/douyin` alone as c01's channel."""
        campaign = self.campaign_id
        if campaign is not None and self.channel is None and ("/" in campaign or campaign.lower() in TOTAL_WORDS):
            return f"campaign {campaign!r}"
        return self.label()


TOTAL_WORDS = ("total", "all", "*")  # what parse_scope reads as the total


def parse_scope(text: str, channels: Collection[str] = KNOWN_CHANNELS) -> Scope:
    """The one scope grammar (silence, note, the simulator's incidents): `total` (or `all`, `*`),
    `CAMPAIGN` or `CAMPAIGN/CHANNEL`. A campaign id may hold '/' itself (`2026/双11`,
    docs/CONTRACT.md), so the text splits at its last '/' only when what follows is one of
    `channels`; otherwise all of it is the campaign id. Raises ValueError (one line) for an empty
    part or a campaign id over 64 characters."""
    text = text.strip()
    if text in TOTAL_WORDS:
        return Scope()
    if has_control(text):  # a line break in a scope printed it over two lines (a probe); an id may hold any other
        raise ValueError(f"a scope has no line break or other control character, not {text!r}")
    if not text or any(not part.strip() for part in text.split("/")):
        raise ValueError(f"a scope is total, CAMPAIGN or CAMPAIGN/CHANNEL with no empty part, not {text!r}")
    head, _, tail = text.rpartition("/")
    campaign, channel = (head.strip(), tail.strip()) if head and tail.strip() in channels else (text, None)
    if len(campaign) > 64:
        raise ValueError(f"a campaign id has at most 64 characters, not {len(campaign)} ({text[:20]!r}...)")
    return Scope(campaign, channel)
