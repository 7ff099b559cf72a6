"""A labelled sale day for the drop detector (issue 17 item 9): pure, seeded, numpy only.

`make_day(DayConfig(seed=...))` draws a whole day at 10 s resolution for N campaigns x channels x
the five metrics of the detector, and returns beside it what the detector and its scoreboard need:

- the truth series (counts per 10 s bucket of event time) for the total, each campaign and each
  campaign x channel (the children sum exactly to their parent);
- the noise-free, incident-free expected rate of each series (to class an incident by how many
  events a minute its scope expected);
- the plan the war room would have made, with the errors real plans have: level off by up to
  +-30% per campaign, the 00:00 peak and the evening peak shifted by up to +-5 min, the fall-off
  after 00:00 decaying up to 20% faster or slower, the channel mix as it was at the start (it
  drifts during the day), no bot bursts;
- the schedule (campaigns start and end on time, and the truth ramps down in the 3 min before an
  end, as people leave);
- the incidents (labels), applied as multipliers to the hit metrics of the scope and everything
  under it, shape `step` or `ramp` (the depth grows linearly to `depth` over the duration);
- the Step sequence as the live runner presents it: every 10 s of arrival time, settled_until
  SETTLE_S (5 s) behind, as live, except during worker stalls of 30 s - 5 min (settled_until stands still, then
  jumps) and a late source partition (settled_until held back by 90-240 s for a few minutes).

The rate model: a calm eve (level 1), at 00:00 Beijing a jump to several times that rising to a
peak about 10-15x the eve a few minutes later and falling off over the first hour, a night trough,
a midday plateau and an evening peak. Counts are Poisson around a rate multiplied by a Gamma
traffic factor (overdispersed, shared by a channel's metrics in a bucket); orders, new users and
GMV follow interactions with per-channel ratios (GMV a compound Gamma sum of order values).
Bot bursts multiply one channel's interactions (and a little its shares) for 1-4 minutes, with no
orders: what fools a naive orders-per-interaction rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.alerts.detector import METRICS, Scope, Step
from streams.alerts.freshness import SETTLE_S
from streams.alerts.plan import Plan, iso_utc, parse_utc
from streams.alerts.scope import parse_scope

FloatArray = npt.NDArray[Any]  # numpy's float dtypes do not survive arithmetic in the stubs

MIDNIGHT = 1_794_326_400.0  # 2026-11-11 00:00 Asia/Shanghai
STEP_S = 10.0
CHANNELS: tuple[str, ...] = ("wechat", "mobileqq", "jingxi", "app", "wallet", "ads")
# Per channel: shares per interaction, orders per interaction, new users per order, mean order value (fen).
_SHARE_RATE = np.array([0.12, 0.10, 0.08, 0.03, 0.02, 0.04])
_CONVERSION = np.array([0.030, 0.025, 0.040, 0.060, 0.050, 0.020])
_NEW_FRACTION = np.array([0.50, 0.55, 0.60, 0.12, 0.20, 0.40])
_ORDER_VALUE = np.array([12_000.0, 9_000.0, 6_000.0, 18_000.0, 15_000.0, 10_000.0])
_ORDER_CV2 = 1.0
_GAMMA_K = 80.0  # the traffic factor's shape: a bucket's rate varies by about 1/sqrt(80) = 11%
# The day's level by hour of the Beijing day (before the evening peak, which is added apart).
_KNOTS_H = np.array([-1.0, 0.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 14.0, 17.0, 19.0, 22.0, 23.0, 24.0])
_KNOTS_V = np.array([1.0, 0.9, 0.8, 0.35, 0.2, 0.35, 0.7, 0.9, 0.85, 0.9, 1.0, 1.0, 0.9, 0.9])
SHAPES = ("step", "ramp")


@dataclass(frozen=True)
class Incident:
    """One labelled incident: the hit metrics of `scope` and everything under it fall by `depth`."""

    kind: str  # free text for the reader: "outage", "drop", "ramp", "channel", "payments"...
    scope: Scope
    metrics: tuple[str, ...]
    start: float  # epoch seconds, event time
    duration: float  # seconds
    depth: float  # 0..1: 0.8 = 80% below normal
    shape: str = "step"
    ramp_s: float | None = None  # a ramp reaches its depth after this long (default: the whole duration)

    @property
    def end(self) -> float:
        return self.start + self.duration

    def factor(self, t: FloatArray) -> FloatArray:
        """The multiplier at event times t (1 outside the incident)."""
        inside = (t >= self.start) & (t < self.end)
        if self.shape == "ramp":
            drop = self.depth * np.clip((t - self.start) / (self.ramp_s or self.duration), 0.0, 1.0)
        else:
            drop = np.full(t.shape, self.depth)
        return np.where(inside, 1.0 - drop, 1.0)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "scope": {"campaign_id": self.scope.campaign_id, "channel": self.scope.channel},
                "metrics": list(self.metrics), "start": iso_utc(self.start), "duration": self.duration,
                "depth": self.depth, "shape": self.shape, "ramp_s": self.ramp_s}  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], channels: Collection[str] = CHANNELS) -> Incident:
        """From the JSON of `--incidents FILE`; raises ValueError saying what is wrong. The scope is
        text in the grammar of every scope (streams/alerts/scope.py) or {campaign_id, channel}."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"an incident is a JSON object, not {type(doc).__name__}")
        scope_doc = doc.get("scope")
        if scope_doc is None:  # absent (or null): the whole sale; "" is an empty scope, refused below
            scope_doc = "total"
        if isinstance(scope_doc, Mapping):  # as to_json writes it: the same grammar, the same checks
            campaign, channel = scope_doc.get("campaign_id"), scope_doc.get("channel")
            parts = [str(campaign or "")] + ([] if channel is None else [str(channel)])
            scope = parse_scope("total" if campaign is None and channel is None else "/".join(parts), channels)
            if (scope.campaign_id, scope.channel) != (campaign, channel):
                raise ValueError(f"scope {dict(scope_doc)} is no campaign, no campaign x known channel")
        elif isinstance(scope_doc, str):
            scope = parse_scope(scope_doc, channels)
        else:
            raise ValueError("scope is text (total, CAMPAIGN or CAMPAIGN/CHANNEL) or {campaign_id, channel}")
        listed = doc.get("metrics")
        if listed is not None and (not isinstance(listed, list) or not listed):
            raise ValueError("metrics is a non-empty list (leave it out for all metrics)")
        metrics = tuple(listed or METRICS)
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; one of {', '.join(METRICS)}")
        if len(set(metrics)) < len(metrics):  # each listing would apply the depth again: 50% twice is 75%
            raise ValueError(f"metrics lists one twice: {list(metrics)}")
        start = doc["start"]
        if isinstance(start, str):
            try:
                start_s = parse_utc(start)
            except ValueError as exc:
                raise ValueError(f"start: {exc}") from None
        else:
            start_s = _number(doc, "start", "ISO 8601 or epoch seconds", math.isfinite)
        duration = _number(doc, "duration", "seconds > 0 (finite)", lambda v: 0 < v < math.inf)
        depth = _number(doc, "depth", "a number in (0, 1]", lambda v: 0 < v <= 1)
        shape = doc.get("shape", "step")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, not {_shown(shape)}")
        positive = "positive seconds (a number)"
        ramp_s = None if doc.get("ramp_s") is None else _number(doc, "ramp_s", positive, lambda v: 0 < v < math.inf)
        # The label says `depth`: a ramp that would reach it after its end never does (a probe: a ramp
        # of 6000 s in 60 s fell 0.8%, labelled 80%), and a step has no ramp.
        if ramp_s is not None and shape != "ramp":
            raise ValueError(f"ramp_s goes with shape 'ramp', not {shape!r}")
        if ramp_s is not None and ramp_s > duration:
            raise ValueError(
                f"ramp_s {ramp_s:g} is longer than the duration {duration:g}: it would never reach its depth"
            )
        kind = doc.get("kind", "drop")
        if not isinstance(kind, str):
            raise ValueError(f"kind is text (outage, drop, payments...), not {_shown(kind)}")
        return cls(kind, scope, metrics, start_s, duration, depth, shape, ramp_s)


def _number(doc: Mapping[str, Any], name: str, what: str, ok: Callable[[float], bool]) -> float:
    """doc[name] as a float if it is a JSON number that `ok` takes, else ValueError naming the field.
    Text is no number ("0.5" is refused, not read): a field typed wrong is a mistake to show, and
    the file is read by a program that takes it as written (true, a list: no number either)."""
    value = doc[name]
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            number = math.inf
        if ok(number):
            return number
    raise ValueError(f"{name} must be {what}, not {_shown(value)}")


def _shown(value: Any) -> str:
    """`value` as the message quotes it: short, and saying when it is text."""
    text = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
    return f"the text {text}" if isinstance(value, str) else text


@dataclass(frozen=True)
class DayConfig:
    seed: int = 0
    campaigns: int = 10
    channels: tuple[str, ...] = CHANNELS
    start: float = MIDNIGHT - 3600  # the day runs from 23:00 on the eve, so the surge has a calm before it
    hours: float = 24.0
    base_rate: float = 12_000.0  # interactions a minute, all campaigns, at the eve's level
    incidents: tuple[Incident, ...] = ()
    stalls: int | None = None  # worker stalls (None: 0-3 at random)
    late_partitions: int | None = None  # (None: 0-1 at random)
    bot_bursts: int | None = None  # (None: 0-3 at random)
    plan_errors: bool = True
    drift: bool = True  # the channel mix drifts during the day


@dataclass
class SaleDay:
    config: DayConfig
    scopes: list[Scope]
    truth: FloatArray  # (scopes, metrics, buckets): counts per 10 s bucket of event time
    rate: FloatArray  # the same shape: noise-free, incident-free expected counts
    plan: Plan
    schedule: dict[str, tuple[float | None, float | None]]
    incidents: list[Incident]
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (from, to) in arrival time
    late: list[tuple[float, float, float]] = field(default_factory=list)  # (from, to, delay s)
    bursts: list[tuple[Scope, float, float]] = field(default_factory=list)

    @property
    def t0(self) -> float:
        return self.config.start

    @property
    def buckets(self) -> int:
        return int(self.truth.shape[2])

    def index(self, scope: Scope) -> int:
        return self.scopes.index(scope)

    def expected_per_minute(self, scope: Scope, metric: str, at: float) -> float:
        """How many events a minute the scope expected around `at` (incident-free, noise-free)."""
        i = int((at - self.t0) // STEP_S)
        row = self.rate[self.index(scope), METRICS.index(metric), max(i, 0) : i + 6]
        return float(row.sum()) * 60 / (STEP_S * max(len(row), 1))

    def settled_timeline(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(at, settled_until, lag_s) for every evaluation of the day."""
        n = self.buckets
        # As live (streams/alerts/runner.py): an evaluation judges what is settled SETTLE_S before it,
        # so the first one, SETTLE_S after the first bucket's end, sees that bucket.
        normal = self.t0 + STEP_S * (np.arange(n) + 1)
        at = normal + SETTLE_S
        target = normal.copy()
        for start, end, delay in self.late:
            during = (at >= start) & (at < end)
            target[during] = normal[during] - delay
        stalled = np.zeros(n, dtype=bool)
        for start, end in self.stalls:
            stalled |= (at >= start) & (at < end)
        settled = np.empty(n)
        last = self.t0
        for k in range(n):
            if not stalled[k]:
                last = max(last, float(np.floor((target[k] - self.t0) / STEP_S) * STEP_S + self.t0))
            settled[k] = last
        return at, settled, at - settled

    def steps(self) -> Iterator[Step]:
        """The Steps the live runner would hand the detector."""
        at, settled, lag = self.settled_timeline()
        keys = [(scope, metric) for scope in self.scopes for metric in METRICS]
        flat = self.truth.reshape(len(keys), -1)
        cum = np.concatenate([np.zeros((len(keys), 1)), np.cumsum(flat, axis=1)], axis=1)
        prev = 0
        for k in range(len(at)):
            upto = round((settled[k] - self.t0) / STEP_S)
            values = cum[:, upto] - cum[:, prev]
            prev = upto
            yield Step(float(at[k]), float(settled[k]), float(lag[k]), dict(zip(keys, values.tolist(), strict=True)))


def _daily(hours: FloatArray, evening_h: float) -> FloatArray:
    base = np.interp(hours, _KNOTS_H, _KNOTS_V)
    return base + 0.7 * np.exp(-0.5 * ((hours - evening_h) / 1.3) ** 2)  # type: ignore[no-any-return]


def _surge(minutes: FloatArray, peak_min: float, decay_min: float, height: float) -> FloatArray:
    """0 before 00:00; a jump to 40% of `height`, rising to it at `peak_min`, then an exponential fall-off."""
    rise = height * (0.4 + 0.6 * np.clip(minutes / peak_min, 0, 1))
    fall = np.exp(-np.clip(minutes - peak_min, 0, None) / decay_min)
    return np.where(minutes >= 0, rise * fall, 0.0)


def _activity(t: FloatArray, starts: float | None, ends: float | None, ramp_s: float = 180.0) -> FloatArray:
    on = np.ones(t.shape)
    if starts is not None:
        on = np.where(t >= starts, on, 0.0)
    if ends is not None:
        on = on * np.clip((ends - t) / ramp_s, 0.0, 1.0)
    return on


def _schedules(
    rng: np.random.Generator, n: int, day_start: float, day_end: float
) -> list[tuple[float | None, float | None]]:
    h = 3600.0
    patterns: list[tuple[float | None, float | None]] = [
        (None, None), (MIDNIGHT, None), (MIDNIGHT, MIDNIGHT + 2 * h), (MIDNIGHT + 10 * h, None),
        (MIDNIGHT + 20 * h, MIDNIGHT + 22.5 * h), (None, MIDNIGHT + 12 * h), (MIDNIGHT, MIDNIGHT + 18 * h),
    ]  # fmt: skip
    out: list[tuple[float | None, float | None]] = [(None, None), (MIDNIGHT, None)]
    while len(out) < n:
        out.append(patterns[int(rng.integers(len(patterns)))])
    return [(s if s is None or s > day_start else None, e if e is None or e < day_end else None) for s, e in out[:n]]


def make_day(config: DayConfig) -> SaleDay:
    rng = np.random.default_rng(config.seed)
    n_c, n_ch = config.campaigns, len(config.channels)
    n = round(config.hours * 3600 / STEP_S)
    t = config.start + STEP_S * (np.arange(n) + 0.5)  # bucket middles
    minutes = (t - MIDNIGHT) / 60
    hours = minutes / 60
    campaigns = [f"c{i + 1:02d}" for i in range(n_c)]
    schedule = _schedules(rng, n_c, config.start, config.start + config.hours * 3600)
    weights = rng.lognormal(0.0, 0.7, n_c)
    weights /= weights.sum()
    mix0 = rng.dirichlet(np.full(n_ch, 3.0), n_c)  # (campaign, channel)
    peak_min, decay_min, evening_h = rng.uniform(2, 6), rng.uniform(12, 20), rng.uniform(20.0, 21.0)
    height = rng.uniform(12, 16)

    def level(peak: float, decay: float, evening: float) -> FloatArray:
        return _daily(hours, evening) + _surge(minutes, peak, decay, height)

    def launches(c: int) -> FloatArray:
        starts = schedule[c][0]
        if starts is None or starts == MIDNIGHT:
            return np.ones(n)
        since = (t - starts) / 60
        return 1 + np.where(since >= 0, 1.5 * np.exp(-since / 10), 0.0)

    shape = level(peak_min, decay_min, evening_h)
    per_bucket = config.base_rate * STEP_S / 60
    activity = np.stack([_activity(t, *schedule[c]) * launches(c) for c in range(n_c)])  # (c, t)
    # The channel mix drifts: logits follow a random walk with a knot an hour, interpolated.
    knots = np.arange(0, config.hours + 2)
    walk = np.cumsum(rng.normal(0, 0.12 if config.drift else 0.0, (n_c, n_ch, len(knots))), axis=2)
    logit = np.log(mix0)[:, :, None] + np.stack(
        [[np.interp(hours - hours[0], knots, walk[c, ch]) for ch in range(n_ch)] for c in range(n_c)]
    )
    mix = np.exp(logit)
    mix /= mix.sum(axis=1, keepdims=True)  # (c, ch, t)
    lam = per_bucket * shape[None, None, :] * weights[:, None, None] * activity[:, None, :] * mix  # interactions
    # What each metric would be without noise or incidents: (c, ch, metric, t)
    ratios = np.stack([np.ones(n_ch), _SHARE_RATE, _CONVERSION, _CONVERSION * _ORDER_VALUE,
                       _CONVERSION * _NEW_FRACTION], axis=1)  # fmt: skip
    rate = lam[:, :, None, :] * ratios[None, :, :, None]
    # Incidents: multipliers per (c, ch, metric, t).
    mult = np.ones_like(rate)
    scopes_leaf = [Scope(c, ch) for c in campaigns for ch in config.channels]
    for incident in config.incidents:
        f = incident.factor(t)
        for li, leaf in enumerate(scopes_leaf):
            if incident.scope.encloses(leaf):
                c, ch = divmod(li, n_ch)
                for metric in incident.metrics:
                    mult[c, ch, METRICS.index(metric)] *= f
    # Bot bursts: one channel's interactions x3-6 (shares x1.5) for 1-4 minutes, no orders.
    bursts: list[tuple[Scope, float, float]] = []
    n_bursts = config.bot_bursts if config.bot_bursts is not None else int(rng.integers(0, 4))
    bot = np.ones((n_c, n_ch, 2, n))
    for _ in range(n_bursts):
        c, ch = int(rng.integers(n_c)), int(rng.integers(n_ch))
        start = config.start + rng.uniform(0.1, 0.95) * config.hours * 3600
        end = start + rng.uniform(60, 240)
        inside = (t >= start) & (t < end)
        bot[c, ch, 0, inside] *= rng.uniform(3, 6)
        bot[c, ch, 1, inside] *= 1.5
        bursts.append((Scope(campaigns[c], config.channels[ch]), start, end))
    traffic = rng.gamma(_GAMMA_K, 1 / _GAMMA_K, lam.shape)
    live = rate * mult * traffic[:, :, None, :]
    counts = np.empty_like(rate)
    counts[:, :, 0] = rng.poisson(live[:, :, 0] * bot[:, :, 0])
    counts[:, :, 1] = rng.poisson(live[:, :, 1] * bot[:, :, 1])
    counts[:, :, 2] = rng.poisson(live[:, :, 2])
    orders = counts[:, :, 2]
    new_p = np.clip(_NEW_FRACTION[None, :, None] * mult[:, :, 4] / np.maximum(mult[:, :, 2], 1e-9), 0, 1)
    counts[:, :, 4] = rng.binomial(orders.astype(np.int64), new_p)
    gmv_shape = orders / _ORDER_CV2
    gmv = rng.gamma(np.maximum(gmv_shape, 1e-9), (_ORDER_VALUE * _ORDER_CV2)[None, :, None])
    gmv_mult = mult[:, :, 3] / np.maximum(mult[:, :, 2], 1e-9)
    counts[:, :, 3] = np.round(np.where(orders > 0, gmv * gmv_mult, 0.0))
    scopes, truth, clean = _roll_up(campaigns, config.channels, counts, rate)
    plan = _plan(config, rng, campaigns, schedule, weights, mix0, ratios, t, hours, minutes, n,
                 peak_min, decay_min, evening_h, height, launches)  # fmt: skip
    stalls, late = _freshness(rng, config)
    return SaleDay(config, scopes, truth, clean, plan, dict(zip(campaigns, schedule, strict=True)),
                   list(config.incidents), stalls, late, bursts)  # fmt: skip


def _roll_up(
    campaigns: list[str], channels: Sequence[str], leaf: FloatArray, rate: FloatArray
) -> tuple[list[Scope], FloatArray, FloatArray]:
    """(c, ch, m, t) -> scopes total, campaigns, campaign x channel, each (scope, m, t)."""
    n_c, n_ch, m, n = leaf.shape
    scopes = [Scope()] + [Scope(c) for c in campaigns] + [Scope(c, ch) for c in campaigns for ch in channels]
    out = []
    for arr in (leaf, rate):
        by_campaign = arr.sum(axis=1)
        out.append(np.concatenate([by_campaign.sum(axis=0)[None], by_campaign, arr.reshape(n_c * n_ch, m, n)]))
    return scopes, out[0], out[1]


def _plan(
    config: DayConfig, rng: np.random.Generator, campaigns: list[str],
    schedule: list[tuple[float | None, float | None]], weights: FloatArray, mix0: FloatArray, ratios: FloatArray,
    t: FloatArray, hours: FloatArray, minutes: FloatArray, n: int, peak_min: float, decay_min: float,
    evening_h: float, height: float, launches: Any,
) -> Plan:  # fmt: skip
    """The war room's plan: the same model with its errors, per campaign and for the total, per minute."""
    err = config.plan_errors
    p_peak = float(np.clip(peak_min + (rng.uniform(-5, 5) if err else 0), 0.5, 12))
    p_decay = decay_min * (rng.uniform(0.8, 1.2) if err else 1)
    p_evening = evening_h + (rng.uniform(-5, 5) / 60 if err else 0)
    levels = rng.uniform(0.7, 1.3, len(campaigns)) if err else np.ones(len(campaigns))
    shape = _daily(hours, p_evening) + _surge(minutes, p_peak, p_decay, height)
    per_bucket = config.base_rate * STEP_S / 60
    per_c = []
    for c in range(len(campaigns)):
        lam = per_bucket * shape * weights[c] * levels[c] * _activity(t, *schedule[c]) * launches(c)
        per_c.append(lam[None, :] * (mix0[c] @ ratios)[:, None])  # (metric, t)
    arr = np.stack(per_c)  # (c, m, t)
    per = int(60 / STEP_S)
    minutes_n = n // per
    arr = arr[:, :, : minutes_n * per].reshape(len(campaigns), len(METRICS), minutes_n, per).sum(axis=3)
    series: dict[tuple[Scope, str], FloatArray] = {}
    for j, metric in enumerate(METRICS):
        series[(Scope(), metric)] = arr[:, j].sum(axis=0)
        for c, campaign in enumerate(campaigns):
            series[(Scope(campaign), metric)] = arr[c, j]
    return Plan(config.start, series)


def _freshness(
    rng: np.random.Generator, config: DayConfig
) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    span = config.hours * 3600
    stalls = []
    for _ in range(config.stalls if config.stalls is not None else int(rng.integers(0, 4))):
        start = config.start + rng.uniform(0.05, 0.95) * span
        stalls.append((start, start + rng.uniform(30, 300)))
    late = []
    for _ in range(config.late_partitions if config.late_partitions is not None else int(rng.integers(0, 2))):
        start = config.start + rng.uniform(0.05, 0.95) * span
        late.append((start, start + rng.uniform(120, 600), rng.uniform(90, 240)))
    return sorted(stalls), sorted(late)
