"""The local view's pure parts: time ranges, request checks, panel → query, results as JSON, auth.

No I/O: the middleware is called with aiohttp's mocked requests. The HTTP API against a real
pipeline is tests/integration/test_view_api.py; the page in a real browser test_view_browser.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from streams.config import Settings, load_settings
from streams.dashboards.grafana import build_all
from streams.dashboards.view.auth import authorized, bearer, check_bind, host_allowed, is_loopback
from streams.dashboards.view.macros import Range
from streams.dashboards.view.panels import (
    MAX_ROWS,
    Board,
    PanelRequest,
    json_value,
    load_boards,
    panel_query,
    panel_result,
    parse_request,
    series,
    single_values,
)
from streams.dashboards.view.server import STATIC, View
from streams.dashboards.view.timerange import bucket_seconds, parse_interval, parse_time, resolve
from streams.errors import ConfigError, MacroError, ViewRequestError

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-11-11 03:30 in Shanghai is 2026-11-10 19:30 UTC: the business day began 3.5 hours ago,
# while the UTC day began 19.5 hours ago.
NOW = dt.datetime(2026, 11, 10, 19, 30, 15, tzinfo=dt.UTC)
HOSTILE = "双11'); DROP TABLE promo.facts_minute; --\\"
TOKEN = "s3cret-token-0123456789"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def naive(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    """A UTC instant without its zone, as clickhouse-connect returns DateTime('UTC') values."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC).replace(tzinfo=None)


BOARDS = load_boards()
WAR_ROOM, CAMPAIGN, HEALTH = (BOARDS[u] for u in ("promo-war-room", "promo-campaign", "promo-health"))


def panel_by_title(board: Board, english: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in board.doc["panels"] if p["title"].split(" / ", 1)[-1] == english]
    assert len(found) == 1, english
    return found[0]


# --------------------------------------------------------------------------------------------
# Time ranges


@pytest.mark.parametrize(
    ("expr", "round_up", "expected"),
    [
        ("now", False, "2026-11-11T03:30:15+08:00"),
        ("now/d", False, "2026-11-11T00:00:00+08:00"),  # the Shanghai business day, not UTC's
        ("now/d", True, "2026-11-11T23:59:59.999+08:00"),
        ("now-1h", False, "2026-11-11T02:30:15+08:00"),
        ("now+15m", True, "2026-11-11T03:45:15+08:00"),
        ("now-1d/d", False, "2026-11-10T00:00:00+08:00"),
        ("now/w", False, "2026-11-09T00:00:00+08:00"),  # weeks start on Monday
        ("now/h", True, "2026-11-11T03:59:59.999+08:00"),
        ("1762790400000", False, "2025-11-11T00:00:00+08:00"),  # epoch ms, as Grafana puts them in URLs
    ],
)
def test_grafana_times_in_the_dashboard_timezone(expr: str, round_up: bool, expected: str) -> None:
    assert parse_time(expr, NOW, SHANGHAI, round_up=round_up) == at(expected)


@pytest.mark.parametrize(
    "expr",
    ["", "today", "now-1y", "now-1M", "now - 1h", "now-h", "now-1h/", "now/d/d", "now-1234567h", "1e12",
     "176279040000", "999999999999999", "2025-11-11", "now/d;DROP TABLE x", "now\n", "-1762790400000",
     "1762790400000.5", "4102444800001"],
)  # fmt: skip
def test_anything_else_is_refused(expr: str) -> None:
    with pytest.raises(ViewRequestError):
        parse_time(expr, NOW, SHANGHAI, round_up=False)


def test_a_range_must_be_forward_and_not_too_long() -> None:
    rng = resolve("now/d", "now", NOW, SHANGHAI)
    assert (rng.start, rng.end, rng.interval_s) == (at("2026-11-11T00:00:00+08:00"), NOW, 60)
    with pytest.raises(ViewRequestError, match="empty or inverted"):
        resolve("now", "now-1h", NOW, SHANGHAI)
    with pytest.raises(ViewRequestError, match="empty or inverted"):
        resolve("1762790400000", "1762790400000", NOW, SHANGHAI)
    with pytest.raises(ViewRequestError, match="longer than"):
        resolve("now-500d", "now", NOW, SHANGHAI)


@pytest.mark.parametrize(
    ("span", "minimum", "expected"),
    [
        (dt.timedelta(hours=1), 60, 60),
        (dt.timedelta(hours=12), 60, 60),
        (dt.timedelta(hours=24), 60, 120),
        (dt.timedelta(hours=25), 60, 300),
        (dt.timedelta(days=7), 60, 900),
        (dt.timedelta(days=400), 60, 86_400),
        (dt.timedelta(hours=1), 300, 300),  # never finer than the panel's own minimum
    ],
)
def test_bucket_width(span: dt.timedelta, minimum: int, expected: int) -> None:
    assert bucket_seconds(span, minimum) == expected


def test_panel_intervals() -> None:
    assert [parse_interval(t) for t in ("30s", "1m", "2h", "1d")] == [30, 60, 7200, 86_400]
    with pytest.raises(ValueError, match="not like"):
        parse_interval("1 minute")


# --------------------------------------------------------------------------------------------
# Requests


def test_a_request_gets_the_dashboards_default_range() -> None:
    war = parse_request(WAR_ROOM, {}, NOW)
    assert (war.range.start, war.range.end) == (NOW - dt.timedelta(hours=1), NOW)  # now-1h .. now
    assert war.range.interval_s == 60  # an hour in minutes: 60 points a wall chart can show
    health = parse_request(HEALTH, {}, NOW)
    assert health.range.end - health.range.start == dt.timedelta(hours=1)  # now-1h .. now
    override = parse_request(WAR_ROOM, {"from": "1762790400000", "to": "now", "token": "anything"}, NOW)
    assert override.range.start == at("2025-11-11T00:00:00+08:00") and override.variables == {}


@pytest.mark.parametrize(
    ("board", "query", "message"),
    [
        (WAR_ROOM, {"form": "now-1h"}, "unknown parameter 'form'"),  # a typo must not show the default
        (WAR_ROOM, {"campaign": "x"}, "unknown parameter 'campaign'"),  # the war room has no variable
        (WAR_ROOM, {"from": "yesterday"}, "neither epoch milliseconds"),
        (CAMPAIGN, {}, "campaign is required"),
        (CAMPAIGN, {"campaign": ""}, "must not be empty"),
        (CAMPAIGN, {"campaign": "a\x00b"}, "control character"),
        (CAMPAIGN, {"campaign": "a\nb"}, "control character"),
        (CAMPAIGN, {"campaign": "x" * 257}, "longer than 256"),
    ],
)
def test_bad_requests_are_refused(board: Board, query: dict[str, str], message: str) -> None:
    with pytest.raises(ViewRequestError, match=re.escape(message)):
        parse_request(board, query, NOW)


def test_a_parameter_given_twice_is_refused() -> None:
    assert single_values([("from", "now-1h"), ("to", "now")]) == {"from": "now-1h", "to": "now"}
    with pytest.raises(ViewRequestError, match="more than once"):
        single_values([("campaign", "a"), ("campaign", "b")])


# --------------------------------------------------------------------------------------------
# Panel -> query


def all_panels() -> list[tuple[Board, dict[str, Any]]]:
    return [(b, p) for b in BOARDS.values() for p in b.doc["panels"]]


@pytest.mark.parametrize(("board", "panel"), all_panels(), ids=[f"{b.uid}:{p['id']}" for b, p in all_panels()])
def test_every_panel_becomes_one_read_only_query_with_bound_values(board: Board, panel: dict[str, Any]) -> None:
    query = {"campaign": HOSTILE} if board.variables else {}
    request = parse_request(board, query, NOW, panel=panel)
    built = panel_query(panel, request)
    assert "$" not in built.sql and "DROP" not in built.sql and "双11" not in built.sql
    assert built.sql.endswith(" SETTINGS readonly = 1, max_execution_time = 10")
    start, end = int(request.range.start.timestamp()), int(request.range.end.timestamp())
    if "$__timeFilter" in panel["targets"][0]["rawSql"]:
        assert f">= toDateTime({start}) AND" in built.sql and f"<= toDateTime({end})" in built.sql
    if board.variables:
        assert built.parameters == {
            "campaign__percentencoded": "%E5%8F%8C11%27%29%3B%20DROP%20TABLE%20promo.facts_minute%3B%20--%5C"
        }
        assert "decodeURLComponent({campaign__percentencoded:String})" in built.sql
    else:
        assert built.parameters == {}


def test_the_war_room_gmv_query() -> None:
    panel = panel_by_title(WAR_ROOM, "GMV today")
    rng = Range(at("2025-11-11T00:00:00+08:00"), at("2025-11-12T00:00:00+08:00"))
    built = panel_query(panel, PanelRequest(rng, {}))
    # The tile counts the business day of the range's end (00:00 Shanghai), up to the settled minute.
    end = "toDateTime(1762876800)"
    assert built.sql == (
        "SELECT sum(gmv_fen) / 100 AS gmv_yuan FROM promo.facts "
        f"WHERE minute >= toStartOfDay({end}, 'Asia/Shanghai') "
        f"AND minute < toStartOfMinute(if({end} + 1 <= now() - 5, {end} + 1, least({end}, now()) - 5)) "
        "SETTINGS readonly = 1, max_execution_time = 10"
    )


def test_series_widths_follow_the_range() -> None:
    orders = panel_by_title(WAR_ROOM, "Orders per minute (event time, selected range)")
    day = parse_request(WAR_ROOM, {"from": "now-2d", "to": "now"}, NOW, panel=orders)
    assert day.range.interval_s == 300
    built = panel_query(orders, day)
    assert "INTERVAL 300 second" in built.sql and "* 60 / 300" in built.sql


def test_a_query_that_sets_its_own_settings_is_refused() -> None:
    panel = {"id": 1, "targets": [{"rawSql": "SELECT 1 SETTINGS readonly = 0"}]}
    with pytest.raises(MacroError, match="SETTINGS"):
        panel_query(panel, parse_request(WAR_ROOM, {}, NOW))


def test_the_view_renders_the_committed_dashboards() -> None:
    committed = load_boards(ROOT / "dashboards")
    assert {u: b.doc for u, b in committed.items()} == {u: b.doc for u, b in BOARDS.items()}
    assert [b["uid"] for b in build_all().values()] == list(BOARDS)
    types = {p["type"] for b in BOARDS.values() for p in b.doc["panels"]}
    assert types == {"stat", "timeseries", "barchart", "table"}  # all of them drawn by view.js
    script = (STATIC / "view.js").read_text(encoding="utf-8")
    for kind in types:
        assert f'"{kind}"' in script, kind


# --------------------------------------------------------------------------------------------
# Results


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (naive(2025, 11, 10, 16, 0), 1_762_790_400_000),  # naive from ClickHouse: UTC
        (dt.datetime(2025, 11, 11, 0, 0, tzinfo=SHANGHAI), 1_762_790_400_000),
        (float("nan"), None),
        (float("inf"), None),
        (decimal.Decimal("12.50"), 12.5),
        (dt.date(2025, 11, 11), "2025-11-11"),
        (b"\xe5\x8f\x8c11", "双11"),
        (7, 7),
        (True, True),
        (None, None),
        ("微信 wechat", "微信 wechat"),
    ],
)
def test_values_become_json(value: object, expected: object) -> None:
    assert json_value(value) == expected
    json.dumps(json_value(value), allow_nan=False)


def test_a_long_table_pivots_into_one_series_per_label() -> None:
    t0, t1 = naive(2025, 11, 10, 16, 0), naive(2025, 11, 10, 16, 1)
    rows = [
        {"time": t0, "channel": "app", "orders": 1.0},
        {"time": t0, "channel": "wechat", "orders": 2.0},
        {"time": t1, "channel": "wechat", "orders": 3.0},
    ]
    result = panel_result({"type": "timeseries"}, ["time", "channel", "orders"], rows)
    assert [c["type"] for c in result["columns"]] == ["time", "string", "number"]
    ms = json_value(t0)
    assert result["series"] == [
        {"field": "orders", "labels": {"channel": "app"}, "name": "app", "points": [[ms, 1.0]]},
        {"field": "orders", "labels": {"channel": "wechat"}, "name": "wechat",
         "points": [[ms, 2.0], [ms + 60_000, 3.0]]},
    ]  # fmt: skip


def test_a_wide_table_gives_one_series_per_column() -> None:
    t0 = naive(2025, 11, 10, 16, 0)
    rows = [{"time": t0, "orders": 2.0, "new_users": float("nan")}]
    found = series([{"name": "time", "type": "time"}, {"name": "orders", "type": "number"},
                    {"name": "new_users", "type": "number"}], rows)  # fmt: skip
    assert [(s["name"], s["points"]) for s in found] == [("orders", [[json_value(t0), 2.0]]),
                                                          ("new_users", [[json_value(t0), None]])]  # fmt: skip
    with pytest.raises(MacroError, match="named time"):
        series([{"name": "minute", "type": "time"}], rows)


def test_a_column_without_any_value_is_an_empty_series_not_a_label() -> None:
    """GMV per minute beside the day before, when nothing was sold the day before: its column is all
    NULL, so it has no type to go by; it must not become a label and name the GMV series "None"."""
    t0 = naive(2025, 11, 11, 1, 0)
    rows = [{"time": t0, "gmv_yuan": 10.0, "day_before": None}, {"time": t0, "gmv_yuan": 12.0, "day_before": None}]
    result = panel_result({"type": "timeseries"}, ["time", "gmv_yuan", "day_before"], rows)
    assert [(s["field"], s["labels"], s["name"]) for s in result["series"]] == [
        ("gmv_yuan", {}, "gmv_yuan"), ("day_before", {}, "day_before"),
    ]  # fmt: skip
    assert result["series"][1]["points"] == [[json_value(t0), None], [json_value(t0), None]]


def test_results_are_capped_and_say_so() -> None:
    rows = [{"campaign_id": str(i), "orders": i} for i in range(MAX_ROWS + 1)]
    result = panel_result({"type": "table"}, ["campaign_id", "orders"], rows)
    assert len(result["rows"]) == MAX_ROWS and result["truncated"] is True
    empty = panel_result({"type": "stat"}, ["freshness_s"], [])
    assert empty == {"columns": [{"name": "freshness_s", "type": "string"}], "rows": [], "truncated": False}
    # chdb names no column when there is no row: an empty series is no series, not an error.
    assert panel_result({"type": "timeseries"}, [], [])["series"] == []


# --------------------------------------------------------------------------------------------
# Who may read


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("wall-screen.local", False), ("", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_a_token_is_required() -> None:
    check_bind("127.0.0.1", 8080, "")
    check_bind("0.0.0.0", 0, "")  # the view is off: nothing listens
    check_bind("0.0.0.0", 8080, TOKEN)
    with pytest.raises(ConfigError, match="set PROMO_VIEW_TOKEN"):
        check_bind("0.0.0.0", 8080, "")
    with pytest.raises(ConfigError, match="set PROMO_VIEW_TOKEN"):
        check_bind("wall-screen.local", 8080, "")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        check_bind("0.0.0.0", 8080, "short")


@pytest.mark.parametrize(
    ("expected", "header", "query", "ok"),
    [
        ("", None, None, True),  # no token configured: loopback only, open
        (TOKEN, None, None, False),
        (TOKEN, f"Bearer {TOKEN}", None, True),
        (TOKEN, f"bearer {TOKEN}", None, True),
        (TOKEN, f"Bearer {TOKEN}x", None, False),
        (TOKEN, f"Basic {TOKEN}", None, False),
        (TOKEN, "Bearer ", None, False),
        (TOKEN, TOKEN, None, False),
        (TOKEN, None, TOKEN, True),
        (TOKEN, None, TOKEN[:-1], False),
        (TOKEN, None, "", False),
        (TOKEN, "Bearer wrong", TOKEN, True),
        (TOKEN, None, "双11", False),  # non-ASCII does not raise in compare_digest
    ],
)
def test_the_token_check(expected: str, header: str | None, query: str | None, ok: bool) -> None:
    assert authorized(expected, header, query) is ok


def test_bearer_parsing() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("  BEARER   abc  ") == "abc"
    assert bearer(None) is None and bearer("Bearer") is None and bearer("Token abc") is None


@pytest.mark.parametrize(
    ("host", "ok"),
    [("127.0.0.1:8080", True), ("localhost:8080", True), ("localhost", True), ("[::1]:8080", True),
     ("evil.example:8080", False), ("127.0.0.1.evil.example", False), ("", False), ("[::1", False)],
)  # fmt: skip
def test_host_header_on_loopback(host: str, ok: bool) -> None:
    assert host_allowed(host) is ok


def request_through_guard(view: View, method: str, path: str, headers: dict[str, str]) -> web.StreamResponse:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="through")

    guard: Callable[[web.Request, Any], Coroutine[Any, Any, web.StreamResponse]] = view._guard
    return asyncio.run(guard(make_mocked_request(method, path, headers=headers), handler))


async def no_query(sql: str, parameters: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    raise AssertionError("no query expected")


@pytest.mark.parametrize(
    ("token", "method", "path", "headers", "status"),
    [
        ("", "GET", "/api/dashboards", {"Host": "127.0.0.1:8080"}, 200),
        ("", "POST", "/api/dashboards", {"Host": "127.0.0.1:8080"}, 405),
        ("", "DELETE", "/", {"Host": "127.0.0.1:8080"}, 405),
        ("", "GET", "/api/dashboards", {"Host": "rebound.example"}, 421),
        (TOKEN, "GET", "/api/dashboards", {"Host": "127.0.0.1:8080"}, 401),
        (TOKEN, "GET", "/api/status", {"Host": "127.0.0.1:8080"}, 401),
        (TOKEN, "GET", "/api/dashboards", {"Host": "127.0.0.1:8080", "Authorization": f"Bearer {TOKEN}"}, 200),
        (TOKEN, "GET", f"/d/promo-war-room?token={TOKEN}", {"Host": "127.0.0.1:8080"}, 200),
        (TOKEN, "GET", "/static/vendor/echarts/echarts.common.min.js", {"Host": "127.0.0.1:8080"}, 200),
    ],
)
def test_the_guard(token: str, method: str, path: str, headers: dict[str, str], status: int) -> None:
    view = View(BOARDS, no_query, token=token, bind_host="127.0.0.1")
    response = request_through_guard(view, method, path, headers)
    assert response.status == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_status_page_serves_the_pipelines_state() -> None:
    down = {"ok": False, "problems": [{"kind": "store_unreachable", "message": "m", "detail": "d", "since_ms": 1}]}
    view = View(BOARDS, no_query, status=lambda: down)
    response = asyncio.run(view._status_page(make_mocked_request("GET", "/api/status")))
    assert isinstance(response, web.Response) and response.text is not None
    assert json.loads(response.text) == down and response.headers["Cache-Control"] == "no-store"
    alone = View(BOARDS, no_query)  # a view without a pipeline behind it has nothing to report
    response = asyncio.run(alone._status_page(make_mocked_request("GET", "/api/status")))
    assert response.text is not None and json.loads(response.text)["problems"] == []


def test_a_board_is_read_in_one_call_so_its_panels_agree() -> None:
    """/api/board runs every panel's query in one call on the store's thread (no write between)."""
    calls: list[int] = []

    async def many(queries: list[tuple[str, dict[str, str]]]) -> list[Any]:
        calls.append(len(queries))
        out: list[Any] = []
        for sql, _ in queries:
            if "leaderboard" in sql or ("campaign_id" in sql and "gmv_yuan DESC" in sql):
                out.append(RuntimeError("boom"))
            else:
                out.append((["time", "x"], []))
        return out

    view = View(BOARDS, no_query, query_many=many)
    request = make_mocked_request("GET", "/api/board/promo-war-room?from=now-1h&to=now",
                                  match_info={"uid": "promo-war-room"})  # fmt: skip
    response = asyncio.run(view._board_data(request))
    assert isinstance(response, web.Response) and response.status == 200 and response.text is not None
    doc = json.loads(response.text)
    panels = WAR_ROOM.doc["panels"]
    assert calls == [len(panels)]  # one read for the whole screen
    assert set(doc["panels"]) == {str(p["id"]) for p in panels}
    errors = {k: v for k, v in doc["panels"].items() if "error" in v}
    assert len(errors) == 1 and next(iter(errors.values()))["error"] == "ClickHouse: boom"  # only its own panel
    assert isinstance(doc["as_of_ms"], int)
    # The minute every panel counted to, for the footer: a range ending now counts the minutes ended
    # five seconds ago or more (an outside probe: "data as of 00:00:30, 0.4 s old" over tiles at 23:59).
    settled = doc["settled_ms"]
    assert settled % 60_000 == 0 and 0 <= doc["as_of_ms"] - 5_000 - settled < 60_000 + 1_000, doc


# --------------------------------------------------------------------------------------------
# Settings and packaging


def test_view_settings() -> None:
    assert Settings().view_port == 8080 and Settings().view_url == "http://127.0.0.1:8080/"
    off = load_settings({"PROMO_VIEW_PORT": "0"})
    assert off.view_port == 0 and off.view_url is None
    env = load_settings({"PROMO_VIEW_HOST": "::1", "PROMO_VIEW_PORT": "9000", "PROMO_VIEW_TOKEN": TOKEN})
    assert env.view_url == "http://[::1]:9000/" and env.view_token.value == TOKEN
    assert TOKEN not in repr(env)
    assert load_settings({}, view_port=0).view_url is None
    with pytest.raises(ConfigError, match="view port must be 0"):
        load_settings({"PROMO_VIEW_PORT": "70000"})
    with pytest.raises(ConfigError, match="PROMO_VIEW_PORT='eighty'"):
        load_settings({"PROMO_VIEW_PORT": "eighty"})


def test_the_vendored_chart_library_is_the_pinned_one() -> None:
    vendor = STATIC / "vendor" / "echarts"
    library = (vendor / "echarts.common.min.js").read_bytes()
    assert hashlib.sha256(library).hexdigest() == "61f13280aba3161f77fc801bf5f9c786f55f10432153a0683fc5cc0700b013d5"
    assert b'version:"6.1.0"' in library
    assert "Apache License" in (vendor / "LICENSE").read_text(encoding="utf-8")
    assert (vendor / "NOTICE").exists() and (vendor / "licenses" / "LICENSE-d3").exists()
    assert "6.1.0" in (vendor / "VERSION.md").read_text(encoding="utf-8")
    pages = (STATIC / "board.html").read_text(encoding="utf-8")
    assert '<script src="/static/vendor/echarts/echarts.common.min.js"' in pages
    assert "http" not in pages  # nothing from elsewhere: it works offline
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["setuptools"]["package-data"]["streams.dashboards.view"] == ["static/**/*"]
