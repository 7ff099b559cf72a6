"""The alert tables' reads and writes (schema: streams/sink/clickhouse.py, MIGRATIONS v5 and v6).

Blocking functions of a `ClickHouseStore`, run on its thread (`store.call`) by the live runner and
directly by the CLI. Every value is a bound parameter. Times are epoch seconds here and
DateTime64(3, 'UTC') in the tables; a row of `promo.alerts` as the CLI prints it is `alert_doc`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from streams.alerts.freshness import Beat, Lag, fleet_lag_of
from streams.alerts.plan import iso
from streams.alerts.scope import Scope
from streams.contract.ids import has_control
from streams.sink.clickhouse import ALERT_METRICS, DB

if TYPE_CHECKING:
    from streams.alerts.detector import Alert


class Store(Protocol):
    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...
    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None: ...


ALERT_COLUMNS = (
    "id",
    "kind",
    "metric",
    "campaign_id",
    "channel",
    "started_at",
    "detected_at",
    "resolved_at",
    "expected",
    "observed",
    "basis",
    "severity",
    "message",
    "children",
    "source",
    "version",
    "opened_at",
    "reopened_from",
)


def utc(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


def window_rows(store: Store, since_s: float) -> list[tuple[str, str, int, list[float]]]:
    """Per campaign, channel and event-time minute from `since_s` on: the metrics counted so far."""
    rows = store.query_rows(
        f"SELECT campaign_id, channel, toUnixTimestamp(minute) AS m, "
        f"{', '.join(f'sum({c}) AS {c}' for c in ALERT_METRICS)} FROM {DB}.facts_minute "
        "WHERE src_partition < 0 AND reason = '' AND minute >= toDateTime({since:Int64}, 'UTC') "
        "GROUP BY campaign_id, channel, m",
        {"since": int(since_s)},
    )
    return [(r["campaign_id"], r["channel"], int(r["m"]), [float(r[c]) for c in ALERT_METRICS]) for r in rows]


def log_inputs(
    store: Store, at: float, settled_until: float, lag_s: float, leaves: dict[tuple[str, str], list[float]]
) -> None:
    """What one evaluation saw (promo.detector_inputs): a replay feeds exactly this back."""
    rows = [[utc(at), utc(settled_until), lag_s, c, ch, *values] for (c, ch), values in sorted(leaves.items())]
    if not rows:  # an evaluation with nothing new still records the clock and the freshness
        rows = [[utc(at), utc(settled_until), lag_s, "", "", *([0.0] * len(ALERT_METRICS))]]
    store.insert_rows(
        f"{DB}.detector_inputs", rows, ("at", "settled_until", "lag_s", "campaign_id", "channel", *ALERT_METRICS)
    )


Evaluation = tuple[float, float, float, dict[tuple[str, str], list[float]]]  # at, settled_until, lag_s, leaves


def read_inputs(store: Store, from_s: float, to_s: float) -> list[Evaluation]:
    """The evaluations logged in [from_s, to_s), in order: (at, settled_until, lag_s, leaves)."""
    rows = store.query_rows(
        f"SELECT toUnixTimestamp64Milli(at) AS at_ms, toUnixTimestamp64Milli(settled_until) AS settled_ms, "
        f"lag_s, campaign_id, channel, {', '.join(ALERT_METRICS)} FROM {DB}.detector_inputs "
        "WHERE at >= fromUnixTimestamp64Milli({f:Int64}, 'UTC') AND at < fromUnixTimestamp64Milli({t:Int64}, 'UTC') "
        "ORDER BY at, campaign_id, channel",
        {"f": int(from_s * 1000), "t": int(to_s * 1000)},
    )
    steps: list[Evaluation] = []
    for r in rows:
        at = r["at_ms"] / 1000
        if not steps or steps[-1][0] != at:
            steps.append((at, r["settled_ms"] / 1000, float(r["lag_s"]), {}))
        if r["campaign_id"] or r["channel"]:
            steps[-1][3][(r["campaign_id"], r["channel"])] = [float(r[c]) for c in ALERT_METRICS]
    return steps


class DetectorEvent(NamedTuple):
    """What changed the live detector beside an evaluation's inputs, before the step at `at`
    (promo.detector_events): `start` a fresh detector; `restore` / `replan` one restored from the
    state in `detail` (JSON; after a restart, or a new plan or schedule); `reset` an ops note on
    campaign_id / channel ('' for any). `inputs` (on start, restore, replan; JSON, `detector_inputs`)
    names the plan and schedule the detector had from then on; '' before schema v8."""

    at: float
    kind: str
    campaign_id: str = ""
    channel: str = ""
    detail: str = ""
    inputs: str = ""


def detector_inputs(plan_at: float, schedule: Mapping[str, tuple[float | None, float | None]]) -> str:
    """What a start, restore or replan event keeps of the detector's inputs: the plan by its
    imported_at (0: none; the CSV stays in promo.plans) and the schedule itself (a few rows)."""
    return json.dumps({"plan_at": plan_at, "schedule": {c: list(v) for c, v in sorted(schedule.items())}})


def read_detector_inputs(text: str) -> tuple[float, dict[str, tuple[float | None, float | None]]] | None:
    """`detector_inputs` read back; None for an event that names none (from before schema v8)."""
    if not text:
        return None
    doc = json.loads(text)
    return float(doc["plan_at"]), {str(c): (v[0], v[1]) for c, v in doc["schedule"].items()}


RESTARTS = ("start", "restore")  # where a replay can begin: the detector owed nothing to what came before


def log_events(store: Store, at: float, events: Sequence[DetectorEvent]) -> None:
    if events:
        store.insert_rows(
            f"{DB}.detector_events",
            [[utc(at), seq, e.kind, e.campaign_id, e.channel, e.detail, e.inputs] for seq, e in enumerate(events)],
            ("at", "seq", "kind", "campaign_id", "channel", "detail", "inputs"),
        )


def read_events(store: Store, from_s: float, to_s: float) -> list[DetectorEvent]:
    """The events logged in [from_s, to_s), in the order the live detector met them."""
    rows = store.query_rows(
        "SELECT toUnixTimestamp64Milli(at) AS at_ms, kind, campaign_id, channel, detail, inputs "
        f"FROM {DB}.detector_events "
        "WHERE at >= fromUnixTimestamp64Milli({f:Int64}, 'UTC') AND at < fromUnixTimestamp64Milli({t:Int64}, 'UTC') "
        "ORDER BY at, seq",
        {"f": int(from_s * 1000), "t": int(to_s * 1000)},
    )
    return [
        DetectorEvent(r["at_ms"] / 1000, r["kind"], r["campaign_id"], r["channel"], r["detail"], r["inputs"])
        for r in rows
    ]


def replay_start(store: Store, at_s: float, back_s: float) -> float | None:
    """The last time in [at_s - back_s, at_s] the live detector started afresh or from its saved
    state: a replay from there is the live detector step for step."""
    rows = store.query_rows(
        f"SELECT toUnixTimestamp64Milli(max(at)) AS at_ms, count() AS n FROM {DB}.detector_events "
        "WHERE kind IN {kinds:Array(String)} AND at >= fromUnixTimestamp64Milli({f:Int64}, 'UTC') "
        "AND at <= fromUnixTimestamp64Milli({t:Int64}, 'UTC')",
        {"kinds": list(RESTARTS), "f": int((at_s - back_s) * 1000), "t": int(at_s * 1000)},
    )
    return rows[0]["at_ms"] / 1000 if rows and rows[0]["n"] else None


@dataclass(frozen=True)
class AlertRow:
    """One version of one incident (promo.alerts)."""

    id: str
    kind: str
    metric: str | None
    campaign_id: str | None
    channel: str | None
    started_at: float
    detected_at: float
    resolved_at: float | None
    expected: float
    observed: float
    basis: str
    severity: str
    message: str
    children: tuple[str, ...] = ()
    source: str = "live"
    # This opening: when it was detected (detected_at stays the first opening's) and, for an incident
    # reopened by a re-fire, its onset (None: the first opening). Without them Grafana's firing table
    # and `alerts list` said "since" the first onset of an incident that had recovered and broken again,
    # and sorted it by its first detection, where the banner says this opening's (an outside probe).
    opened_at: float | None = None
    reopened_from: float | None = None

    @classmethod
    def of(cls, alert: Alert, source: str = "live") -> AlertRow:
        """The row of a detector's `Alert` (its `to_row()`, less what the table does not keep)."""
        row = alert.to_row()
        fields = {f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in row}
        again = row["reopened_from"]
        return cls(**{**fields, "children": tuple(row["children"]), "source": source,
                      "reopened_from": again if math.isfinite(again) else None})  # fmt: skip

    def doc(self) -> dict[str, Any]:
        """As `promo alerts list --json` prints it (nobody has acknowledged a row not yet stored)."""
        return alert_doc({**dataclasses.asdict(self), "acked_by": None})

    def values(self, version: int) -> list[Any]:
        return [
            self.id,
            self.kind,
            self.metric or "",
            self.campaign_id,
            self.channel,
            utc(self.started_at),
            utc(self.detected_at),
            utc(self.resolved_at),
            float(self.expected),
            float(self.observed),
            self.basis,
            self.severity,
            self.message,
            list(self.children),
            self.source,
            version,
            utc(self.detected_at if self.opened_at is None else self.opened_at),
            utc(self.reopened_from),
        ]


def write_alerts(store: Store, rows: Sequence[AlertRow]) -> None:
    if rows:
        version = time.time_ns() // 1000
        store.insert_rows(f"{DB}.alerts", [r.values(version + i) for i, r in enumerate(rows)], ALERT_COLUMNS)


def read_alerts(
    store: Store,
    since_s: float | None = None,
    source: str = "live",
    firing_only: bool = False,
    openings: bool = True,
) -> list[dict[str, Any]]:
    """The newest version of each incident (newest first, by its current opening), with who acknowledged
    it. `openings` False: a store from before schema v9, which has none (read by the first opening)."""
    opened = "a.opened_at" if openings else "a.detected_at"
    where = ["a.source = {source:String}"]
    params: dict[str, Any] = {"source": source}
    if since_s is not None:
        where.append(f"({opened} >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') OR a.resolved_at IS NULL)")
        params["since"] = int(since_s * 1000)
    if firing_only:
        where.append("a.resolved_at IS NULL")
    rows = store.query_rows(
        f"SELECT a.*, k.who AS acked_by, k.at AS acked_at FROM {DB}.alerts AS a FINAL "
        f"LEFT JOIN (SELECT id, argMax(acked_by, acked_at) AS who, max(acked_at) AS at "
        f"FROM {DB}.alert_acks GROUP BY id) AS k ON k.id = a.id "
        f"WHERE {' AND '.join(where)} ORDER BY {opened} DESC, a.id",
        params,
    )
    return [alert_doc(r) for r in rows]


def acked_this_opening(acked_at: float | None, opened_at: float | None) -> bool:
    """Does the last ack of an incident (`acked_at`, None if none) hold for its opening at `opened_at`? An
    ack holds for the opening it was given in: one given before the incident reopened (even while it was
    resolved) muted the reopened one's reminders (an outside probe). The banner, the reminders and `alerts
    list` ask this; Grafana's firing table says the same in SQL."""
    return acked_at is not None and opened_at is not None and acked_at >= opened_at


def alert_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A promo.alerts row as `promo alerts list --json` prints it: times ISO 8601 UTC, null scopes. Who
    acknowledged it: an ack given in its current opening (one given before it reopened does not hold for
    the reopened incident, as on the banner and in reminders)."""
    opened = seconds(row.get("opened_at") or row["detected_at"])
    acked_at = seconds(row.get("acked_at"))
    acked_by = (row.get("acked_by") or None) if acked_this_opening(acked_at, opened) else None
    return {
        "id": row["id"],
        "kind": row["kind"],
        "metric": row["metric"] or None,
        "campaign_id": row["campaign_id"],
        "channel": row["channel"],
        "started_at": iso(seconds(row["started_at"])),
        "detected_at": iso(seconds(row["detected_at"])),
        "resolved_at": iso(seconds(row["resolved_at"])),
        # this opening's detection and, reopened, its onset (null: the first opening): what "since" says
        "opened_at": iso(opened),
        "reopened_from": iso(seconds(row.get("reopened_from"))),
        "expected": finite(row["expected"]),  # NaN (no expectation: nothing arrived at a scheduled start)
        "observed": finite(row["observed"]),
        "basis": row["basis"],
        "severity": row["severity"],
        "message": row["message"],
        "children": list(row.get("children") or []),
        "source": row.get("source") or "live",  # live, replay or backtest: which detector raised it
        "acked_by": acked_by,
        "acked_at": iso(acked_at) if acked_by else None,
    }


def finite(value: Any) -> float | None:
    number = float(value)
    return round(number, 3) if math.isfinite(number) else None


def known_alert(store: Store, alert_id: str) -> bool:
    rows = store.query_rows(f"SELECT count() AS n FROM {DB}.alerts WHERE id = {{id:String}}", {"id": alert_id})
    return bool(rows and rows[0]["n"])


def resolved_at(store: Store, alert_id: str) -> str | None:
    """When the incident resolved (ISO 8601 UTC), as its newest version says; None while it fires."""
    rows = store.query_rows(
        f"SELECT resolved_at FROM {DB}.alerts FINAL WHERE id = {{id:String}} ORDER BY detected_at DESC LIMIT 1",
        {"id": alert_id},
    )
    value = rows[0]["resolved_at"] if rows else None
    return iso(seconds(value)) if value is not None else None


def acknowledge(store: Store, alert_id: str, by: str, at_s: float) -> dict[str, Any] | None:
    """`ack` of a known incident: {"previous": the acknowledgement replaced or None, "resolved_at": ISO
    or None while it fires}; None when the store has no such incident (nothing recorded)."""
    if not known_alert(store, alert_id):
        return None
    previous = ack(store, alert_id, by, at_s)
    return {"previous": previous, "resolved_at": resolved_at(store, alert_id)}


def ack(store: Store, alert_id: str, by: str, at_s: float) -> dict[str, Any] | None:
    """Record that `by` took the incident; the acknowledgement it replaces (who, when as ISO UTC), or
    None. The latest is the one shown and kept (alert_acks replaces by id)."""
    rows = store.query_rows(
        f"SELECT argMax(acked_by, acked_at) AS who, max(acked_at) AS at, count() AS n FROM {DB}.alert_acks "
        "WHERE id = {id:String}",
        {"id": alert_id},
    )
    store.insert_rows(f"{DB}.alert_acks", [[alert_id, by, utc(at_s)]], ("id", "acked_by", "acked_at"))
    if not rows or not rows[0]["n"]:
        return None
    return {"acked_by": rows[0]["who"], "acked_at": iso(seconds(rows[0]["at"]))}


# A silence ends within this (a war room's silence lasts hours): one left behind never mutes everything for good.
MAX_SILENCE_S = 7 * 86400.0
MAX_SILENCE = "7 days"


@dataclass(frozen=True)
class Silence:
    """A silence (no notification, the alert still recorded) or a note (ops changed something on
    purpose: the scope's baseline starts again). '' in metric, campaign_id or channel means any.
    `lifted_at`: when `promo alerts unsilence` ended it early (a 'lift' row of the same table)."""

    kind: str  # "silence" | "note"
    metric: str
    campaign_id: str
    channel: str
    until: float
    reason: str
    created_by: str
    created_at: float
    lifted_at: float | None = None
    lifted_by: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any], now: float | None = None) -> Silence:
        """From JSON (the worker's POST /api/alerts/silence); a ValueError says what is wrong in one line."""
        try:
            silence = cls(
                str(doc["kind"]),
                str(doc["metric"]),
                str(doc["campaign_id"]),
                str(doc["channel"]),
                float(doc["until"]),
                str(doc["reason"])[:500],
                str(doc["created_by"])[:100],
                round(float(doc["created_at"]), 3),  # as the table keeps it: the id stays the same
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(
                f"a silence needs kind, metric, campaign_id, channel, until, reason, created_by, created_at: {exc}"
            ) from None
        if silence.kind not in ("silence", "note"):
            raise ValueError(f"kind must be silence or note, not {silence.kind!r}")
        if has_control(silence.reason) or has_control(silence.created_by):
            raise ValueError("reason and created_by are one line of text, no control character")
        if silence.metric not in ("", *ALERT_METRICS):
            raise ValueError(f"metric must be one of {', '.join(ALERT_METRICS)}, not {silence.metric!r}")
        now = time.time() if now is None else now
        if not (math.isfinite(silence.created_at) and abs(silence.created_at - now) < 86400):
            raise ValueError("created_at must be now (epoch seconds)")
        if not (math.isfinite(silence.until) and silence.until <= now + MAX_SILENCE_S + 60):
            raise ValueError(f"a silence ends at most {MAX_SILENCE} from now (a war room's silence lasts hours)")
        if silence.kind == "silence" and silence.until <= now:
            raise ValueError("a silence must end in the future")
        # The fields say the scope outright (no grammar to read): a channel needs a campaign, no part
        # is blank, a channel has no '/' (a campaign id may), any channel name the data has is one.
        campaign, channel = silence.campaign_id, silence.channel
        blank = bool(campaign) and any(not part.strip() for part in campaign.split("/"))
        if blank or (channel and not campaign):
            said = f"{campaign}/{channel}" if channel else campaign
            raise ValueError(f"a scope is total, CAMPAIGN or CAMPAIGN/CHANNEL with no empty part, not {said!r}")
        if channel and (not channel.strip() or "/" in channel):
            raise ValueError(f"campaign_id {campaign!r} and channel {channel!r} are no scope")
        if len(campaign) > 64:
            raise ValueError(f"a campaign id has at most 64 characters, not {len(campaign)}")
        return silence

    @property
    def id(self) -> str:
        """Its id (`promo alerts silences`, `unsilence ID`): of what the row keeps, to the millisecond."""
        key = json.dumps([round(self.created_at * 1000), self.kind, self.metric, self.campaign_id, self.channel,
                          self.reason, self.created_by], ensure_ascii=False)  # fmt: skip
        return "s" + hashlib.sha256(key.encode()).hexdigest()[:10]

    @property
    def scope(self) -> str:
        """As `--scope` says it (streams/alerts/scope.py); '' stands for any. A campaign whose id reads as the
        total or holds a '/' is named as one (`campaign 'all'`: it printed as `all`, the total's word)."""
        if self.channel:
            return f"{self.campaign_id}/{self.channel}"
        return Scope(self.campaign_id or None).said()

    def to_doc(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SILENCE_COLUMNS}

    def covers(self, metric: str | None, campaign_id: str | None, channel: str | None, now: float) -> bool:
        return (
            now < self.until
            and (self.lifted_at is None or now < self.lifted_at)
            and self.metric in ("", metric or "")
            and self.campaign_id in ("", campaign_id or "")
            and self.channel in ("", channel or "")
        )

    def ends(self) -> float:
        return self.until if self.lifted_at is None else min(self.until, self.lifted_at)

    def listing(self, now: float) -> dict[str, Any]:
        """As `promo alerts silences --json` prints it. `scope` is for people; campaign_id and channel say
        which (a campaign id may hold a '/': "c01/douyin" the campaign or c01's channel douyin).
        Null for the total, as in promo.alerts."""
        return {"id": self.id, "scope": self.scope, "campaign_id": self.campaign_id or None,
                "channel": self.channel or None, "metric": self.metric or None, "until": iso(self.until),
                "reason": self.reason, "by": self.created_by, "created_at": iso(self.created_at),
                "lifted_at": iso(self.lifted_at), "lifted_by": self.lifted_by, "active": self.ends() > now}  # fmt: skip


SILENCE_COLUMNS = ("created_at", "kind", "metric", "campaign_id", "channel", "until", "reason", "created_by")


def add_silence(store: Store, silence: Silence) -> None:
    store.insert_rows(
        f"{DB}.alert_silences",
        [
            [
                utc(silence.created_at),
                silence.kind,
                silence.metric,
                silence.campaign_id,
                silence.channel,
                utc(silence.until),
                silence.reason,
                silence.created_by,
            ]
        ],
        SILENCE_COLUMNS,
    )


def _silence_rows(store: Store, since_s: float) -> list[Silence]:
    """Every row (silences, notes, lifts) still running or made since `since_s`, oldest first."""
    rows = store.query_rows(
        f"SELECT * FROM {DB}.alert_silences WHERE until > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') "
        "OR created_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC') ORDER BY created_at",
        {"since": int(since_s * 1000)},
    )
    return [
        Silence(
            r["kind"],
            r["metric"],
            r["campaign_id"],
            r["channel"],
            seconds(r["until"]) or 0.0,
            r["reason"],
            r["created_by"],
            seconds(r["created_at"]) or 0.0,
        )
        for r in rows
    ]


def _lifted(rows: list[Silence]) -> list[Silence]:
    """Silences and notes with the time each was lifted (a 'lift' row: its reason is the id, its
    until the silence's own, so it is read as long as the silence it ends is)."""
    lifts: dict[str, tuple[float, str]] = {}  # the first lift of each: when, and who
    for r in rows:
        if r.kind == "lift":
            lifts[r.reason] = min(lifts.get(r.reason, (r.created_at, r.created_by)), (r.created_at, r.created_by))
    out = []
    for r in rows:
        if r.kind != "lift":
            at, by = lifts.get(r.id, (None, None))
            out.append(dataclasses.replace(r, lifted_at=at, lifted_by=by))
    return out


def read_silences(store: Store, since_s: float) -> list[Silence]:
    """Silences still running and notes made since `since_s`; a lifted silence says when."""
    return _lifted(_silence_rows(store, since_s))


def list_silences(store: Store, now_s: float, recent_s: float = 86400.0) -> list[Silence]:
    """The silences running now and those ended in the last `recent_s` (`promo alerts silences`), newest first."""
    rows = [r for r in read_silences(store, now_s - recent_s) if r.kind == "silence" and r.ends() > now_s - recent_s]
    return sorted(rows, key=lambda r: r.created_at, reverse=True)


def lift_silence(store: Store, silence_id: str, by: str, now_s: float) -> Silence:
    """End a running silence now (`promo alerts unsilence`); a ValueError says there is none of that id."""
    found = [r for r in read_silences(store, now_s - MAX_SILENCE_S) if r.kind == "silence" and r.id == silence_id]
    if not found:
        raise ValueError(f"no silence {silence_id!r} (promo alerts silences lists them)")
    silence = found[0]
    if silence.ends() <= now_s:
        raise ValueError(f"silence {silence_id!r} already ended at {iso(silence.ends())}")
    add_silence(store, Silence("lift", silence.metric, silence.campaign_id, silence.channel, silence.until,
                               silence_id, by[:100], now_s))  # fmt: skip
    return dataclasses.replace(silence, lifted_at=now_s, lifted_by=by[:100])


def known_campaign(store: Store, campaign_id: str) -> bool:
    """Imported in promo.campaigns or counted in the facts (a scope may name one before it starts)."""
    return not unknown_campaigns(store, [campaign_id])


def record_silence(store: Store, doc: dict[str, Any]) -> dict[str, Any]:
    """A silence (or an ops note) from its posted document (ValueError when it is not one), recorded:
    {"ok", "id", "known_campaign"}; a campaign the store never counted is recorded too, and said."""
    silence = Silence.from_doc(doc)
    add_silence(store, silence)
    known = not silence.campaign_id or known_campaign(store, silence.campaign_id)
    return {"ok": True, "id": silence.id, "known_campaign": known}


def unknown_campaigns(store: Store, campaign_ids: Sequence[str]) -> list[str]:
    """Those of `campaign_ids` neither imported in promo.campaigns nor counted in the facts, in one query."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return []
    rows = store.query_rows(
        f"SELECT campaign_id FROM {DB}.campaigns WHERE campaign_id IN {{ids:Array(String)}} UNION DISTINCT "
        f"SELECT DISTINCT campaign_id FROM {DB}.facts_minute WHERE campaign_id IN {{ids:Array(String)}}",
        {"ids": ids},
    )
    known = {r["campaign_id"] for r in rows}
    return [c for c in ids if c not in known]


def notified(store: Store, ids: Sequence[str]) -> set[tuple[str, str]]:
    """(alert id, event) pairs already sent, of these alerts."""
    if not ids:
        return set()
    rows = store.query_rows(
        f"SELECT id, event FROM {DB}.alert_notifications WHERE id IN {{ids:Array(String)}}", {"ids": list(ids)}
    )
    return {(r["id"], r["event"]) for r in rows}


def mark_notified(store: Store, alert_id: str, event: str, at_s: float) -> None:
    store.insert_rows(f"{DB}.alert_notifications", [[alert_id, event, utc(at_s)]], ("id", "event", "sent_at"))


def plan_version(store: Store) -> float:
    """When the newest plan was imported (0: none): a plan is megabytes, its version a number."""
    rows = store.query_rows(f"SELECT toUnixTimestamp64Milli(max(imported_at)) AS v FROM {DB}.plans")
    return float(rows[0]["v"] or 0) / 1000 if rows else 0.0


def read_plan(store: Store, imported_at: float | None = None) -> tuple[float, str] | None:
    """A stored plan and its version (imported_at, seconds): the newest, or the one imported at
    `imported_at`. None: no plan stored (or none at that time)."""
    if imported_at is None:
        rows = store.query_rows(
            f"SELECT toUnixTimestamp64Milli(imported_at) AS v, csv FROM {DB}.plans ORDER BY imported_at DESC LIMIT 1"
        )
    else:
        rows = store.query_rows(
            f"SELECT toUnixTimestamp64Milli(imported_at) AS v, csv FROM {DB}.plans "
            "WHERE imported_at = fromUnixTimestamp64Milli({v:Int64}, 'UTC') LIMIT 1",
            {"v": round(imported_at * 1000)},
        )
    return (rows[0]["v"] / 1000, rows[0]["csv"]) if rows else None


def read_plan_and_schedule(store: Store) -> tuple[str, dict[str, tuple[float | None, float | None]]]:
    """The newest imported plan (its CSV text, '' for none) and each campaign's schedule."""
    plans = store.query_rows(f"SELECT csv FROM {DB}.plans ORDER BY imported_at DESC LIMIT 1")
    return (plans[0]["csv"] if plans else ""), read_schedule(store)


def read_schedule(store: Store) -> dict[str, tuple[float | None, float | None]]:
    rows = store.query_rows(f"SELECT campaign_id, starts_at, ends_at FROM {DB}.campaign_names")
    return {
        r["campaign_id"]: (seconds(r["starts_at"]), seconds(r["ends_at"]))
        for r in rows
        if r["starts_at"] is not None or r["ends_at"] is not None
    }


def save_plan(store: Store, text: str, source: str, at_s: float) -> None:
    """A plan (CSV text, checked by the caller) becomes the one the detector uses. `source` is a
    label (`import FILE`): a file name that is not UTF-8 keeps a replacement mark, not a failed write."""
    label = source.encode("utf-8", "replace").decode()
    store.insert_rows(f"{DB}.plans", [[utc(at_s), label, text]], ("imported_at", "source", "csv"))


def day_series(store: Store, start_s: float, end_s: float) -> list[tuple[str, str, int, list[float]]]:
    """Per campaign, channel and minute in [start_s, end_s): the metrics (`promo plan from-day`)."""
    rows = store.query_rows(
        f"SELECT campaign_id, channel, toUnixTimestamp(minute) AS m, "
        f"{', '.join(f'sum({c}) AS {c}' for c in ALERT_METRICS)} FROM {DB}.facts_minute "
        "WHERE src_partition < 0 AND reason = '' AND minute >= toDateTime({f:Int64}, 'UTC') "
        "AND minute < toDateTime({t:Int64}, 'UTC') GROUP BY campaign_id, channel, m ORDER BY m",
        {"f": int(start_s), "t": int(end_s)},
    )
    return [(r["campaign_id"], r["channel"], int(r["m"]), [float(r[c]) for c in ALERT_METRICS]) for r in rows]


def fleet_lag(store: Store, now_s: float) -> float | Lag | None:
    """How far the pipeline is behind, in seconds, from the workers' heartbeats (promo.pipeline_status),
    as `freshness.fleet_lag_of` reads them: per worker of the last day, its newest row and its newest
    row that names a partition (the one before a rebalance, while its newest names none)."""
    named = "lags NOT IN ('', '{}')"
    rows = store.query_rows(
        f"SELECT worker, toUnixTimestamp64Milli(max(ts)) AS ts_ms, argMax(lag_s, ts) AS lag_s, "
        f"argMax(lags, ts) != '' AS says, toUnixTimestamp64Milli(maxIf(ts, {named})) AS word_ms, "
        f"argMaxIf(lags, ts, {named}) AS word "
        f"FROM {DB}.pipeline_status WHERE ts > now64(3) - INTERVAL 1 DAY AND worker != 'detector' GROUP BY worker"
    )
    return fleet_lag_of([_beat(r) for r in rows], now_s)


def _beat(row: Mapping[str, Any]) -> Beat:
    try:
        word = {str(k): float(v) for k, v in json.loads(row["word"]).items()} if row["word"] else None
    except (ValueError, TypeError, AttributeError):  # not ours: as if it named none
        word = None
    return Beat(str(row["worker"]), int(row["ts_ms"]) / 1000, float(row["lag_s"]), bool(row["says"]),
                int(row["word_ms"]) / 1000, word)  # fmt: skip
