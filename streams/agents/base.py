"""What both agents share: take batches of events from Faust, hand each to `handle`, crash on error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.streams import Stream

from streams.config import Settings

log = logging.getLogger(__name__)


class BatchAgent:
    """Subclasses implement `handle`; `run` is what is registered with `app.agent`."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
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

    def current(self, events: Sequence[faust.EventT[Any]]) -> list[faust.EventT[Any]]:
        """Events fetched before the latest rebalance are dropped: Faust fetches them again from
        the committed offsets, and processing both copies out of order would break the per-source
        ordering stage 2 relies on."""
        generation = self.app.consumer_generation_id
        fresh = [e for e in events if e.message.generation_id == generation]
        self.stale_dropped += len(events) - len(fresh)
        return fresh

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        raise NotImplementedError

    async def run(self, stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        # take_events is on the concrete Stream, not on the StreamT protocol faust types agents with.
        # It acks a batch only after `handle` returns, so offsets never pass unsent output.
        batches = cast(Stream[Any], stream).take_events(self.settings.batch_size, within=self.settings.batch_within_s)
        async for events in batches:
            try:
                async with self.busy:
                    fresh = self.current(events)
                    if fresh:
                        await self.handle(fresh)
            except Exception as exc:
                # Faust would restart the agent in-process and carry on past this batch, which is
                # lost until the next restart. Crash the worker instead: a restarted worker resumes
                # from the committed offsets and the recovery makes the replay exact.
                log.exception("%s failed on a batch; stopping the worker", type(self).__name__)
                await self.app.crash(exc)
                raise
            yield None
