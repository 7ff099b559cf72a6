"""Campaigns launched at 00:00 that break in their first minute, on development seeds only (100..129).

    .venv/bin/python -m streams.lab.launchouts [--seeds 100:106]

An outside probe (session eleven) found a campaign out 95% from 10, 30 or 50 s after its 00:00 launch
raised minutes late, or not at all. This builds two-hour nights (23:00 - 01:00 Beijing, no stalls) and,
for the first two campaigns launched at 00:00, one night each with that campaign out 95% on every
metric for 5 minutes from 10, 30 or 50 s after the launch (cycling with the seed). Prints each one's
delay to the first drop alert on the campaign (or the total), the alerts elsewhere on the night (false
alarms: none of them is near an incident), and the totals.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from streams.alerts.scope import METRICS, Scope
from streams.kit.saleday import MIDNIGHT, DayConfig, Incident, make_day
from streams.lab.alerteval import run_detector

OUT_S, DEPTH = 300.0, 0.95


def nights(seed: int) -> list[tuple[str, float, float | None, list[str]]]:
    """(campaign, seconds after the launch, delay to its first alert or None, the alerts elsewhere)."""
    assert 100 <= seed < 130, "dev seeds 100..129 only"
    base = DayConfig(seed=seed, campaigns=10, hours=2.0, stalls=0, late_partitions=0, start=MIDNIGHT - 3600)
    launched = [c for c, (s, _) in make_day(base).schedule.items() if s is not None and s == MIDNIGHT]
    out = []
    for i, campaign in enumerate(launched[:2]):
        after = (10.0, 30.0, 50.0)[(seed + i) % 3]
        onset = MIDNIGHT + after
        day = make_day(replace(base, incidents=(Incident("outage", Scope(campaign), METRICS, onset, OUT_S, DEPTH),)))
        fired, _, _ = run_detector(day)
        mine = [f for f in fired if f.kind == "drop" and f.scope.campaign_id in (campaign, None)
                and f.start <= onset + OUT_S + 120]  # fmt: skip
        first = min((f.start for f in mine), default=None)
        elsewhere = [f"{f.scope.label()} {f.metric} at {f.start - MIDNIGHT:.0f} s ({f.how})" for f in fired
                     if f not in mine]  # fmt: skip
        out.append((campaign, after, None if first is None else first - onset, elsewhere))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="100:106", help="development seeds FROM:TO (within 100..129)")
    args = parser.parse_args()
    lo, hi = (int(x) for x in args.seeds.split(":"))
    delays, others, n = [], 0, 0
    for seed in range(lo, hi):
        for campaign, after, delay, elsewhere in nights(seed):
            n += 1
            others += len(elsewhere)
            said = "missed" if delay is None else f"raised {delay:.0f} s after the onset"
            print(f"seed {seed} {campaign} out from {after:.0f} s after 00:00: {said}; {len(elsewhere)} elsewhere")
            for line in elsewhere:
                print(f"    {line}")
            if delay is not None:
                delays.append(delay)
    median = sorted(delays)[len(delays) // 2] if delays else None
    print(f"caught {len(delays)} of {n}; median delay {median} s; alerts elsewhere {others}")


if __name__ == "__main__":
    main()
