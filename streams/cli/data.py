"""`promo simulate`, `promo users import` and `promo totals`: data in and numbers out."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import json
import math
import os
import sys
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.base import (
    BrokerOpt,
    ClickHouseOpt,
    PartitionsOpt,
    PrefixOpt,
    app,
    campaigns_app,
    fail,
    settings_from,
    users_app,
)
from streams.cli.worker import _live_owner, refuse_if_detector_holds, refuse_if_never_written, silent_owner
from streams.config import Settings, dsn_secrets, redact_dsn, scrub
from streams.contract.facts import COUNTERS
from streams.errors import PromoError, StoreBusyError

# -- simulate -------------------------------------------------------------------------------------
SALE_DAY_AT = "2026-11-10T15:55:00Z"  # the sale day's slice: five minutes before 00:00 Beijing
SALE_DAY_SCALE = 3000.0


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="the traffic shape: double11, 618 or sale-day")] = "double11",
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
    incidents: Annotated[
        Path | None,
        typer.Option(help="sale-day: JSON list of incidents (kind, scope, metrics, start, duration, depth, shape)"),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="sale-day: write the incidents in the slice here (real clock)")
    ] = None,
    at: Annotated[
        str, typer.Option(help="sale-day: where the slice starts, ISO 8601 on the simulated day")
    ] = SALE_DAY_AT,
    scale: Annotated[
        float, typer.Option(help="sale-day: interactions a minute on the eve, all campaigns")
    ] = SALE_DAY_SCALE,
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Produce a realistic, seeded Double 11 stream and its exact ground truth.

    `--scenario sale-day` sends a slice of a labelled sale day (streams/kit/saleday.py: the 00:00
    surge and its fall-off, schedules, plan errors, bot bursts) from `--at` for `--duration` seconds
    at real speed, with `--incidents` applied; `--labels` gets the incidents on the real clock."""
    from streams.kafka import ensure_topics
    from streams.kit.producer import send_records
    from streams.kit.simulate import SimConfig, generate
    from streams.kit.truth import compute_truth
    from streams.users import import_existing as do_import

    if not 0 < duration < math.inf or not 0 <= rate < math.inf:
        fail("--duration must be positive and --rate not negative (finite numbers)")
    # Checked here, by flag: the simulator's own checks name its fields (duplicate_rate).
    for flag, share in (("--duplicate-rate", duplicate_rate), ("--out-of-order-rate", out_of_order_rate),
                        ("--late-rate", late_rate), ("--malformed-rate", malformed_rate)):  # fmt: skip
        if not 0 <= share <= 1:  # nan too
            fail(f"{flag} must be a share within [0, 1], not {share:g}")
    if late_rate + out_of_order_rate > 1:
        fail("--late-rate and --out-of-order-rate add up to more than 1")
    # Checked before anything is sent: a path that fails after the stream went out loses the truth.
    _check_writable(truth, "--truth")
    _check_writable(existing, "--existing")
    settings = settings_from(broker=broker, topic_prefix=topic_prefix, partitions=partitions)
    if scenario == "sale-day":
        # Its own shape and noise: options of the other scenarios would be ignored in silence.
        ignored = [flag for flag, value, default in (
            ("--rate", rate, 2000.0), ("--duplicate-rate", duplicate_rate, 0.02),
            ("--out-of-order-rate", out_of_order_rate, 0.05), ("--late-rate", late_rate, 0.005),
            ("--malformed-rate", malformed_rate, 0.01)) if value != default]  # fmt: skip
        if ignored:
            fail(f"{', '.join(ignored)} go with --scenario double11 or 618; the sale day has its own (--scale)")
        _check_writable(labels, "--labels")
        _sale_day(settings, incidents, labels, at, duration, scale, seed, truth, existing, import_existing)
        return
    if incidents is not None or labels is not None:
        fail("--incidents and --labels go with --scenario sale-day")
    if at != SALE_DAY_AT or scale != SALE_DAY_SCALE:  # ignored in silence before (an outside probe)
        fail("--at and --scale go with --scenario sale-day")
    events = int((rate or 10_000) * duration)
    if events > MAX_EVENTS:  # the stream is built in memory before it is sent
        fail(f"--rate x --duration is {events:,} events; at most {MAX_EVENTS:,} in one run")
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
    try:
        if truth is not None:
            truth.write_bytes(result.to_json())
        if existing is not None:
            existing.write_text("".join(f"{u}\n" for u in sim.existing_buyers))
    except OSError as exc:
        fail(f"the stream was sent but a file could not be written: {exc}")
    typer.echo(f"sent {len(sent)} messages ({result.accepted} accepted events, rejected {result.rejected})")


def _sale_day(
    settings: Any, incidents: Path | None, labels: Path | None, at: str, duration: float, scale: float, seed: int,
    truth: Path | None, existing: Path | None, import_existing: bool,
) -> None:  # fmt: skip
    import numpy as np

    from streams.alerts.plan import PlanError, iso_utc, parse_utc
    from streams.alerts.scope import METRICS
    from streams.kafka import ensure_topics
    from streams.kit.producer import send_records
    from streams.kit.saleday import STEP_S, DayConfig, make_day
    from streams.kit.saleday_stream import labels as slice_labels
    from streams.kit.saleday_stream import slice_records
    from streams.kit.truth import compute_truth
    from streams.users import import_existing as do_import

    try:
        start = parse_utc(at)
    except (PlanError, ValueError) as exc:
        fail(f"--at: {exc}")
    if duration < STEP_S:  # the day is sent in whole 10 s buckets: less would send nothing
        fail(f"--duration must be at least {STEP_S:g} s for the sale day (it is sent in {STEP_S:g} s buckets)")
    if not 0 < scale < math.inf:
        fail("--scale must be a positive number")
    # The slice is built in memory before it is sent, as the other scenarios' stream (MAX_EVENTS): the
    # 00:00 surge is up to 16x the eve, and every event brings some shares and orders.
    if scale * 16 * 1.5 * duration / 60 > MAX_EVENTS:
        fail(f"--scale x --duration could be over {MAX_EVENTS:,} events at the 00:00 surge; at most that in one run")
    config = DayConfig(seed=seed, base_rate=scale, stalls=0, late_partitions=0)
    if not config.start <= start < config.start + config.hours * 3600:
        first = dt.datetime.fromtimestamp(config.start, dt.UTC).isoformat()
        fail(f"--at must fall in the simulated day ({config.hours:g} h from {first})")
    if seed < 0:
        fail(f"--seed must be 0 or more for the sale day, not {seed}")
    found = _incidents(incidents, config, start, start + duration) if incidents is not None else []
    config = dataclasses.replace(config, incidents=tuple(found))
    day = make_day(config)
    # A label for traffic that was not sent labels nothing: each incident must change a bucket the
    # slice sends (the day's own 10 s buckets; an incident acts on a bucket's middle) in which its
    # scope expects some of a metric it hits: not after the last bucket, not on a campaign not running.
    b0, b1 = max(0, int((start - day.t0) // STEP_S)), min(day.buckets, int((start + duration - day.t0) // STEP_S))
    buckets = np.arange(b0, b1)
    for i, incident in enumerate(found):
        hit = buckets[incident.factor(day.t0 + STEP_S * (buckets + 0.5)) < 1]
        rows = day.rate[day.index(incident.scope)][[METRICS.index(m) for m in incident.metrics]][:, hit]
        if not (rows > 0).any():
            fail(f"{incidents}: incident {i}: changes no traffic sent (the slice sends the 10 s buckets from "
                 f"{iso_utc(day.t0 + b0 * STEP_S)} to {iso_utc(day.t0 + b1 * STEP_S)}; an incident acts on "
                 f"a bucket's middle, and {incident.scope.label()} sends none of {', '.join(incident.metrics)} "
                 "in the ones it covers: not running then?)")  # fmt: skip
    sim = slice_records(day, start, start + duration, partitions=settings.partitions, seed=seed)
    began = time.time()

    async def run() -> list[Any]:
        await ensure_topics(settings)
        if import_existing:
            await do_import(settings, sim.existing_buyers)
        return await send_records(settings, sim.records, paced=True, real_clock=True)

    sent = asyncio.run(run())
    result = compute_truth(sent, sim.existing_buyers, lateness_ms=settings.allowed_lateness_ms,
                           horizon_ms=settings.dedup_horizon_ms, future_ms=settings.future_limit_ms)  # fmt: skip
    try:
        if truth is not None:
            truth.write_bytes(result.to_json())
        if existing is not None:
            existing.write_text("".join(f"{u}\n" for u in sim.existing_buyers))
        if labels is not None:
            labels.write_text(json.dumps(slice_labels(day.incidents, start, start + duration, began - start), indent=1))
    except OSError as exc:
        fail(f"the stream was sent but a file could not be written: {exc}")
    typer.echo(f"sent {len(sent)} messages of the sale day from {at} ({len(found)} incident(s) given)")


def _incidents(path: Path, config: Any, start: float, end: float) -> list[Any]:
    """The incidents of `--incidents`, each one that can apply to the slice [start, end) sent; else a
    one-line failure naming the incident (by its index in the list) and what is wrong with it."""
    from streams.alerts.plan import iso_utc
    from streams.kit.saleday import Incident

    try:
        docs = json.loads(read_input(path, "incidents").removeprefix("\ufeff"))  # a BOM, as the CSV readers drop it
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        fail(f"{path}: not a JSON list of incidents ({str(exc)[:200] or 'nested too deep'})")
    if not isinstance(docs, list):
        fail(f"{path}: not a JSON list of incidents (a {type(docs).__name__})")
    if len(docs) > MAX_INCIDENTS:  # each is checked against the others for overlaps
        fail(f"{path}: {len(docs):,} incidents; at most {MAX_INCIDENTS:,} in one run")
    campaigns = {f"c{i + 1:02d}" for i in range(config.campaigns)}  # as make_day names them
    found: list[Incident] = []
    for i, doc in enumerate(docs):
        try:
            incident = Incident.from_json(doc, config.channels)
        except KeyError as exc:
            fail(f"{path}: incident {i}: no {exc}")
        except (ValueError, TypeError, RecursionError, OverflowError) as exc:
            fail(f"{path}: incident {i}: {str(exc)[:200] or type(exc).__name__}")
        campaign = incident.scope.campaign_id
        if campaign is not None and campaign not in campaigns:
            fail(f"{path}: incident {i}: no campaign {campaign!r} in the sale day (c01 to c{config.campaigns:02d})")
        if not (incident.start < end and incident.end > start):
            when = iso_utc(incident.start) if abs(incident.start) < 2.5e11 else f"{incident.start:g} (epoch s)"
            fail(f"{path}: incident {i}: {when} for {incident.duration:g} s is outside the "
                 f"slice sent (--at {iso_utc(start)} for {end - start:g} s)")  # fmt: skip
        # Two at once on one metric of a scope (or of a scope and one under it) multiply: each label
        # would say its own depth of a fall that is deeper (a probe: 20,000 of 0.1% made an outage).
        for j, other in enumerate(found):
            shared = set(incident.metrics) & set(other.metrics)
            nested = incident.scope.encloses(other.scope) or other.scope.encloses(incident.scope)
            if shared and nested and incident.start < other.end and other.start < incident.end:
                fail(f"{path}: incident {i} overlaps incident {j} on {sorted(shared)[0]} of "
                     f"{incident.scope.label()} / {other.scope.label()}: their depths would multiply")  # fmt: skip
        found.append(incident)
    return found


MAX_INCIDENTS = 1000  # in one sale-day run: a day has tens
MAX_EVENTS = 50_000_000  # events one `promo simulate` run may build (a few GB of records)


def read_input(file: Path, what: str) -> str:
    """The UTF-8 text of `file` ('-': standard input), or a one-line failure saying why not.

    Standard input is read as bytes and decoded here, as strictly as a file: its text layer turns
    bytes that are not UTF-8 into lone surrogates, which fail later and far away (a traceback in an
    encoder, a 500 from the worker) or pass silently (into a labels file). A byte-order mark stays
    in either case; the parsers drop it."""
    if str(file) == "-":
        data, name = sys.stdin.buffer.read(), "standard input"
    else:
        data, name = _read_bytes(file, what), str(file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        fail(f"{name}: not UTF-8 text (byte {data[exc.start]:#04x} on line {line})")


def _read_bytes(file: Path, what: str) -> bytes:
    if file.is_dir():
        fail(f"{file} is a directory; give {what}")
    try:
        return file.read_bytes()
    except FileNotFoundError:
        fail(f"no such file: {file}")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")


def _check_writable(path: Path | None, flag: str) -> None:
    """`path` can be written (its directory exists and lets us), or a one-line failure."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{flag} {path} is a directory")
    parent = path.parent
    if not parent.is_dir():
        fail(f"{flag} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"{flag} {path}: not writable")
    # Permission bits do not tell everything (root, a read-only mount, /sys): open it as the write will.
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        fail(f"{flag} {path}: not writable ({exc.strerror or exc})")
    if not existed:
        path.unlink(missing_ok=True)


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
    parsed = read_user_file(read_input(file, "a file with one user_id a line"))
    if parsed.header is not None:
        typer.echo(f"skipped a header line: {parsed.header[:80]}", err=True)
    for bad in parsed.rejected:
        typer.echo(f"{file}:{bad.line}: rejected {bad.text!r}: {bad.reason}", err=True)
    if parsed.trimmed:
        lines = ", ".join(map(str, parsed.trimmed[:5])) + (f" and {len(parsed.trimmed) - 5} more" if
                                                            len(parsed.trimmed) > 5 else "")  # fmt: skip
        typer.echo(f"{file}: line(s) {lines}: spaces around the user_id, imported without them (an id that "
                   "really begins or ends with a space cannot be imported from a file)", err=True)  # fmt: skip
    if parsed.rejected and not skip_invalid:
        fail(f"{len(parsed.rejected)} line(s) are not user_ids; nothing imported (fix them, or --skip-invalid)")

    async def run() -> int:
        await ensure_topics(settings)
        return await import_existing(settings, parsed.users)

    imported = asyncio.run(run())
    skipped = f", {len(parsed.rejected)} line(s) rejected" if parsed.rejected else ""
    empty = f" ({file} holds no user_id; the topics exist now)" if not parsed.users else ""
    typer.echo(f"imported {imported} existing buyers{skipped}{empty}")


COLUMNS = ("campaign_id", "channel", *COUNTERS)  # of promo.campaign_totals, as --csv writes them


# -- campaigns ------------------------------------------------------------------------------------
@campaigns_app.command("import")
def campaigns_import(
    file: Annotated[Path, typer.Argument(help="CSV: campaign_id,name[,starts_at,ends_at] (ISO 8601 with offset)")],
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
) -> None:
    """Name campaigns (any language) and give their schedule; the screens show the names.

    Every line is checked; a bad one is reported with its number and nothing is sent."""
    from streams.campaigns import read_campaign_file, send_campaigns
    from streams.kafka import ensure_topics

    settings = settings_from(broker=broker, topic_prefix=topic_prefix, partitions=partitions)
    parsed = read_campaign_file(read_input(file, "a CSV file"))
    for number, reason in parsed.rejected:
        typer.echo(f"{file}:{number}: {reason}", err=True)
    if parsed.rejected:
        fail(f"{len(parsed.rejected)} line(s) rejected; nothing imported")
    if not parsed.campaigns:
        fail(f"{file} holds a header and no campaign")

    async def run() -> int:
        await ensure_topics(settings)
        return await send_campaigns(settings, parsed.campaigns)

    typer.echo(f"imported {asyncio.run(run())} campaigns")


# -- totals ---------------------------------------------------------------------------------------
@dataclass
class Read:
    """Totals and rejections as read, from which store, and how it was read."""

    store: str
    how: str  # "" for a ClickHouse server
    totals: list[dict[str, Any]]
    rejections: list[dict[str, Any]]

    @property
    def source(self) -> str:
        return f"{self.store} ({self.how})" if self.how else self.store


def read_store(settings: Settings, *, explicit: bool) -> Read:
    """The numbers of the store the settings name: through the worker that owns it when one runs,
    else read-only from the store. A default embedded store that does not exist falls back to the
    running demo's. A store that does not exist, or that no worker ever wrote, is an error (exit 2):
    an empty answer would read as "no sales"."""
    from streams.cli.demo import DEMO_DATA_DIR

    store_dir = settings.embedded_store
    if store_dir is None:
        return _read_direct(settings, redact_dsn(settings.clickhouse_dsn), "")
    owner = _live_owner(store_dir)
    if owner is not None:
        return _read_owner(owner, str(store_dir), f"through the worker that owns it, {owner}")
    if (silent := silent_owner(store_dir)) is not None:
        fail(silent)
    refuse_if_detector_holds(store_dir)
    demo_store = (DEMO_DATA_DIR / "store").resolve()
    demo = _live_owner(demo_store) if demo_store != store_dir.resolve() else None
    if not store_dir.exists():
        if demo is not None and not explicit:
            return _read_owner(demo, str(DEMO_DATA_DIR / "store"), "the running demo's store")
        hint = " (the demo's is chdb://.promo/demo/store)" if not explicit else ""
        fail(f"no store at {store_dir}: no worker has written there; start `promo worker` or give --clickhouse{hint}")
    refuse_if_never_written(store_dir)
    how = "no worker owns it: as the last worker left it"
    if demo is not None:
        how += f"; the running demo writes {DEMO_DATA_DIR / 'store'}"
    return _read_direct(settings, str(store_dir), how)


def _read_owner(url: str, store: str, how: str) -> Read:
    def get(path: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as resp:  # noqa: S310 - our own loopback URL
            rows: list[dict[str, Any]] = json.loads(resp.read())
            return rows

    try:
        return Read(store, how, get("/api/totals"), get("/api/rejections"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"the worker at {url} did not answer: {exc}")


def _read_direct(settings: Settings, where: str, how: str) -> Read:
    from streams.sink.clickhouse import ClickHouseStore

    store = ClickHouseStore(settings.clickhouse_dsn)
    try:
        if not store.has_schema():  # a read never changes the store
            fail(f"the store at {where} has no tables: no worker has written to it yet")
        return Read(where, how, store.totals(), store.rejections())
    except (PromoError, typer.Exit):
        raise
    except Exception as exc:
        text = scrub(str(exc), *dsn_secrets(settings.clickhouse_dsn))
        raise StoreBusyError(f"cannot read ClickHouse at {redact_dsn(settings.clickhouse_dsn)}: {text}") from exc
    finally:
        store.close_sync()


def _only(rows: list[dict[str, Any]], campaign: str | None, store: str) -> list[dict[str, Any]]:
    if campaign is None:
        return rows
    known = sorted({r["campaign_id"] for r in rows})
    if campaign not in known:
        listed = ", ".join(repr(c) for c in known[:10]) + (" …" if len(known) > 10 else "")
        fail(f"no campaign {campaign!r} in {store}; it has {listed or 'none yet'}")
    return [r for r in rows if r["campaign_id"] == campaign]


def _explicit_store(clickhouse: str | None) -> bool:
    return clickhouse is not None or "PROMO_CLICKHOUSE" in os.environ


@app.command()
def totals(
    campaign: Annotated[str | None, typer.Option(help="only this campaign (an unknown one is an error)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of rows")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row")] = False,
    clickhouse: ClickHouseOpt = None,
) -> None:
    """Print promo.campaign_totals (through the running worker when it owns the embedded store).

    Says on stderr which store it read, and whether a worker owns it."""
    if as_json and as_csv:
        fail("--json and --csv: pick one")
    settings = settings_from(clickhouse=clickhouse)
    try:
        read = read_store(settings, explicit=_explicit_store(clickhouse))
    except StoreBusyError as exc:
        fail(str(exc))
    rows = _only(read.totals, campaign, read.store)
    typer.echo(f"store: {read.source}", err=True)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif as_csv:
        # The csv module quotes a field holding a character of its line terminator: written with CRLF, an
        # id with a carriage return is one quoted field, not a phantom row; each line then ends in "\n"
        # as before (awk and cut see no "\r"). Written as is, not through click, which strips ANSI escapes
        # from output that is no terminal (the CSV's id then differed from the JSON's). An outside probe,
        # with campaign ids the contract allows.
        for line in [COLUMNS, *([r[c] for c in COLUMNS] for r in rows)]:
            out = io.StringIO()
            csv.writer(out, lineterminator="\r\n").writerow(line)
            sys.stdout.write(out.getvalue().removesuffix("\r\n") + "\n")
        sys.stdout.flush()
    else:
        typer.echo(format_totals(rows))


@app.command()
def verify(
    truth: Annotated[Path, typer.Option("--truth", help="a truth file from `promo simulate --truth`")],
    wait: Annotated[float, typer.Option(help="seconds to keep checking until exact (0: once)")] = 0.0,
    clickhouse: ClickHouseOpt = None,
) -> None:
    """Compare the live totals and rejections with a truth file; print every cell that differs.

    Exit 0 when exact, 1 when not (after --wait), 2 for bad input."""
    from streams.kit.truth import Truth

    if not 0 <= wait < math.inf:  # nan and inf too: a check that never ends answers nothing
        fail("--wait must be a finite number of seconds, not negative")
    try:
        want = Truth.from_json(read_input(truth, "a truth file from `promo simulate --truth`").encode())
    except ValueError as exc:
        fail(f"{truth}: not a truth file ({exc})")
    if not want.totals and not want.rejected:  # every store would "differ" from it, in every cell it holds
        fail(f"{truth}: the truth holds no totals and no rejections; nothing to verify against")
    settings = settings_from(clickhouse=clickhouse)
    deadline = time.monotonic() + wait
    while True:
        try:
            read = read_store(settings, explicit=_explicit_store(clickhouse))
        except StoreBusyError as exc:
            fail(str(exc))
        diffs = differences(want.totals, read.totals, want.rejected, read.rejections)
        if not diffs or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    typer.echo(f"store: {read.source}", err=True)
    cells = len(want.totals) * len(COUNTERS) + len(want.rejected)
    if not diffs:
        typer.echo(f"exact: {len(want.totals)} rows, {cells} cells and every rejection reason")
        return
    for line in diffs:
        typer.echo(line)
    typer.echo(f"{len(diffs)} of {cells} cells differ", err=True)
    raise typer.Exit(1)


def differences(
    want: list[dict[str, Any]],
    got: list[dict[str, Any]],
    want_rejected: Mapping[str, int],
    got_rejections: list[dict[str, Any]],
) -> list[str]:
    """One line per (campaign, channel, counter) and per rejection reason that differs."""

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["campaign_id"], r["channel"]): r for r in rows}

    wants, gots = keyed(want), keyed(got)
    out = []
    for key in sorted(wants.keys() | gots.keys()):
        w, g = wants.get(key, {}), gots.get(key, {})
        for counter in COUNTERS:
            a, b = int(w.get(counter, 0)), int(g.get(counter, 0))
            if a != b:
                out.append(f"{key[0]!r} {key[1]} {counter}: want {a:,}, got {b:,} ({b - a:+,})")
    got_rejected: dict[str, int] = {}
    for row in got_rejections:
        got_rejected[row["reason"]] = got_rejected.get(row["reason"], 0) + int(row["rejected"])
    for reason in sorted(want_rejected.keys() | got_rejected.keys()):
        a, b = want_rejected.get(reason, 0), got_rejected.get(reason, 0)
        if a != b:
            out.append(f"rejected {reason}: want {a:,}, got {b:,} ({b - a:+,})")
    return out


def format_totals(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no data yet)"
    head = ["campaign_id", "channel", "interactions", "participants", "shares", "orders", "gmv_yuan", "buyers",
            "new_users", "via_share"]  # fmt: skip
    body = [
        [visible(r["campaign_id"]), visible(r["channel"]), r["interactions"], r["participants"], r["shares"],
         r["orders"], f"{r['gmv_fen'] / 100:,.2f}", r["buyers"], r["new_users"], r["new_users_via_share"]]
        for r in rows
    ]  # fmt: skip
    widths = [max(_width(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(_pad(str(x), w) for x, w in zip(line, widths, strict=True)) for line in [head, *body]]
    return "\n".join(lines)


def visible(text: str) -> str:
    """An id as the table shows it: control and format characters (a carriage return, an escape, a
    right-to-left override) as escapes, not acted on by the terminal. --json and --csv keep them."""
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def _width(text: str) -> int:
    # CJK characters take two terminal columns.
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
