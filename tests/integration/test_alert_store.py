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
    # A second ack says whose it was (the CLI tells the one who takes it over).
    assert out["resolved_at"] == [alerts["a1"]["resolved_at"], None, None]  # a1 by its newest version: resolved
    assert out["first_ack"] is None
    assert out["second_ack"]["acked_by"] == "night-shift" and out["second_ack"]["acked_at"] < out["acked"][0][2]
    # A reopened incident: listed from a --since after its first detection, "since" its reopening's
    # onset, its first opening's ack not this one's; Grafana's firing table says the same, in Beijing time.
    (r1,) = out["reopened"]
    iso = out["iso"]
    assert (r1["detected_at"], r1["opened_at"], r1["reopened_from"]) == (iso[0], iso[1], iso[2])
    assert r1["resolved_at"] is None and r1["acked_by"] is None and r1["acked_at"] is None
    assert out["reopened_acked"] == ["second-shift"]
    since = out["beijing_reopened_from"]
    assert out["table_before_ack"] == [["全部 / total", out["table_before_ack"][0][1], ""], ["c9", since, ""]]
    assert out["table_after_ack"] == [out["table_after_ack"][0], ["c9", since, "second-shift"]]
    # Running silences and new notes; the expired silence is not read.
    assert [(x["kind"], x["campaign_id"], x["reason"]) for x in out["silences"]] == [
        ("silence", CAMPAIGN, "planned"), ("note", "c2", "coupon ended")]  # fmt: skip
    # Listed newest first, the ended one too; one lifted: ends now, read back so, not lifted twice.
    assert [(x["scope"], x["metric"], x["reason"], x["by"], x["active"]) for x in out["listed"]] == [
        ("c3/wechat", "orders", "lift me", "ops", True), (CAMPAIGN, None, "planned", "ops", True),
        ("old", None, "over", "ops", False)]  # fmt: skip
    assert out["listed"][0]["id"] == out["lift_id"] and len({x["id"] for x in out["listed"]}) == 3
    assert out["lifted"]["active"] is False and out["lifted"]["lifted_at"] is not None
    assert out["lift_errors"][0].startswith(f"silence {out['lift_id']!r} already ended at ")
    assert out["lift_errors"][1:] == ["no silence 'nope' (promo alerts silences lists them)",
                                      out["lift_errors"][2]] and "already ended" in out["lift_errors"][2]  # fmt: skip
    # What the runner reads: the lifted silence covers until it was lifted; the lift row is no silence.
    assert out["covers"] == [["silence", "planned", False, False], ["silence", "lift me", True, False]]
    # ... and by whom (an outside probe: the listing did not say).
    assert out["lifted"]["lifted_by"] == "on-call"
    assert [x[1:] for x in out["listed_after"]] == [[False, out["lifted"]["lifted_at"], "on-call"], [True, None, None],
                                                    [False, None, None]]  # fmt: skip
    assert out["known_campaign"] == [True, True, True, False]
    assert out["notified"] == [["a1", "fired@1"]]
    # No plan yet; then the newest plan wins, and only scheduled campaigns have a schedule.
    assert out["plan_none"] == ["", {}]
    text, schedule = out["plan"]
    assert text.endswith("orders,5\n") and schedule == {CAMPAIGN: [now, now + 7200]}
    newest, first, none = out["plan_versions"]
    assert newest == [now + 1, text] and first == [now, "minute,metric,expected\n"] and none is None
    assert out["events"] == [["start", [now, {CAMPAIGN: [now, None]}]], ["reset", ""]]
    # The pipeline's lag from heartbeats: the worst worker still there, counting the heartbeat's age.
    assert out["lag_none"] == 86400.0
    assert out["lag"] == pytest.approx(6.0)  # the worst alone: rows without the partitions' mean
    assert out["lag_mean"] == pytest.approx([5.75, (5.75 + 4.0 + 3.75 + 0.75) / 4])  # a Lag(worst, typical)


SETUP = """
import sys
from streams.sink.clickhouse import ClickHouseStore
store = ClickHouseStore("chdb://" + sys.argv[1])
store.apply_schema()
store.upsert_campaigns([("2026/双11", "双11", None, None, 0)])
store.close_sync()
"""


def test_silence_list_and_lift_on_the_store_itself(tmp_path: Path) -> None:
    from streams.kit.harness import PROMO

    store = tmp_path / "store"
    subprocess.run([sys.executable, "-c", SETUP, str(store)], check=True, timeout=120)
    env = {"PATH": str(Path(PROMO).parent), "PROMO_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}

    def promo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PROMO, "alerts", *args, "--clickhouse", f"chdb://{store}"], capture_output=True,
                              text=True, timeout=120, env=env, check=False)  # fmt: skip

    # A campaign id with '/' and a known channel after it; one nobody has heard of: a warning, stored anyway.
    done = promo("silence", "--scope", "2026/双11/wechat", "--until", "+2h", "--reason", "支付切换", "--by", "ops")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    first = done.stdout.split("(id ")[1].rstrip(")\n")
    done = promo("silence", "--scope", "c01/nosuchchannel", "--until", "+30m", "--reason", "x", "--metric", "orders")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("silenced campaign 'c01/nosuchchannel' orders until "), done.stdout
    assert done.stderr == ("promo: warning: 'nosuchchannel' is not one of the contract's channels, so "
                           "'c01/nosuchchannel' names one campaign; for the channel 'nosuchchannel' of campaign "
                           "'c01' say --campaign 'c01' --channel 'nosuchchannel'\n"
                           "promo: warning: campaign 'c01/nosuchchannel' is neither imported (promo campaigns import) "
                           "nor in the data yet; stored anyway\n")  # fmt: skip
    # A channel outside the contract's list (the data keeps it as sent): named outright.
    done = promo("silence", "--campaign", "c01", "--channel", "douyin", "--until", "+1h", "--reason", "直播切流")
    assert done.returncode == 0 and done.stdout.startswith("silenced c01/douyin until "), (done.stdout, done.stderr)
    for args, message in (
        (("silence", "--scope", "c01", "--campaign", "c01", "--until", "+1h", "--reason", "x"), "not both"),
        (("silence", "--channel", "douyin", "--until", "+1h", "--reason", "x"), "say the scope"),
        (("note", "--campaign", "c01", "--channel", "a/b", "--reason", "x"), "no '/'"),
        (("silence", "--scope", "total", "--until", "+99999999d", "--reason", "x"), "more than 7 days ahead"),
        (("silence", "--scope", "c01/", "--until", "+1h", "--reason", "x"), "no empty part"),
        (("note", "--scope", "/wechat", "--reason", "x"), "no empty part"),
        (("unsilence", "nope"), "no silence 'nope'"),
        # An outside probe: a line break made the listing's next line look like another silence.
        (("silence", "--scope", "c01", "--until", "+1h", "--reason", "line one\nline two"), "--reason is one line"),
        (("note", "--scope", "c01", "--reason", "x" * 501), "at most 500 characters"),
    ):
        bad = promo(*args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    done = promo("silences", "--json")
    assert done.stderr == f"store: {store}\n", done.stderr  # an outside probe: --json did not say what it read
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["scope"], x["metric"], x["reason"], x["active"]) for x in listed] == [
        ("c01/douyin", None, "直播切流", True), ("campaign 'c01/nosuchchannel'", "orders", "x", True),
        ("2026/双11/wechat", None, "支付切换", True)]  # fmt: skip
    # A campaign id holding a '/' is named as one (an outside probe: "c01/douyin" read both ways); the
    # fields say which too.
    assert [(x["campaign_id"], x["channel"]) for x in listed] == [
        ("c01", "douyin"), ("c01/nosuchchannel", None), ("2026/双11", "wechat")]  # fmt: skip
    listed = listed[1:]
    assert listed[1]["id"] == first and listed[1]["by"] == "ops" and listed[1]["until"].endswith("Z")
    done = promo("unsilence", first)
    assert done.returncode == 0 and done.stdout == f"lifted {first} (2026/双11/wechat)\n", done.stdout
    again = promo("unsilence", first)
    assert again.returncode == 2 and "already ended" in again.stderr and again.stderr.count("\n") == 1
    table = promo("silences")
    assert f"{first}  2026/双11/wechat  until " in table.stdout and "lifted 20" in table.stdout, table.stdout
    assert "ACTIVE" in table.stdout and table.stderr == f"store: {store}\n", table.stderr
    # `all` and `*` are the total, and said so.
    done = promo("silence", "--scope", "all", "--until", "+1h", "--reason", "全场切换")
    assert done.returncode == 0 and done.stdout.startswith("silenced total until "), done.stdout
    listed = [json.loads(line) for line in promo("silences", "--json").stdout.splitlines()]
    assert (listed[0]["scope"], listed[0]["campaign_id"], listed[0]["channel"]) == ("total", None, None)
    # An outside probe: `--campaign all` said "silenced all" (everything, read aloud), and an escape
    # sequence in a scope or reason was acted on by the terminal in the listing (hiding part of it).
    done = promo("silence", "--campaign", "all", "--until", "+1h", "--reason", "x")
    assert done.returncode == 0 and done.stdout.startswith("silenced campaign 'all' until "), done.stdout
    listed = [json.loads(line) for line in promo("silences", "--json").stdout.splitlines()]
    assert listed[0]["scope"] == "campaign 'all'" and listed[0]["campaign_id"] == "all", listed[0]  # not "all"
    done = promo("silence", "--campaign", "c\x1b[31mred", "--until", "+1h", "--reason", "red")
    assert done.returncode == 0, done.stderr
    table = promo("silences").stdout
    assert "c\\x1b[31mred" in table and "\x1b" not in table, table
