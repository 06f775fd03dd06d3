"""Deliberately changed answer shapes, to show that `close-mcp check` notices when Close's
answers stop looking like what close-mcp reads.

`Sandbox(drift=NAME)` (and `close-mcp sandbox --drift NAME`) changes one endpoint's answers
as a future Close might: a field renamed or dropped. Everything else answers as usual.
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
    what: str  # for --help


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
}


def _rename(old: str, new: str) -> Callable[[Any], Any]:
    """`old` renamed in a list's items or in a single object's answer."""
    in_items = _rename_in_items(old, new)

    def change(answer: Any) -> Any:
        if isinstance(answer, dict) and "data" not in answer:
            return {(new if k == old else k): v for k, v in answer.items()}
        return in_items(answer)

    return change


# Issue 28's endpoints (`close_mcp.close.crm`), one drift for each probe of `close-mcp check`.
CRM_DRIFTS: Final[dict[str, Drift]] = {
    "pipeline-statuses": Drift(
        "GET",
        re.compile(r"pipeline/\Z"),
        _rename_in_items("statuses", "stages"),
        "pipelines list their statuses as `stages`",
    ),
    "opportunity-status-type": Drift(
        "GET",
        re.compile(r"status/opportunity/\Z"),
        _rename_in_items("type", "status_type"),
        "opportunity statuses say `status_type` instead of `type`",
    ),
    "opportunity-user": Drift(
        "GET",
        re.compile(r"opportunity/(?:[^/]+/)?\Z"),
        _rename("user_id", "owner_id"),
        "opportunities name their user `owner_id`",
    ),
    "task-assignee": Drift(
        "GET",
        re.compile(r"task/(?:[^/]+/)?\Z"),
        _rename("assigned_to", "assignee"),
        "tasks name their assignee `assignee`",
    ),
    "export-url": Drift(
        "GET",
        re.compile(r"export/(?:[^/]+/)?\Z"),
        _rename("download_url", "url"),
        "exports give their file as `url`",
    ),
    "event-previous-data": Drift(
        "GET",
        re.compile(r"event/\Z"),
        _rename_in_items("previous_data", "before"),
        "events hold the old object as `before`",
    ),
}
DRIFTS.update(CRM_DRIFTS)


def check_drift(name: str | None) -> None:
    if name is not None and name not in DRIFTS:
        raise ValueError(f"unknown drift {name!r}; known: {', '.join(DRIFTS)}")


def apply_drift(name: str | None, method: str, path: str, answer: Any) -> Any:
    """`answer` as the drift `name` changes it (unchanged for other endpoints, or no drift)."""
    drift = DRIFTS.get(name) if name is not None else None
    if drift is None or drift.method != method or drift.path.match(path) is None:
        return answer
    return drift.change(answer)
