"""Issue 17 end to end on the real broker and ClickHouse engine: a worker with `--alerts` under a
steady stream whose stage 2 stalls for 80 s and then catches up.

What a war room must see: a `lag` alert about 60 s into the stall (the evaluation after the lag
passes 60 s), no drop alert at all (neither while stalled nor while catching up: the numbers were
only late), the lag alert resolved soon after the catch-up; the incident in promo.alerts through
`promo alerts list --json`, acknowledged with `promo alerts ack`, and on the view's alert banner
while it fires. Then the stream stops for good, a real outage: critical drop alerts at the total
within seconds. The stall is real (the fault file's `stall-stage:aggregate`, as
tests/integration/test_stall.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.kafka import free_port
from streams.kit.harness import Pipeline, WorkerProcess, get_json
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate
from streams.users import import_existing
from tests.integration.browser import wall_page

pytestmark = pytest.mark.integration

RATE = 60  # events a second, steady: the whole stream is judged at the total scope


def steady_stream(seconds: float, seed: int) -> tuple[list[Any], list[str]]:
    """The simulator's events in random order at an even pace: a stationary stream (the Double 11
    curve compressed into minutes would itself be a cliff)."""
    sim = generate(SimConfig(events=int(RATE * seconds), seed=seed, partitions=4, duration_s=seconds))
    records = list(sim.records)
    random.Random(seed).shuffle(records)
    step = seconds / len(records)
    return [dataclasses.replace(r, send_at_s=i * step) for i, r in enumerate(records)], sim.existing_buyers


def start_steady_stream(env: Pipeline, seconds: float, seed: int) -> threading.Thread:
    """The existing buyers imported, then `steady_stream` sent at real speed from a thread (join it)."""
    settings = env.settings()
    records, existing = steady_stream(seconds, seed)
    asyncio.run(import_existing(settings, existing))
    sending = threading.Thread(target=lambda: asyncio.run(send_records(settings, records, real_clock=True)))
    sending.start()
    return sending


def alerts(env: Pipeline) -> list[dict[str, Any]]:
    result = env.promo("alerts", "list", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def start_detector_worker(env: Pipeline, workers: list[WorkerProcess]) -> tuple[WorkerProcess, Path]:
    """The one worker, with the sink, the detector (English messages) and the view, and its fault file."""
    fault = env.root / "fault"
    env.extra.update({"PROMO_ALERTS": "1", "PROMO_FAULT_FILE": str(fault), "PROMO_ALERTS_LANGUAGE": "en"})
    worker = WorkerProcess(env, "w", sink=True, view_port=free_port()).start()
    workers.append(worker)
    return worker, fault


def test_a_stall_raises_a_lag_alert_and_no_drop_alert_and_an_outage_a_drop_alert(
    env: Pipeline, workers: list[WorkerProcess]
) -> None:
    worker, fault = start_detector_worker(env, workers)
    sending = start_steady_stream(env, 190.0, seed=5)
    try:
        time.sleep(45.0)  # the detector has a starting point and steady traffic to judge by
        stalled_at = time.time()
        fault.write_text("stall-stage:aggregate\n")
        firing: list[dict[str, Any]] = []
        while time.time() < stalled_at + 80:
            assert worker.alive, worker.log()
            firing = get_json(f"http://127.0.0.1:{worker.view_port}/api/status").get("alerts", firing)
            time.sleep(2.0)
        assert [a["kind"] for a in firing] == ["lag"], firing  # shown while it fires
        alert_banner(worker.view_port, env.root / "war-room-lag-alert.png")
        released_at = time.time()
        fault.unlink()
        time.sleep(25.0)  # caught up; the stream still flows

        found = alerts(env)
        drops = [a for a in found if a["kind"] == "drop"]
        assert drops == [], drops  # neither while stalled nor while catching up
        (lag,) = [a for a in found if a["kind"] == "lag"]
        detected = _epoch(lag["detected_at"])
        # Lag passes 60 s about 60 s into the stall; evaluated every 10 s, sampled every second.
        assert stalled_at + 55 <= detected <= stalled_at + 60 + 10 + 3, (lag, stalled_at)
        assert lag["resolved_at"] is not None, lag
        assert _epoch(lag["resolved_at"]) <= released_at + 20 + 10, (lag, released_at)  # catch-up takes seconds
        assert (lag["campaign_id"], lag["channel"], lag["metric"]) == (None, None, None)
    finally:
        sending.join()
    # Then the traffic stops for good: a real outage of every metric, caught in seconds.
    assert_the_end_of_the_stream_is_an_outage(env)

    # A replay over what the live detector logged sees what it saw: the same incidents, ids and times.
    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        return a["id"], a["kind"], a["metric"], a["campaign_id"], a["channel"], a["started_at"], a["detected_at"]

    live = sorted(key(a) for a in alerts(env))
    iso = dt.datetime.fromtimestamp(stalled_at - 300, tz=dt.UTC).isoformat()
    replay = env.promo("alerts", "replay", "--from", iso, "--to", "+1m", "--json")
    assert replay.returncode == 0, replay.stderr
    replayed = sorted(key(json.loads(line)) for line in replay.stdout.splitlines())
    assert [k for k in replayed if k in live] == live, (live, replayed)  # (one more may fire meanwhile)

    ack = env.promo("alerts", "ack", lag["id"], "--by", "on-call")
    assert ack.returncode == 0, ack.stderr
    (now_lag,) = [a for a in alerts(env) if a["id"] == lag["id"]]
    assert now_lag["resolved_at"], now_lag  # the stall was over long ago: acknowledging it says so
    assert ack.stdout == (f"acknowledged {lag['id']} by on-call; it is resolved (since {now_lag['resolved_at']}): "
                          "nothing more is sent for it\n"), ack.stdout  # fmt: skip
    assert [a["acked_by"] for a in alerts(env) if a["id"] == lag["id"]] == ["on-call"]
    again = env.promo("alerts", "ack", lag["id"], "--by", "lead")  # through the worker that owns the store
    assert again.returncode == 0 and "had been acknowledged by on-call at " in again.stdout, again
    assert [a["acked_by"] for a in alerts(env) if a["id"] == lag["id"]] == ["lead"]
    bad = env.promo("alerts", "ack", "no-such-id")
    assert bad.returncode == 2 and "no alert 'no-such-id'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    silences_through_the_worker(env, worker)


def silences_through_the_worker(env: Pipeline, worker: WorkerProcess) -> None:
    """Silence, list, lift through the worker that owns the store; a bad silence is a 400 with one
    line (the CLI checks first, so it is posted here as another client would), never a 500; nor is a
    post that is not JSON at all."""
    from streams.cli.worker import _live_owner

    done = env.promo("alerts", "silence", "--scope", "total", "--until", "+1h", "--reason", "drill", "--by", "ops")
    assert done.returncode == 0, done.stderr
    silence_id = done.stdout.split("(id ")[1].rstrip(")\n")
    listed = [json.loads(line) for line in env.promo("alerts", "silences", "--json").stdout.splitlines()]
    assert [(x["id"], x["scope"], x["by"], x["active"]) for x in listed] == [(silence_id, "total", "ops", True)]
    assert env.promo("alerts", "unsilence", silence_id).returncode == 0
    again = env.promo("alerts", "unsilence", silence_id)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert again.stderr.startswith(f"promo: error: silence {silence_id!r} already ended at "), again.stderr
    store = env.settings().embedded_store
    assert store is not None
    owner = _live_owner(store)
    now = time.time()
    doc = {"kind": "silence", "metric": "", "campaign_id": "", "channel": "", "until": now + 99999999 * 86400,
           "reason": "x", "created_by": "x", "created_at": now}  # fmt: skip
    for change, message in (({}, "at most 7 days"), ({"until": now + 60, "channel": "wechat"}, "empty part")):
        request = urllib.request.Request(f"{owner}/api/alerts/silence", data=json.dumps({**doc, **change}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=30)
        assert exc.value.code == 400 and message in json.loads(exc.value.read())["error"]
    # Not JSON at all, on every page that takes a post: what is missing is said, never a 500.
    for page, code in (("ack", 404), ("silence", 400), ("unsilence", 404), ("plan", 400)):
        request = urllib.request.Request(f"{owner}/api/alerts/{page}", data=b"{not json", method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=30)
        assert exc.value.code == code and json.loads(exc.value.read())["error"], page
    # A plan through the worker: stored, and a campaign no event or import names is said.
    plan = env.root / "plan.csv"
    tomorrow = (time.time() // 86400 + 1) * 86400
    rows = [f"{dt.datetime.fromtimestamp(tomorrow + m * 60, dt.UTC):%Y-%m-%dT%H:%M:%SZ},orders,9,nope,"
            for m in range(30)]  # fmt: skip
    plan.write_text("minute,metric,expected,campaign_id,channel\n" + "\n".join(rows) + "\n")
    imported = env.promo("plan", "import", str(plan))
    assert imported.returncode == 0 and imported.stdout.startswith("plan imported: 1 series"), imported
    assert "campaign(s) 'nope' neither imported" in imported.stderr, imported.stderr
    # ... and read back by its version, as a replay reads the plan the live detector had then
    with urllib.request.urlopen(f"{owner}/api/alerts/plan", timeout=30) as answer:
        newest = json.loads(answer.read())
    assert newest["csv"] == plan.read_text() and newest["at_s"] > now, newest["at_s"]
    for at_s, csv_text in ((newest["at_s"], newest["csv"]), (newest["at_s"] - 0.001, None)):
        with urllib.request.urlopen(f"{owner}/api/alerts/plan?at_s={at_s}", timeout=30) as answer:
            assert json.loads(answer.read())["csv"] == csv_text, at_s
    # A typo or a bad value is refused, never answered as if absent (`sinse_s` listed every incident).
    for query in (
        "/api/alerts/plan?at_s=nan",
        "/api/alerts?sinse_s=1",
        "/api/alerts?firing=yes",
        "/api/alerts?source=nope",
        "/api/alerts?since_s=1&since_s=2",
        "/api/alerts/silences?all=1",
        "/api/alerts/plan?version=1",
        "/api/alerts/inputs?from_s=1&to_s=2&x=1",
        "/api/alerts/series?from_s=1&to_s=inf",
        "/api/alerts/replay-start?at_s=1&back_s=2&y=3",
    ):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{owner}{query}", timeout=30)
        assert exc.value.code == 400 and json.loads(exc.value.read())["error"], query
    with urllib.request.urlopen(f"{owner}/api/alerts?since_s=0&firing=0&source=live", timeout=30) as answer:
        assert isinstance(json.loads(answer.read()), list)
    assert "Traceback" not in worker.log(tail=10**8)


def assert_the_end_of_the_stream_is_an_outage(env: Pipeline) -> None:
    """The stream has just ended for good: a drop alert on the total's interactions in seconds, critical
    once its window is wholly past the end (the first evaluation may see the last seconds of traffic in
    its window and call it a warning; the same incident is raised to critical, never a second one)."""
    ended_at = time.time()
    outage: dict[str, dict[str, Any]] = {}

    def critical() -> bool:
        return outage.get("interactions", {}).get("severity") == "critical"

    while not critical() and time.time() < ended_at + 75:  # polled: caught in about 15 s
        time.sleep(3.0)
        outage = {a["metric"]: a for a in alerts(env) if a["kind"] == "drop" and a["campaign_id"] is None}
    assert "interactions" in outage, alerts(env)
    caught = _epoch(outage["interactions"]["detected_at"])
    assert ended_at - 5 <= caught <= ended_at + 40, (outage["interactions"], ended_at)
    assert critical(), outage["interactions"]
    total = [a for a in alerts(env) if a["kind"] == "drop" and a["campaign_id"] is None]
    assert sorted(a["metric"] for a in total) == sorted(set(a["metric"] for a in total)), total  # one each


def alert_banner(view: int, screenshot: Path) -> None:
    """The view shows the firing alert across the screen, under the pipeline's own banner."""
    from playwright.sync_api import expect

    with wall_page() as page:
        page.goto(f"http://127.0.0.1:{view}/d/promo-war-room")
        alerts = page.locator("#alerts")
        expect(alerts).to_be_visible(timeout=30_000)
        assert "pipeline behind" in alerts.inner_text(), alerts.inner_text()
        box = alerts.bounding_box()
        assert box is not None and box["width"] >= 1900
        page.screenshot(path=str(screenshot))


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
