"""The sandbox's in-memory organization, and how each object looks on the wire.

Everything the sandbox knows lives in one `Store`: plain dataclasses keyed by id, so tests can
compute expected answers with ordinary Python over `sb.store`. Each object renders itself in
Close's JSON shape (`to_json`), so the routes stay thin.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

JSON = dict[str, Any]

_ALNUM = string.ascii_letters + string.digits
_PAIRS = [_ALNUM[n % 62] + _ALNUM[n // 62] for n in range(62 * 62)]  # two base-62 digits
# What a bulk edit job shows of its request: Close's BulkEditAction documents these four and
# nothing else (no custom_field_id, custom_field_values or custom_field_operation).
EDIT_ECHO = ("type", "lead_status_id", "custom_field_name", "custom_field_value")


# Objects the seed makes without a date of their own (smart views) date from here.
SEEDED_AT = datetime(2025, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """Close's timestamp form: `2013-02-01T00:54:51.274000+00:00`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def fields_json(item: Any) -> JSON:
    """A stored object's own fields as Close names them (timestamps in Close's form): the
    start of its JSON, to which each object adds what Close shows besides."""
    return {
        f.name: iso(value) if isinstance(value, datetime) else value
        for f in fields(item)
        for value in (getattr(item, f.name),)
    }


def naive_iso(moment: datetime) -> str:
    """The form Close's email activity example answers in: UTC without an offset,
    `2015-06-26T02:01:43.059265`; clients must read it as UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class IdMaker:
    """Close-looking ids (`lead_` + 22 letters and digits) from a seeded RNG, so ids repeat."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def __call__(self, prefix: str) -> str:
        # One draw per id, written in base 62 two digits at a time (least significant
        # first): seeding 100,000 leads makes 300,000 ids.
        number = self._rng.getrandbits(131)  # 62**22 > 2**131
        pairs = []
        for _ in range(11):
            number, pair = divmod(number, 3844)
            pairs.append(_PAIRS[pair])
        return prefix + "_" + "".join(pairs)


@dataclass
class Organization:
    id: str
    name: str


@dataclass
class User:
    id: str
    email: str
    first_name: str
    last_name: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def to_json(self, org: Organization) -> JSON:
        return {**fields_json(self), "display_name": self.full_name, "organizations": [org.id]}


@dataclass
class LeadStatus:
    id: str
    label: str

    def to_json(self) -> JSON:
        return fields_json(self)


@dataclass
class CustomField:
    """A lead custom field. `type` is one of text, number, date, choices, user.

    A shared field (`is_shared`) is one Close lets several object types use: it is set and
    filtered on leads like any other, but `/custom_field/lead/` does not list it;
    `/custom_field_schema/lead/` (every field of leads) does. (Close's `/custom_field/shared/`
    is not served: close-mcp does not use it.)
    """

    id: str
    name: str
    type: str
    accepts_multiple_values: bool = False
    choices: list[str] = field(default_factory=list)
    is_shared: bool = False

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "accepts_multiple_values": self.accepts_multiple_values,
            "choices": list(self.choices) if self.type == "choices" else None,
            "description": "",
            "editable_with_roles": [],
        }

    def schema_json(self) -> JSON:
        """The field as an item of `/custom_field_schema/lead/`, which says whether it is shared."""
        return {**self.to_json(), "is_shared": self.is_shared}


@dataclass
class EmailTemplate:
    id: str
    name: str
    subject: str
    body: str
    is_archived: bool = False

    def to_json(self, org: Organization) -> JSON:
        return {
            **fields_json(self),
            "is_shared": True,
            "attachments": [],
            "organization_id": org.id,
        }


@dataclass
class Sequence:
    id: str
    name: str
    status: str
    steps: list[JSON]

    def to_json(self, org: Organization) -> JSON:
        steps = [dict(s) for s in self.steps]
        return {**fields_json(self), "steps": steps, "organization_id": org.id}


@dataclass
class EmailAccount:
    id: str
    user_id: str
    identities: list[JSON]

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "_type": "google",
            "user_id": self.user_id,
            "email": self.identities[0]["email"],
            "identities": [dict(i) for i in self.identities],
        }


@dataclass
class SavedSearch:
    """A smart view. `s_query` is Close's wrapper: `{"query": tree, "results_limit", "sort"}`."""

    id: str
    name: str
    s_query: JSON
    user_id: str
    date_created: datetime | None = None  # None: when the organization was seeded

    def to_json(self, org: Organization) -> JSON:
        created = iso(self.date_created or SEEDED_AT)
        return {
            "id": self.id,
            "name": self.name,
            "type": "lead",
            "s_query": self.s_query,
            "query": None,  # the old text form; views made with s_query have none
            "description": None,
            "is_shared": True,
            "is_user_dependent": False,
            "user_id": self.user_id,
            "organization_id": org.id,
            "date_created": created,
            "date_updated": created,
        }


@dataclass
class Contact:
    id: str
    lead_id: str
    name: str
    title: str
    emails: list[JSON]  # [{"email": ..., "type": "office"}]
    phones: list[JSON]  # [{"phone": ..., "type": "office"}]
    date_created: datetime
    date_updated: datetime

    @property
    def first_name(self) -> str:
        return self.name.split(" ")[0] if self.name else ""

    @property
    def last_name(self) -> str:
        return " ".join(self.name.split(" ")[1:])

    def to_json(self, org: Organization) -> JSON:
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "name": self.name,
            "display_name": self.name,
            "title": self.title,
            "emails": [{"is_unsubscribed": False, **e} for e in self.emails],
            "phones": [dict(p) for p in self.phones],
            "urls": [],
            "date_created": iso(self.date_created),
            "date_updated": iso(self.date_updated),
            "created_by": None,
            "updated_by": None,
            "organization_id": org.id,
        }


@dataclass
class Lead:
    """A lead. `custom` maps custom field id -> value (a list for multi-value fields)."""

    id: str
    name: str
    status_id: str
    contacts: list[Contact]
    custom: dict[str, Any]
    date_created: datetime
    date_updated: datetime
    url: str | None = None
    description: str = ""
    created_by: str | None = None

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return self.contacts[0].name if self.contacts else ""

    def to_json(self, store: Store, *, with_contacts: bool = True) -> JSON:
        """Close's lead JSON; `with_contacts=False` leaves `contacts` out, for search hits
        that did not ask for them (rendering every contact of 100,000 leads dominated)."""
        status = store.statuses.get(self.status_id)
        answer: JSON = {
            "id": self.id,
            "name": self.name,
            "display_name": self.display_name,
            "status_id": self.status_id,
            "status_label": status.label if status else None,
            "description": self.description,
            "url": self.url,
            "html_url": f"https://app.close.com/lead/{self.id}/",
            **(
                {"contacts": [c.to_json(store.org) for c in self.contacts]} if with_contacts else {}
            ),
            "contact_ids": [c.id for c in self.contacts],
            "opportunities": [],
            "tasks": [],
            "addresses": [],
            "date_created": iso(self.date_created),
            "date_updated": iso(self.date_updated),
            "created_by": self.created_by,
            "updated_by": self.created_by,
            "organization_id": store.org.id,
        }
        custom_by_name: JSON = {}
        for cf_id, value in self.custom.items():
            answer[f"custom.{cf_id}"] = list(value) if isinstance(value, list) else value
            cf = store.custom_fields.get(cf_id)
            if cf is not None:
                custom_by_name[cf.name] = answer[f"custom.{cf_id}"]
        answer["custom"] = custom_by_name
        return answer


@dataclass
class Subscription:
    """A contact's subscription to a sequence; status active, paused or finished."""

    id: str
    sequence_id: str
    contact_id: str
    lead_id: str
    status: str
    sender_account_id: str | None
    sender_name: str | None
    sender_email: str | None
    date_created: datetime
    date_updated: datetime

    def to_json(self, org: Organization) -> JSON:
        return {**fields_json(self), "organization_id": org.id}


@dataclass
class Job:
    """A bulk action. Progress is driven by `jobs.advance`; `params` holds the kind's own fields.

    `run_seconds` counts clock time spent in a running state (created, loading, processing), so
    pauses stop both loading and processing. `objects` (fixed when the job loads) is the work
    list: one `(lead_id, target)` per object, where target is a contact id, an email address or
    None depending on the kind.
    """

    id: str
    kind: str  # edit, email, sequence_subscription, delete
    status: str
    params: JSON
    s_query: JSON
    results_limit: int | None
    sort: list[JSON]
    send_done_email: bool
    created_by: str
    date_created: datetime
    date_updated: datetime
    last_tick: float
    run_seconds: float = 0.0
    resume_left: float = 0.0
    paused_at: float | None = None
    lead_ids: list[str] | None = None
    objects: list[tuple[str, str | None]] | None = None
    lead_ends: list[int] = field(default_factory=list)  # objects done when each lead is done
    n_objects_processed: int = 0
    n_leads_processed: int = 0
    error: str | None = None
    tz: timedelta = timedelta(0)  # the `X-TZ-Offset` it was created with, for its local dates

    @property
    def n_leads(self) -> int | None:
        return None if self.lead_ids is None else len(self.lead_ids)

    @property
    def n_objects(self) -> int | None:
        return None if self.objects is None else len(self.objects)

    def to_json(self, org: Organization) -> JSON:
        answer: JSON = {
            "id": self.id,
            "status": self.status,
            "n_leads": self.n_leads,
            "n_leads_processed": self.n_leads_processed,
            "n_objects": self.n_objects,
            "n_objects_processed": self.n_objects_processed,
            "query": None,
            "s_query": self.s_query,
            "results_limit": self.results_limit,
            "sort": self.sort,
            "send_done_email": self.send_done_email,
            "created_by": self.created_by,
            "updated_by": self.created_by,
            "date_created": iso(self.date_created),
            "date_updated": iso(self.date_updated),
            "organization_id": org.id,
        }
        answer.update(self.echo())
        return answer

    def echo(self) -> JSON:
        """The kind's own fields as Close documents them on the job (see EDIT_ECHO)."""
        if self.kind != "edit":
            return dict(self.params)
        answer = {key: self.params.get(key) for key in EDIT_ECHO}
        value = answer["custom_field_value"]
        if value is not None and not isinstance(value, str):  # documented: string or null
            answer["custom_field_value"] = json.dumps(value)
        return answer


@dataclass
class Pipeline:
    id: str
    name: str


@dataclass
class OpportunityStatus:
    """An opportunity status: `type` is active, won or lost; it belongs to one pipeline."""

    id: str
    label: str
    type: str
    pipeline_id: str


@dataclass(kw_only=True)
class Stamped:
    """Close's stamps on a record an update through the API changes (an opportunity, a
    task): when and by whom it was created and last updated. A lead's answer names its
    creator as `updated_by`, so `Lead` keeps its own."""

    date_created: datetime
    date_updated: datetime
    created_by: str | None = None
    updated_by: str | None = None

    def touch(self, now: datetime, user_id: str) -> None:
        """Stamped by an update, whatever it changed."""
        self.date_updated, self.updated_by = now, user_id


@dataclass
class Opportunity(Stamped):
    """`value` is in cents, as Close's; `date_won` is a date (on an active opportunity,
    the expected close date Close's UI shows)."""

    id: str
    lead_id: str
    status_id: str
    user_id: str
    value: int | None
    value_period: str  # one_time, monthly, annual
    confidence: int
    note: str
    date_won: str | None = None
    date_lost: datetime | None = None
    contact_id: str | None = None


@dataclass
class Task(Stamped):
    """A lead task (`_type` lead). `date` is a date or a date-time string, as Close takes it."""

    id: str
    lead_id: str
    assigned_to: str
    text: str
    date: str | None
    is_complete: bool
    contact_id: str | None = None


@dataclass(slots=True)
class Event:
    """One entry of Close's event log."""

    id: str
    object_type: str
    object_id: str
    lead_id: str | None
    action: str
    date_created: datetime
    user_id: str | None
    data: JSON | None = None
    previous_data: JSON | None = None
    changed_fields: list[str] = field(default_factory=list)
    meta: JSON = field(default_factory=dict)
    request_id: str | None = None
    # `previous_data` made when read: a bulk delete of 100,000 leads keeps the deleted
    # objects, not 100,000 rendered copies of them.
    later: Callable[[], JSON] | None = None

    def to_json(self, org: Organization) -> JSON:
        return {
            "id": self.id,
            "date_created": iso(self.date_created),
            "date_updated": iso(self.date_created),
            "organization_id": org.id,
            "user_id": self.user_id,
            "request_id": self.request_id,
            "api_key_id": None,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "lead_id": self.lead_id,
            "action": self.action,
            "changed_fields": list(self.changed_fields),
            "meta": dict(self.meta),
            "data": self.data,
            "previous_data": self.later() if self.later is not None else self.previous_data,
        }


@dataclass
class Export:
    """A lead export: the file is made when it is created (`content`, gzip-compressed) and
    offered once `ready_at` has passed, as Close's finishes in the background."""

    id: str
    format: str
    type: str
    body: JSON
    n_leads: int
    content: bytes
    token: str
    created_by: str
    date_created: datetime
    started_at: float
    ready_at: float


@dataclass
class Store:
    """The whole organization. Ids of new objects come from `new_id`, seeded like the data."""

    new_id: IdMaker
    org: Organization
    me: User
    users: dict[str, User] = field(default_factory=dict)
    statuses: dict[str, LeadStatus] = field(default_factory=dict)
    custom_fields: dict[str, CustomField] = field(default_factory=dict)
    templates: dict[str, EmailTemplate] = field(default_factory=dict)
    sequences: dict[str, Sequence] = field(default_factory=dict)
    email_accounts: dict[str, EmailAccount] = field(default_factory=dict)
    # Connected accounts of other kinds (a zoom account): listed, never a sender.
    other_accounts: dict[str, JSON] = field(default_factory=dict)
    saved_searches: dict[str, SavedSearch] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    emails: dict[str, JSON] = field(default_factory=dict)  # acti_ id -> Close email activity
    calls: dict[str, JSON] = field(default_factory=dict)  # acti_ id -> Close call activity
    email_send_at: dict[str, float] = field(default_factory=dict)  # unsent outbox/scheduled
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    # Opportunities, tasks, the event log and exports (`close_mcp.sandbox.crm` joins them).
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    opportunity_statuses: dict[str, OpportunityStatus] = field(default_factory=dict)
    opportunities: dict[str, Opportunity] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)  # oldest first
    exports: dict[str, Export] = field(default_factory=dict)

    def contact(self, contact_id: str) -> Contact | None:
        for lead in self.leads.values():
            for contact in lead.contacts:
                if contact.id == contact_id:
                    return contact
        return None

    def custom_field_named(self, name: str) -> CustomField | None:
        for cf in self.custom_fields.values():
            if cf.name == name:
                return cf
        return None

    def me_json(self) -> JSON:
        answer = self.me.to_json(self.org)
        answer["organizations"] = [
            {
                "id": self.org.id,
                "name": self.org.name,
                "lead_statuses": [s.to_json() for s in self.statuses.values()],
            }
        ]
        answer["email_accounts"] = [
            a.to_json() for a in self.email_accounts.values() if a.user_id == self.me.id
        ]
        return answer
