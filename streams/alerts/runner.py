"""The live detector: every 10 s, what arrived → the detector → promo.alerts, notifications, heartbeat.

One evaluation (`AlertRunner.tick`):
1. read the last 15 minutes of counts per campaign, channel and minute; what arrived since the last
   evaluation is the difference (streams/alerts/feed.py);
2. take how far the pipeline is behind (the caller's `freshness`, per source partition, worst one):
   only data up to `now - lag - SETTLE_S` counts as settled;
3. log what was seen (promo.detector_inputs: a replay sees exactly this), apply ops notes (a
   scope's baseline starts again), step the detector (streams/alerts/detector.py);
4. write every incident whose state changed (promo.alerts) and queue its notification unless a
   silence covers it; remind of critical incidents nobody acknowledged;
5. save the feed and the detector to a file, so a restart within the feed's window goes on with no
   gap and neither repeats nor forgets a firing alert; write the detector's heartbeat.

Notifications go out from their own task and threads: a dead webhook never delays an evaluation.
Each (incident, event) is sent once, also across restarts (promo.alert_notifications). A robot over
its rate gets a digest of what was held back when it has room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from streams.alerts import store as alert_store
from streams.alerts.detector import METRICS, Alert, Detector, DetectorConfig, Scope, Step, float_or_nan
from streams.alerts.feed import WINDOW_S, Feed
from streams.alerts.freshness import SETTLE_S, UNKNOWN_BEHIND_S, Lag
from streams.alerts.messages import Context, render
from streams.alerts.notify import Message, Outcome, Robot, redact, send
from streams.alerts.plan import Plan, PlanError, iso_utc, parse_plan_csv, parse_utc
from streams.statelog import StateLog

log = logging.getLogger(__name__)

EVERY_S = 10.0
REMIND_S = 600.0  # a critical incident nobody acknowledged is sent again every 10 minutes
HEARTBEAT_NAME = "detector"
# An evaluation whose reads took longer than this (the process frozen meanwhile) reads again, up to
# this many times in all, so that its time, its counts and its lag are of one instant
STALE_READ_S, STALE_READS = 30.0, 2  # a freeze, not slow reads: reading again costs a slow store twice
PLAN_EVERY_S = 60.0  # how often a newly imported plan or schedule is looked for
# The worst lag grown by more than this since the evaluation before (partitions that stopped: a
# killed worker, a stall, a paused broker): settled time does not advance in this step. Only what
# is settled goes on, and the minute that holds settled_until goes on pro rata, as if filled up to
# the mean lag (streams/alerts/feed.py); when some partitions stop, the share of the counts that
# stops with them is not the share of partitions that lag, and the part of the minute already handed
# on is re-estimated short by up to the growth. With one worker of two killed (three quarters of the
# counts stopped, 8 of 20 partitions lagging) the step after the kill got a fifth of its counts: a
# critical outage of the total (an outside probe). Advancing by at least 10 s less this, a step loses
# at most a third of it: never an outage; a stall's first steps settled little anyway.
LAG_JUMP_S = 3.0

Call = Callable[..., Awaitable[Any]]  # runs a blocking store function on the store's thread
Schedule = Mapping[str, tuple[float | None, float | None]]  # campaign -> (starts_at, ends_at), seconds


FLAP_S = 1800.0  # a reopen within this long of the last one told is held back ...
FLAP_HOLD_S = 60.0  # ... until it has stayed open this long


class FlapGate:
    """Which state changes are told while an incident flaps, from what the room was last told of each
    incident (`believed`: fired or resolved; a silenced message tells nothing). The first opening, a
    raise to critical and the first reopen are told at once; a reopen within FLAP_S of the last one told
    is held until it has stayed open FLAP_HOLD_S (then told); a resolution is not told while the room
    already believes it resolved (a reopen held, never told). (Every reopen and resolution told as it
    came, a lag hovering at 60 s sent 29 messages in 10 minutes.) A reopen that is critical (an outage
    again) is never held: held, one that ended within FLAP_HOLD_S was never told at all, and an outage
    is never muted. Pure: kept in the runner's state file."""

    def __init__(self) -> None:
        self.told_reopen: dict[str, float] = {}  # incident id -> when a reopen of it was last told
        self.held: dict[str, float] = {}  # incident id -> opened_at of its reopen held back
        self.believed: dict[str, tuple[str, float]] = {}  # incident id -> (fired | resolved, when told)

    def decide(self, alert: Alert, now: float) -> str | None:
        """The notification `alert`'s change owes now (`notification_event`), or None: held or not told.
        Call `told` when it went out (not silenced)."""
        event = notification_event(alert)
        kind = event.split("@")[0]
        room = self.believed.get(alert.id, ("", 0.0))[0]
        if kind == "fired":
            if self.held.get(alert.id) == alert.opened_at:
                return None  # a later change of a reopen still held
            reopened = alert.opened_at > alert.detected_at and room != "fired"  # the room was told "resolved"
            recent = now - self.told_reopen.get(alert.id, -math.inf) < FLAP_S
            if reopened and recent and alert.severity != "critical":
                self.held[alert.id] = alert.opened_at
                return None
            if reopened:
                self.told_reopen[alert.id] = now
        elif kind == "resolved":
            self.held.pop(alert.id, None)
            if room == "resolved":
                return None  # it never heard of the reopen that has now ended
        else:  # escalated: critical now, told (and so will its resolution be)
            self.held.pop(alert.id, None)
        return event

    def told(self, alert: Alert, event: str, now: float) -> None:
        kind = event.split("@")[0]
        if kind in ("fired", "escalated", "resolved"):
            self.believed[alert.id] = ("resolved" if kind == "resolved" else "fired", now)

    def due(self, firing: Sequence[Alert], now: float) -> list[tuple[Alert, str]]:
        """Held reopens that have stayed open FLAP_HOLD_S: told now (call `told` when sent)."""
        live = {a.id for a in firing}
        # Forget incidents long over: a resolved one reopens within minutes or never; one told firing
        # that ended unheard (a silence) is kept while it fires.
        self.told_reopen = {k: t for k, t in self.told_reopen.items() if now - t < FLAP_S or k in self.held}
        self.believed = {k: v for k, v in self.believed.items() if k in live or k in self.held or now - v[1] < FLAP_S}
        out = []
        for alert in firing:
            if self.held.get(alert.id) == alert.opened_at and now - alert.opened_at >= FLAP_HOLD_S:
                del self.held[alert.id]
                self.told_reopen[alert.id] = now
                out.append((alert, notification_event(alert)))
        return out

    def to_doc(self) -> dict[str, Any]:
        return {"told_reopen": self.told_reopen, "held": self.held, "believed": self.believed}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> FlapGate:
        gate = cls()
        gate.told_reopen = {str(k): float(v) for k, v in doc.get("told_reopen", {}).items()}
        gate.held = {str(k): float(v) for k, v in doc.get("held", {}).items()}
        gate.believed = {str(k): (str(v[0]), float(v[1])) for k, v in doc.get("believed", {}).items()}
        return gate


def acknowledged(alert: Alert, acked_at: float | None) -> bool:
    """Is this opening of `alert` acknowledged (`acked_at`: the last ack of its id, None if none)?"""
    return alert_store.acked_this_opening(acked_at, alert.opened_at)


def notification_event(alert: Alert) -> str:
    """The notification a state change of `alert` owes, named so that each goes out once, also across
    restarts (promo.alert_notifications): an opening at its own step (an incident reopened by a re-fire
    is announced again), its raise from warning to critical, each resolution at its own time. A change
    that owes nothing new (a child folded under it) repeats the name of the one already sent."""
    if alert.resolved_at is not None:
        return f"resolved@{alert.resolved_at:.0f}"
    if math.isfinite(alert.raised_at):
        return f"escalated@{alert.raised_at:.0f}"
    return f"fired@{alert.opened_at:.0f}"


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (no expectation) as None: a webhook's body is JSON, which has no NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def banner_alert(alert: Alert) -> dict[str, Any]:
    """A firing incident as the local view's banner shows it (times epoch ms). "Since" is this opening's
    onset, as the messages say it: a reopened incident read the first onset (an outside probe)."""
    row = _json_safe(alert.to_row())
    since = alert.reopened_from if math.isfinite(alert.reopened_from) else alert.started_at
    return {**{k: row[k] for k in ("id", "kind", "metric", "campaign_id", "channel", "severity", "message",
                                   "expected", "observed", "basis")},
            "since_ms": int(since * 1000), "detected_ms": int(alert.detected_at * 1000)}  # fmt: skip


def banner_alerts(
    alerts: Iterable[Alert],
    acked: Mapping[str, tuple[str, float]] | None = None,
    silences: Sequence[alert_store.Silence] = (),
    now: float = 0.0,
) -> list[dict[str, Any]]:
    """The firing incidents in the order the banner shows them (its first three, then "+N more"): a lag
    first (no drop is judged meanwhile), then critical before warning, newest first. Oldest first, a
    never-started campaign's alert kept two newer critical ones under "+2 more" (an outside probe). Each
    says who acknowledged this opening of it (`acked`: id -> (by, at)) and until when a silence covers
    it at `now`: an ack or a silence changed nothing on the screen the room watches (the probe)."""
    order = sorted(alerts, key=lambda a: (a.kind != "lag", a.severity != "critical", -a.opened_at))
    out = []
    for alert in order:
        doc = banner_alert(alert)
        by, at = (acked or {}).get(alert.id, ("", None))
        doc["acked_by"] = by if by and acknowledged(alert, at) else None
        scope = alert.scope
        covering = [s for s in silences if s.covers(alert.metric, scope.campaign_id, scope.channel, now)]
        last = max(covering, key=lambda s: s.until, default=None)
        doc["silenced_until_ms"] = int(last.until * 1000) if last is not None else None
        doc["silence_reason"] = last.reason if last is not None else None
        out.append(doc)
    return out


def as_lags(lag: float | Lag | None) -> tuple[float | None, float | None]:
    """(worst, typical) from what a freshness callback says; typical None when it gives the worst only."""
    if lag is None:
        return None, None
    if isinstance(lag, Lag):
        return lag.worst, lag.typical
    return float(lag), None


def build_step(
    at: float,
    settled_until: float,
    lag_s: float,
    leaves: Mapping[tuple[str, str], Sequence[float]],
    known: Sequence[tuple[str, str]],
) -> Step:
    """The detector's input: every known leaf (a silent one counts 0: a channel that stopped is the
    news), its campaign and the total, per metric."""
    values: dict[tuple[Scope, str], float] = {}
    for leaf in sorted({*known, *leaves}):  # in order: the detector numbers scopes as it first meets them
        counts = leaves.get(leaf)
        campaign, channel = leaf
        for scope in (Scope(campaign, channel), Scope(campaign), Scope()):
            for i, metric in enumerate(METRICS):
                key = (scope, metric)
                values[key] = values.get(key, 0.0) + (float(counts[i]) if counts is not None else 0.0)
    return Step(at=at, settled_until=settled_until, lag_s=lag_s, values=values)


def replay_log(
    evaluations: Sequence[alert_store.Evaluation],
    events: Sequence[alert_store.DetectorEvent],
    plan: Plan | None,
    schedule: Mapping[str, tuple[float | None, float | None]],
    config: DetectorConfig | None = None,
    plans: Mapping[float, Plan | None] | None = None,
) -> dict[str, Alert]:
    """The live detector's evaluations again, with what changed it beside them (its starts, restores
    from saved state, new plans, ops notes), each before the step it came before: every incident in
    the state it ended in. Begun at a `start` or `restore` event, it is the live detector step for
    step. From each start, restore or replan on, the plan is the one that event names (`plans`, by
    version) and the schedule the one it kept; for events that name none (older ones) or a plan
    not in `plans`, the `plan` and `schedule` given (stored now)."""
    at_step: dict[float, list[alert_store.DetectorEvent]] = {}
    for event in events:
        at_step.setdefault(event.at, []).append(event)
    detector = Detector(config, plan, schedule)
    seen: dict[str, Alert] = {}

    def inputs_of(
        event: alert_store.DetectorEvent,
    ) -> tuple[Plan | None, Mapping[str, tuple[float | None, float | None]]]:
        named = alert_store.read_detector_inputs(event.inputs)
        if named is None:
            return plan, schedule
        # The schedule it kept; the plan it names, or the one given when that is no longer stored
        return (plans[named[0]] if plans is not None and named[0] in plans else plan), named[1]

    for at, settled, lag, leaves in evaluations:
        changed: list[Alert] = []
        for event in at_step.get(at, ()):
            if event.kind == "start":
                detector = Detector(config, *inputs_of(event))
            elif event.kind in ("restore", "replan"):
                detector = Detector.restore(json.loads(event.detail), config, *inputs_of(event))
                # What it had open goes on: listed though it may not change again before the end (a review)
                for alert in detector.firing():
                    seen.setdefault(alert.id, replace(alert))
            elif event.kind == "reset":
                changed += detector.reset(Scope(event.campaign_id or None, event.channel or None), at)
        changed += detector.step(build_step(at, settled, lag, leaves, ()))
        for alert in changed:
            seen[alert.id] = replace(alert)
    return seen


def stored_plan(text: str) -> Plan | None:
    """The stored plan (checked at import). One stored before a check was added that refuses it now
    (a plan of zeros, minutes at :30, a span over 31 days) is left out and said, not a dead detector."""
    if not text:
        return None
    try:
        return parse_plan_csv(text)
    except PlanError as exc:
        log.error("the stored plan is not used: %s; import a corrected one (promo plan import)", exc)
        return None


HELD_MAX = 50  # messages a robot failed that it may owe before the oldest are dropped from its digest
SENT_MEMORY = 10_000  # notes a robot remembers sending in this life (beside the store's marks)
HELD_FLUSH_S = 5.0  # what a robot has not taken goes out on its own after this long with nothing else to send
FAILING_RETRY_S = 60.0  # a robot that keeps failing is tried again at most this often (doubling up to it)


class Note(NamedTuple):
    """A notification waiting to go out."""

    alert_id: str
    event: str  # its name in promo.alert_notifications (notification_event)
    message: Message
    again: Message | None = None  # an opening as "down again": sent when the room was told of an earlier one
    reopen: bool = False  # a reopen by the detector's account: the wording when the store cannot say

    @property
    def key(self) -> str:
        return f"{self.alert_id}|{self.event}"

    def to_doc(self) -> dict[str, Any]:
        def message(m: Message | None) -> dict[str, Any] | None:
            return None if m is None else {"title": m.title, "text": m.text, "fields": dict(m.fields)}

        return {"alert_id": self.alert_id, "event": self.event, "message": message(self.message),
                "again": message(self.again), "reopen": self.reopen}  # fmt: skip

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Note:
        def message(d: Mapping[str, Any] | None) -> Message | None:
            return None if d is None else Message(str(d["title"]), str(d["text"]), dict(d.get("fields", {})))

        first = message(doc["message"])
        assert first is not None
        return cls(str(doc["alert_id"]), str(doc["event"]), first, message(doc.get("again")), bool(doc.get("reopen")))


class Held(NamedTuple):
    """A message a robot did not take when it came (its rate, or a failure): sent in a digest later."""

    message: Message
    alert_id: str
    event: str
    failed: bool  # the robot failed it (else: held back by its rate)


@dataclass
class Outbox:
    """Notifications waiting to go out, and per robot what it has not taken yet (sent as one digest)."""

    queue: asyncio.Queue[Note] = field(default_factory=asyncio.Queue)
    held: dict[str, list[Held]] = field(default_factory=dict)
    # Per note taken from the queue, the robots that have not had their go at it yet: the note is done
    # (`queue.task_done`) when every robot has (each robot sends from its own queue and task)
    waiting: dict[str, set[str]] = field(default_factory=dict)
    # Per owed note, the robots that have not taken it yet (sent, or in a digest): owed until all have
    undelivered: dict[str, set[str]] = field(default_factory=dict)
    # Per robot, the notes it sent in this life (the store's marks say the same across restarts, but a
    # copy queued while the first was on its way was checked before the first was marked)
    sent: dict[str, dict[str, None]] = field(default_factory=dict)
    # Queued and not yet delivered to any robot (nor in a digest that went out): saved with the state,
    # and queued again after a restart. A worker killed while a webhook hung lost the "fired" of an
    # alert the room then heard of only when it resolved (an outside probe). The store's record of
    # what was sent keeps a restart from sending one twice.
    owed: dict[str, Note] = field(default_factory=dict)


class AlertRunner:
    def __init__(
        self,
        store: Any,
        call: Call,
        freshness: Callable[[float], Awaitable[float | Lag | None]],
        *,
        state_path: Path,
        config: DetectorConfig | None = None,
        robots: Sequence[Robot] = (),
        context: Callable[[float], Context] | None = None,
        clock: Callable[[], float] = time.time,
        source: str = "live",
        frozen_with_pipeline: bool = True,
    ) -> None:
        self.store = store
        self.call = call
        # now -> the pipeline's lag in seconds (the worst partition; or a Lag: the worst and the partitions'
        # mean, so what the partitions that are not behind wrote is held back as far as it runs ahead), None: unknown
        self.freshness = freshness
        # True in a worker: when this process is frozen, its partitions are too. False for `promo alerts
        # run`: the workers write on while it is frozen, and their heartbeats say how far.
        self.frozen_with_pipeline = frozen_with_pipeline
        self.state_path = state_path
        self.config = config
        self.plan: Plan | None = None
        self.plan_text = ""
        self.plan_version = 0.0
        self.schedule: dict[str, tuple[float | None, float | None]] = {}
        self.inputs_at = 0.0  # when the plan and the schedule were last read
        self.robots = list(robots)
        self.context = context or (lambda lag: Context({}, lag))
        self.clock = clock
        self.source = source
        self.feed = Feed(len(METRICS))
        self.detector = Detector(config)
        self.afresh: str | None = None  # why this detector started without its saved state (None: it restored)
        # For the view's banner: who acknowledged each firing incident ((by, at), as of the last evaluation),
        # and the silences and notes then in force
        self.acked: dict[str, tuple[str, float]] = {}
        self.silences: list[alert_store.Silence] = []
        self.started = False
        self.last_tick = 0.0
        self._ticked_at: float | None = None  # this process's previous evaluation (never a restored one)
        self._last_lag: float | None = None  # the worst lag at that evaluation (LAG_JUMP_S)
        # Restored after a restart: nothing more is settled until the pipeline has read the backlog it met
        # (`_restart_lag`); the first evaluation of that wait (None: not begun, or not restored).
        self.restart_hold = False
        self._hold_from: float | None = None
        self.reminded: dict[str, float] = {}
        self._last_told: dict[str, str] = {}  # incident id -> the last opening or raise told (this life)
        self.flaps = FlapGate()
        self.outbox = Outbox()
        self.failing = StateLog(log, "alert evaluation")
        self.evaluations = 0
        # What changed the detector since the last logged evaluation (logged with the next one)
        self._events: list[alert_store.DetectorEvent] = []

    # -- what the detector is given: the plan and the schedule, its state across restarts ----------
    async def start(self) -> None:
        """Read the plan and the schedule, then go on from the saved state when there is one."""
        found = await self.call(alert_store.read_plan, self.store)
        self.plan_version, self.plan_text = found or (0.0, "")
        self.schedule = await self.call(alert_store.read_schedule, self.store)
        self.plan = stored_plan(self.plan_text)
        self.inputs_at = self.clock()
        self.detector = Detector(self.config, self.plan, self.schedule)
        self._load()
        inputs = alert_store.detector_inputs(self.plan_version, self.schedule)
        self._events = [e._replace(inputs=inputs) for e in self._events]
        self.started = True

    async def _refresh(self, now: float) -> None:
        """A plan or schedule imported since: the detector takes it (its baselines are rebuilt from
        the recent inputs it keeps, its open incidents carried over)."""
        if now - self.inputs_at < PLAN_EVERY_S:
            return
        self.inputs_at = now
        version = await self.call(alert_store.plan_version, self.store)
        schedule = await self.call(alert_store.read_schedule, self.store)
        if version == self.plan_version and schedule == self.schedule:
            return
        found = await self.call(alert_store.read_plan, self.store)
        version, text = found or (0.0, "")
        self.plan_version = version
        if text == self.plan_text and schedule == self.schedule:
            return  # the same plan imported again: the detector goes on (its events name the earlier copy)
        log.info("the plan or the schedule changed: the detector takes the new one")
        self.plan_text, self.schedule = text, schedule
        self.plan = stored_plan(text)
        state = self.detector.snapshot()
        self.detector = Detector.restore(state, self.config, self.plan, schedule)
        inputs = alert_store.detector_inputs(version, schedule)
        self._events.append(alert_store.DetectorEvent(now, "replan", detail=json.dumps(state), inputs=inputs))

    def _load(self) -> None:
        # Which detector this life begins with goes to promo.detector_events with its first evaluation,
        # so `promo alerts replay` begins (or restores) where and as this one did.
        fresh = alert_store.DetectorEvent(0.0, "start", detail="no saved state")
        self._events = [fresh]
        self.afresh = fresh.detail
        try:
            doc = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("alert state %s unreadable (%s): starting afresh", self.state_path, exc)
            self._events = [fresh._replace(detail="saved state unreadable")]
            self.afresh = "saved state unreadable"
            return
        if self.clock() - float(doc.get("saved_at", 0)) > WINDOW_S:
            # Too old to continue from without a gap: the detector starts again, and closes the incidents
            # its store still holds open (`_close_orphans`).
            log.warning("alert state %s is older than %d s: starting afresh", self.state_path, WINDOW_S)
            self.afresh = f"saved state older than {WINDOW_S} s"
            self._events = [fresh._replace(detail=self.afresh)]
            return
        self.afresh = doc.get("afresh")
        self.feed = Feed.from_doc(doc["feed"])
        self.detector = Detector.restore(doc["detector"], self.config, self.plan, self.schedule)
        self._events = [alert_store.DetectorEvent(0.0, "restore", detail=json.dumps(doc["detector"]))]
        self.restart_hold = True
        self.last_tick = float(doc.get("last_tick", 0.0))
        self.reminded = {str(k): float(v) for k, v in doc.get("reminded", {}).items()}
        self.flaps = FlapGate.from_doc(doc.get("flaps", {}))
        for item in doc.get("owed", []):
            try:
                note = Note.from_doc(item)
            except (KeyError, TypeError, ValueError, AssertionError):
                continue
            if note.key not in self.outbox.owed:
                self.outbox.owed[note.key] = note
                self.outbox.queue.put_nowait(note)

    def _restart_lag(self, now: float, lag: float | None) -> float | None:
        """After a restart (a restored detector), the lag as `tick` takes it: None (nothing more is settled)
        until the pipeline has read the backlog it found. A restarted worker's partitions are first seen
        with records waiting and counted UNKNOWN_BEHIND_S behind (freshness.py), however long it was down;
        and what the killed process had in flight was never written. Settled past its last evaluation on
        that lag, a step counted spans the store did not hold yet: a critical outage of the total after a
        kill with 14-40 s down, told to the robots (an outside probe, 3 of 9 restarts). The wait ends when
        the lag is no longer one dated from a first sight (it grows from UNKNOWN_BEHIND_S as the clock
        does): the pipeline is as far as its real history says. A lag past 60 s meanwhile is a lag alert."""
        if not self.restart_hold:
            return lag
        if self._hold_from is None:
            self._hold_from = now
        if lag is not None and lag < now - self._hold_from + UNKNOWN_BEHIND_S - SETTLE_S:
            self.restart_hold, self._hold_from = False, None
            return lag
        return None

    def _save(self, now: float) -> None:
        doc = {
            "saved_at": now,
            "last_tick": self.last_tick,
            "feed": self.feed.to_doc(),
            "detector": self.detector.snapshot(),
            "reminded": self.reminded,
            "flaps": self.flaps.to_doc(),
            "owed": [note.to_doc() for note in self.outbox.owed.values()],
            # a fresh start whose first evaluations closed nothing yet (the feed's first read, an unknown lag):
            # a restart then restores this state, and must still close what the store holds open (a review)
            "afresh": self.afresh,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.state_path)  # atomic: a kill mid-save leaves the previous state

    # -- one evaluation ----------------------------------------------------------------------------
    async def tick(self) -> list[Alert]:
        if not self.started:
            await self.start()
        # Times in whole milliseconds, as promo.detector_inputs keeps them: a replay of the log then
        # feeds the detector exactly what live fed it (same onsets, same incident ids).
        for _ in range(STALE_READS):
            now = round(self.clock(), 3)
            await self._refresh(now)
            rows = await self.call(alert_store.window_rows, self.store, now - WINDOW_S)
            lag, typical = as_lags(await self.freshness(now))
            if self.clock() - now <= STALE_READ_S:
                break
            # Frozen (SIGSTOP) or starved while reading: the lag was measured after waking, the step
            # would be dated before the freeze (an outside probe: a lag alert "detected" 92 s before it
            # was raised and "started" 31 s before the freeze). Read again, as of now.
        # An evaluation that comes more than a minute late (the process was frozen: SIGSTOP, a swapped-out
        # host) did not watch the pipeline meanwhile, and in a worker the pipeline did not run either;
        # its catch-up may be done before this evaluation samples it. Behind by at least the gap, then.
        gap = now - self._ticked_at - EVERY_S if self._ticked_at is not None else 0.0
        self._ticked_at = now
        froze = lag is not None and gap > lag
        if froze:
            # In a worker its partitions froze with it: their counts reach no further than the gap.
            # `promo alerts run` froze alone: the workers wrote on, as far as their heartbeats say.
            lag = gap
            if typical is None:
                typical = 0.0
            elif self.frozen_with_pipeline:
                typical = gap
        lag = self._restart_lag(now, lag)
        held = self.detector.settled_until
        # Lost once running: nothing more is settled until it is known again (the counts wait).
        lag_s = max(float(lag), 0.0) if lag is not None else now - SETTLE_S - (held if held is not None else now)
        settled_until = round(now - lag_s - SETTLE_S, 3)
        lag_s = round(now - SETTLE_S - settled_until, 3)  # what the log's two times say, to the ms
        grew = lag_s - self._last_lag if self._last_lag is not None and lag is not None else 0.0
        self._last_lag = lag_s if lag is not None else None
        if held is not None and typical is not None and grew > LAG_JUMP_S and not froze and settled_until > held:
            # Partitions just stopped (see LAG_JUMP_S). Not this process's own freeze: the pipeline
            # then wrote on (`promo alerts run`) or froze whole with it (a worker), evenly either way.
            settled_until = held
        if lag is None and held is None:
            # How far behind the pipeline is, nobody can say yet (no partition assigned, no heartbeat
            # heard): nothing is settled, and what arrives meanwhile is history, not news. (Taken as
            # "not behind", the first steps settled spans whose counts came later, booked into a
            # few seconds: a rate many times the real one, and every normal step after it a drop.)
            # The feed's starting point is the first evaluation that knows it (what is settled then).
            leaves = None
        elif typical is None:
            # The worst lag only (`promo alerts run` beside workers that do not write their partitions'
            # mean), or none: how far the counts in the store reach is not known, so what arrived goes on
            # (a span that settles nothing carries it to the next that does).
            leaves = self.feed.update(rows, now)
        else:
            # Only what is settled goes on; what the partitions that are not behind wrote past it waits
            # for the span that holds it (streams/alerts/feed.py).
            leaves = self.feed.update(rows, now, settled_until, now - max(min(typical, lag_s), 0.0))
        if leaves is None:  # the first read after a fresh start: a starting point, nothing to judge
            self.last_tick = now
            self._save(now)
            return []
        # The known leaves that sent nothing are logged as 0 too: the detector sees them so (a channel
        # that stopped is the news), and a replay without them judged a different step (an outside
        # probe: live resolved an incident that the replay of the same evaluations left firing).
        known = sorted({(c, ch) for c, ch, _ in self.feed.seen})
        zero = [0.0] * len(METRICS)
        logged = {**{leaf: zero for leaf in known if leaf not in leaves}, **leaves}
        notes = await self.call(alert_store.read_silences, self.store, self.last_tick or now - EVERY_S)
        resets = [note for note in notes if note.kind == "note" and note.created_at > self.last_tick]
        # What changed the detector beside these inputs first: an evaluation logged without them would
        # replay differently (events at an evaluation that was never logged are not replayed).
        events = self._events + [alert_store.DetectorEvent(now, "reset", n.campaign_id, n.channel) for n in resets]
        await self.call(alert_store.log_events, self.store, now, events)
        await self.call(alert_store.log_inputs, self.store, now, settled_until, lag_s, logged)
        self._events = []
        changed: list[Alert] = []
        for note in resets:  # its open incidents resolve, its baseline starts again
            changed += self.detector.reset(Scope(note.campaign_id or None, note.channel or None), now)
        changed += self.detector.step(build_step(now, settled_until, lag_s, leaves, known))
        if changed:
            rows = [alert_store.AlertRow.of(a, self.source) for a in changed]
            await self.call(alert_store.write_alerts, self.store, rows)
            for alert in changed:  # one line per state change: the log tells the incident's story too
                state = "resolved" if alert.resolved_at is not None else "firing"
                log.warning("alert %s %s: %s", alert.id, state, alert.message)
        silences = [n for n in notes if n.kind == "silence"]
        self.silences = silences
        ctx = dataclasses.replace(self.context(lag_s), now=now)  # times on another day get their date
        for alert in changed:
            event = self.flaps.decide(alert, now)
            if event is None:
                log.info("alert %s flapping: this change is recorded, not sent", alert.id)
            else:
                self._tell(alert, event, silences, ctx, now)
        for alert, event in self.flaps.due(self.detector.firing(), now):
            self._tell(alert, event, silences, ctx, now)
        self._tell_unheard(silences, ctx, now)
        # After the changes are told: a store read failing here must not cost their messages (a review)
        await self._read_acks()
        if self.afresh is not None:
            await self._close_orphans(now, self.afresh, silences, ctx)
        await self._remind(now, silences, ctx)
        self.last_tick = now
        self.evaluations += 1
        self._save(now)
        return changed

    def _tell(
        self, alert: Alert, event: str, silences: Sequence[alert_store.Silence], ctx: Context, now: float,
        said_as: str | None = None,
    ) -> None:  # fmt: skip
        """A state change's message, and what the room now believes (unless a silence kept it from it)."""
        if self._notify(alert, event, silences, ctx, now, said_as):
            self.flaps.told(alert, event, now)
            if event.split("@")[0] in ("fired", "escalated") and self._last_told.get(alert.id) != event:
                # Reminders count from when the room was told: a child told on its own once its parent
                # ended got its first reminder in the same second (timed from its folded opening). The
                # same change told again (a child folding in) is no new word.
                self._last_told[alert.id] = event
                self.reminded[alert.id] = max(self.reminded.get(alert.id, 0.0), now)

    def _tell_unheard(self, silences: Sequence[alert_store.Silence], ctx: Context, now: float) -> None:
        """Firing incidents the room never heard of (they fired under a silence since lifted, or ended):
        told now. Before, an unsilence said nothing of the outage that fired meanwhile until its first
        reminder, 8.5 minutes later (an outside probe)."""
        for alert in self.detector.firing():
            if self.flaps.believed.get(alert.id, ("", 0.0))[0] == "fired" or alert.id in self.flaps.held:
                continue
            scope = alert.scope
            if any(s.covers(alert.metric, scope.campaign_id, scope.channel, now) for s in silences):
                continue
            # Said as its opening, as it stands now (critical if it was raised meanwhile): the room never
            # heard of it, so "now critical" of a warning it was never told was no news it could read. Its
            # name stays the change's own (escalated@...), so the same change told again later (a child
            # folding in) is known as sent.
            self._tell(alert, notification_event(alert), silences, ctx, now, said_as="fired")

    def _notify(
        self, alert: Alert, event: str, silences: Sequence[alert_store.Silence], ctx: Context, now: float,
        said_as: str | None = None,
    ) -> bool:  # fmt: skip
        """Queue `event`'s message unless a silence covers the alert; whether the room is told."""
        scope = alert.scope
        if any(s.covers(alert.metric, scope.campaign_id, scope.channel, now) for s in silences):
            log.info("alert %s %s silenced; recorded, not sent", alert.id, event)
            return False
        if not self.robots:
            return True
        kind, doc = said_as or event.split("@")[0], _json_safe(alert.to_row())
        message = render(doc, kind, ctx)
        again = render(doc, "reopened", ctx) if kind == "fired" else None
        note = Note(alert.id, event, message, again, alert.opened_at > alert.detected_at)
        self.outbox.owed[note.key] = note
        self.outbox.queue.put_nowait(note)
        return True

    async def _read_acks(self) -> None:
        """Who acknowledged each firing incident (for the reminders and the view's banner), read while anything
        fires. One map assigned at once (the banner is served between awaits); on a failed read the last one
        stays (logged)."""
        if not self.detector.firing():
            self.acked = {}
            return
        try:
            firing = await self.call(alert_store.read_alerts, self.store, None, self.source, True)
        except Exception as exc:  # the store's failure is logged; the evaluation goes on
            log.warning("reading the acknowledgements failed (%s): the last ones read stand", exc)
            return
        self.acked = {d["id"]: (d["acked_by"], parse_utc(d["acked_at"])) for d in firing
                      if d["acked_by"] and d.get("acked_at")}  # fmt: skip

    async def _close_orphans(
        self, now: float, why: str, silences: Sequence[alert_store.Silence], ctx: Context
    ) -> None:  # fmt: skip
        """A detector that starts afresh (no saved state, an unreadable one, or one too old to go on from)
        knows nothing of the incidents its store still holds open: they stayed firing in promo.alerts, in
        Grafana's table and `promo alerts list`, while the banner (this detector's) had none, and nothing
        would ever resolve them (an outside probe). They are closed now, unjudged, and the room is told so
        ("closed"), not that they recovered: the scope is judged afresh from here."""
        try:
            stale = await self.call(alert_store.read_alerts, self.store, None, self.source, True)
        except Exception as exc:  # tried again at the next evaluation (`afresh` stays)
            log.warning("reading the incidents left open failed (%s): tried again at the next evaluation", exc)
            return
        keep = self.detector.open_ids()
        for doc in stale:
            if doc["id"] in keep:
                continue
            note = f"closed unjudged at {iso_utc(now)}: the detector started afresh ({why})"
            opened = parse_utc(doc.get("opened_at") or doc["detected_at"])  # this opening, as stored
            again = parse_utc(doc["reopened_from"]) if doc.get("reopened_from") else math.nan
            alert = Alert(doc["id"], doc["kind"], doc["metric"], Scope(doc["campaign_id"], doc["channel"]),
                          parse_utc(doc["started_at"]), parse_utc(doc["detected_at"]), now,
                          float_or_nan(doc["expected"]), float_or_nan(doc["observed"]),
                          doc["basis"], doc["severity"], f"{doc['message']}; {note}",
                          opened_at=opened, reopened_from=again)  # fmt: skip
            # its children as stored (labels; read back as scopes, `all` would be the total's)
            row = dataclasses.replace(alert_store.AlertRow.of(alert, self.source), children=tuple(doc["children"]))
            try:
                await self.call(alert_store.write_alerts, self.store, [row])
            except Exception as exc:  # tried again at the next evaluation (`afresh` stays)
                log.warning("closing alert %s failed (%s): tried again at the next evaluation", alert.id, exc)
                return
            log.warning("alert %s %s", alert.id, note)
            self._notify(alert, f"closed@{now:.0f}", silences, ctx, now)
        self.afresh = None

    async def _remind(self, now: float, silences: Sequence[alert_store.Silence], ctx: Context) -> None:
        severe = [a for a in self.detector.firing() if a.severity == "critical"]
        if not severe or not self.robots:
            return
        due = [a for a in severe if now - max(self.reminded.get(a.id, 0.0), *_sent_at(a)) >= REMIND_S]
        if not due:
            return
        for alert in due:
            self.reminded[alert.id] = now
            if not acknowledged(alert, self.acked.get(alert.id, ("", None))[1]):
                self._notify(alert, f"reminder@{now:.0f}", silences, ctx, now)

    # -- loops -------------------------------------------------------------------------------------
    async def run(self, every_s: float = EVERY_S, stop: asyncio.Event | None = None) -> None:
        """Evaluate every `every_s` on the wall clock's grid until cancelled or `stop` is set (then
        between two evaluations, never inside one); a failing store is logged once per state
        change, and the evaluation goes on at the next tick."""
        sender = asyncio.ensure_future(self.deliver())
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                now = self.clock()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s - now % every_s)
                if stop.is_set():
                    break
                try:
                    await self.tick()
                    self.failing.recovered()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failing.failed(f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    failing = self.failing.failing
                    summary = f"{self.evaluations} evaluations, {len(self.detector.firing())} firing"
                    await self.call(
                        self.store.log_status,
                        int(self.clock() * 1000),
                        HEARTBEAT_NAME,
                        2 if failing else 0,
                        "failing" if failing else "ok",
                        summary,
                    )
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def deliver(self) -> None:
        """Send queued notifications: each robot from its own queue and task, on threads, so a robot that
        hangs or fails holds back only itself (one robot served after another, a hanging Feishu made
        every other robot 25-56 s late in an outage: an outside probe). Nothing ends it but
        cancellation: a notification that fails is logged, and the next one goes out."""
        queues: dict[str, asyncio.Queue[tuple[Note, Message]]] = {r.kind: asyncio.Queue() for r in self.robots}
        tasks = [asyncio.ensure_future(self._robot_loop(r, queues[r.kind])) for r in self.robots]
        try:
            while True:
                note = await self.outbox.queue.get()
                try:
                    await self._dispatch(note, queues)
                except Exception as exc:
                    self.outbox.waiting.pop(note.key, None)
                    self.outbox.queue.task_done()
                    secrets = [s for robot in self.robots for s in robot.secrets()]
                    log.error("notification %s of alert %s not delivered: %s", note.event, note.alert_id,
                              redact(f"{type(exc).__name__}: {exc}", secrets))  # fmt: skip
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _dispatch(self, note: Note, queues: Mapping[str, asyncio.Queue[tuple[Note, Message]]]) -> None:
        """Hand `note` to each robot that has not sent it (the store's record, per robot: a restart
        re-sends only to the robots a kill cut off, an outside probe saw it sent twice to all)."""
        alert_id, event = note.alert_id, note.event
        try:
            done = {e for _, e in await self.call(alert_store.notified, self.store, [alert_id])}
            known = True
        except Exception:  # the store is away: better twice than never
            done, known = set(), False

        def message(kind: str) -> Message:
            """An opening after one this robot's room was told of is "down again" (marks per robot; an
            unsuffixed mark, from before 2026-12-07, counts for all); a child's first opening that was
            folded under its parent was never told, and is news when it fires alone. A robot that was
            failing when the first opening went out never told its room: not "again" there."""
            if note.again is None:
                return note.message
            if not known:
                return note.again if note.reopen else note.message
            again = any(
                e.split("@")[0] in ("fired", "escalated") and e.split(">")[0] != event
                and (">" not in e or e.split(">", 1)[1] == kind) for e in done
            )  # fmt: skip
            return note.again if again else note.message

        if note.key in self.outbox.waiting:  # the same change told again (a child folding in), on its way
            self.outbox.queue.task_done()
            return
        # Not to a robot that sent it (the store's marks; `event` alone: every robot, as marked before
        # 2026-12-07), sent it in this life, or holds it for its next digest
        pending = self.outbox.undelivered.get(note.key, set())
        todo = [] if event in done else [
            r for r in self.robots
            if f"{event}>{r.kind}" not in done and note.key not in self.outbox.sent.get(r.kind, {})
            and r.kind not in pending
        ]  # fmt: skip
        if not todo:
            if not pending:
                self._delivered(note.key, None)
            self.outbox.queue.task_done()
            return
        self.outbox.waiting[note.key] = {r.kind for r in todo}
        self.outbox.undelivered[note.key] = pending | {r.kind for r in todo}
        for robot in todo:
            queues[robot.kind].put_nowait((note, message(robot.kind)))

    def _delivered(self, key: str, kind: str | None) -> None:
        """`kind` took the note `key` (None: every robot had): owed no more once every robot has."""
        left = self.outbox.undelivered.get(key)
        if kind is not None and left is not None:
            left.discard(kind)
            sent = self.outbox.sent.setdefault(kind, {})
            sent[key] = None
            while len(sent) > SENT_MEMORY:
                del sent[next(iter(sent))]
        if kind is None or not left:
            self.outbox.undelivered.pop(key, None)
            self.outbox.owed.pop(key, None)

    async def _robot_loop(self, robot: Robot, queue: asyncio.Queue[tuple[Note, Message]]) -> None:
        loop = asyncio.get_running_loop()
        flush_wait: dict[str, float] = {}
        while True:
            if self.outbox.held.get(robot.kind):
                # What it has not taken goes out on its own once its rate lets it, not with whatever
                # message comes next (an outside probe: seven resolutions waited 6 minutes for one);
                # a robot that keeps failing is tried less often, up to once a minute
                wait = flush_wait.get(robot.kind, HELD_FLUSH_S)
                try:
                    note, message = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    try:
                        ok = await self._flush(loop, robot)
                    except Exception as exc:  # send does not raise; were it to, this robot goes on
                        log.warning(
                            "a digest to %s failed: %s", robot.name, robot.redact(f"{type(exc).__name__}: {exc}")
                        )
                        ok = False
                    flush_wait[robot.kind] = HELD_FLUSH_S if ok else min(2 * wait, FAILING_RETRY_S)
                    continue
            else:
                note, message = await queue.get()
            try:
                await self._send(loop, robot, note, message)
            except Exception as exc:  # send does not raise; were it to, this robot failed, the others go on
                log.warning("notification %s of alert %s to %s failed: %s", note.event, note.alert_id, robot.name,
                            robot.redact(f"{type(exc).__name__}: {exc}"))  # fmt: skip
            finally:
                self._robot_done(note, robot)

    async def _send(self, loop: asyncio.AbstractEventLoop, robot: Robot, note: Note, message: Message) -> None:
        held = self.outbox.held.pop(robot.kind, [])
        try:
            outcome = await loop.run_in_executor(None, send, robot, with_digest(message, held, self._language()))
        except Exception as exc:
            outcome = Outcome(robot.name, False, 1, robot.redact(f"{type(exc).__name__}: {exc}"))
        if outcome.held:  # over the robot's rate (or it said too fast): goes out when the rate lets it
            self.outbox.held[robot.kind] = [*held, Held(message, note.alert_id, note.event, False)][-HELD_MAX:]
            return
        if outcome.ok:
            self._delivered(note.key, robot.kind)
            with contextlib.suppress(Exception):
                await self.call(alert_store.mark_notified, self.store, note.alert_id, f"{note.event}>{robot.kind}",
                                self.clock())  # fmt: skip
            await self._digested(held, robot)
            return
        log.warning("notification %s of alert %s to %s failed: %s", note.event, note.alert_id, outcome.robot,
                    outcome.detail)  # fmt: skip
        # Not lost with it: what this robot missed goes out, as a digest, when it takes messages again.
        self.outbox.held[robot.kind] = [*held, Held(message, note.alert_id, note.event, True)][-HELD_MAX:]

    async def _flush(self, loop: asyncio.AbstractEventLoop, robot: Robot) -> bool:
        """What a robot has not taken, as one digest of its own (when its rate lets it); whether it went."""
        held = self.outbox.held.pop(robot.kind, [])
        if not held:
            return True
        zh = self._language() == "zh"
        title = f"另有 {len(held)} 条告警未及时送达" if zh else f"{len(held)} alert message(s) not delivered in time"
        outcome = await loop.run_in_executor(None, send, robot, with_digest(Message(title, "", {}), held,
                                                                             self._language()))  # fmt: skip
        if outcome.ok:
            await self._digested(held, robot)
        else:
            if not outcome.held:  # a robot that fails is one warning line, its digest too (an outside probe)
                log.warning("a digest of %d message(s) to %s failed: %s", len(held), outcome.robot, outcome.detail)
            self.outbox.held[robot.kind] = [*held, *self.outbox.held.get(robot.kind, [])][-HELD_MAX:]
        return outcome.ok or outcome.held  # over its rate is no failure: tried again as soon as it lets

    def _robot_done(self, note: Note, robot: Robot) -> None:
        waiting = self.outbox.waiting.get(note.key)
        if waiting is None:
            return
        waiting.discard(robot.kind)
        if not waiting:
            del self.outbox.waiting[note.key]
            self.outbox.queue.task_done()

    def _language(self) -> str:
        return self.context(0.0).language

    async def _digested(self, held: Sequence[Held], robot: Robot) -> None:
        """The messages that went out in a digest are delivered to this robot too."""
        for item in held:
            self._delivered(f"{item.alert_id}|{item.event}", robot.kind)
            with contextlib.suppress(Exception):
                await self.call(alert_store.mark_notified, self.store, item.alert_id, f"{item.event}>{robot.kind}",
                                self.clock())  # fmt: skip


def _sent_at(alert: Alert) -> tuple[float, ...]:
    """When this opening of `alert` was last announced: its opening, and its raise to critical."""
    return (alert.opened_at, alert.raised_at) if math.isfinite(alert.raised_at) else (alert.opened_at,)


def with_digest(message: Message, held: Sequence[Held | Message], language: str = "zh") -> Message:
    """`message`, with a digest of what the robot did not take before it: held back by its rate, or
    failed (each said as what it was, in the messages' language)."""
    if not held:
        return message
    items = [h if isinstance(h, Held) else Held(h, "", "", False) for h in held]
    zh = language == "zh"
    parts = []
    for failed in (False, True):
        titles = [h.message.title for h in items if h.failed == failed]
        if not titles:
            continue
        n = len(titles)
        if failed:
            head = f"另有 {n} 条因发送失败补发：" if zh else f"{n} more not delivered before (the robot failed):"
        else:
            head = f"另有 {n} 条因频率限制合并：" if zh else f"{n} more held back by the rate limit:"
        parts.append(head + "\n" + "\n".join(f"- {t}" for t in titles))
    text = "\n\n".join([message.text, *parts]) if message.text else "\n\n".join(parts)
    # The JSON webhook gets each held message's own fields too, in order (an outside probe: a consumer got a
    # digest's titles as text and never the reopened and escalated events in it, then their resolutions)
    digest = [{**h.message.fields, "failed": h.failed} for h in items if h.message.fields]
    return Message(message.title, text, {**message.fields, "digest": digest} if digest else message.fields)
