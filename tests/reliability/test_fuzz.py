"""Fuzzing every tool from its live input schema, and far outside it, up to the confirmation gate.

Read tools get arguments drawn from their JSON input schema (with realistic names from the
sandbox mixed in) and hostile variations of those (wrong types, huge strings, deep nesting, odd
unicode, nulls, raw `s_query` fragments, unknown keys, missing arguments).

Write tools get mostly *valid* selections, so the calls pass validation and reach the
confirmation gate (real status names, lead ids, templates, sequences, email accounts; for
`revert_bulk_edit` two finished bulk edits made through the server, with their snapshots; for
pause and resume, running and paused jobs seeded just before), each with a hostile token:

- none, or `dry_run` with the token the server minted for exactly these arguments;
- server-minted tokens broken: another MAC, a bigger count under the old MAC, truncated;
- server-minted tokens used elsewhere: from another tool, from the same tool and other
  arguments, or the right token with arguments swapped for ones that keep the tool and the
  count (another edit value, template, sequence action, `send_done_email`...), so only the
  body digest tells them apart;
- near misses signed with the server's own secret, wrong in exactly one respect: expired,
  another count, another body digest, another tool; and one signed with another secret;
- random strings;

sometimes with one argument replaced by a hostile value (only with tokens that are invalid
whatever the arguments). Those calls are a seeded sweep (every kind of token in turn), not a
hypothesis strategy: hypothesis draws such small choices far from uniformly. A quarter of each
write tool's calls stays pure junk (hypothesis, schema-drawn and hostile arguments).

Why the earlier version reached the gate about 30 times in 1,560 calls: a valid call needed
several independent draws to come out right at once (a template name from the hints, exactly
one of filter and s_query, a hinted filter rather than a schema-drawn one); the only jobs were
created directly in the sandbox, so no bulk edit had a snapshot (revert: "No snapshot" every
time) and all of them had finished before pause and resume were fuzzed (wait_for_bulk_job runs
first and moves the clock), so pause and resume could only be refused, and a refusal, a tool
error, was counted with the validation errors.

Every call must end in a result that matches the tool's output schema or in a tool error that
says why (the SDK's bare "Error executing tool X" is a crash; crashes are counted and must be
0). The server must keep serving. Every action needs confirmation here
(`confirm=edit,email,sequences,send,delete,export,opportunities,tasks`, every toolset on) and
no fuzzed call carries a valid token, so
nothing may reach the sandbox that writes, except what needs no confirmation by design: a draft
or logged email (`send_email` status draft, sent, inbox) and pausing or resuming a job. Close
must never answer a request with 400: the server validates before sending.

The outcome of every call is counted per tool (preview, confirmation_required, refused,
submitted, read result, tool error, crash); each write tool must reach its gate (a preview, a
confirmation request or a refusal; for pause and resume a refusal or the change) a minimum
number of times. Run with `pytest -s` to see the table.
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jsonschema
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import MCPError, types

from close_mcp.close.client import caller_digest
from close_mcp.sandbox import SANDBOX_API_KEY, RecordedRequest
from close_mcp.writes.tokens import ConfirmationTokens, canonical_json
from tests.harness import Harness, Mode, run_to_done, text_of
from tests.ids import status_id
from tests.queries import status_query
from tests.reliability.support import (
    API,
    HUGE,
    NASTY_TEXT,
    Crash,
    SchemaStrategy,
    check_outcome,
    guarded_kind,
    is_write,
    mutate,
    portal_harness,
    record,
    sandbox_hints,
)

# Each near-miss token is minted for the caller the fuzzed server sees: only its flaw differs.
CALLER = caller_digest(SANDBOX_API_KEY)
CONFIRM_ALL = "edit,email,sequences,send,delete,export,merge,opportunities,tasks"
# Calls per tool. Write tools: three quarters a sweep of valid arguments with hostile tokens,
# one quarter hypothesis junk; read tools: all hypothesis (schema-drawn and hostile).
EXAMPLES = {"legacy": 120, "auto": 30}
NOT_CONFIRMED_EMAIL = frozenset({"draft", "sent", "inbox"})
QUALIFIED = {"filter": {"lead_status": "Qualified"}}

GATE_TOOLS: Final = (
    "create_bulk_edit",
    "create_bulk_email",
    "create_bulk_sequence_subscription",
    "create_bulk_delete",
    "send_email",
    "revert_bulk_edit",
    "cancel_email",
    "restore_leads",
    "export_leads",
    "update_opportunities",
    "update_tasks",
    "merge_leads",
)
CONTROL_TOOLS: Final = ("pause_bulk_job", "resume_bulk_job")
OUTCOMES: Final = (
    "preview",
    "confirmation_required",
    "refused",
    "submitted",
    "result",
    "error",
    "crash",
)
AT_GATE: Final = frozenset({"preview", "confirmation_required", "refused"})
# Calls per write tool that must reach its gate: a preview, a confirmation request or a
# refusal (pause and resume: a refusal or the change). About two thirds of what a run reaches.
GATE_FLOOR: Final = {"legacy": 70, "auto": 16}
# Calls (all gated tools together) that each kind of token brought to the gate, at least.
KIND_FLOOR: Final = {"legacy": 20, "auto": 2}

TOKEN_KINDS: Final = (
    "none",
    "dry_run",
    "forged_mac",
    "bumped_count",
    "truncated",
    "other_tool",
    "other_args",
    "swapped_args",
    "swapped_args",
    "near_expired",
    "near_count",
    "near_digest",
    "near_tool",
    "near_secret",
    "random",
)
# Kinds whose token is invalid whatever the arguments: they may go with a hostile argument.
ALWAYS_INVALID: Final = frozenset(
    {
        "forged_mac",
        "bumped_count",
        "truncated",
        "near_expired",
        "near_count",
        "near_digest",
        "near_tool",
        "near_secret",
        "random",
    }
)
JUNK_SHARE: Final = 4  # write tools: one call in four is pure junk (schema-drawn or hostile)
LONG_TTL_S: Final = 60 * 86400.0  # near misses stay unexpired however far the clock moves
OTHER_SECRET: Final = b"another-secret-0123456789abcdef"


def _allowed_write(method: str, path: str, body: Any) -> bool:
    """Writes that need no confirmation even with every action confirmable by policy: drafts
    and logged emails, and pausing or resuming a job (reversible)."""
    status = body.get("status") if isinstance(body, dict) else None
    if method == "POST" and path == API + "activity/email/":
        return status in NOT_CONFIRMED_EMAIL
    return (
        method == "PUT"
        and path.startswith(API + "bulk_action/")
        and body == {"status": "paused" if status == "paused" else "resuming"}
    )


def _still_serving(result: types.CallToolResult) -> None:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["total"] > 0


def _one_selection(args: dict[str, Any]) -> dict[str, Any]:
    """Schema-drawn arguments with at most one of filter and s_query, so more calls go deep."""
    if args.get("filter") is not None and args.get("s_query") is not None:
        return {k: v for k, v in args.items() if k != "s_query"}
    return args


def _outcome(name: str, result: types.CallToolResult) -> str:
    """One of OUTCOMES but crash (raised as `Crash`)."""
    if check_outcome(name, result) == "error":
        refusal = f"Error executing tool {name}: cannot {name.removesuffix('_bulk_job')} "
        if name in CONTROL_TOOLS and text_of(result).startswith(refusal):
            return "refused"  # the job was read and the change refused (or Close refused it)
        return "error"
    content = result.structured_content or {}
    if name in CONTROL_TOOLS:
        return "submitted"
    if name in GATE_TOOLS:
        status = str(content.get("status"))
        assert status in ("preview", "confirmation_required", "refused", "submitted"), content
        return status
    return "result"


# -- seeding --------------------------------------------------------------------------------

EVERYTHING: Final = {
    "s_query": {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]}
}


def _seed_jobs(h: Harness) -> None:
    """A few finished jobs in the sandbox, so job tools also see ids that exist."""
    status = status_id(h, "Potential")
    for kind, extra in (
        ("edit", {"type": "set_lead_status", "lead_status_id": status}),
        ("delete", {}),
    ):
        h.sandbox.jobs.create(kind, {**EVERYTHING, **extra, "results_limit": 1}, h.clock.time())


async def _seed_revertable_edits(h: Harness) -> list[str]:
    """Two finished bulk edits made through the server (so each has a snapshot), on fields
    no other seed touches: revert_bulk_edit can plan them for the whole run."""
    done = []
    for selection, edit in (
        (
            {"lead_status": "Canceled"},
            {"type": "set_custom_field", "custom_field": "Lead Source", "value": "Webinar"},
        ),
        (
            {"lead_status": "Potential"},
            {"type": "set_custom_field", "custom_field": "Deal Size", "value": 12345},
        ),
    ):
        args = {"filter": selection, "edit": edit}
        first = await h.call("create_bulk_edit", args)
        assert first["status"] == "confirmation_required", first
        sent = await h.call(
            "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
        )
        assert sent["status"] == "submitted", sent
        await run_to_done(h, sent["job"]["id"])
        done.append(sent["job"]["id"])
    return done


async def _seed_cancellable_emails(h: Harness) -> list[str]:
    """Two emails scheduled through the server for years ahead, so they stay cancellable for
    the whole run: cancel_email can preview them and every hostile token meets its gate."""
    lead = next(
        lead
        for lead in sorted(h.sandbox.store.leads.values(), key=lambda x: x.id)
        if any(c.emails for c in lead.contacts)
    )
    account = next(iter(h.sandbox.store.email_accounts.values()))
    sender = f'"Sandra" <{account.identities[0]["email"]}>'
    scheduled = []
    for subject in ("Later", "Much later"):
        args = {
            "lead_id": lead.id,
            "status": "scheduled",
            "date_scheduled": "2031-01-06T09:00:00+00:00",
            "sender": sender,
            "subject": subject,
            "body_text": "Hi",
        }
        first = await h.call("send_email", args)
        assert first["status"] == "confirmation_required", first
        sent = await h.call(
            "send_email", {**args, "confirmation_token": first["confirmation_token"]}
        )
        assert sent["status"] == "submitted", sent
        scheduled.append(sent["result"]["id"])
    return scheduled


def _seed_controllable_jobs(h: Harness, running: int, paused: int) -> list[str]:
    """Harmless jobs to pause and resume: they set Qualified on leads that are Qualified."""
    qualified = status_id(h, "Qualified")
    data = {
        "s_query": status_query(qualified),
        "type": "set_lead_status",
        "lead_status_id": qualified,
    }
    ids = []
    for i in range(running + paused):
        job = h.sandbox.jobs.create("edit", data, h.clock.time())
        if i >= running:
            h.sandbox.jobs.set_status(job, {"status": "paused"}, h.clock.time())
        ids.append(job.id)
    return ids


# -- valid arguments for the write tools -----------------------------------------------------

Args = dict[str, Any]
Swap = Callable[[Args], Args]


@dataclass(frozen=True)
class Base:
    """Arguments that pass validation, and swaps of them that keep the tool and the count but
    change the request body (so the token minted for `args` must not fit them)."""

    args: Args
    swaps: tuple[Swap, ...]

    @property
    def key(self) -> str:
        return canonical_json(self.args).decode()


def _flip_done_email(args: Args) -> Args:
    return {**args, "send_done_email": not args.get("send_done_email", True)}


def _selections(h: Harness) -> list[Args]:
    store = h.sandbox.store
    lead_ids = sorted(store.leads)[:3]
    view = next(iter(store.saved_searches.values())).name
    return [
        {"filter": {"lead_status": "Qualified"}},
        {"filter": {"lead_status": ["Customer", "Bad Fit"], "has_email": True}},
        {"filter": {"lead_ids": lead_ids}},
        {"filter": {"smart_view": view}},
        {"filter": {"custom_fields": {"Industry": "Retail"}}},
        {"filter": {"name": "Acme"}},
        {"s_query": status_query(status_id(h, "Bad Fit"))},
        {"filter": {"lead_status": "Customer"}, "results_limit": 5},
    ]


def _bases(h: Harness, tool: str, seeded: Seeded) -> list[Base]:
    revertable = seeded.revertable
    store = h.sandbox.store
    selections = _selections(h)
    account = next(iter(store.email_accounts.values()))
    identity = account.identities[0]["email"]
    if tool == "create_bulk_delete":
        return [Base(s, (_flip_done_email,)) for s in selections]
    if tool == "create_bulk_edit":
        edits: list[Args] = [
            {"type": "set_lead_status", "lead_status": "Bad Fit"},
            {"type": "set_custom_field", "custom_field": "Industry", "value": "Retail"},
            {"type": "set_custom_field", "custom_field": "Products", "values": ["API", "CRM"]},
            {"type": "clear_custom_field", "custom_field": "Renewal Date"},
        ]

        def other_edit(i: int) -> Swap:
            return lambda a: {**a, "edit": edits[(i + 1) % len(edits)]}

        return [
            Base({**s, "edit": e}, (_flip_done_email, other_edit(i)))
            for s in selections
            for i, e in enumerate(edits)
        ]
    if tool == "create_bulk_email":
        templates = ["Intro", "Follow-up", "Renewal reminder"]

        def other_template(a: Args) -> Args:
            return {**a, "template": templates[(templates.index(a["template"]) + 1) % 3]}

        def other_preference(a: Args) -> Args:
            pref = a.get("contact_preference", "lead")
            return {**a, "contact_preference": "contact" if pref == "lead" else "lead"}

        return [
            Base({**s, "template": t, **pref}, (_flip_done_email, other_template, other_preference))
            for s in selections
            for t in templates
            for pref in ({}, {"contact_preference": "contact"})
        ]
    if tool == "create_bulk_sequence_subscription":
        subscribe = {
            "action_type": "subscribe",
            "sequence": "Onboarding",
            "sender_account": account.id,
            "sender_email": identity,
        }
        swap_action = {"pause": "resume", "resume": "resume_finished", "resume_finished": "pause"}

        def other_action(a: Args) -> Args:
            return {**a, "action_type": swap_action[a["action_type"]]}

        def other_sequence(a: Args) -> Args:
            return {**a, "sequence": "Win-back" if a["sequence"] == "Onboarding" else "Onboarding"}

        bases = [Base({**s, **subscribe}, (_flip_done_email, other_sequence)) for s in selections]
        for s in selections:
            for action in ("pause", "resume", "resume_finished"):
                bases.append(
                    Base(
                        {**s, "action_type": action, "all_sequences": True},
                        (_flip_done_email, other_action),
                    )
                )
                bases.append(
                    Base(
                        {**s, "action_type": action, "sequence": "Win-back"},
                        (_flip_done_email, other_action, other_sequence),
                    )
                )
        return bases
    if tool == "send_email":
        leads = sorted(
            lead.id for lead in store.leads.values() if any(c.emails for c in lead.contacts)
        )[:6]
        sends: list[Args] = [
            {"status": "outbox", "subject": "Hello", "body_text": "Hi there"},
            {"status": "outbox", "template": "Intro"},
            {"status": "outbox", "to": ["buyer@example.com"], "subject": "Hi", "body_text": "x"},
            {
                "status": "scheduled",
                "date_scheduled": "2026-02-01T09:00:00+00:00",
                "subject": "Later",
                "body_text": "Hi later",
            },
        ]

        def other_subject(a: Args) -> Args:
            if "template" in a:
                return {**a, "template": "Follow-up"}
            return {**a, "subject": a["subject"] + " (2)"}

        def other_body(a: Args) -> Args:
            if "template" in a:
                return {**a, "template": "Renewal reminder"}
            return {**a, "body_text": a["body_text"] + "!"}

        return [
            Base(
                {"lead_id": lead, "sender": f'"Sandra" <{identity}>', **send},
                (other_subject, other_body),
            )
            for lead in leads
            for send in sends
        ]
    if tool == "revert_bulk_edit":

        def other_job(a: Args) -> Args:
            return {**a, "job_id": revertable[1 - revertable.index(a["job_id"])]}

        return [
            Base({"job_id": job, **more}, (other_job,))
            for job in revertable
            for more in ({}, {"include_changed_since": True})
        ]
    if tool == "restore_leads":
        # Close's event log: the three leads deleted within 30 days (the seeded ones). A
        # date-time a little later still holds all three: same count, another request.
        now = datetime.fromtimestamp(h.clock.time(), UTC)
        since = (now - timedelta(days=30)).date().isoformat()
        deleted = sorted(
            e.object_id for e in store.events if e.object_type == "lead" and e.action == "deleted"
        )

        def later_since(a: Args) -> Args:
            return {**a, "deleted_since": (now - timedelta(days=29, hours=13)).isoformat()}

        return [
            Base({"deleted_since": since}, (later_since,)),
            Base({"deleted_since": since, "lead_ids": deleted[-2:]}, (later_since,)),
        ]
    if tool == "cancel_email":
        emails = seeded.cancellable

        def other_email(a: Args) -> Args:
            return {**a, "activity_id": emails[1 - emails.index(a["activity_id"])]}

        return [Base({"activity_id": email}, (other_email,)) for email in emails]
    return _record_bases(tool, selections)


def _record_bases(tool: str, selections: list[Args]) -> list[Base]:
    """export_leads, merge_leads and the per-record tools (issue 28)."""
    if tool == "merge_leads":
        keys = ("contact_email", "email_domain", "exact_name")

        def other_key(a: Args) -> Args:
            return {**a, "key": keys[(keys.index(a["key"]) + 1) % len(keys)]}

        return [Base({**s, "key": k}, (other_key,)) for s in selections for k in keys]
    if tool == "export_leads":

        def other_format(a: Args) -> Args:
            return {**a, "format": "csv" if a.get("format") == "json" else "json"}

        def other_type(a: Args) -> Args:
            return {**a, "type": "contacts" if a.get("type") == "leads" else "leads"}

        return [
            Base({**s, "format": f, "type": t}, (other_format, other_type))
            for s in selections
            for f in ("json", "csv")
            for t in ("leads", "lead_opps")
        ]
    wheres: list[Args] = [{}, {"status_type": "active"}, {"close_after": "2026-01-01"}]
    changes: list[Args] = [{"confidence": 40}, {"value": 120_000}, {"status": "Won"}]
    if tool == "update_tasks":
        wheres = [{"is_complete": False}, {"due_before": "2026-01-15"}]
        changes = [{"complete": True}, {"due_date": "2026-03-01"}]

    def other_change(a: Args) -> Args:
        if "delete" in a:
            return {k: v for k, v in a.items() if k != "delete"} | {"change": changes[0]}
        return {**a, "change": changes[(changes.index(a["change"]) + 1) % len(changes)]}

    bases = [
        Base({**s, "where": w, "change": c}, (other_change,))
        for s in selections[:4]
        for w in wheres
        for c in changes
    ]
    if tool == "update_tasks":
        bases += [Base({**s, "delete": True}, (other_change,)) for s in selections[:4]]
    return bases


# -- tokens ---------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the server made before the run, for the tools that act on earlier writes."""

    revertable: list[str]  # finished bulk edits with snapshots
    cancellable: list[str]  # scheduled emails


@dataclass
class Seen:
    """What the server previewed for one set of valid arguments, and its latest token."""

    path: str
    body: dict[str, Any]
    matched: int
    token: str | None


def _payload(token: str) -> dict[str, Any]:
    encoded = token.partition(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return data


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class Gate:
    """The fuzz's memory across calls: previews seen per tool and arguments, and minters that
    sign near misses with the server's own secret (or another one)."""

    h: Harness
    seen: dict[str, dict[str, Seen]] = field(default_factory=lambda: defaultdict(dict))

    def __post_init__(self) -> None:
        secret = self.h.runtime.settings.secret.get_secret_value().encode()
        clock = self.h.clock
        self.lasting = ConfirmationTokens(secret, clock, ttl_s=LONG_TTL_S)
        self.expired = ConfirmationTokens(secret, clock, ttl_s=-1.0)
        self.stranger = ConfirmationTokens(OTHER_SECRET, clock, ttl_s=LONG_TTL_S)

    def remember(self, tool: str, base: Base, content: dict[str, Any]) -> None:
        preview = content["preview"]
        self.seen[tool][base.key] = Seen(
            path=str(preview["path"]).removeprefix("/"),
            body=preview["request"],
            matched=int(preview["matched"]),
            token=content.get("confirmation_token"),
        )

    def token(self, tool: str, base: Base, kind: str, twist: int) -> tuple[str, str | None]:
        """A token of `kind` for `base` (whose preview has been seen), never one that fits the
        call it goes with; and the kind it really is (`random` when nothing fitted `kind`)."""
        mine = self.seen[tool][base.key]
        real = mine.token
        if kind == "none":
            return kind, None
        if kind in ("dry_run", "swapped_args") and real:
            return kind, real  # fits base.args, but goes with dry_run or other arguments
        if kind == "forged_mac" and real:
            payload, _, mac = real.partition(".")
            return kind, f"{payload}.{mac[:-3]}{'BBB' if mac.endswith('AAA') else 'AAA'}"
        if kind == "bumped_count" and real:
            data = _payload(real)
            data["m"] = int(data["m"]) + 1 + twist % 1000
            return kind, f"{_b64(data)}.{real.partition('.')[2]}"
        if kind == "truncated" and real:
            return kind, real[: twist % len(real)]
        if kind == "other_tool":
            others = [s.token for t, seen in self.seen.items() if t != tool for s in seen.values()]
            others = [t for t in others if t]
            if others:
                return kind, others[twist % len(others)]
        if kind == "other_args":
            others = [
                s.token
                for s in self.seen[tool].values()
                if s.token and (s.path, s.body) != (mine.path, mine.body)
            ]
            if others:
                return kind, others[twist % len(others)]
        if kind == "near_expired":
            return kind, self.expired.mint(
                tool, mine.path, mine.body, mine.matched, caller=CALLER
            ).token
        if kind == "near_count":
            wrong: Any = [mine.matched + 1, mine.matched - 1, 10**12, str(mine.matched)][twist % 4]
            return kind, self.lasting.mint(tool, mine.path, mine.body, wrong, caller=CALLER).token
        if kind == "near_digest":
            body = {**mine.body, "fuzz": twist}
            path = mine.path if twist % 2 else mine.path + "x/"
            return kind, self.lasting.mint(tool, path, body, mine.matched, caller=CALLER).token
        if kind == "near_tool":
            other = [t for t in GATE_TOOLS if t != tool][twist % (len(GATE_TOOLS) - 1)]
            return kind, self.lasting.mint(
                other, mine.path, mine.body, mine.matched, caller=CALLER
            ).token
        if kind == "near_secret":
            return kind, self.stranger.mint(
                tool, mine.path, mine.body, mine.matched, caller=CALLER
            ).token
        junk = [*NASTY_TEXT, "x" * 1024, "a.b", "..", "eyJ0IjoiY3JlYXRlX2J1bGtfZGVsZXRlIn0.forged"]
        return "random", junk[twist % len(junk)]


@dataclass(frozen=True)
class Planned:
    """One drawn call for a write tool: valid arguments and a token kind, or junk."""

    kind: str
    base: Base | None = None
    twist: int = 0
    hostile: tuple[str, Any] | None = None  # one argument replaced
    junk: Any = None


HOSTILE_ARGS: Final = [
    *NASTY_TEXT,
    None,
    True,
    0,
    -1,
    2**64,
    1.5,
    float("1e308"),
    "x" * HUGE,
    ["lead_" + "a" * 22] * 2000,
    [],
    {},
    {"type": "match_all"},
    {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}], "negate": True},
    [[[[[[[[[[{"type": "match_all"}]]]]]]]]]],
]


def _sweep(
    tool: str, mode: Mode, bases: list[Base], kinds: tuple[str, ...], n: int
) -> list[Planned]:
    """`n` calls with valid arguments, every kind of token in turn over bases drawn with a
    seeded generator; one in four calls with a token invalid whatever the arguments also gets
    a hostile argument. A sweep, not a hypothesis strategy: hypothesis draws a small choice
    (a kind, a base) far from uniformly, and every kind must reach the gate."""
    rng = random.Random(f"{tool}/{mode}")
    names = sorted({key for base in bases for key in base.args} | {"dry_run", "results_limit"})
    planned = []
    for i in range(n):
        hostile = None
        if rng.random() < 0.25:
            hostile = (rng.choice(names), rng.choice(HOSTILE_ARGS))
        planned.append(
            Planned(
                kinds[i % len(kinds)],
                rng.choice(bases),
                twist=rng.randrange(10**6),
                hostile=hostile,
            )
        )
    return planned


# -- the fuzz -------------------------------------------------------------------------------


@dataclass
class Tally:
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_kind: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    kinds: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    liveness: int = 0
    allowed_writes: int = 0
    guarded_writes: int = 0


def _fuzz_tool(
    portal: BlockingPortal,
    h: Harness,
    gate: Gate,
    tool: types.Tool,
    mode: Mode,
    tally: Tally,
    seeded: Seeded,
) -> None:
    schema = tool.input_schema
    name = tool.name
    mine: list[str] = []
    if name in CONTROL_TOOLS:
        mine = _seed_controllable_jobs(h, running=4, paused=4)
    valid = SchemaStrategy(schema, sandbox_hints(h)).object(schema)
    junk = st.one_of(
        valid.map(lambda a: Planned("schema", junk=_one_selection(a))),
        valid.flatmap(lambda base: mutate(base, schema)).map(lambda a: Planned("hostile", junk=a)),
    )
    examples = EXAMPLES[mode]
    sweep: list[Planned] = []
    if name in GATE_TOOLS or name in CONTROL_TOOLS:
        if name in GATE_TOOLS:
            bases, kinds = _bases(h, name, seeded), TOKEN_KINDS
        else:
            jobs = [*mine, *sorted(h.sandbox.store.jobs)[:6], "bulkedit_nosuchjob", "bulkemail_0"]
            bases, kinds = [Base({"job_id": j}, ()) for j in jobs], ("job",)
        sweep = _sweep(name, mode, bases, kinds, examples - examples // JUNK_SHARE)
        examples //= JUNK_SHARE
    output = jsonschema.Draft202012Validator(tool.output_schema) if tool.output_schema else None

    async def one_call(args: Any) -> tuple[types.CallToolResult, list[RecordedRequest]]:
        seen = len(h.sandbox.requests)
        try:
            result = await h.call_raw(name, args)
        except MCPError as exc:
            raise AssertionError(f"{name}: protocol error {exc!r} for {args!r}") from exc
        new = h.sandbox.requests[seen:]
        _still_serving(await h.call_raw("search_leads", QUALIFIED))
        tally.liveness += 1
        return result, new

    def call(kind: str, args: Any) -> dict[str, Any] | None:
        result, new = portal.call(one_call, args)
        tally.kinds[kind] += 1
        try:
            outcome = _outcome(name, result)
        except Crash as exc:
            tally.crashes.append(f"{name} {args!r:.300}: {exc}")
            outcome = "crash"
        tally.outcomes[name][outcome] += 1
        if name in GATE_TOOLS:
            tally.by_kind[kind.partition("+")[0]][outcome] += 1
        answered = outcome != "crash" and not result.is_error
        if answered and output is not None:
            output.validate(result.structured_content)
        if outcome == "submitted" and name not in CONTROL_TOOLS:
            sent = (result.structured_content or {})["preview"]["request"]
            assert name == "send_email", (name, args, result.structured_content)
            assert sent.get("status") in NOT_CONFIRMED_EMAIL, (args, sent)
        bad = [r for r in new if r.status == 400]
        assert not bad, f"{name}: Close answered 400 to {[(r.path, r.json) for r in bad]}"
        writes = [r for r in new if is_write(r)]
        tally.guarded_writes += sum(1 for w in writes if guarded_kind(w) is not None)
        for w in writes:
            assert guarded_kind(w) is None, f"{name} sent {w.method} {w.path} {w.json} for {args}"
            assert _allowed_write(w.method, w.path, w.json), (name, w.path, w.json, args)
        tally.allowed_writes += len(writes)
        return result.structured_content if answered else None

    def gate_call(planned: Planned) -> None:
        base = planned.base
        assert base is not None
        if base.key not in gate.seen[name]:  # first use: the plain call shows the preview
            content = call("none", base.args)
            assert content is not None, f"{name}: valid arguments {base.args} failed"
            assert "preview" in content, content
            gate.remember(name, base, content)
        kind, token = gate.token(name, base, planned.kind, planned.twist)
        args = dict(base.args)
        if kind == "swapped_args":
            args = base.swaps[planned.twist % len(base.swaps)](args)
        if kind == "dry_run":
            args["dry_run"] = True
        if token is not None:
            args["confirmation_token"] = token
        if planned.hostile is not None and kind in ALWAYS_INVALID:  # invalid whatever the args
            key, value = planned.hostile
            args[key] = value
            kind += "+hostile_arg"
        content = call(kind, args)
        if content is not None and args == base.args and "preview" in content:
            gate.remember(name, base, content)

    def one(planned: Planned) -> None:
        if planned.base is None:
            call(planned.kind, planned.junk)
        elif name in GATE_TOOLS:
            gate_call(planned)
        else:
            call(planned.kind, planned.base.args)

    for planned in sweep:
        one(planned)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(junk)
    def fuzz(planned: Planned) -> None:
        one(planned)

    fuzz()


def _table(title: str, rows: dict[str, Counter[str]], columns: tuple[str, ...]) -> str:
    short = {"confirmation_required": "confirm_req"}
    head = f"{title:<34}{'calls':>6}" + "".join(f"{short.get(c, c):>13}" for c in columns)
    lines = [head]
    total: Counter[str] = Counter()
    for row, counts in rows.items():
        total.update(counts)
        cells = "".join(f"{counts[c]:>13}" for c in columns)
        lines.append(f"{row:<34}{sum(counts.values()):>6}{cells}")
    cells = "".join(f"{total[c]:>13}" for c in columns)
    lines.append(f"{'all':<34}{sum(total.values()):>6}{cells}")
    return "\n".join(lines)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_every_tool_survives_schema_and_hostile_arguments(mode: Mode) -> None:
    tally = Tally()
    with portal_harness(mode=mode, confirm=CONFIRM_ALL, n_leads=120, toolsets="all") as (
        portal,
        h,
    ):
        _seed_jobs(h)
        seeded = Seeded(
            revertable=portal.call(_seed_revertable_edits, h),
            cancellable=portal.call(_seed_cancellable_emails, h),
        )
        h.clear()
        gate = Gate(h)
        tools = portal.call(h.client.list_tools).tools
        names = {t.name for t in tools}
        assert names >= {*GATE_TOOLS, *CONTROL_TOOLS, "search_leads"}, names
        for tool in tools:
            _fuzz_tool(portal, h, gate, tool, mode, tally, seeded)
    per_tool = _table(f"fuzz[{mode}] tool", tally.outcomes, OUTCOMES)
    per_kind = _table(
        f"fuzz[{mode}] token ({len(GATE_TOOLS)} gated tools)", tally.by_kind, OUTCOMES[:-3]
    )
    print(f"\n{per_tool}\n{per_kind}")
    total: Counter[str] = sum(tally.outcomes.values(), Counter())
    calls = sum(total.values())
    junk = tally.kinds["schema"] + tally.kinds["hostile"]

    # Counted, then asserted: no crash, no guarded write, every write tool at its gate often.
    assert total["crash"] == len(tally.crashes) == 0, "\n".join(tally.crashes[:5])
    assert tally.guarded_writes == 0
    reached = {
        tool: sum(tally.outcomes[tool][o] for o in AT_GATE)
        + (tally.outcomes[tool]["submitted"] if tool in CONTROL_TOOLS else 0)
        for tool in (*GATE_TOOLS, *CONTROL_TOOLS)
    }
    short = {tool: n for tool, n in reached.items() if n < GATE_FLOOR[mode]}
    assert short == {}, f"write tools below {GATE_FLOOR[mode]} calls at the gate: {short}"
    # Every kind of hostile token reached the gate, and none got through it.
    thin = {
        kind: sum(tally.by_kind[kind][o] for o in AT_GATE) for kind in set(TOKEN_KINDS) | {"random"}
    }
    assert {k: n for k, n in thin.items() if n < KIND_FLOOR[mode]} == {}, thin
    # (Junk arguments, "schema" and "hostile", may form a valid draft, which needs no token by
    # design: `call` checks every submission is an unconfirmed email status.)
    tokens = set(TOKEN_KINDS) | {"random"}
    assert {
        k: c["submitted"] for k, c in tally.by_kind.items() if c["submitted"] and k in tokens
    } == {}

    gated = sum(sum(tally.outcomes[t][o] for o in AT_GATE) for t in GATE_TOOLS)
    record(f"fuzz[{mode}] per tool", "\n" + per_tool)
    record(f"fuzz[{mode}] per token", "\n" + per_kind)
    record(
        f"fuzz[{mode}]",
        f"{calls} fuzzed calls over {len(tally.outcomes)} tools ({calls - junk} with valid "
        f"arguments: hostile tokens for the {len(GATE_TOOLS)} confirmable tools, real job ids "
        f"for pause and resume; {tally.kinds['schema']} from the schema, "
        f"{tally.kinds['hostile']} hostile); {gated} reached the confirmation gate of the "
        f"{len(GATE_TOOLS)} confirmable tools; every write tool "
        f"at its gate at least {GATE_FLOOR[mode]} times (fewest: {min(reached.values())}); "
        f"{total['submitted']} submitted (drafts, logged emails, pause/resume), "
        f"{total['error']} tool errors, {total['crash']} crashes; {tally.liveness} liveness "
        f"searches; {tally.guarded_writes} unconfirmed guarded writes",
    )
