"""`promo bench-recovery`: how long a worker takes to be exact again after a SIGKILL, at N distinct users.

One broker, one worker (the store's owner, default settings: a 100,000-user cache a routed
partition, the rest in its RocksDB snapshots). The simulated stream is sent in two parts: the first
(all but `tail` events) as fast as the broker takes it, and the pipeline left to catch up and be
exact; then the tail is sent and the worker is SIGKILLed one second into it and restarted at once.
Measured from the kill: until the worker answers again, and until its totals equal the oracle's for
everything sent. The worker's own figures (stage 2's rebuild time and replayed messages) come from
its `/health`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.kafka import ensure_topics, free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import Record, SimConfig, generate
from streams.kit.truth import compute_truth
from streams.users import import_existing


@dataclass
class RecoveryResult:
    events: int
    distinct_users: int
    catch_up_s: float  # from the first send to exact totals for the first part
    answering_after_s: float  # from the kill to the restarted worker's first /health answer
    exact_after_s: float  # from the kill to exact totals for everything sent
    rebuild_s: float  # stage 2's rebuild of its routed partitions (snapshot + replay), summed
    replayed: int  # routed messages stage 2 replayed to rebuild
    users_in_memory: int
    exact: bool


def distinct_users(records: list[Record]) -> int:
    users: set[str] = set()
    for record in records:
        try:
            doc = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        for event in doc if isinstance(doc, list) else [doc]:
            if isinstance(event, dict) and isinstance(event.get("user_id"), str):
                users.add(event["user_id"])
    return len(users)


def _wait_exact(worker: WorkerProcess, truth: list[dict[str, Any]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.try_get("/api/totals") == truth:
            return True
        time.sleep(0.25)
    return False


def measure(root: Path, *, events: int, users: int, tail: int, seed: int = 5, timeout: float = 1800) -> RecoveryResult:
    sim = generate(SimConfig(events=events, users=users, seed=seed, duration_s=60.0))
    head, rest = sim.records[:-tail], sim.records[-tail:]
    broker = EmbeddedBroker(free_port(), log_path=root / "broker.log")
    pipeline = Pipeline(broker.url, root)
    worker = WorkerProcess(pipeline, "owner", sink=True)
    try:
        broker.start()
        settings = pipeline.settings()
        asyncio.run(ensure_topics(settings))
        worker.start()
        started = time.monotonic()

        async def send_head() -> list[Record]:
            await import_existing(settings, sim.existing_buyers)
            return await send_records(settings, head, paced=False)

        sent = asyncio.run(send_head())
        caught_up = _wait_exact(worker, compute_truth(sent, sim.existing_buyers).totals, timeout)
        catch_up_s = time.monotonic() - started
        tail_sent: list[Record] = []
        sender = threading.Thread(
            target=lambda: tail_sent.extend(asyncio.run(send_records(settings, rest, paced=False))), daemon=True
        )
        sender.start()
        time.sleep(1.0)
        worker.kill()
        killed = time.monotonic()
        worker.start()
        while worker.try_get("/health") is None and time.monotonic() - killed < timeout:
            time.sleep(0.05)
        answering = time.monotonic() - killed
        sender.join()
        exact = _wait_exact(worker, compute_truth(sent + tail_sent, sim.existing_buyers).totals, timeout)
        exact_after = time.monotonic() - killed
        aggregate = (worker.try_get("/health") or {}).get("aggregate") or {}
        return RecoveryResult(
            events=events,
            distinct_users=distinct_users(sim.records),
            catch_up_s=round(catch_up_s, 1),
            answering_after_s=round(answering, 1),
            exact_after_s=round(exact_after, 1),
            rebuild_s=round(float(aggregate.get("recovery_s", 0.0)), 2),
            replayed=int(aggregate.get("replayed", 0)),
            users_in_memory=int((aggregate.get("users") or {}).get("in_memory", 0)),
            exact=caught_up and exact,
        )
    finally:
        worker.stop()
        broker.stop()


def table(result: RecoveryResult) -> str:
    return "\n".join(f"  {k:<18} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"  {k:<18} {v}"
                     for k, v in asdict(result).items())  # fmt: skip
