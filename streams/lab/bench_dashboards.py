"""`promo dashboards bench`: every query the dashboards run, timed on a store holding a whole Double 11 day.

The store is the real schema (`ClickHouseStore.apply_schema`) in an embedded chdb engine, filled with
the aggregates a day of at least `events` accepted events leaves behind — without pushing the events
through Python one by one:

1. **Profile.** A seeded simulation of `sample_events` events (the simulator's campaigns, channels,
   entries, city tiers, duplicates, late and malformed input) goes through the real pure pipeline
   in-process (stage 1 and stage 2, no broker). Summed over time, its deltas give, per *cell*
   (campaign, channel, entry, city tier), how many accepted events fell there and what they earned
   (participants, shares, orders, GMV, buyers, new users, via share), and per rejection cell
   (topic, reason, campaign, channel) how many were rejected.
2. **Curve.** The simulator's Double 11 rate curve (`simulate.relative_rate`: the surge at 00:00,
   the decay through the first hour, the plateau after) over the 1440 minutes of the day, with a
   little seeded per-minute noise, gives each minute its share; the shares are rounded to integers
   that add up to exactly `events`.
3. **Fill.** One `INSERT … SELECT` per table inside ClickHouse crosses minutes with cells. A
   minute's events are split over the cells in proportion to the profile with exact integer
   arithmetic (differences of `floor(E * cumulative / W)`), so the accepted events in the store —
   `sum(interactions) + sum(orders)` — are exactly `events`; every other counter is the cell's
   per-event rate times the cell's events, rounded stochastically by a hash (deterministic). Cells
   that get no event in a minute get no row, as with a real sink.
   `promo.sink_log` gets what a sink writing `partitions` routed partitions, one delta batch per
   partition every 250 ms, would log in a day; `facts_minute` gets one marker row per partition.

How it scales: accepted events (and every counter) grow linearly with `events`; the fact rows are
minutes x populated cells, which grows with `events` only until every cell is busy every minute
(about 1440 x 1300 ≈ 1.9 M rows from 100 M events with the default profile); rejection rows likewise;
sink_log rows depend on the number of partitions and the length of the day, not on `events`.

After the fill the fact table is merged (`OPTIMIZE … FINAL`, as a store that has run a while is
after background merges) unless `optimize=False`; the report says which, and how many parts remain.

Then every panel target of every committed dashboard (and the campaign variable's query) runs with
the plugin's macros expanded for two ranges — the whole day and its last hour — with the biggest
campaign as `$campaign`, once to warm up and `repeat` times timed, end to end through the client.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.contract.facts import COUNTERS, Deltas
from streams.dashboards.grafana import Json, build_all
from streams.dashboards.view import macros
from streams.errors import ConfigError
from streams.kit.fold import fold_in_process
from streams.kit.simulate import SimConfig, Simulation, generate, relative_rate
from streams.sink.clickhouse import SINK_LOG_COLUMNS, ClickHouseStore

BUDGET_MS = 100.0
DAY_MINUTES = 1440
BATCH_EVERY_MS = 250  # stage 2 takes a batch at least this often per routed partition when busy
MARKER = "DASHBOARDS-BENCH"  # marks a work dir whose store the bench may wipe
SCRATCH = "promo_bench_fill"  # a scratch database for the profile, dropped after the fill
READS = re.compile(r"ReadFromMergeTree \((?:promo\.)?([\w.]+)\)")


# --------------------------------------------------------------------------------------------
# The plugin's macros: the one implementation the view and the dashboard tests use.


@dataclass(frozen=True)
class TimeRange:
    name: str
    start: dt.datetime
    end: dt.datetime
    interval_s: int = 60  # the panels' minimum interval: the most buckets Grafana would ask for


def expand(sql: str, rng: TimeRange, variables: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The panel's SQL as the ClickHouse plugin sends it, with variables bound as parameters."""
    return macros.expand(sql, macros.Range(rng.start, rng.end, rng.interval_s), variables)


# --------------------------------------------------------------------------------------------
# 1. Profile: the simulator's mix, through the real pipeline


@dataclass(frozen=True)
class Cell:
    """Where accepted events fall, and what `events` of them earned in the sample."""

    campaign_id: str
    channel: str
    entry: str
    city_tier: int
    events: int  # accepted events: interactions + orders
    counters: tuple[int, ...]  # in COUNTERS order


@dataclass(frozen=True)
class RejectCell:
    topic: str
    reason: str
    campaign_id: str
    channel: str
    count: int
    timeless: bool  # no readable event time: the sink puts it at minute 0


@dataclass(frozen=True)
class Profile:
    cells: tuple[Cell, ...]
    rejections: tuple[RejectCell, ...]
    sample_events: int

    @property
    def accepted(self) -> int:
        return sum(c.events for c in self.cells)


def run_pipeline(sim: Simulation, settings: Settings) -> Deltas:
    """Stage 1 and stage 2 in-process, in send order, as the agents run them (no broker)."""
    return fold_in_process(sim.records, sim.existing_buyers, settings)[0]


def profile_from_simulation(sample_events: int, *, seed: int = 11, partitions: int = 4) -> Profile:
    sim = generate(SimConfig(events=sample_events, seed=seed, partitions=partitions))
    deltas = run_pipeline(sim, Settings(partitions=partitions))
    i_interactions, i_orders = COUNTERS.index("interactions"), COUNTERS.index("orders")
    sums: dict[tuple[str, str, str, int], list[int]] = {}
    for key, row in deltas.facts.items():
        acc = sums.setdefault((key.campaign_id, key.channel, key.entry, key.city_tier), [0] * len(COUNTERS))
        for i, amount in enumerate(row):
            acc[i] += amount
    cells = tuple(
        Cell(*dims, events=row[i_interactions] + row[i_orders], counters=tuple(row))
        for dims, row in sorted(sums.items())
        if row[i_interactions] + row[i_orders] > 0
    )
    rejected: dict[tuple[str, str, str, str, bool], int] = {}
    for rkey, count in deltas.rejections.items():
        dims = (rkey.topic, rkey.reason, rkey.campaign_id, rkey.channel, rkey.minute_ms == 0)
        rejected[dims] = rejected.get(dims, 0) + count
    rejections = tuple(RejectCell(*dims[:4], count=n, timeless=dims[4]) for dims, n in sorted(rejected.items()) if n)
    return Profile(cells, rejections, sample_events)


# --------------------------------------------------------------------------------------------
# 2. The day's curve


def minute_events(total: int, *, minutes: int = DAY_MINUTES, seed: int = 11, noise: float = 0.05) -> list[int]:
    """Accepted events per minute of a day that starts at the sale's midnight; they add up to `total`."""
    rng = random.Random(seed)
    weights = [relative_rate(m + 0.5) * rng.lognormvariate(0.0, noise) for m in range(minutes)]
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [math.floor(x) for x in exact]
    # Largest remainders get the events the floors left out.
    for i in sorted(range(minutes), key=lambda i: counts[i] - exact[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


# --------------------------------------------------------------------------------------------
# 3. The fill, inside ClickHouse

FACT_INSERT_COLUMNS = (
    "campaign_id", "channel", "entry", "city_tier", "minute", "topic", "reason", "src_partition",
    *COUNTERS, "rejected", "batch_to",
)  # fmt: skip


def _stochastic(numerator: str, denominator: str, salt: int) -> str:
    """round(numerator / denominator), rounding up with probability = the fraction (a hash as the die)."""
    return (
        f"(intDiv({numerator}, {denominator}) + "
        f"toInt64(({numerator}) % {denominator} > cityHash64(h, {salt}) % {denominator}))"
    )


def _fact_select() -> str:
    per_cell = {c: _stochastic(f"e * c_{c}", "c_events", i) for i, c in enumerate(COUNTERS)}
    per_cell["interactions"] = "e - orders_"  # interactions + orders = e exactly
    columns = [per_cell[c] + (" AS orders_" if c == "orders" else "") for c in COUNTERS]
    # `orders_` is computed once and reused by `interactions`; ClickHouse resolves the alias.
    return f"""
        SELECT campaign_id, channel, entry, city_tier, minute, '', '', -1, {", ".join(columns)}, 0, 0
        FROM (
            SELECT c.*, m.minute AS minute,
                   toInt64(intDiv(m.events * c.cum_hi, {{w:UInt64}}) - intDiv(m.events * c.cum_lo, {{w:UInt64}})) AS e,
                   cityHash64({{seed:UInt64}}, m.minute, c.cell) AS h
            FROM {SCRATCH}.minutes AS m CROSS JOIN {SCRATCH}.cells AS c
        )
        WHERE e > 0"""


@dataclass
class FillReport:
    events: int
    start: str
    end: str
    sample_events: int
    cells: int
    rejection_cells: int
    partitions: int
    optimized: bool
    fill_s: float
    accepted_in_store: int = 0
    rejected_in_store: int = 0
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    store_bytes: int = 0


def fill(
    store: ClickHouseStore,
    profile: Profile,
    *,
    events: int,
    end: dt.datetime,
    partitions: int = 4,
    seed: int = 11,
    optimize: bool = True,
) -> FillReport:
    """Fill an empty store (schema applied) with a day of aggregates ending at `end` (a minute)."""
    started = time.monotonic()
    start = end - dt.timedelta(minutes=DAY_MINUTES)
    per_minute = minute_events(events, seed=seed)
    store.command(f"CREATE DATABASE IF NOT EXISTS {SCRATCH}")
    try:
        _load_scratch(store, profile, per_minute, start)
        w = profile.accepted
        store.command(
            f"INSERT INTO promo.facts_minute ({', '.join(FACT_INSERT_COLUMNS)}) {_fact_select()}",
            {"w": w, "seed": seed},
        )
        _fill_rejections(store, events, w, seed)
        _fill_markers_and_log(store, start, partitions, seed)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {SCRATCH}")
    if optimize:
        store.command("OPTIMIZE TABLE promo.facts_minute FINAL")
    report = FillReport(
        events=events, start=start.isoformat(), end=end.isoformat(), sample_events=profile.sample_events,
        cells=len(profile.cells), rejection_cells=len(profile.rejections), partitions=partitions,
        optimized=optimize, fill_s=round(time.monotonic() - started, 1),
    )  # fmt: skip
    totals = store.query_rows(
        "SELECT toInt64(sum(interactions) + sum(orders)) AS accepted, toInt64(sum(rejected)) AS rejected "
        "FROM promo.facts_minute WHERE src_partition < 0"
    )[0]
    report.accepted_in_store, report.rejected_in_store = int(totals["accepted"]), int(totals["rejected"])
    report.tables, report.store_bytes = store_size(store)
    return report


def _load_scratch(store: ClickHouseStore, profile: Profile, per_minute: Sequence[int], start: dt.datetime) -> None:
    store.command(f"CREATE TABLE {SCRATCH}.minutes (minute DateTime('UTC'), events UInt64) ENGINE = Memory")
    store.insert_rows(
        f"{SCRATCH}.minutes",
        [[start + dt.timedelta(minutes=m), n] for m, n in enumerate(per_minute)],
        ("minute", "events"),
    )
    counters = ", ".join(f"c_{c} Int64" for c in COUNTERS)
    store.command(
        f"CREATE TABLE {SCRATCH}.cells (cell UInt32, campaign_id String, channel String, entry String, "
        f"city_tier UInt8, c_events Int64, cum_lo UInt64, cum_hi UInt64, {counters}) ENGINE = Memory"
    )
    rows, cum = [], 0
    for i, cell in enumerate(profile.cells):
        rows.append([i, cell.campaign_id, cell.channel, cell.entry, cell.city_tier, cell.events, cum,
                     cum + cell.events, *cell.counters])  # fmt: skip
        cum += cell.events
    columns = ("cell", "campaign_id", "channel", "entry", "city_tier", "c_events", "cum_lo", "cum_hi",
               *(f"c_{c}" for c in COUNTERS))  # fmt: skip
    store.insert_rows(f"{SCRATCH}.cells", rows, columns)
    store.command(
        f"CREATE TABLE {SCRATCH}.rejections (cell UInt32, topic String, reason String, campaign_id String, "
        "channel String, count Int64, timeless UInt8) ENGINE = Memory"
    )
    store.insert_rows(
        f"{SCRATCH}.rejections",
        [
            [i, r.topic, r.reason, r.campaign_id, r.channel, r.count, int(r.timeless)]
            for i, r in enumerate(profile.rejections)
        ],
        ("cell", "topic", "reason", "campaign_id", "channel", "count", "timeless"),
    )


def _fill_rejections(store: ClickHouseStore, events: int, w: int, seed: int) -> None:
    """Rejections at the profile's rate per accepted event: per minute, and the timeless ones at minute 0."""
    zero = ", ".join(["0"] * len(COUNTERS))
    columns = ", ".join(FACT_INSERT_COLUMNS)
    rejected = _stochastic("toInt64(m.events) * r.count", "{w:Int64}", 99)
    store.command(
        f"""INSERT INTO promo.facts_minute ({columns})
        SELECT campaign_id, channel, '', 0, minute, topic, reason, -1, {zero}, n, 0 FROM (
            SELECT r.*, m.minute AS minute, cityHash64({{seed:UInt64}}, m.minute, r.cell, 'r') AS h, {rejected} AS n
            FROM {SCRATCH}.minutes AS m CROSS JOIN {SCRATCH}.rejections AS r WHERE NOT r.timeless
        ) WHERE n > 0""",
        {"w": w, "seed": seed},
    )
    store.command(
        f"""INSERT INTO promo.facts_minute ({columns})
        SELECT campaign_id, channel, '', 0, toDateTime(0, 'UTC'), topic, reason, -1, {zero},
               toInt64(round({{events:Int64}} * count / {{w:Int64}})) AS n, 0
        FROM {SCRATCH}.rejections WHERE timeless AND n > 0""",
        {"events": events, "w": w},
    )


def _fill_markers_and_log(store: ClickHouseStore, start: dt.datetime, partitions: int, seed: int) -> None:
    """One delta batch per routed partition every 250 ms for the day: its sink_log entry; then the markers."""
    batches = DAY_MINUTES * 60_000 // BATCH_EVERY_MS
    start_ms = int(start.timestamp() * 1000)
    # Lags and write times: mostly small, with a seeded long tail (a slow merge, a GC pause).
    store.command(
        f"""INSERT INTO promo.sink_log ({", ".join(SINK_LOG_COLUMNS)})
        SELECT fromUnixTimestamp64Milli(toInt64(t), 'UTC') AS written_at, p, b, toUInt32(1 + h % 400),
               fromUnixTimestamp64Milli(toInt64(t - 300 - h % 2000), 'UTC'),
               fromUnixTimestamp64Milli(toInt64(t - lag), 'UTC'),
               toFloat32(if(h % 1000 < 3, 50 + h % 450, 2 + (h % 37) / 2))
        FROM (
            SELECT number, intDiv(number, {{parts:UInt64}}) AS b, toInt32(number % {{parts:UInt64}}) AS p,
                   cityHash64({{seed:UInt64}}, number, 'log') AS h,
                   {{start:Int64}} + b * {BATCH_EVERY_MS} + p * 7 + h % 50 AS t,
                   if(h % 1000 < 5, 3000 + h % 12000, 150 + h % 900) AS lag
            FROM numbers({{n:UInt64}})
        )""",
        {"parts": partitions, "seed": seed, "start": start_ms, "n": batches * partitions},
    )
    zero = ", ".join(["0"] * len(COUNTERS))
    store.command(
        f"""INSERT INTO promo.facts_minute ({", ".join(FACT_INSERT_COLUMNS)})
        SELECT '', '', '', 0, toDateTime(0, 'UTC'), '', '', toInt32(number), {zero}, 0, {{to:Int64}}
        FROM numbers({{parts:UInt64}})""",
        {"parts": partitions, "to": batches},
    )
    # The worker's state every 10 s for the day (promo.pipeline_status): what the state panel reads.
    store.command(
        """INSERT INTO promo.pipeline_status (ts, worker, code, state, message)
        SELECT fromUnixTimestamp64Milli({start:Int64} + number * 10000, 'UTC'), 'bench:6066', 0, 'ok', ''
        FROM numbers(8640)""",
        {"start": start_ms},
    )
    # The drop detector's heartbeat for the day, and a sale day's incidents: twelve, one version when
    # each fires and one when it resolves, the last two still firing (what the alert panels read).
    store.command(
        """INSERT INTO promo.pipeline_status (ts, worker, code, state, message)
        SELECT fromUnixTimestamp64Milli({start:Int64} + number * 10000, 'UTC'), 'detector', 0, 'ok', ''
        FROM numbers(8640)""",
        {"start": start_ms},
    )
    store.command(
        """INSERT INTO promo.alerts (id, kind, metric, campaign_id, channel, started_at, detected_at, resolved_at,
            expected, observed, basis, severity, message, children, source, version)
        SELECT concat('bench', toString(intDiv(number, 2))), 'drop', 'orders', 'c1', 'wechat',
            fromUnixTimestamp64Milli({start:Int64} + intDiv(number, 2) * 7200000, 'UTC') AS started,
            started + 30, if(number % 2 = 1 AND number < 20, started + 600, NULL), 120, 10, 'share-of-parent',
            'critical', 'orders on c1/wechat 92% below expected', [], 'live', number
        FROM numbers(24)""",
        {"start": start_ms},
    )


def store_size(store: ClickHouseStore) -> tuple[dict[str, dict[str, int]], int]:
    """Active rows, parts and bytes on disk per promo table, and the total bytes."""
    rows = store.query_rows(
        "SELECT table, toInt64(sum(rows)) AS rows, toInt64(count()) AS parts, "
        "toInt64(sum(bytes_on_disk)) AS bytes FROM system.parts "
        "WHERE database = 'promo' AND active GROUP BY table ORDER BY table"
    )
    tables = {str(r["table"]): {"rows": int(r["rows"]), "parts": int(r["parts"]), "bytes": int(r["bytes"])}
              for r in rows}  # fmt: skip
    return tables, sum(t["bytes"] for t in tables.values())


# --------------------------------------------------------------------------------------------
# 4. The queries


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    sql: str


def dashboard_queries(boards: Mapping[str, Json]) -> list[Query]:
    """Every panel target and every query variable of the dashboards, in dashboard order."""
    queries = []
    for board in boards.values():
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                queries.append(Query(board["uid"], f"${variable['name']} (variable)", str(variable["query"])))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                title = panel["title"] if len(panel["targets"]) == 1 else f"{panel['title']} [{target['refId']}]"
                queries.append(Query(board["uid"], title, str(target["rawSql"])))
    return queries


@dataclass
class Timing:
    dashboard: str
    panel: str
    range: str
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_p50_ms: float  # CPU time of this process (the embedded engine's threads): the query's own work
    rows: int
    reads: str  # what the plan reads: a table, or the projection ClickHouse chose
    over_budget: bool
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with 20 runs, p99 is the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class _Run:
    query: Query
    range: TimeRange
    sql: str
    params: dict[str, str]
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rows: int = 0
    reads: str = ""
    error: str | None = None

    def explain(self, store: ClickHouseStore) -> None:
        try:
            plan = "\n".join(str(r["explain"]) for r in store.query_rows(f"EXPLAIN {self.sql}", self.params))
        except Exception as exc:
            self.error = f"EXPLAIN: {type(exc).__name__}: {exc}".splitlines()[0][:300]
            return
        self.reads = ", ".join(sorted(set(READS.findall(plan))))

    def once(self, store: ClickHouseStore) -> None:
        cpu, began = time.process_time(), time.perf_counter()
        try:
            rows = store.query_rows(self.sql, self.params)
        except Exception as exc:  # a failing panel is a result to report, not a reason to stop
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            return
        self.wall_ms.append((time.perf_counter() - began) * 1000)
        self.cpu_ms.append((time.process_time() - cpu) * 1000)
        self.rows = len(rows)

    def timing(self) -> Timing:
        q, name = self.query, self.range.name
        if self.error is not None or not self.wall_ms:
            return Timing(q.dashboard, q.panel, name, 0.0, 0.0, 0.0, 0.0, 0, self.reads, False, self.error or "not run")
        p99 = percentile(self.wall_ms, 0.99)
        return Timing(q.dashboard, q.panel, name, round(percentile(self.wall_ms, 0.5), 1), round(p99, 1),
                      round(max(self.wall_ms), 1), round(percentile(self.cpu_ms, 0.5), 1), self.rows, self.reads,
                      p99 > BUDGET_MS)  # fmt: skip


def time_queries(
    store: ClickHouseStore,
    queries: Sequence[Query],
    ranges: Sequence[TimeRange],
    variables: Mapping[str, str],
    repeat: int,
) -> list[Timing]:
    """One warm-up of each, then `repeat` rounds over all of them.

    Round-robin rather than one query's runs back to back: on a shared machine a burst of other
    work then slows every query a little instead of a few queries a lot.
    """
    runs = []
    for query in queries:
        for rng in ranges:
            sql, params = expand(query.sql, rng, variables)
            runs.append(_Run(query, rng, sql, params))
    for run in runs:
        run.explain(store)
        run.once(store)
        run.wall_ms.clear()
        run.cpu_ms.clear()
    for _ in range(repeat):
        for run in runs:
            if run.error is None:
                run.once(store)
    return [run.timing() for run in runs]


# --------------------------------------------------------------------------------------------
# The whole run


@dataclass
class BenchReport:
    fill: FillReport
    campaign: str
    repeat: int
    ranges: dict[str, list[str]]
    timings: list[Timing]

    @property
    def errors(self) -> list[Timing]:
        return [t for t in self.timings if t.error is not None]

    @property
    def over_budget(self) -> list[Timing]:
        return [t for t in self.timings if t.over_budget]


def biggest_campaign(store: ClickHouseStore) -> str:
    rows = store.query_rows(
        "SELECT campaign_id FROM promo.facts GROUP BY campaign_id ORDER BY sum(gmv_fen) DESC, campaign_id LIMIT 1"
    )
    return str(rows[0]["campaign_id"]) if rows else ""


def run(
    *,
    events: int,
    repeat: int,
    work_dir: Path,
    sample_events: int = 200_000,
    partitions: int = 4,
    seed: int = 11,
    optimize: bool = True,
    boards: Mapping[str, Json] | None = None,
    end: dt.datetime | None = None,
    progress: Any = None,
) -> BenchReport:
    """Fill a fresh store under `work_dir` and time every dashboard query on it."""
    say = progress or (lambda _message: None)
    store_dir, marker = work_dir / "store", work_dir / MARKER
    if store_dir.exists():
        if not marker.exists():  # e.g. --work-dir .promo: that store is the worker's, not ours
            raise ConfigError(f"{store_dir} exists and was not made by this bench; pass another --work-dir")
        shutil.rmtree(store_dir)  # the bench's own store from an earlier run: always start empty
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("a store filled by promo dashboards bench; removed and refilled on each run\n")
    now = dt.datetime.now(tz=dt.UTC)
    end = end or now.replace(second=0, microsecond=0)
    say(f"profiling {min(sample_events, events):,} simulated events through the pipeline …")
    profile = profile_from_simulation(min(sample_events, events), seed=seed, partitions=partitions)
    store = ClickHouseStore(f"chdb://{store_dir}")
    try:
        store.apply_schema()
        say(f"filling a day of {events:,} accepted events ({len(profile.cells)} cells x {DAY_MINUTES} minutes) …")
        report = fill(store, profile, events=events, end=end, partitions=partitions, seed=seed, optimize=optimize)
        campaign = biggest_campaign(store)
        ranges = [
            TimeRange("day", end - dt.timedelta(minutes=DAY_MINUTES), end),
            TimeRange("hour", end - dt.timedelta(hours=1), end),
        ]
        queries = dashboard_queries(boards if boards is not None else build_all())
        say(f"timing {len(queries)} queries x {len(ranges)} ranges x {repeat} runs (campaign {campaign}) …")
        timings = time_queries(store, queries, ranges, {"campaign": campaign}, repeat)
    finally:
        store.close_sync()
        store.executor.shutdown(wait=True)
    return BenchReport(
        report, campaign, repeat, {r.name: [r.start.isoformat(), r.end.isoformat()] for r in ranges}, timings
    )


def temporary_work_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="dashboards-bench-", dir=parent))


# --------------------------------------------------------------------------------------------
# Output


def _width(text: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def table(report: BenchReport) -> str:
    head = ["dashboard", "panel", "range", "p50 ms", "p99 ms", "max ms", "cpu p50", "rows", "reads", ""]
    body = [
        [t.dashboard, t.panel, t.range, f"{t.p50_ms:.1f}", f"{t.p99_ms:.1f}", f"{t.max_ms:.1f}", f"{t.cpu_p50_ms:.1f}",
         str(t.rows), t.reads,
         f"ERROR {t.error}" if t.error else ("> 100 ms" if t.over_budget else "")]
        for t in report.timings
    ]  # fmt: skip
    widths = [max(_width(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(_pad(x, w, right=3 <= i <= 7) for i, (x, w) in enumerate(zip(row, widths, strict=True)))
             .rstrip() for row in [head, *body]]  # fmt: skip
    return "\n".join([*lines, "", *summary(report)])


def summary(report: BenchReport) -> list[str]:
    f = report.fill
    tables = ", ".join(f"{name} {t['rows']:,} rows in {t['parts']} parts, {t['bytes'] / 2**20:.1f} MiB"
                       for name, t in f.tables.items())  # fmt: skip
    worst = max((t.p99_ms for t in report.timings if t.error is None), default=0.0)
    return [
        f"store: {f.accepted_in_store:,} accepted events (interactions + orders; asked for {f.events:,}), "
        f"{f.rejected_in_store:,} rejected; day {f.start} .. {f.end}",
        f"tables: {tables}; {f.store_bytes / 2**20:.1f} MiB on disk",
        f"fill: {f.fill_s:.1f} s from a {f.sample_events:,}-event profile ({f.cells} cells, "
        f"{f.rejection_cells} rejection cells), {f.partitions} partitions; "
        f"{'OPTIMIZE FINAL after the fill' if f.optimized else 'no OPTIMIZE (parts as inserted)'}",
        f"queries: {len(report.timings)} runs of {report.repeat} after a warm-up, campaign {report.campaign!r}; "
        f"worst p99 {worst:.1f} ms; over {BUDGET_MS:.0f} ms: {len(report.over_budget)}; errors: {len(report.errors)}",
    ]


def to_json(report: BenchReport) -> str:
    doc = {
        "budget_ms": BUDGET_MS,
        "fill": asdict(report.fill),
        "campaign": report.campaign,
        "repeat": report.repeat,
        "ranges": report.ranges,
        "queries": [asdict(t) for t in report.timings],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def iter_over_budget(report: BenchReport) -> Iterable[str]:
    for t in report.over_budget:
        yield f"{t.dashboard} / {t.panel} ({t.range}): p99 {t.p99_ms:.1f} ms"
