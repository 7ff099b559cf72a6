"""A smoke run of `promo bench`: it prints its figures and reaches the exact totals (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from streams.harness import PROMO

pytestmark = pytest.mark.integration


def test_bench_smoke_prints_figures_and_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [PROMO, "bench", "--events", "3000", "--work-dir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(out.read_text())
    assert [r["shape"] for r in rows] == ["single", "batched"]
    for row in rows:
        assert row["exact"] is True
        assert row["events"] > 2900 and row["ceiling_events_s"] > 0 and row["pipeline_events_s"] > 0
    assert rows[1]["messages"] < rows[0]["messages"]  # collector batches carry many events a message
    assert "ceiling ev/s" in result.stdout
