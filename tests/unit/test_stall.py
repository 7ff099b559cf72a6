"""The stall rules (streams/worker/stall.py) on tables: input waiting and no work for `after_s` is a stall, a
quiet stream is not, work or an empty backlog clears it, and each change is reported once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from streams.config import load_settings
from streams.errors import ConfigError
from streams.lab.faults import stages_to_stall
from streams.worker.app import _lag
from streams.worker.stall import StallWatch

AFTER = 30.0
Step = tuple[float, Mapping[str, int | None], int]  # now, lag per partition, work count so far


def run(steps: Sequence[Step]) -> tuple[str, list[tuple[float, bool]]]:
    """Feed one stage; per step "S" (stalled) or "." (not), and the changes as (when, stalled)."""
    watch: StallWatch[str] = StallWatch(AFTER)
    states, changes = "", []
    for now, lags, processed in steps:
        change = watch.observe("aggregate", lags, processed, now)
        states += "S" if watch.stalled() else "."
        if change is not None:
            changes.append((now, change.stalled))
    return states, changes


W = {"p0": 5}  # input waiting on one partition
Q = {"p0": 0}  # caught up / quiet


@pytest.mark.parametrize(
    ("steps", "states", "changes"),
    [
        pytest.param([(0, W, 0), (10, W, 0), (29.9, W, 0), (30, W, 0)], "...S", [(30, True)], id="waiting-no-work"),
        pytest.param([(0, W, 0), (20, W, 1), (45, W, 1), (50, W, 1)], "...S", [(50, True)], id="work-resets-clock"),
        pytest.param([(0, W, 0), (15, W, 1), (30, W, 2), (45, W, 3), (60, W, 4)], ".....", [], id="slow-but-moving"),
        pytest.param([(0, Q, 0), (100, Q, 0), (1000, Q, 0)], "...", [], id="quiet-stream"),
        pytest.param([(0, {}, 0), (100, {}, 0)], "..", [], id="nothing-assigned"),
        pytest.param([(0, {"p0": None}, 0), (100, {"p0": None}, 0)], "..", [], id="lag-unknown"),
        pytest.param([(0, {"p0": -3}, 0), (100, {"p0": -3}, 0)], "..", [], id="lag-negative"),
        pytest.param(
            [(0, Q, 0), (600, Q, 0), (601, W, 0), (630, W, 0), (631, W, 0)], "....S", [(631, True)],
            id="clock-starts-when-input-waits",
        ),
        pytest.param(
            [(0, W, 0), (30, W, 0), (31, W, 1), (40, W, 1)], ".S..", [(30, True), (31, False)], id="clears-on-work"
        ),
        pytest.param(
            [(0, W, 0), (30, W, 0), (31, Q, 0), (70, Q, 0)], ".S..", [(30, True), (31, False)],
            id="clears-when-nothing-waits",
        ),
        pytest.param(
            [(0, W, 0), (30, W, 0), (31, W, 0), (60, W, 0), (600, W, 0)], ".SSSS", [(30, True)],
            id="reported-once",
        ),
        pytest.param(
            [(0, W, 0), (30, W, 0), (31, W, 1), (61, W, 1)], ".S.S", [(30, True), (31, False), (61, True)],
            id="stalls-again",
        ),
        pytest.param(
            [(0, {"p0": 0, "p1": 7}, 0), (30, {"p0": 0, "p1": None, "p2": 9}, 0)], ".S", [(30, True)],
            id="any-partition-waiting",
        ),
    ],
)  # fmt: skip
def test_stall_rules(steps: Sequence[Step], states: str, changes: list[tuple[float, bool]]) -> None:
    assert run(steps) == (states, changes)


def test_a_stall_names_the_waiting_partitions_and_lags() -> None:
    watch: StallWatch[str] = StallWatch(3.0)
    assert watch.observe("aggregate", {"p0": 0, "p1": 4, "p2": None}, 7, now=100.0) is None
    assert watch.observe("ingest", {"p0": 0}, 1, now=100.0) is None
    change = watch.observe("aggregate", {"p0": 0, "p1": 6, "p3": 2, "p2": None}, 7, now=103.5)
    assert change is not None and change.stalled and change.stage == "aggregate"
    assert change.stall.since == 100.0 and change.duration_s == 3.5
    assert dict(change.stall.lags) == {"p1": 6, "p3": 2} and change.stall.lag == 8
    assert [s.stage for s in watch.stalled()] == ["aggregate"]
    assert watch.lag("aggregate") == 8 and watch.lag("ingest") == 0 and watch.lag("sink") is None
    # while stalled, the partitions and lags follow the latest sample, the start stays
    assert watch.observe("aggregate", {"p1": 10}, 7, now=104.5) is None
    (stall,) = watch.stalled()
    assert dict(stall.lags) == {"p1": 10} and stall.since == 100.0
    cleared = watch.observe("aggregate", {"p1": 3}, 8, now=105.0)
    assert cleared is not None and not cleared.stalled and cleared.progressed and cleared.duration_s == 5.0
    assert watch.stalled() == [] and watch.stages() == ["aggregate", "ingest"]


def test_stages_are_watched_apart() -> None:
    watch: StallWatch[str] = StallWatch(AFTER)
    for now in (0.0, 15.0, 30.0):
        watch.observe("ingest", W, int(now), now)  # moving
        watch.observe("aggregate", W, 0, now)  # stuck
        watch.observe("sink", Q, 0, now)  # quiet
    assert [s.stage for s in watch.stalled()] == ["aggregate"]


@pytest.mark.parametrize("after_s", [0.0, -1.0])
def test_the_threshold_must_be_positive(after_s: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        StallWatch(after_s)


@pytest.mark.parametrize(
    ("highwater", "next_offset", "lag"),
    [(None, 5, None), (None, None, None), (10, None, None), (0, None, 0), (10, 4, 6), (10, 10, 0), (10, 12, 0)],
)
def test_lag_of_one_partition(highwater: int | None, next_offset: int | None, lag: int | None) -> None:
    assert _lag(highwater, next_offset) == lag


@pytest.mark.parametrize(
    ("spec", "stages"),
    [
        ("", set()),
        ("fail", set()),
        ("stall:5", set()),
        ("stall-stage:aggregate", {"aggregate"}),
        ("  stall-stage:ingest, aggregate \n", {"ingest", "aggregate"}),
        ("stall:1\nstall-stage:sink", {"sink"}),
    ],
)
def test_fault_file_stage_stalls(spec: str, stages: set[str]) -> None:
    assert stages_to_stall(spec) == stages


def test_fault_file_partition_stalls_drop_only_the_named_partitions_and_reread_the_file(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from streams.lab.faults import partition_stall, partitions_to_stall, write_fault

    assert partitions_to_stall("stall-stage:ingest\n stall-partition:p.orders:*, p.clicks:2 ") == {
        ("p.orders", "*"), ("p.clicks", "2"),
    }  # fmt: skip
    assert partitions_to_stall("stall-partition:nocolon\nstall:5") == frozenset()
    fault, now = tmp_path / "fault", {"t": 0.0}
    drop = partition_stall(fault, clock=lambda: now["t"])

    def tp(topic: str, partition: int) -> SimpleNamespace:
        return SimpleNamespace(topic=topic, partition=partition)

    assert not drop(tp("p.orders", 0), True, 1)  # no file: nothing
    fault.write_text("stall-partition:p.orders:*,p.clicks:2\n")
    assert not drop(tp("p.orders", 0), True, 1)  # read again only every 0.2 s (it is asked per fetch)
    now["t"] = 0.25
    assert [drop(tp("p.orders", n), True, 1) for n in range(4)] == [True] * 4
    assert [drop(tp("p.clicks", n), True, 1) for n in range(4)] == [False, False, True, False]
    assert not drop(tp("p.shares", 2), True, 1)
    write_fault(fault)()  # the same file stalls no write (it read as `fail`: every write failed)
    fault.unlink()
    now["t"] = 0.5
    assert not drop(tp("p.orders", 0), True, 1)


@pytest.mark.parametrize(("raw", "value"), [(None, 30.0), ("3", 3.0), ("0.5", 0.5)])
def test_stall_after_s_from_the_environment(raw: str | None, value: float) -> None:
    env = {} if raw is None else {"PROMO_STALL_AFTER_S": raw}
    assert load_settings(env).stall_after_s == value


@pytest.mark.parametrize("raw", ["0", "-2", "soon"])
def test_stall_after_s_rejects_nonsense(raw: str) -> None:
    with pytest.raises(ConfigError):
        load_settings({"PROMO_STALL_AFTER_S": raw})
