"""Parsers of the values an assistant writes: dates, spans, numbers, choices."""

from __future__ import annotations

import pytest

from close_mcp.close.catalog import CustomField
from close_mcp.errors import ArgumentError
from close_mcp.selection.parsers import (
    check_choice,
    check_number,
    parse_duration,
    parse_when,
    short_repr,
)


def test_parse_when() -> None:
    assert parse_when("2025-01-31").isoformat() == "2025-01-31"
    assert parse_when("2025-01-31T10:00:00Z").isoformat() == "2025-01-31T10:00:00+00:00"
    assert parse_when("2025-01-31T10:00+01:30").isoformat() == "2025-01-31T08:30:00+00:00"


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31T23:59:59-14:00"])
def test_a_moment_outside_the_years_1_to_9999_in_utc_is_refused(value: str) -> None:
    """0001-01-01 starts in year 0 east of UTC: refused here, not overflowing later."""
    with pytest.raises(ValueError, match="out of range") as info:
        parse_when(value)
    assert str(info.value) == (
        f"{value!r} is out of range: in UTC it falls outside the years 1 to 9999 "
        "(the first whole day allowed is 0001-01-02)"
    )
    assert parse_when("0001-01-02").isoformat() == "0001-01-02"


DURATIONS: list[tuple[str, dict[str, int]]] = [
    ("90d", {"days": 90}),
    (" 12H ", {"hours": 12}),
    ("2w", {"weeks": 2}),
    ("P90D", {"days": 90}),
    ("pt12h", {"hours": 12}),
    (
        "P1Y2M3W4DT5H6M7S",
        {"years": 1, "months": 2, "weeks": 3, "days": 4, "hours": 5, "minutes": 6, "seconds": 7},
    ),
    ("P0DT36H", {"hours": 36}),
]


@pytest.mark.parametrize(("text", "offset"), DURATIONS)
def test_parse_duration(text: str, offset: dict[str, int]) -> None:
    assert parse_duration(text) == offset


def test_a_value_is_quoted_short() -> None:
    """Error messages quote what was given, but never a 5,000-digit number or a long text."""
    assert short_repr(10**2000) == "a number of about 2001 digits"
    assert short_repr(-(10**2000)) == "a negative number of about 2001 digits"
    assert short_repr("x" * 100) == "'" + "x" * 55 + "...'"
    assert short_repr("short") == "'short'"


@pytest.mark.parametrize(
    ("value", "number"), [("12.5", 12.5), (" 7 ", 7), (-3, -3), (2.5e300, 2.5e300)]
)
def test_a_number_fields_value(value: object, number: float) -> None:
    assert check_number(value, "path") == number


OUT_OF_RANGE = "is out of range; a number field holds finite numbers between -1.8e+308 and 1.8e+308"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", f"'1e400' {OUT_OF_RANGE}"),
        (10**400, f"a number of about 401 digits {OUT_OF_RANGE}"),
        (True, "this is a number field; True is not a number"),
        (float("nan"), "this is a number field; nan is not a number"),
        ("abc", "this is a number field; 'abc' is not a number"),
    ],
)
def test_not_a_number_fields_value(value: object, message: str) -> None:
    with pytest.raises(ArgumentError) as info:
        check_number(value, "custom.Employees")
    assert str(info.value) == f"custom.Employees: {message}"


def test_a_choice_is_matched_without_case() -> None:
    field = CustomField(
        id="cf_ind", name="Industry", type="choices", choices=["Software", "Retail"]
    )
    assert check_choice(" software", field, "p") == "Software"
    with pytest.raises(ArgumentError) as info:
        check_choice("Spaceflight", field, "p")
    assert str(info.value) == (
        "p: 'Spaceflight' is not a choice of this field; allowed: 'Software', 'Retail'"
    )
