"""What `promo alerts` and `promo plan` do with inputs a review found wrong: a bad flag, file or time
is one line and exit 2; an answer that judged nothing says so. Real files, the real `promo`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from streams.alerts.plan import iso_utc
from tests.unit.test_cli import promo
from tests.unit.test_cli_store import write_store


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alerts", "eval", "--days", "0"], "Invalid value for '--days': "),
        (["alerts", "eval", "--hours", "25"], "'--hours': must be a number of hours from 1 to 24, not 25"),
        (["alerts", "eval", "--hours", "nan"], "'--hours': must be a number of hours from 1 to 24, not nan"),
        (["alerts", "eval", "--bogus"], "No such option: --bogus"),
        (["alerts", "backtest"], "Missing option '--series'"),
        (["alerts", "nosuch"], "No such command 'nosuch'"),
        (["plan", "import"], "Missing argument 'file'"),
    ],
    ids=["days-0", "hours-25", "hours-nan", "unknown-flag", "missing-option", "unknown-command", "missing-arg"],
)
def test_typer_usage_errors_are_one_line(args: list[str], message: str) -> None:
    # A review: typer said these in a box of 4-5 lines; every promo error is one line.
    done = promo(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("promo: error: "), done.stderr
    assert message in done.stderr and f"(see promo {args[0]}" in done.stderr and done.stderr.endswith(" --help)\n")


T0 = 1_794_326_400.0  # 2026-11-10T16:00:00Z


def _series(path: Path, steps: int, step_s: int = 10, outage_from: int | None = None) -> Path:
    """Interactions and orders for the total, an orders outage (95% down, 10 min) from step `outage_from`."""
    rng = np.random.default_rng(1)
    rows = ["ts,metric,value,campaign_id,channel"]
    for i in range(steps):
        for metric, per_min in (("interactions", 3000.0), ("orders", 90.0)):
            lam = per_min * step_s / 60
            if metric == "orders" and outage_from is not None and outage_from <= i < outage_from + 600 // step_s:
                lam *= 0.05
            rows.append(f"{iso_utc(T0 + i * step_s)},{metric},{rng.poisson(lam)},,")
    path.write_text("\n".join(rows) + "\n")
    return path


def _plan(path: Path, first: float, minutes: int) -> Path:
    rows = ["minute,metric,expected", *(f"{iso_utc(first + m * 60)},orders,90" for m in range(minutes))]
    path.write_text("\n".join(rows) + "\n")
    return path


def one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("promo: error: "), done.stderr
    assert all(part in done.stderr for part in parts), done.stderr


def test_backtest_refuses_a_series_with_a_missing_row(tmp_path: Path) -> None:
    # A review: one row deleted from a 10 s series was a 100% outage at that step.
    series = _series(tmp_path / "s.csv", 60)
    lines = series.read_text().splitlines()
    del lines[22]  # the orders of 16:01:40 (the header, then interactions and orders a step)
    series.write_text("\n".join(lines) + "\n")
    one_line_error(promo("alerts", "backtest", "--series", str(series)),
                   f"{series}: line 24: gap in orders for total: no row at 2026-11-10T16:01:40Z")  # fmt: skip


def test_backtest_refuses_files_spanning_a_century(tmp_path: Path) -> None:
    series = tmp_path / "s.csv"
    series.write_text("ts,metric,value\n2026-11-10T16:00:00Z,orders,1\n2126-11-10T16:00:00Z,orders,1\n")
    one_line_error(promo("alerts", "backtest", "--series", str(series)), "line 3:", "at most 31 days")
    plan = tmp_path / "p.csv"
    plan.write_text("minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n9998-11-10T16:00:00Z,orders,1\n")
    good = _series(tmp_path / "good.csv", 60)
    one_line_error(promo("alerts", "backtest", "--series", str(good), "--plan", str(plan)), "line 3:", "31 days")


def test_backtest_refuses_a_plan_for_another_day_and_warns_of_one_that_covers_part(tmp_path: Path) -> None:
    series = _series(tmp_path / "s.csv", 720, outage_from=360)  # 2 h, an outage at 17:00
    alone = promo("alerts", "backtest", "--series", str(series), "--json")
    assert alone.returncode == 0 and any(json.loads(r)["metric"] == "orders" for r in alone.stdout.splitlines())
    year_off = _plan(tmp_path / "year.csv", T0 - 365 * 86400, 120)
    refused = promo("alerts", "backtest", "--series", str(series), "--plan", str(year_off))
    one_line_error(refused, f"{year_off} covers 2025-11-10T16:00:00Z to 2025-11-10T18:00:00Z", "not a minute in common")
    part = _plan(tmp_path / "part.csv", T0, 3)
    done = promo("alerts", "backtest", "--series", str(series), "--plan", str(part))
    assert done.returncode == 0, done.stderr
    warning = done.stderr.splitlines()[0]
    assert warning.startswith(f"promo: warning: {part} covers 2026-11-10T16:00:00Z to 2026-11-10T16:03:00Z, only "
                              "part of the series' 2026-11-10T16:00:00Z to 2026-11-10T18:00:00Z")  # fmt: skip
    assert "outside it total orders are judged as unplanned ones, on their recent rate" in warning
    whole = promo("alerts", "backtest", "--series", str(series), "--plan", str(_plan(tmp_path / "w.csv", T0, 120)))
    assert whole.returncode == 0 and "warning" not in whole.stderr, whole.stderr


def test_backtest_of_a_campaign_that_ends_is_quiet_given_its_schedule_and_refused_without(tmp_path: Path) -> None:
    """An outside probe: a total exported for 2 h beside a campaign for 3 h read the total's missing
    third hour as no events: a critical outage, exit 0. A series stops early only at its campaign's
    scheduled end (`--campaigns`, the file of `promo campaigns import`), where the live detector
    stops judging it too; a campaign that sends nothing after its start is an alert, as live."""
    rng = np.random.default_rng(7)
    rows = ["ts,metric,value,campaign_id,channel"]
    for i in range(180):  # 3 h at 60 s: the total and c2 throughout, c1 for its first 2 h
        c1 = [rng.poisson(600), rng.poisson(30)] if i < 120 else None
        c2 = [rng.poisson(1200), rng.poisson(60)]
        for j, metric in enumerate(("interactions", "orders")):
            rows.append(f"{iso_utc(T0 + 60 * i)},{metric},{c2[j] + (c1[j] if c1 else 0)},,")
            rows.append(f"{iso_utc(T0 + 60 * i)},{metric},{c2[j]},c2,")
            if c1:
                rows.append(f"{iso_utc(T0 + 60 * i)},{metric},{c1[j]},c1,")
    series = tmp_path / "ends.csv"
    series.write_text("\n".join(rows) + "\n")
    one_line_error(promo("alerts", "backtest", "--series", str(series)),
                   "interactions for c1 ends at 2026-11-10T17:59:00Z, before the file's last step "
                   "(2026-11-10T18:59:00Z)", "or give its campaign's scheduled end (--campaigns)")  # fmt: skip
    schedule = tmp_path / "campaigns.csv"
    schedule.write_text(f"campaign_id,name,starts_at,ends_at\nc1,主会场,,{iso_utc(T0 + 7200)}\n"
                        f"c3,never came,{iso_utc(T0 + 3600)},\n")  # fmt: skip
    done = promo("alerts", "backtest", "--series", str(series), "--campaigns", str(schedule), "--json")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    # c1's end is no drop of c1 (nor of the total: a third of it gone is no outage on its recent rate);
    # c3, scheduled from 17:00, sent nothing: critical, as the live detector says it.
    assert [(a["campaign_id"], a["basis"], a["severity"]) for a in alerts] == [("c3", "schedule", "critical")], alerts
    assert done.stderr == "1 alert(s) over 180 steps of 60 s\n", done.stderr  # c1 judged while it ran: no warning
    # A schedule that misses all c1 sent (a review: an end before its first count judged none of it,
    # "0 alert(s)") is refused; so is a start after its last.
    for rows, said in (
        ([f"c1,主会场,,{iso_utc(T0 - 3600)}"], "'c1' ends 2026-11-10T15:00:00Z, before anything it sent"),
        ([f"c1,主会场,,{iso_utc(T0 + 7200)}", f"c2,二号,{iso_utc(T0 + 4 * 3600)},"],
         "'c2' starts 2026-11-10T20:00:00Z, after everything it sent"),
    ):  # fmt: skip
        off = tmp_path / "off.csv"
        off.write_text("campaign_id,name,starts_at,ends_at\n" + "\n".join(rows) + "\n")
        one_line_error(promo("alerts", "backtest", "--series", str(series), "--campaigns", str(off)), said)
    early = tmp_path / "early.csv"  # a schedule ending after the series stopped does not excuse the gap
    early.write_text(f"campaign_id,name,starts_at,ends_at\nc1,主会场,,{iso_utc(T0 + 7800)}\n")
    one_line_error(promo("alerts", "backtest", "--series", str(series), "--campaigns", str(early)),
                   "interactions for c1 ends at 2026-11-10T17:59:00Z")  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("campaign_id,name,starts_at,ends_at\nc1,主会场,2026-11-10 18:00,\nc9,,,\n")
    one_line_error(promo("alerts", "backtest", "--series", str(series), "--campaigns", str(bad)), f"{bad}:2: ",
                   "(and 1 more line(s))")  # fmt: skip


def test_backtest_of_series_it_cannot_judge_says_so(tmp_path: Path) -> None:
    # An outside probe: 30 orders a minute, an hour at 0, no plan: "0 alert(s)", exit 0, as if judged.
    rows, plan = ["ts,metric,value"], ["minute,metric,expected"]
    for i in range(240):
        rows += [f"{iso_utc(T0 + 60 * i)},orders,{0 if 120 <= i < 180 else 30}", f"{iso_utc(T0 + 60 * i)},shares,0"]
        plan.append(f"{iso_utc(T0 + 60 * i)},orders,30")
    series, planned = tmp_path / "low.csv", tmp_path / "plan.csv"
    series.write_text("\n".join(rows) + "\n")
    planned.write_text("\n".join(plan) + "\n")
    done = promo("alerts", "backtest", "--series", str(series), "--json")
    assert done.returncode == 0 and done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [
        "0 alert(s) over 240 steps of 60 s",
        "promo: warning: 1 series are 0 throughout (shares for total): nothing to judge",
        "promo: warning: 1 series send fewer than 33 events a minute and have no plan (orders for total): on their "
        "recent rate alone even an outage of one is not told from noise; a --plan for them judges their drops",
    ]
    # With the plan it is judged, and caught.
    done = promo("alerts", "backtest", "--series", str(series), "--plan", str(planned), "--json")
    assert [json.loads(r)["metric"] for r in done.stdout.splitlines()] == ["orders"], done.stderr
    assert "fewer than" not in done.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_backtest_of_a_series_too_short_to_judge_says_so(tmp_path: Path, as_json: bool) -> None:
    series = tmp_path / "one.csv"
    series.write_text("ts,metric,value\n2026-11-10T16:00:00Z,orders,5\n")
    done = promo("alerts", "backtest", "--series", str(series), *(["--json"] if as_json else []))
    assert done.returncode == 0 and done.stdout == "", done.stdout
    assert done.stderr.splitlines() == [
        "0 alert(s) over 1 steps of 60 s",
        "promo: warning: nothing could be judged: the series has one row (read as a step of 60 s), and the first "
        "check that can judge (outage-10s) needs 2 (120 s of baseline and window)",
    ]
    enough = promo("alerts", "backtest", "--series", str(_series(tmp_path / "s.csv", 31)), "--json")
    assert enough.returncode == 0 and enough.stderr == "0 alert(s) over 31 steps of 10 s\n", enough.stderr


def test_eval_runs_a_day_of_one_hour() -> None:
    done = promo("alerts", "eval", "--days", "1", "--train-days", "1", "--hours", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["hours"] == 1


# -- plan import, plan from-day and list against a real embedded store --------------------------------
MINUTE_MS = 1_762_790_400_000  # 2025-11-11 00:00 Asia/Shanghai


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store with 9 minutes of counts on 2025-11-11 (Asia/Shanghai) and no alerts."""
    return write_store(tmp_path_factory.mktemp("alert-inputs") / "store", f"""
        for m in range(9):
            deltas.add(FactKey("双11主会场", "wechat", "group", 3, {MINUTE_MS} + m * 60_000), 0, 50)  # interactions
            deltas.add(FactKey("双11主会场", "wechat", "group", 3, {MINUTE_MS} + m * 60_000), 3, 2)  # orders
    """)  # fmt: skip


def test_plan_from_day_says_how_much_of_the_day_it_had(store: Path) -> None:
    # A review: 9 stored minutes printed "220 series", exit 0, as if the day were whole.
    done = promo("plan", "from-day", "2025-11-11", "--for", "2099-11-11", "--clickhouse", f"chdb://{store}")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("promo: warning: 2025-11-11 has only 9 minute(s) of counts, 00:00 to 00:09 Asia/Shanghai: "
                           "the plan holds only those (in the other 1431 minutes its scopes are judged on their recent "
                           "rate, or expected to send nothing between two it holds)\n")  # fmt: skip
    assert done.stdout.startswith("plan for 2099-11-11 from 2025-11-11 (9 minute(s) of counts, 00:00 to 00:09 "
                                  "Asia/Shanghai): ")  # fmt: skip
    # A day already over (a typo, or a plan for a replay): said, with what the live detector does instead.
    past = promo("plan", "from-day", "2025-11-11", "--for", "2025-11-12", "--clickhouse", f"chdb://{store}")
    assert past.returncode == 0, past.stderr
    assert "promo: warning: the plan for 2025-11-12 ends 2025-11-11T16:09:00Z, " in past.stderr  # its last minute
    assert "the live detector judges its scopes on their recent rate" in past.stderr
    # An outside probe: --for 1900-06-01 (before 1901 Shanghai kept local mean time, +08:05:43) made a
    # plan of minutes at :17 s, stored it (the plan in use lost) and then failed with a traceback.
    stored = promo("plan", "from-day", "2025-11-11", "--for", "2099-11-11", "--out", "/dev/stdout",
                   "--clickhouse", f"chdb://{store}")  # fmt: skip
    for bad in ("1900-06-01", "0001-01-01", "1969-12-31"):
        one_line_error(promo("plan", "from-day", "2025-11-11", "--for", bad, "--clickhouse", f"chdb://{store}"),
                       f"--for must be a date from 1970 to 9998, not '{bad}'")  # fmt: skip
    one_line_error(promo("plan", "from-day", "1900-06-01", "--clickhouse", f"chdb://{store}"),
                   "DAY must be a date from 1970 to 9998")  # fmt: skip
    # An outside probe: an --out it could not write failed after the warnings had said "it replaces the
    # stored plan" (and "the plan for None"). Checked first now: one line, nothing stored.
    one_line_error(promo("plan", "from-day", "2025-11-11", "--for", "2025-11-12", "--out", "/nonexistent/x.csv",
                         "--clickhouse", f"chdb://{store}"), "--out /nonexistent/x.csv: the directory")  # fmt: skip
    after = promo("alerts", "replay", "--from", "2025-11-10T16:00:00Z", "--to", "2025-11-10T17:00:00Z",
                  "--clickhouse", f"chdb://{store}")  # fmt: skip
    assert "does not parse" not in after.stderr, after.stderr  # the plan stored before is still the one in use
    assert stored.returncode == 0 and stored.stdout.startswith("minute,metric,expected"), stored.stderr


def test_plan_import_refuses_plans_that_blind_the_detector_and_warns_of_a_past_one(store: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    for text, message in [
        (
            "minute,metric,expected\n2026-11-10T16:00:30Z,orders,1\n",
            "line 2: 2026-11-10T16:00:30Z is not a whole minute",
        ),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,1e308\n", "from 0 to 1e+12, not 1e308"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,0\n", "line 2: every expected value is 0"),
        ("minute,metric,expected\n2026-11-10T16:00:00Z,orders,1\n9998-11-10T16:00:00Z,orders,1\n", "31 days"),
    ]:
        plan.write_text(text)
        one_line_error(promo("plan", "import", str(plan), "--clickhouse", f"chdb://{store}"), f"{plan}: ", message)
    _plan(plan, T0 - 3 * 365 * 86400, 60)
    done = promo("plan", "import", str(plan), "--clickhouse", f"chdb://{store}")
    assert done.returncode == 0, done.stderr
    assert (
        done.stderr.startswith(f"promo: warning: {plan} ends 2023-11-11T17:00:00Z, ") and " days ago: " in done.stderr
    )
    assert "the live detector judges its scopes on their recent rate" in done.stderr
    assert done.stdout.startswith("plan imported: 1 series (scope × metric), 2023-11-11T16:00:00Z to 2023-11-11T17:00")


def test_plan_import_names_campaigns_and_channels_no_event_fills(store: Path, tmp_path: Path) -> None:
    # An outside probe: a plan for campaign "nope" and channel "wechta" was taken in silence.
    plan = tmp_path / "typo.csv"
    rows = ["minute,metric,expected,campaign_id,channel"]
    tomorrow = (time.time() // 86400 + 1) * 86400  # a plan still to come (one that is over is said too)
    for campaign, channel in (("双11主会场", "wechat"), ("双11主会场", "wechta"), ("nope", ""), ("", "")):
        rows += [f"{iso_utc(tomorrow + m * 60)},orders,90,{campaign},{channel}" for m in range(60)]
    plan.write_text("\n".join(rows) + "\n")
    done = promo("plan", "import", str(plan), "--clickhouse", f"chdb://{store}")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"promo: warning: {plan}: channel(s) 'wechta' are none of those the contract names ")
    assert lines[1].startswith(f"promo: warning: {plan}: campaign(s) 'nope' neither imported ")
    assert done.stdout.startswith("plan imported: 4 series"), done.stdout
    # Campaigns it knows (counted) and channels the contract names: nothing to say.
    plan.write_text("\n".join(r for r in rows if "wechta" not in r and ",nope," not in r) + "\n")
    clean = promo("plan", "import", str(plan), "--clickhouse", f"chdb://{store}")
    assert clean.returncode == 0 and clean.stderr == "", clean.stderr


def test_list_refuses_a_future_since_and_says_when_json_found_nothing(store: Path) -> None:
    for since in ("+30m", "2100-01-01T00:00:00Z"):
        one_line_error(promo("alerts", "list", "--since", since, "--clickhouse", f"chdb://{store}"),
                       "--since is in the future")  # fmt: skip
    one_line_error(promo("alerts", "list", "--since", "+99999999999d", "--clickhouse", f"chdb://{store}"),
                   "--since is in the future")  # fmt: skip
    one_line_error(promo("alerts", "list", "--since", "0001-01-01T00:00:00+14:00", "--clickhouse", f"chdb://{store}"),
                   "is before 1970")  # fmt: skip
    for garbage in ("garbage", ""):  # "" (an unset variable in a script) read as the last 24 hours
        one_line_error(promo("alerts", "list", "--since", garbage, "--clickhouse", f"chdb://{store}"),
                       "--since must be ISO 8601 (2026-11-11T00:30:00Z) or a time from now (-2h ago")  # fmt: skip
    one_line_error(promo("alerts", "replay", "--from", "+1h", "--to", "+2h", "--clickhouse", f"chdb://{store}"),
                   "--from '+1h' is not in the past")  # fmt: skip
    ago = promo("alerts", "list", "--json", "--since", "-2h", "--clickhouse", f"chdb://{store}")
    assert ago.returncode == 0 and ago.stdout == "" and ago.stderr.startswith("no alerts since "), ago.stderr
    done = promo("alerts", "list", "--json", "--since", "2025-11-10T00:00:00Z", "--clickhouse", f"chdb://{store}")
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr == f"no alerts since 2025-11-10T00:00:00Z in {store} (the detector runs with `--alerts`)\n"


def test_a_clickhouse_server_that_is_not_there_is_one_line_with_no_password() -> None:
    # The HTTP client's retry warnings came first (clickhouse-connect sets urllib3's level when imported).
    done = promo("alerts", "list", "--clickhouse", "http://u:PASSX@127.0.0.1:1/")
    one_line_error(done, "cannot read the store at http://u:********@127.0.0.1:1/")
    assert "PASSX" not in done.stderr


def test_replay_that_finds_nothing_says_so_on_stderr(tmp_path: Path) -> None:
    # An outside probe: `replay --json` over evaluations that raised nothing printed nothing at all, exit 0.
    # Now stdout holds only the answer (none) and stderr says what was read, in both forms.
    import time

    now = int(time.time()) // 60 * 60 - 600  # recent: the inputs' TTL drops old rows on insert
    store = write_store(tmp_path / "store", f"""
        from streams.alerts import store as s
        # the live detector began here, with no plan and no schedule
        s.log_events(store, {now}, [s.DetectorEvent({now}, "start", inputs=s.detector_inputs(0.0, {{}}))])
        for i in range(3):
            s.log_inputs(store, {now} + 10 * i, {now} + 10 * i - 5, 1.0, {{("c1", "wechat"): [5, 0, 1, 100, 0]}})
    """)  # fmt: skip
    span = ("--from", iso_utc(now - 60), "--to", iso_utc(now + 60), "--clickhouse", f"chdb://{store}")
    for form in ([], ["--json"]):
        done = promo("alerts", "replay", *span, *form)
        assert done.returncode == 0 and done.stdout == "", (done.stdout, done.stderr)
        said = f"no alerts in the 3 evaluations from {iso_utc(now - 60)} to {iso_utc(now + 60)} in {store}\n"
        how = "3 evaluations replayed; with the plan and schedule the live detector had"
        assert done.stderr == (f"store: {store}; {how}\n" if not form else "") + said, done.stderr
    listed = promo("alerts", "list", "--since", iso_utc(now - 60), "--clickhouse", f"chdb://{store}")
    assert listed.returncode == 0 and listed.stdout == "", listed.stdout
    assert listed.stderr.startswith(f"store: {store}\nno alerts since {iso_utc(now - 60)} in {store}"), listed.stderr


def test_what_replay_write_stored_is_listed_with_source_replay(tmp_path: Path) -> None:
    # An outside probe: `replay --write` stored rows that no command showed (`list` reads live ones).
    import time

    now = int(time.time()) // 60 * 60 - 900  # recent: the inputs' TTL drops old rows on insert
    store = write_store(tmp_path / "store", f"""
        from streams.alerts import store as s
        for i in range(60):  # 10 minutes of 600 interactions a minute, then nothing for 2 minutes
            n = 100 if i < 48 else 0
            s.log_inputs(store, {now} + 10 * i, {now} + 10 * i - 5, 1.0, {{("c1", "wechat"): [n, 0, 0, 0, 0]}})
    """)  # fmt: skip
    span = ("--from", iso_utc(now - 60), "--to", iso_utc(now + 700), "--clickhouse", f"chdb://{store}")
    written = promo("alerts", "replay", *span, "--write", "--json")
    assert written.returncode == 0, written.stderr
    # No start of the live detector logged (a store from before they were): said, not hidden.
    assert "no start of the live detector logged in the day before --from: the replay begins cold" in written.stderr
    replayed = [json.loads(line) for line in written.stdout.splitlines()]
    assert replayed and {r["source"] for r in replayed} == {"replay"}, replayed
    listed = promo("alerts", "list", "--source", "replay", "--json", "--since", iso_utc(now - 60),
                   "--clickhouse", f"chdb://{store}")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in map(json.loads, listed.stdout.splitlines())} == {r["id"] for r in replayed}
    live = promo("alerts", "list", "--json", "--since", iso_utc(now - 60), "--clickhouse", f"chdb://{store}")
    assert live.returncode == 0 and live.stdout == "", live.stdout  # the live detector raised none of them
    one_line_error(promo("alerts", "list", "--source", "backtest", "--clickhouse", f"chdb://{store}"),
                   "--source is live or replay, not 'backtest'")  # fmt: skip


def test_replay_begins_where_the_live_detector_last_started_and_lists_what_was_open_at_from(tmp_path: Path) -> None:
    # A replay from the middle of an incident, begun cold there, would not know the level before it:
    # the incident the live detector had open was missing, or opened later with another id.
    import time

    now = int(time.time()) // 60 * 60 - 900  # recent: the inputs' TTL drops old rows on insert
    store = write_store(tmp_path / "store", f"""
        from streams.alerts import store as s
        s.log_events(store, {now}, [s.DetectorEvent({now}, "start")])
        for i in range(70):  # 8 minutes of 600 interactions a minute, 1.5 of nothing, then 600 again
            n = 0 if 48 <= i < 57 else 100
            s.log_inputs(store, {now} + 10 * i, {now} + 10 * i - 5, 1.0, {{("c1", "wechat"): [n, 0, 0, 0, 0]}})
    """)  # fmt: skip
    whole = promo("alerts", "replay", "--from", iso_utc(now - 60), "--to", iso_utc(now + 700), "--json",
                  "--clickhouse", f"chdb://{store}")  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    opened = [json.loads(line) for line in whole.stdout.splitlines()]
    assert opened and all(r["resolved_at"] for r in opened), opened
    late = promo("alerts", "replay", "--from", iso_utc(now + 520), "--to", iso_utc(now + 700),
                 "--clickhouse", f"chdb://{store}", "--json")  # fmt: skip
    assert late.returncode == 0, late.stderr
    assert sorted(late.stdout.splitlines()) == sorted(whole.stdout.splitlines())  # the same incidents, same ids
    after = promo("alerts", "replay", "--from", iso_utc(now + 650), "--to", iso_utc(now + 700),
                  "--clickhouse", f"chdb://{store}")  # fmt: skip
    assert after.returncode == 0 and after.stdout == "", after.stdout  # resolved before --from: not listed
    assert f"5 evaluations replayed, after the 65 since the live detector's last start at {iso_utc(now)}" in (
        after.stderr
    ), after.stderr
