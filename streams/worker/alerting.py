"""The drop detector inside the worker that runs the sink (`--alerts`): wiring only.

With an embedded store this is the one process that may open it, so the detector runs here; its
logic is streams/alerts/ (runner, detector, feed, freshness). Freshness comes from this worker's
own consumers, every stage, sampled every second with the stall watch (WorkerApp.freshness): how long each partition's
position has been behind its log's end; and for the partitions other workers consume, from their
heartbeats (every worker publishes its clock each second: streams/worker/app.py, FleetClock).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Protocol

import faust
from aiokafka import ConsumerRecord, TopicPartition

from streams.alerts.freshness import FleetClock, Lag, PositionClock, keyed, read_heartbeat, undated_keys
from streams.alerts.messages import Context
from streams.alerts.notify import robots_from_env
from streams.alerts.runner import AlertRunner
from streams.contract.ids import has_control
from streams.contract.topics import Topic
from streams.kafka import follow_partition
from streams.statelog import StateLog

if TYPE_CHECKING:
    from streams.config import Settings
    from streams.sink.clickhouse import ClickHouseStore
    from streams.sink.writer import DeltaSink


class WorkerApp(Protocol):  # what of streams.worker.app.WorkerApp this needs (that module imports this one)
    @property
    def app(self) -> faust.App: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def freshness(self) -> PositionClock: ...


log = logging.getLogger(__name__)

NAMES_EVERY_S = 60.0
HEARD_BACK = 600  # heartbeat records read back at start: the last minutes of a few workers


def attach_alerts(pipeline: WorkerApp, store: ClickHouseStore, sink: DeltaSink) -> AlertRunner:
    settings, app = pipeline.settings, pipeline.app
    names: dict[str, str] = {}
    try:
        robots = robots_from_env()
    except ValueError as exc:  # a bad robot URL: the detector still runs and records alerts
        log.error("notifications off: %s", exc)
        robots = []

    def context(lag_s: float) -> Context:
        return Context(names, lag_s, settings.dashboard_url, settings.alerts_language)

    fleet = FleetClock()

    async def lag(now: float) -> Lag | None:
        """The worst of this worker's partitions (its own clock) and everyone else's (their heartbeats),
        and their mean; None while neither knows a partition (the worker has just started: not "not
        behind")."""
        own = pipeline.freshness
        if not own.known and not fleet.parts:
            return None
        # A partition this worker has just found behind, its backlog not dated yet: the fleet's word on
        # it (the older word from the worker that had it, aging since, where further behind than this
        # worker's guess) counts instead.
        own_lags = keyed(own.lags_as_of(now))
        mine = set(own_lags) - undated_keys(own)
        every = [*(own_lags[k] for k in mine), *fleet.lags(now, skip=mine).values()]
        worst = max(own.lag_s(now), max(every, default=0.0))
        return Lag(worst, sum(every) / len(every) if every else worst)

    async def listen() -> None:
        """The heartbeats topic into the fleet clock: from a little before its end (a detector that
        restarts while another worker is frozen still hears that worker's last word), then as it grows."""
        tp = TopicPartition(settings.topic(Topic.HEARTBEATS), 0)

        async def handle(records: list[ConsumerRecord]) -> None:
            for record in records:
                beat = read_heartbeat(record.value)
                if beat is not None:
                    fleet.heard(*beat)

        # The broker away: this worker's own clock still stands.
        await follow_partition(settings.bootstrap, tp, handle, StateLog(log, "reading the workers' heartbeats"),
                               back=HEARD_BACK)  # fmt: skip

    runner = AlertRunner(
        store,
        store.call,
        lag,
        state_path=settings.data_dir.resolve() / "alerts" / f"{settings.app_id}.json",
        robots=robots,
        context=context,
    )

    async def load_names() -> None:
        await sink.schema_ready.wait()
        while True:
            try:
                rows = await store.call(store.query_rows, "SELECT campaign_id, name FROM promo.campaign_names")
                names.clear()
                names.update({r["campaign_id"]: r["name"] for r in rows if r["name"]})
            except Exception as exc:  # names are a nicety: ids stand in meanwhile
                log.debug("campaign names not loaded: %s", exc)
            await asyncio.sleep(NAMES_EVERY_S)

    async def run() -> None:
        await sink.schema_ready.wait()
        log.info("drop detector on: every 10 s, %d notification robot(s)", len(robots))
        await runner.run()

    app.task(load_names)
    app.task(listen)
    app.task(run)
    return runner


async def _posted(request: Any) -> dict[str, Any]:
    """The JSON object posted ({} for anything else, never a 500: the handler then says what is missing)."""
    try:
        doc = await request.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


SOURCES = ("live", "replay", "backtest")  # which detector raised an incident (promo.alerts.source)


def unknown_parameter(query: Any, allowed: tuple[str, ...]) -> dict[str, str] | None:
    """The error for a query parameter the page does not take, or given twice (None: all known). A typo
    (`sinse_s`) must not answer as if it were absent: every incident instead of the recent ones."""
    seen: set[str] = set()
    for key, _ in query.items():  # a MultiDict's items repeat a repeated key; its keys() may not
        if key not in allowed:
            return {"error": f"unknown parameter {key[:40]!r}; allowed: {', '.join(allowed) or 'none'}"}
        if key in seen:
            return {"error": f"{key[:40]!r} is given more than once"}
        seen.add(key)
    return None


def attach_alert_pages(pipeline: WorkerApp, store: ClickHouseStore, sink: DeltaSink) -> None:
    """`/api/alerts` (GET: the incidents, …/silences; POST …/ack, …/silence, …/unsilence) on the
    worker's web port, so the CLI reaches the alert tables of an embedded store this process owns.
    Loopback unless told otherwise, like every page of the worker; every value is a bound parameter."""
    from faust.web import Request, Response, View

    from streams.alerts import store as alert_store

    app = pipeline.app

    async def ready() -> None:
        await asyncio.wait_for(sink.schema_ready.wait(), 30)

    @app.page("/api/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            await ready()
            wrong = unknown_parameter(request.query, ("since_s", "source", "firing"))
            if wrong is not None:
                return self.json(wrong, status=400)
            since = request.query.get("since_s")
            try:
                since_s = float(since) if since is not None else None
                if since_s is not None and not math.isfinite(since_s):
                    raise ValueError(since)
            except ValueError:
                return self.json({"error": "since_s must be epoch seconds"}, status=400)
            source, firing = request.query.get("source", "live"), request.query.get("firing", "0")
            if source not in SOURCES:
                return self.json({"error": f"source must be one of {', '.join(SOURCES)}"}, status=400)
            if firing not in ("0", "1"):
                return self.json({"error": "firing must be 0 or 1"}, status=400)
            rows = await store.call(
                lambda: alert_store.read_alerts(store, since_s=since_s, source=source, firing_only=firing == "1")
            )
            return self.json(rows)

    @app.page("/api/alerts/ack")
    class Ack(View):
        async def post(self, request: Request) -> Response:
            await ready()
            doc = await _posted(request)
            alert_id, by = str(doc.get("id", "")), _posted_name(doc)
            if by is None:
                return self.json({"error": BAD_NAME}, status=400)
            done = await store.call(alert_store.acknowledge, store, alert_id, by, time.time())
            if done is None:
                return self.json({"error": f"no alert {alert_id!r}"}, status=404)
            return self.json({"ok": True, **done})

    @app.page("/api/alerts/silence")
    class Silence(View):
        async def post(self, request: Request) -> Response:
            await ready()
            doc = await _posted(request)
            try:
                return self.json(await store.call(alert_store.record_silence, store, doc))
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)

    @app.page("/api/alerts/silences")
    class Silences(View):
        async def get(self, request: Request) -> Response:
            await ready()
            wrong = unknown_parameter(request.query, ())
            if wrong is not None:
                return self.json(wrong, status=400)
            now = time.time()
            rows = await store.call(alert_store.list_silences, store, now)
            return self.json([r.listing(now) for r in rows])

    @app.page("/api/alerts/unsilence")
    class Unsilence(View):
        async def post(self, request: Request) -> Response:
            await ready()
            doc = await _posted(request)
            silence_id, by = str(doc.get("id", "")), _posted_name(doc)
            if by is None:
                return self.json({"error": BAD_NAME}, status=400)
            now = time.time()
            try:
                lifted = await store.call(alert_store.lift_silence, store, silence_id, by, now)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=404)
            return self.json(lifted.listing(now))


BAD_NAME = "by is a name on one line, no control character"


def _posted_name(doc: dict[str, Any]) -> str | None:
    """Who acknowledged or lifted, as posted (up to 100 characters); None for one with a line break or
    another control character: it is shown in `alerts list` after the incident, and a line break there
    forged a line of the listing (an outside probe, through the CLI)."""
    by = str(doc.get("by", "")).strip()[:100]
    return None if has_control(by) else by


def attach_replay_pages(pipeline: WorkerApp, store: ClickHouseStore, sink: DeltaSink) -> None:
    """What `promo alerts replay` and `promo plan …` need of an embedded store this process owns:
    the logged evaluations, the plan and schedule, a day's series; and a plan to store."""
    from faust.web import Request, Response, View

    from streams.alerts import store as alert_store
    from streams.alerts.plan import PlanError, parse_plan_csv

    app = pipeline.app

    def span(request: Request) -> tuple[float, float] | None:
        if unknown_parameter(request.query, ("from_s", "to_s")) is not None:
            return None
        try:
            asked = float(request.query["from_s"]), float(request.query["to_s"])
        except (KeyError, ValueError):
            return None
        return asked if all(math.isfinite(v) for v in asked) else None

    bad_span = {"error": "from_s and to_s (and nothing else) must be epoch seconds"}

    @app.page("/api/alerts/inputs")
    class Inputs(View):
        async def get(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            asked = span(request)
            if asked is None:
                return self.json(bad_span, status=400)
            steps = await store.call(alert_store.read_inputs, store, *asked)
            return self.json([[at, settled, lag, [[c, ch, v] for (c, ch), v in leaves.items()]]
                              for at, settled, lag, leaves in steps])  # fmt: skip

    @app.page("/api/alerts/events")
    class Events(View):
        async def get(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            asked = span(request)
            if asked is None:
                return self.json(bad_span, status=400)
            return self.json([list(e) for e in await store.call(alert_store.read_events, store, *asked)])

    @app.page("/api/alerts/replay-start")
    class ReplayStart(View):
        async def get(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            try:
                if unknown_parameter(request.query, ("at_s", "back_s")) is not None:
                    raise ValueError("an unknown parameter")
                at_s, back_s = float(request.query["at_s"]), float(request.query["back_s"])
                if not (math.isfinite(at_s) and math.isfinite(back_s)):
                    raise ValueError("not a number of seconds")
            except (KeyError, ValueError):
                return self.json({"error": "at_s and back_s must be seconds"}, status=400)
            return self.json({"at": await store.call(alert_store.replay_start, store, at_s, back_s)})

    @app.page("/api/alerts/series")
    class Series(View):
        async def get(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            asked = span(request)
            if asked is None:
                return self.json(bad_span, status=400)
            return self.json(await store.call(alert_store.day_series, store, *asked))

    @app.page("/api/alerts/plan")
    class PlanPage(View):
        async def get(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            wrong = unknown_parameter(request.query, ("at_s",))
            if wrong is not None:
                return self.json(wrong, status=400)
            if "at_s" in request.query:  # one plan by its version (a replay: the plan live had then)
                try:
                    version = float(request.query["at_s"])
                    if not math.isfinite(version):
                        raise ValueError("not a number of seconds")
                except ValueError:
                    return self.json({"error": "at_s must be seconds"}, status=400)
                found = await store.call(alert_store.read_plan, store, version)
                return self.json({"csv": None if found is None else found[1]})
            found = await store.call(alert_store.read_plan, store)
            schedule = await store.call(alert_store.read_schedule, store)
            version, text = found or (0.0, "")
            return self.json({"csv": text, "at_s": version, "schedule": {c: list(v) for c, v in schedule.items()}})

        async def post(self, request: Request) -> Response:
            await asyncio.wait_for(sink.schema_ready.wait(), 30)
            doc = await _posted(request)
            text, source = str(doc.get("csv", "")), str(doc.get("source", ""))[:200]
            try:
                plan = parse_plan_csv(text)  # the worker checks it too: only a plan that parses is stored
            except PlanError as exc:
                return self.json({"error": str(exc)}, status=400)
            await store.call(alert_store.save_plan, store, text, source, time.time())
            try:  # stored: a failing check of its names is not a failed import
                unknown = await store.call(alert_store.unknown_campaigns, store, plan.campaigns())
            except Exception as exc:
                log.warning("plan stored; its campaigns not checked: %s", exc)
                unknown = []
            return self.json({"ok": True, "unknown_campaigns": unknown})
