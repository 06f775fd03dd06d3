"""pause_bulk_job / resume_bulk_job through the MCP client, both eras, on every job state.

Pausing is never confirmed. Resuming restarts what the job does, so it is confirmed like the
job's own action: always for a delete, for the others when CLOSE_MCP_CONFIRM names them (by
default it names every action)."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.sandbox.bulk_jobs import RESUME_SECONDS
from close_mcp.sandbox.store import Job
from close_mcp.sandbox.store import iso as close_iso
from close_mcp.writes.tokens import iso
from tests.harness import MODES, Harness, Mode, accept, run_to_done
from tests.ids import status_id

# 40 leads at 10 objects a second: a job is created, loads in 1 s, then runs for 4 s.
pytestmark = [
    pytest.mark.anyio,
    # Resuming a job needs the toolset of its kind, so each kind's toolset is on.
    pytest.mark.harness(
        n_leads=40, sandbox_options={"job_speed": 10}, toolsets="jobs,edit,email,sequences,delete"
    ),
]

ALL_LEADS = {"type": "object_type", "object_type": "lead"}
START = "2026-01-01T00:00:00.000000+00:00"
DAY = 86400.0
PAUSED = {"status": "paused"}
RESUMING = {"status": "resuming"}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def new_job(h: Harness, kind: str = "edit") -> Job:
    """A job put straight into the sandbox, so only the tool under test talks to it over HTTP."""
    store = h.sandbox.store
    fields: dict[str, Any] = {
        "edit": {"type": "set_lead_status", "lead_status_id": next(iter(store.statuses))},
        "email": {"template_id": next(iter(store.templates))},
        "sequence_subscription": {"action_type": "pause"},
        "delete": {},
    }[kind]
    return h.sandbox.jobs.create(kind, {"s_query": ALL_LEADS, **fields}, h.clock.time())


def puts(h: Harness) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json) for r in h.writes()]


def job_path(job: Job) -> str:
    return f"/api/v1/bulk_action/{job.kind}/{job.id}/"


def edit_summary(h: Harness, job: Job, status: str, updated: str, loaded: bool) -> dict[str, Any]:
    """What the tools must report for a `new_job` edit: written out, not summarized by the code
    under test. Once loaded it has 40 leads (one object each) and 10 done (2 s at 10 a second)."""
    potential = status_id(h, "Potential")
    return {
        "id": job.id,
        "kind": "edit",
        "status": status,
        "n_leads": 40 if loaded else None,
        "n_leads_processed": 10 if loaded else 0,
        "n_objects": 40 if loaded else None,
        "n_objects_processed": 10 if loaded else 0,
        "date_created": START,
        "date_updated": updated,
        "created_by": h.sandbox.store.me.id,
        "details": {"type": "set_lead_status", "lead_status_id": potential},
        "s_query": None,
        "results_limit": None,
    }


def into_state(h: Harness, job: Job, state: str) -> None:
    """Drive the sandbox job into `state` on the fake clock."""
    runner, now = h.sandbox.jobs, h.clock.time
    if state == "created":
        return
    if state == "loading":
        h.clock.advance(0.6)
    elif state in ("processing", "paused", "resuming"):
        h.clock.advance(2.0)  # loaded at 1 s, 10 objects done
    elif state == "done":
        h.clock.advance(10.0)
    elif state == "error":
        h.sandbox.fail_job(job.id)
    runner.advance(job, now())
    if state in ("paused", "resuming"):
        runner.set_status(job, PAUSED, now())
    if state == "resuming":
        runner.set_status(job, RESUMING, now())
    assert job.status == state


# -- pause -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "updated", "loaded"),
    [
        ("created", START, False),
        ("loading", "2026-01-01T00:00:00.600000+00:00", False),
        ("processing", "2026-01-01T00:00:02.000000+00:00", True),
        ("resuming", "2026-01-01T00:00:02.000000+00:00", True),
    ],
)
@pytest.mark.harness(audited=True)
async def test_pause_a_running_job(state: str, updated: str, loaded: bool, h: Harness) -> None:
    job = new_job(h)
    into_state(h, job, state)
    result = await h.call("pause_bulk_job", {"job_id": job.id})
    assert puts(h) == [("PUT", job_path(job), PAUSED)]
    assert job.status == "paused"
    progress = "" if job.n_objects is None else f" at {job.n_objects_processed} of 40 objects"
    deadline = iso(h.clock.time() + 7 * DAY)
    assert result == {
        "message": f"Paused job {job.id}{progress}. Resume it with resume_bulk_job before "
        f"{deadline}; Close refuses later.",
        "previous_status": state,
        "job": edit_summary(h, job, "paused", updated, loaded),
        "resume_before": deadline,
    }
    assert (job.n_objects is None) == (state in ("created", "loading"))
    # Paused means no progress, however long the clock runs.
    done = job.n_objects_processed
    h.clock.advance(DAY)
    after = await h.call("get_bulk_job", {"job_id": job.id})
    assert (after["status"], after["n_objects_processed"]) == ("paused", done)
    entry = {
        "tool": "pause_bulk_job",
        "outcome": "submitted",
        "path": f"/bulk_action/edit/{job.id}/",
        "request": PAUSED,
        "job_id": job.id,
    }
    assert [{k: e[k] for k in entry} for e in h.audit.entries()] == [entry]


@pytest.mark.harness(audited=True)
async def test_pausing_a_paused_job_again_sends_nothing_and_says_so(h: Harness) -> None:
    """Issue 18: pause_bulk_job is marked idempotent, so a repeat must not be an error."""
    job = new_job(h)
    into_state(h, job, "processing")
    first = await h.call("pause_bulk_job", {"job_id": job.id})
    h.clock.advance(DAY)
    again = await h.call("pause_bulk_job", {"job_id": job.id})
    assert puts(h) == [("PUT", job_path(job), PAUSED)]
    assert job.status == "paused"
    deadline = first["resume_before"]
    assert again == {
        "message": f"Job {job.id} was already paused at {job.n_objects_processed} of 40 "
        f"objects; nothing was sent. Resume it with resume_bulk_job before {deadline}; "
        "Close refuses later.",
        "previous_status": "paused",
        "job": first["job"],
        "resume_before": deadline,
    }
    assert [e["outcome"] for e in h.audit.entries()] == ["submitted"]


@pytest.mark.parametrize("kind", ["edit", "email", "sequence_subscription", "delete"])
@pytest.mark.harness(confirm="edit,email,sequences")
async def test_pause_and_resume_every_kind_on_its_own_path(kind: str, h: Harness) -> None:
    job = new_job(h, kind)
    h.clock.advance(1.5)
    await h.call("pause_bulk_job", {"job_id": job.id})
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    assert first["status"] == "confirmation_required"
    assert puts(h) == [("PUT", job_path(job), PAUSED)]
    token = first["confirmation_token"]
    resumed = await h.call("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
    assert puts(h) == [("PUT", job_path(job), PAUSED), ("PUT", job_path(job), RESUMING)]
    assert resumed["status"] == "submitted"
    assert resumed["job"]["kind"] == kind
    assert resumed["job"]["status"] == "resuming"


# -- resume ------------------------------------------------------------------------------------

NOTICE = "Each object left is a lead the edit changes."
DELETE_NOTICE = (
    "Each object left is a lead deleted with its contacts and activities; Close cannot undo it."
)


def resume_preview(job: Job, notice: str, *, done: int = 10, total: int = 40) -> dict[str, Any]:
    return {
        "path": f"/bulk_action/{job.kind}/{job.id}/",
        "request": RESUMING,
        "matched": total - done,
        "sample": [],
        "rendering": None,
        "notes": [
            f"Job {job.id} was paused at {done} of {total} objects ({total} leads selected). "
            f"Resuming carries on with the {total - done} left.",
            notice,
        ],
    }


@pytest.mark.harness(audited=True)
async def test_resume_a_paused_job_and_it_finishes(h: Harness) -> None:
    """An edit is confirmed by default: the first call sends nothing, the confirmed one resumes."""
    job = new_job(h)
    into_state(h, job, "paused")
    h.clock.advance(6 * DAY)
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    assert first["status"] == "confirmation_required"
    assert puts(h) == []
    result = await h.call(
        "resume_bulk_job", {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    )
    assert puts(h) == [("PUT", job_path(job), RESUMING)]
    summary = f"Resume the paused bulk edit job {job.id}: 30 objects left"
    assert result == {
        "status": "submitted",
        "tool": "resume_bulk_job",
        "message": f"Submitted: {summary} (job {job.id}). Follow it with wait_for_bulk_job.",
        "preview": resume_preview(job, NOTICE),
        "confirmation_token": None,
        "expires_at": None,
        "reason": None,
        "job": edit_summary(h, job, "resuming", "2026-01-07T00:00:02.000000+00:00", True),
        "result": None,
        "snapshot": None,
    }
    await run_to_done(h, job.id, step=1.0)
    assert job.status == "done"
    assert job.n_objects_processed == 40
    entry = {
        "tool": "resume_bulk_job",
        "outcome": "submitted",
        "path": f"/bulk_action/edit/{job.id}/",
        "request": RESUMING,
        "matched": 30,
        "job_id": job.id,
    }
    assert [{k: e.get(k) for k in entry} for e in h.audit.entries()] == [entry]


@pytest.mark.harness(audited=True)
async def test_resuming_a_paused_delete_needs_its_own_confirmation(h: Harness) -> None:
    """The person paused an irreversible job: the model alone cannot undo that."""
    job = new_job(h, "delete")
    into_state(h, job, "paused")
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    summary = f"Resume the paused bulk delete job {job.id}: 30 objects left"
    token = first["confirmation_token"]
    assert first == {
        "status": "confirmation_required",
        "tool": "resume_bulk_job",
        "message": f"{summary}. Show this preview to the user; if they agree, call "
        "resume_bulk_job again with the same arguments and confirmation_token.",
        "preview": resume_preview(job, DELETE_NOTICE),
        "confirmation_token": token,
        "expires_at": "2026-01-01T00:10:02+00:00",
        "reason": None,
        "job": None,
        "result": None,
        "snapshot": None,
    }
    assert isinstance(token, str)
    assert h.writes() == []
    assert job.status == "paused"
    h.clock.advance(300)
    h.sandbox.jobs.advance(job, h.clock.time())
    assert job.n_objects_processed == 10  # still paused: nothing deleted meanwhile

    done = await h.call("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
    assert puts(h) == [("PUT", job_path(job), RESUMING)]
    assert (done["status"], done["message"], done["preview"]) == (
        "submitted",
        f"Submitted: {summary} (job {job.id}). Follow it with wait_for_bulk_job.",
        resume_preview(job, DELETE_NOTICE),
    )
    assert done["job"]["status"] == "resuming"
    assert job.status == "resuming"

    # The job runs again: the spent token meets a job that is no longer paused.
    error = await h.error("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
    assert error == (
        "cannot resume this job: it is resuming, not paused; only a paused job can be resumed"
    )
    assert len(h.writes()) == 1
    entries = [(e["tool"], e["outcome"], e.get("matched")) for e in h.audit.entries()]
    assert entries == [
        ("resume_bulk_job", "submitted", 30),
        ("resume_bulk_job", "refused", None),
    ]


@pytest.mark.harness(confirm="edit")
async def test_a_token_for_another_job_or_a_forged_one_resumes_nothing(h: Harness) -> None:
    mine, other = new_job(h), new_job(h)
    h.clock.advance(2.0)
    for job in (mine, other):  # same progress, same count: only the job differs
        h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    first = await h.call("resume_bulk_job", {"job_id": mine.id})
    theirs = await h.call("resume_bulk_job", {"job_id": other.id})
    assert first["preview"]["matched"] == theirs["preview"]["matched"] == 30
    swapped = await h.call(
        "resume_bulk_job", {"job_id": other.id, "confirmation_token": first["confirmation_token"]}
    )
    assert (swapped["status"], swapped["reason"]) == (
        "refused",
        "the confirmation token was issued for different arguments; confirm the new preview "
        "instead",
    )
    forged = first["confirmation_token"][:-4] + "AAAA"
    refused = await h.call("resume_bulk_job", {"job_id": mine.id, "confirmation_token": forged})
    assert (refused["status"], refused["reason"]) == (
        "refused",
        "the confirmation token is not valid (forged, mistyped, or from a server with another "
        "CLOSE_MCP_SECRET)",
    )
    assert h.writes() == []
    assert (mine.status, other.status) == ("paused", "paused")
    # Each job's own token still works, once.
    for job, answer in ((mine, first), (other, theirs)):
        token = answer["confirmation_token"]
        done = await h.call("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
        assert done["status"] == "submitted"
    assert puts(h) == [("PUT", job_path(mine), RESUMING), ("PUT", job_path(other), RESUMING)]


async def test_a_token_for_a_job_that_moved_on_is_refused(h: Harness) -> None:
    """The token binds what was left to do: a job resumed and paused again elsewhere has
    less left, and its preview is shown afresh."""
    job = new_job(h, "delete")
    into_state(h, job, "paused")
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    h.sandbox.jobs.set_status(job, RESUMING, h.clock.time())
    h.clock.advance(RESUME_SECONDS + 1.0)
    h.sandbox.jobs.set_status(job, PAUSED, h.clock.time())
    assert job.n_objects_processed == 20
    again = await h.call(
        "resume_bulk_job", {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    )
    assert (again["status"], again["reason"]) == (
        "refused",
        "the selection now matches 20 leads, not the 30 that were previewed",
    )
    assert again["preview"]["matched"] == 20
    assert again["confirmation_token"] != first["confirmation_token"]
    assert h.writes() == []


@pytest.mark.parametrize(
    ("kind", "confirm", "confirmed"),
    [
        ("edit", None, True),  # by default every action is confirmed
        ("email", None, True),
        ("sequence_subscription", None, True),
        ("edit", "edit", True),
        ("edit", "email,sequences,send,delete", False),  # edit taken out knowingly
        ("email", "delete", False),
        ("email", "email", True),
        ("sequence_subscription", "delete", False),
        ("sequence_subscription", "sequences", True),
        ("delete", "edit", True),  # a delete is always confirmed
    ],
)
async def test_the_confirm_policy_of_the_jobs_action_decides(
    kind: str, confirm: str | None, confirmed: bool, start_harness: Any
) -> None:
    h = await start_harness(confirm=confirm)
    job = new_job(h, kind)
    into_state(h, job, "paused")
    result = await h.call("resume_bulk_job", {"job_id": job.id})
    assert result["status"] == ("confirmation_required" if confirmed else "submitted")
    assert puts(h) == ([] if confirmed else [("PUT", job_path(job), RESUMING)])


async def test_dry_run_previews_a_resume_and_sends_nothing(h: Harness) -> None:
    job = new_job(h, "delete")
    into_state(h, job, "paused")
    result = await h.call("resume_bulk_job", {"job_id": job.id, "dry_run": True})
    assert (result["status"], result["confirmation_token"], result["preview"]) == (
        "preview",
        None,
        resume_preview(job, DELETE_NOTICE),
    )
    assert result["message"] == (
        f"Preview only, nothing was sent: Resume the paused bulk delete job {job.id}: 30 "
        "objects left. Call again without dry_run to get a confirmation token."
    )
    assert h.writes() == []


@pytest.mark.harness(elicit=accept({"count": 30}))
async def test_the_person_types_the_number_left_to_delete(h: Harness) -> None:
    job = new_job(h, "delete")
    into_state(h, job, "paused")
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    token = first["confirmation_token"]
    done = await h.call("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
    assert done["status"] == "submitted"
    assert h.questions == [
        f"Resume the paused bulk delete job {job.id}: 30 objects left. This cannot be undone "
        "in Close. To confirm, type the number of leads that will be deleted (30)."
    ]
    assert puts(h) == [("PUT", job_path(job), RESUMING)]


@pytest.mark.parametrize("kind", ["edit", "delete"])
@pytest.mark.harness(audited=True)
async def test_resume_is_refused_eight_days_after_the_pause(kind: str, h: Harness) -> None:
    """The job's state is checked before anything else, a confirmation included."""
    job = new_job(h, kind)
    into_state(h, job, "paused")
    token = None
    if kind == "delete":
        h.clock.advance(7 * DAY - 300)
        token = (await h.call("resume_bulk_job", {"job_id": job.id}))["confirmation_token"]
        h.clock.advance(300 + DAY)
    else:
        h.clock.advance(8 * DAY)
    error = await h.error("resume_bulk_job", {"job_id": job.id, "confirmation_token": token})
    assert error == (
        "cannot resume this job: it was paused at 2026-01-01T00:00:02.000000+00:00 "
        "(8.0 days ago), and Close does not resume a job paused more than 7 days ago; "
        "start a new bulk action instead"
    )
    assert h.writes() == []
    assert job.status == "paused"
    (entry,) = h.audit.entries()
    assert entry == {
        "time": "2026-01-09T00:00:02+00:00",
        "tool": "resume_bulk_job",
        "outcome": "refused",
        "path": f"/bulk_action/{kind}/{job.id}/",
        "request": RESUMING,
        "job_id": job.id,
        "reason": error.removeprefix("cannot resume this job: "),
    }


# -- refusals without a write ------------------------------------------------------------------

REFUSALS = [
    ("pause", "done", "it is done, and a finished job cannot be paused or resumed"),
    ("resume", "done", "it is done, and a finished job cannot be paused or resumed"),
    ("pause", "error", "it is error, and a finished job cannot be paused or resumed"),
    ("resume", "error", "it is error, and a finished job cannot be paused or resumed"),
    ("resume", "created", "it is created, not paused; only a paused job can be resumed"),
    ("resume", "loading", "it is loading, not paused; only a paused job can be resumed"),
    ("resume", "processing", "it is processing, not paused; only a paused job can be resumed"),
    ("resume", "resuming", "it is resuming, not paused; only a paused job can be resumed"),
]


@pytest.mark.harness(audited=True)
async def test_changes_close_would_refuse_are_refused_without_a_write(h: Harness) -> None:
    expected = []
    for verb, state, template in REFUSALS:
        job = new_job(h)
        into_state(h, job, state)
        reason = template.format(since=close_iso(job.date_updated))
        error = await h.error(f"{verb}_bulk_job", {"job_id": job.id})
        assert error == f"cannot {verb} this job: {reason}", (verb, state)
        assert job.status == state
        expected.append((f"{verb}_bulk_job", "refused", reason, job.id))
    assert h.writes() == []
    entries = h.audit.entries()
    assert [(e["tool"], e["outcome"], e["reason"], e["job_id"]) for e in entries] == expected


# -- Close's refusals --------------------------------------------------------------------------


async def test_unknown_job_is_closes_404(h: Harness) -> None:
    error = await h.error("pause_bulk_job", {"job_id": "bulkedit_nope"})
    assert error == (
        "cannot pause this job: Not found in Close: Bulk action 'bulkedit_nope' not found."
    )
    assert h.writes() == []


async def test_a_job_id_of_no_kind_is_refused_by_the_schema(h: Harness) -> None:
    error = await h.error("resume_bulk_job", {"job_id": "lead_abc"})
    assert "job_id" in error
    assert (
        error == "job_id: 'lead_abc' does not match '^bulk(edit|email|seqsub|delete)_[A-Za-z0-9]+$'"
    )
    assert h.sandbox.requests == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "Close rejected the request: Sandbox fault: HTTP 400"),
        (404, "Not found in Close: Sandbox fault: HTTP 404"),
        (405, "Close answered 405: Sandbox fault: HTTP 405"),
    ],
)
@pytest.mark.harness(audited=True)
async def test_closes_refusal_of_the_put_is_mapped(status: int, reason: str, h: Harness) -> None:
    job = new_job(h)
    into_state(h, job, "processing")
    h.sandbox.inject_faults("5xx", path_prefix=f"bulk_action/edit/{job.id}/", method="PUT",
                            status=status)  # fmt: skip
    error = await h.error("pause_bulk_job", {"job_id": job.id})
    assert error == f"cannot pause this job: {reason}"
    assert puts(h) == [("PUT", job_path(job), PAUSED)]
    assert job.status == "processing"
    (entry,) = h.audit.entries()
    assert (entry["outcome"], entry["reason"]) == ("refused", reason)


@pytest.mark.harness(audited=True)
async def test_closes_refusal_of_a_resume_is_mapped_too(h: Harness) -> None:
    job = new_job(h)
    into_state(h, job, "paused")
    h.sandbox.inject_faults("5xx", path_prefix=f"bulk_action/edit/{job.id}/", method="PUT",
                            status=400)  # fmt: skip
    first = await h.call("resume_bulk_job", {"job_id": job.id})
    assert first["status"] == "confirmation_required"
    error = await h.error(
        "resume_bulk_job", {"job_id": job.id, "confirmation_token": first["confirmation_token"]}
    )
    reason = "Close rejected the request: Sandbox fault: HTTP 400"
    assert error == f"cannot resume this job: {reason}"
    assert puts(h) == [("PUT", job_path(job), RESUMING)]
    assert job.status == "paused"
    (entry,) = h.audit.entries()
    assert (entry["tool"], entry["outcome"], entry["reason"]) == (
        "resume_bulk_job",
        "failed",
        f"{reason} (PUT bulk_action/edit/{job.id}/)",
    )


async def test_closes_real_400_when_the_job_finished_meanwhile(h: Harness) -> None:
    """The job was processing when read; Close finishes it before the PUT lands."""
    job = new_job(h)
    into_state(h, job, "processing")
    h.sandbox.inject_faults("slow", path_prefix=f"bulk_action/edit/{job.id}/", method="PUT",
                            seconds=10.0)  # fmt: skip
    error = await h.error("pause_bulk_job", {"job_id": job.id})
    assert error == (
        "cannot pause this job: Close rejected the request: status: A bulk action that is "
        "done cannot be paused."
    )
    assert job.status == "done"


# -- end to end, and the tool list -------------------------------------------------------------


@pytest.mark.harness(toolsets="jobs,edit")
async def test_stop_and_restart_a_bulk_edit_made_through_the_server(h: Harness) -> None:
    args = {
        "filter": {"lead_status": "Qualified"},
        "edit": {"type": "set_lead_status", "lead_status": "Customer"},
    }
    first = await h.call("create_bulk_edit", args)
    assert first["status"] == "confirmation_required"
    token = first["confirmation_token"]
    created = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    job_id = created["job"]["id"]
    h.clock.advance(1.2)
    paused = await h.call("pause_bulk_job", {"job_id": job_id})
    assert paused["job"]["status"] == "paused"
    h.clock.advance(3600)
    again = await h.call("resume_bulk_job", {"job_id": job_id})
    assert again["status"] == "confirmation_required"
    token = again["confirmation_token"]
    resumed = await h.call("resume_bulk_job", {"job_id": job_id, "confirmation_token": token})
    assert (resumed["status"], resumed["job"]["status"]) == ("submitted", "resuming")
    await run_to_done(h, job_id, step=1.0)
    job = await h.call("get_bulk_job", {"job_id": job_id})
    assert job["status"] == "done"
    assert job["n_objects_processed"] == job["n_objects"]


async def test_pause_is_unconfirmed_and_resume_is_a_confirmable_write(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    pause, resume = tools["pause_bulk_job"], tools["resume_bulk_job"]
    assert pause.annotations is not None
    assert resume.annotations is not None
    hints = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")
    assert [getattr(pause.annotations, k) for k in hints] == [False, False, True, False]
    assert [getattr(resume.annotations, k) for k in hints] == [False, True, False, True]
    assert pause.input_schema["required"] == ["job_id"]
    assert sorted(pause.input_schema["properties"]) == ["job_id"]
    assert resume.input_schema["required"] == ["job_id"]
    assert sorted(resume.input_schema["properties"]) == [
        "confirmation_token",
        "dry_run",
        "job_id",
    ]
    assert "not confirmed" in (pause.description or "").lower()
    assert "confirmed like the job's own action" in (resume.description or "")


@pytest.mark.harness(read_only=True)
async def test_read_only_mode_removes_them(h: Harness) -> None:
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert "get_bulk_job" in names
    assert not names & {"pause_bulk_job", "resume_bulk_job"}
