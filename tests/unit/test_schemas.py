"""The JSON Schemas in schemas/ are valid draft 2020-12 and agree with the Python decoder.

Agreement is element-level: for one JSON object, `jsonschema` accepts it exactly when
`decode_value` returns an `Event` for it. Stream-level rules (future, late, duplicate, size) are
the pipeline's and are not checked here.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no types-jsonschema in dev deps

from streams.contract.events import Event, Kind, Rejection, decode_value

SCHEMAS: Final = Path(__file__).resolve().parents[2] / "schemas"
DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
TS_MIN: Final = 946_684_800_000
TS_MAX: Final = 4_102_444_800_000
DROP: Final = object()  # a change that removes the field

# The contract's field tables (docs/CONTRACT.md), written out here independently of the decoder.
# (name, kind of value, required, low, high): strings use low/high as code-point lengths.
Field = tuple[str, str, bool, int, int | None]
COMMON: Final[list[Field]] = [
    ("event_id", "str", True, 1, 64),
    ("ts", "int", True, TS_MIN, TS_MAX),
    ("user_id", "str", True, 1, 64),
    ("campaign_id", "str", True, 1, 64),
    ("channel", "str", True, 1, 32),
    ("entry", "str", False, 0, 32),
    ("city_tier", "int", False, 1, 6),
]
FIELDS: Final[dict[Kind, list[Field]]] = {
    Kind.CLICK: [*COMMON, ("action", "str", True, 1, 32), ("target_id", "str", False, 0, 64),
                 ("share_id", "str", False, 0, 64)],
    Kind.SHARE: [*COMMON, ("share_id", "str", True, 1, 64), ("parent_share_id", "str", False, 0, 64),
                 ("target", "str", False, 0, 32)],
    Kind.ORDER: [*COMMON, ("order_id", "str", True, 1, 64), ("amount_fen", "int", True, 0, 100_000_000_000),
                 ("items", "int", False, 1, None), ("share_id", "str", False, 0, 64)],
}  # fmt: skip
# `items` has no maximum in the contract; this large value must be accepted by both.
DECODER_ITEMS_CAP: Final = 2**62

BASE: Final[dict[Kind, dict[str, Any]]] = {
    Kind.CLICK: {"event_id": "e-1", "ts": 1_731_254_400_000, "user_id": "u-1", "campaign_id": "双11主会场",
                 "channel": "wechat", "action": "click"},
    Kind.SHARE: {"event_id": "e-2", "ts": 1_731_254_400_000, "user_id": "u-1", "campaign_id": "双11主会场",
                 "channel": "wechat", "share_id": "sh-1"},
    Kind.ORDER: {"event_id": "e-3", "ts": 1_731_254_400_000, "user_id": "u-1", "campaign_id": "双11主会场",
                 "channel": "wechat", "order_id": "o-1", "amount_fen": 19_900},
}  # fmt: skip


@cache
def schema(kind: Kind) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{kind.name.lower()}.schema.json").read_text("utf-8"))
    return doc


@cache
def validator(kind: Kind) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


def verdicts(kind: Kind, doc: object) -> tuple[bool, bool, str]:
    """(schema accepts, decoder accepts, explanation) for one element sent as a lone JSON value."""
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    decoded = decode_value(kind, raw)
    assert len(decoded) == 1
    # The validator sees what any JSON parser makes of the same bytes, as a producer's would.
    errors = [e.message for e in validator(kind).iter_errors(json.loads(raw))]
    result = decoded[0]
    why = f"schema errors={errors!r}; decoder={result!r}"
    return not errors, isinstance(result, Event), why


def changed(kind: Kind, changes: dict[str, object]) -> dict[str, Any]:
    doc = dict(BASE[kind])
    for name, value in changes.items():
        if value is DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


# -- the schemas themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_schema_is_valid_draft_2020_12(kind: Kind) -> None:
    doc = schema(kind)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == DRAFT_2020_12
    assert doc["$id"].endswith(f"/{kind.name.lower()}.schema.json")
    assert doc["title"] and doc["description"]
    assert doc["type"] == "object"
    assert doc["additionalProperties"] is True


def test_schema_ids_are_distinct() -> None:
    assert len({schema(kind)["$id"] for kind in Kind}) == len(Kind)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_schema_fields_match_the_contract_tables(kind: Kind) -> None:
    props = schema(kind)["properties"]
    # Property order is the contract's field order: the order in which the first broken field is named.
    assert list(props) == [name for name, *_ in FIELDS[kind]]
    assert schema(kind)["required"] == [name for name, _, required, *_ in FIELDS[kind] if required]
    for name, value_kind, required, low, high in FIELDS[kind]:
        prop = props[name]
        json_type = "string" if value_kind == "str" else "integer"
        assert prop["type"] == (json_type if required else [json_type, "null"]), name
        assert prop["description"], name
        if value_kind == "str":
            assert (prop.get("minLength", 0), prop["maxLength"]) == (low, high), name
        else:
            assert (prop["minimum"], prop.get("maximum")) == (low, high), name


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_schema_examples_are_valid_events(kind: Kind) -> None:
    examples = schema(kind)["examples"]
    assert examples
    for example in examples:
        assert verdicts(kind, example)[:2] == (True, True), example
    for name, prop in schema(kind)["properties"].items():
        for value in prop["examples"]:
            assert verdicts(kind, {**BASE[kind], name: value})[:2] == (True, True), (name, value)


# -- hand-written corpus -------------------------------------------------------------------------


def field_cases() -> list[Any]:
    """Per field of every kind: missing, null, wrong types, empty, length and range edges."""
    cases: list[Any] = []
    for kind in Kind:
        for name, value_kind, required, low, high in FIELDS[kind]:
            optional = not required
            table: list[tuple[str, object, bool]] = [("missing", DROP, optional), ("null", None, optional)]
            if value_kind == "str":
                assert high is not None
                table += [
                    ("empty", "", low == 0),
                    ("one", "x", True),
                    ("max_len", "x" * high, True),
                    ("too_long", "x" * (high + 1), False),
                    ("max_len_chinese", "双" * high, True),
                    ("too_long_chinese", "双" * (high + 1), False),
                    ("max_len_emoji", "😀" * high, True),  # one code point each, two UTF-16 units
                    ("too_long_emoji", "😀" * (high + 1), False),
                    ("int", 5, False),
                    ("float", 5.0, False),
                    ("true", True, False),
                    ("false", False, False),
                    ("list", ["x"], False),
                    ("object", {"x": "y"}, False),
                ]
            else:
                table += [
                    ("low", low, True),
                    ("below_low", low - 1, False),
                    ("low_as_float", float(low), True),
                    ("low_plus_half", low + 0.5, False),
                    ("string", str(low), False),
                    ("true", True, False),
                    ("false", False, False),
                    ("list", [low], False),
                    ("object", {"value": low}, False),
                ]
                if high is None:
                    table += [("large", 1_000_000, True)]
                else:
                    table += [("high", high, True), ("above_high", high + 1, False),
                              ("high_as_float", float(high), True), ("high_minus_half", high - 0.5, False)]  # fmt: skip
            for label, value, valid in table:
                case_id = f"{kind.name.lower()}-{name}-{label}"
                cases.append(pytest.param(kind, {name: value}, valid, id=case_id))
    return cases


ODD_BUT_VALID_STRINGS: Final = [
    ("chinese", "双11主会场"),
    ("emoji", "🛒🎁👍🏽"),
    ("japanese", "ユーザー"),
    ("combining", "e\u0301"),
    ("rtl", "مستخدم"),
    ("nul", "a\u0000b"),
    ("controls", "\t\n\r\u001f\u007f"),
    ("zero_width", "\u200b"),
    ("quotes", "\"'`"),
    ("backslash", "\\"),
    ("sql_drop", "x'; DROP TABLE events; --"),
    ("sql_or", "' OR 1=1 --"),
    ("json_looking", '{"event_id": 1}'),
    ("html", "<script>alert(1)</script>"),
    ("space", " "),
]

SPECIAL_CASES: Final = [
    pytest.param(kind, {name: value}, True, id=f"{kind.name.lower()}-{name}-{label}")
    for kind in Kind
    for name in ("event_id", "user_id", "campaign_id", "channel")
    for label, value in ODD_BUT_VALID_STRINGS
] + [
    pytest.param(Kind.CLICK, {"channel": "douyin"}, True, id="unknown_channel_kept"),
    pytest.param(Kind.CLICK, {"ts": 1.731254400e12}, True, id="ts_exponent_notation"),
    pytest.param(Kind.CLICK, {"ts": -TS_MIN}, False, id="ts_negative"),
    pytest.param(Kind.CLICK, {"ts": 0}, False, id="ts_zero"),
    pytest.param(Kind.CLICK, {"ts": 1_731_254_400}, False, id="ts_in_seconds"),
    pytest.param(Kind.CLICK, {"ts": 1e30}, False, id="ts_huge_float"),
    pytest.param(Kind.CLICK, {"ts": 10**30}, False, id="ts_beyond_64_bits"),
    pytest.param(Kind.CLICK, {"city_tier": 0}, False, id="city_tier_zero"),
    pytest.param(Kind.CLICK, {"city_tier": -1}, False, id="city_tier_negative"),
    pytest.param(Kind.CLICK, {"city_tier": 3.0}, True, id="city_tier_float"),
    pytest.param(Kind.ORDER, {"amount_fen": -0.0}, True, id="amount_negative_zero"),
    pytest.param(Kind.ORDER, {"amount_fen": 1e11}, True, id="amount_max_exponent"),
    pytest.param(Kind.ORDER, {"amount_fen": 199.99}, False, id="amount_yuan_with_fraction"),
    pytest.param(Kind.ORDER, {"items": DECODER_ITEMS_CAP}, True, id="items_at_decoder_cap"),
    pytest.param(Kind.ORDER, {"share_id": ""}, True, id="order_share_id_empty"),
    pytest.param(Kind.CLICK, {"share_id": "", "target_id": "", "entry": ""}, True, id="click_optionals_empty"),
    pytest.param(Kind.SHARE, {"parent_share_id": None, "target": None, "entry": None, "city_tier": None}, True,
                 id="share_optionals_null"),
    pytest.param(Kind.CLICK, {"extra": {"deep": [1, {"x": None}]}, "n": 1.5, "b": True}, True,
                 id="unknown_fields_ignored"),
    pytest.param(Kind.CLICK, {"order_id": [], "amount_fen": "lots", "parent_share_id": 5}, True,
                 id="click_ignores_other_kinds_fields"),
    pytest.param(Kind.SHARE, {"action": 5, "target_id": {}, "items": 0}, True, id="share_ignores_other_kinds_fields"),
    pytest.param(Kind.ORDER, {"action": None, "target": 7, "parent_share_id": True}, True,
                 id="order_ignores_other_kinds_fields"),
    pytest.param(Kind.CLICK, {"EVENT_ID": "e", "event_id": DROP}, False, id="field_names_are_case_sensitive"),
    pytest.param(Kind.CLICK, {"event_id ": "e", "event_id": DROP}, False, id="field_name_with_space"),
    pytest.param(Kind.ORDER, {"amount_fen": DROP, "order_id": DROP}, False, id="order_without_order_fields"),
    pytest.param(Kind.SHARE, {"share_id": DROP, "action": "share"}, False, id="share_sent_as_click"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "changes", "valid"), field_cases() + SPECIAL_CASES)
def test_schema_and_decoder_agree_on_corpus(kind: Kind, changes: dict[str, object], valid: bool) -> None:
    schema_ok, decoder_ok, why = verdicts(kind, changed(kind, changes))
    assert (schema_ok, decoder_ok) == (valid, valid), why


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        pytest.param(Kind.CLICK, "event", id="string"),
        pytest.param(Kind.SHARE, 5, id="number"),
        pytest.param(Kind.ORDER, None, id="null"),
        pytest.param(Kind.ORDER, True, id="boolean"),
        pytest.param(Kind.CLICK, [], id="empty_array"),
    ],
)
def test_non_objects_are_refused_by_both(kind: Kind, value: object) -> None:
    assert not validator(kind).is_valid(value)
    (result,) = decode_value(kind, json.dumps(value).encode())
    assert isinstance(result, Rejection) and result.reason == "not_an_object"


def test_an_array_is_a_batch_not_an_element() -> None:
    # The schema describes one element; the decoder unpacks an array and judges each element with it.
    batch = [BASE[Kind.CLICK], {**BASE[Kind.CLICK], "ts": 5}]
    assert not validator(Kind.CLICK).is_valid(batch)
    results = decode_value(Kind.CLICK, json.dumps(batch).encode())
    assert (
        [isinstance(r, Event) for r in results] == [validator(Kind.CLICK).is_valid(e) for e in batch] == [True, False]
    )


# -- property: near-valid objects ------------------------------------------------------------------


def text_of_length(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(codec="utf-8"), min_size=low, max_size=high)


def valid_value(field: Field) -> st.SearchStrategy[Any]:
    _, value_kind, _, low, high = field
    if value_kind == "str":
        assert high is not None
        # Biased to the edges, where an off-by-one would hide.
        return st.one_of(text_of_length(max(low, 1), 4), st.sampled_from(["x" * low, "字" * high, "🙂" * high]))
    top = DECODER_ITEMS_CAP if high is None else high
    return st.one_of(st.integers(low, top), st.sampled_from([low, top]), st.sampled_from([float(low), float(top)]))


@st.composite
def valid_events(draw: st.DrawFn, kind: Kind) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for field in FIELDS[kind]:
        name, _, required, *_ = field
        if required:
            doc[name] = draw(valid_value(field))
        else:
            choice = draw(st.sampled_from(["absent", "null", "value"]))
            if choice != "absent":
                doc[name] = None if choice == "null" else draw(valid_value(field))
    return doc


def edge_values(field: Field) -> st.SearchStrategy[Any]:
    """Values near and past a field's own limits, valid or not."""
    _, value_kind, _, low, high = field
    if value_kind == "str":
        assert high is not None
        lengths = sorted({0, 1, max(low - 1, 0), low, high - 1, high, high + 1, 2 * high})
        return st.builds(
            lambda n, c: c * n, st.sampled_from(lengths), st.sampled_from(["a", "é", "双", "😀", "\u0000"])
        )
    top = 1_000_000 if high is None else high  # `items` has no maximum
    numbers = st.sampled_from([low - 1, low, low + 1, top - 1, top, top + 1, 0, -1])
    return st.one_of(numbers, numbers.map(float), numbers.map(lambda n: n + 0.5), st.integers(-(10**14), 10**14))


junk_values: Final[st.SearchStrategy[Any]] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e13, 1e13).map(lambda x: float(math.floor(x))),  # integer-valued floats
    text_of_length(0, 70),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from(["a", "ts", "event_id"]), st.integers(0, 9), max_size=2),
)


@st.composite
def near_valid_events(draw: st.DrawFn, kind: Kind) -> dict[str, Any]:
    doc = draw(valid_events(kind))
    names = [name for name, *_ in FIELDS[kind]]
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS[kind]))
        name = field[0]
        action = draw(st.sampled_from(["drop", "null", "edge", "junk", "unknown"]))
        if action == "drop":
            doc.pop(name, None)
        elif action == "null":
            doc[name] = None
        elif action == "edge":
            doc[name] = draw(edge_values(field))
        elif action == "junk":
            doc[name] = draw(junk_values)
        else:
            extra = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in names))
            doc[extra] = draw(junk_values)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(list(Kind)))
def test_schema_and_decoder_agree_on_near_valid_objects(data: st.DataObject, kind: Kind) -> None:
    doc = data.draw(near_valid_events(kind))
    schema_ok, decoder_ok, why = verdicts(kind, doc)
    assert schema_ok == decoder_ok, why


@settings(max_examples=100, deadline=None)
@given(data=st.data(), kind=st.sampled_from(list(Kind)))
def test_valid_objects_are_accepted_and_re_encode_to_valid_objects(data: st.DataObject, kind: Kind) -> None:
    doc = data.draw(valid_events(kind))
    schema_ok, decoder_ok, why = verdicts(kind, doc)
    assert schema_ok and decoder_ok, why
    (event,) = decode_value(kind, orjson.dumps(doc))
    assert isinstance(event, Event)
    # The pipeline re-encodes a late or future array element with `to_json` for the dead-letter
    # topic: a consumer validating with the same schema must still accept it.
    assert validator(kind).is_valid(json.loads(event.to_json()))
