"""Unit tests of streams.contract.facts: the partition gate, per-user exact counting, and its properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.aggregate.user import UserState, apply_event, mark_existing
from streams.contract.events import Event, Kind, Reason
from streams.contract.facts import COUNTERS, Deltas, FactKey, minute_of
from streams.ingest.gate import PartitionGate

T0 = 1_762_790_400_000  # 2025-11-10T16:00:00Z, 00:00 on Nov 11 in Beijing
HORIZON = 1_800_000


def click(eid: str, ts: int, user: str = "u1", campaign: str = "c1", channel: str = "wechat", **kw: object) -> Event:
    return Event(Kind.CLICK, eid, ts, user, campaign, channel, action="click", **kw)  # type: ignore[arg-type]


def share(eid: str, ts: int, user: str = "u1", campaign: str = "c1", channel: str = "wechat") -> Event:
    return Event(Kind.SHARE, eid, ts, user, campaign, channel, share_id=f"s-{eid}")


def order(
    eid: str, ts: int, user: str = "u1", campaign: str = "c1", channel: str = "wechat", *,
    order_id: str | None = None, amount: int = 100, share_id: str = "",
) -> Event:  # fmt: skip
    return Event(Kind.ORDER, eid, ts, user, campaign, channel, order_id=order_id or f"o-{eid}",
                 amount_fen=amount, share_id=share_id)  # fmt: skip


def totals(deltas: Deltas) -> dict[tuple[str, str], dict[str, int]]:
    """Non-zero per-(campaign, channel) totals as dicts, for readable assertions."""
    out = {}
    for key, row in deltas.totals().items():
        named = {name: value for name, value in zip(COUNTERS, row, strict=True) if value}
        if named:
            out[key] = named
    return out


def run(events: list[Event], existing: frozenset[str] = frozenset()) -> Deltas:
    users: dict[str, UserState] = {}
    out = Deltas()
    for user in existing:
        mark_existing(users.setdefault(user, UserState()), out)
    for ev in events:
        apply_event(users.setdefault(ev.user_id, UserState()), ev, out, horizon_ms=HORIZON)
    return out


# -- the gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        pytest.param([T0, T0 - 600_000], [None, None], id="exactly-at-lateness-accepted"),
        pytest.param([T0, T0 - 600_001], [None, Reason.LATE], id="one-ms-beyond-late"),
        pytest.param([T0, T0 - 600_001, T0 - 1], [None, Reason.LATE, None], id="late-does-not-move-watermark"),
        pytest.param([T0 + 3_600_001, T0 - 5_000_000], [Reason.FUTURE, None], id="future-does-not-move-watermark"),
        pytest.param([T0 + 3_600_000], [None], id="exactly-one-hour-ahead-accepted"),
        pytest.param([T0 - 10_000_000, T0, T0 - 10_000_000], [None, None, Reason.LATE], id="watermark-moves-forward"),
    ],
)
def test_gate(sequence: list[int], expected: list[str | None]) -> None:
    gate = PartitionGate(allowed_lateness_ms=600_000, future_limit_ms=3_600_000)
    assert [gate.admit(ts, clock_ms=T0) for ts in sequence] == expected


# -- counting ---------------------------------------------------------------------------------


def test_counts_and_distinct_people() -> None:
    out = run([
        click("e1", T0), click("e2", T0 + 1), share("e3", T0 + 2),
        click("e4", T0, user="u2", channel="mobileqq"),
        order("e5", T0 + 5, amount=990), order("e6", T0 + 6, amount=10),
    ])  # fmt: skip
    assert totals(out) == {
        ("c1", "wechat"): {"interactions": 3, "participants": 1, "shares": 1, "orders": 2, "gmv_fen": 1000,
                           "buyers": 1, "new_users": 1},
        ("c1", "mobileqq"): {"interactions": 1, "participants": 1},
    }  # fmt: skip


def test_participant_credit_moves_to_earlier_event_and_channel() -> None:
    out = run([click("e2", T0 + 10_000, channel="wechat"), share("e1", T0, channel="jingxi")])
    assert totals(out) == {
        ("c1", "wechat"): {"interactions": 1},
        ("c1", "jingxi"): {"interactions": 1, "participants": 1, "shares": 1},
    }


def test_tie_on_ts_is_broken_by_event_id() -> None:
    out = run([click("b", T0, channel="wechat"), click("a", T0, channel="app")])
    assert totals(out)[("c1", "app")]["participants"] == 1
    assert "participants" not in totals(out)[("c1", "wechat")]


def test_new_user_moves_to_earliest_order_across_campaigns() -> None:
    out = run([
        order("late", T0 + 60_000, campaign="c2", channel="app"),
        order("early", T0, campaign="c1", channel="jingxi", share_id="sh"),
    ])  # fmt: skip
    t = totals(out)
    assert t[("c1", "jingxi")]["new_users"] == 1
    assert t[("c1", "jingxi")]["new_users_via_share"] == 1
    assert "new_users" not in t[("c2", "app")]
    assert t[("c2", "app")]["buyers"] == 1  # still a buyer of c2


@pytest.mark.parametrize("import_first", [True, False], ids=["import-before", "import-after"])
def test_existing_buyers_are_never_new_whenever_imported(import_first: bool) -> None:
    users: dict[str, UserState] = {}
    out = Deltas()
    steps = [lambda: mark_existing(users.setdefault("u1", UserState()), out),
             lambda: apply_event(users.setdefault("u1", UserState()), order("e1", T0, share_id="s"), out,
                                 horizon_ms=HORIZON)]  # fmt: skip
    for step in steps if import_first else reversed(steps):
        step()
    assert totals(out) == {("c1", "wechat"): {"orders": 1, "gmv_fen": 100, "buyers": 1}}


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(click("e1", T0 + 1000), Reason.DUPLICATE, id="same-event-id"),
        pytest.param(order("e1", T0 + 1000), Reason.DUPLICATE, id="same-event-id-other-kind"),
        pytest.param(click("e1", T0 + HORIZON), Reason.DUPLICATE, id="at-horizon"),
        pytest.param(click("e1", T0 + HORIZON + 1), None, id="beyond-horizon"),
        pytest.param(click("e1", T0 - HORIZON - 1), None, id="beyond-horizon-backwards"),
        pytest.param(click("e2", T0 + 1), None, id="other-id"),
    ],
)
def test_dedup_by_event_id(second: Event, expected: str | None) -> None:
    state = UserState()
    assert apply_event(state, click("e1", T0), Deltas(), horizon_ms=HORIZON) is None
    assert apply_event(state, second, Deltas(), horizon_ms=HORIZON) == expected


def test_dedup_orders_by_order_id() -> None:
    state = UserState()
    out = Deltas()
    assert apply_event(state, order("e1", T0, order_id="O1"), out, horizon_ms=HORIZON) is None
    assert apply_event(state, order("e2", T0 + 5, order_id="O1"), out, horizon_ms=HORIZON) == Reason.DUPLICATE
    assert totals(out)[("c1", "wechat")]["orders"] == 1


def test_minute_series_sums_to_totals_and_credit_sits_at_its_minute() -> None:
    out = run([click("e2", T0 + 120_000), click("e1", T0 + 1_000)])
    by_minute = {(k.minute_ms, COUNTERS[i]): v for k, row in out.facts.items() for i, v in enumerate(row) if v}
    assert by_minute == {
        (minute_of(T0 + 120_000), "interactions"): 1,
        (minute_of(T0 + 1_000), "interactions"): 1,
        (minute_of(T0 + 1_000), "participants"): 1,
    }


def test_merge_adds() -> None:
    a, b = Deltas(), Deltas()
    key = FactKey("c", "wechat", "", 0, T0)
    a.add(key, 0, 2)
    b.add(key, 0, 3)
    b.add(key._replace(channel="app"), 1, 1)
    a.merge(b)
    assert a.facts[key][0] == 5 and a.facts[key._replace(channel="app")][1] == 1


# -- properties -------------------------------------------------------------------------------

USERS = [f"u{i}" for i in range(4)]
CAMPAIGNS = ["c1", "c2"]
CHANNELS = ["wechat", "mobileqq", "jingxi", "app"]


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 40))
    events = []
    for i in range(n):
        kind = draw(st.sampled_from(list(Kind)))
        user = draw(st.sampled_from(USERS))
        camp = draw(st.sampled_from(CAMPAIGNS))
        chan = draw(st.sampled_from(CHANNELS))
        ts = T0 + draw(st.integers(0, 600_000))
        eid = f"e{i}"
        if kind is Kind.ORDER:
            events.append(order(eid, ts, user, camp, chan, amount=draw(st.integers(0, 10_000)),
                                share_id=draw(st.sampled_from(["", "s1"]))))  # fmt: skip
        elif kind is Kind.SHARE:
            events.append(share(eid, ts, user, camp, chan))
        else:
            events.append(click(eid, ts, user, camp, chan))
    # Exact copies, as a retrying producer sends them.
    events += draw(st.lists(st.sampled_from(events), max_size=5))
    return events


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.randoms(use_true_random=False), st.sets(st.sampled_from(USERS)))
def test_totals_do_not_depend_on_arrival_order(events: list[Event], rnd: random.Random, existing: set[str]) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert totals(run(events, frozenset(existing))) == totals(run(shuffled, frozenset(existing)))


@settings(max_examples=200, deadline=None)
@given(event_lists(), st.integers(0, 40))
def test_partial_aggregates_merge_to_the_whole(events: list[Event], cut: int) -> None:
    """Aggregating in two batches and merging the deltas equals aggregating all at once."""
    users: dict[str, UserState] = {}
    first, second = Deltas(), Deltas()
    for i, ev in enumerate(events):
        apply_event(users.setdefault(ev.user_id, UserState()), ev, first if i < cut else second, horizon_ms=HORIZON)
    first.merge(second)
    assert totals(first) == totals(run(events))


@settings(max_examples=100, deadline=None)
@given(event_lists(), st.integers(0, 40))
def test_replaying_a_prefix_changes_nothing(events: list[Event], prefix: int) -> None:
    """Events seen again (a consumer replay) are duplicates and move no number."""
    users: dict[str, UserState] = {}
    out = Deltas()
    for ev in [*events, *events[:prefix]]:
        apply_event(users.setdefault(ev.user_id, UserState()), ev, out, horizon_ms=HORIZON)
    assert totals(out) == totals(run(events))


def test_distinct_counts_match_a_brute_force_count() -> None:
    rnd = random.Random(7)
    events = [click(f"e{i}", T0 + rnd.randrange(100_000), rnd.choice(USERS), rnd.choice(CAMPAIGNS),
                    rnd.choice(CHANNELS)) for i in range(300)]  # fmt: skip
    t = run(events).totals()
    for camp in CAMPAIGNS:
        people = {e.user_id for e in events if e.campaign_id == camp}
        assert sum(row[1] for (c, _), row in t.items() if c == camp) == len(people)
