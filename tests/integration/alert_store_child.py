"""Run in a child process by test_alert_store.py (chdb: one engine a process): every read and
write of streams/alerts/store.py on a fresh store, the results printed as JSON."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

from streams.alerts import store as s
from streams.alerts.plan import iso
from streams.sink.clickhouse import ClickHouseStore

# A recent whole minute: the tables' TTLs drop rows older than a week or two on insert.
NOW = float(int(time.time()) // 60 * 60)


def main(path: str) -> None:
    store = ClickHouseStore(f"chdb://{path}")
    store.apply_schema()
    out: dict[str, object] = {"now": NOW}
    minute = int(NOW) - 120
    # Facts through the sink's own insert: two minutes of one leaf, one of another.
    from streams.contract.facts import COUNTERS

    def fact(campaign: str, channel: str, m: int, **counts: int) -> list[object]:
        return [campaign, channel, "feed", 1, m * 1000, *[counts.get(c, 0) for c in COUNTERS]]

    store.insert_wire_rows([fact("双11主会场", "wechat", minute, interactions=5, orders=2, gmv_fen=990),
                            fact("双11主会场", "wechat", minute + 60, interactions=3),
                            fact('it\'s "q"', "app", minute + 60, shares=4)], [], {0: 3})  # fmt: skip
    out["window"] = s.window_rows(store, NOW - 900)
    out["window_after"] = s.window_rows(store, NOW)  # nothing from NOW on
    out["day"] = s.day_series(store, NOW - 3600, NOW)
    s.log_inputs(store, NOW, NOW - 5, 1.5, {("双11主会场", "wechat"): [1, 2, 3, 4, 5]})
    s.log_inputs(store, NOW + 10, NOW + 5, 0.5, {})
    out["inputs"] = [[at, st, lag, sorted([*k, v] for k, v in leaves.items())]
                     for at, st, lag, leaves in s.read_inputs(store, NOW - 1, NOW + 11)]  # fmt: skip
    row = s.AlertRow("a1", "drop", "orders", "双11主会场", "wechat", NOW - 30, NOW, None, 100.0, 10.0,
                     "history", "critical", "orders down 90%", ("双11主会场/wechat",))  # fmt: skip
    lag = s.AlertRow("l1", "lag", None, None, None, NOW - 70, NOW, None, 60.0, 70.0, "freshness", "warning", "lag")
    s.write_alerts(store, [row, lag])
    s.write_alerts(store, [s.AlertRow(**{**row.__dict__, "resolved_at": NOW + 60})])  # a newer version
    out["alerts"] = s.read_alerts(store, NOW - 3600)
    out["firing"] = s.read_alerts(store, None, "live", True)
    out["known"] = [s.known_alert(store, "a1"), s.known_alert(store, "nope")]
    out["resolved_at"] = [s.resolved_at(store, "a1"), s.resolved_at(store, "l1"), s.resolved_at(store, "nope")]
    out["first_ack"] = s.ack(store, "a1", "night-shift", NOW + 2)
    out["second_ack"] = s.ack(store, "a1", "on-call", NOW + 5)  # someone else takes it: the screen shows them
    out["acked"] = [(a["id"], a["acked_by"], a["acked_at"]) for a in s.read_alerts(store, NOW - 3600)]
    # An incident that recovered and broke again (schema v9): first detected 20 min ago and acked then;
    # reopened 100 s ago, its onset 130 s ago. Listed from a --since between the two; no one has
    # acknowledged this opening; then someone does. Grafana's firing table, as the banner.
    first = s.AlertRow("r1", "drop", "shares", "c9", None, NOW - 1230, NOW - 1200, NOW - 900, 50.0, 10.0,
                       "history", "warning", "shares down")  # fmt: skip
    s.write_alerts(store, [first])
    s.ack(store, "r1", "first-shift", NOW - 1100)
    again = s.AlertRow(**{**first.__dict__, "resolved_at": None, "opened_at": NOW - 100, "reopened_from": NOW - 130})
    s.write_alerts(store, [again])
    out["reopened"] = [a for a in s.read_alerts(store, NOW - 600) if a["id"] == "r1"]
    out["iso"] = [iso(NOW - 1200), iso(NOW - 100), iso(NOW - 130)]
    beijing = dt.timezone(dt.timedelta(hours=8))
    out["beijing_reopened_from"] = dt.datetime.fromtimestamp(NOW - 130, beijing).strftime("%m-%d %H:%M:%S")
    from streams.dashboards.grafana import Grid, firing_alerts

    table = firing_alerts(Grid(0, 0, 1, 1))["targets"][0]["rawSql"]
    out["table_before_ack"] = [[r["scope"], r["since"], r["acked_by"]] for r in store.query_rows(table)]
    s.ack(store, "r1", "second-shift", NOW - 50)
    out["reopened_acked"] = [a["acked_by"] for a in s.read_alerts(store, NOW - 600) if a["id"] == "r1"]
    out["table_after_ack"] = [[r["scope"], r["since"], r["acked_by"]] for r in store.query_rows(table)]
    s.add_silence(store, s.Silence("silence", "", "双11主会场", "", NOW + 600, "planned", "ops", NOW))
    s.add_silence(store, s.Silence("note", "orders", "c2", "app", NOW, "coupon ended", "ops", NOW + 1))
    s.add_silence(store, s.Silence("silence", "", "old", "", NOW - 10, "over", "ops", NOW - 100))
    out["silences"] = [x.to_doc() for x in s.read_silences(store, NOW - 1)]
    # Listed (running and recently ended), then one lifted: read back lifted, and no other.
    s.add_silence(store, s.Silence("silence", "orders", "c3", "wechat", NOW + 900, "lift me", "ops", NOW + 2))
    out["listed"] = [x.listing(NOW + 3) for x in s.list_silences(store, NOW + 3)]
    target = next(x for x in s.list_silences(store, NOW + 3) if x.reason == "lift me")
    out["lift_id"] = target.id
    out["lifted"] = s.lift_silence(store, target.id, "on-call", NOW + 5).listing(NOW + 5)
    out["lift_errors"] = []
    for silence_id, at in ((target.id, NOW + 6), ("nope", NOW + 6), (s.list_silences(store, NOW)[-1].id, NOW)):
        try:
            s.lift_silence(store, silence_id, "on-call", at)
        except ValueError as exc:
            out["lift_errors"].append(str(exc))
    read = s.read_silences(store, NOW + 4)
    out["covers"] = [(x.kind, x.reason, *(x.covers("orders", "c3", "wechat", NOW + d) for d in (4, 5))) for x in read]
    out["listed_after"] = [(x["id"], x["active"], x["lifted_at"], x["lifted_by"]) for x in
                           (y.listing(NOW + 6) for y in s.list_silences(store, NOW + 6))]  # fmt: skip
    s.mark_notified(store, "a1", "fired@1", NOW)
    out["notified"] = sorted(s.notified(store, ["a1", "l1"]))
    out["plan_none"] = s.read_plan_and_schedule(store)
    s.save_plan(store, "minute,metric,expected\n", "one", NOW)
    s.save_plan(store, "minute,metric,expected\n2026-11-10T16:00:00Z,orders,5\n", "two", NOW + 1)
    store.upsert_campaigns([("双11主会场", "主会场", int(NOW * 1000), int((NOW + 7200) * 1000), int(NOW * 1000)),
                            ("nameless", "x", None, None, int(NOW * 1000))])  # fmt: skip
    out["plan"] = s.read_plan_and_schedule(store)
    # Each plan by its version (a replay: the plan live had then), and the events that name them
    out["plan_versions"] = [s.read_plan(store), s.read_plan(store, NOW), s.read_plan(store, NOW + 0.5)]
    inputs = s.detector_inputs(NOW, {"双11主会场": (NOW, None)})
    s.log_events(store, NOW + 2, [s.DetectorEvent(0.0, "start", detail="no saved state", inputs=inputs),
                                  s.DetectorEvent(0.0, "reset", "c1", "wechat")])  # fmt: skip
    out["events"] = [
        [e.kind, e.inputs and s.read_detector_inputs(e.inputs)] for e in s.read_events(store, NOW, NOW + 3)
    ]
    out["known_campaign"] = [s.known_campaign(store, c) for c in ("双11主会场", "nameless", 'it\'s "q"', "nope")]
    # Heartbeats: a worker 4 s ago 2 s behind, another 1 s ago caught up, one long gone, the detector.
    out["lag_none"] = s.fleet_lag(store, NOW)
    for ago, name, lag in ((4, "a", 2.0), (1, "b", 0.0), (3600, "gone", 500.0), (1, "detector", 999.0)):
        store.log_status(int((NOW - ago) * 1000), name, 0, "ok", "", lag)
    out["lag"] = s.fleet_lag(store, NOW)
    # Then each partition's lag (schema v6): a names three, one of them 2 s late; b one; then a's newest
    # row names none (a rebalance): its word before still stands.
    beats = ((3.75, "a", 2.0, {"t:0": 2.0, "t:1": 0.25, "t:2": 0.0}), (0.75, "b", 0.0, {"t:3": 0.0}),
             (0.5, "a", 0.0, {}), (0.5, "detector", 9.0, None))  # fmt: skip
    for ago, name, lag, lags in beats:
        store.log_status(int((NOW - ago) * 1000), name, 0, "ok", "", lag, lags)
    out["lag_mean"] = s.fleet_lag(store, NOW)
    store.close_sync()
    json.dump(out, sys.stdout, ensure_ascii=False, default=list)


if __name__ == "__main__":
    main(sys.argv[1])
