"""The Double 11 simulator: deterministic, well-formed records, and realistic proportions.

Most checks run on one default simulation (20,000 events), generated once per module.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest

from streams.kit.simulate import KINDS, Record, SimConfig, Simulation, generate, midnight_ms
from streams.kit.truth import Truth, compute_truth

CONTRACT_REASONS = (
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "too_large",
    "future",
    "late",
    "duplicate",
)
SOCIAL = ("wechat", "mobileqq", "jingxi")


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return generate(SimConfig())


@pytest.fixture(scope="module")
def truth(sim: Simulation) -> Truth:
    return compute_truth(sim.records, sim.existing_buyers)


def elements(records: list[Record]) -> Iterator[tuple[Record, dict[str, object], bytes]]:
    """(record, parsed element, element bytes) for every element that looks like an event."""
    for record in records:
        if len(record.value) > 1_048_576:
            continue
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        for element in value if isinstance(value, list) else [value]:
            if isinstance(element, dict) and isinstance(element.get("event_id"), str):
                yield record, element, orjson.dumps(element)


REQUIRED_STR = {
    "clicks": ("event_id", "user_id", "campaign_id", "channel", "action"),
    "shares": ("event_id", "user_id", "campaign_id", "channel", "share_id"),
    "orders": ("event_id", "user_id", "campaign_id", "channel", "order_id"),
}


def is_event(kind: str, element: dict[str, object]) -> bool:
    """Well-formed enough for proportions: the required fields present, typed and in range.

    (Malformed elements break exactly one field; the ones missed here are too rare to matter.)
    """
    ts = element.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return False
    amount = element.get("amount_fen")
    if kind == "orders" and (type(amount) is not int or not 0 <= amount <= 10**11):
        return False
    for name in REQUIRED_STR[kind]:
        value = element.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= (32 if name in ("channel", "action") else 64):
            return False
    return True


def events(sim: Simulation) -> list[tuple[Record, dict[str, object]]]:
    """Well-formed elements, one per event_id (copies dropped)."""
    seen: set[object] = set()
    out: list[tuple[Record, dict[str, object]]] = []
    for record, element, _ in elements(sim.records):
        if is_event(record.kind, element) and element["event_id"] not in seen:
            seen.add(element["event_id"])
            out.append((record, element))
    return out


def share(counter: Counter[str], keys: tuple[str, ...]) -> float:
    return sum(counter[k] for k in keys) / sum(counter.values())


# --------------------------------------------------------------------------------------------
# Determinism and configuration


def test_same_seed_same_output() -> None:
    cfg = SimConfig(events=3_000, seed=5)
    assert generate(cfg) == generate(cfg)


def test_different_seed_different_output() -> None:
    assert generate(SimConfig(events=3_000, seed=5)).records != generate(SimConfig(events=3_000, seed=6)).records


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'single12'"):
        generate(SimConfig(scenario="single12"))


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(partitions=0),
        SimConfig(events=-1),
        SimConfig(duration_s=0),
        SimConfig(duplicate_rate=1.5),
        SimConfig(batch_rate=-0.1),
        SimConfig(late_rate=0.6, out_of_order_rate=0.6),
    ],
)
def test_bad_configs_are_refused(cfg: SimConfig) -> None:
    with pytest.raises(ValueError):
        generate(cfg)


def test_no_events_no_records() -> None:
    assert generate(SimConfig(events=0)).records == []


def test_send_order_time_span_and_partitions(sim: Simulation) -> None:
    sends = [r.send_at_s for r in sim.records]
    assert sends == sorted(sends)
    assert sends[0] >= 0
    assert sends[-1] < 60.0
    stamps = [r.timestamp_ms for r in sim.records]
    assert stamps == sorted(stamps)
    assert {r.partition for r in sim.records} == {0, 1, 2, 3}
    assert {r.kind for r in sim.records} == set(KINDS)


def test_custom_duration_partitions_and_users() -> None:
    cfg = SimConfig(events=2_000, duration_s=5.0, partitions=7, users=50, seed=2)
    result = generate(cfg)
    assert all(0 <= r.send_at_s < 5.0 for r in result.records)
    assert {r.partition for r in result.records} == set(range(7))
    users = {e["user_id"] for _, e in events(result) if isinstance(e.get("user_id"), str)}
    assert len(users) <= 50


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_existing_buyer_rate_extremes(rate: float) -> None:
    cfg = SimConfig(events=800, existing_buyer_rate=rate)
    assert len(generate(cfg).existing_buyers) == (cfg.events // 8 if rate else 0)


def test_send_time_follows_the_record_timestamp(sim: Simulation) -> None:
    cfg = SimConfig()
    for r in sim.records[:: max(1, len(sim.records) // 200)]:
        wall = cfg.start_ms + r.send_at_s * cfg.sale_span_s * 1000 / cfg.duration_s
        assert abs(wall - r.timestamp_ms) <= 1


# --------------------------------------------------------------------------------------------
# The Double 11 curve


def test_surge_at_midnight_and_fall_off_after_the_first_hour(sim: Simulation) -> None:
    midnight = midnight_ms(SimConfig())
    per_10_min = Counter((int(str(e["ts"])) - midnight) // 600_000 for _, e in events(sim))
    calm = (per_10_min[-3] + per_10_min[-2]) / 2  # 30 to 10 minutes before 00:00
    surge = per_10_min[0]  # 00:00 to 00:10
    after_first_hour = (per_10_min[7] + per_10_min[8]) / 2  # 01:10 to 01:30
    assert surge > 5 * calm
    assert after_first_hour < surge / 2
    assert max(per_10_min, key=lambda k: per_10_min[k]) in (0, 1)


def test_midnight_is_a_quarter_into_the_sale_span() -> None:
    cfg = SimConfig()
    assert midnight_ms(cfg) == cfg.start_ms + 1_800_000


# --------------------------------------------------------------------------------------------
# Proportions


def test_kinds_and_campaigns(sim: Simulation) -> None:
    kinds = Counter(r.kind for r, _ in events(sim))
    assert 0.02 < kinds["orders"] / kinds.total() < 0.15  # interactions run 1-2 orders of magnitude above
    assert 0.03 < kinds["shares"] / kinds.total() < 0.2
    campaigns = Counter(str(e["campaign_id"]) for _, e in events(sim))
    assert {"双11主会场", "crazy618_lottery", "starwars618_vote", "langsha_brand_day"} <= set(campaigns)
    assert len(campaigns) >= 6
    assert campaigns.most_common(1)[0][0] == "双11主会场"


def test_campaign_actions(sim: Simulation) -> None:
    actions: defaultdict[str, set[object]] = defaultdict(set)
    targets: defaultdict[str, set[object]] = defaultdict(set)
    for record, e in events(sim):
        if record.kind == "clicks":
            actions[str(e["campaign_id"])].add(e.get("action"))
            targets[str(e["campaign_id"])].add(e.get("target_id"))
    assert actions["crazy618_lottery"] == {"lottery"}
    assert actions["starwars618_vote"] == {"vote"}
    stars = {t for t in targets["starwars618_vote"] if isinstance(t, str) and len(t) <= 64}  # not the broken
    assert len(stars) > 5 and all(t.startswith("star_") for t in stars)
    assert actions["langsha_brand_day"] == {"reserve", "coupon", "view"}


def test_channels(sim: Simulation) -> None:
    channels = Counter(str(e["channel"]) for _, e in events(sim))
    assert {"wechat", "mobileqq", "jingxi", "app", "web", "other"} <= set(channels)
    assert share(channels, SOCIAL) > 0.6
    assert channels["app"] > channels["web"] > channels["other"]
    assert share(channels, ("other",)) < 0.05


def test_city_tiers_skew_to_3_6_on_jingxi_and_mobileqq(sim: Simulation) -> None:
    # ">70% of Jingxi users are in tier 3-6 cities": counted over users, not events.
    tiers: defaultdict[str, dict[object, int]] = defaultdict(dict)
    for _, e in events(sim):
        tier = e.get("city_tier")
        if type(tier) is int and 1 <= tier <= 6:
            tiers[str(e["channel"])][e["user_id"]] = tier
    for channel in ("jingxi", "mobileqq"):
        assert sum(t >= 3 for t in tiers[channel].values()) / len(tiers[channel]) > 0.7
    assert sum(t >= 3 for t in tiers["app"].values()) / len(tiers["app"]) < 0.6


def test_entries(sim: Simulation) -> None:
    entries = Counter(e.get("entry") for _, e in events(sim))
    assert {"main_entry", "wallet", "moments", "group", "ad", "mini_program", "search"} <= set(entries)


def test_amounts_in_fen_with_a_long_tail(sim: Simulation) -> None:
    amounts = [e["amount_fen"] for r, e in events(sim) if r.kind == "orders" and type(e.get("amount_fen")) is int]
    values = [int(str(a)) for a in amounts]
    assert min(values) >= 990
    assert max(values) <= 2_000_000
    median = statistics.median(values)
    assert 2_000 < median < 30_000
    assert max(values) > 10 * median


def test_share_chains(sim: Simulation) -> None:
    shares = {e["share_id"] for r, e in events(sim) if r.kind == "shares"}
    parents = [e.get("parent_share_id") for r, e in events(sim) if r.kind == "shares"]
    visits = [e["share_id"] for r, e in events(sim) if r.kind == "clicks" and e.get("share_id")]
    orders_via = [e["share_id"] for r, e in events(sim) if r.kind == "orders" and e.get("share_id")]
    assert sum(p in shares for p in parents) > 20  # re-shares
    assert sum(v in shares for v in visits) > 10 * len(orders_via) / 2  # friends visit
    assert sum(o in shares for o in orders_via) > 20  # and some order through the link


def test_buyers_existing_new_and_repeat(sim: Simulation, truth: Truth) -> None:
    population = SimConfig().events // 8
    assert 0.5 < len(sim.existing_buyers) / population < 0.7
    assert sim.existing_buyers == sorted(set(sim.existing_buyers))
    campaigns_by_user: defaultdict[object, set[object]] = defaultdict(set)
    orders_by_user: Counter[object] = Counter()
    for record, e in events(sim):
        if record.kind == "orders":
            campaigns_by_user[e["user_id"]].add(e["campaign_id"])
            orders_by_user[e["user_id"]] += 1
    assert sum(len(c) > 1 for c in campaigns_by_user.values()) > 10
    assert sum(n > 1 for n in orders_by_user.values()) > 50
    existing = set(sim.existing_buyers)
    assert existing & set(orders_by_user)  # existing buyers order too
    assert set(orders_by_user) - existing  # and new ones
    new_users: Counter[str] = Counter()
    for row in truth.totals:
        new_users[str(row["channel"])] += int(str(row["new_users"]))
    assert share(new_users, SOCIAL) > 0.5  # new users come mostly from WeChat, QQ and Jingxi
    assert sum(int(str(row["new_users_via_share"])) for row in truth.totals) > 0


def test_batches_and_keys(sim: Simulation) -> None:
    batches = [r for r in sim.records if r.value.startswith(b"[") and r.value != b"[]"]
    assert 0.15 < len(batches) / len(sim.records) < 0.25
    sizes = [len(orjson.loads(r.value)) for r in batches if len(r.value) < 1_048_576]
    assert min(sizes) >= 1 and max(sizes) <= 62  # 2-60 events, plus a slipped-in bad element or two
    unkeyed = sum(r.key is None for r in sim.records)
    assert 0.45 < unkeyed / len(sim.records) < 0.55
    users = {str(e["user_id"]).encode() for _, e in events(sim)}
    keys = {r.key for r in sim.records if r.key is not None}
    assert keys & users and keys - users  # some keys are user ids, many are not


# --------------------------------------------------------------------------------------------
# Ids, copies and the rejections


def test_duplicates_are_exact_byte_copies(sim: Simulation) -> None:
    copies: defaultdict[object, set[bytes]] = defaultdict(set)
    count: Counter[object] = Counter()
    for record, element, data in elements(sim.records):
        if not is_event(record.kind, element):
            continue  # a broken event_id ("" or 65 characters) is shared by many broken elements
        copies[element["event_id"]].add(data)
        count[element["event_id"]] += 1
    assert all(len(v) == 1 for v in copies.values())  # one id, one content: ids are unique
    repeated = sum(n - 1 for n in count.values())
    assert 0.015 * 20_000 < repeated < 0.035 * 20_000
    # some copies went to another partition
    where: defaultdict[bytes, set[tuple[str, int]]] = defaultdict(set)
    for record, _, data in elements(sim.records):
        where[data].add((record.kind, record.partition))
    assert sum(len(p) > 1 for p in where.values()) > 50


def test_order_ids_are_unique_per_order(sim: Simulation) -> None:
    owners: defaultdict[object, set[object]] = defaultdict(set)
    for record, e in events(sim):
        if record.kind == "orders" and "order_id" in e:
            owners[e["order_id"]].add(e["event_id"])
    assert owners and all(len(ids) == 1 for ids in owners.values())


def test_every_rejection_reason_appears(truth: Truth) -> None:
    assert set(CONTRACT_REASONS) == set(truth.rejected)
    assert 1 <= truth.rejected["too_large"] <= 2
    assert 10 <= truth.rejected["late"] <= 0.005 * 20_000 * 2  # out-of-order events are not late
    assert truth.rejected["duplicate"] >= 0.015 * 20_000


def test_every_event_is_accepted_unless_made_late(truth: Truth) -> None:
    assert 20_000 - truth.rejected["late"] <= truth.accepted <= 20_000


def test_too_large_values_are_rare_and_just_over_the_limit(sim: Simulation) -> None:
    large = [len(r.value) for r in sim.records if len(r.value) > 1_048_576]
    assert 1 <= len(large) <= 2
    assert all(size < 1_048_576 + 8_192 for size in large)


def test_future_events_are_over_an_hour_ahead_of_their_record(sim: Simulation) -> None:
    ahead = [int(str(e["ts"])) - r.timestamp_ms for r, e in events(sim) if int(str(e["ts"])) > r.timestamp_ms]
    assert ahead
    assert all(a > 3_600_000 or a < 60_000 for a in ahead)


def test_normal_events_are_close_to_their_record_timestamp(sim: Simulation) -> None:
    behind = sorted(r.timestamp_ms - int(str(e["ts"])) for r, e in events(sim))
    assert behind[len(behind) // 2] < 30_000  # the median event is sent within seconds


def test_no_accidental_lateness_without_late_events() -> None:
    cfg = SimConfig(events=5_000, late_rate=0.0, seed=4)
    result = generate(cfg)
    outcome = compute_truth(result.records, result.existing_buyers)
    assert "late" not in outcome.rejected
    assert outcome.accepted == cfg.events


def test_clean_config_gives_a_clean_stream() -> None:
    cfg = replace(SimConfig(events=3_000), duplicate_rate=0, out_of_order_rate=0, late_rate=0, malformed_rate=0)
    result = generate(cfg)
    outcome = compute_truth(result.records, result.existing_buyers)
    assert outcome.rejected == {}
    assert outcome.accepted == 3_000


def test_the_618_scenario_has_its_own_main_venue_and_more_of_the_618_games() -> None:
    def campaign_share(scenario: str) -> Counter[str]:
        sim = generate(SimConfig(scenario=scenario, events=6000, seed=3, malformed_rate=0.0))
        counts: Counter[str] = Counter()
        for record in sim.records:
            for doc in _docs(record):
                counts[doc["campaign_id"]] += 1
        return counts

    six18, eleven = campaign_share("618"), campaign_share("double11")
    assert "618主会场" in six18 and "双11主会场" not in six18 and "双11主会场" in eleven
    games = ("starwars618_vote", "crazy618_lottery")
    assert sum(six18[g] for g in games) / sum(six18.values()) > sum(eleven[g] for g in games) / sum(eleven.values())


def _docs(record: Record) -> list[dict[str, object]]:
    try:
        value = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return []
    items = value if isinstance(value, list) else [value]
    return [d for d in items if isinstance(d, dict) and isinstance(d.get("campaign_id"), str)]
