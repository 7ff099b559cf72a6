"""The sender's clock shift (`Rebaser`): pure, no broker."""

from __future__ import annotations

import orjson
import pytest

from streams.kit import producer
from streams.kit.producer import Rebaser
from streams.kit.simulate import Record


def record(event_id: str, ts: int, *, batch: bool = False) -> Record:
    body = {"event_id": event_id, "ts": ts, "user_id": "u1"}
    value = orjson.dumps([body, {**body, "event_id": event_id + "b"}] if batch else body)
    return Record("clicks", 0, None, value, ts, 0.0)


def test_shift_moves_every_element_onto_the_sending_clock() -> None:
    rebase = Rebaser()
    lone = orjson.loads(rebase(record("e1", 1_000), 5_000))
    assert lone["ts"] == 5_000
    batch = orjson.loads(rebase(record("e2", 1_000, batch=True), 7_500))
    assert [e["ts"] for e in batch] == [7_500, 7_500]


def test_a_retry_keeps_the_shift_of_its_first_sending() -> None:
    rebase = Rebaser()
    first = rebase(record("e1", 1_000), 5_000)
    assert rebase(record("e1", 1_000), 9_000) == first  # an exact copy stays an exact copy


def test_unparsable_bytes_go_as_they_are() -> None:
    bad = Record("clicks", 0, None, b"{not json", 1_000, 0.0)
    assert Rebaser()(bad, 5_000) == b"{not json"


def test_memory_is_bounded_and_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer, "REBASE_MEMORY", 3)
    rebase = Rebaser()
    for n in range(5):
        rebase(record(f"e{n}", 1_000), 2_000)
    assert len(rebase.memory) == 3
    remembered = [orjson.loads(v)["event_id"] for v in rebase.memory.values()]
    assert remembered == ["e2", "e3", "e4"]
    # e0 was forgotten: a copy of it now gets the shift of this later sending.
    assert orjson.loads(rebase(record("e0", 1_000), 8_000))["ts"] == 8_000
