"""`decode_value`: rejection reasons and their precedence (docs/CONTRACT.md, "Acceptance", step 1).

Tables feed message values through the decoder and assert the exact list of events and rejections
that comes out. Stream-level reasons (future, late, duplicate) are not the decoder's and are tested
with the pipeline.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.events import Event, Kind, Reason, Rejection, decode_value

TS: Final = 1_731_254_400_000  # 2024-11-11T00:00:00+08:00
TS_MIN: Final = 946_684_800_000
TS_MAX: Final = 4_102_444_800_000
DROP: Final = object()  # a change that removes the field

BASE: Final[dict[Kind, dict[str, Any]]] = {
    Kind.CLICK: {"event_id": "e-1", "ts": TS, "user_id": "u-1", "campaign_id": "双11主会场", "channel": "wechat",
                 "action": "click"},
    Kind.SHARE: {"event_id": "e-2", "ts": TS, "user_id": "u-1", "campaign_id": "双11主会场", "channel": "wechat",
                 "share_id": "sh-1"},
    Kind.ORDER: {"event_id": "e-3", "ts": TS, "user_id": "u-1", "campaign_id": "双11主会场", "channel": "wechat",
                 "order_id": "o-1", "amount_fen": 19_900},
}  # fmt: skip


def doc_of(kind: Kind, changes: dict[str, object] | None = None) -> dict[str, Any]:
    doc = dict(BASE[kind])
    for name, value in (changes or {}).items():
        if value is DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


def encode(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def only(results: list[Event | Rejection]) -> Event | Rejection:
    assert len(results) == 1, results
    return results[0]


def rejection(results: list[Event | Rejection]) -> Rejection:
    result = only(results)
    assert isinstance(result, Rejection), result
    return result


# -- the value as a whole --------------------------------------------------------------------------

VALID_CLICK: Final = encode(BASE[Kind.CLICK])

WHOLE_VALUE_CASES: Final = [
    # invalid_utf8
    pytest.param(b"\xff", Reason.INVALID_UTF8, id="utf8-lone_ff"),
    pytest.param(b'{"event_id": "\xc3"}', Reason.INVALID_UTF8, id="utf8-truncated_sequence"),
    pytest.param(b'"\xc0\xaf"', Reason.INVALID_UTF8, id="utf8-overlong"),
    pytest.param(b'"\xed\xa0\x80"', Reason.INVALID_UTF8, id="utf8-encoded_surrogate"),
    pytest.param(VALID_CLICK.replace("双".encode(), b"\xe5\x8f"), Reason.INVALID_UTF8, id="utf8-inside_valid_event"),
    pytest.param(b"{\xff", Reason.INVALID_UTF8, id="utf8-before_invalid_json"),
    pytest.param("{'event_id': 'é'}".encode("latin-1"), Reason.INVALID_UTF8, id="utf8-latin1"),
    # invalid_json
    pytest.param(b"", Reason.INVALID_JSON, id="json-empty"),
    pytest.param(b"   ", Reason.INVALID_JSON, id="json-blank"),
    pytest.param(b"{", Reason.INVALID_JSON, id="json-unclosed_object"),
    pytest.param(VALID_CLICK[:-1], Reason.INVALID_JSON, id="json-truncated_event"),
    pytest.param(b'{"event_id": "e",}', Reason.INVALID_JSON, id="json-trailing_comma"),
    pytest.param(b"{'event_id': 'e'}", Reason.INVALID_JSON, id="json-single_quotes"),
    pytest.param(b"{event_id: 1}", Reason.INVALID_JSON, id="json-bare_key"),
    pytest.param(VALID_CLICK + VALID_CLICK, Reason.INVALID_JSON, id="json-two_objects"),
    pytest.param(VALID_CLICK + b" x", Reason.INVALID_JSON, id="json-trailing_garbage"),
    pytest.param(b"NaN", Reason.INVALID_JSON, id="json-nan"),
    pytest.param(b"\xef\xbb\xbf" + VALID_CLICK, Reason.INVALID_JSON, id="json-byte_order_mark"),
    pytest.param(VALID_CLICK.replace(b'"e-1"', b'"\\ud800"'), Reason.INVALID_JSON, id="json-escaped_lone_surrogate"),
    pytest.param(b"[" * 2000, Reason.INVALID_JSON, id="json-2000_unclosed_brackets"),
    pytest.param(b"[" * 2000 + b"]" * 2000, Reason.INVALID_JSON, id="json-2000_levels_deep"),
    pytest.param(b'{"x":' * 2000 + b"1" + b"}" * 2000, Reason.INVALID_JSON, id="json-2000_objects_deep"),
    # not_an_object
    pytest.param(None, Reason.NOT_AN_OBJECT, id="object-null_value"),
    pytest.param(b"null", Reason.NOT_AN_OBJECT, id="object-json_null"),
    pytest.param(b"5", Reason.NOT_AN_OBJECT, id="object-number"),
    pytest.param(b"1.5", Reason.NOT_AN_OBJECT, id="object-float"),
    pytest.param(b'"event"', Reason.NOT_AN_OBJECT, id="object-string"),
    pytest.param(b"true", Reason.NOT_AN_OBJECT, id="object-true"),
    pytest.param(b"[]", Reason.NOT_AN_OBJECT, id="object-empty_array"),
    pytest.param(b" [ \n ] ", Reason.NOT_AN_OBJECT, id="object-empty_array_with_spaces"),
    pytest.param(b"[5]", Reason.NOT_AN_OBJECT, id="object-array_of_number"),
    pytest.param(b"[[]]", Reason.NOT_AN_OBJECT, id="object-array_in_array"),
    pytest.param(b"[null]", Reason.NOT_AN_OBJECT, id="object-array_of_null"),
    pytest.param(b"[" + VALID_CLICK + b"]", None, id="object-array_of_one_event"),
    pytest.param(b" \n" + VALID_CLICK + b"\n ", None, id="object-surrounding_whitespace"),
]


@pytest.mark.parametrize(("value", "reason"), WHOLE_VALUE_CASES)
def test_whole_value_reasons(value: bytes | None, reason: str | None) -> None:
    result = only(decode_value(Kind.CLICK, value))
    if reason is None:
        assert result == only(decode_value(Kind.CLICK, VALID_CLICK))
    else:
        assert isinstance(result, Rejection) and result.reason == reason, result


PADDED_CLICK: Final = encode({**BASE[Kind.CLICK], "pad": "x" * 100})


@pytest.mark.parametrize(
    ("value", "max_bytes", "reason"),
    [
        pytest.param(PADDED_CLICK, len(PADDED_CLICK), None, id="event-at_limit"),
        pytest.param(PADDED_CLICK, len(PADDED_CLICK) - 1, Reason.TOO_LARGE, id="event-one_byte_over"),
        pytest.param(b"\xff" * 11, 10, Reason.TOO_LARGE, id="before_invalid_utf8"),
        pytest.param(b"\xff" * 10, 10, Reason.INVALID_UTF8, id="invalid_utf8_at_limit"),
        pytest.param(b"{" * 11, 10, Reason.TOO_LARGE, id="before_invalid_json"),
        pytest.param(b"[" * 2000, 1999, Reason.TOO_LARGE, id="before_deep_nesting"),
        pytest.param(b" 12345678 ", 9, Reason.TOO_LARGE, id="before_not_an_object"),
        pytest.param(b"[" + b",".join([PADDED_CLICK] * 3) + b"]", 3 * len(PADDED_CLICK), Reason.TOO_LARGE,
                     id="array_rejected_whole"),
    ],
)  # fmt: skip
def test_too_large_comes_first(value: bytes, max_bytes: int, reason: str | None) -> None:
    result = only(decode_value(Kind.CLICK, value, max_bytes=max_bytes))
    if reason is None:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection) and result.reason == reason, result
        assert result.raw == value


def padded_to(size: int) -> bytes:
    head = encode({**BASE[Kind.CLICK], "pad": ""})
    value = head[:-2] + b"x" * (size - len(head)) + b'"}'
    assert len(value) == size and len(json.loads(value)["pad"]) > 1_000_000
    return value


@pytest.mark.parametrize(
    ("size", "accepted"),
    [pytest.param(1_048_576, True, id="exactly_1_MiB"), pytest.param(1_048_577, False, id="one_byte_over_1_MiB")],
)
def test_default_limit_is_one_mebibyte(size: int, accepted: bool) -> None:
    result = only(decode_value(Kind.CLICK, padded_to(size)))
    assert isinstance(result, Event) if accepted else isinstance(result, Rejection) and result.reason == "too_large"


# -- fields: reason and the first broken field -------------------------------------------------------

# (kind, changes, reason, field named in the detail)
FIELD_CASES: Final = [
    # missing_field: absent or null (null means absent, and a required field cannot be absent)
    *[
        pytest.param(kind, {name: gone}, Reason.MISSING_FIELD, name, id=f"{kind.name.lower()}-{name}-{label}")
        for kind in Kind
        for name in BASE[kind]
        for label, gone in (("missing", DROP), ("null", None))
    ],
    # wrong_type
    pytest.param(Kind.CLICK, {"event_id": 123}, Reason.WRONG_TYPE, "event_id", id="event_id-number"),
    pytest.param(Kind.CLICK, {"event_id": True}, Reason.WRONG_TYPE, "event_id", id="event_id-boolean"),
    pytest.param(Kind.CLICK, {"event_id": ["e"]}, Reason.WRONG_TYPE, "event_id", id="event_id-array"),
    pytest.param(Kind.CLICK, {"event_id": {"id": "e"}}, Reason.WRONG_TYPE, "event_id", id="event_id-object"),
    pytest.param(Kind.CLICK, {"ts": str(TS)}, Reason.WRONG_TYPE, "ts", id="ts-string"),
    pytest.param(Kind.CLICK, {"ts": TS + 0.5}, Reason.WRONG_TYPE, "ts", id="ts-fraction"),
    pytest.param(Kind.CLICK, {"ts": True}, Reason.WRONG_TYPE, "ts", id="ts-true"),
    pytest.param(Kind.CLICK, {"ts": [TS]}, Reason.WRONG_TYPE, "ts", id="ts-array"),
    pytest.param(Kind.CLICK, {"user_id": 42}, Reason.WRONG_TYPE, "user_id", id="user_id-number"),
    pytest.param(Kind.CLICK, {"campaign_id": 11.11}, Reason.WRONG_TYPE, "campaign_id", id="campaign_id-float"),
    pytest.param(Kind.CLICK, {"channel": False}, Reason.WRONG_TYPE, "channel", id="channel-false"),
    pytest.param(Kind.CLICK, {"entry": 1}, Reason.WRONG_TYPE, "entry", id="entry-number"),
    pytest.param(Kind.CLICK, {"city_tier": "1"}, Reason.WRONG_TYPE, "city_tier", id="city_tier-string"),
    pytest.param(Kind.CLICK, {"city_tier": 1.5}, Reason.WRONG_TYPE, "city_tier", id="city_tier-fraction"),
    pytest.param(Kind.CLICK, {"city_tier": False}, Reason.WRONG_TYPE, "city_tier", id="city_tier-false"),
    pytest.param(Kind.CLICK, {"action": 1}, Reason.WRONG_TYPE, "action", id="action-number"),
    pytest.param(Kind.CLICK, {"target_id": 10086}, Reason.WRONG_TYPE, "target_id", id="target_id-number"),
    pytest.param(Kind.CLICK, {"share_id": {}}, Reason.WRONG_TYPE, "share_id", id="click-share_id-object"),
    pytest.param(Kind.SHARE, {"share_id": 7}, Reason.WRONG_TYPE, "share_id", id="share-share_id-number"),
    pytest.param(Kind.SHARE, {"parent_share_id": []}, Reason.WRONG_TYPE, "parent_share_id", id="parent-array"),
    pytest.param(Kind.SHARE, {"target": True}, Reason.WRONG_TYPE, "target", id="target-boolean"),
    pytest.param(Kind.ORDER, {"order_id": 1001}, Reason.WRONG_TYPE, "order_id", id="order_id-number"),
    pytest.param(Kind.ORDER, {"amount_fen": "19900"}, Reason.WRONG_TYPE, "amount_fen", id="amount-string"),
    pytest.param(Kind.ORDER, {"amount_fen": 199.5}, Reason.WRONG_TYPE, "amount_fen", id="amount-fraction"),
    pytest.param(Kind.ORDER, {"amount_fen": True}, Reason.WRONG_TYPE, "amount_fen", id="amount-true"),
    pytest.param(Kind.ORDER, {"items": 2.5}, Reason.WRONG_TYPE, "items", id="items-fraction"),
    pytest.param(Kind.ORDER, {"items": "2"}, Reason.WRONG_TYPE, "items", id="items-string"),
    pytest.param(Kind.ORDER, {"share_id": 5}, Reason.WRONG_TYPE, "share_id", id="order-share_id-number"),
    # bad_value: empty, too long (in code points), out of range
    pytest.param(Kind.CLICK, {"event_id": ""}, Reason.BAD_VALUE, "event_id", id="event_id-empty"),
    pytest.param(Kind.CLICK, {"event_id": "x" * 65}, Reason.BAD_VALUE, "event_id", id="event_id-65"),
    pytest.param(Kind.CLICK, {"event_id": "😀" * 65}, Reason.BAD_VALUE, "event_id", id="event_id-65_emoji"),
    pytest.param(Kind.CLICK, {"ts": TS_MIN - 1}, Reason.BAD_VALUE, "ts", id="ts-before_2000"),
    pytest.param(Kind.CLICK, {"ts": TS_MAX + 1}, Reason.BAD_VALUE, "ts", id="ts-after_2100"),
    pytest.param(Kind.CLICK, {"ts": TS // 1000}, Reason.BAD_VALUE, "ts", id="ts-seconds"),
    pytest.param(Kind.CLICK, {"ts": -TS}, Reason.BAD_VALUE, "ts", id="ts-negative"),
    pytest.param(Kind.CLICK, {"ts": 10**30}, Reason.BAD_VALUE, "ts", id="ts-beyond_64_bits"),
    pytest.param(Kind.CLICK, {"user_id": ""}, Reason.BAD_VALUE, "user_id", id="user_id-empty"),
    pytest.param(Kind.CLICK, {"user_id": "u" * 65}, Reason.BAD_VALUE, "user_id", id="user_id-65"),
    pytest.param(Kind.CLICK, {"campaign_id": ""}, Reason.BAD_VALUE, "campaign_id", id="campaign_id-empty"),
    pytest.param(Kind.CLICK, {"campaign_id": "双" * 65}, Reason.BAD_VALUE, "campaign_id", id="campaign_id-65_han"),
    pytest.param(Kind.CLICK, {"channel": ""}, Reason.BAD_VALUE, "channel", id="channel-empty"),
    pytest.param(Kind.CLICK, {"channel": "c" * 33}, Reason.BAD_VALUE, "channel", id="channel-33"),
    pytest.param(Kind.CLICK, {"entry": "e" * 33}, Reason.BAD_VALUE, "entry", id="entry-33"),
    pytest.param(Kind.CLICK, {"city_tier": 0}, Reason.BAD_VALUE, "city_tier", id="city_tier-0"),
    pytest.param(Kind.CLICK, {"city_tier": 7}, Reason.BAD_VALUE, "city_tier", id="city_tier-7"),
    pytest.param(Kind.CLICK, {"city_tier": 7.0}, Reason.BAD_VALUE, "city_tier", id="city_tier-7.0"),
    pytest.param(Kind.CLICK, {"action": ""}, Reason.BAD_VALUE, "action", id="action-empty"),
    pytest.param(Kind.CLICK, {"action": "a" * 33}, Reason.BAD_VALUE, "action", id="action-33"),
    pytest.param(Kind.CLICK, {"target_id": "t" * 65}, Reason.BAD_VALUE, "target_id", id="target_id-65"),
    pytest.param(Kind.CLICK, {"share_id": "s" * 65}, Reason.BAD_VALUE, "share_id", id="click-share_id-65"),
    pytest.param(Kind.SHARE, {"share_id": ""}, Reason.BAD_VALUE, "share_id", id="share-share_id-empty"),
    pytest.param(Kind.SHARE, {"share_id": "s" * 65}, Reason.BAD_VALUE, "share_id", id="share-share_id-65"),
    pytest.param(Kind.SHARE, {"parent_share_id": "p" * 65}, Reason.BAD_VALUE, "parent_share_id", id="parent-65"),
    pytest.param(Kind.SHARE, {"target": "t" * 33}, Reason.BAD_VALUE, "target", id="target-33"),
    pytest.param(Kind.ORDER, {"order_id": ""}, Reason.BAD_VALUE, "order_id", id="order_id-empty"),
    pytest.param(Kind.ORDER, {"order_id": "o" * 65}, Reason.BAD_VALUE, "order_id", id="order_id-65"),
    pytest.param(Kind.ORDER, {"amount_fen": -1}, Reason.BAD_VALUE, "amount_fen", id="amount-negative"),
    pytest.param(Kind.ORDER, {"amount_fen": 10**11 + 1}, Reason.BAD_VALUE, "amount_fen", id="amount-over_1e11"),
    pytest.param(Kind.ORDER, {"items": 0}, Reason.BAD_VALUE, "items", id="items-0"),
    pytest.param(Kind.ORDER, {"items": -3}, Reason.BAD_VALUE, "items", id="items-negative"),
    pytest.param(Kind.ORDER, {"share_id": "s" * 65}, Reason.BAD_VALUE, "share_id", id="order-share_id-65"),
    # precedence: the first broken field in contract order names the element, whatever the reasons
    pytest.param(Kind.CLICK, {"event_id": DROP, "ts": "x", "user_id": ""}, Reason.MISSING_FIELD, "event_id",
                 id="first-event_id_before_ts"),
    pytest.param(Kind.CLICK, {"ts": TS_MAX + 1, "user_id": DROP}, Reason.BAD_VALUE, "ts",
                 id="first-bad_ts_before_missing_user"),
    pytest.param(Kind.CLICK, {"user_id": 5, "campaign_id": DROP}, Reason.WRONG_TYPE, "user_id",
                 id="first-wrong_user_before_missing_campaign"),
    pytest.param(Kind.CLICK, {"campaign_id": "", "channel": 3}, Reason.BAD_VALUE, "campaign_id",
                 id="first-campaign_before_channel"),
    pytest.param(Kind.CLICK, {"channel": "c" * 33, "entry": 1}, Reason.BAD_VALUE, "channel",
                 id="first-channel_before_entry"),
    pytest.param(Kind.CLICK, {"entry": 1, "city_tier": 0}, Reason.WRONG_TYPE, "entry",
                 id="first-entry_before_city_tier"),
    pytest.param(Kind.CLICK, {"city_tier": 9, "action": DROP}, Reason.BAD_VALUE, "city_tier",
                 id="first-common_before_click_fields"),
    pytest.param(Kind.CLICK, {"action": "", "target_id": 1, "share_id": 2}, Reason.BAD_VALUE, "action",
                 id="first-action_before_target"),
    pytest.param(Kind.CLICK, {"target_id": 1, "share_id": 2}, Reason.WRONG_TYPE, "target_id",
                 id="first-target_before_share"),
    pytest.param(Kind.SHARE, {"city_tier": "2", "share_id": DROP}, Reason.WRONG_TYPE, "city_tier",
                 id="first-common_before_share_fields"),
    pytest.param(Kind.SHARE, {"share_id": DROP, "parent_share_id": 1, "target": 2}, Reason.MISSING_FIELD, "share_id",
                 id="first-share_id_before_parent"),
    pytest.param(Kind.SHARE, {"parent_share_id": "p" * 65, "target": 2}, Reason.BAD_VALUE, "parent_share_id",
                 id="first-parent_before_target"),
    pytest.param(Kind.ORDER, {"entry": "e" * 33, "order_id": DROP}, Reason.BAD_VALUE, "entry",
                 id="first-common_before_order_fields"),
    pytest.param(Kind.ORDER, {"order_id": 1, "amount_fen": DROP}, Reason.WRONG_TYPE, "order_id",
                 id="first-order_id_before_amount"),
    pytest.param(Kind.ORDER, {"amount_fen": -1, "items": 0}, Reason.BAD_VALUE, "amount_fen",
                 id="first-amount_before_items"),
    pytest.param(Kind.ORDER, {"items": 0, "share_id": 5}, Reason.BAD_VALUE, "items",
                 id="first-items_before_share_id"),
    pytest.param(Kind.ORDER, dict.fromkeys(BASE[Kind.ORDER], DROP), Reason.MISSING_FIELD, "event_id",
                 id="first-empty_object"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "changes", "reason", "field"), FIELD_CASES)
def test_field_reasons_and_precedence(kind: Kind, changes: dict[str, object], reason: str, field: str) -> None:
    result = rejection(decode_value(kind, encode(doc_of(kind, changes))))
    assert (result.reason, result.detail) == (reason, field)


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        pytest.param(Kind.CLICK, {"ts": TS_MIN}, id="ts-2000"),
        pytest.param(Kind.CLICK, {"ts": TS_MAX}, id="ts-2100"),
        pytest.param(Kind.CLICK, {"ts": float(TS)}, id="ts-float_without_fraction"),
        pytest.param(Kind.CLICK, {"event_id": "x" * 64, "user_id": "😀" * 64, "campaign_id": "双" * 64}, id="ids-64"),
        pytest.param(Kind.CLICK, {"channel": "c" * 32, "action": "a" * 32, "entry": "e" * 32}, id="names-32"),
        pytest.param(Kind.CLICK, {"entry": "", "target_id": "", "share_id": ""}, id="optional-empty"),
        pytest.param(Kind.CLICK, {"entry": None, "city_tier": None, "target_id": None, "share_id": None},
                     id="optional-null"),
        pytest.param(Kind.CLICK, {"city_tier": 1}, id="city_tier-1"),
        pytest.param(Kind.CLICK, {"city_tier": 6.0}, id="city_tier-6.0"),
        pytest.param(Kind.CLICK, {"event_id": "'; DROP TABLE t; --", "user_id": '"\\\u0000\n'},
                     id="ids-sql_and_controls"),
        pytest.param(Kind.CLICK, {"channel": "douyin"}, id="channel-unknown_kept"),
        pytest.param(Kind.CLICK, {"order_id": 1, "amount_fen": "x", "x": {"y": [None]}}, id="unknown-fields_ignored"),
        pytest.param(Kind.SHARE, {"parent_share_id": "p" * 64, "target": "t" * 32}, id="share-optional_at_limit"),
        pytest.param(Kind.ORDER, {"amount_fen": 0}, id="amount-0"),
        pytest.param(Kind.ORDER, {"amount_fen": 10**11}, id="amount-1e11"),
        pytest.param(Kind.ORDER, {"amount_fen": 1e11}, id="amount-1e11_float"),
        pytest.param(Kind.ORDER, {"items": 1, "share_id": ""}, id="order-items_1"),
    ],
)  # fmt: skip
def test_accepted_at_the_edges(kind: Kind, changes: dict[str, object]) -> None:
    result = only(decode_value(kind, encode(doc_of(kind, changes))))
    assert isinstance(result, Event), result


def test_event_carries_the_contract_fields() -> None:
    click = {**BASE[Kind.CLICK], "entry": "moments", "city_tier": 3.0, "target_id": "sku-1", "share_id": "sh-9"}
    order = {**BASE[Kind.ORDER], "amount_fen": 1.99e4, "share_id": "sh-9", "items": 2}
    share = {**BASE[Kind.SHARE], "parent_share_id": "sh-0", "target": "group"}
    assert decode_value(Kind.CLICK, encode(click)) == [
        Event(Kind.CLICK, "e-1", TS, "u-1", "双11主会场", "wechat", entry="moments", city_tier=3, share_id="sh-9",
              action="click", target_id="sku-1"),
    ]  # fmt: skip
    assert decode_value(Kind.ORDER, encode(order)) == [
        Event(Kind.ORDER, "e-3", TS, "u-1", "双11主会场", "wechat", share_id="sh-9", order_id="o-1", amount_fen=19_900)
    ]
    assert decode_value(Kind.SHARE, encode(share)) == [
        Event(Kind.SHARE, "e-2", TS, "u-1", "双11主会场", "wechat", share_id="sh-1")
    ]
    (result,) = decode_value(Kind.ORDER, encode(order))
    assert isinstance(result, Event)
    assert type(result.ts) is int and type(result.amount_fen) is int  # 1.99e4 became the integer 19900


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        pytest.param(Kind.CLICK, "action", id="click_needs_action"),
        pytest.param(Kind.SHARE, "share_id", id="share_needs_share_id"),
        pytest.param(Kind.ORDER, "order_id", id="order_needs_order_id"),
    ],
)
def test_the_topic_decides_the_kind(kind: Kind, field: str) -> None:
    # A valid event of one kind sent to another kind's topic is judged by that topic's rules.
    others = [k for k in Kind if k is not kind]
    for other in others:
        doc = {name: value for name, value in BASE[other].items() if name != field}
        result = rejection(decode_value(kind, encode(doc)))
        assert (result.reason, result.detail) == (Reason.MISSING_FIELD, field)


# -- arrays ----------------------------------------------------------------------------------------


def test_array_elements_are_judged_one_by_one() -> None:
    good_a = BASE[Kind.CLICK]
    good_b = {**BASE[Kind.CLICK], "event_id": "e-2", "user_id": "用户2"}
    missing = {**BASE[Kind.CLICK], "action": None}
    results = decode_value(Kind.CLICK, encode([good_a, missing, 5, good_b, {}, "x", None, [good_a], good_a]))
    summary = [r.reason if isinstance(r, Rejection) else r.event_id for r in results]
    assert summary == [
        "e-1", Reason.MISSING_FIELD, Reason.NOT_AN_OBJECT, "e-2", Reason.MISSING_FIELD,
        Reason.NOT_AN_OBJECT, Reason.NOT_AN_OBJECT, Reason.NOT_AN_OBJECT, "e-1",
    ]  # fmt: skip
    assert results[0] == results[8] == only(decode_value(Kind.CLICK, encode(good_a)))
    assert results[3] == only(decode_value(Kind.CLICK, encode(good_b)))


def test_array_of_only_bad_elements_gives_one_rejection_each() -> None:
    results = decode_value(Kind.ORDER, b'[{"ts": 1}, 2, "three", [4]]')
    assert [r.reason for r in results if isinstance(r, Rejection)] == [
        Reason.MISSING_FIELD, Reason.NOT_AN_OBJECT, Reason.NOT_AN_OBJECT, Reason.NOT_AN_OBJECT,
    ]  # fmt: skip
    assert len(results) == 4


@settings(max_examples=60, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=20))
def test_bad_elements_never_spoil_good_neighbours(flags: list[bool]) -> None:
    docs = [
        {**BASE[Kind.SHARE], "event_id": f"e-{i}"} if good else {**BASE[Kind.SHARE], "share_id": i}
        for i, good in enumerate(flags)
    ]
    results = decode_value(Kind.SHARE, encode(docs))
    assert [isinstance(r, Event) for r in results] == flags
    assert [r.event_id for r in results if isinstance(r, Event)] == [
        d["event_id"] for d, g in zip(docs, flags, strict=True) if g
    ]


# -- Rejection.raw ---------------------------------------------------------------------------------


def test_raw_of_a_lone_object_is_the_original_bytes() -> None:
    value = b'{ "ts" : 1.0e3,\n  "event_id":"\\u53cc"  ,"zzz": [1, 2] }'  # odd spacing, escapes, key order
    result = rejection(decode_value(Kind.CLICK, value))
    assert result.raw == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\xff\xfe", id="invalid_utf8"),
        pytest.param(b'{"a": ', id="invalid_json"),
        pytest.param(b" 42 ", id="not_an_object"),
        pytest.param(b" [ ] ", id="empty_array"),
    ],
)
def test_raw_of_a_rejected_value_is_the_original_bytes(value: bytes) -> None:
    assert rejection(decode_value(Kind.CLICK, value)).raw == value


def test_raw_of_a_null_value_is_empty() -> None:
    assert rejection(decode_value(Kind.CLICK, None)).raw == b""


def test_raw_of_an_array_element_is_that_element_re_encoded() -> None:
    bad_object = {"event_id": "双11", "ts": 1.5, "nested": {"k": [1, None, True]}}
    value = b'[ {"event_id": "\\u53cc11" , "ts":1.5, "nested":{"k":[1,null,true]}} , 42, "s", null ]'
    results = decode_value(Kind.CLICK, value)
    assert all(isinstance(r, Rejection) for r in results)
    raws = [r.raw for r in results if isinstance(r, Rejection)]
    assert [json.loads(raw) for raw in raws] == [bad_object, 42, "s", None]


def test_raw_of_a_single_element_array_is_the_element_not_the_array() -> None:
    value = encode([{**BASE[Kind.CLICK], "ts": 0}])
    raw = rejection(decode_value(Kind.CLICK, value)).raw
    assert json.loads(raw) == {**BASE[Kind.CLICK], "ts": 0}


# -- hints on rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        pytest.param(encode(doc_of(Kind.CLICK, {"action": DROP})), (TS, "双11主会场", "wechat"), id="all_known"),
        pytest.param(encode([doc_of(Kind.CLICK, {"action": ""})]), (TS, "双11主会场", "wechat"), id="array_element"),
        pytest.param(encode(doc_of(Kind.CLICK, {"event_id": DROP})), (TS, "双11主会场", "wechat"), id="first_bad"),
        pytest.param(encode(doc_of(Kind.CLICK, {"ts": TS_MAX + 1})), (0, "双11主会场", "wechat"), id="ts_out_of_range"),
        pytest.param(encode(doc_of(Kind.CLICK, {"ts": str(TS)})), (0, "双11主会场", "wechat"), id="ts_string"),
        pytest.param(encode(doc_of(Kind.CLICK, {"ts": True})), (0, "双11主会场", "wechat"), id="ts_boolean"),
        pytest.param(encode(doc_of(Kind.CLICK, {"campaign_id": "c" * 65})), (TS, "", "wechat"), id="campaign_long"),
        pytest.param(encode(doc_of(Kind.CLICK, {"campaign_id": ""})), (TS, "", "wechat"), id="campaign_empty"),
        pytest.param(encode(doc_of(Kind.CLICK, {"channel": 7})), (TS, "双11主会场", ""), id="channel_number"),
        pytest.param(encode(doc_of(Kind.CLICK, {"channel": "c" * 33})), (TS, "双11主会场", ""), id="channel_long"),
        pytest.param(b'{"ts": 946684800000, "channel": "web"}', (TS_MIN, "", "web"), id="partial_object"),
        pytest.param(b"[1]", (0, "", ""), id="not_an_object"),
        pytest.param(b"{", (0, "", ""), id="invalid_json"),
        pytest.param(None, (0, "", ""), id="null_value"),
    ],
)  # fmt: skip
def test_rejection_hints(value: bytes | None, hint: tuple[int, str, str]) -> None:
    result = rejection(decode_value(Kind.CLICK, value))
    assert (result.ts, result.campaign_id, result.channel) == hint


# -- Event.to_json -----------------------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
short = st.text(st.characters(codec="utf-8"), min_size=1, max_size=32)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(DROP), st.none(), strategy)


@st.composite
def valid_docs(draw: st.DrawFn, kind: Kind) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": draw(ids),
        "ts": draw(st.integers(TS_MIN, TS_MAX)),
        "user_id": draw(ids),
        "campaign_id": draw(ids),
        "channel": draw(st.one_of(st.sampled_from(["wechat", "mobileqq", "jingxi", "app", "web", "other"]), short)),
        "entry": draw(maybe(st.text(max_size=32))),
        "city_tier": draw(maybe(st.integers(1, 6))),
    }
    if kind is Kind.CLICK:
        doc.update(action=draw(short), target_id=draw(maybe(ids)), share_id=draw(maybe(st.text(max_size=64))))
    elif kind is Kind.SHARE:
        doc.update(share_id=draw(ids), parent_share_id=draw(maybe(ids)), target=draw(maybe(short)))
    else:
        doc.update(
            order_id=draw(ids),
            amount_fen=draw(st.integers(0, 10**11)),
            items=draw(maybe(st.integers(1, 10**6))),
            share_id=draw(maybe(st.text(max_size=64))),
        )
    return {name: value for name, value in doc.items() if value is not DROP}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(list(Kind)))
def test_to_json_round_trips(data: st.DataObject, kind: Kind) -> None:
    doc = data.draw(valid_docs(kind))
    event = only(decode_value(kind, orjson.dumps(doc)))
    assert isinstance(event, Event), event
    assert (event.kind, event.event_id, event.ts, event.user_id) == (kind, doc["event_id"], doc["ts"], doc["user_id"])
    again = decode_value(kind, event.to_json())
    assert again == [event]


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_to_json_uses_the_contract_field_names(kind: Kind) -> None:
    doc = {**BASE[kind], "entry": "group", "city_tier": 2}
    event = only(decode_value(kind, encode(doc)))
    assert isinstance(event, Event)
    assert json.loads(event.to_json()) == doc


# -- never raises --------------------------------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(list(Kind)), value=st.one_of(st.binary(max_size=64), json_values.map(orjson.dumps)))
def test_never_raises_and_judges_every_element(kind: Kind, value: bytes) -> None:
    results = decode_value(kind, value)
    assert results
    assert all(r.reason in Reason.ALL for r in results if isinstance(r, Rejection))
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        assert len(results) == 1 and isinstance(results[0], Rejection)
    else:
        assert len(results) == (len(doc) if isinstance(doc, list) and doc else 1)


@pytest.mark.parametrize("depth", [255, 256, 600, 1024], ids=lambda d: f"depth-{d}")
def test_deeply_nested_elements_are_rejected_not_raised(depth: int) -> None:
    """Regression: orjson parses 1024 levels but re-encodes only 254, which used to raise here."""
    valid = b'{"event_id":"e","ts":946684800000,"user_id":"u","campaign_id":"c","channel":"app","action":"view"}'
    nested = b"[" * (depth - 1) + b"]" * (depth - 1)
    out = decode_value(Kind.CLICK, b"[" + valid + b"," + nested + b"]")
    assert isinstance(out[0], Event)
    assert isinstance(out[1], Rejection) and out[1].reason == Reason.NOT_AN_OBJECT
