"""The dashboard bench's pure parts: the day's curve, the profile, the query list."""

from __future__ import annotations

from streams.dashboards.grafana import build_all
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth
from streams.lab.bench_dashboards import (
    dashboard_queries,
    minute_events,
    percentile,
    profile_from_simulation,
)


def test_every_target_and_the_variable_are_timed() -> None:
    boards = build_all()
    queries = dashboard_queries(boards)
    targets = [t["rawSql"] for b in boards.values() for p in b["panels"] for t in p["targets"]]
    assert [q.sql for q in queries if not q.panel.endswith("(variable)")] == targets
    variables = [q for q in queries if q.panel.endswith("(variable)")]
    assert [(q.dashboard, q.panel) for q in variables] == [("promo-campaign", "$campaign (variable)")]


def test_the_day_adds_up_exactly_and_surges_at_midnight() -> None:
    counts = minute_events(100_000_007)
    assert len(counts) == 1440 and sum(counts) == 100_000_007 and min(counts) > 0
    first_hour, evening = sum(counts[:60]), sum(counts[1200:1260])
    assert first_hour > 3 * evening  # the 00:00 surge of the simulator's curve
    assert minute_events(100_000_007) == counts  # seeded
    assert sum(minute_events(1_441)) == 1_441


def test_the_profile_is_the_pipelines_accepted_and_rejected_events() -> None:
    profile = profile_from_simulation(3000, seed=5, partitions=2)
    sim = generate(SimConfig(events=3000, seed=5, partitions=2))
    truth = compute_truth(sim.records, sim.existing_buyers)
    assert profile.accepted == truth.accepted
    assert sum(r.count for r in profile.rejections) == sum(truth.rejected.values())
    assert not any(r.timeless for r in profile.rejections)  # every rejection has the minute it arrived
    orders = sum(c.counters[3] for c in profile.cells)
    assert orders == sum(int(row["orders"]) for row in truth.totals)
    assert len({c.campaign_id for c in profile.cells}) >= 5 and len({c.city_tier for c in profile.cells}) == 7


def test_percentile_is_nearest_rank() -> None:
    runs = [float(x) for x in range(1, 21)]
    assert (percentile(runs, 0.5), percentile(runs, 0.99)) == (10.0, 20.0)
    assert percentile([7.0], 0.99) == 7.0
