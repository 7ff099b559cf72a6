"""`promo totals` and `promo verify` on a real embedded store: answers that cannot be misread.

The store is written in a subprocess (chdb is one engine per process) and read by the real `promo`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from streams.contract.facts import COUNTERS
from tests.unit.test_cli import promo

MINUTE = 1_762_790_400_000


def write_store(path: Path, deltas: str) -> Path:
    """An embedded store at `path` with the schema and the `Deltas` that the code `deltas` adds to
    `deltas` (FactKey, RejectKey and Reason at hand), written in a subprocess (one chdb a process)."""
    code = f"""
        from streams.contract.events import Reason
        from streams.contract.facts import Deltas, FactKey, RejectKey
        from streams.sink.clickhouse import ClickHouseStore
        from tests.helpers import insert_deltas
        store = ClickHouseStore("chdb://{path}")
        store.apply_schema()
        deltas = Deltas()
        {textwrap.indent(textwrap.dedent(deltas), " " * 8).strip()}
        insert_deltas(store, deltas, {{0: 9}})
        store.close_sync()
        store.executor.shutdown()
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("cli-store") / "store", f"""
        deltas.add(FactKey("双11主会场", "wechat", "group", 3, {MINUTE}), 3, 2)   # orders
        deltas.add(FactKey("双11主会场", "wechat", "group", 3, {MINUTE}), 4, 19900)  # gmv_fen
        deltas.add(FactKey("sk2", "app", "", 0, {MINUTE}), 0, 5)                 # interactions
        deltas.reject(RejectKey("orders", Reason.LATE, "sk2", "app", {MINUTE}))
    """)  # fmt: skip


def row(campaign: str, channel: str, **counters: int) -> dict[str, Any]:
    return {"campaign_id": campaign, "channel": channel, **{c: counters.get(c, 0) for c in COUNTERS}}


TRUTH = [row("sk2", "app", interactions=5), row("双11主会场", "wechat", orders=2, gmv_fen=19900)]


def test_totals_json_says_which_store_it_read(store: Path) -> None:
    result = promo("totals", "--json", "--clickhouse", f"chdb://{store}")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout), key=lambda r: r["campaign_id"]) == TRUTH
    assert result.stderr.strip() == f"store: {store} (no worker owns it: as the last worker left it)"


def test_totals_csv_has_a_header_and_every_counter(store: Path) -> None:
    result = promo("totals", "--csv", "--campaign", "双11主会场", "--clickhouse", f"chdb://{store}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(("campaign_id", "channel", *COUNTERS))
    assert lines[1:] == [",".join(str(TRUTH[1][c]) for c in ("campaign_id", "channel", *COUNTERS))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["totals", "--campaign", "nope"], "no campaign 'nope' in"),
        (["totals", "--json", "--csv"], "--json and --csv: pick one"),
        (["verify", "--truth", "/nonexistent/truth.json"], "no such file: /nonexistent/truth.json"),
        (["verify", "--truth", "/"], "is a directory"),
    ],
    ids=["unknown-campaign", "json-and-csv", "verify-missing-truth", "verify-truth-directory"],
)
def test_bad_answers_are_one_line_errors(store: Path, args: list[str], message: str) -> None:
    result = promo(*args, "--clickhouse", f"chdb://{store}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("promo: error:") and message in lines[0], result.stderr


def test_a_store_that_does_not_exist_is_an_error_not_an_empty_answer(tmp_path: Path) -> None:
    result = promo("totals", "--clickhouse", f"chdb://{tmp_path}/no-store")
    assert result.returncode == 2
    assert f"no store at {tmp_path}/no-store: no worker has written there" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [["totals"], ["verify", "--truth", "truth.json"], ["alerts", "list"], ["alerts", "silences"],
     ["plan", "import", "plan.csv"]],
    ids=lambda args: " ".join(args[:2]),
)  # fmt: skip
def test_a_store_directory_no_worker_wrote_is_an_error_and_stays_empty(tmp_path: Path, args: list[str]) -> None:
    empty = tmp_path / "store"
    empty.mkdir()
    (tmp_path / "truth.json").write_text(json.dumps({"totals": TRUTH, "rejected": {"late": 1}, "accepted": 7}))
    (tmp_path / "plan.csv").write_text("minute,metric,expected\n2026-11-11T00:00:00Z,orders,100\n")
    args = [str(tmp_path / a) if a.endswith((".json", ".csv")) else a for a in args]
    result = promo(*args, "--clickhouse", f"chdb://{empty}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("promo: error:")]
    assert errors == [f"promo: error: the store at {empty} has no tables: no worker has written to it yet"]
    assert "Traceback" not in result.stderr
    assert list(empty.iterdir()) == []  # not opened: chdb leaves its tmp/ in a directory it opens


def test_verify_exact_and_every_differing_cell(store: Path, tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"totals": TRUTH, "rejected": {"late": 1}, "accepted": 7}))
    exact = promo("verify", "--truth", str(truth), "--clickhouse", f"chdb://{store}")
    assert exact.returncode == 0, exact.stderr
    assert exact.stdout.startswith("exact: 2 rows")

    wrong = [row("sk2", "app", interactions=6), row("双11主会场", "wechat", orders=2, gmv_fen=19900, buyers=1)]
    truth.write_text(json.dumps({"totals": wrong, "rejected": {"late": 1, "duplicate": 2}, "accepted": 9}))
    diff = promo("verify", "--truth", str(truth), "--clickhouse", f"chdb://{store}")
    assert diff.returncode == 1
    assert diff.stdout.splitlines() == [
        "'sk2' app interactions: want 6, got 5 (-1)",
        "'双11主会场' wechat buyers: want 1, got 0 (-1)",
        "rejected duplicate: want 2, got 0 (-2)",
    ]


def test_totals_csv_reads_back_as_the_json_whatever_the_campaign_ids(tmp_path: Path) -> None:
    # Ids the contract allows (any Unicode, 1-64): a carriage return made a phantom CSV row, an ANSI
    # escape was stripped from the CSV (click strips it off a terminal) but not from the JSON (an
    # outside probe). The table shows such characters as escapes instead of acting on them.
    store = write_store(tmp_path / "store", f"""
        for campaign in ("zz\\r", "esc\\x1b[31mred", "rtl\\u202eevil", "=1+1", "a,b\\"c"):
            deltas.add(FactKey(campaign, "web", "", 0, {MINUTE}), 0, 7)
    """)  # fmt: skip
    as_json = json.loads(promo("totals", "--json", "--clickhouse", f"chdb://{store}").stdout)
    assert len(as_json) == 5
    result = promo("totals", "--csv", "--clickhouse", f"chdb://{store}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\r\n") == 0  # lines end in "\n", a "\r" only inside its quoted field
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [{k: (v if k in ("campaign_id", "channel") else int(v)) for k, v in r.items()} for r in rows] == as_json
    table = promo("totals", "--clickhouse", f"chdb://{store}").stdout
    assert "\r" not in table and "\x1b" not in table and "\u202e" not in table
    assert "zz\\r" in table and "esc\\x1b[31mred" in table and "rtl\\u202eevil" in table


def test_totals_and_the_alert_commands_beside_a_frozen_owner_say_so_in_one_line(tmp_path: Path) -> None:
    # A worker that owns the store but does not answer (SIGSTOPped): opening the store beside it failed
    # on chdb's lock with two raw engine errors (an outside probe; `promo alerts list` and `ack` too, a
    # later one). Here a live process standing for it.
    from streams.worker.app import owner_file

    store = write_store(tmp_path / "store", "deltas.add(FactKey('c', 'web', '', 0, 0), 0, 1)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    frozen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "promo-worker-stand-in"])
    try:
        owner_file(store).write_text(json.dumps({"pid": frozen.pid, "url": f"http://127.0.0.1:{closed}"}))
        result = promo("totals", "--clickhouse", f"chdb://{store}")
        assert result.returncode == 2 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"(pid {frozen.pid}), which does not answer" in lines[0], result.stderr
        for args in (("list", "--firing"), ("ack", "0123456789abcdef", "--by", "duty")):
            result = promo("alerts", *args, "--clickhouse", f"chdb://{store}")
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2 and result.stdout == "", (args, result.stderr)
            assert len(lines) == 1 and f"(pid {frozen.pid}), which does not answer" in lines[0], result.stderr
        # a file older than the process under its pid: the pid was given again after the owner died
        hour_ago = time.time() - 3600
        os.utime(owner_file(store), (hour_ago, hour_ago))
        assert promo("totals", "--json", "--clickhouse", f"chdb://{store}").returncode == 0
    finally:
        frozen.kill()
        frozen.wait()
    # once it is gone, its leftover file does not stand in the way
    result = promo("totals", "--json", "--clickhouse", f"chdb://{store}")
    assert result.returncode == 0 and json.loads(result.stdout)[0]["interactions"] == 1, result.stderr
    result = promo("alerts", "list", "--clickhouse", f"chdb://{store}")
    assert result.returncode == 0 and "no alerts since " in result.stderr, result.stderr
    result = promo("alerts", "list", "--firing", "--clickhouse", f"chdb://{store}")  # whatever their age
    assert result.returncode == 0 and "no firing alerts now in " in result.stderr, result.stderr
