"""The sink's columnar insert: `fact_insert_columns` is exactly the old row layout, column by column.

The sink used to hand clickhouse-connect one row per fact, rejection count and marker; it now hands it
the columns (the rows' conversion to columns in Python was most of the sink's own CPU). These tests hold
the columns to the rows the old code built; tests/integration/test_sink_insert.py holds the table
contents written both ways to each other on the real engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract.facts import COUNTERS
from streams.sink.clickhouse import FACTS_INSERT_TYPES, INSERT_COLUMNS, fact_insert_columns


def old_rows(
    facts: Sequence[Sequence[Any]], rejections: Sequence[Sequence[Any]], markers: dict[int, int]
) -> list[list[Any]]:
    """The rows the sink inserted before the columnar insert (`fact_insert_rows`, verbatim)."""
    zero = [0] * len(COUNTERS)
    rows: list[list[Any]] = []
    width = len(COUNTERS)
    for f in facts:
        rows.append([f[0], f[1], f[2], f[3], f[4] // 1000, "", "", -1, *f[5 : 5 + width], 0, 0])
    for r in rejections:
        rows.append([r[2], r[3], "", 0, r[4] // 1000, r[0], r[1], -1, *zero, r[5], 0])
    for partition, to_offset in sorted(markers.items()):
        rows.append(["", "", "", 0, 0, "", "", partition, *zero, 0, to_offset])
    return rows


def as_rows(columns: list[list[Any]]) -> list[list[Any]]:
    assert len(columns) == len(INSERT_COLUMNS)
    assert len({len(c) for c in columns}) == 1, [len(c) for c in columns]
    return [list(row) for row in zip(*columns, strict=True)]


text = st.text(max_size=12)  # any unicode: campaign ids are producers' strings
minute_ms = st.integers(0, 4_102_444_800).map(lambda s: s * 1000 - s * 1000 % 60_000)
counter = st.integers(-(2**40), 2**40)  # retractions are negative
fact = st.tuples(text, text, text, st.integers(0, 255), minute_ms, *[counter] * len(COUNTERS)).map(list)
rejection = st.tuples(text, text, text, text, minute_ms, st.integers(1, 2**40)).map(list)
markers = st.dictionaries(st.integers(0, 2**31 - 1), st.integers(0, 2**62), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(fact, max_size=30), st.lists(rejection, max_size=8), markers)
def test_columns_are_the_old_rows_transposed(
    facts: list[list[Any]], rejections: list[list[Any]], marks: dict[int, int]
) -> None:
    columns = fact_insert_columns(facts, rejections, marks)
    expected = old_rows(facts, rejections, marks)
    if expected:
        assert as_rows(columns) == expected
    else:
        assert columns == [[] for _ in INSERT_COLUMNS]


def test_columns_follow_the_insert_columns() -> None:
    facts = [["c1", "wechat", "group", 3, 1_762_790_460_000, 1, 2, 3, 4, 5, 6, 7, 8]]
    rejections = [["orders", "too_late", "c2", "app", 1_762_790_400_000, 9]]
    columns = dict(zip(INSERT_COLUMNS, fact_insert_columns(facts, rejections, {2: 70, 0: 50}), strict=True))
    assert tuple(FACTS_INSERT_TYPES) == INSERT_COLUMNS
    assert columns["campaign_id"] == ["c1", "c2", "", ""]
    assert columns["topic"] == ["", "orders", "", ""]
    assert columns["minute"] == [1_762_790_460, 1_762_790_400, 0, 0]
    assert columns["src_partition"] == [-1, -1, 0, 2]  # markers in partition order
    assert columns["batch_to"] == [0, 0, 50, 70]
    assert columns["rejected"] == [0, 9, 0, 0]
    assert [columns[c][0] for c in COUNTERS] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_short_wire_row_is_refused_not_misaligned() -> None:
    good = ["c1", "app", "feed", 1, 60_000, *[1] * len(COUNTERS)]
    with pytest.raises(ValueError, match="zip"):
        fact_insert_columns([good, good[:-1]], [], {0: 1})
