"""`safety.revert_plan`, the pure planner: a snapshot's `(lead_id, old value)` rows and the
leads' values now in, the exact requests that put the old values back out (and what is left
alone). Nothing here reads Close or the store."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from close_mcp.safety import revert_plan
from close_mcp.safety.revert_plan import (
    ChangedSince,
    Plan,
    PlanBuilder,
    PlannedRequest,
    Return,
    digest_serving,
    plan_body,
    plan_document,
    value_after,
)
from close_mcp.safety.snapshot_reader import EditSnapshot
from close_mcp.selection.sample import LeadSample
from tests.queries import lead_ids_query

pytestmark = pytest.mark.anyio

SET_WON = {"type": "set_lead_status", "lead_status_id": "stat_won", "send_done_email": False}
ADD_VIP = {
    "type": "set_custom_field",
    "custom_field_id": "cf_tags",
    "custom_field_values": ["vip"],
    "custom_field_operation": "add",
}


def snapshot(request: dict[str, Any], field: str, count: int) -> EditSnapshot:
    return EditSnapshot(
        where="store:snapshot:bulkedit_x",
        job_id="bulkedit_x",
        created_at="2026-12-07T00:00:00+00:00",
        request=request,
        field=field,
        leads_key="snapshot-leads:x",
        leads_count=count,
    )


def lead(lead_id: str, field: str, value: Any) -> dict[str, Any]:
    return {"id": lead_id, "display_name": lead_id.upper(), "status_label": "S", field: value}


def plan(
    snap: EditSnapshot,
    batches: list[list[tuple[str, Any]]],
    now: dict[str, Any],
    include_changed_since: bool = False,
) -> Plan:
    """Feed the builder batch by batch, each with the leads of it that still exist."""
    builder = PlanBuilder(snap, include_changed_since)
    for batch in batches:
        current = {i: lead(i, snap.field, now[i]) for i, _ in batch if i in now}
        builder.add(batch, current)
    return builder.finish()


STATUS_ROWS = [
    [("lead_a", "stat_new"), ("lead_b", "stat_new")],
    [("lead_c", "stat_lost"), ("lead_d", "stat_new"), ("lead_e", "stat_lost")],
]
STATUS_NOW = {
    "lead_a": "stat_won",  # what the edit set: goes back
    "lead_b": "stat_new",  # back already
    "lead_c": "stat_other",  # someone changed it since
    "lead_e": "stat_won",  # goes back; lead_d no longer exists
}


def test_each_lead_goes_back_is_left_or_reported() -> None:
    assert plan(snapshot(SET_WON, "status_id", 5), STATUS_ROWS, STATUS_NOW) == Plan(
        requests=[
            PlannedRequest("PUT", "/lead/lead_e/", {"status_id": "stat_lost"}, ("lead_e",)),
            PlannedRequest("PUT", "/lead/lead_a/", {"status_id": "stat_new"}, ("lead_a",)),
        ],
        returns=[Return("stat_lost", 1), Return("stat_new", 1)],
        changed_since=[ChangedSince("lead_c", value_now="stat_other", value_before="stat_lost")],
        already_back=1,
        not_found=["lead_d"],
        sample=[
            LeadSample(id="lead_a", display_name="LEAD_A", status_label="S"),
            LeadSample(id="lead_e", display_name="LEAD_E", status_label="S"),
        ],
    )


def test_include_changed_since_puts_those_back_too() -> None:
    got = plan(snapshot(SET_WON, "status_id", 5), STATUS_ROWS, STATUS_NOW, True)
    assert got.returns == [Return("stat_lost", 2), Return("stat_new", 1)]
    assert [(r.method, r.path, r.body) for r in got.requests] == [
        ("PUT", "/lead/lead_c/", {"status_id": "stat_lost"}),
        ("PUT", "/lead/lead_e/", {"status_id": "stat_lost"}),
        ("PUT", "/lead/lead_a/", {"status_id": "stat_new"}),
    ]
    assert got.changed_since == [ChangedSince("lead_c", "stat_other", "stat_lost")]  # reported


def test_up_to_per_lead_max_leads_of_a_value_are_put_back_one_by_one() -> None:
    """Three leads (PER_LEAD_MAX) are three PUTs, no job to follow."""
    ids = ["lead_1", "lead_2", "lead_3"]
    now = dict.fromkeys(ids, "stat_won")
    got = plan(snapshot(SET_WON, "status_id", 3), [[(i, "stat_new") for i in ids]], now)
    assert got.requests == [
        PlannedRequest("PUT", f"/lead/{i}/", {"status_id": "stat_new"}, (i,)) for i in ids
    ]
    assert not got.starts_jobs


def test_a_large_group_is_bulk_edits_over_exactly_its_leads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More than PER_LEAD_MAX leads to one value: one bulk edit per IDS_PER_REQUEST ids, in
    lead id order, with the edit's own send_done_email."""
    monkeypatch.setattr(revert_plan, "IDS_PER_REQUEST", 3)
    ids = [f"lead_{n}" for n in (5, 1, 4, 2, 3)]  # saved out of order
    got = plan(
        snapshot(SET_WON, "status_id", 5),
        [[(i, "stat_new") for i in ids]],
        dict.fromkeys(ids, "stat_won"),
    )
    edit = {"send_done_email": False, "type": "set_lead_status", "lead_status_id": "stat_new"}
    assert got.requests == [
        PlannedRequest(
            "POST",
            "/bulk_action/edit/",
            {"s_query": lead_ids_query(["lead_1", "lead_2", "lead_3"]), **edit},
            ("lead_1", "lead_2", "lead_3"),
        ),
        PlannedRequest(
            "POST",
            "/bulk_action/edit/",
            {"s_query": lead_ids_query(["lead_4", "lead_5"]), **edit},
            ("lead_4", "lead_5"),
        ),
    ]
    assert got.returns == [Return("stat_new", 5)]
    assert got.starts_jobs
    assert got.leads == 5
    assert [r.send_path for r in got.requests] == ["bulk_action/edit/"] * 2


def test_a_multi_value_field_compares_as_a_set_and_an_absent_value_is_cleared() -> None:
    field = "custom.cf_tags"
    rows = [
        ("lead_1", ["a"]),  # now ["vip", "a"]: what the add left, in another order
        ("lead_2", None),  # now ["vip"]: goes back to empty
        ("lead_3", ["vip"]),  # the add changed nothing: back already
        ("lead_4", ["a"]),  # now ["b"]: someone else's value
    ]
    now = {"lead_1": ["vip", "a"], "lead_2": ["vip"], "lead_3": ["vip"], "lead_4": ["b"]}
    got = plan(snapshot(ADD_VIP, field, 4), [rows], now)
    assert [(r.method, r.path, r.body) for r in got.requests] == [
        ("PUT", "/lead/lead_1/", {field: ["a"]}),
        ("PUT", "/lead/lead_2/", {field: None}),
    ]
    assert got.already_back == 1
    assert [c.id for c in got.changed_since] == ["lead_4"]


def test_bulk_edits_of_a_custom_field_replace_or_clear() -> None:
    field = "custom.cf_tags"
    tags = [(f"lead_t{n}", ["a", "b"]) for n in range(4)]
    empty: list[tuple[str, Any]] = [(f"lead_e{n}", []) for n in range(5)]
    now = {i: ["vip", *(old or [])] for i, old in tags + empty}
    got = plan(snapshot(ADD_VIP, field, 9), [tags + empty], now)
    assert [{k: v for k, v in r.body.items() if k != "s_query"} for r in got.requests] == [
        {"send_done_email": True, "type": "clear_custom_field", "custom_field_id": "cf_tags"},
        {
            "send_done_email": True,
            "type": "set_custom_field",
            "custom_field_id": "cf_tags",
            "custom_field_values": ["a", "b"],
            "custom_field_operation": "replace",
        },
    ]
    assert [r.lead_ids for r in got.requests] == [
        tuple(i for i, _ in empty),
        tuple(i for i, _ in tags),
    ]


def test_the_plan_is_the_same_whatever_order_the_snapshot_was_saved_in() -> None:
    snap = snapshot(SET_WON, "status_id", 5)
    forward = plan(snap, STATUS_ROWS, STATUS_NOW)
    backward = plan(snap, [list(reversed(b)) for b in reversed(STATUS_ROWS)], STATUS_NOW)
    assert forward == backward


async def test_the_digest_binds_every_exact_request() -> None:
    snap = snapshot(SET_WON, "status_id", 5)
    got = plan(snap, STATUS_ROWS, STATUS_NOW)
    exact = json.dumps([r.shown() for r in got.requests], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(exact.encode()).hexdigest()
    assert await digest_serving(got.requests) == digest
    assert plan_document(snap, got, False)["plan_sha256"] == digest
    other = plan(snap, STATUS_ROWS, {**STATUS_NOW, "lead_a": "stat_lost"})  # lead_a changed
    assert plan_document(snap, other, False)["plan_sha256"] != digest


def test_the_preview_body_is_bounded_and_names_the_rest() -> None:
    """Above FULL_PLAN_MAX leads the requests are summarized (count and first ids), each list
    cut to SHOWN_MAX with its count; the whole plan is the resource."""
    rows = [(f"lead_{n:03}", f"stat_{n % 5}") for n in range(40)]
    now = {i: "stat_won" for i, _ in rows}
    snap = snapshot(SET_WON, "status_id", 40)
    got = plan(snap, [rows], now)
    body = plan_body(snap, got, False)
    assert body["full_plan"] == "close://reverts/bulkedit_x"
    assert body["returns"] == [{"value": f"stat_{n}", "leads": 8} for n in range(3)]
    assert (body["returns_count"], body["requests_count"]) == (5, 5)
    assert body["requests_shown"] == "summarized"
    assert body["requests"][0] == {
        "method": "POST",
        "path": "/bulk_action/edit/",
        "body": {
            "send_done_email": False,
            "type": "set_lead_status",
            "lead_status_id": "stat_0",
            "lead_ids": {"count": 8, "first": ["lead_000", "lead_005", "lead_010"]},
        },
    }
    assert len(body["requests"]) == 3
    assert body["plan_sha256"] == plan_document(snap, got, False)["plan_sha256"]


def test_value_after_follows_closes_replace_add_remove() -> None:
    multi = {"type": "set_custom_field", "custom_field_id": "cf", "custom_field_values": ["x"]}
    assert value_after(multi, ["a"]) == ["x"]
    assert value_after({**multi, "custom_field_operation": "add"}, "a") == ["a", "x"]
    assert value_after({**multi, "custom_field_operation": "remove"}, ["a", "x"]) == ["a"]
    assert value_after({"type": "clear_custom_field", "custom_field_id": "cf"}, "a") is None
    assert value_after(SET_WON, "stat_new") == "stat_won"
