"""`promo simulate`, `promo users import` and `promo totals`: data in and numbers out."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.base import BrokerOpt, ClickHouseOpt, PartitionsOpt, PrefixOpt, app, fail, settings_from, users_app
from streams.cli.worker import _live_owner
from streams.config import Settings, redact_dsn
from streams.errors import PromoError, StoreBusyError


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
    from streams.kit.producer import send_records
    from streams.kit.simulate import SimConfig, generate
    from streams.kit.truth import compute_truth
    from streams.users import import_existing as do_import

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
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="import the valid lines even when some are rejected")
    ] = False,
) -> None:
    """Mark users as existing buyers; works whether or not a worker is running (needs the broker).

    A header line (`user_id`) is skipped. Any other line that is not a user_id (a CSV row, an id
    with spaces, over 64 characters) is reported with its number, and nothing is imported unless
    --skip-invalid."""
    from streams.kafka import ensure_topics
    from streams.users import import_existing, read_user_file

    settings = settings_from(broker=broker, topic_prefix=topic_prefix, partitions=partitions)
    if str(file) != "-" and file.is_dir():
        fail(f"{file} is a directory; give a file with one user_id a line")
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"no such file: {file}")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    parsed = read_user_file(text)
    if parsed.header is not None:
        typer.echo(f"skipped a header line: {parsed.header[:80]}", err=True)
    for bad in parsed.rejected:
        typer.echo(f"{file}:{bad.line}: rejected {bad.text!r}: {bad.reason}", err=True)
    if parsed.rejected and not skip_invalid:
        fail(f"{len(parsed.rejected)} line(s) are not user_ids; nothing imported (fix them, or --skip-invalid)")
    if not parsed.users:
        fail(f"{file}: no user_id to import")

    async def run() -> int:
        await ensure_topics(settings)
        return await import_existing(settings, parsed.users)

    imported = asyncio.run(run())
    skipped = f", {len(parsed.rejected)} line(s) rejected" if parsed.rejected else ""
    typer.echo(f"imported {imported} existing buyers{skipped}")


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
    from streams.sink.clickhouse import ClickHouseStore

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
