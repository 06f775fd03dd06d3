"""Tasks as Close documents them: the list's filters and views, and what an update or a
delete may change and logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from close_mcp.sandbox.errors import BadRequest, found
from close_mcp.sandbox.events import Logged
from close_mcp.sandbox.opportunities import contact_of
from close_mcp.sandbox.params import (
    DATE_OPS,
    check_keys,
    check_params,
    date_filters,
    date_or_moment,
    flag,
    order,
    values_in,
    when,
)
from close_mcp.sandbox.routes import Call, Handler, narrow, page, unordered
from close_mcp.sandbox.store import JSON, Lead, Task, from_epoch, iso

TASK_PARAMS: Final = {
    "_limit", "_skip", "_fields", "id", "id__in", "assigned_to", "is_complete", "lead_id",
    "_order_by", "organization_id", "_type", "_type__in", "view",
    *(f"{d}{op}" for d in ("date", "due_date") for op in DATE_OPS),
    *(f"{d}{op}" for d in ("date_created", "date_updated") for op in DATE_OPS[1:]),
}  # fmt: skip
# PUT /task/{id}/: "The assigned_to, date (either a date or a date-time), and is_complete
# fields may be updated on all tasks. If the task type is lead, the text field may also be
# modified." `due_date` is the newer name of `date`. Other keys of UpdateNotification exist
# but cannot be changed here.
TASK_WRITABLE: Final = {"assigned_to", "date", "due_date", "is_complete", "text"}
# POST /task/: "Currently only tasks of type lead and outgoing_call can be created"; the
# sandbox makes lead tasks (its GET lists only those).
TASK_CREATE: Final = {
    "_type", "lead_id", "contact_id", "assigned_to", "text", "date", "due_date", "is_complete",
}  # fmt: skip
TASK_FIXED: Final = {
    "agent_config_id", "contact_id", "created_by", "is_dateless", "lead_id",
    "organization_id", "priority", "resolution",
}  # fmt: skip


class Tasks(Logged):
    """The handlers; an update or a delete is logged in `log`."""

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (r"task/", {"GET": self.tasks, "POST": self.create_task}),
            (
                r"task/(?P<id>[^/]+)/",
                {"GET": self.task, "PUT": self.update_task, "DELETE": self.delete_task},
            ),
        ]

    def task_json(self, task: Task, lead: Lead | None = None) -> JSON:
        store = self.store
        lead = lead or store.leads.get(task.lead_id)
        names = {u.id: u.full_name for u in store.users.values()}
        contact = contact_of(lead, task.contact_id)
        return {
            "id": task.id,
            "_type": "lead",
            "lead_id": task.lead_id,
            "lead_name": lead.display_name if lead else None,
            "contact_id": task.contact_id,
            "contact_name": contact.name if contact else None,
            "assigned_to": task.assigned_to,
            "assigned_to_name": names.get(task.assigned_to),
            "text": task.text,
            "date": task.date,
            "due_date": task.date,
            "is_dateless": task.date is None,
            "is_complete": task.is_complete,
            "object_type": None,
            "object_id": None,
            "created_by": task.created_by,
            "created_by_name": names.get(task.created_by or ""),
            "updated_by": task.updated_by,
            "updated_by_name": names.get(task.updated_by or ""),
            "date_created": iso(task.date_created),
            "date_updated": iso(task.date_updated),
            "organization_id": store.org.id,
        }

    def tasks(self, call: Call) -> JSON:
        query = call.query
        check_params(query, TASK_PARAMS)
        complete = flag(query, "is_complete")
        ids = values_in(query, "id")
        types = values_in(query, "_type")
        view = query.get("view")
        day_end = (
            datetime.combine((from_epoch(call.now) + call.tz).date(), datetime.min.time(), UTC)
            - call.tz
            + timedelta(days=1)
        )
        if view not in (None, "inbox", "future", "archive"):
            raise BadRequest({"view": "Must be inbox, future or archive."})

        def field(task: Task, name: str) -> Any:
            if name in ("date", "due_date"):
                return None if task.date is None else when(task.date, name)
            return getattr(task, name)

        dated = date_filters(query, ("date", "due_date", "date_created", "date_updated"), field)

        def in_view(task: Task) -> bool:
            if view == "archive":
                return task.is_complete
            if view is None:
                return True
            due: datetime | None = field(task, "date")
            if task.is_complete or due is None:
                return False
            return due < day_end if view == "inbox" else due >= day_end

        matches = [
            t
            for t in self.store.tasks.values()
            if query.get("assigned_to") in (None, t.assigned_to)
            and query.get("lead_id") in (None, t.lead_id)
            and complete in (None, t.is_complete)
            and (ids is None or t.id in ids)
            and (types is None or "lead" in types)
            and dated(t)
            and in_view(t)
        ]
        ordered = order(matches, query.get("_order_by"), ("date", "date_created"), field)
        if query.get("_order_by") is None:
            by_id = {t.id: t for t in matches}
            ordered = [by_id[i["id"]] for i in unordered([{"id": t.id} for t in matches])]
        return page(ordered, query, self.task_json)

    def task(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        task = found(self.store.tasks, call.params["id"], "Task")
        return narrow(self.task_json(task), call.query)

    def update_task(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        task = found(self.store.tasks, call.params["id"], "Task")
        data = check_keys(call.json, TASK_WRITABLE, TASK_FIXED)
        before = self.task_json(task)
        if "assigned_to" in data and data["assigned_to"] not in self.store.users:
            raise BadRequest({"assigned_to": "User not found."})
        if "is_complete" in data and not isinstance(data["is_complete"], bool):
            raise BadRequest({"is_complete": "Must be a boolean."})
        if "text" in data and not isinstance(data["text"], str):
            raise BadRequest({"text": "Must be a string."})
        if "date" in data and "due_date" in data and data["date"] != data["due_date"]:
            raise BadRequest({"due_date": "Give date or due_date, not two different values."})
        for key in ("date", "due_date"):
            if key in data:
                task.date = date_or_moment(data[key], key)
        if "assigned_to" in data:
            task.assigned_to = data["assigned_to"]
        if "is_complete" in data:
            task.is_complete = data["is_complete"]
        if "text" in data:
            task.text = data["text"]
        now = from_epoch(call.now)
        task.touch(now, self.store.me.id)
        after = self.task_json(task)
        changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
        if changed:
            action = "completed" if "is_complete" in changed and task.is_complete else "updated"
            self.log.emit(
                "task.lead", task.id, task.lead_id, action, now, data=after,
                previous_data={k: before.get(k) for k in changed}, changed_fields=changed,
            )  # fmt: skip
        return narrow(after, call.query)

    def create_task(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        data = check_keys(call.json, TASK_CREATE)
        store = self.store
        errors: dict[str, str] = {}
        if data.get("_type", "lead") != "lead":
            errors["_type"] = "The sandbox creates lead tasks only."
        lead = store.leads.get(str(data.get("lead_id")))
        if lead is None:
            errors["lead_id"] = "Lead not found."
        if not isinstance(data.get("text"), str) or not data["text"]:
            errors["text"] = "This field is required."
        assignee = data.get("assigned_to", store.me.id)
        if assignee not in store.users:
            errors["assigned_to"] = "User not found."
        if not isinstance(data.get("is_complete", False), bool):
            errors["is_complete"] = "Must be a boolean."
        contact = data.get("contact_id")
        known = store.contact(contact) if contact is not None else None
        if contact is not None and (known is None or lead is None or known.lead_id != lead.id):
            errors["contact_id"] = "Contact not found on this lead."
        if errors:
            raise BadRequest(errors)
        assert lead is not None
        due = data.get("date", data.get("due_date"))
        now = from_epoch(call.now)
        task = Task(
            store.new_id("task"), lead.id, str(assignee), data["text"],
            date_or_moment(due, "date") if due is not None else None,
            bool(data.get("is_complete", False)), contact,
            date_created=now, date_updated=now, created_by=store.me.id, updated_by=store.me.id,
        )  # fmt: skip
        store.tasks[task.id] = task
        after = self.task_json(task)
        self.log.emit("task.lead", task.id, task.lead_id, "created", now, data=after)
        return narrow(after, call.query)

    def delete_task(self, call: Call) -> JSON:
        task = found(self.store.tasks, call.params["id"], "Task")
        data = self.task_json(task)
        del self.store.tasks[task.id]
        self.log.emit(
            "task.lead", task.id, task.lead_id, "deleted", from_epoch(call.now), previous_data=data
        )
        return {}
