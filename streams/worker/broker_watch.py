"""Is the Kafka broker there, and is it still the broker whose log this worker has read?

aiokafka retries a broker that went away quietly and forever: the worker stays up, logs nothing and
processes nothing, and a wall screen keeps showing numbers that silently stopped. So every worker
probes the broker on the side every `PROBE_EVERY_S`: a fresh connection, a metadata request and
the end offsets of the pipeline's topics, each probe bounded by
`PROBE_TIMEOUT_S` (a paused broker accepts connections and never answers).

`BrokerWatch` is the pure part (the clock and the probe's outcome are given):

- no answer for `UNREACHABLE_AFTER_S`: `broker_unreachable`, with the command that fixes it;
- an answer with a topic gone or an end offset lower than one seen before: the broker came back
  without its log (an in-memory broker restarted). Offsets never go down in a log that is kept, so
  this is certain, and final: this worker's state and its store's markers belong to the old log,
  and only a restart with a fresh store puts the screen right (`broker_reset`).

Each change is logged once, with a reminder every `REMIND_S` while it lasts (streams/statelog.py),
never once per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.statelog import StateLog

log = logging.getLogger(__name__)


class _QuietBootstrapErrors(logging.Filter):
    """aiokafka logs every failed bootstrap at ERROR, which is every probe while the broker is away;
    the watch reports that state itself, once per change."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('Unable connect to "')


def quiet_aiokafka_bootstrap_errors() -> None:
    aiokafka_client = logging.getLogger("aiokafka.client")
    if not any(isinstance(f, _QuietBootstrapErrors) for f in aiokafka_client.filters):
        aiokafka_client.addFilter(_QuietBootstrapErrors())


PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 5.0
UNREACHABLE_AFTER_S = 6.0
REMIND_S = 60.0


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: the end offset of every partition of the watched topics that exist,
    the watched topics the broker does not know, or the error that stopped it."""

    ends: Mapping[TopicPartition, int]
    missing: frozenset[str] = frozenset()
    error: str = ""


class BrokerWatch:
    """The broker's state from a sequence of probes; `problem()` is what the status reports."""

    def __init__(
        self,
        broker: str,
        *,
        after_s: float = UNREACHABLE_AFTER_S,
        remind_s: float = REMIND_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.after_s = after_s
        self._clock, self._wall = clock, wall
        self._unreachable = StateLog(log, f"reaching the Kafka broker at {broker}", remind_s=remind_s, clock=clock)
        self._first_failure: float | None = None  # clock time of the first failed probe of a spell
        self._failed_probes = 0
        self._since_wall = 0.0  # epoch s, for the screen
        self._last_error = ""
        self._seen: dict[TopicPartition, int] = {}  # the highest end offset seen per partition
        self.reset: str = ""  # why the broker is not the one whose log this worker read ("" while it is)
        self._reset_since = 0.0

    @property
    def unreachable(self) -> bool:
        """Decided by the probes (not by the clock between them), so the state and its log line change together."""
        return self._unreachable.failing

    def observe(self, probe: Probe) -> None:
        now = self._clock()
        if probe.error:
            if self._first_failure is None:
                self._first_failure, self._since_wall, self._failed_probes = now, self._wall(), 0
            self._failed_probes += 1
            self._last_error = probe.error
            if now - self._first_failure >= self.after_s:
                # Logs the first time, then a reminder now and then; the line says what fixes it.
                if not self._unreachable.failing:
                    self._unreachable.attempts = self._failed_probes - 1  # the probes before it was a state
                self._unreachable.failed(f"{probe.error}; start it (promo broker) or fix PROMO_BROKER",
                                         since=self._first_failure)  # fmt: skip
            return
        self._first_failure = None
        self._unreachable.recovered()  # logs only when it was failing
        if self.reset:
            return  # final: the worker must be restarted
        gone = sorted({tp.topic for tp in self._seen} & probe.missing)
        lower = sorted(f"{tp.topic}[{tp.partition}] {self._seen[tp]} -> {end}"
                       for tp, end in probe.ends.items() if end < self._seen.get(tp, 0))  # fmt: skip
        if gone or lower:
            self.reset = f"topics gone: {', '.join(gone)}" if gone else f"end offsets went back: {', '.join(lower)}"
            self._reset_since = self._wall()
            log.error(
                "the Kafka broker at %s came back without its log (%s): this worker's state belongs to the old "
                "log; stop it and start again with a fresh store", self.broker, self.reset,
            )  # fmt: skip
            return
        for tp, end in probe.ends.items():
            self._seen[tp] = max(end, self._seen.get(tp, 0))

    def problem(self) -> dict[str, Any] | None:
        """The status entry (streams/worker/app.py: WorkerApp.status), or None while all is well."""
        if self.unreachable:
            return _problem("broker_unreachable", f"{self.broker} does not answer, no new events arrive: start it "
                            "(promo broker) or fix PROMO_BROKER", self._last_error, self._since_wall)  # fmt: skip
        if self.reset:
            return _problem("broker_reset", f"{self.broker} came back without its log: restart this worker with a "
                            "fresh store (promo demo starts afresh)", self.reset, self._reset_since)  # fmt: skip
        return None


def _problem(kind: str, message: str, detail: str, since_s: float) -> dict[str, Any]:
    """One entry of the status' problems, as every other state gives it."""
    return {"kind": kind, "message": message, "detail": detail[:300], "since_ms": int(since_s * 1000)}


async def probe_broker(bootstrap: str, topics: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """Connect afresh, read the metadata and the end offsets of `topics`; never raises."""

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=4000)

    async def run() -> Probe:
        await consumer.start()  # bootstraps: a metadata request for every topic
        known = {t: consumer.partitions_for_topic(t) for t in topics}
        partitions = [TopicPartition(t, p) for t, ps in known.items() for p in sorted(ps or ())]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return Probe(ends, frozenset(t for t, ps in known.items() if not ps))

    try:
        return await asyncio.wait_for(run(), timeout_s)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return Probe({}, error=f"no answer in {timeout_s:.0f} s")
    except Exception as exc:  # a refused connection, a broker gone mid-request: all mean "not there"
        text = str(exc)  # aiokafka's own errors already start with their class name
        return Probe({}, error=(text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}")[:500])
    finally:
        # Also after a failed start: a client left open warns at exit, one per probe.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), timeout_s)
