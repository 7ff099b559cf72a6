"""ClickHouse: the versioned schema, the idempotent batch writer, and the reads the CLI serves.

One table holds everything a batch writes, `promo.facts_minute` (AggregatingMergeTree, so rows of
equal dimensions fold into one), so that one INSERT — atomic in ClickHouse for one block of one
partition — carries a batch's facts, its rejection counts and its *marker*: a row saying "routed
partition p is written up to offset N". A writer that crashed, or a batch that is delivered twice,
finds the marker and skips what is already in. No PARTITION BY, so every insert is one partition.

The client is blocking; callers run it on the single thread of `ClickHouseStore.executor` (chdb
in particular is one engine per process, and must not be entered from two threads at once).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError, StreamClosedError, StreamFailureError

from streams.config import dsn_secrets, scrub
from streams.contract.facts import COUNTERS
from streams.errors import SinkError

log = logging.getLogger(__name__)
T = TypeVar("T")

# `reason` of the marker rows that hold a routed partition's newest owner generation (offset markers
# have ''); both have src_partition >= 0, so no reader of facts or rejections sees them.
GENERATION_MARK = "generation"
DB = "promo"
TOTALS_COLUMNS = ("campaign_id", "channel", *COUNTERS)
# The counters the drop detector judges (streams/alerts/): what the war room watches fall.
ALERT_METRICS = ("interactions", "shares", "orders", "gmv_fen", "new_users")
# Aggregate projections of facts_minute, name -> the dimensions they keep (see MIGRATIONS, v2).
FACTS_PROJECTIONS: Mapping[str, tuple[str, ...]] = {
    "by_topic": ("src_partition", "reason", "topic", "minute"),
    "by_campaign_channel": ("src_partition", "reason", "minute", "campaign_id", "channel"),
    "by_campaign_entry_tier": ("src_partition", "reason", "campaign_id", "minute", "entry", "city_tier"),
}


@dataclass(frozen=True)
class Migration:
    """One step of the store's schema. Statements are idempotent: a crash between one and the
    recorded version repeats the step."""

    version: int
    what: str
    statements: Sequence[str]


# The one ordered list of schema steps. A store records the version of each step applied; opening
# a store applies the steps past its version, in order, so a store of any older version reaches the
# same schema as a new one (tests/integration/test_dashboards_speed.py builds each older version).
MIGRATIONS: Sequence[Migration] = (
    Migration(
        1,
        "facts by minute, the sink's log and the read views",
        (
            f"CREATE DATABASE IF NOT EXISTS {DB}",
            f"""CREATE TABLE IF NOT EXISTS {DB}.schema_version (
        version UInt32, applied_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree ORDER BY version""",
            f"""CREATE TABLE IF NOT EXISTS {DB}.facts_minute (
        campaign_id String,
        channel LowCardinality(String),
        entry LowCardinality(String),
        city_tier UInt8,
        minute DateTime('UTC'),
        topic LowCardinality(String),
        reason LowCardinality(String),
        src_partition Int32,
        {", ".join(f"{c} SimpleAggregateFunction(sum, Int64)" for c in COUNTERS)},
        rejected SimpleAggregateFunction(sum, Int64),
        batch_to SimpleAggregateFunction(max, Int64)
    ) ENGINE = AggregatingMergeTree
    ORDER BY (src_partition, reason, campaign_id, minute, channel, entry, city_tier, topic)""",
            f"""CREATE TABLE IF NOT EXISTS {DB}.sink_log (
        written_at DateTime64(3, 'UTC'),
        src_partition Int32,
        batch_to Int64,
        rows UInt32,
        max_event_ts DateTime64(3, 'UTC'),
        max_ingest DateTime64(3, 'UTC'),
        write_ms Float32
    ) ENGINE = MergeTree ORDER BY written_at TTL toDateTime(written_at) + INTERVAL 7 DAY""",
            f"""CREATE OR REPLACE VIEW {DB}.facts AS
        SELECT * FROM {DB}.facts_minute WHERE src_partition < 0 AND reason = ''""",
            f"""CREATE OR REPLACE VIEW {DB}.campaign_totals AS
        SELECT campaign_id, channel,
               {", ".join(f"sum({c}) AS {c}" for c in COUNTERS)}
        FROM {DB}.facts_minute
        WHERE src_partition < 0 AND reason = ''
        GROUP BY campaign_id, channel
        HAVING interactions + orders > 0
        ORDER BY campaign_id, channel""",
            f"""CREATE OR REPLACE VIEW {DB}.rejections_by_reason AS
        SELECT topic, reason, sum(rejected) AS rejected
        FROM {DB}.facts_minute
        WHERE src_partition < 0 AND reason != ''
        GROUP BY topic, reason ORDER BY topic, reason""",
        ),
    ),
    Migration(
        2,
        "projections and the sink log's minute index: dashboard queries under 100 ms",
        (
            # What keeps every dashboard query under 100 ms on a Double 11 day (`promo dashboards bench`).
            # A panel over a wide range reads every fact row in it (about 1.9 M for the day); most panels
            # keep only the minute, or the campaign and the channel, or the entry and the city tier. The
            # projections pre-sum the facts at those grains (tens to hundreds of thousands of rows a day),
            # and ClickHouse answers a query from the smallest one that holds what it asks for. A projection
            # lives inside each part, so it is written by the same atomic insert as the facts (a
            # materialized view into a rollup table would not be, and the exactly-once markers rely on one
            # insert). AggregatingMergeTree merges rows, so projections are rebuilt on merge.
            f"ALTER TABLE {DB}.facts_minute MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
            *(
                f"ALTER TABLE {DB}.facts_minute ADD PROJECTION IF NOT EXISTS {name} (SELECT {', '.join(keys)}, "
                f"{', '.join(f'sum({c})' for c in (*COUNTERS, 'rejected'))} GROUP BY {', '.join(keys)})"
                for name, keys in FACTS_PROJECTIONS.items()
            ),
            # The health panels bucket by minute and take quantiles of the lag: computed once at insert
            # (old parts compute them on read), and a minmax index lets a range on `minute` skip granules.
            f"ALTER TABLE {DB}.sink_log ADD COLUMN IF NOT EXISTS minute DateTime('UTC') "
            "MATERIALIZED toStartOfMinute(written_at)",
            f"ALTER TABLE {DB}.sink_log ADD COLUMN IF NOT EXISTS lag_ms Int64 "
            "MATERIALIZED dateDiff('millisecond', max_ingest, written_at)",
            f"ALTER TABLE {DB}.sink_log ADD INDEX IF NOT EXISTS minute_minmax minute TYPE minmax GRANULARITY 1",
            # A store from before v2 builds them for the parts it already has (mutations, in the
            # background; queries are right meanwhile, only slower). On a new store there is nothing.
            *(f"ALTER TABLE {DB}.facts_minute MATERIALIZE PROJECTION {name}" for name in FACTS_PROJECTIONS),
            f"ALTER TABLE {DB}.sink_log MATERIALIZE INDEX minute_minmax",
        ),
    ),
    Migration(
        3,
        "campaign names and schedules (`promo campaigns import`)",
        (
            f"""CREATE TABLE IF NOT EXISTS {DB}.campaigns (
            campaign_id String,
            name String,
            starts_at Nullable(DateTime64(3, 'UTC')),
            ends_at Nullable(DateTime64(3, 'UTC')),
            imported_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(imported_at) ORDER BY campaign_id""",
            # The newest import of each campaign; what the screens join their campaign ids with.
            f"""CREATE OR REPLACE VIEW {DB}.campaign_names AS
            SELECT campaign_id, argMax(name, imported_at) AS name, argMax(starts_at, imported_at) AS starts_at,
                   argMax(ends_at, imported_at) AS ends_at
            FROM {DB}.campaigns GROUP BY campaign_id""",
        ),
    ),
    Migration(
        4,
        "the pipeline's own state every 10 s, for Grafana's state panel",
        (
            f"""CREATE TABLE IF NOT EXISTS {DB}.pipeline_status (
                ts DateTime64(3, 'UTC'),
                worker String,
                code UInt8,
                state LowCardinality(String),
                message String
            ) ENGINE = MergeTree ORDER BY ts TTL toDateTime(ts) + INTERVAL 7 DAY""",
        ),
    ),
    Migration(
        5,
        "drop alerts: incidents, what the detector saw, acknowledgements, silences, notes (streams/alerts/)",
        (
            # One incident, one id: the detector writes a new version of its row whenever its state
            # changes (fired, deeper, resolved, reopened); readers take the newest (FINAL / argMax).
            f"""CREATE TABLE IF NOT EXISTS {DB}.alerts (
                id String,
                kind LowCardinality(String),
                metric LowCardinality(String),
                campaign_id Nullable(String),
                channel Nullable(String),
                started_at DateTime64(3, 'UTC'),
                detected_at DateTime64(3, 'UTC'),
                resolved_at Nullable(DateTime64(3, 'UTC')),
                expected Float64,
                observed Float64,
                basis String,
                severity LowCardinality(String),
                message String,
                children Array(String),
                source LowCardinality(String),
                version UInt64
            ) ENGINE = ReplacingMergeTree(version) ORDER BY (source, id)""",
            # What every evaluation saw, by arrival (the detector's clock), per campaign and channel:
            # a replay sees exactly what live saw even after late events rewrote the minute buckets.
            f"""CREATE TABLE IF NOT EXISTS {DB}.detector_inputs (
                at DateTime64(3, 'UTC'),
                settled_until DateTime64(3, 'UTC'),
                lag_s Float64,
                campaign_id String,
                channel LowCardinality(String),
                {", ".join(f"{c} Float64" for c in ALERT_METRICS)}
            ) ENGINE = MergeTree ORDER BY at TTL toDateTime(at) + INTERVAL 14 DAY""",
            # Kept apart from `alerts` so an acknowledgement never races the detector's next version.
            f"""CREATE TABLE IF NOT EXISTS {DB}.alert_acks (
                id String, acked_by String, acked_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(acked_at) ORDER BY id""",
            # Silences and ops notes: a scope is '' for "any" in each of metric, campaign, channel.
            f"""CREATE TABLE IF NOT EXISTS {DB}.alert_silences (
                created_at DateTime64(3, 'UTC'),
                kind LowCardinality(String),
                metric String,
                campaign_id String,
                channel String,
                until DateTime64(3, 'UTC'),
                reason String,
                created_by String
            ) ENGINE = MergeTree ORDER BY created_at""",
            # The war room's plan (`promo plan import` / `from-day`) as the CSV it was given; the newest wins.
            f"""CREATE TABLE IF NOT EXISTS {DB}.plans (
                imported_at DateTime64(3, 'UTC'), source String, csv String
            ) ENGINE = MergeTree ORDER BY imported_at""",
            # Each worker's lag in seconds with its heartbeat: how a detector in another process
            # (`promo alerts run`, a ClickHouse server) knows how far the pipeline has got.
            f"ALTER TABLE {DB}.pipeline_status ADD COLUMN IF NOT EXISTS lag_s Float32 DEFAULT 0",
            # Which notifications went out: a restarted detector never sends one twice.
            f"""CREATE TABLE IF NOT EXISTS {DB}.alert_notifications (
                id String, event String, sent_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree(sent_at) ORDER BY (id, event)""",
        ),
    ),
    Migration(
        6,
        "each worker's partitions and their lags with its heartbeat",
        (
            # Beside the worst lag, each partition's ("topic:partition" -> seconds behind, as JSON), as
            # the heartbeats topic has them: `promo alerts run` then knows how far the counts in the
            # store reach (it holds back what the partitions on time wrote past a late one,
            # streams/alerts/feed.py) and who speaks for a partition now (streams/alerts/freshness.py
            # FleetClock). '' is a row from before this step; '{}' a worker holding no partition.
            f"ALTER TABLE {DB}.pipeline_status ADD COLUMN IF NOT EXISTS lags String DEFAULT ''",
        ),
    ),
    Migration(
        7,
        "what changed the live detector beside its inputs: starts, restores from its state, ops notes",
        (
            # With promo.detector_inputs, what a replay needs to be the live detector step for step:
            # `start` (a fresh detector), `restore` (from the state it saved, `detail` the state as
            # JSON: a restored detector rebuilds its baselines from its recent inputs only, so it is
            # not the one that ran through), `replan` (a new plan or schedule, the same way) and
            # `reset` (an ops note on campaign_id / channel, '' for any), each before the step at `at`.
            f"""CREATE TABLE IF NOT EXISTS {DB}.detector_events (
                at DateTime64(3, 'UTC'),
                seq UInt32,
                kind LowCardinality(String),
                campaign_id String,
                channel String,
                detail String
            ) ENGINE = MergeTree ORDER BY (at, seq) TTL toDateTime(at) + INTERVAL 14 DAY""",
        ),
    ),
    Migration(
        8,
        "which plan and schedule the live detector began or went on with",
        (
            # On `start`, `restore` and `replan`: the plan (its imported_at in promo.plans, 0 for none)
            # and the campaigns' schedule, as JSON. A replay then runs each stretch with what live had,
            # not with a plan imported since. '' on a `reset`, and on rows from before this step.
            f"ALTER TABLE {DB}.detector_events ADD COLUMN IF NOT EXISTS inputs String DEFAULT ''",
        ),
    ),
    Migration(
        9,
        "each incident's current opening: when it was detected and, reopened, its onset",
        (
            # detected_at stays the first opening's; an incident that recovered and broke again within
            # minutes is the same id (a re-fire reopens it). Grafana's firing table and `alerts list`
            # say "since" this opening's onset and sort by its detection, as the view's banner does.
            # Rows from before this step: opened_at is their detected_at, reopened_from null.
            f"ALTER TABLE {DB}.alerts ADD COLUMN IF NOT EXISTS opened_at DateTime64(3, 'UTC') DEFAULT detected_at",
            f"ALTER TABLE {DB}.alerts ADD COLUMN IF NOT EXISTS reopened_from Nullable(DateTime64(3, 'UTC'))",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version

# The columns an insert writes, with their types exactly as DESCRIBE TABLE reports them (a test holds
# them to the MIGRATIONS). Given to the client, they spare each insert a DESCRIBE round trip.
FACTS_INSERT_TYPES: Mapping[str, str] = {
    "campaign_id": "String",
    "channel": "LowCardinality(String)",
    "entry": "LowCardinality(String)",
    "city_tier": "UInt8",
    "minute": "DateTime('UTC')",
    "topic": "LowCardinality(String)",
    "reason": "LowCardinality(String)",
    "src_partition": "Int32",
    **{c: "SimpleAggregateFunction(sum, Int64)" for c in (*COUNTERS, "rejected")},
    "batch_to": "SimpleAggregateFunction(max, Int64)",
}
INSERT_COLUMNS = tuple(FACTS_INSERT_TYPES)
SINK_LOG_TYPES: Mapping[str, str] = {
    "written_at": "DateTime64(3, 'UTC')",
    "src_partition": "Int32",
    "batch_to": "Int64",
    "rows": "UInt32",
    "max_event_ts": "DateTime64(3, 'UTC')",
    "max_ingest": "DateTime64(3, 'UTC')",
    "write_ms": "Float32",
}
SINK_LOG_COLUMNS = tuple(SINK_LOG_TYPES)


# One sink_log row: (written at ms, routed partition, batch to offset, rows, max event ts ms,
# max ingest ms, write ms).
SinkLogEntry = tuple[int, int, int, int, int, int, float]


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


# ClickHouse error codes the sink waits out with backoff: the network, a timeout, a server that is
# busy, short of memory, behind on merges or read-only for a while. Any other code (a bad schema,
# bad credentials, a syntax error) will not heal by retrying: the worker stops and says which.
TRANSIENT_CODES: Mapping[int, str] = {
    159: "TIMEOUT_EXCEEDED",
    164: "READONLY",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    252: "TOO_MANY_PARTS",
    279: "ALL_CONNECTION_TRIES_FAILED",
    319: "UNKNOWN_STATUS_OF_INSERT",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    999: "KEEPER_EXCEPTION",
}
_CODE = re.compile(r"\bCode: (\d+)\b")


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code an exception carries (in its text, as the server reports it)."""
    if isinstance(exc, SinkError) and exc.code is not None:
        return exc.code
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying can help: no answer (connection, timeout) or a code in `TRANSIENT_CODES`."""
    if isinstance(exc, SinkError):
        return exc.transient
    code = error_code(exc)
    if code is not None:
        return code in TRANSIENT_CODES
    # No server code: the request did not get an answer (refused, reset, timed out, cut short).
    return isinstance(exc, OperationalError | StreamClosedError | StreamFailureError | OSError | TimeoutError)


def fact_insert_columns(
    facts: Sequence[Sequence[Any]],
    rejections: Sequence[Sequence[Any]],
    markers: Mapping[int, int],
    generations: Mapping[int, int] | None = None,
) -> list[list[Any]]:
    """The columns of one atomic insert (in `INSERT_COLUMNS` order), from wire rows (streams/contract/wire.py):
    the facts, then the rejection counts, then one marker per routed partition (`reason` '', the
    routed offset written up to in `batch_to`), then one per routed partition whose owner generation
    rose (`reason` 'generation', the generation in `batch_to`; streams/sink/markers.py).

    Columns, because clickhouse-connect writes Native columns: handed rows, it builds each row and
    then pivots them, value by value in Python. One transpose and a few concatenations cut the
    Python time of an insert of 16,000 rows (a poll at full speed) from 33 to 21 ms, all of it
    holding the GIL the worker's stages need. Rows of equal dimensions are not merged first: the
    table sums them, and the insert already collapses equal keys within its block
    (`optimize_on_insert`; merging here cost more Python than it saved the engine). Minutes go in
    as epoch seconds, which the DateTime column takes as they are."""
    width = len(COUNTERS)
    marks = [(p, "", to) for p, to in sorted(markers.items())]
    marks += [(p, GENERATION_MARK, g) for p, g in sorted((generations or {}).items())]
    nf, nr, nm = len(facts), len(rejections), len(marks)
    f: list[tuple[Any, ...]] = list(zip(*facts, strict=True)) if nf else [()] * (5 + width)
    r: list[tuple[Any, ...]] = list(zip(*rejections, strict=True)) if nr else [()] * 6
    partitions, kinds, offsets = zip(*marks, strict=True) if nm else ((), (), ())
    blank_m, blank_rm, zeros_rm = [""] * nm, [""] * (nr + nm), [0] * (nr + nm)
    column = {
        "campaign_id": [*f[0], *r[2], *blank_m],
        "channel": [*f[1], *r[3], *blank_m],
        "entry": [*f[2], *blank_rm],
        "city_tier": [*f[3], *zeros_rm],
        "minute": [m // 1000 for m in (*f[4], *r[4])] + [0] * nm,
        "topic": [*([""] * nf), *r[0], *blank_m],
        "reason": [*([""] * nf), *r[1], *kinds],
        "src_partition": [*([-1] * (nf + nr)), *partitions],
        **{name: [*f[5 + i], *zeros_rm] for i, name in enumerate(COUNTERS)},
        "rejected": [*([0] * nf), *r[5], *([0] * nm)],
        "batch_to": [*([0] * (nf + nr)), *offsets],
    }
    return [column[name] for name in INSERT_COLUMNS]


def has_database_on_disk(store_dir: Path) -> bool:
    """Whether an embedded store directory holds the pipeline's database, read from its files without
    opening it: opening makes chdb's `tmp/` there, and a read must leave a directory no worker made as it was."""
    return (store_dir / "metadata" / f"{DB}.sql").is_file()


class ClickHouseStore:
    """One client and the one thread it is used from."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 10, send_timeout_s: float = 30) -> None:
        self.dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._send_timeout_s = send_timeout_s
        self._client: Client | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        # A hook for fault-injection tests of the embedded path: called before each write.
        self.before_write: Callable[[], None] | None = None

    # -- blocking part (runs on the executor thread) -------------------------------------------
    def _connect(self) -> Client:
        if self._client is None:
            try:
                if self.dsn.startswith("chdb://"):
                    self._client = clickhouse_connect.get_client(dsn=self.dsn)
                else:
                    self._client = clickhouse_connect.get_client(
                        dsn=self.dsn,
                        connect_timeout=self._connect_timeout_s,
                        send_receive_timeout=self._send_timeout_s,
                    )
            except Exception as exc:
                # An embedded store held by another process is released when that one stops.
                transient = self.dsn.startswith("chdb://") or is_transient(exc)
                text = scrub(str(exc), *dsn_secrets(self.dsn))  # a server may echo the credentials it was sent
                raise SinkError(f"cannot open ClickHouse: {text}", code=error_code(exc), transient=transient) from exc
        return self._client

    def apply_schema(self) -> int:
        """Bring the store to SCHEMA_VERSION: the steps past its recorded version, in order."""
        client = self._connect()
        for statement in MIGRATIONS[0].statements[:2]:  # the database and the version table, to read it
            client.command(statement)
        applied = int(client.query(f"SELECT max(version) FROM {DB}.schema_version").result_rows[0][0] or 0)
        for migration in MIGRATIONS:
            if migration.version <= applied:
                continue
            for statement in migration.statements:
                client.command(statement)
            client.command(
                f"INSERT INTO {DB}.schema_version SELECT {{v:UInt32}}, now64(3) "
                f"WHERE {{v:UInt32}} NOT IN (SELECT version FROM {DB}.schema_version)",
                parameters={"v": migration.version},
            )
            log.info("store schema: applied version %d (%s)", migration.version, migration.what)
        return SCHEMA_VERSION

    def connect(self) -> None:
        """Open the connection (the client asks the server its version): credentials and reachability,
        nothing about tables or rights a worker needs later."""
        self._connect()

    def has_schema(self) -> bool:
        """Whether a worker has built the tables the read commands query (reads never build them)."""
        rows = (
            self._connect()
            .query(
                "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'campaign_totals'",
                parameters={"db": DB},
            )
            .result_rows
        )
        return bool(rows[0][0])

    def written_markers(self) -> dict[int, int]:
        """Routed partition -> the last routed offset whose deltas are in the table."""
        return self._marks("")

    def written_generations(self) -> dict[int, int]:
        """Routed partition -> the newest owner generation the sink has taken (streams/sink/markers.py)."""
        return self._marks(GENERATION_MARK)

    def _marks(self, kind: str) -> dict[int, int]:
        result = self._connect().query(
            f"SELECT src_partition, max(batch_to) FROM {DB}.facts_minute "
            "WHERE src_partition >= 0 AND reason = {kind:String} GROUP BY src_partition",
            parameters={"kind": kind},
        )
        return {int(p): int(o) for p, o in result.result_rows}

    def insert_wire_rows(
        self,
        facts: Sequence[Sequence[Any]],
        rejections: Sequence[Sequence[Any]],
        markers: dict[int, int],
        generations: dict[int, int] | None = None,
    ) -> int:
        """One atomic INSERT of a batch's facts, rejection counts, markers and owner generations."""
        if self.before_write is not None:
            self.before_write()
        columns = fact_insert_columns(facts, rejections, markers, generations)
        self._connect().insert(
            f"{DB}.facts_minute",
            columns,
            column_names=INSERT_COLUMNS,
            column_type_names=tuple(FACTS_INSERT_TYPES.values()),
            column_oriented=True,
        )
        return len(columns[0])

    def log_write(self, entries: Iterable[SinkLogEntry]) -> None:
        # A batch with no ingest time (only existing-buyer imports: no event of its own) has no
        # freshness; logged at 1970 it would read as a 56-year lag on the demo line and the health panel.
        rows = [[_utc(at), p, to, n, _utc(ets), _utc(ing), ms] for at, p, to, n, ets, ing, ms in entries if ing > 0]
        if rows:
            self._connect().insert(
                f"{DB}.sink_log",
                rows,
                column_names=SINK_LOG_COLUMNS,
                column_type_names=tuple(SINK_LOG_TYPES.values()),
            )

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.query_table(sql, parameters)[1]

    def query_table(self, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
        """The column names (known also when there is no row) and the rows."""
        result = self._connect().query(sql, parameters=parameters or {})
        names = list(result.column_names)
        return names, [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def query_tables(
        self, queries: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[tuple[list[str], list[dict[str, Any]]] | Exception]:
        """Several queries back to back (on the store's thread, no write between them): each
        answer, or the exception it raised."""
        out: list[tuple[list[str], list[dict[str, Any]]] | Exception] = []
        for sql, parameters in queries:
            try:
                out.append(self.query_table(sql, parameters))
            except Exception as exc:  # shown in its panel; the others still answer
                out.append(exc)
        return out

    def upsert_campaigns(self, rows: Sequence[tuple[str, str, int | None, int | None, int]]) -> None:
        """(campaign_id, name, starts_at_ms, ends_at_ms, imported_at_ms) rows; the newest import wins."""

        def when(ms: int | None) -> dt.datetime | None:
            return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)

        self.insert_rows(
            f"{DB}.campaigns",
            [(c, n, when(s), when(e), when(i)) for c, n, s, e, i in rows],
            ("campaign_id", "name", "starts_at", "ends_at", "imported_at"),
        )

    def log_status(
        self,
        ts_ms: int,
        worker: str,
        code: int,
        state: str,
        message: str,
        lag_s: float = 0.0,
        lags: Mapping[str, float] | None = None,
    ) -> None:
        """One heartbeat row of the pipeline's state (promo.pipeline_status), with the worker's lag: its
        worst partition's, and each partition's ("topic:partition" -> seconds; None: not said)."""
        when = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
        rounded = {k: round(float(v), 3) for k, v in (lags or {}).items()}
        said = "" if lags is None else json.dumps(rounded, separators=(",", ":"))
        row = (when, worker, code, state, message[:500], float(lag_s), said)
        self.insert_rows(f"{DB}.pipeline_status", [row],
                         ("ts", "worker", "code", "state", "message", "lag_s", "lags"))  # fmt: skip

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        """A statement without result rows (DDL, INSERT … SELECT), with bound parameters."""
        self._connect().command(sql, parameters=parameters or {})

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        self._connect().insert(table, rows, column_names=columns)

    def totals(self, campaign: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE campaign_id = {campaign:String}" if campaign is not None else ""
        sql = f"SELECT {', '.join(TOTALS_COLUMNS)} FROM {DB}.campaign_totals{where} ORDER BY campaign_id, channel"
        rows = self.query_rows(sql, {"campaign": campaign} if campaign is not None else None)
        return [{k: (int(v) if k in COUNTERS else v) for k, v in row.items()} for row in rows]

    def rejections(self) -> list[dict[str, Any]]:
        return self.query_rows(f"SELECT topic, reason, toInt64(rejected) AS rejected FROM {DB}.rejections_by_reason")

    def freshness(self) -> dict[str, Any]:
        rows = self.query_rows(
            f"SELECT max(written_at) AS last_write, max(max_event_ts) AS last_event, "
            f"quantileExact(0.5)(dateDiff('millisecond', max_ingest, written_at)) AS lag_p50_ms, "
            f"quantileExact(0.99)(dateDiff('millisecond', max_ingest, written_at)) AS lag_p99_ms "
            f"FROM {DB}.sink_log WHERE written_at > now64(3) - INTERVAL 5 MINUTE"
        )
        return rows[0] if rows else {}

    def close_sync(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- async facade --------------------------------------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def close(self) -> None:
        await self.call(self.close_sync)
        self.executor.shutdown(wait=True)
