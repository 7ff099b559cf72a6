"""Test-only conveniences that used to sit in product code (issue 15)."""

from __future__ import annotations

from streams.contract.facts import Deltas
from streams.contract.wire import delta_rows
from streams.sink.clickhouse import ClickHouseStore


def rejected_by_reason(deltas: Deltas) -> dict[str, int]:
    """The rejection counts of `deltas`, summed by reason (as the truth keeps them)."""
    out: dict[str, int] = {}
    for key, count in deltas.rejections.items():
        out[key.reason] = out.get(key.reason, 0) + count
    return out


def insert_deltas(store: ClickHouseStore, deltas: Deltas, markers: dict[int, int]) -> int:
    """Write `deltas` as the sink would, with its markers (one atomic insert)."""
    return store.insert_wire_rows(*delta_rows(deltas), markers)
