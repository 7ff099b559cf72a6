"""deploy/systemd/promo-worker@.service held to the code: it restarts a worker that stops on a failure
(exit 1), leaves one that refuses to start (exit 2) down, and waits out the worker's own stop deadline.
Pure: the unit file is read, nothing is started."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import typer

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "promo-worker@.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_restarts_a_failed_worker_and_not_one_that_refused_to_start() -> None:
    from streams.cli.base import fail

    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    with pytest.raises(typer.Exit) as refused:
        fail("a setting no restart fixes")
    assert service["RestartPreventExitStatus"] == str(refused.value.exit_code) == "2"


def test_systemd_waits_longer_than_the_worker_takes_to_stop() -> None:
    from streams.kafka import STALL_S
    from streams.worker.transport import STOP_DEADLINE_S

    assert float(_unit()["Service"]["TimeoutStopSec"]) > STOP_DEADLINE_S
    text = UNIT.read_text()  # what its comments say is what the code does
    assert f"a stop that hangs past {STOP_DEADLINE_S:.0f} s" in text and f"answered for {STALL_S:.0f} s" in text


def test_the_unit_runs_a_worker_command_that_exists() -> None:
    from streams.cli import app

    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert argv[0].endswith("/bin/promo") and argv[1] == "worker"
    command = typer.main.get_command(app).commands["worker"]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    given = [a for a in argv[2:] if a.startswith("--")]
    assert given and set(given) <= options, set(given) - options
    assert "PROMO_CLICKHOUSE" not in _unit()["Service"].get("Environment", "")  # secrets come from the file
