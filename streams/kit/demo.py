"""`promo demo`: the embedded broker, one worker and the simulator, with a live war-room summary.

Everything it starts it stops on Ctrl-C (or SIGTERM). The broker keeps its data in memory, so the
demo starts from an empty store each time: a store must match the broker log it was written from.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.contract.events import SOCIAL_CHANNELS
from streams.errors import BrokerError
from streams.kafka import ensure_topics, port_is_free
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth
from streams.users import import_existing

CLEAR = "\x1b[H\x1b[2J"


def _get(url: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:  # noqa: S310 - our own URL
        return json.loads(resp.read())


def summarize(rows: list[dict[str, Any]], health: dict[str, Any], fresh: dict[str, Any], started: float) -> str:
    """The terminal war-room view: per-campaign GMV, orders, new users and their channel split."""
    by_campaign: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_campaign[row["campaign_id"]].append(row)
    total_gmv = sum(r["gmv_fen"] for r in rows) / 100
    total_new = sum(r["new_users"] for r in rows)
    social_new = sum(r["new_users"] for r in rows if r["channel"] in SOCIAL_CHANNELS)
    lines = [
        "大促作战室 / War room — Double 11 (simulated)        Ctrl-C to stop",
        f"GMV ¥{total_gmv:,.2f}   orders {sum(r['orders'] for r in rows):,}   "
        f"new ordering users {total_new:,} ({100 * social_new / total_new if total_new else 0:.0f}% via "
        f"WeChat/QQ/Jingxi)   interactions {sum(r['interactions'] for r in rows):,}",
        "",
        f"{'campaign':<22}{'GMV ¥':>16}{'orders':>9}{'new users':>11}{'partic.':>9}{'interact.':>11}"
        "  new users by channel",
    ]
    ranked = sorted(by_campaign.items(), key=lambda kv: -sum(r["gmv_fen"] for r in kv[1]))
    for campaign, crow in ranked:
        gmv = sum(r["gmv_fen"] for r in crow) / 100
        new = sum(r["new_users"] for r in crow)
        split = "  ".join(
            f"{r['channel']} {r['new_users']}" for r in sorted(crow, key=lambda r: -r["new_users"]) if r["new_users"]
        )
        pad = 22 - sum(2 if ord(c) > 0x2E80 else 1 for c in campaign)
        lines.append(
            f"{campaign}{' ' * max(pad, 1)}{gmv:>16,.2f}{sum(r['orders'] for r in crow):>9,}{new:>11,}"
            f"{sum(r['participants'] for r in crow):>9,}{sum(r['interactions'] for r in crow):>11,}  {split}"
        )
    sink = health.get("sink", {})
    ingest = health.get("ingest", {})
    elapsed = max(time.time() - started, 1e-6)
    lines += [
        "",
        f"freshness: event→ClickHouse p50 {fresh.get('lag_p50_ms', '-')} ms, p99 {fresh.get('lag_p99_ms', '-')} ms"
        f"   last write {sink.get('last_write_ms', 0):.0f} ms   events in {ingest.get('elements', 0):,}"
        f" ({ingest.get('elements', 0) / elapsed:,.0f}/s)   dead letters {ingest.get('dead', 0):,}"
        f"   sink {'OK' if sink.get('ok', True) else 'FAILING: ' + str(sink.get('last_error', ''))}",
    ]
    return "\n".join(lines)


def run_demo(
    *, port: int, web_port: int, rate: float, duration: float, data_dir: Path, once: bool, view: Settings | None = None
) -> None:
    """Run until Ctrl-C (or, with `once`, until the totals reach the truth). `view` holds the local
    view's host, port (0: none) and token, passed on to the worker."""
    if not port_is_free("127.0.0.1", web_port):
        raise BrokerError(f"port 127.0.0.1:{web_port} is in use; pick another with --web-port")
    view_port = view.view_port if view is not None else 0
    view_env = {"PROMO_VIEW_PORT": str(view_port)}
    if view is not None and view_port:
        view_env |= {"PROMO_VIEW_HOST": view.view_host, "PROMO_VIEW_TOKEN": view.view_token.value}
    data_dir.mkdir(parents=True, exist_ok=True)
    # A fresh in-memory broker needs a fresh store and fresh state snapshots.
    shutil.rmtree(data_dir / "store", ignore_errors=True)
    shutil.rmtree(data_dir / "state", ignore_errors=True)
    shutil.rmtree(data_dir / "alerts", ignore_errors=True)  # the detector's state belongs to the old store
    # The drop detector runs in the demo's worker (docs/ALERTS.md); robots from PROMO_NOTIFY_* if set.
    pipeline = Pipeline(f"kafka://127.0.0.1:{port}", data_dir.resolve(), prefix="promo.",
                        extra={"PROMO_APP_ID": "promo-demo", "PROMO_WEB_PORT": str(web_port), "PROMO_ALERTS": "1",
                               **view_env, **_alert_env()})  # fmt: skip
    settings = pipeline.settings()
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    broker = EmbeddedBroker(port, log_path=data_dir / "broker.log").start()
    worker = WorkerProcess(pipeline, "worker", sink=True, loglevel="warn", port=web_port, view_port=view_port)
    view_url = settings.view_url
    try:
        asyncio.run(ensure_topics(settings))
        worker.start()
        if view_url is not None:
            token = "  (needs the token of PROMO_VIEW_TOKEN)" if settings.view_token.value else ""
            print(f"war room dashboards: {view_url}{token}", flush=True)
        print(f"JSON: {settings.web_url}/api/totals  (health: {settings.web_url}/health)", flush=True)
        print(f"broker up on 127.0.0.1:{port} (in memory); starting the worker: opening ClickHouse (chdb), "
              "joining the consumer group …", flush=True)  # fmt: skip
        # The sale's shape from two hours ago, compressed; send_records(real_clock=True) moves every
        # event to the moment it is sent, so the screens show it arriving now.
        start_ms = int(time.time() * 1000) - 7_200_000
        config = SimConfig(events=int(rate * duration), duration_s=duration, seed=11,
                           partitions=settings.partitions, start_ms=start_ms)  # fmt: skip
        sim = generate(config)
        sent: list[Any] = []
        done = threading.Event()

        def produce() -> None:
            async def go() -> None:
                await import_existing(settings, sim.existing_buyers)
                sent.extend(await send_records(settings, sim.records, paced=True, real_clock=True))

            try:
                asyncio.run(go())
            finally:
                done.set()

        threading.Thread(target=produce, name="simulator", daemon=True).start()
        started = time.time()
        expected: list[dict[str, Any]] | None = None
        deadline = 0.0
        ready = first_numbers = False
        while True:
            if not worker.alive:
                raise BrokerError(f"the worker exited; see {data_dir / 'worker.log'}")
            try:
                rows = _get(f"{settings.web_url}/api/totals")
                health = _get(f"{settings.web_url}/health")
                fresh = _get(f"{settings.web_url}/api/freshness")
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(1)
                continue
            # Progress until the first screen: what it is waiting for, and how long each step took.
            if not ready:
                ready = True
                print(f"worker ready after {time.time() - started:.0f} s; the simulator is sending", flush=True)
            if rows and not first_numbers:
                first_numbers = True
                print(f"first numbers in {time.time() - started:.0f} s", flush=True)
            if once:
                if done.is_set() and expected is None:
                    expected = compute_truth(
                        sent, sim.existing_buyers, lateness_ms=settings.allowed_lateness_ms,
                        horizon_ms=settings.dedup_horizon_ms, future_ms=settings.future_limit_ms,
                    ).totals  # fmt: skip
                    deadline = time.monotonic() + 120
                if expected is not None and (rows == expected or time.monotonic() > deadline):
                    print(summarize(rows, health, fresh, started))
                    if rows != expected:
                        raise BrokerError("the totals did not reach the simulator's ground truth in 120 s")
                    print("\ntotals match the simulator's ground truth: yes")
                    if view_url is not None:
                        boards = _get(f"{view_url}api/dashboards", settings.view_token.value)
                        print(f"dashboards served at {view_url}: {', '.join(b['title'] for b in boards)}")
                    return
            else:
                screen = summarize(rows, health, fresh, started)
                print(CLEAR + screen + (f"\ndashboards: {view_url}" if view_url else ""), flush=True)
            time.sleep(2)
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short: `make demo` passes the one it got
        # on to the demo, which then stopped in worker.stop() and left the broker running (2026-12-06).
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            worker.stop()
        finally:
            broker.stop()
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)


def _alert_env() -> dict[str, str]:
    """The robots, the language and the dashboard link of the detector's messages, from the demo's
    own environment (the pipeline's environment is otherwise built afresh)."""
    keep = ("PROMO_NOTIFY_", "PROMO_ALERTS_LANGUAGE", "PROMO_DASHBOARD_URL")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}
