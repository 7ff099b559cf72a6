"""The `promo` command, a module per command group; importing this package registers them all.

- worker.py      `promo broker`, `promo worker` (and the store-owner protocol)
- data.py        `promo simulate`, `promo users import`, `promo totals`
- dashboards.py  `promo dashboards build|push|bench`
- lab.py         `promo chaos`, `promo bench`, `promo bench-memory`, `promo bench-recovery`
- demo.py        `promo demo`
- alerts.py      `promo alerts test-notify|eval|backtest`

Every error a user can cause prints one line (`promo: error: …`) and exits 2; tracebacks are for bugs.
"""

from __future__ import annotations

from streams.cli import alerts, dashboards, data, demo, lab, worker
from streams.cli.base import app, main

__all__ = ["alerts", "app", "dashboards", "data", "demo", "lab", "main", "worker"]
