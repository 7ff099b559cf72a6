"""A seeded, deterministic generator of a realistic Double 11 event stream.

`generate` turns a `SimConfig` into the exact list of Kafka records a producer must send (topic
suffix, partition, key, value bytes, record timestamp, and when to send it), plus the list of
existing buyers to import. It does no I/O: the producer replays the list, and
`streams.kit.truth.compute_truth` computes from the same list what the pipeline must report.

How the stream is built:

1. A user population, each user with a home channel, a city tier (tiers 3-6 dominate on jingxi
   and mobileqq) and an existing-buyer flag (more likely on app and web than on the social
   channels, so that new ordering users come mostly from WeChat, Mobile QQ and Jingxi).
2. Stories anchored on a Double 11 rate curve in event time: calm before midnight, a many-fold
   surge at 00:00 Beijing (`midnight_ms`), a decay through the first hour and a fall-off after it.
   A story is a browsing session (clicks, maybe a share, maybe one or more orders); a share starts
   a fission chain: friends visit through the share link (clicks with `share_id`), some order
   with the `share_id`, some share again (`parent_share_id`).
3. Each event gets a simulated wall time (when it reaches the collector, a little after its event
   time). Some events get their `ts` set back by up to 5 minutes (out of order, still within the
   allowed lateness), a few by 20-90 minutes (too late: rejected as `late`).
4. Events are packed into messages per topic: singles, and collector batches (JSON arrays of
   events within one minute of each other). Each message goes to an explicit random partition
   with no key or an arbitrary key: the contract says no number depends on keys or partitions.
5. Extra malformed messages of every rejection reason of docs/CONTRACT.md are added, some of them
   as bad elements slipped into real batches; then retries: exact byte copies of events (or of a
   whole batch) re-sent soon after, possibly to another partition.

Valid events also use the spellings the contract allows and a decoder must accept: optional fields
absent or null, `city_tier` as 3.0, unknown extra fields, an order's `share_id` empty, campaign
ids in Chinese (`双11主会场`).

The wall time of the whole sale window (`sale_span_s` of event time) is compressed into
`duration_s` seconds of sending: `send_at_s` is the wall time mapped onto [0, duration_s), and the
record timestamp is the uncompressed simulated wall time, so that the future check (`ts` more than
one hour ahead of the record timestamp) decides the same way whatever the replay speed.

The simulated midnight is `start_ms + sale_span_s / 4` (`midnight_ms`). Note that the default
`start_ms` is itself 2025-11-11 00:00 Beijing, so with the defaults the surge lands at 00:30 on the
real clock; pass `start_ms=1_762_788_600_000` to line the surge up with the real midnight.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, NamedTuple, TypeVar

import orjson

from streams.contract.topics import INPUTS

SCENARIOS: tuple[str, ...] = ("double11", "618")
KINDS: tuple[str, ...] = INPUTS

# Malformed message kinds, named by the rejection reason the contract gives them, dealt out in turn
# (too_large is added apart: values over 1 MiB are heavy, at most two per run).
MALFORMED_REASONS: tuple[str, ...] = (
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "future",
)

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_MAX_VALUE_BYTES = 1_048_576  # the contract's 1 MiB limit; too_large values go just over it
_BATCH_WINDOW_MS = 60_000  # a collector batch never spans more than a minute of wall time
_END_MARGIN_MS = 1_000  # events reach the collector at least this long before the window ends

T = TypeVar("T")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Rates are fractions of `events` (duplicates and malformed are extra)."""

    scenario: str = "double11"
    events: int = 20_000
    duration_s: float = 60.0
    seed: int = 11
    partitions: int = 4
    start_ms: int = 1_762_790_400_000
    sale_span_s: float = 7200.0
    duplicate_rate: float = 0.02
    out_of_order_rate: float = 0.05
    late_rate: float = 0.005
    malformed_rate: float = 0.01
    batch_rate: float = 0.2
    batch_mean: float = 6.0  # a collector batch holds about 2 + this many events ...
    batch_max: int = 60  # ... and at most this many
    unkeyed_rate: float = 0.5
    existing_buyer_rate: float = 0.6
    users: int = 0


@dataclass(frozen=True)
class Record:
    """One Kafka record to produce to topic `<prefix><kind>`."""

    kind: str
    partition: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    send_at_s: float


@dataclass(frozen=True)
class Simulation:
    """The records in send order (per (kind, partition) this is the offset order)."""

    records: list[Record]
    existing_buyers: list[str]


# --------------------------------------------------------------------------------------------
# Small immutable building blocks


@dataclass(frozen=True)
class _Choice(Generic[T]):
    """A weighted choice, precomputed once so that each draw costs one random() and a bisect."""

    items: tuple[T, ...]
    cum: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[T, float]]) -> _Choice[T]:
        items = tuple(item for item, _ in pairs)
        cum = tuple(itertools.accumulate(weight for _, weight in pairs))
        return cls(items, cum)

    def pick(self, rng: random.Random) -> T:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return self.items[min(i, len(self.items) - 1)]


@dataclass(frozen=True)
class _Campaign:
    campaign_id: str
    weight: float
    actions: _Choice[str]
    target: str  # how a click's target_id is chosen: sku, round, star, store or none
    p_share: float  # a session ends with a share
    p_order: float  # a session ends with an order
    p_friend_order: float  # a friend who came through a share link orders
    p_poster: float  # a first share is a poster forwarded to 80-200 friends (KOC playbook)
    amount_median: int
    amount_sigma: float
    amount_lo: int
    amount_hi: int
    max_items: int
    channels: _Choice[str] | None  # the campaign's own channel mix, None for the global one


@dataclass(frozen=True)
class _User:
    user_id: str
    channel: str  # home channel
    tier: int


@dataclass(frozen=True)
class _Curve:
    """The event-time rate curve as a cumulative table over fixed buckets (inverse-CDF sampling)."""

    start_ms: int
    bucket_ms: int
    span_ms: int
    cum: tuple[float, ...]

    def sample(self, rng: random.Random) -> int:
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        i = min(i, len(self.cum) - 1)
        offset = int((i + rng.random()) * self.bucket_ms)
        return self.start_ms + min(offset, self.span_ms - 1)


@dataclass(frozen=True)
class _World:
    cfg: SimConfig
    users: tuple[_User, ...]
    pools: dict[str, tuple[_User, ...]]  # users by home channel
    existing: frozenset[str]
    campaigns: _Choice[_Campaign]
    channels: _Choice[str]
    entries: dict[str, _Choice[str]]
    share_targets: dict[str, _Choice[str]]
    curve: _Curve


class _Event(NamedTuple):  # a NamedTuple: a million of them are made, and it is cheap
    kind: str
    wall: int  # simulated wall time (ms) at which the event reaches the collector
    user_id: str
    data: bytes  # compact JSON of the event object


@dataclass(slots=True)
class _Message:
    """A message being assembled. Mutable because bad elements are slipped into batches later."""

    seq: int  # creation order: breaks ties between equal wall times deterministically
    kind: str
    wall: int
    partition: int
    key: bytes | None
    parts: list[bytes]  # the element bytes (or the whole raw value when not an array)
    real: list[bool]  # which parts are generated events (the candidates for retries)
    array: bool

    def value(self) -> bytes:
        if not self.array:
            return self.parts[0]
        return b"[" + b",".join(self.parts) + b"]"


# --------------------------------------------------------------------------------------------
# The scenario: proportions from shared/domain.md

_CHANNEL_MIX: tuple[tuple[str, float], ...] = (
    ("wechat", 0.30),
    ("jingxi", 0.20),
    ("mobileqq", 0.15),
    ("app", 0.22),
    ("web", 0.09),
    ("other", 0.04),
)

# How much more (or less) likely a user of each home channel is to be an existing buyer: the app
# and the web site are where the existing buyers are; WeChat, Mobile QQ and Jingxi bring new ones.
_EXISTING_FACTOR: Mapping[str, float] = {
    "wechat": 0.95,
    "jingxi": 0.7,
    "mobileqq": 0.85,
    "app": 1.4,
    "web": 1.3,
    "other": 1.0,
}

# City tiers 1..6 by home channel: >70% of Jingxi and Mobile QQ users are in tiers 3-6.
_TIERS: Mapping[str, tuple[float, ...]] = {
    "wechat": (0.15, 0.25, 0.22, 0.18, 0.12, 0.08),
    "jingxi": (0.05, 0.10, 0.25, 0.27, 0.18, 0.15),
    "mobileqq": (0.05, 0.12, 0.35, 0.34, 0.08, 0.06),
    "app": (0.25, 0.30, 0.20, 0.13, 0.07, 0.05),
    "web": (0.30, 0.30, 0.18, 0.12, 0.06, 0.04),
    "other": (0.15, 0.20, 0.25, 0.20, 0.10, 0.10),
}

_ENTRIES: Mapping[str, tuple[tuple[str, float], ...]] = {
    "wechat": (
        ("main_entry", 0.30),
        ("wallet", 0.15),
        ("moments", 0.15),
        ("group", 0.15),
        ("ad", 0.10),
        ("mini_program", 0.10),
        ("search", 0.05),
    ),
    "mobileqq": (
        ("main_entry", 0.45),
        ("group", 0.25),
        ("ad", 0.15),
        ("search", 0.10),
        ("moments", 0.05),
    ),
    "jingxi": (("mini_program", 0.6), ("group", 0.2), ("moments", 0.1), ("main_entry", 0.1)),
    "app": (("main_entry", 0.6), ("search", 0.3), ("ad", 0.1)),
    "web": (("search", 0.55), ("main_entry", 0.35), ("ad", 0.1)),
    "other": (("ad", 0.5), ("search", 0.3), ("main_entry", 0.2)),
}

# Where a share goes, by the sharer's channel (the app shares into WeChat and QQ).
_SHARE_TARGETS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "wechat": (("wechat_group", 0.45), ("moments", 0.35), ("wechat_friend", 0.20)),
    "mobileqq": (("qq_group", 0.6), ("qq_friend", 0.4)),
    "jingxi": (("wechat_group", 0.6), ("wechat_friend", 0.4)),
    "app": (("wechat_friend", 0.5), ("moments", 0.3), ("qq_friend", 0.2)),
    "web": (("wechat_friend", 0.6), ("qq_friend", 0.4)),
    "other": (("wechat_friend", 0.6), ("qq_friend", 0.4)),
}

_SDKS: tuple[str, ...] = ("wxapp-3.8.2", "qqapp-2.1.0", "jx-mp-1.14.7", "jdapp-12.2.0")


def _campaigns(scenario: str = "double11") -> tuple[_Campaign, ...]:
    """The campaigns of a scenario (weights are shares of sessions). `618` is JD's anniversary sale
    (peak on June 18; pass its start_ms): its main venue is 618主会场, and the 618 games (星战618
    voting, the 6-minute-18 lottery) take a larger share of the sessions than on Double 11
    (shared/domain.md: 5.68 million took part in 星战618)."""
    campaigns = _double11_campaigns()
    if scenario != "618":
        return campaigns
    share = {"双11主会场": ("618主会场", 0.32), "crazy618_lottery": (None, 0.17), "starwars618_vote": (None, 0.19)}
    out = []
    for c in campaigns:
        name, weight = share.get(c.campaign_id, (None, c.weight))
        out.append(replace(c, campaign_id=name or c.campaign_id, weight=weight))
    return tuple(out)


def _double11_campaigns() -> tuple[_Campaign, ...]:
    wechat_heavy = _Choice.of((("wechat", 0.7), ("mobileqq", 0.1), ("app", 0.15), ("web", 0.05)))
    jingxi_heavy = _Choice.of((("jingxi", 0.85), ("wechat", 0.15)))
    return (
        _Campaign(  # the main venue: browsing and most of the GMV, with a long tail of big tickets
            campaign_id="双11主会场",
            weight=0.42,
            actions=_Choice.of((("view", 0.55), ("click", 0.3), ("coupon", 0.1), ("like", 0.05))),
            target="sku",
            p_share=0.06,
            p_order=0.12,
            p_friend_order=0.10,
            p_poster=0.01,
            amount_median=15_900,
            amount_sigma=1.0,
            amount_lo=990,
            amount_hi=1_999_900,
            max_items=6,
            channels=None,
        ),
        _Campaign(  # 疯狂6分18秒: join the draw and share it; rounds of 6 min 18 s
            campaign_id="crazy618_lottery",
            weight=0.14,
            actions=_Choice.of((("lottery", 1.0),)),
            target="round",
            p_share=0.35,
            p_order=0.03,
            p_friend_order=0.05,
            p_poster=0.01,
            amount_median=9_900,
            amount_sigma=0.8,
            amount_lo=990,
            amount_hi=99_900,
            max_items=3,
            channels=None,
        ),
        _Campaign(  # 星战618: vote for your star, invite friends to vote
            campaign_id="starwars618_vote",
            weight=0.12,
            actions=_Choice.of((("vote", 1.0),)),
            target="star",
            p_share=0.30,
            p_order=0.02,
            p_friend_order=0.04,
            p_poster=0.01,
            amount_median=12_900,
            amount_sigma=0.9,
            amount_lo=990,
            amount_hi=199_900,
            max_items=3,
            channels=None,
        ),
        _Campaign(  # 浪莎丝袜节: reservations, coupons, many cheap orders of several pairs
            campaign_id="langsha_brand_day",
            weight=0.10,
            actions=_Choice.of((("view", 0.45), ("reserve", 0.3), ("coupon", 0.25))),
            target="store",
            p_share=0.10,
            p_order=0.18,
            p_friend_order=0.12,
            p_poster=0.01,
            amount_median=3_900,
            amount_sigma=0.6,
            amount_lo=990,
            amount_hi=29_900,
            max_items=12,
            channels=None,
        ),
        _Campaign(  # SK-II on WeChat: few, expensive orders
            campaign_id="skii_wechat_day",
            weight=0.07,
            actions=_Choice.of((("view", 0.7), ("coupon", 0.2), ("reserve", 0.1))),
            target="sku",
            p_share=0.08,
            p_order=0.06,
            p_friend_order=0.08,
            p_poster=0.01,
            amount_median=89_000,
            amount_sigma=0.35,
            amount_lo=29_900,
            amount_hi=200_000,
            max_items=2,
            channels=wechat_heavy,
        ),
        _Campaign(  # Jingxi group buying: cheap, shared to get the group price, tier 3-6 cities
            campaign_id="jingxi_pinpin",
            weight=0.12,
            actions=_Choice.of((("view", 0.5), ("group_buy", 0.3), ("coupon", 0.2))),
            target="sku",
            p_share=0.40,
            p_order=0.15,
            p_friend_order=0.15,
            p_poster=0.01,
            amount_median=2_990,
            amount_sigma=0.7,
            amount_lo=990,
            amount_hi=19_900,
            max_items=5,
            channels=jingxi_heavy,
        ),
        _Campaign(  # B2K2C: promoters forward posters to 80-200 friends, paid on attributed orders
            campaign_id="koc_promoter_b2k2c",
            weight=0.07,
            actions=_Choice.of((("view", 0.8), ("coupon", 0.2))),
            target="sku",
            p_share=0.25,
            p_order=0.10,
            p_friend_order=0.12,
            p_poster=0.15,
            amount_median=12_900,
            amount_sigma=0.8,
            amount_lo=990,
            amount_hi=99_900,
            max_items=4,
            channels=None,
        ),
    )


def _exp(rng: random.Random, mean: float) -> float:
    """An exponential variate (what random.expovariate does, minus a call: it is on the hot path)."""
    return -math.log(1.0 - rng.random()) * mean


def _json(obj: object) -> bytes:
    """Compact UTF-8 JSON.

    orjson hands back bytes objects that keep its ~4 KiB working buffer; a million retained
    events would cost gigabytes. Copying them to exact-size bytes is cheaper than the memory.
    """
    return memoryview(orjson.dumps(obj)).tobytes()


def midnight_ms(cfg: SimConfig) -> int:
    """Event time of 00:00 Beijing in the simulated window: a quarter into the sale span."""
    return cfg.start_ms + round(cfg.sale_span_s * 1000) // 4


def _rate(minutes_from_midnight: float) -> float:
    """The relative event rate: 1 before the sale, 12x at 00:00, down to ~1.5x after the first hour."""
    m = minutes_from_midnight
    if m < -15:
        return 1.0
    if m < 0:  # the crowd gathers in the last quarter hour
        return 1.0 + 0.8 * (m + 15) / 15
    if m < 60:
        return 4.0 + 8.0 * math.exp(-m / 12.0)
    at_hour = 4.0 + 8.0 * math.exp(-5.0)
    return 1.5 + (at_hour - 1.5) * math.exp(-(m - 60) / 10.0)


def relative_rate(minutes_from_midnight: float) -> float:
    """The Double 11 traffic curve (1 = the calm rate), for callers that scale it rather than sample it."""
    return _rate(minutes_from_midnight)


def _build_curve(cfg: SimConfig) -> _Curve:
    span_ms = round(cfg.sale_span_s * 1000)
    bucket_ms = 1_000
    n = max(1, math.ceil(span_ms / bucket_ms))
    midnight = midnight_ms(cfg)
    rates = (_rate((cfg.start_ms + (i + 0.5) * bucket_ms - midnight) / _MINUTE_MS) for i in range(n))
    return _Curve(cfg.start_ms, bucket_ms, span_ms, tuple(itertools.accumulate(rates)))


# --------------------------------------------------------------------------------------------
# Identifiers


def _scramble(n: int, key: int, bits: int) -> int:
    """A bijection on [0, 2**bits): distinct counters give distinct, random-looking numbers.

    Each step (xor with a key, multiply by an odd constant, xor-shift) is invertible modulo
    2**bits, so uniqueness holds without remembering the ids handed out.
    """
    mask = (1 << bits) - 1
    half = bits // 2
    x = (n ^ key) & mask
    x = (x * 0x9E3779B97F4A7C15) & mask
    x ^= x >> half
    x = (x * 0xBF58476D1CE4E5B9) & mask
    x ^= x >> half
    return x


class _Ids:
    """Allocates identifiers that are random-looking, reproducible and guaranteed unique."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._key = rng.getrandbits(64)
        self._events = itertools.count()
        self._users = itertools.count()
        self._shares = itertools.count()
        self._order = rng.randrange(200_000_000_000, 300_000_000_000)

    def event(self) -> str:
        return f"{_scramble(next(self._events), self._key, 64):016x}"

    def user(self) -> str:
        return f"jd_{_scramble(next(self._users), self._key, 40):010x}"

    def share(self) -> str:
        return f"sh{_scramble(next(self._shares), self._key, 48):012x}"

    def order(self) -> str:
        # JD order numbers are increasing 12-digit numbers; the gaps are other shoppers' orders.
        self._order += self._rng.randint(1, 97)
        return str(self._order)


# --------------------------------------------------------------------------------------------
# The world: users, campaigns, curve


def _existing_probability(rate: float, factor: float) -> float:
    """The chance that a user is an existing buyer, tilted by channel (`factor` around 1).

    The tilt scales with rate * (1 - rate), so the population average stays `rate` and the
    extremes stay exact: 0 means nobody is an existing buyer, 1 means everybody is.
    """
    return min(1.0, max(0.0, rate + 2.0 * (factor - 1.0) * rate * (1.0 - rate)))


def _build_world(cfg: SimConfig, rng: random.Random, ids: _Ids) -> _World:
    channels = _Choice.of(_CHANNEL_MIX)
    tiers = {ch: _Choice.of(tuple(zip(range(1, 7), w, strict=True))) for ch, w in _TIERS.items()}
    mean_factor = sum(w * _EXISTING_FACTOR[ch] for ch, w in _CHANNEL_MIX) / sum(w for _, w in _CHANNEL_MIX)
    n_users = cfg.users if cfg.users > 0 else max(1, cfg.events // 8)
    users: list[_User] = []
    existing: set[str] = set()
    for _ in range(n_users):
        channel = channels.pick(rng)
        user = _User(ids.user(), channel, tiers[channel].pick(rng))
        users.append(user)
        p_existing = _existing_probability(cfg.existing_buyer_rate, _EXISTING_FACTOR[channel] / mean_factor)
        if rng.random() < p_existing:
            existing.add(user.user_id)
    pools = {ch: tuple(u for u in users if u.channel == ch) for ch, _ in _CHANNEL_MIX}
    campaigns = _campaigns(cfg.scenario)
    return _World(
        cfg=cfg,
        users=tuple(users),
        pools=pools,
        existing=frozenset(existing),
        campaigns=_Choice.of(tuple((c, c.weight) for c in campaigns)),
        channels=channels,
        entries={ch: _Choice.of(e) for ch, e in _ENTRIES.items()},
        share_targets={ch: _Choice.of(t) for ch, t in _SHARE_TARGETS.items()},
        curve=_build_curve(cfg),
    )


def _pick_user(rng: random.Random, world: _World, channel: str) -> _User:
    """A user for an event on `channel`: mostly one at home there, now and then anyone."""
    pool = world.pools.get(channel, ())
    if not pool or rng.random() < 0.1:
        pool = world.users
    # Skewed towards the front of the (randomly ordered) pool: a few heavy users act a lot.
    return pool[int(len(pool) * rng.random() ** 2.2)]


def _landing(sharer_channel: str, target: str) -> tuple[str, str]:
    """The channel and entry through which friends open a share link."""
    if target.startswith("qq_"):
        return "mobileqq", "group" if target == "qq_group" else "main_entry"
    channel = "jingxi" if sharer_channel == "jingxi" else "wechat"
    if target == "moments":
        return channel, "moments"
    if target == "wechat_group":
        return channel, "group"
    return channel, "mini_program"


def _amount(rng: random.Random, c: _Campaign) -> int:
    """A price-like amount in fen (ending in 90) from a log-normal with a long tail."""
    raw = rng.lognormvariate(math.log(c.amount_median), c.amount_sigma)
    price = int(raw // 100) * 100 + 90
    return max(c.amount_lo, min(c.amount_hi, price))


# --------------------------------------------------------------------------------------------
# Stories: sessions and share chains


class _Stories:
    """Writes stories as stamped, serialised events into `out` (the only state is the output)."""

    def __init__(self, world: _World, rng: random.Random, ids: _Ids) -> None:
        self.out: list[_Event] = []
        self._world = world
        self._cfg = world.cfg
        self._rng = rng
        self._ids = ids
        self._end_wall = world.curve.start_ms + world.curve.span_ms - _END_MARGIN_MS

    def story(self) -> None:
        w, rng = self._world, self._rng
        t = w.curve.sample(rng)
        campaign = w.campaigns.pick(rng)
        channel = (campaign.channels or w.channels).pick(rng)
        user = _pick_user(rng, w, channel)
        self._session(t, campaign, channel, user, w.entries[channel].pick(rng), None, 0)

    def _session(
        self,
        t: int,
        campaign: _Campaign,
        channel: str,
        user: _User,
        entry: str,
        via: str | None,
        depth: int,
    ) -> None:
        rng = self._rng
        # A friend opening a share link looks around a little; a shopper at will, longer.
        clicks = 1 + (min(7, int(_exp(rng, 1.2))) if via is None else min(3, int(_exp(rng, 0.6))))
        for i in range(clicks):
            fields: dict[str, object] = {"action": campaign.actions.pick(rng)}
            target = self._target(campaign, t)
            if target is not None:
                fields["target_id"] = target
            if via is not None and (i == 0 or rng.random() < 0.3):
                fields["share_id"] = via
            self._emit("clicks", t, user, campaign, channel, entry, fields)
            t += int(_exp(rng, 15_000))
        p_share = campaign.p_share if via is None else campaign.p_share * 0.4
        if depth < 4 and rng.random() < p_share:
            t += int(_exp(rng, 20_000))
            share_id = self._ids.share()
            target = self._world.share_targets[channel].pick(rng)
            fields = {"share_id": share_id}
            if via is not None:
                fields["parent_share_id"] = via
            fields["target"] = target
            self._emit("shares", t, user, campaign, channel, entry, fields)
            self._fission(t, campaign, channel, share_id, target, depth)
        p_order = campaign.p_order if via is None else campaign.p_friend_order
        if rng.random() < p_order:
            t += int(_exp(rng, 60_000))
            self._order(t, campaign, channel, user, entry, via)
            while rng.random() < 0.08:  # some buy again: a second item, a forgotten coupon
                t += int(_exp(rng, 300_000))
                self._order(t, campaign, channel, user, entry, via)

    def _fission(self, t: int, campaign: _Campaign, channel: str, share_id: str, target: str, depth: int) -> None:
        rng = self._rng
        # Mostly a few friends open the link. Now and then the sharer (never a friend: promoters
        # start chains, they do not sit in the middle of them) forwards a poster to 80-200
        # friends, of whom about a quarter open it.
        poster = depth == 0 and rng.random() < campaign.p_poster
        friends = int(rng.randint(80, 200) * 0.25) if poster else min(30, int(_exp(rng, 2.5)))
        landing_channel, landing_entry = _landing(channel, target)
        for _ in range(friends):
            friend = _pick_user(rng, self._world, landing_channel)
            visit = t + 1_000 + int(_exp(rng, 180_000))
            self._session(visit, campaign, landing_channel, friend, landing_entry, share_id, depth + 1)

    def _order(self, t: int, campaign: _Campaign, channel: str, user: _User, entry: str, via: str | None) -> None:
        rng = self._rng
        fields: dict[str, object] = {
            "order_id": self._ids.order(),
            "amount_fen": _amount(rng, campaign),
        }
        if rng.random() < 0.9:
            fields["items"] = 1 + min(campaign.max_items - 1, int(_exp(rng, 0.7)))
        r = rng.random()
        if via is not None and r < 0.9:
            fields["share_id"] = via  # attribution through the share link (lost 1 time in 10)
        elif r < 0.05:  # "no share" spelled the other ways the contract allows
            fields["share_id"] = None if r < 0.03 else ""
        self._emit("orders", t, user, campaign, channel, entry, fields)

    def _target(self, campaign: _Campaign, t: int) -> str | None:
        rng = self._rng
        if campaign.target == "sku":
            return f"sku_{100_000 + int(5_000 * rng.random() ** 3)}"
        if campaign.target == "round":  # one lottery round every 6 min 18 s
            return f"round_{(t - self._cfg.start_ms) // 378_000 + 1}"
        if campaign.target == "star":
            return f"star_{int(12 * rng.random() ** 1.5) + 1:02d}"
        if campaign.target == "store":
            return "langsha_flagship"
        return None

    def _emit(
        self,
        kind: str,
        t: int,
        user: _User,
        campaign: _Campaign,
        channel: str,
        entry: str,
        fields: dict[str, object],
    ) -> None:
        rng, cfg = self._rng, self._cfg
        wall = t + min(5_000, int(_exp(rng, 800)))
        if wall >= self._end_wall:
            return  # past the end of the window: the story is cut off there
        r = rng.random()
        ts = t
        if r < cfg.late_rate:
            ts = t - rng.randint(20 * _MINUTE_MS, 90 * _MINUTE_MS)
        elif r < cfg.late_rate + cfg.out_of_order_rate:
            ts = t - rng.randint(5_000, 5 * _MINUTE_MS)
        body: dict[str, object] = {
            "event_id": self._ids.event(),
            "ts": ts,
            "user_id": user.user_id,
            "campaign_id": campaign.campaign_id,
            "channel": channel,
        }
        _add_optional(rng, body, entry, user.tier)
        body.update(fields)
        self.out.append(_Event(kind, wall, user.user_id, _json(body)))


def _add_optional(rng: random.Random, body: dict[str, object], entry: str, tier: int) -> None:
    """entry and city_tier, with the spellings the contract allows (absent, null, 3.0)."""
    r = rng.random()
    if r < 0.01:
        body["entry"] = None
    elif r >= 0.03:
        body["entry"] = entry
    r = rng.random()
    if r < 0.01:
        body["city_tier"] = None
    elif r < 0.015:
        body["city_tier"] = float(tier)  # an integer sent as 5.0 is still an integer
    elif r >= 0.05:
        body["city_tier"] = tier
    if rng.random() < 0.02:
        body["sdk"] = rng.choice(_SDKS)  # unknown fields are ignored


def _generate_events(world: _World, rng: random.Random, ids: _Ids) -> list[_Event]:
    stories = _Stories(world, rng, ids)
    while len(stories.out) < world.cfg.events:
        stories.story()
    return stories.out[: world.cfg.events]


# --------------------------------------------------------------------------------------------
# Messages: batching, keys, partitions


def _key(rng: random.Random, cfg: SimConfig, user_id: str) -> bytes | None:
    if rng.random() < cfg.unkeyed_rate:
        return None
    r = rng.random()
    if r < 0.4:
        return user_id.encode()
    if r < 0.7:
        return f"req-{rng.getrandbits(48):012x}".encode()
    return f"collector-{rng.randrange(16):02d}".encode()


def _pack(cfg: SimConfig, rng: random.Random, events: list[_Event], seq: Iterator[int]) -> list[_Message]:
    """Per topic in wall order: singles, and batches of 2 to `batch_max` events within one minute."""
    messages: list[_Message] = []
    for kind in KINDS:
        evs = sorted((e for e in events if e.kind == kind), key=lambda e: e.wall)
        i = 0
        while i < len(evs):
            j = i + 1
            if rng.random() < cfg.batch_rate:
                size = min(cfg.batch_max, 2 + int(_exp(rng, cfg.batch_mean)))
                while j < len(evs) and j - i < size and evs[j].wall - evs[i].wall <= _BATCH_WINDOW_MS:
                    j += 1
            group = evs[i:j]
            # A collector flushes a batch a moment after its last event arrived.
            wall = group[-1].wall + (rng.randint(0, 200) if len(group) > 1 else 0)
            messages.append(
                _Message(
                    seq=next(seq),
                    kind=kind,
                    wall=wall,
                    partition=int(rng.random() * cfg.partitions),
                    key=_key(rng, cfg, group[0].user_id),
                    parts=[e.data for e in group],
                    real=[True] * len(group),
                    array=len(group) > 1,
                )
            )
            i = j
    return messages


# --------------------------------------------------------------------------------------------
# Malformed messages


def _fresh_body(rng: random.Random, world: _World, ids: _Ids, kind: str, ts: int) -> dict[str, object]:
    """A valid event of `kind` that belongs to no story (the base of a malformed message)."""
    campaign = world.campaigns.pick(rng)
    channel = world.channels.pick(rng)
    user = _pick_user(rng, world, channel)
    body: dict[str, object] = {
        "event_id": ids.event(),
        "ts": ts,
        "user_id": user.user_id,
        "campaign_id": campaign.campaign_id,
        "channel": channel,
        "entry": world.entries[channel].pick(rng),
        "city_tier": user.tier,
    }
    if kind == "clicks":
        body["action"] = campaign.actions.pick(rng)
    elif kind == "shares":
        body["share_id"] = ids.share()
        body["target"] = world.share_targets[channel].pick(rng)
    else:
        body["order_id"] = ids.order()
        body["amount_fen"] = _amount(rng, campaign)
        body["items"] = 1
    return body


# Reasons an array element can have on its own (the others concern the value as a whole).
_ELEMENT_LEVEL: tuple[str, ...] = ("missing_field", "wrong_type", "bad_value", "future", "not_an_object")

_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "clicks": ("event_id", "ts", "user_id", "campaign_id", "channel", "action"),
    "shares": ("event_id", "ts", "user_id", "campaign_id", "channel", "share_id"),
    "orders": ("event_id", "ts", "user_id", "campaign_id", "channel", "order_id", "amount_fen"),
}

# Field -> values of a wrong type (never null: null for a required field is left alone, see truth).
_WRONG_TYPES: Mapping[str, tuple[object, ...]] = {
    "event_id": (12345, ["e1"]),
    "ts": ("1762790400000", 1_762_790_400_000.5, True),
    "user_id": (10086,),
    "campaign_id": (618,),
    "channel": (False, {"name": "wechat"}),
    "entry": (7,),
    "city_tier": ("3", True, 2.5),
}
_WRONG_TYPES_BY_KIND: Mapping[str, Mapping[str, tuple[object, ...]]] = {
    "clicks": {"action": (1,), "target_id": (42,), "share_id": (7,)},
    "shares": {"share_id": (12345,), "parent_share_id": (1,), "target": (["moments"],)},
    "orders": {
        "order_id": (200_000_000_123,),
        "amount_fen": ("9900", 99.5, True),
        "items": ("2", 1.5),
        "share_id": (3,),
    },
}

_BAD_VALUES: Mapping[str, tuple[object, ...]] = {
    "event_id": ("", "e" * 65),
    "user_id": ("", "u" * 65),
    "campaign_id": ("", "双" * 65),
    "channel": ("", "w" * 33),
    "entry": ("x" * 33,),
    "city_tier": (0, 7, 9),
}
_BAD_VALUES_BY_KIND: Mapping[str, Mapping[str, tuple[object, ...]]] = {
    "clicks": {"action": ("", "a" * 33), "target_id": ("t" * 65,), "share_id": ("s" * 65,)},
    "shares": {"share_id": ("", "s" * 65), "parent_share_id": ("p" * 65,), "target": ("m" * 33,)},
    "orders": {
        "order_id": ("", "9" * 65),
        "amount_fen": (-1, 100_000_000_001),
        "items": (0, -3),
        "share_id": ("s" * 65,),
    },
}


def _set_one(
    rng: random.Random,
    body: dict[str, object],
    common: Mapping[str, tuple[object, ...]],
    by_kind: Mapping[str, tuple[object, ...]],
) -> dict[str, object]:
    """Break exactly one field, so that the reason is the one intended whatever the precedence."""
    table = {**common, **by_kind}
    name = rng.choice(sorted(table))
    broken = dict(body)
    broken[name] = rng.choice(table[name])
    return broken


def _malformed_element(rng: random.Random, world: _World, ids: _Ids, reason: str, kind: str, wall: int) -> bytes:
    """The bytes of one bad array element or single value, rejected for `reason`."""
    body = _fresh_body(rng, world, ids, kind, wall - rng.randint(0, 2_000))
    if reason == "missing_field":
        broken = dict(body)
        del broken[rng.choice(_REQUIRED[kind])]
        return _json(broken)
    if reason == "wrong_type":
        return _json(_set_one(rng, body, _WRONG_TYPES, _WRONG_TYPES_BY_KIND[kind]))
    if reason == "bad_value":
        return _json(_set_one(rng, body, _BAD_VALUES, _BAD_VALUES_BY_KIND[kind]))
    if reason == "future":  # a device clock set wrong: more than an hour ahead of the record
        body["ts"] = wall + _HOUR_MS + rng.randint(5 * _MINUTE_MS, 6 * _HOUR_MS)
        return _json(body)
    if reason == "not_an_object":
        variants = (
            b"null",
            b"0",
            b'"ping"',
            _json(_json(body).decode()),  # the event JSON-encoded twice
        )
        return rng.choice(variants)
    raise ValueError(f"not an element-level reason: {reason}")


def _malformed_value(rng: random.Random, world: _World, ids: _Ids, reason: str, kind: str, wall: int) -> bytes:
    """The bytes of a whole message value rejected for `reason`."""
    if reason in _ELEMENT_LEVEL and not (reason == "not_an_object" and rng.random() < 0.5):
        return _malformed_element(rng, world, ids, reason, kind, wall)
    body = _fresh_body(rng, world, ids, kind, wall - rng.randint(0, 2_000))
    raw = _json(body)
    if reason == "invalid_utf8":
        marker = b'"campaign_id":"'
        at = raw.index(marker) + len(marker)
        # Bytes that are never valid UTF-8 here: 0xff, a lead byte before ASCII, a stray
        # continuation byte, a truncated three-byte sequence.
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\x80", b"\xe4\xb8"))
        return raw[:at] + bad + raw[at:]
    if reason == "invalid_json":
        text = raw.decode()
        texts = (
            text[: len(text) - rng.randint(1, len(text) // 2)],  # cut off mid-object
            text.replace('"', "'"),  # single quotes
            text[:-1] + ",}",  # trailing comma
            text + text,  # two objects glued together
            f"event_id={body['event_id']}&user_id={body['user_id']}",  # a form post
        )
        return rng.choice(texts).encode()
    if reason == "not_an_object":
        variants = (b"[]", b"null", b"42", b'"ping"', b"true", b"[" + b"[" + raw + b"]" + b"]")
        return rng.choice(variants)
    if reason == "too_large":
        body["blob"] = "x" * (_MAX_VALUE_BYTES + rng.randint(1, 4_096))
        return _json(body)
    raise ValueError(f"not a malformed reason: {reason}")


def _malformed(
    world: _World,
    rng: random.Random,
    ids: _Ids,
    messages: list[_Message],
    seq: Iterator[int],
) -> list[_Message]:
    """Extra bad messages; some element-level ones go into existing batches instead."""
    cfg = world.cfg
    total = round(cfg.malformed_rate * cfg.events)
    n_large = min(2, total // 100)  # over 1 MiB each: keep them rare
    # Round-robin over the reasons so that every one of them appears once there are seven.
    reasons = ["too_large"] * n_large + [MALFORMED_REASONS[i % len(MALFORMED_REASONS)] for i in range(total - n_large)]
    rng.shuffle(reasons)
    batches = [m for m in messages if m.array]
    start, end = cfg.start_ms, cfg.start_ms + round(cfg.sale_span_s * 1000)
    extra: list[_Message] = []
    kinds = _Choice.of((("clicks", 0.6), ("shares", 0.2), ("orders", 0.2)))
    for reason in reasons:
        if reason in _ELEMENT_LEVEL and batches and rng.random() < 0.3:
            batch = rng.choice(batches)
            element = _malformed_element(rng, world, ids, reason, batch.kind, batch.wall)
            at = rng.randint(0, len(batch.parts))
            batch.parts.insert(at, element)
            batch.real.insert(at, False)
            continue
        kind = kinds.pick(rng)
        wall = rng.randint(start, end - 1)
        value = _malformed_value(rng, world, ids, reason, kind, wall)
        if reason in _ELEMENT_LEVEL and reason != "not_an_object" and rng.random() < 0.15:
            value = b"[" + value + b"]"  # a batch of one
        extra.append(
            _Message(
                seq=next(seq),
                kind=kind,
                wall=wall,
                partition=int(rng.random() * cfg.partitions),
                key=_key(rng, cfg, f"bad-{rng.getrandbits(32):08x}"),
                parts=[value],
                real=[False],
                array=False,
            )
        )
    return extra


# --------------------------------------------------------------------------------------------
# Retries


def _duplicates(cfg: SimConfig, rng: random.Random, messages: list[_Message], seq: Iterator[int]) -> list[_Message]:
    """Exact byte copies of events (now and then a whole batch) re-sent soon after."""
    budget = round(cfg.duplicate_rate * cfg.events)
    candidates = [m for m in messages if any(m.real)]
    end = cfg.start_ms + round(cfg.sale_span_s * 1000)
    copies: list[_Message] = []
    while budget > 0 and candidates:
        original = rng.choice(candidates)
        n_real = sum(original.real)
        if original.array and n_real <= budget and rng.random() < 0.1:
            parts, array = list(original.parts), True  # the collector retried the whole request
            budget -= n_real
        else:
            index = rng.choice([i for i, real in enumerate(original.real) if real])
            parts, array = [original.parts[index]], False  # one client retried one event
            budget -= 1
        partition = original.partition if rng.random() < 0.5 else rng.randrange(cfg.partitions)
        key = original.key if rng.random() < 0.7 else _key(rng, cfg, f"retry-{len(copies)}")
        copies.append(
            _Message(
                seq=next(seq),
                kind=original.kind,
                wall=min(end - 1, original.wall + rng.randint(50, 60_000)),
                partition=partition,
                key=key,
                parts=parts,
                real=[False] * len(parts),
                array=array,
            )
        )
    return copies


# --------------------------------------------------------------------------------------------
# Assembly


def _to_records(cfg: SimConfig, messages: list[_Message]) -> list[Record]:
    span_ms = round(cfg.sale_span_s * 1000)
    last = math.nextafter(cfg.duration_s, 0.0)
    records: list[Record] = []
    for m in sorted(messages, key=lambda m: (m.wall, m.seq)):
        send_at = (m.wall - cfg.start_ms) * cfg.duration_s / span_ms
        records.append(
            Record(
                kind=m.kind,
                partition=m.partition,
                key=m.key,
                value=m.value(),
                timestamp_ms=m.wall,
                send_at_s=min(max(send_at, 0.0), last),
            )
        )
    return records


def _check(cfg: SimConfig) -> None:
    if cfg.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {cfg.scenario!r}; known: {', '.join(SCENARIOS)}, sale-day")
    if cfg.events < 0 or cfg.users < 0:
        raise ValueError("events and users must be >= 0")
    if cfg.partitions < 1:
        raise ValueError("partitions must be >= 1")
    if not cfg.duration_s > 0:
        raise ValueError("duration_s must be > 0")
    if not cfg.sale_span_s >= 60:
        raise ValueError("sale_span_s must be >= 60 (one minute of event time)")
    rates = {
        "duplicate_rate": cfg.duplicate_rate,
        "out_of_order_rate": cfg.out_of_order_rate,
        "late_rate": cfg.late_rate,
        "malformed_rate": cfg.malformed_rate,
        "batch_rate": cfg.batch_rate,
        "unkeyed_rate": cfg.unkeyed_rate,
        "existing_buyer_rate": cfg.existing_buyer_rate,
    }
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {rate}")
    if cfg.late_rate + cfg.out_of_order_rate > 1.0:
        raise ValueError("late_rate + out_of_order_rate must be <= 1")


def generate(cfg: SimConfig) -> Simulation:
    """The records to send and the existing buyers to import; the same config gives the same."""
    _check(cfg)
    rng = random.Random(cfg.seed)
    ids = _Ids(rng)
    seq = itertools.count()
    world = _build_world(cfg, rng, ids)
    events = _generate_events(world, rng, ids)
    messages = _pack(cfg, rng, events, seq)
    extra = _malformed(world, rng, ids, messages, seq)
    copies = _duplicates(cfg, rng, messages, seq)
    return Simulation(
        records=_to_records(cfg, messages + extra + copies),
        existing_buyers=sorted(world.existing),
    )
