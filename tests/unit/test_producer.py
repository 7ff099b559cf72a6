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


def test_one_event_of_a_batch_retried_alone_keeps_the_batch_shift() -> None:
    # A collector sent e1 and e1b as one array; a client retried e1 alone a minute (of the compressed
    # sale) later: its bytes are not the batch's, and its ts must still be the original's.
    rebase = Rebaser()
    batch = orjson.loads(rebase(record("e1", 1_000, batch=True), 5_000))
    lone = Record("clicks", 1, None, orjson.dumps({"event_id": "e1", "ts": 1_000, "user_id": "u1"}), 61_000, 0.0)
    assert orjson.loads(rebase(lone, 5_100))["ts"] == batch[0]["ts"] == 5_000
    # another event with the same ts, first sent now, gets its own shift (lateness is kept)
    other = Record("clicks", 1, None, orjson.dumps({"event_id": "e9", "ts": 1_000, "user_id": "u1"}), 61_000, 0.0)
    assert orjson.loads(rebase(other, 5_100))["ts"] == 1_000 + 5_100 - 61_000


def test_unparsable_bytes_go_as_they_are() -> None:
    bad = Record("clicks", 0, None, b"{not json", 1_000, 0.0)
    assert Rebaser()(bad, 5_000) == b"{not json"


def test_memory_is_bounded_and_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer, "REBASE_MEMORY", 3)
    rebase = Rebaser()
    for n in range(5):
        rebase(record(f"e{n}", 1_000), 2_000)
    assert len(rebase.memory) == 3
    assert [event_id for event_id, _ in rebase.memory] == ["e2", "e3", "e4"]
    # e0 was forgotten: a copy of it now gets the shift of this later sending.
    assert orjson.loads(rebase(record("e0", 1_000), 8_000))["ts"] == 8_000


def test_a_broker_that_does_not_take_the_stream_is_one_brokererror(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outside probe: `promo simulate` died with a 40-line aiokafka traceback (RequestTimedOutError)
    when the broker paused for 35 s, and wrote no truth. The sender now waits 5 minutes for the broker
    (what every outage test pauses it for is shorter), and a send that still fails is one line
    (BrokerError), which says how far it got."""
    import asyncio

    from aiokafka.errors import RequestTimedOutError

    from streams.config import Settings
    from streams.errors import BrokerError

    asked: list[float] = []

    class Refusing:
        async def send(self, *args: object, **kwargs: object) -> asyncio.Future[None]:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.set_exception(RequestTimedOutError())
            return future

        async def stop(self) -> None:
            return None

    async def fake(settings: Settings, request_timeout_s: float = 30.0) -> Refusing:
        asked.append(request_timeout_s)
        return Refusing()

    monkeypatch.setattr(producer, "_producer", fake)
    records = [record(f"e{i}", 1_000 + i) for i in range(3)]
    with pytest.raises(BrokerError, match=r"did not take the stream \(RequestTimedOutError after 3 of 3 records"):
        asyncio.run(producer.send_records(Settings(), records, paced=False))
    assert asked == [producer.SEND_TIMEOUT_S] and producer.SEND_TIMEOUT_S >= 300
