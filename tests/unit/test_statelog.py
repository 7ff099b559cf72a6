"""StateLog: one line when a dependency starts failing, a reminder a minute, one when it recovers."""

from __future__ import annotations

import logging

import pytest

from streams.statelog import StateLog


def test_logs_changes_of_state_and_a_reminder_not_every_retry(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    state = StateLog(logging.getLogger("t"), "ClickHouse", remind_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        for second in range(0, 150, 2):  # a retry every 2 s for 150 s
            now[0] = float(second)
            state.failed("connection refused")
        now[0] = 151.0
        state.recovered()
        state.recovered()  # already fine: nothing more
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "ClickHouse failing: connection refused",
        "ClickHouse still failing after 60 s and 31 attempts: connection refused",
        "ClickHouse still failing after 120 s and 61 attempts: connection refused",
        "ClickHouse recovered after 151 s and 75 failed attempts",
    ]
    assert not state.failing and state.attempts == 0
