"""pause_bulk_job / resume_bulk_job through the MCP client, both eras, on every job state."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.jobs import CRM_DATA_NOTICE
from close_mcp.sandbox.store import Job
from close_mcp.sandbox.store import iso as close_iso
from close_mcp.writes.tokens import iso
from tests.harness import MODES, Harness, Mode, run_to_done
from tests.ids import status_id

# 40 leads at 10 objects a second: a job is created, loads in 1 s, then runs for 4 s.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.harness(n_leads=40, sandbox_options={"job_speed": 10}, toolsets="jobs"),
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
        "crm_data_notice": CRM_DATA_NOTICE,
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


@pytest.mark.parametrize("kind", ["edit", "email", "sequence_subscription", "delete"])
async def test_pause_and_resume_every_kind_on_its_own_path(kind: str, h: Harness) -> None:
    job = new_job(h, kind)
    h.clock.advance(1.5)
    await h.call("pause_bulk_job", {"job_id": job.id})
    resumed = await h.call("resume_bulk_job", {"job_id": job.id})
    assert puts(h) == [("PUT", job_path(job), PAUSED), ("PUT", job_path(job), RESUMING)]
    assert resumed["job"]["kind"] == kind
    assert resumed["job"]["status"] == "resuming"


# -- resume ------------------------------------------------------------------------------------


@pytest.mark.harness(audited=True)
async def test_resume_a_paused_job_and_it_finishes(h: Harness) -> None:
    job = new_job(h)
    into_state(h, job, "paused")
    h.clock.advance(6 * DAY)
    result = await h.call("resume_bulk_job", {"job_id": job.id})
    assert puts(h) == [("PUT", job_path(job), RESUMING)]
    assert result == {
        "message": f"Resuming job {job.id} at 10 of 40 objects; follow it with wait_for_bulk_job.",
        "previous_status": "paused",
        "job": edit_summary(h, job, "resuming", "2026-01-07T00:00:02.000000+00:00", True),
        "resume_before": None,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    assert result["job"]["status"] == "resuming"
    await run_to_done(h, job.id, step=1.0)
    assert job.status == "done"
    assert job.n_objects_processed == 40
    assert [e["outcome"] for e in h.audit.entries()] == ["submitted"]


@pytest.mark.harness(audited=True)
async def test_resume_is_refused_eight_days_after_the_pause(h: Harness) -> None:
    job = new_job(h)
    into_state(h, job, "paused")
    h.clock.advance(8 * DAY)
    error = await h.error("resume_bulk_job", {"job_id": job.id})
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
        "path": f"/bulk_action/edit/{job.id}/",
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
    (
        "pause",
        "paused",
        "it is already paused since {since}; use resume_bulk_job to restart it",
    ),
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
    created = await h.call(
        "create_bulk_edit",
        {
            "filter": {"lead_status": "Qualified"},
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
    )
    job_id = created["job"]["id"]
    h.clock.advance(1.2)
    paused = await h.call("pause_bulk_job", {"job_id": job_id})
    assert paused["job"]["status"] == "paused"
    h.clock.advance(3600)
    resumed = await h.call("resume_bulk_job", {"job_id": job_id})
    assert resumed["previous_status"] == "paused"
    await run_to_done(h, job_id, step=1.0)
    job = await h.call("get_bulk_job", {"job_id": job_id})
    assert job["status"] == "done"
    assert job["n_objects_processed"] == job["n_objects"]


async def test_job_control_tools_are_idempotent_and_not_destructive(h: Harness) -> None:
    tools = {t.name: t for t in (await h.client.list_tools()).tools}
    for name in ("pause_bulk_job", "resume_bulk_job"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is False
        assert annotations.destructive_hint is False
        assert annotations.idempotent_hint is True
        assert annotations.open_world_hint is False
        assert tools[name].input_schema["required"] == ["job_id"]
        assert "no confirmation" in (tools[name].description or "").lower()


@pytest.mark.harness(read_only=True)
async def test_read_only_mode_removes_them(h: Harness) -> None:
    names = {t.name for t in (await h.client.list_tools()).tools}
    assert "get_bulk_job" in names
    assert not names & {"pause_bulk_job", "resume_bulk_job"}
