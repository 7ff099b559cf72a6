"""The alert tables (schema v5) on the real engine: every read and write of streams/alerts/store.py.

chdb opens one store per process, so the engine runs in a child process (alert_store_child.py),
which prints what each call returned; here it is checked value by value. Text that must stay data
(Chinese, quotes) goes through every parameterised statement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("alert_store_child.py")
CAMPAIGN = "双11主会场"


def test_the_alert_tables_round_trip(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(CHILD), str(tmp_path / "store")], capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    now = out["now"]
    m = int(now) - 120
    # The window: what each leaf counted per minute, from the sink's own facts.
    assert sorted(map(tuple, [(c, ch, mm, *v) for c, ch, mm, v in out["window"]])) == sorted([
        (CAMPAIGN, "wechat", m, 5.0, 0.0, 2.0, 990.0, 0.0),
        (CAMPAIGN, "wechat", m + 60, 3.0, 0.0, 0.0, 0.0, 0.0),
        ("it's \"q\"", "app", m + 60, 0.0, 4.0, 0.0, 0.0, 0.0),
    ])  # fmt: skip
    assert out["window_after"] == []
    assert sorted(map(str, out["day"])) == sorted(map(str, out["window"]))
    # What each evaluation saw comes back in order, an empty one keeping its clock.
    assert out["inputs"] == [[now, now - 5, 1.5, [[CAMPAIGN, "wechat", [1.0, 2.0, 3.0, 4.0, 5.0]]]],
                             [now + 10, now + 5, 0.5, []]]  # fmt: skip
    # The newest version of each incident; a null scope and metric for the lag alert.
    alerts = {a["id"]: a for a in out["alerts"]}
    assert set(alerts) == {"a1", "l1"}
    assert alerts["a1"]["resolved_at"] is not None and alerts["a1"]["children"] == [f"{CAMPAIGN}/wechat"]
    assert (alerts["l1"]["metric"], alerts["l1"]["campaign_id"], alerts["l1"]["channel"]) == (None, None, None)
    assert [a["id"] for a in out["firing"]] == ["l1"]
    assert out["known"] == [True, False]
    assert sorted(out["acked"]) == [["a1", "on-call", out["acked"][0][2]], ["l1", None, None]]
    # Running silences and new notes; the expired silence is not read.
    assert [(x["kind"], x["campaign_id"], x["reason"]) for x in out["silences"]] == [
        ("silence", CAMPAIGN, "planned"), ("note", "c2", "coupon ended")]  # fmt: skip
    assert out["notified"] == [["a1", "fired@1"]]
    # No plan yet; then the newest plan wins, and only scheduled campaigns have a schedule.
    assert out["plan_none"] == ["", {}]
    text, schedule = out["plan"]
    assert text.endswith("orders,5\n") and schedule == {CAMPAIGN: [now, now + 7200]}
    # The pipeline's lag from heartbeats: the worst worker still there, counting the heartbeat's age.
    assert out["lag_none"] == 86400.0
    assert out["lag"] == pytest.approx(6.0)
