"""Unknown arguments are refused before anything is resolved or sent.

Pydantic drops what it does not know, so a misspelled `"dryRun": true` once ran a real bulk
edit on its first call. Every tool now answers an unknown name with a tool error that names
it, guesses what was meant, and lists every allowed name.
"""

from __future__ import annotations

import pytest

from tests.harness import MODES, Harness

QUALIFIED = {"filter": {"lead_status": "Qualified"}}
EDIT = {"type": "set_lead_status", "lead_status": "Bad Fit"}

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=60)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("spelling", "meant"),
    [("dryRun", "dry_run"), ("DRY-RUN", "dry_run"), ("confirmationToken", "confirmation_token")],
)
async def test_a_misspelled_argument_is_refused_with_a_guess(
    h: Harness, spelling: str, meant: str
) -> None:
    error = await h.error("create_bulk_edit", {**QUALIFIED, "edit": EDIT, spelling: True})
    assert error.startswith(
        f"{spelling}: unknown argument; did you mean {meant!r}? Nothing was sent."
    )
    assert error.endswith(
        "Allowed: edit, filter, s_query, results_limit, sort, allow_all_leads, selection, "
        "send_done_email, dry_run, confirmation_token"
    )
    assert h.sandbox.requests == []


async def test_an_unknown_argument_with_no_likely_meaning_lists_the_allowed_names(
    h: Harness,
) -> None:
    error = await h.error("search_leads", {**QUALIFIED, "zzz": 1, "yyy": 2})
    assert error.startswith(
        "zzz: unknown argument (and 1 more unknown) Nothing was sent. Allowed: "
    )
    assert h.sandbox.requests == []


async def test_every_tool_refuses_unknown_arguments(h: Harness) -> None:
    tools = await h.client.list_tools()
    for tool in tools.tools:
        error = await h.error(tool.name, {"not_an_argument": 1})
        assert error.startswith("not_an_argument: unknown argument"), (tool.name, error)
    assert h.sandbox.requests == []


# -- bad values: where, what was given, what is allowed; no validator noise (issue 18) -------

NOISE = ("validation error for", "Arguments", "pydantic", "https://", "Value error,", "\n")


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        (
            "search_leads",
            {"filter": {}},
            'filter: filter needs at least one field; to select every lead use s_query {"type": '
            '"match_all"} with allow_all_leads: true (given: {})',
        ),
        (
            "search_leads",
            {"filter": {"created_after": "yesterday"}},
            "filter.created_after: 'yesterday' is not a date; use an ISO date like 2025-01-31 "
            "or a datetime with a timezone like 2025-01-31T10:00:00Z",
        ),
        (
            "search_leads",
            {"filter": {"custom_fields": {"Industry": {"a": 1}}}},
            # an object is a range
            "filter.custom_fields.Industry.a: unknown field. Allowed: gte, lte",
        ),
        (
            "create_bulk_edit",
            {**QUALIFIED, "edit": {"type": "bogus"}},
            "edit.type: 'bogus' is not one of 'set_lead_status', 'set_custom_field', "
            "'clear_custom_field'",
        ),
        (
            "create_bulk_edit",
            {**QUALIFIED, "edit": {"type": "set_lead_status"}},
            "edit: 'lead_status' is a required property",
        ),
        (
            "create_bulk_edit",
            {**QUALIFIED, "edit": {"type": "set_custom_field", "custom_field": "x", "value": []}},
            "edit.value: [] is not a string, an integer, a number or a boolean",
        ),
        (
            "search_leads",
            {"s_query": {"type": "nope"}},
            "s_query.type: 'nope' is not one of 'and', 'or', 'object_type', 'field_condition', "
            "'has_related', 'match_all', 'saved_search', 'text' (node types; lookup kind "
            "s_query shows their keys)",
        ),
    ],
)
async def test_bad_values_are_named_with_what_was_given_and_what_is_allowed(
    h: Harness, tool: str, arguments: dict[str, object], message: str
) -> None:
    error = await h.error(tool, arguments)
    assert error == message
    assert not [n for n in NOISE if n in error]
    assert h.sandbox.requests == []
