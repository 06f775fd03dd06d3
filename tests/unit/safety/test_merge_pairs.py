"""The pair finder of merge_leads: given pairs checked, duplicate groups found by a key, the
destination of each group chosen by one documented rule."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.errors import ArgumentError
from close_mcp.safety.merge_pairs import MAX_PAIRS, Pair, check_pairs, find_pairs, key_values


def lead(lead_id: str, created: str, *emails: str, name: str = "Acme") -> dict[str, Any]:
    return {
        "id": lead_id,
        "name": name,
        "date_created": created,
        "contacts": [{"emails": [{"email": e} for e in emails]}],
    }


def test_given_pairs_come_back_in_order() -> None:
    assert check_pairs([("lead_b", "lead_a"), ("lead_c", "lead_a")]) == [
        Pair("lead_b", "lead_a"),
        Pair("lead_c", "lead_a"),
    ]


@pytest.mark.parametrize(
    ("pairs", "path", "message"),
    [
        ([], "pairs", "give at least one {source, destination} pair"),
        ([("lead_a", "lead_a")], "pairs[0]", "lead_a cannot be merged into itself"),
        (
            [("lead_a", "lead_b"), ("lead_a", "lead_c")],
            "pairs[1].source",
            "lead_a is already the source of pairs[0]",
        ),
        (
            [("lead_a", "lead_b"), ("lead_b", "lead_c")],
            "pairs[0].destination",
            "lead_b is the source of pairs[1] (deleted by its merge): merge every lead of a "
            "group straight into one destination",
        ),
        (
            [(f"lead_{i}", "lead_z") for i in range(MAX_PAIRS + 1)],
            "pairs",
            f"{MAX_PAIRS + 1} pairs; at most {MAX_PAIRS} per call",
        ),
    ],
)
def test_a_pair_that_breaks_a_rule_is_named(
    pairs: list[tuple[str, str]], path: str, message: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        check_pairs(pairs)
    assert (info.value.path, info.value.message) == (path, message)


def test_the_oldest_lead_of_a_group_is_the_destination_and_groups_join_through_any_email() -> None:
    leads = [
        lead("lead_new", "2024-03-01T00:00:00+00:00", "a@acme.com"),
        # The oldest: written in another offset, still the earliest moment.
        lead("lead_old", "2024-01-01T05:00:00+05:00", "b@acme.com", "A@ACME.com"),
        lead("lead_mid", "2024-02-01T00:00:00.5+00:00", "b@acme.com"),
        lead("lead_alone", "2023-01-01T00:00:00+00:00", "c@other.com"),
        lead("lead_none", "2023-01-01T00:00:00+00:00"),
    ]
    assert find_pairs(leads, "contact_email") == [
        Pair("lead_mid", "lead_old"),
        Pair("lead_new", "lead_old"),
    ]


def test_a_tie_in_age_is_broken_by_the_smaller_id() -> None:
    same = "2024-01-01T00:00:00+00:00"
    leads = [lead("lead_b", same, "x@acme.com"), lead("lead_a", same, "x@acme.com")]
    assert find_pairs(leads, "contact_email") == [Pair("lead_b", "lead_a")]


def test_webmail_domains_make_no_duplicates_by_domain() -> None:
    leads = [
        lead("lead_a", "2024-01-01T00:00:00+00:00", "ann@gmail.com"),
        lead("lead_b", "2024-01-02T00:00:00+00:00", "bob@GMAIL.com", "bob@outlook.com"),
        lead("lead_c", "2024-01-03T00:00:00+00:00", "cy@acme.com"),
        lead("lead_d", "2024-01-04T00:00:00+00:00", "di@Acme.com"),
    ]
    assert key_values(leads[1], "email_domain") == set()
    assert find_pairs(leads, "email_domain") == [Pair("lead_d", "lead_c")]


def test_exact_name_ignores_case_and_spacing_but_not_other_words() -> None:
    leads = [
        lead("lead_a", "2024-01-01T00:00:00+00:00", name="Acme  Corp"),
        lead("lead_b", "2024-01-02T00:00:00+00:00", name=" acme corp "),
        lead("lead_c", "2024-01-03T00:00:00+00:00", name="Acme Corp Inc"),
        lead("lead_d", "2024-01-04T00:00:00+00:00", name=""),
        lead("lead_e", "2024-01-05T00:00:00+00:00", name=""),
    ]
    assert find_pairs(leads, "exact_name") == [Pair("lead_b", "lead_a")]
