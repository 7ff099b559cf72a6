"""A failing dependency logged once per change of state, with a reminder while it lasts.

A retry loop that logs every attempt buries the cause in hundreds of identical lines (an
unreachable ClickHouse printed three long lines per retry, forever). `StateLog` logs when the
failure starts, a one-line reminder every `remind_s` while it goes on (with how long and how many
attempts), and when it ends. Pure: the clock is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class StateLog:
    def __init__(
        self, logger: logging.Logger, what: str, *, remind_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log, self.what, self.remind_s, self.clock = logger, what, remind_s, clock
        self.failing_since: float | None = None  # clock time of the first failure of this spell
        self.attempts = 0
        self._reminded_at = 0.0

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failed(self, message: str, *, since: float | None = None) -> None:
        """One failed attempt. `since` (clock time) dates a spell that began before it was worth a
        line (a watch that reports a state only after it lasts), so "recovered after" is the whole spell."""
        now = self.clock()
        self.attempts += 1
        if self.failing_since is None:
            self.failing_since, self._reminded_at = (now if since is None else since), now
            self.log.error("%s failing: %s", self.what, message)
        elif now - self._reminded_at >= self.remind_s:
            self._reminded_at = now
            self.log.error("%s still failing after %.0f s and %d attempts: %s",
                           self.what, now - self.failing_since, self.attempts, message)  # fmt: skip

    def recovered(self) -> None:
        if self.failing_since is not None:
            self.log.warning("%s recovered after %.0f s and %d failed attempts",
                             self.what, self.clock() - self.failing_since, self.attempts)  # fmt: skip
        self.failing_since = None
        self.attempts = 0
