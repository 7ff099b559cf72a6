"""The drop detector's pure logic (issue 17): what must fire, what must not, and the incident lifecycle.

Series here are built by hand (a flat or decaying rate, Poisson counts) so that each test says in a
line what happened; tests/unit/test_saleday.py runs it over a whole generated sale day."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerts.detector import METRICS, Alert, Detector, DetectorConfig, Scope, Step
from streams.alerts.plan import Plan

T0 = 1_794_326_400.0  # 2026-11-11 00:00 Beijing
CHANNELS = ("wechat", "app", "jingxi")
SHARES = (0.5, 0.3, 0.2)
RATIOS = {"interactions": 1.0, "shares": 0.1, "orders": 0.04, "gmv_fen": 0.04 * 10_000, "new_users": 0.01}
Rate = Callable[[float], float]  # interactions per second for campaign c1 at event time t


def series(
    rate: Rate,
    seconds: float,
    *,
    seed: int = 0,
    hit: Callable[[float, Scope, str], float] = lambda t, s, m: 1.0,
    stall: tuple[float, float] | None = None,
    lag_s: float = 10.0,
    shares: tuple[tuple[str, float], ...] = tuple(zip(CHANNELS, SHARES, strict=True)),
    ratios: dict[str, float] = RATIOS,
) -> Iterator[Step]:
    """Steps every 10 s for one campaign c1 with three channels; `hit` multiplies a leaf's metric;
    during `stall` (arrival seconds from T0) settled_until stands still, then catches up."""
    rng = np.random.default_rng(seed)
    settled = T0
    for k in range(int(seconds // 10)):
        at = T0 + 10 * (k + 2)
        target = at - 10
        if stall is not None and T0 + stall[0] <= at < T0 + stall[1]:
            target = settled
        values: dict[tuple[Scope, str], float] = {}
        t = settled
        while t < target:
            for channel, share in shares:
                leaf = Scope("c1", channel)
                for metric in METRICS:
                    lam = rate(t + 5) * 10 * share * ratios[metric] * hit(t + 5, leaf, metric)
                    if metric == "gmv_fen":
                        n = rng.poisson(max(lam / 10_000, 0))
                        v = float(rng.gamma(n, 10_000)) if n else 0.0
                    else:
                        v = float(rng.poisson(max(lam, 0)))
                    for scope in (leaf, Scope("c1"), Scope()):
                        values[(scope, metric)] = values.get((scope, metric), 0.0) + v
            t += 10
        lag = at - target if stall is not None and T0 + stall[0] <= at < T0 + stall[1] else lag_s
        settled = max(settled, target)
        yield Step(at, settled, lag, values)


def run(detector: Detector, steps: Iterator[Step]) -> list[tuple[float, Alert]]:
    """Every state change as (arrival time, a copy of the alert)."""
    out = []
    for step in steps:
        for alert in detector.step(step):
            out.append((step.at, Alert(**{**alert.__dict__})))
    return out


def flat(per_s: float) -> Rate:
    return lambda t: per_s


def opened(changes: list[tuple[float, Alert]], kind: str = "drop") -> list[Alert]:
    seen: dict[str, Alert] = {}
    for _, alert in changes:
        if alert.kind == kind:
            seen.setdefault(alert.id, alert)
    return list(seen.values())


# -- what must fire -----------------------------------------------------------------------------


def test_an_outage_on_a_channel_is_caught_within_seconds() -> None:
    # 40 interactions/s in c1; from minute 40 wechat (half of them) sends nothing.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if scope.channel == "wechat" and t >= T0 + 2400 else 1.0

    changes = run(Detector(), series(flat(40), 3000, hit=hit))
    first = [(at, a) for at, a in changes if a.kind == "drop" and a.metric == "interactions"]
    assert first, "an outage of half a campaign's traffic must fire"
    at, alert = first[0]
    assert alert.scope in (Scope("c1", "wechat"), Scope("c1"), Scope())
    assert at - (T0 + 2400) <= 40
    assert alert.severity == "critical" or alert.scope != Scope("c1", "wechat")


def test_payments_breaking_fires_on_orders_by_ratio_even_with_no_plan() -> None:
    # Orders fall 90% everywhere while interactions go on: orders per interaction breaks.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.1 if metric in ("orders", "gmv_fen", "new_users") and t >= T0 + 2400 else 1.0

    changes = run(Detector(), series(flat(200), 2800, hit=hit))
    metrics = {a.metric for a in opened(changes) if a.detected_at >= T0 + 2400}
    assert "orders" in metrics
    assert "interactions" not in metrics


def test_a_channel_losing_its_share_while_everything_falls_is_caught() -> None:
    # The campaign decays (the fall-off after 00:00) and wechat drops to a fifth of its share.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.2 if scope.channel == "wechat" and t >= T0 + 2400 else 1.0

    changes = run(Detector(), series(lambda t: 200 * math.exp(-(t - T0) / 3600), 3000, hit=hit))
    hits = [a for a in opened(changes) if a.detected_at >= T0 + 2400]
    assert any(a.scope.encloses(Scope("c1", "wechat")) and a.metric == "interactions" for a in hits)


def test_a_big_channel_falling_30_percent_is_judged_against_its_siblings() -> None:
    # wechat brings half the campaign; it falls 30% while the campaign decays. Against the campaign
    # (which falls 15% with it) its share is only 18% down, under every check's depth; against its
    # siblings it is 30% down.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.7 if scope.channel == "wechat" and t >= T0 + 2400 else 1.0

    changes = run(Detector(), series(lambda t: 100 * math.exp(-(t - T0) / 3600), 3600, hit=hit))
    found = [a for a in opened(changes) if a.scope == Scope("c1", "wechat") and a.basis == "share-of-parent"]
    assert found, opened(changes)
    assert found[0].detected_at - (T0 + 2400) <= 420


def test_a_shallow_drop_on_a_small_channel_fires_through_and_resolves_after() -> None:
    # jingxi expects 60 events a minute and loses 40% for 20 min: one alert from detection to the
    # end (a minute of 60 events at 60% often looks recovered), resolved within minutes after it.
    start, end = T0 + 2400, T0 + 3600

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.6 if scope.channel == "jingxi" and start <= t < end else 1.0

    changes = run(Detector(), series(flat(5), 4500, hit=hit, seed=3))
    mine = [(at, a) for at, a in changes if a.kind == "drop" and a.scope.encloses(Scope("c1", "jingxi"))]
    assert mine, changes
    assert len({a.id for _, a in mine}) == 1, [(at - T0, a.resolved_at) for at, a in mine]
    resolved = [a.resolved_at for _, a in mine if a.resolved_at is not None]
    assert resolved and end <= resolved[0] <= end + 300, (resolved, end)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_an_outage_in_the_fall_off_fires_through_and_resolves_soon_after(seed: int) -> None:
    # Ten minutes after 00:00, with traffic still falling off the surge and no plan, jingxi (a fifth of
    # c1) stops for 5 min: every alert stays open to the end (a recovery window reaching back before
    # the onset once read a minute in as recovered) and resolves within 2 min of it (the rate frozen
    # at the surge is twice what the channel sends later: such alerts stayed open for the hour).
    start, end = T0 + 600, T0 + 900

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if scope.channel == "jingxi" and start <= t < end else 1.0

    changes = run(Detector(), series(lambda t: 40 * (1 + 4 * math.exp(-(t - T0) / 900)), 2400, hit=hit, seed=seed))
    mine = [a for _, a in changes if a.kind == "drop" and a.scope.encloses(Scope("c1", "jingxi"))]
    assert {a.metric for a in mine} >= {"interactions", "orders"}, mine
    for alert in mine:
        assert alert.resolved_at is None or end <= alert.resolved_at <= end + 120, (
            alert.metric,
            alert.resolved_at - end,
        )
    assert all(any(a.id == b.id and b.resolved_at is not None for b in mine) for a in mine)  # each resolved


def test_a_channel_alert_stays_open_while_its_whole_campaign_goes_down_after_it() -> None:
    # jingxi stops 10 min after 00:00 and, two minutes later, all of c1 does, for 20 min: jingxi's
    # alerts must not resolve against its siblings, which sent nothing either (a second pair of eyes
    # found them resolving 760 s before the end).
    start, wide, end = T0 + 600, T0 + 720, T0 + 1800

    def hit(t: float, scope: Scope, metric: str) -> float:
        down = (scope.channel == "jingxi" and start <= t < end) or wide <= t < end
        return 0.0 if down else 1.0

    changes = run(Detector(), series(lambda t: 40 * (1 + 4 * math.exp(-(t - T0) / 900)), 2400, hit=hit, seed=1))
    mine = [a for _, a in changes if a.kind == "drop" and a.scope == Scope("c1", "jingxi")]
    assert mine, changes
    for alert in mine:
        assert alert.resolved_at is None or alert.resolved_at >= end, (alert.metric, alert.resolved_at - end)


def _surge_at_1800(t: float) -> float:
    """Calm at 20 interactions/s, then "00:00" at T0 + 1800: a jump to 40% of 12x, the peak 4 min
    later and a fall-off over 15 min."""
    m = (t - T0 - 1800) / 60
    if m < 0:
        return 20.0
    return 20.0 * (1 + 11 * min(1.0, 0.4 + m / 5) * math.exp(-max(m - 4, 0) / 15))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_channel_losing_share_in_the_surge_is_caught_with_no_plan(seed: int) -> None:
    # Five minutes into the surge jingxi brings 40% less for 15 min. Its own recent rate (the calm
    # before) is a tenth of what it sends, so "low on its own level" must scale with its campaign:
    # unscaled, the share was never judged in the first hour (caught on 1 of 6 seeds, 15 min late).
    on, off = T0 + 2100, T0 + 3000

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.6 if scope.channel == "jingxi" and on <= t < off else 1.0

    changes = run(Detector(), series(_surge_at_1800, 3600, hit=hit, seed=seed))
    caught = [a for a in opened(changes) if a.scope == Scope("c1", "jingxi") and a.detected_at <= on + 300]
    assert caught, opened(changes)
    assert not opened(run(Detector(), series(_surge_at_1800, 3600, seed=seed)))  # the surge alone: nothing


def _launch_at_1800(t: float) -> float:
    """A campaign scheduled to start at T0 + 1800 ("00:00"): nothing before, then the surge's shape."""
    return 0.0 if t < T0 + 1800 else _surge_at_1800(t)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_payments_breaking_on_a_channel_minutes_after_its_campaign_starts_are_caught(seed: int) -> None:
    # Three minutes after a scheduled 00:00 start, app's payments fall 55% for 6 min; no plan. Orders
    # per interaction see it; "low on its own level too" asked the channel's recent rate, which was
    # spread over the eve when the campaign did not run yet: a tenth of what it sends, and the drop was
    # never confirmed (these 6 seeds: caught on 0). The recent rate now counts the scheduled time only.
    on, off = T0 + 1980, T0 + 2340
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 + 1800, None)}

    def hit(t: float, scope: Scope, metric: str) -> float:
        broken = scope.channel == "app" and metric in ("orders", "gmv_fen", "new_users") and on <= t < off
        return 0.45 if broken else 1.0

    changes = run(Detector(schedule=schedule), series(_launch_at_1800, 3000, hit=hit, seed=seed))
    caught = [a for a in opened(changes) if a.scope.encloses(Scope("c1", "app")) and on <= a.detected_at <= off + 120]
    assert caught, opened(changes)
    quiet = run(Detector(schedule=schedule), series(_launch_at_1800, 3600, seed=seed))
    assert not opened(quiet)  # the launch and its surge alone: nothing


@pytest.mark.parametrize("push_s", [30, 60])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_launch_push_on_one_channel_teaches_no_baseline(push_s: int, seed: int) -> None:
    # At a scheduled 00:00 start the app's push brings it 3x its share for the first 30-60 s, then the
    # campaign runs steadily. Once the recent rate counted only scheduled time, a baseline of the first
    # two minutes learnt app's share from the push and its end read as a drop (share-of-parent
    # moderate-2m at 250 s, history outage-10s at 80 s; 11 of 12 such runs). The launch's first minute
    # is kept out of baselines, and a baseline counts as covered only with time after it.
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 + 1800, None)}

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 3.0 if scope.channel == "app" and T0 + 1800 <= t < T0 + 1800 + push_s else 1.0

    launch = series(lambda t: 0.0 if t < T0 + 1800 else 60.0, 3600, hit=hit, seed=seed)
    assert opened(run(Detector(schedule=schedule), launch)) == []


@pytest.mark.parametrize("opens_s", [0, 120, 300, 1800])
def test_a_campaign_sending_before_its_scheduled_start_is_no_drop(opens_s: int) -> None:
    # Opened early (or its start typed late in the schedule): c1 sends 40 interactions/s from
    # opens_s before its scheduled start on. Counts before the start are no rate over the scheduled
    # time (which begins at the start): a review found them learnt against no time, an outage at
    # start + 140 s on every seed. Not before the start, nor after: nothing to judge.
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 + 1800, None)}
    for seed in range(3):
        early = series(lambda t: 40.0 if t >= T0 + 1800 - opens_s else 0.0, 2600, seed=seed)
        assert opened(run(Detector(schedule=schedule), early)) == [], seed


def test_a_moderate_drop_against_a_plan_is_caught() -> None:
    # The plan is 30% off in level (the detector learns the level); from minute 40 the campaign
    # falls 50% on every channel: no share or ratio moves, only the plan can tell.
    minutes = 60
    plan = Plan(T0, {(Scope("c1"), m): np.full(minutes, 60 * 30 * 1.3 * RATIOS[m]) for m in METRICS})

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.5 if t >= T0 + 2400 else 1.0

    changes = run(Detector(plan=plan), series(flat(30), 3300, hit=hit))
    found = [a for a in opened(changes) if a.scope == Scope("c1") and a.basis == "plan"]
    assert found
    assert found[0].detected_at - (T0 + 2400) <= 180


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planned_fall_of_a_campaign_is_no_outage_of_its_channels(seed: int) -> None:
    """A plan lists the total and the campaign, not its channels (war rooms plan campaigns). It
    foresees the campaign falling to a tenth at minute 40 (a flash-sale session ends): each channel,
    judged on its own recent rate, read that as an outage (three critical alerts at the cliff, the
    campaign quiet). A channel the plan does not list now follows its campaign's planned shape, at
    its own level. A real outage of a channel after the cliff is still caught."""
    cliff, minutes = T0 + 2400, 70

    def planned(minute: int) -> float:
        return 0.1 if T0 + 60 * minute >= cliff else 1.0

    plan = Plan(T0, {(scope, m): np.array([60 * 30 * planned(i) * RATIOS[m] for i in range(minutes)])
                     for scope in (Scope(), Scope("c1")) for m in METRICS})  # fmt: skip

    def rate(t: float) -> float:
        return 30.0 * (0.1 if t >= cliff else 1.0)

    def hit(t: float, scope: Scope, metric: str) -> float:  # wechat down from minute 55
        return 0.0 if scope.channel == "wechat" and t >= T0 + 3300 else 1.0

    changes = run(Detector(plan=plan), series(rate, 3600, seed=seed, hit=hit))
    alerts = opened(changes)
    assert not [a for a in alerts if a.detected_at < T0 + 3300], [(a.scope.label(), a.metric, a.basis) for a in alerts]
    down = [a for a in alerts if a.scope == Scope("c1", "wechat") and a.metric == "interactions"]
    assert down and down[0].detected_at - (T0 + 3300) <= 60, [(a.scope.label(), a.metric) for a in alerts]


def _plan_for_half_an_hour(level: float = 1.0) -> Plan:
    """A plan of the total and c1 for the first 30 minutes only (the sale day's, say, and this is the day after)."""
    return Plan(T0, {(scope, m): np.full(30, 60 * 30 * level * RATIOS[m]) for scope in (Scope(), Scope("c1"))
                     for m in METRICS})  # fmt: skip


@pytest.mark.parametrize("onset", [1860, 3000])
def test_a_plan_that_has_ended_does_not_mute_its_scopes(onset: int) -> None:
    # From `onset` the whole campaign sends 5%: a minute after the plan's end (its windows and baselines
    # across the edge) and twenty. Outside the plan's span the total and the campaign are judged on
    # their recent rate, as unplanned scopes are; a plan that expects nothing there muted their
    # outage checks (only the channels, unplanned, fired).
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.05 if t >= T0 + onset else 1.0

    changes = run(Detector(plan=_plan_for_half_an_hour()), series(flat(30), onset + 300, hit=hit))
    found = [a for a in opened(changes) if a.scope == Scope() and a.metric == "interactions"]
    assert found, [(a.scope.label(), a.metric, a.basis) for a in opened(changes)]
    assert found[0].basis == "history" and found[0].severity == "critical"
    assert found[0].detected_at - (T0 + onset) <= 30


def test_an_outage_open_when_the_plan_ends_stays_open_until_it_is_over() -> None:
    # 5% from minute 25 to 55; the plan ends at 30. The incidents fired on the plan go on, judged on
    # the rate before the outage, and resolve after it (they resolved at the plan's end).
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.05 if T0 + 1500 <= t < T0 + 3300 else 1.0

    changes = run(Detector(plan=_plan_for_half_an_hour()), series(flat(30), 4200, hit=hit))
    total = {a.metric: a for a in opened(changes) if a.scope == Scope()}
    assert {"interactions", "shares", "orders"} <= set(total), total
    for metric in ("interactions", "shares", "orders"):
        last = [a for _, a in changes if a.id == total[metric].id][-1]
        assert last.basis == "history" and last.resolved_at is not None, last
        assert T0 + 3300 < last.resolved_at <= T0 + 3300 + 120, (metric, last.resolved_at - T0)


def test_a_drop_soon_after_a_plan_begins_is_told_in_the_plans_units() -> None:
    # A plan from minute 30 on (a backtest's history starting before it); c1 falls 50% from minute 62
    # to 80. The 6-minute check's baseline reached back before the plan when the incident opened, so its
    # level ratio was learnt on the recent rate (events a second); two minutes later its window and
    # baseline lay inside the plan, and that ratio times plan counts read "94% below, 1818 vs 29732
    # expected" and critical (an outside probe). A ratio learnt on one basis never judges on the other.
    plan = Plan(T0 + 1800, {(scope, m): np.full(60, 60 * 30 * RATIOS[m]) for scope in (Scope(), Scope("c1"))
                            for m in METRICS})  # fmt: skip

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.5 if T0 + 3720 <= t < T0 + 4800 else 1.0

    changes = run(Detector(plan=plan), series(flat(30), 5400, hit=hit))
    found = [a for _, a in changes if a.kind == "drop"]  # the total's, with c1 folded under it
    assert found, [(a.scope.label(), a.metric, a.basis) for _, a in changes]
    for alert in found:  # every version of every incident: about half of what was expected, never 94% down
        assert alert.severity == "warning" and 0.3 <= alert.observed / alert.expected <= 0.75, alert.message


def test_payments_breaking_just_after_the_plan_ends_is_caught_on_gmv_too() -> None:
    # Orders, GMV and new users at 10% from 100 s after the plan's end: ratios judge it, and their
    # confirmation ("low on its own level too") compares counts with counts, not with plan minutes.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.1 if t >= T0 + 1900 and metric in ("orders", "gmv_fen", "new_users") else 1.0

    changes = run(Detector(plan=_plan_for_half_an_hour()), series(flat(30), 2400, hit=hit, seed=2))
    found = {a.metric for a in opened(changes) if a.scope == Scope()}
    assert {"orders", "gmv_fen"} <= found, found


@pytest.mark.parametrize("level", [0.01, 1.0, 100.0])
def test_windows_across_the_plans_end_raise_nothing(level: float) -> None:
    # Traffic goes on through the plan's last minute and after it, the plan off in level by up to 100x
    # (the detector learns the level): a window or baseline holding plan minutes and clock seconds
    # must not compare the two.
    changes = run(Detector(plan=_plan_for_half_an_hour(level)), series(flat(30), 4800, seed=3))
    assert opened(changes) == []


def _payments_ramp_on_app(seed: int, config: DetectorConfig) -> tuple[bool, list[Alert]]:
    """app (0.3 of c1, 40 orders a minute) loses orders linearly to -30% over 30 min from minute 90,
    stays there 15 min, then recovers; no plan. Caught: a drop on orders, GMV or new users of app or
    a scope above it detected while the ramp lasts (or 2 min after)."""
    start, end = T0 + 5400, T0 + 5400 + 2700

    def hit(t: float, scope: Scope, metric: str) -> float:
        if scope.channel != "app" or metric not in ("orders", "gmv_fen", "new_users") or not start <= t < end:
            return 1.0
        return 1.0 - 0.3 * min((t - start) / 1800, 1.0)

    found = opened(run(Detector(config), series(flat(56), 8700, hit=hit, seed=seed)))
    caught = any(
        a.scope.encloses(Scope("c1", "app")) and a.metric != "interactions" and start <= a.detected_at <= end + 120
        for a in found
    )
    return caught, found


def test_a_slow_ramp_of_payments_on_a_channel_is_caught_by_the_15_minute_ratio_check() -> None:
    # Orders per interaction do not drift with the channel mix, so a 15-min window against the hour
    # that ended 15 min before it may judge them where shares may not. Without that check the 10-min
    # one (z 4.5, 200 orders) caught 3 of these 6 ramps; with it, 5.
    seeds = range(6)
    without = DetectorConfig(checks=tuple(c for c in DetectorConfig().checks if c.name != "slow-ratio-15m"))
    with_check = [_payments_ramp_on_app(seed, DetectorConfig()) for seed in seeds]
    assert sum(caught for caught, _ in with_check) >= 5, [found for _, found in with_check]
    assert sum(_payments_ramp_on_app(seed, without)[0] for seed in seeds) < sum(c for c, _ in with_check)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_15_minute_ratio_check_is_quiet_on_a_steady_afternoon(seed: int) -> None:
    assert opened(run(Detector(), series(flat(56), 8700, seed=seed))) == []


# -- what must not fire --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fall_off_after_midnight_does_not_alarm(seed: int) -> None:
    # A 10x surge at 00:00 decaying with a 15 min time constant: the fall-off is not a drop.
    def rate(t: float) -> float:
        return 20 if t < T0 + 1200 else 20 + 180 * math.exp(-(t - T0 - 1200) / 900)

    changes = run(Detector(), series(rate, 6000, seed=seed))
    assert opened(changes) == []


def _surge_planned(t: float, decay_s: float = 900.0) -> float:
    """A plan's (or, with another time constant, the truth's) interactions a second: a calm eve, a surge at
    T0 + 30 min rising to 15x over 5 min and falling off with time constant `decay_s`."""
    if t < T0 + 1800:
        return 8.0
    x = t - T0 - 1800
    return 8.0 + 112.0 * min(x / 300.0, 1.0) * math.exp(-max(x - 300.0, 0.0) / decay_s)


@pytest.mark.parametrize(
    ("decay", "onset_min", "depth", "seed"), [(0.8, 70, 0.5, 3), (1.0, 50, 0.3, 1), (1.0, 70, 0.3, 2)]
)
def test_a_drop_in_the_fall_off_is_still_caught(decay: float, onset_min: int, depth: float, seed: int) -> None:
    """The level's doubt (`Detector._plan_drift`) costs nothing where the level holds still: half of the
    campaign (the whole total) going for 10 min 70 min into a fall-off 20% faster than planned, and 30% of it
    going 50 or 70 min into a fall-off as planned, are caught on the plan, and nothing fires before them. A
    review of a first version, whose doubt grew with how far the plan moved rather than with how far the
    level moved, found those 30% drops missed on every seed."""
    onset = T0 + 1800 + 60 * onset_min
    plan = Plan(T0, {(scope, m): np.array([60 * _surge_planned(T0 + 60 * i + 30) * RATIOS[m] for i in range(150)])
                     for scope in (Scope(), Scope("c1")) for m in METRICS})  # fmt: skip

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 1 - depth if onset <= t < onset + 600 else 1.0

    def rate(t: float) -> float:  # 30% above the plan, falling off `decay` times as slowly
        return 1.3 * _surge_planned(t, 900.0 * decay)

    alerts = opened(run(Detector(plan=plan), series(rate, 8400, seed=seed, hit=hit)))
    shown = [(a.scope.label(), a.metric, a.window, round(a.detected_at - onset)) for a in alerts]
    assert all(a.detected_at >= onset for a in alerts), shown
    caught = [a for a in alerts if a.scope.encloses(Scope("c1")) and a.basis == "plan"]  # c1 is the whole total
    assert caught and caught[0].detected_at - onset <= (180 if depth >= 0.5 else 480), shown


def test_a_stall_raises_lag_not_drops_and_resolves_after_catch_up() -> None:
    # The worker stalls 3 min: settled_until stands still, then one step catches up 3 min.
    changes = run(Detector(), series(flat(50), 3000, stall=(1800, 1980)))
    assert opened(changes) == []
    lags = opened(changes, "lag")
    assert len(lags) == 1
    lag = lags[0]
    assert T0 + 1800 + 50 <= lag.detected_at <= T0 + 1800 + 70 + 10  # lag passes 60 s, then one step
    resolved = [at for at, a in changes if a.kind == "lag" and a.resolved_at is not None]
    assert resolved and resolved[0] - (T0 + 1980) <= 20


def test_a_catch_up_written_before_the_lag_says_so_is_no_drop() -> None:
    # The stall's backlog reaches the store one evaluation before the lag drops: that step settles
    # nothing new but brings the counts; the next settles three minutes and brings almost none.
    steps = list(series(flat(50), 3000, stall=(1800, 1980)))
    jump = next(i for i in range(1, len(steps)) if steps[i].settled_until - steps[i - 1].settled_until > 60)
    early, late = steps[jump - 1], steps[jump]
    steps[jump - 1] = Step(early.at, early.settled_until, early.lag_s, late.values)
    steps[jump] = Step(late.at, late.settled_until, late.lag_s, {})
    changes = run(Detector(), iter(steps))
    assert opened(changes) == [], opened(changes)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_detector_started_into_a_backlog_does_not_take_it_for_its_rate(seed: int) -> None:
    # CI's false outage at the total: a detector that started before the worker's partitions were
    # assigned took the unknown lag for 0 and settled 20 s that had no counts yet; then the backlog
    # (a minute of the stream) arrived while the lag said 30 s behind (carried), and was booked into
    # the first step that settled past those 20 s, 2 s of span. That step alone was the baseline: a
    # rate 30 times the stream's, and every normal step after it a 97% drop on all five metrics.
    normal = list(series(flat(50), 400, seed=seed))
    backlog: dict[tuple[Scope, str], float] = {}
    for step in normal[:6]:
        for key, v in step.values.items():
            backlog[key] = backlog.get(key, 0.0) + v
    at0 = normal[6].at
    steps = [
        Step(at0, at0 - 5, 0.0, {}),  # "not behind": nobody had looked
        Step(at0 + 10, at0 + 5, 0.0, {}),
        Step(at0 + 20, at0 - 25, 40.0, {}),  # assigned: first seen 30 s behind, the backlog arriving
        Step(at0 + 30, at0 + 7, 18.0, backlog),  # settles 2 s past the premature 20 s, brings it all
    ]
    steps += [Step(s.at + 40, s.settled_until + 40, s.lag_s, s.values) for s in normal[6:]]
    changes = run(Detector(), iter(steps))
    assert opened(changes) == [], [(a.metric, a.scope, a.window, a.expected, a.observed) for a in opened(changes)]
    # and an outage still is one, once the baseline covers a minute: the stream stops for good
    stop = steps[-1]
    outage = [Step(stop.at + 10 * i, stop.settled_until + 10 * i, stop.lag_s, {}) for i in range(1, 4)]
    caught = opened(run(Detector(), iter(steps + outage)))
    assert {(a.scope, a.metric) for a in caught} >= {(Scope(), "interactions"), (Scope(), "orders")}


def test_small_scopes_are_not_judged() -> None:
    # 0.2 interactions/s (12 a minute): an outage there is below the minimum expected count.
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if t >= T0 + 2400 else 1.0

    changes = run(Detector(), series(flat(0.2), 2700, hit=hit))
    assert [a for a in opened(changes) if a.metric in ("orders", "new_users", "gmv_fen")] == []


# -- lifecycle -----------------------------------------------------------------------------------


def test_one_incident_one_alert_resolved_after_recovery_and_children_folded() -> None:
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if T0 + 2400 <= t < T0 + 2700 else 1.0

    changes = run(Detector(), series(flat(100), 3300, hit=hit))
    interactions = [a for a in opened(changes) if a.metric == "interactions"]
    assert len(interactions) == 1  # the total; c1 and its channels are folded under it
    alert = interactions[0]
    assert alert.scope == Scope()
    final = [a for _, a in changes if a.id == alert.id][-1]
    assert Scope("c1") in final.children
    # c1's channels under c1, in scope order (a replay whose steps fall apart from live's lists them the same)
    during = Detector()
    run(during, series(flat(100), 2640, hit=hit))
    (c1,) = [
        s.alert for s in during._incidents.values() if s.alert.scope == Scope("c1") and s.alert.metric == "interactions"
    ]
    assert len(c1.children) > 1 and list(c1.children) == sorted(c1.children), c1.children
    assert final.resolved_at is not None and final.resolved_at - (T0 + 2700) <= 120
    assert len({a.id for _, a in changes if a.metric == "interactions"}) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_a_critical_child_folded_under_a_warning_parent_makes_the_incident_critical(seed: int) -> None:
    """An outside probe: a backtest at 5-minute steps folded a channel's orders at -100% under its
    campaign's at -37% (both fired in the same step), and the war room read one warning. A folded
    critical child raises the incident it is folded under to critical."""

    def hit(t: float, scope: Scope, metric: str) -> float:  # payments on wechat (half of c1) break at 40 min
        return 0.0 if scope.channel == "wechat" and metric != "interactions" and t >= T0 + 2400 else 1.0

    def coarse(steps: Iterator[Step], n: int) -> Iterator[Step]:  # 10 s steps summed into n x 10 s
        batch: list[Step] = []
        for step in steps:
            batch.append(step)
            if len(batch) == n:
                values: dict[tuple[Scope, str], float] = {}
                for one in batch:
                    for key, v in one.values.items():
                        values[key] = values.get(key, 0.0) + v
                yield Step(step.at, step.settled_until, step.lag_s, values)
                batch = []

    detector = Detector(DetectorConfig(step_s=300.0))
    changes = run(detector, coarse(series(flat(100), 3600, seed=seed, hit=hit), 30))
    orders = [a for a in opened(changes) if a.metric == "orders"]
    assert len(orders) == 1, [(a.scope.label(), a.severity) for a in orders]  # c1 and wechat folded under it
    final = [a for _, a in changes if a.id == orders[0].id][-1]
    assert final.observed > (1 - 0.8) * final.expected  # its own drop is no outage (about half) ...
    assert final.severity == "critical" and "a part of it is out" in final.message, final  # ... its channel's is
    # Opened in the step its channel broke: told once, as a critical firing, not "now critical"
    first = next(a for _, a in changes if a.id == final.id)
    assert first.severity == "critical" and not math.isfinite(first.raised_at), first
    folded = {
        st.alert.scope: st.alert for st in detector._incidents.values() if st.folded and st.alert.metric == "orders"
    }
    assert Scope("c1", "wechat") in folded[Scope("c1")].children or Scope("c1", "wechat") in final.children, folded


def _payments_break_on_wechat(
    per_s: float, seed: int, config: DetectorConfig | None = None
) -> tuple[dict[str, Alert], float]:
    """Orders, GMV and new users stop on wechat for 6 min: every drop alert's last state, and the end."""
    start, end = T0 + 2400, T0 + 2760

    def hit(t: float, scope: Scope, metric: str) -> float:
        broken = scope.channel == "wechat" and metric in ("orders", "gmv_fen", "new_users")
        return 0.0 if broken and start <= t < end else 1.0

    changes = run(Detector(config), series(flat(per_s), 3600, hit=hit, seed=seed))
    return {a.id: a for _, a in changes if a.kind == "drop"}, end


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_alert_reported_firing_is_reported_resolved_after_recovery(seed: int) -> None:
    # Payments break on wechat for 6 min: its campaign and the total fire too, on slower windows
    # that still hold the outage when the channel recovers. The last word on every id is "resolved".
    last, end = _payments_break_on_wechat(100, seed)
    assert last
    assert all(a.resolved_at is not None and end <= a.resolved_at <= end + 360 for a in last.values()), [
        (a.scope.label(), a.metric, a.window, a.resolved_at and a.resolved_at - end) for a in last.values()
    ]


def test_a_payment_outage_resolves_on_every_metric_sooner_as_one_episode() -> None:
    # Payments break on wechat for 6 min (orders 48 a minute there). Orders show the recovery first;
    # GMV and new users, and the total over the channel, follow with less evidence of their own than
    # they would need alone. Over 8 seeds, the slowest alert of each run against the same detector
    # without the episode rule: never later, and the median within 2 min (it was 170 s).
    def slowest(config: DetectorConfig, seed: int) -> float:
        last, end = _payments_break_on_wechat(40, seed, config)
        assert {a.metric for a in last.values() if a.scope == Scope("c1", "wechat")} >= {"orders", "gmv_fen"}
        assert all(a.resolved_at is not None for a in last.values()), last
        return max(float(a.resolved_at or 0) - end for a in last.values())

    alone = DetectorConfig(episode_relief=1.0, episode_sigmas=4.0)
    pairs = [(slowest(DetectorConfig(), seed), slowest(alone, seed)) for seed in range(1, 9)]
    assert all(together <= apart for together, apart in pairs), pairs
    assert np.median([t for t, _ in pairs]) <= 120 < np.median([a for _, a in pairs]), pairs


@pytest.mark.parametrize("seed", range(1, 31))
def test_a_metric_half_down_does_not_resolve_with_the_rest_of_its_episode(seed: int) -> None:
    # Orders and GMV stop on wechat for 6 min; new users there are half down from the same moment for
    # 20 min. The episode's recovery lowers only the floor of events, never the four standard
    # deviations between a level and the expectation (with both lowered, 2 of 30 seeds resolved it
    # while still half down: a review).
    start, end, longer = T0 + 2400, T0 + 2760, T0 + 3600

    def hit(t: float, scope: Scope, metric: str) -> float:
        if scope.channel != "wechat" or t < start:
            return 1.0
        if metric == "new_users":
            return 0.5 if t < longer else 1.0
        return 0.0 if metric in ("orders", "gmv_fen") and t < end else 1.0

    changes = run(Detector(), series(flat(100), 4200, hit=hit, seed=seed))
    mine = [a for _, a in changes if a.kind == "drop" and a.metric == "new_users" and a.scope == Scope("c1", "wechat")]
    early = [a.resolved_at - end for a in mine if a.resolved_at is not None and a.resolved_at < longer]
    assert not early, early


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_metric_still_broken_does_not_resolve_with_the_rest_of_its_episode(seed: int) -> None:
    # Payments break on wechat for 6 min; new users (registration) stay broken, 85% down, for 20 min.
    # The orders' recovery lends the new users' incident nothing it does not show itself. (A partial
    # recovery, to half, resolves and opens a new drop by design: the incident's level is its own.)
    start, end, longer = T0 + 2400, T0 + 2760, T0 + 3600

    def hit(t: float, scope: Scope, metric: str) -> float:
        if scope.channel != "wechat" or t < start:
            return 1.0
        if metric == "new_users":
            return 0.0 if t < end else 0.15 if t < longer else 1.0
        return 0.0 if metric in ("orders", "gmv_fen") and t < end else 1.0

    changes = run(Detector(), series(flat(100), 4200, hit=hit, seed=seed))
    mine = [a for _, a in changes if a.kind == "drop" and a.metric == "new_users" and a.scope == Scope("c1", "wechat")]
    assert mine, changes
    early = [a.resolved_at - end for a in mine if a.resolved_at is not None and a.resolved_at < longer]
    assert not early, early


def test_a_refire_within_five_minutes_reopens_the_same_incident() -> None:
    def hit(t: float, scope: Scope, metric: str) -> float:
        out = T0 + 2400 <= t < T0 + 2520 or T0 + 2640 <= t < T0 + 2760
        return 0.0 if out else 1.0

    changes = run(Detector(), series(flat(100), 3300, hit=hit))
    total = [a for _, a in changes if a.metric == "interactions" and a.scope == Scope()]
    assert len({a.id for a in total}) == 1
    states = [a.resolved_at is None for a in total]
    assert states[:4] == [True, False, True, False]


def test_a_channel_whose_sibling_broke_twice_is_not_called_down_when_the_sibling_comes_back() -> None:
    """Two channels, half each; wechat falls 60%, stops, comes back, stops for a minute and comes back.
    app never moves. Its sibling's outage once read as a bot burst of app (app high against the rest
    of the campaign), which cleaned app's interactions of most of their count while its orders stayed:
    its orders per interaction learnt 1.7x the truth and fired on app's orders when wechat came back."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        minute = (t - T0) / 60
        if scope.channel != "wechat":
            return 1.0
        return 0.4 if 40 <= minute < 42 else 0.0 if 42 <= minute < 44 or 46 <= minute < 47 else 1.0

    ratios = {"interactions": 1.0, "shares": 0.1, "orders": 0.05, "gmv_fen": 0.05 * 9_900, "new_users": 0.02}
    for seed in range(3):
        changes = run(Detector(), series(flat(60), 3600, seed=seed, hit=hit, shares=(("wechat", 0.5), ("app", 0.5)),
                                         ratios=ratios))  # fmt: skip
        assert [a for _, a in changes if a.scope.channel == "app"] == [], seed
        assert {a.metric for a in opened(changes) if a.scope.channel == "wechat"} >= {"interactions", "orders"}
        # The 60% fall itself, on wechat's share: app against the rest of the campaign rose as a
        # burst would, and taken as one it shrank wechat's reference with wechat (blind to it).
        (first,) = [a for a in opened(changes) if a.scope == Scope("c1", "wechat") and a.metric == "interactions"]
        assert first.detected_at < T0 + 42 * 60 and first.severity == "warning", (seed, first)


def test_a_reopen_and_a_raise_to_critical_are_marked_with_their_time_and_survive_a_restart() -> None:
    """What the notifications are named by (streams/alerts/runner.py: notification_event): the step a
    warning was raised to critical, the step a re-fire reopened the incident (detected_at stays the
    first, as promo.alerts shows it); both through a snapshot, as a restart restores them."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        if scope.channel != "wechat":
            return 1.0
        minute = (t - T0) / 60
        return 0.4 if 40 <= minute < 42 else 0.0 if 42 <= minute < 44 or 46 <= minute < 47 else 1.0

    steps = list(series(flat(60), 3600, hit=hit, shares=(("wechat", 0.5), ("app", 0.5))))
    det = Detector()
    seen: list[Alert] = []
    for step in steps:
        if step.at == T0 + 45 * 60:  # between the two outages: restored from JSON, as after a restart
            det = Detector.restore(json.loads(json.dumps(det.snapshot())))
        seen += [Alert(**{**a.__dict__}) for a in det.step(step) if a.scope == Scope("c1", "wechat")]
    clicks = [a for a in seen if a.metric == "interactions"]
    first, raised = clicks[0], next(a for a in clicks if a.severity == "critical")
    assert first.severity == "warning" and math.isnan(first.raised_at) and first.opened_at == first.detected_at
    assert T0 + 42 * 60 <= raised.raised_at < T0 + 43 * 60 and raised.opened_at == first.detected_at
    reopened = [a for a in clicks if a.resolved_at is None and a.opened_at > a.detected_at]
    assert reopened and all(a.id == first.id and a.detected_at == first.detected_at for a in reopened)
    assert T0 + 46 * 60 <= reopened[0].opened_at < T0 + 47 * 60 and math.isnan(reopened[0].raised_at)
    # what its messages say "since": the reopening's own onset, through the restart (started_at stays)
    assert T0 + 46 * 60 - 15 <= reopened[0].reopened_from <= T0 + 46 * 60 + 10, reopened[0].reopened_from - T0
    assert math.isnan(first.reopened_from) and reopened[0].started_at == first.started_at


def test_a_reopen_an_hour_after_the_first_firing_is_not_closed_at_once() -> None:
    """An incident that fired at minute 40 and reopens at minute 97 is an incident of minute 97: the
    hour an incident may stay open counts from its reopening (from its first firing it was closed at
    once, reopened the next step, and so on: a message pair every 10 s while the channel was down)."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        minute = (t - T0) / 60
        return 0.0 if scope.channel == "wechat" and (40 <= minute < 95 or minute >= 97) else 1.0

    changes = run(Detector(), series(flat(40), 106 * 60, hit=hit))
    mine = [a for _, a in changes if a.scope == Scope("c1", "wechat") and a.metric == "interactions"]
    late = [a for a in mine if (a.resolved_at or a.opened_at) >= T0 + 97 * 60]
    assert late and late[0].resolved_at is None, late
    assert [a for a in late if a.resolved_at is not None] == [], [(a.opened_at, a.resolved_at) for a in late]


def test_a_channel_still_down_when_its_campaign_recovers_is_reported_on_its_own() -> None:
    """Payments break across the campaign (orders at 0 everywhere: the total fires, the channels fold
    under it); at minute 46 they come back on wechat and app but not on jingxi. The total and the
    campaign resolve; jingxi's orders, still at 0, were folded and stayed silent until the hour ran
    out. Now they are reported within two minutes of the end of the incident they were folded under."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        minute = (t - T0) / 60
        broken = 40 <= minute < 46 or (scope.channel == "jingxi" and 40 <= minute < 70)
        return 0.0 if broken and metric in ("orders", "gmv_fen", "new_users") else 1.0

    changes = run(Detector(), series(flat(60), 80 * 60, hit=hit))
    total = [a for at, a in changes if a.scope == Scope() and a.metric == "orders" and a.resolved_at is not None]
    assert total and total[0].resolved_at < T0 + 50 * 60, total
    jingxi = [(at, a) for at, a in changes if a.scope == Scope("c1", "jingxi") and a.metric == "orders"]
    assert jingxi, "jingxi's orders, down for half an hour, were never reported"
    at, first = jingxi[0]
    assert first.resolved_at is None and total[0].resolved_at < at <= total[0].resolved_at + 120, (at, first)
    assert first.started_at < T0 + 41 * 60  # the incident it is: since the payments broke
    ends = [a.resolved_at for _, a in jingxi if a.resolved_at is not None]
    assert ends and ends[0] >= T0 + 70 * 60, ends  # resolved when jingxi's orders came back, not before


def test_alert_ids_are_deterministic() -> None:
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if t >= T0 + 2400 else 1.0

    one = [a.id for a in opened(run(Detector(), series(flat(100), 2700, hit=hit)))]
    two = [a.id for a in opened(run(Detector(), series(flat(100), 2700, hit=hit)))]
    assert one and one == two


def test_a_restart_neither_duplicates_nor_forgets_a_firing_alert() -> None:
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if T0 + 2400 <= t < T0 + 2900 else 1.0

    steps = list(series(flat(100), 3300, hit=hit))
    cut = next(i for i, s in enumerate(steps) if s.at >= T0 + 2600)
    first = Detector()
    before = run(first, iter(steps[:cut]))
    firing = {a.id for a in first.firing()}
    assert firing
    doc = json.loads(json.dumps(first.snapshot()))  # it must survive JSON
    second = Detector.restore(doc)
    assert {a.id for a in second.firing()} == firing
    after = run(second, iter(steps[cut:]))
    reopened = [a for _, a in after if a.resolved_at is None and a.id not in firing]
    assert [a for a in reopened if a.kind == "drop" and a.detected_at < T0 + 2900] == []
    resolved = {a.id for _, a in after if a.resolved_at is not None}
    assert firing & resolved == firing  # each firing alert resolves once, under its own id
    assert before


def test_reset_forgets_a_scope_baseline_and_resolves_its_alerts() -> None:
    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if scope.channel == "wechat" and t >= T0 + 2400 else 1.0

    detector = Detector()
    steps = list(series(flat(100), 3300, hit=hit))
    run(detector, iter(s for s in steps if s.at < T0 + 2600))
    assert detector.firing()
    resolved = detector.reset(Scope("c1"), T0 + 2600)
    assert resolved and all(a.resolved_at == T0 + 2600 for a in resolved)
    later = run(detector, iter(s for s in steps if s.at >= T0 + 2600))
    assert [a for _, a in later if a.kind == "drop" and a.scope.campaign_id == "c1" and a.resolved_at is None] == []


@pytest.mark.parametrize("with_plan", [False, True])
def test_a_note_holds_through_a_restore_on_a_new_plan(with_plan: bool) -> None:
    """An outside probe: a note, then `promo plan import` a few minutes later (the runner restores its
    detector with the new plan, replaying the recent inputs), and the scope fired again on its counts
    from before the note, critical. The restore keeps where each scope's baseline starts again."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if t >= T0 + 2400 else 1.0  # the stream ended on purpose at 00:40

    steps = list(series(flat(100), 3600, hit=hit))
    detector = Detector()
    run(detector, iter(s for s in steps if s.at < T0 + 2500))
    assert detector.firing()
    detector.reset(Scope(), T0 + 2500)
    run(detector, iter(s for s in steps if T0 + 2500 <= s.at < T0 + 2700))
    plan = Plan(T0, {(Scope(), "interactions"): np.full(60, 6000.0)}) if with_plan else None
    restored = Detector.restore(json.loads(json.dumps(detector.snapshot())), plan=plan)
    later = run(restored, iter(s for s in steps if s.at >= T0 + 2700))
    assert opened(later) == [] and restored.firing() == []
    # Without the note the same restore fires, so the test can tell.
    control = Detector()
    run(control, iter(s for s in steps if s.at < T0 + 2700))
    again = Detector.restore(json.loads(json.dumps(control.snapshot())), plan=plan)
    run(again, iter(s for s in steps if s.at >= T0 + 2700))
    assert again.firing()


def test_a_scheduled_campaign_that_never_sends_is_an_alert() -> None:
    schedule = {"c1": (T0 - 600, None), "c2": (T0 + 600, None)}  # c2 is due at 00:10 and never comes
    changes = run(Detector(schedule=schedule), series(flat(50), 1200))
    found = [a for a in opened(changes) if a.scope == Scope("c2")]
    assert len(found) == 1 and found[0].basis == "schedule" and found[0].severity == "critical"
    assert found[0].detected_at - (T0 + 600) <= 150
    # The war room reads when it was due, not an epoch: 00:10 Beijing is 16:10 UTC the day before.
    assert "scheduled from 2026-11-10 16:10:00 UTC: nothing has arrived" in found[0].message, found[0].message


def test_an_ops_note_on_a_campaign_that_never_came_resolves_it_for_good() -> None:
    schedule = {"c1": (T0 - 600, None), "c2": (T0 + 600, None)}
    detector = Detector(schedule=schedule)
    steps = list(series(flat(50), 1800))
    run(detector, iter(steps[:80]))  # c2 due at 00:10, firing by 00:13
    assert [a.scope for a in detector.firing()] == [Scope("c2")]
    resolved = detector.reset(Scope("c2"), steps[80].at)  # ops: postponed on purpose
    assert [(a.scope, a.resolved_at) for a in resolved] == [(Scope("c2"), steps[80].at)]
    assert opened(run(detector, iter(steps[80:]))) == [] and detector.firing() == []


# -- cost ----------------------------------------------------------------------------------------


def test_seventy_one_scopes_of_steady_counts_raise_nothing() -> None:
    # Ten campaigns of six channels at 50 of everything a step: 400 quiet steps. (What a step costs is
    # a figure the scoreboard prints, `promo alerts eval`, never a timed assertion here.)
    scopes = [Scope()] + [Scope(f"c{c}") for c in range(10)]
    scopes += [Scope(f"c{c}", f"ch{h}") for c in range(10) for h in range(6)]
    rng = np.random.default_rng(0)
    detector = Detector()
    changed = []
    for k in range(400):
        leaves = {(s, m): float(rng.poisson(50)) for s in scopes[11:] for m in METRICS}
        values = dict(leaves)
        for (s, m), v in leaves.items():
            for up in (Scope(s.campaign_id), Scope()):
                values[(up, m)] = values.get((up, m), 0.0) + v
        changed += detector.step(Step(T0 + 10 * k, T0 + 10 * k - 10, 10.0, values))
    assert changed == []
    assert len(detector._scopes) == 71


def test_config_checks_are_what_the_docs_say() -> None:
    names = [c.name for c in DetectorConfig().checks]
    assert names[:3] == ["outage-10s", "outage-30s", "outage-60s"]
    assert all(c.depth >= 0.6 for c in DetectorConfig().checks[:3])


@settings(max_examples=8, deadline=None)
@given(start=st.integers(1500, 2400), length=st.integers(30, 300), per_s=st.sampled_from([5.0, 50.0, 400.0]))
def test_any_stall_gives_no_drop_and_lag_only_past_60_s(start: int, length: int, per_s: float) -> None:
    changes = run(Detector(), series(flat(per_s), 2800, stall=(start, start + length), seed=start))
    assert opened(changes) == []
    lags = opened(changes, "lag")
    # lag = 10 s normal + the time stalled: past 60 s after ~50 s of stall (a step either way)
    if length >= 80:
        assert len(lags) == 1
    elif length <= 40:
        assert lags == []


@pytest.mark.parametrize("step_s", [10.0, 60.0, 300.0])
def test_the_outage_floor_is_where_an_unplanned_outage_starts_to_be_caught(step_s: float) -> None:
    """`outage_floor` (what `promo alerts backtest` warns of): a steady series a little above it that
    stops is caught on its recent rate alone; a little below it, nothing is."""

    def caught(per_min: float) -> bool:
        det = Detector(DetectorConfig(step_s=step_s))
        n = round(3 * 3600 / step_s)
        alerts = []
        for i in range(n):
            value = 0.0 if i >= n * 2 // 3 else per_min * step_s / 60
            at = T0 + (i + 1) * step_s
            alerts += det.step(Step(at, at, 0.0, {(Scope(), "orders"): value}))
        return any(a.kind == "drop" for a in alerts)

    floor = Detector(DetectorConfig(step_s=step_s)).outage_floor()
    assert 0 < floor < 100
    assert caught(floor * 1.1) and not caught(floor * 0.9)


# -- a campaign ending on schedule, no plan ------------------------------------------------------


def _two_campaigns(rate1: Rate, rate2: Rate, seconds: float, seed: int) -> Iterator[Step]:
    """c1 at rate1 and c2 at rate2 (the second a renamed copy of `series`), the total their sum."""
    other = series(rate2, seconds, seed=seed + 1000)
    for a, b in zip(series(rate1, seconds, seed=seed), other, strict=True):
        values = dict(a.values)
        for (scope, metric), v in b.values.items():
            if scope.campaign_id is None:
                values[(scope, metric)] = values.get((scope, metric), 0.0) + v
            else:
                values[(Scope("c2", scope.channel), metric)] = v
        yield Step(a.at, a.settled_until, a.lag_s, values)


def _ends_at(end: float, per_s: float) -> Rate:
    """per_s until 3 min before `end`, then falling to nothing at `end` (people leave), as the sale day's."""
    return lambda t: per_s * min(1.0, max(0.0, (end - t) / 180))


@pytest.mark.parametrize("seed", range(3))
def test_a_big_campaign_ending_on_schedule_is_no_outage_of_the_total(seed: int) -> None:
    # c1 brings 5/6 of the total and ends on schedule at minute 60; c2 goes on. With no plan the total
    # is judged on its recent rate, which held c1: its end read as an 83% outage of the total.
    end = T0 + 3600
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 - 7200, end), "c2": (T0 - 7200, None)}
    changes = run(Detector(schedule=schedule), _two_campaigns(_ends_at(end, 40.0), flat(8.0), 5400, seed))
    assert opened(changes) == []


def test_an_outage_of_the_rest_while_a_campaign_ends_is_still_caught_on_the_total() -> None:
    # c1 ends on schedule at minute 60 and c2 stops two minutes later for 8 minutes: the total is down
    # to nothing of what goes on. The end of c1 mutes nothing, and the total recovers against what goes
    # on (against a rate that held c1 it would stay open for the hour).
    end = T0 + 3600
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 - 7200, end), "c2": (T0 - 7200, None)}
    c2: Rate = lambda t: 0.0 if end + 120 <= t < end + 600 else 8.0  # noqa: E731
    changes = run(Detector(schedule=schedule), _two_campaigns(_ends_at(end, 40.0), c2, 4800, 0))
    total = [a for _, a in changes if a.scope == Scope() and a.metric == "interactions"]
    assert total and 0 <= total[0].detected_at - (end + 120) <= 60, total
    assert len({a.id for a in total}) == 1 and total[-1].resolved_at is not None, total
    assert total[-1].resolved_at - (end + 600) <= 120, total[-1]


def test_an_outage_of_the_rest_across_a_scheduled_end_fires_through_it_without_flapping() -> None:
    # c2 (the rest) is silent from 4 min before c1's scheduled end to 5 min after. The total's alert,
    # opened on what goes on, judged its recovery on counts that held the ending c1: it resolved and
    # reopened three times before the end (a review). It fires through, and resolves after.
    end = T0 + 3600
    schedule: dict[str, tuple[float | None, float | None]] = {"c1": (T0 - 7200, end), "c2": (T0 - 7200, None)}
    c2: Rate = lambda t: 0.0 if end - 240 <= t < end + 300 else 8.0  # noqa: E731
    changes = run(Detector(schedule=schedule), _two_campaigns(_ends_at(end, 40.0), c2, 4800, 0))
    total = [(at, a) for at, a in changes if a.scope == Scope() and a.metric == "interactions"]
    assert total and total[0][1].detected_at - (end - 240) <= 60, total
    resolved = [at for at, a in total if a.resolved_at is not None]
    assert len(resolved) == 1 and 0 <= resolved[0] - (end + 300) <= 150, [(at - end, a.resolved_at) for at, a in total]


def test_a_campaign_outage_long_after_the_total_fell_for_another_reason_is_told() -> None:
    # Everything stops at minute 50 (the total's outage opens), then comes back at a third of its level
    # (c1 at a quarter), so the total's alert stays open. Seven minutes later c2 stops: its outage is not
    # the total's fall, and was folded under it and never told (an outside probe: a stream that ended,
    # then came back lower). A child firing with its parent still folds (the jingxi tests).
    def c1(t: float) -> float:
        return 40.0 if t < T0 + 3000 else 0.0 if t < T0 + 3300 else 10.0

    def c2(t: float) -> float:
        return 8.0 if t < T0 + 3000 or T0 + 3300 <= t < T0 + 3720 else 0.0

    changes = run(Detector(), _two_campaigns(c1, c2, 4200, 0))
    told = [a for a in opened(changes) if a.metric == "interactions"]
    total = [a for a in told if a.scope == Scope()]
    assert len(total) == 1 and total[0].detected_at - (T0 + 3000) <= 60, told
    mine = [a for a in told if a.scope == Scope("c2") and a.started_at >= T0 + 3600]
    assert len(mine) == 1 and mine[0].detected_at - (T0 + 3720) <= 60, told


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("depth", "onset_s"), [(1.0, 2405), (0.5, 2433), (0.55, 2461)])
def test_since_is_when_the_drop_began_not_where_the_window_that_caught_it_began(
    seed: int, depth: float, onset_s: float
) -> None:
    """An outside probe compared the messages' "since" with the screen: a 55% drop caught on the 2-minute
    window said "since" 49 s after it began (the window's start), an outage 20 s after. It is the
    likeliest change point now: within a 10 s bucket of the onset, mid-bucket onsets included."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 1 - depth if scope.channel == "wechat" and t >= T0 + onset_s else 1.0

    changes = run(Detector(), series(flat(40), 3000, seed=seed, hit=hit))
    first = [a for a in opened(changes) if a.scope.channel == "wechat" and a.metric == "interactions"]
    assert first, opened(changes)
    assert abs(first[0].started_at - (T0 + onset_s)) <= 15, (first[0].started_at - T0 - onset_s, first[0].window)


def _campaigns(
    rates: dict[str, float], seconds: float, hit: Callable[[float, str], float], seed: int
) -> Iterator[Step]:
    """Steps every 10 s for campaigns of one channel each ("app") at `rates` interactions a second, every
    metric in RATIOS's proportion, times `hit(t, campaign)`."""
    rng = np.random.default_rng(seed)
    for k in range(int(seconds // 10)):
        at, t = T0 + 10 * (k + 2), T0 + 10 * k
        values: dict[tuple[Scope, str], float] = {}
        for campaign, rate in rates.items():
            for metric in METRICS:
                lam = rate * 10 * RATIOS[metric] * hit(t + 5, campaign)
                v = (
                    float(rng.gamma(rng.poisson(lam / 10_000), 10_000))
                    if metric == "gmv_fen"
                    else float(rng.poisson(lam))
                )
                for scope in (Scope(campaign, "app"), Scope(campaign), Scope()):
                    values[(scope, metric)] = values.get((scope, metric), 0.0) + v
        yield Step(at, t + 10, 10.0, values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_campaign_on_its_share_of_the_total_is_not_resolved_when_the_plan_ends_while_it_is_down(seed: int) -> None:
    """A review: a campaign 60% down, caught on its share of the total, "resolved" a minute after the plan's
    last minute (its reference, scaled by the plan, was gone) while it was still down. It goes on, judged
    on its rate before the onset, and resolves after it comes back."""
    rates = {"c1": 20.0, "c2": 15.0, "c3": 10.0}
    plan = Plan(T0, {(scope, m): np.full(56, 60 * rate * RATIOS[m])
                     for c, rate in [*rates.items(), ("", sum(rates.values()))]
                     for scope in [Scope(c) if c else Scope()] for m in METRICS})  # fmt: skip

    def hit(t: float, campaign: str) -> float:
        return 0.4 if campaign == "c1" and T0 + 47 * 60 <= t < T0 + 62 * 60 else 1.0

    changes = run(Detector(plan=plan), _campaigns(rates, 70 * 60, hit, seed))
    mine = [a for _, a in changes if a.scope == Scope("c1") and a.metric == "interactions" and a.kind == "drop"]
    assert mine, opened(changes)
    ended = [a.resolved_at for a in mine if a.resolved_at is not None]
    assert ended and min(ended) >= T0 + 62 * 60, [(a.basis, a.resolved_at and (a.resolved_at - T0) / 60) for a in mine]


@pytest.mark.parametrize(("late_s", "jump"), [(20.0, 5.0), (40.0, 5.0), (10.0, 50.0), (40.0, 20.0)])
def test_a_launch_a_few_seconds_late_is_no_outage(late_s: float, jump: float) -> None:
    """A review: with the outage checks' envelope stopping at a planned start, traffic arriving 10-40 s
    after its planned minute (a campaign's page published late, a surge a few seconds behind the clock)
    read as a critical outage of the total. In the start's own minute the envelope still reaches back."""
    start = T0 + 1800

    def rate(t: float) -> float:
        return 20.0 * (jump if t >= start + late_s else 1.0)

    planned = np.where(np.arange(60) < 30, 20.0, 20.0 * jump) * 60
    rows = {}
    for metric, r in RATIOS.items():
        rows[(Scope(), metric)] = rows[(Scope("c1"), metric)] = planned * r
        for channel, share in zip(CHANNELS, SHARES, strict=True):
            rows[(Scope("c1", channel), metric)] = planned * r * share
    changes = run(Detector(plan=Plan(T0, rows)), series(rate, 3000, seed=3))
    assert [(a.scope.label(), a.metric, a.window) for a in opened(changes) if a.kind == "drop"] == []


def test_a_campaign_named_total_is_not_read_as_the_total() -> None:
    """An outside probe: in backtest output and the detector's messages a campaign whose id is `total` read as
    the total ("interactions on total ..."; the JSON told them apart). It is said as the CLI says it back."""

    def hit(t: float, scope: Scope, metric: str) -> float:
        return 0.0 if T0 + 40 * 60 <= t < T0 + 45 * 60 else 1.0

    def both(a: Step, b: Step) -> Step:  # campaign "total" (out for 5 min) beside c2, and their total
        values: dict[tuple[Scope, str], float] = {}
        for name, step in (("total", a), ("c2", b)):
            for (scope, metric), v in step.values.items():
                key = (Scope(name, scope.channel), metric) if scope.campaign_id else (scope, metric)
                values[key] = values.get(key, 0.0) + v
        return Step(a.at, a.settled_until, a.lag_s, values)

    steps = zip(series(flat(60), 3600, hit=hit), series(flat(60), 3600, seed=1), strict=True)
    raised = opened(run(Detector(), (both(a, b) for a, b in steps)))
    clicks = [a.message for a in raised if a.scope == Scope("total") and a.metric == "interactions"]
    assert clicks and clicks[0].startswith("interactions on campaign 'total' 100% below"), clicks
    assert [a for a in raised if a.scope == Scope()] == [], raised  # the total fell by half: no outage
    assert (Scope("total").said(), Scope().said(), Scope("c1", "wechat").said()) == ("campaign 'total'", "total",
                                                                                      "c1/wechat")  # fmt: skip
    assert Scope("c01/douyin").said() == "campaign 'c01/douyin'" and Scope("ALL").said() == "campaign 'ALL'"
