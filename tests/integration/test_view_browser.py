"""The local view in a real browser: headless Chromium (Debian's) on a running pipeline.

The simulator feeds a real worker; once its totals equal the oracle's, Chromium opens the war
room, waits until every panel has drawn, and the GMV it *displays* must be the truth to the fen.
A screenshot is kept (its path is printed). Playwright drives /usr/bin/chromium and downloads no
browser; without chromium this test fails and says how to get it (`make install` installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.dashboards.grafana import build_all
from streams.kafka import ensure_topics, free_port
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth
from streams.users import import_existing
from tests.integration.browser import wall_page
from tests.integration.conftest import project, wait_for_columns

pytestmark = pytest.mark.integration
WAR_ROOM = build_all()["promo-war-room.json"]


def panel_id(english: str) -> int:
    found = [p["id"] for p in WAR_ROOM["panels"] if p["title"].split(" / ", 1)[-1] == english]
    assert len(found) == 1, english
    return int(found[0])


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def displayed_number(text: str) -> Decimal:
    """ "¥37,345.50" or "275" as shown, back to a number; anything else fails the test."""
    digits = text.strip().removeprefix("¥").replace(",", "")
    assert digits and all(c.isdigit() or c == "." for c in digits), f"not a displayed number: {text!r}"
    return Decimal(digits)


def test_the_war_room_in_chromium_shows_the_true_gmv(
    env: Pipeline, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    config = SimConfig(events=6000, seed=8, partitions=env.partitions, duration_s=5.0)
    sim = generate(config)
    settings = env.settings()
    # Topics first, as `promo demo` does (this test is about the view, not topic creation).
    asyncio.run(ensure_topics(settings))
    view_port = free_port()
    fault = tmp_path / "fault"  # streams/lab/faults.py: "fail" makes the worker's ClickHouse writes fail
    # PROMO_BEHIND_EVENTS=100: a held stage makes the pipeline "behind" as soon as that much waits.
    worker = WorkerProcess(env, "wall", sink=True, view_port=view_port).start(
        env={"PROMO_FAULT_FILE": str(fault), "PROMO_BEHIND_EVENTS": "100"}
    )
    workers.append(worker)

    async def go() -> list[Any]:
        await import_existing(settings, sim.existing_buyers)
        return await send_records(settings, sim.records, paced=False)

    truth = compute_truth(asyncio.run(go()), sim.existing_buyers)
    rows = wait_for_columns(worker, truth.totals, ("gmv_fen", "orders"))
    assert project(rows, ("gmv_fen", "orders")) == project(truth.totals, ("gmv_fen", "orders")), worker.log()
    gmv = Decimal(sum(int(r["gmv_fen"]) for r in truth.totals)) / 100
    orders = sum(int(r["orders"]) for r in truth.totals)
    assert gmv > 0 and orders > 0

    # The simulated sale is 2025-11-11 00:00-02:00 (Shanghai); the screen shows its last hour, as the
    # default range shows the last hour of today's, given as a Grafana URL would. The tiles beside
    # the charts count the whole business day, so they hold the whole truth.
    hour = 3_600_000
    start = config.start_ms + hour
    url = f"http://127.0.0.1:{view_port}/d/promo-war-room?from={start}&to={start + hour}"
    screenshot = tmp_path / "war-room.png"
    page_errors: list[str] = []
    with wall_page() as page:
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(url)
        panels = page.locator("section.panel")
        expect(panels).to_have_count(len(WAR_ROOM["panels"]), timeout=30_000)
        expect(page.locator('section.panel[data-state="loading"]')).to_have_count(0, timeout=60_000)
        failing = page.locator('section.panel[data-state="error"]')
        errors = [failing.nth(i).get_attribute("data-error") for i in range(failing.count())]
        assert errors == [], errors

        shown = page.locator(f'section.panel[data-panel-id="{panel_id("GMV today")}"] .stat-value').inner_text()
        assert shown.startswith("¥"), shown
        assert displayed_number(shown) == gmv, f"the page shows {shown}, the truth is ¥{gmv:,.2f}"
        shown_orders = page.locator(f'section.panel[data-panel-id="{panel_id("Orders today")}"] .stat-value')
        assert displayed_number(shown_orders.inner_text()) == orders
        # The charts drew (ECharts renders to canvas) and the leaderboard lists every campaign.
        for kind in ("timeseries", "barchart"):
            assert page.locator(f'section.panel[data-type="{kind}"] canvas').count() >= 2, kind
        campaigns = {str(r["campaign_id"]) for r in truth.totals}
        leaders = panel_id("Campaign leaderboard today")
        leaderboard = page.locator(f'section.panel[data-panel-id="{leaders}"] tbody tr')
        assert leaderboard.count() == len(campaigns)
        expect(page.locator("#banner")).to_be_hidden()  # all is well: no banner
        page.screenshot(path=str(screenshot))

        # ClickHouse stops taking writes: a full-width banner says so, from across the room.
        fault.write_text("fail")
        more = generate(SimConfig(events=300, seed=9, partitions=env.partitions, duration_s=1.0))
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
            pool.submit(asyncio.run, send_records(settings, more.records, paced=False)).result()
        banner = page.locator("#banner")
        expect(banner).to_be_visible(timeout=30_000)
        assert banner.get_attribute("data-kind") == "store_unreachable"
        assert "ClickHouse does not answer" in banner.inner_text()
        page.screenshot(path=str(tmp_path / "war-room-store-down.png"))
        # ... and on the index, the page `promo demo` prints (an outside probe: it had no banner at all)
        index = page.context.browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[union-attr]
        index.on("pageerror", lambda exc: page_errors.append(str(exc)))
        index.goto(f"http://127.0.0.1:{view_port}/")
        expect(index.locator("#banner")).to_be_visible(timeout=30_000)
        assert index.locator("#banner").get_attribute("data-kind") == "store_unreachable"
        index.close()
        fault.unlink()  # it answers again: the banner goes
        expect(banner).to_be_hidden(timeout=30_000)

        # Stage 1 held while events arrive: the pipeline is behind, and the banner turns amber.
        fault.write_text("stall-stage:ingest")
        later = generate(SimConfig(events=600, seed=10, partitions=env.partitions, duration_s=1.0))
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, send_records(settings, later.records, paced=False)).result()
        expect(banner).to_be_visible(timeout=30_000)
        assert banner.get_attribute("data-kind") == "behind", banner.inner_text()
        assert "messages wait (more than 100)" in banner.inner_text()
        page.screenshot(path=str(tmp_path / "war-room-behind.png"))
        fault.unlink()
        expect(banner).to_be_hidden(timeout=30_000)

        # The worker frozen (SIGSTOP): it still takes connections and answers nothing. The screen says so
        # within seconds, and the banner goes when it wakes (an outside probe: one hung request held every
        # later refresh, and the page showed its last numbers as "0.8 s old", with no banner, for 90 s).
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGSTOP)
        try:
            expect(banner).to_be_visible(timeout=20_000)
            assert banner.get_attribute("data-kind") == "worker_unreachable", banner.inner_text()
            assert "no answer within 5 s" in banner.inner_text(), banner.inner_text()
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
        expect(banner).to_be_hidden(timeout=30_000)

        # The drill-down for a campaign the range does not know draws zeros: the bar says so beside it
        # (a typo in a shared link read as a campaign that sold nothing); a real one carries no warning.
        drill = f"http://127.0.0.1:{view_port}/d/promo-campaign?from={config.start_ms}&to={config.start_ms + 2 * hour}"
        page.goto(drill + "&var-campaign=no-such-campaign")
        warning = page.locator("#var-warning-campaign")
        expect(warning).to_be_visible(timeout=30_000)
        assert "no-such-campaign" in warning.inner_text() and "no counts in this range" in warning.inner_text()
        known = sorted(campaigns)[0]
        page.goto(drill + f"&var-campaign={known}")
        expect(page.locator("#var-campaign")).to_have_value(known, timeout=30_000)
        expect(page.locator("#var-warning-campaign")).to_have_count(1)  # there, and hidden
        expect(page.locator("#var-warning-campaign")).to_be_hidden()
        # A campaign whose first counts come while the screen shows it: the warning goes by itself.
        page.goto(drill + "&var-campaign=late-campaign")
        expect(page.locator("#var-warning-campaign")).to_be_visible(timeout=30_000)
        last_click = [r for r in sim.records if r.kind == "clicks"][-1]
        event = json.loads(last_click.value)
        event.update(campaign_id="late-campaign", event_id="late-campaign-first")
        first = replace(last_click, value=json.dumps(event).encode())
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, send_records(settings, [first], paced=False)).result()
        expect(page.locator("#var-warning-campaign")).to_be_hidden(timeout=60_000)
        expect(page.locator("#var-campaign")).to_have_value("late-campaign")

        # A bad range is no blank page: every panel says what is wrong, in the panel.
        page.goto(url.replace(f"from={start}", "from=yesterday"))
        expect(page.locator('section.panel[data-state="error"]')).to_have_count(len(WAR_ROOM["panels"]))
        message = page.locator(f'section.panel[data-panel-id="{panel_id("GMV today")}"] .panel-error').inner_text()
        assert "'yesterday' is neither epoch milliseconds" in message, message
    print(f"\nwar room screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert page_errors == [], page_errors

    assert worker.stop() == 0, worker.log()
    assert not port_answers(view_port), f"the view's port {view_port} still answers after the worker stopped"
