"""What the Grafana ClickHouse plugin does to a panel's SQL before ClickHouse sees it.

One implementation for the local view (streams/dashboards/view/server.py) and for the dashboard tests
(tests/unit/test_dashboards.py): the plugin's macros `$__timeFilter(col)`, `$__timeInterval(col)`,
`$__interval_s`, `$__fromTime`, `$__toTime`, and Grafana's variables `${var}`, `$var` and
`'${var:percentencode}'`.

Unlike Grafana, which pastes variable values into the text, every value here becomes a ClickHouse
query parameter (`{name:String}`), bound by the server: a value can never change the SQL. The
quoted percent-encoded form becomes a parameter holding the percent-encoded text, so the
dashboard's `decodeURLComponent('${campaign:percentencode}')` still decodes to the exact value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from streams.errors import MacroError

_TIME_FILTER = re.compile(r"\$__timeFilter\((\w+)\)")
_TIME_INTERVAL = re.compile(r"\$__timeInterval\((\w+)\)")
# `'${name:percentencode}'` (quotes included) | `${name}` / `${name:fmt}` | `$name` (not `$__macro`)
_VARIABLE = re.compile(r"'\$\{(\w+):percentencode\}'|\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")


@dataclass(frozen=True)
class Range:
    """The dashboard's time range, resolved to instants, and its bucket width."""

    start: dt.datetime
    end: dt.datetime
    interval_s: int = 60

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MacroError("a time range needs timezone-aware datetimes")
        if self.interval_s < 1:
            raise MacroError(f"interval must be at least 1 s, got {self.interval_s}")


def grafana_percentencode(value: str) -> str:
    """Grafana's `${var:percentencode}`: encodeURIComponent, plus !'()* (only A-Za-z0-9-_.~ stay)."""
    return quote(value, safe="")


def expand(sql: str, rng: Range, variables: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The SQL with macros expanded and variables turned into query parameters, and the parameters.

    Raises MacroError for a variable that is not given, a format this cannot bind safely, or a
    `$` left over (a macro this does not know).
    """
    start, end = int(rng.start.timestamp()), int(rng.end.timestamp())
    sql = _TIME_FILTER.sub(rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    sql = _TIME_INTERVAL.sub(rf"toStartOfInterval(toDateTime(\1), INTERVAL {rng.interval_s} second)", sql)
    sql = sql.replace("$__interval_s", str(rng.interval_s))
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace("$__toTime", f"toDateTime({end})")
    parameters: dict[str, str] = {}

    def value_of(name: str) -> str:
        if name not in variables:
            raise MacroError(f"variable {name!r} is not set")
        return variables[name]

    def variable(match: re.Match[str]) -> str:
        encoded, name, fmt, bare = match.groups()
        if encoded is not None:
            parameters[f"{encoded}__percentencoded"] = grafana_percentencode(value_of(encoded))
            return f"{{{encoded}__percentencoded:String}}"
        name = name or bare
        if fmt is not None:
            raise MacroError(f"variable format {fmt!r} of {name!r} cannot be bound as a parameter")
        parameters[name] = value_of(name)
        return f"{{{name}:String}}"

    sql = _VARIABLE.sub(variable, sql)
    if "$" in sql:
        raise MacroError(f"unexpanded macro in: {sql}")
    return sql, parameters
