"""The local view's HTTP API on a real pipeline: real broker, real worker, real chdb store.

One worker with the sink and the view (token-protected, on loopback) is fed a seeded simulation;
once its totals equal the oracle's, the panels must show the same numbers, every panel of every
dashboard must answer, and no `campaign` value can change the SQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.dashboards.grafana import SETTLE_S, build_all
from streams.kafka import ensure_topics, free_port
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline, WorkerProcess
from streams.kit.producer import send_records
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import Truth, compute_truth
from streams.users import import_existing
from tests.integration.conftest import project, wait_for_columns

pytestmark = pytest.mark.integration
TOKEN = "view-test-token-5f0c2a9e41"
SHOWN = ("gmv_fen", "orders", "new_users")  # what the panels under test show
HOSTILE = [
    "双11'); DROP TABLE promo.facts_minute; --\\",
    "x' OR '1'='1",
    "' OR 1=1 --",
    "{campaign:String}",
    "${campaign}",
    "%27) OR 1=1 --",
    "\\' OR sleep(3) --",
]


@dataclass
class Served:
    worker: WorkerProcess
    truth: Truth
    window: dict[str, str]  # from/to in epoch ms around the simulated sale

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.worker.view_port}"

    def get(
        self, path: str, query: dict[str, str] | None = None, *, token: str | None = TOKEN, method: str = "GET"
    ) -> tuple[int, Any, dict[str, str]]:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, _body(resp.read(), resp.headers.get_content_type()), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _body(exc.read(), exc.headers.get_content_type()), dict(exc.headers)

    def panel(self, uid: str, english: str, **query: str) -> dict[str, Any]:
        status, doc, _ = self.get(f"/api/panel/{uid}/{panel_id(uid, english)}", {**self.window, **query})
        assert status == 200, doc
        assert isinstance(doc, dict)
        return doc


def _body(raw: bytes, content_type: str) -> Any:
    return json.loads(raw) if content_type == "application/json" else raw.decode("utf-8")


def panel_id(uid: str, english: str) -> int:
    panels = build_all()[f"{uid}.json"]["panels"]
    found = [p["id"] for p in panels if p["title"].split(" / ", 1)[-1] == english]
    assert len(found) == 1, english
    return int(found[0])


def truth_sum(truth: Truth, column: str, campaign: str | None = None) -> int:
    return sum(int(r[column]) for r in truth.totals if campaign is None or r["campaign_id"] == campaign)


@pytest.fixture(scope="module")
def served(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = Pipeline(broker.url, tmp_path_factory.mktemp("view-api"), extra={"PROMO_VIEW_TOKEN": TOKEN})
    config = SimConfig(events=8000, seed=21, partitions=env.partitions, duration_s=5.0)
    sim = generate(config)
    settings = env.settings()
    asyncio.run(ensure_topics(settings))  # first, as `promo demo` does
    worker = WorkerProcess(env, "viewer", sink=True, view_port=free_port()).start()
    try:

        async def go() -> list[Any]:
            await import_existing(settings, sim.existing_buyers)
            return await send_records(settings, sim.records, paced=False)

        truth = compute_truth(asyncio.run(go()), sim.existing_buyers)
        rows = wait_for_columns(worker, truth.totals, SHOWN)
        assert project(rows, SHOWN) == project(truth.totals, SHOWN), worker.log()
        day, hour = 86_400_000, 3_600_000
        # To the evening of the sale's business day: the tiles count the day the range ends in.
        window = {"from": str(config.start_ms - day), "to": str(config.start_ms + 20 * hour)}
        yield Served(worker, truth, window)
    finally:
        worker.stop()


def test_panels_show_the_truth(served: Served) -> None:
    truth = served.truth
    gmv = served.panel("promo-war-room", "GMV today")
    assert gmv["rows"] == [{"gmv_yuan": pytest.approx(truth_sum(truth, "gmv_fen") / 100, abs=1e-9)}]
    assert gmv["range"]["from"] == int(served.window["from"]) and gmv["range"]["to"] == int(served.window["to"])
    assert served.panel("promo-war-room", "Orders today")["rows"] == [{"orders": truth_sum(truth, "orders")}]
    new_users = served.panel("promo-war-room", "New ordering users today")["rows"]
    assert new_users == [{"new_users": truth_sum(truth, "new_users")}]
    board = served.panel("promo-war-room", "Campaign leaderboard today")
    assert {r["campaign_id"]: r["orders"] for r in board["rows"]} == {
        c: truth_sum(truth, "orders", c) for c in {str(r["campaign_id"]) for r in truth.totals}
    }
    series = served.panel("promo-war-room", "Orders per minute (event time, selected range)")
    assert [s["field"] for s in series["series"]] == ["orders", "new_users"]
    per_minute = sum(p[1] for p in series["series"][0]["points"]) * series["range"]["interval_s"] / 60
    assert per_minute == pytest.approx(truth_sum(truth, "orders"))
    # The drill-down of the biggest campaign, its variable bound as a parameter.
    campaigns = sorted({str(r["campaign_id"]) for r in truth.totals})
    biggest = max(campaigns, key=lambda c: truth_sum(truth, "gmv_fen", c))
    status, listed, _ = served.get("/api/variables/promo-campaign/campaign", served.window)
    by_gmv = sorted(campaigns, key=lambda c: (-truth_sum(truth, "gmv_fen", c), c))
    assert status == 200 and listed == {"values": by_gmv} and by_gmv[0] == biggest  # the default is the biggest
    drill = served.panel("promo-campaign", "GMV today", campaign=biggest)
    assert drill["rows"] == [{"gmv_yuan": pytest.approx(truth_sum(truth, "gmv_fen", biggest) / 100, abs=1e-9)}]
    assert truth_sum(truth, "gmv_fen", biggest) < truth_sum(truth, "gmv_fen")  # a campaign is not everything


def test_the_default_range_is_the_last_hour(served: Served) -> None:
    """By default the charts span the last hour in one-minute buckets; the simulated sale is in
    2025, so neither they nor today's tiles hold any of it."""
    status, doc, _ = served.get("/api/board/promo-war-room")
    assert status == 200, doc
    orders = doc["panels"][str(panel_id("promo-war-room", "Orders per minute (event time, selected range)"))]
    assert orders["range"]["to"] - orders["range"]["from"] == 3_600_000 and orders["range"]["interval_s"] == 60
    assert abs(orders["range"]["to"] - doc["as_of_ms"]) < 5_000
    assert doc["panels"][str(panel_id("promo-war-room", "GMV today"))]["rows"] == [{"gmv_yuan": 0.0}]


def test_the_tiles_hold_the_day_beside_the_hours_charts(served: Served) -> None:
    """The sale's second hour selected: the charts hold that hour, the tiles and the leaderboard
    beside them the whole business day (00:00 Shanghai to the range's end), from one read."""
    start = int(served.window["from"]) + 86_400_000  # the sale's start, 2025-11-11 00:00 Shanghai
    hour = {"from": str(start + 3_600_000), "to": str(start + 7_200_000)}
    status, doc, _ = served.get("/api/board/promo-war-room", hour)
    assert status == 200, doc
    panels = doc["panels"]
    orders = truth_sum(served.truth, "orders")
    assert panels[str(panel_id("promo-war-room", "Orders today"))]["rows"] == [{"orders": orders}]
    board = panels[str(panel_id("promo-war-room", "Campaign leaderboard today"))]["rows"]
    assert sum(r["orders"] for r in board) == orders
    series = panels[str(panel_id("promo-war-room", "Orders per minute (event time, selected range)"))]
    points = series["series"][0]["points"]
    assert all(int(hour["from"]) <= t < int(hour["to"]) for t, _ in points)
    assert 0 < sum(v for _, v in points) < orders  # the hour's, a part of the day


def test_every_panel_of_every_dashboard_answers_with_data(served: Served) -> None:
    campaign = str(served.truth.totals[0]["campaign_id"])
    for name, board in build_all().items():
        variables = {"campaign": campaign} if board["templating"]["list"] else {}
        for panel in board["panels"]:
            # Events are in the simulated sale (2025); the sink's log of writes is from just now
            # (and $__timeFilter has whole seconds, as in Grafana: a write in the current second
            # shows from the next one, hence the minute to spare).
            writes = "promo.sink_log" in panel["targets"][0]["rawSql"]
            window = {"from": "now-1h", "to": "now+1m"} if writes else served.window
            query = {**window, **variables}
            status, doc, _ = served.get(f"/api/panel/{board['uid']}/{panel['id']}", query)
            if writes and panel["type"] == "timeseries":
                # A series draws a minute once it is over (grafana.SETTLED_BUCKETS): the writes of
                # just now show when their minute ends.
                deadline = time.monotonic() + 60 + SETTLE_S + 10
                while not doc.get("series") and time.monotonic() < deadline:
                    time.sleep(1)
                    status, doc, _ = served.get(f"/api/panel/{board['uid']}/{panel['id']}", query)
            assert status == 200, (name, panel["title"], doc)
            if "promo.alerts" in panel["targets"][0]["rawSql"]:
                # No detector runs here, so no incident: an answer with no rows (test_dashboards.py
                # has one firing and checks its row).
                assert doc["rows"] == [] and "error" not in doc, (name, panel["title"], doc)
                continue
            assert doc["rows"] and doc["columns"], (name, panel["title"], doc)
            if panel["type"] == "timeseries":
                assert doc["series"] and all(s["points"] for s in doc["series"]), (name, panel["title"])


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_campaign_cannot_break_the_sql(served: Served, hostile: str) -> None:
    orders = served.panel("promo-campaign", "Orders today", campaign=hostile)
    assert orders["rows"] == [{"orders": 0}]  # bound as a value: matches no campaign, and no error
    entries = served.panel("promo-campaign", "Entry points today", campaign=hostile)
    assert entries["rows"] == []
    # The store is untouched: its totals are still the truth.
    assert project(served.worker.get("/api/totals"), SHOWN) == project(served.truth.totals, SHOWN)


def test_what_the_api_refuses(served: Served) -> None:
    gmv = f"/api/panel/promo-war-room/{panel_id('promo-war-room', 'GMV today')}"
    refused = [
        (gmv, {"from": "yesterday"}, 400, "neither epoch milliseconds"),
        (gmv, {"from": "now", "to": "now-1h"}, 400, "empty or inverted"),
        (gmv, {"form": "now-1h"}, 400, "unknown parameter 'form'"),
        (gmv, {"from": "now-1d/d; DROP TABLE promo.facts_minute"}, 400, "neither epoch milliseconds"),
        ("/api/panel/promo-campaign/1", {}, 400, "campaign is required"),
        ("/api/panel/promo-campaign/1", {"campaign": "a\x00b"}, 400, "control character"),
        ("/api/panel/promo-war-room/99", {}, 404, "has no panel '99'"),
        ("/api/panel/promo-war-room/x", {}, 404, "has no panel 'x'"),
        ("/api/panel/nope/1", {}, 404, "no dashboard 'nope'"),
        ("/api/nothing", {}, 404, "Not Found"),
    ]
    for path, query, status, message in refused:
        got, doc, _ = served.get(path, query)
        assert (got, message in doc.get("error", "")) == (status, True), (path, query, doc)
    got, doc, _ = served.get(gmv + "?from=now-1h&from=now-2h", token=TOKEN)
    assert got == 400 and "more than once" in doc["error"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        got, doc, headers = served.get(gmv, method=method)
        assert (got, headers.get("Allow")) == (405, "GET, HEAD"), method


def test_the_token_is_required(served: Served) -> None:
    gmv = f"/api/panel/promo-war-room/{panel_id('promo-war-room', 'GMV today')}"
    for path in ("/", "/d/promo-war-room", "/api/dashboards", gmv):
        status, doc, headers = served.get(path, token=None)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), (path, doc)
        assert served.get(path, token="wrong-token-but-long-enough")[0] == 401, path
    assert served.get(gmv, {"token": TOKEN}, token=None)[0] == 200
    assert served.get("/api/dashboards", token=TOKEN)[0] == 200


def test_pages_and_the_chart_library(served: Served) -> None:
    status, page, headers = served.get("/d/promo-war-room")
    assert status == 200 and "/static/vendor/echarts/echarts.common.min.js" in page
    assert headers["X-Content-Type-Options"] == "nosniff" and "default-src 'self'" in headers["Content-Security-Policy"]
    status, index, _ = served.get("/")
    assert status == 200 and "/static/view.js" in index
    assert served.get("/d/nope")[0] == 404
    # The library is public code: served without the token, as shipped in the package.
    status, library, _ = served.get("/static/vendor/echarts/echarts.common.min.js", token=None)
    assert status == 200 and 'version:"6.1.0"' in library
    assert served.get("/static/../server.py")[0] == 404
    status, boards, _ = served.get("/api/dashboards")
    assert [b["uid"] for b in boards] == ["promo-war-room", "promo-campaign", "promo-health"]
    status, board, _ = served.get("/api/dashboards/promo-war-room")
    assert board == build_all()["promo-war-room.json"]


def test_a_whole_board_from_one_read(served: Served) -> None:
    """/api/board: every panel of the war room from one read of the store; the tiles and the
    leaderboard agree, and the read says when it was taken."""
    status, doc, _ = served.get("/api/board/promo-war-room", served.window)
    assert status == 200, doc
    panels = doc["panels"]
    assert set(panels) == {str(p["id"]) for p in build_all()["promo-war-room.json"]["panels"]}
    assert not [p for p in panels.values() if "error" in p]
    gmv = panels[str(panel_id("promo-war-room", "GMV today"))]["rows"][0]["gmv_yuan"]
    orders = panels[str(panel_id("promo-war-room", "Orders today"))]["rows"][0]["orders"]
    board = panels[str(panel_id("promo-war-room", "Campaign leaderboard today"))]["rows"]
    assert gmv == pytest.approx(sum(r["gmv_yuan"] for r in board)) and orders == sum(r["orders"] for r in board)
    assert gmv == pytest.approx(truth_sum(served.truth, "gmv_fen") / 100)
    assert abs(doc["as_of_ms"] - time.time() * 1000) < 60_000


def test_imported_campaign_names_show_on_the_leaderboard(served: Served, tmp_path: Path) -> None:
    biggest = max({str(r["campaign_id"]) for r in served.truth.totals},
                  key=lambda c: truth_sum(served.truth, "gmv_fen", c))  # fmt: skip
    campaigns = tmp_path / "campaigns.csv"
    campaigns.write_text(f"campaign_id,name,starts_at,ends_at\n{biggest},双十一主会场 🎉,2025-11-11T00:00:00+08:00,\n")
    result = served.worker.pipeline.promo("campaigns", "import", str(campaigns))
    assert result.returncode == 0 and "imported 1 campaigns" in result.stdout, result.stderr
    deadline = time.monotonic() + 60
    while True:
        rows = served.panel("promo-war-room", "Campaign leaderboard today")["rows"]
        names = {r["campaign_id"]: r["campaign_name"] for r in rows}
        if names[biggest] == "双十一主会场 🎉" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert names[biggest] == "双十一主会场 🎉"
    assert all(name == cid for cid, name in names.items() if cid != biggest)  # unnamed: the id


def test_the_worker_writes_its_state_for_grafana(served: Served) -> None:
    """The health board's state panel reads promo.pipeline_status, which the worker writes every 10 s."""
    deadline = time.monotonic() + 40
    while True:
        doc = served.panel("promo-health", "Pipeline state", **{"from": "now-1h", "to": "now"})
        if doc["rows"] == [{"state": 0}] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert doc["rows"] == [{"state": 0}], doc
