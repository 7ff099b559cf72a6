"""What `promo alerts` and `promo plan` do with inputs a review found wrong: a bad flag, file or time
is one line and exit 2; an answer that judged nothing says so. Real files, the real `promo`."""

from __future__ import annotations

import pytest

from tests.unit.test_cli import promo


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
