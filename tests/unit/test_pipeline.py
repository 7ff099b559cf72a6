"""Stage 2's replay detection and zombie fencing, fed routed messages directly (no I/O)."""

from __future__ import annotations

from streams.aggregate.fold import PartitionOutput, RoutedPartition
from streams.config import Settings
from streams.contract.events import Event, Kind
from streams.contract.wire import encode_routed, event_item

T0 = 1_762_790_400_000
SRC = "promo.clicks:0"


def message(generation: int, *offsets: int) -> bytes:
    items = [event_item(SRC, o, 0, Event(Kind.CLICK, f"e{o}", T0 + o, f"u{o}", "c", "wechat", action="v"))
             for o in offsets]  # fmt: skip
    return encode_routed(items, T0, generation)


def interactions(partition: RoutedPartition, messages: list[bytes]) -> int:
    total = 0
    for offset, value in enumerate(messages):
        out = PartitionOutput()
        partition.apply(offset, value, out)
        total += sum(row[0] for row in out.deltas.facts.values())
    return total


def test_replays_after_a_restart_are_dropped() -> None:
    partition = RoutedPartition(0, Settings().stages)
    assert interactions(partition, [message(1, 1, 2, 3), message(2, 2, 3, 4)]) == 4


def test_a_zombie_owner_cannot_hide_the_new_owners_items() -> None:
    """New owner (gen 2) re-sends from 3; the old one (gen 1), not yet told, sends 8 in between.
    Taking 8 from the zombie would make the new owner's 7 look like a replay: lost."""
    partition = RoutedPartition(0, Settings().stages)
    log = [message(1, 1, 2, 3, 4, 5), message(2, 3, 4, 5, 6), message(1, 8), message(2, 7, 8), message(2, 9)]
    assert interactions(partition, log) == 9


def test_fencing_is_part_of_the_fold_so_recovery_decides_the_same() -> None:
    log = [message(1, 1, 2), message(2, 1, 2, 3), message(1, 4), message(2, 4, 5)]
    first, second = RoutedPartition(0, Settings().stages), RoutedPartition(0, Settings().stages)
    assert interactions(first, log) == interactions(second, log) == 5
    assert first.src_seen == second.src_seen == {SRC: (2, 5, 0)}


def test_a_copy_from_a_lagging_partition_is_still_a_duplicate() -> None:
    """Regression (found by the full chaos run): ids were pruned relative to the user's newest event,
    so a copy from an input partition lagging an hour behind was taken for a new event."""
    settings = Settings(partitions=1)  # three input partitions: clicks:0, shares:0, orders:0
    partition = RoutedPartition(0, settings.stages)

    def click(src: str, eid: str, ts: int) -> list[object]:
        return event_item(src, int(eid.split("-")[1]), 0, Event(Kind.CLICK, eid, ts, "u", "c", "app", action="v"))

    lagging = {"promo.clicks:0": T0, "promo.shares:0": T0, "promo.orders:0": T0}
    log = [encode_routed([click("promo.clicks:0", "e-0", T0)], T0, 1, lagging)]
    ahead = [click("promo.shares:0", f"e-{i}", T0 + 3_600_000 * 3 + i) for i in range(1, 100)]
    log.append(encode_routed(ahead, T0, 1, {**lagging, "promo.shares:0": T0 + 3_600_000 * 3}))
    # The same event again, from the orders partition whose watermark is still at T0: not late there.
    log.append(encode_routed([click("promo.orders:0", "e-0", T0)], T0, 1, lagging))
    assert interactions(partition, log) == 100  # e-0 once, e-1..e-99


def test_ids_are_forgotten_once_every_input_partition_has_moved_on() -> None:
    settings = Settings(partitions=1)
    partition = RoutedPartition(0, settings.stages)
    later = T0 + 3 * 3_600_000
    items = [event_item("promo.clicks:0", i, 0, Event(Kind.CLICK, f"e{i}", T0 + i, "u", "c", "app", action="v"))
             for i in range(100)]  # fmt: skip
    moved = {"promo.clicks:0": later, "promo.shares:0": later, "promo.orders:0": later}
    after = [event_item("promo.clicks:0", 100 + i, 0, Event(Kind.CLICK, f"x{i}", later, "u", "c", "app", action="v"))
             for i in range(32)]  # fmt: skip  # pruning runs every 32nd id, not on every event
    interactions(partition, [encode_routed(items, T0, 1, moved), encode_routed(after, T0, 1, moved)])
    user = partition.users.get("u")
    assert user is not None and len(user.event_ids) < 100  # bounded once nothing old can arrive


def test_a_copy_in_the_same_batch_as_the_watermarks_that_pass_it_is_still_a_duplicate() -> None:
    """Regression: a routed message carries the watermarks of the END of its stage-1 batch. A batch
    spanning hours of event time (a backlog read at full speed) holds a copy that passed its gate
    early, when the watermark was low, next to events hours later. Hearing the watermarks before
    the items pruned the original's id just before the copy was compared with it: counted twice."""
    settings = Settings(partitions=1)
    partition = RoutedPartition(0, settings.stages)
    start = {"promo.clicks:0": T0, "promo.shares:0": T0, "promo.orders:0": T0}

    def click(src: str, offset: int, eid: str, ts: int) -> list[object]:
        return event_item(src, offset, 0, Event(Kind.CLICK, eid, ts, "u", "c", "app", action="v"))

    first = [click("promo.clicks:0", i, f"e{i}", T0 + i) for i in range(100)]
    later = T0 + 3 * 3_600_000
    batch = [click("promo.clicks:0", 100 + i, f"late{i}", later + i) for i in range(10)]
    batch.append(click("promo.shares:0", 0, "e0", T0))  # the copy: passed its gate at watermark T0
    end_of_batch = {src: later for src in start}
    log = [encode_routed(first, T0, 1, start), encode_routed(batch, T0, 1, end_of_batch)]
    assert interactions(partition, log) == 110  # e0..e99 and late0..late9; the copy of e0 is not counted


def test_rejections_and_duplicates_count_in_the_minute_they_arrived() -> None:
    """A late event from an hour ago, an unreadable message and a duplicate, all arriving at 00:42:
    the rejection cells are at 00:42 (where the war room looks now), not at their event time."""
    from streams.ingest.stage import Ingest, IngestOutput

    settings = Settings(partitions=1)
    ingest, out = Ingest(settings.stages), IngestOutput()
    clicks = settings.topic("clicks")
    arrival = T0 + 42 * 60_000 + 5_000
    fresh = b'{"event_id":"e1","ts":%d,"user_id":"u1","campaign_id":"c","channel":"wechat","action":"v"}'
    ingest.process(clicks, 0, 0, arrival, fresh % (arrival - 1_000), out)
    ingest.process(clicks, 0, 1, arrival, fresh.replace(b"e1", b"e2") % (arrival - 3_600_000), out)  # late
    ingest.process(clicks, 0, 2, arrival, b"{not json", out)
    ingest.process(clicks, 0, 3, arrival, fresh % (arrival - 1_000), out)  # the same event_id again
    partition = RoutedPartition(0, settings.stages)
    result = PartitionOutput()
    for offset, (_, value) in enumerate(out.messages()):
        partition.apply(offset, value, result)
    minutes = {(key.reason, key.minute_ms) for key in result.deltas.rejections}
    at = arrival - arrival % 60_000
    assert minutes == {("late", at), ("invalid_json", at), ("duplicate", at)}, minutes
