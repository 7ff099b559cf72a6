"""The order in which `make test` hands test files to its pytest-xdist processes.

Each file is one unit of work (`--dist loadfile`; the SPLIT_FILES below, pure, test by test), kept in
one process and in its own order: every file starts and stops its own broker, workers and stores, and
tests that open a chdb store in-process rely on the order. The live alert files go first: each runs a
worker under a steady stream for three to four minutes of wall clock, mostly waiting for the
detector's clock (a 60 s lag, a 45 s warm-up), with little CPU; begun last (xdist's default hands
out the files with most tests first) they were the suite's tail.

(`--dist loadgroup`, to keep them all on one process, does not group at all with pytest 9.2 and
pytest-xdist 3.8: xdist marks a group by rewriting `item._nodeid`, which pytest 9 no longer reads,
so every test became a unit of its own. Seen 2026-12-06.)
"""

from __future__ import annotations

from typing import Any

import pytest

WALL_CLOCK_FILES = (
    "test_alerts_live.py",
    "test_alerts_sigstop.py",
    "test_alerts_two_workers.py",
    "test_alerts_source_stall.py",
)


# Pure unit-test files (no broker, no store, no module fixture) of many long tests: each test is a unit
# of work of its own. As one unit each, the detector's and the sale days' files (about 7 and 6 minutes
# of one process on 2 cores) were the suite's tail when handed out late.
SPLIT_FILES = ("test_detector.py", "test_saleday.py")


@pytest.hookimpl(optionalhook=True)  # pytest without xdist (`-p no:xdist`) does not know the hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, but the SPLIT_FILES' tests one by one (only when the suite runs under xdist)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SplitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path.rsplit("/", 1)[-1] in SPLIT_FILES else path

    return SplitScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Stable: each file keeps its order; the wall-clock files are handed out first.
    items.sort(key=lambda item: item.path.name not in WALL_CLOCK_FILES)
