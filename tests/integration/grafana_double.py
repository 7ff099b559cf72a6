"""A stand-in for Grafana's HTTP API: the few endpoints `promo dashboards push` calls, on loopback.

No Grafana can be installed on these machines (no Docker, no Grafana package in the registries they
reach), so the push is tested against this double. It keeps what a Grafana keeps — datasources,
folders, dashboards with their uid, id, version and folder — checks bearer tokens (401 for an
unknown one, 403 when a viewer writes), and answers with Grafana's status codes and JSON shapes
for: GET /api/datasources/uid/:uid, GET /api/folders, GET /api/folders/:uid, POST /api/folders,
GET /api/dashboards/uid/:uid, POST /api/dashboards/db, GET /api/search. It records every request.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EDITOR_TOKEN = "glsa_editor_0123456789abcdef"  # a made-up token, for the double only
VIEWER_TOKEN = "glsa_viewer_0123456789abcdef"
Json = dict[str, Any]


@dataclass
class GrafanaDouble:
    tokens: dict[str, str] = field(default_factory=lambda: {EDITOR_TOKEN: "Editor", VIEWER_TOKEN: "Viewer"})
    datasources: dict[str, Json] = field(default_factory=dict)
    folders: dict[str, Json] = field(default_factory=dict)
    dashboards: dict[str, Json] = field(default_factory=dict)  # uid -> {"dashboard": ..., "meta": ...}
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    # A Grafana (or a proxy before it) that answers this status echoing the request's Authorization header
    echo_auth_status: int | None = None
    _ids: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    # -- state helpers for tests ---------------------------------------------------------------
    def add_clickhouse_datasource(self, uid: str = "promo-clickhouse") -> None:
        self.datasources[uid] = {"id": self._next_id(), "uid": uid, "name": "ClickHouse (promo)",
                                 "type": "grafana-clickhouse-datasource"}  # fmt: skip

    def add_folder(self, uid: str, title: str) -> None:
        self.folders[uid] = {"id": self._next_id(), "uid": uid, "title": title}

    def calls(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- the API -------------------------------------------------------------------------------
    def _role(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        role = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if role is None:
            raise web.HTTPUnauthorized(text='{"message":"invalid API key"}', content_type="application/json")
        return role

    def _writer(self, request: web.Request) -> None:
        if self._role(request) != "Editor":
            raise web.HTTPForbidden(text='{"message":"Access denied"}', content_type="application/json")

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    async def datasource_by_uid(self, request: web.Request) -> web.Response:
        if self.echo_auth_status is not None:
            said = request.headers.get("Authorization", "")
            return web.json_response({"message": f"internal error, auth was {said}"}, status=self.echo_auth_status)
        self._role(request)
        found = self.datasources.get(request.match_info["uid"])
        if found is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response(found)

    async def list_folders(self, request: web.Request) -> web.Response:
        self._role(request)
        return web.json_response([{k: f[k] for k in ("id", "uid", "title")} for f in self.folders.values()])

    async def get_folder(self, request: web.Request) -> web.Response:
        self._role(request)
        found = self.folders.get(request.match_info["uid"])
        if found is None:
            return web.json_response({"message": "folder not found", "status": "not-found"}, status=404)
        return web.json_response(found)

    async def create_folder(self, request: web.Request) -> web.Response:
        self._writer(request)
        body = await request.json()
        uid, title = body.get("uid") or f"f{self._ids + 1}", body["title"]
        if uid in self.folders or any(f["title"] == title for f in self.folders.values()):
            return web.json_response({"message": "a folder with the same name already exists"}, status=409)
        self.add_folder(uid, title)
        return web.json_response(self.folders[uid])

    async def get_dashboard(self, request: web.Request) -> web.Response:
        self._role(request)
        found = self.dashboards.get(request.match_info["uid"])
        if found is None:
            return web.json_response({"message": "Dashboard not found"}, status=404)
        return web.json_response(copy.deepcopy(found))

    async def save_dashboard(self, request: web.Request) -> web.Response:
        self._writer(request)
        body = await request.json()
        board, folder_uid = dict(body["dashboard"]), body.get("folderUid", "")
        uid = board.get("uid")
        if not uid or not board.get("title"):
            return web.json_response({"message": "Dashboard title cannot be empty"}, status=400)
        if folder_uid and folder_uid not in self.folders:
            return web.json_response({"message": "folder not found"}, status=400)
        old = self.dashboards.get(uid)
        if old is not None and old["meta"].get("provisioned"):
            return web.json_response({"message": "Cannot save provisioned dashboard"}, status=400)
        if old is not None and not body.get("overwrite"):
            return web.json_response({"message": "The dashboard has been changed by someone else"}, status=412)
        board["id"] = old["dashboard"]["id"] if old else self._next_id()
        board["version"] = old["dashboard"]["version"] + 1 if old else 1
        url = f"/d/{uid}/{uid}"
        self.dashboards[uid] = {"dashboard": board, "meta": {"folderUid": folder_uid, "url": url,
                                                              "provisioned": False}}  # fmt: skip
        return web.json_response({"id": board["id"], "uid": uid, "url": url, "status": "success",
                                  "version": board["version"], "slug": uid})  # fmt: skip

    async def search(self, request: web.Request) -> web.Response:
        self._role(request)
        found = [
            {"uid": uid, "title": d["dashboard"]["title"], "type": "dash-db", "folderUid": d["meta"]["folderUid"]}
            for uid, d in self.dashboards.items()
        ]
        return web.json_response(found)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> GrafanaDouble:
        app = web.Application(middlewares=[self._record])
        app.add_routes([
            web.get("/api/datasources/uid/{uid}", self.datasource_by_uid),
            web.get("/api/folders", self.list_folders),
            web.get("/api/folders/{uid}", self.get_folder),
            web.post("/api/folders", self.create_folder),
            web.get("/api/dashboards/uid/{uid}", self.get_dashboard),
            web.post("/api/dashboards/db", self.save_dashboard),
            web.get("/api/search", self.search),
        ])  # fmt: skip
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def serve() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="grafana-double", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the Grafana double did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None
