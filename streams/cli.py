"""The `promo` command: broker, worker, simulate, users import, totals, demo.

Every error a user can cause prints one line (`promo: error: …`) and exits 2; tracebacks are for bugs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from streams.config import Settings, load_settings, redact_dsn
from streams.errors import ConfigError, PromoError, StoreBusyError

app = typer.Typer(
    name="promo",
    help="Real-time war-room numbers for 618 and Double 11: Kafka → Faust → ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Existing buyers (never counted as new ordering users).", no_args_is_help=True)
app.add_typer(users_app, name="users")
dashboards_app = typer.Typer(help="Grafana dashboards as code (ClickHouse datasource).", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")

BrokerOpt = Annotated[str | None, typer.Option("--broker", help="kafka://host:port [env PROMO_BROKER]")]
ClickHouseOpt = Annotated[
    str | None, typer.Option("--clickhouse", help="chdb:///path or http://user:pass@host:8123/ [env PROMO_CLICKHOUSE]")
]
PrefixOpt = Annotated[str | None, typer.Option("--topic-prefix", help="topic name prefix [env PROMO_TOPIC_PREFIX]")]
PartitionsOpt = Annotated[
    int | None, typer.Option("--partitions", help="partitions per topic, at creation [env PROMO_PARTITIONS]")
]
ViewPortOpt = Annotated[
    int | None,
    typer.Option("--view-port", help="port of the dashboards view, 0: off (env PROMO_VIEW_PORT; default 8080)"),
]
NoViewOpt = Annotated[bool, typer.Option("--no-view", help="do not serve the local view (as --view-port 0)")]


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the foreground commands like Ctrl-C does, so children are stopped too."""
    raise KeyboardInterrupt


def _stop_children_on_sigterm() -> None:
    """For commands that start brokers, workers or peers: their `finally` blocks stop them on SIGTERM too."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def fail(message: str) -> NoReturn:
    typer.echo(f"promo: error: {message}", err=True)
    raise typer.Exit(2)


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(str(exc))


# -- broker ---------------------------------------------------------------------------------------
@app.command()
def broker(
    port: Annotated[int, typer.Option(help="port to listen on")] = 9092,
    host: Annotated[str, typer.Option(help="address to bind (loopback unless you mean it)")] = "127.0.0.1",
    storage: Annotated[str, typer.Option(help="tansu storage: memory://tansu/ or s3://bucket/")] = "memory://tansu/",
) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground until Ctrl-C."""
    from streams.kafka import EmbeddedBroker

    if not 0 < port < 65536:
        fail(f"--port must be 1-65535, got {port}")
    embedded = EmbeddedBroker(port, host=host, storage=storage)
    _stop_children_on_sigterm()
    embedded.start()
    typer.echo(f"broker ready at {embedded.url} (storage {storage}); Ctrl-C to stop")
    try:
        while embedded.process is not None and embedded.process.poll() is None:
            time.sleep(0.5)
        fail("the broker exited")
    except KeyboardInterrupt:
        pass
    finally:
        embedded.stop()


# -- worker ---------------------------------------------------------------------------------------
@app.command()
def worker(
    broker: BrokerOpt = None,
    clickhouse: ClickHouseOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    web_port: Annotated[int | None, typer.Option(help="HTTP port of this worker (one per worker)")] = None,
    sink: Annotated[
        bool | None,
        typer.Option("--sink/--no-sink", help="write to ClickHouse from this process (embedded store: one only)"),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug")] = "warn",
    view_port: ViewPortOpt = None,
    no_view: NoViewOpt = False,
) -> None:
    """Run a Faust worker: creates the topics it needs, consumes events, writes ClickHouse.

    The worker with the sink also serves the dashboards at http://127.0.0.1:8080/ (the local view).
    """
    import gc

    from faust.worker import Worker

    from streams.app import build_app
    from streams.kafka import ensure_topics
    from streams.pauses import GcPauses

    settings = settings_from(
        broker=broker, clickhouse=clickhouse, topic_prefix=topic_prefix, partitions=partitions,
        web_port=web_port, sink=sink, view_port=0 if no_view else view_port,
    )  # fmt: skip
    if loglevel not in ("crit", "error", "warn", "info", "debug"):
        fail("--loglevel must be one of crit, error, warn, info, debug")
    _check_data_dir(settings)
    _check_store_free(settings)
    if settings.sink:
        _check_view(settings)
    created = asyncio.run(ensure_topics(settings))
    if created:
        typer.echo(f"created topics: {', '.join(created)}")
    pipeline = build_app(settings)
    typer.echo(
        f"worker: broker {settings.broker}, clickhouse {redact_dsn(settings.clickhouse_dsn)}, "
        f"sink {'on' if settings.sink else 'off'}, web {settings.web_url if settings.sink else 'off'}, "
        f"view {(settings.view_url or 'off') if settings.sink else 'off'}"
    )
    # Stage 2 keeps every user's state alive; with the default thresholds the cyclic GC walks all of
    # it to find nothing, and every pass stops the pipeline. Why these thresholds, and what each
    # choice measured (total GC time, longest pauses): docs/PERFORMANCE.md, item 8.
    gc.freeze()
    gc.set_threshold(20_000, 5, 1_000)
    pipeline.gc_pauses = GcPauses().install()  # on /health: a freshness spike may be a long pass
    Worker(pipeline.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()


def _check_view(settings: Settings) -> None:
    """The view may listen where it is told: loopback, or beyond with a token; and its port is free."""
    from streams.kafka import port_is_free
    from streams.view.auth import check_bind

    try:
        check_bind(settings.view_host, settings.view_port, settings.view_token.value)
    except ConfigError as exc:
        fail(str(exc))
    host, port = settings.view_host, settings.view_port
    if port and ":" not in host and not port_is_free(host, port):
        fail(f"the view's port {host}:{port} is in use; pick another with --view-port (0: no view)")


def _check_data_dir(settings: Settings) -> None:
    """The worker's local state lives under the data dir: made when missing (Faust makes only its last level)."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot use the data directory {settings.data_dir} (PROMO_DATA_DIR): {exc.strerror or exc}")


def _check_store_free(settings: Settings) -> None:
    store = settings.embedded_store
    if store is None or not settings.sink:
        return
    owner = _live_owner(store)
    if owner is not None:
        fail(f"the store {store} is owned by the worker at {owner}; run this worker with --no-sink")


def _live_owner(store: Path) -> str | None:
    """URL of the running process that owns an embedded store, if any."""
    from streams.app import owner_file

    path = owner_file(store)
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    url = str(doc.get("url", ""))
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=3):  # noqa: S310 - our own loopback URL
            return url
    except urllib.error.HTTPError:
        return url  # it answered: alive, only unhappy
    except (urllib.error.URLError, OSError):
        return None


# -- simulate -------------------------------------------------------------------------------------
@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="the traffic shape")] = "double11",
    rate: Annotated[float, typer.Option(help="average events per second (0: as fast as possible)")] = 2000.0,
    duration: Annotated[float, typer.Option(help="seconds of sending")] = 30.0,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same stream")] = 11,
    truth: Annotated[Path | None, typer.Option(help="write the ground-truth totals (JSON) here")] = None,
    existing: Annotated[Path | None, typer.Option(help="write the existing buyers (one a line) here")] = None,
    import_existing: Annotated[bool, typer.Option(help="also import the existing buyers")] = True,
    duplicate_rate: Annotated[float, typer.Option(help="share of events re-sent as exact copies")] = 0.02,
    out_of_order_rate: Annotated[float, typer.Option(help="share of events set back up to 5 min")] = 0.05,
    late_rate: Annotated[float, typer.Option(help="share of events too late to count")] = 0.005,
    malformed_rate: Annotated[float, typer.Option(help="share of extra malformed messages")] = 0.01,
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Produce a realistic, seeded Double 11 stream and its exact ground truth."""
    from streams.kafka import ensure_topics
    from streams.producer import import_existing as do_import
    from streams.producer import send_records
    from streams.simulate import SimConfig, generate
    from streams.truth import compute_truth

    if duration <= 0 or rate < 0:
        fail("--duration must be positive and --rate not negative")
    settings = settings_from(broker=broker, topic_prefix=topic_prefix, partitions=partitions)
    events = int((rate or 10_000) * duration)
    try:
        config = SimConfig(scenario=scenario, events=events, duration_s=duration, seed=seed,
                           partitions=settings.partitions, start_ms=int(time.time() * 1000) - 7_200_000,
                           duplicate_rate=duplicate_rate, out_of_order_rate=out_of_order_rate,
                           late_rate=late_rate, malformed_rate=malformed_rate)  # fmt: skip
        sim = generate(config)
    except ValueError as exc:
        fail(str(exc))

    async def run() -> list[Any]:
        await ensure_topics(settings)
        if import_existing:
            await do_import(settings, sim.existing_buyers)
        return await send_records(settings, sim.records, paced=rate > 0, real_clock=True)

    sent = asyncio.run(run())
    result = compute_truth(
        sent, sim.existing_buyers, lateness_ms=settings.allowed_lateness_ms,
        horizon_ms=settings.dedup_horizon_ms, future_ms=settings.future_limit_ms,
    )  # fmt: skip
    if truth is not None:
        truth.write_bytes(result.to_json())
    if existing is not None:
        existing.write_text("".join(f"{u}\n" for u in sim.existing_buyers))
    typer.echo(f"sent {len(sent)} messages ({result.accepted} accepted events, rejected {result.rejected})")


# -- users ----------------------------------------------------------------------------------------
@users_app.command("import")
def users_import(
    file: Annotated[Path, typer.Argument(help="one user_id a line; '-' for standard input")],
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Mark users as existing buyers; works whether or not a worker is running (needs the broker)."""
    from streams.kafka import ensure_topics
    from streams.producer import import_existing, read_user_file

    settings = settings_from(broker=broker, topic_prefix=topic_prefix, partitions=partitions)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        users = read_user_file(text)
    except FileNotFoundError:
        fail(f"no such file: {file}")
    except (UnicodeDecodeError, ValueError) as exc:
        fail(f"{file}: {exc}")

    async def run() -> int:
        await ensure_topics(settings)
        return await import_existing(settings, users)

    typer.echo(f"imported {asyncio.run(run())} existing buyers")


# -- dashboards -----------------------------------------------------------------------------------
@dashboards_app.command("build")
def dashboards_build(
    directory: Annotated[Path, typer.Argument(help="where to write the JSON")] = Path("dashboards"),
) -> None:
    """Write the dashboards' Grafana JSON (sorted, indented: it diffs cleanly)."""
    from streams.dashboards import write_all

    if directory.exists() and not directory.is_dir():
        fail(f"{directory} is not a directory")
    written = write_all(directory)
    typer.echo(f"wrote {len(written)} dashboards to {directory}: {', '.join(p.name for p in written)}")


@dashboards_app.command("push")
def dashboards_push(
    url: Annotated[str | None, typer.Option(help="Grafana's base URL (env GRAFANA_URL)")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="a Grafana service account token, Editor role (env GRAFANA_TOKEN)", show_default=False),
    ] = None,
    folder: Annotated[str, typer.Option(help="the folder to put them in (created if missing)")] = "大促 / Promo",
    folder_uid: Annotated[str, typer.Option(help="the folder's uid, when it is created")] = "promo",
    directory: Annotated[Path, typer.Option("--dir", help="the dashboards' JSON files")] = Path("dashboards"),
    fresh: Annotated[bool, typer.Option(help="push what the code builds now instead of the JSON files")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each Grafana answer")] = 10.0,
) -> None:
    """Push the dashboards to Grafana over its HTTP API: same uid, same dashboard (created, updated or unchanged)."""
    import os

    from streams.dashboards import build_all
    from streams.grafana_push import format_report, load_boards, push_all

    url = url or os.environ.get("GRAFANA_URL", "")
    token = token or os.environ.get("GRAFANA_TOKEN", "")
    if not url:
        fail("no Grafana URL: pass --url or set GRAFANA_URL")
    if not timeout > 0:
        fail("--timeout must be positive")
    if not folder.strip() or not folder_uid.strip():
        fail("--folder and --folder-uid must not be empty")
    boards = build_all() if fresh else load_boards(directory)
    report = push_all(url, token, boards, folder_title=folder, folder_uid=folder_uid, timeout_s=timeout)
    typer.echo(format_report(report))


@dashboards_app.command("bench")
def dashboards_bench(
    events: Annotated[int, typer.Option(help="accepted events the simulated day adds up to")] = 100_000_000,
    repeat: Annotated[int, typer.Option(help="timed runs of each query (after one warm-up)")] = 20,
    work_dir: Annotated[
        Path | None, typer.Option(help="where the store goes (kept); default: a temporary dir under .promo/, removed")
    ] = None,
    sample_events: Annotated[int, typer.Option(help="simulated events the mix is profiled from")] = 200_000,
    partitions: Annotated[int, typer.Option(help="routed partitions the simulated sink wrote")] = 4,
    optimize: Annotated[bool, typer.Option(help="merge the fact table (OPTIMIZE FINAL) after the fill")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON instead of a table")] = False,
) -> None:
    """Time every dashboard query on a store holding a simulated Double 11 day (≥ --events events)."""
    import shutil

    from streams.bench_dashboards import run, table, temporary_work_dir, to_json

    if events < 1000:
        fail("--events must be at least 1000")
    if repeat < 1:
        fail("--repeat must be at least 1")
    if sample_events < 1000:
        fail("--sample-events must be at least 1000")
    if not 1 <= partitions <= 1024:
        fail("--partitions must be 1-1024")
    if work_dir is not None and work_dir.exists() and not work_dir.is_dir():
        fail(f"{work_dir} is not a directory")
    directory = work_dir.resolve() if work_dir is not None else temporary_work_dir(Path(".promo").resolve())
    try:
        report = run(
            events=events, repeat=repeat, work_dir=directory, sample_events=sample_events, partitions=partitions,
            optimize=optimize, progress=lambda message: typer.echo(message, err=True),
        )  # fmt: skip
    finally:
        if work_dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    typer.echo(to_json(report) if as_json else table(report))
    if report.errors:
        raise typer.Exit(1)


# -- totals ---------------------------------------------------------------------------------------
@app.command()
def totals(
    campaign: Annotated[str | None, typer.Option(help="only this campaign")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of rows")] = False,
    clickhouse: ClickHouseOpt = None,
) -> None:
    """Print promo.campaign_totals (asks the running worker when it owns the embedded store)."""
    settings = settings_from(clickhouse=clickhouse)
    try:
        rows = fetch_totals(settings, campaign)
    except StoreBusyError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    typer.echo(format_totals(rows))


def fetch_totals(settings: Settings, campaign: str | None) -> list[dict[str, Any]]:
    from streams.sinks.clickhouse import ClickHouseStore

    store_dir = settings.embedded_store
    if store_dir is not None:
        owner = _live_owner(store_dir)
        if owner is not None:
            query = f"?{urllib.parse.urlencode({'campaign': campaign})}" if campaign is not None else ""
            with urllib.request.urlopen(f"{owner}/api/totals{query}", timeout=30) as resp:  # noqa: S310
                rows: list[dict[str, Any]] = json.loads(resp.read())
                return rows
        if not store_dir.exists():
            return []
    store = ClickHouseStore(settings.clickhouse_dsn)
    try:
        if not store.has_schema():  # a read never changes the store: no worker has written here yet
            return []
        return store.totals(campaign)
    except PromoError:
        raise
    except Exception as exc:
        raise StoreBusyError(f"cannot read ClickHouse at {redact_dsn(settings.clickhouse_dsn)}: {exc}") from exc
    finally:
        store.close_sync()


def format_totals(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no data yet)"
    head = ["campaign_id", "channel", "interactions", "participants", "shares", "orders", "gmv_yuan", "buyers",
            "new_users", "via_share"]  # fmt: skip
    body = [
        [r["campaign_id"], r["channel"], r["interactions"], r["participants"], r["shares"], r["orders"],
         f"{r['gmv_fen'] / 100:,.2f}", r["buyers"], r["new_users"], r["new_users_via_share"]]
        for r in rows
    ]  # fmt: skip
    widths = [max(_width(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(_pad(str(x), w) for x, w in zip(line, widths, strict=True)) for line in [head, *body]]
    return "\n".join(lines)


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


# -- chaos ----------------------------------------------------------------------------------------
@app.command()
def chaos(
    scenario: Annotated[list[str] | None, typer.Option(help="run only these (repeatable); default: all")] = None,
    short: Annotated[bool, typer.Option(help="the CI-sized version (fewer events, shorter faults)")] = False,
    work_dir: Annotated[Path, typer.Option(help="where brokers' logs and stores go")] = Path(".promo/chaos"),
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the results as JSON here")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="also write a Markdown table here")] = None,
    user_cache: Annotated[
        int | None, typer.Option(help="the workers' user cache (PROMO_USER_CACHE); small: users go to disk and back")
    ] = None,
    kill_loop: Annotated[
        bool, typer.Option(help="instead of the scenarios: SIGKILLs at random and at every step boundary, per seed")
    ] = False,
    seeds: Annotated[int, typer.Option(help="with --kill-loop: how many seeds (1, 2, …)")] = 10,
    kills: Annotated[int, typer.Option(help="with --kill-loop: kills per seed")] = 40,
    workers: Annotated[int, typer.Option(help="with --kill-loop: 1 (the store's owner) or 2 workers")] = 1,
    events: Annotated[int, typer.Option(help="with --kill-loop: simulated events per seed")] = 60_000,
) -> None:
    """Kill workers, pause the broker, fail ClickHouse, send garbage; compare every total with the truth."""
    from streams.chaos import SCENARIOS, markdown, run_scenario, table, to_json

    if kill_loop:
        _kill_loop(work_dir, seeds, kills, workers, events, 40 if user_cache is None else user_cache, json_out)
        return
    names = scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        fail(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    if user_cache is not None and user_cache < 0:
        fail("--user-cache must be 0 (all in memory) or a number of users")
    results = []
    _stop_children_on_sigterm()
    for name in names:
        typer.echo(f"running {name} …", err=True)
        results.append(run_scenario(name, work_dir.resolve(), short=short, user_cache=user_cache))
    typer.echo(table(results))
    for result in results:
        for line in result.faults + result.observations:
            typer.echo(f"  {result.scenario}: {line}")
    if json_out is not None:
        json_out.write_text(to_json(results))
    if markdown_out is not None:
        markdown_out.write_text(markdown(results) + "\n")
    if not all(r.exact for r in results):
        raise typer.Exit(1)


def _kill_loop(work_dir: Path, seeds: int, kills: int, workers: int, events: int, cache: int, out: Path | None) -> None:
    from streams import killloop

    if not 1 <= seeds <= 100:
        fail("--seeds must be between 1 and 100")
    if not 2 <= kills <= 1000:
        fail("--kills must be between 2 and 1000")
    if workers not in (1, 2):
        fail("--workers must be 1 or 2")
    if events < 1000:
        fail("--events must be at least 1000")
    if cache < 0:
        fail("--user-cache must be 0 (all in memory) or a number of users")
    _stop_children_on_sigterm()
    results = []
    for seed in range(1, seeds + 1):
        typer.echo(f"kill loop: seed {seed}, {kills} kills, {workers} worker(s) …", err=True)
        results += killloop.kill_loop(work_dir.resolve(), seeds=[seed], kills=kills, workers=workers,
                                      events=events, user_cache=cache)  # fmt: skip
        typer.echo(killloop.table(results[-1:]), err=True)
    typer.echo(killloop.table(results))
    for result in results:
        for line in result.examples:
            typer.echo(f"  seed {result.seed}: {line}")
        if result.points_missed:
            typer.echo(f"  seed {result.seed}: crash points not reached in time: {', '.join(result.points_missed)}")
    if out is not None:
        out.write_text(killloop.to_json(results))
    if not all(r.exact for r in results):
        raise typer.Exit(1)


# -- bench ----------------------------------------------------------------------------------------
@app.command()
def bench(
    events: Annotated[int, typer.Option(help="simulated events per shape")] = 1_000_000,
    shape: Annotated[list[str] | None, typer.Option(help="single and/or batched (repeatable); default both")] = None,
    work_dir: Annotated[Path, typer.Option(help="where the broker log and stores go")] = Path(".promo/bench"),
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON here")] = None,
    two_workers: Annotated[bool, typer.Option(help="also run the pipeline with two worker processes")] = True,
    peers: Annotated[bool, typer.Option(help="also run the peers (quixstreams, naive Faust)")] = True,
    freshness_s: Annotated[float, typer.Option(help="seconds of steady traffic per freshness run; 0 skips")] = 20.0,
) -> None:
    """This pipeline against the raw Kafka client's ceiling and its peers, on the same data, in one run."""
    from streams.bench import SHAPES, Freshness, run, table, to_json

    shapes = shape or list(SHAPES)
    if any(s not in SHAPES for s in shapes):
        fail(f"--shape must be one of {', '.join(SHAPES)}")
    if events < 100:
        fail("--events must be at least 100")
    if freshness_s < 0:
        fail("--freshness-s must be 0 (skip) or positive")

    def progress(row: object) -> None:
        what = f"freshness {row.shape} {row.load:.0%}" if isinstance(row, Freshness) else f"{row.shape} {row.system}"  # type: ignore[attr-defined]
        typer.echo(f"  done: {what}", err=True)

    _stop_children_on_sigterm()
    report = run(events, shapes, work_dir.resolve(), workers=(1, 2) if two_workers else (1,), with_peers=peers,
                 freshness_s=freshness_s, on_row=progress)  # fmt: skip
    typer.echo(table(report))
    if json_out is not None:
        json_out.write_text(to_json(report))
    if not all(r.exact for r in report.throughput if r.system.startswith("pipeline")):
        fail("the pipeline did not reach the exact totals")


@app.command("bench-memory")
def bench_memory(
    users: Annotated[list[int] | None, typer.Option(help="distinct users (repeatable); default 1M and 10M")] = None,
    cache: Annotated[
        int | None, typer.Option(help="users kept in memory (default: PROMO_USER_CACHE's default; 0: all)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON instead of the table")] = False,
) -> None:
    """Stage 2's peak RSS at N distinct users, through its snapshot and user cache, each size in a fresh process."""
    from streams.bench import memory_table

    sizes = users or [1_000_000, 10_000_000]
    if any(n < 1 for n in sizes):
        fail("--users must be at least 1")
    if cache is not None and cache < 0:
        fail("--cache must be 0 (all in memory) or a number of users")
    _stop_children_on_sigterm()
    rows = memory_table(sizes, cache)
    if json_out:
        typer.echo(json.dumps(rows))
        return
    typer.echo("  distinct users  cache (users)  in memory  peak RSS MB  bytes a user  seconds")
    for r in rows:
        cap = f"{r['cache']:,}" if r["cache"] else "all"
        typer.echo(f"{r['users']:>16,}  {cap:>13}  {r['in_memory']:>9,}  {r['peak_rss_mb']:>11,.0f}  "
                   f"{r['bytes_per_user']:>12,}  {r['seconds']:>7}")  # fmt: skip


@app.command("bench-recovery")
def bench_recovery(
    events: Annotated[int, typer.Option(help="simulated events")] = 4_000_000,
    users: Annotated[int, typer.Option(help="the simulator's user pool (about 0.6 of it show up)")] = 1_600_000,
    tail: Annotated[int, typer.Option(help="events sent after the catch-up, the kill one second into them")] = 100_000,
    work_dir: Annotated[Path, typer.Option(help="where the broker log, store and state go")] = Path(
        ".promo/bench-recovery"
    ),
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result as JSON here")] = None,
) -> None:
    """Time until exact again after a SIGKILL of the worker, at a million distinct users by default."""
    from dataclasses import asdict

    from streams.recovery import measure, table

    if users < 1:
        fail("--users must be at least 1")
    if not 0 < tail < events:
        fail("--tail must be at least 1 and below --events")
    _stop_children_on_sigterm()
    work_dir.mkdir(parents=True, exist_ok=True)
    result = measure(work_dir.resolve(), events=events, users=users, tail=tail)
    typer.echo(table(result))
    if json_out is not None:
        json_out.write_text(json.dumps(asdict(result)))
    if not result.exact:
        typer.echo("promo: the pipeline did not reach the exact totals", err=True)
        raise typer.Exit(1)


# -- demo -----------------------------------------------------------------------------------------
@app.command()
def demo(
    port: Annotated[int, typer.Option(help="broker port")] = 19092,
    web_port: Annotated[int, typer.Option(help="the worker's HTTP port (its JSON API)")] = 6066,
    view_port: ViewPortOpt = None,
    no_view: NoViewOpt = False,
    rate: Annotated[float, typer.Option(help="average events per second")] = 1500.0,
    duration: Annotated[float, typer.Option(help="seconds of simulated traffic (then it idles)")] = 600.0,
    data_dir: Annotated[Path, typer.Option(help="where the embedded store lives")] = Path(".promo/demo"),
    once: Annotated[bool, typer.Option(help="print one summary after the traffic and exit (for scripts)")] = False,
) -> None:
    """Broker, worker and simulator together, with a live war-room summary until Ctrl-C.

    The dashboards are drawn at the view's URL (http://127.0.0.1:8080/ unless told otherwise).
    """
    from streams.demo import run_demo

    view = settings_from(view_port=0 if no_view else view_port)
    _check_view(view)
    try:
        run_demo(port=port, web_port=web_port, rate=rate, duration=duration, data_dir=data_dir, once=once, view=view)
    except KeyboardInterrupt:
        typer.echo("\nstopped")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Short-lived commands say what went wrong in one line of their own; the Kafka client's
    # connection chatter would bury it. (The worker configures its logging through Faust.)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        app()
    except PromoError as exc:
        typer.echo(f"promo: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
