"""`promo chaos --kill-loop`: tens of SIGKILLs, at random instants and at every step boundary, per seed.

Each seed runs its own broker, store and workers (one, the store's owner, or two), on a simulated
stream that carries every duplicate kind: byte-identical re-sends, whole re-sent batches, orders
re-sent with a new event_id and the same order_id (streams/lab/hostile.py), malformed and late input,
existing buyers imported first. A kill round picks a worker, lets it run a random while, SIGKILLs
it, and restarts it armed with the next crash point of `streams.crashpoints.NAMES` (cycling, so
every boundary is hit on every seed), where it kills itself again; then it restarts clean. With two
workers, the first round freezes the helper (SIGSTOP, at a folded batch not yet sent) until its
session expires and the owner has taken its partitions, then resumes it: a zombie, whose batches
the sink must skip (streams/sink/markers.py).

Scored twice: every cell of `campaign_totals` and every rejection count against the oracle, and,
with `PROMO_AUDIT=1`, every identity as the sink wrote it (streams/kit/audit.py): each accepted order_id
counted once in the right (campaign, channel), each participant, buyer and new-user credit on the
right event or order.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from streams.config import Settings
from streams.contract.facts import COUNTERS
from streams.contract.topics import Topic
from streams.contract.wire import decode_audit, decode_delta_rows
from streams.crashpoints import NAMES
from streams.kafka import read_range, side_consumer, true_end_offset
from streams.kit.audit import Ledger, compare, identities_of, ledger_identities
from streams.kit.harness import WorkerProcess
from streams.kit.truth import compute_truth, identities
from streams.lab.chaos import Run, cell_diffs, lost_and_doubled
from streams.lab.hostile import order_resends

# Points only the worker with the sink reaches.
SINK_POINTS = frozenset(n for n in NAMES if n.startswith("sink."))


@dataclass
class LoopResult:
    seed: int
    workers: int
    events: int = 0
    kills: int = 0  # SIGKILLs from outside plus deaths at crash points
    points: dict[str, int] = field(default_factory=dict)  # crash point -> times it fired
    points_missed: list[str] = field(default_factory=list)  # armed, not reached in time: killed from outside
    lost: int = 0  # summed cells below the truth
    doubled: int = 0
    rejected_match: bool = False
    identities_checked: int = 0
    ids_lost: int = 0
    ids_doubled: int = 0
    ids_misattributed: int = 0
    redeliveries_skipped: int = 0  # deltas messages the sink skipped as already written
    zombies: int = 0  # workers frozen mid-batch past their session, then resumed (two workers only)
    fenced_skipped: int = 0  # deltas batches of evicted owners the sink's rule skips, in the log (sink/markers.py)
    exact_after_s: float = 0.0  # from the end of the stream to exact totals
    log_lost: int = 0  # the same cells summed from the deltas log as the sink's rule reads it:
    log_doubled: int = 0  # off here too, stage 2 sent it; exact here but not in the store, the sink wrote it
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return (self.lost == self.doubled == self.log_lost == self.log_doubled == 0 and self.rejected_match
                and self.ids_lost == self.ids_doubled == self.ids_misattributed == 0)  # fmt: skip


class KillLoop:
    def __init__(self, root: Path, *, seed: int, kills: int, workers: int, events: int, user_cache: int) -> None:
        self.rng = random.Random(seed)
        self.kills = kills
        # Traffic must outlast the rounds: the stage-2 points are reached only while batches come.
        # A round takes ~5 s on a loaded host (CI runs two test files at once); the zombie's ~15 s.
        duration = max(30.0, 5.0 * kills) + (20.0 if workers > 1 else 0.0)
        self.run = Run(f"kill-loop-{workers}w-seed{seed}", root, events=events, duration_s=duration, seed=seed,
                       user_cache=user_cache)  # fmt: skip
        self.run.pipeline.extra["PROMO_AUDIT"] = "1"
        if workers == 1:
            self.run.helpers = []
        self.records = order_resends(self.run.sim.records, random.Random(seed + 1))
        self.result = LoopResult(seed, workers)
        self.next_point = seed % len(NAMES)  # seeds start the cycle at different boundaries

    def workers(self) -> list[WorkerProcess]:
        return [self.run.owner, *self.run.helpers]

    def _wait_started(self, worker: WorkerProcess, timeout: float = 60) -> None:
        """Until the worker answers (a sink worker) or dies at its crash point, or a few seconds."""
        deadline = time.monotonic() + (timeout if worker.sink else 3)
        while time.monotonic() < deadline and worker.alive:
            if worker.sink and worker.try_get("/health") is not None:
                return
            time.sleep(0.1)

    def _armed_round(self, worker: WorkerProcess) -> None:
        points = [n for n in NAMES if worker.sink or n not in SINK_POINTS]
        point = NAMES[self.next_point % len(NAMES)]
        self.next_point += 1
        if point not in points:
            point = self.rng.choice(points)
        times = self.rng.randint(1, 3)
        worker.start(env={"PROMO_CRASH_AT": f"{point}:{times}"})
        deadline = time.monotonic() + 30
        while worker.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        if worker.alive:
            worker.kill()
            self.result.points_missed.append(point)
            self.run.fault(f"{worker.name}: crash point {point}:{times} not reached in 30 s; SIGKILL")
        else:
            self.result.points[point] = self.result.points.get(point, 0) + 1
            self.run.fault(f"{worker.name}: died at {point} (arrival {times})")
        self.result.kills += 1

    def zombie_round(self, worker: WorkerProcess) -> None:
        """Freeze `worker` with a folded batch not yet sent (a long GC, a stopped VM) past its session
        timeout; the other worker takes its partitions over. The moment the new owner's fence is on
        the deltas log, hold the new owner (still rebuilding) and let the zombie go on for 2 s: it
        sends its batch as the owner it no longer is."""
        worker.kill()
        arrival = self.rng.randint(1, 3)
        worker.start(env={"PROMO_PAUSE_AT": f"aggregate.folded:{arrival}"})
        deadline = time.monotonic() + 30
        while worker.alive and not _stopped(worker) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _stopped(worker):
            self.run.fault(f"{worker.name}: pause point aggregate.folded:{arrival} not reached in 30 s")
            worker.kill()
            worker.start()
            return
        self.run.fault(f"SIGSTOP {worker.name} at aggregate.folded (arrival {arrival}): a batch folded, not sent")
        fenced = asyncio.run(self._next_fence(asyncio.run(self._deltas_ends()), timeout=60))
        others = [w for w in self.workers() if w is not worker and w.alive]
        for other in others if fenced else []:
            other.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        assert worker.process is not None
        worker.process.send_signal(signal.SIGCONT)
        self.result.zombies += 1
        self.run.fault(f"SIGCONT {worker.name} {'as' if fenced else 'without'} a new owner fenced its partitions")
        time.sleep(2.0)  # the zombie sends; the new owner is held well within its own session
        for other in others:
            other.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        # Not waited for here: a zombie whose consumer noticed the eviction first sends nothing, and
        # waiting for its batch used up the stream the armed rounds need. `score` counts the fenced
        # batches from the deltas log, as the sink's rule reads it.

    def _deltas_tps(self) -> list[TopicPartition]:
        settings = self.run.pipeline.settings()
        return [TopicPartition(settings.topic(Topic.DELTAS), p) for p in range(settings.partitions)]

    async def _deltas_ends(self) -> dict[TopicPartition, int]:
        async with side_consumer(self.run.pipeline.settings().bootstrap) as consumer:
            return {tp: await true_end_offset(consumer, tp) for tp in self._deltas_tps()}

    async def _next_fence(self, ends: dict[TopicPartition, int], timeout: float) -> bool:
        """Wait until a fence (streams/sink/markers.py) is appended to any deltas partition after `ends`."""
        async with side_consumer(self.run.pipeline.settings().bootstrap) as consumer:
            consumer.assign(list(ends))
            for tp, end in ends.items():
                consumer.seek(tp, end)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=20)
                if any(decode_delta_rows(r.value or b"").fence for rs in batches.values() for r in rs):
                    return True
        return False

    def kill_rounds(self) -> None:
        rounds = (self.kills + 1) // 2
        for n in range(rounds):
            if n == 0 and self.run.helpers:  # first, while the stream flows: the new owner's output runs ahead
                time.sleep(self.rng.uniform(2.0, 4.0))
                self.zombie_round(self.run.helpers[0])
            worker = self.rng.choice(self.workers())
            time.sleep(self.rng.uniform(0.2, 2.5))
            worker.kill()
            self.result.kills += 1
            self.run.fault(f"SIGKILL {worker.name} at a random instant")
            self._armed_round(worker)
            worker.start()
            self._wait_started(worker)

    def score(self, timeout: float = 300) -> None:
        run, result = self.run, self.result
        while run.sending.is_set():
            time.sleep(0.2)
        ended = time.monotonic()
        run.settle(timeout)  # cells and rejections against the oracle, as every chaos scenario
        result.exact_after_s = round(time.monotonic() - ended, 1)
        result.lost, result.doubled, result.rejected_match = (
            run.result.lost,
            run.result.doubled,
            run.result.rejected_match,
        )
        result.events = run.result.events_sent
        result.redeliveries_skipped = int(((run.owner.try_get("/health") or {}).get("sink") or {})
                                          .get("redeliveries_skipped", 0))  # fmt: skip
        want = identities_of(identities(run.sent, run.sim.existing_buyers))
        ledger, cells = asyncio.run(read_ledger(self.run.pipeline.settings()))
        report = compare(want, ledger_identities(ledger))
        truth = compute_truth(run.sent, run.sim.existing_buyers).totals
        result.log_lost, result.log_doubled = lost_and_doubled(truth, cells)
        got = run.owner.try_get("/api/totals") or []
        for where, rows in (("store", got), ("deltas log", cells)):
            run.result.observations += [f"{where} {c}/{ch} {column}: {g} vs {w} true"
                                        for c, ch, column, g, w in cell_diffs(truth, rows)]  # fmt: skip
        result.identities_checked = report.checked
        result.fenced_skipped = ledger.fenced
        result.ids_lost, result.ids_doubled, result.ids_misattributed = (
            report.lost,
            report.doubled,
            report.misattributed,
        )
        result.examples = report.examples + run.result.observations
        if not result.exact:
            result.examples += [f"fault {f}" for f in run.result.faults]

    def go(self) -> LoopResult:
        try:
            self.run.start(self.records)
            self.kill_rounds()
            self.score()
        finally:
            self.run.stop()
        return self.result


async def read_ledger(settings: Settings) -> tuple[Ledger, list[dict[str, Any]]]:
    """Every deltas message, partition by partition in offset order, counted as the sink counts it:
    the identity moves, and the counters summed per (campaign, channel) as `/api/totals` rows."""
    ledger = Ledger()
    sums: dict[tuple[str, str], list[int]] = {}
    topic = settings.topic(Topic.DELTAS)
    async with side_consumer(settings.bootstrap) as consumer:
        for p in range(settings.partitions):
            tp = TopicPartition(topic, p)
            end = await true_end_offset(consumer, tp)

            def add(record: Any) -> None:
                if not ledger.add(*decode_audit(record.value)):
                    return
                for row in decode_delta_rows(record.value).facts:
                    cell = sums.setdefault((row[0], row[1]), [0] * len(COUNTERS))
                    for i, amount in enumerate(row[5 : 5 + len(COUNTERS)]):
                        cell[i] += amount

            await read_range(consumer, tp, 0, end, add)
    cells = [{"campaign_id": c, "channel": ch, **dict(zip(COUNTERS, row, strict=True))}
             for (c, ch), row in sorted(sums.items())]  # fmt: skip
    return ledger, cells


def _stopped(worker: WorkerProcess) -> bool:
    """The process is frozen by SIGSTOP (state T in /proc)."""
    if worker.process is None:
        return False
    try:
        stat = Path(f"/proc/{worker.process.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "T"


def kill_loop(
    root: Path, *, seeds: list[int], kills: int, workers: int, events: int, user_cache: int = 40
) -> list[LoopResult]:
    return [KillLoop(root, seed=s, kills=kills, workers=workers, events=events, user_cache=user_cache).go()
            for s in seeds]  # fmt: skip


def table(results: list[LoopResult]) -> str:
    head = ["seed", "workers", "events", "kills", "points hit", "lost", "doubled", "ids checked", "ids lost",
            "ids doubled", "misattributed", "zombies fenced", "exact after s", "exact"]  # fmt: skip
    rows = [[str(r.seed), str(r.workers), f"{r.events:,}", str(r.kills), str(sum(r.points.values())), str(r.lost),
             str(r.doubled), f"{r.identities_checked:,}", str(r.ids_lost), str(r.ids_doubled),
             str(r.ids_misattributed), f"{r.zombies}/{r.fenced_skipped}", f"{r.exact_after_s:.1f}",
             "yes" if r.exact else "NO"]
            for r in results]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *rows])


def to_json(results: list[LoopResult]) -> str:
    return json.dumps([{**asdict(r), "exact": r.exact} for r in results], ensure_ascii=False, indent=2)
