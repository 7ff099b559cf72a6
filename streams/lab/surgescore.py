"""Drops in the first 15 minutes after 00:00, on development seeds only (100..129).

    .venv/bin/python -m streams.lab.surgescore [--seeds 100:130] [--procs 2]

The scoreboard places a quarter of its incidents in the first hour, but none on a campaign within
10 min of its start, and its days are long, so the minutes a war room watches hardest weigh little in
it. This builds 2-hour days (23:00 - 01:00 Beijing, no stalls) with four incidents each, onsets
between 00:02 and 00:15: two drops of 50-70% and one outage (85-100%) per three, 3-10 min long, on
any scope expecting >= 30 events a minute then, campaigns starting at 00:00 included from a minute
after their start. Scored with alerteval.score_day; prints caught share and median delay per kind,
split by whether the campaign started at 00:00, the misses and the false alarms.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from dataclasses import replace
from typing import Any

import numpy as np

from streams.kit.saleday import MIDNIGHT, DayConfig, Incident, SaleDay, make_day
from streams.lab.alerteval import fits, run_detector, score_day

GROUPS = {
    "traffic": ("interactions", "shares", "orders", "gmv_fen", "new_users"),
    "payments": ("orders", "gmv_fen", "new_users"),
    "shares": ("shares",),
}


def place(day: SaleDay, rng: np.random.Generator, n: int) -> list[Incident]:
    out: list[Incident] = []
    for _ in range(500):
        if len(out) >= n:
            break
        start = float(rng.uniform(MIDNIGHT + 120, MIDNIGHT + 900))
        kind = ("drop50", "drop50", "outage")[len(out) % 3]
        depth = float(rng.uniform(0.5, 0.7)) if kind == "drop50" else float(rng.uniform(0.85, 1.0))
        duration = float(rng.uniform(180, 600))
        scope = day.scopes[int(rng.integers(len(day.scopes)))]
        group = list(GROUPS)[int(rng.integers(len(GROUPS)))]
        metrics = GROUPS[group]
        if fits(day, out, scope, metrics, start, duration, after_start_s=60.0, apart_s=600.0):
            out.append(Incident(f"{kind}:{group}", scope, metrics, start, duration, depth, "step", None))
    return out


def one(seed: int) -> tuple[list[dict[str, Any]], list[tuple[str, str | None, float, str]]]:
    assert 100 <= seed < 130, "dev seeds 100..129 only"
    base = DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0)
    incidents = place(make_day(base), np.random.default_rng(seed + 7), 4)
    day = make_day(replace(base, incidents=tuple(incidents)))
    fired, _, _ = run_detector(day)
    res = score_day(day, fired)
    rows = []
    for inc, _klass, delay, _cov, _resolve in res.incidents:
        starts = day.schedule[inc.scope.campaign_id][0] if inc.scope.campaign_id is not None else None
        rows.append({"seed": seed, "kind": inc.kind, "scope": inc.scope.label(),
                     "onset_min": (inc.start - MIDNIGHT) / 60, "launch": starts == MIDNIGHT,
                     "depth": inc.depth, "duration": inc.duration, "delay": delay})  # fmt: skip
    false = [(f.scope.label(), f.metric, (f.start - MIDNIGHT) / 60, f.how) for f in res.false_list]
    return rows, false


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="100:130")
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.seeds.split(":"))
    if not 100 <= lo < hi <= 130:
        raise SystemExit("dev seeds are 100..129 only")
    with mp.get_context("fork").Pool(a.procs) as pool:
        out = pool.map(one, range(lo, hi), chunksize=1)
    rows = [r for rs, _ in out for r in rs]
    false = [f for _, fs in out for f in fs]
    for kind in ("drop50", "outage"):
        for launch in (False, True):
            sel = [r for r in rows if r["kind"].startswith(kind) and r["launch"] == launch]
            delays = [r["delay"] for r in sel if r["delay"] is not None]
            median = f"{np.median(delays):.0f} s" if delays else "-"
            where = "campaigns starting at 00:00" if launch else "running scopes"
            print(f"{kind:7s} {where:28s} caught {len(delays)} of {len(sel)}, median {median}")
    print(f"false alarms: {len(false)} in {hi - lo} two-hour days")
    for f in false:
        print("  false", f)
    for r in rows:
        if r["delay"] is None:
            print(f"  missed {r['kind']} on {r['scope']} at 00:{r['onset_min']:05.2f}, {100 * r['depth']:.0f}% for "
                  f"{r['duration']:.0f} s (seed {r['seed']})")  # fmt: skip


if __name__ == "__main__":
    main()
