"""`promo alerts run`: the detector as a process of its own beside a store no worker has open (a
ClickHouse server in production; an embedded store here). Its freshness comes from the workers'
heartbeats: the last one is an hour old, so the pipeline is not running and the detector says so
with a `lag` alert (and no drop alert), its own heartbeat in promo.pipeline_status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.kit.harness import PROMO

pytestmark = pytest.mark.integration

SETUP = """
import sys, time
from streams.sink.clickhouse import ClickHouseStore
store = ClickHouseStore("chdb://" + sys.argv[1])
store.apply_schema()
store.log_status(int((time.time() - 3600) * 1000), "host:6066", 0, "ok", "", 0.0)
store.close_sync()
"""

BEATS = """
import sys
from streams.sink.clickhouse import ClickHouseStore
store = ClickHouseStore("chdb://" + sys.argv[1])
print(store.query_rows("SELECT count() AS n FROM promo.pipeline_status WHERE worker = 'detector'")[0]["n"])
"""


def test_alerts_run_beside_a_store_says_the_pipeline_is_not_running(tmp_path: Path) -> None:
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-c", SETUP, str(store)], check=True, timeout=120)
    dsn = ["--clickhouse", f"chdb://{store}"]
    env = {"PATH": str(Path(PROMO).parent), "PROMO_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = tmp_path / "detector.log"
    with open(out, "w") as log:
        detector = subprocess.Popen([PROMO, "alerts", "run", "--english", *dsn], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # a first evaluation takes its starting point, the next one judges
        while "firing" not in out.read_text() and time.monotonic() < deadline and detector.poll() is None:
            time.sleep(0.5)
        # While it holds the embedded store, the other commands say who has it, in one line.
        for command in (["alerts", "list"], ["alerts", "ack", "nosuchid"], ["totals"]):
            busy = subprocess.run([PROMO, *command, *dsn], env=env, capture_output=True, text=True, timeout=120,
                                  check=False)  # fmt: skip
            assert busy.returncode == 2, (command, busy.stdout, busy.stderr)
            assert busy.stderr.count("\n") == 1 and "`promo alerts run` (pid" in busy.stderr, (command, busy.stderr)
    finally:
        detector.send_signal(signal.SIGINT)
        try:
            detector.wait(timeout=60)
        except subprocess.TimeoutExpired:  # stops what it starts, and says it did not stop by itself
            detector.kill()
            detector.wait(timeout=10)
    output = out.read_text()
    assert detector.returncode == 0 and "drop detector on" in output and output.rstrip().endswith("stopped"), output
    assert "Traceback" not in output, output
    assert not (tmp_path / "store.detector.json").exists()  # gone with it
    listed = subprocess.run([PROMO, "alerts", "list", "--json", *dsn], env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    alerts = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [a["kind"] for a in alerts] == ["lag"], alerts
    assert alerts[0]["resolved_at"] is None and alerts[0]["observed"] > 3000, alerts
    beat = subprocess.run([sys.executable, "-c", BEATS, str(store)], capture_output=True, text=True, timeout=120,
                          check=True)  # fmt: skip
    assert int(beat.stdout) >= 2, beat.stdout


V5 = """
import sys
from streams.sink import clickhouse as ch
store = ch.ClickHouseStore("chdb://" + sys.argv[1])
for migration in ch.MIGRATIONS[:5]:  # a store as a worker from before schema v6 left it
    for statement in migration.statements:
        store.command(statement)
    store.command(f"INSERT INTO promo.schema_version VALUES ({migration.version}, now64(3))")
store.close_sync()
"""


def test_a_store_from_before_v6_serves_the_alert_commands_and_run_says_what_it_needs(tmp_path: Path) -> None:
    """The CLI upgraded before the workers: list, ack, silence need the alert tables (v5) and work;
    `promo alerts run` needs the heartbeat rows' partitions (v6) and the detector's events with the
    plans they had (v8), and `promo alerts replay` the events; each says so in one line."""
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-c", V5, str(store)], check=True, timeout=120)
    dsn = ["--clickhouse", f"chdb://{store}"]
    env = {"PATH": str(Path(PROMO).parent), "PROMO_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}

    def promo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PROMO, *args, *dsn], env=env, capture_output=True, text=True, timeout=120, check=False)

    listed = promo("alerts", "list", "--json")
    assert listed.returncode == 0 and listed.stdout == "", (listed.stdout, listed.stderr)
    run = promo("alerts", "run")
    assert run.returncode == 2 and run.stderr.count("\n") == 1, (run.stdout, run.stderr)
    assert "is at schema v5, this needs v8: run a worker of this version" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    replay = promo("alerts", "replay", "--from", "-1h", "--to", "-1m")
    assert replay.returncode == 2 and replay.stderr.count("\n") == 1, (replay.stdout, replay.stderr)
    assert "is at schema v5, this needs v8" in replay.stderr, replay.stderr
