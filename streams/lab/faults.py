"""The fault file: lets a test fail or stall a live worker's ClickHouse writes, or stall a stage.

Installed from outside, by `promo worker` when `PROMO_FAULT_FILE` names a file: the product only
offers the hooks (`ClickHouseStore.before_write`, `BatchAgent.before_batch`). While the file says

- `fail`                   every ClickHouse write fails (a transient error: the sink retries)
- `stall:SECONDS`          every ClickHouse write waits that long first
- `stall-stage:NAME[,NAME]` those stages (`ingest`, `aggregate`) hold their batches unprocessed

and with no file, nothing happens. The chaos scenarios and the stall tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from streams.errors import SinkError

log = logging.getLogger(__name__)

STAGE_STALL_PREFIX = "stall-stage:"


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


def stages_to_stall(spec: str) -> frozenset[str]:
    """The stages a fault file's text asks to stall (none unless a line is `stall-stage:NAME[,NAME]`)."""
    stages: set[str] = set()
    for line in spec.splitlines():
        line = line.strip()
        if line.startswith(STAGE_STALL_PREFIX):
            stages.update(s.strip() for s in line.removeprefix(STAGE_STALL_PREFIX).split(",") if s.strip())
    return frozenset(stages)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):  # no file: no fault
        return None


def write_fault(path: Path) -> Callable[[], None]:
    """A `before_write` hook: fail or stall the ClickHouse write while the file says so."""

    def check() -> None:
        spec = (_read(path) or "").strip()
        if not spec or spec.startswith(STAGE_STALL_PREFIX):
            return
        if spec.startswith("stall:"):
            time.sleep(float(spec.removeprefix("stall:")))
            return
        raise SinkError(f"injected write failure ({path})", transient=True)

    return check


def stage_stall(path: Path, stage: str) -> Callable[[], Awaitable[None]]:
    """A `before_batch` hook: hold the batch while the file asks to stall `stage`.

    It runs outside the agent's `busy` lock, so a revocation still goes through; the batch is then
    dropped as stale."""

    async def hold() -> None:
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
