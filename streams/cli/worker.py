"""`promo broker` and `promo worker`, and the store-owner protocol (one process opens a chdb store)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.base import (
    BrokerOpt,
    ClickHouseOpt,
    NoViewOpt,
    PartitionsOpt,
    PrefixOpt,
    ViewPortOpt,
    _stop_children_on_sigterm,
    app,
    fail,
    settings_from,
)
from streams.config import Settings, dsn_secrets, redact_dsn, scrub
from streams.errors import ConfigError


# -- broker ---------------------------------------------------------------------------------------
@app.command()
def broker(
    port: Annotated[int, typer.Option(help="port to listen on")] = 9092,
    host: Annotated[str, typer.Option(help="address to bind (loopback unless you mean it)")] = "127.0.0.1",
    storage: Annotated[str, typer.Option(help="tansu storage: memory://tansu/ or s3://bucket/")] = "memory://tansu/",
) -> None:
    """Run the embedded Kafka-compatible broker (tansu) in the foreground until Ctrl-C."""
    from streams.kit.broker import EmbeddedBroker

    if not 0 < port < 65536:
        fail(f"--port must be 1-65535, got {port}")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        fail(f"--host {host!r} is not an address (127.0.0.1 unless you mean it)")
    embedded = EmbeddedBroker(port, host=host, storage=storage, die_with_parent=True)
    _stop_children_on_sigterm()
    embedded.start()
    # Listening is not ready: with storage it cannot reach (an s3:// bucket that is not there) tansu
    # listens and closes every Kafka request, and "ready" sent clients to fail (an outside probe).
    from streams.worker.broker_watch import probe_broker, quiet_aiokafka_bootstrap_errors

    quiet_aiokafka_bootstrap_errors()
    answer = asyncio.run(probe_broker(embedded.bootstrap, [], timeout_s=20))
    if answer.error:
        embedded.stop()
        fail(f"the broker listens on {embedded.url} but answers no Kafka request ({answer.error}): "
             f"is its storage {storage.split('://')[0]}://… reachable?")  # fmt: skip
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
    alerts: Annotated[
        bool | None,
        typer.Option("--alerts/--no-alerts", help="run the drop detector every 10 s (with the sink only)"),
    ] = None,
) -> None:
    """Run a Faust worker: creates the topics it needs, consumes events, writes ClickHouse.

    The worker with the sink also serves the dashboards at http://127.0.0.1:8080/ (the local view),
    and with --alerts (PROMO_ALERTS=1) runs the drop detector (docs/ALERTS.md).
    """
    import gc

    from faust.worker import Worker

    from streams.kafka import ensure_topics
    from streams.worker.app import build_app
    from streams.worker.pauses import GcPauses
    from streams.worker.transport import STOP_DEADLINE_S, PromoApp

    settings = settings_from(
        broker=broker, clickhouse=clickhouse, topic_prefix=topic_prefix, partitions=partitions,
        web_port=web_port, sink=sink, view_port=0 if no_view else view_port, alerts=alerts,
    )  # fmt: skip
    if loglevel not in ("crit", "error", "warn", "info", "debug"):
        fail("--loglevel must be one of crit, error, warn, info, debug")
    _check_data_dir(settings)
    _check_store_free(settings)
    _install_crash_points()
    if settings.alerts and not settings.sink:
        fail("--alerts needs the sink in this process (--sink): the detector reads what the sink writes")
    if not settings.sink and (web_port is not None or view_port is not None or no_view):
        # ignored in silence before (an outside probe): a worker without the sink serves no pages
        fail("--web-port, --view-port and --no-view go with the sink: a --no-sink worker serves no pages")
    if settings.alerts:
        _check_robots()
    if settings.sink:  # the web and the view run with the sink
        _check_web(settings)
        _check_view(settings)
        _check_clickhouse(settings)
    created = asyncio.run(ensure_topics(settings))
    if created:
        typer.echo(f"created topics: {', '.join(created)}")
    pipeline = build_app(settings)
    # The lab's fault hooks, for tests and `promo chaos`; the product only has the hook points.
    fault_file = os.environ.get("PROMO_FAULT_FILE", "")
    if fault_file:
        from streams.lab import faults

        faults.install(pipeline, Path(fault_file))
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
    if isinstance(pipeline.app, PromoApp):  # a stop that hangs (the broker gone) ends the process
        pipeline.app.stop_deadline_s = STOP_DEADLINE_S
    try:
        Worker(pipeline.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()
    finally:
        if pipeline.fatal is not None:  # the sink stopped the worker: one line, exit 1 (not a clean stop)
            typer.echo(f"promo: error: the worker stopped: {pipeline.fatal}", err=True)
            raise SystemExit(1)


def _install_crash_points() -> None:
    """The kill loop's faults (streams/lab/crash.py) when the environment asks for them: the product
    has only the hook points (streams/crashpoints.py) and reads none of these variables."""
    from streams.lab import crash

    if not any(os.environ.get(var) for var in crash.VARIABLES):
        return
    try:
        armed = crash.install_from_env()
    except ValueError as exc:
        fail(f"cannot arm the crash points: {exc}")
    if armed:
        typer.echo(f"lab hooks installed: {', '.join(armed)}")


def _check_robots() -> None:
    """A malformed PROMO_NOTIFY_*_URL stops the start (exit 2, one line that quotes no credential):
    a detector whose alerts reach nobody is found out before the sale, not during it."""
    from streams.alerts.notify import robots_from_env

    try:
        robots_from_env()
    except ValueError as exc:
        fail(str(exc))


def _check_web(settings: Settings) -> None:
    """The worker's own web port (health, the alert pages) is free: Faust's bind error is a traceback."""
    from streams.kafka import port_is_free

    if not port_is_free(settings.web_host, settings.web_port):
        fail(f"the worker's web port {settings.web_host}:{settings.web_port} is in use; pick another with --web-port "
             "(two workers on one host need their own)")  # fmt: skip


def _check_view(settings: Settings) -> None:
    """The view may listen where it is told: loopback, or beyond with a token; and its port is free."""
    from streams.dashboards.view.auth import check_bind
    from streams.kafka import port_is_free

    try:
        check_bind(settings.view_host, settings.view_port, settings.view_token.value)
    except ConfigError as exc:
        fail(str(exc))
    host, port = settings.view_host, settings.view_port
    if port and ":" not in host and not port_is_free(host, port):
        fail(f"the view's port {host}:{port} is in use; pick another with --view-port (0: no view)")


def _check_clickhouse(settings: Settings) -> None:
    """A ClickHouse server that refuses this worker for good (bad credentials, a wrong schema) is one
    line and exit 2 before it starts, not a page of tracebacks after; one that does not answer yet
    is waited for by the sink, with backoff. (The embedded store is checked by `_check_store_free`.)"""
    if settings.embedded_store is not None:
        return
    from streams.sink.clickhouse import ClickHouseStore, error_code, is_transient

    where = redact_dsn(settings.clickhouse_dsn)
    store = ClickHouseStore(settings.clickhouse_dsn, connect_timeout_s=5, send_timeout_s=15)
    try:
        store.connect()
    except Exception as exc:
        text = scrub(str(exc), *dsn_secrets(settings.clickhouse_dsn))
        text = " ".join(text.split())[:400]
        if not is_transient(exc):
            code = error_code(exc)
            fail(f"ClickHouse at {where} refuses this worker{f' (code {code})' if code else ''}: {text}")
        typer.echo(f"ClickHouse at {where} does not answer yet ({text}); the sink retries with backoff", err=True)
    finally:
        store.close_sync()


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
    refuse_if_detector_holds(store)


def detector_file(store: Path) -> Path:
    """Where `promo alerts run` says it has an embedded store open (it serves no API to go through)."""
    return store.with_name(store.name + ".detector.json")


def _detector_holder(store: Path) -> int | None:
    """The pid of a running `promo alerts run` that holds an embedded store open, if any."""
    try:
        pid = int(json.loads(detector_file(store).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):  # none, unreadable or not ours: nothing to say
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except (PermissionError, OverflowError):
        pass  # alive, another user's (or a pid no process has: the store's own error will say)
    return pid if pid != os.getpid() else None


def refuse_if_detector_holds(store: Path) -> None:
    """An embedded store opens in one process at a time; say which one holds it, in one line."""
    pid = _detector_holder(store)
    if pid is not None:
        fail(
            f"the store {store} is open in `promo alerts run` (pid {pid}): an embedded store has one process at "
            "a time; stop it, or run the detector in the worker (`promo worker --alerts`), which answers these commands"
        )


def refuse_if_never_written(store: Path) -> None:
    """An embedded store directory in which no worker made the database: one line, before it is opened
    (opening it would leave chdb's files in it, and read commands change no store)."""
    from streams.sink.clickhouse import has_database_on_disk

    if not has_database_on_disk(store):
        fail(f"the store at {store} has no tables: no worker has written to it yet")


def silent_owner(store: Path) -> str | None:
    """When the process that owns an embedded store is alive but did not answer `_live_owner` (frozen,
    or too busy): what to tell the user. Opening the store beside it fails on chdb's lock with two raw
    engine errors (an outside probe, a SIGSTOPped worker)."""
    from streams.worker.app import owner_file

    path = owner_file(store)
    try:
        doc = json.loads(path.read_text())
        pid = int(doc.get("pid", 0))
        written = path.stat().st_mtime
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if pid <= 0 or pid == os.getpid():  # a container's pid 1 after its worker was killed is this command
        return None
    started = _started_at(pid)
    if started is not None and started > written + 1:
        return None  # a process younger than the file: the pid was given again after the owner died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # it died without cleaning up: the store is free
    except PermissionError:
        pass  # alive, another user's
    try:  # a pid the system gave to another program since (a reboot): not ours
        if b"promo" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    except OSError:
        pass  # no /proc: take the pid's word
    return (f"the store at {store} is owned by the worker at {doc.get('url', '?')} (pid {pid}), which does not "
            "answer (stopped, or too busy to): try again, or stop or resume that worker")  # fmt: skip


def _started_at(pid: int) -> float | None:
    """When a process started (epoch s), from /proc; None where there is no /proc to say."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))  # fmt: skip
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _live_owner(store: Path) -> str | None:
    """URL of the running process that owns an embedded store, if any."""
    from streams.worker.app import owner_file

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
