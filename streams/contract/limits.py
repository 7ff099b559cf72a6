"""The small frozen values the pure stages judge by, so that they never see the whole Settings.

`Limits` are the contract's windows and sizes (docs/CONTRACT.md); `StageConfig` adds what the two
stages need to know of the deployment: partition count, input topic names, the audit switch.
`Settings.limits` and `Settings.stages` (streams/config.py) make them at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The contract's windows and sizes."""

    lateness_ms: int  # an event older than its partition's watermark by more is late
    horizon_ms: int  # how long a dedup id can still be matched
    future_ms: int  # an event further ahead of its arrival is in the future
    max_value_bytes: int  # a larger message is refused whole


@dataclass(frozen=True)
class StageConfig:
    """What stage 1 and stage 2 need to know besides the limits."""

    limits: Limits
    partitions: int
    input_topics: tuple[tuple[str, str], ...]  # (suffix, full topic name) of clicks, shares, orders
    audit: bool  # identity rows on deltas (streams/aggregate/audit.py)

    def topic(self, suffix: str) -> str:
        return dict(self.input_topics)[suffix]
