"""How `make test` spreads the suite over its pytest-xdist processes (`--dist loadgroup`).

Every test file is one unit of work, kept in one process and in its own order (each file starts and
stops its own broker, workers and stores; tests that open a chdb store in-process rely on the order).
The live alert tests are another matter: each runs a worker under a steady stream for three to four
minutes of wall clock, mostly waiting for the detector's clock (a 60 s lag, a 45 s warm-up), and uses
little CPU. They share one unit, which goes first, so one process waits through them while the
others work through the rest of the suite on both cores (Makefile: three processes).
"""

from __future__ import annotations

import pytest

# Files whose time is the detector's wall clock, not CPU: one process takes them all, first.
WALL_CLOCK_FILES = (
    "test_alerts_live.py",
    "test_alerts_sigstop.py",
    "test_alerts_two_workers.py",
    "test_alerts_source_stall.py",
)
WALL_CLOCK_GROUP = "alerts-wall-clock"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        group = WALL_CLOCK_GROUP if name in WALL_CLOCK_FILES else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
    # Stable: each file keeps its order; the wall-clock unit is handed out first.
    items.sort(key=lambda item: item.path.name not in WALL_CLOCK_FILES)
