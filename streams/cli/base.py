"""What every `promo` command shares: the typer apps, the common options, one-line failures."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated, Any, NoReturn

import typer

from streams.config import Settings, load_settings
from streams.errors import ConfigError, PromoError

app = typer.Typer(
    name="promo",
    help="Real-time war-room numbers for 618 and Double 11: Kafka → Faust → ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Existing buyers (never counted as new ordering users).", no_args_is_help=True)
app.add_typer(users_app, name="users")
campaigns_app = typer.Typer(help="Campaign names and schedules (for the screens and the alerts).", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")
alerts_app = typer.Typer(help="Drop alerts: incidents, silences, notes, notification robots.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
plan_app = typer.Typer(help="The sale's plan: what the drop detector expects, minute by minute.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
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


def warn(message: str) -> None:
    """Something the user should know before trusting the answer, in one line on stderr."""
    typer.echo(f"promo: warning: {message}", err=True)


def settings_from(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        fail(str(exc))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Short-lived commands say what went wrong in one line of their own; the Kafka client's
    # connection chatter would bury it. (The worker configures its logging through Faust.)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if sys.argv[1:2] != ["worker"]:  # ... nor the HTTP client's retries (a worker keeps them in its log)
        # (urllib3's pool by name: clickhouse-connect sets "urllib3" itself to WARNING when imported)
        for name in ("urllib3.connectionpool", "clickhouse_connect"):
            logging.getLogger(name).setLevel(logging.ERROR)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        # Not standalone: typer's own errors (a flag or value the command does not take) come here
        # to be said in one line like every other error, not in its box (`typer.Exit` comes back as
        # the exit code). typer 0.29 vendors click: its ClickException is a TyperException.
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # the help was printed as the error was made (typer's own test, by name)
        typer.echo(f"promo: error: {usage_line(exc)}", err=True)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except PromoError as exc:
        typer.echo(f"promo: error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def usage_line(exc: typer.TyperException) -> str:
    """What typer refused, in one line, with where to read what the command takes."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see {ctx.command_path} --help)"
    return message
