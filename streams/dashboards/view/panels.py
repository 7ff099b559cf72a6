"""From a dashboard's JSON and a request to the SQL of one panel, and from its rows to JSON.

Pure code, no I/O: which dashboards there are, what a request may ask (its time range and the
dashboard's variables, nothing else), the query a panel runs with its bound parameters, and the
rows made safe for JSON (instants as epoch milliseconds, no NaN), with time series pivoted the way
Grafana reads a long table: string columns name the series, numeric columns are their values.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from streams.dashboards.grafana import Json, build_all
from streams.dashboards.view.auth import TOKEN_QUERY_KEY
from streams.dashboards.view.macros import Range, expand
from streams.dashboards.view.timerange import parse_interval, resolve
from streams.errors import MacroError, ViewRequestError

# Query parameters a request may carry besides the dashboard's variables.
RANGE_KEYS = ("from", "to")
MAX_VALUE_CHARS = 256
MAX_ROWS = 5000
# Appended to every panel query: the view reads, and a slow panel cannot hold the store's one thread.
QUERY_SETTINGS = " SETTINGS readonly = 1, max_execution_time = 10"


@dataclass(frozen=True)
class Board:
    """One dashboard as the view serves it."""

    uid: str
    doc: Json

    @property
    def title(self) -> str:
        return str(self.doc.get("title", self.uid))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(str(self.doc.get("timezone") or "Asia/Shanghai"))

    @property
    def variables(self) -> list[str]:
        return [str(v["name"]) for v in self.doc.get("templating", {}).get("list", [])]

    def variable(self, name: str) -> Json:
        for v in self.doc.get("templating", {}).get("list", []):
            if v["name"] == name:
                found: Json = v
                return found
        raise KeyError(name)

    def panel(self, panel_id: int) -> Json:
        for p in self.doc.get("panels", []):
            if p.get("id") == panel_id:
                found: Json = p
                return found
        raise KeyError(panel_id)

    def summary(self) -> Json:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.doc.get("description", ""),
            "panels": len(self.doc.get("panels", [])),
        }


def load_boards(directory: Path | None = None) -> dict[str, Board]:
    """The dashboards by uid: the JSON files of `directory`, or else the ones `promo dashboards build` writes.

    The generated ones are the committed `dashboards/*.json` byte for byte (a unit test holds them
    equal), and they ship inside the package, so an installed worker needs no checkout.
    """
    docs: Iterable[Json]
    if directory is None:
        docs = build_all().values()
    else:
        docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]
    boards = {str(d["uid"]): Board(str(d["uid"]), d) for d in docs}
    if not boards:
        raise ValueError(f"no dashboards in {directory}")
    return boards


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class PanelRequest:
    """What a panel request asks, checked: its range and the dashboard's variables."""

    range: Range
    variables: dict[str, str]


def check_value(name: str, value: str) -> str:
    """A variable's value: any text a campaign id may be (it is bound, never pasted), within reason."""
    if not value:
        raise ViewRequestError(f"{name} must not be empty")
    if len(value) > MAX_VALUE_CHARS:
        raise ViewRequestError(f"{name} is longer than {MAX_VALUE_CHARS} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ViewRequestError(f"{name} holds a control character")
    return value


def single_values(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query items as a dict; a key given twice is refused rather than one copy silently winning."""
    out: dict[str, str] = {}
    for key, value in items:
        if key in out:
            raise ViewRequestError(f"{key[:40]!r} is given more than once")
        out[key] = value
    return out


def parse_request(
    board: Board, query: Mapping[str, str], now: dt.datetime, *, panel: Json | None = None, need_variables: bool = True
) -> PanelRequest:
    """The range (the dashboard's default unless `from`/`to` override it) and every variable.

    Unknown keys are refused: a typo must not silently show the default. `token` is the
    authentication's business and ignored here.
    """
    allowed = {*RANGE_KEYS, TOKEN_QUERY_KEY, *board.variables}
    unknown = sorted(k for k in query if k not in allowed)
    if unknown:
        raise ViewRequestError(f"unknown parameter {unknown[0][:40]!r}; allowed: {', '.join(sorted(allowed))}")
    default = board.doc.get("time", {})
    minimum = parse_interval(str(panel.get("interval") or "1m")) if panel is not None else 60
    rng = resolve(
        query.get("from", str(default.get("from", "now/d"))),
        query.get("to", str(default.get("to", "now"))),
        now,
        board.timezone,
        minimum_interval_s=minimum,
    )
    variables: dict[str, str] = {}
    for name in board.variables:
        if name in query:
            variables[name] = check_value(name, query[name])
        elif need_variables:
            raise ViewRequestError(f"{name} is required by {board.uid}")
    return PanelRequest(rng, variables)


# --------------------------------------------------------------------------------------------
# Queries


@dataclass(frozen=True)
class PanelQuery:
    sql: str
    parameters: dict[str, str]


def _with_settings(sql: str) -> str:
    if " SETTINGS " in sql.upper() or " FORMAT " in sql.upper():
        raise MacroError("a dashboard query must not carry its own SETTINGS or FORMAT")
    return sql.rstrip().rstrip(";") + QUERY_SETTINGS


def panel_query(panel: Json, request: PanelRequest) -> PanelQuery:
    """The one raw-SQL target of a panel, expanded, with its variables as bound parameters."""
    targets = panel.get("targets") or []
    if len(targets) != 1 or not targets[0].get("rawSql"):
        raise MacroError(f"panel {panel.get('id')} has no single raw SQL target")
    sql, parameters = expand(str(targets[0]["rawSql"]), request.range, request.variables)
    return PanelQuery(_with_settings(sql), parameters)


def variable_query(board: Board, name: str, request: PanelRequest) -> PanelQuery:
    """The query that lists a variable's values (a query variable's `query`)."""
    spec = board.variable(name)
    if spec.get("type") != "query":
        raise MacroError(f"variable {name!r} of {board.uid} is not a query variable")
    sql, parameters = expand(str(spec["query"]), request.range, request.variables)
    return PanelQuery(_with_settings(sql), parameters)


# --------------------------------------------------------------------------------------------
# Results


def json_value(value: Any) -> Any:
    """A value ClickHouse returned, as JSON: instants in epoch ms (naive ones are UTC), no NaN."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return round(aware.timestamp() * 1000)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (uuid.UUID, dt.time)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def column_types(names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[Json]:
    """Each column's kind for display, from its first non-null value: time, number or string."""
    out = []
    for name in names:
        sample = next((r[name] for r in rows if r.get(name) is not None), None)
        if isinstance(sample, (dt.datetime, dt.date)):
            kind = "time"
        elif isinstance(sample, (int, float, decimal.Decimal)) and not isinstance(sample, bool):
            kind = "number"
        else:
            kind = "string"
        out.append({"name": name, "type": kind})
    return out


def series(columns: Sequence[Json], rows: Sequence[Mapping[str, Any]]) -> list[Json]:
    """Grafana's reading of a time-series table: one series per numeric column and label set.

    `time` is the x; string columns are labels (`channel`), so a long table (time, channel, orders)
    becomes one series per channel, and a wide one (time, orders, new_users) one per column.
    """
    if not rows:
        return []  # (an empty result may not even name its columns: chdb does not)
    if not any(c["name"] == "time" for c in columns):
        raise MacroError("a time series query must return a column named time")
    # A column with no value at all has no type to go by (column_types calls it a string): it is a
    # series with nothing to draw (the day before, when nothing was sold then), not a label "None".
    empty = {c["name"] for c in columns if all(row.get(c["name"]) is None for row in rows)}
    labels = [c["name"] for c in columns if c["type"] == "string" and c["name"] not in empty]
    values = [c["name"] for c in columns if (c["type"] == "number" or c["name"] in empty) and c["name"] != "time"]
    found: dict[tuple[str, tuple[str, ...]], Json] = {}
    for row in rows:
        key_labels = tuple(str(row[name]) for name in labels)
        for field in values:
            key = (field, key_labels)
            if key not in found:
                name = " ".join(key_labels) if key_labels and len(values) == 1 else " ".join((*key_labels, field))
                found[key] = {
                    "field": field,
                    "labels": dict(zip(labels, key_labels, strict=True)),
                    "name": name,
                    "points": [],
                }
            found[key]["points"].append([json_value(row["time"]), json_value(row[field])])
    return list(found.values())


def panel_result(panel: Json, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Json:
    """The answer to a panel request: columns, rows (at most MAX_ROWS) and, for time series, series."""
    kept = rows[:MAX_ROWS]
    columns = column_types(names, kept)
    doc: Json = {
        "columns": columns,
        "rows": [{k: json_value(v) for k, v in row.items()} for row in kept],
        "truncated": len(rows) > MAX_ROWS,
    }
    if panel.get("type") == "timeseries":
        doc["series"] = series(columns, kept)
    return doc
