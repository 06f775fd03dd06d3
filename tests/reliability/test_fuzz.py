"""Fuzzing every tool from its live input schema, and far outside it.

For each tool in `tools/list`, hypothesis draws arguments two ways: from the tool's JSON input
schema (with realistic names from the sandbox mixed in, so calls reach name resolution,
previews and Close), and as hostile variations of those (wrong types, huge strings, deep
nesting, odd unicode, nulls, raw `s_query` fragments, unknown keys, missing arguments).

Every call must end in a result that matches the tool's output schema or in a tool error that
says why (the SDK's bare "Error executing tool X" is a crash). The server must keep serving.
Every action needs confirmation here (`confirm=edit,email,sequences,send,delete`) and no
fuzzed call carries a valid token, so nothing may reach the sandbox that writes, except what
needs no confirmation by design: a draft or logged email (`send_email` status draft, sent,
inbox). Close must never answer a request with 400: the server validates before sending.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import MCPError, types

from close_mcp.sandbox import RecordedRequest
from tests.harness import Harness, Mode, text_of
from tests.reliability.support import (
    API,
    SchemaStrategy,
    check_outcome,
    guarded_kind,
    is_write,
    mutate,
    portal_harness,
    record,
    sandbox_hints,
)

CONFIRM_ALL = "edit,email,sequences,send,delete"
EXAMPLES = {"legacy": 120, "auto": 30}  # per tool: about 2,000 calls, ~25 s of CPU
NOT_CONFIRMED_EMAIL = frozenset({"draft", "sent", "inbox"})
QUALIFIED = {"filter": {"lead_status": "Qualified"}}


def _allowed_write(method: str, path: str, body: Any) -> bool:
    """Writes that need no confirmation even with every action confirmable by policy: drafts
    and logged emails, and pausing or resuming a job (reversible)."""
    status = body.get("status") if isinstance(body, dict) else None
    if method == "POST" and path == API + "activity/email/":
        return status in NOT_CONFIRMED_EMAIL
    return (
        method == "PUT"
        and path.startswith(API + "bulk_action/")
        and body == {"status": "paused" if status == "paused" else "resuming"}
    )


def _still_serving(result: types.CallToolResult) -> None:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["total"] > 0


def _one_selection(args: dict[str, Any]) -> dict[str, Any]:
    """Schema-drawn arguments with at most one of filter and s_query, so more calls go deep."""
    if args.get("filter") is not None and args.get("s_query") is not None:
        return {k: v for k, v in args.items() if k != "s_query"}
    return args


def _seed_jobs(h: Harness) -> None:
    """A few jobs in the sandbox, so job tools also see ids that exist."""
    everything = {
        "s_query": {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]}
    }
    status = next(iter(h.sandbox.store.statuses))
    for kind, extra in (
        ("edit", {"type": "set_lead_status", "lead_status_id": status}),
        ("delete", {}),
    ):
        h.sandbox.jobs.create(kind, {**everything, **extra, "results_limit": 1}, h.clock.time())


def _fuzz_tool(
    portal: BlockingPortal, h: Harness, tool: types.Tool, mode: Mode, counts: Counter[str]
) -> None:
    schema = tool.input_schema
    valid = SchemaStrategy(schema, sandbox_hints(h)).object(schema)
    arguments = st.one_of(
        valid.map(lambda a: ("schema", _one_selection(a))),
        valid.flatmap(lambda base: mutate(base, schema)).map(lambda a: ("hostile", a)),
    )
    name = tool.name
    output = jsonschema.Draft202012Validator(tool.output_schema) if tool.output_schema else None

    async def one_call(args: Any) -> tuple[types.CallToolResult, list[RecordedRequest]]:
        seen = len(h.sandbox.requests)
        try:
            result = await h.call_raw(name, args)
        except MCPError as exc:
            raise AssertionError(f"{name}: protocol error {exc!r} for {args!r}") from exc
        new = h.sandbox.requests[seen:]
        _still_serving(await h.call_raw("search_leads", QUALIFIED))
        return result, new

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(arguments)
    def fuzz(drawn: tuple[str, Any]) -> None:
        kind, args = drawn
        result, new = portal.call(one_call, args)
        counts[kind] += 1
        counts["liveness"] += 1
        outcome = check_outcome(name, result)
        counts[outcome] += 1
        if outcome == "ok" and output is not None:
            output.validate(result.structured_content)
            status = (result.structured_content or {}).get("status")
            assert status != "submitted" or name == "send_email", result
        bad = [r for r in new if r.status == 400]
        assert not bad, f"{name}: Close answered 400 to {[(r.path, r.json) for r in bad]}"
        writes = [r for r in new if is_write(r)]
        for w in writes:
            assert guarded_kind(w) is None, f"{name} sent {w.method} {w.path} {w.json}"
            assert _allowed_write(w.method, w.path, w.json), (name, w.path, w.json)
        counts["writes"] += len(writes)

    fuzz()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_every_tool_survives_schema_and_hostile_arguments(mode: Mode) -> None:
    counts: Counter[str] = Counter()
    with portal_harness(mode=mode, confirm=CONFIRM_ALL, n_leads=120) as (portal, h):
        _seed_jobs(h)
        tools = portal.call(h.client.list_tools).tools
        assert len(tools) >= 10
        for tool in tools:
            _fuzz_tool(portal, h, tool, mode, counts)
        counts["tools"] = len(tools)
    calls = counts["schema"] + counts["hostile"]
    record(
        f"fuzz[{mode}]",
        f"{calls} fuzzed calls over {counts['tools']} tools ({counts['schema']} from the schema, "
        f"{counts['hostile']} hostile; {counts['ok']} results, {counts['error']} tool errors, "
        f"0 crashes) + {counts['liveness']} liveness searches; {counts['writes']} unconfirmed "
        "writes, all drafts or logged emails",
    )
