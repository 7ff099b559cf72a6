"""Where a peer writes its numbers: the same ClickHouse engine, a store of its own, the same columns.

Each flush inserts summed deltas into `peer.campaign_deltas` (a SummingMergeTree: rows of one
(campaign, channel) fold into one); `peer.campaign_totals` is a view with exactly the columns of
`promo.campaign_totals`, and the same rule for which rows exist (at least one accepted event).
Writes are at-least-once, as the frameworks' own sinks are: a peer killed between a flush and its
commit would count a batch twice. The bench does not kill peers; the pipeline's sink is exactly-once.

The client is blocking; async callers run it on one thread (chdb is one engine per process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from streams.contract.facts import COUNTERS
from streams.errors import SinkError

DB = "peer"
TOTALS_COLUMNS = ("campaign_id", "channel", *COUNTERS)

SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {DB}",
    f"""CREATE TABLE IF NOT EXISTS {DB}.campaign_deltas (
        campaign_id String,
        channel LowCardinality(String),
        {", ".join(f"{c} Int64" for c in COUNTERS)}
    ) ENGINE = SummingMergeTree ORDER BY (campaign_id, channel)""",
    f"""CREATE OR REPLACE VIEW {DB}.campaign_totals AS
        SELECT campaign_id, channel, {", ".join(f"sum({c}) AS {c}" for c in COUNTERS)}
        FROM {DB}.campaign_deltas
        GROUP BY campaign_id, channel
        HAVING interactions + orders > 0
        ORDER BY campaign_id, channel""",
)


class PeerStore:
    """A chdb store under `path` (or any ClickHouse DSN), opened on first use."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._client: Client | None = None
        self.inserts = 0

    @classmethod
    def embedded(cls, path: Path) -> PeerStore:
        return cls(f"chdb://{path}")

    def _connect(self) -> Client:
        if self._client is None:
            try:
                self._client = clickhouse_connect.get_client(dsn=self.dsn)
            except Exception as exc:
                raise SinkError(f"cannot open ClickHouse at {self.dsn}: {exc}") from exc
        return self._client

    def apply_schema(self) -> None:
        client = self._connect()
        for statement in SCHEMA:
            client.command(statement)

    def insert(self, rows: list[list[Any]]) -> None:
        """[campaign_id, channel, *COUNTERS] rows (deltas); raises SinkError, never drops."""
        if not rows:
            return
        try:
            self._connect().insert(f"{DB}.campaign_deltas", rows, column_names=TOTALS_COLUMNS)
        except Exception as exc:
            raise SinkError(f"insert of {len(rows)} delta rows into {DB}.campaign_deltas failed: {exc}") from exc
        self.inserts += 1

    def totals(self) -> list[dict[str, Any]]:
        result = self._connect().query(f"SELECT {', '.join(TOTALS_COLUMNS)} FROM {DB}.campaign_totals")
        return [
            {name: (int(v) if name in COUNTERS else v) for name, v in zip(result.column_names, row, strict=True)}
            for row in result.result_rows
        ]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
