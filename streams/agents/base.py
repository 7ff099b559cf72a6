"""What both agents share: take batches of events from Faust, hand each to `handle`, crash on error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
from faust.streams import Stream

from streams.config import Settings

log = logging.getLogger(__name__)


class BatchAgent:
    """Subclasses implement `handle`; `run` is what is registered with `app.agent`."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        raise NotImplementedError

    async def run(self, stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        # take_events is on the concrete Stream, not on the StreamT protocol faust types agents with.
        # It acks a batch only after `handle` returns, so offsets never pass unsent output.
        batches = cast(Stream[Any], stream).take_events(self.settings.batch_size, within=self.settings.batch_within_s)
        async for events in batches:
            try:
                await self.handle(events)
            except Exception as exc:
                # Faust would restart the agent in-process and carry on past this batch, which is
                # lost until the next restart. Crash the worker instead: a restarted worker resumes
                # from the committed offsets and the recovery makes the replay exact.
                log.exception("%s failed on a batch; stopping the worker", type(self).__name__)
                await self.app.crash(exc)
                raise
            yield None
