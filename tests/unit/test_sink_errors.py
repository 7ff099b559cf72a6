"""Which ClickHouse failures the sink waits out and which stop the worker (issue 15: it retried
every exception forever, and SinkError.code was never set)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from streams.errors import SinkError
from streams.sink.clickhouse import TRANSIENT_CODES, error_code, is_transient


@pytest.mark.parametrize(
    ("exc", "transient", "code"),
    [
        (DatabaseError("Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)"), True, 241),
        (DatabaseError("Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)"), True, 242),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"), True, 252),
        (DatabaseError("Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)"), True, 159),
        (OperationalError("Error HTTPConnectionPool: Max retries exceeded (Connection refused)"), True, None),
        (TimeoutError("timed out"), True, None),
        (ConnectionResetError("reset by peer"), True, None),
        (SinkError("injected write failure", transient=True), True, None),
        (DatabaseError("Code: 47. DB::Exception: Unknown identifier `src_partition`. (UNKNOWN_IDENTIFIER)"), False, 47),
        (DatabaseError("Code: 516. DB::Exception: Authentication failed. (AUTHENTICATION_FAILED)"), False, 516),
        (ProgrammingError("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)"), False, 62),
        (OperationalError("Code: 81. DB::Exception: Database promo does not exist. (UNKNOWN_DATABASE)"), False, 81),
        (ValueError("zip() argument 2 is shorter than argument 1"), False, None),  # our own bug: never heals
        (SinkError("cannot open ClickHouse", code=516), False, 516),
    ],
)
def test_transient_or_permanent(exc: Exception, transient: bool, code: int | None) -> None:
    assert is_transient(exc) is transient
    assert error_code(exc) == code


def test_the_transient_codes_are_the_server_errors_that_heal() -> None:
    assert set(TRANSIENT_CODES.values()) >= {"TIMEOUT_EXCEEDED", "READONLY", "TABLE_IS_READ_ONLY", "TOO_MANY_PARTS",
                                             "MEMORY_LIMIT_EXCEEDED", "TOO_MANY_SIMULTANEOUS_QUERIES"}  # fmt: skip
