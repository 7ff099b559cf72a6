"""A smoke run of `promo bench`: it prints its figures and reaches the exact totals (no timing asserted)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from streams.kit.harness import PROMO
from tests.helpers import proc_alive, proc_children

pytestmark = pytest.mark.integration


def test_bench_smoke_prints_figures_and_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [PROMO, "bench", "--events", "3000", "--no-peers", "--freshness-s", "3", "--work-dir", str(tmp_path / "work"),
         "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(out.read_text())
    rows = doc["throughput"]
    systems = ["ceiling (aiokafka read+decode)", "pipeline x1", "pipeline x2"]
    assert [(r["shape"], r["system"]) for r in rows] == [(s, n) for s in ("single", "batched") for n in systems]
    for row in rows:
        assert row["events"] > 2900 and row["events_s"] > 0 and row["messages"] > 0
        # The broker's CPU is measured over each system's window (it competes for the same cores).
        assert row["cpu_s_per_million"] > 0 and row["broker_cpu_s_per_million"] >= 0
        if row["system"].startswith("pipeline"):
            assert row["exact"] is True and row["peak_rss_mb"] > 0 and row["broker_cpu_s_per_million"] > 0
    single, batched = rows[0]["messages"], rows[3]["messages"]
    assert batched * 5 < single  # collector batches (about 50 events a message at full size; fewer in 3,000)
    fresh = doc["freshness"]
    assert [(f["shape"], f["load"]) for f in fresh] == [(s, load) for s in ("single", "batched") for load in (0.5, 0.8)]
    for f in fresh:
        assert f["probes"] >= 10 and 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
        # The load the worker took while probed is measured, not only the rate asked for, and
        # the probes went out at their pace (every 100 ms) from their own process.
        assert f["taken_events_s"] > 0 and f["probes_sent"] >= f["probes"]
        assert f["longest_send_gap_ms"] >= 90
    assert any("of the ceiling" in t["target"] and "cores" in t["target"] for t in doc["targets"])
    assert "events/s" in result.stdout and "freshness" in result.stdout


def test_sigterm_stops_the_bench_and_everything_it_started(tmp_path: Path) -> None:
    # It left its embedded broker running before: only Ctrl-C went through the `finally` blocks.
    proc = subprocess.Popen(
        [PROMO, "bench", "--events", "3000", "--no-peers", "--no-two-workers", "--freshness-s", "0",
         "--work-dir", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        started: dict[int, str] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            started.update(proc_children(proc.pid))
            commands = " ".join(started.values())
            if "tansu" in commands and "promo worker" in commands:
                break
            time.sleep(0.1)
        assert "tansu" in " ".join(started.values()) and "promo worker" in " ".join(started.values()), started
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 10
    while any(proc_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [cmd for pid, cmd in started.items() if proc_alive(pid)]
