"""What both agents share: take whole fetched batches from the consumer, hand them to `handle`, crash on error."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import TopicPartition

from streams.config import Settings
from streams.transport import Batch, PromoApp

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

    def forget(self, revoked: set[TopicPartition]) -> None:
        """Drop the state of revoked partitions (rebuilt from the logs if they come back)."""

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.busy:
            self.forget(revoked)

    async def handle(self, batch: Batch, generation: int) -> None:
        raise NotImplementedError

    async def handle_batch(self, batch: Batch, generation: int) -> None:
        """One fetched batch, at most one at a time; the consumer acks its offsets after this returns."""
        try:
            async with self.busy:
                if self.app.consumer_generation_id != generation:
                    # Fetched before the latest rebalance: Faust fetches it again from the committed
                    # offsets, and processing both copies out of order would break the per-source
                    # ordering stage 2 relies on.
                    self.stale_dropped += sum(len(records) for _, records in batch)
                    return
                await self.handle(batch, generation)
        except Exception as exc:
            # Faust would carry on past this batch, which is lost until the next restart. Crash
            # the worker instead: a restarted worker resumes from the committed offsets and the
            # recovery makes the replay exact.
            log.exception("%s failed on a batch; stopping the worker", type(self).__name__)
            await self.app.crash(exc)
            raise
