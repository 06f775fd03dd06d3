"""The endpoints: Close's paths, paging, `_fields` and answer shapes over the store.

Each handler takes a `Call` and answers JSON or raises an `ApiError`; the ASGI layer in `app.py`
does auth, rate limiting, faults and the request log around them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from close_mcp.sandbox import emails
from close_mcp.sandbox.bulk_jobs import EMAIL_PREFERENCES, PREFIXES, JobRunner, email_targets
from close_mcp.sandbox.errors import ApiError, BadRequest, NotFoundAnswer, found
from close_mcp.sandbox.evaluator import Compiler
from close_mcp.sandbox.lead_selection import check_results_limit, check_sort, project, select
from close_mcp.sandbox.lead_writes import create_lead, update_lead
from close_mcp.sandbox.render import render_template
from close_mcp.sandbox.store import JSON, EmailTemplate, Lead, Organization, Store, from_epoch

DEFAULT_LIMIT = 100
MAX_LIMIT = 200
CURSOR_SECONDS = 30.0
MAX_WALK = 10_000
MAX_RENDER_ENTRY = 99
LEAD_NODE: JSON = {"type": "object_type", "object_type": "lead"}


# The query parameters Close documents for `GET /activity/email/` (its API reference).
EMAIL_LIST_PARAMS: Final = frozenset(
    {"_limit", "_skip", "_fields", "id__in", "lead_id", "contact_id", "user_id",
     "organization_id", "_type"}
    | {f"{field}__{op}" for field in ("date_created", "activity_at")
       for op in ("gte", "gt", "lte", "lt")}
)  # fmt: skip
DATE_FILTERS: Final[dict[str, Callable[[datetime, datetime], bool]]] = {
    "gte": lambda have, bound: have >= bound,
    "gt": lambda have, bound: have > bound,
    "lte": lambda have, bound: have <= bound,
    "lt": lambda have, bound: have < bound,
}


@dataclass
class Call:
    method: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    now: float
    tz: timedelta = timedelta(0)  # the `X-TZ-Offset` header: how far local clocks are ahead
    base_url: str = ""  # the sandbox's own address, for links it hands out (export files)


@dataclass
class CursorState:
    ids: list[str]
    offset: int
    expires_at: float


Handler = Callable[[Call], JSON]


class OrgObject(Protocol):
    """An object Close shows as its organization's (a template, a sequence, a user)."""

    def to_json(self, org: Organization) -> JSON: ...


TZ_HEADER = "X-TZ-Offset"


def tz_offset(header: str | None) -> timedelta:
    """Close's `X-TZ-Offset`: the UTC offset in hours, `-4`, or `-2.5` for half hours.

    Absent, dates are read in UTC. Close documents no range or other form, so anything but
    a number of hours a real zone can have (-12 to +14) is refused.
    """
    if header is None:
        return timedelta(0)
    try:
        hours = float(header.strip())
    except ValueError:
        hours = float("nan")
    if not -12 <= hours <= 14:
        raise BadRequest({TZ_HEADER: "Must be a UTC offset in hours, such as -4 or 5.5."})
    return timedelta(minutes=round(hours * 60))


def _int_param(query: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest({name: "Must be an integer."}) from None
    if value < minimum:
        raise BadRequest({name: f"Must be at least {minimum}."})
    return value


def narrow(obj: JSON, query: dict[str, str]) -> JSON:
    """`_fields=a,b` keeps only those keys (unknown names are left out)."""
    fields = query.get("_fields")
    if not fields:
        return obj
    names = [f.strip() for f in fields.split(",") if f.strip()]
    return {name: obj[name] for name in names if name in obj}


def page_limit(raw: Any, name: str = "_limit") -> int:
    """A page size within Close's maximum: more is a 400, as in Close, never a silent cap."""
    if raw > MAX_LIMIT:
        raise BadRequest({name: f"Must be at most {MAX_LIMIT}."})
    return int(raw)


def unordered(items: list[JSON]) -> list[JSON]:
    """Close documents no order for job and email-activity lists, so the sandbox lists them
    in one no code can rely on: a shuffle by a hash of the id. It is stable from one request
    to the next (paging with `_skip` sees each item once) but neither newest nor oldest first.
    """
    return sorted(items, key=lambda item: hashlib.sha256(str(item["id"]).encode()).digest())


def page(
    items: Sequence[Any], query: dict[str, str], render: Callable[[Any], JSON] | None = None
) -> JSON:
    """Close's list answer: `_skip`/`_limit` (default 100, at most 200) -> {data, has_more}.

    `render` turns an item into its JSON, applied to the page's items only: rendering every
    lead of a large organization for each page of 100 made paging through it quadratic.
    """
    skip = _int_param(query, "_skip", 0, 0)
    limit = page_limit(_int_param(query, "_limit", DEFAULT_LIMIT, 1))
    chunk = items[skip : skip + limit]
    shown = chunk if render is None else [render(i) for i in chunk]
    return {"data": [narrow(i, query) for i in shown], "has_more": skip + limit < len(items)}


class Api:
    """Routes -> handlers. Paths are matched relative to /api/v1/ and end with a slash."""

    def __init__(
        self,
        store: Store,
        jobs: JobRunner,
        extra: list[tuple[str, dict[str, Handler]]] | None = None,
        on_delete: Callable[[Lead, float], None] | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.on_delete = on_delete  # the event log's record of a deleted lead
        self.cursors: dict[str, CursorState] = {}
        self._cursor_count = 0
        kinds = "|".join(PREFIXES)
        table: list[tuple[str, dict[str, Handler]]] = [
            (r"me/", {"GET": self.me}),
            (r"status/lead/", {"GET": self.statuses}),
            (r"status/lead/(?P<id>[^/]+)/", {"GET": self.status}),
            (r"custom_field/lead/", {"GET": self.custom_fields}),
            (r"custom_field/lead/(?P<id>[^/]+)/", {"GET": self.custom_field}),
            (r"custom_field_schema/lead/", {"GET": self.custom_field_schema}),
            (r"email_template/", {"GET": self.templates}),
            (r"email_template/(?P<id>[^/]+)/", {"GET": self.template}),
            (r"email_template/(?P<id>[^/]+)/render/", {"GET": self.render}),
            (r"sequence/", {"GET": self.sequences}),
            (r"sequence/(?P<id>[^/]+)/", {"GET": self.sequence}),
            (r"sequence_subscription/", {"GET": self.subscriptions}),
            (r"connected_account/", {"GET": self.accounts}),
            (r"connected_account/(?P<id>[^/]+)/", {"GET": self.account}),
            (r"user/", {"GET": self.users}),
            (r"user/(?P<id>[^/]+)/", {"GET": self.user}),
            (r"saved_search/", {"GET": self.saved_searches}),
            (r"saved_search/(?P<id>[^/]+)/", {"GET": self.saved_search}),
            (r"lead/", {"GET": self.leads, "POST": self.create_lead}),
            (
                r"lead/(?P<id>[^/]+)/",
                {"GET": self.lead, "PUT": self.update_lead, "DELETE": self.delete_lead},
            ),
            (r"data/search/", {"POST": self.search}),
            (rf"bulk_action/(?P<kind>{kinds})/", {"GET": self.list_jobs, "POST": self.create_job}),
            (
                rf"bulk_action/(?P<kind>{kinds})/(?P<id>[^/]+)/",
                {"GET": self.get_job, "PUT": self.update_job},
            ),
            (r"activity/email/", {"GET": self.list_emails, "POST": self.create_email}),
            (r"activity/email/(?P<id>[^/]+)/", {"GET": self.get_email, "PUT": self.update_email}),
        ]
        table = [*(extra or []), *table]  # `lead/merge/` before `lead/{id}/`
        self.routes = [(re.compile(pattern + r"\Z"), methods) for pattern, methods in table]

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for a path relative to /api/v1/: 404 unknown path, 405 wrong method."""
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            if method not in methods:
                raise ApiError(405, {"error": f"Method {method} not allowed."})
            return methods[method], match.groupdict()
        raise NotFoundAnswer(f"No such endpoint: /api/v1/{path}")

    # -- organization lookups ------------------------------------------------------------

    def me(self, call: Call) -> JSON:
        return narrow(self.store.me_json(), call.query)

    def statuses(self, call: Call) -> JSON:
        return {"data": [narrow(s.to_json(), call.query) for s in self.store.statuses.values()]}

    def status(self, call: Call) -> JSON:
        status = found(self.store.statuses, call.params["id"], "Lead status")
        return narrow(status.to_json(), call.query)

    def custom_fields(self, call: Call) -> JSON:
        """Regular lead fields only: Close lists shared ones elsewhere."""
        regular = [cf for cf in self.store.custom_fields.values() if not cf.is_shared]
        return page([cf.to_json() for cf in regular], call.query)

    def custom_field(self, call: Call) -> JSON:
        cf = self.store.custom_fields.get(call.params["id"])
        if cf is None or cf.is_shared:
            raise NotFoundAnswer("Custom field not found.")
        return narrow(cf.to_json(), call.query)

    def custom_field_schema(self, call: Call) -> JSON:
        """Every field leads can hold, regular and shared, in order: `{"fields": [...]}`."""
        return {"fields": [cf.schema_json() for cf in self.store.custom_fields.values()]}

    def _listed(self, items: Mapping[str, OrgObject], call: Call) -> JSON:
        """A page of `items`, as the organization's objects."""
        return page([item.to_json(self.store.org) for item in items.values()], call.query)

    def _one(self, items: Mapping[str, OrgObject], call: Call, what: str) -> JSON:
        """The item the path names (404 naming `what` when there is none)."""
        return narrow(found(items, call.params["id"], what).to_json(self.store.org), call.query)

    def templates(self, call: Call) -> JSON:
        return self._listed(self.store.templates, call)

    def template(self, call: Call) -> JSON:
        return self._one(self.store.templates, call, "Email template")

    def render(self, call: Call) -> JSON:
        """Close's two forms: one lead and contact (`lead_id` and `contact_id`, both
        required), or entry `entry` (0-99) of a search (`query` text or `s_query` JSON, with
        `results_limit`, `sort`), counted by lead (`mode=lead`, the default) or by contact
        (`mode=contact`); `contact_preference` picks the addresses as a bulk email would and
        `email_account_id` must be an email account. Past the last entry: `{}`."""
        template = found(self.store.templates, call.params["id"], "Email template")
        query = call.query
        account_id = query.get("email_account_id")
        if account_id is not None and account_id not in self.store.email_accounts:
            raise BadRequest({"email_account_id": "Email account not found."})
        if "query" in query or "s_query" in query:
            return self._render_entry(template, call)
        missing = {
            key: "This field is required (or give query for the search form)."
            for key in ("lead_id", "contact_id")
            if not query.get(key)
        }
        if missing:
            raise BadRequest(missing)
        lead = self.store.leads.get(query["lead_id"])
        if lead is None:
            raise BadRequest({"lead_id": "Lead not found."})
        contact = next((c for c in lead.contacts if c.id == query["contact_id"]), None)
        if contact is None:
            raise BadRequest({"contact_id": "Contact not found on this lead."})
        return render_template(self.store, template, lead, contact)

    def _render_entry(self, template: EmailTemplate, call: Call) -> JSON:
        query = call.query
        entry = _int_param(query, "entry", 0, 0)
        if entry > MAX_RENDER_ENTRY:
            raise BadRequest({"entry": f"Must be between 0 and {MAX_RENDER_ENTRY}."})
        mode = query.get("mode", "lead")
        if mode not in ("lead", "contact"):
            raise BadRequest({"mode": "Must be 'lead' or 'contact'."})
        preference = query.get("contact_preference", mode)
        if preference not in EMAIL_PREFERENCES:
            raise BadRequest({"contact_preference": "Must be 'lead', 'contact' or 'all'."})
        leads = self._render_selection(call)
        # mode lead counts leads that have an address; mode contact counts the addresses
        # the contact preference reaches.
        targets = [(lead, email_targets(lead, preference)) for lead in leads]
        if mode == "lead":
            chosen = [(lead, pairs[0]) for lead, pairs in targets if pairs]
        else:
            chosen = [(lead, pair) for lead, pairs in targets for pair in pairs]
        if entry >= len(chosen):
            return {}
        lead, (contact, address) = chosen[entry]
        return render_template(self.store, template, lead, contact, address)

    def _render_selection(self, call: Call) -> list[Lead]:
        query = call.query
        results_limit = None
        if "results_limit" in query:
            results_limit = _int_param(query, "results_limit", 0, 0)
        now = from_epoch(call.now)
        if "s_query" in query:
            try:
                tree = json.loads(query["s_query"])
            except ValueError:
                raise BadRequest({"s_query": "Must be a JSON query tree."}) from None
            sort = None
            if "sort" in query:
                try:
                    sort = json.loads(query["sort"])
                except ValueError:
                    raise BadRequest({"sort": "Must be a JSON list."}) from None
            return select(self.store, tree, results_limit, sort, now, "s_query")
        text = query["query"].strip()
        if not text:
            raise BadRequest({"query": "This field is required."})
        words = {"type": "text", "mode": "full_words", "value": text}
        return select(
            self.store, {"type": "and", "queries": [LEAD_NODE, words]}, results_limit, None, now
        )

    def sequences(self, call: Call) -> JSON:
        return self._listed(self.store.sequences, call)

    def sequence(self, call: Call) -> JSON:
        return self._one(self.store.sequences, call, "Sequence")

    def subscriptions(self, call: Call) -> JSON:
        """Filterable by `sequence_id`, `contact_id`, `lead_id`, as Close's list is; Close
        requires at least one of them (a 400 without)."""
        keys = ("sequence_id", "contact_id", "lead_id")
        if all(call.query.get(key) is None for key in keys):
            raise BadRequest({}, ["At least one of sequence_id, contact_id, lead_id is required."])
        subs = [
            s
            for s in self.store.subscriptions.values()
            if all(call.query.get(key) in (None, getattr(s, key)) for key in keys)
        ]
        return page(subs, call.query, lambda s: s.to_json(self.store.org))

    def accounts(self, call: Call) -> JSON:
        """Every connected account: email ones and the others (zoom), as Close lists them."""
        listed = [a.to_json() for a in self.store.email_accounts.values()]
        listed += [dict(a) for a in self.store.other_accounts.values()]
        return page(listed, call.query)

    def account(self, call: Call) -> JSON:
        account_id = call.params["id"]
        account = self.store.email_accounts.get(account_id)
        if account is not None:
            return narrow(account.to_json(), call.query)
        other = self.store.other_accounts.get(account_id)
        if other is None:
            raise NotFoundAnswer("Connected account not found.")
        return narrow(dict(other), call.query)

    def users(self, call: Call) -> JSON:
        return self._listed(self.store.users, call)

    def user(self, call: Call) -> JSON:
        return self._one(self.store.users, call, "User")

    def saved_searches(self, call: Call) -> JSON:
        return self._listed(self.store.saved_searches, call)

    def saved_search(self, call: Call) -> JSON:
        return self._one(self.store.saved_searches, call, "Saved search")

    # -- leads ---------------------------------------------------------------------------

    def leads(self, call: Call) -> JSON:
        return page(
            list(self.store.leads.values()), call.query, lambda lead: lead.to_json(self.store)
        )

    def lead(self, call: Call) -> JSON:
        lead = found(self.store.leads, call.params["id"], "Lead")
        return narrow(lead.to_json(self.store), call.query)

    def create_lead(self, call: Call) -> JSON:
        return create_lead(self.store, call.json, call.now).to_json(self.store)

    def update_lead(self, call: Call) -> JSON:
        lead = found(self.store.leads, call.params["id"], "Lead")
        return update_lead(self.store, lead, call.json, call.now).to_json(self.store)

    def delete_lead(self, call: Call) -> JSON:
        lead = found(self.store.leads, call.params["id"], "Lead")
        del self.store.leads[lead.id]
        if self.on_delete is not None:
            self.on_delete(lead, call.now)
        return {}

    # -- advanced filtering --------------------------------------------------------------

    def search(self, call: Call) -> JSON:
        body = call.json
        if not isinstance(body, dict):
            raise BadRequest({}, ["Expected a JSON object."])
        if body.get("query") is None:
            raise BadRequest({"query": "This field is required."})
        limit = body.get("_limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise BadRequest({"_limit": "Must be a non-negative integer."})
        limit = page_limit(limit)
        fields = self._search_fields(body.get("_fields"))
        results_limit = check_results_limit(body.get("results_limit"), "results_limit")
        include_counts = body.get("include_counts", False)
        if not isinstance(include_counts, bool):
            raise BadRequest({"include_counts": "Must be a boolean."})
        cursor = body.get("cursor")
        if cursor is not None:
            Compiler(self.store, from_epoch(call.now), call.tz).node(body["query"], "query", "lead")
            check_sort(self.store, body.get("sort"), "sort")
            state = self._take_cursor(cursor, call.now)
            ids, offset = state.ids, state.offset
        else:
            # `results_limit: 0` with `include_counts` is Close's count-only request: the
            # total is every match, and no leads come back.
            count_only = results_limit == 0
            leads = select(
                self.store,
                body["query"],
                None if count_only else results_limit,
                body.get("sort"),
                from_epoch(call.now),
                tz=call.tz,
            )
            ids, offset = [lead.id for lead in leads], 0
            if count_only:
                limit = 0
        walked = min(len(ids), MAX_WALK)  # a cursor walk ends there, as Close's does
        chunk = ids[offset : min(offset + limit, walked)]
        data = [
            project(self.store.leads[i], fields, self.store) for i in chunk if i in self.store.leads
        ]
        answer: JSON = {"data": data, "cursor": None}
        if limit and offset + limit < walked:
            answer["cursor"] = self._issue_cursor(ids, offset + limit, call.now)
        if include_counts:
            answer["count"] = {"total": len(ids)}
        return answer

    def _search_fields(self, raw: Any) -> list[str] | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or not all(
            isinstance(v, list) and all(isinstance(f, str) for f in v) for v in raw.values()
        ):
            raise BadRequest({"_fields": 'Expected {"lead": ["field", ...]}.'})
        lead_fields = raw.get("lead")
        return None if lead_fields is None else list(lead_fields)

    def _issue_cursor(self, ids: list[str], offset: int, now: float) -> str:
        self._cursor_count += 1
        token = f"sbx{self._cursor_count:08d}.{offset}"
        self.cursors[token] = CursorState(ids, offset, now + CURSOR_SECONDS)
        return token

    def _take_cursor(self, token: Any, now: float) -> CursorState:
        for key in [k for k, s in self.cursors.items() if s.expires_at < now]:
            del self.cursors[key]
        state = self.cursors.get(token) if isinstance(token, str) else None
        if state is None:
            raise BadRequest({"cursor": "Invalid or expired cursor."})
        return state

    # -- bulk actions --------------------------------------------------------------------

    def list_jobs(self, call: Call) -> JSON:
        kind = call.params["kind"]
        org = self.store.org
        jobs = [j.to_json(org) for j in self.store.jobs.values() if j.kind == kind]
        return page(unordered(jobs), call.query)

    def create_job(self, call: Call) -> JSON:
        job = self.jobs.create(call.params["kind"], call.json, call.now, call.tz)
        return job.to_json(self.store.org)

    def get_job(self, call: Call) -> JSON:
        job = self.jobs.get(call.params["kind"], call.params["id"])
        return narrow(job.to_json(self.store.org), call.query)

    def update_job(self, call: Call) -> JSON:
        job = self.jobs.get(call.params["kind"], call.params["id"])
        return self.jobs.set_status(job, call.json, call.now).to_json(self.store.org)

    # -- email activities ----------------------------------------------------------------

    def list_emails(self, call: Call) -> JSON:
        """The filters Close documents for this list and no other (a 400 names one it does
        not, `_order_by` included: Close documents no order here): `lead_id`, `contact_id`,
        `user_id`, `id__in` (comma lists), `_type`, and `date_created` / `activity_at` with
        `__gte/gt/lte/lt` (a date-time or a date; anything else is a 400)."""
        unknown = sorted(set(call.query) - EMAIL_LIST_PARAMS)
        if unknown:
            raise BadRequest(
                {name: "Unknown parameter for listing email activities." for name in unknown}
            )
        items = list(self.store.emails.values())
        for param, key in (
            ("lead_id", "lead_id"), ("contact_id", "contact_id"), ("user_id", "user_id"),
            ("id__in", "id"), ("_type", "_type"),
        ):  # fmt: skip
            raw = call.query.get(param)
            if raw is not None:
                wanted = {v.strip() for v in raw.split(",") if v.strip()}
                items = [e for e in items if e.get(key) in wanted]
        for field in ("date_created", "activity_at"):
            for name, holds in DATE_FILTERS.items():
                raw = call.query.get(f"{field}__{name}")
                if raw is None:
                    continue
                bound = emails.query_time(raw)
                if bound is None:
                    raise BadRequest({f"{field}__{name}": "Not a valid date-time or date."})
                items = [e for e in items if holds(emails.stored_time(e[field]), bound)]
        return page(unordered(items), call.query, dict)

    def create_email(self, call: Call) -> JSON:
        return emails.create(self.store, call.json, call.now)

    def get_email(self, call: Call) -> JSON:
        email = self.store.emails.get(call.params["id"])
        if email is None:
            raise NotFoundAnswer("Email activity not found.")
        return narrow(dict(email), call.query)

    def update_email(self, call: Call) -> JSON:
        return emails.update(self.store, call.params["id"], call.json, call.now)
