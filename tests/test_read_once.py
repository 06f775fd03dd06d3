"""A confirmed edit, delete and revert read the selected leads once (issue 27).

The binding check (the leads are still the ones confirmed) and the snapshot or backup come
from the same pages; a revert plans from one read of the leads. Each test counts every
request that reached the sandbox during the confirmed call: one read pass (`search_cost`)
plus a few (the recount, the lookup for a job this token already made, the POST, the custom
field schema of a backup) and no more.
"""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.safety.snapshot_policy import search_cost
from tests.harness import Harness, run_to_done

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=1000)]

EVERY = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
EDIT = {"edit": {"type": "set_custom_field", "custom_field": "Lead Source", "value": "Fair"}}
FEW = 6  # requests beyond one read pass: recount and sample, every-lead count, replay lookup, ...


def _paths(h: Harness) -> list[str]:
    return [f"{r.method} {r.path}" for r in h.sandbox.requests]


async def _confirmed(h: Harness, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    first = await h.call(tool, args)
    assert first["status"] == "confirmation_required", first
    h.clear()
    done = await h.call(tool, {**args, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted", done
    return done


@pytest.mark.parametrize(
    ("tool", "extra"), [("create_bulk_edit", EDIT), ("create_bulk_delete", {})]
)
async def test_a_confirmed_edit_or_delete_reads_its_leads_once(
    h: Harness, tool: str, extra: dict[str, Any]
) -> None:
    done = await _confirmed(h, tool, {**EVERY, **extra})
    matched = done["preview"]["matched"]
    assert matched == 1000
    assert done["snapshot"] is not None
    paths = _paths(h)
    pass_ = search_cost(matched)  # 5 pages of 200
    assert len(paths) <= pass_ + FEW, paths
    assert sum(p.endswith("/data/search/") for p in paths) <= pass_ + 2, paths


async def test_a_confirmed_revert_plans_from_one_read(h: Harness) -> None:
    edited = await _confirmed(h, "create_bulk_edit", {**EVERY, **EDIT})
    await run_to_done(h, edited["job"]["id"])
    done = await _confirmed(h, "revert_bulk_edit", {"job_id": edited["job"]["id"]})
    sent = done["result"]["jobs_count"] + done["result"]["updated_leads_count"]
    paths = _paths(h)
    # The leads read back 1000 ids a query, 200 a page; then the plan's requests.
    assert len(paths) <= search_cost(1000) + sent + FEW, paths
