"""Close query trees as tests write them, by hand: the one place they are spelled out.

Written independently of `close_mcp.selection` on purpose: a test compares what the server
builds with what Close's grammar says, so the expected tree must not come from the code
under test. Ids are passed in (`tests.ids` finds the sandbox's by name).
"""

from __future__ import annotations

from typing import Any

from tests.ids import shown_ids

JSON = dict[str, Any]

LEAD: JSON = {"type": "object_type", "object_type": "lead"}
MATCH_ALL: JSON = {"type": "match_all"}
# Leads with a contact that has an email address (negated: no contact has one).
HAS_EMAIL: JSON = {
    "type": "has_related",
    "this_object_type": "lead",
    "related_object_type": "contact",
    "related_query": {
        "type": "has_related",
        "this_object_type": "contact",
        "related_object_type": "contact_email",
        "related_query": {"type": "match_all"},
    },
}
OFFSET_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
# Oldest first: the order a walk of every lead (a snapshot, a backup) reads them in.
BY_CREATED = [
    {
        "direction": "asc",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    }
]


def regular(name: str, object_type: str = "lead") -> JSON:
    """A lead's own field, such as `status_id`, or a related object's (an email's `date`)."""
    return {"type": "regular_field", "object_type": object_type, "field_name": name}


def custom(cf_id: str) -> JSON:
    return {"type": "custom_field", "custom_field_id": cf_id}


def fc(field: JSON, condition: JSON, **extra: Any) -> JSON:
    """A field condition; `extra` such as `negate=True`."""
    return {"type": "field_condition", "field": field, "condition": condition, **extra}


def lead_and(*nodes: JSON) -> JSON:
    """The lead node and `nodes`, ANDed: the form every resolved selection has. (A fresh tree
    each time: tests may change what they are given.)"""
    return {"type": "and", "queries": [dict(LEAD), *nodes]}


def negated(node: JSON) -> JSON:
    return {**node, "negate": True}


def local(day: str) -> JSON:
    """The start of a day where Close reads local dates."""
    return {"type": "fixed_local_date", "value": day, "which": "start"}


def utc(value: str) -> JSON:
    return {"type": "fixed_utc", "value": value}


def ago(**offset: int) -> JSON:
    """The relative moment as Close's UI exports it: all seven units, and `which_day_end`."""
    return {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {unit: offset.get(unit, 0) for unit in OFFSET_UNITS},
        "which_day_end": "start",
    }


def name_has(words: str) -> JSON:
    """Leads whose name has these words."""
    return fc(regular("name"), {"type": "text", "mode": "full_words", "value": words})


def created_from(moment: JSON) -> JSON:
    """Leads created on or after `moment` (what created_after and created_within build, and how
    a walk past Close's cursor cap goes on)."""
    return fc(regular("date_created"), {"type": "moment_range", "on_or_after": moment})


def status_condition(*status_ids: str) -> JSON:
    """Leads with one of these statuses."""
    return fc(
        regular("status_id"),
        {"type": "reference", "reference_type": "status.lead", "object_ids": list(status_ids)},
    )


def status_query(*status_ids: str) -> JSON:
    """The s_query Close receives for "the leads with this status"."""
    return lead_and(status_condition(*status_ids))


def lead_ids_condition(ids: list[str]) -> JSON:
    """The condition Close receives for "these leads": a `reference` typed `lead` on `id`,
    the form Close's advanced filtering reference gives for ID fields."""
    return fc(
        regular("id"), {"type": "reference", "reference_type": "lead", "object_ids": list(ids)}
    )


def lead_ids_query(ids: list[str]) -> JSON:
    """The s_query Close receives for "these leads"."""
    return lead_and(lead_ids_condition(ids))


def shown_ids_query(ids: list[str]) -> JSON:
    """`lead_ids_query` as a result shows it."""
    query = lead_ids_query(ids)
    query["queries"][1]["condition"]["object_ids"] = shown_ids(ids)
    return query


def related(object_type: str, query: JSON) -> JSON:
    """Leads with a related object (`activity.email`, `opportunity`, ...) that matches `query`."""
    return {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": object_type,
        "related_query": query,
    }


def sent_since(object_type: str, direction: str, since: JSON) -> JSON:
    """Close's UI form of "emailed (or called) since": an activity in that direction, dated from
    `since` until now."""
    return related(
        object_type,
        {
            "type": "and",
            "queries": [
                fc(regular("direction", object_type), {"type": "term", "values": [direction]}),
                fc(
                    regular("date", object_type),
                    {"type": "moment_range", "on_or_after": since, "before": {"type": "now"}},
                ),
            ],
        },
    )


def any_activity_since(since: JSON) -> JSON:
    """Leads with an email or a call, of either direction, dated from `since` on."""
    return {
        "type": "or",
        "queries": [
            related(kind, fc(regular("date", kind), {"type": "moment_range", "on_or_after": since}))
            for kind in ("activity.email", "activity.call")
        ],
    }


def has_opportunity(*status_ids: str) -> JSON:
    """Leads with an opportunity in one of these opportunity statuses."""
    return related(
        "opportunity",
        fc(
            regular("status_id", "opportunity"),
            {
                "type": "reference",
                "reference_type": "status.opportunity",
                "object_ids": list(status_ids),
            },
        ),
    )
