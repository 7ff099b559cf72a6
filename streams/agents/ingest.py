"""Stage-1 agent: input topics → contract and gate → routed topic (by user) and dead letters.

Thin: it takes batches of events from Faust, hands them to `pipeline.Ingest`, sends the output and
waits for the broker's acks before the batch is acked (so offsets never pass unsent output). A gate
it has not seen since a (re)assignment is rebuilt first by reading its input partition up to the
batch's first offset, because the watermark is a function of everything before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka import ConsumerRecord, TopicPartition

from streams.agents.base import BatchAgent
from streams.config import Settings
from streams.kafka import read_range, side_consumer
from streams.pipeline import Ingest, IngestOutput

log = logging.getLogger(__name__)


def _timestamp_ms(seconds: float | None) -> int:
    return int(seconds * 1000) if seconds else 0


class IngestAgent(BatchAgent):
    def __init__(self, app: faust.App, settings: Settings) -> None:
        super().__init__(app, settings)
        self.ingest = Ingest(settings)
        self.counters = {"messages": 0, "elements": 0, "dead": 0, "recovered_gates": 0}

    async def recover_gate(self, topic: str, partition: int, upto: int) -> None:
        gate = self.ingest.new_gate()
        self.ingest.set_gate(topic, partition, gate)
        if upto <= 0:
            return

        def feed(record: ConsumerRecord[bytes, bytes]) -> None:
            self.ingest.replay(topic, partition, record.timestamp or 0, record.value)

        async with side_consumer(self.settings.bootstrap) as consumer:
            seen = await read_range(consumer, TopicPartition(topic, partition), 0, upto, feed)
        self.counters["recovered_gates"] += 1
        log.info("rebuilt gate %s:%d from %d messages (watermark %d)", topic, partition, seen, gate.watermark)

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        out = IngestOutput(generation=self.app.consumer_generation_id)
        for event in events:
            message = event.message
            if not self.ingest.has_gate(message.topic, message.partition):
                await self.recover_gate(message.topic, message.partition, message.offset)
            ts = _timestamp_ms(message.timestamp)
            self.ingest.process(message.topic, message.partition, message.offset, ts, message.value, out)
        producer = self.app.producer
        pending = []
        routed = self.settings.topic("routed")
        for partition, value in out.messages():
            pending.append(await producer.send(routed, None, value, partition, None, None))
        dlq = self.settings.topic("dlq")
        for dead in out.dead:
            pending.append(await producer.send(dlq, dead.reason.encode(), dead.value, None, None, dead.headers))
        if pending:
            await asyncio.gather(*pending)
        self.counters["messages"] += len(events)
        self.counters["elements"] += out.elements
        self.counters["dead"] += len(out.dead)

    def forget(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.ingest.forget(tp.topic, tp.partition)
