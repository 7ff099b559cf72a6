"""The short fault run of `promo chaos`: every scenario must end with lost = 0 and doubled = 0."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from streams.kit.harness import PROMO

pytestmark = pytest.mark.integration


def short_run(work: Path) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    out = work / "chaos.json"
    result = subprocess.run(
        # A cache of 40 users a routed partition (of ~400): users keep leaving memory for the
        # snapshot and coming back, through every fault.
        [PROMO, "chaos", "--short", "--user-cache", "40", "--work-dir", str(work), "--json", str(out)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text())


def test_short_chaos_run_is_exact_in_every_scenario(tmp_path: Path) -> None:
    result, rows = short_run(tmp_path / "run")
    assert {r["scenario"] for r in rows} == {
        "worker-kills", "broker-pause", "broker-replaced", "clickhouse-outage", "clickhouse-stall", "hostile-input",
    }  # fmt: skip
    replaced = next(r for r in rows if r["scenario"] == "broker-replaced")["observations"]
    assert not any("old snapshots discarded: 0" in o for o in replaced), replaced
    for row in rows:
        assert (row["lost"], row["doubled"], row["rejected_match"]) == (0, 0, True), (row, result.stdout)
    kills = next(r for r in rows if r["scenario"] == "worker-kills")["faults"]
    assert sum("SIGKILL" in f for f in kills) >= 5
    assert sum("during a ClickHouse write" in f and "no write seen" not in f for f in kills) >= 1
    assert any("during a rebalance" in f for f in kills)
    # Users did leave memory and come back from the snapshots (the owner's count; after the kills
    # the restarted owner may hold no routed partition at all, so that scenario is not counted).
    read_back = {r["scenario"]: int(str(r["users_read_back"])) for r in rows}
    assert all(n > 0 for name, n in read_back.items() if name != "worker-kills"), read_back
    assert result.returncode == 0, result.stdout + result.stderr
