"""Run in a child process by test_alert_runner.py (chdb: one engine a process): the live runner
(streams/alerts/runner.py) on a real store, its clock simulated, under a steady stream written as
the sink writes it, through an outage on one channel's orders and its recovery, with a restart of
the runner in the middle of the incident. Notifications go to a loopback webhook. Prints JSON.

Scenario `again` instead: all of c1/wechat's traffic falls 60% (a warning), then stops (raised to
critical), the runner restarts, the traffic comes back, and stops once more a few minutes later (the
same incident, reopened), and comes back for good. Scenario `afresh`: the payments outage, the runner
restarting without its saved state."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from streams.alerts.notify import Robot
from streams.alerts.runner import AlertRunner
from streams.alerts.store import read_alerts
from streams.contract.facts import COUNTERS
from streams.sink.clickhouse import ClickHouseStore

STEP_S = 10.0
LEAVES = [("c1", "wechat"), ("c1", "app"), ("c2", "wechat"), ("c2", "app")]
RATE = {"interactions": 30.0, "shares": 3.0, "orders": 1.5, "new_users": 0.6}  # per second and leaf


def level(scenario: str, start: float, now: float, campaign: str, channel: str) -> tuple[float, set[str]]:
    """The share of its usual traffic a leaf sends at `now`, and on which metrics."""
    minute = (now - start) / 60
    if scenario == "again" and (campaign, channel) == ("c1", "wechat"):
        if 40 <= minute < 42:
            return 0.4, set(RATE)
        if 42 <= minute < 44 or 46 <= minute < 47:
            return 0.0, set(RATE)
    elif campaign == "c1" and channel == "wechat" and 40 <= minute < 46:
        return 0.0, {"orders", "new_users"}
    return 1.0, set()


def main(root: str, start: float, scenario: str) -> None:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    robot = Robot("webhook", f"http://127.0.0.1:{server.server_address[1]}/hook")
    store = ClickHouseStore(f"chdb://{root}/store")
    store.apply_schema()
    clock = {"now": start}
    state = Path(root) / "alerts" / "state.json"
    rng = np.random.default_rng(7)
    # c1/wechat orders stop (payments broken on one channel), or (`again`) everything falls and stops twice
    outage = (start + 40 * 60, start + (47 if scenario == "again" else 46) * 60)
    restart_at = start + 43 * 60
    end = start + 55 * 60

    def runner() -> AlertRunner:
        async def caught_up(now: float) -> float:
            return 0.0

        return AlertRunner(store, store.call, caught_up, state_path=state, robots=[robot],
                           clock=lambda: clock["now"])  # fmt: skip

    async def go() -> dict[str, Any]:
        live = runner()
        sender = asyncio.ensure_future(live.deliver())
        firing_seen: list[list[str]] = []
        while clock["now"] < end:
            now = clock["now"]
            facts = []
            for campaign, channel in LEAVES:
                share, hit = level(scenario, start, now, campaign, channel)
                counts = {m: int(rng.poisson(r * STEP_S * (share if m in hit else 1.0))) for m, r in RATE.items()}
                counts["gmv_fen"] = counts["orders"] * 9900
                minute = int(now - 5) // 60 * 60  # what arrived in the last 10 s, in its minute
                facts.append([campaign, channel, "feed", 1, minute * 1000, *[counts.get(c, 0) for c in COUNTERS]])
            await store.call(store.insert_wire_rows, facts, [], {0: 1})
            clock["now"] = now + STEP_S
            await live.tick()
            await live.outbox.queue.join()
            firing_seen.append(sorted(f"{a.kind}:{a.metric}:{a.scope.label()}" for a in live.detector.firing()))
            if clock["now"] == restart_at:  # the detector restarts mid-incident, from its saved state
                sender.cancel()
                if scenario == "afresh":  # ... or without it (a new container, a lost disk)
                    state.unlink()
                live = runner()
                sender = asyncio.ensure_future(live.deliver())
        sender.cancel()
        rows = await store.call(lambda: read_alerts(store, start - 60))
        return {"received": received, "alerts": rows, "firing": firing_seen, "outage": outage,
                "restart_at": restart_at}  # fmt: skip

    out = asyncio.run(go())
    server.shutdown()
    store.close_sync()
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "payments")
