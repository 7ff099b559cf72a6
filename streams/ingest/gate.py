"""Stage 1's gate: per input topic partition and in offset order, is an event in the future or too late?

(docs/CONTRACT.md, steps 2-3.) Its only state is the partition's watermark, a function of the
partition's content, so it can always be rebuilt by reading the partition again. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.contract.events import Reason


@dataclass
class PartitionGate:
    """The future/late decision for one input topic partition, fed in offset order."""

    allowed_lateness_ms: int
    future_limit_ms: int
    watermark: int = -1  # greatest ts that passed this gate; -1 before the first

    def admit(self, ts: int, clock_ms: int) -> str | None:
        """None when the event passes; else the rejection reason. Moves the watermark on a pass."""
        if ts > clock_ms + self.future_limit_ms:
            return Reason.FUTURE
        if ts < self.watermark - self.allowed_lateness_ms:
            return Reason.LATE
        if ts > self.watermark:
            self.watermark = ts
        return None
