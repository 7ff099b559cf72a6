"""A slice of a labelled sale day as events: the pipeline's oracle counts exactly the day's series."""

from __future__ import annotations

from collections import defaultdict

from streams.alerts.detector import METRICS, Scope
from streams.kit.saleday import MIDNIGHT, STEP_S, DayConfig, Incident, make_day
from streams.kit.saleday_stream import labels, slice_records
from streams.kit.truth import compute_truth


def test_a_slice_as_events_counts_what_the_day_says_and_carries_its_labels() -> None:
    outage = Incident("outage", Scope("c01", "wechat"), ("orders", "gmv_fen", "new_users"), MIDNIGHT + 120, 60, 1.0)
    day = make_day(DayConfig(seed=3, campaigns=2, hours=2.0, base_rate=600.0,
                             incidents=(outage,), bot_bursts=0))  # fmt: skip
    start, end = MIDNIGHT - 60, MIDNIGHT + 240
    sim = slice_records(day, start, end, partitions=4, seed=5)
    assert sim.records and all(0 <= r.send_at_s < end - start for r in sim.records)
    assert [r.send_at_s for r in sim.records] == sorted(r.send_at_s for r in sim.records)
    truth = compute_truth(sim.records, sim.existing_buyers)
    assert truth.rejected == {}
    got = {(r["campaign_id"], r["channel"]): r for r in truth.totals}
    first, last = int((start - day.t0) // STEP_S), int((end - day.t0) // STEP_S)
    for row, scope in enumerate(day.scopes):
        if scope.channel is None:
            continue
        series = day.truth[row, :, first:last].copy()
        series[1] = series[:2].min(axis=0)  # a share is an interaction: shares capped by interactions
        want = series.sum(axis=1)
        cell = got.get((scope.campaign_id, scope.channel), defaultdict(int))
        for j, metric in enumerate(METRICS):
            assert cell[metric] == int(want[j]), (scope, metric)
    # The outage is in the events: no order on c01/wechat while it lasts.
    in_outage = [r for r in sim.records if r.kind == "orders" and b'"c01"' in r.value and b'"wechat"' in r.value
                 and outage.start * 1000 <= r.timestamp_ms < outage.end * 1000]  # fmt: skip
    assert in_outage == []
    (label,) = labels(day.incidents, start, end, shift_s=1000.0)
    assert label["start_s"] == outage.start + 1000 and label["kind"] == "outage"
    assert labels(day.incidents, end, end + 60) == []
