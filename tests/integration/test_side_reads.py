"""Side reads (streams/kafka.py) on the real broker: an empty poll is not the end of the log.

Recovery reads the deltas log (what was emitted), the routed log (the state) and the inputs (stage
1's gate) with `read_range`. It once took a poll that came back empty before the first fetch was
answered for the end of the log: on a loaded host the two-worker kill loop's recovery read nothing
of a deltas log and emitted a routed offset's output a second time (one interaction doubled). Here
the broker is frozen (SIGSTOP) while the read starts, so the first answer comes seconds late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.errors import BrokerError
from streams.kafka import EVENT_TOPIC_CONFIG, free_port, read_range, record_at, side_consumer, true_end_offset
from streams.kit.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

TOPIC = "side-reads"
RECORDS = 50


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of its own: this test freezes it, and the session's broker serves other tests."""
    own = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    own.start()
    try:
        asyncio.run(_fill(_bootstrap(own)))
        yield own
    finally:
        own.stop()


async def _fill(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1, topic_configs=EVENT_TOPIC_CONFIG)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=100)
    await producer.start()
    try:
        for i in range(RECORDS - 10):
            await producer.send_and_wait(TOPIC, f"record {i}".encode(), partition=0)
        # The last ten in one batch: tansu's ListOffsets(latest) then says 41, only a fetch says 50.
        sent = [await producer.send(TOPIC, f"record {i}".encode(), partition=0) for i in range(RECORDS - 10, RECORDS)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _bootstrap(broker: EmbeddedBroker) -> str:
    return Settings(broker=broker.url).bootstrap


def _frozen_for(broker: EmbeddedBroker, seconds: float) -> None:
    """Freeze the broker now and thaw it `seconds` later, on the running loop."""
    broker.pause()
    asyncio.get_running_loop().call_later(seconds, broker.resume)


def test_a_read_started_while_the_broker_is_slow_reads_every_record(broker: EmbeddedBroker) -> None:
    async def go() -> list[int]:
        got: list[ConsumerRecord[bytes, bytes]] = []
        async with side_consumer(_bootstrap(broker)) as consumer:
            _frozen_for(broker, 3.0)  # three empty polls before the first answer
            seen = await read_range(consumer, TopicPartition(TOPIC, 0), 10, RECORDS, got.append)
            assert seen == len(got)
        return [r.offset for r in got]

    assert asyncio.run(go()) == list(range(10, RECORDS))


def test_the_end_of_the_log_is_read_from_an_answer_not_from_silence(broker: EmbeddedBroker) -> None:
    async def go() -> tuple[int, int, int]:
        async with side_consumer(_bootstrap(broker)) as consumer:
            tp = TopicPartition(TOPIC, 0)
            end = await true_end_offset(consumer, tp)  # 50, where ListOffsets says 41
            got: list[ConsumerRecord[bytes, bytes]] = []
            _frozen_for(broker, 3.0)
            past_end = await read_range(consumer, tp, RECORDS - 5, RECORDS + 100, got.append)  # stops at the end
            return end, past_end, got[-1].offset

    assert asyncio.run(go()) == (RECORDS, 5, RECORDS - 1)


def test_an_offset_the_log_does_not_hold_is_none_not_another_record(broker: EmbeddedBroker) -> None:
    async def go() -> tuple[object, object]:
        async with side_consumer(_bootstrap(broker)) as consumer:
            tp = TopicPartition(TOPIC, 0)
            beyond = await record_at(consumer, tp, RECORDS + 10)
            there = await record_at(consumer, tp, 7)
            return beyond, None if there is None else (there.offset, there.value)

    assert asyncio.run(go()) == (None, (7, b"record 7"))


def test_a_broker_that_never_answers_is_an_error_not_an_empty_log(broker: EmbeddedBroker) -> None:
    async def go() -> None:
        async with side_consumer(_bootstrap(broker)) as consumer:
            broker.pause()
            try:
                await read_range(consumer, TopicPartition(TOPIC, 0), 0, RECORDS, lambda r: None, stall_s=2.0)
            finally:
                broker.resume()

    with pytest.raises(BrokerError, match="no record of side-reads"):
        asyncio.run(go())
