"""`promo chaos`: fault scenarios against real processes, every total compared with ground truth.

Each scenario gets its own embedded broker and store, two workers (the store's owner and a helper),
and a paced simulated stream; faults are injected on a schedule while events flow; then the run
waits for the pipeline to settle and compares every cell of `campaign_totals` and every rejection
count with the oracle. `lost` and `doubled` add up the cells below and above the truth.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from streams.contract.facts import COUNTERS
from streams.kafka import ensure_topics, free_port, read_range, side_consumer, true_end_offset
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import Record, SimConfig, Simulation, generate
from streams.kit.truth import compute_truth
from streams.lab.hostile import corpus, duplicate_flood
from streams.users import import_existing


@dataclass
class Result:
    scenario: str
    events_sent: int = 0
    messages_sent: int = 0
    faults: list[str] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_match: bool = False
    recovery_s: float = 0.0
    users_read_back: int = 0  # by the owner's stage 2 from its snapshots: evicted users that returned
    observations: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.rejected_match


def cell_diffs(truth: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[tuple[str, str, str, int, int]]:
    """(campaign, channel, counter, got, want) of each (campaign, channel, counter) cell off the truth."""
    want = {(r["campaign_id"], r["channel"]): r for r in truth}
    have = {(r["campaign_id"], r["channel"]): r for r in got}
    out = []
    for key in sorted(want.keys() | have.keys()):
        for column in COUNTERS:
            g, w = int(have.get(key, {}).get(column, 0)), int(want.get(key, {}).get(column, 0))
            if g != w:
                out.append((key[0], key[1], column, g, w))
    return out


def lost_and_doubled(truth: list[dict[str, Any]], got: list[dict[str, Any]]) -> tuple[int, int]:
    """Sum of shortfalls and of excesses over all (campaign, channel, column) cells."""
    diffs = [g - w for *_, g, w in cell_diffs(truth, got)]
    return -sum(d for d in diffs if d < 0), sum(d for d in diffs if d > 0)


class Run:
    """One scenario's processes and bookkeeping."""

    def __init__(
        self, name: str, root: Path, *, events: int, duration_s: float, seed: int, user_cache: int | None = None
    ) -> None:
        self.result = Result(name)
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.fault_file = self.root / "fault"
        self.broker = EmbeddedBroker(free_port(), log_path=self.root / "broker.log")
        extra = {"PROMO_FAULT_FILE": str(self.fault_file)}
        if user_cache is not None:  # a small cache makes users leave memory and come back from disk
            extra["PROMO_USER_CACHE"] = str(user_cache)
        self.pipeline = Pipeline(self.broker.url, self.root, extra=extra)
        self.duration_s = duration_s
        self.sim_config = SimConfig(events=events, duration_s=duration_s, seed=seed, partitions=4)
        self.sim = generate(self.sim_config)
        self.owner = WorkerProcess(self.pipeline, "owner", sink=True)
        self.helpers = [WorkerProcess(self.pipeline, "helper", sink=False)]
        self.sent: list[Record] = []
        self.sending = threading.Event()
        self.started = 0.0
        self.cleared = 0.0

    # -- set-up ------------------------------------------------------------------------------
    def start(self, records: list[Record] | None = None) -> None:
        self.broker.start()
        settings = self.pipeline.settings()
        asyncio.run(ensure_topics(settings))
        self.owner.start()
        for helper in self.helpers:
            helper.start()
        self.wait_ready(self.owner)
        self.send(records if records is not None else self.sim.records)

    def send(self, to_send: list[Record]) -> None:
        """In the background: the existing buyers' import, then `to_send` paced; `sending` until done."""
        settings = self.pipeline.settings()

        def produce() -> None:
            async def go() -> None:
                await import_existing(settings, self.sim.existing_buyers)
                self.sent.extend(await send_records(settings, to_send, paced=True))

            try:
                asyncio.run(go())
            finally:
                self.sending.clear()

        self.sending.set()
        self.started = time.monotonic()
        threading.Thread(target=produce, name="chaos-producer", daemon=True).start()

    def wait_ready(self, worker: WorkerProcess, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.try_get("/health") is not None:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{worker.name} did not start:\n{worker.log()}")

    def at(self, fraction: float) -> None:
        """Sleep until `fraction` of the sending time has passed."""
        delay = self.started + fraction * self.duration_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def fault(self, text: str) -> None:
        self.result.faults.append(f"{time.monotonic() - self.started:5.1f}s {text}")

    # -- faults ------------------------------------------------------------------------------
    def kill(self, worker: WorkerProcess, why: str, *, restart_after_s: float = 1.0) -> None:
        worker.kill()
        self.fault(f"SIGKILL {worker.name} ({why})")
        time.sleep(restart_after_s)
        worker.start()
        if worker.sink:
            self.wait_ready(worker)

    def kill_during_write(self, worker: WorkerProcess) -> None:
        """Stall the next writes, wait until one is in flight, and kill the writer right then."""
        self.fault_file.write_text("stall:3")
        deadline = time.monotonic() + 60
        caught = False
        while time.monotonic() < deadline:
            health = worker.try_get("/health") or {}
            if health.get("sink", {}).get("writing"):
                caught = True
                break
            time.sleep(0.05)
        worker.kill()
        self.fault_file.unlink(missing_ok=True)
        self.fault(f"SIGKILL {worker.name} during a ClickHouse write" + ("" if caught else " (no write seen)"))
        time.sleep(1.0)
        worker.start()
        self.wait_ready(worker)

    def kill_during_rebalance(self) -> None:
        """A worker joins; while the group rebalances, an existing worker is killed."""
        joiner = WorkerProcess(self.pipeline, f"joiner{len(self.helpers)}", sink=False).start()
        self.helpers.append(joiner)
        time.sleep(0.8)  # inside the join: the group's rebalance timeout is 1 s here
        self.kill(self.helpers[0], "during a rebalance, as another worker joins")

    # -- settle and score --------------------------------------------------------------------
    def settle(self, timeout: float = 240) -> None:
        while self.sending.is_set():
            time.sleep(0.2)
        truth = compute_truth(self.sent, self.sim.existing_buyers)
        self.cleared = max(self.cleared, time.monotonic())
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        rejected: Counter[str] = Counter()
        while time.monotonic() < deadline:
            got = self.owner.try_get("/api/totals") or got
            # Both: a last batch may carry only rejections (duplicates) after the totals are whole.
            rejected = self._rejected() or rejected
            if got == truth.totals and dict(sorted(rejected.items())) == truth.rejected:
                break
            time.sleep(0.5)
        self.result.recovery_s = round(time.monotonic() - self.cleared, 1)
        result = self.result
        result.lost, result.doubled = lost_and_doubled(truth.totals, got)
        result.rejected = dict(sorted(rejected.items()))
        result.rejected_match = result.rejected == truth.rejected
        if not result.rejected_match:
            result.observations.append(f"expected rejections {truth.rejected}, got {result.rejected}")
        result.messages_sent = len(self.sent)
        users = ((self.owner.try_get("/health") or {}).get("aggregate") or {}).get("users") or {}
        result.users_read_back = int(users.get("read_back", 0))
        if users:
            result.observations.append(f"owner's user cache: {users}")
        result.events_sent = truth.accepted + sum(truth.rejected.values())
        if not result.exact:
            evidence = self.dump_evidence()
            result.observations.append(f"evidence for the inexact result in {evidence}")

    def _rejected(self) -> Counter[str]:
        rejected: Counter[str] = Counter()
        for row in self.owner.try_get("/api/rejections") or []:
            rejected[row["reason"]] += int(row["rejected"])
        return rejected

    def dump_evidence(self) -> Path:
        """What an inexact run needs to be explained offline: every record sent (in send order) and
        every record of the pipeline's own topics, as JSON lines with values in base64."""
        out = self.root / "evidence"
        out.mkdir(exist_ok=True)
        with (out / "sent.jsonl").open("w") as f:
            for r in self.sent:
                f.write(json.dumps({"kind": r.kind, "partition": r.partition, "ts": r.timestamp_ms,
                                    "value": base64.b64encode(r.value).decode()}) + "\n")  # fmt: skip
        settings = self.pipeline.settings()

        async def dump(kind: str) -> None:
            topic = settings.topic(kind)
            async with side_consumer(settings.bootstrap) as consumer:
                with (out / f"{kind}.jsonl").open("w") as f:
                    for p in range(settings.partitions):
                        tp = TopicPartition(topic, p)
                        end = await true_end_offset(consumer, tp)

                        def write(record: Any, p: int = p) -> None:
                            headers = {k: v.decode(errors="replace") for k, v in record.headers}
                            value = base64.b64encode(record.value or b"").decode()
                            doc = {"partition": p, "offset": record.offset, "headers": headers, "value": value}
                            f.write(json.dumps(doc) + "\n")

                        await read_range(consumer, tp, 0, end, write)

        for kind in ("dlq", "routed", "deltas"):
            asyncio.run(dump(kind))
        return out

    def stop(self) -> None:
        for worker in [self.owner, *self.helpers]:
            worker.stop()
        self.broker.stop()


# -- the scenarios ------------------------------------------------------------------------------


def worker_kills(run: Run) -> None:
    run.at(0.15)
    run.kill(run.helpers[0], "random moment")
    run.at(0.3)
    run.kill_during_write(run.owner)
    run.at(0.45)
    run.kill_during_rebalance()
    run.at(0.6)
    run.kill(run.owner, "random moment")
    run.at(0.75)
    for helper in run.helpers:
        run.kill(helper, "random moment", restart_after_s=0.3)
    run.at(0.85)
    run.kill_during_write(run.owner)


def broker_replaced(run: Run) -> None:
    """Issue 18: the broker's log is lost (an in-memory broker restarted, a topic recreated) while the
    workers keep their data directory. The same users import and a new stream follow, on a new store:
    the old stage-2 snapshots must be discarded (a warning each) and the new totals exact. Scored on
    the second stream; the first must have been exact too."""
    run.settle()
    if not run.result.exact:
        run.result.observations.append(f"the first stream was not exact: lost {run.result.lost}")
        return
    for worker in [run.owner, *run.helpers]:
        worker.stop()
    run.broker.stop()
    run.broker.start()
    run.fault("broker replaced: its log is gone; the data directory (snapshots) kept; a new store")
    run.pipeline.extra["PROMO_CLICKHOUSE"] = f"chdb://{run.root / 'store-after'}"
    asyncio.run(ensure_topics(run.pipeline.settings()))
    for worker in [run.owner, *run.helpers]:
        worker.start()
    run.wait_ready(run.owner)
    second = generate(replace(run.sim_config, seed=run.sim_config.seed + 1000))
    run.sim = Simulation(records=second.records, existing_buyers=run.sim.existing_buyers)  # the same import
    run.sent = []
    run.result = Result(run.result.scenario, faults=run.result.faults)
    run.send(run.sim.records)
    run.at(0.5)
    discarded = sum(w.log(tail=10**7).count("discarding the state snapshot") for w in [run.owner, *run.helpers])
    run.result.observations.append(f"old snapshots discarded: {discarded}")


def broker_pause(run: Run) -> None:
    run.at(0.3)
    run.broker.pause()
    run.fault("SIGSTOP broker for 8 s (it keeps its memory)")
    time.sleep(8)
    run.broker.resume()
    run.fault("SIGCONT broker")
    run.cleared = time.monotonic()


def clickhouse_fault(run: Run, spec: str, seconds: float, what: str) -> None:
    """Make the owner's ClickHouse writes fail or stall for a while, and look at /health meanwhile."""
    run.at(0.3)
    run.fault_file.write_text(spec)
    run.fault(f"ClickHouse writes {what} for {seconds:.0f} s")
    time.sleep(seconds / 2)
    health = run.owner.try_get("/health") or {}
    sink = health.get("sink", {})
    run.result.observations.append(
        f"during the fault /health ok={health.get('ok')} failures={sink.get('failures')} "
        f"last_error={sink.get('last_error', '')[:60]!r}"
    )
    time.sleep(seconds / 2)
    run.fault_file.unlink()
    run.fault("ClickHouse works again")
    run.cleared = time.monotonic()


def clickhouse_outage(run: Run) -> None:
    clickhouse_fault(run, "fail", 8, "fail")


def clickhouse_stall(run: Run) -> None:
    clickhouse_fault(run, "stall:6", 10, "stall 6 s each")


def hostile_records(sim: Simulation, duration_s: float) -> list[Record]:
    """The simulator's stream with the hostile corpus and a duplicate flood mixed in."""
    records = list(sim.records)
    # Around the middle, with event times of the middle: hostile, but neither late nor future
    # unless the case means to be.
    half = len(records) // 2
    middle = records[half]
    cases = corpus(middle.timestamp_ms)
    flood_value = next(r.value for r in records[half:] if r.kind == "clicks" and r.value.startswith(b"{"))
    cases += duplicate_flood(flood_value, 300)
    injected = [replace(middle, kind=case.kind, value=case.value, key=None, partition=i % 4)
                for i, case in enumerate(cases)]  # fmt: skip
    return records[:half] + injected + records[half:]


SCENARIOS: dict[str, Callable[[Run], None]] = {
    "worker-kills": worker_kills,
    "broker-pause": broker_pause,
    "broker-replaced": broker_replaced,
    "clickhouse-outage": clickhouse_outage,
    "clickhouse-stall": clickhouse_stall,
    "hostile-input": lambda run: None,
}


def run_scenario(name: str, root: Path, *, short: bool, seed: int = 7, user_cache: int | None = None) -> Result:
    events, duration = (6_000, 16.0) if short else (30_000, 40.0)
    run = Run(name, root, events=events, duration_s=duration, seed=seed, user_cache=user_cache)
    try:
        run.start(hostile_records(run.sim, duration) if name == "hostile-input" else None)
        if name == "hostile-input":
            run.result.faults.append(f"{len(corpus(0))} hostile kinds + a flood of 300 duplicates")
        SCENARIOS[name](run)
        run.settle()
    finally:
        run.stop()
    return run.result


def table(results: list[Result]) -> str:
    head = ["scenario", "events sent", "faults", "lost", "doubled", "rejected by reason", "recovery s", "exact"]
    rows = [
        [r.scenario, f"{r.events_sent:,}", str(len(r.faults)), str(r.lost), str(r.doubled),
         " ".join(f"{k}={v}" for k, v in r.rejected.items()), f"{r.recovery_s:.1f}", "yes" if r.exact else "NO"]
        for r in results
    ]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *rows]]
    return "\n".join(lines)


def markdown(results: list[Result]) -> str:
    lines = ["| scenario | events sent | faults injected | lost | doubled | rejected by reason | recovery s | exact |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        rejected = ", ".join(f"{k} {v}" for k, v in r.rejected.items())
        faults = "<br>".join(r.faults)
        lines.append(f"| {r.scenario} | {r.events_sent:,} | {faults} | {r.lost} | {r.doubled} | {rejected} "
                     f"| {r.recovery_s:.1f} | {'yes' if r.exact else 'NO'} |")  # fmt: skip
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    return json.dumps([{**asdict(r), "exact": r.exact} for r in results], ensure_ascii=False, indent=2)
