"""The friendly filter's activity fields: emailed / called within a span, last activity, an
opportunity's status, and the lead name's start; each one Close `has_related` (or text) node.

The forms are Close's own: "emailed in the last 30 days" as queries exported from Close's UI
send it (`has_related` lead -> `activity.email`, an outgoing `direction` and a `date` range up to
`now`), and an opportunity's status as Close's UI filters it (`has_related` lead ->
`opportunity`, `status_id` with a `status.opportunity` reference). The call form copies the
email one with `activity.call` and Close's call direction `outbound`: our inference (README
"Limits"), which `close-mcp check` probes against the account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final

from pydantic import BaseModel, Field, StringConstraints

from close_mcp.close.catalog import Catalog

__all__ = [
    "SPAN_FIELDS",
    "WHEN_FIELDS",
    "ActivityFields",
    "activity_fields_last",
    "activity_nodes",
    "called_node",
    "emailed_node",
    "last_activity_node",
    "name_starts_with_node",
    "opportunity_status_node",
]

_Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]

# What Close calls "we emailed them" and "we called them".
EMAIL: Final = ("activity.email", "outgoing")
CALL: Final = ("activity.call", "outbound")
SPAN_FIELDS: Final = ("emailed_within", "not_emailed_within", "called_within", "not_called_within")
WHEN_FIELDS: Final = ("last_activity_after", "last_activity_before")
OPPORTUNITY_STATUS_PATH: Final = "filter.opportunity_status"


class ActivityFields(BaseModel):
    # The filter fields this module adds (see `LeadFilter`, which checks the spans and dates).

    name_starts_with: _Text | None = Field(
        default=None, description="A word of the lead name starts with this."
    )
    emailed_within: str | None = Field(
        default=None, description="Emailed by us in this span (30d)."
    )
    not_emailed_within: str | None = Field(default=None, description="Not emailed by us in it.")
    called_within: str | None = Field(default=None, description="Called by us in it.")
    not_called_within: str | None = Field(default=None, description="Not called in it.")
    last_activity_after: str | None = Field(
        default=None, description="An email or call on or after this date."
    )
    last_activity_before: str | None = Field(
        default=None, description="No email or call since (or ever)."
    )
    opportunity_status: (
        _Text | Annotated[list[_Text], Field(min_length=1, max_length=50)] | None
    ) = Field(default=None, description="Has an opportunity in this status (label or id).")


def activity_fields_last(schema: dict[str, Any]) -> None:
    """The filter's schema with these fields after its own (pydantic lists a base class's
    fields first): the everyday fields lead `tools/list` and the "allowed" of an error."""
    properties = schema["properties"]
    for name in ActivityFields.model_fields:
        properties[name] = properties.pop(name)


# The moment builders of the filter tree (`selection.tree`, which imports this module):
# `since("30d")` is `now` minus the span, `at("2025-01-31")` a day's start or an instant.
Moment = Callable[[str], dict[str, Any]]


def _field(object_type: str, field_name: str) -> dict[str, Any]:
    return {"type": "regular_field", "object_type": object_type, "field_name": field_name}


def _related(related: str, query: dict[str, Any], negate: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {
        "type": "has_related",
        "this_object_type": "lead",
        "related_object_type": related,
        "related_query": query,
    }
    if negate:
        node["negate"] = True
    return node


def _dated(object_type: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "field_condition",
        "field": _field(object_type, "date"),
        "condition": {"type": "moment_range", **condition},
    }


def _sent_since(kind: tuple[str, str], since: dict[str, Any], negate: bool) -> dict[str, Any]:
    object_type, direction = kind
    return _related(
        object_type,
        {
            "type": "and",
            "queries": [
                {
                    "type": "field_condition",
                    "field": _field(object_type, "direction"),
                    "condition": {"type": "term", "values": [direction]},
                },
                _dated(object_type, {"on_or_after": since, "before": {"type": "now"}}),
            ],
        },
        negate,
    )


def emailed_node(since: dict[str, Any], *, negate: bool = False) -> dict[str, Any]:
    """Leads with (negated: without) an outgoing email dated from `since` up to now."""
    return _sent_since(EMAIL, since, negate)


def called_node(since: dict[str, Any], *, negate: bool = False) -> dict[str, Any]:
    """Leads with (negated: without) an outbound call dated from `since` up to now."""
    return _sent_since(CALL, since, negate)


def last_activity_node(on_or_after: dict[str, Any], *, negate: bool = False) -> dict[str, Any]:
    """Leads with an email or call, either direction, on or after the moment; negated: none
    since then, which is "the last activity is before it" (a lead never contacted included)."""
    node: dict[str, Any] = {
        "type": "or",
        "queries": [
            _related(kind, _dated(kind, {"on_or_after": on_or_after}))
            for kind in (EMAIL[0], CALL[0])
        ],
    }
    if negate:
        node["negate"] = True
    return node


def opportunity_status_node(status_ids: list[str]) -> dict[str, Any]:
    """Leads with an opportunity in one of the statuses."""
    return _related(
        "opportunity",
        {
            "type": "field_condition",
            "field": _field("opportunity", "status_id"),
            "condition": {
                "type": "reference",
                "reference_type": "status.opportunity",
                "object_ids": list(status_ids),
            },
        },
    )


def name_starts_with_node(prefix: str) -> dict[str, Any]:
    """Close's `beginning_of_words` mode: a word of the name starts with each word given."""
    return {
        "type": "field_condition",
        "field": _field("lead", "name"),
        "condition": {"type": "text", "mode": "beginning_of_words", "value": prefix},
    }


async def _opportunity_status_ids(wanted: str | list[str], catalog: Catalog) -> list[str]:
    names = [wanted] if isinstance(wanted, str) else wanted
    ids: list[str] = []
    for i, name in enumerate(names):
        path = OPPORTUNITY_STATUS_PATH + ("" if isinstance(wanted, str) else f"[{i}]")
        status = await catalog.resolve_opportunity_status(name, path=path)
        if status.id not in ids:
            ids.append(status.id)
    return ids


async def activity_nodes(
    fields: ActivityFields, catalog: Catalog, *, since: Moment, at: Moment
) -> list[dict[str, Any]]:
    """One node per activity field given, in declared order."""
    nodes: list[dict[str, Any]] = []
    if fields.name_starts_with is not None:
        nodes.append(name_starts_with_node(fields.name_starts_with))
    spans = (
        (fields.emailed_within, emailed_node, False),
        (fields.not_emailed_within, emailed_node, True),
        (fields.called_within, called_node, False),
        (fields.not_called_within, called_node, True),
    )
    for span, build, negate in spans:
        if span is not None:
            nodes.append(build(since(span), negate=negate))
    if fields.last_activity_after is not None:
        nodes.append(last_activity_node(at(fields.last_activity_after)))
    if fields.last_activity_before is not None:
        nodes.append(last_activity_node(at(fields.last_activity_before), negate=True))
    if fields.opportunity_status is not None:
        ids = await _opportunity_status_ids(fields.opportunity_status, catalog)
        nodes.append(opportunity_status_node(ids))
    return nodes
