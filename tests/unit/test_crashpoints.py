"""The product's crash points are hook points only; the lab's faults are installed from outside.

streams/crashpoints.py reads no environment: a worker is armed by `promo worker` installing
streams/lab/crash.py's hooks (issue 15). These tests pin both halves: the registry's behaviour with
and without hooks, and the drop-first-fetch fault's choice of batches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from streams import crashpoints
from streams.lab.crash import drop_first_fetch, install_from_env


@pytest.fixture(autouse=True)
def clean_hooks() -> Iterator[None]:
    crashpoints.uninstall()
    yield
    crashpoints.uninstall()


def test_nothing_installed_is_a_no_op() -> None:
    for name in crashpoints.NAMES:
        crashpoints.reached(name)
    assert crashpoints.drop_fetched() is None


def test_hooks_run_in_install_order_and_unknown_names_are_refused() -> None:
    seen: list[str] = []
    crashpoints.install("aggregate.folded", lambda: seen.append("first"))
    crashpoints.install("aggregate.folded", lambda: seen.append("second"))
    crashpoints.reached("aggregate.sent")
    crashpoints.reached("aggregate.folded")
    assert seen == ["first", "second"]
    with pytest.raises(ValueError, match="unknown crash point"):
        crashpoints.install("nowhere", lambda: None)


def test_the_product_reads_no_crash_variables() -> None:
    """Before issue 15's fix, importing streams.crashpoints with PROMO_CRASH_AT set armed it."""
    code = "from streams.crashpoints import reached; reached('sink.written'); print('alive')"
    env = {**os.environ, "PROMO_CRASH_AT": "sink.written", "PROMO_PAUSE_AT": "sink.written"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr


def test_install_from_env_arms_crash_pause_and_drop(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PROMO_CRASH_AT": "commit.after:2", "PROMO_PAUSE_AT": "sink.written", "PROMO_DROP_FIRST_FETCH": "1"}
    killed: list[signal.Signals] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(signal.Signals(sig)))  # not this process
    assert install_from_env(env) == ["PROMO_CRASH_AT=commit.after:2", "PROMO_PAUSE_AT=sink.written",
                                     "PROMO_DROP_FIRST_FETCH=1"]  # fmt: skip
    crashpoints.reached("commit.after")
    assert killed == []
    crashpoints.reached("commit.after")
    crashpoints.reached("sink.written")
    crashpoints.reached("commit.after")  # once: a resumed process goes on
    assert killed == [signal.SIGKILL, signal.SIGSTOP]
    assert crashpoints.drop_fetched() is not None
    assert install_from_env({}) == []


def test_trace_at_writes_a_line_each_time_a_named_point_is_passed(capsys: pytest.CaptureFixture[str]) -> None:
    assert install_from_env({"PROMO_TRACE_AT": "aggregate.saved, sink.written"}) == [
        "PROMO_TRACE_AT=aggregate.saved,sink.written"
    ]
    for name in ("aggregate.saved", "commit.after", "aggregate.saved", "sink.written"):
        crashpoints.reached(name)
    assert capsys.readouterr().err.splitlines() == [
        "crash point reached: aggregate.saved", "crash point reached: aggregate.saved",
        "crash point reached: sink.written",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown crash point 'nope'"):
        install_from_env({"PROMO_TRACE_AT": "nope"})


def test_drop_first_fetch_drops_each_partitions_first_batch_once_per_assignment() -> None:
    drop = drop_first_fetch()
    assert drop("p0", False, 1)  # the first batch of p0 in generation 1
    assert not drop("p0", False, 1)  # its next one goes on (the consumer finds the gap and reads it back)
    assert not drop("p1", True, 1)  # a partition already handed a batch is never dropped
    assert drop("p1", False, 2) and drop("p0", False, 2)  # a new assignment: first batches again
    assert not drop("p0", False, 2)
