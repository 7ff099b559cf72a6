"""The fault file: lets a test fail or stall a live worker's ClickHouse writes, or stall a stage.

Installed from outside, by `promo worker` when `PROMO_FAULT_FILE` names a file: the product only
offers the hooks (`ClickHouseStore.before_write`, `BatchAgent.before_batch`). While the file says

- `fail`                   every ClickHouse write fails (a transient error: the sink retries)
- `stall:SECONDS`          every ClickHouse write waits that long first
- `stall-stage:NAME[,NAME]` those stages (`ingest`, `aggregate`) hold their batches unprocessed
- `fail-stage:NAME[,NAME]` those stages fail their next batch (a `BrokerError`, as when the broker
                           went away with the batch's output in flight): the worker stops, status 1
- `stall-partition:TOPIC:N[,TOPIC:N]` those partitions (TOPIC the full name; N `*` for all of
                           them) fall behind: what the worker fetches of them is dropped unhanded, and
                           read back once the line is gone (the consumer's `drop_fetched` hook), while
                           every other partition goes on: one source running late, not a stage. For
                           test rates: the read-back after the line is gone holds the whole backlog of
                           a partition in memory at once, and a stalled partition that goes quiet is
                           read back (and dropped again) every few seconds meanwhile

and with no file, nothing happens. The chaos scenarios and the stall tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from streams import crashpoints
from streams.errors import BrokerError, SinkError

log = logging.getLogger(__name__)

STAGE_STALL_PREFIX = "stall-stage:"
PARTITION_STALL_PREFIX = "stall-partition:"
STAGE_FAIL_PREFIX = "fail-stage:"
REREAD_S = 0.2  # how often the partition stall reads the file (it is asked on every fetch)


class _Pipeline(Protocol):  # what of streams.worker.app.WorkerApp this needs
    @property
    def store(self) -> _Store | None: ...
    @property
    def ingest(self) -> _Agent: ...
    @property
    def aggregate(self) -> _Agent: ...


class _Store(Protocol):
    before_write: Callable[[], None] | None


class _Agent(Protocol):
    stage: str
    before_batch: Callable[[], Awaitable[None]] | None


def _items(spec: str, prefix: str) -> list[str]:
    """The comma-separated items of every line of a fault file's text that starts with `prefix`."""
    lines = (line.strip() for line in spec.splitlines())
    return [x.strip() for line in lines if line.startswith(prefix) for x in line.removeprefix(prefix).split(",")]


def stages_to_stall(spec: str) -> frozenset[str]:
    """The stages a fault file's text asks to stall (none unless a line is `stall-stage:NAME[,NAME]`)."""
    return frozenset(item for item in _items(spec, STAGE_STALL_PREFIX) if item)


def partitions_to_stall(spec: str) -> frozenset[tuple[str, str]]:
    """The (topic, partition) pairs a fault file's text asks to stall; partition `*` is every one."""
    pairs = (item.rpartition(":") for item in _items(spec, PARTITION_STALL_PREFIX))
    return frozenset((topic, partition) for topic, _, partition in pairs if topic and partition)


def partition_stall(path: Path, clock: Callable[[], float] = time.monotonic) -> crashpoints.DropFetched:
    """A `drop_fetched` hook (streams/crashpoints.py): drop a fetch of a partition the file names.
    The consumer then reads the gap back on a later fetch, so nothing is lost: the partition only
    falls behind until the line is gone."""
    seen: dict[str, Any] = {"at": -REREAD_S, "pairs": frozenset()}

    def drop(tp: Any, handed: bool, generation: int) -> bool:
        now = clock()
        if now - seen["at"] >= REREAD_S:
            seen["at"], seen["pairs"] = now, partitions_to_stall(_read(path) or "")
        pairs = seen["pairs"]
        topic, partition = getattr(tp, "topic", None), getattr(tp, "partition", None)
        return bool(pairs) and ((topic, str(partition)) in pairs or (topic, "*") in pairs)

    return drop


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):  # no file: no fault
        return None


def write_fault(path: Path) -> Callable[[], None]:
    """A `before_write` hook: fail or stall the ClickHouse write while the file says so."""

    def check() -> None:
        spec = (_read(path) or "").strip()
        if not spec or spec.startswith((STAGE_STALL_PREFIX, PARTITION_STALL_PREFIX, STAGE_FAIL_PREFIX)):
            return
        if spec.startswith("stall:"):
            time.sleep(float(spec.removeprefix("stall:")))
            return
        raise SinkError(f"injected write failure ({path})", transient=True)

    return check


def stage_stall(path: Path, stage: str) -> Callable[[], Awaitable[None]]:
    """A `before_batch` hook: hold the batch while the file asks to stall `stage`; fail it when the
    file asks to fail `stage`.

    It runs outside the agent's `busy` lock, so a revocation still goes through; the batch is then
    dropped as stale."""

    async def hold() -> None:
        if stage in set(_items(_read(path) or "", STAGE_FAIL_PREFIX)):
            raise BrokerError(f"{stage}: failed by the fault file {path}")
        logged = False
        while stage in stages_to_stall(_read(path) or ""):
            if not logged:
                log.warning("%s: stalled by the fault file %s", stage, path)
                logged = True
            await asyncio.sleep(0.2)
        if logged:
            log.warning("%s: the fault file no longer stalls it", stage)

    return hold


def install(pipeline: _Pipeline, path: Path) -> None:
    """Hook the fault file into a built worker (before it starts)."""
    if pipeline.store is not None:
        pipeline.store.before_write = write_fault(path)
    for agent in (pipeline.ingest, pipeline.aggregate):
        agent.before_batch = stage_stall(path, agent.stage)
    stall = partition_stall(path)
    before = crashpoints.drop_fetched()  # the kill loop's, when the environment asked for it too
    if before is None:
        crashpoints.install_drop_fetched(stall)
    else:
        crashpoints.install_drop_fetched(lambda tp, handed, gen: before(tp, handed, gen) or stall(tp, handed, gen))
