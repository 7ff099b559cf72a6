"""The detector's inputs: freshness per partition (streams/alerts/freshness.py) and what arrived
between two evaluations (streams/alerts/feed.py). Pure; no broker, no store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.alerts.feed import Feed
from streams.alerts.freshness import (
    UNKNOWN_BEHIND_S,
    Beat,
    FleetClock,
    Heartbeat,
    Lag,
    PositionClock,
    fleet_lag_of,
    heartbeat,
    keyed,
    read_heartbeat,
    undated_keys,
)
from streams.kafka import note_first_waiting

T_NOW = 1_794_326_400.0  # 2026-11-11 00:00 Beijing, on the 10 s grid


def test_a_caught_up_partition_has_no_lag() -> None:
    clock = PositionClock()
    for t in range(10):
        clock.sample(100.0 + t, {"p0": (10 * t, 10 * t)})
    assert clock.lag_s() == 0.0


def test_a_quiet_caught_up_partition_is_not_behind_when_records_come_again() -> None:
    # Traffic stops for two minutes (the log's end stands still, the consumer at it), then resumes: the
    # first sample that sees the new end before the consumer reaches it is a second behind, not two
    # minutes (an outside probe: a lag alert after every pause, and sparse partitions' lag jumping).
    clock = PositionClock()
    for t in range(5):
        clock.sample(100.0 + t, {"p0": (10 * t, 10 * t)})
    for t in range(5, 125):  # quiet: end 40, reached
        clock.sample(100.0 + t, {"p0": (40, 40)})
    clock.sample(225.0, {"p0": (50, 40)})  # records again, not yet read
    assert clock.lag_s() == pytest.approx(1.0)
    clock.sample(226.0, {"p0": (60, 60)})
    assert clock.lag_s() == 0.0


def test_a_caught_up_partition_whose_broker_stops_answering_ages_from_the_last_answer() -> None:
    """An outside probe: a broker paused for 30-70 s under traffic raised critical drop alerts on the
    total within 10 s, and no lag alert: the consumer stood at the end its last fetch had said, so
    the partition read caught up, "complete as of now", while every producer's events waited. The end
    is known as of the fetch that answered with it: once the answers stop, the partition ages."""
    from streams.alerts.freshness import ANSWER_GRACE_S

    clock = PositionClock()
    for t in range(10):  # traffic, fetches answering every half second
        clock.sample(100.0 + t, {"p0": (10 * t, 10 * t)}, {"p0": 100.0 + t - 0.5})
    assert clock.lag_s() == 0.0  # an answer within the grace is as good as now
    for t in range(10, 80):  # the broker is paused at 109: no answer since, the end stands still
        clock.sample(100.0 + t, {"p0": (90, 90)}, {"p0": 108.5})
        assert clock.lag_s() == (0.0 if t - 8.5 <= ANSWER_GRACE_S else pytest.approx(t - 8.5)), t
    assert clock.lag_s() > 60  # a lag alert, and nothing more settled meanwhile
    clock.sample(181.0, {"p0": (400, 90)}, {"p0": 180.8})  # back: the backlog arrives
    # still complete only up to the last sample within the grace of that answer (110)
    assert clock.lag_s() == pytest.approx(181.0 - 110.0)
    clock.sample(183.0, {"p0": (400, 400)}, {"p0": 182.9})
    assert clock.lag_s() == 0.0


def test_a_partition_that_stops_ages_by_the_wall_clock_from_the_last_end_it_reached() -> None:
    clock = PositionClock()
    for t in range(5):  # caught up while traffic flows
        clock.sample(100.0 + t, {"p0": (10 * t, 10 * t), "p1": (10 * t, 10 * t)})
    for t in range(5, 80):  # p0's consumer stops at offset 40 (reached at t=104); the log goes on
        clock.sample(100.0 + t, {"p0": (10 * t, 40), "p1": (10 * t, 10 * t)})
    assert clock.lags["p1"] == 0.0
    assert clock.lags["p0"] == pytest.approx(179.0 - 104.0)
    assert clock.lag_s() == clock.lags["p0"]
    assert clock.worst() == ("p0", clock.lags["p0"])


def test_catching_up_brings_the_lag_down_to_the_time_of_the_end_reached() -> None:
    clock = PositionClock()
    for t in range(100):
        clock.sample(float(t), {"p": (10 * t, 0 if t < 60 else None)})  # stuck at 0, then unknown
    clock.sample(100.0, {"p": (1000, 505)})  # caught up to the end seen at t=50
    assert clock.lag_s() == pytest.approx(50.0)
    clock.sample(101.0, {"p": (1010, 1010)})
    assert clock.lag_s() == 0.0


def test_read_between_samples_the_complete_instant_stands_still() -> None:
    # A stalled partition, sampled each second, read by the detector 0.7 s after a sample: what is
    # complete (now - lag) is the same instant whenever it is read, so nothing creeps into "settled".
    clock = PositionClock()
    clock.sample(100.0, {"p0": (10, 10)})
    clock.sample(101.0, {"p0": (20, 10)})  # stalled at 10 from here
    clock.sample(150.0, {"p0": (30, 10)})
    assert 150.7 - clock.lag_s(150.7) == pytest.approx(100.0)
    assert 152.2 - clock.lag_s(152.2) == pytest.approx(100.0)
    assert clock.lag_s() == pytest.approx(50.0)  # as of the last sample


def test_a_partition_first_seen_behind_counts_as_behind_and_ages() -> None:
    clock = PositionClock()
    clock.sample(1000.0, {"p": (5000, 0)})  # a worker restarted on a backlog: no history to date it
    assert clock.lag_s() == UNKNOWN_BEHIND_S
    clock.sample(1040.0, {"p": (5000, 100)})
    assert clock.lag_s() == UNKNOWN_BEHIND_S + 40
    clock.sample(1041.0, {"p": (5000, 5000)})
    assert clock.lag_s() == 0.0


def test_a_partition_no_longer_sampled_no_longer_counts_and_is_forgotten_after_the_history() -> None:
    clock = PositionClock()
    clock.sample(0.0, {"a": (10, 0), "b": (10, 10)})
    clock.sample(1.0, {"b": (10, 10)})
    assert clock.lag_s() == 0.0 and "a" in clock.ends  # kept for its return
    clock.sample(2.0 + clock.history_s, {"b": (10, 10)})
    assert "a" not in clock.ends and "a" not in clock.away


def test_a_frozen_worker_whose_partitions_come_back_is_as_far_behind_as_when_it_froze() -> None:
    # Caught up until t=104, then frozen 80 s (SIGSTOP): on waking the broker revokes its partition
    # and assigns it again, while the log has gone on. It is 80 s behind, not "first seen" (30 s):
    # with 30 s the detector would take the frozen minute as settled and judge counts not there yet.
    clock = PositionClock()
    for t in range(5):
        clock.sample(100.0 + t, {"p": (10 * t, 10 * t)})
    clock.sample(184.5, {})  # awake: revoked
    clock.sample(185.0, {"p": (850, 40)})  # assigned again, back at its position before the freeze
    assert clock.lag_s() == pytest.approx(185.0 - 104.0)
    clock.sample(186.0, {"p": (860, 860)})
    assert clock.lag_s() == 0.0


def test_a_partition_back_with_its_position_not_yet_known_is_judged_when_it_is() -> None:
    # Just after an assignment the consumer's position is unknown for a sample or two; whether another
    # worker had the partition meanwhile is decided when it is known (a review found the old history
    # taken for the new: 302 s behind where the truth was "first seen").
    clock = PositionClock()
    for t in range(5):
        clock.sample(100.0 + t, {"p": (10 * t, 10 * t)})
    clock.sample(105.0, {})
    clock.sample(405.0, {"p": (3000, None)})
    clock.sample(406.0, {"p": (3010, 2990)})
    assert clock.lag_s() == UNKNOWN_BEHIND_S


def test_a_partition_back_from_another_worker_counts_as_first_seen() -> None:
    # Away for two minutes while another worker consumed it: the old ends say nothing of its lag.
    clock = PositionClock()
    for t in range(5):
        clock.sample(100.0 + t, {"p": (10 * t, 10 * t)})
    clock.sample(105.0, {})
    clock.sample(225.0, {"p": (2000, 1500)})
    assert clock.lag_s() == UNKNOWN_BEHIND_S


def test_a_backlog_found_waiting_is_dated_by_its_first_records_timestamp() -> None:
    # A worker restarted 90 s after it was killed (or one taking a dead worker's partitions over)
    # finds a backlog: 30 s is a guess, and the first record it is handed was stamped when it was
    # produced, 90 s ago. Until that end is reached the partition is complete up to that record; then
    # up to the first sight. (With the guess, the detector took 60 s that were not there as settled.)
    clock = PositionClock()
    clock.sample(1000.0, {"p": (5000, 0)})
    assert clock.lag_s() == UNKNOWN_BEHIND_S and clock.undated() == {"p"}
    clock.sample(1001.0, {"p": (5000, 120)}, waiting={"p": (0, 910.0)})
    assert clock.lag_s() == pytest.approx(91.0) and clock.undated() == set()
    clock.sample(1020.0, {"p": (5100, 3000)})
    assert clock.lag_s() == pytest.approx(110.0)  # the wall clock ages it until the first-seen end
    clock.sample(1040.0, {"p": (5200, 5000)})
    assert clock.lag_s() == pytest.approx(40.0)  # complete up to the first sight
    clock.sample(1041.0, {"p": (5200, 5200)})
    assert clock.lag_s() == 0.0


def test_a_first_records_timestamp_never_makes_a_backlog_younger_than_the_guess_nor_dates_what_it_is_not() -> None:
    clock = PositionClock()
    clock.sample(1000.0, {"young": (500, 0), "past": (500, 0), "none": (500, 0)})
    # Stamped 3 s ago (or by a producer whose clock runs ahead): the guess stands. A record from past
    # the position first seen (handed before that sample came) is no first waiting record.
    clock.sample(1001.0, {"young": (500, 10), "past": (500, 10), "none": (500, 10)},
                 waiting={"young": (0, 997.0), "past": (300, 900.0)})  # fmt: skip
    lags = clock.lags_as_of(1001.0)
    assert lags == pytest.approx({"young": UNKNOWN_BEHIND_S + 1, "past": UNKNOWN_BEHIND_S + 1,
                                  "none": UNKNOWN_BEHIND_S + 1})  # fmt: skip
    assert clock.undated() == {"past", "none"}


def test_a_backlog_stamped_before_the_history_is_as_far_behind_as_the_history() -> None:
    # A lab's simulated records are stamped a year back: past every threshold, but not a year.
    clock = PositionClock()
    clock.sample(1000.0, {"p": (500, 0)})
    clock.sample(1001.0, {"p": (500, 10)}, waiting={"p": (0, 1000.0 - 365 * 86400)})
    assert clock.lag_s() == pytest.approx(clock.history_s + 1)


def test_a_new_groups_first_end_before_its_position_is_known_is_still_a_first_sight() -> None:
    # A fresh group has no committed offset: the stage's position is unknown until it holds its first
    # batch. The end seen meanwhile, dated then, passed for a log caught up a moment before, and the
    # backlog was never dated (1 s behind where it was 30 or more: a review).
    clock = PositionClock()
    clock.sample(1000.0, {"p": (5000, None)})
    clock.sample(1001.0, {"p": (5000, 0)})
    assert clock.lag_s() == UNKNOWN_BEHIND_S and clock.undated() == {"p"}
    clock.sample(1002.0, {"p": (5000, 100)}, waiting={"p": (0, 880.0)})
    assert clock.lag_s() == pytest.approx(122.0)


def test_the_fleet_keeps_the_older_word_on_a_partition_its_new_owner_has_not_dated_yet() -> None:
    # b speaks for routed:2 until it is killed at 100; at 190 a worker (b restarted, or a taking it
    # over) finds a backlog there. Its heartbeats say the 30 s guess, marked undated, for as long as
    # the backlog is not dated (a stage that holds no record of it yet): the older word, aged, stands;
    # the newest word used to win ("30 s" of a 90 s backlog). Once dated, what it says is taken.
    fleet = FleetClock()
    fleet.heard("b:2", 100.0, {"routed:2": 0.0, "routed:3": 0.0})
    clock = PositionClock()
    tp = TopicPartition("routed", 2)
    for t in (190.0, 191.0, 200.0):
        clock.sample(t, {tp: (900, 400)})
        beat = read_heartbeat(heartbeat("a:1", t, keyed(clock.lags), undated_keys(clock)))
        assert beat is not None and beat.undated == {"routed:2"} and beat.lags["routed:2"] < 45
        fleet.heard(*beat)
        assert fleet.lags(t)["routed:2"] == pytest.approx(t - 100.0)
    clock.sample(201.0, {tp: (910, 400)}, waiting={tp: (400, 100.2)})
    fleet.heard(*heartbeat_of(clock, "a:1", 201.0))
    assert fleet.lags(201.0)["routed:2"] == pytest.approx(100.8)
    clock.sample(205.0, {tp: (910, 910)})
    fleet.heard(*heartbeat_of(clock, "a:1", 205.0))
    assert fleet.lags(205.0)["routed:2"] == 0.0
    # A word not marked undated is taken as said, as before
    fleet.heard("a:1", 206.0, {"routed:3": 2.0})
    assert fleet.lags(206.0)["routed:3"] == 2.0


def heartbeat_of(clock: PositionClock, worker: str, at: float) -> Heartbeat:
    beat = read_heartbeat(heartbeat(worker, at, keyed(clock.lags), undated_keys(clock)))
    assert beat is not None
    return beat


def test_a_first_waiting_record_is_kept_only_with_a_timestamp() -> None:
    first: dict[TopicPartition, tuple[int, float]] = {}
    tp = TopicPartition("t", 0)
    note_first_waiting(first, tp, SimpleNamespace(offset=7, timestamp=-1))  # a producer that sent none
    assert first == {}
    note_first_waiting(first, tp, SimpleNamespace(offset=7, timestamp=1_794_326_400_250))
    assert first == {tp: (7, 1_794_326_400.25)}


def rows(counts: dict[tuple[str, str, int], list[float]]) -> list[tuple[str, str, int, list[float]]]:
    return [(c, ch, m, v) for (c, ch, m), v in counts.items()]


def test_the_feed_hands_on_what_arrived_between_two_reads_per_leaf() -> None:
    feed = Feed(2)
    assert feed.update(rows({("c", "wechat", 60): [5, 1]}), 100.0) is None  # the starting point
    got = feed.update(rows({("c", "wechat", 60): [8, 1], ("c", "wechat", 120): [2, 0], ("c", "app", 120): [1, 1]}), 130)
    assert got == {("c", "wechat"): [5.0, 0.0], ("c", "app"): [1.0, 1.0]}
    # A late event in an old minute is news when it arrives; nothing new is an empty answer.
    assert feed.update(rows({("c", "wechat", 60): [9, 1], ("c", "wechat", 120): [2, 0], ("c", "app", 120): [1, 1]}),
                       140) == {("c", "wechat"): [1.0, 0.0]}  # fmt: skip
    assert feed.update(rows({("c", "wechat", 60): [9, 1], ("c", "wechat", 120): [2, 0], ("c", "app", 120): [1, 1]}),
                       150) == {}  # fmt: skip


def test_the_feed_forgets_minutes_out_of_its_window_and_survives_a_round_trip() -> None:
    feed = Feed(1, window_s=300)
    feed.update(rows({("c", "x", 0): [1], ("c", "x", 600): [1]}), 600)
    feed.update(rows({("c", "x", 600): [2]}), 900)  # the store is asked for minutes from 600 on
    assert set(feed.seen) == {("c", "x", 600)}
    again = Feed.from_doc(feed.to_doc())
    assert again.seen == feed.seen and again.primed
    assert again.update(rows({("c", "x", 600): [5]}), 910) == {("c", "x"): [3.0]}


def test_the_fleet_ages_a_silent_workers_partitions_and_trusts_the_newest_word() -> None:
    fleet = FleetClock()
    fleet.heard("a:1", 100.0, {"routed:0": 0.0, "routed:1": 0.0})
    fleet.heard("b:2", 100.0, {"routed:2": 0.0, "routed:3": 2.0})
    assert fleet.lag_s(101.0) == pytest.approx(3.0)
    # b freezes (says nothing more); a goes on: b's partitions age by the wall clock.
    fleet.heard("a:1", 170.0, {"routed:0": 0.0, "routed:1": 0.0})
    assert fleet.lag_s(170.0) == pytest.approx(72.0)
    assert fleet.lag_s(170.0, skip={"routed:2", "routed:3"}) == 0.0  # the caller's own: its own clock
    # a takes b's partitions over and speaks for them: the newest word wins, whoever says it.
    fleet.heard("a:1", 175.0, {"routed:0": 0.0, "routed:1": 0.0, "routed:2": 30.0, "routed:3": 30.0})
    assert fleet.lag_s(175.0) == pytest.approx(30.0)
    fleet.heard("b:2", 174.0, {"routed:2": 0.0})  # b's late word, older than a's: not taken
    assert fleet.parts["routed:2"][2] == "a:1"


def test_the_fleet_forgets_what_nobody_spoke_for_in_its_history() -> None:
    fleet = FleetClock(history_s=900.0)
    fleet.heard("b:2", 0.0, {"deltas:0": 0.0})
    assert fleet.lag_s(600.0) == 600.0
    assert fleet.lag_s(901.0) == 0.0 and not fleet.parts


def test_heartbeats_round_trip_and_anything_else_is_skipped() -> None:
    value = heartbeat("host:6066", 1000.5, {"t.routed:3": 1.25})
    assert read_heartbeat(value) == ("host:6066", 1000.5, {"t.routed:3": 1.25}, frozenset())
    marked = heartbeat("host:6066", 1000.5, {"t.routed:3": 31.0}, {"t.routed:3"})
    assert read_heartbeat(marked) == ("host:6066", 1000.5, {"t.routed:3": 31.0}, {"t.routed:3"})
    for bad in (None, b"", b"not json", b"[]", b'{"worker": "w"}', b'{"worker": "w", "at": "x", "lags": {}}',
                b'{"worker": "w", "at": 1, "lags": {"p": "slow"}}',
                b'{"worker": "w", "at": 1, "lags": {}, "undated": "p"}'):  # fmt: skip
        assert read_heartbeat(bad) is None, bad


def test_the_runner_judges_nothing_until_freshness_is_known_and_holds_what_is_settled_when_it_is_lost(
    tmp_path: Path,
) -> None:
    """The live runner over a stand-in for its store's calls (pure: counts per minute in a dict). No
    partition assigned yet: what arrives is history, and the first judged step starts after it; once
    running, a freshness that is lost again settles nothing more (the counts wait), it is not 0."""
    import asyncio

    from streams.alerts.runner import AlertRunner

    counts: dict[int, float] = {}  # minute -> interactions of c1/wechat so far
    logged: list[tuple[float, float]] = []  # (at, settled_until) of every judged evaluation

    def log(*args: Any) -> None:
        logged.append((args[1], args[2]))

    call = _store_stand_in(lambda: [("c1", "wechat", m, [v, 0.0, 0.0, 0.0, 0.0]) for m, v in counts.items()], log)

    lags: list[float | None] = [None, None, None, 0.0, 0.0, None, None, 0.0]
    clock = {"now": T_NOW}

    async def freshness(now: float) -> float | None:
        return lags[int((now - T_NOW) // 10)]

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])

    async def go() -> None:
        for i in range(len(lags)):
            clock["now"] = T_NOW + 10 * i
            minute = int(clock["now"] // 60 * 60)
            counts[minute] = counts.get(minute, 0.0) + 500.0  # the backlog of a starting worker, then more
            await runner.tick()

    asyncio.run(go())
    # 0-2 unknown: nothing is logged or judged; 3, the first that knows its lag, takes the starting
    # point (what is settled then is history); 4 is the first step and brings only what came since.
    assert [at for at, _ in logged] == [T_NOW + 40, T_NOW + 50, T_NOW + 60, T_NOW + 70]
    assert [s - T_NOW for _, s in logged] == [35, 35, 35, 65]  # lost at 5-6: held where it stood
    assert runner.detector.settled_until == T_NOW + 65


def test_a_runner_frozen_for_80_s_wakes_behind_by_its_gap_even_when_its_partitions_read_caught_up(
    tmp_path: Path,
) -> None:
    """CI (2026-12-06): a worker frozen by SIGSTOP for 80 s caught up before its first evaluation after
    waking sampled its partitions, which then read 0 s behind: no lag alert, and the backlog booked as
    news. An evaluation that comes more than a minute late is behind by at least its gap."""
    import asyncio

    from streams.alerts.runner import AlertRunner

    logged: list[tuple[float, float, float]] = []  # (at, settled_until, lag_s)

    def log(*args: Any) -> None:
        logged.append((args[1], args[2], args[3]))

    call = _store_stand_in(lambda: [], log)

    async def freshness(now: float) -> float | None:
        return 0.0  # the partitions read caught up every time

    clock = {"now": T_NOW}
    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])
    times = [0, 10, 20, 30, 120, 130]  # frozen from 30 to 120

    async def go() -> list[Any]:
        changed: list[Any] = []
        for t in times:
            clock["now"] = T_NOW + t
            changed += await runner.tick()
        return changed

    changed = asyncio.run(go())
    assert [round(lag) for _, _, lag in logged] == [0, 0, 0, 80, 0]
    lags = [a for a in changed if a.kind == "lag"]
    assert lags and lags[0].detected_at == T_NOW + 120  # at once on waking
    assert lags[-1].resolved_at == T_NOW + 130  # and over with the next evaluation


def test_an_evaluation_frozen_while_it_reads_is_dated_when_it_woke(tmp_path: Path) -> None:
    """An outside probe: a worker frozen by SIGSTOP in the middle of an evaluation (its store read)
    woke, measured 90 s of lag, and dated the step at the instant it had begun, before the freeze:
    the lag alert read "detected" 92 s before it was raised and "started" 31 s before the freeze. An
    evaluation whose reads outlast 10 s reads again, as of now."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.runner import AlertRunner

    clock = {"now": T_NOW}
    plain = _store_stand_in(lambda: [], lambda *a: None)
    frozen = {"at": T_NOW + 30.0, "for": 90.0}

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.window_rows and clock["now"] == frozen["at"]:
            clock["now"] += frozen["for"]  # SIGSTOP here, SIGCONT 90 s later
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:  # measured after waking: 90 s behind, then caught up
        return 90.0 if clock["now"] == frozen["at"] + frozen["for"] else 0.0

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])

    async def go() -> list[Any]:
        changed: list[Any] = []
        for t in (0, 10, 20, 30, 130):
            clock["now"] = max(clock["now"], T_NOW + t)
            changed += await runner.tick()
        return changed

    lags = [a for a in asyncio.run(go()) if a.kind == "lag"]
    assert lags, lags
    woke = frozen["at"] + frozen["for"]
    assert lags[0].detected_at == woke and lags[0].started_at == woke - (90.0 - 60.0), lags[0]


def _store_stand_in(rows: Any, log: Any) -> Any:
    """The runner's store calls, pure: `rows()` is what the window holds, `log(*args)` takes each
    evaluation's logged inputs; no plan, schedule, silences or stored alerts."""
    from streams.alerts import store as alert_store

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.window_rows:
            return rows()
        if fn is alert_store.log_inputs:
            log(*args)
            return None
        if fn is alert_store.plan_version:
            return 0.0
        if fn is alert_store.read_plan:
            return None
        if fn is alert_store.read_schedule:
            return {}
        return [] if fn in (alert_store.read_silences, alert_store.read_alerts) else None

    return call


def test_the_feed_holds_back_what_is_written_past_settled_until_and_hands_it_on_pro_rata() -> None:
    feed = Feed(1)
    feed.update(rows({("c", "x", 0): [60]}), 65.0)  # the starting point
    # Settled to 150; the partitions reached 170 on average: minute 120 holds 50 s of counts, 30 of
    # them settled; minute 180 (not begun at 150) waits whole; a late event in minute 0 goes at once.
    got = feed.update(rows({("c", "x", 0): [61], ("c", "x", 60): [60], ("c", "x", 120): [50], ("c", "x", 180): [7]}),
                      175.0, settled_until=150.0, fill_until=170.0)  # fmt: skip
    assert got == {("c", "x"): [1.0 + 60.0 + 30.0]}
    # Nothing new arrives but more is settled: the rest of minute 120 and a share of 180.
    again = Feed.from_doc(feed.to_doc())  # what was held back survives a restart
    got = again.update(rows({("c", "x", 120): [60], ("c", "x", 180): [20]}), 200.0,
                       settled_until=190.0, fill_until=200.0)  # fmt: skip
    assert got == {("c", "x"): [30.0 + 10.0]}
    # A state saved before counts were held back had handed everything on.
    old = feed.to_doc()
    del old["given"]
    assert Feed.from_doc(old).update(rows({("c", "x", 180): [7]}), 200.0, settled_until=240.0) == {}


LATE = [(T_NOW + 300, T_NOW + 600, 150.0), (T_NOW + 900, T_NOW + 1080, 45.0)]


def _late_partition_run(
    tmp_path: Path, hold_back: bool, delays: list[tuple[float, float, float]] = LATE, worst_only: bool = False
) -> tuple[list[Any], float]:
    """The live runner (its store calls stood in for) over a campaign of three channels whose counts
    come from four source partitions. One of them runs behind (`delays`: by default 150 s for five
    minutes, then 45 s for three, under the lag alert's 60 s); the other three keep writing on time.
    The freshness says the worst lag and the mean, or (`worst_only`, as `promo alerts run` has it
    from heartbeat rows written before schema v6) the worst alone."""
    import asyncio

    from streams.alerts.freshness import Lag
    from streams.alerts.runner import AlertRunner

    rates = {("c1", "wechat"): 60.0, ("c1", "app"): 30.0, ("c1", "jingxi"): 20.0}  # interactions a second
    per_event = [1.0, 0.1, 0.05, 500.0, 0.02]  # of each metric, per interaction
    start = T_NOW - 1800.0  # half an hour of history before, the delays from T_NOW on
    clock = {"now": start}

    def behind(now: float) -> float:
        return next((d for a, b, d in delays if a <= now < b), 0.0)

    def reached(t: float, minute: int) -> float:  # seconds of `minute` processed up to event time t
        return min(max(t - minute, 0.0), 60.0)

    def window() -> list[tuple[str, str, int, list[float]]]:
        now = clock["now"]
        out = []
        for minute in range(int((now - 900) // 60 * 60), int(now // 60 * 60) + 60, 60):
            # three partitions on time (0.5 s), the fourth as far behind as it is now
            seconds = 0.75 * reached(now - 0.5, minute) + 0.25 * reached(now - 0.5 - behind(now), minute)
            if seconds > 0:
                for (campaign, channel), rate in rates.items():
                    out.append((campaign, channel, minute, [rate * seconds * k for k in per_event]))
        return out

    call = _store_stand_in(window, lambda *args: None)

    async def freshness(now: float) -> Any:
        late = behind(now)
        return late if worst_only else Lag(late, late / 4)

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / f"s{hold_back}{worst_only}{len(delays)}.json",
                         clock=lambda: clock["now"])  # fmt: skip
    if not hold_back:  # the runner before: everything that arrived went on, settled or not
        update = runner.feed.update
        runner.feed.update = lambda rows, now, *rest: update(rows, now)  # type: ignore[method-assign]

    async def go() -> list[Any]:
        changed: list[Any] = []
        while clock["now"] < T_NOW + 1500:
            changed += await runner.tick()
            clock["now"] += 10.0
        return changed

    changed = asyncio.run(go())
    return changed, runner.detector.settled_until or 0.0


def test_a_partition_running_late_is_no_drop_when_it_catches_up(tmp_path: Path) -> None:
    """One source partition of four 150 s behind: what the other three wrote reached the store on
    time, and went on to the detector 150 s before the span that holds it; when the late one caught
    up, its whole span came with a quarter of its counts: critical outages at the campaign and the
    total on every metric (an experiment on the development days: 5 of 6 days with a late partition
    raised them). Held back until settled, the counts fit their spans: the lag alert, no drop."""
    changed, settled = _late_partition_run(tmp_path, hold_back=True)
    assert settled >= T_NOW + 1480
    assert {a.kind for a in changed} == {"lag"}
    assert len({a.id for a in changed}) == 1 and changed[-1].resolved_at is not None  # the 150 s, over
    before, _ = _late_partition_run(tmp_path, hold_back=False)
    drops = [a for a in before if a.kind == "drop"]  # the campaign's are folded under the total's
    # (critical outages; one may come back as a warning as its quarter-filled spans go on)
    assert {a.scope.label() for a in drops} == {"total"} and "critical" in {a.severity for a in drops}


def _killed_worker_run(tmp_path: Path, kill_at: float, share: float, parts: float) -> list[Any]:
    """The live runner (its store calls stood in for) over a steady campaign whose counts come through
    two workers; at `kill_at` one is SIGKILLed: the `share` of the counts that passed through it stops
    where it was, the rest goes on, and 120 s later its partitions, taken over, catch up at once. Its
    partitions (`parts` of all, every stage's) are as far behind as the wall clock from their last
    word, the others on time: the mean lag. The drop alerts it raised."""
    import asyncio

    from streams.alerts.freshness import Lag
    from streams.alerts.runner import AlertRunner

    rates = {("c1", "wechat"): 150.0, ("c1", "app"): 90.0, ("c1", "jingxi"): 50.0}  # interactions a second
    per_event = [1.0, 0.1, 0.05, 500.0, 0.02]
    back_at = kill_at + 120.0
    clock = {"now": T_NOW - 1800.0}

    def stopped(now: float) -> bool:
        return kill_at <= now < back_at

    def reached(t: float, minute: int) -> float:
        return min(max(t - minute, 0.0), 60.0)

    def window() -> list[tuple[str, str, int, list[float]]]:
        now = clock["now"]
        dead = kill_at - 0.5 if stopped(now) else now - 0.5
        out = []
        for minute in range(int((now - 900) // 60 * 60), int(now // 60 * 60) + 60, 60):
            seconds = (1 - share) * reached(now - 0.5, minute) + share * reached(dead, minute)
            if seconds > 0:
                for (campaign, channel), rate in rates.items():
                    out.append((campaign, channel, minute, [rate * seconds * k for k in per_event]))
        return out

    async def freshness(now: float) -> Any:
        worst = now - kill_at + 0.5 if stopped(now) else 0.5
        return Lag(worst, parts * worst + (1 - parts) * 0.5)

    runner = AlertRunner(None, _store_stand_in(window, lambda *args: None), freshness,
                         state_path=tmp_path / f"k{kill_at}{share}.json", clock=lambda: clock["now"])  # fmt: skip

    async def go() -> list[Any]:
        changed: list[Any] = []
        while clock["now"] < back_at + 300:
            changed += await runner.tick()
            clock["now"] += 10.0
        return changed

    return [a for a in asyncio.run(go()) if a.kind == "drop"]


@pytest.mark.parametrize(("share", "parts"), [(0.5, 0.5), (0.75, 0.4)])
@pytest.mark.parametrize("offset", [0.4, 1.4, 4.1, 7.7, 9.6])
def test_a_killed_worker_is_a_lag_and_never_a_drop(tmp_path: Path, offset: float, share: float, parts: float) -> None:
    """An outside probe: the helper of two workers SIGKILLed under steady traffic, and 8.6 s later a
    critical outage of the total ("88% below expected, 55 vs 473"). The step after the kill settled 1 s
    more (its partitions' lag grew from their last word), and the counts handed on for that second
    were a share of the minute's bucket as if every partition had filled it up to the mean lag: the
    killed worker's share had stopped, so a fifth of that second came. Settled time now advances by at
    least MIN_ADVANCE_S, or waits: a short span's share of a bucket is mostly the estimate's error."""
    # Kills at several instants of the 10 s step and of the minute, so the pro rata cuts differently.
    # Two workers, each with half of every stage's partitions: half the counts pass through the killed
    # one's sources, and half of the other half through its stage 2 (3/4 stop); 8 of 20 partitions lag.
    for minute_offset in (0.0, 23.0, 47.0):
        drops = _killed_worker_run(tmp_path, T_NOW + minute_offset + offset, share, parts)
        assert drops == [], [(a.scope.label(), a.metric, a.message) for a in drops]


def test_a_partition_steadily_late_under_the_lag_alert_is_no_drop_with_the_worst_lag_only(tmp_path: Path) -> None:
    """A review found it: with only the worst lag known (`promo alerts run` beside workers from before
    v6), holding back as if every partition were that late handed a minute's counts on unevenly (one
    partition of four 20 s late: steps at 0.3-1.7 of their spans, outage warnings at the total every
    minute). Without the mean the counts go on as they arrive; the mean holds them back."""
    steady = [(T_NOW - 600, T_NOW + 1500, 20.0)]
    for worst_only in (True, False):
        changed, settled = _late_partition_run(tmp_path, True, steady, worst_only=worst_only)
        assert settled >= T_NOW + 1460
        assert not changed, [a.message for a in changed]


def test_the_feed_starts_from_what_is_settled_not_from_all_that_arrived() -> None:
    """A review found it: a feed that took all that had arrived as its starting point then owed the
    unsettled part, and its first steps brought half of their spans' counts (0.53 at a fresh start)."""
    feed = Feed(1)
    assert feed.update(rows({("c", "x", 0): [50]}), 50.5, settled_until=45.0, fill_until=50.0) is None
    assert feed.update(rows({("c", "x", 0): [60]}), 60.5, settled_until=55.0, fill_until=60.0) == {("c", "x"): [10.0]}


def test_the_fleet_lag_from_heartbeat_rows_is_the_newest_word_on_each_partition() -> None:
    """`promo alerts run` reads the workers' heartbeat rows: since schema v6 each says every partition's
    lag, and the fleet is read as a worker's own detector reads the heartbeats topic (`FleetClock`)."""
    now = T_NOW
    assert fleet_lag_of([], now) == 86400.0  # no heartbeat in a day: the pipeline is not running
    # Rows from before v6: the worst of each worker's newest, aged, of the workers still there.
    old = [Beat("a", now - 4, 2.0), Beat("b", now - 1, 0.0), Beat("gone", now - 3600, 500.0)]
    assert fleet_lag_of(old, now) == pytest.approx(6.0)
    # a: p0 60 s late, p1 and p2 on time (said 4 s ago); b: p3 (1 s ago); c: idle, names none.
    a = Beat("a", now - 4, 60.0, True, now - 4, {"t:0": 60.0, "t:1": 0.5, "t:2": 1.0})
    b = Beat("b", now - 1, 0.5, True, now - 1, {"t:3": 0.5})
    c = Beat("c", now - 2, 0.0, True)
    lag = fleet_lag_of([a, b, c], now)
    assert isinstance(lag, Lag)
    assert lag.worst == pytest.approx(64.0)
    assert lag.typical == pytest.approx((64.0 + 4.5 + 5.0 + 1.5) / 4)
    # A worker from before v6 among them (a rolling upgrade): the worst of the newest rows, as before.
    assert fleet_lag_of([a, b, c, Beat("old", now - 1, 90.0)], now) == pytest.approx(91.0)
    # A rebalance: every newest row names no partition; each worker's word from before it still
    # stands, aging (not "0 s behind", which handed on at once all the runner held back).
    a_now, b_now = a._replace(at=now - 0.5, worst=0.0), b._replace(at=now - 0.5, worst=0.0)
    assert fleet_lag_of([a_now, b_now], now) == lag
    # Scaled down: a left 200 s ago; b has taken its partitions and speaks for them now.
    b_all = Beat("b", now - 1, 1.0, True, now - 1, {"t:0": 1.0, "t:1": 1.0, "t:2": 1.0, "t:3": 1.0})
    gone = a._replace(at=now - 200, word_at=now - 200)
    assert fleet_lag_of([gone, b_all], now) == pytest.approx((2.0, 2.0))
    # Stopped an hour ago (every word older than the fleet's history): an hour behind, not unknown.
    stopped = fleet_lag_of([a._replace(at=now - 3600, word_at=now - 3600)], now)
    assert stopped == pytest.approx((3660.0, 3660.0))
    # The pipeline has just started: nobody has named a partition yet. Not known.
    assert fleet_lag_of([Beat("a", now - 1, 0.0, True), Beat("b", now - 2, 0.0, True)], now) is None


def test_a_detector_outside_the_workers_frozen_for_80_s_holds_back_only_what_is_not_settled(tmp_path: Path) -> None:
    """`promo alerts run` frozen (its host swapped out) while the workers wrote on, on time: on waking
    it is behind by its gap (the lag alert), and the counts the workers wrote meanwhile are in the
    store. Held back as if they reached no further than the gap (a worker's own detector froze with
    its partitions), the step on waking got the whole unsettled minute on top of its settled share."""
    outside, changed = _frozen_detector_run(tmp_path, frozen_with_pipeline=False)
    assert outside == pytest.approx(1.0, abs=0.05)
    assert {a.kind for a in changed} == {"lag"}, [a.message for a in changed]
    inside, _ = _frozen_detector_run(tmp_path, frozen_with_pipeline=True)
    assert inside > 1.5  # the fault this guards against


def _frozen_detector_run(tmp_path: Path, frozen_with_pipeline: bool) -> tuple[float, list[Any]]:
    """The runner over one channel at 50 interactions a second, its freshness on time throughout,
    frozen for 80 s at T_NOW: the step on waking as a share of its span's true count, and the alerts."""
    import asyncio

    from streams.alerts.runner import AlertRunner

    rate = 50.0
    clock = {"now": T_NOW - 1800.0}

    def window() -> list[tuple[str, str, int, list[float]]]:
        now = clock["now"]
        out = []
        for minute in range(int((now - 900) // 60 * 60), int(now // 60 * 60) + 60, 60):
            seconds = min(max(now - 0.5 - minute, 0.0), 60.0)
            if seconds > 0:
                out.append(("c1", "wechat", minute, [rate * seconds, 0.0, 0.0, 0.0, 0.0]))
        return out

    logged: list[tuple[float, float, dict[Any, Any]]] = []  # (at, settled_until, leaves)

    def log(*args: Any) -> None:
        logged.append((args[1], args[2], args[4]))

    async def freshness(now: float) -> Any:
        return Lag(0.5, 0.5)  # the workers' heartbeats: on time throughout

    runner = AlertRunner(None, _store_stand_in(window, log), freshness, clock=lambda: clock["now"],
                         state_path=tmp_path / f"f{frozen_with_pipeline}.json",
                         frozen_with_pipeline=frozen_with_pipeline)  # fmt: skip

    async def go() -> list[Any]:
        changed: list[Any] = []
        while clock["now"] < T_NOW + 600:
            changed += await runner.tick()
            clock["now"] += 90.0 if clock["now"] == T_NOW else 10.0
        return changed

    changed = asyncio.run(go())
    woke = next(i for i, (at, _, _) in enumerate(logged) if at == T_NOW + 90)
    count = sum(v[0] for v in logged[woke][2].values())
    return count / ((logged[woke][1] - logged[woke - 1][1]) * rate), changed


def test_a_restart_settles_nothing_until_the_pipeline_has_read_the_backlog_it_found(tmp_path: Path) -> None:
    """An outside probe: SIGKILLs of a worker with 14-40 s down raised a critical outage of the total on the
    first evaluation after the restart (3 of 9). Its partitions were first seen with records waiting and
    counted 30 s behind (freshness.UNKNOWN_BEHIND_S), however long it was down; the step settled past the
    last one before the kill over counts the store did not hold yet (the killed sink's batch in flight
    was lost, the backlog not read). Restored, the runner waits until the lag is not one dated from a
    first sight; then one step takes the whole backlog, as after a stall."""
    import asyncio

    from streams.alerts.runner import AlertRunner

    rate, kill = 50.0, T_NOW
    clock = {"now": T_NOW - 1800.0, "reach": math.inf, "caught": math.inf, "first": math.inf}

    def window() -> list[tuple[str, str, int, list[float]]]:
        now = clock["now"]
        reach = now - 0.5 if now >= clock["caught"] else min(now - 0.5, clock["reach"])
        out = []
        for minute in range(int((now - 900) // 60 * 60), int(now // 60 * 60) + 60, 60):
            seconds = min(max(reach - minute, 0.0), 60.0)
            if seconds > 0:
                out.append(("c1", "wechat", minute, [rate * seconds, 0.0, 0.0, 0.0, 0.0]))
        return out

    logged: list[tuple[float, float]] = []  # (at, settled_until)

    def log(*args: Any) -> None:
        logged.append((args[1], args[2]))

    async def freshness(now: float) -> Any:
        if now < kill or now >= clock["caught"]:
            return Lag(0.5, 0.5)
        behind = 30.0 + now - clock["first"]  # first seen with records waiting: dated 30 s back, and aging
        return Lag(behind, behind)

    def runner() -> AlertRunner:
        return AlertRunner(None, _store_stand_in(window, log), freshness, clock=lambda: clock["now"],
                           state_path=tmp_path / "s.json")  # fmt: skip

    async def go() -> list[Any]:
        changed: list[Any] = []
        first = runner()
        while clock["now"] < kill:
            changed += await first.tick()
            clock["now"] += 10.0
        # SIGKILL at `kill`: the store holds what was settled at the last evaluation, and no more
        clock["reach"] = logged[-1][1] + 0.5
        # 25 s down, 15 s to start; its partitions first seen at once, caught up 20 s later
        clock["now"] = clock["first"] = kill + 40.0
        clock["caught"] = kill + 60.0
        second = runner()
        while clock["now"] < kill + 600:
            changed += await second.tick()
            clock["now"] += 10.0
        return changed

    changed = asyncio.run(go())
    drops = [(a.scope, a.metric, a.message) for a in changed if a.kind == "drop"]
    assert drops == [], drops
    before = max(settled for at, settled in logged if at < kill)
    waiting = [settled for at, settled in logged if kill < at < kill + 60]
    assert waiting and all(s <= before for s in waiting), (before, waiting)  # nothing more settled meanwhile
    assert max(settled for _, settled in logged) > kill + 500  # and it goes on once the backlog is read


def _minutes_window(
    now: float, leaves: list[tuple[str, str]], sent: Any, per_event: list[float]
) -> list[tuple[str, str, int, list[float]]]:
    """What the store's window holds at `now`: per leaf and minute of the last 15, the interactions
    `sent(leaf, t)` counts up to event time t (a cumulative count), and the other metrics in proportion."""
    out = []
    for minute in range(int((now - 900) // 60 * 60), int(now // 60 * 60) + 60, 60):
        for leaf in leaves:
            n = sent(leaf, min(now, minute + 60)) - sent(leaf, minute)
            if n > 0:
                out.append((*leaf, minute, [n * k for k in per_event]))
    return out


def test_a_replay_of_the_logged_inputs_sees_what_live_saw_when_a_channel_goes_silent(tmp_path: Path) -> None:
    """An outside probe: a channel that stopped was handed to the live detector as 0 but not logged,
    so a replay of the same evaluations judged other steps (expected 157.95 against live's 159.2,
    another child folded, the incident still firing where live had resolved it). Every change live
    made, the replay makes: the same ids, times, expectations and children."""
    import asyncio

    from streams.alerts.detector import Detector
    from streams.alerts.runner import AlertRunner, build_step

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 5.0}  # interactions a second
    per_event = [1.0, 0.1, 0.05, 500.0, 0.02]
    start = T_NOW - 1800.0
    # ads is silent from before the runner's first read (known from the counts in its window, so live
    # hands it on as 0) for 10 minutes; app stops for 4 minutes later on (an incident).
    quiet = {("c1", "ads"): (start - 60.0, start + 600.0), ("c1", "app"): (T_NOW, T_NOW + 240.0)}
    clock = {"now": start}

    def sent(leaf: tuple[str, str], t: float) -> float:  # interactions of `leaf` up to event time t
        a, b = quiet.get(leaf, (0.0, 0.0))
        return rates[leaf] * (t - max(0.0, min(t, b) - a))

    def window() -> list[tuple[str, str, int, list[float]]]:
        return _minutes_window(clock["now"], list(rates), sent, per_event)

    logged: list[tuple[float, float, float, dict[Any, Any]]] = []
    call = _store_stand_in(window, lambda *a: logged.append((a[1], a[2], a[3], dict(a[4]))))

    async def freshness(now: float) -> float | None:
        return 0.0

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])

    def seen(alerts: list[Any]) -> list[tuple[Any, ...]]:
        return [(a.id, a.metric, a.scope, a.detected_at, a.resolved_at, round(a.expected, 6), tuple(a.children))
                for a in alerts]  # fmt: skip

    async def go() -> list[Any]:
        changed: list[Any] = []
        while clock["now"] < T_NOW + 900:
            changed += seen(await runner.tick())
            clock["now"] += 10.0
        return changed

    live = asyncio.run(go())
    assert any(m == "interactions" and s.channel == "app" and r is not None for _, m, s, _, r, _, _ in live), live
    detector = Detector()
    replayed: list[Any] = []
    for at, settled, lag, leaves in logged:  # as `promo alerts replay` reads them back
        replayed += seen(detector.step(build_step(at, settled, lag, leaves, ())))
    assert replayed == live
    assert json.dumps(detector.snapshot(), sort_keys=True) == json.dumps(runner.detector.snapshot(), sort_keys=True)


def test_a_replay_is_the_live_detector_through_restarts_and_an_ops_note(tmp_path: Path) -> None:
    """An outside probe: an incident open across a worker restart ended differently in `promo alerts
    replay` (live resolved c04/app, the replay never did): a restored detector rebuilds its baselines
    from its recent inputs only, and an ops note resets a scope; neither was in the log. Now both are
    (promo.detector_events), and the replay restores and resets where live did: every change the
    same, through a restart after a saved state, one killed between its logged inputs and its save,
    and a note on a scope with an incident open."""
    import asyncio
    import shutil

    from streams.alerts import store as alert_store
    from streams.alerts.runner import AlertRunner, replay_log

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 6.0}  # interactions a second
    per_event = [1.0, 0.1, 0.05, 500.0, 0.02]
    start = T_NOW - 1800.0
    # app stops for 5 min at T_NOW; ads falls to a tenth from T_NOW + 420 (ops switched it down: the
    # note at T_NOW + 600 says so, and it stays down).
    clock = {"now": start}

    def sent(leaf: tuple[str, str], t: float) -> float:  # interactions of `leaf` up to event time t
        if leaf == ("c1", "app"):
            return rates[leaf] * (t - max(0.0, min(t, T_NOW + 300) - T_NOW))
        if leaf == ("c1", "ads"):
            return rates[leaf] * (t - 0.9 * max(0.0, t - (T_NOW + 420)))
        if leaf == ("c1", "wechat"):  # stops for 3 min at +2000
            return rates[leaf] * (t - max(0.0, min(t, T_NOW + 2180) - (T_NOW + 2000)))
        return rates[leaf] * t

    def window() -> list[tuple[str, str, int, list[float]]]:
        return _minutes_window(clock["now"], list(rates), sent, per_event)

    note = alert_store.Silence("note", "", "c1", "ads", T_NOW + 600, "ads budget cut", "ops", T_NOW + 600)
    logged: list[tuple[float, float, float, dict[Any, Any]]] = []
    events: list[alert_store.DetectorEvent] = []
    plain = _store_stand_in(window, lambda *a: logged.append((a[1], a[2], a[3], dict(a[4]))))

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.log_events:
            events.extend(e._replace(at=args[1]) for e in args[2])
            return None
        if fn is alert_store.read_silences:
            return [note] if args[1] <= note.created_at <= clock["now"] else []  # made at +600
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    state = tmp_path / "s.json"

    def runner() -> AlertRunner:
        return AlertRunner(None, call, freshness, state_path=state, clock=lambda: clock["now"])

    def seen(alerts: list[Any]) -> list[tuple[Any, ...]]:
        return [(a.id, a.metric, a.scope, a.detected_at, a.resolved_at, round(a.expected, 6), tuple(a.children))
                for a in alerts]  # fmt: skip

    async def go() -> dict[str, tuple[Any, ...]]:
        live: dict[str, tuple[Any, ...]] = {}
        one = runner()
        while clock["now"] < T_NOW + 2400:
            if clock["now"] in (T_NOW + 120, T_NOW + 1700):  # restarted: mid-outage, and after 1000 s down
                one = runner()
            if clock["now"] == T_NOW + 500:  # killed after logging +500's inputs, before saving its state
                shutil.copy(state, tmp_path / "before.json")
                for row in seen(await one.tick()):
                    live[row[0]] = row
                shutil.copy(tmp_path / "before.json", state)
                one = runner()
            elif not T_NOW + 700 < clock["now"] < T_NOW + 1700:
                for row in seen(await one.tick()):
                    live[row[0]] = row
            clock["now"] += 10.0
        return live

    live = asyncio.run(go())
    assert [e.kind for e in events] == ["start", "restore", "restore", "reset", "start"], events
    opened = {(row[2].channel, row[1]) for row in live.values()}
    assert ("app", "interactions") in opened and ("ads", "interactions") in opened, live
    assert all(row[4] is not None for row in live.values() if row[2].channel == "app"), live
    replayed = {a.id: seen([a])[0] for a in replay_log(logged, events, None, {}).values()}
    assert replayed == live
    # Without the fresh start after the long stop, or without the note, it is another detector: what a
    # replay saw before they were logged. (A restore from saved state rebuilds the same baselines; what
    # it changes is which steps count: the one logged before the kill, and not saved, does not.)
    for kind in ("start", "reset"):
        some = [e for e in events if e.kind != kind]
        assert {a.id: seen([a])[0] for a in replay_log(logged, some, None, {}).values()} != live, kind


def test_a_replay_begun_at_a_restore_lists_what_was_open_across_it(tmp_path: Path) -> None:
    """A review: a replay that began at a restore listed only the incidents that changed after it; an
    outage open across the restart, still firing at --to, was missing (and `--write` stored nothing)."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.runner import AlertRunner, replay_log

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 6.0}
    clock = {"now": T_NOW - 1800.0}

    def sent(leaf: tuple[str, str], t: float) -> float:  # app stops for good at T_NOW
        return rates[leaf] * (min(t, T_NOW) if leaf == ("c1", "app") else t)

    logged: list[Any] = []
    events: list[alert_store.DetectorEvent] = []
    plain = _store_stand_in(lambda: _minutes_window(clock["now"], list(rates), sent, [1.0, 0.1, 0.05, 500.0, 0.02]),
                            lambda *a: logged.append((a[1], a[2], a[3], dict(a[4]))))  # fmt: skip

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.log_events:
            events.extend(e._replace(at=args[1]) for e in args[2])
            return None
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    def runner() -> AlertRunner:
        return AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])

    async def go() -> AlertRunner:
        one = runner()
        while clock["now"] < T_NOW + 900:
            if clock["now"] == T_NOW + 600:
                one = runner()  # restarted, the outage open
            await one.tick()
            clock["now"] += 10.0
        return one

    last = asyncio.run(go())
    firing = {a.id for a in last.detector.firing() if a.kind == "drop"}
    assert firing and [e.at for e in events if e.kind == "restore"] == [T_NOW + 600], events
    # `promo alerts replay --from <restart + 60 s>`: it begins at the restore
    seen = replay_log([e for e in logged if e[0] >= T_NOW + 600], [e for e in events if e.at >= T_NOW + 600], None, {})
    assert firing <= set(seen) and all(seen[i].resolved_at is None for i in firing), (firing, set(seen))


def test_a_replay_runs_each_stretch_with_the_plan_and_schedule_live_had_then(tmp_path: Path) -> None:
    """A replay ran with the plan and schedule stored now: over a time before the last import it was
    another detector than live. Live began with a plan that foresaw a campaign's fall to a tenth at
    T_NOW + 300 (no alert), then took a flat plan at T_NOW + 1200 and a schedule that ends the
    campaign at T_NOW + 1800. Each start, restore and replan now names its plan (by version) and
    schedule, and the replay takes them: the same incidents as live. With the plan and schedule
    stored now instead, the planned fall is an outage."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.detector import METRICS
    from streams.alerts.plan import iso_utc, parse_plan_csv
    from streams.alerts.runner import AlertRunner, replay_log

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 6.0}
    per_event = [1.0, 0.1, 0.05, 500.0, 0.02]
    start, fall = T_NOW - 1800.0, T_NOW + 300.0

    def sent(leaf: tuple[str, str], t: float) -> float:  # every channel falls to a tenth at `fall`
        return rates[leaf] * (t - 0.9 * max(0.0, t - fall))

    def plan_csv(falls: bool) -> str:  # the total, the campaign and each channel
        rows = ["minute,metric,expected,campaign_id,channel"]
        scopes = [("", "", 46.0), ("c1", "", 46.0)] + [(c, ch, rate) for (c, ch), rate in rates.items()]
        for minute in range(int(start), int(T_NOW + 3600), 60):
            for campaign, channel, rate in scopes:
                level = rate * 60 * (0.1 if falls and minute >= fall else 1.0)
                rows += [
                    f"{iso_utc(minute)},{m},{level * k:.3f},{campaign},{channel}"
                    for m, k in zip(METRICS, per_event, strict=True)
                ]
        return "\n".join(rows) + "\n"

    # promo.plans and promo.campaign_names as they change: (imported at, plan), (from, schedule)
    plans = [(start - 60, plan_csv(True)), (T_NOW + 1200, plan_csv(False))]
    schedules = [(start - 60, {}), (T_NOW + 1200, {"c1": (None, T_NOW + 1800)})]
    clock = {"now": start}
    logged: list[Any] = []
    events: list[alert_store.DetectorEvent] = []
    plain = _store_stand_in(lambda: _minutes_window(clock["now"], list(rates), sent, per_event),
                            lambda *a: logged.append((a[1], a[2], a[3], dict(a[4]))))  # fmt: skip

    def newest(rows: list[tuple[float, Any]]) -> tuple[float, Any]:
        return [r for r in rows if r[0] <= clock["now"]][-1]

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.log_events:
            events.extend(e._replace(at=args[1]) for e in args[2])
            return None
        if fn is alert_store.plan_version:
            return newest(plans)[0]
        if fn is alert_store.read_plan:
            return newest(plans)
        if fn is alert_store.read_schedule:
            return newest(schedules)[1]
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    def runner() -> AlertRunner:
        return AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"])

    def seen(alerts: Any) -> dict[str, tuple[Any, ...]]:
        return {a.id: (a.metric, a.scope, a.detected_at, a.resolved_at, round(a.expected, 6)) for a in alerts}

    async def go() -> dict[str, tuple[Any, ...]]:
        live: dict[str, tuple[Any, ...]] = {}
        one = runner()
        while clock["now"] < T_NOW + 2400:
            if clock["now"] == T_NOW + 1500:
                one = runner()  # restarted after the new plan: the restore names it
            live.update(seen(await one.tick()))
            clock["now"] += 10.0
        return live

    live = asyncio.run(go())
    assert [(e.kind, alert_store.read_detector_inputs(e.inputs)) for e in events] == [
        ("start", (start - 60, {})),
        ("replan", (T_NOW + 1200, {"c1": (None, T_NOW + 1800)})),
        ("restore", (T_NOW + 1200, {"c1": (None, T_NOW + 1800)})),
    ], events
    assert not [a for a in live.values() if a[2] < T_NOW + 1200], live  # the fall was planned
    stored = {version: parse_plan_csv(text) for version, text in plans}
    now_plan, now_schedule = stored[T_NOW + 1200], schedules[-1][1]
    assert seen(replay_log(logged, events, now_plan, now_schedule, plans=stored).values()) == live
    # With the plan and schedule stored now, as before: an outage at the planned fall
    before = seen(replay_log(logged, events, now_plan, now_schedule).values())
    assert [a for a in before.values() if fall <= a[2] < T_NOW + 1200], before


@pytest.mark.parametrize("shape", ["stops", "halves then stops"])
def test_an_incident_that_fired_under_a_silence_is_told_when_the_silence_ends(tmp_path: Path, shape: str) -> None:
    """An outside probe: `unsilence` (or a silence running out) said nothing of the outage that fired
    under it until its first reminder, 8.5 minutes later. The room hears of it at the next evaluation,
    once; and its reminders count from then. One that fired as a warning and became critical under the
    silence is news to the room as a whole: told as firing (critical), not as "now critical" of an
    incident it never heard of."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.notify import Robot
    from streams.alerts.runner import REMIND_S, AlertRunner

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 6.0}
    clock = {"now": T_NOW - 1800.0}
    until = T_NOW + (120.0 if shape == "stops" else 480.0)
    silence = alert_store.Silence("silence", "", "c1", "app", until, "planned", "ops", T_NOW - 60)

    def sent(leaf: tuple[str, str], t: float) -> float:  # app stops for good at T_NOW (or halves until T_NOW + 240)
        if leaf != ("c1", "app"):
            return rates[leaf] * t
        if shape == "stops":
            return rates[leaf] * min(t, T_NOW)
        return rates[leaf] * (min(t, T_NOW) + 0.5 * min(max(t - T_NOW, 0.0), 240.0))

    plain = _store_stand_in(lambda: _minutes_window(clock["now"], list(rates), sent, [1.0, 0.1, 0.05, 500.0, 0.02]),
                            lambda *a: None)  # fmt: skip

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.read_silences:
            return [silence]
        if fn is alert_store.read_alerts:
            return []  # nobody acknowledged
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"],
                         robots=[Robot("webhook", "http://127.0.0.1:1/hook")])  # fmt: skip
    queued: list[tuple[float, str, str]] = []

    async def go() -> None:
        while clock["now"] < until + REMIND_S + 60:
            await runner.tick()
            while not runner.outbox.queue.empty():
                note = runner.outbox.queue.get_nowait()
                queued.append((clock["now"], note.alert_id, note.event))
                titles.append(note.message.title)
            clock["now"] += 10.0

    titles: list[str] = []
    asyncio.run(go())
    app = {a.id for a in runner.detector.firing() if a.scope.channel == "app"}
    assert app, runner.detector.firing()
    told = [(at, event.split("@")[0]) for at, alert_id, event in queued if alert_id in app]
    assert told and all(at >= until for at, _ in told), told  # nothing while silenced
    assert told[0][0] == until, told  # at the first evaluation after it ended
    first = titles[[alert_id in app for _, alert_id, _ in queued].index(True)]
    assert first.startswith("【严重】") and "已升级" not in first, first  # critical, as it is now
    if shape != "stops":  # it did fire as a warning first, and was raised under the silence
        raised = [a for a in runner.detector.firing() if a.id in app and math.isfinite(a.raised_at)]
        assert raised and all(a.raised_at < until for a in raised), runner.detector.firing()
        # said as an opening, named as the change it is: the same change told again is known as sent
        assert told[0][1] == "escalated", told
    app_titles = [title for (_, alert_id, _), title in zip(queued, titles, strict=True) if alert_id in app]
    assert not [t for t in app_titles if "已升级" in t], app_titles  # never "now critical" of it
    assert len({(alert_id, event) for _, alert_id, event in queued}) == len(queued), queued
    reminders = [at for at, kind in told if kind == "reminder"]
    assert all(at - until >= REMIND_S for at in reminders), told  # counted from when the room was told


def test_an_incident_that_reopened_under_a_silence_is_told_as_down_again_when_it_ends(tmp_path: Path) -> None:
    """A review point fixed without a test of its own (2026-12-07): app stops, the room is told; it comes
    back and the incident resolves, told; a silence begins and app stops again within minutes, which
    reopens the same incident unheard. When the silence ends, the room hears of it at once, as the
    reopening it is (the "down again" message goes with it)."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.notify import Robot
    from streams.alerts.runner import AlertRunner
    from streams.alerts.scope import Scope

    rates = {("c1", "wechat"): 30.0, ("c1", "app"): 10.0, ("c1", "ads"): 6.0}
    clock = {"now": T_NOW - 1800.0}
    down = [(T_NOW, T_NOW + 180.0), (T_NOW + 330.0, T_NOW + 3600.0)]  # app sends nothing in these spans
    begins, until = T_NOW + 250.0, T_NOW + 600.0
    silence = alert_store.Silence("silence", "", "c1", "app", until, "planned", "ops", begins)

    def sent(leaf: tuple[str, str], t: float) -> float:
        lost = sum(max(0.0, min(t, b) - a) for a, b in down) if leaf == ("c1", "app") else 0.0
        return rates[leaf] * (t - lost)

    plain = _store_stand_in(lambda: _minutes_window(clock["now"], list(rates), sent, [1.0, 0.1, 0.05, 500.0, 0.02]),
                            lambda *a: None)  # fmt: skip

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.read_silences:
            return [silence] if clock["now"] >= begins else []
        if fn is alert_store.read_alerts:
            return []
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    runner = AlertRunner(None, call, freshness, state_path=tmp_path / "s.json", clock=lambda: clock["now"],
                         robots=[Robot("webhook", "http://127.0.0.1:1/hook")])  # fmt: skip
    queued: list[tuple[float, Any]] = []

    async def go() -> None:
        while clock["now"] < until + 60:
            await runner.tick()
            while not runner.outbox.queue.empty():
                queued.append((clock["now"], runner.outbox.queue.get_nowait()))
            clock["now"] += 10.0

    asyncio.run(go())
    app = [a for a in runner.detector.firing() if a.scope == Scope("c1", "app") and a.metric == "interactions"]
    assert app and app[0].opened_at > app[0].detected_at, runner.detector.firing()  # reopened, the same incident
    told = [(at, note.event.split("@")[0], note.reopen) for at, note in queued if note.alert_id == app[0].id]
    kinds = [kind for _, kind, _ in told]
    assert kinds[:2] == ["fired", "resolved"], told  # before the silence
    assert all(not begins <= at < until for at, _, _ in told), told  # nothing while silenced
    assert told[2] == (until, "fired", True), told  # at once when it ends: a reopening, "down again"
    reopened = next(note for at, note in queued if note.alert_id == app[0].id and at == until)
    assert reopened.again is not None and "恢复后再次下跌" in reopened.again.title


def test_a_fresh_start_closes_what_the_store_holds_open_even_after_a_restart_and_a_failed_read(
    tmp_path: Path,
) -> None:
    """A review of `_close_orphans`: a detector started afresh saved its state at its first evaluation (the
    feed's first read hands nothing on) without saying it had yet to close what the store held open, so a
    restart then restored a state that never closed them; and a failed store read there, before the
    changes were told, would have cost their messages. The pending close is saved, and a failed read only
    waits for the next evaluation."""
    import asyncio

    from streams.alerts import store as alert_store
    from streams.alerts.runner import AlertRunner

    clock = {"now": T_NOW}
    state = tmp_path / "s.json"
    failing = {"on": True}
    written: list[Any] = []
    plain = _store_stand_in(lambda: [], lambda *a: None)
    orphan = {"id": "old1", "kind": "drop", "metric": "orders", "campaign_id": "c1", "channel": None,
              "started_at": "2026-11-10T15:00:00.000Z", "detected_at": "2026-11-10T15:01:00.000Z",
              "resolved_at": None, "expected": 100.0, "observed": 0.0, "basis": "history", "severity": "critical",
              "message": "orders on c1 100% below expected", "children": ["all"], "acked_by": None}  # fmt: skip

    async def call(fn: Any, *args: Any) -> Any:
        if fn is alert_store.read_alerts:
            if failing["on"]:
                raise OSError("store down")
            return [orphan] if not written else []
        if fn is alert_store.write_alerts:
            written.extend(args[1])
            return None
        return await plain(fn, *args)

    async def freshness(now: float) -> float | None:
        return 0.0

    def runner() -> AlertRunner:
        return AlertRunner(None, call, freshness, state_path=state, clock=lambda: clock["now"])

    first = runner()
    asyncio.run(first.tick())  # the feed's first read: nothing handed on, the state saved
    assert json.loads(state.read_text())["afresh"] == "no saved state"
    clock["now"] += 10
    second = runner()  # restarted within the minute: the saved state, still to close the orphans
    asyncio.run(second.tick())  # the store's read fails: nothing raised, tried again next time
    assert second.afresh == "no saved state" and written == []
    failing["on"] = False
    clock["now"] += 10
    asyncio.run(second.tick())
    assert second.afresh is None and [(r.id, r.children) for r in written] == [("old1", ("all",))], written
    assert written[0].resolved_at == clock["now"] and "closed unjudged" in written[0].message
