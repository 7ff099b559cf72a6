"""Stage 1's fast path decides exactly as the precise decoder does.

`events.decode_items` validates the common shape of an event in one go and builds its routed item
without an `Event`; everything else goes through `decode_value`'s per-field checks. These tests
hold the two equal, field by field and type by type (`1 == 1.0 == True` in Python, not on the
wire), on hostile, random and simulated input, and hold `Ingest.process` byte-for-byte equal to
the straightforward version built on `decode_value`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import Settings
from streams.contract.dlq import DeadLetter
from streams.contract.events import (
    AMOUNT_MAX_FEN,
    ITEMS_MAX,
    TS_MAX,
    TS_MIN,
    Event,
    Kind,
    Rejection,
    _element,
    _fast_item,
    decode_items,
    decode_value,
)
from streams.contract.wire import event_item, reject_item, route, route_source
from streams.ingest.gate import PartitionGate
from streams.ingest.stage import Ingest, IngestOutput
from streams.kit.simulate import SimConfig, generate
from streams.lab.hostile import corpus

T0: Final = 1_762_790_400_000
SRC: Final = "promo.clicks:3"
MAX_BYTES: Final = 1_048_576
KINDS: Final = {"clicks": Kind.CLICK, "shares": Kind.SHARE, "orders": Kind.ORDER}


def typed(value: object) -> object:
    """`value` with the type of every scalar beside it, so 1, 1.0 and True stay apart."""
    if isinstance(value, list | tuple):
        return [typed(v) for v in value]
    if isinstance(value, Rejection):
        return ("Rejection", [typed(getattr(value, f)) for f in Rejection.__dataclass_fields__])
    return (type(value).__name__, value)


def precise(kind: Kind, value: bytes | None, offset: int = 7) -> list[list[Any] | Rejection]:
    """What decode_items must give: decode_value, with each Event as its routed item."""
    return [
        event_item(SRC, offset, index, e) if isinstance(e, Event) else e
        for index, e in enumerate(decode_value(kind, value, max_bytes=MAX_BYTES))
    ]


def fast(kind: Kind, value: bytes | None, offset: int = 7) -> list[list[Any] | Rejection]:
    return [
        event_item(SRC, offset, index, e) if isinstance(e, Event) else e
        for index, e in enumerate(decode_items(kind, value, SRC, offset, MAX_BYTES))
    ]


def assert_same(kind: Kind, value: bytes | None) -> None:
    assert typed(fast(kind, value)) == typed(precise(kind, value)), value


# -- inputs --------------------------------------------------------------------------------------

FIELDS: Final = {
    "event_id": 64, "user_id": 64, "campaign_id": 64, "channel": 32, "entry": 32, "action": 32,
    "target_id": 64, "share_id": 64, "parent_share_id": 64, "target": 32, "order_id": 64,
}  # fmt: skip
INTEGERS: Final = {"ts": (TS_MIN, TS_MAX), "city_tier": (1, 6), "amount_fen": (0, AMOUNT_MAX_FEN), "items": (1, 10**6)}


class Text(str):
    """A str that is not exactly str: orjson never builds one; the fast check must leave it alone."""


def text_of(length: int) -> st.SearchStrategy[str]:
    """A string of exactly `length` code points, some of them beyond ASCII and the BMP."""
    return st.text(st.sampled_from('ab-_9双🔥\u00e9"\\\n'), min_size=length, max_size=length)


def string_values(limit: int) -> st.SearchStrategy[str]:
    """Lengths on both sides of each bound: 0, 1, limit - 1, limit, limit + 1, and in between."""
    return st.one_of(
        st.sampled_from([0, 1, limit - 1, limit, limit + 1]).flatmap(text_of),
        st.integers(0, limit + 3).flatmap(text_of),
    )


def integer_values(low: int, high: int) -> st.SearchStrategy[object]:
    edges = [low - 1, low, low + 1, high - 1, high, high + 1]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(low, high),
        st.sampled_from(edges).map(float),  # 5.0 is an integer in JSON
        st.sampled_from([0.5, low + 0.5, 1e300, -0.0, 2.0**64]),
        st.sampled_from([0, -1, 2**64 - 1, -(2**63)]),
    )


JSON_INT: Final = st.integers(-(2**63), 2**64 - 1)  # what orjson reads and writes as an integer
HOSTILE: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["", "5", "1762790400000", "x" * 65]),
    JSON_INT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(JSON_INT, max_size=2),
    st.dictionaries(st.sampled_from(["$ne", "a"]), JSON_INT, max_size=1),
)
DROP: Final = object()


def field_value(name: str, *, hostile: bool) -> st.SearchStrategy[object]:
    good: st.SearchStrategy[object] = string_values(FIELDS[name]) if name in FIELDS else integer_values(*INTEGERS[name])
    return st.one_of(good, st.just(DROP), st.none(), HOSTILE) if hostile else good


def well_formed(kind: Kind) -> st.SearchStrategy[dict[str, object]]:
    """Valid in every field, with optional ones absent or null (the fast path's easy and hard cases)."""
    ids = st.integers(1, 64).flatmap(text_of)
    short = st.integers(1, 32).flatmap(text_of)
    optional = {"entry": st.integers(0, 32).flatmap(text_of), "city_tier": st.integers(1, 6)}
    required: dict[str, st.SearchStrategy[object]] = {
        "event_id": ids, "ts": st.integers(TS_MIN, TS_MAX), "user_id": ids, "campaign_id": ids, "channel": short,
    }  # fmt: skip
    if kind is Kind.CLICK:
        required["action"] = short
        optional |= {"target_id": st.integers(0, 64).flatmap(text_of), "share_id": st.integers(0, 64).flatmap(text_of)}
    elif kind is Kind.SHARE:
        required["share_id"] = ids
        optional |= {
            "parent_share_id": st.integers(0, 64).flatmap(text_of),
            "target": st.integers(0, 32).flatmap(text_of),
        }
    else:
        required |= {"order_id": ids, "amount_fen": st.integers(0, AMOUNT_MAX_FEN)}
        optional |= {"items": st.integers(1, ITEMS_MAX - 1), "share_id": st.integers(0, 64).flatmap(text_of)}
    maybe = {name: st.one_of(s, st.just(DROP), st.none()) for name, s in optional.items()}
    extra = st.dictionaries(st.sampled_from(["sdk", "blob", "order_id", "action", "share_id"]), HOSTILE, max_size=2)
    return st.tuples(st.fixed_dictionaries(required), st.fixed_dictionaries(maybe), extra).map(
        lambda parts: {k: v for k, v in {**parts[2], **parts[0], **parts[1]}.items() if v is not DROP}
    )


@st.composite
def malformed(draw: st.DrawFn, kind: Kind) -> dict[str, object]:
    """A well-formed event with a few fields replaced by edge or hostile values, or dropped."""
    doc = draw(well_formed(kind))
    names = draw(st.lists(st.sampled_from(sorted([*FIELDS, *INTEGERS])), min_size=1, max_size=4, unique=True))
    for name in names:
        value = draw(field_value(name, hostile=True))
        if value is DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


def elements(kind: Kind) -> st.SearchStrategy[object]:
    return st.one_of(well_formed(kind), malformed(kind), HOSTILE)


# -- the decoder -----------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(kind=st.sampled_from(list(Kind)), data=st.data())
def test_well_formed_objects(kind: Kind, data: st.DataObject) -> None:
    doc = data.draw(well_formed(kind))
    value = orjson.dumps(doc)
    assert_same(kind, value)
    (result,) = decode_items(kind, value, SRC, 7, MAX_BYTES)
    assert isinstance(result, list | Event)
    if None not in doc.values():  # nothing the fast path leaves to parse_event
        assert isinstance(result, list)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(list(Kind)), data=st.data())
def test_malformed_objects(kind: Kind, data: st.DataObject) -> None:
    assert_same(kind, orjson.dumps(data.draw(malformed(kind))))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(Kind)), data=st.data())
def test_arrays_of_anything(kind: Kind, data: st.DataObject) -> None:
    batch = data.draw(st.lists(elements(kind), min_size=0, max_size=12))
    value = orjson.dumps(batch)
    assert_same(kind, value)
    assert_same(kind, b" \n" + value + b"\t")


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(Kind)), data=st.data())
def test_the_fast_check_never_takes_what_parse_event_refuses(kind: Kind, data: st.DataObject) -> None:
    """Straight at the dict, so also with integers no JSON text gives (beyond 64 bits), and str subclasses."""
    doc = data.draw(st.one_of(well_formed(kind), malformed(kind)))
    name = data.draw(st.sampled_from([*INTEGERS, *FIELDS]))
    odd = {"ts": TS_MAX + 2**64, "city_tier": 2**64 + 3, "amount_fen": 2**65, "items": ITEMS_MAX + 1}
    if data.draw(st.booleans()):
        doc[name] = odd[name] if name in odd else Text(doc.get(name) or "x")
    item = _fast_item(kind, doc, SRC, 7, 0)
    expected = _element(kind, doc, b"")
    if item is not None:
        assert isinstance(expected, Event)
        assert typed(item) == typed(event_item(SRC, 7, 0, expected))


VALID: Final = {
    "event_id": "e", "ts": T0, "user_id": "u", "campaign_id": "c", "channel": "app", "entry": "group", "city_tier": 2,
    "action": "v", "target_id": "t", "share_id": "s", "parent_share_id": "p", "target": "moments", "order_id": "o",
    "amount_fen": 5, "items": 1,
}  # fmt: skip
BEYOND_JSON: Final = [2**64, 2**64 + 1, 10**30, -(2**64), True, False]


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
@pytest.mark.parametrize("name", [*INTEGERS, *FIELDS])
def test_values_no_json_text_gives(kind: Kind, name: str) -> None:
    """Integers beyond 64 bits, bools and str subclasses, put straight into the dict."""
    for odd in [*BEYOND_JSON, Text("x"), Text("")] if name in INTEGERS else [Text("x"), Text(""), *BEYOND_JSON]:
        doc = {**VALID, name: odd}
        item = _fast_item(kind, doc, SRC, 7, 0)
        expected = _element(kind, doc, b"")
        if item is not None:
            assert isinstance(expected, Event), (name, odd)
            assert typed(item) == typed(event_item(SRC, 7, 0, expected)), (name, odd)
    assert isinstance(_fast_item(kind, dict(VALID), SRC, 7, 0), list)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
@pytest.mark.parametrize(
    "value",
    [
        None, b"", b"   ", b"null", b"5", b'"x"', b"true", b"[]", b" [ ] ", b"[5]", b"[[]]", b"[null]", b"{}", b"\xff",
        b'{"event_id": "\xc3"}', b"[" * 2000 + b"]" * 2000, b'{"ts": 1e400}', b"{" + b'"a": 1,' * 3 + b"}",
        b"x" * (MAX_BYTES + 1),
    ],
)  # fmt: skip
def test_whole_values(kind: Kind, value: bytes | None) -> None:
    assert_same(kind, value)


@pytest.mark.parametrize("case", corpus(T0), ids=lambda c: c.name)
@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.name.lower())
def test_hostile_corpus_on_every_topic(case: Any, kind: Kind) -> None:
    assert_same(kind, case.value)


# -- the stage ---------------------------------------------------------------------------------------


class PreciseIngest(Ingest):
    """Stage 1 as it was before the fast path: decode_value, an Event per element, event_item."""

    def process(
        self, topic: str, partition: int, offset: int, timestamp_ms: int, value: bytes | None, out: IngestOutput
    ) -> None:
        kind = self.kinds[topic]
        src = f"{topic}:{partition}"
        gate = self.gates.get(src)
        if gate is None:
            gate = self.gates[src] = self.new_gate()
        out.max_ingest_ms = max(out.max_ingest_ms, timestamp_ms)
        elements = decode_value(kind, value, max_bytes=self.limits.max_value_bytes)
        whole = value if value is not None and len(elements) == 1 and value.lstrip()[:1] == b"{" else None
        for index, element in enumerate(elements):
            out.elements += 1
            if isinstance(element, Event):
                reason = gate.admit(element.ts, timestamp_ms)
                if reason is None:
                    dest = route(element.user_id, self.partitions)
                    out.routed.setdefault(dest, []).append(event_item(src, offset, index, element))
                    continue
                raw = whole if whole is not None else element.to_json()
                element = Rejection(reason, f"ts={element.ts}", raw, element.ts, element.campaign_id, element.channel)
            dest = route_source(src, self.partitions)
            out.routed.setdefault(dest, []).append(
                reject_item(src, offset, index, element, kind.topic_suffix, timestamp_ms)
            )
            out.dead.append(DeadLetter(element.raw, element.reason, element.detail, f"{src}:{offset}:{index}"))
        out.watermarks[src] = gate.watermark


Input = tuple[str, int, int, int, bytes | None]


def outputs(ingest: Ingest, batches: list[list[Input]]) -> list[object]:
    seen: list[object] = []
    for batch in batches:
        out = IngestOutput(generation=3)
        for topic, partition, offset, timestamp_ms, value in batch:
            ingest.process(topic, partition, offset, timestamp_ms, value, out)
        seen.append(
            (
                out.messages(),  # the routed wire bytes: items, their order, watermarks
                typed([list(items) for items in out.routed.values()]),
                list(out.routed),
                [(d.value, d.reason, d.detail, d.source, d.headers) for d in out.dead],
                (out.max_ingest_ms, out.elements, list(out.watermarks.items())),
            )
        )
    return seen


def assert_same_stage(batches: list[list[Input]], partitions: int = 4) -> None:
    config = Settings(partitions=partitions)
    assert outputs(Ingest(config.stages), batches) == outputs(PreciseIngest(config.stages), batches)


@pytest.mark.parametrize(
    "shape",
    [
        {"batch_rate": 0.0},
        {"batch_rate": 0.2},
        {"batch_rate": 1.0, "batch_mean": 48.0, "batch_max": 100},
    ],
    ids=["objects", "mixed", "arrays"],
)
def test_stage_one_on_a_simulated_stream(shape: dict[str, Any]) -> None:
    sim = generate(SimConfig(events=4000, seed=5, partitions=4, malformed_rate=0.05, late_rate=0.05, **shape))
    offsets: dict[tuple[str, int], int] = {}
    inputs: list[Input] = []
    for r in sim.records:
        offset = offsets[(r.kind, r.partition)] = offsets.get((r.kind, r.partition), -1) + 1
        inputs.append((f"promo.{r.kind}", r.partition, offset, r.timestamp_ms, r.value))
    assert_same_stage([inputs[i : i + 300] for i in range(0, len(inputs), 300)])
    assert_same_stage([inputs], partitions=7)


def test_stage_one_on_the_hostile_corpus() -> None:
    """Each case after a valid event (so late has a watermark), alone and inside arrays, on every topic."""
    valid = {"event_id": "anchor", "ts": T0, "user_id": "a", "campaign_id": "c", "channel": "app", "action": "v",
             "share_id": "s", "order_id": "o", "amount_fen": 1}  # fmt: skip
    batch: list[Input] = []
    for topic in ("promo.clicks", "promo.shares", "promo.orders"):
        batch.append((topic, 0, 0, T0, orjson.dumps(valid)))
        for offset, case in enumerate(corpus(T0), start=1):
            batch.append((topic, 0, offset, T0 + 1000, case.value))
            batch.append((topic, 1, offset, T0, b"[" + orjson.dumps(valid) + b"," + case.value + b"]"))
    assert_same_stage([batch])


def test_gate_rejections_keep_their_raw_bytes() -> None:
    """Future and late events of the fast path: a lone object's DLQ value is its bytes as sent (spaces
    and all), an array element's is the element re-encoded, one-element arrays included."""
    doc = {"event_id": "e", "user_id": "u", "campaign_id": "双11", "channel": "app", "action": "v",
           "entry": "group", "city_tier": 3, "target_id": "t", "share_id": "s"}  # fmt: skip
    late, future, ok = {**doc, "ts": T0 - 3_600_000}, {**doc, "ts": T0 + 7_200_000}, {**doc, "ts": T0}
    values = [
        orjson.dumps(ok),
        b"  " + orjson.dumps(late) + b"\n",
        orjson.dumps(future),
        orjson.dumps([late]),
        orjson.dumps([future, ok, late]),
        b' {"ts": %d, "event_id": "x", "user_id": "u", "campaign_id": "c", "channel": "app", "action": "v"}' % T0,
    ]
    batch: list[Input] = [("promo.clicks", 0, offset, T0, value) for offset, value in enumerate(values)]
    assert_same_stage([batch])
    out = IngestOutput()
    ingest = Ingest(Settings().stages)
    for topic, partition, offset, timestamp_ms, value in batch:
        ingest.process(topic, partition, offset, timestamp_ms, value, out)
    assert [d.reason for d in out.dead] == ["late", "future", "late", "future", "late"]
    assert (out.dead[0].value, out.dead[1].value) == (values[1], values[2])
    late_event = Event(Kind.CLICK, "e", T0 - 3_600_000, "u", "双11", "app", "group", 3, "s", action="v", target_id="t")
    assert out.dead[2].value == out.dead[4].value == late_event.to_json()


def test_the_gate_sees_fast_and_slow_elements_in_order() -> None:
    """A slow-path event (null optional, ts as a float) between fast ones moves the same watermark."""
    base = {"event_id": "e", "user_id": "u", "campaign_id": "c", "channel": "app", "action": "v"}
    docs = [
        {**base, "ts": T0},
        {**base, "ts": float(T0 + 700_000), "entry": None},
        {**base, "ts": T0 + 50_000},  # late after the slow one, not after the first
        {**base, "ts": T0 + 700_000, "city_tier": 2.0},
    ]
    batch: list[Input] = [("promo.clicks", 0, 0, T0 + 800_000, orjson.dumps(docs))]
    batch += [("promo.clicks", 0, i + 1, T0 + 800_000, orjson.dumps(d)) for i, d in enumerate(docs)]
    assert_same_stage([batch])
    gate = PartitionGate(600_000, 3_600_000)
    ingest = Ingest(Settings().stages)
    ingest.set_gate("promo.clicks", 0, gate)
    out = IngestOutput()
    ingest.process("promo.clicks", 0, 0, T0 + 800_000, orjson.dumps(docs), out)
    assert gate.watermark == T0 + 700_000 and [d.reason for d in out.dead] == ["late"]
