"""The revert planner, pure: from a snapshot's leads and their values now, what puts back
the values a bulk edit overwrote (`PlanBuilder`), and the plan as the preview shows it and the
token binds it (`plan_body`, `plan_document`).

- A lead whose value is what the edit set goes back; one whose value is the old one already
  is left (nothing to do); one whose value is neither was changed by someone else since
  the edit and is reported and left alone, unless `include_changed_since` is true; a lead
  that no longer exists is reported.
- The leads going back are grouped by old value. A group of at most `PER_LEAD_MAX` leads is
  put back with one `PUT /lead/<id>/` each (immediate, no job to follow); a larger group
  with one bulk edit per `IDS_PER_REQUEST` leads, selecting exactly those leads with
  `lead_ids_node` (a documented `reference` on the lead id). 1000 ids keep each
  request body near 30 KB; Close documents no cap on a query's size. An old value that was
  absent becomes `clear_custom_field`. Each request is a `PlannedRequest`: method, path,
  the exact body sent, and the leads it puts back.
- The whole plan is one write: its `WriteRequest.body` (`plan_body`) shows the first few
  groups, requests and left-alone leads with their counts (a request in full for small
  plans, else summarized) and `plan_sha256` over every exact request, so one confirmation
  token binds all of them, and a lead that changes between preview and confirmation
  changes the plan and refuses the token. The preview of a 50,000-lead revert stays the
  size of a 500-lead one; the whole plan (`plan_document`) is kept in the store and read on
  demand as the resource `close://reverts/<job_id>`.

Reading the snapshot and the leads, and sending the plan, is `close_mcp.safety.revert`; what
a revert says, `close_mcp.safety.revert_messages`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio.lowlevel

from close_mcp.close.jobs import job_path
from close_mcp.safety.snapshot_reader import EditSnapshot
from close_mcp.selection.nodes import LEAD_NODE, lead_ids_node
from close_mcp.selection.sample import LeadSample
from close_mcp.writes.sender import Method

PER_LEAD_MAX: Final = 3
IDS_PER_REQUEST: Final = 1000
FULL_PLAN_MAX: Final = 25  # leads; above this the preview summarizes the requests (bounded tokens)
SHOWN_MAX: Final = 3  # items of each list in a preview (the rest: `close://reverts/<job_id>`)
SAMPLE_MAX: Final = 5


def normalized(value: Any) -> Hashable:
    """A value for comparing: empty is None, a multi-value field compares as a set."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        return frozenset(json.dumps(v, sort_keys=True) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    hashable: Hashable = value
    return hashable


def value_after(edit: dict[str, Any], old: Any) -> Any:
    """What the edit left on a lead that had `old` (Close's replace/add/remove rules)."""
    kind = edit.get("type")
    if kind == "set_lead_status":
        return edit.get("lead_status_id")
    if kind == "clear_custom_field":
        return None
    if "custom_field_values" not in edit:
        return edit.get("custom_field_value")
    values = list(edit["custom_field_values"])
    had = old if isinstance(old, list) else ([] if old is None else [old])
    operation = edit.get("custom_field_operation", "replace")
    if operation == "add":
        return had + [v for v in values if v not in had]
    if operation == "remove":
        return [v for v in had if v not in values]
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a revert: `body` is exactly what is sent, `lead_ids` the leads it puts
    back (the one lead of a PUT, the leads a bulk edit's query selects)."""

    method: Method
    path: str  # with both slashes, as shown: "/lead/lead_x/", "/bulk_action/edit/"
    body: dict[str, Any]
    lead_ids: tuple[str, ...]

    @classmethod
    def put_lead(cls, lead_field: str, lead_id: str, value: Any) -> PlannedRequest:
        """`PUT /lead/<id>/` setting `lead_field` to `value` (an empty value as null)."""
        put_value = None if normalized(value) is None else value
        return cls("PUT", f"/lead/{lead_id}/", {lead_field: put_value}, (lead_id,))

    @classmethod
    def bulk_edit(
        cls, edit: dict[str, Any], lead_ids: Sequence[str], send_done_email: bool
    ) -> PlannedRequest:
        """A bulk edit `edit` over exactly the leads `lead_ids`."""
        ids = tuple(lead_ids)
        body = {
            "s_query": {"type": "and", "queries": [LEAD_NODE, lead_ids_node(list(ids))]},
            "send_done_email": send_done_email,
            **edit,
        }
        return cls("POST", "/" + job_path("edit"), body, ids)

    @property
    def starts_job(self) -> bool:
        return self.method == "POST"

    @property
    def leads(self) -> int:
        return len(self.lead_ids)

    @property
    def send_path(self) -> str:
        """The path as the client takes it: no leading slash, one trailing."""
        return self.path.strip("/") + "/"

    def shown(self, *, summarized: bool = False) -> dict[str, Any]:
        """The request as the preview shows it and the token binds it: exact, or (for a
        bulk edit in a large plan) with its query cut to the count and first lead ids."""
        body = self.body
        if summarized and self.starts_job:
            body = {k: v for k, v in self.body.items() if k != "s_query"}
            body["lead_ids"] = {"count": self.leads, "first": list(self.lead_ids[:3])}
        return {"method": self.method, "path": self.path, "body": body}


@dataclass(frozen=True)
class Return:
    """A group of leads going back to one old value."""

    value: Any
    leads: int

    def shown(self) -> dict[str, Any]:
        return {"value": self.value, "leads": self.leads}


@dataclass(frozen=True)
class ChangedSince:
    """A lead someone else changed since the edit: neither the old nor the edited value."""

    id: str
    value_now: Any
    value_before: Any

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "value_now": self.value_now, "value_before": self.value_before}


@dataclass
class Plan:
    requests: list[PlannedRequest] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    changed_since: list[ChangedSince] = field(default_factory=list)
    already_back: int = 0
    not_found: list[str] = field(default_factory=list)
    sample: list[LeadSample] = field(default_factory=list)
    sha256: str | None = None  # `_digest(requests)`, when worked out already

    @property
    def leads(self) -> int:
        return sum(r.leads for r in self.returns)

    @property
    def starts_jobs(self) -> bool:
        return any(r.starts_job for r in self.requests)


def _edit_body(snapshot: EditSnapshot, value: Any) -> dict[str, Any]:
    if snapshot.field == "status_id":
        return {"type": "set_lead_status", "lead_status_id": value}
    cf_id = snapshot.field.removeprefix("custom.")
    if normalized(value) is None:
        return {"type": "clear_custom_field", "custom_field_id": cf_id}
    if isinstance(value, list):
        return {
            "type": "set_custom_field",
            "custom_field_id": cf_id,
            "custom_field_values": value,
            "custom_field_operation": "replace",
        }
    return {"type": "set_custom_field", "custom_field_id": cf_id, "custom_field_value": value}


def _requests(snapshot: EditSnapshot, value: Any, ids: list[str]) -> list[PlannedRequest]:
    """The requests that put `value` back on exactly the leads `ids`."""
    if len(ids) <= PER_LEAD_MAX:
        return [PlannedRequest.put_lead(snapshot.field, i, value) for i in ids]
    done_email = bool(snapshot.request.get("send_done_email", True))
    edit = _edit_body(snapshot, value)
    return [
        PlannedRequest.bulk_edit(edit, ids[i : i + IDS_PER_REQUEST], done_email)
        for i in range(0, len(ids), IDS_PER_REQUEST)
    ]


class PlanBuilder:
    """Classifies the snapshot's leads batch by batch; `finish` orders everything by lead id,
    so the plan is the same whatever order the snapshot was saved in."""

    def __init__(self, snapshot: EditSnapshot, include_changed_since: bool) -> None:
        self.snapshot = snapshot
        self.include_changed_since = include_changed_since
        self.count = snapshot.leads_count
        self.plan = Plan()
        # normalized old value -> (old value, ids going back to it)
        self.groups: dict[Hashable, tuple[Any, list[str]]] = {}
        self.samples: list[tuple[str, Any, Any]] = []  # (id, display_name, status_label)

    def add(self, batch: list[tuple[str, Any]], current: dict[str, dict[str, Any]]) -> None:
        snapshot, plan = self.snapshot, self.plan
        for lead_id, old in batch:
            lead = current.get(lead_id)
            if lead is None:
                plan.not_found.append(lead_id)
                continue
            now = lead.get(snapshot.field)
            if normalized(now) == normalized(old):
                plan.already_back += 1
                continue
            if normalized(now) != normalized(value_after(snapshot.request, old)):
                plan.changed_since.append(ChangedSince(id=lead_id, value_now=now, value_before=old))
                if not self.include_changed_since:
                    continue
            self.groups.setdefault(normalized(old), (old, []))[1].append(lead_id)
            self.samples.append((lead_id, lead.get("display_name"), lead.get("status_label")))
        self.samples = heapq.nsmallest(SAMPLE_MAX, self.samples, key=lambda s: s[0])

    def finish(self) -> Plan:
        plan = self.plan
        plan.not_found.sort()
        plan.changed_since.sort(key=lambda c: c.id)
        plan.sample = [
            LeadSample(id=lead_id, display_name=name, status_label=label)
            for lead_id, name, label in self.samples
        ]
        for _, ids in self.groups.values():
            ids.sort()
        # Largest group first; equal ones by value, then by their first lead.
        ordered = sorted(
            self.groups.values(),
            key=lambda g: (-len(g[1]), json.dumps(g[0], default=str), g[1][0]),
        )
        for value, ids in ordered:
            plan.returns.append(Return(value=value, leads=len(ids)))
            plan.requests.extend(_requests(self.snapshot, value, ids))
        return plan


def _digest(requests: Sequence[PlannedRequest]) -> str:
    exact = [r.shown() for r in requests]
    text = json.dumps(exact, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def digest_serving(requests: Sequence[PlannedRequest]) -> str:
    """`_digest`, the same value, one request at a time with the event loop served in
    between (a 100,000-lead plan is 100 bulk edits of 1000 ids each)."""
    digest = hashlib.sha256(b"[")
    for number, request in enumerate(requests):
        text = json.dumps(request.shown(), sort_keys=True, separators=(",", ":"))
        digest.update((b"," if number else b"") + text.encode())
        await anyio.lowlevel.checkpoint()
    digest.update(b"]")
    return digest.hexdigest()


def revert_uri(job_id: str) -> str:
    """The resource with the whole plan of a revert of `job_id` and what reverts sent."""
    return f"close://reverts/{job_id}"


def plan_document(
    snapshot: EditSnapshot, plan: Plan, include_changed_since: bool, *, shown: int | None = None
) -> dict[str, Any]:
    """The plan: every group, request and left-alone lead, or (`shown`) the first of each
    with the counts. Either way `plan_sha256` covers every exact request."""
    full = plan.leads <= FULL_PLAN_MAX
    changed = [] if include_changed_since else plan.changed_since
    return {
        "job_id": snapshot.job_id,
        "field": snapshot.field,
        "returns": [r.shown() for r in plan.returns[:shown]],
        "returns_count": len(plan.returns),
        "left_alone": {
            "changed_since": [c.shown() for c in changed[:shown]],
            "changed_since_count": len(changed),
            "already_back": plan.already_back,
            "not_found": plan.not_found[:shown],
            "not_found_count": len(plan.not_found),
        },
        "requests": [r.shown(summarized=not full) for r in plan.requests[:shown]],
        "requests_count": len(plan.requests),
        "requests_shown": "exact" if full else "summarized",
        "plan_sha256": plan.sha256 or _digest(plan.requests),
    }


def plan_body(snapshot: EditSnapshot, plan: Plan, include_changed_since: bool) -> dict[str, Any]:
    """What the preview shows and the token binds: the first few of each list, the counts,
    the digest of every request, and where the rest is."""
    body = plan_document(snapshot, plan, include_changed_since, shown=SHOWN_MAX)
    return {**body, "full_plan": revert_uri(snapshot.job_id)}
