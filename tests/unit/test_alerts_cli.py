"""`promo alerts eval` and `promo alerts backtest`: run tiny, check the table's shape and that numbers are computed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from streams.alerts.plan import iso_utc
from streams.lab.alerteval import METHODS, TARGETS
from tests.unit.test_cli import promo

T0 = 1_794_326_400.0


def test_eval_tiny_prints_every_row_and_method() -> None:
    done = promo("alerts", "eval", "--days", "1", "--train-days", "1", "--hours", "2")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(TARGETS)
    assert all(line.count("|") == 3 + len(METHODS) for line in lines)
    assert "false alarms per sale day" in done.stdout and "cost" in done.stdout


def test_eval_json_is_one_object_of_computed_numbers() -> None:
    done = promo("alerts", "eval", "--days", "1", "--train-days", "1", "--hours", "2", "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["methods"]) == set(METHODS)
    detector = report["methods"]["detector"]
    assert detector["cost"]["cpu_ms"] > 0 and detector["cost"]["day_s"] > 0
    assert isinstance(detector["false"]["per_day"], float) and detector["false"]["per_day"] >= 0
    assert set(report["rules"]) == set(METHODS[1:])
    other = json.loads(promo("alerts", "eval", "--days", "1", "--train-days", "1", "--hours", "2", "--seed", "6",
                             "--json").stdout)  # fmt: skip
    assert other["methods"]["detector"]["cost"] != detector["cost"]  # measured, not written down


def _series_csv(path: Path, outage: bool, step_s: int = 60) -> None:
    rng = np.random.default_rng(1)
    rows = ["ts,metric,value,campaign_id,channel"]
    for i in range(int(3 * 3600 / step_s)):
        t = T0 + i * step_s
        for metric, per_min in (("interactions", 3000.0), ("orders", 90.0)):
            lam = per_min * step_s / 60
            if outage and metric == "orders" and T0 + 7200 <= t < T0 + 7800:
                lam *= 0.05
            rows.append(f"{iso_utc(t)},{metric},{rng.poisson(lam)},,")
    path.write_text("\n".join(rows) + "\n")


def test_backtest_finds_the_outage_and_prints_alert_rows(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    _series_csv(series, outage=True)
    done = promo("alerts", "backtest", "--series", str(series), "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    drops = [r for r in rows if r["kind"] == "drop" and r["metric"] == "orders"]
    assert drops, done.stdout
    row = drops[0]
    assert row["campaign_id"] is None and row["channel"] is None
    assert row["detected_at"].endswith("Z") and iso_utc(T0 + 7200) <= row["detected_at"] <= iso_utc(T0 + 7500)
    assert set(row) == {"id", "kind", "metric", "campaign_id", "channel", "started_at", "detected_at", "resolved_at",
                        "opened_at", "reopened_from", "expected", "observed", "basis", "severity", "message",
                        "children", "source", "acked_by", "acked_at"}  # `alerts list --json`'s, no more  # fmt: skip
    assert row["source"] == "backtest"  # which detector raised it (an outside probe: list and replay look alike)
    assert row["expected"] == round(row["expected"], 3)
    assert math.isfinite(row["expected"]) and row["observed"] < row["expected"]


def test_backtest_quiet_history_prints_nothing(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    _series_csv(series, outage=False, step_s=600)
    done = promo("alerts", "backtest", "--series", str(series), "--json")
    assert done.returncode == 0 and done.stdout == "", done.stdout


def test_backtest_bad_files_are_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2026-11-10T16:00:00Z,clicks,1\n")
    done = promo("alerts", "backtest", "--series", str(bad))
    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"promo: error: {bad}: line 3: unknown metric 'clicks'; one of interactions, "
        "shares, orders, gmv_fen, new_users"
    )
    missing = promo("alerts", "backtest", "--series", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    good = tmp_path / "good.csv"
    _series_csv(good, outage=False, step_s=600)
    plan = tmp_path / "plan.csv"
    plan.write_text("minute,metric,expected\n2026-11-10T16:00:00,orders,1\n")
    done = promo("alerts", "backtest", "--series", str(good), "--plan", str(plan))
    assert done.returncode == 2 and f"{plan}: line 2:" in done.stderr and "no UTC offset" in done.stderr


def test_a_backtest_at_a_step_longer_than_the_window_names_the_step_it_judged(tmp_path: Path) -> None:
    # An outside probe: hourly rows, an hour at 0, read "0 vs 60000 over outage-10s".
    series = tmp_path / "hourly.csv"
    values = [60000, 61000, 59000, 60500, 0, 60000]
    series.write_text("ts,metric,value\n" + "".join(f"{iso_utc(T0 + 3600 * i)},orders,{v}\n"
                                                    for i, v in enumerate(values)))  # fmt: skip
    done = promo("alerts", "backtest", "--series", str(series), "--json")
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["severity"] == "critical" and row["started_at"] == iso_utc(T0 + 4 * 3600).replace("Z", ".000Z"), row
    assert " over 1 h (outage-" in row["message"], row["message"]


def _sale_day_csv(seed: int, step_s: int, series: Path, plan: Path) -> dict[str, float]:
    """A clean labelled sale day (the simulator's, no incidents) at `step_s`, every scope as a user's export
    would hold it, and its plan; returns the campaigns' scheduled ends."""
    from streams.alerts.detector import METRICS
    from streams.kit.saleday import STEP_S, DayConfig, make_day

    day = make_day(DayConfig(seed=seed, campaigns=10, hours=24))
    k = step_s // int(STEP_S)
    n = day.buckets // k
    rows = ["ts,metric,value,campaign_id,channel"]
    for si, scope in enumerate(day.scopes):
        for mi, metric in enumerate(METRICS):
            values = day.truth[si, mi, : n * k].reshape(n, k).sum(axis=1)
            rows += [f"{iso_utc(day.t0 + i * step_s)},{metric},{v:.0f},{scope.campaign_id or ''},{scope.channel or ''}"
                     for i, v in enumerate(values)]  # fmt: skip
    series.write_text("\n".join(rows) + "\n")
    plan.write_text(day.plan.to_csv())
    return {c: end for c, (_, end) in day.schedule.items() if end is not None}


def test_a_clean_sale_day_backtested_at_20_min_to_hourly_steps_raises_only_the_unannounced_ends(
    tmp_path: Path,
) -> None:
    # An outside probe (a review the 20-min case): at such steps every window is one step; the hour after 00:00
    # surge's (65-85% lower by design) read as an outage of the total, a channel's share drifting over two
    # hours as a 21-25% drop; at an hour a multi-scope series stopped with a traceback.
    from streams.alerts.plan import parse_utc

    series, plan = tmp_path / "series.csv", tmp_path / "plan.csv"
    for seed, step_s in ((8, 1200), (9, 1800), (11, 3600)):
        ends = _sale_day_csv(seed, step_s, series, plan)
        planned = promo("alerts", "backtest", "--series", str(series), "--plan", str(plan), "--json")
        assert planned.returncode == 0 and planned.stdout == "", (step_s, planned.stdout, planned.stderr)
        # Without the plan, nothing says when a campaign ends: its end is an outage, and only that.
        bare = promo("alerts", "backtest", "--series", str(series), "--json")
        assert bare.returncode == 0, bare.stderr
        rows = [json.loads(line) for line in bare.stdout.splitlines()]
        assert rows, bare.stderr
        for row in rows:
            campaign = row["campaign_id"]
            assert campaign in ends and ends[campaign] <= parse_utc(row["detected_at"]), row
            assert row["severity"] == "critical" and row["observed"] == 0, row
