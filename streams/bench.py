"""`promo bench`: this pipeline against the raw Kafka client's ceiling, on the same data, in one run.

For each shape (one event per message; collector batches of many events per message) it produces
the simulator's realistic mix, unkeyed, once; then measures
- the ceiling: a plain aiokafka consumer that reads and decodes every message, doing nothing else;
- the pipeline: one `promo worker` started on the produced data, timed from ready to the moment
  `campaign_totals` equals the oracle's truth (so the number is for exact results), with the
  worker's CPU seconds and peak RSS from /proc.
Ratios are taken within the run, because these machines are noisy. No timing is asserted anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.harness import Pipeline, WorkerProcess
from streams.kafka import EmbeddedBroker, ensure_topics, free_port
from streams.producer import import_existing, send_records
from streams.simulate import SimConfig, generate
from streams.truth import compute_truth

SHAPES = {"single": 0.0, "batched": 1.0}  # share of messages that are collector arrays


@dataclass
class Row:
    shape: str
    events: int
    messages: int
    ceiling_events_s: float
    pipeline_events_s: float
    ratio_to_ceiling: float
    pipeline_s: float
    cpu_s_per_million: float
    peak_rss_mb: float
    exact: bool


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return cpu, peak_kb / 1024


async def _ceiling(bootstrap: str, topics: list[str], partitions: int, messages: int) -> float:
    """Seconds for a plain consumer to read and decode `messages` messages."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
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
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def run_shape(shape: str, events: int, root: Path, broker: EmbeddedBroker, seed: int) -> Row:
    pipeline = Pipeline(broker.url, root / shape)
    settings = pipeline.settings()
    sim = generate(SimConfig(events=events, seed=seed, partitions=settings.partitions, batch_rate=SHAPES[shape],
                             duplicate_rate=0.01, malformed_rate=0.002))  # fmt: skip

    async def produce() -> list[Any]:
        await ensure_topics(settings)
        await import_existing(settings, sim.existing_buyers)
        return await send_records(settings, sim.records, paced=False)

    sent = asyncio.run(produce())
    truth = compute_truth(sent, sim.existing_buyers)
    n_events = truth.accepted + sum(truth.rejected.values())
    topics = [settings.topic(k) for k in ("clicks", "shares", "orders")]
    ceiling_s = asyncio.run(_ceiling(settings.bootstrap, topics, settings.partitions, len(sent)))

    worker = WorkerProcess(pipeline, "bench", sink=True, loglevel="warn").start()
    try:
        deadline = time.monotonic() + 60
        while worker.try_get("/health") is None:
            if time.monotonic() > deadline or not worker.alive:
                raise RuntimeError(f"the worker did not start:\n{worker.log()}")
            time.sleep(0.05)
        assert worker.process is not None
        cpu0, _ = _proc_stats(worker.process.pid)
        started = time.monotonic()
        exact = False
        while time.monotonic() - started < 600:
            if worker.try_get("/api/totals") == truth.totals:
                exact = True
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu1, peak_mb = _proc_stats(worker.process.pid)
    finally:
        worker.stop()
    return Row(
        shape=shape, events=n_events, messages=len(sent),
        ceiling_events_s=round(n_events / ceiling_s), pipeline_events_s=round(n_events / elapsed),
        ratio_to_ceiling=round(ceiling_s / elapsed, 3), pipeline_s=round(elapsed, 2),
        cpu_s_per_million=round((cpu1 - cpu0) / n_events * 1e6, 1), peak_rss_mb=round(peak_mb, 1), exact=exact,
    )  # fmt: skip


def run(events: int, shapes: list[str], work_dir: Path, seed: int = 21) -> list[Row]:
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    with EmbeddedBroker(free_port(), log_path=work_dir / "broker.log") as broker:
        return [run_shape(shape, events, work_dir, broker, seed) for shape in shapes]


def table(rows: list[Row]) -> str:
    head = ["shape", "events", "messages", "ceiling ev/s", "pipeline ev/s", "ratio", "pipeline s", "CPU s/M ev",
            "peak RSS MB", "exact"]  # fmt: skip
    body = [[r.shape, f"{r.events:,}", f"{r.messages:,}", f"{r.ceiling_events_s:,.0f}", f"{r.pipeline_events_s:,.0f}",
             f"{r.ratio_to_ceiling:.3f}", f"{r.pipeline_s:.2f}", f"{r.cpu_s_per_million:.1f}", f"{r.peak_rss_mb:.0f}",
             "yes" if r.exact else "NO"] for r in rows]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in [head, *body])


def to_json(rows: list[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)
