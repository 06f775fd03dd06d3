"""send_email's checks that need nothing from Close, called directly."""

import pytest

from close_mcp.clock import FakeClock
from close_mcp.errors import ArgumentError
from close_mcp.server.tools.send_arguments import (
    address_of_sender,
    check_combination,
    check_followup_sequence,
    check_headers,
    parse_recipients,
    parse_schedule,
)


def test_recipients_are_stripped_and_the_first_bad_one_is_named_by_position() -> None:
    assert parse_recipients("to", [" a@example.com ", "b@example.org"]) == [
        "a@example.com",
        "b@example.org",
    ]
    with pytest.raises(ArgumentError, match=r"^cc\[1\]: 'Bob <b@x.io>' is not a valid email"):
        parse_recipients("cc", ["a@example.com", "Bob <b@x.io>"])


def test_a_header_with_a_line_break_is_refused_by_its_field() -> None:
    with pytest.raises(ArgumentError, match=r"^bcc\[0\]: .* contains a line break"):
        check_headers("Hi", None, {"to": ["a@example.com"], "bcc": ["a@x.io\nBcc: c@y.io"]})


def test_the_sender_address_is_taken_from_a_display_form() -> None:
    assert address_of_sender('"Ann" <ann@example.com>') == "ann@example.com"
    with pytest.raises(ArgumentError, match=r"^sender: 'Ann' is not a sender"):
        address_of_sender("Ann")


@pytest.mark.parametrize(
    ("status", "scheduled", "send_in", "error"),
    [
        ("scheduled", None, None, "date_scheduled: required for status scheduled"),
        ("outbox", "2030-01-01T00:00:00+00:00", None, "date_scheduled: only for status scheduled"),
        ("draft", None, 5, "send_in: only for status outbox"),
    ],
)
def test_status_rules_name_the_field_that_breaks_them(
    status: str, scheduled: str | None, send_in: int | None, error: str
) -> None:
    with pytest.raises(ArgumentError, match="^" + error):
        check_combination(status, "a@example.com", scheduled, send_in, None, "body", None, None)


def test_a_body_and_a_template_together_are_refused() -> None:
    with pytest.raises(ArgumentError, match=r"^template: give a template or body_text, not both"):
        check_combination("draft", None, None, None, None, "body", None, "Welcome")


def test_a_sequence_delay_needs_a_sequence() -> None:
    with pytest.raises(ArgumentError, match=r"^followup_sequence_delay: only with"):
        check_followup_sequence("outbox", None, 86_400)


def test_a_schedule_in_the_past_is_refused_with_the_time_now() -> None:
    clock = FakeClock()
    with pytest.raises(ArgumentError, match=r"^date_scheduled: .* is not in the future"):
        parse_schedule("1999-01-01T00:00:00+00:00", clock)
