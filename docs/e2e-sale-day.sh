#!/bin/bash
# docs/ALERTS.md, "End to end, by hand, once": 20 minutes of a labelled sale day around 00:00 through the
# embedded broker and a worker with --alerts at real speed, then list, replay and verify. About 22 minutes.
# Output in $R (default /tmp/e2e). Run from anywhere after `make install`.
set -u
R=${R:-/tmp/e2e}; rm -rf $R; mkdir -p $R; cd "$(dirname "$0")/.."
P=.venv/bin/promo
export PROMO_DATA_DIR=$R PROMO_BROKER=kafka://127.0.0.1:19392 PROMO_WEB_PORT=16066 PROMO_VIEW_PORT=18080 PROMO_ALERTS_LANGUAGE=en
$P broker --port 19392 > $R/broker.log 2>&1 &
BROKER=$!
sleep 5
$P worker --alerts --loglevel info > $R/worker.log 2>&1 &
WORKER=$!
sleep 20
cat > $R/incidents.json <<'J'
[{"kind": "outage", "scope": "c08/wechat", "metrics": ["orders", "gmv_fen", "new_users"], "start": "2026-11-10T16:05:00Z", "duration": 180, "depth": 1.0, "shape": "step"},
 {"kind": "drop", "scope": "c03", "metrics": ["interactions", "shares", "orders", "gmv_fen", "new_users"], "start": "2026-11-10T16:09:00Z", "duration": 240, "depth": 0.6, "shape": "step"}]
J
cat > $R/prep.py <<'PY'
"""Shift the sale day's schedule and plan onto the real clock for the e2e run; print the shift."""
import datetime as dt
import sys
import time

from streams.alerts.plan import Plan, parse_utc
from streams.kit.saleday import DayConfig, make_day

root, at = sys.argv[1], sys.argv[2]
day = make_day(DayConfig(seed=20261111, base_rate=3000, stalls=0, late_partitions=0))
go = (int(time.time()) // 60 + 2) * 60  # a whole minute, far enough to import first
shift = go - parse_utc(at)
iso = lambda s: None if s is None else dt.datetime.fromtimestamp(s + shift, dt.UTC).isoformat().replace("+00:00", "Z")
with open(f"{root}/campaigns.csv", "w") as f:
    f.write("campaign_id,name,starts_at,ends_at\n")
    for c, (a, b) in sorted(day.schedule.items()):
        f.write(f"{c},活动{c},{iso(a) or ''},{iso(b) or ''}\n")
lo = int((parse_utc(at) - 1800 - day.plan.t0) // 60)  # 30 min before the slice to 90 min after
hi = lo + 120
plan = Plan(day.plan.t0 + lo * 60 + shift, {k: day.plan.rates[i][lo:hi] for i, k in enumerate(day.plan.keys)})
with open(f"{root}/plan.csv", "w") as f:
    f.write(plan.to_csv())
print(go, shift)
PY
read GO SHIFT < <(.venv/bin/python $R/prep.py $R 2026-11-10T15:52:00Z)
echo "$SHIFT" > $R/shift
$P campaigns import $R/campaigns.csv > $R/campaigns.log 2>&1
$P plan import $R/plan.csv > $R/plan.log 2>&1
while [ "$(date -u +%s)" -lt "$GO" ]; do sleep 0.2; done
date -u +%s > $R/started
$P simulate --scenario sale-day --at 2026-11-10T15:52:00Z --duration 1200 --seed 20261111 --scale 3000 \
  --incidents $R/incidents.json --labels $R/labels.json --truth $R/truth.json > $R/simulate.log 2>&1
date -u +%s > $R/sent
sleep 60
$P alerts list --json --since 2020-01-01T00:00:00Z > $R/live.jsonl 2> $R/list.err
FROM=$(date -u -d @$(( $(cat $R/started) - 60 )) +%Y-%m-%dT%H:%M:%SZ)
$P alerts replay --from $FROM --to +1m --json > $R/replay.jsonl 2> $R/replay.err
$P verify --truth $R/truth.json > $R/verify.log 2>&1
kill $WORKER; wait $WORKER; kill $BROKER; wait $BROKER
echo done > $R/done
