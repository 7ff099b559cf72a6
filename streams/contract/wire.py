"""Formats of the internal topics (`routed`, `deltas`) and the user-routing function.

Both are compact JSON arrays (orjson), versioned by a leading field so a rolling upgrade can tell old
from new. They are internal: producers outside the pipeline never write them.

routed message: {"v": 1, "ing": <max Kafka timestamp of the inputs, ms>, "gen": <consumer generation
                 the inputs were read in>, "wm": {src: stage-1 watermark}, "items": [item, ...]}
    event item:  [src, offset, index, kind, event_id, ts, user_id, campaign_id, channel, entry,
                  city_tier, share_id, order_id, amount_fen, action, target_id]
    reject item: [src, offset, index, -1, reason, arrival_ms, campaign_id, channel, topic_suffix]
                 (arrival_ms: the input record's Kafka timestamp; before 2026-12-05 the event's ts)
  or {"v": 1, "existing": [user_id, ...]} for imported existing buyers.
  `src` is "topic:partition" of the input; (offset, index) orders the items of one src.

deltas message: {"v": 1, "p": routed partition, "to": last routed offset covered,
                 "facts": [[campaign, channel, entry, city_tier, minute_ms, *COUNTERS], ...],
                 "rej": [[topic, reason, campaign, channel, minute_ms, count], ...],
                 "ets": max event ts, "ing": max ingest timestamp,
                 "g": the owner's consumer generation when not 0 (streams/sink/markers.py),
                 "audit": [identity row, ...] only with PROMO_AUDIT (streams/aggregate/audit.py)}
  or a fence: the same with "fence": 1, "to": -1 and no rows, written by a new owner first.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from streams.contract.events import ROW_FIELDS, ROW_FOLDED, ROW_TS, ROW_USER, Event, Rejection, event_row, row_event
from streams.contract.facts import COUNTERS, Deltas, FactKey, RejectKey, iter_rows

VERSION = 1
REJECT_KIND = -1

# The slots of a routed item, named (the wire keeps orjson's positional arrays, byte for byte).
# Readers unpack a whole span at once with these slices: one subscript and an unpacking, as fast as
# the literal indices they replace (measured: docs/PERFORMANCE.md, "named routed slots").
SRC, OFFSET, INDEX, KIND = 0, 1, 2, 3
POSITION = slice(SRC, KIND)  # src, offset, index: where the item came from, its order within src
# An event item after POSITION is the event row (streams/contract/events.py, ROW_FIELDS): kind,
# event_id, ts, user_id, campaign_id, channel, entry, city_tier, share_id, order_id, amount_fen (the
# fields stage 2 folds), then action, target_id.
EVENT_FOLDED = slice(KIND, KIND + ROW_FOLDED)
EVENT_REST = slice(KIND + ROW_FOLDED, KIND + len(ROW_FIELDS))
TS, USER = KIND + ROW_TS, KIND + ROW_USER  # what stage 1 reads of an item: the gate's time, the route's key
# A reject item after KIND (-1): reason, arrival_ms, campaign_id, channel, topic_suffix.
REJECT_FIELDS = slice(4, 9)


def route(user_id: str, partitions: int) -> int:
    """The routed partition that owns a user (stable across processes and restarts)."""
    return zlib.crc32(user_id.encode()) % partitions


def route_source(src: str, partitions: int) -> int:
    """Where rejections of one input partition go: one place, so their order is kept."""
    return zlib.crc32(src.encode()) % partitions


def event_item(src: str, offset: int, index: int, ev: Event) -> list[Any]:
    # Stage 1 builds this list straight from the JSON (events._fast_item, no Event in between), so
    # this is its slow path: events of a shape the fast path leaves to parse_event.
    return [src, offset, index, *event_row(ev)]


def reject_item(src: str, offset: int, index: int, rej: Rejection, topic_suffix: str, arrival_ms: int) -> list[Any]:
    """A refused element: counted by the minute it ARRIVED (its input record's Kafka timestamp), so
    late events and rejections plot at the moment they came, and one whose own time could not be
    read has a minute too."""
    return [src, offset, index, REJECT_KIND, rej.reason, arrival_ms, rej.campaign_id, rej.channel, topic_suffix]


def item_event(item: list[Any]) -> Event:
    """The event of a routed event item (for rejections and duplicates: off the hot path)."""
    return row_event(item[KIND:])


def encode_routed(
    items: list[list[Any]], ingest_ms: int, generation: int = 0, watermarks: dict[str, int] | None = None
) -> bytes:
    return orjson.dumps({"v": VERSION, "ing": ingest_ms, "gen": generation, "wm": watermarks or {}, "items": items})


def encode_existing(user_ids: list[str]) -> bytes:
    return orjson.dumps({"v": VERSION, "existing": user_ids})


@dataclass(frozen=True)
class DeltaBatch:
    """One decoded deltas message."""

    partition: int
    to_offset: int
    deltas: Deltas
    max_event_ts: int
    max_ingest_ms: int


@dataclass(frozen=True)
class DeltaRows:
    """One deltas message as its wire rows, for a writer that only forwards them (no merging in Python)."""

    partition: int
    to_offset: int
    facts: list[list[Any]]  # [campaign, channel, entry, city_tier, minute_ms, *COUNTERS]
    rejections: list[list[Any]]  # [topic, reason, campaign, channel, minute_ms, count]
    max_event_ts: int
    max_ingest_ms: int
    generation: int = 0  # the owner's consumer generation (streams/sink/markers.py)
    fence: bool = False


def delta_rows(deltas: Deltas) -> tuple[list[list[Any]], list[list[Any]]]:
    """The wire rows of `deltas`: non-zero fact rows and rejection counts."""
    facts = [[*key, *row] for key, row in iter_rows(deltas)]
    rej = [[*key, count] for key, count in deltas.rejections.items()]
    return facts, rej


def encode_deltas(
    partition: int,
    to_offset: int,
    deltas: Deltas,
    max_event_ts: int,
    max_ingest_ms: int,
    audit: list[list[Any]] | None = None,
    generation: int = 0,
) -> bytes:
    facts, rej = delta_rows(deltas)
    doc = {"v": VERSION, "p": partition, "to": to_offset, "facts": facts, "rej": rej}
    doc["ets"] = max_event_ts
    doc["ing"] = max_ingest_ms
    if generation:  # absent reads as 0 (streams/sink/markers.py), so a first-generation batch is as before
        doc["g"] = generation
    if audit:  # only with PROMO_AUDIT (streams/aggregate/audit.py); readers that do not audit ignore it
        doc["audit"] = audit
    return orjson.dumps(doc)


def encode_fence(partition: int, generation: int) -> bytes:
    """A new owner's first deltas message: no rows, its generation (streams/sink/markers.py)."""
    doc = {"v": VERSION, "p": partition, "to": -1, "facts": [], "rej": [], "ets": 0, "ing": 0}
    return orjson.dumps({**doc, "g": generation, "fence": 1})


def decode_audit(value: bytes) -> tuple[int, int, list[list[Any]], int, bool]:
    """(routed partition, last routed offset covered, identity rows, generation, fence) of one deltas message."""
    doc = orjson.loads(value)
    return doc["p"], doc["to"], doc.get("audit", []), doc.get("g", 0), bool(doc.get("fence"))


def decode_delta_rows(value: bytes) -> DeltaRows:
    doc = orjson.loads(value)
    if doc.get("v") != VERSION:
        raise ValueError(f"unknown deltas version {doc.get('v')!r}")
    return DeltaRows(
        doc["p"], doc["to"], doc["facts"], doc["rej"], doc["ets"], doc["ing"], doc.get("g", 0), bool(doc.get("fence"))
    )


def decode_deltas(value: bytes) -> DeltaBatch:
    rows = decode_delta_rows(value)
    deltas = Deltas()
    width = len(COUNTERS)
    for row in rows.facts:
        deltas.facts[FactKey(*row[:5])] = list(row[5 : 5 + width])
    for row in rows.rejections:
        deltas.reject(RejectKey(*row[:5]), row[5])
    return DeltaBatch(rows.partition, rows.to_offset, deltas, rows.max_event_ts, rows.max_ingest_ms)
