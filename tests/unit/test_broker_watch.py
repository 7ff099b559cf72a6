"""The broker watch (streams/worker/broker_watch.py): unreachable after a while, back without its
log for good, each change logged once with a reminder, never once per probe. Pure: the clock and
the probes' outcomes are given."""

from __future__ import annotations

import logging

import pytest
from aiokafka import TopicPartition

from streams.worker.broker_watch import BrokerWatch, Probe

BROKER = "127.0.0.1:9092"
CLICKS0, CLICKS1 = TopicPartition("p.clicks", 0), TopicPartition("p.clicks", 1)
REFUSED = Probe({}, error="KafkaConnectionError: Unable to bootstrap")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock) -> BrokerWatch:
    return BrokerWatch(BROKER, after_s=6, remind_s=60, clock=clock, wall=lambda: 1_700_000_000.0 + clock.now)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_unreachable_after_a_while_logged_once_then_reminded(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    w = watch(clock)
    w.observe(Probe({CLICKS0: 5}))
    assert w.problem() is None
    for _ in range(3):  # a blip shorter than `after_s` is not a state
        w.observe(REFUSED)
        clock.now += 2
    assert w.problem() is None and errors(caplog) == []
    w.observe(REFUSED)
    problem = w.problem()
    assert problem is not None and problem["kind"] == "broker_unreachable"
    assert "promo broker" in problem["message"] and BROKER in problem["message"]
    assert problem["detail"].startswith("KafkaConnectionError") and problem["since_ms"] == 1_700_001_000_000
    for _ in range(25):  # 50 s of probes: no new line
        clock.now += 2
        w.observe(REFUSED)
    assert len(errors(caplog)) == 1 and "failing" in errors(caplog)[0]
    clock.now += 12
    w.observe(REFUSED)  # a minute after the first line: one reminder
    assert len(errors(caplog)) == 2 and "still failing" in errors(caplog)[1]
    w.observe(Probe({CLICKS0: 5}))  # back, with its log
    assert w.problem() is None
    # The whole spell, from the first failed probe: 6 + 50 + 12 s, 4 + 25 + 1 probes.
    assert len(errors(caplog)) == 3 and "recovered after 68 s and 30 failed attempts" in errors(caplog)[2]


def test_back_without_its_log_is_final(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    w = watch(clock)
    w.observe(Probe({CLICKS0: 5, CLICKS1: 7}))
    w.observe(Probe({CLICKS0: 6, CLICKS1: 7}))
    assert w.problem() is None
    w.observe(Probe({CLICKS0: 2, CLICKS1: 7}))  # an end offset went back: another log
    problem = w.problem()
    assert problem is not None and problem["kind"] == "broker_reset"
    assert "restart this worker with a fresh store" in problem["message"]
    assert problem["detail"] == "end offsets went back: p.clicks[0] 6 -> 2"
    w.observe(Probe({CLICKS0: 9, CLICKS1: 9}))  # more events later change nothing: the state is the old log's
    assert w.problem() == problem
    assert len(errors(caplog)) == 1 and "came back without its log" in errors(caplog)[0]


def test_topics_gone_is_a_lost_log_but_never_seen_is_not() -> None:
    clock = Clock()
    w = watch(clock)
    w.observe(Probe({}, missing=frozenset({"p.clicks"})))  # not created yet: nothing to lose
    assert w.problem() is None
    w.observe(Probe({CLICKS0: 0}))
    w.observe(Probe({}, missing=frozenset({"p.clicks"})))
    problem = w.problem()
    assert problem is not None and problem["kind"] == "broker_reset" and problem["detail"] == "topics gone: p.clicks"


def test_unreachable_outranks_a_lost_log_while_it_lasts() -> None:
    clock = Clock()
    w = watch(clock)
    w.observe(Probe({CLICKS0: 3}))
    w.observe(Probe({}, missing=frozenset({"p.clicks"})))
    for _ in range(4):
        clock.now += 2
        w.observe(REFUSED)
    assert w.problem() is not None and w.problem()["kind"] == "broker_unreachable"  # type: ignore[index]
    w.observe(Probe({}, missing=frozenset({"p.clicks"})))
    assert w.problem()["kind"] == "broker_reset"  # type: ignore[index]
