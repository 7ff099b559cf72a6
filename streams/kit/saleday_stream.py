"""A labelled sale day as Kafka records (issue 17 item 9): `promo simulate --scenario sale-day`.

streams/kit/saleday.py draws the day as counts per 10 s bucket for every campaign x channel and
metric, with its incidents applied; this turns a slice of it into the click, share and order events
of docs/CONTRACT.md that make exactly those counts, so that the day can go through the broker, the
worker and ClickHouse to a live detector, and its labels can be scored against what it raised.

Per 10 s bucket and campaign x channel: `interactions - shares` clicks and `shares` shares (at most
`interactions`: a share is one) from a
pool of shoppers, `orders` orders whose amounts add up to the bucket's GMV, the first `new_users` of
them by people who never ordered before (each orders once), the rest by existing buyers (imported
first, so never counted as new). Event times are spread over the bucket; a record is sent when its
event happens (`send_at_s` from the slice's start: real speed, so the detector's windows mean what
they mean). Pure and seeded.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from streams.alerts.detector import METRICS, Scope
from streams.kit.saleday import STEP_S, Incident, SaleDay
from streams.kit.simulate import Record, Simulation

_INTERACTIONS, _SHARES, _ORDERS, _GMV, _NEW = (METRICS.index(m) for m in METRICS)
ENTRIES = ("main_entry", "feed", "search", "ad")


def slice_records(day: SaleDay, start: float, end: float, *, partitions: int, seed: int = 0,
                  shoppers: int = 50_000, buyers: int = 5_000) -> Simulation:  # fmt: skip
    """The events of the day's buckets in [start, end) (epoch s of the day's own clock), in send order."""
    rng = random.Random(seed)
    existing = [f"buyer_{seed}_{i:05d}" for i in range(buyers)]
    first = max(0, int((start - day.t0) // STEP_S))
    last = min(day.buckets, int((end - day.t0) // STEP_S))
    leaves = [(i, s) for i, s in enumerate(day.scopes) if s.channel is not None]
    events: list[tuple[float, str, dict[str, Any]]] = []
    newcomer = 0
    for b in range(first, last):
        t0 = day.t0 + b * STEP_S
        for row, scope in leaves:
            counts = day.truth[row, :, b]
            # A share is an interaction: the day draws them apart, so a bucket may hold more shares
            # than interactions (rarely; bot bursts): the events keep interactions, shares capped.
            shares = min(int(counts[_SHARES]), int(counts[_INTERACTIONS]))
            clicks = int(counts[_INTERACTIONS]) - shares
            orders, new = int(counts[_ORDERS]), min(int(counts[_NEW]), int(counts[_ORDERS]))
            base = _base(scope)
            for _ in range(clicks):
                events.append((_at(rng, t0), "clicks", {**base, **_who(rng, shoppers, seed), "action": "view",
                                                        "target_id": f"sku_{rng.randrange(1000)}"}))  # fmt: skip
            for _ in range(shares):
                events.append((_at(rng, t0), "shares", {**base, **_who(rng, shoppers, seed),
                                                        "share_id": f"sh{rng.getrandbits(48):012x}",
                                                        "target": "wechat_friend"}))  # fmt: skip
            for k, amount in enumerate(_split(rng, int(counts[_GMV]), orders)):
                if k < new:
                    newcomer += 1
                    user = f"new_{seed}_{newcomer:07d}"
                else:
                    user = rng.choice(existing)
                events.append((_at(rng, t0), "orders", {**base, "user_id": user, "city_tier": rng.randint(1, 6),
                                                        "order_id": f"{seed}{rng.getrandbits(40):013d}",
                                                        "amount_fen": amount, "items": rng.randint(1, 4)}))  # fmt: skip
    events.sort(key=lambda e: e[0])
    records = []
    for at, kind, doc in events:
        ms = int(at * 1000)
        body = {"event_id": f"{rng.getrandbits(64):016x}", "ts": ms, **doc}
        records.append(Record(kind, rng.randrange(partitions), None, orjson.dumps(body), ms, at - start))
    return Simulation(records=records, existing_buyers=existing)


def labels(incidents: Sequence[Incident], start: float, end: float, shift_s: float = 0.0) -> list[dict[str, Any]]:
    """The incidents that overlap the slice, their times moved by `shift_s` (to the real clock)."""
    out = []
    for incident in incidents:
        if incident.start < end and incident.end > start:
            doc = incident.to_json()
            doc["start_s"] = incident.start + shift_s
            doc["end_s"] = incident.end + shift_s
            out.append(doc)
    return out


def _base(scope: Scope) -> dict[str, Any]:
    entry = ENTRIES[zlib.crc32(scope.label().encode()) % len(ENTRIES)]  # stable across processes, unlike hash()
    return {"campaign_id": scope.campaign_id, "channel": scope.channel, "entry": entry}


def _who(rng: random.Random, shoppers: int, seed: int) -> dict[str, Any]:
    return {"user_id": f"shopper_{seed}_{rng.randrange(shoppers):06d}", "city_tier": rng.randint(1, 6)}


def _at(rng: random.Random, t0: float) -> float:
    return t0 + rng.random() * STEP_S


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`parts` positive amounts (fen) adding up to `total` (at least 1 fen each)."""
    if parts <= 0:
        return []
    total = max(total, parts)
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    edges = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(edges)]
