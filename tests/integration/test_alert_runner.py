"""The live runner on the real engine (streams/alerts/runner.py), its clock simulated: 55 minutes of
a steady stream written as the sink writes it, the orders of one channel of one campaign stopping
for 6 minutes (payments broken there), the runner restarted mid-incident from its saved state, and
a loopback webhook receiving the notifications.

What must hold: nothing fires in the 40 steady minutes; the outage fires within a minute on its
scope; every incident is announced once and resolved once, the restart repeating nothing and
forgetting nothing; nothing fires on the campaign that was fine. chdb runs in a child process
(alert_runner_child.py), one engine a process.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("alert_runner_child.py")


def epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def run_child(tmp_path: Path, scenario: str) -> tuple[float, dict[str, Any]]:
    start = float(int(time.time()) // 3600 * 3600 - 7200)  # recent: the inputs' TTL keeps two weeks
    result = subprocess.run([sys.executable, str(CHILD), str(tmp_path), str(start), scenario], capture_output=True,
                            text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return start, json.loads(result.stdout)


def test_the_runner_fires_once_resolves_once_and_survives_a_restart(tmp_path: Path) -> None:
    start, out = run_child(tmp_path, "payments")
    outage_start, outage_end = out["outage"]
    alerts = {a["id"]: a for a in out["alerts"]}

    # Nothing before the outage, nothing on the campaign that was fine, no lag (the pipeline kept up).
    # (The total may fire too: a quarter of its orders went, and orders per interaction fell with them.)
    assert alerts, "the outage raised nothing"
    assert all(epoch(a["detected_at"]) > outage_start for a in alerts.values()), alerts
    assert "c1" in {a["campaign_id"] for a in alerts.values()} <= {"c1", None}, alerts
    assert all(a["kind"] == "drop" for a in alerts.values())

    # The outage itself, on its scope (or folded under an enclosing one), within a minute.
    orders = [a for a in alerts.values() if a["metric"] == "orders"
              and (a["campaign_id"], a["channel"]) in {("c1", "wechat"), ("c1", None), (None, None)}]  # fmt: skip
    assert orders, alerts
    first = min(epoch(a["detected_at"]) for a in orders)
    assert outage_start < first <= outage_start + 60, (first - outage_start, orders)
    # Resolved after the recovery (the scoreboard holds the detector to its 2 min target; here the
    # runner must pass the resolution on).
    assert all(a["resolved_at"] is not None for a in alerts.values()), alerts
    assert all(outage_end <= epoch(a["resolved_at"]) <= outage_end + 6 * 60 for a in alerts.values()), alerts

    # Every incident announced once and resolved once, across the restart in the middle.
    events = Counter((r["id"], r["event"]) for r in out["received"])
    assert set(events) - {(i, "escalated") for i in alerts} == {(i, e) for i in alerts for e in ("fired", "resolved")}
    assert set(events.values()) == {1}, events
    # The restart forgot nothing: what fired before it still fired after it, until resolved.
    restart_tick = round((out["restart_at"] - start) / 10) - 1
    before, after = set(out["firing"][restart_tick - 1]), set(out["firing"][restart_tick])
    assert before and before <= after | {f for f in before if f.startswith("lag")}, (before, after)


def test_a_runner_started_without_its_state_closes_what_the_store_still_holds_open(tmp_path: Path) -> None:
    """An outside probe: a detector that started afresh (its state lost, or older than 15 min) knew nothing
    of the incidents still open in promo.alerts; they stayed firing there, in Grafana's table and `promo
    alerts list`, while the view's banner showed none, and nothing ever resolved them. They are closed
    at its first evaluation, unjudged, and the room is told "closed" (not "resolved")."""
    _, out = run_child(tmp_path, "afresh")
    alerts = {a["id"]: a for a in out["alerts"]}
    mine = [a for a in alerts.values() if a["channel"] == "wechat" and a["metric"] == "orders"]
    before = [a for a in alerts.values() if epoch(a["detected_at"]) < out["restart_at"]]
    assert mine and len(before) >= 3 and all(a["resolved_at"] is not None for a in before), alerts
    # (The fresh detector learns the rest of the outage as its baseline: c1/app's share of the campaign's
    # orders, all of them then, reads as a drop when wechat's come back. docs/ALERTS.md says so.)
    first = min(mine, key=lambda a: a["detected_at"])
    assert "closed unjudged" in first["message"] and "started afresh (no saved state)" in first["message"], first
    assert out["restart_at"] <= epoch(first["resolved_at"]) <= out["restart_at"] + 30, (first, out["restart_at"])
    for alert in before:
        told = [r["event"] for r in out["received"] if r["id"] == alert["id"]]
        assert told == ["fired", "closed"], (alert, told)
        assert "closed unjudged" in alert["message"], alert
    closed = next(r for r in out["received"] if r["id"] == first["id"] and r["event"] == "closed")
    assert closed["title"].startswith("【关闭】") and "未判断是否恢复" in closed["text"], closed


def test_a_drop_raised_to_critical_and_one_that_comes_back_are_each_announced_once(tmp_path: Path) -> None:
    """A channel's traffic falls 60% (a warning), stops (the same incident raised to critical: the war
    room is told, not left with a warning), the runner restarts, traffic comes back (resolved), stops
    again two minutes later (the same incident reopened: told again, never silently firing under a
    resolved message) and comes back. Its interactions carry that story in five messages, each once."""
    _, out = run_child(tmp_path, "again")
    alerts = {a["id"]: a for a in out["alerts"]}
    (clicks,) = [a for a in alerts.values() if a["metric"] == "interactions" and a["channel"] == "wechat"]
    told = [r["event"] for r in out["received"] if r["id"] == clicks["id"]]
    assert told == ["fired", "escalated", "resolved", "reopened", "resolved"], told
    messages = [r for r in out["received"] if r["id"] == clicks["id"]]
    assert messages[0]["severity"] == "warning" and messages[1]["severity"] == "critical", messages[:2]
    assert epoch(messages[0]["detected_at"]) < out["outage"][0] + 120, messages[0]  # the 60% fall itself
    assert clicks["resolved_at"] is not None and epoch(clicks["resolved_at"]) >= out["outage"][1], clicks
    # Nothing on the channel that never moved (its sibling's outage is not its burst, nor its drop).
    assert [a for a in alerts.values() if a["channel"] == "app" or a["campaign_id"] == "c2"] == [], alerts
    # Each message once across the restart, for every incident; every one of them ends resolved.
    keys = Counter((r["id"], r["event"], r.get("resolved_at"), r["severity"]) for r in out["received"])
    assert set(keys.values()) == {1}, keys
    assert all(a["resolved_at"] is not None for a in alerts.values()), alerts
    assert {a["kind"] for a in alerts.values()} == {"drop"}, alerts
