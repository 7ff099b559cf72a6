"""A corpus of hostile input: every kind of bad message a careless or malicious producer sends,
and valid-but-odd ones (emoji, Chinese, quotes, SQL fragments in ids) that must be accepted.

Each case is a named message value for one input topic; the oracle (streams.kit.truth) says what the
pipeline must do with it. `promo chaos` mixes the corpus into a realistic stream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import orjson

from streams.kit.simulate import Record


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # clicks | shares | orders
    value: bytes


def _click(ts: object, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"event_id": "h-click", "ts": ts, "user_id": "h-user", "campaign_id": "h-camp",
                               "channel": "wechat", "action": "click"}  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


def _order(ts: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"event_id": "h-order", "ts": ts, "user_id": "h-user", "campaign_id": "h-camp",
                               "channel": "app", "order_id": "h-o", "amount_fen": 990}  # fmt: skip
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def corpus(ts: int, *, tag: str = "h") -> list[Case]:
    """The cases, with event times near `ts`; `tag` keeps ids unique between calls."""

    def j(doc: object) -> bytes:
        return orjson.dumps(doc)

    def eid(name: str) -> str:
        return f"{tag}-{name}"

    nested = b"[" * 300 + b"]" * 300
    cases = [
        Case("invalid utf-8", "clicks", b'{"event_id": "\xff\xfe"}'),
        Case("truncated utf-8", "orders", '{"campaign_id": "双'.encode()[:-1]),
        Case("not json", "clicks", b"this is not json"),
        Case("truncated json", "orders", j(_order(ts))[:-7]),
        Case("trailing garbage", "clicks", j(_click(ts)) + b" }{"),
        Case("NaN", "orders", j(_order(ts, event_id=eid("nan")))[:-1] + b',"x":NaN}'),
        Case("json number", "clicks", b"42"),
        Case("json string", "clicks", b'"click"'),
        Case("json null", "shares", b"null"),
        Case("empty value", "clicks", b""),
        Case("empty array", "orders", b"[]"),
        Case("array of numbers", "clicks", b"[1, 2, 3]"),
        Case("deeply nested", "clicks", nested),
        Case("nested too deep to parse", "clicks", b"[" * 2000 + b"]" * 2000),
        Case("1 MB value", "clicks", j(_click(ts, event_id=eid("big"), pad="x" * 1_100_000))),
        Case("missing event_id", "clicks", j(_click(ts, event_id=_DROP))),
        Case("missing user_id", "orders", j(_order(ts, event_id=eid("nouser"), user_id=_DROP))),
        Case("null user_id", "orders", j(_order(ts, event_id=eid("nulluser"), user_id=None))),
        Case("ts as string", "clicks", j(_click(str(ts), event_id=eid("tsstr")))),
        Case("ts as float with fraction", "clicks", j(_click(ts + 0.5, event_id=eid("tsfrac")))),
        Case("ts in 1970", "clicks", j(_click(1000, event_id=eid("1970")))),
        Case("ts in 2100", "clicks", j(_click(4_102_444_800_000 + 1, event_id=eid("2100")))),
        Case("ts far future", "shares", j({**_click(ts + 7_200_000, event_id=eid("future")), "share_id": "s"})),
        Case("ts far past (late)", "clicks", j(_click(ts - 3_600_000, event_id=eid("late")))),
        Case("negative amount", "orders", j(_order(ts, event_id=eid("neg"), amount_fen=-100))),
        Case("absurd amount", "orders", j(_order(ts, event_id=eid("absurd"), amount_fen=10**15))),
        Case("amount as string", "orders", j(_order(ts, event_id=eid("amtstr"), amount_fen="990"))),
        Case("boolean amount", "orders", j(_order(ts, event_id=eid("amtbool"), amount_fen=True))),
        Case("city tier 7", "clicks", j(_click(ts, event_id=eid("tier7"), city_tier=7))),
        Case("id too long", "clicks", j(_click(ts, event_id="x" * 65))),
        Case("empty channel", "clicks", j(_click(ts, event_id=eid("nochan"), channel=""))),
        Case("object as campaign", "clicks", j(_click(ts, event_id=eid("objcamp"), campaign_id={"$ne": 1}))),
        Case("share without share_id", "shares", j(_click(ts, event_id=eid("noshare")))),
        Case("array with a bad element", "clicks",
             j([_click(ts, event_id=eid("arr-ok"), user_id="h-arr"), {"event_id": eid("arr-bad")}, "str"])),
        # Valid, however odd: these must be counted.
        Case("emoji campaign", "clicks", j(_click(ts, event_id=eid("emoji"), campaign_id="🔥双11🔥", user_id="h-e"))),
        Case("chinese ids", "orders", j(_order(ts, event_id=eid("中文"), user_id="用户甲", campaign_id="双11主会场",
                                               order_id=eid("订单")))),
        Case("sql in ids", "clicks", j(_click(ts, event_id=eid("sql"), user_id="'; DROP TABLE promo.facts; --",
                                              campaign_id="x' OR '1'='1"))),
        Case("quotes and control chars", "shares",
             j({**_click(ts, event_id=eid("ctl"), user_id='a"b\\c\n\t\x01', campaign_id="c\u0000d"), "share_id": "s"})),
        Case("unknown fields", "orders", j(_order(ts, event_id=eid("extra"), order_id=eid("o-extra"), extra=[1, {}]))),
    ]  # fmt: skip
    return cases


def duplicate_flood(value: bytes, copies: int) -> list[Case]:
    """The same message many times: only the first may count."""
    return [Case(f"duplicate flood {i}", "clicks", value) for i in range(copies)]


def order_resends(records: list[Record], rng: random.Random, *, rate: float = 0.1, within: int = 2000) -> list[Record]:
    """`records` with a share of their one-order messages re-sent as a new event with the same
    order_id (a client that retried an order with a fresh event_id), up to `within` messages later,
    to any partition: copies that only the order_id dedup can catch, the kind issue 14 lost."""
    out = list(records)
    later: list[tuple[int, Record]] = []
    for i, record in enumerate(records):
        if record.kind != "orders" or rng.random() >= rate:
            continue
        try:
            doc = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("event_id"), str) or "order_id" not in doc:
            continue
        doc["event_id"] = f"{doc['event_id']}-again"[:64]
        at = min(len(records) - 1, i + rng.randint(1, within))
        copy = replace(record, value=orjson.dumps(doc), partition=rng.randrange(4), key=None,
                       send_at_s=max(record.send_at_s, records[at].send_at_s))  # fmt: skip
        later.append((at, copy))
    for at, copy in sorted(later, key=lambda x: -x[0]):
        out.insert(at + 1, copy)
    return sorted(out, key=lambda r: r.send_at_s)  # stable: the copies keep their place in a tie
