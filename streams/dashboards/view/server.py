"""The local view's HTTP server: the dashboards' panels as JSON, and the pages that draw them.

Started by the worker that owns the store (streams/worker/app.py calls `attach_view`), next to Faust's own
web pages, on its own port (`PROMO_VIEW_PORT`, 8080; 0 turns it off). GET and HEAD only. Panel
queries run on the store's one thread (`store.call`), at most two at a time, so a wall of screens
cannot starve the sink's writes or block the event loop.

Routes: `/` (the list), `/d/<uid>` (one dashboard), `/static/…` (the page's script, style and the
vendored ECharts), `/api/dashboards`, `/api/dashboards/<uid>`, `/api/variables/<uid>/<name>` and
`/api/panel/<uid>/<panel id>?from=&to=&<variable>=`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiohttp import web

from streams.config import Settings
from streams.dashboards.grafana import SETTLE_S
from streams.dashboards.view.auth import TOKEN_QUERY_KEY, authorized, check_bind, host_allowed, is_loopback
from streams.dashboards.view.panels import (
    Board,
    PanelQuery,
    load_boards,
    panel_query,
    panel_result,
    parse_request,
    single_values,
    variable_query,
)
from streams.errors import ConfigError, MacroError, PromoError, ViewRequestError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
QueryFn = Callable[[str, dict[str, str]], Awaitable[tuple[list[str], list[dict[str, Any]]]]]
# Several queries run back to back in one call on the store's thread, so that no write lands between
# them: each answer, or the exception it raised.
QueryManyFn = Callable[
    [list[tuple[str, dict[str, str]]]], Awaitable[list[tuple[list[str], list[dict[str, Any]]] | Exception]]
]
ReadyFn = Callable[[], Awaitable[None]]
MAX_PARALLEL_QUERIES = 2
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a ?token= must not leak to another site
    # ECharts styles its tooltips inline; nothing else is inline, nothing comes from elsewhere.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


def _json(doc: Any, status: int = 200) -> web.Response:
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return web.Response(
        text=body, status=status, content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message[:2000]}, status)


class View:
    """The view's handlers over a set of dashboards and a way to run a query."""

    def __init__(
        self,
        boards: dict[str, Board],
        query: QueryFn,
        *,
        token: str = "",
        bind_host: str = "127.0.0.1",
        ready: ReadyFn | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(tz=dt.UTC),
        status: Callable[[], dict[str, Any]] | None = None,
        query_many: QueryManyFn | None = None,
    ) -> None:
        self.boards = boards
        self._query = query
        self._token = token
        self._loopback = is_loopback(bind_host)
        self._ready = ready
        self._now = now
        self._slots = asyncio.Semaphore(MAX_PARALLEL_QUERIES)
        self._status = status
        self._query_many = query_many

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page("index.html"))
        app.router.add_get("/d/{uid}", self._board_page)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        app.router.add_get("/api/dashboards", self._dashboards)
        app.router.add_get("/api/dashboards/{uid}", self._dashboard)
        app.router.add_get("/api/variables/{uid}/{name}", self._variable)
        app.router.add_get("/api/panel/{uid}/{panel}", self._panel)
        app.router.add_get("/api/status", self._status_page)
        app.router.add_get("/api/board/{uid}", self._board_data)
        return app

    # -- around every request ------------------------------------------------------------------
    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response: web.StreamResponse
        if request.method not in ("GET", "HEAD"):
            response = _error(405, "the view is read-only: GET only")
            response.headers["Allow"] = "GET, HEAD"
        elif self._loopback and not self._token and not host_allowed(request.host):
            # Bound to loopback without a token: only a page on this machine's own name may read it
            # (a foreign site's name resolving to 127.0.0.1 is DNS rebinding, not a viewer).
            response = _error(421, "this view answers only to localhost / 127.0.0.1")
        elif not request.path.startswith("/static/") and not authorized(
            self._token, request.headers.get("Authorization"), request.query.get(TOKEN_QUERY_KEY)
        ):
            response = _error(401, "a token is required: Authorization: Bearer <token> or ?token=")
            response.headers["WWW-Authenticate"] = 'Bearer realm="promo view"'
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _error(exc.status, exc.reason)
        response.headers.update(SECURITY_HEADERS)
        return response

    # -- pages ---------------------------------------------------------------------------------
    @staticmethod
    def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

        return handler

    async def _board_page(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["uid"] not in self.boards:
            return _error(404, f"no dashboard {request.match_info['uid'][:80]!r}")
        return web.FileResponse(STATIC / "board.html", headers={"Cache-Control": "no-cache"})

    # -- API -----------------------------------------------------------------------------------
    def _board(self, request: web.Request) -> Board:
        uid = request.match_info["uid"]
        if uid not in self.boards:
            raise LookupError(f"no dashboard {uid[:80]!r}")
        return self.boards[uid]

    async def _status_page(self, request: web.Request) -> web.Response:
        """The pipeline's state for the banner: {"ok", "problems": [{kind, message, detail, since_ms}]}."""
        if self._status is None:
            return _json({"ok": True, "problems": [], "as_of_ms": int(self._now().timestamp() * 1000)})
        return _json(self._status())

    async def _dashboards(self, request: web.Request) -> web.Response:
        return _json([b.summary() for b in self.boards.values()])

    async def _dashboard(self, request: web.Request) -> web.Response:
        try:
            return _json(self._board(request).doc)
        except LookupError as exc:
            return _error(404, str(exc))

    async def _variable(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            board = self._board(request)
            name = request.match_info["name"]
            if name not in board.variables:
                raise LookupError(f"{board.uid} has no variable {name[:80]!r}")
            query = single_values(request.query.items())
            parsed = parse_request(board, query, self._now(), need_variables=False)
            names, rows = await self._run(variable_query(board, name, parsed))
            return _json({"values": [str(row[names[0]]) for row in rows]})

        return await self._answer(run)

    async def _panel(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            board = self._board(request)
            try:
                panel = board.panel(int(request.match_info["panel"]))
            except (ValueError, KeyError):
                raise LookupError(f"{board.uid} has no panel {request.match_info['panel'][:20]!r}") from None
            query = single_values(request.query.items())
            parsed = parse_request(board, query, self._now(), panel=panel)
            started = time.perf_counter()
            names, rows = await self._run(panel_query(panel, parsed))
            return _json(self._panel_doc(board, panel, parsed, names, rows, started))

        return await self._answer(run)

    @staticmethod
    def _panel_doc(
        board: Board, panel: dict[str, Any], parsed: Any, names: list[str], rows: list[dict[str, Any]], started: float
    ) -> dict[str, Any]:
        doc = panel_result(panel, names, rows)
        rng = parsed.range
        doc.update(
            {
                "uid": board.uid,
                "panel": panel["id"],
                "type": panel.get("type"),
                "range": {
                    "from": round(rng.start.timestamp() * 1000),
                    "to": round(rng.end.timestamp() * 1000),
                    "interval_s": rng.interval_s,
                },
                "took_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        return doc

    async def _board_data(self, request: web.Request) -> web.Response:
        """Every panel of a board from one read: the queries run back to back on the store's thread,
        so no write lands between them and the tiles, tables and series agree with each other.
        {"as_of_ms": when the read was taken, "panels": {id: the panel's doc, or {"error", "status"}}}."""

        async def run() -> web.Response:
            board = self._board(request)
            query = single_values(request.query.items())
            started = time.perf_counter()
            built: list[tuple[dict[str, Any], Any, Any]] = []
            answers: dict[str, Any] = {}
            # One instant for every panel: their range ends, and so their settled point (the SQL's
            # SETTLED_UNTIL, from the range's end), are the same, as in one Grafana refresh.
            now = self._now()
            for panel in board.doc["panels"]:
                try:
                    parsed = parse_request(board, query, now, panel=panel)
                    built.append((panel, parsed, panel_query(panel, parsed)))
                except (ViewRequestError, MacroError) as exc:
                    status = 400 if isinstance(exc, ViewRequestError) else 500
                    answers[str(panel["id"])] = {"error": str(exc)[:2000], "status": status}
            if self._ready is not None:
                await asyncio.wait_for(self._ready(), 10)
            as_of = self._now()
            results = await self._run_many([q for _, _, q in built])
            for (panel, parsed, _), result in zip(built, results, strict=True):
                if isinstance(result, Exception):
                    answers[str(panel["id"])] = {"error": f"ClickHouse: {result}"[:2000], "status": 502}
                    continue
                try:
                    answers[str(panel["id"])] = self._panel_doc(board, panel, parsed, *result, started)
                except MacroError as exc:
                    answers[str(panel["id"])] = {"error": f"dashboard query cannot be built: {exc}", "status": 500}
            # The minute every panel counted to (the SQL's SETTLED_UNTIL from the range's end), for the
            # footer: "data as of 00:00:30, 0.4 s old" over tiles that count to 23:59 misled (an outside
            # probe: "GMV today ¥0" for the first minute of the sale, with nothing saying why).
            settled = None
            if built:
                end, now_s = int(built[0][1].range.end.timestamp()), as_of.timestamp()
                point = end + 1 if end + 1 <= now_s - SETTLE_S else min(end, now_s) - SETTLE_S
                settled = int(point // 60 * 60) * 1000
            return _json({"uid": board.uid, "as_of_ms": round(as_of.timestamp() * 1000), "settled_ms": settled,
                          "panels": answers})  # fmt: skip

        return await self._answer(run)

    async def _run_many(self, queries: list[PanelQuery]) -> list[tuple[list[str], list[dict[str, Any]]] | Exception]:
        pairs = [(q.sql, q.parameters) for q in queries]
        if self._query_many is not None:
            async with self._slots:
                return await self._query_many(pairs)
        out: list[tuple[list[str], list[dict[str, Any]]] | Exception] = []
        for sql, parameters in pairs:  # no store thread to hold: one after the other
            try:
                async with self._slots:
                    out.append(await self._query(sql, parameters))
            except Exception as exc:  # shown in its panel
                out.append(exc)
        return out

    async def _answer(self, run: Callable[[], Awaitable[web.Response]]) -> web.Response:
        """Run a handler body; what went wrong becomes the panel's error message, with its status."""
        try:
            return await run()
        except ViewRequestError as exc:
            return _error(400, str(exc))
        except LookupError as exc:
            return _error(404, str(exc))
        except MacroError as exc:
            return _error(500, f"dashboard query cannot be built: {exc}")
        except TimeoutError:
            return _error(503, "the store is not ready yet")
        except PanelQueryError as exc:
            return _error(502, str(exc))

    async def _run(self, query: PanelQuery) -> tuple[list[str], list[dict[str, Any]]]:
        if self._ready is not None:
            await asyncio.wait_for(self._ready(), 10)
        async with self._slots:
            try:
                return await self._query(query.sql, query.parameters)
            except Exception as exc:
                raise PanelQueryError(f"ClickHouse: {exc}") from exc


class PanelQueryError(PromoError):
    """A panel's query failed in ClickHouse; the message is shown in the panel."""


class ViewServer:
    """The view's aiohttp site: start, stop (which frees the port), and where it listens."""

    def __init__(self, application: web.Application, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._runner = web.AppRunner(application, access_log=None, handle_signals=False, shutdown_timeout=2)
        self._started = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError:
            await self._runner.cleanup()
            raise
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._runner.cleanup()


def attach_view(
    app: faust.App,
    settings: Settings,
    run_query: QueryFn,
    schema_ready: asyncio.Event,
    status: Callable[[], dict[str, Any]] | None = None,
    run_many: QueryManyFn | None = None,
) -> None:
    """Serve the view from this Faust app while it runs (nothing when `settings.view_port` is 0).

    `run_query(sql, parameters)` must run on the store's own thread. A view that cannot listen
    crashes the worker, as a sink that cannot write does: a wall screen left dark is not healthy.
    """
    if settings.view_port == 0:
        return
    token = settings.view_token.value
    check_bind(settings.view_host, settings.view_port, token)

    async def ready() -> None:
        await schema_ready.wait()

    view = View(load_boards(), run_query, token=token, bind_host=settings.view_host, ready=ready, status=status,
                query_many=run_many)  # fmt: skip
    server = ViewServer(view.application(), settings.view_host, settings.view_port)

    async def serve() -> None:
        try:
            await server.start()
        except OSError as exc:
            log.error("the view cannot listen on %s: %s", server.url, exc)
            await app.crash(ConfigError(f"the view cannot listen on {server.url}: {exc}"))
            return
        log.info("view at %s", server.url)

    async def stop(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await server.stop()

    app.task(serve)
    app.on_before_shutdown.connect(stop)  # type: ignore[arg-type]  # mode types sender positional-only
