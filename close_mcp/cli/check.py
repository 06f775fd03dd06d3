"""`close-mcp check`: is this Close account answering the way close-mcp reads it?

One read-only request to each endpoint close-mcp relies on (GETs, and searches, which Close
serves as POST `/data/search/` but which change nothing), each answer checked against what
the code reads: the same pydantic models the catalog parses with (`close.catalog`), the
job summary's fields (`close.jobs.JobSummary`), the keys the lookup after an ambiguous email
send compares (`send.EMAIL_MATCH_KEYS`), the count the client reads (`CloseClient.count`).
A key the code reads that is missing is a difference even where the code has a default, since
a default would quietly hide it. The result is a table, one row per endpoint: `ok`, or
`differs:` naming the field. Nothing is ever written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TextIO

from pydantic import BaseModel

from close_mcp.cli.check_crm import CrmProbes
from close_mcp.cli.check_filters import FILTER_KINDS, either_way, filter_probe
from close_mcp.cli.check_shapes import (
    ITEMS,
    Probe,
    Row,
    Verdict,
    counted,
    item_problems,
    list_problems,
    rate_limit_problems,
    timestamp_problems,
)
from close_mcp.close.activities import SUBSCRIPTION_KEYS
from close_mcp.close.catalog import (
    Catalog,
    CustomField,
    EmailAccount,
    Sequence,
    SmartView,
    Status,
    Template,
    User,
)
from close_mcp.close.client import CloseClient, count_body
from close_mcp.close.jobs import JOB_KINDS, JobSummary, job_path, summarize_job
from close_mcp.errors import CloseError, UnknownJobId
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.nodes import LEAD_NODE
from close_mcp.selection.sort import resolve_sort
from close_mcp.selection.tree import resolve_filter
from close_mcp.server.tools.selection import SAMPLE_FIELDS
from close_mcp.server.tools.send import EMAIL_MATCH_KEYS, LEAD_FIELDS

if TYPE_CHECKING:
    from close_mcp.sandbox import Sandbox

# What close-mcp reads of a user (the model builds `name` from the first and last names).
USER_KEYS: Final = ("id", "email", "first_name", "last_name")
# JobSummary's fields that are Close's own (kind comes from the id; details are optional).
JOB_KEYS: Final = tuple(
    name for name in JobSummary.model_fields if name not in ("kind", "details", "s_query")
    and name != "results_limit"
)  # fmt: skip
EMAIL_KEYS: Final = ("id", "status", "date_created", *EMAIL_MATCH_KEYS)
RENDER_KEYS: Final = ("subject", "body")
# The count probes: one per node and condition kind close-mcp sends, each a filter of the
# sampled lead (`lead_ids`, the lead-id `reference`) and the kind, built by the very code the
# tools use, so Close must count exactly the one lead. (label, the filter's other fields)
QUERY_KINDS: Final = (
    "lead-id reference",
    "offset moment",
    "fixed_local_date",
    "status.lead",
    "user_or_group",
    "has_related contact_email",
    "text (name)",
    "text (full text)",
    *FILTER_KINDS,
    "sort on a custom field",
)


# -- the probes ------------------------------------------------------------------------------


class Checker:
    """Runs the probes in order; later ones use what earlier ones found (a template, a lead)."""

    def __init__(self, client: CloseClient) -> None:
        self.client = client
        self.rows: list[Row] = []
        self.template_id: str | None = None
        self.lead_id: str | None = None
        self.contact_id: str | None = None
        self.lead: dict[str, Any] = {}  # the sampled lead, as `lead/{id}/` answered
        self.catalog = Catalog(client)

    async def run(self) -> list[Row]:
        probes: list[tuple[str, Probe]] = [
            ("GET me/", self.me),
            ("GET status/lead/", self.statuses),
            ("GET custom_field_schema/lead/", self.custom_fields),
            ("GET email_template/", self.templates),
            ("GET sequence/", self.sequences),
            ("GET connected_account/", self.accounts),
            ("GET saved_search/", self.smart_views),
            ("GET user/", self.users),
            ("POST data/search/ (count only)", self.count),
            ("POST data/search/ (one lead)", self.sample),
            ("GET lead/{id}/", self.read_lead),
            *[
                (f"POST data/search/ (count: {kind})", self._kind_probe(kind))
                for kind in QUERY_KINDS
            ],
            ("GET email_template/{id}/render/", self.render),
            *[(f"GET {job_path(kind)}", self._jobs_probe(kind)) for kind in JOB_KINDS],
            ("GET activity/email/", self.emails),
            ("GET sequence_subscription/ (lead_id)", self.subscriptions),
        ]
        probes += CrmProbes(self.client).probes()
        for endpoint, probe in probes:
            try:
                verdict = await probe()
            except CloseError as exc:
                verdict = Verdict((f"request failed: {exc}",))
            self.rows.append(Row(endpoint, verdict))
        return self.rows

    async def _list(
        self,
        path: str,
        what: str,
        *,
        model: type[BaseModel] | None = None,
        keys: Iterable[str] = (),
    ) -> tuple[Verdict, list[Any]]:
        answer = await self.client.get(path, {"_limit": ITEMS})
        problems, items = list_problems(answer, model=model, keys=keys)
        return Verdict(tuple(problems), counted(items, what)), items

    async def me(self) -> Verdict:
        answer = await self.client.get("me/")
        problems = item_problems(answer, "me", model=User, keys=USER_KEYS)
        header, note = rate_limit_problems(self.client.last_rate_limit)
        return Verdict(tuple(problems + header), note)

    async def statuses(self) -> Verdict:
        answer = await self.client.get("status/lead/")
        problems, items = list_problems(answer, model=Status)
        return Verdict(tuple(problems), counted(items, "statuses"))

    async def custom_fields(self) -> Verdict:
        answer = await self.client.get("custom_field_schema/lead/")
        problems, items = list_problems(answer, key="fields", model=CustomField)
        return Verdict(tuple(problems), counted(items, "fields"))

    async def templates(self) -> Verdict:
        row, items = await self._list("email_template/", "templates", model=Template)
        active = [
            t for t in items if isinstance(t, dict) and t.get("id") and not t.get("is_archived")
        ]
        self.template_id = str(active[0]["id"]) if active else None
        return row

    async def sequences(self) -> Verdict:
        return (await self._list("sequence/", "sequences", model=Sequence))[0]

    async def accounts(self) -> Verdict:
        return (await self._list("connected_account/", "accounts", model=EmailAccount))[0]

    async def smart_views(self) -> Verdict:
        return (await self._list("saved_search/", "smart views", model=SmartView))[0]

    async def users(self) -> Verdict:
        return (await self._list("user/", "users", model=User, keys=USER_KEYS))[0]

    async def count(self) -> Verdict:
        answer = await self.client.post(
            "data/search/", count_body(dict(LEAD_NODE)), idempotent=True
        )
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, dict):
            return Verdict(("count missing",))
        total = count.get("total")
        if type(total) is not int:
            return Verdict(
                ("count.total missing" if "total" not in count else "count.total: not an integer",)
            )
        return Verdict((), f"{total} leads")

    async def sample(self) -> Verdict:
        page = await self.client.search_page(dict(LEAD_NODE), fields=SAMPLE_FIELDS, limit=1)
        problems, items = list_problems(page, keys=SAMPLE_FIELDS)
        if items and isinstance(items[0], dict):
            self.lead_id = items[0].get("id")
        return Verdict(tuple(problems), counted(items, "leads"))

    async def read_lead(self) -> Verdict:
        if self.lead_id is None:
            return Verdict((), "not checked: no lead found")
        fields = f"{LEAD_FIELDS},status_id,date_created,date_updated"
        answer = await self.client.get(f"lead/{self.lead_id}/", {"_fields": fields})
        problems = item_problems(answer, "lead", keys=fields.split(","))
        problems += timestamp_problems(answer, "lead")
        self.lead = answer if isinstance(answer, dict) else {}
        contacts = answer.get("contacts") if isinstance(answer, dict) else None
        for i, contact in enumerate(contacts if isinstance(contacts, list) else []):
            where = f"lead.contacts[{i}]"
            problems += item_problems(contact, where, keys=("id", "name", "emails"))
            emails = contact.get("emails") if isinstance(contact, dict) else None
            for j, entry in enumerate(emails if isinstance(emails, list) else []):
                problems += item_problems(entry, f"{where}.emails[{j}]", keys=("email",))
            if self.contact_id is None and isinstance(contact, dict) and contact.get("emails"):
                self.contact_id = contact.get("id")
        return Verdict(tuple(problems))

    async def render(self) -> Verdict:
        if self.template_id is None or self.lead_id is None or self.contact_id is None:
            return Verdict((), "not checked: no active template, or no lead with a contact")
        params = {"lead_id": self.lead_id, "contact_id": self.contact_id}
        answer = await self.client.get(f"email_template/{self.template_id}/render/", params)
        return Verdict(tuple(item_problems(answer, "render", keys=RENDER_KEYS)))

    def _kind_probe(self, kind: str) -> Callable[[], Awaitable[Verdict]]:
        async def probe() -> Verdict:
            if self.lead_id is None:
                return Verdict((), "not checked: no lead found")
            built = await self._kind_query(kind)
            if isinstance(built, str):
                return Verdict((), f"not checked: {built}")
            tree, sort, expected = built
            body = {**count_body(tree), **({"sort": sort} if sort else {})}
            answer = await self.client.post("data/search/", body, idempotent=True)
            count = answer.get("count") if isinstance(answer, dict) else None
            total = count.get("total") if isinstance(count, dict) else None
            if type(total) is not int:
                return Verdict(("count.total missing or not an integer",))
            if total != expected:
                return Verdict((f"counted {total} leads where the sampled lead makes {expected}",))
            return Verdict((), f"{total} as expected")

        return probe

    async def _kind_query(self, kind: str) -> tuple[dict[str, Any], list[Any] | None, int] | str:
        """The query of one count probe, the sort it carries, and the count Close must answer;
        or why it cannot be asked of this account."""
        assert self.lead_id is not None
        ids = [self.lead_id]
        lead = self.lead
        name = str(lead.get("display_name") or "")
        word = next((w for w in name.split() if w.isalnum()), None)
        fields: dict[str, Any] = {}
        expected = 1
        if kind == "offset moment":
            fields = {"created_within": "36500d"}
        elif kind == "fixed_local_date":
            fields = {"created_after": "1970-01-01"}
        elif kind == "status.lead":
            if not lead.get("status_id"):
                return "the sampled lead has no status"
            fields = {"lead_status": str(lead["status_id"])}
        elif kind == "has_related contact_email":
            fields = {"has_email": True}
            expected = 1 if self.contact_id is not None else 0
        elif kind in ("text (name)", "text (full text)"):
            if word is None:
                return "the sampled lead's name has no plain word"
            fields = {"name": word} if kind == "text (name)" else {"text": word}
        either = False
        if kind in FILTER_KINDS:
            probe = await filter_probe(kind, self.catalog, word)
            if isinstance(probe, str):
                return probe
            fields, either = probe
        tree = await resolve_filter(LeadFilter(lead_ids=ids, **fields), self.catalog)
        if either:
            either_way(tree)
        sort: list[Any] | None = None
        if kind == "user_or_group":
            users = [f for f in await self.catalog.custom_fields() if f.type == "user"]
            people = await self.catalog.users()
            if not users or not people:
                return "no user custom field, or no user"
            one = LeadFilter(custom_fields={users[0].id: people[0].id})
            node = (await resolve_filter(one, self.catalog))["queries"][-1]
            # the condition or its negation: true of every lead, so the count stays 1
            tree["queries"].append({"type": "or", "queries": [node, {**node, "negate": True}]})
        elif kind == "sort on a custom field":
            fields_ = await self.catalog.custom_fields()
            if not fields_:
                return "no custom field"
            sort = await resolve_sort([fields_[0].id], self.catalog)
        return tree, sort, expected

    def _jobs_probe(self, kind: Any) -> Callable[[], Awaitable[Verdict]]:
        async def probe() -> Verdict:
            listed, items = await self._list(job_path(kind), "jobs", keys=JOB_KEYS)
            problems = list(listed.problems)
            for i, item in enumerate(items):
                problems += timestamp_problems(item, f"data[{i}]")
                try:
                    summarize_job(item)
                except (UnknownJobId, AttributeError, ValueError, TypeError) as exc:
                    problems.append(f"data[{i}].id: {exc}")
            return Verdict(tuple(problems), counted(items, "jobs"))

        return probe

    async def emails(self) -> Verdict:
        listed, items = await self._list("activity/email/", "emails", keys=EMAIL_KEYS)
        problems = [
            *listed.problems,
            *(p for i, item in enumerate(items) for p in timestamp_problems(item, f"data[{i}]")),
        ]
        return Verdict(tuple(problems), listed.note)

    async def subscriptions(self) -> Verdict:
        """The sampled lead's sequence subscriptions, as `get_lead` lists them (Close wants
        one of sequence_id, contact_id or lead_id)."""
        if self.lead_id is None:
            return Verdict((), "not checked: no lead found")
        params = {"lead_id": self.lead_id, "_limit": ITEMS}
        answer = await self.client.get("sequence_subscription/", params)
        problems, items = list_problems(answer, keys=SUBSCRIPTION_KEYS)
        return Verdict(tuple(problems), counted(items, "the sampled lead's subscriptions"))


async def run_check(client: CloseClient) -> list[Row]:
    return await Checker(client).run()


def table(rows: list[Row]) -> str:
    width = max(len(row.endpoint) for row in rows)
    lines = [f"{'endpoint'.ljust(width)}  result"]
    for row in rows:
        problems, note = row.verdict.problems, row.verdict.note
        if not problems:
            text = "ok" + (f" ({note})" if note else "")
        else:
            text = "differs: " + "; ".join(problems[:5])
            if len(problems) > 5:
                text += f"; and {len(problems) - 5} more"
        lines.append(f"{row.endpoint.ljust(width)}  {text}")
    differing = sum(not row.ok for row in rows)
    lines.append("")
    lines.append(
        f"{len(rows)} endpoints checked, {differing} differ."
        if differing
        else f"{len(rows)} endpoints checked, all answer as close-mcp expects."
    )
    return "\n".join(lines)


def check(
    args: argparse.Namespace,
    *,
    env: Any = None,
    stdout: TextIO | None = None,
    sandbox: Sandbox | None = None,
) -> int:
    """The command: the table on stdout, exit 1 on any difference. `sandbox`: check this one
    (a test's) instead of a fresh embedded sandbox, with --sandbox."""
    import anyio

    from close_mcp.config import load_settings
    from close_mcp.errors import ConfigError

    stdout = stdout or sys.stdout
    if args.drift and not args.sandbox:
        raise ConfigError("--drift needs --sandbox (it changes the embedded sandbox's answers)")
    settings = load_settings(env, sandbox=args.sandbox)

    async def run() -> list[Row]:
        if args.sandbox:
            from close_mcp.sandbox import Sandbox
            from close_mcp.server.runtime import SANDBOX_BASE_URL

            local = sandbox or Sandbox(n_leads=50, drift=args.drift)
            client = CloseClient(
                local.api_key,
                SANDBOX_BASE_URL,
                transport=local.transport(),
                timezone=settings.timezone,
            )
        else:
            assert settings.api_key is not None  # load_settings requires it without --sandbox
            client = CloseClient(
                settings.api_key.get_secret_value(), settings.base_url, timezone=settings.timezone
            )
        async with client:
            return await run_check(client)

    rows = anyio.run(run)
    print(table(rows), file=stdout)
    return 0 if all(row.ok for row in rows) else 1
