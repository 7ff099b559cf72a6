"""Whole campaigns falling in the first minutes of the surge, on development seeds only (100..129).

    .venv/bin/python -m streams.lab.nightdrops [--seeds 100:115]

An outside probe (2026-12-07) ran its own incidents through the broker: a campaign falling 55% at 00:05
for 4 minutes was read "35% below expected", and one ramping to -60% from 23:58 was missed. This builds
two-hour nights (23:00 - 01:00 Beijing, no stalls) with three incidents on every metric: a 55% drop at
00:05 for 4 min of the first campaign running since the eve, a ramp of the last to -60% over 7 min from
23:58, and a 55% drop at 00:12 for 5 min of a campaign launched at 00:00 (or the second running one).
Prints each incident's delay and the bases that caught it, caught counts, and any false alarm.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from streams.alerts.scope import METRICS, Scope
from streams.kit.saleday import MIDNIGHT, DayConfig, Incident, make_day
from streams.lab.alerteval import run_detector, score_day


def night(
    seed: int,
) -> tuple[list[tuple[int, str, str, float | None, list[str]]], list[tuple[str, str | None, float, str]]]:
    assert 100 <= seed < 130, "dev seeds 100..129 only"
    base = DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0)
    schedule = make_day(base).schedule
    running = [c for c, (starts, _) in schedule.items() if starts is None]
    launched = [c for c, (starts, _) in schedule.items() if starts == MIDNIGHT]
    first, last, third = running[0], running[-1], (launched[-1] if launched else running[1])
    incidents = (
        Incident("drop", Scope(first), METRICS, MIDNIGHT + 300, 240, 0.55),
        Incident("ramp", Scope(last), METRICS, MIDNIGHT - 120, 690, 0.6, "ramp", 420.0),
        Incident("drop", Scope(third), METRICS, MIDNIGHT + 720, 300, 0.55),
    )
    day = make_day(replace(base, incidents=incidents))
    fired, _, _ = run_detector(day)
    result = score_day(day, fired)
    rows = []
    for incident, _, delay, _, _ in result.incidents:
        hows = sorted({f.how for f in fired if f.kind == "drop" and f.scope == incident.scope})
        rows.append((seed, incident.kind, incident.scope.label(), delay, hows[:3]))
    false = [(f.scope.label(), f.metric, (f.start - MIDNIGHT) / 60, f.how) for f in result.false_list]
    return rows, false


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="100:115")
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.seeds.split(":"))
    if not 100 <= lo < hi <= 130:
        raise SystemExit("dev seeds are 100..129 only")
    rows: list[tuple[int, str, str, float | None, list[str]]] = []
    false: list[tuple[int, str, str | None, float, str]] = []
    for seed in range(lo, hi):
        found, wrong = night(seed)
        rows += found
        false += [(seed, *x) for x in wrong]
    for row in rows:
        print(*row)
    for kind in ("drop", "ramp"):
        delays = [d for _, k, _, d, _ in rows if k == kind]
        caught = [d for d in delays if d is not None]
        median = f"{np.median(caught):.0f} s" if caught else "-"
        print(f"{kind}: caught {len(caught)} of {len(delays)}, median {median}")
    print(f"false alarms: {len(false)} in {hi - lo} nights")
    for f in false:
        print("  false", f)


if __name__ == "__main__":
    main()
