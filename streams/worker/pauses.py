"""The worker's garbage-collector passes, for /health: while one runs, nothing in the worker moves.

A freshness spike on the war room's screen has a few usual causes (a snapshot save, an INSERT that
waits on ClickHouse, a GC pass over the live state); this makes the GC's share visible instead of
guessed. Python calls `gc.callbacks` at the start and the end of every pass; recording them costs
two clock reads a pass (a gen-0 pass comes every 20,000 net allocations in `promo worker`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Generation:
    """The passes over one generation since the watch started."""

    passes: int = 0
    total_s: float = 0.0
    longest_s: float = 0.0
    last_s: float = 0.0
    collected: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "passes": self.passes,
            "total_ms": round(self.total_s * 1000, 1),
            "longest_ms": round(self.longest_s * 1000, 1),
            "last_ms": round(self.last_s * 1000, 1),
            "collected": self.collected,
        }


@dataclass
class GcPauses:
    """Times every GC pass while installed; `install()` and `uninstall()` are idempotent."""

    generations: list[Generation] = field(default_factory=lambda: [Generation() for _ in range(3)])
    _started: float = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        took = now - self._started
        gen = self.generations[info["generation"]]
        gen.passes += 1
        gen.total_s += took
        gen.last_s = took
        gen.longest_s = max(gen.longest_s, took)
        gen.collected += info.get("collected", 0)

    def install(self) -> GcPauses:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        return self

    def uninstall(self) -> None:
        while self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def summary(self) -> dict[str, Any]:
        """Per generation: passes, total / longest / last pause in ms, objects collected."""
        return {f"gen{n}": g.as_dict() for n, g in enumerate(self.generations)}
