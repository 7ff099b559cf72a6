"""`promo users import` files: one user_id a line, a header skipped, every other bad line refused."""

from __future__ import annotations

import pytest

from streams.users import Rejected, check_user_id, read_user_file


def test_a_plain_file_imports_every_line() -> None:
    parsed = read_user_file("u-1\n用户42\n  u-3  \r\n\ufeffu-4\n")
    assert parsed.users == ["u-1", "用户42", "u-3", "u-4"] and parsed.header is None and parsed.rejected == []
    # Spaces around an id are taken off, and which lines had them is kept for the command to say (an
    # outside probe: "alice " imported "alice" without a word); a CRLF or a byte-order mark is no padding.
    assert parsed.trimmed == [3]


@pytest.mark.parametrize("header", ["user_id", "USER_ID", "user_id,name", '"user_id"', "\ufeffuser_id", "用户ID"])
def test_a_header_line_is_skipped_and_kept(header: str) -> None:
    parsed = read_user_file(f"# exported\n{header}\nu-1\n")
    assert parsed.users == ["u-1"] and parsed.header is not None


def test_a_header_word_after_the_first_line_is_an_id() -> None:
    assert read_user_file("u-1\nuser\n").users == ["u-1", "user"]


def test_bad_lines_are_rejected_with_their_numbers() -> None:
    parsed = read_user_file("u-1\n123,foo\nu 2\nu\t3\n" + "x" * 65 + "\nbad\x01id\nu-4\n")
    assert parsed.users == ["u-1", "u-4"]
    assert [(r.line, r.reason.split(":")[0].split(";")[0]) for r in parsed.rejected] == [
        (2, "contains ','"),
        (3, "contains whitespace"),
        (4, "contains '\\t'"),
        (5, "65 characters"),
        (6, "contains a control character"),
    ]
    assert all(isinstance(r, Rejected) for r in parsed.rejected)


@pytest.mark.parametrize("good", ["u-1", "x" * 64, "用户42", "a.b@c", "🎉"])
def test_ids_the_contract_allows_pass(good: str) -> None:
    assert check_user_id(good) is None
