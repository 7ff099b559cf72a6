"""The hostile corpus: broad enough, never crashes the decoder, and decoder and oracle agree."""

from __future__ import annotations

from streams.contract.events import Event, Kind, decode_value
from streams.kit.simulate import Record
from streams.kit.truth import compute_truth
from streams.lab.hostile import corpus, duplicate_flood

T0 = 1_762_790_400_000
KINDS = {"clicks": Kind.CLICK, "shares": Kind.SHARE, "orders": Kind.ORDER}


def test_at_least_thirty_kinds_of_bad_input() -> None:
    bad = [c for c in corpus(T0) if not all(isinstance(e, Event) for e in decode_value(KINDS[c.kind], c.value))]
    assert len(bad) >= 30, [c.name for c in bad]
    assert len({c.name for c in corpus(T0)}) == len(corpus(T0))


def test_decoder_and_oracle_agree_on_every_case() -> None:
    """Each case alone, after one valid event on the partition (so 'late' has a watermark)."""
    # Valid on every topic: each kind ignores the other kinds' fields.
    anchor = (b'{"event_id":"anchor","ts":%d,"user_id":"a","campaign_id":"c","channel":"app","action":"v",'
              b'"share_id":"s","order_id":"o","amount_fen":1}' % T0)  # fmt: skip
    for case in corpus(T0):
        elements = decode_value(KINDS[case.kind], case.value)
        decoded = sorted(e.reason for e in elements if not isinstance(e, Event))
        records = [Record(case.kind, 0, None, anchor, T0, 0.0), Record(case.kind, 0, None, case.value, T0, 0.0)]
        truth = compute_truth(records, [])
        expected = sorted(r for r, n in truth.rejected.items() for _ in range(n))
        # The decoder sees contract faults; the oracle adds late/future, which the gate decides.
        assert decoded == [r for r in expected if r not in ("late", "future")], case.name


def test_duplicate_flood_counts_once() -> None:
    value = b'{"event_id":"d","ts":%d,"user_id":"u","campaign_id":"c","channel":"app","action":"v"}' % T0
    records = [Record(c.kind, i % 3, None, c.value, T0, 0.0) for i, c in enumerate(duplicate_flood(value, 500))]
    truth = compute_truth(records, [])
    assert truth.accepted == 1 and truth.rejected == {"duplicate": 499}


def test_a_null_value_and_an_empty_one_get_the_reasons_the_contract_names() -> None:
    # docs/CONTRACT.md (an outside probe found the null case undocumented): a Kafka null is the JSON
    # text `null`, not an object; zero bytes or blanks are no JSON at all.
    from streams.contract.events import Rejection

    for value, reason in ((None, "not_an_object"), (b"", "invalid_json"), (b"  \n", "invalid_json"),
                          (b"null", "not_an_object")):  # fmt: skip
        (got,) = decode_value(Kind.CLICK, value)
        assert isinstance(got, Rejection) and str(got.reason) == reason, (value, got)
