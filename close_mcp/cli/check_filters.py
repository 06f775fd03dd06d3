"""`close-mcp check`'s count probes of the friendly filter's activity, opportunity, range and
prefix forms, built by the code the tools use.

Each is ANDed with the sampled lead's id like every count probe. The activity, opportunity and
range forms cannot know what the sampled lead has, so the form is asked together with its
negation (`X or not X`, as the `user_or_group` probe does): Close must still count exactly the
one lead, and a form Close does not know is a 400 naming it. The prefix form matches the
sampled lead's own name, so it is asked as it is.
"""

from __future__ import annotations

from typing import Any, Final

from close_mcp.close.catalog import Catalog

__all__ = ["FILTER_KINDS", "either_way", "filter_probe"]

FILTER_KINDS: Final = (
    "has_related activity.email",
    "has_related activity.call",
    "has_related opportunity",
    "number_range",
    "text (name prefix)",
)
EVER: Final = "36500d"  # a span no activity predates


async def filter_probe(
    kind: str, catalog: Catalog, word: str | None
) -> tuple[dict[str, Any], bool] | str:
    """The filter fields of the probe `kind` and whether to ask it either way; or why this
    account cannot be asked it."""
    if kind == "has_related activity.email":
        return {"emailed_within": EVER}, True
    if kind == "has_related activity.call":
        return {"called_within": EVER}, True
    if kind == "has_related opportunity":
        statuses = await catalog.opportunity_statuses()
        if not statuses:
            return "no opportunity status"
        return {"opportunity_status": statuses[0].id}, True
    if kind == "number_range":
        numbers = [f for f in await catalog.custom_fields() if f.type == "number"]
        if not numbers:
            return "no number custom field"
        return {"custom_fields": {numbers[0].id: {"gte": 0}}}, True
    if word is None:
        return "the sampled lead's name has no plain word"
    return {"name_starts_with": word[: max(1, len(word) - 1)]}, False


def either_way(tree: dict[str, Any]) -> None:
    """The tree's last node asked together with its negation: true of every lead."""
    node = tree["queries"].pop()
    tree["queries"].append({"type": "or", "queries": [node, {**node, "negate": True}]})
