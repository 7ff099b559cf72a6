"""`promo bench`: this pipeline against the raw Kafka client's ceiling and its peers, on the same data, in one run.

For each shape (one event per message; collector batches of about 50 events per message) it
produces the simulator's realistic mix, unkeyed, once, to its own input topics; then every system
reads those same topics:
- the ceiling: a plain aiokafka consumer that reads and decodes every message, doing nothing else;
- this pipeline with one worker process, and with two, each timed from ready to the moment
  `campaign_totals` equals the oracle's truth (so the figure is for exact results), with the
  workers' CPU seconds and peak RSS from /proc;
- the peers (streams/lab/peers/): the same job in quixstreams, and naive Faust;
then it measures freshness — a probe event produced → visible in ClickHouse — at a steady 50% and
80% of the one-worker pipeline's measured maximum. Ratios are taken within the run, because these
machines are noisy. No timing is asserted anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.config import INPUT_TOPICS, Settings
from streams.contract.topics import Topic
from streams.kafka import ensure_topics, free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess, try_get_json
from streams.kit.producer import Progress, send_paced, send_records
from streams.kit.simulate import Record, SimConfig, generate
from streams.kit.truth import Truth, compute_truth
from streams.lab.procstats import proc_stats
from streams.users import import_existing

# Share of messages that are collector arrays, and their size (2 + an exponential of this mean).
SHAPES: dict[str, dict[str, Any]] = {
    "single": {"batch_rate": 0.0},
    "batched": {"batch_rate": 1.0, "batch_mean": 48.0, "batch_max": 100},
}
PROBE_CAMPAIGN = "bench_probe"
TARGET_RATIO = 0.4  # of the ceiling
TARGET_PEER = 1.5  # times the quixstreams peer
TARGET_P99_MS = 2000.0  # freshness at 50% load
# Each look is a query through the worker's web server and its store (chdb lives in the worker):
# looking every 50 ms took 10% of the worker's samples at 50% load, so every 20 ms took about a
# quarter of it. A look every 50 ms adds at most 50 ms to a probe's time.
PROBE_POLL_S = 0.05
CATCH_UP_S = 30.0  # at most this long for stage 1 to be within half a second of the traffic
WARMUP_S = 3.0  # steady traffic, once visible, before the freshness probes start


@dataclass
class Throughput:
    shape: str
    system: str
    events: int
    messages: int
    events_s: float
    ratio_to_ceiling: float
    seconds: float
    cpu_s_per_million: float | None = None
    peak_rss_mb: float | None = None
    exact: bool | None = None
    note: str = ""
    # The embedded broker's CPU over the same window: on these 2 cores the broker competes with
    # the workers, and the pipeline's three hops through it cost more than the ceiling's one read.
    broker_cpu_s_per_million: float | None = None


@dataclass
class Freshness:
    shape: str
    load: float
    rate_events_s: float
    probes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    taken_events_s: float = 0.0  # what the worker ingested per second while probed
    probes_sent: int = 0
    longest_send_gap_ms: float = 0.0  # between two probes; 100 ms when the prober keeps its pace


@dataclass
class Report:
    throughput: list[Throughput] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)

    def targets(self) -> list[tuple[str, bool]]:
        """(what, met) for each target of docs/PERFORMANCE.md that this run measured."""
        out: list[tuple[str, bool]] = []
        for shape in dict.fromkeys(r.shape for r in self.throughput):
            rows = {r.system: r for r in self.throughput if r.shape == shape}
            mine = rows.get("pipeline x1")
            if mine is None:
                continue
            best = max((r for name, r in rows.items() if name.startswith("pipeline")), key=lambda r: r.events_s)
            what = f"{shape}: {best.system} at {best.ratio_to_ceiling:.0%} of the ceiling (target {TARGET_RATIO:.0%})"
            ceiling = next((r for name, r in rows.items() if name.startswith("ceiling")), None)
            need = cores_needed(ceiling, mine)
            if need is not None:
                what += (f"; at {need[0]:.1f} CPU us an event (worker {mine.cpu_s_per_million:.1f}, broker "
                         f"{mine.broker_cpu_s_per_million:.1f}) {TARGET_RATIO:.0%} of the ceiling needs "
                         f"{need[1]:.1f} cores, this machine has {os.cpu_count()}")  # fmt: skip
            out.append((what, best.ratio_to_ceiling >= TARGET_RATIO))
            peer = rows.get("quixstreams")
            if peer is not None and peer.events_s > 0:
                times = best.events_s / peer.events_s
                what = f"{shape}: {times:.2f}x the quixstreams peer (target {TARGET_PEER}x)"
                out.append((what, times >= TARGET_PEER))
            out.append((f"{shape}: exact totals at full speed", all(r.exact for n, r in rows.items()
                                                                      if n.startswith("pipeline"))))  # fmt: skip
        for f in self.freshness:
            if f.load == 0.5:
                what = f"{f.shape}: freshness p99 {f.p99_ms:,.0f} ms at 50% load (target <= {TARGET_P99_MS:,.0f} ms)"
                out.append((what, f.p99_ms <= TARGET_P99_MS))
        return out


def cores_needed(ceiling: Throughput | None, pipeline: Throughput) -> tuple[float, float] | None:
    """(CPU us an event, cores) for the pipeline at `TARGET_RATIO` of the ceiling's rate, at the
    pipeline's measured CPU per event (its workers' and the broker's); None when not measured."""
    if ceiling is None or pipeline.cpu_s_per_million is None or pipeline.broker_cpu_s_per_million is None:
        return None
    us = pipeline.cpu_s_per_million + pipeline.broker_cpu_s_per_million
    return us, TARGET_RATIO * ceiling.events_s * us / 1e6


def _broker_cpu(broker: EmbeddedBroker) -> float:
    """CPU seconds the embedded broker has used so far."""
    if broker.process is None:
        raise RuntimeError("the embedded broker is not running")
    return proc_stats(broker.process.pid)[0]


async def _ceiling(bootstrap: str, topics: list[str], partitions: int, messages: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) for a plain consumer to read and decode `messages` messages."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started, cpu0 = time.perf_counter(), time.process_time()
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    try:  # noqa: SIM105 - suppress() would cost a context manager per message here
                        orjson.loads(record.value or b"null")
                    except orjson.JSONDecodeError:
                        pass
                    seen += 1
        return time.perf_counter() - started, time.process_time() - cpu0
    finally:
        await consumer.stop()


@dataclass
class Data:
    """One shape's pre-produced input topics and what the oracle says of them."""

    shape: str
    broker: EmbeddedBroker
    root: Path
    prefix: str
    sent: list[Record]
    existing: list[str]
    truth: Truth

    @property
    def events(self) -> int:
        return self.truth.accepted + sum(self.truth.rejected.values())

    def pipeline(self, name: str) -> Pipeline:
        """A fresh pipeline (own topics, groups and store) reading this data's input topics."""
        return Pipeline(self.broker.url, self.root / name, extra={"PROMO_INPUT_PREFIX": self.prefix})


def produce(shape: str, events: int, root: Path, broker: EmbeddedBroker, seed: int) -> Data:
    prefix = f"b{uuid.uuid4().hex[:6]}.{shape}."
    settings = Settings(broker=broker.url, topic_prefix=prefix)
    sim = generate(SimConfig(events=events, seed=seed, partitions=settings.partitions, unkeyed_rate=1.0,
                             duplicate_rate=0.01, malformed_rate=0.002, **SHAPES[shape]))  # fmt: skip

    async def go() -> list[Record]:
        await ensure_topics(settings)
        return await send_records(settings, sim.records, paced=False)

    sent = asyncio.run(go())
    return Data(shape, broker, root / shape, prefix, sent, list(sim.existing_buyers),
                compute_truth(sent, sim.existing_buyers))  # fmt: skip


def run_pipeline(data: Data, workers: int, ceiling_s: float, timeout_s: float = 1800) -> Throughput:
    pipeline = data.pipeline(f"pipeline-x{workers}")
    settings = pipeline.settings()

    async def prepare() -> None:
        await ensure_topics(settings)
        await import_existing(settings, data.existing)

    asyncio.run(prepare())
    procs = [WorkerProcess(pipeline, "owner", sink=True, loglevel="warn")]
    procs += [WorkerProcess(pipeline, f"helper{i}", sink=False, loglevel="warn") for i in range(1, workers)]
    for proc in procs:
        proc.start()
    owner = procs[0]
    try:
        deadline = time.monotonic() + 60
        while owner.try_get("/health") is None:
            if time.monotonic() > deadline or not all(p.alive for p in procs):
                raise RuntimeError(f"the workers did not start:\n{owner.log()}")
            time.sleep(0.05)
        pids = [p.process.pid for p in procs if p.process is not None]
        cpu0, broker0 = sum(proc_stats(pid)[0] for pid in pids), _broker_cpu(data.broker)
        started = time.monotonic()
        exact = False
        while time.monotonic() - started < timeout_s:
            if owner.try_get("/api/totals") == data.truth.totals:
                exact = True
                break
            if not all(p.alive for p in procs):
                raise RuntimeError(f"a worker died:\n{owner.log()}")
            # Each look is a campaign_totals query on the worker's own store: every 100 ms they
            # were 6% of its samples, a load the peers (which report their own end) do not carry.
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        stats, broker_cpu = [proc_stats(pid) for pid in pids], _broker_cpu(data.broker) - broker0
    finally:
        for proc in procs:
            proc.stop()
    cpu = sum(s[0] for s in stats) - cpu0
    return Throughput(
        shape=data.shape, system=f"pipeline x{workers}", events=data.events, messages=len(data.sent),
        events_s=round(data.events / elapsed), ratio_to_ceiling=round(ceiling_s / elapsed, 3),
        seconds=round(elapsed, 2), cpu_s_per_million=round(cpu / data.events * 1e6, 1),
        peak_rss_mb=round(sum(s[1] for s in stats), 1), exact=exact,
        note="" if workers == 1 else "CPU and RSS summed over the processes",
        broker_cpu_s_per_million=round(broker_cpu / data.events * 1e6, 1),
    )  # fmt: skip


# -- freshness ------------------------------------------------------------------------------------


def _probe_value(n: int, run_id: str) -> bytes:
    ident = f"probe-{run_id}-{n}"
    doc = {"event_id": ident, "ts": int(time.time() * 1000), "user_id": ident, "campaign_id": PROBE_CAMPAIGN,
           "channel": "app", "entry": "app_home", "city_tier": 1, "action": "view"}  # fmt: skip
    return orjson.dumps(doc)


@dataclass
class ProbeResult:
    """What a probe process saw: each probe's latency (produced -> visible) and how sending went."""

    latency_ms: list[float]
    sent: int
    longest_send_gap_ms: float  # the longest time between two probes leaving (target: every_s)


class Prober:
    """Sends one probe click every `every_s` and records when each becomes visible in the totals.

    It runs in a process of its own (`probe`). In the bench's process it shared the event loop
    with the paced traffic, which held it for seconds at a time when catching up: probes then went
    unsent (gaps of up to 6.4 s in a 30 s run) and their times included the bench's own waiting."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, url: str, every_s: float = 0.1) -> None:
        self.bootstrap, self.topic, self.partitions, self.url = bootstrap, topic, partitions, url
        self.every_s = every_s
        self.sent_at: list[float] = []
        self.latency_ms: list[float] = []
        self.stop = threading.Event()

    def visible(self) -> int:
        rows = try_get_json(f"{self.url}/api/totals?campaign={PROBE_CAMPAIGN}")
        if not isinstance(rows, list):  # not answering yet, or 404 until the first probe event is written
            return 0
        return sum(int(r["interactions"]) for r in rows)

    def watch(self) -> None:
        seen = 0
        while not self.stop.is_set() or seen < len(self.sent_at):
            count = self.visible()
            now = time.monotonic()
            for n in range(seen, min(count, len(self.sent_at))):
                self.latency_ms.append((now - self.sent_at[n]) * 1000)
            seen = max(seen, count)
            if self.stop.is_set() and now - (self.sent_at[-1] if self.sent_at else now) > 30:
                break  # a probe that never arrives must not hang the bench
            time.sleep(PROBE_POLL_S)

    async def send(self, seconds: float) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        await producer.start()
        run_id = uuid.uuid4().hex[:6]
        try:
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < seconds:
                value = _probe_value(n, run_id)
                self.sent_at.append(time.monotonic())
                await producer.send_and_wait(self.topic, value, partition=n % self.partitions)
                n += 1
                await asyncio.sleep(max(0.0, started + n * self.every_s - time.monotonic()))
        finally:
            await producer.stop()

    def run(self, seconds: float) -> ProbeResult:
        watcher = threading.Thread(target=self.watch, name="bench-prober", daemon=True)
        watcher.start()
        try:
            asyncio.run(self.send(seconds))
        finally:
            self.stop.set()
            watcher.join(timeout=60)
        gaps = [b - a for a, b in itertools.pairwise(self.sent_at)]
        return ProbeResult(self.latency_ms, len(self.sent_at), round(max(gaps, default=0.0) * 1000, 1))


def _probe_main(bootstrap: str, topic: str, partitions: int, url: str, seconds: float, out: Any) -> None:
    result = Prober(bootstrap, topic, partitions, url).run(seconds)
    out.send(asdict(result))
    out.close()


async def probe(settings: Settings, url: str, seconds: float) -> ProbeResult:
    """Run a `Prober` for `seconds` in a process of its own (spawned: none of this process is copied)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    args = (settings.bootstrap, settings.topic(Topic.CLICKS), settings.partitions, url, seconds, send)
    child = context.Process(target=_probe_main, args=args, name="bench-probe", daemon=True)
    child.start()
    send.close()
    try:
        if await asyncio.to_thread(receive.poll, seconds + 120):
            with contextlib.suppress(EOFError):  # EOF: the child died before it sent anything
                return ProbeResult(**receive.recv())
        await asyncio.to_thread(child.join, 10)
        raise RuntimeError(f"the probe process gave no result (exit code {child.exitcode})")
    finally:
        receive.close()
        await asyncio.to_thread(child.join, 10)  # the traffic this loop sends goes on meanwhile
        if child.is_alive():
            child.kill()
            await asyncio.to_thread(child.join)


def _steady(records: list[Record], rate: float) -> list[Record]:
    """The records re-timed to `rate` events per second (a collector batch counts its events)."""
    out, clock = [], 0.0
    for record in records:
        out.append(replace(record, send_at_s=clock))
        events = record.value.count(b'"event_id"') or 1
        clock += events / rate
    return out


def run_freshness(
    shape: str, root: Path, broker: EmbeddedBroker, load: float, max_events_s: float, seconds: float, seed: int
) -> Freshness:
    rate = max(1.0, load * max_events_s)
    sim = generate(SimConfig(events=max(200, int(rate * (seconds + 60))), seed=seed, unkeyed_rate=1.0,
                             duplicate_rate=0.01, malformed_rate=0.002, **SHAPES[shape]))  # fmt: skip
    pipeline = Pipeline(broker.url, root / shape / f"fresh-{int(load * 100)}")
    settings = pipeline.settings()
    owner = WorkerProcess(pipeline, "owner", sink=True, loglevel="warn")

    async def prepare() -> None:
        await ensure_topics(settings)
        await import_existing(settings, list(sim.existing_buyers))

    asyncio.run(prepare())
    owner.start()
    try:
        deadline = time.monotonic() + 60
        while owner.try_get("/health") is None:
            if time.monotonic() > deadline or not owner.alive:
                raise RuntimeError(f"the worker did not start:\n{owner.log()}")
            time.sleep(0.05)

        async def traffic() -> tuple[ProbeResult, float]:
            records = _steady(sim.records, rate)
            progress = Progress()
            stream = asyncio.create_task(send_paced(settings, records, progress=progress))
            # Probes measure the steady state, not the start-up (group join, partition rebuilds):
            # they start once the traffic is visible end to end and stage 1 has worked off what
            # piled up meanwhile (with 3 s of warm-up only, the first probes of a collector-batch
            # run waited behind that backlog for 7 s), plus a few seconds. A worker that never
            # catches up is probed anyway, after CATCH_UP_S: its taken/s then shows the backlog.
            deadline = time.monotonic() + 120
            while not await asyncio.to_thread(owner.try_get, "/api/totals") and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            per_s = len(records) / max(records[-1].send_at_s, 1e-3)  # records a second
            deadline = time.monotonic() + CATCH_UP_S
            while time.monotonic() < deadline:
                behind = progress.records - await asyncio.to_thread(_ingested, owner, "messages")
                if behind <= 0.5 * per_s:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(WARMUP_S)
            try:
                before, started = await asyncio.to_thread(_ingested, owner), time.monotonic()
                result = await probe(settings, owner.url, seconds)
                # The load the worker actually took while probed, not only the rate asked for.
                taken = (await asyncio.to_thread(_ingested, owner) - before) / (time.monotonic() - started)
            finally:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
            return result, taken

        result, taken = asyncio.run(traffic())
    finally:
        owner.stop()
    lat = sorted(result.latency_ms)
    if not lat:
        raise RuntimeError(f"no probe became visible:\n{owner.log()}")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return Freshness(shape, load, round(rate), len(lat), round(statistics.median(lat), 1), round(p99, 1),
                     round(lat[-1], 1), round(taken), result.sent, result.longest_send_gap_ms)  # fmt: skip


def _ingested(worker: WorkerProcess, what: str = "elements") -> int:
    """Events ("elements") or input messages ("messages") stage 1 of `worker` has taken in so far."""
    health = worker.try_get("/health")
    if not health or "ingest" not in health:
        raise RuntimeError(f"the worker's /health did not answer:\n{worker.log()}")
    return int(health["ingest"][what])


# -- the run --------------------------------------------------------------------------------------

Peer = Callable[[Data, float], Throughput]


def _peer(kind: str, label: str) -> Peer:
    def run(data: Data, ceiling_s: float) -> Throughput:
        from streams.lab.peers import run_peer  # quixstreams is the `bench` extra

        result = run_peer(kind, Settings(broker=data.broker.url).bootstrap, data.prefix, Settings().partitions,
                          data.root / f"peer-{kind}", data.existing, len(data.sent), data.truth.totals,
                          timeout_s=3600)  # fmt: skip
        return Throughput(
            shape=data.shape, system=label, events=data.events, messages=len(data.sent),
            events_s=round(data.events / result.seconds), ratio_to_ceiling=round(ceiling_s / result.seconds, 3),
            seconds=round(result.seconds, 2), cpu_s_per_million=round(result.cpu_s / data.events * 1e6, 1),
            peak_rss_mb=round(result.peak_rss_mb, 1), exact=result.exact, note="docs/PEERS.md",
        )  # fmt: skip

    return run


def peers() -> dict[str, Peer]:
    """The peer implementations to compare with (streams/lab/peers/, docs/PEERS.md), by table label."""
    return {"quixstreams": _peer("quix", "quixstreams"), "naive Faust": _peer("naive_faust", "naive Faust")}


def run(
    events: int,
    shapes: list[str],
    work_dir: Path,
    *,
    seed: int = 21,
    workers: tuple[int, ...] = (1, 2),
    with_peers: bool = True,
    freshness_s: float = 20.0,
    on_row: Callable[[Throughput | Freshness], None] | None = None,
) -> Report:
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    report = Report()

    def add(row: Throughput | Freshness) -> None:
        (report.throughput if isinstance(row, Throughput) else report.freshness).append(row)  # type: ignore[arg-type]
        if on_row is not None:
            on_row(row)

    with EmbeddedBroker(free_port(), log_path=work_dir / "broker.log") as broker:
        for shape in shapes:
            data = produce(shape, events, work_dir, broker, seed)
            topics = [f"{data.prefix}{t}" for t in INPUT_TOPICS]
            bootstrap = Settings(broker=broker.url).bootstrap
            broker0 = _broker_cpu(broker)
            ceiling_s, cpu = asyncio.run(_ceiling(bootstrap, topics, Settings().partitions, len(data.sent)))
            broker_cpu = _broker_cpu(broker) - broker0
            add(Throughput(shape, "ceiling (aiokafka read+decode)", data.events, len(data.sent),
                           round(data.events / ceiling_s), 1.0, round(ceiling_s, 2),
                           cpu_s_per_million=round(cpu / data.events * 1e6, 1),
                           broker_cpu_s_per_million=round(broker_cpu / data.events * 1e6, 1)))  # fmt: skip
            best = 0.0
            for n in workers:
                row = run_pipeline(data, n, ceiling_s)
                best = max(best, row.events_s) if n == 1 else best
                add(row)
            if with_peers:
                for peer in peers().values():
                    add(peer(data, ceiling_s))
            if freshness_s > 0 and best > 0:
                for load in (0.5, 0.8):
                    add(run_freshness(shape, work_dir, broker, load, best, freshness_s, seed + 1))
    return report


def _grid(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in [head, *body])


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(report: Report) -> str:
    head = ["shape", "system", "events", "messages", "events/s", "of ceiling", "seconds", "CPU s/M ev",
            "broker CPU s/M ev", "peak RSS MB", "exact"]  # fmt: skip
    body = [[r.shape, r.system, f"{r.events:,}", f"{r.messages:,}", f"{r.events_s:,.0f}", f"{r.ratio_to_ceiling:.3f}",
             f"{r.seconds:.2f}", _opt(r.cpu_s_per_million, ".1f"), _opt(r.broker_cpu_s_per_million, ".1f"),
             _opt(r.peak_rss_mb, ".0f"),
             "-" if r.exact is None else ("yes" if r.exact else "NO")] for r in report.throughput]  # fmt: skip
    parts = [_grid(head, body)]
    if report.freshness:
        fhead = ["shape", "load", "events/s", "taken/s", "probes", "p50 ms", "p99 ms", "max ms", "send gap ms"]
        fbody = [[f.shape, f"{f.load:.0%}", f"{f.rate_events_s:,.0f}", f"{f.taken_events_s:,.0f}",
                  f"{f.probes}/{f.probes_sent}", f"{f.p50_ms:,.0f}", f"{f.p99_ms:,.0f}", f"{f.max_ms:,.0f}",
                  f"{f.longest_send_gap_ms:,.0f}"] for f in report.freshness]  # fmt: skip
        parts += ["", "freshness (probe produced -> visible in ClickHouse)", _grid(fhead, fbody)]
    targets = report.targets()
    if targets:
        parts += ["", "targets"] + [f"  [{'met' if ok else 'NOT met'}] {what}" for what, ok in targets]
    return "\n".join(parts)


def to_json(report: Report) -> str:
    doc = {
        "throughput": [asdict(r) for r in report.throughput],
        "freshness": [asdict(f) for f in report.freshness],
        "targets": [{"target": what, "met": ok} for what, ok in report.targets()],
    }
    return json.dumps(doc, indent=2)


# -- memory per distinct user ---------------------------------------------------------------------


def user_memory(users: int, cache: int | None = None, batch: int = 10_000) -> dict[str, float]:
    """Stage 2 with `users` distinct users (one click each), in THIS process: peak RSS.

    The real stage 2: routed messages of `batch` events folded by a `RoutedPartition` whose users
    live in a `UserCache` of `cache` users (default: the worker's setting; 0: all in memory) in
    front of a RocksDB snapshot in a temporary directory, saved after every message as the agent
    does after a batch's output is acknowledged. Run it in a fresh process per size
    (`memory_table` does), so sizes do not share a heap."""
    import resource
    import tempfile

    from streams.aggregate.fold import PartitionOutput, RoutedPartition
    from streams.aggregate.state import Snapshot, UserCache
    from streams.contract.events import Event, Kind
    from streams.contract.wire import encode_routed, event_item

    settings = Settings(partitions=1)
    capacity = settings.user_cache if cache is None else cache
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="promo-memory-") as tmp:
        snapshot = Snapshot.open(Path(tmp), 0)
        if snapshot is None:
            raise RuntimeError(f"cannot open a RocksDB snapshot under {tmp}")
        state = RoutedPartition(0, settings.stages)
        state.users = UserCache(snapshot, capacity)
        for offset, first in enumerate(range(0, users, batch)):
            items = []
            for i in range(first, min(users, first + batch)):
                ev = Event(Kind.CLICK, f"e{i:016x}", 1_762_790_400_000 + i, f"jd_{i:010x}", "double11_main",
                           "wechat", entry="moments", city_tier=3, action="view")  # fmt: skip
                items.append(event_item("promo.clicks:0", i, 0, ev))
            state.apply(offset, encode_routed(items, 1_762_790_400_000, 1), PartitionOutput())
            state.users.save(state.next_offset, state.src_seen, 1, state.src_watermark)
        in_memory, on_disk = len(state.users), state.users.evicted
        snapshot.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "users": users,
        "cache": capacity,
        "in_memory": in_memory,
        "evicted": on_disk,
        "peak_rss_mb": round(peak / 1024, 1),
        "bytes_per_user": round((peak - before) * 1024 / users),
        "seconds": round(time.monotonic() - started, 1),
    }


def memory_table(sizes: list[int], cache: int | None = None) -> list[dict[str, float]]:
    import subprocess
    import sys

    rows = []
    for n in sizes:
        code = (f"import json; from streams.lab.bench import user_memory; "
                f"print(json.dumps(user_memory({int(n)}, {cache!r})))")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
        rows.append(json.loads(done.stdout))
    return rows
