"""The ground-truth oracle against docs/CONTRACT.md, one rule at a time.

Each rule is a small hand-written table; the hypothesis properties check that the totals do not
depend on how records are spread over partitions and batches, and that exact copies change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.kit.simulate import Record
from streams.kit.truth import TOTAL_COLUMNS, Truth, compute_truth

T0 = 1_762_790_400_000
MIN = 60_000
LATENESS = 600_000
HORIZON = 1_800_000
FUTURE = 3_600_000
MISSING = object()  # an override that removes the field


def body(kind: str = "clicks", **overrides: object) -> dict[str, object]:
    """A valid event of `kind`, with fields replaced (or removed with MISSING)."""
    obj: dict[str, object] = {
        "event_id": "e1",
        "ts": T0,
        "user_id": "u1",
        "campaign_id": "c1",
        "channel": "wechat",
    }
    if kind == "clicks":
        obj["action"] = "view"
    elif kind == "shares":
        obj["share_id"] = "s1"
    else:
        obj["order_id"] = "o1"
        obj["amount_fen"] = 9_900
    for name, value in overrides.items():
        if value is MISSING:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def rec(
    value: object,
    kind: str = "clicks",
    partition: int = 0,
    clock: int = T0 + MIN,
) -> Record:
    """A record; `value` is bytes as they are, or anything else serialised as JSON."""
    data = value if isinstance(value, bytes) else orjson.dumps(value)
    return Record(kind=kind, partition=partition, key=None, value=data, timestamp_ms=clock, send_at_s=0.0)


def truth(*records: Record, existing: Sequence[str] = (), **limits: int) -> Truth:
    return compute_truth(list(records), existing, **limits)


def outcome(t: Truth) -> dict[str, int]:
    """accepted and rejected counts in one dict, for compact expectations."""
    return {"accepted": t.accepted, **t.rejected} if t.accepted else dict(t.rejected)


def row(t: Truth, campaign_id: str, channel: str) -> dict[str, object]:
    matches = [r for r in t.totals if r["campaign_id"] == campaign_id and r["channel"] == channel]
    assert len(matches) == 1, t.totals
    return matches[0]


# --------------------------------------------------------------------------------------------
# Step 1: invalid values and elements


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff", "invalid_utf8"),
        (b'{"event_id":"\xc3\x28"', "invalid_utf8"),  # bad UTF-8 named before bad JSON
        (b'{"a":"\xed\xa0\x80"}', "invalid_utf8"),  # an encoded surrogate is not UTF-8
        (b'{"event_id":"e1"', "invalid_json"),
        (b"", "invalid_json"),
        (b"NaN", "invalid_json"),
        (b'{"ts": Infinity}', "invalid_json"),
        (b"{'event_id': 'e1'}", "invalid_json"),
        (b'{"a":1,}', "invalid_json"),
        (b'{"a":1}{"a":1}', "invalid_json"),
        (b"[]", "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (b'"event"', "not_an_object"),
        (b"true", "not_an_object"),
        (b"[[]]", "not_an_object"),
        (b"[7]", "not_an_object"),
    ],
)
def test_whole_value_reasons(value: bytes, reason: str) -> None:
    assert outcome(truth(rec(value))) == {reason: 1}


def test_too_large_is_judged_first_and_the_limit_itself_is_fine() -> None:
    valid = orjson.dumps(body())
    padded = valid[:-1] + b',"pad":"' + b"x" * (1_048_576 - len(valid) - 9) + b'"}'
    assert len(padded) == 1_048_576
    assert outcome(truth(rec(padded))) == {"accepted": 1}
    too_big = padded[:-2] + b'x"}'
    assert outcome(truth(rec(too_big))) == {"too_large": 1}
    assert outcome(truth(rec(b"\xff" * 1_048_577))) == {"too_large": 1}
    assert outcome(truth(rec(b"\xff" * 11), max_value_bytes=10)) == {"too_large": 1}
    assert outcome(truth(rec(b"\xff" * 10), max_value_bytes=10)) == {"invalid_utf8": 1}


@pytest.mark.parametrize(
    ("kind", "overrides", "expected"),
    [
        # common fields
        ("clicks", {"event_id": MISSING}, "missing_field"),
        ("clicks", {"event_id": None}, "missing_field"),  # null means absent: missing when required
        ("clicks", {"event_id": 5}, "wrong_type"),
        ("clicks", {"event_id": ""}, "bad_value"),
        ("clicks", {"event_id": "e" * 64}, None),
        ("clicks", {"event_id": "e" * 65}, "bad_value"),
        ("clicks", {"ts": MISSING}, "missing_field"),
        ("clicks", {"ts": str(T0)}, "wrong_type"),
        ("clicks", {"ts": True}, "wrong_type"),
        ("clicks", {"ts": 946_684_799_999}, "bad_value"),  # before 2000-01-01
        ("clicks", {"ts": 4_102_444_800_001}, "bad_value"),  # after 2100-01-01
        ("clicks", {"ts": T0 + 0.5}, "wrong_type"),
        ("clicks", {"ts": float(T0)}, None),  # 5.0 is an integer
        ("clicks", {"user_id": 7}, "wrong_type"),
        ("clicks", {"user_id": ""}, "bad_value"),
        ("clicks", {"campaign_id": "双" * 64}, None),  # code points, not bytes
        ("clicks", {"campaign_id": "双" * 65}, "bad_value"),
        ("clicks", {"campaign_id": "双11主会场"}, None),
        ("clicks", {"campaign_id": ""}, "bad_value"),
        ("clicks", {"channel": "x" * 32}, None),
        ("clicks", {"channel": "x" * 33}, "bad_value"),
        ("clicks", {"channel": "douyin"}, None),  # unknown channels are kept as sent
        ("clicks", {"channel": False}, "wrong_type"),
        ("clicks", {"entry": None}, None),
        ("clicks", {"entry": ""}, None),
        ("clicks", {"entry": "x" * 32}, None),
        ("clicks", {"entry": "x" * 33}, "bad_value"),
        ("clicks", {"entry": 3}, "wrong_type"),
        ("clicks", {"city_tier": None}, None),
        ("clicks", {"city_tier": 1}, None),
        ("clicks", {"city_tier": 6}, None),
        ("clicks", {"city_tier": 3.0}, None),
        ("clicks", {"city_tier": 0}, "bad_value"),
        ("clicks", {"city_tier": 7}, "bad_value"),
        ("clicks", {"city_tier": 2.5}, "wrong_type"),
        ("clicks", {"city_tier": True}, "wrong_type"),
        ("clicks", {"city_tier": "3"}, "wrong_type"),
        ("clicks", {"extra": [1, {"x": None}]}, None),  # unknown fields are ignored
        # clicks
        ("clicks", {"action": MISSING}, "missing_field"),
        ("clicks", {"action": ""}, "bad_value"),
        ("clicks", {"action": "a" * 33}, "bad_value"),
        ("clicks", {"action": 1}, "wrong_type"),
        ("clicks", {"target_id": "t" * 64}, None),
        ("clicks", {"target_id": "t" * 65}, "bad_value"),
        ("clicks", {"share_id": ""}, None),
        ("clicks", {"share_id": "s" * 65}, "bad_value"),
        # shares
        ("shares", {"share_id": MISSING}, "missing_field"),
        ("shares", {"share_id": None}, "missing_field"),
        ("shares", {"share_id": ""}, "bad_value"),
        ("shares", {"share_id": 12}, "wrong_type"),
        ("shares", {"parent_share_id": ""}, None),
        ("shares", {"parent_share_id": "p" * 65}, "bad_value"),
        ("shares", {"target": "m" * 33}, "bad_value"),
        ("shares", {"target": None}, None),
        # orders
        ("orders", {"order_id": MISSING}, "missing_field"),
        ("orders", {"order_id": 123}, "wrong_type"),
        ("orders", {"order_id": ""}, "bad_value"),
        ("orders", {"amount_fen": MISSING}, "missing_field"),
        ("orders", {"amount_fen": 0}, None),
        ("orders", {"amount_fen": 100_000_000_000}, None),
        ("orders", {"amount_fen": 100_000_000_001}, "bad_value"),
        ("orders", {"amount_fen": -1}, "bad_value"),
        ("orders", {"amount_fen": 9_900.0}, None),
        ("orders", {"amount_fen": 99.5}, "wrong_type"),
        ("orders", {"amount_fen": "9900"}, "wrong_type"),
        ("orders", {"items": 1}, None),
        ("orders", {"items": 0}, "bad_value"),
        ("orders", {"items": True}, "wrong_type"),
        ("orders", {"items": None}, None),
        ("orders", {"share_id": None}, None),
        ("orders", {"share_id": ""}, None),
        ("orders", {"share_id": "s" * 65}, "bad_value"),
    ],
)
def test_field_rules(kind: str, overrides: dict[str, object], expected: str | None) -> None:
    result = truth(rec(body(kind, **overrides), kind=kind))
    assert outcome(result) == ({"accepted": 1} if expected is None else {expected: 1})


@pytest.mark.parametrize(
    ("kind", "overrides", "expected"),
    [
        # fields in table order: the first broken field names the reason
        ("clicks", {"event_id": MISSING, "ts": "x"}, "missing_field"),
        ("clicks", {"event_id": 5, "user_id": MISSING}, "wrong_type"),
        ("clicks", {"event_id": "", "ts": MISSING}, "bad_value"),
        ("clicks", {"ts": MISSING, "user_id": 5}, "missing_field"),
        ("clicks", {"user_id": "", "channel": 5}, "bad_value"),
        ("clicks", {"city_tier": 9, "action": MISSING}, "bad_value"),  # common fields first
        ("clicks", {"entry": 5, "action": ""}, "wrong_type"),
        ("shares", {"campaign_id": MISSING, "share_id": 5}, "missing_field"),
        ("shares", {"share_id": "", "target": 5}, "bad_value"),
        ("orders", {"order_id": MISSING, "amount_fen": "x"}, "missing_field"),
        ("orders", {"amount_fen": -1, "items": True}, "bad_value"),
        ("orders", {"channel": "", "order_id": 5}, "bad_value"),
        ("orders", {"items": 0, "share_id": 5}, "bad_value"),
        # invalid is judged before future (step 1 before step 2)
        ("clicks", {"ts": T0 + 10 * FUTURE, "user_id": MISSING}, "missing_field"),
    ],
)
def test_precedence(kind: str, overrides: dict[str, object], expected: str) -> None:
    assert outcome(truth(rec(body(kind, **overrides), kind=kind))) == {expected: 1}


def test_an_array_is_judged_per_element() -> None:
    value = [body(), body(event_id="e2", user_id=MISSING), 5, body(event_id="e3", city_tier=0)]
    assert outcome(truth(rec(value))) == {"accepted": 1, "missing_field": 1, "not_an_object": 1, "bad_value": 1}


def test_an_empty_array_is_not_an_object() -> None:
    assert outcome(truth(rec(b"[]"))) == {"not_an_object": 1}
    assert outcome(truth(rec(b" [ ] "))) == {"not_an_object": 1}


def test_the_topic_decides_the_kind() -> None:
    # A click body sent to the orders topic lacks order_id and amount_fen.
    assert outcome(truth(rec(body("clicks"), kind="orders"))) == {"missing_field": 1}
    with pytest.raises(ValueError, match="kind"):
        truth(rec(body(), kind="views"))


# --------------------------------------------------------------------------------------------
# Step 2: future


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0 + FUTURE, {"accepted": 1}),  # exactly one hour ahead is not *more* than an hour
        (T0 + FUTURE + 1, {"future": 1}),
        (T0 - 5 * MIN, {"accepted": 1}),
    ],
)
def test_future_against_the_record_timestamp(ts: int, expected: dict[str, int]) -> None:
    assert outcome(truth(rec(body(ts=ts), clock=T0))) == expected


def test_future_uses_each_records_own_clock() -> None:
    ahead = body(ts=T0 + 2 * FUTURE)
    assert outcome(truth(rec(ahead, clock=T0 + 2 * FUTURE))) == {"accepted": 1}
    assert outcome(truth(rec(ahead, clock=T0), future_ms=3 * FUTURE)) == {"accepted": 1}


def test_future_is_judged_before_late() -> None:
    first = rec(body(ts=T0 + 10 * FUTURE), clock=T0 + 10 * FUTURE)  # moves the watermark far ahead
    second = rec(body(event_id="e2", ts=T0 + FUTURE + 1), clock=T0)  # future, and also "late"
    assert outcome(truth(first, second)) == {"accepted": 1, "future": 1}


# --------------------------------------------------------------------------------------------
# Step 3: late


def at(ts: int, n: int, partition: int = 0, kind: str = "clicks") -> Record:
    """Event n (its own id and user, so no dedup) at `ts` on a partition."""
    return rec(body(kind, event_id=f"e{n}", user_id=f"u{n}", order_id=f"o{n}", ts=ts), kind, partition)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([at(T0, 1), at(T0 - LATENESS, 2)], {"accepted": 2}),  # exactly at the limit
        ([at(T0, 1), at(T0 - LATENESS - 1, 2)], {"accepted": 1, "late": 1}),
        ([at(T0, 1, partition=0), at(T0 - LATENESS - 1, 2, partition=1)], {"accepted": 2}),
        ([at(T0, 1, kind="clicks"), at(T0 - LATENESS - 1, 2, kind="orders")], {"accepted": 2}),
        ([at(T0 - LATENESS - 1, 1), at(T0, 2)], {"accepted": 2}),  # first of a partition: no watermark
        ([at(T0, 1), at(T0 - 5 * MIN, 2), at(T0 - LATENESS - 1, 3)], {"accepted": 2, "late": 1}),  # max, not last
        # a late element does not move the watermark down
        ([at(T0, 1), at(T0 - 2 * LATENESS, 2), at(T0 - LATENESS, 3)], {"accepted": 2, "late": 1}),
    ],
)
def test_lateness_against_the_partition_watermark(records: list[Record], expected: dict[str, int]) -> None:
    assert outcome(truth(*records)) == expected


def test_lateness_parameter() -> None:
    records = [at(T0, 1), at(T0 - 61_000, 2)]
    assert outcome(truth(*records, lateness_ms=60_000)) == {"accepted": 1, "late": 1}
    assert outcome(truth(*records, lateness_ms=61_000)) == {"accepted": 2}


@pytest.mark.parametrize(
    "rejected",
    [
        rec(body(event_id="x", ts=T0 + 5 * LATENESS, user_id=MISSING)),  # invalid
        rec(body(event_id="x", ts=T0 + 2 * FUTURE), clock=T0),  # future
    ],
)
def test_rejected_elements_do_not_move_the_watermark(rejected: Record) -> None:
    assert truth(at(T0, 1), rejected, at(T0 - LATENESS, 2)).accepted == 2


def test_elements_earlier_in_the_same_array_count() -> None:
    value = [body(event_id="a", ts=T0 + LATENESS + 1), body(event_id="b", ts=T0)]
    assert outcome(truth(rec(value))) == {"accepted": 1, "late": 1}


def test_a_duplicate_passed_steps_1_to_3_so_it_moves_the_watermark() -> None:
    ahead = body(event_id="a", ts=T0 + LATENESS + 1)
    records = [rec(ahead, partition=0), rec(ahead, partition=1), at(T0, 2, partition=1)]
    assert outcome(truth(*records)) == {"accepted": 1, "duplicate": 1, "late": 1}


# --------------------------------------------------------------------------------------------
# Step 4: duplicates


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (body(), body(), {"accepted": 1, "duplicate": 1}),
        (body(), body(ts=T0 + HORIZON), {"accepted": 1, "duplicate": 1}),  # within: <= horizon
        (body(ts=T0 + HORIZON), body(), {"accepted": 1, "duplicate": 1}),  # either direction
        (body(), body(ts=T0 + HORIZON + 1), {"accepted": 2}),
        (body(), body(user_id="u2"), {"accepted": 2}),  # per user
        (body(), body(action="vote", channel="app"), {"accepted": 1, "duplicate": 1}),  # same id is enough
    ],
)
def test_event_id_dedup(first: dict[str, object], second: dict[str, object], expected: dict[str, int]) -> None:
    # Two partitions: the copy is judged for duplication, never for lateness.
    assert outcome(truth(rec(first, partition=0), rec(second, partition=1))) == expected


def test_event_id_dedup_spans_kinds() -> None:
    records = [rec(body("clicks")), rec(body("orders"), kind="orders"), rec(body("shares"), kind="shares")]
    assert outcome(truth(*records)) == {"accepted": 1, "duplicate": 2}


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (body("orders", event_id="e2"), {"accepted": 1, "duplicate": 1}),
        (body("orders", event_id="e2", ts=T0 + HORIZON), {"accepted": 1, "duplicate": 1}),
        (body("orders", event_id="e2", ts=T0 + HORIZON + 1), {"accepted": 2}),
        (body("orders", event_id="e2", user_id="u2"), {"accepted": 2}),
        (body("orders", event_id="e2", order_id="o2"), {"accepted": 2}),
    ],
)
def test_order_id_dedup(second: dict[str, object], expected: dict[str, int]) -> None:
    first = rec(body("orders"), kind="orders")
    assert outcome(truth(first, rec(second, kind="orders"))) == expected


def test_an_order_id_on_a_click_is_not_an_order() -> None:
    click = body("clicks", event_id="e2", order_id="o1")
    assert truth(rec(body("orders"), kind="orders"), rec(click)).accepted == 2


def test_dedup_compares_with_every_accepted_copy() -> None:
    # 0 and 40 min are both accepted (beyond the horizon of each other); 20 min is within both.
    times = [T0, T0 + 40 * MIN, T0 + 20 * MIN]
    records = [rec(body(ts=t), partition=p) for p, t in enumerate(times)]  # one partition each: never late
    assert outcome(truth(*records)) == {"accepted": 2, "duplicate": 1}


def test_dedup_compares_with_accepted_events_only() -> None:
    copy = body(event_id="late", ts=T0 - LATENESS - 1)
    records = [at(T0, 1, partition=0), rec(copy, partition=0), rec(copy, partition=1)]
    assert outcome(truth(*records)) == {"accepted": 2, "late": 1}


def test_the_first_copy_in_processing_order_wins() -> None:
    a = body("orders", event_id="e1", amount_fen=100, channel="wechat")
    b = body("orders", event_id="e2", amount_fen=300, channel="app")  # same order_id o1
    first_a = truth(rec(a, kind="orders"), rec(b, kind="orders"))
    first_b = truth(rec(b, kind="orders"), rec(a, kind="orders"))
    assert [(r["channel"], r["gmv_fen"]) for r in first_a.totals] == [("wechat", 100)]
    assert [(r["channel"], r["gmv_fen"]) for r in first_b.totals] == [("app", 300)]


def test_horizon_parameter() -> None:
    records = [rec(body()), rec(body(ts=T0 + 1_001))]
    assert truth(*records, horizon_ms=1_000).accepted == 2
    assert truth(*records, horizon_ms=1_001).accepted == 1


# --------------------------------------------------------------------------------------------
# The numbers


def test_event_counts_and_gmv() -> None:
    records = [
        rec(body("clicks", event_id="c1")),
        rec(body("clicks", event_id="c2", user_id="u2")),
        rec(body("shares", event_id="s1"), kind="shares"),
        rec(body("orders", event_id="o1", amount_fen=990), kind="orders"),
        rec(body("orders", event_id="o2", order_id="o2", amount_fen=10), kind="orders"),
    ]
    assert truth(*records).totals == [
        {
            "campaign_id": "c1",
            "channel": "wechat",
            "interactions": 3,
            "participants": 2,
            "shares": 1,
            "orders": 2,
            "gmv_fen": 1_000,
            "buyers": 1,
            "new_users": 1,
            "new_users_via_share": 0,
        }
    ]


def test_rows_sorted_with_exact_columns_and_only_for_accepted_events() -> None:
    records = [
        rec(body(event_id="a", campaign_id="双11主会场", channel="wechat")),
        rec(body(event_id="b", campaign_id="c1", channel="web")),
        rec(body(event_id="c", campaign_id="c1", channel="app")),
        rec(body(event_id="d", campaign_id="c0", channel="app", action="")),  # rejected: no row
    ]
    result = truth(*records)
    assert [(r["campaign_id"], r["channel"]) for r in result.totals] == [
        ("c1", "app"),
        ("c1", "web"),
        ("双11主会场", "wechat"),
    ]
    assert all(tuple(r) == TOTAL_COLUMNS for r in result.totals)


def test_participants_go_to_the_channel_of_the_earliest_event_not_the_first_arrival() -> None:
    later = body(event_id="e1", ts=T0 + 100, channel="wechat")
    earlier = body("shares", event_id="e2", ts=T0, channel="app")  # arrives second
    result = truth(rec(later), rec(earlier, kind="shares"))
    assert row(result, "c1", "app")["participants"] == 1
    assert row(result, "c1", "wechat")["participants"] == 0
    assert row(result, "c1", "wechat")["interactions"] == 1


@pytest.mark.parametrize(
    ("ids", "winner"),
    [
        (("e2", "e1"), "app"),
        (("e9", "e10"), "app"),  # code-point order: "e10" < "e9"
        (("a", "Z"), "app"),  # "Z" < "a"
        (("双", "z"), "app"),
        (("e1", "e2"), "wechat"),
    ],
)
def test_ties_on_ts_go_to_the_smaller_event_id(ids: tuple[str, str], winner: str) -> None:
    wechat = body(event_id=ids[0], channel="wechat")
    app = body(event_id=ids[1], channel="app")
    for order in ((wechat, app), (app, wechat)):
        result = truth(*(rec(b) for b in order))
        assert row(result, "c1", winner)["participants"] == 1


def test_participants_and_buyers_are_per_campaign() -> None:
    records = [
        rec(body(event_id="a", campaign_id="c1")),
        rec(body(event_id="b", campaign_id="c2")),
        rec(body("orders", event_id="c", campaign_id="c1"), kind="orders"),
        rec(body("orders", event_id="d", campaign_id="c2", order_id="o2"), kind="orders"),
    ]
    result = truth(*records)
    for campaign in ("c1", "c2"):
        assert row(result, campaign, "wechat")["participants"] == 1
        assert row(result, campaign, "wechat")["buyers"] == 1
    assert [r["new_users"] for r in result.totals].count(1) == 1


def test_new_user_credit_moves_when_an_earlier_order_arrives_later() -> None:
    later = body("orders", event_id="o-late", order_id="o1", ts=T0 + 100, campaign_id="c1", channel="wechat")
    earlier = body("orders", event_id="o-early", order_id="o2", ts=T0, campaign_id="c2", channel="app")
    result = truth(rec(later, kind="orders"), rec(earlier, kind="orders"))
    assert row(result, "c2", "app")["new_users"] == 1
    assert row(result, "c1", "wechat")["new_users"] == 0
    assert row(result, "c1", "wechat")["buyers"] == 1
    assert row(result, "c2", "app")["buyers"] == 1


def test_buyers_go_to_the_channel_of_the_earliest_order_in_the_campaign() -> None:
    later = body("orders", event_id="x1", order_id="o1", ts=T0 + 100, channel="wechat")
    earlier = body("orders", event_id="x2", order_id="o2", ts=T0, channel="jingxi")
    result = truth(rec(later, kind="orders"), rec(earlier, kind="orders"))
    assert row(result, "c1", "jingxi")["buyers"] == 1
    assert row(result, "c1", "wechat")["buyers"] == 0
    assert row(result, "c1", "wechat")["orders"] == 1


def test_existing_buyers_are_never_new() -> None:
    order = rec(body("orders", share_id="s1"), kind="orders")
    assert row(truth(order, existing=["u1"]), "c1", "wechat")["new_users"] == 0
    assert row(truth(order, existing=["u1"]), "c1", "wechat")["buyers"] == 1
    assert row(truth(order, existing=["u1"]), "c1", "wechat")["new_users_via_share"] == 0
    assert row(truth(order, existing=["u2"]), "c1", "wechat")["new_users"] == 1


@pytest.mark.parametrize(
    ("first_share", "second_share", "via"),
    [
        ("s1", MISSING, 1),
        (MISSING, "s1", 0),  # only the earliest order counts
        ("", "s1", 0),  # an empty share_id is no share
        (None, "s1", 0),
    ],
)
def test_new_users_via_share_follow_the_earliest_order(first_share: object, second_share: object, via: int) -> None:
    first = body("orders", event_id="x1", order_id="o1", ts=T0, share_id=first_share)
    second = body("orders", event_id="x2", order_id="o2", ts=T0 + 1, share_id=second_share)
    result = truth(rec(second, kind="orders"), rec(first, kind="orders"))
    assert row(result, "c1", "wechat")["new_users"] == 1
    assert row(result, "c1", "wechat")["new_users_via_share"] == via


def test_a_clicks_share_id_does_not_make_a_new_user_via_share() -> None:
    records = [rec(body(event_id="c", share_id="s1")), rec(body("orders", event_id="o"), kind="orders")]
    assert row(truth(*records), "c1", "wechat")["new_users_via_share"] == 0


# --------------------------------------------------------------------------------------------
# Serialisation


def test_json_round_trip_sorted_and_indented() -> None:
    records = [rec(body(campaign_id="双11主会场")), rec(b"[]"), rec(body("orders"), kind="orders")]
    result = truth(*records)
    data = result.to_json()
    assert Truth.from_json(data) == result
    assert b'\n  "accepted"' in data
    assert data.index(b'"accepted"') < data.index(b'"rejected"') < data.index(b'"totals"')


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"totals": [], "rejected": {}}', b'{"totals": [{"campaign_id": "c"}], "rejected": {}, "accepted": 0}'],
)
def test_from_json_rejects_other_shapes(data: bytes) -> None:
    with pytest.raises(ValueError, match="truth"):
        Truth.from_json(data)


# --------------------------------------------------------------------------------------------
# Properties

KINDS = ("clicks", "shares", "orders")


@st.composite
def distinct_events(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """Distinct events (unique event_id and order_id) within 5 minutes: never late, never future."""
    n = draw(st.integers(1, 30))
    events: list[tuple[str, bytes]] = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        fields: dict[str, object] = {
            # a random prefix makes the tie-break by event_id disagree with generation order
            "event_id": f"{draw(st.integers(0, 99))}-{i}",
            "ts": T0 + draw(st.integers(0, 20)) * 15_000,  # coarse, so that ties on ts happen
            "user_id": draw(st.sampled_from(("u1", "u2", "u3"))),
            "campaign_id": draw(st.sampled_from(("c1", "双11主会场"))),
            "channel": draw(st.sampled_from(("wechat", "app", "jingxi"))),
        }
        if kind == "clicks":
            fields["action"] = "view"
        elif kind == "shares":
            fields["share_id"] = f"s{i}"
        else:
            fields["order_id"] = f"o{i}"
            fields["amount_fen"] = draw(st.integers(0, 1_000_000))
            share = draw(st.sampled_from((MISSING, None, "", "s1")))
            if share is not MISSING:
                fields["share_id"] = share
        events.append((kind, orjson.dumps(fields)))
    return events


def arrange(
    elements: list[tuple[str, bytes]], order: list[int], partitions: list[int], batch_sizes: list[int]
) -> list[Record]:
    """Records holding `elements` in another order, over other partitions, in batches."""
    records: list[Record] = []
    for kind in KINDS:
        mine = [elements[i][1] for i in order if elements[i][0] == kind]
        start, n = 0, 0
        while start < len(mine):
            chunk = mine[start : start + batch_sizes[n % len(batch_sizes)]]
            value = chunk[0] if len(chunk) == 1 else b"[" + b",".join(chunk) + b"]"
            records.append(rec(value, kind=kind, partition=partitions[n % len(partitions)], clock=T0 + FUTURE))
            start += len(chunk)
            n += 1
    return records


@settings(max_examples=200, deadline=None)
@given(
    events=distinct_events(),
    copies=st.lists(st.integers(0, 1_000), max_size=6),
    data=st.data(),
)
def test_totals_do_not_depend_on_partitions_batches_or_order(
    events: list[tuple[str, bytes]], copies: list[int], data: st.DataObject
) -> None:
    elements = events + [events[i % len(events)] for i in copies]  # exact copies, as retries make
    existing = data.draw(st.lists(st.sampled_from(("u1", "u2", "u3")), unique=True))
    plain = [rec(value, kind=kind, clock=T0 + FUTURE) for kind, value in elements]
    order = data.draw(st.permutations(range(len(elements))))
    partitions = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=8))
    batch_sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=8))
    records = arrange(elements, list(order), partitions, batch_sizes)
    interleaved = data.draw(st.permutations(records))  # the topics interleave in any way
    assert truth(*interleaved, existing=existing) == truth(*plain, existing=existing)


@settings(max_examples=100, deadline=None)
@given(events=distinct_events(), copies=st.lists(st.integers(0, 1_000), min_size=1, max_size=6))
def test_exact_copies_change_nothing_but_the_duplicate_count(
    events: list[tuple[str, bytes]], copies: list[int]
) -> None:
    originals = [rec(value, kind=kind, clock=T0 + FUTURE) for kind, value in events]
    extra = [originals[i % len(originals)] for i in copies]
    with_copies = truth(*originals, *extra)
    without = truth(*originals)
    assert with_copies.totals == without.totals
    assert with_copies.accepted == without.accepted == len(events)
    assert with_copies.rejected == {"duplicate": len(copies)}


def test_numbers_beyond_double_range_make_the_value_invalid_json() -> None:
    """Contract: 1e400 makes the whole value invalid_json (orjson, the pipeline's parser, agrees)."""
    value = b'[{"event_id":"e","ts":1e400,"user_id":"u","campaign_id":"c","channel":"app","action":"v"}]'
    rec = Record("clicks", 0, None, value, T0, 0.0)
    assert compute_truth([rec], []).rejected == {"invalid_json": 1}
