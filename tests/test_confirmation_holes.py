"""Issue 23: nothing runs that the person did not confirm, and nothing Close accepted is lost.

Each test reproduces one hole found from outside (a hostile model, a second key, a flaky
store) through the MCP tools against the in-process sandbox, and asserts the whole answer,
the audit lines and the exact writes that reached Close:

1. a job paused before Close counted it is resumed on its real count, never on "0";
3. a store failing after Close accepted a write leaves a `submitted` result and audit line;
4. "every lead" is decided from a count taken when the call is made, at confirmation too;
6. every refusal is audited, and nothing is sent while the audit log cannot be written;
8. a job that cannot be told apart from this write's is never reported as its own;
10. a token confirms only for the Close key (the caller) it was issued to;
13. resuming a job needs the toolset of the job's own action;
17. cancelling an email that is already a draft answers without a write;
20. one confirmation of a PUT (resume, cancel) is spent like any other: it never acts twice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import types

from bench.tokens import count_tokens
from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox, emails
from close_mcp.sandbox.store import Job
from close_mcp.server.runtime import SANDBOX_BASE_URL
from tests.harness import MODES, Harness, Mode, StartHarness, run_to_done, text_of
from tests.ids import field_id, status_id
from tests.queries import LEAD, lead_and, negated, status_condition, status_query
from tests.reliability.test_secrets import CANARY, FORMS
from tests.safety_net import delete_canceled

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=40)]

JSON = dict[str, Any]
QUALIFIED: JSON = {"filter": {"lead_status": "Qualified"}}
CANCELED: JSON = {"filter": {"lead_status": "Canceled"}}
EVERY_LEAD = (
    "the selection matches every lead in the organization; pass `allow_all_leads: true` "
    "if that is really meant"
)
RESUMING: JSON = {"status": "resuming"}
PAUSED: JSON = {"status": "paused"}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def leads_with(h: Harness, label: str) -> int:
    sid = status_id(h, label)
    return sum(1 for lead in h.sandbox.store.leads.values() if lead.status_id == sid)


def jobs_of(h: Harness, kind: str) -> list[Job]:
    return [job for job in h.sandbox.store.jobs.values() if job.kind == kind]


def writes(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json) for r in h.writes()]


def outcomes(h: Harness) -> list[tuple[str, str]]:
    return [(e["tool"], e["outcome"]) for e in h.audit.entries()]


class Person:
    """Answers each question with the next content (None: declines); records the questions."""

    def __init__(self) -> None:
        self.answers: list[JSON | None] = []

    def __call__(self, message: str) -> types.ElicitResult:
        content = self.answers.pop(0)
        if content is None:
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content=content)


# -- 1. a job paused before Close counted it ---------------------------------------------------


async def test_a_delete_paused_before_close_counted_it_is_resumed_on_its_real_count(
    start_harness: StartHarness,
) -> None:
    person = Person()
    h = await start_harness(toolsets="jobs,delete", elicit=person)
    doomed = leads_with(h, "Qualified")
    assert doomed > 0
    person.answers = [{"count": doomed}]
    done = await h.confirmed("create_bulk_delete", QUALIFIED)
    assert done["status"] == "submitted"
    job_id = done["job"]["id"]
    paused = await h.call("pause_bulk_job", {"job_id": job_id})  # at once: still uncounted
    assert (paused["job"]["status"], paused["job"]["n_objects"]) == ("paused", None)

    first = await h.call("resume_bulk_job", {"job_id": job_id})
    assert first["status"] == "confirmation_required"
    assert first["preview"]["matched"] == doomed
    assert first["preview"]["notes"][0] == (
        f"Job {job_id} was paused before Close counted its selection: its query matches "
        f"{doomed} leads now (counted for this preview). Resuming carries on with them."
    )
    # The person types 0, as the old preview told them to: refused, nothing resumed.
    person.answers = [{"count": 0}]
    refused = await h.call(
        "resume_bulk_job", {"job_id": job_id, "confirmation_token": first["confirmation_token"]}
    )
    assert (refused["status"], refused["reason"]) == (
        "refused",
        f"the person typed 0, but the action would delete {doomed}",
    )
    assert h.sandbox.store.jobs[job_id].status == "paused"
    # The number shown and asked for is the real one, and it resumes.
    person.answers = [{"count": doomed}]
    resumed = await h.call(
        "resume_bulk_job", {"job_id": job_id, "confirmation_token": refused["confirmation_token"]}
    )
    assert resumed["status"] == "submitted"
    question = (
        f"Resume the paused bulk delete job {job_id}: {doomed} leads left. This cannot be "
        "undone in Close. To confirm, type the number of leads that will be deleted "
        f"({doomed})."
    )
    assert h.questions[1:] == [question, question]
    assert [w[0] for w in writes(h)] == ["POST", "PUT", "PUT"]


async def test_an_uncounted_job_whose_selection_changed_is_refused(h: Harness) -> None:
    """The token binds the count taken at the preview: a lead joining refuses the resume."""
    job = h.sandbox.jobs.create(
        "delete", {"s_query": status_query(status_id(h, "Qualified"))}, h.clock.time()
    )
    h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    assert job.n_objects is None
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    before = leads_with(h, "Qualified")
    assert first["preview"]["matched"] == before
    lead = next(
        lead
        for lead in h.sandbox.store.leads.values()
        if lead.status_id != status_id(h, "Qualified")
    )
    lead.status_id = status_id(h, "Qualified")
    again = await h.call(
        "resume_bulk_job", {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    )
    assert (again["status"], again["reason"], again["preview"]["matched"]) == (
        "refused",
        f"the selection now matches {before + 1} leads, not the {before} that were previewed",
        before + 1,
    )
    assert h.writes() == []


# -- 3. a store that fails after Close accepted the write --------------------------------------


@pytest.mark.harness(audited=True)
async def test_a_store_failing_after_close_accepted_the_write_still_says_submitted(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = h.runtime.store
    put = store.put

    async def dropped(key: str, value: str, *, ttl_s: float | None = None) -> None:
        if key.startswith("attributed:"):
            raise ConnectionError("Connection closed by server.")
        await put(key, value, ttl_s=ttl_s)

    monkeypatch.setattr(store, "put", dropped)
    args = {**QUALIFIED, "template": "Intro"}
    first = await h.call("create_bulk_email", args)
    token = first["confirmation_token"]
    with caplog.at_level(logging.ERROR):
        done = await h.call("create_bulk_email", {**args, "confirmation_token": token})
    (job,) = jobs_of(h, "email")
    assert done["status"] == "submitted"
    assert done["job"]["id"] == job.id
    assert done["message"] == (
        f"Submitted: {first['message'].split('. Show')[0]} (job {job.id}). Follow it with "
        f"wait_for_bulk_job. The job was made, but recording it in the state store failed "
        "(Connection closed by server.): another confirmation of this same request may not "
        "see it as used; check list_bulk_jobs before confirming it again."
    )
    assert outcomes(h) == [("create_bulk_email", "submitted")]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"create_bulk_email: job {job.id} was submitted, but recording it in the state store "
        "failed: Connection closed by server."
    ]
    # The natural retry, with the same token: refused, no second job.
    again = await h.call("create_bulk_email", {**args, "confirmation_token": token})
    assert (again["status"], again["reason"]) == (
        "refused",
        "the confirmation token was already used",
    )
    assert len(jobs_of(h, "email")) == 1
    assert [w[:2] for w in writes(h)] == [("POST", "/api/v1/bulk_action/email/")]


# -- 4. "every lead" counted when the call is made ---------------------------------------------


@pytest.mark.harness(confirm="email,sequences,send,delete")
async def test_every_remaining_lead_after_a_delete_is_still_every_lead(h: Harness) -> None:
    """edit is out of CLOSE_MCP_CONFIRM: only the every-lead check stands between a model and
    an edit of every lead; a total counted before the server's own delete must not fool it."""
    done = await h.confirmed("create_bulk_delete", CANCELED)
    await run_to_done(h, done["job"]["id"], step=1.0)
    assert h.clock.time() - FakeClock().time() < 30  # inside the old cache's 30 s
    h.clear()
    edit = {"type": "set_lead_status", "lead_status": "Qualified"}
    error = await h.error(
        "create_bulk_edit", {"filter": {"created_after": "1900-01-01"}, "edit": edit}
    )
    assert error == f"filter: {EVERY_LEAD}"
    assert h.writes() == []


async def test_every_lead_is_recounted_at_confirmation(h: Harness) -> None:
    """Previewed while narrower; the leads outside it deleted before the confirmation."""
    canceled = status_id(h, "Canceled")
    not_canceled = lead_and(negated(status_condition(canceled)))
    args = {"s_query": not_canceled, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    first = await h.call("create_bulk_edit", args)
    assert first["status"] == "confirmation_required"
    assert [n for n in first["preview"]["notes"] if "every lead" in n] == []
    done = await h.confirmed("create_bulk_delete", CANCELED)
    await run_to_done(h, done["job"]["id"], step=1.0)
    h.clear()
    error = await h.error(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    assert error == f"s_query: {EVERY_LEAD}"
    assert h.writes() == []


# -- 6. refusals audited; no write without a writable audit log --------------------------------


@pytest.mark.harness(audited=True)
async def test_every_lead_refusals_are_audited(h: Harness) -> None:
    by_count = {"filter": {"created_after": "1900-01-01"}}
    by_wording = {"s_query": LEAD}
    assert await h.error("create_bulk_delete", by_count) == f"filter: {EVERY_LEAD}"
    assert await h.error("create_bulk_delete", by_wording) == f"s_query: {EVERY_LEAD}"
    entries = h.audit.entries()
    assert [(e["tool"], e["outcome"], e["path"], e["reason"]) for e in entries] == [
        ("create_bulk_delete", "refused", "/bulk_action/delete/", f"filter: {EVERY_LEAD}"),
        ("create_bulk_delete", "refused", "/bulk_action/delete/", f"s_query: {EVERY_LEAD}"),
    ]
    assert entries[0]["matched"] == len(h.sandbox.store.leads)
    assert h.writes() == []


@pytest.mark.parametrize("content", [{"nope": 1}, {"count": "12", "extra": True}, {}])
async def test_a_malformed_answer_is_a_refusal_and_audited(
    start_harness: StartHarness, tmp_path: Path, content: JSON
) -> None:
    person = Person()
    h = await start_harness(elicit=person, audit_dir=tmp_path)
    first = await h.call("create_bulk_delete", QUALIFIED)
    person.answers = [content]
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    reason = f"the person's answer {content.get('count')!r} is not a whole number of leads"
    assert (done["status"], done["reason"]) == ("refused", reason)
    assert [(e["outcome"], e["reason"]) for e in h.audit.entries()] == [("refused", reason)]
    assert h.writes() == []


@pytest.mark.harness(audited=True, toolsets="jobs,delete")
async def test_nothing_is_sent_while_the_audit_log_cannot_be_written(
    h: Harness, tmp_path: Path
) -> None:
    first = await h.call("create_bulk_delete", QUALIFIED)
    audit = tmp_path / "audit.jsonl"
    audit.mkdir()  # the path is taken: the log cannot be appended to (root included)
    args = {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    refused = await h.call("create_bulk_delete", args)
    assert refused["status"] == "refused"
    assert refused["reason"] == (
        f"the audit log {audit} cannot be written ([Errno 21] Is a directory: "
        f"'{audit}'), and no write is sent unless it is recorded; fix it (or set "
        "CLOSE_MCP_AUDIT_LOG) and confirm again"
    )
    assert h.writes() == []
    job = h.sandbox.jobs.create(
        "delete", {"s_query": status_query(status_id(h, "Customer"))}, h.clock.time()
    )
    error = await h.error("pause_bulk_job", {"job_id": job.id})
    assert error.startswith(f"the audit log {audit} cannot be written")
    assert h.writes() == []
    # Fixed: the same token (never spent) goes through, and is recorded.
    audit.rmdir()
    done = await h.call("create_bulk_delete", args)
    assert done["status"] == "submitted"
    assert outcomes(h) == [("create_bulk_delete", "submitted")]


# -- 8. what Close echoes cannot tell the writes apart -----------------------------------------


@pytest.mark.harness(confirm="edit")
async def test_a_multi_value_edit_is_never_reconciled_to_a_look_alike_job(h: Harness) -> None:
    products = field_id(h, "Products")
    product = h.sandbox.store.custom_fields[products].choices[0]
    qualified = status_query(status_id(h, "Qualified"))
    colleague = {
        "s_query": qualified,
        "send_done_email": True,
        "type": "set_custom_field",
        "custom_field_id": products,
        "custom_field_values": [product],
        "custom_field_operation": "remove",
    }
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(), base_url=SANDBOX_BASE_URL, auth=(SANDBOX_API_KEY, "")
    ) as close:
        made = await close.post("bulk_action/edit/", json=colleague)
    assert made.status_code == 200, made.text
    h.clock.advance(1.5)  # before our token (the replay check skips it), in the window
    edit = {
        "type": "set_custom_field",
        "custom_field": "Products",
        "values": [product],
        "operation": "add",
    }
    first = await h.call("create_bulk_edit", {**QUALIFIED, "edit": edit})
    h.clear()
    h.sandbox.inject_faults("5xx", 1, "bulk_action/edit/", "POST")
    error = await h.error(
        "create_bulk_edit",
        {**QUALIFIED, "edit": edit, "confirmation_token": first["confirmation_token"]},
    )
    assert error == (
        "Close answered the write with 503, so it is unknown whether it was carried out. Check "
        "before trying again. Close's jobs show neither the values nor the operation of a "
        "multi-value edit, so a job among the recent bulk edit jobs (list_bulk_jobs) cannot be "
        "told apart from another's; look there before trying again. (POST bulk_action/edit/)"
    )
    assert [w[:2] for w in writes(h)] == [("POST", "/api/v1/bulk_action/edit/")]
    assert [j.id for j in jobs_of(h, "edit")] == [made.json()["id"]]


# -- 10. a token is bound to the caller it was issued to ---------------------------------------

COLLEAGUE_KEY = "api_colleague_0123456789abcdef"


class ColleagueKey(httpx.AsyncBaseTransport):
    """One organization, two users: the colleague's key reaches the sandbox as a valid key."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = sandbox.transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        colleague = httpx.BasicAuth(COLLEAGUE_KEY, "")._auth_header
        if request.headers.get("authorization") == colleague:
            request.headers["authorization"] = httpx.BasicAuth(SANDBOX_API_KEY, "")._auth_header
        return await self.inner.handle_async_request(request)


CALLER = (
    "the confirmation token was issued to another caller (another Close API key or "
    "organization); confirm a preview made with your own key"
)


async def test_a_colleagues_key_cannot_confirm_my_token(start_harness: StartHarness) -> None:
    mine = await start_harness()
    theirs = await start_harness(
        sandbox=mine.sandbox,
        clock=mine.clock,
        transport=ColleagueKey(mine.sandbox),
        env={"CLOSE_API_KEY": COLLEAGUE_KEY},
    )
    first = await mine.call("create_bulk_delete", QUALIFIED)
    args = {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    stolen = await theirs.call("create_bulk_delete", args)
    assert (stolen["status"], stolen["reason"]) == ("refused", CALLER)
    assert mine.writes() == []
    done = await mine.call("create_bulk_delete", args)
    assert done["status"] == "submitted"


async def test_a_token_made_in_one_organization_deletes_nothing_in_another(
    start_harness: StartHarness,
) -> None:
    org_a = await start_harness()
    org_b = await start_harness(sandbox=Sandbox(n_leads=40, api_key="api_org_b_0123456789"))
    first = await org_a.call("create_bulk_delete", QUALIFIED)
    # The same seed: the same ids and counts in both, so only the caller tells them apart.
    twin = await org_b.call("create_bulk_delete", QUALIFIED)
    assert twin["preview"] == first["preview"]
    args = {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    crossed = await org_b.call("create_bulk_delete", args)
    assert (crossed["status"], crossed["reason"]) == ("refused", CALLER)
    assert org_b.writes() == []


# -- 13. resuming needs the toolset of the job's action ----------------------------------------


@pytest.mark.harness(toolsets="search,jobs", audited=True)
async def test_resuming_a_delete_needs_the_delete_toolset(h: Harness) -> None:
    job = h.sandbox.jobs.create(
        "delete", {"s_query": status_query(status_id(h, "Qualified"))}, h.clock.time()
    )
    h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    reason = (
        f"{job.id} is a bulk delete job, and resuming it needs the delete toolset, which this "
        "server does not enable (CLOSE_MCP_TOOLSETS)"
    )
    for args in ({"job_id": job.id}, {"job_id": job.id, "dry_run": True}):
        error = await h.error("resume_bulk_job", args)
        assert error == f"cannot resume this job: {reason}"
    assert h.writes() == []
    assert job.status == "paused"
    assert [(e["outcome"], e["reason"]) for e in h.audit.entries()] == [("refused", reason)] * 2


@pytest.mark.parametrize(
    ("kind", "toolset"),
    [("edit", "edit"), ("email", "email"), ("sequence_subscription", "sequences")],
)
async def test_resuming_needs_the_toolset_of_each_kind(
    kind: str, toolset: str, start_harness: StartHarness
) -> None:
    store_fields = {"edit": {"type": "set_lead_status"}, "email": {}, "sequence_subscription": {}}
    for toolsets, allowed in (("jobs", False), (f"jobs,{toolset}", True)):
        h = await start_harness(toolsets=toolsets)
        store = h.sandbox.store
        fields: JSON = {
            "edit": {**store_fields["edit"], "lead_status_id": next(iter(store.statuses))},
            "email": {"template_id": next(iter(store.templates))},
            "sequence_subscription": {"action_type": "pause"},
        }[kind]
        job = h.sandbox.jobs.create(
            kind, {"s_query": status_query(status_id(h, "Qualified")), **fields}, h.clock.time()
        )
        h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
        result = await h.call_raw("resume_bulk_job", {"job_id": job.id})
        assert result.is_error is not allowed, (toolsets, result)
        assert h.writes() == []


# -- 17. cancelling a draft again is answered without a write ----------------------------------


def an_email(h: Harness, status: str) -> JSON:
    lead = next(lead for lead in h.sandbox.store.leads.values() if lead.contacts)
    data: JSON = {
        "lead_id": lead.id,
        "status": status,
        "to": ["ann@example.com"],
        "subject": "Offer",
        "body_text": "Our offer.",
        "sender": '"Sandra Box" <sandra@sandbox.example>',
        "date_scheduled": "2026-01-02T09:30:00+00:00",
    }
    return emails.create(h.sandbox.store, data, h.clock.time())


@pytest.mark.harness(toolsets="send", audited=True)
async def test_cancelling_an_email_twice_answers_the_repeat_without_a_write(h: Harness) -> None:
    email = an_email(h, "scheduled")
    args = {"activity_id": email["id"]}
    done = await h.confirmed("cancel_email", args)
    assert done["status"] == "submitted"
    for again_args in (args, {**args, "dry_run": True}):
        again = await h.call("cancel_email", again_args)
        assert again["status"] == "refused", again
        assert again["reason"] == f"{email['id']} is already a draft: there is nothing to cancel"
        assert again["message"] == (
            f"Refused: {email['id']} is already a draft: there is nothing to cancel. "
            "Nothing was sent."
        )
        assert again["confirmation_token"] is None
    assert len(h.writes()) == 1
    # The repeat is a refusal (audited); its dry run is not.
    assert outcomes(h) == [("cancel_email", "submitted"), ("cancel_email", "refused")]


# -- 20. one confirmation of a PUT never acts twice --------------------------------------------


@pytest.mark.harness(toolsets="jobs,delete", sandbox_options={"job_speed": 10})
async def test_one_resume_confirmation_resumes_once(h: Harness) -> None:
    """Resume, pause, resume with the same token: the job is back where the token was made
    (paused, the same count left), so only the spent nonce refuses it."""
    job = h.sandbox.jobs.create("delete", {"s_query": dict(LEAD)}, h.clock.time())
    h.clock.advance(2.0)
    h.sandbox.jobs.advance(job, h.clock.time())
    h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    args = {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    assert (await h.call("resume_bulk_job", args))["status"] == "submitted"
    await h.call("pause_bulk_job", {"job_id": job.id})
    again = await h.call("resume_bulk_job", args)
    assert again["preview"]["matched"] == first["preview"]["matched"]
    assert (again["status"], again["reason"]) == (
        "refused",
        "the confirmation token was already used",
    )
    path = f"/api/v1/bulk_action/delete/{job.id}/"
    assert writes(h) == [("PUT", path, RESUMING), ("PUT", path, PAUSED)]
    assert job.status == "paused"


@pytest.mark.harness(toolsets="send")
async def test_one_cancel_confirmation_cancels_once(h: Harness) -> None:
    email = an_email(h, "scheduled")
    first = await h.call("cancel_email", {"activity_id": email["id"]})
    args = {"activity_id": email["id"], "confirmation_token": first["confirmation_token"]}
    assert (await h.call("cancel_email", args))["status"] == "submitted"
    h.sandbox.store.emails[email["id"]]["status"] = "scheduled"  # scheduled again in Close
    again = await h.call("cancel_email", args)
    assert (again["status"], again["reason"]) == (
        "refused",
        "the confirmation token was already used",
    )
    assert len(h.writes()) == 1


class PauseAnswerLost(httpx.AsyncBaseTransport):
    """Close pauses the job, but its answer is unreadable and the job cannot be read back."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = sandbox.transport()
        self.paused = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.paused and request.method == "GET":
            return httpx.Response(503, json={"error": "Service unavailable"})
        response = await self.inner.handle_async_request(request)
        if request.method == "PUT":
            self.paused = True
            return httpx.Response(200, json={"unexpected": True})
        return response


async def test_a_pause_close_accepted_is_never_an_error(
    start_harness: StartHarness, tmp_path: Path
) -> None:
    """Issue 23 (3): reading the job back after the PUT fails; the pause happened all the same."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=40, clock=clock)
    h = await start_harness(
        sandbox=sandbox, clock=clock, transport=PauseAnswerLost(sandbox), audit_dir=tmp_path
    )
    job = h.sandbox.jobs.create(
        "delete", {"s_query": status_query(status_id(h, "Qualified"))}, h.clock.time()
    )
    paused = await h.call("pause_bulk_job", {"job_id": job.id})
    assert job.status == "paused"
    assert (paused["previous_status"], paused["job"]["status"]) == ("created", "paused")
    assert paused["message"].startswith(f"Paused job {job.id}. Resume it with resume_bulk_job")
    assert outcomes(h) == [("pause_bulk_job", "submitted")]
    assert [w[0] for w in writes(h)] == ["PUT"]


class JobWithoutQuery(httpx.AsyncBaseTransport):
    """A Close that does not show a job's `s_query` (the job then cannot be counted here)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = sandbox.transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and "/bulk_action/" in request.url.path:
            await response.aread()
            data = response.json()
            data.pop("s_query", None)
            return httpx.Response(response.status_code, json=data)
        return response


async def test_an_uncounted_job_whose_query_close_does_not_show_is_refused(
    start_harness: StartHarness, tmp_path: Path
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=40, clock=clock)
    h = await start_harness(
        sandbox=sandbox, clock=clock, transport=JobWithoutQuery(sandbox), audit_dir=tmp_path
    )
    job = h.sandbox.jobs.create(
        "delete", {"s_query": status_query(status_id(h, "Qualified"))}, h.clock.time()
    )
    h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    reason = (
        "Close has not counted its selection yet and does not show its query; wait until "
        "get_bulk_job shows n_objects, then resume it"
    )
    assert await h.error("resume_bulk_job", {"job_id": job.id}) == (
        f"cannot resume this job: {reason}"
    )
    assert [(e["outcome"], e["reason"]) for e in h.audit.entries()] == [("refused", reason)]
    assert h.writes() == []


async def test_an_accepted_answer_without_content_is_a_refusal_and_audited(
    start_harness: StartHarness, tmp_path: Path
) -> None:
    """An answer the SDK cannot read at all (accepted, no content) fails before the tool
    runs: it still sends nothing and leaves an audit line."""
    h = await start_harness(
        elicit=lambda _message: types.ElicitResult(action="accept", content=None),
        audit_dir=tmp_path,
    )
    first = await h.call("create_bulk_delete", QUALIFIED)
    error = await h.error(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    assert "elicitation" in error, error
    (entry,) = h.audit.entries()
    assert (entry["tool"], entry["outcome"]) == ("create_bulk_delete", "refused")
    assert entry["reason"] == f"the person's answer could not be read: {error}"
    assert h.writes() == []


async def test_the_newest_write_tools_never_show_the_key(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """update_opportunities, update_tasks, export_leads, merge_leads and restore_leads (and
    their undos), confirmed, refused, with bad arguments, faults after Close acted and a key
    Close stops accepting: no result, log record, audit line or exception text holds the key."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "mcp", "close_mcp"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    clock = FakeClock()
    sandbox = Sandbox(n_leads=40, clock=clock, api_key=CANARY)
    seen: list[str] = []
    async with Harness.start(
        sandbox=sandbox, clock=clock, env={"CLOSE_API_KEY": CANARY}, audit_dir=tmp_path,
        toolsets="all",
    ) as h:  # fmt: skip
        logging.getLogger("httpx").setLevel(logging.DEBUG)  # build_server quiets it

        async def raw(tool: str, args: JSON) -> JSON:
            result = await h.call_raw(tool, args)
            seen.append(result.model_dump_json())
            return result.structured_content or {}

        async def confirmed(tool: str, args: JSON) -> JSON:
            first = await raw(tool, args)
            token = first.get("confirmation_token")
            return await raw(tool, {**args, "confirmation_token": token}) if token else first

        store = sandbox.store
        user = max(store.users, key=lambda u: sum(t.assigned_to == u for t in store.tasks.values()))
        ids = sorted(store.leads)
        for tool, args in [
            ("update_opportunities", {"change": {"confidence": 5}}),
            ("update_tasks", {"undo": "taskupd_00"}),
            ("merge_leads", {"pairs": [{"source": ids[0], "destination": ids[0]}]}),
            ("restore_leads", {"backup": "bulkdelete_missing"}),
            ("export_leads", {**QUALIFIED, "confirmation_token": "forged"}),
        ]:
            await raw(tool, args)
        opps = await confirmed("update_opportunities", {"where": {"status_type": "active"},
                                                        "change": {"confidence": 7}})  # fmt: skip
        await confirmed("update_opportunities", {"undo": opps["result"]["run_id"]})
        where = {"assignee": user, "is_complete": False}
        deleted = await confirmed("update_tasks", {"where": where, "delete": True})
        sandbox.inject_faults("after_commit", 1, "task/", "POST")
        sandbox.inject_faults("5xx", 1, "task/", "POST", status=400)
        await confirmed("update_tasks", {"undo": deleted["result"]["run_id"]})
        sandbox.inject_faults("timeout_after_commit", 1, "export/lead/", "POST")
        await confirmed("export_leads", QUALIFIED)
        sandbox.inject_faults("after_commit", 1, "lead/merge/", "POST")
        merged = await confirmed("merge_leads", {"pairs": [
            {"source": ids[1], "destination": ids[2]}, {"source": ids[3], "destination": ids[4]}
        ]})  # fmt: skip
        sandbox.inject_faults("timeout_after_commit", 1, "lead/", "POST")
        await confirmed("restore_leads", {"backup": merged["result"]["run_id"]})
        await confirmed("restore_leads", {"deleted_since": "2026-01-01"})
        sandbox.api_key = "api_someone_else"  # Close now rejects our key: 401
        await raw("update_tasks", {"where": where, "change": {"complete": True}})
        await raw("export_leads", QUALIFIED)
    audit = (tmp_path / "audit.jsonl").read_text()
    logs = caplog.text + "".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.exc_info!r}" for r in caplog.records
    )
    haystacks = {"results": "\n".join(seen), "logs": logs, "audit": audit}
    leaks = {where: [f for f in FORMS if f in text] for where, text in haystacks.items()}
    assert leaks == {where: [] for where in haystacks}
    assert audit.count('"outcome": "submitted"') >= 10  # the scan covered real writes
    assert sandbox.faults_pending == 0
    assert "Close did not accept the API key" in seen[-1]


@pytest.mark.harness(n_leads=120, toolsets="all")
async def test_the_newest_write_tools_preview_long_crm_text_within_1500_tokens(
    h: Harness,
) -> None:
    """Lead names and task texts of 3,000 characters (Close sets no short limit): every
    preview of the newest write tools, and of a bulk delete, stays within 1,500 tokens; the
    token still binds the whole text (a task's text changed at its end refuses it)."""
    store = h.sandbox.store
    for i, lead in enumerate(store.leads.values()):
        lead.name = f"Lead {i} " + "Acme Corporation International " * 100
    for i, task in enumerate(store.tasks.values()):
        task.text = f"Task {i} " + "call back about the renewal terms " * 90
    user = max(store.users, key=lambda u: sum(t.assigned_to == u for t in store.tasks.values()))
    tasks = {"where": {"assignee": user, "is_complete": False}, "delete": True}
    job_id, _ = await delete_canceled(h)
    ids = sorted(store.leads)
    calls: list[tuple[str, JSON]] = [
        ("update_tasks", tasks),
        ("update_opportunities", {"where": {"status_type": "active"}, "change": {"confidence": 3}}),
        ("export_leads", QUALIFIED),
        ("restore_leads", {"backup": job_id}),
        (
            "merge_leads",
            {"pairs": [{"source": ids[i], "destination": ids[i + 1]} for i in range(0, 40, 2)]},
        ),
        ("create_bulk_delete", QUALIFIED),
    ]
    sizes = {}
    for tool, args in calls:
        result = await h.call_raw(tool, args)
        assert not result.is_error, text_of(result)
        sizes[tool] = count_tokens(text_of(result))
    assert {tool: size for tool, size in sizes.items() if size > 1500} == {}
    first = await h.call("update_tasks", tasks)
    last = max((t for t in store.tasks.values() if t.assigned_to == user and not t.is_complete),
               key=lambda t: t.id)  # fmt: skip
    last.text += "!"
    changed = await h.call(
        "update_tasks", {**tasks, "confirmation_token": first["confirmation_token"]}
    )
    assert changed["status"] == "refused"
    assert h.writes() == [w for w in h.writes() if "bulk_action/delete" in w.path]
