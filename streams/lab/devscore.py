"""Development scoreboard for the drop detector: dev seeds only (100..129), never the held-out ones.

    .venv/bin/python -m streams.lab.devscore [--seeds 100:130] [--procs 2] [--set recover_steps=1] [--dump f.json]
        [--no-plan]

Builds the labelled days like `alerteval.run_eval` (EvalConfig defaults except the seed), runs the
detector with an overridable DetectorConfig, scores with score_day / summarise, and prints resolve
median/p95, coverage, caught % and median delay per class, false alarms a day.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import time
from dataclasses import fields, replace
from typing import Any

import numpy as np

from streams.alerts.detector import DEFAULT_CHECKS, Check, DetectorConfig
from streams.lab.alerteval import EvalConfig, make_labelled_day, run_detector, score_day, summarise

CACHE = os.environ.get("DEVSCORE_CACHE", ".promo/devdays")  # the generated days, cached between runs
CLASSES = ("outage-600", "outage-60", "drop50", "drop30", "ramp")


def parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_check(text: str) -> Check:
    """`name=ramp,window_s=600,...,bases=share+ratio` -> Check (a development experiment)."""
    kw: dict[str, Any] = {}
    for item in text.split(","):
        k, v = item.split("=", 1)
        kw[k] = tuple(v.split("+")) if k == "bases" else v if k == "name" else parse_value(v)
    return Check(**kw)


def make_config(overrides: dict[str, Any]) -> DetectorConfig:
    names = {f.name for f in fields(DetectorConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise SystemExit(f"unknown DetectorConfig fields: {sorted(unknown)}")
    return replace(DetectorConfig(), **overrides)


def load_day(seed: int, cfg: EvalConfig):  # type: ignore[no-untyped-def]
    path = os.path.join(CACHE, f"{seed}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301  (our own cache)
    day = make_labelled_day(seed, cfg)
    os.makedirs(CACHE, exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "wb") as fh:
        pickle.dump(day, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return day


def one(args: tuple[int, dict[str, Any], bool]):  # type: ignore[no-untyped-def]
    seed, overrides, plan = args
    assert 100 <= seed < 130, "dev seeds 100..129 only"
    cfg = EvalConfig()
    day = load_day(seed, replace(cfg, seed=seed))
    fired, cpu_ms, wall = run_detector(day, make_config(overrides), plan=plan)
    res = score_day(day, fired)
    res.cpu_ms, res.wall_s = cpu_ms, wall * 24 / cfg.hours
    rows = []
    for inc, klass, delay, cov, resolve in res.incidents:
        rate = max(day.expected_per_minute(inc.scope, m, inc.start) for m in inc.metrics
                   if m in ("interactions", "orders", "shares", "new_users"))  # fmt: skip
        rows.append({"seed": seed, "kind": inc.kind, "class": klass, "scope": inc.scope.label(),
                     "depth": inc.depth,
                     "duration": inc.duration, "rate": rate, "delay": delay, "coverage": cov,
                     "resolve": resolve})  # fmt: skip
    false = [(f.scope.label(), f.metric, f.start, f.how, seed) for f in res.false_list]
    res.false_list = []
    return res, rows, false


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="100:130")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="DetectorConfig field=value")
    ap.add_argument("--label", default="")
    ap.add_argument("--dump", default="")
    ap.add_argument("--no-plan", action="store_true", help="the detector without the day's plan (schedule kept)")
    ap.add_argument("--check", action="append", default=[],
                    help="a trial Check (a default's name replaces that check): "
                         "name=N,window_s=600,baseline_s=1200,depth=0.12,z=4,eps=0.03,"
                         "min_expected=300,history=false,gap_s=0,bases=share+ratio,max_change=2")  # fmt: skip
    a = ap.parse_args()
    lo, hi = (int(v) for v in a.seeds.split(":"))
    seeds = list(range(lo, hi))
    if any(not 100 <= s < 130 for s in seeds):
        raise SystemExit("dev seeds are 100..129 only")
    overrides = {}
    for item in a.set:
        k, v = item.split("=", 1)
        overrides[k] = parse_value(v)
    if a.check:
        trial = {c.name: c for c in (parse_check(text) for text in a.check)}  # a default's name replaces it
        kept = tuple(trial.pop(c.name, c) for c in DEFAULT_CHECKS)
        overrides["checks"] = kept + tuple(trial.values())
    make_config(overrides)
    t = time.time()
    with mp.get_context("fork").Pool(a.procs) as pool:
        out = pool.map(one, [(s, overrides, not a.no_plan) for s in seeds], chunksize=1)
    results = [r for r, _, _ in out]
    rows = [row for _, rs, _ in out for row in rs]
    false = [f for _, _, fs in out for f in fs]
    s = summarise(results, True)
    fi = s["firing"]
    label = f"{a.label or overrides or 'baseline'}{' (no plan)' if a.no_plan else ''}"
    print(f"== {label}  seeds {lo}..{hi - 1}  ({time.time() - t:.0f} s)")
    print(f"resolve median {fi['resolve_median_s']:.0f} s / p95 {fi['resolve_p95_s']:.0f} s; "
          f"coverage {100 * fi['coverage']:.1f}%; false/day {s['false']['per_day']:.2f} ({s['false']['total']}); "
          f"cpu {s['cost']['cpu_ms']:.2f} ms")  # fmt: skip
    for k in CLASSES:
        c = s[k]
        print(f"  {k:11s} n={c['n']:3d} caught {100 * c['caught']:5.1f}%  delay median {c['median_s']:6.1f} s"
              f"  p95 {c['p95_s']:6.1f} s")  # fmt: skip
    per = {}
    for k in CLASSES:
        rs = [r["resolve"] for r in rows if r["class"] == k and r["resolve"] is not None]
        cv = [r["coverage"] for r in rows if r["class"] == k and r["delay"] is not None]
        if rs:
            per[k] = (np.median(rs), np.percentile(rs, 95), max(rs), np.mean(cv))
    print("  resolve by class (median/p95/max, coverage): "
          + "; ".join(f"{k} {m:.0f}/{p:.0f}/{x:.0f} {100 * c:.1f}%" for k, (m, p, x, c) in per.items()))  # fmt: skip
    print(f"  stalls: {s['stalls']}")
    if a.dump:
        with open(a.dump, "w") as fh:
            json.dump({"summary": s, "rows": rows, "false": false, "overrides": overrides}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
