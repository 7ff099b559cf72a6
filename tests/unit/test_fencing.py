"""The rule that fences a zombie stage-2 owner out of the deltas log (streams/sink/markers.py), and the
wire and ClickHouse-column forms it travels in."""

from __future__ import annotations

import pytest

from streams.contract.facts import Deltas
from streams.contract.wire import decode_audit, decode_delta_rows, encode_deltas, encode_fence
from streams.kit.audit import Ledger
from streams.sink.clickhouse import GENERATION_MARK, INSERT_COLUMNS, fact_insert_columns
from streams.sink.markers import Checkpoint, DeltaGate, Verdict


def test_a_zombie_batch_after_the_new_owners_fence_is_skipped_whatever_it_covers() -> None:
    gate = DeltaGate()
    assert gate.judge(3, 10, 1, False) is Verdict.WRITE  # owner in generation 1
    assert gate.judge(3, 20, 1, False) is Verdict.WRITE
    assert gate.judge(3, -1, 2, True) is Verdict.FENCE  # the partition moved: generation 2 fences it
    assert gate.judge(3, 30, 1, False) is Verdict.FENCED  # the old owner wakes up and sends
    assert gate.judge(3, 25, 2, False) is Verdict.WRITE  # the new owner goes on from 20
    assert gate.judge(3, 40, 1, False) is Verdict.FENCED
    assert gate.judge(3, 25, 2, False) is Verdict.REDELIVERY
    assert (gate.generations, gate.written) == ({3: 2}, {3: 25})


def test_a_zombie_fence_written_late_does_not_take_the_partition_back() -> None:
    gate = DeltaGate()
    gate.judge(0, -1, 5, True)
    gate.judge(0, 8, 5, False)
    assert gate.judge(0, -1, 4, True) is Verdict.FENCED
    assert gate.judge(0, 9, 4, False) is Verdict.FENCED
    assert gate.checkpoint(0, 99) == Checkpoint(99, 5, 8)


def test_partitions_are_fenced_independently() -> None:
    gate = DeltaGate()
    gate.judge(0, -1, 7, True)
    assert gate.judge(1, 5, 3, False) is Verdict.WRITE
    assert gate.judge(0, 5, 3, False) is Verdict.FENCED


def test_raised_since_names_only_the_partitions_whose_generation_rose() -> None:
    before = DeltaGate({0: 2, 1: 2}, {0: 10, 1: 10})
    after = before.copy()
    after.judge(0, 12, 2, False)
    after.judge(1, -1, 3, True)
    after.judge(2, 4, 1, False)
    assert after.raised_since(before) == {1: 3, 2: 1}
    assert before.generations == {0: 2, 1: 2}  # the copy is a copy


def test_a_gate_started_at_a_checkpoint_goes_on_as_the_full_replay_would() -> None:
    log = [(-1, 1, True), (4, 1, False), (9, 1, False), (-1, 2, True), (12, 1, False), (15, 2, False)]
    full = DeltaGate()
    for to, gen, fence in log:
        full.judge(0, to, gen, fence)
    head = DeltaGate()
    for to, gen, fence in log[:3]:
        head.judge(0, to, gen, fence)
    resumed = DeltaGate.starting_at(0, head.checkpoint(0, 2))
    for to, gen, fence in log[3:]:
        resumed.judge(0, to, gen, fence)
    assert (resumed.generations, resumed.written) == (full.generations, full.written) == ({0: 2}, {0: 15})


@pytest.mark.parametrize("value", [None, [1, 2], [1, 2, "3"], "1,2,3", [1, 2, 3, 4]])
def test_a_malformed_stored_checkpoint_is_none(value: object) -> None:
    assert Checkpoint.from_list(value) is None


def test_checkpoint_round_trips() -> None:
    assert Checkpoint.from_list(Checkpoint(7, 2, 40).to_list()) == Checkpoint(7, 2, 40)


def test_wire_carries_generation_and_fence_and_old_messages_read_as_generation_0() -> None:
    rows = decode_delta_rows(encode_deltas(2, 40, Deltas(), 0, 0, None, 6))
    assert (rows.partition, rows.to_offset, rows.generation, rows.fence) == (2, 40, 6, False)
    fence = decode_delta_rows(encode_fence(2, 7))
    assert (fence.partition, fence.to_offset, fence.generation, fence.fence, fence.facts) == (2, -1, 7, True, [])
    old = b'{"v":1,"p":1,"to":5,"facts":[],"rej":[],"ets":0,"ing":0}'
    assert (decode_delta_rows(old).generation, decode_delta_rows(old).fence) == (0, False)
    assert decode_audit(encode_fence(2, 7)) == (2, -1, [], 7, True)


def test_the_audit_ledger_counts_as_the_sink_does_and_skips_the_zombie() -> None:
    ledger = Ledger()
    row = ["order", "u1", "o1", "e1", "c", "wechat", 1]
    assert ledger.add(0, 5, [row], 1)
    assert not ledger.add(0, -1, [], 2, True)
    assert not ledger.add(0, 9, [row], 1)  # a zombie's batch would count the order twice
    assert not ledger.add(0, 5, [row], 2)
    assert (ledger.fenced, ledger.skipped, sum(ledger.net.values())) == (1, 1, 1)


def test_generation_marks_go_in_the_same_insert_as_the_offset_markers() -> None:
    columns = dict(zip(INSERT_COLUMNS, fact_insert_columns([], [], {1: 30}, {1: 4, 2: 5}), strict=True))
    marks = list(zip(columns["src_partition"], columns["reason"], columns["batch_to"], strict=True))
    assert marks == [(1, "", 30), (1, GENERATION_MARK, 4), (2, GENERATION_MARK, 5)]
