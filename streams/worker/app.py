"""The one Faust app, built from settings: two agents, the ClickHouse sink, and a small read API.

- `ingest` reads `clicks`, `shares`, `orders`; `aggregate` reads `routed` (the stages:
  streams/ingest/stage.py, streams/aggregate/fold.py).
- When `settings.sink` is on, the process also runs the sink (streams/sink/writer.py) and serves
  `/api/totals`, `/api/rejections` and `/health` on its web port (127.0.0.1 unless told otherwise),
  and the local view of the dashboards on its view port (streams/dashboards/view/).
- Every worker samples each stage's lag about once a second and logs a stage that has input waiting
  and processes nothing for `stall_after_s` (streams/worker/stall.py); /health answers 503 while one does.
  With an embedded store this process owns it, and writes `<store>.owner.json` so that `promo
  totals` and other readers ask it over HTTP instead of trying to open the store themselves.
- Every worker probes the broker every 2 s on the side (streams/worker/broker_watch.py): a broker
  that does not answer, or came back without its log, is a state of `status()` like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka import ConsumerRecord, TopicPartition
from faust.web import Request, Response, View

from streams.alerts.freshness import PositionClock, heartbeat, keyed, undated_keys
from streams.alerts.runner import AlertRunner, banner_alerts
from streams.campaigns import Campaign
from streams.config import INPUT_TOPICS, Settings, request_timeout_s
from streams.contract.topics import INPUTS, Topic
from streams.dashboards.view.server import attach_view
from streams.errors import SinkError
from streams.kafka import follow_partition, topic_specs
from streams.sink.clickhouse import ClickHouseStore
from streams.sink.writer import DeltaSink
from streams.statelog import StateLog
from streams.worker.agents.aggregate import AggregateAgent
from streams.worker.agents.base import BatchAgent
from streams.worker.agents.ingest import IngestAgent
from streams.worker.alerting import attach_alert_pages, attach_alerts, attach_replay_pages
from streams.worker.broker_watch import PROBE_EVERY_S, BrokerWatch, probe_broker, quiet_aiokafka_bootstrap_errors
from streams.worker.pauses import GcPauses
from streams.worker.stall import Change, StallWatch
from streams.worker.transport import BatchConsumer, PromoApp, fetch_answers

log = logging.getLogger(__name__)


def _iso_utc(value: Any) -> Any:
    """A time of a UTC column as ISO 8601 with its zone (the client returns them naive); else as it is."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


# Per partition: (log end, next offset to process), each None when unknown.
Positions = dict[TopicPartition, tuple[int | None, int | None]]


# The pipeline's state as a number for Grafana's state panel: 0 all well, 1 numbers late or not yet
# there, 2 numbers stopped (3, no heartbeat, is the panel's own: no row for 30 s), 4 the Kafka broker
# does not answer, 5 it came back without its log (the worker must be restarted). The broker states
# have their own numbers: the panel shows a text per number, and each needs a different fix.
STATUS_CODES: Mapping[str, int] = {
    "ok": 0, "behind": 1, "starting": 1, "stalled": 2, "writes_failing": 2, "store_unreachable": 2,
    "broker_unreachable": 4, "broker_reset": 5,
}  # fmt: skip
HEARTBEAT_S = 5.0  # a detector in another process reads the pipeline's lag from it


def owner_file(store: Path) -> Path:
    return store.with_name(store.name + ".owner.json")


@dataclass
class WorkerApp:
    """Handles to what a worker runs, for tests, the demo and the health endpoint."""

    app: faust.App
    settings: Settings
    ingest: IngestAgent
    aggregate: AggregateAgent
    store: ClickHouseStore | None
    sink: DeltaSink | None
    started_at: float
    gc_pauses: GcPauses | None = None  # set by `promo worker`, which tunes and watches the GC
    behind_since: float | None = None  # epoch s: since when more than `behind_events` wait
    alerts: AlertRunner | None = None  # the drop detector, with --alerts (streams/worker/alerting.py)
    fatal: SinkError | None = None  # why the sink stopped the worker (a ClickHouse error retrying cannot heal)
    # How far behind, in seconds, every partition this worker consumes is (streams/alerts/freshness.py):
    # sampled with the stall watch, written with the heartbeat, what the drop detector judges by.
    freshness: PositionClock = field(default_factory=PositionClock)
    stall_watch: StallWatch[TopicPartition] = field(init=False)
    broker_watch: BrokerWatch = field(init=False)

    def __post_init__(self) -> None:
        self.stall_watch = StallWatch(self.settings.stall_after_s)
        self.broker_watch = BrokerWatch(self.settings.bootstrap)

    def watch(self) -> None:
        """One walk over every partition this worker consumes, a second apart: the stall watch and
        the freshness clock judge the same positions."""
        stages = self.stage_positions()
        self.check_stalls(stages)
        # Every partition in every stage: what the drop detector's freshness is measured from, each
        # end as of the fetch that answered with it (a broker that stops answering is no caught-up log).
        positions = {tp: pos for by_tp in stages.values() for tp, pos in by_tp.items()}
        self.freshness.sample(time.time(), positions, self.fetch_answers(), self.first_waiting())

    def first_waiting(self) -> dict[TopicPartition, tuple[int, float]]:
        """Per partition of this worker's consumers, the first record handed in its assignment (offset,
        Kafka timestamp): what dates a backlog found waiting."""
        first: dict[TopicPartition, tuple[int, float]] = {}
        with contextlib.suppress(Exception):  # not started yet
            first.update(cast(BatchConsumer, self.app.consumer).first_waiting)
        if self.sink is not None:
            first.update(self.sink.first_waiting)
        return first

    def fetch_answers(self) -> dict[TopicPartition, float | None]:
        """When a fetch last answered, per partition of this worker's consumers (epoch s)."""
        answered: dict[TopicPartition, float | None] = {}
        with contextlib.suppress(Exception):  # not started yet, or between assignments
            answered.update(cast(BatchConsumer, self.app.consumer).answered_at())
        if self.sink is not None and self.sink._consumer is not None:
            with contextlib.suppress(Exception):
                answered.update(fetch_answers(self.sink._consumer))
        return answered

    def check_stalls(self, stages: Mapping[str, Positions], now: float | None = None) -> list[Change[TopicPartition]]:
        """From every stage's positions and work done, log (once) each stage that stalls or recovers."""
        now = time.monotonic() if now is None else now
        processed = {self.ingest.stage: self.ingest.handled, self.aggregate.stage: self.aggregate.handled}
        if self.sink is not None:
            health = self.sink.health
            processed["sink"] = health.batches_written + health.redeliveries_skipped + health.fenced_skipped
        changes = []
        for stage, positions in stages.items():
            lags = {tp: _lag(end, position) for tp, (end, position) in positions.items()}
            change = self.stall_watch.observe(stage, lags, processed[stage], now)
            if change is None:
                continue
            changes.append(change)
            if change.stalled:
                log.error(
                    "stage %s stalled: %d records waiting (%s), nothing processed for %.1f s",
                    stage, change.stall.lag, _partitions_text(change.stall.lags), change.duration_s,
                )  # fmt: skip
            else:
                log.warning(
                    "stage %s no longer stalled (%s) after %.1f s",
                    stage, "processing again" if change.progressed else "nothing waiting", change.duration_s,
                )  # fmt: skip
        return changes

    def _agent_positions(self, agent: BatchAgent, topics: Collection[str]) -> Positions:
        """Per assigned partition of the agent's topics: (fetch high-watermark, the next offset the
        agent will process: the first of the batch it holds, else the next one not yet handed to
        it, else the committed offset), each None when unknown."""
        try:
            consumer = cast(BatchConsumer, self.app.consumer)
            assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
        except Exception:  # not started yet, or between assignments
            return {}
        holding = {tp: records[0].offset for tp, records in agent.pending or () if records}
        positions: Positions = {}
        for tp in assigned:
            try:
                highwater: int | None = consumer.highwater(tp)
            except Exception:  # revoked since `assignment()`
                highwater = None
            next_offset = holding.get(tp)
            if next_offset is None:
                next_offset = consumer._handed.get(tp)
            if next_offset is None:
                next_offset = consumer._committed_offset.get(tp)
            positions[tp] = (highwater, next_offset)
        return positions

    def stage_positions(self) -> dict[str, Positions]:
        """Per stage, every partition it consumes on this worker: (log end, next offset to process)."""
        settings = self.settings
        stages = {
            self.ingest.stage: self._agent_positions(self.ingest, {settings.topic(s) for s in INPUT_TOPICS}),
            self.aggregate.stage: self._agent_positions(self.aggregate, {settings.topic(Topic.ROUTED)}),
        }
        if self.sink is not None:
            stages["sink"] = _sink_positions(self.sink)
        return stages

    def stalls(self, now: float | None = None) -> dict[str, Any]:
        """The /health section: the threshold, each stage's lag, and the stalled stages with their partitions."""
        now = time.monotonic() if now is None else now
        watch = self.stall_watch
        return {
            "after_s": watch.after_s,
            "lag": {stage: watch.lag(stage) for stage in watch.stages()},
            "stalled": [
                {
                    "stage": stall.stage,
                    "lag": stall.lag,
                    "no_progress_s": round(now - stall.since, 1),
                    "partitions": [
                        {"topic": tp.topic, "partition": tp.partition, "lag": lag}
                        for tp, lag in sorted(stall.lags.items())
                    ],
                }
                for stall in watch.stalled()
            ],
        }

    def status(self) -> dict[str, Any]:
        """What a wall screen must show from across the room (`/api/status` of the view): each
        problem with its kind, one line saying what is wrong, and since when (epoch ms)."""
        now_s, now_mono = time.time(), time.monotonic()
        problems: list[dict[str, Any]] = []
        # The broker first: without it nothing else can move, and its fix is another command.
        broker = self.broker_watch.problem()
        if broker is not None:
            problems.append(broker)
        if self.sink is not None:
            health = self.sink.health
            if health.consecutive_failures:
                unreachable = health.failure_kind == "unreachable"
                problems.append({
                    "kind": "store_unreachable" if unreachable else "writes_failing",
                    "message": ("ClickHouse does not answer" if unreachable else "ClickHouse refuses the writes")
                    + f": the numbers stop at the last write ({health.consecutive_failures} attempts, retrying)",
                    "detail": health.last_error[:300],
                    "since_ms": int(health.failing_since * 1000),
                })  # fmt: skip
            elif not self.sink.schema_ready.is_set():
                problems.append({"kind": "starting", "message": "waiting for ClickHouse to open the store",
                                 "detail": "", "since_ms": int(self.started_at * 1000)})  # fmt: skip
        watch = self.stall_watch
        stalled = watch.stalled()
        for stall in stalled:
            problems.append({
                "kind": "stalled",
                "message": f"stage {stall.stage} has processed nothing for {now_mono - stall.since:.0f} s "
                f"while {stall.lag:,} messages wait",
                "detail": "",
                "since_ms": int((now_s - (now_mono - stall.since)) * 1000),
            })  # fmt: skip
        waiting = sum(lag for stage in watch.stages() if (lag := watch.lag(stage)) is not None)
        if not stalled and waiting > self.settings.behind_events:
            if self.behind_since is None:
                self.behind_since = now_s
            problems.append({
                "kind": "behind",
                "message": f"{waiting:,} messages wait (more than {self.settings.behind_events:,}); "
                "the numbers are not live",
                "detail": "",
                "since_ms": int(self.behind_since * 1000),
            })  # fmt: skip
        else:
            self.behind_since = None
        if self.alerts is not None and self.alerts.evaluations == 0:
            # Until its first evaluation (a restored state is read then) the detector holds no incident: the
            # banner read "all clear" for 5-17 s after each restart while alerts fired (an outside probe)
            problems.append({"kind": "starting", "message": "告警检测尚未完成首次判断 / the drop detector has "
                             "not evaluated yet: firing alerts show after its first evaluation (promo alerts list "
                             "has them)", "detail": "", "since_ms": int(self.started_at * 1000)})  # fmt: skip
        last_write = self.sink.health.last_write_at if self.sink is not None else 0.0
        doc = {"ok": not problems, "problems": problems, "as_of_ms": int(now_s * 1000),
               "last_write_ms": int(last_write * 1000)}  # fmt: skip
        if self.alerts is not None:  # the incidents firing now, for the view's alert banner
            runner = self.alerts
            doc["alerts"] = banner_alerts(runner.detector.firing(), runner.acked, runner.silences, now_s)
        return doc

    def health(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": True,
            "uptime_s": round(time.time() - self.started_at, 1),
            "ingest": {**self.ingest.counters, "stale_dropped": self.ingest.stale_dropped},
            "aggregate": {
                **self.aggregate.counters,
                "stale_dropped": self.aggregate.stale_dropped,
                "users": self.aggregate.user_counts(),
            },
        }
        consumer = self.app.consumer
        if isinstance(consumer, BatchConsumer):
            doc["consumer"] = {"gaps_filled": consumer.gaps_filled, "gap_records": consumer.gap_records}
        if self.gc_pauses is not None:
            doc["gc"] = self.gc_pauses.summary()
        if self.sink is not None:
            sink = asdict(self.sink.health)
            sink["ok"] = self.sink.health.ok
            doc["sink"] = sink
            doc["ok"] = self.sink.health.ok
        # Reported, but not turning /health red: a paused broker that comes back with its log is
        # ridden out (docs/RELIABILITY.md), and supervisors restart a worker whose /health fails.
        doc["broker"] = self.broker_watch.problem() or {"kind": "ok"}
        stalls = self.stalls()
        doc["stalls"] = stalls
        if stalls["stalled"]:
            doc["ok"] = False
        return doc


def _lag(highwater: int | None, next_offset: int | None) -> int | None:
    if highwater is None:
        return None  # never fetched
    if next_offset is None:
        return 0 if highwater == 0 else None  # an empty partition has nothing waiting wherever one starts
    return max(highwater - next_offset, 0)


def _worker_name(settings: Settings) -> str:
    """How a worker names itself in heartbeats: its host and web port (one per worker on a host)."""
    return f"{socket.gethostname()}:{settings.web_port}"


def _sink_positions(sink: DeltaSink) -> Positions:
    """Per partition of the sink: (fetch high-watermark, its consumer's position: what `getmany`
    hands out next; a batch being written is past it). aiokafka's `position()` may wait for a
    position, so this reads the same per-partition state directly."""
    consumer = sink._consumer
    if consumer is None:
        return {}
    try:
        assignment = consumer._subscription.subscription.assignment
        positions: Positions = {}
        for tp in consumer.assignment():
            state = assignment.state_value(tp)
            position = state.position if state.has_valid_position else None
            writing = sink.writing_from.get(tp)  # a batch fetched but not yet written counts as not there
            positions[tp] = (state.highwater, writing if writing is not None else position)
        return positions
    except Exception:  # not started, or between assignments
        return {}


def _partitions_text(lags: Mapping[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}] {lag}" for tp, lag in sorted(lags.items()))


def build_app(settings: Settings) -> WorkerApp:
    app = PromoApp(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        datadir=str(settings.data_dir.resolve() / "faust"),  # not `<app id>-data` in the cwd
        autodiscover=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_request_timeout=request_timeout_s(settings),
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_linger_ms=2,
        # A value the contract rejects as too large still goes to the DLQ whole.
        producer_max_request_size=max(8 * 1024 * 1024, 2 * settings.max_value_bytes + 65536),
        stream_wait_empty=False,
        broker_max_poll_records=settings.batch_size,
        consumer_max_fetch_size=4 * 1024 * 1024,
        web_enabled=settings.sink,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        worker_redirect_stdouts=False,
    )
    ingest = IngestAgent(app, settings)
    aggregate = AggregateAgent(app, settings)
    inputs = app.topic(
        *(settings.topic(s) for s in INPUTS),
        key_serializer="raw",
        value_serializer="raw",
    )
    routed = app.topic(settings.topic(Topic.ROUTED), key_serializer="raw", value_serializer="raw")
    app.subscribe(inputs, ingest.handle_batch)
    app.subscribe(routed, aggregate.handle_batch)

    async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TopicPartition] = args[0] if args else kwargs.get("revoked", set())
        await ingest.on_revoked(revoked)
        await aggregate.on_revoked(revoked)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode types sender positional-only

    store = None
    if settings.sink:
        timeout = settings.clickhouse_timeout_s
        store = ClickHouseStore(settings.clickhouse_dsn, connect_timeout_s=min(timeout, 10), send_timeout_s=timeout)
    sink = DeltaSink(settings, store) if store is not None else None
    pipeline = WorkerApp(app, settings, ingest, aggregate, store, sink, time.time())
    if store is not None and sink is not None:
        _attach_sink(pipeline, store, sink)
        _guard_web(app, settings)

    heartbeats = settings.topic(Topic.HEARTBEATS)
    worker_name = _worker_name(settings)

    async def watch_stalls() -> None:
        interval = min(1.0, settings.stall_after_s / 4)
        while True:
            await asyncio.sleep(interval)
            pipeline.watch()
            await publish_freshness()

    in_flight: list[asyncio.Task[None]] = []  # at most one heartbeat send at a time

    async def publish_freshness() -> None:
        """This worker's freshness per partition, for the detector in whichever worker runs it
        (streams/alerts/freshness.py: FleetClock). Sent from a task of its own and skipped while the
        last one has not gone out: a producer send waits while the broker is away (up to its
        timeout), and the stall watch that calls this must go on meanwhile."""
        clock = pipeline.freshness
        if clock.sampled_at is None or (in_flight and not in_flight[0].done()):
            return
        value = heartbeat(worker_name, clock.sampled_at, keyed(clock.lags), undated_keys(clock))

        async def send() -> None:
            try:
                await app.producer.send(heartbeats, worker_name.encode(), value, 0, None, None)
            except Exception as exc:  # the producer is not up yet, or the broker is away: the next one will do
                log.debug("heartbeat not sent: %s", exc)

        in_flight[:] = [asyncio.ensure_future(send())]

    app.task(watch_stalls)

    async def watch_broker() -> None:
        quiet_aiokafka_bootstrap_errors()
        topics = [spec.name for spec in topic_specs(settings)]
        while True:
            pipeline.broker_watch.observe(await probe_broker(settings.bootstrap, topics))
            await asyncio.sleep(PROBE_EVERY_S)

    app.task(watch_broker)
    return pipeline


def _guard_web(app: faust.App, settings: Settings) -> None:
    """The worker's pages answer this machine's own programs, not a web page in its browser.

    Its POSTs (alerts ack, silence, unsilence) change what the war room is told, and any site open in
    a browser here could send one: a form's text/plain POST to 127.0.0.1 needs no CORS preflight, and
    a site's name made to resolve to 127.0.0.1 (DNS rebinding) reads every GET. So, as the local view
    does: bound to loopback, only a Host naming this machine (421); a POST only as JSON (415: a
    browser asks first for that, and this server allows no other origin) and never from a page of
    another origin (403). An outside probe found the view guarded and the worker's port not."""
    from aiohttp import web

    from streams.dashboards.view.auth import host_allowed, is_loopback

    loopback = is_loopback(settings.web_host)

    def refuse(status: int, why: str) -> web.Response:
        return web.json_response({"error": why}, status=status)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if loopback and not host_allowed(request.host):
            return refuse(421, "this worker answers only to localhost / 127.0.0.1")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin is not None and not host_allowed(origin.partition("://")[2] or origin):
                return refuse(403, "not from a page of another origin")
            if request.content_type != "application/json":
                return refuse(415, "POST JSON (Content-Type: application/json)")
        response: web.StreamResponse = await handler(request)
        return response

    app.web.web_app.middlewares.append(guard)  # type: ignore[attr-defined]  # the aiohttp driver's Application


def _attach_sink(pipeline: WorkerApp, store: ClickHouseStore, sink: DeltaSink) -> None:
    app, settings = pipeline.app, pipeline.settings
    embedded = settings.embedded_store

    async def run_sink() -> None:
        if embedded is not None:
            owner_file(embedded).write_text(json.dumps({"pid": os.getpid(), "url": settings.web_url}))
        try:
            await sink.run()
        except asyncio.CancelledError:
            raise
        except SinkError as exc:
            # A worker that cannot write must not look alive: it stops, exits non-zero and says why
            # in one line (`promo worker` prints it); a crash printed a page of tracebacks around it.
            log.error("the sink stopped: %s", exc)
            pipeline.fatal = exc
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's own graceful stop
        except Exception as exc:  # a bug, not ClickHouse: its traceback is what a developer needs
            log.exception("the sink stopped")
            await app.crash(exc)

    async def stop_sink(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        sink.stop()
        if embedded is not None:
            with contextlib.suppress(FileNotFoundError):
                owner_file(embedded).unlink()

    app.task(run_sink)

    async def load_campaigns() -> None:
        """Campaign names and schedules (`promo campaigns import`) into promo.campaigns: the whole
        topic at start (re-inserting is harmless: the newest import wins), then as it grows."""
        await sink.schema_ready.wait()
        tp = TopicPartition(settings.topic(Topic.CAMPAIGNS), 0)

        async def handle(records: list[ConsumerRecord]) -> None:
            rows = []
            for record in records:
                try:
                    c = Campaign.from_json(record.value or b"")
                except ValueError:
                    log.warning("campaigns[0]@%d is not a campaign record; skipped", record.offset)
                    continue
                rows.append((c.campaign_id, c.name, c.starts_at_ms, c.ends_at_ms, record.timestamp))
            if rows:
                await store.call(store.upsert_campaigns, rows)

        # The broker or the store away: names come when they are back.
        await follow_partition(settings.bootstrap, tp, handle, StateLog(log, "loading campaign names"), poll_ms=2000)

    app.task(load_campaigns)

    async def heartbeat() -> None:
        """The pipeline's state and lag into promo.pipeline_status every 5 s, for Grafana's state panel (the
        same states as the local view's banner). When ClickHouse is down no row lands: Grafana, which
        reads the same store, then shows no heartbeat."""
        await sink.schema_ready.wait()
        worker_name = _worker_name(settings)
        while True:
            doc = pipeline.status()
            first = doc["problems"][0] if doc["problems"] else None
            state = first["kind"] if first else "ok"
            as_of = doc["as_of_ms"] / 1000
            lag_s = pipeline.freshness.lag_s(as_of)  # as of the heartbeat's own time
            # Each partition's lag, as the heartbeats topic has them: `promo alerts run` reads the fleet from these.
            lags = keyed(pipeline.freshness.lags_as_of(as_of))
            with contextlib.suppress(Exception):  # the sink already reports a failing store
                await store.call(store.log_status, doc["as_of_ms"], worker_name, STATUS_CODES.get(state, 2), state,
                                 first["message"] if first else "", lag_s, lags)  # fmt: skip
            await asyncio.sleep(HEARTBEAT_S)

    app.task(heartbeat)
    attach_alert_pages(pipeline, store, sink)
    attach_replay_pages(pipeline, store, sink)
    if settings.alerts:
        pipeline.alerts = attach_alerts(pipeline, store, sink)
    app.on_before_shutdown.connect(stop_sink)  # type: ignore[arg-type]  # as above
    # The dashboards as a page (streams/dashboards/view/), its queries on the store's thread like every read here.
    attach_view(app, settings, lambda sql, params: store.call(store.query_table, sql, params), sink.schema_ready,
                pipeline.status, lambda queries: store.call(store.query_tables, queries))  # fmt: skip

    async def ready() -> None:
        await asyncio.wait_for(sink.schema_ready.wait(), 30)

    @app.page("/api/totals")
    class Totals(View):
        async def get(self, request: Request) -> Response:
            await ready()
            asked = cast(Any, request.query).getall("campaign", [])  # a MultiDict: a repeated one is seen
            if len(asked) > 1 or (asked and not asked[0]):
                return self.json({"error": "campaign: give one, not empty"}, status=400)
            campaign = asked[0] if asked else None
            rows = await store.call(store.totals, campaign)
            if campaign is not None and not rows:  # as `promo totals --campaign`: an unknown one is no empty answer
                known = sorted({r["campaign_id"] for r in await store.call(store.totals, None)})
                return self.json({"error": f"no campaign {campaign!r}", "campaigns": known[:100]}, status=404)
            return self.json(rows)

    @app.page("/api/rejections")
    class Rejections(View):
        async def get(self, request: Request) -> Response:
            await ready()
            return self.json(await store.call(store.rejections))

    @app.page("/api/freshness")
    class Freshness(View):
        async def get(self, request: Request) -> Response:
            await ready()
            doc = await store.call(store.freshness)
            # The columns are UTC; the client hands them back without a zone: said, as every time here is.
            return self.json({k: _iso_utc(v) for k, v in doc.items()})

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            doc = pipeline.health()
            return self.json(doc, status=200 if doc["ok"] else 503)

    del Totals, Rejections, Freshness, Health, run_sink, stop_sink
