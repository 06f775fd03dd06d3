"""Results as a model reads them: compact text, and bounded however large the plan.

Token counts are o200k_base over the text content a client receives (bench/tokens.py);
`bench/results.py` prints the same figures for the demo and a 50,000-lead revert.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import types

from bench.tokens import count_tokens
from close_mcp.safety import revert_plan as planner
from tests.harness import Harness, StartHarness, run_to_done, text_of

pytestmark = pytest.mark.anyio

BOUND = 1500
EVERY_LEAD = {"s_query": {"type": "match_all"}, "allow_all_leads": True}
EDIT = {"type": "set_lead_status", "lead_status": "Qualified"}


async def edit_everything(h: Harness) -> str:
    args = {**EVERY_LEAD, "edit": EDIT}
    first = await h.call("create_bulk_edit", args)
    done = await h.call(
        "create_bulk_edit", {**args, "confirmation_token": first["confirmation_token"]}
    )
    job_id: str = done["job"]["id"]
    await run_to_done(h, job_id, step=60.0)
    return job_id


async def revert_answers(
    h: Harness, job_id: str
) -> tuple[types.CallToolResult, types.CallToolResult]:
    """The revert's confirmation request and its confirmed result, as the client got them."""
    asked = await h.call_raw("revert_bulk_edit", {"job_id": job_id})
    content = asked.structured_content
    assert content is not None
    assert content["status"] == "confirmation_required", text_of(asked)
    token = content["confirmation_token"]
    confirmed = await h.call_raw(
        "revert_bulk_edit", {"job_id": job_id, "confirmation_token": token}
    )
    assert confirmed.structured_content is not None, text_of(confirmed)
    assert confirmed.structured_content["status"] == "submitted", text_of(confirmed)
    return asked, confirmed


def compact(result: types.CallToolResult) -> str:
    """The text a client hands the model: exactly the structured result, compact."""
    text = text_of(result)
    assert text == json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
    return text


async def read_plan(h: Harness, job_id: str) -> dict[str, Any]:
    resource = await h.client.read_resource(f"close://reverts/{job_id}")
    (content,) = resource.contents
    assert isinstance(content, types.TextResourceContents)
    document: dict[str, Any] = json.loads(content.text)
    return document


async def test_a_revert_of_fifty_bulk_edits_answers_a_bounded_summary(
    monkeypatch: pytest.MonkeyPatch, start_harness: StartHarness
) -> None:
    """A 50,000-lead revert is 50 bulk edits of 1,000 leads; here 50 of 12 (same shape)."""
    monkeypatch.setattr(planner, "IDS_PER_REQUEST", 12)
    h = await start_harness(n_leads=750)
    job_id = await edit_everything(h)
    asked, confirmed = await revert_answers(h, job_id)
    result = confirmed.structured_content
    assert result is not None
    document = await read_plan(h, job_id)
    plan = document["plan"]
    jobs = [r["job_id"] for r in document["sent"]]
    assert plan["requests_count"] == len(plan["requests"]) == len(jobs) > 40
    # The result: the first three of each list, the counts, the first job, and where the rest is.
    request = result["preview"]["request"]
    assert request == {
        **plan,
        "returns": plan["returns"][:3],
        "requests": plan["requests"][:3],
        "full_plan": f"close://reverts/{job_id}",
    }
    assert request["requests_shown"] == "summarized"  # each bulk edit: count and first ids
    assert result["job"]["id"] == jobs[0]
    assert result["result"] == {
        "jobs": jobs[:3],
        "jobs_count": len(jobs),
        "updated_leads": [],
        "updated_leads_count": 0,
        "leads": result["preview"]["matched"],
    }
    assert count_tokens(compact(asked)) < BOUND
    assert count_tokens(compact(confirmed)) < BOUND
    assert sorted(r.json["lead_status_id"] for r in h.writes()[-len(jobs) :]) == sorted(
        r["body"]["lead_status_id"] for r in plan["requests"]
    )


async def test_revert_result_tokens_do_not_grow_with_the_edit(
    start_harness: StartHarness,
) -> None:
    """1,000 and 4,000 leads (about 750 and 3,000 put back): the same size but for the ids
    shown, under the bound; bench/results.py shows a 50,000-lead revert, and the test above
    a plan of 50 bulk edits."""
    sizes = []
    for leads in (1_000, 4_000):
        h = await start_harness(n_leads=leads)
        asked, confirmed = await revert_answers(h, await edit_everything(h))
        sizes.append((count_tokens(compact(asked)), count_tokens(compact(confirmed))))
    (small_ask, small_done), (large_ask, large_done) = sizes
    assert max(small_ask, small_done, large_ask, large_done) < BOUND, sizes
    # Equal but for the random ids shown (a base62 id is 10 to 16 tokens).
    assert abs(large_ask - small_ask) <= 40, sizes
    assert abs(large_done - small_done) <= 40, sizes
