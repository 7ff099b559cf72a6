"""The development sale days fed as the live runner is fed, on development seeds only (100..129).

    .venv/bin/python -m streams.lab.livearrival [--seeds 100:130] [--procs 2] [--all-arrived]

The scoreboard hands the detector, each step, exactly the counts of the span it settles. Live, the
runner reads counts by event-time minute from the store, where the partitions that are not behind
have written past `settled_until`, and hands them on through `Feed` (streams/alerts/feed.py). This
replays the days that way: each evaluation the store holds every leaf's events up to where its
partitions have got (all on time but SETTLE_S; during a stall all stand where settled_until does;
during a late period one of PARTITIONS is its delay behind, the rest on time), by minute; the
runner's Feed and build_step make the Step. `--all-arrived` hands on everything that arrived (the
runner before 2026-12-06). Scored with alerteval.score_day: per day, false alarms, drop alerts in
stalls and late periods, incidents caught; then the totals.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from streams.alerts.detector import METRICS, Step
from streams.alerts.feed import MINUTE_S, WINDOW_S, Feed
from streams.alerts.freshness import SETTLE_S
from streams.alerts.runner import build_step
from streams.kit.saleday import STEP_S, SaleDay
from streams.lab.alerteval import EvalConfig, run_detector, score_day
from streams.lab.devscore import load_day

PARTITIONS = 4  # a late period holds back one of these
WRITE_S = 0.5  # an event reaches the store this long after it happened, when nothing is behind


def live_steps(day: SaleDay, hold_back: bool = True) -> Iterator[Step]:
    at, settled, lag = day.settled_timeline()
    leaves = [i for i, s in enumerate(day.scopes) if s.channel is not None]
    known = [(str(day.scopes[i].campaign_id), str(day.scopes[i].channel)) for i in leaves]
    counts = day.truth[leaves]  # (leaf, metric, 10 s bucket)
    cum = np.concatenate([np.zeros((*counts.shape[:2], 1)), np.cumsum(counts, axis=2)], axis=2)
    n = counts.shape[2]

    def upto(t: float) -> Any:  # every leaf's events with event time <= t (even within a bucket)
        u = min(max((t - day.t0) / STEP_S, 0.0), float(n))
        i = min(int(u), n - 1)
        return cum[:, :, i] + (u - i) * counts[:, :, i]

    feed = Feed(len(METRICS))
    for k in range(len(at)):
        now, until = float(at[k]), float(settled[k])
        delay = next((d for s, e, d in day.late if s <= now < e), 0.0)
        stalled = any(s <= now < e for s, e in day.stalls)
        on_time = until + SETTLE_S if stalled else now - WRITE_S
        rows = []
        first = day.t0 + max(0, int((now - WINDOW_S - day.t0) // MINUTE_S)) * MINUTE_S
        for minute in np.arange(first, now + MINUTE_S, MINUTE_S):
            m = float(minute)

            def bucket(reached: float, m: float = m) -> Any:
                return upto(min(reached, m + MINUTE_S)) - upto(m) if reached > m else 0.0

            held = (1 - 1 / PARTITIONS) * bucket(on_time) + (1 / PARTITIONS) * bucket(on_time - delay)
            if np.any(held):
                rows += [(c, ch, int(m), list(held[i])) for i, (c, ch) in enumerate(known)]
        # held back to the partitions' mean reach, as the worker's Lag gives it; or all that arrived
        got = feed.update(rows, now, until, on_time - delay / PARTITIONS) if hold_back else feed.update(rows, now)
        if got is not None:
            yield build_step(now, until, float(lag[k]), got, known)


def one(args: tuple[int, bool]) -> dict[str, Any]:
    seed, hold_back = args
    assert 100 <= seed < 130, "dev seeds 100..129 only"
    day = load_day(seed, replace(EvalConfig(), seed=seed))  # devscore's cache (DEVSCORE_CACHE)
    fired, _, _ = run_detector(day, steps=live_steps(day, hold_back))
    res = score_day(day, fired)
    return {
        "seed": seed, "false": res.false_alarms, "stall_drops": res.stall_drops,
        "caught": sum(1 for r in res.incidents if r[2] is not None), "incidents": len(res.incidents),
        "false_list": [(f.scope.label(), f.metric, round(f.start - day.t0), f.how) for f in res.false_list],
        "late": [(round(s - day.t0), round(e - day.t0), round(d)) for s, e, d in day.late],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="100:130")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--all-arrived", action="store_true", help="hand on everything that arrived (before 2026-12-06)")
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.seeds.split(":"))
    if not 100 <= lo < hi <= 130:
        raise SystemExit("dev seeds are 100..129 only")
    with mp.get_context("fork").Pool(a.procs) as pool:
        out = []
        for r in pool.imap(one, [(s, not a.all_arrived) for s in range(lo, hi)]):
            out.append(r)
            print(f"{r['seed']}: false {r['false']}, drops in stalls/late {r['stall_drops']}, "
                  f"caught {r['caught']}/{r['incidents']}, late {r['late']}", flush=True)  # fmt: skip
            for f in r["false_list"]:
                print(f"    false: {f}")
    days = len(out)
    print(f"== {'all arrived' if a.all_arrived else 'held back until settled'}, {days} days: "
          f"false alarms {sum(r['false'] for r in out)} ({sum(r['false'] for r in out) / days:.2f} a day), "
          f"drops in stalls/late {sum(r['stall_drops'] for r in out)}, caught "
          f"{sum(r['caught'] for r in out)}/{sum(r['incidents'] for r in out)}")  # fmt: skip


if __name__ == "__main__":
    main()
