"""Unit tests of streams.lab.peers.job: the JSON glue the peers keep their state and rows in.

The property that matters: keeping a user's state as JSON between events (as a framework's state
store does) changes nothing; the numbers are those of the in-memory fold.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.aggregate.state import encode_user
from streams.aggregate.user import UserState, apply_event, mark_existing
from streams.contract.events import Event, Kind
from streams.contract.facts import Deltas
from streams.contract.wire import EVENT_FOLDED, encode_existing, event_item
from streams.lab.peers.job import (
    EXISTING_KIND,
    delta_rows,
    event_row,
    existing_row,
    existing_users,
    row_event,
    row_user,
    state_doc,
    sum_rows,
    user_state,
)

T0 = 1_762_790_400_000
HORIZON = 1_800_000

events = st.builds(
    Event,
    kind=st.sampled_from(list(Kind)),
    event_id=st.sampled_from(["e1", "e2", "e3", "e4", "e5"]),
    ts=st.integers(T0, T0 + 4 * HORIZON),
    user_id=st.sampled_from(["u1", "u2"]),
    campaign_id=st.sampled_from(["双11主会场", "c2"]),
    channel=st.sampled_from(["wechat", "app"]),
    entry=st.sampled_from(["", "moments"]),
    city_tier=st.integers(0, 6),
    share_id=st.sampled_from(["", "s1"]),
    order_id=st.sampled_from(["o1", "o2"]),
    amount_fen=st.integers(0, 10_000),
)
steps = st.lists(st.one_of(events, st.sampled_from(["u1", "u2"])), max_size=30)  # a str: import that user


def fold(items: list[Event | str], *, through_json: bool) -> tuple[Deltas, list[str | None]]:
    docs: dict[str, bytes] = {}
    memory: dict[str, UserState] = {}
    out = Deltas()
    verdicts: list[str | None] = []
    for item in items:
        user_id = item if isinstance(item, str) else item.user_id
        if through_json:
            state = user_state(orjson.loads(docs[user_id]) if user_id in docs else None)
        else:
            state = memory.setdefault(user_id, UserState())
        if isinstance(item, str):
            mark_existing(state, out)
        else:
            verdicts.append(apply_event(state, item, out, horizon_ms=HORIZON))
        if through_json:
            docs[user_id] = orjson.dumps(state_doc(state))
    return out, verdicts


@settings(max_examples=300, deadline=None)
@given(steps)
def test_state_kept_as_json_between_events_gives_the_same_numbers(items: list[Event | str]) -> None:
    plain, plain_verdicts = fold(items, through_json=False)
    kept, kept_verdicts = fold(items, through_json=True)
    assert kept_verdicts == plain_verdicts
    assert sorted(delta_rows(kept)) == sorted(delta_rows(plain))


@settings(max_examples=100, deadline=None)
@given(steps)
def test_a_peers_user_is_the_snapshots_record(items: list[Event | str]) -> None:
    """One codec: what a peer's state store keeps is the JSON of the pipeline's snapshot record."""
    users: dict[str, UserState] = {}
    out = Deltas()
    for item in items:
        if isinstance(item, str):
            mark_existing(users.setdefault(item, UserState()), out)
        else:
            apply_event(users.setdefault(item.user_id, UserState()), item, out, horizon_ms=HORIZON)
    for state in users.values():
        assert orjson.dumps(state_doc(state)) == encode_user(state)
        assert user_state(state_doc(state)) == state


@settings(max_examples=200, deadline=None)
@given(events)
def test_an_event_survives_its_routed_row(ev: Event) -> None:
    row = orjson.loads(orjson.dumps(event_row(ev)))
    assert row_user(row) == ev.user_id
    # action and target_id do not reach the numbers, so the row leaves them out
    assert row_event(row) == Event(ev.kind, ev.event_id, ev.ts, ev.user_id, ev.campaign_id, ev.channel,
                                   entry=ev.entry, city_tier=ev.city_tier, share_id=ev.share_id,
                                   order_id=ev.order_id, amount_fen=ev.amount_fen)  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(events)
def test_a_peers_row_is_the_pipelines_event_row(ev: Event) -> None:
    """One layout: what a peer routes is the span of the pipeline's routed item that stage 2 folds."""
    assert event_row(ev) == event_item("promo.clicks:0", 0, 0, ev)[EVENT_FOLDED]


def test_an_import_row_names_its_user_and_is_no_event_kind() -> None:
    row = existing_row("u9")
    assert row_user(row) == "u9" and row[0] == EXISTING_KIND
    assert EXISTING_KIND not in {int(k) for k in Kind}


@pytest.mark.parametrize(
    ("value", "users"),
    [
        (encode_existing(["u1", "u2"]), ["u1", "u2"]),
        (b'{"v":1,"existing":["u1",5,null]}', ["u1"]),
        (b'{"v":1,"items":[]}', []),
        (b"[1,2]", []),
        (b"not json", []),
        (None, []),
    ],
)
def test_existing_users_reads_import_messages_only(value: bytes | None, users: list[str]) -> None:
    assert existing_users(value) == users


def test_sum_rows_adds_equal_pairs_and_drops_rows_that_cancel() -> None:
    rows = [
        ["c1", "wechat", 1, 1, 0, 0, 0, 0, 0, 0],
        ["c1", "wechat", 2, -1, 0, 0, 0, 0, 0, 0],
        ["c1", "app", 0, 1, 0, 0, 0, 0, 0, 0],
        ["c1", "app", 0, -1, 0, 0, 0, 0, 0, 0],
    ]
    assert sum_rows(rows) == [["c1", "wechat", 3, 0, 0, 0, 0, 0, 0, 0]]
