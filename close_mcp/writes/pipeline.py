"""The one path every write takes: preview, confirmation, recount, send once, audit.

A write tool only builds a `WriteRequest` (`request`: the exact path and body it would POST,
how many leads it touches, a sample). Everything that makes writes safe runs from here, once:

- `dry_run` returns the preview and sends nothing.
- An action that needs confirmation (by policy, or because it selects every lead) answers
  `confirmation_required` with a token bound to the tool, the exact body and the count.
- The confirmed call rebuilds the request from its arguments and recounts; the token must
  fit both, must not be expired or spent, and a person asked through elicitation must agree
  (for a delete: type the number of leads). Anything else is `refused` with a fresh preview.
  The gate (`gate`) decides this once per call and hands its `Decision` on.
- A `Safeguard` (the snapshot before an edit, the backup before a delete) runs once the
  token and the person's answer are checked, before the token is spent and the request
  leaves; if it fails, nothing is sent. Its pages are also what the binding (the leads the
  token was bound to) is checked against: one read of the leads (`read_once`).
- The request leaves through `Sender`, once. After an ambiguous failure the recent jobs (or
  emails) are searched for it before anything is reported (`reconcile`); it is never resent.
  What it answers is a `WriteResult` (`results`).

The pipeline sees only a `WriteContext` (policy, tokens, audit, clock), never the server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import ElicitationResult

from close_mcp.close.client import CloseClient
from close_mcp.close.jobs import JobSummary
from close_mcp.errors import TokenRejected
from close_mcp.writes import gate
from close_mcp.writes.background import (
    STOPPED,
    ServerJobs,
    decide,
    new_id,
    read_seconds,
    runs_as_job,
    summary,
)
from close_mcp.writes.binding import Binding
from close_mcp.writes.gate import (
    REQUIRE_HUMAN_REFUSAL,
    Decision,
    cannot_ask,
    decision_of,
    human_refusal,
)
from close_mcp.writes.progress import Progress
from close_mcp.writes.read_once import ReadOnce, record, refuse
from close_mcp.writes.reconcile import USED_TOKEN, Reconciler, owner_of
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import PlanAnswer, Status, WriteResult, compact, job_or_none
from close_mcp.writes.sender import Sender, WriteContext
from close_mcp.writes.tokens import TOKEN_TTL_S

log = logging.getLogger(__name__)


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
        self.reconciler = Reconciler(context, client)
        self.reads = ReadOnce(context, client, progress)

    async def run(
        self,
        request: WriteRequest,
        *,
        dry_run: bool,
        token: str | None,
        answer: ElicitationResult[Any] | None,
    ) -> WriteResult:
        """What happens to `request`: the gate's decision is the one the question step handed
        on with `answer` (made here when none ran), taken once for the whole call."""
        sender = Sender(self.context.audit, self.client, request.tool)
        if request.already is not None:
            if not dry_run:
                refuse(sender, request, request.already)
            message = f"Refused: {request.already}. Nothing was sent."
            return self._result(request, "refused", message, reason=request.already)
        long = self._runs_as_job(request)
        if long:  # said in every answer of this call; the tool's request is left as built
            request = dataclasses.replace(
                request, notes=(*request.notes, _runs_as_job_note(request))
            )
        decision = decision_of(answer)
        if decision is None:
            decision = await gate.decide(
                self.context, request, token, dry_run=dry_run, caller=self.client.caller
            )
        if dry_run:
            return self._result(request, "preview", self._preview_message(request, decision))
        confirm = decision.confirm
        # A bad token is the first thing to report: "already used" says more than "no leads".
        token_problem = decision.token_problem
        if request.matched == 0 and request.when_empty is not None:
            # Nothing to confirm, so no token: one "to delete 0 leads" only invites a call.
            reason = request.when_empty
            if token_problem is not None and token_problem.startswith(USED_TOKEN):
                reason = f"{token_problem}, and {reason}"
            refuse(sender, request, reason)
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
                refuse(sender, request, reason)
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
                problem = await self.reconciler.replayed(request.lookup(), request.body, token)
            if problem is None:
                problem = self._unrecorded()
            if problem is None and long:  # read in the background, once the token is spent
                return await self._start_job(sender, request, token)
            saved: str | None = None
            current: Binding | None = None
            if problem is None:
                saved, drifted = await self.reads.read(sender, request, token)
                if drifted is not None:
                    problem, current = drifted
            if problem is None:
                try:
                    await self.context.tokens.spend(token)
                except TokenRejected as exc:
                    problem = str(exc)
                    await self.reads.discard(request, saved)
            if problem is not None:
                refuse(sender, request, problem)
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
            refuse(sender, request, unrecorded)
            return self._result(
                request, "refused", f"Refused: {unrecorded}. Nothing was sent.", reason=unrecorded
            )
        else:
            saved, _ = await self.reads.read(sender, request, None)
        result = await self._send(sender, request, saved, owner=owner_of(token))
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
            refuse(sender, request, str(exc))
            return await self._confirmation_required(request, str(exc))
        jobs = self.jobs
        job_id = new_id(request.job_kind)

        async def sink(value: float, total: float | None, message: str) -> None:
            await jobs.record(job_id, "reading", read=value, total=total, message=message)

        pipeline = Pipeline(self.context, self.client, Progress(sink, self.context.clock))

        async def work() -> None:
            try:
                saved, drifted = await pipeline.reads.read(sender, request, token)
            except Exception as exc:
                await jobs.record(job_id, "failed", reason=str(exc))
                return
            if drifted is not None:
                problem = drifted[0]
                refuse(sender, request, problem)
                reason = f"Refused: {problem}. Nothing was sent; call again for a fresh preview."
                await jobs.record(job_id, "refused", reason=reason)
                return
            if await decide(self.context.store, job_id, "send") != "send":
                await pipeline.reads.discard(request, saved)
                refuse(sender, request, STOPPED)
                await jobs.record(job_id, "refused", reason=STOPPED)
                return
            await jobs.record(job_id, "sending")
            with anyio.CancelScope(shield=True):  # a request that left is seen through
                try:
                    result = await pipeline._send(sender, request, saved, owner=owner_of(token))
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
            reconcile=self.reconciler.reconciler(request.lookup(), request.body),
        )
        # Close accepted the write: from here on nothing may turn it into an error (a retry
        # would send it twice). The saved file is named after the job (guarded: the audit
        # line names it), then the audit line and the `submitted` result are made; the
        # bookkeeping after them that fails is logged and said in the result, never raised.
        job = job_or_none(answer) if request.job_kind else None
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
            result=None if job else compact(answer),
        )
        if request.method == "POST":
            try:
                await self.reconciler.attribute(owned, owner)
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

    async def _confirmation_required(
        self, request: WriteRequest, problem: str | None, binding: Binding | None = None
    ) -> WriteResult:
        if binding is None and self.reads.binds(request):
            binding = await self.reads.binding(request, self.reads.lead_set(request))
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

    def _preview_message(self, request: WriteRequest, decision: Decision) -> str:
        if decision.confirm:
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


def _runs_as_job_note(request: WriteRequest) -> str:
    """What a preview of a write too long to read in one call says about it."""
    return (
        f"Reading the {request.matched} leads before sending takes about "
        f"{read_seconds(request.matched):.0f} s at Close's 20 requests a second, longer "
        "than many clients wait for one call: once confirmed it runs as a job, to "
        "follow with wait_for_bulk_job."
    )


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
    record(sender, request, "submitted", job_id=job_id, snapshot=saved)
    return WriteResult(
        status="submitted",
        tool=request.tool,
        message=f"Submitted: {request.summary} ({what}).{follow}",
        preview=request.preview(),
        job=job,
        result=result,
        snapshot=saved,
    )
