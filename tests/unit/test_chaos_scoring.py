"""The chaos report's arithmetic: lost and doubled are per-cell shortfalls and excesses."""

from __future__ import annotations

from streams.contract.facts import COUNTERS
from streams.lab.chaos import Result, lost_and_doubled, markdown, table


def row(campaign: str, channel: str, **values: int) -> dict[str, object]:
    return {"campaign_id": campaign, "channel": channel, **dict.fromkeys(COUNTERS, 0), **values}


def test_equal_is_zero_and_cells_do_not_cancel() -> None:
    truth = [row("c", "wechat", orders=5, gmv_fen=100), row("c", "app", orders=1)]
    assert lost_and_doubled(truth, truth) == (0, 0)
    moved = [row("c", "wechat", orders=4, gmv_fen=100), row("c", "app", orders=2)]
    assert lost_and_doubled(truth, moved) == (1, 1)  # a moved count is one lost and one doubled


def test_missing_and_extra_rows() -> None:
    truth = [row("c", "wechat", interactions=3)]
    assert lost_and_doubled(truth, []) == (3, 0)
    assert lost_and_doubled([], truth) == (0, 3)


def test_report_shows_not_exact() -> None:
    bad = Result("x", events_sent=10, lost=1, rejected_match=True)
    good = Result("y", events_sent=10, rejected_match=True, rejected={"late": 2})
    assert not bad.exact and good.exact
    assert "NO" in table([bad, good]) and "late=2" in table([bad, good])
    assert markdown([good]).splitlines()[-1].startswith("| y | 10 |")
