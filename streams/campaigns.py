"""`promo campaigns import FILE.csv`: campaign names and schedules, for the screens and the detector.

The file is CSV with a header: `campaign_id,name[,starts_at,ends_at]`; times are ISO 8601 with a UTC
offset (`2026-11-11T00:00:00+08:00`, `2026-11-10T16:00:00Z`); names may be in any language (1-128
characters, no line break or other control character); an id is one as any file may hold it
(streams/contract/ids.py: 1-64 characters, no whitespace). Every line is checked; a bad one is
reported with its number and reason, and nothing is sent unless all are good. The rows go to the
`campaigns` topic (the newest import of a campaign wins); the worker that runs the sink reads the
topic at start and as it grows, into `promo.campaigns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.alerts.plan import FIRST_TIME, LAST_TIME, CsvSyntaxError, csv_rows, header_problem, parse_utc
from streams.config import Settings
from streams.contract.ids import check_id, has_control
from streams.contract.topics import Topic
from streams.errors import BrokerError

COLUMNS = ("campaign_id", "name", "starts_at", "ends_at")


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    starts_at_ms: int | None = None
    ends_at_ms: int | None = None

    def schedule_s(self) -> tuple[float | None, float | None]:
        """(starts, ends) in epoch seconds, as the detector takes a schedule."""
        return (None if self.starts_at_ms is None else self.starts_at_ms / 1000,
                None if self.ends_at_ms is None else self.ends_at_ms / 1000)  # fmt: skip

    def to_json(self) -> bytes:
        return orjson.dumps({"campaign_id": self.campaign_id, "name": self.name,
                             "starts_at_ms": self.starts_at_ms, "ends_at_ms": self.ends_at_ms})  # fmt: skip

    @classmethod
    def from_json(cls, value: bytes) -> Campaign:
        doc: Any = orjson.loads(value)
        if not isinstance(doc, dict) or not isinstance(doc.get("campaign_id"), str):
            raise ValueError("not a campaign record")
        return cls(doc["campaign_id"], str(doc.get("name") or ""), _opt_int(doc.get("starts_at_ms")),
                   _opt_int(doc.get("ends_at_ms")))  # fmt: skip


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class CampaignFile:
    campaigns: list[Campaign] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def parse_time(text: str) -> int:
    """ISO 8601 with an offset -> epoch ms; a time without an offset is refused (whose midnight?), and so
    is one outside 1970-9998 as the plan's files refuse it (a year off is a typo: a schedule from year 1
    raised a 'nothing has arrived since 0001-01-01' alert; an outside probe)."""
    at = parse_utc(text)
    if not FIRST_TIME <= at < LAST_TIME:
        raise ValueError(f"{text.strip()!r} is not from 1970 to 9998")
    return int(at * 1000)


def read_campaign_file(text: str) -> CampaignFile:
    out = CampaignFile()
    try:
        rows = csv_rows(text)
    except CsvSyntaxError as exc:
        out.rejected.append((exc.number, exc.reason))
        return out
    header = [c.strip().lower() for c in rows[0][1]] if rows else []
    if not set(header) & set(COLUMNS):  # no header at all: the first line is a campaign
        out.rejected.append((1, f"the first line must be the header {','.join(COLUMNS)} (the last two optional)"))
        return out
    problem = header_problem(header, COLUMNS, 2)
    if problem is not None:
        out.rejected.append((1, problem))
        return out
    seen: set[str] = set()
    for number, row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            out.rejected.append((number, f"{len(row)} columns, expected {len(header)}"))
            continue
        campaign_id, name = row[0].strip(), row[1].strip()
        bad_id = check_id(campaign_id, "campaign_id", spaces=True)  # the events allow "双11 主会场"
        if bad_id is not None:
            out.rejected.append((number, f"campaign_id {campaign_id[:20]!r}: {bad_id}"))
            continue
        if campaign_id in seen:
            out.rejected.append((number, f"campaign {campaign_id!r} is listed twice"))
            continue
        # A name is what the screens show for the campaign: a blank one, or one broken over lines (a
        # quoted cell may hold a line break), would show as nothing or break the leaderboard's row.
        if not name or len(name) > 128 or has_control(name):
            out.rejected.append((number, f"name {name[:20]!r}: a name has 1-128 characters and no control character "
                                 "(no line break, no tab)"))  # fmt: skip
            continue
        starts = ends = None
        try:
            if len(row) == 4:
                starts = parse_time(row[2]) if row[2].strip() else None
                ends = parse_time(row[3]) if row[3].strip() else None
        except ValueError as exc:
            out.rejected.append((number, str(exc)))
            continue
        if starts is not None and ends is not None and ends <= starts:
            out.rejected.append((number, "ends_at must be after starts_at"))
            continue
        seen.add(campaign_id)
        out.campaigns.append(Campaign(campaign_id, name, starts, ends))
    return out


async def send_campaigns(settings: Settings, campaigns: list[Campaign]) -> int:
    """Send the campaigns to the `campaigns` topic, keyed by campaign_id; the count acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, request_timeout_ms=15_000)
    try:
        await producer.start()
    except (KafkaConnectionError, OSError) as exc:
        await producer.stop()
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    try:
        topic = settings.topic(Topic.CAMPAIGNS)
        pending = [await producer.send(topic, c.to_json(), key=c.campaign_id.encode(), partition=0) for c in campaigns]
        for ack in pending:
            await ack
    finally:
        await producer.stop()
    return len(campaigns)
