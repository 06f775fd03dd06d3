"""Bulk actions: validating a request like Close, then running the job on the sandbox's clock.

A job is lazy: nothing runs in the background. Whenever a request arrives, every job catches up
with the clock (`advance_all`). Timeline, in clock seconds spent running (pauses excluded):
`created` for `CREATED_SECONDS`, `loading` until `LOAD_SECONDS` (counts null), then the selection
is evaluated once (query, `results_limit`, `sort`) and fixed, and `processing` handles `speed`
objects a second, applying each object's effect to the data, until `done`. A job whose query no
longer evaluates when it loads (a smart view deleted meanwhile) ends in `error`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from close_mcp.sandbox import emails
from close_mcp.sandbox.errors import BadRequest, NotFoundAnswer
from close_mcp.sandbox.evaluator import Compiler
from close_mcp.sandbox.lead_selection import check_results_limit, check_sort, select
from close_mcp.sandbox.lead_writes import check_custom_value
from close_mcp.sandbox.store import (
    JSON,
    Contact,
    CustomField,
    Job,
    Lead,
    Store,
    Subscription,
    from_epoch,
)

CREATED_SECONDS = 0.5
LOAD_SECONDS = 1.0
RESUME_SECONDS = 1.0
RESUME_LIMIT_SECONDS = 7 * 86400
EPSILON = 1e-6  # clock readings near 1.7e9 s carry about 2e-7 s of float error
PREFIXES = {
    "edit": "bulkedit",
    "email": "bulkemail",
    "sequence_subscription": "bulkseqsub",
    "delete": "bulkdelete",
}
RUNNING = ("created", "loading", "processing")
# The request fields Close documents for each kind (the bulk actions page and its examples);
# anything else is refused, so a client cannot rely on a field Close would not read.
SELECTION_FIELDS = ("s_query", "results_limit", "sort", "send_done_email")
REQUEST_FIELDS = {
    "edit": (
        "type", "lead_status_id", "custom_field_id", "custom_field_name", "custom_field_value",
        "custom_field_values", "custom_field_operation",
    ),
    "email": ("template_id", "contact_preference"),
    "sequence_subscription": (
        "action_type", "sequence_id", "sender_account_id", "sender_name", "sender_email",
        "contact_preference",
    ),
    "delete": ("bulk_object_type",),
}  # fmt: skip
# Close's BulkEmailContactPreference: `lead` (the first contact with an email, its first
# address), `contact` (each contact's first address) and `all`, which the reference lists
# without describing; the sandbox reads it as every address of every contact (unverified).
EMAIL_PREFERENCES = ("lead", "contact", "all")
FINISHED = ("done", "error")


class SubscriptionIndex:
    """The store's subscriptions by lead and by (contact, sequence), for one job's catch-up.

    Deleting, pausing or subscribing 100,000 leads looked through every subscription for
    each lead (quadratic). A catch-up builds this on first use, once, and keeps it and the
    store in step as it applies its objects; nothing else runs meanwhile.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_lead: dict[str, list[Subscription]] | None = None
        self._pairs: set[tuple[str, str]] = set()

    def _built(self) -> dict[str, list[Subscription]]:
        if self._by_lead is None:
            self._by_lead = {}
            for sub in self.store.subscriptions.values():
                self._by_lead.setdefault(sub.lead_id, []).append(sub)
                self._pairs.add((sub.contact_id, sub.sequence_id))
        return self._by_lead

    def of_lead(self, lead_id: str) -> list[Subscription]:
        return list(self._built().get(lead_id, []))

    def taken(self, contact_id: str, sequence_id: str) -> bool:
        self._built()
        return (contact_id, sequence_id) in self._pairs

    def add(self, sub: Subscription) -> None:
        self._built().setdefault(sub.lead_id, []).append(sub)
        self._pairs.add((sub.contact_id, sub.sequence_id))
        self.store.subscriptions[sub.id] = sub

    def remove_lead(self, lead_id: str) -> None:
        if not self.store.subscriptions:
            return
        for sub in self._built().pop(lead_id, []):
            del self.store.subscriptions[sub.id]
            self._pairs.discard((sub.contact_id, sub.sequence_id))


def email_targets(lead: Lead, preference: str) -> list[tuple[Contact, int]]:
    """Whom a bulk email (or a subscription) with this contact preference reaches on a lead:
    (contact, which of its addresses), contacts without an address left out."""
    with_email = [c for c in lead.contacts if c.emails]
    if preference == "all":
        return [(c, i) for c in with_email for i in range(len(c.emails))]
    firsts = [(c, 0) for c in with_email]
    return firsts[:1] if preference == "lead" else firsts


@dataclass
class JobRunner:
    """Creates, advances, pauses and resumes the store's jobs at `speed` objects per second."""

    store: Store
    speed: float
    # What else a deleted lead takes with it (its opportunities, tasks and event log
    # entries: `close_mcp.sandbox.crm`), given the lead and the time.
    on_delete: Callable[[Lead, float], None] | None = None

    # -- creation ------------------------------------------------------------------------

    def create(self, kind: str, data: Any, now: float, tz: timedelta = timedelta(0)) -> Job:
        """`tz`: the request's `X-TZ-Offset`; the job reads its local dates in it when it loads."""
        if not isinstance(data, dict):
            raise BadRequest({}, ["Expected a JSON object."])
        unknown = sorted(set(data) - set(SELECTION_FIELDS) - set(REQUEST_FIELDS[kind]))
        if unknown:
            raise BadRequest({key: "Unknown field." for key in unknown})
        if data.get("s_query") is None:
            raise BadRequest({"s_query": "This field is required."})
        Compiler(self.store, from_epoch(now), tz).node(data["s_query"], "s_query", "lead")
        results_limit = check_results_limit(data.get("results_limit"), "results_limit")
        check_sort(self.store, data.get("sort"), "sort")
        send_done_email = data.get("send_done_email", True)
        if not isinstance(send_done_email, bool):
            raise BadRequest({"send_done_email": "Must be a boolean."})
        params = {
            "edit": self._edit_params,
            "email": self._email_params,
            "sequence_subscription": self._sequence_params,
            "delete": self._delete_params,
        }[kind](data)
        moment = from_epoch(now)
        job = Job(
            id=self.store.new_id(PREFIXES[kind]),
            kind=kind,
            status="created",
            params=params,
            s_query=data["s_query"],
            results_limit=results_limit,
            sort=list(data.get("sort") or []),
            send_done_email=send_done_email,
            created_by=self.store.me.id,
            date_created=moment,
            date_updated=moment,
            last_tick=now,
            tz=tz,
        )
        self.store.jobs[job.id] = job
        return job

    def _custom_field(self, data: JSON) -> CustomField:
        cf_id, cf_name = data.get("custom_field_id"), data.get("custom_field_name")
        if cf_id is not None:
            cf = self.store.custom_fields.get(cf_id) if isinstance(cf_id, str) else None
            if cf is None:
                raise BadRequest({"custom_field_id": "Custom field not found."})
            return cf
        if cf_name is not None:
            cf = self.store.custom_field_named(cf_name) if isinstance(cf_name, str) else None
            if cf is None:
                raise BadRequest({"custom_field_name": "No custom field has this exact name."})
            return cf
        raise BadRequest({"custom_field_id": "custom_field_id or custom_field_name is required."})

    def _edit_params(self, data: JSON) -> JSON:
        kind = data.get("type")
        if kind == "set_lead_status":
            status_id = data.get("lead_status_id")
            if status_id is None:
                raise BadRequest({"lead_status_id": "This field is required."})
            if status_id not in self.store.statuses:
                raise BadRequest({"lead_status_id": "Lead status not found."})
            return {"type": kind, "lead_status_id": status_id}
        if kind == "clear_custom_field":
            cf = self._custom_field(data)
            return {"type": kind, "custom_field_id": cf.id, "custom_field_name": cf.name}
        if kind != "set_custom_field":
            raise BadRequest(
                {"type": "Must be one of: set_lead_status, set_custom_field, clear_custom_field."}
            )
        cf = self._custom_field(data)
        operation = data.get("custom_field_operation", "replace")
        if operation not in ("replace", "add", "remove"):
            raise BadRequest({"custom_field_operation": "Must be one of: replace, add, remove."})
        if operation != "replace" and not cf.accepts_multiple_values:
            raise BadRequest(
                {
                    "custom_field_operation": (
                        "Only applicable for custom fields that accept multiple values."
                    )
                }
            )
        if "custom_field_values" in data:
            values = data["custom_field_values"]
            if not cf.accepts_multiple_values:
                raise BadRequest(
                    {"custom_field_values": f"{cf.name!r} does not accept multiple values."}
                )
            if not isinstance(values, list):
                raise BadRequest({"custom_field_values": "Must be a list."})
            key = "custom_field_values"
        elif data.get("custom_field_value") is not None:
            values = [data["custom_field_value"]]
            key = "custom_field_value"
        else:
            raise BadRequest({"custom_field_value": "This field is required."})
        for value in values:
            check_custom_value(self.store, cf, value, key)
        params = {
            "type": kind,
            "custom_field_id": cf.id,
            "custom_field_name": cf.name,
            "custom_field_operation": operation,
        }
        params[key] = data[key]
        return params

    def _email_params(self, data: JSON) -> JSON:
        template_id = data.get("template_id")
        if template_id is None:
            raise BadRequest({"template_id": "This field is required."})
        if template_id not in self.store.templates:
            raise BadRequest({"template_id": "Email template not found."})
        preference = data.get("contact_preference", "lead")
        if preference not in EMAIL_PREFERENCES:
            raise BadRequest({"contact_preference": "Must be 'lead', 'contact' or 'all'."})
        mine = self.store.email_accounts.values()
        account = next(a for a in mine if a.user_id == self.store.me.id)
        sender = account.identities[0]["email"]
        return {
            "template_id": template_id,
            "contact_preference": preference,
            "email_account_id": account.id,
            "sender": sender,
        }

    def _sequence_params(self, data: JSON) -> JSON:
        action = data.get("action_type")
        if action not in ("subscribe", "pause", "resume", "resume_finished"):
            raise BadRequest(
                {"action_type": "Must be one of: subscribe, pause, resume, resume_finished."}
            )
        sequence_id = data.get("sequence_id")
        if sequence_id is not None and sequence_id not in self.store.sequences:
            raise BadRequest({"sequence_id": "Sequence not found."})
        params: JSON = {
            "action_type": action,
            "sequence_id": sequence_id,
            "sender_account_id": data.get("sender_account_id"),
            "sender_name": data.get("sender_name"),
            "sender_email": data.get("sender_email"),
            "contact_preference": data.get("contact_preference"),
            "calls_assigned_to": None,
            "from_phone_number_id": None,
        }
        if action == "subscribe":
            required = ("sequence_id", "sender_account_id", "sender_name", "sender_email")
            missing = {
                k: "This field is required for subscribe." for k in required if not params[k]
            }
            if params["contact_preference"] not in ("lead", "contact"):
                missing["contact_preference"] = "Must be 'lead' or 'contact' for subscribe."
            if missing:
                raise BadRequest(missing)
            if params["sender_account_id"] not in self.store.email_accounts:
                raise BadRequest({"sender_account_id": "Email account not found."})
        return params

    def _delete_params(self, data: JSON) -> JSON:
        object_type = data.get("bulk_object_type", "lead")
        if object_type != "lead":
            raise BadRequest({"bulk_object_type": "The sandbox deletes leads only."})
        return {"bulk_object_type": "lead"}

    # -- progress ------------------------------------------------------------------------

    def advance_all(self, now: float) -> None:
        for job in list(self.store.jobs.values()):
            self.advance(job, now)

    def advance(self, job: Job, now: float) -> None:
        dt = max(0.0, now - job.last_tick)
        job.last_tick = max(now, job.last_tick)
        if job.status == "resuming":
            used = min(dt, job.resume_left)
            job.resume_left -= used
            dt -= used
            if job.resume_left > 0:
                return
            job.status = "processing" if job.objects is not None else "created"
            job.date_updated = from_epoch(now - dt)
        if job.status not in RUNNING:
            return
        job.run_seconds += dt
        if job.objects is None:
            if job.run_seconds + EPSILON < CREATED_SECONDS:
                return
            if job.run_seconds + EPSILON < LOAD_SECONDS:
                if job.status != "loading":
                    job.status = "loading"
                    job.date_updated = from_epoch(now)
                return
            self._load(job, now - (job.run_seconds - LOAD_SECONDS))
            if job.objects is None:
                return
        done = int((job.run_seconds - LOAD_SECONDS + EPSILON) * self.speed)
        target = min(len(job.objects), done)
        if target > job.n_objects_processed:
            subs = SubscriptionIndex(self.store)
            for lead_id, target_id in job.objects[job.n_objects_processed : target]:
                self._apply(job, lead_id, target_id, now, subs)
            job.n_objects_processed = target
            job.n_leads_processed = bisect.bisect_right(job.lead_ends, target)
            job.date_updated = from_epoch(now)
        if job.n_objects_processed == len(job.objects):
            job.n_leads_processed = len(job.lead_ids or [])
            job.status = "done"
            job.date_updated = from_epoch(now)

    def _load(self, job: Job, at: float) -> None:
        try:
            leads = select(
                self.store,
                job.s_query,
                job.results_limit,
                job.sort,
                from_epoch(at),
                "s_query",
                tz=job.tz,
            )
        except BadRequest as exc:
            job.status, job.error = "error", str(exc.field_errors)
            job.date_updated = from_epoch(at)
            return
        job.lead_ids = [lead.id for lead in leads]
        job.objects = []
        for lead in leads:
            job.objects += [(lead.id, target) for target in self._targets(job, lead)]
            job.lead_ends.append(len(job.objects))
        job.status = "processing"
        job.date_updated = from_epoch(at)

    def _targets(self, job: Job, lead: Lead) -> list[str | None]:
        """The objects of one lead: contacts for emails and subscriptions, else the lead."""
        subscribe = job.kind == "sequence_subscription" and job.params["action_type"] == "subscribe"
        if job.kind != "email" and not subscribe:
            return [None]
        # A contact's first address is "cont_x", its next ones (preference `all`) "cont_x#1", ...
        return [
            contact.id if i == 0 else f"{contact.id}#{i}"
            for contact, i in email_targets(lead, job.params["contact_preference"])
        ]

    def _apply(
        self, job: Job, lead_id: str, target_id: str | None, now: float, subs: SubscriptionIndex
    ) -> None:
        lead = self.store.leads.get(lead_id)
        if lead is None:
            return
        if job.kind == "delete":
            del self.store.leads[lead_id]
            subs.remove_lead(lead_id)
            if self.on_delete is not None:
                self.on_delete(lead, now)
        elif job.kind == "edit":
            self._edit(job.params, lead)
            lead.date_updated = from_epoch(now)
        elif job.kind == "email":
            self._email(job, lead, target_id, now)
        else:
            self._sequence(job.params, lead, target_id, now, subs)

    def _edit(self, params: JSON, lead: Lead) -> None:
        if params["type"] == "set_lead_status":
            lead.status_id = params["lead_status_id"]
            return
        cf = self.store.custom_fields[params["custom_field_id"]]
        if params["type"] == "clear_custom_field":
            lead.custom.pop(cf.id, None)
            return
        values = params.get("custom_field_values", [params.get("custom_field_value")])
        if not cf.accepts_multiple_values:
            lead.custom[cf.id] = values[0]
            return
        old = lead.custom.get(cf.id) or []
        operation = params["custom_field_operation"]
        if operation == "add":
            new = old + [v for v in values if v not in old]
        elif operation == "remove":
            new = [v for v in old if v not in values]
        else:
            new = list(dict.fromkeys(values))
        if new:
            lead.custom[cf.id] = new
        else:
            lead.custom.pop(cf.id, None)

    def _email(self, job: Job, lead: Lead, target: str | None, now: float) -> None:
        contact_id, _, nth = (target or "").partition("#")
        contact = next((c for c in lead.contacts if c.id == contact_id), None)
        index = int(nth or 0)
        if contact is None or len(contact.emails) <= index:
            return
        request = {
            "lead_id": lead.id,
            "contact_id": contact.id,
            "status": "sent",
            "to": [contact.emails[index]["email"]],
            "template_id": job.params["template_id"],
            "sender": job.params["sender"],
            "email_account_id": job.params["email_account_id"],
        }
        emails.create(self.store, request, now, bulk_email_action_id=job.id)

    def _sequence(
        self,
        params: JSON,
        lead: Lead,
        contact_id: str | None,
        now: float,
        subs: SubscriptionIndex,
    ) -> None:
        store, sequence_id = self.store, params["sequence_id"]
        moment = from_epoch(now)
        if params["action_type"] == "subscribe":
            contact = next((c for c in lead.contacts if c.id == contact_id), None)
            if contact is None or subs.taken(contact.id, sequence_id):
                return
            sub = Subscription(
                store.new_id("sub"), sequence_id, contact.id, lead.id, "active",
                params["sender_account_id"], params["sender_name"], params["sender_email"],
                moment, moment,
            )  # fmt: skip
            subs.add(sub)
            return
        before, after = {
            "pause": ("active", "paused"),
            "resume": ("paused", "active"),
            "resume_finished": ("finished", "active"),
        }[params["action_type"]]
        for sub in subs.of_lead(lead.id):
            if (
                sub.lead_id == lead.id
                and sub.status == before
                and sequence_id in (None, sub.sequence_id)
            ):
                sub.status, sub.date_updated = after, moment

    # -- pause and resume ----------------------------------------------------------------

    def set_status(self, job: Job, data: Any, now: float) -> Job:
        """PUT `{"status": "paused" | "resuming"}` with Close's rules."""
        self.advance(job, now)
        wanted = data.get("status") if isinstance(data, dict) else None
        if wanted == "paused":
            if job.status in FINISHED:
                raise BadRequest(
                    {"status": f"A bulk action that is {job.status} cannot be paused."}
                )
            if job.status != "paused":
                job.status, job.paused_at = "paused", now
                job.date_updated = from_epoch(now)
            return job
        if wanted == "resuming":
            if job.status != "paused" or job.paused_at is None:
                raise BadRequest({"status": "Only a paused bulk action can be resumed."})
            if now - job.paused_at > RESUME_LIMIT_SECONDS:
                raise BadRequest(
                    {"status": "A bulk action paused more than 7 days ago cannot be resumed."}
                )
            job.status, job.paused_at, job.resume_left = "resuming", None, RESUME_SECONDS
            job.date_updated = from_epoch(now)
            return job
        raise BadRequest({"status": "Must be 'paused' or 'resuming'."})

    def get(self, kind: str, job_id: str) -> Job:
        job = self.store.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise NotFoundAnswer(f"Bulk action {job_id!r} not found.")
        return job

    def fail(self, job_id: str, now: float, reason: str = "Failed by the test.") -> None:
        """Put a job in `error`, as Close does when something breaks mid-way."""
        job = self.store.jobs[job_id]
        job.status, job.error = "error", reason
        job.date_updated = from_epoch(now)
