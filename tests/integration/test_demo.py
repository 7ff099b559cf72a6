"""`promo demo` end to end, as `make demo` runs it, in its scripted form (`--once`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka import free_port

pytestmark = pytest.mark.integration
PROMO = str(Path(sys.executable).with_name("promo"))


def test_demo_once_reaches_the_truth_and_stops_everything(tmp_path: Path) -> None:
    broker_port, web_port, view_port = free_port(), free_port(), free_port()
    result = subprocess.run(
        [PROMO, "demo", "--once", "--rate", "800", "--duration", "6", "--port", str(broker_port),
         "--web-port", str(web_port), "--view-port", str(view_port), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert "totals match the simulator's ground truth: yes" in result.stdout
    assert "大促作战室" in result.stdout and "GMV ¥" in result.stdout
    # The dashboards' URL comes first, before any summary.
    assert result.stdout.splitlines()[0] == f"war room dashboards: http://127.0.0.1:{view_port}/"
    # Progress until the first screen: each step said, with how long it took.
    assert "broker up on 127.0.0.1:" in result.stdout
    assert "worker ready after " in result.stdout and "first numbers in " in result.stdout
    served = f"dashboards served at http://127.0.0.1:{view_port}/: 大促作战室 / War room, 活动下钻 / Campaign"
    assert served in result.stdout
    # Everything it started is gone: all three ports are free again.
    for port in (broker_port, web_port, view_port):
        probe = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True, check=False)
        assert probe.returncode != 0, f"port {port} still answers"
