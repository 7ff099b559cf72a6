"""`promo alerts …`: so far `test-notify`, which checks the configured robots end to end."""

from __future__ import annotations

from typing import Annotated

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
