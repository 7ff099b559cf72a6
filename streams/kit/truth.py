"""The ground-truth oracle: what the pipeline must report for a list of records.

`compute_truth` implements docs/CONTRACT.md plainly and on its own (it imports nothing else of the
package but the `Record` type), so that comparing it with the pipeline tests the pipeline. It
favours clarity over speed: one pass over the records in list order, which is the offset order per
(topic, partition) and the processing order that decides which of two equal copies counts.

Per element, in the contract's order:

1. invalid: the whole value (too_large, invalid_utf8, invalid_json, not_an_object), then the
   fields in table order, and per field missing_field, wrong_type, bad_value;
2. future: `ts` more than `future_ms` ahead of the record timestamp;
3. late: `ts` more than `lateness_ms` behind the (topic, partition) watermark, the greatest `ts` of
   the earlier elements there that passed steps 1-3;
4. duplicate: the same user has an accepted event with the same `event_id` (any kind), or for an
   order an accepted order with the same `order_id`, with `ts` at most `horizon_ms` away.

Then the numbers per (campaign_id, channel) over the accepted events, with every "earliest"
decided by (ts, event_id) whatever the arrival order.

Edge cases the contract leaves open are decided here as follows (and the simulator avoids them):
`null` for a required field is a wrong_type (only for optional fields does null mean absent); the
JSON grammar is RFC 8259 (NaN and Infinity are invalid_json); a number too large for a double
(1e400) parses as infinity, which is not an integer: wrong_type.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.kit.simulate import Record

TOTAL_COLUMNS: tuple[str, ...] = (
    "campaign_id",
    "channel",
    "interactions",
    "participants",
    "shares",
    "orders",
    "gmv_fen",
    "buyers",
    "new_users",
    "new_users_via_share",
)


# --------------------------------------------------------------------------------------------
# The field rules of the contract, as data


@dataclass(frozen=True)
class _Rule:
    name: str
    type: Literal["str", "int"]
    required: bool
    lo: int | None  # min length (str) or min value (int)
    hi: int | None  # max length (str) or max value (int)


def _common_rules() -> tuple[_Rule, ...]:
    return (
        _Rule("event_id", "str", True, 1, 64),
        _Rule("ts", "int", True, 946_684_800_000, 4_102_444_800_000),  # 2000-01-01 .. 2100-01-01
        _Rule("user_id", "str", True, 1, 64),
        _Rule("campaign_id", "str", True, 1, 64),
        _Rule("channel", "str", True, 1, 32),
        # Optional strings are "<= N": empty is allowed (an order's share_id may be empty: the
        # contract counts via-share orders by a *non-empty* share_id).
        _Rule("entry", "str", False, 0, 32),
        _Rule("city_tier", "int", False, 1, 6),
    )


def _kind_rules(kind: str) -> tuple[_Rule, ...]:
    if kind == "clicks":
        return (
            _Rule("action", "str", True, 1, 32),
            _Rule("target_id", "str", False, 0, 64),
            _Rule("share_id", "str", False, 0, 64),
        )
    if kind == "shares":
        return (
            _Rule("share_id", "str", True, 1, 64),
            _Rule("parent_share_id", "str", False, 0, 64),
            _Rule("target", "str", False, 0, 32),
        )
    if kind == "orders":
        return (
            _Rule("order_id", "str", True, 1, 64),
            _Rule("amount_fen", "int", True, 0, 100_000_000_000),
            _Rule("items", "int", False, 1, None),
            _Rule("share_id", "str", False, 0, 64),
        )
    raise ValueError(f"unknown record kind {kind!r}: expected clicks, shares or orders")


def _as_int(value: object) -> int | None:
    """The integer a JSON number stands for, or None when it is not an integer (5.0 is; 5.5 and
    true are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _check_rule(obj: Mapping[str, object], rule: _Rule) -> str | None:
    """The reason `rule` is broken, or None."""
    if rule.name not in obj:
        return "missing_field" if rule.required else None
    value = obj[rule.name]
    if value is None:
        # null means absent: a missing field when required, nothing when optional.
        return "missing_field" if rule.required else None
    if rule.type == "str":
        if not isinstance(value, str):
            return "wrong_type"
        size = len(value)  # code points
    else:
        number = _as_int(value)
        if number is None:
            return "wrong_type"
        size = number
    if rule.lo is not None and size < rule.lo:
        return "bad_value"
    if rule.hi is not None and size > rule.hi:
        return "bad_value"
    return None


@dataclass(frozen=True)
class _Event:
    """The fields of a valid element that the numbers need."""

    kind: str
    event_id: str
    ts: int
    user_id: str
    campaign_id: str
    channel: str
    order_id: str | None
    amount_fen: int
    share_id: str  # "" when absent or null


def _validate(element: object, kind: str, rules: tuple[_Rule, ...]) -> _Event | str:
    """The event, or the reason it is invalid (step 1, after the value as a whole)."""
    if not isinstance(element, dict):
        return "not_an_object"
    for rule in rules:
        reason = _check_rule(element, rule)
        if reason is not None:
            return reason
    ts = _as_int(element["ts"])
    if ts is None:  # unreachable: the ts rule above has passed
        return "wrong_type"
    share_id = element.get("share_id")
    order_id = element.get("order_id") if kind == "orders" else None
    amount = _as_int(element.get("amount_fen")) if kind == "orders" else 0
    return _Event(
        kind=kind,
        event_id=str(element["event_id"]),
        ts=ts,
        user_id=str(element["user_id"]),
        campaign_id=str(element["campaign_id"]),
        channel=str(element["channel"]),
        order_id=str(order_id) if order_id is not None else None,
        amount_fen=amount or 0,
        share_id=share_id if isinstance(share_id, str) else "",
    )


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """JSON numbers beyond a double's range (1e400) make the value invalid, as the contract says."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def _elements(value: bytes, max_value_bytes: int) -> list[object] | str:
    """The elements of a message value, or the reason the value as a whole is rejected."""
    if len(value) > max_value_bytes:
        return "too_large"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        parsed: object = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return "invalid_json"
    if isinstance(parsed, list):
        return list(parsed) if parsed else "not_an_object"
    if isinstance(parsed, dict):
        return [parsed]
    return "not_an_object"


# --------------------------------------------------------------------------------------------
# Acceptance


@dataclass(frozen=True)
class _Limits:
    lateness_ms: int
    horizon_ms: int
    future_ms: int
    max_value_bytes: int


class _Acceptance:
    """The state of steps 2-4 over one ordered pass: watermarks and the accepted ids."""

    def __init__(self, limits: _Limits) -> None:
        self.limits = limits
        self.accepted: list[_Event] = []
        self.rejected: Counter[str] = Counter()
        self._watermarks: dict[tuple[str, int], int] = {}
        self._event_ids: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
        self._order_ids: defaultdict[tuple[str, str], list[int]] = defaultdict(list)

    def record(self, record: Record) -> None:
        rules = (*_common_rules(), *_kind_rules(record.kind))  # the topic decides the kind
        elements = _elements(record.value, self.limits.max_value_bytes)
        if isinstance(elements, str):
            self.rejected[elements] += 1
            return
        for element in elements:
            event = _validate(element, record.kind, rules)
            if isinstance(event, str):
                self.rejected[event] += 1
                continue
            reason = self._judge(event, record)
            if reason is None:
                self._accept(event)
            else:
                self.rejected[reason] += 1

    def _judge(self, event: _Event, record: Record) -> str | None:
        """Steps 2-4; keeps the watermark up to date for elements passing 1-3."""
        if event.ts > record.timestamp_ms + self.limits.future_ms:
            return "future"
        partition = (record.kind, record.partition)
        watermark = self._watermarks.get(partition)
        if watermark is not None and event.ts < watermark - self.limits.lateness_ms:
            return "late"
        # Passed steps 1-3: it moves the watermark even if it turns out to be a duplicate.
        self._watermarks[partition] = event.ts if watermark is None else max(watermark, event.ts)
        if self._seen(self._event_ids[(event.user_id, event.event_id)], event.ts):
            return "duplicate"
        if event.order_id is not None and self._seen(self._order_ids[(event.user_id, event.order_id)], event.ts):
            return "duplicate"
        return None

    def _seen(self, accepted_ts: list[int], ts: int) -> bool:
        return any(abs(ts - other) <= self.limits.horizon_ms for other in accepted_ts)

    def _accept(self, event: _Event) -> None:
        self.accepted.append(event)
        self._event_ids[(event.user_id, event.event_id)].append(event.ts)
        if event.order_id is not None:
            self._order_ids[(event.user_id, event.order_id)].append(event.ts)


# --------------------------------------------------------------------------------------------
# The numbers


def _earliest_by(events: Iterable[_Event], *, per_campaign: bool) -> list[_Event]:
    """The earliest event by (ts, event_id) of each (campaign, user), or of each user."""
    best: dict[tuple[str, str], _Event] = {}
    for event in events:
        group = (event.campaign_id if per_campaign else "", event.user_id)
        current = best.get(group)
        if current is None or (event.ts, event.event_id) < (current.ts, current.event_id):
            best[group] = event
    return list(best.values())


def _totals(accepted: list[_Event], existing_buyers: frozenset[str]) -> list[dict[str, object]]:
    counts: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for event in accepted:
        row = counts[(event.campaign_id, event.channel)]  # every such pair gets a row
        if event.kind == "orders":
            row["orders"] += 1
            row["gmv_fen"] += event.amount_fen
        else:
            row["interactions"] += 1
            if event.kind == "shares":
                row["shares"] += 1

    # Each person is credited once, under the channel of their earliest event.
    interactions = [e for e in accepted if e.kind != "orders"]
    orders = [e for e in accepted if e.kind == "orders"]
    for first in _earliest_by(interactions, per_campaign=True):
        counts[(first.campaign_id, first.channel)]["participants"] += 1
    for first in _earliest_by(orders, per_campaign=True):
        counts[(first.campaign_id, first.channel)]["buyers"] += 1
    for first in _earliest_by(orders, per_campaign=False):
        if first.user_id in existing_buyers:
            continue
        counts[(first.campaign_id, first.channel)]["new_users"] += 1
        if first.share_id:
            counts[(first.campaign_id, first.channel)]["new_users_via_share"] += 1

    rows: list[dict[str, object]] = []
    for (campaign_id, channel), row in sorted(counts.items()):
        numbers = {name: row[name] for name in TOTAL_COLUMNS[2:]}
        rows.append({"campaign_id": campaign_id, "channel": channel, **numbers})
    return rows


# --------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True)
class Truth:
    """The expected campaign totals, rejections by reason and number of accepted events.

    `rejected` holds only the reasons that occurred (like a GROUP BY over the dead letters).
    """

    totals: list[dict[str, object]]
    rejected: dict[str, int]
    accepted: int

    def to_json(self) -> bytes:
        """Sorted and indented, so that it diffs cleanly."""
        document = {"totals": self.totals, "rejected": self.rejected, "accepted": self.accepted}
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> Truth:
        document = orjson.loads(data)
        if not isinstance(document, dict):
            raise ValueError("a truth document is a JSON object")
        totals = document.get("totals")
        rejected = document.get("rejected")
        accepted = document.get("accepted")
        if not isinstance(totals, list) or not all(isinstance(r, dict) for r in totals):
            raise ValueError("truth: totals must be a list of objects")
        if not isinstance(rejected, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in rejected.items()
        ):
            raise ValueError("truth: rejected must map reasons to counts")
        if not isinstance(accepted, int):
            raise ValueError("truth: accepted must be an integer")
        rows: list[dict[str, object]] = []
        for r in totals:
            if set(r) != set(TOTAL_COLUMNS):
                raise ValueError(f"truth: a totals row must have exactly {TOTAL_COLUMNS}")
            rows.append({name: r[name] for name in TOTAL_COLUMNS})
        return cls(totals=rows, rejected=dict(rejected), accepted=accepted)


def compute_truth(
    records: Iterable[Record],
    existing_buyers: Iterable[str],
    *,
    lateness_ms: int = 600_000,
    horizon_ms: int = 1_800_000,
    future_ms: int = 3_600_000,
    max_value_bytes: int = 1_048_576,
) -> Truth:
    """What the pipeline must report after consuming `records` in list order."""
    acceptance = _accept_all(records, _Limits(lateness_ms, horizon_ms, future_ms, max_value_bytes))
    return Truth(
        totals=_totals(acceptance.accepted, frozenset(existing_buyers)),
        rejected=dict(sorted(acceptance.rejected.items())),
        accepted=len(acceptance.accepted),
    )


def _accept_all(records: Iterable[Record], limits: _Limits) -> _Acceptance:
    acceptance = _Acceptance(limits)
    for record in records:
        acceptance.record(record)
    return acceptance


def identities(
    records: Iterable[Record],
    existing_buyers: Iterable[str],
    *,
    lateness_ms: int = 600_000,
    horizon_ms: int = 1_800_000,
    future_ms: int = 3_600_000,
    max_value_bytes: int = 1_048_576,
) -> dict[str, Mapping[Any, Any]]:
    """Who must hold what, by identity: every accepted order once in its cell, and the event or
    order holding each person's participant, buyer and new-user credit. The fields of
    `streams.kit.audit.Identities`, as plain data: this module imports nothing of the pipeline."""
    accepted = _accept_all(records, _Limits(lateness_ms, horizon_ms, future_ms, max_value_bytes)).accepted
    existing = frozenset(existing_buyers)
    orders = [e for e in accepted if e.kind == "orders"]
    counted: Counter[tuple[str, str, str, str]] = Counter(
        (e.user_id, e.order_id or "", e.campaign_id, e.channel) for e in orders
    )
    interactions = [e for e in accepted if e.kind != "orders"]
    return dict(
        orders=counted,
        participant={(e.user_id, e.campaign_id): [(e.event_id, e.channel)]
                     for e in _earliest_by(interactions, per_campaign=True)},
        buyer={(e.user_id, e.campaign_id): [(e.order_id or "", e.channel)]
               for e in _earliest_by(orders, per_campaign=True)},
        new={e.user_id: [(e.order_id or "", e.campaign_id, e.channel)]
             for e in _earliest_by(orders, per_campaign=False) if e.user_id not in existing},
    )  # fmt: skip
