"""The Kafka broker away, on a real pipeline: the real embedded broker (tansu, memory only), a
real worker with the sink and the local view, a real chdb store.

Paused (it keeps its memory), the broker is `broker_unreachable` on /api/status, in Grafana's
state panel (promo.pipeline_status) and in the browser's banner, red, with the command that fixes
it; resumed, the state clears and the worker goes on. Stopped and started again, a memory broker
has lost its log: the worker says so (`broker_reset`) and that it must be restarted with a fresh
store, and stays up to say it. Each change is one log line, not one per probe.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.dashboards.grafana import build_all
from streams.kafka import ensure_topics, free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate
from streams.worker.app import STATUS_CODES
from tests.integration.browser import wall_page

pytestmark = pytest.mark.integration
STATE_PANEL = next(p["id"] for p in build_all()["promo-health.json"]["panels"] if "Pipeline state" in p["title"])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own: it is paused and stopped here, which the session's must not be."""
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log").start()
    try:
        yield broker
    finally:
        broker.resume()
        broker.stop()


def get(port: int, path: str, query: dict[str, str] | None = None) -> Any:
    url = f"http://127.0.0.1:{port}{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def wait_for(what: str, check: Callable[[], Any], timeout: float = 45, worker: WorkerProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # the view not listening yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    tail = f"; the worker ({'alive' if worker.alive else 'exited'}) logged:\n{worker.log()}" if worker else ""
    raise AssertionError(f"{what}: still {last!r} after {timeout} s{tail}")


def wait_settled(worker: WorkerProcess) -> None:
    """Until what was sent is counted and written: a broker that vanishes under a batch in flight
    stops the worker by itself (the agent cannot send its output; test_stage_failure.py), which is
    not what these tests are about. A CI run under load once stopped the broker that early."""

    def settled() -> Any:
        first = worker.get("/api/totals")
        time.sleep(3)
        return first and worker.get("/api/totals") == first

    wait_for("the events counted and written", settled, timeout=90, worker=worker)


def first_kind(port: int) -> str:
    problems = get(port, "/api/status")["problems"]
    return str(problems[0]["kind"]) if problems else "ok"


def _running_worker(broker: EmbeddedBroker, tmp_path: Path, seed: int) -> tuple[WorkerProcess, int]:
    """A worker with the sink and the view on `broker`, clean, that has read 300 events: it and its view port."""
    env = Pipeline(broker.url, tmp_path, partitions=2)
    settings = env.settings()
    asyncio.run(ensure_topics(settings))
    view = free_port()
    worker = WorkerProcess(env, "w", sink=True, view_port=view).start()
    try:
        wait_for("the worker's first clean status", lambda: get(view, "/api/status")["ok"], timeout=90)
        sim = generate(SimConfig(events=300, seed=seed, partitions=2, duration_s=1.0))
        asyncio.run(send_records(settings, sim.records, paced=False))
    except BaseException:
        worker.kill()
        raise
    return worker, view


def test_the_worker_says_when_the_broker_is_away_and_when_it_lost_its_log(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    worker, view = _running_worker(own_broker, tmp_path, seed=3)  # offsets past 0: a log to lose
    try:
        # Paused: the broker accepts connections and never answers.
        own_broker.pause()
        wait_for("broker_unreachable", lambda: first_kind(view) == "broker_unreachable")
        problem = get(view, "/api/status")["problems"][0]
        assert "promo broker" in problem["message"] and own_broker.bootstrap in problem["message"], problem
        assert problem["since_ms"] > 0 and problem["detail"]
        # Grafana's state panel reads the heartbeat the worker writes (the store is fine meanwhile).
        state = {"from": "now-1h", "to": "now"}
        wait_for(
            "the state panel at 'broker unreachable'",
            lambda: (
                get(view, f"/api/panel/promo-health/{STATE_PANEL}", state)["rows"]
                == [{"state": STATUS_CODES["broker_unreachable"]}]
            ),
        )
        # The banner, red and full width, as the wall shows it.
        banner_of(view, "broker_unreachable", "promo broker", tmp_path / "war-room-broker-down.png")
        time.sleep(10)  # five more failed probes: still one log line
        own_broker.resume()
        wait_for("back to ok", lambda: first_kind(view) == "ok")
        log = worker.log(tail=1_000_000)
        failing = [line for line in log.splitlines() if "reaching the Kafka broker" in line]
        assert len(failing) == 2, failing  # failing, recovered: nothing per probe
        assert "failing" in failing[0] and "promo broker" in failing[0] and "recovered" in failing[1]
        assert "Unable connect to" not in log

        # Stopped and started again: a memory broker comes back empty, the worker's state is the old log's.
        wait_settled(worker)  # the batches the pause held back, done first
        own_broker.stop()
        wait_for("broker_unreachable again", lambda: first_kind(view) == "broker_unreachable", worker=worker)
        own_broker.start()
        wait_for("broker_reset", lambda: first_kind(view) == "broker_reset", worker=worker)
        problem = get(view, "/api/status")["problems"][0]
        assert "restart this worker with a fresh store" in problem["message"], problem
        time.sleep(5)
        assert first_kind(view) == "broker_reset" and worker.alive, worker.log()  # final, and said, not crashed
        assert "came back without its log" in worker.log(tail=1_000_000)
    finally:
        worker.stop()


def banner_of(view: int, kind: str, text: str, screenshot: Path) -> None:
    from playwright.sync_api import expect

    with wall_page() as page:
        page.goto(f"http://127.0.0.1:{view}/d/promo-war-room")
        banner = page.locator("#banner")
        expect(banner).to_be_visible(timeout=30_000)
        assert banner.get_attribute("data-kind") == kind
        assert text in banner.inner_text() and "Broker unreachable" in banner.inner_text()
        box = banner.bounding_box()
        assert box is not None and box["width"] >= 1900  # across the whole screen
        color = banner.evaluate("node => getComputedStyle(node).backgroundColor")
        assert color == "rgb(196, 22, 42)", color  # the red of the failures
        # The store is fine meanwhile: the panels still draw the numbers it holds, under the banner.
        expect(page.locator('section.panel[data-state="loading"]')).to_have_count(0, timeout=30_000)
        page.screenshot(path=str(screenshot))
        print(f"\nbroker-down screenshot: {screenshot}")


def test_a_worker_whose_broker_is_gone_still_stops_when_told(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """An outside probe: 40 s after its broker stopped, a worker ignored SIGTERM (and Ctrl-C) until
    SIGKILL: stopping, aiokafka's producer waits for the broker to take what it holds, forever. Now
    the flush is bounded and a stop that still hangs ends the process with one line and status 1."""
    worker, view = _running_worker(own_broker, tmp_path, seed=4)
    try:
        wait_settled(worker)
        own_broker.stop()
        wait_for("broker_unreachable", lambda: first_kind(view) == "broker_unreachable")
        time.sleep(35)  # what the worker sends meanwhile (heartbeats) piles up in its producer
        assert worker.alive
        code = worker.stop(timeout=150)  # SIGTERM; SIGKILL (-9) if it still runs then
        log = worker.log(tail=1_000_000)
        assert code in (0, 1), (code, log[-3000:])
        if code == 1:
            assert "promo: error: the worker did not stop within 60 s" in log, log[-3000:]
        assert "the unsent ones are dropped" in log or code == 0, log[-3000:]
    finally:
        worker.kill()
