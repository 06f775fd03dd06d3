"""The one path every write takes: preview, confirmation, recount, send once, audit.

A write tool only builds a `WriteRequest` (the exact path and body it would POST, how many
leads it touches, a sample). Everything that makes writes safe lives here, once:

- `dry_run` returns the preview and sends nothing.
- An action that needs confirmation (by policy, or because it selects every lead) answers
  `confirmation_required` with a token bound to the tool, the exact body and the count.
- The confirmed call rebuilds the request from its arguments and recounts; the token must
  fit both, must not be expired or spent, and a person asked through elicitation must agree
  (for a delete: type the number of leads). Anything else is `refused` with a fresh preview.
- A `Safeguard` (the snapshot before an edit, the backup before a delete) runs once the
  token and the person's answer are checked, before the token is spent and the request
  leaves; if it fails, nothing is sent. Its pages are also what the binding (the leads the
  token was bound to) is checked against: one read of the leads (`_read_once`).
- The request leaves through `Sender`, once. After an ambiguous failure the recent jobs (or
  emails) are searched for it before anything is reported; it is never resent.

The pipeline sees only a `WriteContext` (policy, tokens, audit, clock), never the server.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import anyio
from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
)
from mcp.types import ClientCapabilities
from pydantic import BaseModel, ConfigDict, Field

from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import (
    CrmResult,
    JobKind,
    JobSummary,
    job_echo,
    job_path,
    summarize_job,
    untold,
)
from close_mcp.close.times import close_time
from close_mcp.config import DEFAULT_SNAPSHOT_LIMIT
from close_mcp.errors import CloseError, SafetyNetError, TokenRejected, UnknownJobId
from close_mcp.writes.background import (
    STOPPED,
    ServerJobs,
    decide,
    new_id,
    read_seconds,
    runs_as_job,
    summary,
)
from close_mcp.writes.binding import Binding, LeadSet, read_binding
from close_mcp.writes.progress import Progress
from close_mcp.writes.sender import Method, Reconcile, Sender, WriteContext
from close_mcp.writes.tokens import TOKEN_TTL_S

log = logging.getLogger(__name__)

# After an ambiguous failure, only an object created after the request left counts as its
# own (less this much for clocks that disagree); an id already attributed never does.
RECONCILE_SKEW_S = 2.0
ATTRIBUTED_TTL_S = 24 * 3600.0
# Close documents no order for its job and email-activity lists, so a lookup reads the whole
# list (each item's `date_created` decides), up to this many pages of Close's default size.
LOOKUP_PAGE = 100
LOOKUP_MAX_PAGES = 10

# accepted: confirmed, and carried out as a server job (`close_mcp.writes.background`).
Status = Literal["preview", "confirmation_required", "submitted", "refused", "accepted"]


class LeadSample(BaseModel):
    id: str
    display_name: str | None = None
    status_label: str | None = None


class Preview(BaseModel):
    """What would be sent, and what it would touch."""

    path: str = Field(description="The Close API path the request goes to.")
    request: dict[str, Any] = Field(
        description="The exact JSON body that would be sent; its s_query (with results_limit "
        "and sort) is the resolved selection, shown here only."
    )
    matched: int = Field(description="How many leads (or emails) the action would touch.")
    sample: list[LeadSample] = Field(default_factory=list)
    rendering: dict[str, Any] | None = Field(
        default=None,
        description="The email as Close renders it for the first lead and contact it reaches.",
    )
    notes: list[str] = Field(default_factory=list)


class WriteResult(CrmResult):
    model_config = ConfigDict(extra="forbid")

    status: Status
    tool: str
    message: str = Field(description="What happened and what to do next.")
    preview: Preview
    confirmation_token: str | None = Field(
        default=None, description="Pass back unchanged, with the same arguments, to confirm."
    )
    expires_at: str | None = None
    reason: str | None = Field(default=None, description="Why the call was refused.")
    job: JobSummary | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="What Close answered (for writes that are not jobs)."
    )
    snapshot: str | None = Field(default=None, description="File with the values before.")

    def holds_crm_text(self) -> bool:
        """Lead names, an email's rendering, Close's answer, or a job's typed fields."""
        shown = self.preview.sample or self.preview.rendering or self.result
        return bool(shown) or (self.job is not None and self.job.quotes_crm_text)


@dataclass(frozen=True)
class RecentLookup:
    """Where to look for a write whose outcome is unknown, and what must match."""

    path: str
    params: dict[str, Any]
    keys: tuple[str, ...]  # body keys compared with the found object
    where: str  # for messages: "the recent bulk delete jobs"
    # Values the found object must show that the body does not hold as is: what a job echoes
    # of its request (`job_echo`), under Close's names and in Close's forms.
    echo: dict[str, Any] = field(default_factory=dict)
    # Statuses the object may have moved on to since (an outbox email becomes sent).
    later_status: dict[str, frozenset[str]] = field(default_factory=dict)
    # Keys that, left out of the body, must be empty on the object too: a job with a
    # `results_limit` acted on fewer leads than a request without one.
    absent_alike: tuple[str, ...] = ()
    # A list filter Close documents for "created on or after" (`date_created__gte` on
    # /activity/email/): sent with the look-up's start, so the list holds only the new.
    since_param: str | None = None
    # Why the object cannot be told apart from another write's (what it shows leaves out
    # part of the request); then reconciliation never claims one. Empty: it can.
    untold: str = ""

    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:
        if "status" in body and item.get("status") not in {
            body["status"],
            *self.later_status.get(body["status"], ()),
        }:
            return False
        if any(item.get(key) not in (None, [], {}) for key in self.absent_alike if key not in body):
            return False
        if any(item.get(key) != value for key, value in self.echo.items()):
            return False
        return all(item.get(key) == body[key] for key in self.keys if key in body)


@dataclass(frozen=True)
class PlanAnswer:
    """What a write of several requests (a revert plan) answers once all of them went: the
    jobs it started, in order (the first becomes the result's `job`), `result` (bounded: the
    first few of each list, with counts), `sent` ("41 bulk edit jobs and 2 lead updates")
    and `follow` (how to follow the jobs) for the message."""

    jobs: list[JobSummary]
    result: dict[str, Any]
    sent: str
    follow: str = ""


class Safeguard(Protocol):
    """What is saved before a write Close cannot undo (safety/ implements it).

    `take` runs once the token is checked, right before it is spent and the request sent, and
    returns the file it wrote
    (None: nothing to save, and no lead was read), reporting its pages to `progress` and
    handing each page to `observe` as it arrives (the binding check folds the same pages:
    one read of the leads); `discard` removes what `take` wrote when the check then refuses;
    `attach` names that file after the job Close created."""

    what: str  # "snapshot" or "backup", for messages

    async def take(
        self,
        request: WriteRequest,
        progress: Progress | None = None,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str | None: ...

    async def discard(self, saved: str) -> None: ...

    async def attach(self, saved: str, job_id: str) -> str: ...


@dataclass
class WriteRequest:
    """A write fully worked out, before any decision to send it."""

    tool: str
    action: str  # the CLOSE_MCP_CONFIRM name: edit, email, sequences, send, delete
    path: str
    body: dict[str, Any]
    matched: int
    summary: str  # one line for a person: "Delete 42 leads"
    job_kind: JobKind | None = None
    # What the job will show of this request (`job_echo`), for finding it again after an
    # ambiguous failure; None: the body's fields the kind echoes.
    echo: dict[str, Any] | None = None
    # Why a write that touches nothing is refused (None: it is not; one email touches one).
    when_empty: str | None = "the selection matches no leads"
    recent: RecentLookup | None = None  # defaults to the recent jobs of job_kind
    selects_everything: bool = False
    s_query: dict[str, Any] | None = None
    results_limit: int | None = None
    sort: list[dict[str, Any]] | None = None
    sample: list[LeadSample] = field(default_factory=list)
    rendering: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    always_confirm: bool = False  # e.g. no snapshot possible: confirmed whatever the policy
    safeguard: Safeguard | None = None
    # A write that is several requests (a revert plan) sends each through the `Sender`;
    # `body` describes all of them, so the token binds the whole plan; each request is a
    # step of the call's progress.
    send: Callable[[Sender, Progress | None], Awaitable[PlanAnswer]] | None = None
    # Where the call's long steps report; set when preparing the request already reported
    # some (a revert reads its snapshot back), so the values keep growing.
    progress: Progress | None = None
    # PUT changes an object that exists (resuming a job): nothing is created, so nothing is
    # looked for after an ambiguous failure and the object is not attributed to this write.
    method: Method = "POST"
    # The change already holds (an email that is already a draft): the call is answered
    # `refused` with this reason, whatever the token, and nothing is asked or sent, so an
    # idempotent tool's repeat is an answer, not an error.
    already: str | None = None
    # What a person typing the count confirms (action `delete`): "deleted", or "restored".
    counted: str = "deleted"

    def preview(self) -> Preview:
        return Preview(
            path="/" + self.path,
            request=self.body,
            matched=self.matched,
            sample=self.sample,
            rendering=self.rendering,
            notes=self.notes,
        )

    def sent(self) -> Preview:
        """What a submitted result shows: the request and its count, not the preview again
        (the sample and the rendering were shown before the person agreed)."""
        return Preview(
            path="/" + self.path, request=self.body, matched=self.matched, notes=self.notes
        )


# The answers are taken as the client sent them (`Any`, with the schema the client sees) and
# checked strictly by `human_refusal`: "17", 17.0 or True is not the number 17, and "yes",
# "on" or 1 is not an approval. A lenient model would have coerced them. An answer without
# the field validates too (as None, which is neither; the schema still requires it), so a
# malformed answer is a refusal the pipeline audits, not an error raised before the tool runs.
class TypedCount(BaseModel):
    model_config = ConfigDict(json_schema_extra={"required": ["count"]})

    count: Any = Field(
        default=None,
        description="Type the number of leads that will be deleted.",
        json_schema_extra={"type": "integer"},
    )


class TypedRestoreCount(TypedCount):
    count: Any = Field(
        default=None,
        description="Type the number of leads that will be restored.",
        json_schema_extra={"type": "integer"},
    )


class Approval(BaseModel):
    model_config = ConfigDict(json_schema_extra={"required": ["approve"]})

    approve: Any = Field(
        default=None, description="Run this action now?", json_schema_extra={"type": "boolean"}
    )


NOT_ASKED = "not asked"
CANNOT_ASK = "cannot ask"  # the client declared no elicitation
REQUIRE_HUMAN_REFUSAL = (
    "CLOSE_MCP_REQUIRE_HUMAN is set and this client cannot ask its user "
    "(no elicitation support), so confirmed actions are refused"
)
# A token that already did its write: a fresh one would only invite the same call again.
USED_TOKEN = "the confirmation token was already used"  # noqa: S105 (a message)


def cannot_ask(answer: ElicitationResult[Any] | None) -> bool:
    return answer is None or (isinstance(answer, AcceptedElicitation) and answer.data == CANNOT_ASK)


# CRM text quoted in a question to the person is clipped to this many characters.
QUOTE_CLIP = 40
# A quoted value as `repr` writes it.
_LITERAL = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"(?:[^"\\\n]|\\.)*"')


def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:
    return (
        request.always_confirm
        or request.selects_everything
        or context.settings.needs_confirmation(request.action)
    )


async def check_token(
    context: WriteContext, request: WriteRequest, token: str | None, *, caller: str
) -> str | None:
    """Why the token does not fit this request by this caller, or None when it does
    (nothing is spent)."""
    if token is None:
        return None
    try:
        await context.tokens.check(
            token, request.tool, request.path, request.body, request.matched, caller=caller
        )
    except TokenRejected as exc:
        return str(exc)
    return None


async def question(
    ctx: Context,
    context: WriteContext,
    request: WriteRequest,
    dry_run: bool,
    token: str | None,
    *,
    caller: str,
) -> Elicit[TypedCount] | Elicit[TypedRestoreCount] | Elicit[Approval] | str:
    """The question for the person; NOT_ASKED when there is nothing to ask, CANNOT_ASK when
    there would be and the client cannot ask its user (known before any token is handed out)."""
    if dry_run or request.already or not needs_confirmation(context, request):
        return NOT_ASKED
    if not can_ask(ctx.client_capabilities):
        return CANNOT_ASK
    if token is None or await check_token(context, request, token, caller=caller) is not None:
        return NOT_ASKED
    what = _what_it_touches(request)
    summary = _clip_quoted(request.summary)
    if request.action == "delete" and request.counted != "deleted":
        return Elicit(
            f"{summary}{what}. To confirm, type the number of leads that will be "
            f"{request.counted} ({request.matched}).",
            TypedRestoreCount,
        )
    if request.action == "delete":
        return Elicit(
            f"{summary}{what}. This cannot be undone in Close. To confirm, type the "
            f"number of leads that will be deleted ({request.matched}).",
            TypedCount,
        )
    return Elicit(f"{summary}{what}. Run it now?", Approval)


def can_ask(caps: ClientCapabilities | None) -> bool:
    """Whether the client can be asked a form question: it declared elicitation, as
    `{"form": {}}` or, as clients of 2025-06-18 and before do (there were no modes yet), as a
    bare `{}`. A client that declared only `url` mode cannot answer a form."""
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def quoted(text: str, limit: int = QUOTE_CLIP) -> str:
    """CRM text inside a sentence the server speaks to the person: clipped to `limit`
    characters and quoted as a literal (line breaks and control characters escaped), so a
    lead named like an instruction reads as a short value, never as the server's words."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _clip_quoted(sentence: str) -> str:
    """`sentence` with every quoted value in it (the summaries quote CRM text with `!r`)
    clipped as `quoted` clips it."""

    def clip(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        if isinstance(value, str) and len(value) > QUOTE_CLIP:
            return quoted(value)
        return match.group(0)

    return _LITERAL.sub(clip, sentence)


def _what_it_touches(request: WriteRequest) -> str:
    """For the person's question: up to three sample leads, and an email's subject and sender,
    each clipped and quoted."""
    parts: list[str] = []
    names = [quoted(s.display_name or s.id) for s in request.sample[:3]]
    if names:
        more = request.matched - len(names)
        parts.append(", ".join(names) + (f" and {more} more" if more > 0 else ""))
    rendering = request.rendering or {}
    subject = request.body.get("subject") or rendering.get("subject")
    if subject:
        parts.append(f"subject {quoted(str(subject), QUOTE_CLIP * 2)}")
    sender = request.body.get("sender") or request.body.get("sender_email")
    if sender:
        parts.append(f"from {quoted(str(sender), QUOTE_CLIP * 2)}")
    return f" ({'; '.join(parts)})" if parts else ""


def human_refusal(
    request: WriteRequest, answer: ElicitationResult[Any] | None, *, require_human: bool
) -> str | None:
    """Why the person's answer (or its absence) stops this write, or None to go ahead."""
    if answer is None or (
        isinstance(answer, AcceptedElicitation) and answer.data in (NOT_ASKED, CANNOT_ASK)
    ):
        return REQUIRE_HUMAN_REFUSAL if require_human else None
    if isinstance(answer, DeclinedElicitation):
        return "the person declined the action"
    if isinstance(answer, CancelledElicitation):
        return "the person cancelled the confirmation"
    data = answer.data
    if isinstance(data, TypedCount):
        if type(data.count) is not int:
            return f"the person's answer {data.count!r} is not a whole number of leads"
        if data.count != request.matched:
            return (
                f"the person typed {data.count}, but the action would "
                f"{request.counted.removesuffix('d')} {request.matched}"
            )
        return None
    if isinstance(data, Approval) and type(data.approve) is not bool:
        return f"the person's answer {data.approve!r} is not a yes or no"
    if isinstance(data, Approval) and data.approve:
        return None
    return "the person did not approve the action"


class Pipeline:
    """Runs a prepared `WriteRequest` to its outcome."""

    def __init__(
        self,
        context: WriteContext,
        client: CloseClient,
        progress: Progress | None = None,
        jobs: ServerJobs | None = None,
    ) -> None:
        self.context = context
        self.client = client
        self.progress = progress  # the long steps of a confirmed call report here
        self.jobs = jobs  # where a confirmed write too long to read in one call runs

    async def run(
        self,
        request: WriteRequest,
        *,
        dry_run: bool,
        token: str | None,
        answer: ElicitationResult[Any] | None,
    ) -> WriteResult:
        sender = Sender(self.context.audit, self.client, request.tool)
        if request.already is not None:
            if not dry_run:
                self._refused(sender, request, request.already)
            message = f"Refused: {request.already}. Nothing was sent."
            return self._result(request, "refused", message, reason=request.already)
        long = self._runs_as_job(request)
        if long:
            request.notes.append(
                f"Reading the {request.matched} leads before sending takes about "
                f"{read_seconds(request.matched):.0f} s at Close's 20 requests a second, longer "
                "than many clients wait for one call: once confirmed it runs as a job, to "
                "follow with wait_for_bulk_job."
            )
        if dry_run:
            return self._result(request, "preview", self._preview_message(request))
        confirm = needs_confirmation(self.context, request)
        # A bad token is the first thing to report: "already used" says more than "no leads".
        caller = self.client.caller
        token_problem = (
            await check_token(self.context, request, token, caller=caller) if confirm else None
        )
        if request.matched == 0 and request.when_empty is not None:
            # Nothing to confirm, so no token: one "to delete 0 leads" only invites a call.
            reason = request.when_empty
            if token_problem is not None and token_problem.startswith(USED_TOKEN):
                reason = f"{token_problem}, and {reason}"
            self._refused(sender, request, reason)
            return self._result(
                request,
                "refused",
                f"Nothing to do: {reason}. Nothing was sent and no token is given.",
                reason=reason,
            )
        if confirm:
            if self.context.settings.require_human and cannot_ask(answer):
                # Said before any token is handed out: no token could ever be confirmed here.
                reason = REQUIRE_HUMAN_REFUSAL
                self._refused(sender, request, reason)
                return self._result(
                    request,
                    "refused",
                    f"Refused: {reason}. Nothing was sent and no token is given: use a client "
                    "that can ask its user, or ask the server's operator.",
                    reason=reason,
                )
            if token is None:
                return await self._confirmation_required(request, None)
            problem = token_problem or human_refusal(
                request, answer, require_human=self.context.settings.require_human
            )
            if problem is None:
                problem = await self._replayed(request, token)
            if problem is None:
                problem = self._unrecorded()
            if problem is None and long:  # read in the background, once the token is spent
                return await self._start_job(sender, request, token)
            saved: str | None = None
            current: Binding | None = None
            if problem is None:
                saved, drifted = await self._read_once(sender, request, token)
                if drifted is not None:
                    problem, current = drifted
            if problem is None:
                try:
                    await self.context.tokens.spend(token)
                except TokenRejected as exc:
                    problem = str(exc)
                    await self._discard(request, saved)
            if problem is not None:
                self._refused(sender, request, problem)
                if problem.startswith(USED_TOKEN):
                    return self._result(
                        request,
                        "refused",
                        f"Refused: {problem}. Nothing was sent now, and no new token is "
                        "given: to do it again, ask the user first, then call without "
                        "confirmation_token for a new preview.",
                        reason=problem,
                    )
                return await self._confirmation_required(request, problem, current)
        elif (unrecorded := self._unrecorded()) is not None:
            self._refused(sender, request, unrecorded)
            return self._result(
                request, "refused", f"Refused: {unrecorded}. Nothing was sent.", reason=unrecorded
            )
        else:
            saved, _ = await self._read_once(sender, request, None)
        result = await self._send(sender, request, saved, owner=_owner(token))
        if confirm:  # its preview came with the token: the answer does not repeat it
            result.preview = request.sent()
        return result

    def _unrecorded(self) -> str | None:
        """Why the write could not be audited (the log cannot be written), or None."""
        problem = self.context.audit.unwritable()
        if problem is None:
            return None
        return (
            f"{problem}, and no write is sent unless it is recorded; fix it (or set "
            "CLOSE_MCP_AUDIT_LOG) and confirm again"
        )

    async def _discard(self, request: WriteRequest, saved: str | None) -> None:
        """Remove a snapshot or backup taken for a write that is then refused."""
        if saved is not None and request.safeguard is not None:
            await request.safeguard.discard(saved)

    def _runs_as_job(self, request: WriteRequest) -> bool:
        """A bulk action whose reading alone outlasts a client's patience (and a server that
        can carry it out)."""
        return (
            self.jobs is not None
            and request.job_kind is not None
            and request.method == "POST"  # a new job: not a resume, not a revert plan
            and request.send is None
            and request.s_query is not None
            and runs_as_job(request.matched)
        )

    async def _start_job(self, sender: Sender, request: WriteRequest, token: str) -> WriteResult:
        """Spend the token, answer `accepted` now and carry the confirmed write out in the
        background: the same read, check and send as a call would, reported to the job's
        state (a refusal then is the job's end: the token is spent, a fresh preview needed)."""
        assert self.jobs is not None
        assert request.job_kind is not None
        try:
            await self.context.tokens.spend(token)
        except TokenRejected as exc:
            self._refused(sender, request, str(exc))
            return await self._confirmation_required(request, str(exc))
        jobs = self.jobs
        job_id = new_id(request.job_kind)

        async def sink(value: float, total: float | None, message: str) -> None:
            await jobs.record(job_id, "reading", read=value, total=total, message=message)

        pipeline = Pipeline(self.context, self.client, Progress(sink, self.context.clock))

        async def work() -> None:
            try:
                saved, drifted = await pipeline._read_once(sender, request, token)
            except Exception as exc:
                await jobs.record(job_id, "failed", reason=str(exc))
                return
            if drifted is not None:
                problem = drifted[0]
                pipeline._refused(sender, request, problem)
                reason = f"Refused: {problem}. Nothing was sent; call again for a fresh preview."
                await jobs.record(job_id, "refused", reason=reason)
                return
            if await decide(self.context.store, job_id, "send") != "send":
                await pipeline._discard(request, saved)
                pipeline._refused(sender, request, STOPPED)
                await jobs.record(job_id, "refused", reason=STOPPED)
                return
            await jobs.record(job_id, "sending")
            with anyio.CancelScope(shield=True):  # a request that left is seen through
                try:
                    result = await pipeline._send(sender, request, saved, owner=_owner(token))
                except Exception as exc:
                    await jobs.record(job_id, "failed", reason=str(exc))
                    return
                sent = result.job.id if result.job is not None else None
                await jobs.record(job_id, "sent", job_id=sent, snapshot=result.snapshot)

        await jobs.start(job_id, work)
        saved = f"its {request.safeguard.what} is whole and " if request.safeguard else ""
        return self._result(
            request,
            "accepted",
            f"Accepted: {request.summary}. Reading the {request.matched} leads takes about "
            f"{read_seconds(request.matched):.0f} s, so it runs as job {job_id}: nothing is "
            f"sent to Close before {saved}the leads are found to be the ones confirmed. "
            "Follow it with wait_for_bulk_job; once sent, it follows Close's job.",
            job=summary(job_id, {"state": "reading"}),
        )

    async def _read_once(
        self, sender: Sender, request: WriteRequest, token: str | None
    ) -> tuple[str | None, tuple[str, Binding] | None]:
        """The snapshot or backup, and whether what the token was bound to still holds,
        from one read of the leads: the safeguard's pages are folded into the lead set as
        they arrive (when it saves nothing, the ids alone are read). The digests are
        compared once the last page is in; a difference discards what was written and
        answers why, with the binding read now (for the fresh token)."""
        binding = token is not None and self._binds(request)
        leads = self._lead_set(request) if binding else None
        observe = leads.add_page if leads is not None else None
        saved = await self._safeguard(sender, request, observe)
        if token is None or not binding:
            return saved, None
        nonce, expected = self.context.tokens.bound(token)
        current = await self._binding(request, leads, walk=saved is None)
        if expected is not None and current.digest() == expected:
            return saved, None
        await self._discard(request, saved)
        stored = await self.context.store.get(f"binding:{nonce}")
        before = Binding.from_json(stored) if stored is not None else None
        problem = f"what the preview showed has changed: {current.changes_since(before)}"
        return None, (problem, current)

    async def _safeguard(
        self,
        sender: Sender,
        request: WriteRequest,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str | None:
        """Save what the write will overwrite; if that fails, nothing is sent."""
        if request.safeguard is None:
            return None
        what = request.safeguard.what
        try:
            return await request.safeguard.take(request, self.progress, observe)
        except Exception as exc:
            self._refused(
                sender, request, f"the {what} before sending failed ({exc}); nothing was sent"
            )
            raise SafetyNetError(
                f"Could not save the {what} before sending, so nothing was sent: {exc} "
                "Call again for a fresh confirmation."
            ) from exc

    async def _send(
        self, sender: Sender, request: WriteRequest, saved: str | None, *, owner: str
    ) -> WriteResult:
        if request.send is not None:
            return await self._send_plan(sender, request, request.send, saved)
        answer = await sender.send(
            request.method,
            request.path,
            request.body,
            matched=request.matched,
            snapshot=saved,
            reconcile=self._reconcile(request),
        )
        # Close accepted the write: from here on nothing may turn it into an error (a retry
        # would send it twice). The saved file is named after the job (guarded: the audit
        # line names it), then the audit line and the `submitted` result are made; the
        # bookkeeping after them that fails is logged and said in the result, never raised.
        job = _job_or_none(answer) if request.job_kind else None
        answer_id = answer.get("id") if isinstance(answer, dict) else None
        owned = job.id if job else str(answer_id or "") or None
        what = f"job {job.id}" if job else str(answer_id or "the request")
        if saved is not None and job is not None and request.safeguard is not None:
            try:  # named by the job it belongs to (attach keeps `saved` when it cannot)
                saved = await request.safeguard.attach(saved, job.id)
            except Exception as exc:
                log.error("%s: could not name the %s after %s: %s", request.tool,
                          request.safeguard.what, what, exc)  # fmt: skip
        follow = " Follow it with wait_for_bulk_job." if job else ""
        result = _submitted(
            sender,
            request,
            saved,
            job_id=owned,
            what=what,
            follow=follow,
            job=job,
            result=None if job else _compact(answer),
        )
        if request.method == "POST":
            try:
                await self._attribute(owned, owner)
            except Exception as exc:
                log.error("%s: %s was submitted, but recording it in the state store failed: %s",
                          request.tool, what, exc)  # fmt: skip
                made = "The job was made" if job else "It was made"
                result.message += (
                    f" {made}, but recording it in the state store failed ({exc}): another "
                    "confirmation of this same request may not see it as used; check "
                    f"{'list_bulk_jobs' if job else 'list_emails'} before confirming it again."
                )
        return result

    async def _send_plan(
        self,
        sender: Sender,
        request: WriteRequest,
        plan: Callable[[Sender, Progress | None], Awaitable[PlanAnswer]],
        saved: str | None,
    ) -> WriteResult:
        """A plan's requests are each audited as they go; then the plan once, with no job id
        of its own (its jobs are the plan's requests' own)."""
        answer: PlanAnswer = await sender.guard(
            lambda: plan(sender, self.progress), request.path, request.body, matched=request.matched
        )
        return _submitted(
            sender,
            request,
            saved,
            job_id=None,
            what=answer.sent,
            follow=answer.follow,
            job=answer.jobs[0] if answer.jobs else None,
            result=answer.result,
        )

    def _reconcile(self, request: WriteRequest) -> Reconcile:
        """After an ambiguous failure: the object this write made, if Close shows one."""
        started = self.context.clock.time()

        async def reconcile() -> tuple[dict[str, Any] | None, str]:
            lookup = _recent_lookup(request)
            if lookup is None:
                return None, ""
            if lookup.untold:
                # What Close shows of the object cannot tell this write from another one:
                # claiming a look-alike would report someone else's job as this one.
                return None, (
                    f" {lookup.untold}, so a job among {lookup.where} cannot be told apart "
                    "from another's; look there before trying again."
                )
            try:
                found, complete = await self._find_recent(
                    request, since=started - RECONCILE_SKEW_S, owner=None
                )
            except Exception as failed:
                # Never let the lookup's own error ("try again shortly"), nor the store's,
                # stand in for this.
                reason = failed.message if isinstance(failed, CloseError) else str(failed)
                return None, (
                    f" Looking among {lookup.where} failed too ({reason}): it could "
                    "not be checked; look there before trying again."
                )
            looked = f" Nothing matching was found among {lookup.where}"
            if not complete:
                looked += f" (only the first {LOOKUP_PAGE * LOOKUP_MAX_PAGES} Close listed)"
            return found, looked + "; look there before trying again."

        return reconcile

    async def _replayed(self, request: WriteRequest, token: str) -> str | None:
        """A job with this exact request made since the token was minted means it was used."""
        minted_at = self.context.tokens.minted_at(token)
        if minted_at is None:
            return None
        found, _complete = await self._find_recent(request, since=minted_at, owner=_owner(token))
        if found is not None:
            return f"{USED_TOKEN} ({found.get('id')})"
        return None

    async def _find_recent(
        self, request: WriteRequest, *, since: float, owner: str | None
    ) -> tuple[dict[str, Any] | None, bool]:
        """The object this exact write created since `since`, if Close has one, and whether
        the whole list was read.

        Close documents no order for these lists, so every page is read (up to
        LOOKUP_MAX_PAGES) and each item's `date_created` decides, never its position. An
        object the store attributes to another write is passed over: only one attributed to
        `owner` (this token), or to no write the store knows, counts."""
        lookup = _recent_lookup(request)
        if lookup is None:
            return None, True
        for page in range(LOOKUP_MAX_PAGES):
            params = {**lookup.params, "_skip": page * LOOKUP_PAGE, "_limit": LOOKUP_PAGE}
            if lookup.since_param is not None:
                params[lookup.since_param] = datetime.fromtimestamp(
                    since - LOOKUP_SLACK_S, tz=UTC
                ).isoformat()
            recent = await self.client.get(lookup.path, params)
            items = recent.get("data", []) if isinstance(recent, dict) else []
            for item in items:
                if not _created_after(item, since) or not lookup.matches(item, request.body):
                    continue
                attributed = await self._attributed(item.get("id"))
                if attributed is not None and attributed != owner:
                    continue
                return dict(item), True
            if not items or not (isinstance(recent, dict) and recent.get("has_more")):
                return None, True
        return None, False

    async def _attributed(self, object_id: Any) -> str | None:
        """Which write made this object (its owner mark), if the store knows."""
        return await self.context.store.get(f"attributed:{object_id}")

    async def _attribute(self, object_id: str | None, owner: str) -> None:
        """Remember which write made this object, so no other write claims it."""
        if object_id:
            await self.context.store.put(f"attributed:{object_id}", owner, ttl_s=ATTRIBUTED_TTL_S)

    def _refused(self, sender: Sender, request: WriteRequest, reason: str) -> None:
        sender.record(
            "refused",
            path="/" + request.path,
            body=request.body,
            matched=request.matched,
            reason=reason,
        )

    def _binds(self, request: WriteRequest) -> bool:
        """The request reaches leads or content its body does not hold."""
        return request.s_query is not None or _names_content(request.body)

    def _lead_set(self, request: WriteRequest) -> LeadSet | None:
        """Every lead is bound whatever CLOSE_MCP_SNAPSHOT says (it limits what is stored:
        the ids kept to name what changed), and with snapshots off too."""
        if request.s_query is None:
            return None
        keep = self.context.settings.snapshot_limit or DEFAULT_SNAPSHOT_LIMIT
        return LeadSet(self.context.tokens.lead_key(), keep)

    async def _binding(
        self, request: WriteRequest, leads: LeadSet | None, *, walk: bool = True
    ) -> Binding:
        """What this request touches and sends beyond its body, read from Close now (the
        leads from `leads` as a walk already fed it, unless `walk`)."""
        return await read_binding(
            self.client,
            s_query=request.s_query,
            results_limit=request.results_limit,
            sort=request.sort,
            matched=request.matched,
            body=request.body,
            leads=leads,
            walk=walk,
            progress=self.progress,
        )

    async def _confirmation_required(
        self, request: WriteRequest, problem: str | None, binding: Binding | None = None
    ) -> WriteResult:
        if binding is None and self._binds(request):
            binding = await self._binding(request, self._lead_set(request))
        encoded = await binding.encode() if binding is not None else None
        minted = self.context.tokens.mint(
            request.tool,
            request.path,
            request.body,
            request.matched,
            caller=self.client.caller,
            bound=binding.digest() if binding is not None else None,
        )
        if encoded is not None:
            await self.context.store.put(f"binding:{minted.nonce}", encoded, ttl_s=TOKEN_TTL_S)
        ask = (
            f"{request.summary}. Show this preview to the user; if they agree, call "
            f"{request.tool} again with the same arguments and confirmation_token."
        )
        if problem is None:
            return self._result(
                request,
                "confirmation_required",
                ask,
                confirmation_token=minted.token,
                expires_at=minted.expires_at,
            )
        return self._result(
            request,
            "refused",
            f"Refused: {problem}. Nothing was sent. A fresh preview is included. {ask}",
            confirmation_token=minted.token,
            expires_at=minted.expires_at,
            reason=problem,
        )

    def _preview_message(self, request: WriteRequest) -> str:
        if needs_confirmation(self.context, request):
            return (
                f"Preview only, nothing was sent: {request.summary}. Call again without "
                "dry_run to get a confirmation token."
            )
        return f"Preview only, nothing was sent: {request.summary}."

    def _result(
        self, request: WriteRequest, status: Status, message: str, **extra: Any
    ) -> WriteResult:
        return WriteResult(
            status=status, tool=request.tool, message=message, preview=request.preview(), **extra
        )


def _created_after(job: dict[str, Any], since: float) -> bool:
    created = close_time(job.get("date_created"))
    return created is not None and created.timestamp() >= since - 1.0


# How far before the look-up's start the list filter reaches: clocks of this machine and
# Close's may differ a little; `_created_after` then decides to the second.
LOOKUP_SLACK_S = 60.0


def _names_content(body: dict[str, Any]) -> bool:
    """The body points at content Close keeps elsewhere (a template, a sequence)."""
    return isinstance(body.get("template_id"), str) or isinstance(body.get("sequence_id"), str)


def _owner(token: str | None) -> str:
    """The mark a write leaves on what it made: its token's digest (a write that needs no
    token, a draft email say, is no one's in particular)."""
    if token is None:
        return "unconfirmed"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def _submitted(
    sender: Sender,
    request: WriteRequest,
    saved: str | None,
    *,
    job_id: str | None,
    what: str,
    follow: str,
    job: JobSummary | None,
    result: dict[str, Any] | None,
) -> WriteResult:
    """Audit a write Close accepted, and say so: `what` it made, and how to `follow` it."""
    sender.record(
        "submitted",
        path="/" + request.path,
        body=request.body,
        matched=request.matched,
        job_id=job_id,
        snapshot=saved,
    )
    return WriteResult(
        status="submitted",
        tool=request.tool,
        message=f"Submitted: {request.summary} ({what}).{follow}",
        preview=request.preview(),
        job=job,
        result=result,
        snapshot=saved,
    )


def _job_or_none(answer: Any) -> JobSummary | None:
    """The job Close created; None when its answer is not a job we recognise.

    The write has happened by then: an odd answer must not turn a submission into an error.
    """
    try:
        return summarize_job(answer)
    except (UnknownJobId, AttributeError, ValueError):
        return None


def _recent_lookup(request: WriteRequest) -> RecentLookup | None:
    if request.method != "POST":
        return None
    if request.recent is not None or request.job_kind is None:
        return request.recent
    echo = request.echo if request.echo is not None else job_echo(request.job_kind, request.body)
    return RecentLookup(
        path=job_path(request.job_kind),
        params={},
        keys=(),
        echo=echo,
        absent_alike=("results_limit", "sort"),
        where=f"the recent bulk {request.job_kind} jobs (list_bulk_jobs)",
        untold=untold(request.job_kind, request.body),
    )


def _compact(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        return {"answer": answer}
    keep = (
        "id",
        "status",
        "thread_id",
        "lead_id",
        "contact_id",
        "subject",
        "to",
        "cc",
        "bcc",
        "sender",
        "date_scheduled",
        "date_created",
    )
    return {k: answer[k] for k in keep if k in answer}
