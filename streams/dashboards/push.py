"""`promo dashboards push`: put the dashboards into a Grafana through its HTTP API (grafana-client).

Idempotent by dashboard uid: a dashboard whose stored JSON (less Grafana's own `id` and `version`)
already equals ours, in the right folder, is left alone ("unchanged"); otherwise it is saved with
`overwrite: true` under the same uid ("created" or "updated"), so pushing twice never makes a copy.
The folder is found by uid, then by title, and created only when neither exists.

Before anything is written, the ClickHouse datasource the panels reference (uid
`dashboards.DATASOURCE_UID`) must exist: dashboards without it would show errors on every panel.

Every failure a user can cause — Grafana not listening or not answering, a wrong or too weak token,
a missing datasource — is a `PushError` with a one-line message. The token never appears in one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from streams.dashboards.grafana import DATASOURCE_TYPE, DATASOURCE_UID, Json
from streams.errors import PromoError

DEFAULT_FOLDER_TITLE = "大促 / Promo"  # the same folder deploy/grafana/provisioning/dashboards/promo.yaml uses
DEFAULT_FOLDER_UID = "promo"
DEFAULT_TIMEOUT_S = 10.0
COMMIT_MESSAGE = "promo dashboards push"
# Fields Grafana sets itself on save: not part of what we compare.
_GRAFANA_OWNED = ("id", "version")

Status = Literal["created", "updated", "unchanged"]


class PushError(PromoError):
    """Pushing to Grafana failed for a reason the user can fix; the message is one line."""


@dataclass(frozen=True)
class Folder:
    uid: str
    title: str
    created: bool


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    status: Status
    url: str


@dataclass(frozen=True)
class PushReport:
    grafana: str
    datasource: str
    folder: Folder
    dashboards: tuple[Pushed, ...]


def redact_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_url(url: str) -> str:
    """A usable Grafana base URL (http or https with a host), without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"--url must look like http(s)://host:3000, got {redact_url(url)!r}")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port only when asked
    except ValueError as exc:
        raise PushError(f"--url has a bad port: {exc}") from exc
    return url.rstrip("/")


def connect(url: str, token: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> GrafanaApi:
    """A client for `url` that sends `token` as a bearer token."""
    if not token:
        raise PushError("no Grafana token: pass --token or set GRAFANA_TOKEN (a service account token, Editor role)")
    api: GrafanaApi = GrafanaApi.from_url(check_url(url), credential=token, timeout=timeout_s)
    return api


@contextmanager
def talking_to(url: str, doing: str, timeout_s: float) -> Iterator[None]:
    """Turns the client's exceptions into one-line `PushError`s that say what was being done."""
    where = redact_url(url)
    try:
        yield
    except GrafanaUnauthorizedError as exc:
        raise PushError(f"Grafana at {where} rejected the token (HTTP 401) while {doing}: check GRAFANA_TOKEN") from exc
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise PushError(
                f"the token may not do this at {where} (HTTP 403) while {doing}: it needs the Editor role "
                "(Admin to create the folder)"
            ) from exc
        raise PushError(f"Grafana at {where} refused {doing}: HTTP {exc.status_code} {_message(exc)}") from exc
    except GrafanaTimeoutError as exc:
        raise PushError(f"Grafana at {where} did not answer within {timeout_s:g} s while {doing}") from exc
    except GrafanaServerError as exc:
        raise PushError(f"Grafana at {where} failed while {doing}: HTTP {exc.status_code} {_message(exc)}") from exc
    except (GrafanaException, OSError) as exc:  # niquests' connection errors are OSErrors
        raise PushError(f"cannot reach Grafana at {where} while {doing}: {_reason(exc)}") from exc


def _message(exc: GrafanaException) -> str:
    response = exc.response
    text = response.get("message", "") if isinstance(response, dict) else str(response or "")
    return " ".join(str(text).split())[:200]


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in a few words (no stack of wrappers)."""
    text = str(exc)
    lowered = text.lower()
    for known in ("connection refused", "timed out", "name or service not known", "no route to host",
                  "network is unreachable", "certificate verify failed", "connection reset"):  # fmt: skip
        if known in lowered:
            return known
    return " ".join(text.split())[:200] or type(exc).__name__


def _not_found(exc: GrafanaClientError) -> bool:
    return bool(exc.status_code == 404)


# --------------------------------------------------------------------------------------------
# The steps


def check_datasource(api: GrafanaApi, url: str, *, uid: str = DATASOURCE_UID, timeout_s: float) -> Json:
    """The datasource the panels reference; a `PushError` when it is missing or of another type."""
    with talking_to(url, f"looking up datasource {uid}", timeout_s):
        try:
            found: Json = api.datasource.get_datasource_by_uid(uid)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
            raise PushError(
                f"Grafana at {redact_url(url)} has no datasource with uid {uid!r}, which every panel "
                "uses: provision deploy/grafana/provisioning/datasources/clickhouse.yaml first"
            ) from exc
    kind = found.get("type")
    if kind != DATASOURCE_TYPE:
        raise PushError(f"datasource {uid!r} at {redact_url(url)} is of type {kind!r}, not {DATASOURCE_TYPE!r}")
    return found


def ensure_folder(api: GrafanaApi, url: str, *, title: str, uid: str, timeout_s: float) -> Folder:
    """The folder with `uid`, else the one titled `title`, else a new one (uid `uid`, title `title`)."""
    with talking_to(url, f"looking up folder {title!r}", timeout_s):
        try:
            found: Json = api.folder.get_folder(uid)
            return Folder(str(found["uid"]), str(found["title"]), created=False)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
        folders: list[Json] = api.folder.get_all_folders()
        for folder in folders:
            if folder.get("title") == title:
                return Folder(str(folder["uid"]), title, created=False)
    with talking_to(url, f"creating folder {title!r}", timeout_s):
        created: Json = api.folder.create_folder(title, uid=uid)
    return Folder(str(created["uid"]), str(created["title"]), created=True)


def comparable(board: Mapping[str, Any]) -> Json:
    """A dashboard's JSON less what Grafana sets on save, for the unchanged check."""
    return {k: v for k, v in board.items() if k not in _GRAFANA_OWNED}


def push_dashboard(api: GrafanaApi, url: str, board: Json, *, folder_uid: str, timeout_s: float) -> Pushed:
    uid = str(board["uid"])
    with talking_to(url, f"reading dashboard {uid}", timeout_s):
        try:
            existing: Json | None = api.dashboard.get_dashboard(uid)
        except GrafanaClientError as exc:
            if not _not_found(exc):
                raise
            existing = None
    if existing is not None:
        meta = existing.get("meta", {})
        if meta.get("provisioned"):
            raise PushError(
                f"dashboard {uid} at {redact_url(url)} is provisioned from files there "
                "(deploy/grafana/provisioning): Grafana will not let the API overwrite it"
            )
        if meta.get("folderUid") == folder_uid and comparable(existing["dashboard"]) == comparable(board):
            return Pushed(uid, str(board["title"]), "unchanged", _board_url(url, meta.get("url")))
    payload = {
        "dashboard": {**comparable(board), "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": COMMIT_MESSAGE,
    }
    with talking_to(url, f"saving dashboard {uid}", timeout_s):
        saved: Json = api.dashboard.update_dashboard(payload)
    status: Status = "created" if existing is None else "updated"
    return Pushed(uid, str(board["title"]), status, _board_url(url, saved.get("url")))


def _board_url(url: str, path: object) -> str:
    return f"{redact_url(url).rstrip('/')}{path}" if isinstance(path, str) and path.startswith("/") else ""


def push_all(
    url: str,
    token: str,
    boards: Mapping[str, Json],
    *,
    folder_title: str = DEFAULT_FOLDER_TITLE,
    folder_uid: str = DEFAULT_FOLDER_UID,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PushReport:
    """Check the datasource, make sure of the folder, then save every dashboard that differs."""
    api = connect(url, token, timeout_s=timeout_s)
    try:
        source = check_datasource(api, url, timeout_s=timeout_s)
        folder = ensure_folder(api, url, title=folder_title, uid=folder_uid, timeout_s=timeout_s)
        pushed = tuple(
            push_dashboard(api, url, board, folder_uid=folder.uid, timeout_s=timeout_s) for board in boards.values()
        )
    finally:
        api.client.s.close()
    return PushReport(redact_url(url), str(source.get("name", DATASOURCE_UID)), folder, pushed)


# --------------------------------------------------------------------------------------------
# Where the dashboards come from


def load_boards(directory: Path) -> dict[str, Json]:
    """The committed dashboards: every `*.json` in `directory` (file name -> dashboard)."""
    if not directory.is_dir():
        raise PushError(f"no dashboards directory {directory} (run promo dashboards build, or pass --fresh)")
    boards: dict[str, Json] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise PushError(f"{path}: not a dashboard JSON file ({exc})") from exc
        if not isinstance(board, dict) or not board.get("uid") or not board.get("title"):
            raise PushError(f"{path}: not a dashboard (no uid or title)")
        boards[path.name] = board
    if not boards:
        raise PushError(f"no *.json dashboards in {directory} (run promo dashboards build, or pass --fresh)")
    return boards


def format_report(report: PushReport) -> str:
    lines = [
        f"grafana {report.grafana}: datasource {report.datasource!r} ok; folder {report.folder.title!r} "
        f"(uid {report.folder.uid}) {'created' if report.folder.created else 'exists'}"
    ]
    width = max(len(p.uid) for p in report.dashboards) if report.dashboards else 0
    lines += [f"{p.status:<9}  {p.uid:<{width}}  {p.title}  {p.url}".rstrip() for p in report.dashboards]
    return "\n".join(lines)
