"""`revert_bulk_edit` through the MCP client: the plan from a snapshot (one bulk edit per old
value, PUTs for small groups, clears), leads changed since left alone, a token bound to the
whole plan, and never a revert sent twice (retried, or confirmed at once through two servers
sharing one store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from mcp import types

from close_mcp.close.jobs import CRM_DATA_NOTICE
from tests.harness import MODES, Harness, StartHarness, run_to_done
from tests.ids import field_id, status_id
from tests.safety_net import (
    API,
    edit,
    ids_query,
    load,
    revert,
    reverts,
    sent,
    sharing,
    state,
    with_status,
)

pytestmark = pytest.mark.anyio

# The edit most tests revert: every Qualified lead made a Customer.
QUALIFIED_TO_CUSTOMER = {
    "filter": {"lead_status": "Qualified"},
    "edit": {"type": "set_lead_status", "lead_status": "Customer"},
}


# -- multi-value custom field: one bulk edit per old value, PUTs for small groups, clears ----


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_multi_value_edit_reverts_each_old_value(h: Harness) -> None:
    sb = h.sandbox
    products = field_id(sb, "Products")
    chosen = sorted(sb.store.leads)[:14]
    shared, pair, absent = chosen[:6], chosen[6:8], chosen[8:14]
    for i in shared:
        sb.store.leads[i].custom[products] = ["CRM", "Dialer"]
    for n, i in enumerate(pair):
        sb.store.leads[i].custom[products] = [["API"], ["Email", "Reporting"]][n]
    for i in absent:
        sb.store.leads[i].custom.pop(products, None)
    before = state(sb)
    done = await edit(
        h,
        {
            "filter": {"lead_ids": chosen},
            "edit": {
                "type": "set_custom_field",
                "custom_field": "Products",
                "values": ["Reporting"],
            },
        },
    )
    assert all(sb.store.leads[i].custom[products] == ["Reporting"] for i in chosen)
    document = await load(h, done["snapshot"])
    assert document["field"] == f"custom.{products}"
    assert document["leads"] == {
        **{i: ["CRM", "Dialer"] for i in shared},
        pair[0]: ["API"],
        pair[1]: ["Email", "Reporting"],
        **{i: None for i in absent},
    }

    h.clear()
    job_id = done["job"]["id"]
    sent_at = datetime.fromtimestamp(h.clock.time(), tz=UTC).isoformat()  # the clock stands
    reverted = await revert(h, job_id)
    exact = [
        (
            "POST",
            "bulk_action/edit/",
            {
                "s_query": ids_query(shared),
                "send_done_email": True,
                "type": "set_custom_field",
                "custom_field_id": products,
                "custom_field_values": ["CRM", "Dialer"],
                "custom_field_operation": "replace",
            },
        ),
        (
            "POST",
            "bulk_action/edit/",
            {
                "s_query": ids_query(absent),
                "send_done_email": True,
                "type": "clear_custom_field",
                "custom_field_id": products,
            },
        ),
        ("PUT", f"lead/{pair[0]}/", {f"custom.{products}": ["API"]}),
        ("PUT", f"lead/{pair[1]}/", {f"custom.{products}": ["Email", "Reporting"]}),
    ]
    writes = [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()]
    assert writes == exact
    assert state(sb) == before
    returns = [
        {"value": ["CRM", "Dialer"], "leads": 6},
        {"value": None, "leads": 6},
        {"value": ["API"], "leads": 1},
        {"value": ["Email", "Reporting"], "leads": 1},
    ]
    requests = [{"method": m, "path": "/" + p, "body": b} for m, p, b in exact]
    # The whole plan is the resource; the result shows the first three of each list.
    resource = await h.client.read_resource(f"close://reverts/{job_id}")
    (content,) = resource.contents
    assert isinstance(content, types.TextResourceContents)
    document = json.loads(content.text)
    plan = {
        "job_id": job_id,
        "field": f"custom.{products}",
        "returns": returns,
        "returns_count": 4,
        "left_alone": {
            "changed_since": [],
            "changed_since_count": 0,
            "already_back": 0,
            "not_found": [],
            "not_found_count": 0,
        },
        "requests": requests,
        "requests_count": 4,
        "requests_shown": "exact",
        "plan_sha256": document["plan"]["plan_sha256"],
    }
    jobs = reverted["result"]["jobs"]
    assert document == {
        "job_id": job_id,
        "plan": plan,
        "sent": [
            {"sent_at": sent_at, "job_id": jobs[0]},
            {"sent_at": sent_at, "job_id": jobs[1]},
            {"sent_at": sent_at, "lead_id": pair[0]},
            {"sent_at": sent_at, "lead_id": pair[1]},
        ],
    }
    shown = {
        **plan,
        "returns": returns[:3],
        "requests": requests[:3],
        "full_plan": f"close://reverts/{job_id}",
    }
    labels = [
        ('["CRM", "Dialer"]', 6),
        ("empty", 6),
        ('["API"]', 1),
    ]
    assert reverted == {
        "status": "submitted",
        "tool": "revert_bulk_edit",
        "message": f"Submitted: Revert {job_id}: put the old value back on 14 leads (2 bulk "
        "edit jobs and 2 lead updates). Follow each job with wait_for_bulk_job: `job` is the "
        "first, result.jobs the first few, the resource preview.request.full_plan every one.",
        "preview": {
            "path": "/bulk_action/edit/",
            "request": shown,
            "matched": 14,
            "sample": [],  # shown with the token, not repeated (issue 26)
            "rendering": None,
            "notes": [
                *(
                    f"{n} lead{'s' if n != 1 else ''} return to custom.{products} {label}."
                    for label, n in labels
                ),
                "1 leads return to 1 other value (the resource full_plan lists them).",
                "Sends 2 bulk edit jobs and 2 single-lead updates, in order; follow the jobs "
                "with wait_for_bulk_job. The revert itself takes no snapshot.",
            ],
        },
        "confirmation_token": None,
        "expires_at": None,
        "reason": None,
        "job": reverted["job"],
        "result": {
            "jobs": jobs,
            "jobs_count": 2,
            "updated_leads": pair,
            "updated_leads_count": 2,
            "leads": 14,
        },
        "snapshot": None,
        "crm_data_notice": CRM_DATA_NOTICE,
    }
    assert reverted["job"]["id"] == jobs[0]
    # What Close echoes of an edit job (the strict sandbox echoes no more).
    assert reverted["job"]["details"] == {
        "type": "set_custom_field",
        "custom_field_name": "Products",
    }


# -- a third party changed some leads since the edit ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True)
async def test_leads_changed_since_are_reported_and_left_alone(h: Harness) -> None:
    sb = h.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(h, QUALIFIED_TO_CUSTOMER)
    others = qualified[:2]
    client = h.runtime.client_for()
    for i in others:  # someone else, through Close's API
        await client.put(f"lead/{i}/", {"status_id": status_id(sb, "Bad Fit")})

    h.clear()
    reverted = await revert(h, done["job"]["id"])
    left = reverted["preview"]["request"]["left_alone"]
    assert left["changed_since"] == [
        {
            "id": i,
            "value_now": status_id(sb, "Bad Fit"),
            "value_before": status_id(sb, "Qualified"),
        }
        for i in others
    ]
    assert left["changed_since_count"] == 2
    assert reverted["preview"]["matched"] == len(qualified) - 2
    assert reverted["preview"]["notes"][1] == (
        "2 leads were changed by someone else since the edit and are left alone "
        "(left_alone.changed_since). Pass include_changed_since=true to put them back as well."
    )
    assert [(r.method, (r.json or {})["s_query"]) for r in h.writes()] == [
        ("POST", ids_query(qualified[2:]))
    ]
    expected = dict(before)
    for i in others:
        expected[i] = (before[i][0], status_id(sb, "Bad Fit"), before[i][2])
    assert state(sb) == expected

    # Asked to, the revert puts them back too: two leads, two PUTs.
    h.clear()
    await revert(h, done["job"]["id"], include_changed_since=True)
    assert [(r.method, r.path.removeprefix(API), r.json) for r in h.writes()] == [
        ("PUT", f"lead/{i}/", {"status_id": status_id(sb, "Qualified")}) for i in others
    ]
    assert state(sb) == before


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(audited=True, confirm="edit")
async def test_revert_token_binds_the_whole_plan(h: Harness) -> None:
    sb = h.sandbox
    done = await edit(h, QUALIFIED_TO_CUSTOMER)
    job_id = done["job"]["id"]
    first = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert first["status"] == "confirmation_required"
    moved = sorted((await load(h, done["snapshot"]))["leads"])[0]
    sb.store.leads[moved].status_id = status_id(sb, "Canceled")
    h.clear()
    second = await h.call(
        "revert_bulk_edit",
        {"job_id": job_id, "confirmation_token": first["confirmation_token"]},
    )
    assert second["status"] == "refused"
    assert second["reason"] == (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert second["preview"]["request"]["left_alone"]["changed_since_count"] == 1
    assert h.writes() == []


@pytest.mark.harness(audited=True)
async def test_revert_refuses_while_the_edit_runs_and_without_a_snapshot(
    tmp_path: Path, h: Harness
) -> None:
    args = QUALIFIED_TO_CUSTOMER
    first = await h.call("create_bulk_edit", args)
    token = first["confirmation_token"]
    result = await h.call("create_bulk_edit", {**args, "confirmation_token": token})
    job_id = result["job"]["id"]
    error = await h.error("revert_bulk_edit", {"job_id": job_id})
    assert error == (
        "job_id: the edit is still created; wait for it (wait_for_bulk_job) or pause it "
        "(pause_bulk_job) before reverting"
    )
    error = await h.error("revert_bulk_edit", {"job_id": "bulkedit_unknown0"})
    assert error.startswith(
        f"No snapshot for bulkedit_unknown0 in the state store ({h.runtime.store!r}): "
    )


@pytest.mark.harness(audited=True)
async def test_revert_retried_while_its_jobs_run_is_refused_and_sends_nothing_twice(
    h: Harness,
) -> None:
    sb = h.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(h, QUALIFIED_TO_CUSTOMER)
    job_id = done["job"]["id"]
    snapshot = await load(h, done["snapshot"])
    first = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert first["status"] == "confirmation_required"
    token = first["confirmation_token"]
    first = await h.call("revert_bulk_edit", {"job_id": job_id, "confirmation_token": token})
    assert first["status"] == "submitted"
    [revert_job] = first["result"]["jobs"]
    assert first["job"]["id"] == revert_job
    # The revert's job id is recorded as soon as it was sent: one line appended to its
    # revert records, the snapshot itself unchanged.
    assert [r["job_id"] for r in await reverts(h, job_id)] == [revert_job]
    assert await load(h, done["snapshot"]) == snapshot

    # While it runs its leads still hold the edited value: a retry is refused, unsent.
    h.clear()
    for args in ({"job_id": job_id}, {"job_id": job_id, "dry_run": True}):
        error = await h.error("revert_bulk_edit", args)
        assert error == (
            f"job_id: the revert job {revert_job} sent by an earlier revert_bulk_edit call "
            "is still created: its leads still hold the edited value, so a new revert "
            "would send the same edits again. Wait for it (wait_for_bulk_job), then call "
            "again: it plans only what is still to do."
        )
    assert h.writes() == []
    assert ("GET", f"bulk_action/edit/{revert_job}/", None) in sent(h)

    # Once it is done, what is left is planned: two leads moved back by someone else go
    # back with one PUT each, recorded in the snapshot too.
    await run_to_done(h, revert_job)
    assert state(sb) == before
    moved = qualified[:2]
    for i in moved:
        sb.store.leads[i].status_id = status_id(sb, "Customer")
    h.clear()
    again = await h.call("revert_bulk_edit", {"job_id": job_id})
    assert again["status"] == "confirmation_required"
    token = again["confirmation_token"]
    again = await h.call("revert_bulk_edit", {"job_id": job_id, "confirmation_token": token})
    assert again["status"] == "submitted"
    assert again["preview"]["request"]["left_alone"]["already_back"] == len(qualified) - 2
    assert [(r.method, r.path.removeprefix(API)) for r in h.writes()] == [
        ("PUT", f"lead/{i}/") for i in moved
    ]
    assert [r.get("job_id") or r.get("lead_id") for r in await reverts(h, job_id)] == [
        revert_job,
        *moved,
    ]
    assert state(sb) == before


@pytest.mark.harness(audited=True)
async def test_revert_outcome_unknown_does_not_claim_a_search_it_never_made(h: Harness) -> None:
    args = {"filter": {"lead_status": "Qualified"}}
    done = await edit(h, {**args, "edit": {"type": "set_lead_status", "lead_status": "Customer"}})
    h.sandbox.inject_faults("timeout_after_commit", path_prefix="bulk_action/edit/", method="POST")
    job = {"job_id": done["job"]["id"]}
    first = await h.call("revert_bulk_edit", job)
    assert first["status"] == "confirmation_required"
    token = first["confirmation_token"]
    error = await h.error("revert_bulk_edit", {**job, "confirmation_token": token})
    assert "The revert stopped at request 1 of 1" in error
    assert "Nothing matching was found" not in error
    lines = [e for e in h.audit.entries() if e["tool"] == "revert_bulk_edit"]
    assert [e["outcome"] for e in lines] == ["outcome_unknown", "outcome_unknown"]


@pytest.mark.harness(audited=True, confirm="edit")
async def test_three_concurrent_revert_confirmations_send_one_revert(
    tmp_path: Path, start_harness: StartHarness
) -> None:
    a, b = await sharing(start_harness, tmp_path)
    sb = a.sandbox
    qualified = with_status(sb, "Qualified")
    before = state(sb)
    done = await edit(a, QUALIFIED_TO_CUSTOMER)
    job_id = done["job"]["id"]
    # Three previews (two through A, one through B), each with its own token...
    confirmations = []
    for h in (a, a, b):
        preview = await h.call("revert_bulk_edit", {"job_id": job_id})
        assert preview["status"] == "confirmation_required"
        assert preview["preview"]["matched"] == len(qualified)
        confirmations.append((h, preview["confirmation_token"]))
    a.clear()
    outcomes: list[tuple[str, str]] = []

    async def confirm(h: Harness, token: str) -> None:
        args = {"job_id": job_id, "confirmation_token": token}
        result = await h.call_raw("revert_bulk_edit", args)
        if result.is_error:
            outcomes.append(("error", str(result.content[0].text)))  # type: ignore[union-attr]
        else:
            assert result.structured_content is not None
            outcomes.append((result.structured_content["status"], ""))

    # ... confirmed at once: exactly one revert job is sent, the others send nothing.
    async with anyio.create_task_group() as tasks:
        for h, token in confirmations:
            tasks.start_soon(confirm, h, token)
    posts = [r for r in a.writes() if r.path.removeprefix(API) == "bulk_action/edit/"]
    assert len(posts) == 1
    assert len(a.writes()) == 1
    assert sorted(status for status, _ in outcomes) == ["error", "error", "submitted"]
    [revert_job] = [r["job_id"] for r in await reverts(a, job_id)]
    for status, text in outcomes:
        # Refused as being sent right now, as sent since its plan, or as still running.
        if status == "error":
            assert (
                f"Another revert_bulk_edit of {job_id}" in text and "nothing was sent" in text
            ) or f"the revert job {revert_job} sent by an earlier revert_bulk_edit call" in text
    # While that job runs, either server refuses a new revert, naming it.
    for h in (a, b):
        error = await h.error("revert_bulk_edit", {"job_id": job_id})
        assert f"the revert job {revert_job} sent by an earlier revert_bulk_edit call" in error
    await run_to_done(a, revert_job)
    assert state(sb) == before
