"""`promo dashboards build|push|bench`: Grafana dashboards as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.base import dashboards_app, fail


# -- dashboards -----------------------------------------------------------------------------------
@dashboards_app.command("build")
def dashboards_build(
    where: Annotated[str, typer.Argument(help="where to write the JSON", show_default=True)] = "dashboards",
) -> None:
    """Write the dashboards' Grafana JSON (sorted, indented: it diffs cleanly)."""
    from streams.dashboards.grafana import write_all

    if not where.strip():  # a Path argument reads '' as '.': the JSON landed in the current directory
        fail("the directory is empty: give one (default: dashboards)")
    directory = Path(where)
    if directory.exists() and not directory.is_dir():
        fail(f"{directory} is not a directory")
    try:
        written = write_all(directory)
    except OSError as exc:
        fail(f"cannot write the dashboards to {directory}: {exc.strerror or exc}")
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
    where: Annotated[str, typer.Option("--dir", help="the dashboards' JSON files")] = "dashboards",
    fresh: Annotated[bool, typer.Option(help="push what the code builds now instead of the JSON files")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each Grafana answer")] = 10.0,
) -> None:
    """Push the dashboards to Grafana over its HTTP API: same uid, same dashboard (created, updated or unchanged)."""
    import os

    from streams.config import scrub
    from streams.dashboards.grafana import build_all
    from streams.dashboards.push import PushError, format_report, load_boards, push_all

    url = url or os.environ.get("GRAFANA_URL", "")
    token = token or os.environ.get("GRAFANA_TOKEN", "")
    if not url:
        fail("no Grafana URL: pass --url or set GRAFANA_URL")
    if not timeout > 0:
        fail("--timeout must be positive")
    if not folder.strip() or not folder_uid.strip():
        fail("--folder and --folder-uid must not be empty")
    if not where.strip():
        fail("--dir is empty: give the dashboards' directory (default: dashboards)")
    boards = build_all() if fresh else load_boards(Path(where))
    try:
        report = push_all(url, token, boards, folder_title=folder, folder_uid=folder_uid, timeout_s=timeout)
    except PushError as exc:  # a Grafana that echoes its request (the Authorization header) must not show the token
        fail(scrub(str(exc), token))
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
    end: Annotated[
        str | None,
        typer.Option(help="ISO 8601 UTC end of the filled day (default: now); 'today' runs from 00:00 Beijing of it"),
    ] = None,
) -> None:
    """Time every dashboard query on a store holding a simulated Double 11 day (≥ --events events)."""
    import datetime as dt
    import shutil

    from streams.alerts.plan import parse_utc
    from streams.lab.bench_dashboards import run, table, temporary_work_dir, to_json

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
    end_at = None
    if end is not None:
        try:
            end_at = dt.datetime.fromtimestamp(parse_utc(end), tz=dt.UTC).replace(second=0, microsecond=0)
        except (ValueError, OverflowError, OSError) as exc:
            fail(f"--end: {exc}")
        if end_at > dt.datetime.now(tz=dt.UTC):
            fail("--end must not be in the future: the panels count only settled minutes")
    directory = work_dir.resolve() if work_dir is not None else temporary_work_dir(Path(".promo").resolve())
    try:
        report = run(
            events=events, repeat=repeat, work_dir=directory, sample_events=sample_events, partitions=partitions,
            optimize=optimize, end=end_at, progress=lambda message: typer.echo(message, err=True),
        )  # fmt: skip
    finally:
        if work_dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    typer.echo(to_json(report) if as_json else table(report))
    if report.errors:
        raise typer.Exit(1)
