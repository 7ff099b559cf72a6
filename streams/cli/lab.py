"""The lab's commands: `promo chaos` (and its kill loop), `promo bench`, `bench-memory`, `bench-recovery`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.base import _stop_children_on_sigterm, app, fail


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
    from streams.lab.chaos import SCENARIOS, markdown, run_scenario, table, to_json

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
    from streams.lab import killloop

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
    from streams.lab.bench import SHAPES, Freshness, run, table, to_json

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
    from streams.lab.bench import memory_table

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

    from streams.lab.recovery import measure, table

    if users < 1:
        fail("--users must be at least 1")
    if events < 2:  # the catch-up, then a tail of at least one event
        fail("--events must be at least 2")
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
