"""`promo alerts …`: `test-notify` (the configured robots end to end); `eval` (the scoreboard) and
`backtest` (the detector over a user's own history)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.base import alerts_app, fail


@alerts_app.command("test-notify")
def test_notify(
    english: Annotated[bool, typer.Option("--english", help="the message in English (default: Chinese)")] = False,
) -> None:
    """Send one test message to every robot configured in the environment (PROMO_NOTIFY_DINGTALK_URL
    and _SECRET, PROMO_NOTIFY_WECOM_URL, PROMO_NOTIFY_FEISHU_URL and _SECRET, PROMO_NOTIFY_WEBHOOK_URL).

    Prints one line a robot (kind and host only: URLs and secrets hold credentials); exit 1 when any
    failed, 2 when none is configured."""
    from streams.alerts.notify import Message, robots_from_env, send

    try:
        robots = robots_from_env()
    except ValueError as exc:
        fail(str(exc))
    if not robots:
        fail("no robot configured: set PROMO_NOTIFY_DINGTALK_URL, _WECOM_URL, _FEISHU_URL or _WEBHOOK_URL")
    message = (
        Message("promo test notification", "If you can read this, alerts will reach this group.", {"test": True})
        if english
        else Message("promo 告警测试", "能看到这条消息，告警就能送到这个群。", {"test": True})
    )
    failed = 0
    for robot in robots:
        outcome = send(robot, message)
        status = "ok" if outcome.ok else "FAILED"
        typer.echo(f"{outcome.robot}: {status} after {outcome.attempts} attempt(s) ({outcome.detail})")
        failed += not outcome.ok
    if failed:
        raise typer.Exit(1)


# -- eval and backtest (the detector's proof; pure logic in streams/alerts and streams/lab) ------------------


@alerts_app.command("eval")
def alerts_eval(
    days: Annotated[int, typer.Option(help="held-out sale days scored (>= 30 for false alarms)", min=1)] = 30,
    seed: Annotated[int, typer.Option(help="the first test day's seed (training days have their own)")] = 20261111,
    train_days: Annotated[int, typer.Option(help="sale days the baseline rules are tuned on", min=1)] = 10,
    hours: Annotated[float, typer.Option(help="hours a day (24; less for a quick look)", min=1.0, max=24.0)] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object instead of the table")] = False,
) -> None:
    """The scoreboard: the detector and three rules teams use today, over labelled sale days.

    The rules are tuned on the training days; then every method is scored on the test days with
    frozen parameters. Prints the issue's table with its targets; a target not met says so."""
    import json

    from streams.lab.alerteval import EvalConfig, format_table, run_eval

    report = run_eval(EvalConfig(days=days, seed=seed, train_days=train_days, hours=hours),
                      progress=lambda line: typer.echo(line, err=True))  # fmt: skip
    typer.echo(json.dumps(_finite(report)) if as_json else format_table(report))


def _finite(value: Any) -> Any:
    """NaN and infinities (a class with no incidents has no median) as null: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@alerts_app.command("backtest")
def alerts_backtest(
    series: Annotated[Path, typer.Option("--series", help="CSV: ts,metric,value[,campaign_id,channel]; '-': stdin")],
    plan: Annotated[
        Path | None, typer.Option("--plan", help="CSV: minute,metric,expected[,campaign_id,channel]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line, the fields of promo.alerts")] = False,
) -> None:
    """Would it have fired? The live detector over your own history exported from elsewhere.

    The series is read at its own regular step (10 s to 1 h) as if each row had just settled; the
    detector's windows shorter than the step become one step. Prints each incident once, as it ended."""
    import json

    from streams.alerts.detector import Detector, DetectorConfig, Step, replay
    from streams.alerts.plan import PlanError, iso_utc, parse_plan_csv, parse_series_csv
    from streams.cli.data import read_input

    try:
        history = parse_series_csv(read_input(series, "a CSV file"))
    except PlanError as exc:
        fail(f"{series}: {exc}")
    expected = None
    if plan is not None:
        try:
            expected = parse_plan_csv(read_input(plan, "a CSV file"))
        except PlanError as exc:
            fail(f"{plan}: {exc}")
    keys = list(history.values)
    n = max(len(v) for v in history.values.values())
    step_s = history.step_s
    detector = Detector(DetectorConfig(step_s=step_s), expected)
    steps = (
        Step(history.t0 + (i + 1) * step_s, history.t0 + (i + 1) * step_s, 0.0,
             {key: float(history.values[key][i]) for key in keys})
        for i in range(n)
    )  # fmt: skip
    alerts = sorted(replay(detector, steps), key=lambda a: (a.detected_at, a.id))
    for alert in alerts:
        row = alert.to_row()
        for name in ("started_at", "detected_at", "resolved_at"):
            row[name] = None if row[name] is None else iso_utc(row[name])
        for name in ("expected", "observed"):  # NaN is not JSON: "no expectation" is null
            row[name] = row[name] if math.isfinite(row[name]) else None
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(f"{row['detected_at']}  {alert.kind:4s} {alert.severity:8s} {alert.message}"
                       f"  (resolved {row['resolved_at'] or 'no'})")  # fmt: skip
    if not as_json:
        typer.echo(f"{len(alerts)} alert(s) over {n} steps of {step_s:g} s", err=True)
