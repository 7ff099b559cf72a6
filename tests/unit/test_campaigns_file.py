"""`promo campaigns import`: a CSV of names and schedules, every line checked."""

from __future__ import annotations

import pytest

from streams.campaigns import Campaign, parse_time, read_campaign_file

GOOD = (
    "campaign_id,name,starts_at,ends_at\n"
    "双11主会场,双十一主会场 Main venue,2026-11-11T00:00:00+08:00,2026-11-12T00:00:00+08:00\n"
    "sk2,SK-II 品牌日,2026-11-10T16:00:00Z,\n"
    '"q""uote","名字, with a comma",,\n'  # CSV quoting: a quote is doubled
)


def test_a_good_file() -> None:
    parsed = read_campaign_file(GOOD)
    assert parsed.rejected == []
    assert parsed.campaigns == [
        Campaign("双11主会场", "双十一主会场 Main venue", 1_794_326_400_000, 1_794_412_800_000),
        Campaign("sk2", "SK-II 品牌日", 1_794_326_400_000, None),
        Campaign('q"uote', "名字, with a comma", None, None),
    ]
    assert Campaign.from_json(parsed.campaigns[0].to_json()) == parsed.campaigns[0]


def test_names_only() -> None:
    assert read_campaign_file("campaign_id,name\nc1,一号\n").campaigns == [Campaign("c1", "一号")]


def test_every_bad_line_is_reported_with_its_number() -> None:
    text = (
        "campaign_id,name,starts_at,ends_at\n"
        "c1,ok,2026-11-11T00:00:00+08:00,2026-11-11T01:00:00+08:00\n"
        "c2,no offset,2026-11-11T00:00:00,\n"
        "c3,backwards,2026-11-11T02:00:00Z,2026-11-11T01:00:00Z\n"
        "c1,again,,\n"
        "c4,too,many,columns,here\n"
        ",no id,,\n"
        "c5,not a time,yesterday,\n"
    )
    parsed = read_campaign_file(text)
    assert [c.campaign_id for c in parsed.campaigns] == ["c1"]
    assert [(n, r.split(" ")[0]) for n, r in parsed.rejected] == [
        (3, "'2026-11-11T00:00:00'"),
        (4, "ends_at"),
        (5, "campaign"),
        (6, "5"),
        (7, "campaign_id"),
        (8, "'yesterday'"),
    ]
    assert "no UTC offset" in parsed.rejected[0][1]


def test_a_schedule_outside_1970_to_9998_is_refused_as_the_plans_are() -> None:
    """An outside probe: a schedule from year 1 to 9999 was imported, and the detector raised 'nothing
    has arrived since 0001-01-01'."""
    text = (
        "campaign_id,name,starts_at,ends_at\n"
        "c1,year one,0001-01-01T00:00:00Z,2026-11-11T00:00:00Z\n"
        "c2,year 9999,2026-11-11T00:00:00Z,9999-12-31T23:59:59Z\n"
        "c3,fine,1970-01-01T00:00:00Z,9998-12-31T23:00:00+08:00\n"
    )
    parsed = read_campaign_file(text)
    assert [c.campaign_id for c in parsed.campaigns] == ["c3"]
    assert parsed.rejected == [
        (2, "'0001-01-01T00:00:00Z' is not from 1970 to 9998"),
        (3, "'9999-12-31T23:59:59Z' is not from 1970 to 9998"),
    ]


def test_ids_and_names_the_screens_could_not_show_are_refused_by_line() -> None:
    text = (
        "campaign_id,name\n"
        "c 01,space in the id\n"
        "c02,\n"
        'c03,"two\nlines"\n'
        "c04,bell\x07\n"
        "c05,tab\tin the id\n"
        "c\t06,x\n"
        "c07,双十一 主会场\n"
    )
    parsed = read_campaign_file(text)
    # A space inside an id is the contract's (events carry "双11 主会场"); a tab or a line break is not.
    assert parsed.campaigns == [Campaign("c 01", "space in the id"), Campaign("c07", "双十一 主会场")]
    assert [(n, r.split(":")[0]) for n, r in parsed.rejected] == [
        (3, "name ''"),
        (4, "name 'two\\nlines'"),
        (6, "name 'bell\\x07'"),  # the line it is on, after a cell of two lines
        (7, "name 'tab\\tin the id'"),
        (8, "campaign_id 'c\\t06'"),
    ]
    assert parsed.rejected[-1][1].endswith("contains a control character")


def test_a_file_without_the_header_is_refused_whole() -> None:
    parsed = read_campaign_file("c1,一号\n")
    assert parsed.campaigns == [] and parsed.rejected[0][0] == 1 and "header" in parsed.rejected[0][1]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("campaign_id,name,starts_at", "missing column(s) ends_at (the header is campaign_id,name or"),
        ("campaign_id,name,foo", "unknown column(s) 'foo' (the header is"),
        ("campaign_id,name,starts_at,ends_at,foo", "unknown column(s) 'foo' (the header is"),
        ("campaign_id,starts_at,ends_at", "missing column(s) name (the header is"),
        ("name,campaign_id", "the header must be campaign_id,name or campaign_id,name,starts_at,ends_at (in that"),
    ],
)
def test_a_header_names_the_columns_missing_and_unknown(header: str, reason: str) -> None:
    parsed = read_campaign_file(f"{header}\nc1,一号\n")
    assert parsed.campaigns == [] and len(parsed.rejected) == 1
    assert parsed.rejected[0][0] == 1 and parsed.rejected[0][1].startswith(reason), parsed.rejected


def test_times_need_an_offset() -> None:
    assert parse_time("2026-11-11T00:00:00+08:00") == parse_time("2026-11-10T16:00:00Z") == 1_794_326_400_000


def test_a_quote_left_open_is_refused_not_read_as_the_rest_of_the_file() -> None:
    # An outside probe of the plan files: csv read `"1` to the end of the file as one cell.
    parsed = read_campaign_file('campaign_id,name\nc1,一号\nc2,"二号\nc3,三号\n')
    assert parsed.campaigns == [] and parsed.rejected == [
        (3, "not CSV: unexpected end of data (a quote left open, or text after a closing one?)")
    ]
