"""Stage-1 agent: input topics → contract and gate → routed topic (by user) and dead letters.

Thin: it takes whole fetched batches from the consumer (streams/worker/transport.py), hands them to
`pipeline.Ingest`, sends the output and waits for the broker's acks before the batch is acked (so
offsets never pass unsent output). A gate it has not seen since a (re)assignment is rebuilt first
by reading its input partition up to the batch's first offset, because the watermark is a function
of everything before.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRecord, TopicPartition

from streams import crashpoints
from streams.config import Settings
from streams.contract.topics import Topic
from streams.ingest.stage import Ingest, IngestOutput
from streams.kafka import read_range, side_consumer
from streams.worker.agents.base import BatchAgent
from streams.worker.transport import Batch, PromoApp

log = logging.getLogger(__name__)


class IngestAgent(BatchAgent):
    def __init__(self, app: PromoApp, settings: Settings) -> None:
        super().__init__(app, settings)
        self.ingest = Ingest(settings.stages)
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

    async def handle(self, batch: Batch, generation: int) -> None:
        out = IngestOutput(generation=generation)
        messages = 0
        process = self.ingest.process
        for tp, records in batch:
            topic, partition = tp.topic, tp.partition
            if not self.ingest.has_gate(topic, partition):
                await self.recover_gate(topic, partition, records[0].offset)
            for record in records:
                process(topic, partition, record.offset, record.timestamp or 0, record.value, out)
            messages += len(records)
        producer = self.app.producer
        pending = []
        routed = self.settings.topic(Topic.ROUTED)
        for partition, value in out.messages():
            pending.append(await producer.send(routed, None, value, partition, None, None))
        pending += await self.send_dead(out.dead)
        if pending:
            await asyncio.gather(*pending)
        crashpoints.reached("ingest.sent")
        self.counters["messages"] += messages
        self.counters["elements"] += out.elements
        self.counters["dead"] += len(out.dead)

    def forget(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.ingest.forget(tp.topic, tp.partition)
