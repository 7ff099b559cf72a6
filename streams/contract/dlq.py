"""Dead letters: a record the pipeline refused, with its reason, for the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetter:
    """One record for the dead-letter topic."""

    value: bytes
    reason: str
    detail: str
    source: str  # "topic:partition:offset:index"

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("reason", self.reason.encode()),
            ("detail", self.detail.encode()[:512]),
            ("source", self.source.encode()),
        ]
