"""The drop detector (issue 17 items 1, 2, 4, 5): pure, numpy and the standard library only.

Every 10 s of its own (arrival) clock the live runner hands it a `Step`: the counts per (scope,
metric) that became settled since the last step, over the event-time span (previous
settled_until, settled_until], and how far the pipeline is behind. It returns the alerts whose
state changed. Replays and backtests feed it the same way, so they see exactly what live saw.

How a drop is judged (docs/ALERTS.md gives the numbers that set each rule):

- Every (scope, metric) is compared with an expectation from three *bases*, each a reference
  series `q` whose ratio to the observed counts `x` is learnt over a trailing baseline:
  `level` (the plan's shape when the plan lists the scope, else elapsed time: a recent rate),
  `share` (for a channel, the observed count of its sibling channels: a channel that brought 30%
  of the orders; the siblings, not the campaign, which falls with the channel),
  `ratio` (the same scope's interactions: orders per interaction falls when payments break).
  expected = (sum of x / sum of q over the baseline) * (sum of q over the window).
- Several *checks* (window, baseline, depth): 10/30/60 s for outages (>= 80% below), 2 min for
  moderate drops (>= 35%), 6 min for gradual ones (>= 20%), 10 min (plan, ratios) and 15 min
  (ratios) against an older hour for slow ramps. The recent rate (no plan) judges only
  outages: the normal fall-off after 00:00 is a 30% "drop" against the last ten minutes.
- A check fires when the expected count is large enough to judge, the observed is below
  (1 - depth) * expected, and the deficit is significant: z = (x - mu) / sqrt(var) with
  var = phi * unit * mu + (eps * mu)^2 + mu^2 / n_baseline, unit = 1 for counts and the mean order
  value (compound sum, (1 + cv^2) * mean) for gmv_fen; phi > 1 because counts are overdispersed;
  `share` and `ratio` add their reference's own noise, phi * unit * r * mu + mu^2 / n_reference; on
  the plan, the moderate, gradual and slow checks add (drift * mu)^2, drift being how far the level
  moved across the baseline (`Detector._plan_drift`).
- `share` and `ratio` also need the scope to be low on its own level (half the depth): a bot burst
  on one channel must not make its siblings' shares or its own orders per interaction look broken.
- The plan's shape is used as its lower envelope over +-5 min, so a peak that comes 5 min early
  or late is not a drop; the level is learnt, so a plan 30% off in level is not one either.
- An open incident freezes its baselines (the ratios at opening) and its steps are left out of
  the baselines afterwards. A campaign's scopes are not judged on shares or recent rate after its
  scheduled end - 5 min (the plan's ramp still judges them); a campaign that sends nothing 2 min
  after its scheduled start raises an alert.
- No check judges on a baseline that covers less than a minute (or a fifth of its length) of
  settled event time: a detector that has just started has seen seconds, not a rate.
- Freshness first: when `lag_s` > 60 one `lag` alert fires and nothing else is judged. Settled
  data stays settled, so a stall's catch-up step (a long span) is judged like any other: its
  expected count scales with its span.

Lifecycle: one Alert per incident from firing to resolved (two consecutive steps back above the
midpoint between the incident's level and the expectation, over a window long enough to tell them
apart and inside the incident; the level is lowered to what the incident has since shown; incidents
are resolved before new ones are judged, so one that recovers is not reopened on windows still
holding it); a
re-fire within 5 min reopens the same id; a child whose parent has an open alert on the same
metric is folded under it (parent.children) and not reported; `snapshot`/`restore` carry open
incidents and the recent inputs across a restart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.alerts.plan import Plan
from streams.alerts.scope import METRICS, Scope

__all__ = ["METRICS", "Alert", "Check", "Detector", "DetectorConfig", "Scope", "Step"]

FloatArray = npt.NDArray[Any]  # numpy's float dtypes do not survive arithmetic in the stubs
BoolArray = npt.NDArray[Any]
IntArray = npt.NDArray[Any]

BASES = ("level", "share", "ratio")
_LEVEL, _SHARE, _RATIO = 0, 1, 2
RING = 19  # arrays the detector keeps cumulative sums of (Detector._push)
_QT, _QTK, _OUT = 11, 12, 13  # ring: the recent rate's q and masked q; steps outside the plan's span
REST_CHANGE = 1.25  # a campaign's share of the total is not judged across a larger move of its planned ratio
_SHARE_LIVE = 14  # ring: the time a share baseline had a reference (a campaign's: the rest of the total planned)
_REST, _REST_K = 15, 16  # ring: a share's reference as counted (a campaign's before the plan's scaling), and masked
# ring: the plan's envelope that does not reach back across a scheduled start (the outage checks' recovery),
# and the same but for the start's own minute (their judging: a launch a few seconds late is no outage)
_LOW_START, _LOW_START_GRACE = 17, 18
MIN_RECOVER = 3  # steps: the shortest window a recovery is judged on
RECOVERED_AT = 0.7  # an incident is not over while its scope is more than 30% below expected
PLAN_EDGE = 2.0  # a planned step this many times the one before it is a scheduled start (`_prepare_plan`)
RETURN_LOOKBACK_S, RETURN_BLOCK_S = 1800.0, 600.0  # a share back at one before a rise: no drop (`_share_returns`)
UNFOLD_AFTER_S = 60.0  # a folded child still down this long after its parent's incident ended is reported
NOTHING_EXPECTED = 20.0  # events expected over the last 5 min for "nothing at all" to keep an incident open
# A planned launch, from LAUNCH_AFTER_S after its start to LAUNCH_WATCH_S and until it has once sent
# LAUNCH_BACK of its plan, is judged for a trickle: at most LAUNCH_LINE of its plan scaled by the rest of the
# total, over the last LAUNCH_WINDOW_S since its start, expecting LAUNCH_MIN_EXPECTED (`Detector._launch_level`)
LAUNCH_AFTER_S, LAUNCH_WATCH_S, LAUNCH_WINDOW_S = 90.0, 1800.0, 300.0
LAUNCH_MIN_EXPECTED, LAUNCH_LINE, LAUNCH_BACK = 30.0, 0.15, 0.5
# A child firing this long after its ancestor's incident (re)opened, and much deeper than the ancestor
# is down, is not explained by it: its own news (see `_explains`).
FOLD_WITHIN_S, FOLD_DEEPER = 300.0, 0.1
BURST_OWN_S = 300.0  # a bot burst stands out against its channel's own rate over this long
_INTERACTIONS = METRICS.index("interactions")
_ORDERS = METRICS.index("orders")
_GMV = METRICS.index("gmv_fen")
_BOTLESS = [METRICS.index(m) for m in ("orders", "gmv_fen", "new_users")]
_DEFAULT_ORDER_VALUE = 10_000.0  # fen; only until a scope has shown its own mean order value
# No check judges on a baseline covering less settled event time than this (seconds, and a share of
# the check's baseline): a handful of steps is not a rate.
MIN_COVER_S, MIN_COVER = 60.0, 0.2
# A backtest at steps of 20 minutes or more stretches every window to a step and every baseline to one or
# a few: a check so stretched judges a share or the recent rate on outages only (critical depth), and the
# recent rate not where it is a surge's. Over such spans a channel's share drifts by more than 20% (the
# mix moves ~12% an hour) and the day's own shape moves a scope's rate by 65-86% (the 00:00 surge's first
# step to the next): both read as drops on clean sale days at 20-min, 30-min and hourly steps (an outside
# probe; a review found the 20-min case). Live (10 s steps) and backtests at finer steps are unchanged.
COARSE_STEP_S = 1200.0
# A scheduled campaign's first seconds after its start are kept out of its baselines, and its baselines
# count as covered only with as much time after them.
LAUNCH_S = 60.0


@dataclass(frozen=True)
class Step:
    """One evaluation's input, every 10 s of the detector's (arrival) clock."""

    at: float  # evaluation instant, epoch seconds
    settled_until: float  # event time up to which counts are complete; may stand still, then jump
    lag_s: float  # how far the pipeline is behind (worst source partition)
    values: Mapping[tuple[Scope, str], float]  # increments over (previous settled_until, settled_until]


@dataclass
class Alert:
    """One incident, one row of promo.alerts from firing to resolved."""

    id: str
    kind: str  # "drop" | "lag"
    metric: str | None  # None for lag
    scope: Scope
    started_at: float  # event time of the onset: the likeliest change point before the check that fired (`_onset`)
    detected_at: float  # step.at when it fired
    resolved_at: float | None
    expected: float
    observed: float
    basis: str  # "plan" | "history" | "share-of-parent" | "share-of-total" | "ratio:<metric>/interactions" | "schedule"
    # | "freshness"
    severity: str  # "critical" | "warning"
    message: str
    children: tuple[Scope, ...] = ()
    window: str = ""  # which check fired: "outage-10s", "moderate-2m", ...
    # step.at of this opening: detected_at, or for an incident reopened by a re-fire the re-fire (not a
    # column of promo.alerts, whose detected_at stays the first; the notifications tell the two apart).
    opened_at: float = math.nan
    raised_at: float = math.nan  # step.at this opening was raised from warning to critical (nan: it was not)
    # The likeliest onset of this opening when it is a reopening (nan: it is the first): what the messages
    # say "since" from (an outside probe: a reopened incident's messages named the first onset, and its end
    # "the drop of 20:33-20:44", across the recovery the room had been told of). started_at stays the first.
    reopened_from: float = math.nan

    def __post_init__(self) -> None:
        if not math.isfinite(self.opened_at):
            self.opened_at = self.detected_at

    def to_row(self) -> dict[str, Any]:
        """The promo.alerts fields (times epoch seconds; the CLI formats them)."""
        return {
            "id": self.id, "kind": self.kind, "metric": self.metric, "campaign_id": self.scope.campaign_id,
            "channel": self.scope.channel, "started_at": self.started_at, "detected_at": self.detected_at,
            "resolved_at": self.resolved_at, "expected": self.expected, "observed": self.observed,
            "basis": self.basis, "severity": self.severity, "message": self.message,
            "children": [s.label() for s in self.children], "window": self.window,
            "opened_at": self.opened_at, "reopened_from": self.reopened_from,
        }  # fmt: skip


@dataclass(frozen=True)
class Check:
    """One window class: judged over `window_s`, against a baseline of the `baseline_s` before it."""

    name: str
    window_s: float
    baseline_s: float
    depth: float  # fires only when observed <= (1 - depth) * expected
    z: float  # ... and the deficit is this many standard deviations
    eps: float  # relative error of the expectation itself (plan shape, drift)
    min_expected: float  # expected events (orders for gmv) in the window below which it does not judge
    history: bool  # may the recent rate (no plan) judge on this check?
    gap_s: float = 0.0  # the baseline ends this long before the window (a slow ramp must not teach it)
    bases: tuple[str, ...] = BASES
    max_change: float = math.inf  # the plan's own rate changes more than this between baseline and window:
    # its level learnt in one regime (the eve) does not carry to another (the surge), do not judge
    drift: bool = False  # on the plan, doubt a level that moved across the baseline (`Detector._plan_drift`)


# fmt: off
DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("outage-10s", 10, 300, 0.6, 6.0, 0.10, 8, True),
    Check("outage-30s", 30, 300, 0.8, 4.0, 0.10, 8, True),
    Check("outage-60s", 60, 300, 0.8, 4.0, 0.10, 8, True),
    Check("moderate-2m", 120, 600, 0.35, 4.0, 0.08, 40, False, max_change=3.0, drift=True),
    Check("gradual-6m", 360, 1800, 0.2, 3.75, 0.05, 120, False, max_change=2.0, drift=True),
    Check("slow-10m", 600, 3600, 0.2, 4.5, 0.04, 200, False, gap_s=1200, bases=("level", "ratio"), max_change=1.4,
          drift=True),
    # Orders (shares) per interaction do not drift with the channel mix: a longer window may judge them.
    Check("slow-ratio-15m", 900, 3600, 0.2, 4.0, 0.025, 150, False, gap_s=900, bases=("ratio",)),
)
# fmt: on


@dataclass(frozen=True)
class DetectorConfig:
    step_s: float = 10.0  # the evaluation period (a backtest of hourly rows uses 3600)
    checks: tuple[Check, ...] = DEFAULT_CHECKS
    max_lag_s: float = 60.0  # more behind than this: a lag alert, no drop judged
    reopen_s: float = 300.0  # a re-fire within this long of resolving reopens the incident
    recover_steps: int = 2  # consecutive recovered steps before an incident resolves
    recover_min_expected: float = 60.0  # expected events in the recovery window
    episode_s: float = 120.0  # an incident firing this soon after another (or while it is open) is one episode
    episode_sigmas: float = 3.0  # ... and the standard deviations between its level and the expectation this few
    episode_relief: float = 4.0  # once one of them has recovered, the others' floor of events is this many times lower
    plan_slack_s: float = 300.0  # the plan's timing may be off by this much (peak shifted +-5 min)
    end_guard_s: float = 300.0  # recent rate and shares do not judge a campaign this close to its end
    no_show_after_s: float = 120.0  # a scheduled campaign silent this long after its start is an alert
    phi: float = 1.5  # overdispersion of counts (variance / mean)
    gmv_cv2: float = 1.0  # squared coefficient of variation of one order's value
    critical_depth: float = 0.8  # severity critical at >= 80% below expected
    max_open_s: float = 3600.0  # an incident open this long resolves: its frozen baseline is stale by now
    family_hold_s: float = 600.0  # after an incident in a campaign, its channels' shares wait this long


@dataclass
class _Open:
    """The state of one (scope, metric) incident, open or recently resolved."""

    alert: Alert
    check: int
    basis: int
    ratio: float  # the frozen ratio of the basis that fired
    depth: float
    recovered: int = 0
    folded: bool = False
    level: float = math.nan  # the incident's level for recovery: at most observed / expected at firing
    since: float = math.nan  # event time this opening's window began (a reopened incident: its second onset)
    by_recovery: bool = False  # resolved because its counts came back (not by the hour or the campaign's end)
    recent: tuple[float, float] = (math.nan, math.nan)  # observed, expected over the last UNFOLD_AFTER_S
    share: float = math.nan  # its part of its parent's count over the baseline it opened on (`_still_nothing`)


def _utc(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _alert_id(kind: str, metric: str | None, scope: Scope, started_at: float) -> str:
    text = f"{kind}|{metric or ''}|{scope.campaign_id or ''}|{scope.channel or ''}|{started_at:.0f}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


class Detector:
    def __init__(
        self,
        config: DetectorConfig | None = None,
        plan: Plan | None = None,
        schedule: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self.plan = plan
        self.schedule = dict(schedule or {})
        self._windows = [max(1, round(c.window_s / self.config.step_s)) for c in self.config.checks]
        self._baselines = [max(1, round(c.baseline_s / self.config.step_s)) for c in self.config.checks]
        self._gaps = [max(0, round(c.gap_s / self.config.step_s)) for c in self.config.checks]
        # The planned expectation each check judges (recovers) on: the outage checks' stops at a scheduled
        # start (their judging not in the start's own minute: a launch 10-40 s late is no outage).
        self._low_ring = [_LOW_START_GRACE if c.window_s <= 60 else 8 for c in self.config.checks]
        self._recover_ring = [_LOW_START if c.window_s <= 60 else 8 for c in self.config.checks]
        # every length from one step to 300 s: the shortest that holds the events recovery needs
        self._recover_windows = list(range(1, max(1, round(300 / self.config.step_s)) + 1))
        self._h = max(w + b + g for w, b, g in zip(self._windows, self._baselines, self._gaps, strict=True)) + 2
        self._h = max(self._h, max(self._recover_windows) + 2)
        self._scopes: list[Scope] = []
        self._index: dict[Scope, int] = {}
        self._parent = np.zeros(0, dtype=np.int64)
        self._depth = np.zeros(0, dtype=np.int64)
        self._campaign_of: list[str | None] = []
        m = len(METRICS)
        # cumulative sums: x, x masked, q_level, q_share, q_ratio, the three masked, the plan's lower envelope,
        # the span, x masked for shares, the recent rate's q (time) and masked, and the steps outside the
        # plan's span (RING arrays)
        self._ring = np.zeros((RING, self._h, 0, m))
        self._reset_pos = np.zeros(0, dtype=np.int64)
        self._open = np.zeros((0, m), dtype=bool)
        self._clear_after = np.full((0, m), -np.inf)  # event time a resolved incident's data ends
        self._family_busy = np.zeros(0, dtype=bool)  # per parent row: a member has an open incident
        self._family_clear = np.zeros(0)  # per parent row: event time its shares are clean again
        self._hold_until = np.zeros(0)  # per row: after an incident here or above, slow checks wait
        self._frozen = np.full((len(self.config.checks), 3, 0, m), np.nan)
        # per check: whether its frozen level ratio was learnt against the plan (else the recent rate)
        self._frozen_plan = np.zeros((len(self.config.checks), 0, m), dtype=bool)
        self._plan_row = np.full((0, m), -1, dtype=np.int64)
        self._n = 0  # steps pushed; ring slot n % h holds the cumulative sums after n steps
        self._settled: float | None = None
        self._carry: FloatArray | None = None  # counts waiting for a step that settles a span
        self._incidents: dict[tuple[int, int], _Open] = {}
        self._lag: _Open | None = None
        self._no_show: dict[str, _Open] = {}
        self._since_start: dict[str, float] = {}
        self._launched: set[str] = set()  # campaigns that have sent LAUNCH_BACK of their plan since their start
        self._recent: deque[tuple[float, float, float, FloatArray]] = deque(maxlen=self._h)  # for snapshots
        self._plan_keys: dict[tuple[Scope, str], int] = {}
        self._plan_rates = self._plan_low = self._plan_cum = self._plan_low_cum = np.zeros((0, 1))
        self._plan_start = self._plan_start_cum = self._plan_grace = self._plan_grace_cum = np.zeros((0, 1))
        if plan is not None and len(plan):
            self._prepare_plan(plan)
        for campaign in self.schedule:
            self._register(Scope(campaign))
        if plan is not None:
            for scope, _ in plan.keys:
                self._register(scope)
        self._register(Scope())

    # -- scopes ---------------------------------------------------------------------------------

    def _register(self, scope: Scope) -> int:
        found = self._index.get(scope)
        if found is not None:
            return found
        parent = scope.parent()
        parent_index = self._register(parent) if parent is not None else -1
        index = len(self._scopes)
        self._scopes.append(scope)
        self._index[scope] = index
        self._campaign_of.append(scope.campaign_id)
        m = len(METRICS)
        self._parent = np.append(self._parent, parent_index)
        self._depth = np.append(self._depth, scope.depth)
        self._ring = np.concatenate([self._ring, np.zeros((RING, self._h, 1, m))], axis=2)
        self._reset_pos = np.append(self._reset_pos, 0)
        self._open = np.concatenate([self._open, np.zeros((1, m), dtype=bool)])
        self._clear_after = np.concatenate([self._clear_after, np.full((1, m), -np.inf)])
        self._family_busy = np.append(self._family_busy, False)
        self._family_clear = np.append(self._family_clear, -np.inf)
        self._hold_until = np.append(self._hold_until, -np.inf)
        self._frozen = np.concatenate([self._frozen, np.full((len(self.config.checks), 3, 1, m), np.nan)], axis=2)
        self._frozen_plan = np.concatenate([self._frozen_plan, np.zeros((len(self.config.checks), 1, m), bool)], 1)
        row = np.full((1, m), -1, dtype=np.int64)
        if self._plan_keys:
            for j, metric in enumerate(METRICS):
                if (scope, metric) in self._plan_keys:
                    row[0, j] = self._plan_keys[(scope, metric)]
        self._plan_row = np.concatenate([self._plan_row, row])
        self._order = np.argsort([s.depth for s in self._scopes], kind="stable")
        return index

    def _prepare_plan(self, plan: Plan) -> None:
        """Cumulative sums of the plan and of its lower envelope over +-slack, for integrals over any span.

        The level is learnt against the plan itself; the window's expectation uses the envelope, so
        a peak 5 min early or late reads as less expected, not as a drop (a fall-off faster than planned
        moves the level itself: `_plan_drift`)."""
        self._plan_keys = {key: i for i, key in enumerate(plan.keys)}
        rates = plan.rates / plan.step_s  # per second
        slack = max(0, round(self.config.plan_slack_s / plan.step_s))
        padded = np.pad(rates, ((0, 0), (slack, slack)), mode="edge")
        low = rates.copy()
        for shift in range(2 * slack + 1):
            np.minimum(low, padded[:, shift : shift + rates.shape[1]], out=low)
        # The outage checks' envelope does not reach back across a scheduled start: a step where the plan
        # jumps up (the 00:00 start, a launch) by more than PLAN_EDGE times. The clock's start is certain:
        # with the eve inside the envelope until 00:05, an outage of the whole total at 00:01 was never
        # raised, one at 00:03 two minutes late, and an outage open across 00:00 "resolved" at 00:00:25
        # (an outside probe). The surge's rise to its peak is not: a plan peaking in its first minute
        # expects twice what a surge peaking at 00:06 sends then, which the outage checks' depth (60-80%)
        # absorbs and the moderate and slower checks' does not (two false alarms at 00:00:35 in the surge
        # score when they used it too). An end stays inside it: a plan's minute is flat where the last
        # seconds before an end fade (28 false alarms on the development days when ends were edges too).
        n, steps = rates.shape[1], np.arange(rates.shape[1])
        before = np.concatenate([rates[:, :1], rates[:, :-1]], axis=1)
        last_rise = np.maximum.accumulate(np.where(rates > PLAN_EDGE * before, steps, -1), axis=1)
        # Judging, the start's own minute still reaches back (a launch or a surge 20-40 s late read as a
        # critical outage: a review); the recovery of an incident open across the start does not (it
        # "resolved" at 00:00:25 against the eve).
        start, grace = rates.copy(), rates.copy()
        for shift in range(2 * slack + 1):
            back = shift < slack
            reach = steps + shift - slack >= last_rise if back else np.ones(n, dtype=bool)
            np.minimum(start, np.where(reach, padded[:, shift : shift + n], np.inf), out=start)
            reach = reach | (steps == last_rise) if back else reach
            np.minimum(grace, np.where(reach, padded[:, shift : shift + n], np.inf), out=grace)
        self._plan_rates = rates
        self._plan_low, self._plan_start, self._plan_grace = low, start, grace
        self._plan_cum, self._plan_low_cum, self._plan_start_cum, self._plan_grace_cum = (
            np.concatenate([np.zeros((len(r), 1)), np.cumsum(r * plan.step_s, axis=1)], axis=1)
            for r in (rates, low, start, grace)
        )

    def _plan_integral(self, a: float, b: float, low: bool, start: str = "") -> FloatArray:
        """Per plan row, the plan (or its envelope; `start`: the outage checks' one, "strict" or "grace")
        integrated over (a, b] in epoch seconds."""
        assert self.plan is not None
        rates, cum = (self._plan_low, self._plan_low_cum) if low else (self._plan_rates, self._plan_cum)
        if start:
            rates, cum = (self._plan_start, self._plan_start_cum) if start == "strict" else (
                self._plan_grace, self._plan_grace_cum)  # fmt: skip
        n = rates.shape[1]
        step = self.plan.step_s

        def at(t: float) -> FloatArray:
            u = min(max((t - self.plan.t0) / step, 0.0), float(n))  # type: ignore[union-attr]
            i = min(int(u), n - 1)
            return cum[:, i] + (u - i) * rates[:, i] * step

        return at(b) - at(a)

    # -- the step -------------------------------------------------------------------------------

    def step(self, step: Step) -> list[Alert]:
        for scope, _ in step.values:
            if scope not in self._index:
                self._register(scope)
        s, m = len(self._scopes), len(METRICS)
        x = np.zeros((s, m))
        col = {metric: j for j, metric in enumerate(METRICS)}
        for (scope, metric), value in step.values.items():
            j = col.get(metric)
            if j is not None:
                x[self._index[scope], j] += float(value)
        prev = self._settled if self._settled is not None else step.settled_until - self.config.step_s
        span = max(0.0, step.settled_until - prev)
        self._settled = max(prev, step.settled_until)
        # Counts that arrive while nothing more is settled (a stall's catch-up written a step before the
        # lag says so) belong to the span that settles them: they wait for it, or a catch-up step
        # would expect its whole span and find its counts booked in the step before.
        raw = x
        if self._carry is not None:
            carry, self._carry = self._carry, None
            x = x.copy()
            x[: carry.shape[0]] += carry
        if span <= 0 and x.any():
            self._carry, x = x, np.zeros(x.shape)
        q_level = np.full((s, m), span)
        # A recent rate is a rate over the time its campaign was scheduled to run: a campaign starting at
        # 00:00 has sent nothing in the eve, and a rate spread over it reads a tenth of what it sends.
        for i, starts in self._live_from():
            q_level[i] = max(0.0, prev + span - max(prev, starts))
        q_low, q_time, q_start, q_grace = q_level.copy(), q_level.copy(), q_level.copy(), q_level.copy()
        has_plan = self._plan_row >= 0
        # Every scope's recent rate (q_time) is kept beside the plan: outside the plan's span (a plan for
        # the sale day, the day after it) and across its first or last minute a planned scope is judged
        # as an unplanned one, on its recent rate. A plan that has ended expects nothing, and muted its
        # scopes' outage checks; a window across its edge would mix plan counts with seconds.
        covered = self.plan is not None and self.plan.span()[0] <= prev and prev + span <= self.plan.span()[1]
        if covered and has_plan.any() and span > 0:
            q_level[has_plan] = self._plan_integral(prev, prev + span, low=False)[self._plan_row[has_plan]]
            q_low[has_plan] = self._plan_integral(prev, prev + span, low=True)[self._plan_row[has_plan]]
            q_start[has_plan] = self._plan_integral(prev, prev + span, True, "strict")[self._plan_row[has_plan]]
            q_grace[has_plan] = self._plan_integral(prev, prev + span, True, "grace")[self._plan_row[has_plan]]
        excess = self._burst_excess(x, q_time)
        clean = x - excess
        q_share = np.zeros((s, m))
        child = self._parent >= 0
        # A channel's reference is the rest of its campaign (its siblings), not the campaign: a drop of
        # a channel that brings half the campaign would otherwise halve in its own reference.
        q_share[child] = np.maximum(clean[self._parent[child]] - clean[child], 0.0)
        # A campaign's reference is the rest of the total, times its plan's ratio to the rest's plan this
        # step: the rest changes by design whenever another campaign starts or ends, which the plan knows,
        # while the day's shape (the 00:00 surge minutes early or late, falling off faster or slower than
        # planned) moves every campaign alike and cancels. Unlike its own plan, it needs no envelope: a
        # campaign losing half its traffic three minutes into the surge is half its usual share of it (an
        # outside probe: such drops were missed, or read "35% below"). Unplanned: no reference.
        rest = q_share.copy()  # as counted: the share's noise is the count's, not the scaled one's
        camp = self._depth == 1
        scaled = np.zeros((s, m), dtype=bool)
        if camp.any():
            top = self._parent[camp]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = q_level[camp] / (q_level[top] - q_level[camp])
            planned_both = covered & has_plan[camp] & has_plan[top]
            factor = np.where(planned_both & np.isfinite(ratio) & (ratio > 0), ratio, 0.0)
            q_share[camp] *= factor
            scaled[camp] = factor > 0
        q_ratio = np.repeat(clean[:, _INTERACTIONS : _INTERACTIONS + 1], m, axis=1)
        q_ratio[:, _INTERACTIONS] = 0.0
        # A channel's burst is left out of its own baselines too: after it, normal would look low.
        leaf = np.array([sc.channel is not None for sc in self._scopes])[:, None]
        self._recent.append((step.at, step.settled_until, step.lag_s, raw))
        keep = ~self._open & ~(leaf & (excess > 0)) & ~(excess > 0.1 * x)
        # A launch's first minute (pushes at 00:00, queues let go) is its own regime, and what a campaign
        # sends before its scheduled start (opened early, warm-up traffic, a start typed late) has no
        # time to be a rate over: no baseline learns a channel's share or rate from either.
        for i, starts in self._live_from():
            if prev < starts + LAUNCH_S:
                keep[i] = False
        # A share's baseline leaves out what any scope of the family (the parent, a sibling) was in an
        # incident: a sibling's outage raises a channel's share, and that is not its normal share.
        family: BoolArray = np.asarray(
            self._open.any(axis=1)
        )  # any metric: an outage may fire on interactions and not on gmv
        for campaign in self._launch_open():  # ... or a launch that has not come (`_judge_no_show`)
            family[self._index[Scope(campaign)]] = True
        child = self._parent >= 0
        np.logical_or.at(family, self._parent[child], family[child])
        keep_share = keep.copy()
        keep_share[child] &= ~family[self._parent[child]][:, None]
        # A campaign's share is learnt only where its reference was there: in the eve before campaigns that
        # start at 00:00 the rest of the total may be nothing, and a ratio to a few seconds of it is no rate
        # (c01 "an outage" 25 s into the surge, an hour long, on a night where it ran alone before 00:00).
        keep_share[camp] &= scaled[camp]  # (by the plan, not by the count: a sparse rest counts 0 at times)
        self._family_busy = family
        self._push(x, q_level, q_share, q_ratio, q_low, q_time, span, keep, keep_share, covered, rest, q_start, q_grace)
        changed: list[Alert] = []
        self._judge_lag(step, changed)
        if self._lag is None or self._lag.alert.resolved_at is not None:
            self._judge_no_show(step, x, span, changed)
            self._judge_drops(step, has_plan, changed)
        return changed

    def _plan_drift(self, planned: BoolArray, units: FloatArray, k: int, gap: int, length: int) -> FloatArray:
        """How unsure a level learnt on the plan is in the window, as a share of it: as far as that level
        moved across the baseline, carried on to the window. A fall-off faster or slower than planned moves
        the truth's ratio to the plan all through it (a plan 30% high at the peak may be right in the tail),
        and a level learnt over the eve and the peak read the tail 33% down; a plan whose shape is right keeps
        the level still, and the check as sharp as before. The level's move is the log ratio of the baseline's
        newer half to its older half, less the counts' own noise; the window's centre lies (length / 2 + gap
        + k / 2) steps from the baseline's, the halves' centres length / 2 apart."""
        half = length // 2
        newer_x, newer_q = self._base(1, k + gap, half), self._base(5, k + gap, half)
        older_x, older_q = self._base(1, k + gap + half, length - half), self._base(5, k + gap + half, length - half)
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = np.log((newer_x / newer_q) / (older_x / older_q))
            noise = self.config.phi * units * (1 / newer_x + 1 / older_x)
            drift = np.sqrt(np.maximum(moved**2 - noise, 0.0)) * (1 + (2 * gap + k) / length)
        return np.where(planned & np.isfinite(drift), drift, 0.0)

    def _burst_excess(self, x: FloatArray, q_time: FloatArray) -> FloatArray:
        """What a channel brings above 1.2x its usual ratio to the rest of its campaign, when it is also
        above 1.2x its own recent rate (a bot burst), summed up the tree. Shares and ratios are computed
        without it: a burst on one channel would otherwise make its siblings' shares and its own
        orders per interaction look broken. A surge of the whole campaign (00:00) moves every channel
        together and leaves no excess against the rest.

        Against the rest alone, a sibling's drop read as a burst: the rest of the campaign falls, this
        channel does not rise. With two channels, one's drop cleaned the other of most of its
        interactions (blind to the drop itself: its share's reference fell with it), and after it the
        other's orders per interaction, learnt from interactions cleaned while its orders were not, read
        1.7x the truth: a false alarm the minute the sibling came back. A bot burst (x3-6) also stands
        out against the channel's own last 5 minutes, even in the fall-off after 00:00. Both usual
        rates are learnt outside incidents and bursts (the masked arrays), as shares are."""
        excess = np.zeros(x.shape)
        child = np.flatnonzero(self._parent >= 0)
        if not len(child) or self._n == 0:
            return excess
        length = max(self._baselines)  # a long baseline: a burst of a few minutes barely moves it
        mine = self._base(10, 0, length)[child]
        siblings = self._base(6, 0, length)[child]
        recent = max(1, round(BURST_OWN_S / self.config.step_s))
        with np.errstate(divide="ignore", invalid="ignore"):
            own_rate = self._base(1, 0, recent)[child] / self._base(_QTK, 0, recent)[child]
        own = own_rate * q_time[child]
        own_over = x[child] - 1.2 * own - 3 * np.sqrt(own + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            usual = np.where(siblings > 0, mine / siblings, np.nan)
        rest = x[self._parent[child]] - x[child]
        expected = usual * np.maximum(rest, 0.0)
        # Clipping only ever lowers what shares and ratios expect, so it may err on the generous side.
        over = x[child] - 1.2 * expected - 3 * np.sqrt(expected + 1)
        # Above its own rate says whether it is a burst; how much is the excess over the rest, as
        # before (the smaller of the two left up to 0.4x a burst's normal in the rest of the campaign,
        # and a sibling's share read low for the 6 minutes after it: a false alarm on a surge night).
        # Not known to be above its own rate (nothing learnt yet: a launch) leaves the rest to judge.
        over = np.where(np.isfinite(own_over) & (own_over <= 0), 0.0, over)
        leaf = np.array([self._scopes[i].channel is not None for i in child])
        excess[child] = np.where(np.isfinite(over) & (over > 0) & leaf[:, None], over, 0.0)
        excess[:, _BOTLESS] = 0.0  # bots click and share; they do not pay
        for row in self._order[::-1]:  # channels first: add each row's excess into its parent
            parent = self._parent[row]
            if parent >= 0:
                excess[parent] += excess[row]
        return excess

    def _push(self, x: FloatArray, ql: FloatArray, qs: FloatArray, qr: FloatArray, qlow: FloatArray, qt: FloatArray,
              span: float, keep: BoolArray, keep_share: BoolArray, covered: bool,
              rest: FloatArray, qstart: FloatArray, qgrace: FloatArray) -> None:  # fmt: skip
        prev = self._ring[:, self._n % self._h]
        self._n += 1
        k, ks = keep.astype(float), keep_share.astype(float)
        update = np.stack([x, x * k, ql, qs, qr, ql * k, qs * ks, qr * k, qlow, np.full(x.shape, span), x * ks,
                           qt, qt * k, np.full(x.shape, float(not covered)), span * ks, rest, rest * ks,
                           qstart, qgrace])  # fmt: skip
        self._ring[:, self._n % self._h] = prev + update

    def _win(self, arr: int, k: int) -> FloatArray:
        """Sum of ring array `arr` over the last k steps."""
        start = max(self._n - k, 0)
        return self._ring[arr, self._n % self._h] - self._ring[arr, start % self._h]  # type: ignore[no-any-return]

    def _base(self, arr: int, k: int, length: int) -> FloatArray:
        """Sum of `arr` over the `length` steps before the last k (per scope: not before its reset)."""
        end = max(self._n - k, 0)
        start = np.maximum(np.maximum(end - length, self._reset_pos), max(self._n - self._h + 1, 0))
        start = np.minimum(start, end)
        rows = np.arange(len(self._scopes))
        return self._ring[arr, end % self._h] - self._ring[arr, start % self._h, rows, :]  # type: ignore[no-any-return]

    def _live_from(self) -> list[tuple[int, float]]:
        """Rows of a scheduled campaign with a start: (row, scheduled start)."""
        out = []
        for i, campaign in enumerate(self._campaign_of):
            starts = self.schedule.get(campaign, (None, None))[0] if campaign is not None else None
            if starts is not None:
                out.append((i, float(starts)))
        return out

    def _ending(self, at: float, k: int, gap: int, length: int) -> tuple[FloatArray, FloatArray] | None:
        """What a parent's recent rate leaves out for a check of window k, gap and baseline length: per
        row, the window's and the baseline's counts of its campaigns that end on schedule within the
        check's reach (from their end guard on, until window and baseline are past the end); None if none.

        With no plan the total is judged on its recent rate, which holds every campaign: a campaign
        bringing most of the total that ends on schedule read as an outage of the total. Its own scopes
        stop being judged on their recent rate at the guard; the total is judged on what goes on.
        Unmasked counts are taken out of the parent's masked baseline: where the two masks differ (an
        incident of the campaign alone is masked out of its own baseline only) this takes out more,
        never less, and expects less."""
        reach = (k + gap + length) * self.config.step_s
        found = [
            (i, int(self._parent[i]))
            for campaign, (_, ends) in self.schedule.items()
            if ends is not None and ends - self.config.end_guard_s <= at < ends + reach
            and (i := self._index.get(Scope(campaign))) is not None
        ]  # fmt: skip
        if not found:  # the usual case, at every check of every step: a few schedule entries looked at
            return None
        win, base = np.zeros((len(self._scopes), len(METRICS))), np.zeros((len(self._scopes), len(METRICS)))
        w0, b0 = self._win(0, k), self._base(0, k + gap, length)
        for i, parent in found:
            win[parent] += w0[i]
            base[parent] += b0[i]
        return win, base

    def _eligible(self, at_event: float) -> BoolArray:
        """Rows whose recent rate and share may be judged: not after their campaign's end - guard."""
        ok = np.ones(len(self._scopes), dtype=bool)
        for i, campaign in enumerate(self._campaign_of):
            if campaign is None or campaign not in self.schedule:
                continue
            starts, ends = self.schedule[campaign]
            if ends is not None and at_event >= ends - self.config.end_guard_s:
                ok[i] = False
            if starts is not None and at_event < starts:
                ok[i] = False
        return ok

    def _ended(self, at_event: float) -> BoolArray:
        """Per row: its campaign's scheduled end has passed (nothing is expected of it from there)."""
        out = np.zeros(len(self._scopes), dtype=bool)
        for i, campaign in enumerate(self._campaign_of):
            ends = self.schedule[campaign][1] if campaign is not None and campaign in self.schedule else None
            out[i] = ends is not None and at_event >= ends
        return out

    def _units(self) -> FloatArray:
        """Per (scope, metric) the size of one event: 1 for counts, the mean order value for gmv."""
        units = np.ones((len(self._scopes), len(METRICS)))
        k = self._h - 1
        window = self._win(0, k)
        gmv, orders = window[:, _GMV], window[:, _ORDERS]
        units[:, _GMV] = np.where((orders >= 20) & (gmv > 0), gmv / np.maximum(orders, 1), _DEFAULT_ORDER_VALUE)
        return units

    def _judge_drops(self, step: Step, has_plan: BoolArray, changed: list[Alert]) -> None:
        cfg = self.config
        s, m = len(self._scopes), len(METRICS)
        eligible_rows = self._eligible(step.settled_until)
        eligible = np.repeat(eligible_rows[:, None], m, axis=1)
        ended = self._ended(step.settled_until)
        units = self._units()
        starts = np.full(s, -np.inf)  # each row's scheduled start and launch, if its campaign has one
        for i, at in self._live_from():
            starts[i] = at + LAUNCH_S
        var_unit = cfg.phi * units  # the variance of a count per unit of it
        var_unit[:, _GMV] *= 1 + cfg.gmv_cv2
        # Resolve first: what recovers in this step is judged afresh, its windows clear of the
        # incident's data, instead of reopening at once (and the resolved row is what gets written).
        self._resolve(step, units, var_unit, ended, changed)
        # Shares of the parent: a channel's of its campaign; a campaign's of the total only as the plan
        # moves it (its reference is zero unplanned: `step`), as it changes by design whenever another
        # campaign starts or ends.
        is_channel = np.array([sc.channel is not None for sc in self._scopes])[:, None]
        is_campaign = (self._depth == 1)[:, None]
        best_z = np.full((s, m), np.inf)
        best = np.zeros((5, s, m))  # check, basis, expected, observed, judged on the plan
        for c, check in enumerate(cfg.checks):
            k, length, gap = self._windows[c], self._baselines[c], self._gaps[c]
            nominal = check.window_s + check.gap_s + check.baseline_s
            long_span = cfg.step_s >= COARSE_STEP_S and (k + gap + length) * cfg.step_s > nominal  # stretched
            obs = self._win(0, k)
            base_x = self._base(1, k + gap, length)
            # A baseline is a rate only once it covers some settled time: a detector that has just
            # started (or a scope an ops note reset) has seen seconds, and a catch-up booked into
            # them (a backlog written while the lag still said "nothing settled") would be its rate.
            # So is the time a campaign was scheduled to run, after its launch: a baseline holding the
            # first seconds after its start learns a channel's share of a launch from a few buckets.
            base_end = step.settled_until - self._win(9, k + gap)
            live = np.clip(base_end - starts[:, None], 0.0, self._base(9, k + gap, length))
            covered = live >= max(MIN_COVER_S, MIN_COVER * check.baseline_s)
            # A window that still holds a resolved incident's data does not fire it again; a campaign past its
            # scheduled end is not judged at all (its incidents closed there, and opened again on a ratio or
            # a plan that outlasts the schedule, every few steps: a review).
            fresh = (step.settled_until - k * cfg.step_s >= self._clear_after) & ~ended[:, None]
            if check.window_s >= 120:  # ... nor one that holds an enclosing scope's incident
                fresh &= (step.settled_until - k * cfg.step_s >= self._hold_until)[:, None]
            # On the plan when window and baseline lie inside its span; else on the recent rate.
            planned = self._planned(has_plan, k, gap, length)
            # A parent judged on its recent rate is judged on what goes on while a campaign of it ends.
            rest = self._ending(step.settled_until, k, gap, length)
            obs_level, base_level = obs, base_x
            if rest is not None:
                obs_level = np.where(planned, obs, np.maximum(obs - rest[0], 0.0))
                base_level = np.where(planned, base_x, np.maximum(base_x - rest[1], 0.0))
            stable = np.ones((s, m), dtype=bool)
            if math.isfinite(check.max_change):
                with np.errstate(divide="ignore", invalid="ignore"):
                    now = self._win(2, k) / self._win(9, k)
                    before = self._base(2, k + gap, length) / self._base(9, k + gap, length)
                    change = np.maximum(now / before, before / now)
                stable = ~planned | (change <= check.max_change)
            drift = self._plan_drift(planned, units, k, gap, length) if check.drift else 0.0
            mus, refs, ref_base, win_qs, counts_base = [], [], [], [], []
            for b in range(3):
                win_q = self._win(self._low_ring[c] if b == _LEVEL else 2 + b, k)
                base_q = self._base(5 + b, k + gap, length)
                if b == _LEVEL:
                    win_q = np.where(planned, win_q, self._win(_QT, k))
                    base_q = np.where(planned, base_q, self._base(_QTK, k + gap, length))
                base_xb = self._base(10, k + gap, length) if b == _SHARE else base_level if b == _LEVEL else base_x
                with np.errstate(divide="ignore", invalid="ignore"):
                    live = np.where(base_q > 0, base_xb / base_q, np.nan)
                frozen = self._frozen[c, b]
                if b == _LEVEL:
                    # A level ratio frozen against the recent rate (events a second) is no ratio to the
                    # plan, nor the other way round: when a check's window and baseline move into or out
                    # of the plan's span while an incident is open, that check does not judge the scope
                    # until it resolves (an outside probe: a plan beginning 30 min into a backtest, and a
                    # 50% drop read "94% below, 1818 vs 29732 expected": a rate a second times plan minutes).
                    frozen = np.where(self._frozen_plan[c] == planned, frozen, np.nan)
                ratio = np.where(self._open, frozen, live)
                if b == _LEVEL:  # the confirmation of shares and ratios: the live level where that is masked
                    confirm_level = np.where(np.isfinite(ratio), ratio, live) * win_q
                    # A channel on its recent rate under a planned campaign falls as the plan does
                    win_q = win_q * self._planned_fall(planned, k, gap, length)
                mus.append(ratio * win_q)
                refs.append(ratio)
                ref_base.append(base_q)
                win_qs.append(win_q)
                counts_base.append(base_xb)
            # ... scaled by how much the parent grew from the baseline to the window when it at least
            # doubled: in the 00:00 surge a channel's own recent rate is a tenth of what it sends, and
            # "low on its own level" kept every share and ratio from judging the first hour. (A bot
            # burst on a sibling raises a campaign by less; the shares leave its excess out anyway.)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate_now = self._win(0, k) / self._win(9, k)
                rate_before = self._base(0, k + gap, length) / self._base(9, k + gap, length)
                older = self._base(0, k + gap + length // 2, length - length // 2)  # the baseline's older half
                growth = np.ones((s, m))
                has_parent = self._parent >= 0
                parent_growth = rate_now[self._parent[has_parent]] / rate_before[self._parent[has_parent]]
                # Only a parent that was live through its baseline: a campaign starting at 00:00 "grows"
                # a hundredfold from the few seconds its baseline holds, and its shares are no surer.
                lived = older[self._parent[has_parent]] > 0
                surging = np.isfinite(parent_growth) & (parent_growth >= 2.0) & lived
                growth[has_parent] = np.where(surging, parent_growth, 1.0)
            confirm_mu = confirm_level * growth
            for b in range(3):
                if BASES[b] not in check.bases:
                    continue
                mu, seen = mus[b], obs_level if b == _LEVEL else obs
                with np.errstate(invalid="ignore"):
                    ok = fresh & covered & np.isfinite(mu) & (mu / units >= check.min_expected)
                if b == _LEVEL:
                    ok &= (planned & stable) | (check.history & eligible & ~planned)
                    if long_span and check.history:  # ... and the recent rate not a surge's: at least twice
                        prior = k + gap + length  # the stretch before it (the hour after the 00:00 surge's falls
                        # 65-85% by design)
                        with np.errstate(divide="ignore", invalid="ignore"):
                            before = self._base(1, prior, length) / self._base(_QTK, prior, length)
                            ok &= planned | (base_level / self._base(_QTK, k + gap, length) <= 2 * before)
                elif b == _SHARE:
                    # Not while the family (campaign, a sibling) is in an incident, nor until its
                    # windows are clean of it: a sibling's recovery reads as this channel's drop.
                    quiet = np.zeros(s, dtype=bool)
                    rows = self._parent >= 0
                    p = self._parent[rows]
                    quiet[rows] = ~self._family_busy[p] & (step.settled_until >= self._family_clear[p])
                    # A campaign waits for the total only, not for the other campaigns: one of nine in an
                    # incident moves the rest by a ninth (its recovery reads as a rise of the rest, if
                    # anything), and a campaign's drop while another's ramp was open went unjudged
                    top = np.flatnonzero(self._depth == 0)
                    if top.size:
                        quiet[is_campaign[:, 0]] = ~self._open[top[0]].any() & (
                            step.settled_until >= self._family_clear[top[0]]
                        )
                    # a campaign's share: only on a baseline that had its reference long enough (`covered`),
                    # and not across a change of the rest: campaigns joining or leaving it bring their own
                    # plan's level error (+-30%) into it, which no baseline before them has learnt
                    cover = max(MIN_COVER_S, MIN_COVER * check.baseline_s)
                    share_cover = self._base(_SHARE_LIVE, k + gap, length) >= cover
                    stable_rest = self._rest_stable(k, gap, length)
                    ok &= (is_channel | (is_campaign & share_cover & stable_rest)) & eligible & quiet[:, None]
                else:
                    ok[:, _INTERACTIONS] = False
                if b != _LEVEL:  # confirmation: low on its own level too (a bot burst elsewhere is not a drop)
                    with np.errstate(invalid="ignore"):
                        ok &= ~(obs_level > (1 - check.depth / 2) * confirm_mu)
                if not ok.any():
                    continue
                n_base = np.maximum((base_level if b == _LEVEL else base_x) / units, 1.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    var = var_unit * mu + (check.eps * mu) ** 2 + mu**2 / n_base
                    if b == _LEVEL:
                        var += (drift * mu) ** 2  # the level itself on the move (`_plan_drift`)
                    if b != _LEVEL:  # the reference is a count too: r * (siblings or interactions),
                        # noisy in the window and in the baseline that learnt r (a campaign's share: the rest
                        # as counted, before the plan's scaling, whose noise that scaling multiplies)
                        counted, counted_base = refs[b], ref_base[b]
                        if b == _SHARE:
                            counted = refs[b] * np.where(is_campaign, self._win(3, k) / self._win(_REST, k), 1.0)
                            counted_base = np.where(is_campaign, self._base(_REST_K, k + gap, length), ref_base[b])
                        var += (var_unit if b == _SHARE else cfg.phi) * counted * mu
                        var += mu**2 / np.maximum(counted_base / (units if b == _SHARE else 1.0), 1.0)
                    z = (seen - mu) / np.sqrt(var)
                    depth: float | FloatArray = check.depth
                    if long_span and b != _RATIO:
                        outage = max(check.depth, cfg.critical_depth)
                        depth = outage if b == _SHARE else np.where(planned, check.depth, outage)
                    fire = ok & (seen <= (1 - depth) * mu) & (z <= -check.z)
                if b == _SHARE and (fire & ~self._open).any():
                    returns = self._share_returns(
                        obs, mu, win_qs[b], counts_base[b], k, k + gap + length, length, check, var_unit, units
                    )
                    fire &= self._open | ~returns
                better = fire & (z < best_z)
                if better.any():
                    best_z = np.where(better, z, best_z)
                    best[0][better], best[1][better] = c, b
                    best[2][better], best[3][better] = mu[better], seen[better]
                    best[4][better] = planned[better]
        firing = np.isfinite(best_z)
        self._open_new(step, firing, best, changed)

    # -- lifecycle ------------------------------------------------------------------------------

    def _open_new(self, step: Step, firing: BoolArray, best: FloatArray, changed: list[Alert]) -> None:
        cfg = self.config
        for row_ in self._order:
            row = int(row_)
            for j_ in np.flatnonzero(firing[row]):
                j = int(j_)
                key = (row, j)
                state = self._incidents.get(key)
                c, b = int(best[0, row, j]), int(best[1, row, j])
                expected, observed = float(best[2, row, j]), float(best[3, row, j])
                severity = "critical" if observed <= (1 - cfg.critical_depth) * expected else "warning"
                if state is not None and state.alert.resolved_at is None:
                    if severity == "critical" and state.alert.severity != "critical":
                        state.alert.severity, state.alert.expected, state.alert.observed = severity, expected, observed
                        state.alert.window = cfg.checks[c].name  # the window those two were counted over
                        state.alert.raised_at = step.at
                        state.alert.message = self._message(state.alert)
                        if not state.folded:
                            changed.append(state.alert)
                        else:  # a folded part that deepened to an outage: the incident it is in is critical
                            self._raise_holders(row, j, step.at, changed)
                    continue
                check = cfg.checks[c]
                scope = self._scopes[row]
                basis = self._basis_name(b, row, j, bool(best[4, row, j]))
                self._frozen[:, :, row, j], self._frozen_plan[:, row, j] = self._live_ratios(row, j, step.settled_until)
                ratio = float(self._frozen[c, b, row, j])
                level = observed / expected if expected > 0 else 0.0
                started = self._onset(row, j, c, b, bool(best[4, row, j]), ratio, level, step.settled_until)
                if state is not None and step.at - (state.alert.resolved_at or 0) <= cfg.reopen_s:
                    alert = state.alert
                    alert.resolved_at, alert.opened_at, alert.raised_at = None, step.at, math.nan
                    alert.reopened_from = max(started, alert.started_at)
                    alert.expected, alert.observed, alert.severity, alert.basis = expected, observed, severity, basis
                    alert.window = check.name
                else:
                    alert = Alert(_alert_id("drop", METRICS[j], scope, started), "drop", METRICS[j], scope, started,
                                  step.at, None, expected, observed, basis, severity, "", (), check.name)  # fmt: skip
                alert.message = self._message(alert)
                state = _Open(alert, c, b, ratio, check.depth, since=started)
                if self._parent[row] >= 0:
                    base = self._base(1, self._windows[c] + self._gaps[c], self._baselines[c])[:, j]
                    parent = float(base[self._parent[row]])
                    state.share = float(base[row]) / parent if parent > 0 else math.nan
                self._incidents[key] = state
                self._open[row, j] = True
                holder = self._open_ancestor(row, j)
                if holder is not None and self._explains(holder, alert, step.at, j):
                    state.folded = True
                    grew = scope not in holder.alert.children
                    if grew:
                        # In scope order, not firing order: a replay whose steps fall a little apart
                        # from live's (a restart) lists them the same.
                        holder.alert.children = tuple(sorted((*holder.alert.children, scope)))
                    if grew and not holder.folded and holder.alert not in changed:
                        changed.append(holder.alert)
                    if severity == "critical":
                        # A part of it is out (a channel at -100% under a campaign at -37%): the incident is
                        # critical, up to the one reported, or the room read "warning" over a channel that
                        # sends nothing (an outside probe); each keeps its own numbers, the part among
                        # its children.
                        self._raise_holders(row, j, step.at, changed)
                else:
                    changed.append(alert)

    def _onset(self, row: int, j: int, c: int, b: int, planned: bool, ratio: float, level: float, at: float) -> float:
        """When the drop began: the likeliest change point in the check's window and the minute before it,
        from "as expected" to the level the window fired at (the start of the steps whose counts sum to the
        largest Poisson log-likelihood ratio of that level against the expectation). It was the start of the
        window that fired: a drop caught on a 2-minute window said "since" 49 s after it began, one on a
        6-minute window up to minutes before it (an outside probe compared them with the screen); and the
        recovery counts from the onset, so its windows held counts from before it."""
        cfg = self.config
        window, length, gap = self._windows[c], self._baselines[c], self._gaps[c]
        fallback = at - window * cfg.step_s
        k, fall = window + round(60 / cfg.step_s), 1.0
        if b == _LEVEL and not planned:  # the expectation as the check had it: on the recent rate, a channel
            # falls with its campaign's plan, and a parent leaves out a campaign ending on schedule (not per
            # step here: within the window only, where the check judged it so)
            rows_planned = self._planned(self._plan_row >= 0, window, gap, length)
            fall = float(self._planned_fall(rows_planned, window, gap, length)[row, j])
            if fall < 1.0 or self._ending(at, window, gap, length) is not None:
                k = window
        k = min(k, self._n, self._h - 1)
        if k < 2 or not (math.isfinite(ratio) and ratio > 0):
            return fallback
        ref = (self._low_ring[c] if planned else _QT) if b == _LEVEL else 2 + b
        pos = [(self._n - i) % self._h for i in range(k, -1, -1)]  # the cumulative sums before the last k steps, ...
        x = np.diff(self._ring[0, pos, row, j])
        e = ratio * fall * np.diff(self._ring[ref, pos, row, j])
        span = np.diff(self._ring[9, pos, row, j])
        low = min(max(level, 0.02), 0.9)
        gain = np.cumsum((x * math.log(low) + e * (1 - low))[::-1])[::-1]  # from each step to the last
        if not np.isfinite(gain).all():
            return fallback
        first = int(np.argmax(gain))
        return at - float(span[first:].sum())

    def _raise_holders(self, row: int, j: int, at: float, changed: list[Alert]) -> None:
        """A folded child at an outage: the incidents it is folded under, up to the one reported, are
        critical (not the enclosing incidents reported on their own, which it is no part of)."""
        for above in self._ancestors(row, j):
            if above.alert.resolved_at is not None:
                continue
            if above.alert.severity != "critical":
                above.alert.severity = "critical"
                if above.alert.opened_at != at:  # told as a warning before: raised now
                    above.alert.raised_at = at
                above.alert.message = self._message(above.alert)
                if not above.folded and above.alert not in changed:
                    changed.append(above.alert)
            if not above.folded:
                return

    def _explains(self, holder: _Open, alert: Alert, at: float, j: int) -> bool:
        """Whether an ancestor's open incident explains a child's that fires now: it fired with it (within
        FOLD_WITHIN_S of its opening), or the child is down about as deep as the ancestor is now (over the
        last UNFOLD_AFTER_S, against its frozen expectation; at most FOLD_DEEPER deeper). A campaign's
        outage six minutes into a total left 77% down by an earlier cause (a stream that ended, then came
        back lower) was folded under it and never told (an outside probe); a payment outage's channels
        that cross their lines minutes late, all down alike, still fold."""
        if at - holder.alert.opened_at <= FOLD_WITHIN_S:
            return True
        row = self._index.get(holder.alert.scope)
        if row is None:
            return True
        on_plan = holder.basis == _LEVEL and holder.alert.basis == "plan"
        ref = (self._low_ring[holder.check] if on_plan else _QT) if holder.basis == _LEVEL else 2 + holder.basis
        last = max(1, round(UNFOLD_AFTER_S / self.config.step_s))
        mu = holder.ratio * float(self._win(ref, last)[row, j])
        if not (math.isfinite(mu) and mu > 0):
            return True
        parent = float(self._win(0, last)[row, j]) / mu
        child = alert.observed / alert.expected if alert.expected > 0 else 0.0
        return not child < parent - FOLD_DEEPER

    def _ancestors(self, row: int, j: int) -> Iterator[_Open]:
        """The incidents (open or recently resolved) of the scopes enclosing `row` on metric j, nearest first."""
        parent = int(self._parent[row])
        while parent >= 0:
            state = self._incidents.get((parent, j))
            if state is not None:
                yield state
            parent = int(self._parent[parent])

    def _open_ancestor(self, row: int, j: int) -> _Open | None:
        return next((st for st in self._ancestors(row, j) if st.alert.resolved_at is None), None)

    def _planned_fall(self, planned: BoolArray, k: int, gap: int, length: int) -> FloatArray:
        """Per row, how far its parent's plan falls from the baseline to the window (1: it does not
        fall, or no planned parent), for the rows judged on their recent rate: a channel the plan does
        not list, under a planned campaign. A planned fall of the campaign (a flash-sale session
        ending) then expects its channels to fall with it, not to go on at their recent rate (three
        channel outages at a cliff the plan foresaw). Never more than 1: a planned surge raises no
        channel's expectation (the plan's peak may come minutes early or late)."""
        fall = np.ones(planned.shape)
        rows = np.flatnonzero(self._parent >= 0)
        if not rows.size:
            return fall
        p = self._parent[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            now = self._win(8, k)[p] / self._win(_QT, k)[p]  # the plan's lower envelope, a second
            before = self._base(5, k + gap, length)[p] / self._base(_QTK, k + gap, length)[p]
            ratio = np.clip(now / before, 0.0, 1.0)
        use = planned[p] & ~planned[rows] & np.isfinite(ratio)
        fall[rows] = np.where(use, ratio, 1.0)
        return fall

    def _share_returns(
        self, obs: FloatArray, mu: FloatArray, ref: FloatArray, counted: FloatArray, k: int, back: int, length: int,
        check: Check, var_unit: FloatArray, units: FloatArray,
    ) -> BoolArray:  # fmt: skip
        """Per row: is a low share (`obs` over the window of k steps, `mu` expected of it, `ref` its reference,
        `counted` the count its baseline learnt it from) a return to the share of an earlier stretch as long
        as the check's baseline (at most 10 minutes: a rise of 20 spoils a longer one), in the 30 minutes
        before that baseline (which ends `back` steps ago),
        with the reference's rate within 2x of the window's there and in every stretch between? The
        baseline rose from that stretch (by 1 / (1 - depth / 2) of it at least, and z standard deviations),
        the rise is at least half the deficit (the window nearer the stretch's share than the baseline's),
        and the window is back at the stretch's share within half the check's depth (less two standard
        deviations). A channel raised 1.5-2x for 10 minutes or more (a push) taught its baseline that share,
        and fired a drop when it came back, open for the hour (an outside probe). A step up that stays is
        learnt as before, and a drop after a rise is a drop against the share before the rise too. Looser
        forms cost 30% drops on the development days (96.7% -> 88.3% for any stretch half the deficit lower
        that the window is not the depth under; 95.0% and five caught later, without the rise by the depth):
        noise and a mix drifting ~12% an hour put some 10-minute stretch of the hour there."""
        out = np.zeros(obs.shape, dtype=bool)
        same = np.ones(obs.shape, dtype=bool)
        reach = min(back + round(RETURN_LOOKBACK_S / self.config.step_s), self._h - 2)
        n_base = np.maximum(counted / units, 1.0)  # the check's baseline's count
        length = max(1, min(length, round(RETURN_BLOCK_S / self.config.step_s)))  # an hourly backtest: one step
        for start in range(back, reach - length + 1, length):
            x = self._base(10, start, length)
            with np.errstate(divide="ignore", invalid="ignore"):
                q = self._base(6, start, length)
                before = x / q * ref
                n_x = np.maximum(x / units, 1.0)
                rise = (mu - before) / np.sqrt(var_unit / units * before**2 / n_x + mu**2 / n_base)
                sd = np.sqrt(var_unit * before + before**2 / n_x)
                live = self._base(_SHARE_LIVE, start, length)
                known = live >= MIN_COVER * length * self.config.step_s
                back_there = (obs >= (1 - check.depth / 2) * before - 2 * sd) & (before <= (mu + obs) / 2)
                risen = (rise >= check.z) & (mu * (1 - check.depth / 2) >= before)  # by half the depth, at least
                # and in the same regime: the reference's rate within 2x of the window's (the mix of the eve
                # is no yardstick after the surge: a 30% drop in the fall-off was missed, development day 107)
                pace = (q / live) / (ref / (k * self.config.step_s))  # per second it was learnt (a burst masked)
                same &= ~known | ((pace <= 2.0) & (pace >= 0.5))  # ... nor any stretch between
                out |= known & (before > 0) & risen & back_there & same
        return out

    def _rest_stable(self, k: int, gap: int, length: int) -> BoolArray:
        """Per row: for a campaign, whether its plan's ratio to the rest of the total's plan moves by at most
        REST_CHANGE between the baseline and the window (a campaign starting or ending moves it)."""
        out = np.zeros((len(self._scopes), len(METRICS)), dtype=bool)
        rows = np.flatnonzero(self._depth == 1)
        if not rows.size:
            return out
        p = self._parent[rows]
        win, base = self._win(2, k), self._base(2, k + gap, length)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = (win[rows] / (win[p] - win[rows])) / (base[rows] / (base[p] - base[rows]))
            out[rows] = (change <= REST_CHANGE) & (change >= 1 / REST_CHANGE)
        return out

    def _planned(self, has_plan: BoolArray, k: int, gap: int, length: int) -> BoolArray:
        """Rows judged on the plan by a check of window k, gap and baseline length: planned, and no step of
        window or baseline outside the plan's span."""
        return has_plan & (self._win(_OUT, k) == 0) & (self._base(_OUT, k + gap, length) == 0)  # type: ignore[no-any-return]

    def _live_ratios(self, row: int, j: int, at: float) -> tuple[FloatArray, BoolArray]:
        """Each check's ratios per basis over its baseline now, and whether its level ratio is to the plan."""
        out = np.full((len(self.config.checks), 3), np.nan)
        on_plan = np.zeros(len(self.config.checks), dtype=bool)
        for c in range(len(self.config.checks)):
            k, length, gap = self._windows[c], self._baselines[c], self._gaps[c]
            planned = on_plan[c] = bool(self._planned(self._plan_row >= 0, k, gap, length)[row, j])
            rest = None if planned else self._ending(at, k, gap, length)
            for b in range(3):
                base_x = self._base(10 if b == _SHARE else 1, k + gap, length)[row, j]
                if b == _LEVEL and rest is not None:  # the rate of what goes on, as the check judged it
                    base_x = max(base_x - rest[1][row, j], 0.0)
                base_q = self._base(5 + b if b != _LEVEL or planned else _QTK, k + gap, length)[row, j]
                out[c, b] = base_x / base_q if base_q > 0 else np.nan
        return out, on_plan

    def _resolve(
        self, step: Step, units: FloatArray, var_unit: FloatArray, ended: BoolArray, changed: list[Alert]
    ) -> None:
        cfg = self.config
        eligible_rows = self._eligible(step.settled_until)
        for (row, j), state in list(self._incidents.items()):
            alert = state.alert
            if alert.resolved_at is not None:
                if step.at - alert.resolved_at > cfg.reopen_s:
                    del self._incidents[(row, j)]
                continue
            if ended[row]:
                # Ended on schedule: nothing is expected of it from here (an outage into its last minute,
                # judged on the plan up to the end, stayed open five minutes past it).
                self._close(state, row, j, step.at, changed)
                continue
            on_plan = state.basis == _LEVEL and alert.basis == "plan"
            if not on_plan and state.basis != _RATIO and not eligible_rows[row]:
                # The campaign is ending: shares and the recent rate no longer apply. Orders per
                # interaction do (both fade together in its last minutes): a payments outage 8 minutes
                # before an end was closed 5 minutes before it, still down (an outside probe).
                self._close(state, row, j, step.at, changed)
                continue
            longest = self._recover_windows[-1]
            back = math.ceil((step.settled_until - alert.started_at) / cfg.step_s)
            # The plan ended while it was open, or a campaign's share of the total lost its yardstick (no plan
            # to scale the rest by, or a rest that changed: a campaign joined or left; a review: a campaign still
            # 60% down "resolved" a minute after the plan's end). Its recovery is judged on the recent rate from
            # here, the rate before the incident (whose steps are masked out of the baselines). An incident on
            # the recent rate goes on so when a plan begins: that rate is measured all along.
            share_gone = (
                state.basis == _SHARE
                and self._depth[row] == 1
                and (
                    self._win(_OUT, longest)[row, j] > 0
                    or not self._rest_stable(longest, max(back - longest, 0), round(300 / cfg.step_s))[row, j]
                )
            )
            if share_gone or (on_plan and self._win(_OUT, longest)[row, j] > 0):
                # The rate over its check's baseline before the onset, as the incident's own opening measured.
                length = self._baselines[state.check]
                base_q = float(self._base(_QTK, back, length)[row, j])
                if base_q < max(MIN_COVER_S, MIN_COVER * length * cfg.step_s):
                    self._close(state, row, j, step.at, changed)
                    continue
                state.basis, state.ratio = _LEVEL, float(self._base(1, back, length)[row, j]) / base_q
                self._frozen[state.check, _LEVEL, row, j] = state.ratio
                self._frozen_plan[state.check, row, j] = False
                alert.basis, on_plan = "history", False
            # Recovered: the count is back above the midpoint between the incident's own level L
            # (observed / expected when it fired) and the expectation, over a window that expects
            # enough events to tell the two apart (4 standard deviations between them), at least half
            # the window that fired (up to 60 s) and recover_min_expected events. A shallow drop on a
            # small channel so gets a window of minutes: a minute of 60 events at 65% would cross a
            # line at 90% now and then, and an incident would resolve in the middle of itself.
            level = alert.observed / alert.expected if alert.expected > 0 else 0.0
            level = min(max(level, 0.0), 0.9) if math.isfinite(level) else 0.0
            ref = (self._recover_ring[state.check] if on_plan else _QT) if state.basis == _LEVEL else 2 + state.basis
            ratio = state.ratio
            if state.basis == _LEVEL and not on_plan and self._scopes[row].channel is not None:
                # A channel judged on its recent rate recovers against its siblings: the rate frozen in
                # the 00:00 surge is twice what the channel sends once the surge has fallen off. Only
                # while the rest of the family is well: siblings that fell too are no yardstick.
                share = float(self._frozen[state.check, _SHARE, row, j])
                family = self._parent == self._parent[row]
                family[row] = False
                quiet = not self._open[self._parent[row], j] and not self._open[family, j].any()
                if quiet and math.isfinite(share) and share > 0:
                    ref, ratio = 2 + _SHARE, share
            if state.folded:  # what `_unfold` judges it on once its parent's incident has ended
                last = max(1, round(UNFOLD_AFTER_S / cfg.step_s))
                state.recent = (float(self._win(0, last)[row, j]), ratio * float(self._win(ref, last)[row, j]))
            # L as it fired is the window that fired, often half before the onset (a 6-min window
            # catches an outage at 70%): lowered to what the incident has shown since, the upper
            # 2-sigma bound of observed / expected over the last 300 s. The midpoint and the window
            # then fit the incident, not its onset.
            mu_long = ratio * float(self._win(ref, longest)[row, j])
            still_out = False
            if mu_long > 0 and math.isfinite(mu_long):
                obs_long = self._going_on(state, on_plan, row, j, longest, step.settled_until)
                spread = math.sqrt(var_unit[row, j] * max(obs_long, units[row, j])) / mu_long
                state.level = min(level if math.isnan(state.level) else state.level, obs_long / mu_long + 2 * spread)
                still_out = ref != _QT and obs_long / mu_long + 2 * spread <= 1 - cfg.critical_depth
            # Open an hour (this opening: a reopened one refroze its baseline), its frozen baseline is stale:
            # it resolves, unless the scope is still out: at most 20% of an expectation that follows the day
            # (the plan, a share, a ratio). Not of a recent rate frozen an hour ago, which is no yardstick: a
            # review held an unplanned campaign's outage from 00:05 open hours after it came back (the day's
            # normal at 02:00 is 3% of the rate frozen in the surge).
            # Closed at zero, it was never raised again (an outside probe: a 2.5-hour outage of a channel
            # was reported over at the hour; a campaign's and the total's came back 10-20 min later).
            # Nor while nothing at all arrives (`_still_nothing`): without a plan, an outage of the total or a
            # campaign was closed at the hour while still at zero, and never raised again (its recent rate then
            # learnt the zero).
            if step.at - alert.opened_at > cfg.max_open_s:
                if ref == _QT:  # (still_out judges only an expectation that follows the day)
                    at = step.settled_until
                    still_out = self._still_nothing(state, row, j, longest, mu_long, units, at)
                if not still_out:
                    self._close(state, row, j, step.at, changed)
                    continue
            if math.isfinite(state.level):
                level = min(level, max(state.level, 0.0))
            # The floor of events is lowered for an incident whose episode has recovered; the four
            # standard deviations between its level and the expectation never are (a series still
            # half down must not resolve with the rest of its episode).
            floor_events, sigmas = cfg.recover_min_expected * units[row, j], 4.0
            if self._episode_resolved(row, j, alert):
                floor_events, sigmas = floor_events / cfg.episode_relief, cfg.episode_sigmas
            needed = max(floor_events, sigmas**2 * var_unit[row, j] / (1 - level) ** 2)
            # At least 30 s: 10 s of counts at 55% of the expectation crossed a line at 70% now and then.
            floor = 1
            if state.check >= 0:
                floor = min(max(self._windows[state.check] // 2, MIN_RECOVER), round(60 / cfg.step_s))
            # The window stays inside the incident: counts from before its onset are no evidence of
            # recovery (an outage judged a minute in on 80 s, half of them before it, read 60% back).
            # A reopened incident counts from its new onset: the minutes it was resolved are no evidence.
            onset = alert.started_at if math.isnan(state.since) else max(alert.started_at, state.since)
            span = max(1, int((step.settled_until - onset) // cfg.step_s))
            for k in self._recover_windows:
                if k > span or (k < floor and k != longest):
                    continue
                mu = ratio * float(self._win(ref, k)[row, j])
                if mu >= needed or k == min(span, longest):
                    break
            else:
                state.recovered = 0  # no window fits the incident yet
                continue
            if mu < needed and span < longest:
                state.recovered = 0  # not enough of the incident yet to tell it from recovery
                continue
            obs = self._going_on(state, on_plan, row, j, k, step.settled_until)
            # Nothing expected: over, unless the yardstick is siblings that sent nothing either.
            # An outage that comes back half way is still a drop: not over below RECOVERED_AT of the
            # expectation, whatever the midpoint (an outside probe: a channel out for 3 minutes, then 45%
            # down for 12, "resolved" 30-170 s into the 45%, and the rest was raised late or never). Not
            # on a frozen recent rate, which does not follow the day: in the fall-off it is stale-high,
            # and an outage of an unplanned total stayed open the hour after it ended (a review).
            line = (1 + level) / 2 if ref == _QT else max((1 + level) / 2, RECOVERED_AT)
            recovered = obs >= line * mu if mu > 0 and math.isfinite(mu) else ref != 2 + _SHARE
            state.recovered = state.recovered + 1 if recovered else 0
            if state.recovered >= cfg.recover_steps:
                state.by_recovery = True
                self._close(state, row, j, step.at, changed)
        self._unfold(step, var_unit, changed)

    def _still_nothing(self, state: _Open, row: int, j: int, k: int, mu: float, units: FloatArray, at: float) -> bool:
        """Does a scope judged on its recent rate still send nothing at all over the last k steps, where
        NOTHING_EXPECTED events were due? Due: for the total, at the rate frozen when it opened (any
        traffic on a sale day is more than 20 events in 5 minutes); for a campaign or a channel, its part of
        its parent's count when it opened, of what the parent sends now (a campaign that shrank by design
        sends something). Past the hour a frozen rate judges only this: the day's normal at 02:00 is 3% of a
        rate frozen at 00:05, and a scope back at it held open hours after its recovery (a review). Only a
        campaign on the schedule (`promo campaigns import`): one that is not may have ended, unannounced, and
        would stay open all day (one listed without an end still may: an ops note closes it); and the total
        not once every scheduled campaign has ended (zero by design then: a review)."""
        if float(self._win(0, k)[row, j]) > 0:
            return False
        campaign = self._campaign_of[row]
        if campaign is not None and campaign not in self.schedule:
            return False
        ends = [e for _, e in self.schedule.values()]
        if campaign is None and ends and all(e is not None and e <= at for e in ends):
            return False
        parent = int(self._parent[row])
        due = mu if parent < 0 else state.share * float(self._win(0, k)[parent, j])
        return math.isfinite(due) and due / float(units[row, j]) >= NOTHING_EXPECTED

    def _going_on(self, state: _Open, on_plan: bool, row: int, j: int, k: int, at: float) -> float:
        """What a scope counted over the last k steps, as its incident judges it: judged on its recent rate,
        a parent leaves out a campaign of it that is ending on schedule, as its opening did (`_ending`).
        With the ending campaign in, its last minutes read as the rest's recovery, and an outage of the
        rest resolved and reopened every few steps until the end (a review)."""
        obs = float(self._win(0, k)[row, j])
        if state.basis == _LEVEL and not on_plan:
            rest = self._ending(at, k, 0, 0)
            if rest is not None:
                obs = max(obs - float(rest[0][row, j]), 0.0)
        return obs

    def _unfold(self, step: Step, var_unit: FloatArray, changed: list[Alert]) -> None:
        """A child folded under an incident that has ended, and still down a minute later (a partial
        fix: the campaign's payments back, WeChat's not), is news of its own: reported from here, its
        row written and its message sent. Before, it stayed folded and silent until the hour ran out.
        Still down: over the last UNFOLD_AFTER_S, at most half its expectation and 3 standard
        deviations below it. Any other is closed with its parent, unheard (reported as soon as the
        parent ended, children that had fired with it and not yet proved their own recovery read as
        drops: false alarms 1 -> 7 on the development days); its own checks still see it if it is low."""
        for (row, j), state in list(self._incidents.items()):
            if not state.folded or state.alert.resolved_at is not None or self._open_ancestor(row, j) is not None:
                continue
            ended = max((st.alert.resolved_at or -math.inf for st in self._ancestors(row, j)), default=-math.inf)
            if step.at - ended < UNFOLD_AFTER_S:
                continue  # its window still holds time before the end
            obs, mu = state.recent
            sd = math.sqrt(max(var_unit[row, j] * mu, 1e-9)) if math.isfinite(mu) and mu > 0 else math.nan
            if math.isfinite(sd) and obs <= 0.5 * mu and obs - mu <= -3 * sd:
                state.folded = False
                changed.append(state.alert)
            else:
                self._close(state, row, j, step.at, changed)  # folded: no change reported

    def _episode_resolved(self, row: int, j: int, alert: Alert) -> bool:
        """Has an incident of the same episode recovered? Another metric of this scope, or any metric
        of a scope under it, firing at the same time (open when this one fired, or firing within
        episode_s after it) and resolved since. One cause (a broken link, a payment outage) moves
        those together and its end brings them back together: the series with the most events shows
        it first, and the sparse ones (GMV, new users, the campaign over a channel that broke) need
        only enough of their own to confirm it, not the minutes they would need to prove it alone."""
        scope = self._scopes[row]
        for (r, k), other in self._incidents.items():
            done = other.alert.resolved_at
            if done is None or not other.by_recovery or (r, k) == (row, j) or not scope.encloses(self._scopes[r]):
                continue  # (closed by the hour or the campaign's end: no evidence of a recovery)
            if done >= alert.detected_at and other.alert.detected_at <= alert.detected_at + self.config.episode_s:
                return True
        return False

    def _close(self, state: _Open, row: int, j: int, at: float, changed: list[Alert]) -> None:
        state.alert.resolved_at = at
        state.recovered = 0
        self._open[row, j] = False
        self._clear_after[row, j] = self._settled if self._settled is not None else -np.inf
        for i, other in enumerate(self._scopes):
            if self._scopes[row].encloses(other):
                self._hold_until[i] = max(self._hold_until[i], self._clear_after[row, j])
        family = row if self._scopes[row].channel is None else int(self._parent[row])
        self._family_clear[family] = max(
            self._family_clear[family], self._clear_after[row, j] + self.config.family_hold_s
        )
        if not state.folded:
            changed.append(state.alert)

    def _judge_lag(self, step: Step, changed: list[Alert]) -> None:
        cfg = self.config
        state = self._lag
        if step.lag_s > cfg.max_lag_s:
            if state is not None and state.alert.resolved_at is None:
                state.alert.observed = step.lag_s
                return
            if state is not None and step.at - (state.alert.resolved_at or 0) <= cfg.reopen_s:
                state.alert.resolved_at, state.alert.opened_at = None, step.at
                state.alert.reopened_from = step.at - (step.lag_s - cfg.max_lag_s)
                state.alert.observed = step.lag_s
            else:
                started = step.at - (step.lag_s - cfg.max_lag_s)
                alert = Alert(_alert_id("lag", None, Scope(), started), "lag", None, Scope(), started, step.at, None,
                              cfg.max_lag_s, step.lag_s, "freshness", "warning", "")  # fmt: skip
                self._lag = state = _Open(alert, -1, -1, math.nan, 0.0)
            state.alert.message = (f"pipeline {step.lag_s:.0f} s behind (more than {cfg.max_lag_s:.0f} s): "
                                   "no drop is judged on unsettled data")  # fmt: skip
            changed.append(state.alert)
        elif state is not None and state.alert.resolved_at is None:
            state.alert.resolved_at = step.at
            changed.append(state.alert)

    def _judge_no_show(self, step: Step, x: FloatArray, span: float, changed: list[Alert]) -> None:
        """A scheduled campaign that has sent no interaction since its start is an alert, not a silence; one
        with a plan that sends only a trickle of it (`_launch_level`) too, and sooner."""
        cfg = self.config
        total = float(self._win(0, self._recover_windows[-1])[0, _INTERACTIONS])  # is anything arriving at all?
        for campaign, (starts, ends) in self.schedule.items():
            if starts is None or step.settled_until <= starts:
                continue
            row = self._index[Scope(campaign)]
            self._since_start[campaign] = self._since_start.get(campaign, 0.0) + float(x[row, _INTERACTIONS])
            state = self._no_show.get(campaign)
            firing = state.alert if state is not None and state.alert.resolved_at is None else None
            t = step.settled_until
            live = ends is None or t < ends
            # Until it has launched: a campaign that once sent half its plan and then fell is an incident of
            # its own checks, not a launch (a review: an outage 10 min after a clean launch raised "13% of the
            # plan since its start" beside its own drop alert); nor while its interactions are in an incident.
            watch = (
                live
                and t >= starts + LAUNCH_AFTER_S
                and (
                    firing is not None
                    or (
                        t < starts + LAUNCH_WATCH_S
                        and campaign not in self._launched
                        and not self._open[row, _INTERACTIONS]
                    )
                )
            )
            trickle = None
            level = self._launch_level(row, starts, t) if watch else None
            if level is not None:
                mu, sent = level
                if sent >= LAUNCH_BACK * mu:
                    self._launched.add(campaign)
                elif firing is not None or (sent <= LAUNCH_LINE * mu and sent - mu <= -4 * math.sqrt(cfg.phi * mu)):
                    trickle = level
            nothing = self._since_start[campaign] == 0.0 and live and t >= starts + cfg.no_show_after_s
            if (trickle or nothing) and total > 0 and state is None:
                scope = Scope(campaign)
                expected, observed = trickle or (math.nan, 0.0)
                what = f"{observed / expected:.0%} of the plan" if observed > 0 else "nothing"
                alert = Alert(_alert_id("drop", "interactions", scope, starts), "drop", "interactions", scope, starts,
                              step.at, None, expected, observed, "schedule", "critical",
                              f"campaign {campaign} scheduled from {_utc(starts)}: {what} has arrived")  # fmt: skip
                self._no_show[campaign] = _Open(alert, -1, -1, math.nan, 1.0)
                changed.append(alert)
            elif firing is not None and not (trickle or nothing):
                firing.resolved_at = step.at
                changed.append(firing)
                # Out of the rest of the total while it was missing, which every other campaign's share is a
                # ratio to (its own channels' to it): when it came, the rest rose and their shares read as
                # drops (a launch out for 5 min from 00:00: five campaigns "20-25% below" 6-7 min after it
                # came). They wait as after an incident of the family (`_close`).
                hold = step.settled_until + cfg.family_hold_s
                for family in (row, int(self._parent[row])):
                    self._family_clear[family] = max(self._family_clear[family], hold)

    def _launch_open(self) -> list[str]:
        """The campaigns with a launch alert firing (nothing, or a trickle, since their scheduled start)."""
        return [c for c, st in self._no_show.items() if st.alert.resolved_at is None]

    def _launch_level(self, row: int, starts: float, at: float) -> tuple[float, float] | None:
        """A planned campaign's launch: (expected, observed) interactions over the last minutes since its start
        (at most LAUNCH_WINDOW_S), the plan scaled by the rest of the total as it counted against its own plan
        over the same time; None where that cannot be judged. A trickle is at most LAUNCH_LINE of it (and 4
        sd under it). Nothing else sees one: the campaign's level is learnt from what it sends, and its shares
        have no baseline yet (an outside probe: a campaign launched at 10% of its traffic was never raised).
        The rest's scale is the yardstick, as its own plan's level may be off (+-30% per campaign in
        `saleday`: a launch at full traffic can read 54% of it), so the line is low. Judged on the shortest
        window (from 60 s) that expects LAUNCH_MIN_EXPECTED, as it opens and as it ends: on the time since the
        start, a campaign that broke 10-50 s after its launch had sent half its plan by the first judgement
        and counted as launched (an outside probe: raised 1-5.5 min late, or not at all)."""
        if self._plan_row[row, _INTERACTIONS] < 0 or self._plan_row[0, _INTERACTIONS] < 0:
            return None
        since = int((at - starts) // self.config.step_s)
        longest = min(since, round(LAUNCH_WINDOW_S / self.config.step_s))
        windows = [k for k in (round(60 / self.config.step_s), round(120 / self.config.step_s)) if k < longest]
        rows = [row, 0]
        for k in [*windows, longest]:
            if k < 1 or self._win(_OUT, k)[rows, _INTERACTIONS].any():
                return None
            (q_c, q_t), (x_c, x_t) = self._win(2, k)[rows, _INTERACTIONS], self._win(0, k)[rows, _INTERACTIONS]
            rest_q, rest_x = q_t - q_c, x_t - x_c
            if rest_q <= 0 or rest_x <= 0:
                return None  # nothing else to scale by (the campaign alone, or the total down too)
            mu = float(q_c * rest_x / rest_q)
            if mu >= LAUNCH_MIN_EXPECTED:
                return mu, float(x_c)
        return None

    def _basis_name(self, b: int, row: int, j: int, planned: bool) -> str:
        if b == _LEVEL:
            return "plan" if planned else "history"
        if b == _SHARE:
            return "share-of-parent" if self._scopes[row].channel is not None else "share-of-total"
        return f"ratio:{METRICS[j]}/interactions"

    def _message(self, alert: Alert) -> str:
        below = 100 * (1 - alert.observed / alert.expected) if alert.expected > 0 else 100.0
        # A backtest at a step longer than the check's window judged one whole step: say so (an outside
        # probe read "over outage-10s" for an hour's count).
        over = alert.window
        window = next((c.window_s for c in self.config.checks if c.name == alert.window), 0.0)
        if self.config.step_s > window > 0:
            step = self.config.step_s
            unit = (3600, "h") if step % 3600 == 0 else (60, "min") if step % 60 == 0 else (1, "s")
            over = f"{step / unit[0]:g} {unit[1]} ({alert.window})"
        text = (f"{alert.metric} on {alert.scope.said()} {below:.0f}% below expected "
                f"({alert.observed:.0f} vs {alert.expected:.0f} over {over}, basis {alert.basis})")  # fmt: skip
        if alert.severity == "critical" and below < 100 * self.config.critical_depth and alert.children:
            text += f"; critical: a part of it is out ({', '.join(c.said() for c in alert.children)})"
        return text

    # -- the rest of the interface --------------------------------------------------------------

    @property
    def settled_until(self) -> float | None:
        """Event time up to which the steps so far settled (None before the first step)."""
        return self._settled

    def firing(self) -> list[Alert]:
        out = [st.alert for st in self._incidents.values() if st.alert.resolved_at is None and not st.folded]
        out += [st.alert for st in self._no_show.values() if st.alert.resolved_at is None]
        if self._lag is not None and self._lag.alert.resolved_at is None:
            out.append(self._lag.alert)
        return sorted(out, key=lambda a: (a.detected_at, a.id))

    def open_ids(self) -> set[str]:
        """The ids of every incident open here, folded ones too (rows of promo.alerts it goes on with)."""
        ids = {st.alert.id for st in self._incidents.values() if st.alert.resolved_at is None}
        ids |= {a.id for a in self.firing()}
        return ids

    def reset(self, scope: Scope, at: float) -> list[Alert]:
        """Ops changed `scope` on purpose: forget its baseline (and its children's) from now on, and
        resolve its open drop alerts (the change explains them). Returns the alerts resolved."""
        changed: list[Alert] = []
        for i, other in enumerate(self._scopes):
            if scope.encloses(other):
                self._reset_pos[i] = self._n
                for j in range(len(METRICS)):
                    state = self._incidents.get((i, j))
                    if state is not None and state.alert.resolved_at is None:
                        self._close(state, i, j, at, changed)
                        del self._incidents[(i, j)]
        # A campaign that never came is explained too (postponed on purpose): resolved, and not raised
        # again for this start (an outside probe found it firing on after the note).
        for campaign, no_show in self._no_show.items():
            if scope.encloses(Scope(campaign)) and no_show.alert.resolved_at is None:
                no_show.alert.resolved_at = at
                changed.append(no_show.alert)
        return changed

    def first_judge(self) -> tuple[str, int]:
        """The check that can judge first and how many steps it needs to: the part of its baseline it
        needs covered (MIN_COVER_S, MIN_COVER), the gap after it and its window. A history shorter
        than that is judged by no check."""
        step_s = self.config.step_s
        cover = [min(b, math.ceil(max(MIN_COVER_S, MIN_COVER * c.baseline_s) / step_s))
                 for b, c in zip(self._baselines, self.config.checks, strict=True)]  # fmt: skip
        steps = [w + b + g for w, b, g in zip(self._windows, cover, self._gaps, strict=True)]
        c = int(np.argmin(steps))
        return self.config.checks[c].name, steps[c]

    def outage_floor(self) -> float:
        """Events a minute below which a steady count series with no plan, judged on its recent rate
        alone, cannot be told to have stopped (a full outage reaching no history check's z): such a
        series needs a plan, or shares and ratios, for any drop to be seen (`promo alerts backtest`
        says so rather than "0 alerts")."""
        cfg, best = self.config, math.inf
        for c, check in enumerate(cfg.checks):
            if not check.history:
                continue
            window, baseline = self._windows[c] * cfg.step_s / 60, self._baselines[c] * cfg.step_s / 60
            for rate in np.geomspace(0.1, 1e4, 400):  # a count series' mean, a minute
                mu, n_base = rate * window, rate * baseline
                z = mu / math.sqrt(cfg.phi * mu + (check.eps * mu) ** 2 + mu**2 / max(n_base, 1.0))
                if mu >= check.min_expected and z >= check.z:
                    best = min(best, float(rate))
                    break
        return best

    def snapshot(self) -> dict[str, Any]:
        """JSON-able: the recent inputs (the baselines are rebuilt from them) and the incidents."""
        incidents = []
        for (row, j), st in self._incidents.items():
            incidents.append({"alert": _alert_doc(st.alert), "check": st.check, "basis": st.basis,
                              "ratio": _num(st.ratio), "depth": st.depth, "recovered": st.recovered,
                              "folded": st.folded, "level": _num(st.level), "since": _num(st.since),
                              "by_recovery": st.by_recovery, "share": _num(st.share),
                              "frozen": [[_num(v) for v in r] for r in self._frozen[:, :, row, j]],
                              "frozen_plan": [bool(v) for v in self._frozen_plan[:, row, j]]})  # fmt: skip
        # Ops notes: each scope's baseline starts again this many steps back (a restore that forgot them, on
        # a new plan, raised the scope again on its counts from before the note: an outside probe).
        resets = [
            [sc.campaign_id, sc.channel, int(self._n - pos)]
            for sc, pos in zip(self._scopes, self._reset_pos, strict=True)
            if pos > 0 and self._n - pos < len(self._recent)
        ]
        return {
            "version": 1,
            # the recent inputs as one row of counts a step, scopes x metrics in the order of "scopes"
            "scopes": [[sc.campaign_id, sc.channel] for sc in self._scopes],
            "steps": [
                [at, settled, lag, _pad(x, len(self._scopes)).ravel().tolist()] for at, settled, lag, x in self._recent
            ],
            "incidents": incidents,
            "lag": None if self._lag is None else _alert_doc(self._lag.alert),
            "no_show": {c: _alert_doc(st.alert) for c, st in self._no_show.items()},
            "since_start": dict(self._since_start),
            "launched": sorted(self._launched),
            "resets": resets,
        }

    @classmethod
    def restore(
        cls,
        doc: Mapping[str, Any],
        config: DetectorConfig | None = None,
        plan: Plan | None = None,
        schedule: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> Detector:
        """A detector that goes on where the one that made `doc` stopped: same open incidents (same
        ids, not re-sent), baselines rebuilt by replaying the recent inputs silently."""
        det = cls(config, plan, schedule)
        keys = [(Scope(c, ch), metric) for c, ch in doc.get("scopes", []) for metric in METRICS]
        for at, settled, lag, flat in doc.get("steps", []):
            det.step(Step(at, settled, lag, {key: v for key, v in zip(keys, flat, strict=True) if v}))
        det._incidents.clear()
        det._open[:] = False
        for item in doc.get("incidents", []):
            alert = _alert_from(item["alert"])
            assert alert.metric is not None
            row, j = det._register(alert.scope), METRICS.index(alert.metric)
            det._incidents[(row, j)] = _Open(alert, item["check"], item["basis"], float_or_nan(item["ratio"]),
                                             item["depth"], item["recovered"], item["folded"],
                                             float_or_nan(item.get("level")), float_or_nan(item.get("since")),
                                             bool(item.get("by_recovery", False)),
                                             share=float_or_nan(item.get("share")))  # fmt: skip
            det._frozen[:, :, row, j] = np.array([[float_or_nan(v) for v in r] for r in item["frozen"]])
            # (a state saved before this was kept: each check's ratio as the incident's basis was)
            det._frozen_plan[:, row, j] = item.get("frozen_plan", [item["basis"] == _LEVEL and alert.basis == "plan"]
                                                   * len(det.config.checks))  # fmt: skip
            det._open[row, j] = alert.resolved_at is None
        det._lag = None if doc.get("lag") is None else _Open(_alert_from(doc["lag"]), -1, -1, math.nan, 0.0)
        det._no_show = {c: _Open(_alert_from(a), -1, -1, math.nan, 1.0) for c, a in doc.get("no_show", {}).items()}
        det._since_start = {str(k): float(v) for k, v in doc.get("since_start", {}).items()}
        det._launched = {str(c) for c in doc.get("launched", [])}
        for campaign, channel, back in doc.get("resets", []):
            det._reset_pos[det._register(Scope(campaign, channel))] = max(det._n - int(back), 0)
        return det


def _pad(x: FloatArray, rows: int) -> FloatArray:
    """A step's counts with zero rows for the scopes registered after it."""
    return np.concatenate([x, np.zeros((rows - len(x), x.shape[1]))]) if len(x) < rows else x


def _num(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def float_or_nan(value: float | None) -> float:
    """A number from JSON or a row, where null stands for NaN (no expectation, no time)."""
    return math.nan if value is None else float(value)


def _alert_doc(alert: Alert) -> dict[str, Any]:
    row = alert.to_row()
    row["children"] = [[s.campaign_id, s.channel] for s in alert.children]
    row["expected"], row["observed"] = _num(alert.expected), _num(alert.observed)
    row["opened_at"], row["raised_at"] = alert.opened_at, _num(alert.raised_at)
    row["reopened_from"] = _num(alert.reopened_from)
    return row


def _alert_from(doc: Mapping[str, Any]) -> Alert:
    return Alert(doc["id"], doc["kind"], doc["metric"], Scope(doc["campaign_id"], doc["channel"]), doc["started_at"],
                 doc["detected_at"], doc["resolved_at"], float_or_nan(doc["expected"]), float_or_nan(doc["observed"]),
                 doc["basis"], doc["severity"], doc["message"], tuple(Scope(c, ch) for c, ch in doc["children"]),
                 doc.get("window", ""), float_or_nan(doc.get("opened_at")), float_or_nan(doc.get("raised_at")),
                 float_or_nan(doc.get("reopened_from")))  # fmt: skip


def replay(detector: Detector, steps: Iterable[Step]) -> list[Alert]:
    """Run `steps` through `detector`; every incident once, in the state it ended in."""
    seen: dict[str, Alert] = {}
    for step in steps:
        for alert in detector.step(step):
            seen[alert.id] = replace(alert)
    return list(seen.values())
