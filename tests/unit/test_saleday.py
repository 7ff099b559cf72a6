"""The labelled sale day (streams/kit/saleday.py) and the detector over whole generated days."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from streams.alerts.detector import METRICS, Detector, Scope
from streams.kit.saleday import MIDNIGHT, STEP_S, DayConfig, Incident, SaleDay, make_day
from streams.lab.alerteval import EvalConfig, Fired, make_labelled_day, run_detector, score_day

SHORT = {"hours": 3.0, "campaigns": 4}  # 23:00 to 02:00 Beijing: the eve, the surge, the fall-off


def test_the_day_has_a_surge_at_midnight_that_falls_off() -> None:
    day = make_day(DayConfig(seed=3, **SHORT))
    total = day.rate[0, METRICS.index("interactions")]
    minute = int(60 / STEP_S)
    i0 = int((MIDNIGHT - day.t0) / STEP_S)
    eve = total[i0 - 10 * minute : i0].mean()
    peak = total[i0 : i0 + 15 * minute].max()
    later = total[i0 + 90 * minute : i0 + 100 * minute].mean()
    assert peak >= 10 * eve
    assert later < peak / 3


def test_children_sum_to_their_parents_and_counts_are_overdispersed() -> None:
    day = make_day(DayConfig(seed=4, **SHORT))
    campaigns = [i for i, s in enumerate(day.scopes) if s.campaign_id and s.channel is None]
    np.testing.assert_allclose(day.truth[0], day.truth[campaigns].sum(axis=0))
    c1 = day.index(Scope("c01"))
    leaves = [i for i, s in enumerate(day.scopes) if s.campaign_id == "c01" and s.channel]
    np.testing.assert_allclose(day.truth[c1], day.truth[leaves].sum(axis=0))
    j = METRICS.index("interactions")
    x, lam = day.truth[0, j, :360], day.rate[0, j, :360]
    assert np.var(x - lam) > 2 * lam.mean()  # more than Poisson: the traffic factor


def test_incidents_hit_their_scope_and_nothing_else() -> None:
    incident = Incident("outage", Scope("c01", "wechat"), ("orders",), MIDNIGHT + 1800, 600, 1.0)
    clean = make_day(DayConfig(seed=5, **SHORT))
    hit = make_day(DayConfig(seed=5, incidents=(incident,), **SHORT))
    leaf = hit.index(Scope("c01", "wechat"))
    j = METRICS.index("orders")
    inside = slice(int((incident.start - hit.t0) / STEP_S) + 1, int((incident.end - hit.t0) / STEP_S) - 1)
    assert hit.truth[leaf, j, inside].sum() == 0 < clean.truth[leaf, j, inside].sum()
    other = hit.index(Scope("c01", "app"))
    assert hit.truth[other, j, inside].sum() > 0  # the sibling goes on
    np.testing.assert_array_equal(hit.rate, clean.rate)  # the labels' reference is incident-free
    assert hit.incidents == [incident]


def test_incident_json_round_trip_and_errors() -> None:
    incident = Incident("ramp", Scope("c01"), ("interactions",), MIDNIGHT + 60, 2700, 0.3, "ramp", 1800)
    assert Incident.from_json(incident.to_json()) == incident
    assert Incident.from_json({"scope": "c01/wechat", "start": 0, "duration": 60, "depth": 1}).scope == Scope(
        "c01", "wechat"
    )
    with pytest.raises(ValueError, match="unknown metrics"):
        Incident.from_json({"metrics": ["clicks"], "start": 0, "duration": 60, "depth": 1})
    with pytest.raises(ValueError, match="shape"):
        Incident.from_json({"start": 0, "duration": 60, "depth": 1, "shape": "sine"})
    # The scope grammar of silences: split at the last '/' only before one of the day's channels.
    assert Incident.from_json({"scope": "2026/双11/ads", "start": 0, "duration": 60, "depth": 1}).scope == Scope(
        "2026/双11", "ads"
    )
    assert Incident.from_json({"scope": {"campaign_id": "c01", "channel": None}, "start": 0, "duration": 60,
                               "depth": 1}).scope == Scope("c01")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [({"scope": "c01/"}, "empty part"), ({"scope": {"campaign_id": None, "channel": "app"}}, "empty part"),
     ({"scope": {"campaign_id": "c01/app"}}, "no campaign"), ({"scope": 7}, "scope is text"),
     ({"start": float("nan")}, "start"), ({"duration": float("inf")}, "duration"),
     ({"shape": "ramp", "ramp_s": -5}, "ramp_s"), ({"ramp_s": float("nan")}, "ramp_s"),
     ({"metrics": []}, "non-empty list"), ({"metrics": "orders"}, "non-empty list"),
     # Each field's type, named with the field; text is no number; an empty scope is no total.
     ({"start": [1]}, r"^start must be ISO 8601 or epoch seconds, not \[1\]$"),
     ({"start": "noon"}, r"^start: 'noon' is not an ISO 8601 time$"),
     ({"ramp_s": "abc"}, r"^ramp_s must be positive seconds \(a number\), not the text 'abc'$"),
     ({"depth": "0.5"}, r"^depth must be a number in \(0, 1\], not the text '0.5'$"),
     ({"duration": True}, r"^duration must be seconds > 0 \(finite\), not True$"),
     ({"duration": 10**400}, r"^duration must be seconds > 0"), ({"kind": 5}, r"^kind is text"),
     ({"scope": ""}, "empty part"), ({"shape": ["ramp"]}, r"^shape must be one of"),
     # An outside probe: labels that said another depth than the traffic fell by.
     ({"metrics": ["orders", "orders"]}, r"^metrics lists one twice"),
     ({"shape": "ramp", "ramp_s": 6000}, r"^ramp_s 6000 is longer than the duration 60: it would never reach"),
     ({"ramp_s": 30}, r"^ramp_s goes with shape 'ramp', not 'step'")],
)  # fmt: skip
def test_an_incident_that_can_never_apply_is_refused(change: dict[str, object], message: str) -> None:
    doc = {"scope": "c01/wechat", "start": MIDNIGHT, "duration": 60, "depth": 1.0}
    assert Incident.from_json(doc).metrics == tuple(METRICS)  # no metrics key: all of them
    with pytest.raises(ValueError, match=message):
        Incident.from_json({**doc, **change})


def test_steps_stall_then_catch_up_and_carry_every_count_once() -> None:
    day = make_day(DayConfig(seed=6, stalls=1, late_partitions=1, **SHORT))
    steps = list(day.steps())
    settled = np.array([s.settled_until for s in steps])
    assert (np.diff(settled) >= 0).all()
    assert (np.diff(settled) == 0).any() and (np.diff(settled) > 60).any()  # stands still, then jumps
    assert max(s.lag_s for s in steps) > 60
    total = sum(s.values[(Scope(), "interactions")] for s in steps)
    upto = int((settled[-1] - day.t0) / STEP_S)
    assert total == day.truth[0, 0, :upto].sum()


def test_the_plan_has_the_errors_real_plans_have() -> None:
    day = make_day(DayConfig(seed=7, **SHORT))
    plan = day.plan.series(Scope(), "interactions")
    assert plan is not None
    minute_truth = day.rate[0, 0, : len(plan) * 6].reshape(-1, 6).sum(axis=1)
    ratio = plan[: len(minute_truth)] / np.maximum(minute_truth, 1)
    assert np.ptp(ratio[minute_truth > 100]) > 0.05  # not the truth itself
    exact = make_day(DayConfig(seed=7, plan_errors=False, drift=False, **SHORT))
    exact_plan = exact.plan.series(Scope(), "interactions")
    assert exact_plan is not None
    np.testing.assert_allclose(exact_plan[:100], exact.rate[0, 0, :600].reshape(-1, 6).sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize("seed", [11, 12])
def test_no_false_alarm_on_an_incident_free_surge_night(seed: int) -> None:
    day = make_day(DayConfig(seed=seed, **SHORT))
    fired, cpu_ms, _ = run_detector(day)
    assert [a for a in fired if a.kind == "drop"] == []
    assert cpu_ms < 50


def _surge_day(seed: int, incident: Callable[[str], Incident]) -> tuple[SaleDay, list[Any], Any]:
    """A two-hour night (23:00 - 01:00) of 10 campaigns with the plan's errors, and one incident on the
    first campaign running since the eve; its detector's alerts and score."""
    base = DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0)
    running = next(c for c, (starts, _) in make_day(base).schedule.items() if starts is None)
    day = make_day(replace(base, incidents=(incident(running),)))
    fired, _, _ = run_detector(day)
    return day, fired, score_day(day, fired)


@pytest.mark.parametrize("seed", [100, 101, 103])
def test_a_campaign_halving_five_minutes_into_the_surge_is_caught_on_its_share_of_the_total(seed: int) -> None:
    """An outside probe: a campaign falling 55% at 00:05 for 4 minutes was read "35% below" or missed.
    Its own plan can judge it only through the envelope of +-5 min (the surge's peak may come minutes
    early or late), which in the fall-off is a third below the plan. Its share of the rest of the total,
    as the plan moves it, needs none: every campaign follows the day's shape alike. (Missed on these
    seeds before 2026-12-07.)"""
    _, fired, result = _surge_day(seed, lambda c: Incident("drop", Scope(c), METRICS, MIDNIGHT + 300, 240, 0.55))
    (incident, _, delay, _, _) = result.incidents[0]
    assert delay is not None and delay <= 150, delay
    hows = {f.how for f in fired if f.scope == incident.scope}
    assert any(how.startswith("share-of-total") for how in hows), hows
    assert result.false_alarms == 0, [(f.scope.label(), f.metric, f.how) for f in result.false_list]


@pytest.mark.parametrize("seed", [100, 101, 102])
def test_a_campaign_ramping_down_across_midnight_is_caught(seed: int) -> None:
    """The probe's other miss: a campaign ramping to -60% over 7 minutes from 23:58, through the start of
    the surge, where its own plan's level does not carry across the regime change. (Missed on these
    seeds before 2026-12-07.)"""

    def ramp(c: str) -> Incident:
        return Incident("ramp", Scope(c), METRICS, MIDNIGHT - 120, 690, 0.6, "ramp", 420.0)

    _, _, result = _surge_day(seed, ramp)
    (_, _, delay, _, _) = result.incidents[0]
    assert delay is not None and delay <= 600, delay
    assert result.false_alarms == 0, [(f.scope.label(), f.metric, f.how) for f in result.false_list]


def test_an_outage_during_the_fall_off_is_caught_and_scored() -> None:
    incident = Incident("outage", Scope("c01"), METRICS, MIDNIGHT + 1500, 300, 0.95)
    day = make_day(DayConfig(seed=13, incidents=(incident,), stalls=0, late_partitions=0, **SHORT))
    fired, _, _ = run_detector(day)
    result = score_day(day, fired)
    (_, _, delay, coverage, resolve) = result.incidents[0]
    assert delay is not None and delay <= 60
    assert coverage >= 0.9
    # GMV fired last (on 6 min) and resolves last: a compound sum of fewer orders needs a few
    # minutes of counts to be told from the incident's level (190 s here; the scoreboard's p95 ~300 s).
    assert resolve is not None and resolve <= 240
    assert result.false_alarms == 0


def test_firing_through_an_incident_is_the_union_of_its_alerts_not_their_sum() -> None:
    """An outside probe: three metrics firing over the same first half of an incident, and nothing over
    its second, scored 100% 'firing through' (their times were added up)."""
    incident = Incident("outage", Scope("c01"), METRICS, MIDNIGHT + 1500, 300, 0.95)
    day = make_day(DayConfig(seed=13, incidents=(incident,), stalls=0, late_partitions=0, **SHORT))
    start, half = incident.start + 20, incident.start + 170
    same = [Fired("drop", m, Scope("c01"), ((start, half),)) for m in ("interactions", "orders", "gmv_fen")]
    (_, _, delay, coverage, _) = score_day(day, same).incidents[0]
    assert delay == 20 and coverage == pytest.approx(150 / 280)
    # Overlapping and disjoint spans, one alert's two openings among them: counted once each.
    more = [*same, Fired("drop", "shares", Scope(), ((half - 50, half + 30), (half + 100, incident.end + 60)))]
    (_, _, _, coverage, _) = score_day(day, more).incidents[0]
    assert coverage == pytest.approx((150 + 30 + (incident.end - half - 100)) / 280)


def test_without_a_plan_the_detector_still_catches_outages() -> None:
    incident = Incident("outage", Scope("c02", "wechat"), METRICS, MIDNIGHT + 4000, 400, 1.0)
    day = make_day(DayConfig(seed=14, incidents=(incident,), stalls=0, late_partitions=0, **SHORT))
    detector = Detector(schedule=day.schedule)
    hits = [a for s in day.steps() for a in detector.step(s) if a.kind == "drop"]
    assert any(a.scope.encloses(Scope("c02", "wechat")) for a in hits)


@pytest.mark.parametrize("hours", [1.0, 1.5, 2.0])
def test_eval_days_of_an_hour_or_two_place_their_incidents_inside_the_day(hours: float) -> None:
    # A review: `promo alerts eval --hours 1` (up to 1.66) crashed placing incidents (onsets from
    # 40 min in to an hour before the end: an empty range). A short day keeps a third on either side.
    incidents = []
    for seed in (1, 2):
        day = make_labelled_day(seed, EvalConfig(hours=hours, campaigns=4))
        end = day.t0 + day.buckets * STEP_S
        assert all(day.t0 + hours * 3600 / 3 - 1 <= i.start <= end - hours * 3600 / 3 + 1 for i in day.incidents)
        incidents += day.incidents
    assert incidents  # a short day is still scored on incidents


def test_a_level_drifting_through_the_fall_off_is_no_drop_and_keeps_no_incident_open() -> None:
    """Development day 127, 00:00-01:10 (dev seeds only: the scoreboard's days are never tuned on). Its truth
    falls off faster than its plan: c04's ratio of truth to plan slides from 1.46 at 00:30 to 1.04 at 00:54.
    A level learnt on the 30 minutes before read c04's interactions 20% down at 00:55 (no incident there) and
    the total down on every metric when c02 fell 57% for 9 min at 00:55, open until the hour ran out (the
    tail came back to 0.66 of the frozen expectation). With the level's own move across the baseline as a
    doubt (`Detector._plan_drift`), c02's drop is still caught, and nothing else fires."""
    day = make_labelled_day(127, replace(EvalConfig(), seed=127))
    onset = next(i.start for i in day.incidents if i.scope == Scope("c02"))
    end = onset + next(i.duration for i in day.incidents if i.scope == Scope("c02"))
    steps = [s for s in day.steps() if MIDNIGHT - 5400 <= s.at <= MIDNIGHT + 4200]
    fired, _, _ = run_detector(day, steps=steps)
    drops = [f for f in fired if f.kind == "drop"]
    shown = [(f.scope.label(), f.metric, f.how, (f.start - MIDNIGHT) / 60) for f in drops]
    assert not [f for f in drops if f.scope.campaign_id == "c04"], shown
    caught = [f for f in drops if f.scope.encloses(Scope("c02")) and onset <= f.start <= onset + 120]
    assert caught, shown
    # every alert of that episode ends within 2 min of the drop's end (the slice ends 01:10, 5 min after it)
    assert all(f.intervals[-1][1] <= end + 120 for f in drops if f.scope.encloses(Scope("c02"))), shown


@pytest.mark.parametrize(("seed", "onset"), [(100, 63), (101, 183), (102, 33), (103, 3)])
def test_an_outage_of_the_whole_total_in_the_first_minutes_of_the_surge_is_caught_at_once(
    seed: int, onset: int
) -> None:
    """An outside probe: the total 95% down from 00:00:03, 00:00:33 or 00:01:03 was never raised, and from
    00:02-00:04 only at 00:05:15. The plan's envelope (its peak may come 5 minutes early or late) reached
    back across 00:00 and held the eve's level; the clock's start is no uncertain peak. In the start's own
    minute the envelope still reaches back (a launch 10-40 s late is no outage: a review), so an outage
    from 00:00:03 is raised after that minute (and where the surge is ~90x the eve, not at all: its
    first minute teaches the level; docs/ALERTS.md)."""
    incident = Incident("outage", Scope(), METRICS, MIDNIGHT + onset, 240, 0.95)
    day = make_day(DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0, incidents=(incident,)))
    fired, _, _ = run_detector(day)
    result = score_day(day, fired)
    (_, _, delay, coverage, resolve) = result.incidents[0]
    assert delay is not None and delay <= (30 if onset >= 60 else 90), delay
    assert coverage >= 0.95 and resolve is not None and resolve <= 60, (coverage, resolve)
    assert result.false_alarms == 0, [(f.scope.label(), f.metric, f.how) for f in result.false_list]


@pytest.mark.parametrize("seed", [100, 101])
def test_an_outage_open_across_midnight_stays_open_through_the_surge(seed: int) -> None:
    """The probe's other case: the total 90% down from 23:58:25 for 10 minutes fired at once and
    "resolved" at 00:00:25, against the eve's level still inside the envelope."""
    incident = Incident("outage", Scope(), METRICS, MIDNIGHT - 95, 600, 0.9)
    day = make_day(DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0, incidents=(incident,)))
    fired, _, _ = run_detector(day)
    (_, _, delay, coverage, resolve) = score_day(day, fired).incidents[0]
    assert delay is not None and delay <= 30, delay
    assert coverage >= 0.95 and resolve is not None and resolve <= 60, (coverage, resolve)


def test_a_channel_back_only_half_way_after_an_outage_stays_down() -> None:
    """An outside probe: a channel out for 3 minutes, then 45% down for 12, was "resolved" 60 s into
    the 45% (10 s of counts crossed the midpoint between 'out' and 'as expected'), and the rest was raised
    late or never. An incident is not over while its scope is more than 30% below expected."""
    start = MIDNIGHT + 20.5 * 3600 + 3
    incidents = (
        Incident("outage", Scope("c01", "jingxi"), METRICS, start, 180, 0.9),
        Incident("drop", Scope("c01", "jingxi"), METRICS, start + 180, 720, 0.45),
    )
    day = make_day(DayConfig(seed=50001, start=MIDNIGHT + 18.5 * 3600, hours=2.75, stalls=0, late_partitions=0,
                             bot_bursts=0, incidents=incidents))  # fmt: skip
    fired, _, _ = run_detector(day)
    first = min((f for f in fired if f.kind == "drop" and f.scope == Scope("c01", "jingxi")), key=lambda f: f.start)
    assert first.start - start <= 30, first
    end = start + 900
    assert first.intervals[0][1] >= end and first.intervals[0][1] - end <= 60, first.intervals


def test_a_payments_outage_in_a_campaigns_last_minutes_is_open_until_its_end() -> None:
    """An outside probe: orders per interaction 95% down 8 minutes before a campaign's scheduled end was
    raised, then closed 5 minutes before the end, still down (the end guard meant for shares and the recent
    rate, which fade with the campaign; a ratio does not). It is closed at the end now, as the schedule
    explains everything after it."""
    base = DayConfig(seed=50003, hours=3.5, stalls=0, late_partitions=0)
    end = MIDNIGHT + 2 * 3600
    assert make_day(base).schedule["c08"][1] == end
    payments = ("orders", "gmv_fen", "new_users")
    day = make_day(replace(base, incidents=(Incident("payments", Scope("c08"), payments, end - 480, 420, 0.95),)))
    fired, _, _ = run_detector(day)
    (_, _, delay, coverage, _) = score_day(day, fired).incidents[0]
    assert delay is not None and delay <= 150 and coverage >= 0.95, (delay, coverage)
    ends = [e for f in fired if f.scope == Scope("c08") and f.metric in payments for _, e in f.intervals]
    assert ends and all(end <= e <= end + 30 for e in ends), ends


@pytest.mark.parametrize(("seed", "scope", "depth"), [(50001, Scope("c08"), 1.0), (50002, Scope("c01", "wechat"), 1.0),
                                                       (50003, Scope(), 0.95)])  # fmt: skip
def test_an_outage_still_out_after_an_hour_stays_one_incident(seed: int, scope: Scope, depth: float) -> None:
    """An outside probe: an incident open an hour resolved (its frozen baseline is stale by then) while its
    scope was still at zero, and the channel's was never raised again (the campaign's and the total's
    10-20 minutes later, as new incidents). Still out against the expectation, it stays open."""
    onset = MIDNIGHT + 19 * 3600 + 603
    outage = Incident("outage", scope, METRICS, onset, 4800, depth)
    day = make_day(DayConfig(seed=seed, start=MIDNIGHT + 18.5 * 3600, hours=2.5, stalls=0, late_partitions=0,
                             bot_bursts=0, incidents=(outage,)))  # fmt: skip
    fired, _, _ = run_detector(day)
    mine = [f for f in fired if f.kind == "drop" and f.scope == scope and f.metric == "interactions"]
    assert len(mine) == 1 and len(mine[0].intervals) == 1, [f.intervals for f in mine]
    start, end = mine[0].intervals[0]
    assert start - onset <= 45 and 0 <= end - (onset + 4800) <= 90, (start - onset, end - onset - 4800)


def test_an_unplanned_outage_past_the_hour_is_not_held_against_a_rate_frozen_in_the_surge() -> None:
    """A review of the above: held against a recent rate frozen in the 00:05 surge (22,034 a minute), an
    unplanned campaign's normal traffic after the outage (938 a minute at 02:00) read as 'still out', and
    the incident stayed open hours after the campaign came back. On a recent rate, past the hour, only
    nothing at all holds it (the test below): it closes within a minute of the campaign's return."""
    base = DayConfig(seed=50001, start=MIDNIGHT - 3600, hours=3.0, stalls=0, late_partitions=0, bot_bursts=0)
    outage = Incident("outage", Scope("c01"), ("interactions",), MIDNIGHT + 303, 5400, 1.0)
    fired, _, _ = run_detector(make_day(replace(base, incidents=(outage,))), plan=False)
    mine = [f for f in fired if f.kind == "drop" and f.scope == Scope("c01") and f.metric == "interactions"]
    assert mine and all(b <= outage.end + 60 for f in mine for _, b in f.intervals), [f.intervals for f in mine]
    assert max(b for f in mine for _, b in f.intervals) >= outage.end, [f.intervals for f in mine]


@pytest.mark.parametrize(("seed", "scope"), [(50001, Scope("c08")), (50003, Scope()), (50002, Scope("c01", "wechat"))])
def test_an_unplanned_outage_sending_nothing_after_an_hour_stays_one_incident(seed: int, scope: Scope) -> None:
    """Without a plan an outage is judged on the recent rate, frozen at its onset and stale an hour later:
    the total's and a campaign's outage at zero for 80 minutes were closed at the hour and never raised
    again (the recent rate then learnt the zero). Nothing at all, where the scope's part of its parent (the
    total: its frozen rate) expects 20 events in 5 minutes, holds it open until the traffic is back."""
    onset = MIDNIGHT + 19 * 3600 + 603
    outage = Incident("outage", scope, METRICS, onset, 4800, 1.0)
    day = make_day(DayConfig(seed=seed, start=MIDNIGHT + 18.5 * 3600, hours=2.5, stalls=0, late_partitions=0,
                             bot_bursts=0, incidents=(outage,)))  # fmt: skip
    fired, _, _ = run_detector(day, plan=False)
    mine = [f for f in fired if f.kind == "drop" and f.scope == scope and f.metric == "interactions"]
    assert len(mine) == 1 and len(mine[0].intervals) == 1, [f.intervals for f in mine]
    start, end = mine[0].intervals[0]
    assert start - onset <= 60 and 0 <= end - (onset + 4800) <= 90, (start - onset, end - onset - 4800)
    if scope == Scope("c08"):
        # A campaign not on the schedule may have ended unannounced: nothing from it is not held past the hour
        others = {c: t for c, t in day.schedule.items() if c != "c08"}
        fired, _, _ = run_detector(replace(day, schedule=others), plan=False)
        mine = [f.intervals for f in fired if f.kind == "drop" and f.scope == scope and f.metric == "interactions"]
        assert mine and max(b for spans in mine for _, b in spans) < onset + 3700, mine
    if scope == Scope():  # every scheduled campaign ended 40 min in: the total is zero by design after that
        ended = {c: (starts, onset + 2400) for c, (starts, _) in day.schedule.items()}
        fired, _, _ = run_detector(replace(day, schedule=ended), plan=False)
        mine = [f.intervals for f in fired if f.kind == "drop" and f.scope == scope and f.metric == "interactions"]
        assert mine and max(b for spans in mine for _, b in spans) < onset + 3700, mine
    if scope == Scope("c08"):
        # ... and through a restart past the hour (the part of its parent it is held on)
        changes = []
        for restart in (False, True):
            det, seen, due = Detector(None, None, day.schedule), [], onset + 4200 if restart else math.inf
            for step in day.steps():
                if step.at >= due:
                    doc, due = json.loads(json.dumps(det.snapshot())), math.inf
                    det = Detector.restore(doc, None, None, day.schedule)
                seen += [(a.id, a.resolved_at) for a in det.step(step) if a.scope == scope]
            changes.append(seen)
        assert changes[0] == changes[1] and len(changes[0]) > 1, changes


@pytest.mark.parametrize(("seed", "campaign", "depth"), [(50001, "c02", 0.95), (50002, "c03", 0.99),
                                                         (50005, "c05", 0.9), (50007, "c04", 1.0)])  # fmt: skip
def test_a_campaign_launched_at_midnight_as_a_trickle_is_raised_in_its_first_minutes(
    seed: int, campaign: str, depth: float
) -> None:
    """An outside probe: a campaign launched at 00:00 with 1-10% of its traffic was never raised (the
    schedule's alert wanted nothing at all; its level was learnt from the trickle). Its plan, scaled as the
    rest of the total runs, expects it from the start: raised 90-100 s in, over 25-45 s after it comes back.
    (Nothing at all is raised the same way, at 90 s rather than the schedule's 120 s.)"""
    base = DayConfig(seed=seed, start=MIDNIGHT - 3600, hours=1.5, stalls=0, late_partitions=0)
    assert make_day(base).schedule[campaign][0] == MIDNIGHT
    day = make_day(replace(base, incidents=(Incident("outage", Scope(campaign), METRICS, MIDNIGHT - 60, 1200, depth),)))
    fired, _, _ = run_detector(day)
    launch = [f for f in fired if f.scope == Scope(campaign) and f.how.startswith("schedule")]
    assert len(launch) == 1 and len(launch[0].intervals) == 1, [(f.how, f.intervals) for f in fired]
    start, end = launch[0].intervals[0]
    assert 90 <= start - MIDNIGHT <= 105 and 0 <= end - (MIDNIGHT + 1140) <= 60, (start - MIDNIGHT, end - MIDNIGHT)
    result = score_day(day, fired)
    assert result.incidents[0][2] is not None and result.false_alarms == 0, result.false_list


@pytest.mark.parametrize(("seed", "campaign", "after"), [(100, "c08", 50), (101, "c03", 10), (103, "c04", 50)])
def test_a_campaign_out_seconds_after_its_00_00_launch_is_raised_within_a_minute_and_the_others_stay_quiet(
    seed: int, campaign: str, after: float
) -> None:
    """An outside probe: a campaign launched at 00:00 that broke 10-50 s in was raised 1-5.5 min later, or
    not at all (it had sent half its plan by the first judgement at 90 s, so it counted as launched, and its
    own checks had under a minute of baseline). The launch is now judged on its last minute. And when it
    came back, five other campaigns' shares of the total fired 6-7 min later (it was out of their reference
    unmasked): they wait as after an incident in the family."""
    base = DayConfig(seed=seed, start=MIDNIGHT - 3600, hours=2.0, stalls=0, late_partitions=0)
    assert make_day(base).schedule[campaign][0] == MIDNIGHT
    onset = MIDNIGHT + after
    day = make_day(replace(base, incidents=(Incident("outage", Scope(campaign), METRICS, onset, 300, 0.95),)))
    fired, _, _ = run_detector(day)
    launch = [f.intervals for f in fired if f.scope == Scope(campaign) and f.how.startswith("schedule")]
    assert len(launch) == 1 and launch[0][0][0] - onset <= 90, (launch, [(f.how, f.intervals) for f in fired])
    assert 0 <= launch[0][-1][1] - (onset + 300) <= 90, launch
    others = [(f.scope.label(), f.metric, f.how) for f in fired if f.scope.campaign_id not in (campaign, None)]
    assert others == [], others


def test_a_campaign_launched_in_the_evening_as_a_trickle_is_raised_and_a_clean_launch_is_not() -> None:
    base = DayConfig(seed=50001, start=MIDNIGHT + 19 * 3600, hours=1.5, stalls=0, late_partitions=0, bot_bursts=0)
    starts = MIDNIGHT + 20 * 3600
    assert make_day(base).schedule["c03"][0] == starts and make_day(base).schedule["c09"][0] == starts
    clean, _, _ = run_detector(make_day(base))
    assert [(f.scope.label(), f.how) for f in clean if f.kind == "drop"] == []
    day = make_day(replace(base, incidents=(Incident("outage", Scope("c03"), METRICS, starts - 600, 3600, 0.9),)))
    fired, _, _ = run_detector(day)
    launch = [f.intervals for f in fired if f.scope == Scope("c03") and f.how.startswith("schedule")]
    assert launch and launch[0][0][0] - starts <= 105, launch
    # A review: an outage 10 minutes after a clean launch raised "13% of the plan since its start" beside
    # its own drop alert; and a launch a minute late flapped a critical alert for 30 s. Neither is a launch.
    for incident in (Incident("outage", Scope("c03"), METRICS, starts + 603, 600, 0.9),
                     Incident("outage", Scope("c03"), METRICS, starts - 60, 118, 1.0)):  # fmt: skip
        day = make_day(replace(base, incidents=(incident,)))
        fired, _, _ = run_detector(day)
        assert [f.intervals for f in fired if f.how.startswith("schedule")] == [], incident
        if incident.duration > 300:
            assert score_day(day, fired).incidents[0][2] is not None  # caught by its own checks


@pytest.mark.parametrize(("seed", "channel"), [(50001, Scope("c08", "jingxi")), (50001, Scope("c01", "ads")),
                                               (50002, Scope("c10", "wechat"))])  # fmt: skip
def test_a_channel_back_to_normal_after_a_push_is_no_drop_and_a_drop_after_one_is(seed: int, channel: Scope) -> None:
    """An outside probe: a channel doubled for 20 minutes (a push), then back to normal, fired a drop on its
    share of the campaign 1-6 min after ("36-39% below", moderate-2m), open for the hour: its baseline had
    learnt the raised share. Back at the share before the rise, that is no drop; falling to half its normal
    after the push, it is."""
    push = Incident("promo", channel, METRICS, MIDNIGHT + 20 * 3600 + 1203, 1200, -1.0)
    base = DayConfig(seed=seed, start=MIDNIGHT + 18.5 * 3600, hours=3.0, stalls=0, late_partitions=0, bot_bursts=0)
    fired, _, _ = run_detector(make_day(replace(base, incidents=(push,))))
    assert [(f.metric, f.how) for f in fired if f.kind == "drop" and f.scope == channel] == []
    drop = Incident("drop", channel, METRICS, push.end, 900, 0.5)
    day = make_day(replace(base, incidents=(push, drop)))
    fired, _, _ = run_detector(day)
    (_, _, delay, coverage, _) = next(r for r in score_day(day, fired).incidents if r[0] == drop)
    assert delay is not None and delay <= 180 and coverage >= 0.9, (delay, coverage)
