"""An error told in one bounded line, its type in front."""

from __future__ import annotations

from syncd.describe import describe_error, describe_text


def test_an_error_is_one_line_with_its_type_in_front() -> None:
    error = ValueError("quantity -3 for SKU A1\n  refused by\tthe channel")
    assert describe_error(error) == "ValueError: quantity -3 for SKU A1 refused by the channel"
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_a_long_error_is_cut_to_500_characters() -> None:
    assert len(describe_error(RuntimeError("x" * 2_000))) == 500
    assert len(describe_text("y " * 1_000)) == 500
    assert describe_text(" \n ") == "unknown error"
