"""Deliberately changed answers, to show that `close-mcp check` notices when Close's answers
stop looking like what close-mcp reads.

`Sandbox(drift=NAME)` (and `close-mcp sandbox --drift NAME`) changes one endpoint's answers
as a future Close might: a field renamed or dropped, a timestamp in another format, or (the
`query-*` drifts) a count that differs for searches holding one node or condition kind, as
if Close read that kind otherwise. Everything else answers as usual.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Drift:
    method: str
    path: re.Pattern[str]  # relative to /api/v1/
    change: Callable[[Any], Any]
    what: str  # the change in words (cli/main.py writes --help without importing the sandbox)
    when: Callable[[Any], bool] = lambda body: True  # on the request body


NodeTest = Callable[[dict[str, Any]], bool]


def _rename_in_items(old: str, new: str) -> Callable[[Any], Any]:
    def change(answer: Any) -> Any:
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            return answer
        items = [
            {(new if k == old else k): v for k, v in item.items()}
            if isinstance(item, dict)
            else item
            for item in answer["data"]
        ]
        return {**answer, "data": items}

    return change


def _drop(key: str) -> Callable[[Any], Any]:
    def change(answer: Any) -> Any:
        if not isinstance(answer, dict):
            return answer
        return {k: v for k, v in answer.items() if k != key}

    return change


def _rename_count_total(answer: Any) -> Any:
    if not isinstance(answer, dict) or not isinstance(answer.get("count"), dict):
        return answer
    count = {("n_total" if k == "total" else k): v for k, v in answer["count"].items()}
    return {**answer, "count": count}


def _miscount(answer: Any) -> Any:
    if not isinstance(answer, dict) or not isinstance(answer.get("count"), dict):
        return answer
    count = answer["count"]
    total = count.get("total")
    return {**answer, "count": {**count, "total": total + 1 if type(total) is int else total}}


def _nodes(value: Any) -> list[dict[str, Any]]:
    """Every object inside a JSON value."""
    found: list[dict[str, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _holds(test: NodeTest) -> Callable[[Any], bool]:
    def when(body: Any) -> bool:
        query = body.get("query") if isinstance(body, dict) else None
        return any(test(node) for node in _nodes(query))

    return when


def _full_text(body: Any) -> bool:
    query = body.get("query") if isinstance(body, dict) else None
    return any(
        isinstance(child, dict) and child.get("type") == "text"
        for node in _nodes(query)
        for child in (node["queries"] if isinstance(node.get("queries"), list) else [])
    )


def _custom_sort(body: Any) -> bool:
    sort = body.get("sort") if isinstance(body, dict) else None
    return any(node.get("type") == "custom_field" for node in _nodes(sort))


def _reference(kind: str) -> NodeTest:
    return lambda node: node.get("type") == "reference" and node.get("reference_type") == kind


def _text_condition(node: dict[str, Any]) -> bool:
    condition = node.get("condition")
    return (
        node.get("type") == "field_condition"
        and isinstance(condition, dict)
        and condition.get("type") == "text"
    )


def _query_drift(when: Callable[[Any], bool], what: str) -> Drift:
    return Drift("POST", re.compile(r"data/search/\Z"), _miscount, what, when)


def _type_is(kind: str) -> NodeTest:
    return lambda node: node.get("type") == kind


def _related(object_type: str) -> NodeTest:
    return lambda node: node.get("related_object_type") == object_type


def _node_drifts(*rows: tuple[str, NodeTest, str]) -> dict[str, Drift]:
    """`query-*` drifts from rows of (name, the node a search holds, what it is): a search
    holding such a node is counted otherwise."""
    return {
        name: _query_drift(_holds(test), f"{what} is counted otherwise")
        for name, test, what in rows
    }


def _email_dates_in_another_format(answer: Any) -> Any:
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        return answer
    items = [
        {**item, "date_created": "06/26/2015 02:01"} if isinstance(item, dict) else item
        for item in answer["data"]
    ]
    return {**answer, "data": items}


DRIFTS: Final[dict[str, Drift]] = {
    "status-label": Drift(
        "GET",
        re.compile(r"status/lead/\Z"),
        _rename_in_items("label", "name"),
        "lead statuses list `name` instead of `label`",
    ),
    "render-body": Drift(
        "GET",
        re.compile(r"email_template/[^/]+/render/\Z"),
        _drop("body"),
        "a rendered template has no `body`",
    ),
    "search-count": Drift(
        "POST",
        re.compile(r"data/search/\Z"),
        _rename_count_total,
        "search counts come as `count.n_total` instead of `count.total`",
    ),
    "email-date": Drift(
        "GET",
        re.compile(r"activity/email/\Z"),
        _email_dates_in_another_format,
        "email activities' date_created in another format (06/26/2015 02:01)",
    ),
    **_node_drifts(
        ("query-lead-id", _reference("lead"), "a lead-id reference"),
        ("query-offset", _type_is("offset"), "an offset moment"),
        ("query-local-date", _type_is("fixed_local_date"), "a fixed_local_date moment"),
        ("query-status", _reference("status.lead"), "a status.lead reference"),
        ("query-user", _reference("user_or_group"), "a user_or_group reference"),
        ("query-has-related", _related("contact_email"), "has_related contact_email"),
        ("query-text", _text_condition, "a text condition on a field"),
    ),
    "query-full-text": _query_drift(_full_text, "a full-text node is counted otherwise"),
    "query-sort": _query_drift(_custom_sort, "a sort on a custom field changes the count"),
}


def _rename(old: str, new: str) -> Callable[[Any], Any]:
    """`old` renamed in a list's items or in a single object's answer."""
    in_items = _rename_in_items(old, new)

    def change(answer: Any) -> Any:
        if isinstance(answer, dict) and "data" not in answer:
            return {(new if k == old else k): v for k, v in answer.items()}
        return in_items(answer)

    return change


# The CRM endpoints (`close_mcp.close.crm`) and a lead's sequence subscriptions
# (`close_mcp.close.activities`), one drift for each probe of `close-mcp check`:
# name, GET path (a list, or a list and its items), the key renamed, its new name.
CRM_RENAMES: Final = (
    ("pipeline-statuses", r"pipeline/", "statuses", "stages"),
    ("opportunity-status-type", r"status/opportunity/", "type", "status_type"),
    ("opportunity-user", r"opportunity/(?:[^/]+/)?", "user_id", "owner_id"),
    ("task-assignee", r"task/(?:[^/]+/)?", "assigned_to", "assignee"),
    ("export-url", r"export/(?:[^/]+/)?", "download_url", "url"),
    ("event-previous-data", r"event/", "previous_data", "before"),
    ("subscription-sequence", r"sequence_subscription/", "sequence_id", "sequence"),
)
CRM_DRIFTS: Final[dict[str, Drift]] = {
    name: Drift("GET", re.compile(path + r"\Z"), _rename(old, new), f"`{old}` renamed `{new}`")
    for name, path, old, new in CRM_RENAMES
}
DRIFTS.update(CRM_DRIFTS)


# The friendly filter's activity, opportunity, range and prefix forms.
FILTER_DRIFTS: Final = _node_drifts(
    ("query-email-activity", _related("activity.email"), "has_related activity.email"),
    ("query-call-activity", _related("activity.call"), "has_related activity.call"),
    ("query-opportunity", _related("opportunity"), "has_related opportunity"),
    ("query-number-range", _type_is("number_range"), "a number_range"),
    ("query-prefix", lambda n: n.get("mode") == "beginning_of_words",
     "a beginning_of_words text condition"),
)  # fmt: skip
DRIFTS.update(FILTER_DRIFTS)


def check_drift(name: str | None) -> None:
    if name is not None and name not in DRIFTS:
        raise ValueError(f"unknown drift {name!r}; known: {', '.join(DRIFTS)}")


def apply_drift(name: str | None, method: str, path: str, answer: Any, body: Any = None) -> Any:
    """`answer` to a request with `body` as the drift `name` changes it (unchanged for other
    endpoints and requests, or no drift)."""
    drift = DRIFTS.get(name) if name is not None else None
    if drift is None or drift.method != method or drift.path.match(path) is None:
        return answer
    return drift.change(answer) if drift.when(body) else answer
