"""GC pauses as /health reports them: real collections, timed by the callbacks Python calls."""

from __future__ import annotations

import gc

from streams.worker.pauses import GcPauses


def _cycles(n: int) -> None:
    for _ in range(n):
        a: list[object] = []
        a.append(a)  # garbage only the cyclic collector can free


def test_every_pass_is_counted_and_timed_per_generation() -> None:
    pauses = GcPauses().install()
    try:
        _cycles(100)
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()
    doc = pauses.summary()
    assert set(doc) == {"gen0", "gen1", "gen2"}
    assert doc["gen0"]["passes"] >= 1 and doc["gen2"]["passes"] >= 2
    assert doc["gen0"]["collected"] + doc["gen2"]["collected"] >= 100  # the cycles made above
    for gen in doc.values():
        assert 0 <= gen["last_ms"] <= gen["longest_ms"] <= gen["total_ms"]
    assert doc["gen2"]["total_ms"] > 0


def test_uninstalled_it_counts_nothing_more_and_installing_twice_counts_once() -> None:
    pauses = GcPauses().install().install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert pauses.summary()["gen2"]["passes"] == 1
    gc.collect(2)
    assert pauses.summary()["gen2"]["passes"] == 1
    assert pauses._on_gc not in gc.callbacks
