"""An independent producer with its own ground truth: it imports nothing from `streams`.

It writes to the three input topics the kind of stream a careless upstream sends — exact duplicates
(to other partitions), events out of order, events too late, malformed messages, collector arrays
mixing good and bad elements, keyed and unkeyed messages — and computes the expected
`promo totals --json` rows by brute force from what it sent, straight from docs/CONTRACT.md.

    python independent_stream.py --bootstrap 127.0.0.1:9092 --prefix promo. --partitions 4 \
        --truth truth.json --existing existing.txt [--events 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaProducer

LATENESS_MS = 600_000
HORIZON_MS = 1_800_000
CHANNELS = ["wechat", "mobileqq", "jingxi", "app", "web", "other"]
CAMPAIGNS = ["brand-day", "疯狂6分18秒", "vote🌟", "main"]


Message = tuple[str, int, Any, bytes]


def make_stream(n: int, seed: int, partitions: int, base_ms: int) -> tuple[list[Message], list[str]]:
    """(topic kind, partition, key, value) in send order, and the existing buyers."""
    rnd = random.Random(seed)
    users = [f"user-{i}" for i in range(max(20, n // 10))]
    existing = sorted(rnd.sample(users, len(users) // 3))
    out: list[tuple[str, int, Any, bytes]] = []
    clock = base_ms
    sent_docs: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        clock += rnd.randint(0, 400)
        user = rnd.choice(users)
        doc: dict[str, Any] = {
            "event_id": f"ev-{seed}-{i}",
            "ts": clock - (rnd.randint(0, 240_000) if rnd.random() < 0.15 else 0),
            "user_id": user,
            "campaign_id": rnd.choice(CAMPAIGNS),
            "channel": rnd.choice(CHANNELS),
            "extra_field": "ignored",
        }
        if rnd.random() < 0.5:
            doc["city_tier"] = rnd.randint(1, 6)
        roll = rnd.random()
        if roll < 0.55:
            kind = "clicks"
            doc["action"] = rnd.choice(["view", "click", "vote", "lottery"])
        elif roll < 0.75:
            kind = "shares"
            doc["share_id"] = f"sh-{seed}-{i}"
        else:
            kind = "orders"
            doc["order_id"] = f"ord-{seed}-{i}"
            doc["amount_fen"] = rnd.randint(0, 50_000)
            if rnd.random() < 0.3:
                doc["share_id"] = f"sh-{rnd.randint(0, i)}"
        if rnd.random() < 0.01:
            doc["ts"] = clock - 3_000_000  # far behind: late on any partition that has seen anything recent
        sent_docs.append((kind, doc))
        key = None if rnd.random() < 0.5 else rnd.choice([b"k1", b"k2", user.encode(), b"\x00\xff"])
        partition = rnd.randrange(partitions)
        out.append((kind, partition, key, json.dumps(doc, ensure_ascii=False).encode()))
        if rnd.random() < 0.03:  # a retry: the exact bytes again, maybe elsewhere
            out.append((kind, rnd.randrange(partitions), None, out[-1][3]))
        if rnd.random() < 0.02:
            bad = rnd.choice([
                b"{not json", b"\xff\xfe garbage", b"42", b'"a string"', b"[]", b"null",
                json.dumps({**doc, "event_id": f"bad-{seed}-{i}", "user_id": None}).encode(),
                json.dumps({**doc, "event_id": f"bad-{seed}-{i}", "ts": "yesterday"}).encode(),
                json.dumps({**doc, "event_id": f"bad-{seed}-{i}", "amount_fen": -5, "order_id": "x"}).encode(),
            ])  # fmt: skip
            out.append((kind, rnd.randrange(partitions), None, bad))
        if rnd.random() < 0.02 and len(sent_docs) > 3:  # a collector array: good neighbours and one bad
            kind2, doc2 = rnd.choice(sent_docs[-3:])
            extra = {**doc2, "event_id": f"arr-{seed}-{i}", "user_id": rnd.choice(users)}
            arr = json.dumps([extra, {"event_id": f"arr-bad-{seed}-{i}"}, 7], ensure_ascii=False).encode()
            out.append((kind2, rnd.randrange(partitions), None, arr))
    return out, existing


REQUIRED = {
    "clicks": ("action",),
    "shares": ("share_id",),
    "orders": ("order_id", "amount_fen"),
}


def valid(kind: str, doc: Any) -> bool:
    """Enough of the contract for what this program sends."""
    if not isinstance(doc, dict):
        return False
    for name in ("event_id", "user_id", "campaign_id", "channel", *REQUIRED[kind]):
        if name == "amount_fen":
            if type(doc.get(name)) is not int or doc[name] < 0:
                return False
        elif not isinstance(doc.get(name), str) or not doc[name]:
            return False
    return type(doc.get("ts")) is int


def truth(stream: list[tuple[str, int, Any, bytes]], existing: list[str]) -> list[dict[str, Any]]:
    # Per input partition, in send order: validity and the lateness watermark.
    watermark: dict[tuple[str, int], int] = defaultdict(lambda: -1)
    passed: list[tuple[str, dict[str, Any]]] = []
    for kind, partition, _key, value in stream:
        try:
            parsed = json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        for doc in parsed if isinstance(parsed, list) else [parsed]:
            if not valid(kind, doc):
                continue
            wm = watermark[(kind, partition)]
            if doc["ts"] < wm - LATENESS_MS:
                continue
            watermark[(kind, partition)] = max(wm, doc["ts"])
            passed.append((kind, doc))
    # Dedup: copies are exact, so keeping the first is as good as keeping any.
    accepted = []
    seen: dict[tuple[str, str], int] = {}
    for kind, doc in passed:
        keys = [(doc["user_id"], "e:" + doc["event_id"])]
        if kind == "orders":
            keys.append((doc["user_id"], "o:" + doc["order_id"]))
        if any(k in seen and abs(seen[k] - doc["ts"]) <= HORIZON_MS for k in keys):
            continue
        for k in keys:
            seen[k] = doc["ts"]
        accepted.append((kind, doc))

    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first_touch: dict[tuple[str, str], tuple[int, str, str]] = {}
    first_buy: dict[tuple[str, str], tuple[int, str, str]] = {}
    first_order: dict[str, tuple[int, str, str, str, bool]] = {}
    for kind, d in accepted:
        row = rows[(d["campaign_id"], d["channel"])]
        rank = (d["ts"], d["event_id"], d["channel"])
        if kind == "orders":
            row["orders"] += 1
            row["gmv_fen"] += d["amount_fen"]
            k = (d["user_id"], d["campaign_id"])
            first_buy[k] = min(first_buy.get(k, rank), rank)
            cand = (d["ts"], d["event_id"], d["campaign_id"], d["channel"], bool(d.get("share_id")))
            first_order[d["user_id"]] = min(first_order.get(d["user_id"], cand), cand)
        else:
            row["interactions"] += 1
            row["shares"] += kind == "shares"
            k = (d["user_id"], d["campaign_id"])
            first_touch[k] = min(first_touch.get(k, rank), rank)
    for (_, campaign), (_, _, channel) in first_touch.items():
        rows[(campaign, channel)]["participants"] += 1
    for (_, campaign), (_, _, channel) in first_buy.items():
        rows[(campaign, channel)]["buyers"] += 1
    old = set(existing)
    for user, (_, _, campaign, channel, via_share) in first_order.items():
        if user not in old:
            rows[(campaign, channel)]["new_users"] += 1
            rows[(campaign, channel)]["new_users_via_share"] += via_share
    columns = ["interactions", "participants", "shares", "orders", "gmv_fen", "buyers", "new_users",
               "new_users_via_share"]  # fmt: skip
    return [
        {"campaign_id": c, "channel": ch, **{col: int(rows[(c, ch)][col]) for col in columns}} for c, ch in sorted(rows)
    ]


async def send(bootstrap: str, prefix: str, stream: list[tuple[str, int, Any, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(prefix + kind, value, key=key, partition=p) for kind, p, key, value in stream]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="promo.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-ms", type=int, default=1_762_790_400_000)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--existing", required=True)
    args = parser.parse_args()
    stream, existing = make_stream(args.events, args.seed, args.partitions, args.base_ms)
    asyncio.run(send(args.bootstrap, args.prefix, stream))
    with open(args.truth, "w", encoding="utf-8") as f:
        json.dump(truth(stream, existing), f, ensure_ascii=False, indent=1)
    with open(args.existing, "w", encoding="utf-8") as f:
        f.write("".join(u + "\n" for u in existing))
    print(f"sent {len(stream)} messages")


if __name__ == "__main__":
    main()
