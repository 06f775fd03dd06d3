"""What a revert says: the preview's notes on its plan, why one is refused (another is being
sent, one sent meanwhile, jobs of an earlier one still running), where one that failed
stopped, and the result of one that went."""

from __future__ import annotations

import json
from typing import Any

from close_mcp.close.jobs import PAUSED_STATUS, JobSummary
from close_mcp.safety.revert_plan import SHOWN_MAX, Plan, normalized
from close_mcp.safety.snapshot_reader import EditSnapshot
from close_mcp.wording import leads
from close_mcp.writes.results import PlanAnswer


def _label(value: Any, labels: dict[str, str]) -> str:
    if normalized(value) is None:
        return "empty"
    if isinstance(value, str) and value in labels:
        return f"{labels[value]!r} ({value})"
    return json.dumps(value, ensure_ascii=False)


def plan_notes(
    snapshot: EditSnapshot, plan: Plan, include_changed_since: bool, labels: dict[str, str]
) -> list[str]:
    what = "status" if snapshot.field == "status_id" else snapshot.field
    notes = [
        f"{leads(r.leads)} return to {what} {_label(r.value, labels)}."
        for r in plan.returns[:SHOWN_MAX]
    ]
    if len(plan.returns) > SHOWN_MAX:
        rest = plan.returns[SHOWN_MAX:]
        notes.append(
            f"{sum(r.leads for r in rest)} leads return to {len(rest)} other "
            f"value{'s' if len(rest) != 1 else ''} (the resource full_plan lists them)."
        )
    if plan.changed_since:
        # Their ids: the request's left_alone.changed_since (the first), the resource (all).
        if include_changed_since:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                "and are put back too (include_changed_since)."
            )
        else:
            notes.append(
                f"{len(plan.changed_since)} leads were changed by someone else since the edit "
                "and are left alone (left_alone.changed_since). Pass "
                "include_changed_since=true to put them back as well."
            )
    if plan.already_back:
        notes.append(f"{plan.already_back} leads already have their old value: nothing to do.")
    if plan.not_found:
        notes.append(f"{len(plan.not_found)} leads of the snapshot no longer exist.")
    bulk = sum(1 for r in plan.requests if r.starts_job)
    puts = len(plan.requests) - bulk
    notes.append(
        f"Sends {bulk} bulk edit job{'s' if bulk != 1 else ''} and {puts} single-lead "
        f"update{'s' if puts != 1 else ''}, in order; follow the jobs with wait_for_bulk_job. "
        "The revert itself takes no snapshot."
    )
    return notes


def sending_message(job_id: str) -> str:
    return (
        f"Another revert_bulk_edit of {job_id} is being sent right now (by this server or "
        "another replica sharing its store); nothing was sent. Wait for it to finish "
        "(follow the jobs it answers with wait_for_bulk_job), then call again: it plans only "
        "what is still to do."
    )


def sent_meanwhile(job_id: str, records: list[dict[str, Any]]) -> str:
    jobs = [str(r["job_id"]) for r in records if r.get("job_id")]
    updated = [str(r["lead_id"]) for r in records if r.get("lead_id")]
    what = []
    if jobs:
        what.append(f"the revert job{'s' if len(jobs) != 1 else ''} {', '.join(jobs)}")
    if updated:
        what.append(f"{len(updated)} lead update{'s' if len(updated) != 1 else ''}")
    return (
        f"Another revert_bulk_edit of {job_id} sent {' and '.join(what) or 'requests'} after "
        "this plan was made, so this plan is out of date; nothing was sent. "
        + ("Wait for that job (wait_for_bulk_job), then call again" if jobs else "Call again")
        + ": it plans only what is still to do."
    )


def stopped_message(number: int, total: int, jobs: list[str], updated: int) -> str:
    """Where a revert that failed stopped, what it already sent (`jobs`, `updated` leads),
    and what to do next."""
    sent = f"already sent: {len(jobs)} jobs, {updated} lead updates"
    again = (
        f"Once {', '.join(jobs)} {'is' if len(jobs) == 1 else 'are'} done "
        "(wait_for_bulk_job), call revert_bulk_edit again"
        if jobs
        else "Call revert_bulk_edit again"
    )
    return (
        f"The revert stopped at request {number} of {total} ({sent}). "
        f"{again}: it plans only what is still to do."
    )


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def plan_answer(jobs: list[JobSummary], updated: list[str], leads: int) -> PlanAnswer:
    """The result of a revert that went: the first job in full (the result's `job`), the
    first few job ids and lead updates with their counts; all of them in the resource."""
    sent = [_plural(len(jobs), "bulk edit job")] if jobs else []
    if updated or not jobs:
        sent.append(_plural(len(updated), "lead update"))
    follow = ""
    if len(jobs) == 1:
        follow = " Follow the job with wait_for_bulk_job."
    elif jobs:
        follow = (
            " Follow each job with wait_for_bulk_job: `job` is the first, result.jobs the "
            "first few, the resource preview.request.full_plan every one."
        )
    result = {
        "jobs": [job.id for job in jobs[:SHOWN_MAX]],
        "jobs_count": len(jobs),
        "updated_leads": updated[:SHOWN_MAX],
        "updated_leads_count": len(updated),
        "leads": leads,
    }
    return PlanAnswer(jobs=jobs, result=result, sent=" and ".join(sent), follow=follow)


def unfinished_message(unfinished: list[tuple[str, str]]) -> str:
    """Why a revert is refused while jobs of an earlier one run: (job id, status) each."""
    paused = any(status == PAUSED_STATUS for _, status in unfinished)
    if len(unfinished) == 1:
        job, status = unfinished[0]
        what = f"the revert job {job} sent by an earlier revert_bulk_edit call is still {status}"
        them, it = "its", "it"
    else:
        listed = ", ".join(f"{job} ({status})" for job, status in unfinished)
        what = f"the revert jobs {listed} sent by earlier revert_bulk_edit calls are not finished"
        them, it = "their", "them"
    resume = "; resume a paused one with resume_bulk_job" if paused else ""
    return (
        f"{what}: {them} leads still hold the edited value, so a new revert would send the "
        f"same edits again. Wait for {it} (wait_for_bulk_job{resume}), then call again: it "
        "plans only what is still to do."
    )
