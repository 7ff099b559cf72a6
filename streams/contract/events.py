"""Decoded event types and the decoder that turns a message value into events and rejections.

The rules are those of docs/CONTRACT.md; `schemas/*.schema.json` say the same for other languages,
and tests check the two agree. The decoder never raises on bad input: every problem becomes a
`Rejection` value with a reason, so one bad element never costs its neighbours. `decode_items` is
the same decoder for stage 1's hot path: it hands well-formed events over as routed items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import orjson

from streams.contract.topics import INPUTS

TS_MIN: Final = 946_684_800_000  # 2000-01-01T00:00:00Z: older is a broken clock, not an event
TS_MAX: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
AMOUNT_MAX_FEN: Final = 100_000_000_000  # one billion RMB in one order is not a real order
ITEMS_MAX: Final = 2**64  # `items` has no cap in the contract, but 1e300 is an integer in JSON

SOCIAL_CHANNELS: Final = ("wechat", "mobileqq", "jingxi")
# The channels docs/CONTRACT.md names (others are kept as sent, but a scope names one of these).
KNOWN_CHANNELS: Final = ("wechat", "mobileqq", "jingxi", "app", "web", "other")


class Kind(IntEnum):
    """The three input topics; the value is stable on the wire of the internal topics."""

    CLICK = 0
    SHARE = 1
    ORDER = 2

    @property
    def topic_suffix(self) -> str:
        return INPUTS[self]


class Reason:
    """Rejection reasons, as they appear in `promo.dlq` headers and in ClickHouse."""

    INVALID_UTF8: Final = "invalid_utf8"
    INVALID_JSON: Final = "invalid_json"
    NOT_AN_OBJECT: Final = "not_an_object"
    MISSING_FIELD: Final = "missing_field"
    WRONG_TYPE: Final = "wrong_type"
    BAD_VALUE: Final = "bad_value"
    TOO_LARGE: Final = "too_large"
    FUTURE: Final = "future"
    LATE: Final = "late"
    DUPLICATE: Final = "duplicate"

    ALL: Final = (
        INVALID_UTF8, INVALID_JSON, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE,
        BAD_VALUE, TOO_LARGE, FUTURE, LATE, DUPLICATE,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    """One accepted-so-far event; optional strings are '' when absent, city_tier 0 when absent."""

    kind: Kind
    event_id: str
    ts: int
    user_id: str
    campaign_id: str
    channel: str
    entry: str = ""
    city_tier: int = 0
    share_id: str = ""
    order_id: str = ""
    amount_fen: int = 0
    action: str = ""
    target_id: str = ""

    def to_json(self) -> bytes:
        """Canonical JSON of the event in the contract's field names (for the DLQ and tests)."""
        doc: dict[str, Any] = {
            "event_id": self.event_id,
            "ts": self.ts,
            "user_id": self.user_id,
            "campaign_id": self.campaign_id,
            "channel": self.channel,
        }
        if self.entry:
            doc["entry"] = self.entry
        if self.city_tier:
            doc["city_tier"] = self.city_tier
        if self.kind is Kind.CLICK:
            doc["action"] = self.action
            if self.target_id:
                doc["target_id"] = self.target_id
        if self.kind is Kind.ORDER:
            doc["order_id"] = self.order_id
            doc["amount_fen"] = self.amount_fen
        if self.share_id:
            doc["share_id"] = self.share_id
        return orjson.dumps(doc)


# The event row: an `Event`'s fields in their declared order, the kind as its int. One layout for
# every place an event travels as a list: the routed item's event part (streams/contract/wire.py,
# after the item's position; stage 1's fast path builds it literally, tests/unit/test_ingest_fast.py
# holds the two equal) and the peers' routed value (streams/lab/peers/job.py). The first ROW_FOLDED
# fields are those stage 2 folds; a row may stop there (action and target_id then read as '').
ROW_FIELDS: Final = (
    "kind", "event_id", "ts", "user_id", "campaign_id", "channel", "entry", "city_tier",
    "share_id", "order_id", "amount_fen", "action", "target_id",
)  # fmt: skip
ROW_TS: Final = 2
ROW_USER: Final = 3
ROW_FOLDED: Final = 11


def event_row(ev: Event) -> list[Any]:
    """The event as its row (see ROW_FIELDS)."""
    return [int(ev.kind), ev.event_id, ev.ts, ev.user_id, ev.campaign_id, ev.channel, ev.entry, ev.city_tier,
            ev.share_id, ev.order_id, ev.amount_fen, ev.action, ev.target_id]  # fmt: skip


def row_event(row: Sequence[Any]) -> Event:
    """The event of a row, whole or cut after ROW_FOLDED."""
    return Event(Kind(row[0]), *row[1:])


@dataclass(frozen=True, slots=True)
class Rejection:
    """An element the contract refuses; `raw` is what goes to the dead-letter topic."""

    reason: str
    detail: str
    raw: bytes
    ts: int = 0
    campaign_id: str = ""
    channel: str = ""


class _InvalidError(Exception):
    """Internal: the first broken rule of an element (never escapes this module)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _string(doc: dict[str, Any], name: str, *, max_len: int, required: bool) -> str:
    value = doc.get(name)
    if value is None:
        if required:
            raise _InvalidError(Reason.MISSING_FIELD, name)
        return ""
    if not isinstance(value, str):
        raise _InvalidError(Reason.WRONG_TYPE, name)
    if (required and not value) or len(value) > max_len:
        raise _InvalidError(Reason.BAD_VALUE, name)
    return value


def _integer(doc: dict[str, Any], name: str, *, low: int, high: int, required: bool) -> int:
    value = doc.get(name)
    if value is None:
        if required:
            raise _InvalidError(Reason.MISSING_FIELD, name)
        return 0
    # bool is a subclass of int in Python but never an integer in JSON; 5.0 is an integer in JSON.
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer():
        number = int(value)
    else:
        raise _InvalidError(Reason.WRONG_TYPE, name)
    if not low <= number <= high:
        raise _InvalidError(Reason.BAD_VALUE, name)
    return number


def parse_event(kind: Kind, doc: dict[str, Any]) -> Event:
    """Validate one decoded JSON object against the contract; raises `_InvalidError` on the first fault."""
    event_id = _string(doc, "event_id", max_len=64, required=True)
    ts = _integer(doc, "ts", low=TS_MIN, high=TS_MAX, required=True)
    user_id = _string(doc, "user_id", max_len=64, required=True)
    campaign_id = _string(doc, "campaign_id", max_len=64, required=True)
    channel = _string(doc, "channel", max_len=32, required=True)
    entry = _string(doc, "entry", max_len=32, required=False)
    city_tier = _integer(doc, "city_tier", low=1, high=6, required=False)
    common = (event_id, ts, user_id, campaign_id, channel, entry, city_tier)
    if kind is Kind.CLICK:
        action = _string(doc, "action", max_len=32, required=True)
        target_id = _string(doc, "target_id", max_len=64, required=False)
        share_id = _string(doc, "share_id", max_len=64, required=False)
        return Event(kind, *common, share_id=share_id, action=action, target_id=target_id)
    if kind is Kind.SHARE:
        share_id = _string(doc, "share_id", max_len=64, required=True)
        _string(doc, "parent_share_id", max_len=64, required=False)
        _string(doc, "target", max_len=32, required=False)
        return Event(kind, *common, share_id=share_id)
    order_id = _string(doc, "order_id", max_len=64, required=True)
    amount = _integer(doc, "amount_fen", low=0, high=AMOUNT_MAX_FEN, required=True)
    _integer(doc, "items", low=1, high=ITEMS_MAX, required=False)
    share_id = _string(doc, "share_id", max_len=64, required=False)
    return Event(kind, *common, share_id=share_id, order_id=order_id, amount_fen=amount)


def _hint(doc: dict[str, Any]) -> tuple[int, str, str]:
    """Best-effort ts/campaign/channel of a rejected object, so rejections can be charted."""
    ts = doc.get("ts")
    campaign = doc.get("campaign_id")
    channel = doc.get("channel")
    if type(ts) is float and ts.is_integer():
        ts = int(ts)
    return (
        ts if type(ts) is int and TS_MIN <= ts <= TS_MAX else 0,
        campaign if isinstance(campaign, str) and 0 < len(campaign) <= 64 else "",
        channel if isinstance(channel, str) and 0 < len(channel) <= 32 else "",
    )


def _dump(item: object) -> bytes:
    """Re-encode an array element for the DLQ; orjson refuses deeper nesting than it parses."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        return b'"<element nested too deeply to re-encode; see the source header>"'


def _element(kind: Kind, item: object, raw: bytes | None) -> Event | Rejection:
    if not isinstance(item, dict):
        return Rejection(Reason.NOT_AN_OBJECT, type(item).__name__, raw or _dump(item))
    try:
        return parse_event(kind, item)
    except _InvalidError as bad:
        ts, campaign, channel = _hint(item)
        return Rejection(bad.reason, bad.detail, raw or _dump(item), ts, campaign, channel)


def decode_value(kind: Kind, value: bytes | None, *, max_bytes: int = 1_048_576) -> list[Event | Rejection]:
    """Every element of one message value, in order, each an `Event` or a `Rejection`."""
    if value is None:
        return [Rejection(Reason.NOT_AN_OBJECT, "null value", b"")]
    if len(value) > max_bytes:
        return [Rejection(Reason.TOO_LARGE, f"{len(value)} bytes", value)]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # orjson reports bad UTF-8 as a decode error too; tell the two apart for the DLQ reader.
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return [Rejection(Reason.INVALID_UTF8, "value is not UTF-8", value)]
        return [Rejection(Reason.INVALID_JSON, str(exc)[:200], value)]
    if isinstance(doc, list):
        if not doc:
            return [Rejection(Reason.NOT_AN_OBJECT, "empty array", value)]
        return [_element(kind, item, None) for item in doc]
    return [_element(kind, doc, value)]


# Module globals load faster than Enum members (Kind.CLICK), which matters once per element.
_CLICK: Final = Kind.CLICK
_SHARE: Final = Kind.SHARE


def _fast_item(kind: Kind, doc: dict[str, Any], src: str, offset: int, index: int) -> list[Any] | None:
    """The routed event item (`streams.contract.wire.event_item`: src, offset, index, then the event
    row of ROW_FIELDS, spelled out here for speed) of a plainly well-formed object, else None.

    It decides only the common case, so it may say None to a valid object (a null optional field,
    an integer written as 5.0); never an item to an invalid one. Whatever it declines goes through
    `parse_event`, which alone names reasons, so a rejection's reason and detail cannot drift.
    """
    # Subscripts cost less than .get and a missing required field is rare. `type() is` because
    # orjson builds exact str and int, and it keeps bool out of the integers.
    try:
        event_id = doc["event_id"]
        ts = doc["ts"]
        user_id = doc["user_id"]
        campaign_id = doc["campaign_id"]
        channel = doc["channel"]
    except KeyError:
        return None
    entry = doc.get("entry", "")
    city_tier = doc.get("city_tier")
    if not (
        type(event_id) is type(user_id) is type(campaign_id) is type(channel) is type(entry) is str
        and type(ts) is int
        and TS_MIN <= ts <= TS_MAX
        and event_id
        and len(event_id) <= 64
        and user_id
        and len(user_id) <= 64
        and campaign_id
        and len(campaign_id) <= 64
        and channel
        and len(channel) <= 32
        and len(entry) <= 32
        and (city_tier is None or (type(city_tier) is int and 1 <= city_tier <= 6))
    ):
        return None
    if city_tier is None:
        city_tier = 0
    if kind is _CLICK:
        try:
            action = doc["action"]
        except KeyError:
            return None
        target_id = doc.get("target_id", "")
        share_id = doc.get("share_id", "")
        if (
            type(action) is type(target_id) is type(share_id) is str
            and action
            and len(action) <= 32
            and len(target_id) <= 64
            and len(share_id) <= 64
        ):
            return [src, offset, index, 0, event_id, ts, user_id, campaign_id, channel, entry, city_tier, share_id,
                    "", 0, action, target_id]  # fmt: skip
        return None
    if kind is _SHARE:
        try:
            share_id = doc["share_id"]
        except KeyError:
            return None
        parent = doc.get("parent_share_id", "")
        target = doc.get("target", "")
        if (
            type(share_id) is type(parent) is type(target) is str
            and share_id
            and len(share_id) <= 64
            and len(parent) <= 64
            and len(target) <= 32
        ):
            return [src, offset, index, 1, event_id, ts, user_id, campaign_id, channel, entry, city_tier, share_id,
                    "", 0, "", ""]  # fmt: skip
        return None
    try:
        order_id = doc["order_id"]
        amount = doc["amount_fen"]
    except KeyError:
        return None
    items = doc.get("items")
    share_id = doc.get("share_id", "")
    if (
        type(order_id) is type(share_id) is str
        and type(amount) is int
        and order_id
        and len(order_id) <= 64
        and 0 <= amount <= AMOUNT_MAX_FEN
        and (items is None or (type(items) is int and 1 <= items <= ITEMS_MAX))
        and len(share_id) <= 64
    ):
        return [src, offset, index, 2, event_id, ts, user_id, campaign_id, channel, entry, city_tier, share_id,
                order_id, amount, "", ""]  # fmt: skip
    return None


def decode_items(
    kind: Kind, value: bytes | None, src: str, offset: int, max_bytes: int
) -> list[list[Any] | Event | Rejection]:
    """`decode_value` for stage 1, with most events already as their routed items.

    Element i is `event_item(src, offset, i, e)` (streams/contract/wire.py) where `decode_value`'s element
    e is an `Event` of the common shape; otherwise it is `decode_value`'s element itself. Stage 1
    routes an event as that list, so a well-formed one costs no `Event` and no per-field calls.
    """
    doc: Any
    try:
        doc = orjson.loads(value) if value is not None and len(value) <= max_bytes else None
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is dict:
        return [_fast_item(kind, doc, src, offset, 0) or _element(kind, doc, value)]
    if type(doc) is list and doc:
        return [
            (_fast_item(kind, item, src, offset, index) if type(item) is dict else None) or _element(kind, item, None)
            for index, item in enumerate(doc)
        ]
    # Refused as a whole, not an object, or an empty array: rare, so decode_value parses again to say why.
    return [*decode_value(kind, value, max_bytes=max_bytes)]
