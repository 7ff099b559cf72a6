"""The kill loop's faults, hooked into a worker from outside at the product's crash points.

Installed by `promo worker` (`install_from_env`) when its environment asks; the product only offers
the hook points (streams/crashpoints.py lists them) and reads none of these variables:

- `PROMO_CRASH_AT=NAME[:N]`   the process SIGKILLs itself the N-th time (default 1) it reaches the
                              boundary NAME: no goodbye, no flush, no commit, exactly as an outside
                              `kill -9` at that instant (the kill loop of `promo chaos`)
- `PROMO_PAUSE_AT=NAME[:N]`   it freezes itself there with SIGSTOP instead (the kill loop's zombie;
                              the test resumes it with SIGCONT)
- `PROMO_TRACE_AT=NAME[,NAME...]` it writes `crash point reached: NAME` to stderr each time it passes
                              one of them, so a test waits for a step instead of sleeping a guess
- `PROMO_DROP_FIRST_FETCH=1`  the consumer drops, unacked, the first fetched batch of every partition
                              in every assignment, after the fetcher's position has moved past it,
                              as it drops records fetched across a rebalance: a consumer that then
                              hands the next batch on loses the dropped records (test_rebalance_gap)
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Mapping

from streams import crashpoints
from streams.crashpoints import NAMES, DropFetched

CRASH_AT = "PROMO_CRASH_AT"
PAUSE_AT = "PROMO_PAUSE_AT"
DROP_FIRST_FETCH = "PROMO_DROP_FIRST_FETCH"
TRACE_AT = "PROMO_TRACE_AT"
VARIABLES = (CRASH_AT, PAUSE_AT, TRACE_AT, DROP_FIRST_FETCH)
TRACE_LINE = "crash point reached: "


def parse(spec: str) -> tuple[str, int] | None:
    """`NAME[:N]` -> (NAME, N); None for an empty spec. A bad spec is a ValueError saying why."""
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in NAMES:
        raise ValueError(f"unknown crash point {name!r}; known: {', '.join(NAMES)}")
    n = int(count) if count else 1
    if n < 1:
        raise ValueError(f"crash point count must be >= 1, got {n}")
    return name, n


class CrashPoints:
    """Counts arrivals at the armed boundary and signals the process at the chosen one: SIGKILL, or
    SIGSTOP for `PROMO_PAUSE_AT` (a worker frozen mid-step, as a zombie is, until a test sends SIGCONT)."""

    def __init__(self, spec: str = "", sig: signal.Signals = signal.SIGKILL) -> None:
        parsed = parse(spec)
        self.armed: dict[str, int] = {} if parsed is None else {parsed[0]: parsed[1]}
        self.sig = sig

    def reached(self, name: str) -> None:
        left = self.armed.get(name)
        if left is None:
            return
        if left > 1:
            self.armed[name] = left - 1
            return
        del self.armed[name]  # once: a paused process that is resumed goes on
        os.kill(os.getpid(), self.sig)

    def install(self) -> None:
        """Hook this into the product's crash point it is armed at (nothing when unarmed)."""
        for name in self.armed:
            crashpoints.install(name, functools.partial(self.reached, name))


def trace(name: str) -> None:
    """The hook of `PROMO_TRACE_AT`: one line on stderr, flushed (the worker's log is a file)."""
    sys.stderr.write(f"{TRACE_LINE}{name}\n")
    sys.stderr.flush()


def drop_first_fetch() -> DropFetched:
    """Drop the first fetched batch of each partition in each assignment (a consumer generation),
    while the assignment has handed it none."""
    dropped: dict[object, int] = {}  # partition -> the generation its batch was dropped in

    def drop(tp: object, handed: bool, generation: int) -> bool:
        if handed or dropped.get(tp) == generation:
            return False
        dropped[tp] = generation
        return True

    return drop


def install_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Install what the environment asks for; returns the variables that were set (for the log).
    A bad spec is a ValueError saying why (the worker then refuses to start)."""
    installed = []
    # Crash before pause at one boundary, as the product did when it read these variables itself.
    for var, sig in ((CRASH_AT, signal.SIGKILL), (PAUSE_AT, signal.SIGSTOP)):
        spec = environ.get(var, "")
        if spec:
            CrashPoints(spec, sig).install()
            installed.append(f"{var}={spec}")
    traced = [name.strip() for name in environ.get(TRACE_AT, "").split(",") if name.strip()]
    for name in traced:
        crashpoints.install(name, functools.partial(trace, name))  # an unknown name: its ValueError
    if traced:
        installed.append(f"{TRACE_AT}={','.join(traced)}")
    drop = environ.get(DROP_FIRST_FETCH, "")
    if drop not in ("", "0", "1"):  # accepted in silence before (an outside probe)
        raise ValueError(f"{DROP_FIRST_FETCH} must be 1 (or 0, or unset), not {drop!r}")
    if drop == "1":
        crashpoints.install_drop_fetched(drop_first_fetch())
        installed.append(f"{DROP_FIRST_FETCH}=1")
    return installed
