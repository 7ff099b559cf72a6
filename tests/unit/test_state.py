"""Snapshots of stage-2 state: exact round trips, and recovery from a snapshot equals a full replay."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streams.aggregate.fold import PartitionOutput, RoutedPartition
from streams.aggregate.state import Snapshot, UserCache, decode_user, encode_user, snapshot_mismatch
from streams.aggregate.user import UserState, apply_event, mark_existing
from streams.config import Settings
from streams.contract.events import Event, Kind
from streams.contract.facts import Deltas
from streams.contract.wire import encode_existing, encode_routed, event_item

T0 = 1_762_790_400_000


def test_user_state_round_trips() -> None:
    state = UserState()
    out = Deltas()
    apply_event(state, Event(Kind.CLICK, "e1", T0, "u", "双11", "wechat", "moments", 3, action="v"), out,
                horizon_ms=1_800_000)  # fmt: skip
    apply_event(state, Event(Kind.ORDER, "e2", T0 + 5, "u", "c2", "jingxi", order_id="o", amount_fen=9,
                             share_id="s"), out, horizon_ms=1_800_000)  # fmt: skip
    mark_existing(state, out)
    assert decode_user(encode_user(state)) == state


def log() -> list[bytes]:
    messages = [encode_existing(["u3"])]
    for batch in range(6):
        items = []
        for i in range(5):
            kind = Kind.ORDER if i % 3 == 0 else Kind.CLICK
            ts = T0 + (7 - batch) * 1000 + i  # later batches carry earlier events: credits move
            ev = Event(kind, f"e{batch}-{i}", ts, f"u{i % 4}", "c", ["wechat", "app"][i % 2],
                       order_id=f"o{batch}-{i}", amount_fen=5, action="v")  # fmt: skip
            items.append(event_item("promo.clicks:0", batch * 10 + i, 0, ev))
        messages.append(encode_routed(items, T0, 1))
    return messages


def fold(partition: RoutedPartition, messages: list[bytes], start: int = 0) -> Deltas:
    total = Deltas()
    for offset in range(start, len(messages)):
        out = PartitionOutput()
        partition.apply(offset, messages[offset], out)
        total.merge(out.deltas)
    return total


def test_recovery_from_a_snapshot_equals_a_full_replay(tmp_path: Path) -> None:
    messages = log()
    full = RoutedPartition(0, Settings().stages)
    expected = fold(full, messages).totals()

    first = RoutedPartition(0, Settings().stages)
    emitted = fold(first, messages[:4])
    snapshot = Snapshot.open(tmp_path, 0)
    assert snapshot is not None
    snapshot.save(first.next_offset, first.src_seen, first.users.memory, first.users.dirty, log_identity=42)
    snapshot.close()

    reopened = Snapshot.open(tmp_path, 0)
    assert reopened is not None
    meta = reopened.meta()
    assert (meta.next_offset, meta.log_identity) == (4, 42) and meta.src_seen == first.src_seen
    assert reopened.users() == first.users.memory

    # Consumption resumes at offset 2 (the committed offset), behind the snapshot at 4: folding
    # 2 and 3 again must change nothing, and their output is muted (emitted before the crash).
    # Users are read back from the snapshot lazily, as they come.
    second = RoutedPartition(0, Settings().stages, emitted_to=3)
    second.users = UserCache(reopened, capacity=2)
    second.src_seen, second.next_offset = meta.src_seen, meta.next_offset
    emitted.merge(fold(second, messages, start=2))
    assert emitted.totals() == expected
    assert {u: second.users.get(u) for u in full.users.memory} == full.users.memory
    reopened.close()


def test_a_locked_snapshot_is_skipped_not_fatal(tmp_path: Path) -> None:
    held = Snapshot.open(tmp_path, 1)
    assert held is not None
    assert Snapshot.open(tmp_path, 1) is None  # the caller then replays from offset 0
    held.close()


# 40 saves of 2,000 users, then the writer dies without closing the database.
KILLED_WRITER = """
    import os, sys
    from pathlib import Path
    from streams.aggregate.user import UserState
    from streams.aggregate.state import Snapshot

    snapshot = Snapshot.open(Path(sys.argv[1]), 0)
    for k in range(1, 41):
        users = {f"k{k}-{n}": UserState(max_ts=k, event_ids={f"e{k}-{n}-{i}": k for i in range(20)})
                 for n in range(2000)}
        users["shared"] = UserState(max_ts=k)
        snapshot.save(k, {"clicks:0": (0, k, 0)}, users, users, log_identity=7)
    os._exit(0)  # no close, no flush: as a SIGKILL leaves it
"""


def test_a_killed_writer_leaves_the_state_after_its_last_save(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    snapshot = Snapshot.open(tmp_path, 0)
    assert snapshot is not None
    meta = snapshot.meta()
    users = snapshot.users()
    snapshot.close()
    # RocksDB's write-ahead log keeps every save past a process's death (not past a power cut),
    # each save whole: the bookkeeping and the users of all 40 saves, none half-written. Without
    # the log (tried: a third cheaper a save) the saves since the last memtable flush were lost,
    # 17 of 40 here, and a quiet partition could go hours without a flush: a long replay.
    assert meta.next_offset == 40 and meta.src_seen == {"clicks:0": (0, 40, 0)}
    assert users["shared"].max_ts == 40
    assert {int(u[1:].split("-")[0]) for u in users if u != "shared"} == set(range(1, 41))
    assert len(users) == 2000 * 40 + 1


@pytest.mark.parametrize(
    ("stored", "now", "why"),
    [
        ({"first": [0, 5, 9], "last": [41, 8, 3]}, {"first": (0, 5, 9), "last": (41, 8, 3)}, None),
        # the same first bytes (a users import) at another time: another log
        ({"first": [0, 5, 9], "last": [41, 8, 3]}, {"first": (0, 6, 9), "last": (41, 8, 3)}, "differs"),
        # the same first record, but the log goes elsewhere after it
        ({"first": [0, 5, 9], "last": [41, 8, 3]}, {"first": (0, 5, 9), "last": (41, 8, 4)}, "differs"),
        ({"first": [0, 5, 9], "last": [41, 8, 3]}, {"first": (0, 5, 9), "last": None}, "no record at offset 41"),
        ({"first": [0, 5, 9], "last": [41, 8, 3]}, {"first": None, "last": None}, "no record at offset 0"),
        ({}, {"first": (0, 5, 9), "last": (41, 8, 3)}, "older version"),  # a crc-only snapshot of before
    ],
)
def test_a_snapshot_belongs_to_the_log_holding_its_marks(
    stored: dict[str, list[int]], now: dict[str, tuple[int, int, int] | None], why: str | None
) -> None:
    result = snapshot_mismatch(stored, now)
    assert result is None if why is None else (result is not None and why in result)
