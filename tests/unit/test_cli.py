"""The CLI: help on every command, and one-line errors (no traceback) for what a user gets wrong."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from streams.cli.data import format_totals
from streams.config import Secret, Settings, load_settings, redact_dsn, request_timeout_s
from streams.errors import ConfigError

PROMO = str(Path(sys.executable).with_name("promo"))


def promo(*args: str, env: dict[str, str] | None = None, stdin: str | bytes = "") -> subprocess.CompletedProcess[str]:
    """`promo ARGS` in a bare environment; `stdin` as bytes is sent as is (text is sent as UTF-8)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([PROMO, *args], capture_output=True, timeout=60, env={**base, **(env or {})},
                          input=data, check=False)  # fmt: skip
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["broker"],
        ["worker"],
        ["simulate"],
        ["users"],
        ["users", "import"],
        ["campaigns"],
        ["campaigns", "import"],
        ["alerts"],
        ["alerts", "test-notify"],
        ["alerts", "eval"],
        ["alerts", "backtest"],
        ["alerts", "silence"],
        ["alerts", "silences"],
        ["alerts", "unsilence"],
        ["totals"],
        ["verify"],
        ["demo"],
        ["chaos"],
        ["dashboards"],
        ["dashboards", "build"],
        ["dashboards", "push"],
        ["dashboards", "bench"],
        ["bench"],
        ["bench-memory"],
        ["bench-recovery"],
    ],
    ids=lambda c: " ".join(c) or "promo",
)
def test_every_command_has_help(command: list[str]) -> None:
    result = promo(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["totals"], {"PROMO_BROKER": "localhost:9092"}, "broker must look like kafka://", id="bad-broker"),
        # An outside probe: a port that is no number was a traceback, and `:-1` read as 9092.
        *(
            pytest.param(
                ["simulate", "--duration", "1", "--rate", "10"],
                {"PROMO_BROKER": f"kafka://127.0.0.1:{port}"},
                "broker must be kafka://host:port (port 1-65535; several: ",
                id=f"broker-port-{port}",
            )
            for port in ("notaport", "99999", "-1", "")
        ),
        pytest.param(
            ["totals"], {"PROMO_PARTITIONS": "many"}, "PROMO_PARTITIONS='many' is not a valid value", id="bad-int"
        ),
        pytest.param(["totals", "--clickhouse", "mysql://x"], {}, "chdb:///path or http(s)://", id="bad-dsn"),
        pytest.param(["totals", "--clickhouse", "chdb://"], {}, "must name the store's directory", id="chdb-no-path"),
        pytest.param(["alerts", "list"], {"PROMO_CLICKHOUSE": "chdb:///"}, "must name the store's", id="chdb-root"),
        *(
            pytest.param(
                ["simulate", "--duration", "1", "--rate", "10"],
                {"PROMO_BROKER": "kafka://127.0.0.1:1", variable: raw},
                f"{variable} must be a positive number of seconds, got {shown}",
                id=name,
            )
            for variable, raw, shown, name in (
                ("PROMO_ALLOWED_LATENESS_S", "nan", "nan", "lateness-nan"),
                ("PROMO_DEDUP_HORIZON_S", "inf", "inf", "horizon-inf"),
                ("PROMO_ALLOWED_LATENESS_S", "1e308", "1e+308 (at most 31536000", "lateness-huge"),
            )
        ),
        *(
            pytest.param(
                ["totals"], {"PROMO_TOPIC_PREFIX": prefix}, "topic prefix must be letters, digits", id=f"prefix-{i}"
            )
            for i, prefix in enumerate(("a/b.", "x*y#", "ü.", "p" * 240))
        ),
        *(
            pytest.param(["totals"], {variable: ""}, f"{variable} is set but empty", id=f"empty-{variable}")
            for variable in ("PROMO_PARTITIONS", "PROMO_TOPIC_PREFIX", "PROMO_CLICKHOUSE")
        ),
        *(
            pytest.param(
                ["totals", "--clickhouse", dsn],
                {},
                f"clickhouse must be http(s)://[user[:password]@]host[:port 1-65535]/, got {shown!r}",
                id=f"http-dsn-{i}",
            )
            for i, (dsn, shown) in enumerate(
                (
                    ("https://127.0.0.1:99999/", "https://127.0.0.1:99999/"),
                    ("http://127.0.0.1:abc/", "http://127.0.0.1:abc/"),
                    ("http:///", "http:///"),
                    ("http://u:pa ss@127.0.0.1:1/", "http://u:********@127.0.0.1:1/"),
                )
            )
        ),
        pytest.param(
            ["campaigns", "import", "/etc/hostname"],
            {"PROMO_BROKER": "kafk://u:SEKRETPW@h:9092"},
            "got 'kafk://u:********@h:9092'",
            id="broker-password-redacted",
        ),
        pytest.param(["broker", "--port", "70000"], {}, "--port must be 1-65535", id="bad-port"),
        pytest.param(
            ["broker", "--port", "29393", "--host", "999.1.1.1"],
            {},
            "--host '999.1.1.1' is not an address",
            id="broker-bad-host",
        ),
        pytest.param(
            ["broker", "--port", "29393", "--storage", "bogus://x"], {}, "exited (1) at start", id="broker-bad-storage"
        ),
        pytest.param(  # listens, and closes every Kafka request: "ready" sent clients to fail (an outside probe)
            ["broker", "--port", "29394", "--storage", "s3://nonexistent-bucket/"],
            {},
            "answers no Kafka request",
            id="broker-unreachable-storage",
        ),
        pytest.param(
            ["verify", "--truth", "/dev/null", "--wait", "nan"],
            {},
            "--wait must be a finite number",
            id="verify-wait-nan",
        ),
        pytest.param(
            ["dashboards", "build", "/proc/nope"],
            {},
            "cannot write the dashboards to /proc/nope",
            id="dashboards-build-unwritable",
        ),
        # typer read '' as '.': the dashboards' JSON landed in the current directory (an outside probe)
        pytest.param(["dashboards", "build", ""], {}, "the directory is empty", id="dashboards-build-empty"),
        pytest.param(
            ["dashboards", "push", "--url", "http://127.0.0.1:9/", "--dir", ""],
            {},
            "--dir is empty",
            id="dashboards-push-empty-dir",
        ),
        pytest.param(
            ["worker", "--no-sink"],
            {"PROMO_DROP_FIRST_FETCH": "banana"},
            "PROMO_DROP_FIRST_FETCH must be 1",
            id="drop-first-fetch-banana",
        ),
        *(
            pytest.param(
                ["worker", "--no-sink", *extra],
                {},
                "go with the sink: a --no-sink worker serves no pages",
                id=f"no-sink-{extra[0]}",
            )
            for extra in (["--web-port", "26067"], ["--view-port", "28080"], ["--no-view"])
        ),
        pytest.param(
            ["simulate", "--duration", "1", "--rate", "10", "--truth", "/proc/truth.json"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1"},
            "--truth /proc/truth.json: not writable",
            id="simulate-truth-unwritable",
        ),
        *(
            pytest.param(
                ["simulate", "--scenario", "618", "--duration", "1", "--rate", "10", *extra],
                {"PROMO_BROKER": "kafka://127.0.0.1:1"},
                "--at and --scale go with --scenario sale-day",
                id=f"simulate-{extra[0]}-not-sale-day",
            )
            for extra in (["--at", "2026-11-10T16:00:00Z"], ["--scale", "-3"])
        ),
        *(
            pytest.param(["demo", *extra], {}, message, id=f"demo-{extra[0]}")
            for extra, message in (
                (["--rate", "-1"], "--duration and --rate must be positive"),
                (["--duration", "0"], "--duration and --rate must be positive"),
                (["--rate", "nan"], "--duration and --rate must be positive"),
                (["--data-dir", "/proc/demo"], "--data-dir /proc/demo: cannot write there"),
            )
        ),
        pytest.param(
            ["simulate", "--rate", "1e12", "--duration", "1"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1"},
            "at most 50,000,000 in one run",
            id="simulate-too-many-events",
        ),
        pytest.param(
            ["users", "import", "/nonexistent/users.txt"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1"},
            "no such file",
            id="missing-file",
        ),
        pytest.param(
            ["users", "import", "-"], {"PROMO_BROKER": "kafka://127.0.0.1:1"}, "cannot reach the broker", id="no-broker"
        ),
        pytest.param(
            ["users", "import", "/"], {"PROMO_BROKER": "kafka://127.0.0.1:1"}, "is a directory", id="users-directory"
        ),
        pytest.param(
            ["campaigns", "import", "/nonexistent/c.csv"],
            {},
            "no such file: /nonexistent/c.csv",
            id="campaigns-missing",
        ),
        pytest.param(["campaigns", "import", "/"], {}, "is a directory", id="campaigns-directory"),
        pytest.param(["plan", "import", "/"], {}, "/ is a directory; give a CSV file", id="plan-directory"),
        pytest.param(["simulate", "--duration", "0"], {}, "--duration must be positive", id="bad-duration"),
        pytest.param(
            ["simulate", "--truth", "/nonexistent/x.json"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1"},
            "--truth /nonexistent/x.json: the directory /nonexistent does not exist",
            id="simulate-truth-path",
        ),
        pytest.param(
            ["simulate", "--existing", "/"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1"},
            "is a directory",
            id="sim-existing",
        ),
        pytest.param(
            ["simulate", "--duplicate-rate", "1.5", "--duration", "1"],
            {},
            "--duplicate-rate must be a share within [0, 1], not 1.5",
            id="bad-rate",
        ),
        pytest.param(["simulate", "--late-rate", "nan"], {}, "--late-rate must be a share", id="share-nan"),
        pytest.param(
            ["simulate", "--late-rate", "0.6", "--out-of-order-rate", "0.6"],
            {},
            "--late-rate and --out-of-order-rate add up to more than 1",
            id="rates-sum",
        ),
        pytest.param(
            ["simulate", "--scenario", "singles-day-2009", "--duration", "1"], {}, "scenario", id="bad-scenario"
        ),
        pytest.param(
            ["simulate", "--incidents", "/nonexistent/i.json"],
            {},
            "go with --scenario sale-day",
            id="incidents-without-sale-day",
        ),
        pytest.param(
            ["simulate", "--scenario", "sale-day", "--incidents", "/nonexistent/i.json"],
            {},
            "no such file: /nonexistent/i.json",
            id="sale-day-incidents-missing",
        ),
        pytest.param(
            ["simulate", "--scenario", "sale-day", "--incidents", "/etc/hostname"],
            {},
            "not a JSON list of incidents",
            id="sale-day-incidents-bad",
        ),
        pytest.param(
            ["simulate", "--scenario", "sale-day", "--at", "2020-01-01T00:00:00Z"],
            {},
            "--at must fall in the simulated day",
            id="sale-day-at-outside",
        ),
        pytest.param(["simulate", "--scenario", "sale-day", "--at", "midnight"], {}, "--at:", id="sale-day-at-bad"),
        pytest.param(
            ["alerts", "silence", "--scope", "c1", "--until", "soon", "--reason", "x"],
            {},
            "--until must be ISO 8601",
            id="silence-until",
        ),
        pytest.param(
            ["alerts", "silence", "--scope", "total", "--until", "+99999999d", "--reason", "x"],
            {},
            "is more than 7 days ahead",
            id="silence-until-far",
        ),
        pytest.param(
            ["alerts", "silence", "--scope", "total", "--until", "9999-12-31T23:59:59Z", "--reason", "x"],
            {},
            "is more than 7 days ahead",
            id="silence-until-forever",
        ),
        pytest.param(
            ["alerts", "silence", "--scope", "c01/", "--until", "+1h", "--reason", "x"],
            {},
            "--scope: a scope is total, CAMPAIGN or CAMPAIGN/CHANNEL with no empty part",
            id="silence-scope-empty-part",
        ),
        pytest.param(["alerts", "note", "--scope", "/wechat", "--reason", "x"], {}, "empty part", id="note-scope"),
        pytest.param(["alerts", "unsilence", "s1"], {"PROMO_DATA_DIR": "/nonexistent"}, "no store", id="unsilence"),
        pytest.param(
            ["simulate", "--scenario", "sale-day", "--duration", "5"], {}, "at least 10 s", id="sale-day-short"
        ),
        pytest.param(["simulate", "--scenario", "sale-day", "--scale", "nan"], {}, "--scale", id="sale-day-scale-nan"),
        pytest.param(["simulate", "--duration", "nan"], {}, "--duration must be positive", id="duration-nan"),
        pytest.param(["simulate", "--duration", "inf"], {}, "--duration must be positive", id="duration-inf"),
        pytest.param(["simulate", "--rate", "nan"], {}, "--rate not negative", id="rate-nan"),
        pytest.param(
            ["simulate", "--scenario", "sale-day", "--rate", "nan"], {}, "--rate not negative", id="sale-day-rate-nan"
        ),
        pytest.param(
            ["alerts", "replay", "--from", "2026-11-11T00:10:00Z", "--to", "2026-11-11T00:00:00Z"],
            {},
            "--to must be after --from",
            id="replay-backwards",
        ),
        pytest.param(["plan", "from-day", "11/11"], {}, "must be a date, YYYY-MM-DD", id="from-day-date"),
        # An outside probe: --for "" was read as today, and replaced the stored plan.
        pytest.param(["plan", "from-day", "2026-11-11", "--for", ""], {}, "--for must be a date", id="from-for-empty"),
        # An outside probe: a traceback (year 10000 in UTC, which no date holds).
        pytest.param(["alerts", "list", "--since", "9999-12-31T23:59:59-08:00"], {}, "is after 9999", id="since-y10k"),
        # An outside probe: a line break in --by forged a line of `alerts list`; a tab, 100,000 characters.
        pytest.param(["alerts", "ack", "a1", "--by", "eve\na1  ok  RESOLVED"], {}, "--by is a name", id="ack-by-lines"),
        pytest.param(["alerts", "unsilence", "s1", "--by", "x\ty"], {}, "--by is a name", id="unsilence-by-tab"),
        pytest.param(["alerts", "ack", "a1", "--by", "x" * 101], {}, "1 to 100 characters", id="ack-by-long"),
        pytest.param(
            ["alerts", "silence", "--scope", "total", "--until", "+1h", "--reason", "r", "--by", "a\nb"],
            {},
            "--by is a name",
            id="silence-by-lines",
        ),
        pytest.param(["dashboards", "bench", "--events", "10"], {}, "--events must be at least", id="bench-events"),
        pytest.param(["bench-memory", "--users", "0"], {}, "--users must be at least 1", id="bench-memory-users"),
        pytest.param(["bench-recovery", "--users", "0"], {}, "--users must be at least 1", id="bench-recovery-users"),
        pytest.param(
            ["bench-recovery", "--events", "100", "--tail", "100"], {}, "--tail must be", id="bench-recovery-tail"
        ),
        pytest.param(
            ["bench-recovery", "--events", "-1"], {}, "--events must be at least 2", id="bench-recovery-events"
        ),
        pytest.param(
            ["bench-memory", "--cache", "-1"],
            {},
            "--cache must be 0 (all in memory) or a number of users",
            id="bench-memory-cache",
        ),
        pytest.param(
            ["chaos", "--user-cache", "-1"],
            {},
            "--user-cache must be 0 (all in memory) or a number of users",
            id="chaos-user-cache",
        ),
        pytest.param(
            ["worker", "--loglevel", "loud"], {"PROMO_BROKER": "kafka://127.0.0.1:1"}, "--loglevel", id="bad-loglevel"
        ),
        pytest.param(
            ["worker"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_DATA_DIR": "/dev/null/promo"},
            "cannot use the data directory /dev/null/promo (PROMO_DATA_DIR): Not a directory",
            id="data-dir-under-a-file",
        ),
        pytest.param(
            ["worker"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_VIEW_HOST": "0.0.0.0"},
            "set PROMO_VIEW_TOKEN",
            id="view-beyond-loopback-without-token",
        ),
        pytest.param(
            ["worker", "--view-port", "70000"], {}, "view port must be 0 (off) or 1-65535", id="bad-view-port"
        ),
        pytest.param(
            ["worker"],
            {"PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_CRASH_AT": "nowhere:1"},
            "cannot arm the crash points: unknown crash point 'nowhere'",
            id="bad-crash-point",
        ),
        pytest.param(
            ["demo", "--view-port", "-1"], {}, "view port must be 0 (off) or 1-65535", id="demo-bad-view-port"
        ),
        pytest.param(
            ["demo"],
            {"PROMO_VIEW_HOST": "192.168.1.20", "PROMO_VIEW_TOKEN": "short"},
            "at least 16 characters",
            id="demo-short-token",
        ),
    ],
)
def test_errors_are_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    result = promo(*args, env=env, stdin="u-1\nu-2\n")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("promo: error:") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["users", "import", "-"], b"u1\n\xff\n"),
        (["campaigns", "import", "-"], b"campaign_id,name\nc01,\xff\n"),
        (["plan", "import", "-"], b"minute,metric,expected,campaign_id,channel\n2026-11-11T00:00:00Z,orders,5,\xff,\n"),
        (["alerts", "backtest", "--series", "-"], b"ts,metric,value\n2026-11-11T00:00:00Z,orders,5\xff\n"),
        (["simulate", "--scenario", "sale-day", "--incidents", "-"], b'[{"kind": "\xff"}]'),
    ],
    ids=["users", "campaigns", "plan", "backtest", "incidents"],
)
def test_standard_input_that_is_not_utf8_is_refused_as_a_file_is(args: list[str], stdin: bytes) -> None:
    result = promo(*args, env={"PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_DATA_DIR": "/nonexistent"}, stdin=stdin)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("promo: error: standard input: not UTF-8 text (byte 0xff on line ")
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize(
    ("incidents", "message"),
    [
        ('[{"scope": "c99", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1}]',
         "incident 0: no campaign 'c99' in the sale day"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1}, '
         '{"scope": "c01", "start": "2026-11-10T10:00:00Z", "duration": 60, "depth": 1}]',
         "incident 1: 2026-11-10T10:00:00Z for 60 s is outside the slice sent"),
        ('[{"scope": "c01", "start": NaN, "duration": 60, "depth": 1}]', "incident 0: start must be"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1, "shape": "ramp", '
         '"ramp_s": -1}]', "incident 0: ramp_s must be positive"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1, "metrics": []}]',
         "incident 0: metrics is a non-empty list"),
        ('[{"scope": "c01/", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1}]', "incident 0: a scope"),
        ('[{"scope": "c01", "duration": 60, "depth": 1}]', "incident 0: no 'start'"),
        ("[1]", "incident 0: an incident is a JSON object"),
        ('{"scope": "c01"}', "not a JSON list of incidents (a dict)"),
        ("[" * 100_000 + "]" * 100_000, "not a JSON list of incidents"),
        ('[{"scope": "c01", "start": 1e300, "duration": 60, "depth": 1}]', "is outside the slice sent"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1, "ramp_s": 1' + "0" * 400
         + "}]", "incident 0: ramp_s must be positive seconds"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": "0.5"}]',
         "incident 0: depth must be a number in (0, 1], not the text '0.5'"),
        ('[{"scope": "", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 1}]', "incident 0: a scope"),
        # An outside probe: accepted, and labelled with a depth the traffic did not show.
        ('[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 0.5},'
         ' {"scope": "c01/wechat", "metrics": ["orders"], "start": "2026-11-10T15:55:40Z", "duration": 60,'
         ' "depth": 0.5}]',
         "incident 1 overlaps incident 0 on orders of c01/wechat / c01: their depths would multiply"),
        ('[{"scope": "c07", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 0.5}]',
         "incident 0: changes no traffic sent (the slice sends the 10 s buckets from 2026-11-10T15:55:00Z to "
         "2026-11-10T15:56:00Z; an incident acts on a bucket's middle, and c07 sends none of interactions"),
        # c02 starts at 16:00: the incident overlaps the slice and c02's run, but not at the same time.
        ('[{"scope": "c02", "start": "2026-11-10T15:55:30Z", "duration": 600, "depth": 0.5}]',
         "incident 0: changes no traffic sent"),
        ('[{"scope": "c01", "start": "2026-11-10T15:55:56Z", "duration": 60, "depth": 0.5}]',
         "incident 0: changes no traffic sent"),  # after the last bucket's middle (15:55:55)
        ('[{"scope": "c01", "start": "2026-11-10T15:55:11Z", "duration": 3, "depth": 0.5}]',
         "incident 0: changes no traffic sent"),  # between two middles
    ],
    ids=["unknown-campaign", "outside-slice", "start-nan", "ramp-negative", "metrics-empty", "scope-empty-part",
         "no-start", "not-an-object", "not-a-list", "nested-deep", "start-1e300", "ramp-400-digits", "depth-text",
         "scope-empty", "overlap", "not-running", "not-running-then", "after-the-last-middle", "between-middles"],
)  # fmt: skip
def test_sale_day_incidents_that_can_never_apply_are_one_line_exit_2(
    tmp_path: Path, incidents: str, message: str
) -> None:
    path = tmp_path / "incidents.json"
    path.write_text(incidents)
    result = promo("simulate", "--scenario", "sale-day", "--incidents", str(path), "--duration", "60",
                   env={"PROMO_BROKER": "kafka://127.0.0.1:1"})  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"promo: error: {path}:") and message in result.stderr, result.stderr


def test_secret_does_not_print_and_dsn_is_redacted() -> None:
    settings = load_settings({"PROMO_CLICKHOUSE": "http://writer:hunter2@ch:8123/"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(Secret("hunter2"))
    assert redact_dsn(settings.clickhouse_dsn) == "http://writer:********@ch:8123/"


def test_flags_win_over_environment_and_store_defaults_under_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"PROMO_TOPIC_PREFIX": "env.", "PROMO_DATA_DIR": str(tmp_path)}, topic_prefix="flag.")
    assert settings.topic("clicks") == "flag.clicks"
    assert settings.embedded_store == (tmp_path / "store").resolve()


def test_bad_setting_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="partitions must be between"):
        load_settings({"PROMO_PARTITIONS": "0"})


@pytest.mark.parametrize("dsn", ["chdb://", "chdb:///", "chdb://.", "chdb://./", "chdb://store/.."])
def test_an_embedded_store_must_name_its_directory(dsn: str) -> None:
    # Its owner and detector files are named after the directory, beside it: "" or ".." has no name.
    with pytest.raises(ConfigError, match="must name the store's directory"):
        load_settings({"PROMO_CLICKHOUSE": dsn})
    assert load_settings({"PROMO_CLICKHOUSE": "chdb://store/"}).embedded_store == Path("store")


DURATIONS = [f.name for f in fields(Settings) if f.type == "float"]


def test_the_duration_settings_are_the_float_ones() -> None:
    assert {"allowed_lateness_s", "dedup_horizon_s", "stall_after_s", "clickhouse_timeout_s"} <= set(DURATIONS)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN", "Infinity", "0", "-1"])
@pytest.mark.parametrize("name", DURATIONS)
def test_every_duration_setting_refuses_nan_infinity_and_zero(name: str, raw: str) -> None:
    variable = f"PROMO_{name.upper()}"
    with pytest.raises(ConfigError, match=f"^{variable} must be a positive number of seconds"):
        load_settings({variable: raw})


@pytest.mark.parametrize(("variable", "raw"), [("PROMO_BATCH_SIZE", "0"), ("PROMO_MAX_VALUE_BYTES", "0"),
                                               ("PROMO_BEHIND_EVENTS", "-1")])  # fmt: skip
def test_count_settings_refuse_what_counts_nothing(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable} must be at least"):
        load_settings({variable: raw})


@pytest.mark.parametrize(
    "broker", ["kafk://u:SEKRETPW@h:9092", "kafka://u:SEKRETPW@h:9092", "kafka://h:1;kafka://u:SEKRETPW@h:2",
               "kafk://u:SEKRETPW@[h"],
)  # fmt: skip
def test_a_broker_with_a_password_is_refused_without_saying_it(broker: str) -> None:
    # The Kafka clients take no user:password from the URL; their own errors would print it.
    with pytest.raises(ConfigError, match="broker must") as caught:
        load_settings({"PROMO_BROKER": broker})
    assert "SEKRETPW" not in str(caught.value)


@pytest.mark.parametrize("session", ["10", "45", "85", "120"])
def test_the_consumers_wait_for_a_join_longer_than_the_session_timeout(session: str) -> None:
    # The embedded broker answers a new member's join after about half the session timeout (measured:
    # 43 s at 85 s), a real one after the members it knew have rejoined: a request timeout shorter
    # than that (aiokafka's 40 s) never joined, and the sink at PROMO_SESSION_TIMEOUT_S=85 wrote no
    # number in two minutes. Faust refused a session above its 90 s with a traceback.
    settings = load_settings({"PROMO_SESSION_TIMEOUT_S": session})
    assert request_timeout_s(settings) >= max(90.0, settings.session_timeout_s + 30.0)


def test_a_dsn_that_does_not_parse_is_still_redacted() -> None:
    assert redact_dsn("http://writer:hunter2@[ch:8123/") == "http://writer:********@[ch:8123/"


def test_totals_table_aligns_chinese_names() -> None:
    row = {"campaign_id": "双11主会场", "channel": "wechat", "interactions": 3, "participants": 2, "shares": 1,
           "orders": 1, "gmv_fen": 12345, "buyers": 1, "new_users": 1, "new_users_via_share": 0}  # fmt: skip
    lines = format_totals([row, {**row, "campaign_id": "brand"}]).splitlines()
    assert "123.45" in lines[1]
    # Wide characters take two columns: the channel column starts at the same terminal column.
    assert lines[1].index("wechat") + sum(1 for c in "双11主会场" if ord(c) > 0x2E80) == lines[2].index("wechat")
    assert format_totals([]) == "(no data yet)"


def test_dashboards_build_writes_the_committed_json(tmp_path: Path) -> None:
    result = promo("dashboards", "build", str(tmp_path))
    assert result.returncode == 0, result.stderr
    committed = Path(__file__).resolve().parents[2] / "dashboards"
    for path in committed.glob("*.json"):
        assert (tmp_path / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_dashboards_bench_never_wipes_a_store_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "store" / "promo").mkdir(parents=True)  # e.g. --work-dir .promo, where the worker's store is
    result = promo("dashboards", "bench", "--events", "1000", "--work-dir", str(tmp_path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "was not made by this bench" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "store" / "promo").is_dir()


def test_a_view_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_DATA_DIR": str(tmp_path)}
        for command in (["worker"], ["demo", "--data-dir", str(tmp_path)]):
            result = promo(*command, "--view-port", str(port), env=env)
            assert result.returncode == 2, (result.stdout, result.stderr)
            assert result.stderr.strip() == (
                f"promo: error: the view's port 127.0.0.1:{port} is in use; pick another with --view-port (0: no view)"
            )


def test_bench_memory_prints_figures_per_size() -> None:
    result = promo("bench-memory", "--users", "2000", "--users", "4000", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["users"] for r in rows] == [2000, 4000]
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] >= 0 for r in rows)


def test_bench_memory_holds_at_most_the_cache_in_memory() -> None:
    result = promo("bench-memory", "--users", "5000", "--cache", "1000", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["cache"] == 1000 and row["in_memory"] <= 1000 and row["evicted"] >= 4000


USERS_FILE = "user_id\nu-1\n123,foo\nu 2\n# a comment\n\nu-3\n" + "x" * 65 + "\n"


def test_users_import_reports_every_rejected_line_and_imports_nothing(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text(USERS_FILE)
    result = promo("users", "import", str(users), env={"PROMO_BROKER": "kafka://127.0.0.1:1"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "skipped a header line: user_id"
    assert lines[1].startswith(f"{users}:3: rejected '123,foo': contains ','")
    assert lines[2].startswith(f"{users}:4: rejected 'u 2': contains whitespace")
    assert lines[3].startswith(f"{users}:8: rejected 'xxx") and "65 characters" in lines[3]
    assert lines[4] == "promo: error: 3 line(s) are not user_ids; nothing imported (fix them, or --skip-invalid)"
    assert len(lines) == 5 and "Traceback" not in result.stderr  # it never reached for the broker


def test_users_import_skip_invalid_goes_on_to_import_the_valid_lines(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text(USERS_FILE)
    result = promo("users", "import", str(users), "--skip-invalid", env={"PROMO_BROKER": "kafka://127.0.0.1:1"})
    assert result.returncode == 2
    assert "rejected '123,foo'" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("promo: error: cannot reach the broker")  # it tried


def test_verify_refuses_a_truth_with_nothing_in_it(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text('{"totals": [], "rejected": {}, "accepted": 0}')  # every store "differed" in every cell
    result = promo("verify", "--truth", str(truth), env={"PROMO_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == (
        f"promo: error: {truth}: the truth holds no totals and no rejections; nothing to verify against\n"
    )


def test_campaigns_import_reports_bad_lines_and_sends_nothing(tmp_path: Path) -> None:
    campaigns = tmp_path / "campaigns.csv"
    campaigns.write_text("campaign_id,name,starts_at,ends_at\nc1,一号,2026-11-11T00:00:00,\nc2,二号,,\n")
    result = promo("campaigns", "import", str(campaigns), env={"PROMO_BROKER": "kafka://127.0.0.1:1"})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{campaigns}:2: '2026-11-11T00:00:00' has no UTC offset")
    assert lines[1] == "promo: error: 1 line(s) rejected; nothing imported" and len(lines) == 2


def test_a_worker_whose_web_port_is_taken_says_so_in_one_line(tmp_path: Path) -> None:
    # Faust's own bind error was 47 lines with a traceback; the view's port was already one line.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = f"chdb://{tmp_path / 'store'}"
        result = promo("worker", "--web-port", str(port), "--no-view", "--broker", "kafka://127.0.0.1:1",
                       "--clickhouse", store, env={"PROMO_DATA_DIR": str(tmp_path)})  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"promo: error: the worker's web port 127.0.0.1:{port} is in use"), result.stderr


def test_an_incidents_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # An outside probe: refused ("Unexpected UTF-8 BOM") where the CSV readers drop it.
    from streams.cli.data import _incidents
    from streams.kit.saleday import DayConfig

    path = tmp_path / "bom.json"
    path.write_text('\ufeff[{"scope": "c01", "start": "2026-11-10T15:55:10Z", "duration": 60, "depth": 0.5}]')
    config = DayConfig(seed=11)
    (found,) = _incidents(path, config, config.start, config.start + 86400)
    assert found.scope.campaign_id == "c01" and found.depth == 0.5


def test_a_sale_day_incident_that_hits_a_bucket_sent_is_taken(tmp_path: Path) -> None:
    # A review: --at 15:55:05 for 15 s sends the day's bucket [15:55:10, 15:55:20), which an incident
    # at 15:55:15 for 5 s hits (its middle): it was refused as after the last bucket.
    path = tmp_path / "incidents.json"
    path.write_text('[{"scope": "c01", "start": "2026-11-10T15:55:15Z", "duration": 5, "depth": 0.5}]')
    result = promo("simulate", "--scenario", "sale-day", "--incidents", str(path), "--at", "2026-11-10T15:55:05Z",
                   "--duration", "15", env={"PROMO_BROKER": "kafka://127.0.0.1:1"})  # fmt: skip
    assert result.returncode == 2 and "cannot reach the broker" in result.stderr, result.stderr  # past the checks


def test_scrub_hides_a_secret_as_sent_and_as_it_goes_on_the_wire() -> None:
    from streams.config import dsn_secrets, scrub

    dsn = "http://writer:p%40ss%20w@ch:8123/"
    secrets = dsn_secrets(dsn)
    assert secrets == ("p%40ss%20w", "p@ss w", "writer:p@ss w")
    basic = base64.b64encode(b"writer:p@ss w").decode()
    echoed = f"auth was Basic {basic}; password p@ss w, quoted p%40ss%20w"
    assert scrub(echoed, *secrets) == "auth was Basic ********; password ********, quoted ********"
    assert scrub("Bearer glsa_tok", "glsa_tok") == "Bearer ********"
    assert dsn_secrets("http://ch:8123/") == () and scrub("as is", "", "ab") == "as is"


@pytest.mark.parametrize("password", ["s3cr3tpw#x", "ab/cd12", "pa?ss12"])
def test_a_password_urlsplit_cuts_short_is_still_never_shown(password: str) -> None:
    # urlsplit ends the authority at an unescaped '#', '/' or '?', reads the password's start as the
    # port and has no password: the DSN went out unredacted in the error (a review).
    dsn = f"http://writer:{password}@ch:8123/"
    assert redact_dsn(dsn) == "http://writer:********@ch:8123/"
    with pytest.raises(ConfigError, match=r"unescaped '#', '/' or '\?'") as refused:
        load_settings({"PROMO_CLICKHOUSE": dsn})
    assert password[:4] not in str(refused.value)


def test_a_setting_whose_default_is_empty_may_be_set_empty() -> None:
    # PROMO_VIEW_TOKEN=${TOKEN:-}: empty is that default, not an error (the demo passes it so; a review)
    settings = load_settings({"PROMO_VIEW_TOKEN": "", "PROMO_INPUT_PREFIX": "", "PROMO_DASHBOARD_URL": ""})
    assert settings.view_token.value == "" and settings.input_prefix == ""
