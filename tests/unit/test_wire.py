"""Internal topic formats (`routed`, `deltas`) and the routing functions of `streams.contract.wire`.

What one stage writes the next must read back unchanged, and a user must always land on the same
routed partition: the per-user state of stage 2 lives there and is rebuilt from it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections import Counter
from typing import Any, Final

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.events import (
    ROW_FIELDS,
    ROW_FOLDED,
    ROW_TS,
    ROW_USER,
    Event,
    Kind,
    Reason,
    Rejection,
    event_row,
    row_event,
)
from streams.contract.facts import COUNTERS, Deltas, FactKey, RejectKey
from streams.contract.wire import (
    EVENT_FOLDED,
    EVENT_REST,
    KIND,
    REJECT_KIND,
    VERSION,
    decode_deltas,
    encode_deltas,
    encode_existing,
    encode_routed,
    event_item,
    item_event,
    reject_item,
    route,
    route_source,
)

TS_MIN: Final = 946_684_800_000
TS_MAX: Final = 4_102_444_800_000
MINUTE_MS: Final = 60_000

# -- routing ---------------------------------------------------------------------------------------

# Pinned: changing the function moves users away from the partition that holds their state.
PINNED_ROUTES: Final = [
    pytest.param("u-1", 8, 4, id="ascii"),
    pytest.param("u-1", 12, 0, id="ascii_other_count"),
    pytest.param("用户42", 8, 4, id="chinese"),
    pytest.param("😀", 3, 1, id="emoji"),
    pytest.param("", 8, 0, id="empty"),
    pytest.param("a" * 64, 1024, 341, id="long"),
    pytest.param("user-000001", 16, 15, id="numbered"),
]


@pytest.mark.parametrize(("user_id", "partitions", "expected"), PINNED_ROUTES)
def test_route_is_pinned(user_id: str, partitions: int, expected: int) -> None:
    assert route(user_id, partitions) == expected


@pytest.mark.parametrize(
    ("src", "partitions", "expected"),
    [pytest.param("promo.clicks:0", 8, 7, id="clicks_0"), pytest.param("promo.orders:11", 12, 3, id="orders_11")],
)
def test_route_source_is_pinned(src: str, partitions: int, expected: int) -> None:
    assert route_source(src, partitions) == expected


@settings(max_examples=200, deadline=None)
@given(user_id=st.text(st.characters(codec="utf-8"), max_size=64), partitions=st.integers(1, 4096))
def test_route_is_in_range_and_deterministic(user_id: str, partitions: int) -> None:
    first = route(user_id, partitions)
    assert 0 <= first < partitions
    assert route(user_id, partitions) == first
    assert 0 <= route_source(user_id, partitions) < partitions


@pytest.mark.parametrize("user_id", ["u-1", "用户42", ""], ids=["ascii", "chinese", "empty"])
def test_one_partition_takes_everyone(user_id: str) -> None:
    assert route(user_id, 1) == 0


def test_route_is_stable_across_processes() -> None:
    # Python's str hash is salted per process; the routing must not depend on it.
    users = [f"user-{i}" for i in range(50)] + ["用户42", "😀"]
    code = (
        "import sys, json; from streams.contract.wire import route; "
        "print(json.dumps([route(u, 12) for u in json.load(sys.stdin)]))"
    )
    here = [route(user, 12) for user in users]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], input=orjson.dumps(users), env=env, capture_output=True, check=True
        )
        assert orjson.loads(done.stdout) == here


def test_route_spreads_users_over_partitions() -> None:
    counts = Counter(route(f"user-{i:06d}", 8) for i in range(8000))
    assert sorted(counts) == list(range(8))
    assert min(counts.values()) > 800  # an even share is 1000


# -- routed messages -------------------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
optional_ids = st.text(st.characters(codec="utf-8"), max_size=64)
sources = st.builds(lambda t, p: f"{t}:{p}", st.sampled_from(["promo.clicks", "promo.shares", "promo.orders"]),
                    st.integers(0, 1023))  # fmt: skip
offsets = st.integers(0, 2**62)


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(list(Kind)))
    return Event(
        kind,
        draw(ids),
        draw(st.integers(TS_MIN, TS_MAX)),
        draw(ids),
        draw(ids),
        draw(st.text(min_size=1, max_size=32)),
        entry=draw(st.text(max_size=32)),
        city_tier=draw(st.integers(0, 6)),
        share_id=draw(ids) if kind is Kind.SHARE else draw(optional_ids),
        order_id=draw(ids) if kind is Kind.ORDER else "",
        amount_fen=draw(st.integers(0, 10**11)) if kind is Kind.ORDER else 0,
    )


def aggregated_fields(ev: Event) -> tuple[Any, ...]:
    """The fields a routed item carries: all that stage 2 reads (not a click's action or target)."""
    return (ev.kind, ev.event_id, ev.ts, ev.user_id, ev.campaign_id, ev.channel, ev.entry, ev.city_tier,
            ev.share_id, ev.order_id, ev.amount_fen)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    batch=st.lists(st.tuples(sources, offsets, st.integers(0, 10_000), events()), max_size=8),
    ingest_ms=st.integers(0, TS_MAX),
)
def test_routed_event_items_round_trip(batch: list[tuple[str, int, int, Event]], ingest_ms: int) -> None:
    value = encode_routed([event_item(src, offset, index, ev) for src, offset, index, ev in batch], ingest_ms)
    doc = orjson.loads(value)
    assert (doc["v"], doc["ing"], len(doc["items"])) == (VERSION, ingest_ms, len(batch))
    for item, (src, offset, index, ev) in zip(doc["items"], batch, strict=True):
        assert item[:3] == [src, offset, index]
        assert item[3] != REJECT_KIND
        back = item_event(item)
        assert aggregated_fields(back) == aggregated_fields(ev)
        assert type(back.kind) is Kind


def test_routed_event_item_keeps_types() -> None:
    ev = Event(Kind.ORDER, "e-1", TS_MIN, "用户", "双11主会场", "wechat", "moments", 3, "sh-1", "o-1", 19_900)
    (item,) = orjson.loads(encode_routed([event_item("promo.orders:2", 10, 0, ev)], 5))["items"]
    assert item == ["promo.orders:2", 10, 0, 2, "e-1", TS_MIN, "用户", "双11主会场", "wechat", "moments", 3, "sh-1",
                    "o-1", 19_900, "", ""]  # fmt: skip
    assert item_event(item) == ev


def test_the_event_row_is_one_layout() -> None:
    """An Event's fields in declared order: the row, the routed item after its position, the fold's span."""
    assert tuple(f.name for f in dataclasses.fields(Event)) == ROW_FIELDS
    assert (ROW_FIELDS[ROW_TS], ROW_FIELDS[ROW_USER], ROW_FIELDS[ROW_FOLDED]) == ("ts", "user_id", "action")
    ev = Event(Kind.CLICK, "e-1", TS_MIN, "u", "c", "wechat", "moments", 3, "sh-1", action="view", target_id="t")
    item = event_item("promo.clicks:0", 4, 1, ev)
    assert item[KIND:] == event_row(ev) and item_event(item) == ev == row_event(event_row(ev))
    assert item[EVENT_FOLDED] == event_row(ev)[:ROW_FOLDED] and item[EVENT_REST] == ["view", "t"]
    assert row_event(event_row(ev)[:ROW_FOLDED]) == dataclasses.replace(ev, action="", target_id="")


rejections = st.builds(
    Rejection,
    reason=st.sampled_from(Reason.ALL),
    detail=st.text(max_size=20),
    raw=st.binary(max_size=20),
    ts=st.one_of(st.just(0), st.integers(TS_MIN, TS_MAX)),
    campaign_id=optional_ids,
    channel=st.text(max_size=32),
)


@settings(max_examples=100, deadline=None)
@given(src=sources, offset=offsets, index=st.integers(0, 10_000), rej=rejections, kind=st.sampled_from(list(Kind)))
def test_routed_reject_items_round_trip(src: str, offset: int, index: int, rej: Rejection, kind: Kind) -> None:
    (item,) = orjson.loads(
        encode_routed([reject_item(src, offset, index, rej, kind.topic_suffix, 1_762_790_460_000)], 1)
    )["items"]
    # The arrival time, not the event's own (which a malformed element may not have).
    assert item == [src, offset, index, REJECT_KIND, rej.reason, 1_762_790_460_000, rej.campaign_id, rej.channel,
                    kind.topic_suffix]  # fmt: skip


def test_reject_kind_is_not_an_event_kind() -> None:
    assert REJECT_KIND not in {int(kind) for kind in Kind}


@settings(max_examples=50, deadline=None)
@given(users=st.lists(ids, max_size=10))
def test_existing_buyers_round_trip(users: list[str]) -> None:
    assert orjson.loads(encode_existing(users)) == {"v": VERSION, "existing": users}


# -- deltas messages -------------------------------------------------------------------------------

fact_keys = st.builds(
    FactKey,
    campaign_id=ids,
    channel=st.text(min_size=1, max_size=32),
    entry=st.text(max_size=32),
    city_tier=st.integers(0, 6),
    minute_ms=st.integers(TS_MIN // MINUTE_MS, TS_MAX // MINUTE_MS).map(lambda m: m * MINUTE_MS),
)
reject_keys = st.builds(
    RejectKey,
    topic=st.sampled_from(["clicks", "shares", "orders"]),
    reason=st.sampled_from(Reason.ALL),
    campaign_id=optional_ids,
    channel=st.text(max_size=32),
    minute_ms=st.integers(0, TS_MAX // MINUTE_MS).map(lambda m: m * MINUTE_MS),
)
rows = st.lists(st.integers(-(2**53), 2**53), min_size=len(COUNTERS), max_size=len(COUNTERS))
# Retractions cancel additions, so all-zero rows happen and are worth generating on purpose.
rows_or_zero = st.one_of(rows, st.just([0] * len(COUNTERS)))
deltas_strategy = st.builds(
    Deltas,
    facts=st.dictionaries(fact_keys, rows_or_zero, max_size=6),
    rejections=st.dictionaries(reject_keys, st.integers(-1000, 10**9), max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(
    partition=st.integers(0, 1023),
    to_offset=st.integers(-1, 2**62),
    deltas=deltas_strategy,
    max_event_ts=st.integers(0, TS_MAX),
    max_ingest_ms=st.integers(0, TS_MAX),
)
def test_deltas_round_trip(
    partition: int, to_offset: int, deltas: Deltas, max_event_ts: int, max_ingest_ms: int
) -> None:
    batch = decode_deltas(encode_deltas(partition, to_offset, deltas, max_event_ts, max_ingest_ms))
    assert (batch.partition, batch.to_offset, batch.max_event_ts, batch.max_ingest_ms) == (
        partition, to_offset, max_event_ts, max_ingest_ms,
    )  # fmt: skip
    # All-zero rows change nothing and are left out; everything else comes back exactly.
    assert batch.deltas.facts == {key: row for key, row in deltas.facts.items() if any(row)}
    assert batch.deltas.rejections == deltas.rejections
    assert batch.deltas.totals() == {k: v for k, v in deltas.totals().items() if any(v)}
    assert all(type(key) is FactKey for key in batch.deltas.facts)
    assert all(type(key) is RejectKey for key in batch.deltas.rejections)


def test_deltas_message_layout() -> None:
    deltas = Deltas()
    key = FactKey("双11主会场", "wechat", "", 2, 1_731_254_400_000)
    deltas.add(key, COUNTERS.index("orders"), 1)
    deltas.add(key, COUNTERS.index("gmv_fen"), 19_900)
    deltas.reject(RejectKey("orders", Reason.LATE, "双11主会场", "wechat", 1_731_254_400_000), 3)
    doc = orjson.loads(encode_deltas(4, 99, deltas, 1_731_254_459_999, 1_731_254_460_000))
    assert doc == {
        "v": VERSION,
        "p": 4,
        "to": 99,
        "facts": [["双11主会场", "wechat", "", 2, 1_731_254_400_000, 0, 0, 0, 1, 19_900, 0, 0, 0]],
        "rej": [["orders", "late", "双11主会场", "wechat", 1_731_254_400_000, 3]],
        "ets": 1_731_254_459_999,
        "ing": 1_731_254_460_000,
    }


def test_empty_deltas_round_trip() -> None:
    batch = decode_deltas(encode_deltas(0, -1, Deltas(), 0, 0))
    assert (batch.partition, batch.to_offset, batch.deltas, batch.max_event_ts, batch.max_ingest_ms) == (
        0, -1, Deltas(), 0, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"v": 2, "p": 0, "to": 0, "facts": [], "rej": [], "ets": 0, "ing": 0}, id="newer_version"),
        pytest.param({"v": 0, "p": 0, "to": 0, "facts": [], "rej": [], "ets": 0, "ing": 0}, id="older_version"),
        pytest.param({"p": 0, "to": 0, "facts": [], "rej": [], "ets": 0, "ing": 0}, id="no_version"),
    ],
)
def test_decode_deltas_refuses_unknown_versions(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown deltas version"):
        decode_deltas(orjson.dumps(doc))
