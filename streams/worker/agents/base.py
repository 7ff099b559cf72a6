"""What both agents share: take whole fetched batches from the consumer, hand them to `handle`, crash on error.

Each agent also keeps what the worker's stall check (streams/worker/stall.py) reads: `handled`, the batches
it has processed, and `pending`, the batch it holds now (its first offsets are the next ones the stage
will process). Both cost one assignment per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import TopicPartition

from streams.config import Settings
from streams.contract.dlq import DeadLetter
from streams.contract.topics import Topic
from streams.worker.transport import Batch, PromoApp

log = logging.getLogger(__name__)


class BatchAgent:
    """Subclasses implement `handle`; the app calls `handle_batch` with each fetched batch of its topics."""

    def __init__(self, app: PromoApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Held while a batch is processed and its output sent. A revocation takes it too, so the
        # old owner's output is acknowledged before the partition moves: the new owner's recovery,
        # which reads what was already emitted, then sees all of it.
        self.busy = asyncio.Lock()
        self.stale_dropped = 0
        self.stage = type(self).__name__.removesuffix("Agent").lower()  # "ingest", "aggregate"
        self.handled = 0  # batches processed (not dropped as stale)
        self.pending: Batch | None = None  # the batch being processed (or waiting for `busy`)
        # Called before each batch, outside `busy` (so a revocation still goes through); for the
        # lab's fault hooks (streams/lab/faults.py), installed from outside. None: nothing.
        self.before_batch: Callable[[], Awaitable[None]] | None = None

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Drop the state of revoked partitions (rebuilt from the logs if they come back)."""

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.busy:
            self.forget(revoked)

    async def handle(self, batch: Batch, generation: int) -> None:
        raise NotImplementedError

    async def send_dead(self, dead: Iterable[DeadLetter]) -> list[Awaitable[Any]]:
        """Queue dead letters on the DLQ topic (keyed by their reason); the acks to await."""
        producer, dlq = self.app.producer, self.settings.topic(Topic.DLQ)
        return [await producer.send(dlq, d.reason.encode(), d.value, None, None, d.headers) for d in dead]

    async def handle_batch(self, batch: Batch, generation: int) -> None:
        """One fetched batch, at most one at a time; the consumer acks its offsets after this returns."""
        self.pending = batch
        try:
            if self.before_batch is not None:
                await self.before_batch()
            async with self.busy:
                if self.app.consumer_generation_id != generation:
                    # Fetched before the latest rebalance: Faust fetches it again from the committed
                    # offsets, and processing both copies out of order would break the per-source
                    # ordering stage 2 relies on.
                    self.stale_dropped += sum(len(records) for _, records in batch)
                    return
                await self.handle(batch, generation)
                self.handled += 1
        except Exception as exc:
            # Faust would carry on past this batch, which is lost until the next restart. Crash
            # the worker instead: a restarted worker resumes from the committed offsets and the
            # recovery makes the replay exact.
            log.exception("%s failed on a batch; stopping the worker", type(self).__name__)
            await self.app.crash(exc)
            raise
        finally:
            self.pending = None
