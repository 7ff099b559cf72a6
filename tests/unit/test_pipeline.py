"""Stage 2's replay detection and zombie fencing, fed routed messages directly (no I/O)."""

from __future__ import annotations

from streams.config import Settings
from streams.events import Event, Kind
from streams.pipeline import PartitionOutput, RoutedPartition
from streams.wire import encode_routed, event_item

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
    partition = RoutedPartition(0, Settings())
    assert interactions(partition, [message(1, 1, 2, 3), message(2, 2, 3, 4)]) == 4


def test_a_zombie_owner_cannot_hide_the_new_owners_items() -> None:
    """New owner (gen 2) re-sends from 3; the old one (gen 1), not yet told, sends 8 in between.
    Taking 8 from the zombie would make the new owner's 7 look like a replay: lost."""
    partition = RoutedPartition(0, Settings())
    log = [message(1, 1, 2, 3, 4, 5), message(2, 3, 4, 5, 6), message(1, 8), message(2, 7, 8), message(2, 9)]
    assert interactions(partition, log) == 9


def test_fencing_is_part_of_the_fold_so_recovery_decides_the_same() -> None:
    log = [message(1, 1, 2), message(2, 1, 2, 3), message(1, 4), message(2, 4, 5)]
    first, second = RoutedPartition(0, Settings()), RoutedPartition(0, Settings())
    assert interactions(first, log) == interactions(second, log) == 5
    assert first.src_seen == second.src_seen == {SRC: (2, 5, 0)}
