"""The short kill loop of `promo chaos --kill-loop` (issue 14): SIGKILLs at random instants and at
step boundaries, one and two workers (with a zombie round), every identity checked as the sink
wrote it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from streams.crashpoints import NAMES
from streams.kit.harness import PROMO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", [1, 2])
def test_short_kill_loop_loses_doubles_and_misattributes_nothing(tmp_path: Path, workers: int) -> None:
    out = tmp_path / "loop.json"
    result = subprocess.run(
        [PROMO, "chaos", "--kill-loop", "--seeds", "1", "--kills", "8", "--workers", str(workers),
         "--events", "6000", "--work-dir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert out.exists(), result.stdout + result.stderr
    (row,) = json.loads(out.read_text())
    assert row["kills"] >= 8
    assert sum(row["points"].values()) >= 3, row  # most armed boundaries were reached and killed at
    assert set(row["points"]) <= set(NAMES)
    assert row["identities_checked"] > 1000
    assert (row["lost"], row["doubled"], row["rejected_match"]) == (0, 0, True), result.stdout
    assert (row["log_lost"], row["log_doubled"]) == (0, 0), result.stdout  # what stage 2 sent, as the sink reads it
    assert (row["ids_lost"], row["ids_doubled"], row["ids_misattributed"]) == (0, 0, 0), result.stdout
    if workers == 2:  # the helper was frozen past its session and resumed as a zombie
        assert row["zombies"] == 1, row
    assert result.returncode == 0, result.stdout + result.stderr
