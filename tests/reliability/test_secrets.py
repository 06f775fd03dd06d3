"""The API key never leaks: every tool, errors, refusals, faults and elicitation, with a
recognizable key, and every result text, structured content, log record (DEBUG, all loggers,
httpx included), audit line, exception text and repr is scanned for it. And the key is never
accepted on the command line."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any, Final

import pytest

from close_mcp.cli.main import build_parser
from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from tests.harness import Harness, accept
from tests.reliability.support import record

pytestmark = pytest.mark.anyio

CANARY: Final = "api_LEAKCANARY_5f3e9a1c7b2d4e6f8a0b1c2d3e4f5a6b"
FORMS: Final = (
    CANARY,
    "LEAKCANARY",
    base64.b64encode(f"{CANARY}:".encode()).decode(),
    base64.b64encode(f"{CANARY}:".encode()).decode()[:24],
)
QUALIFIED: Final = {"filter": {"lead_status": "Qualified"}}


async def _scenarios(h: Harness, seen: list[str]) -> int:
    """Every tool, bad arguments, refusals, faults; returns the number of calls."""
    store = h.sandbox.store
    lead = next(iter(store.leads.values()))
    account = next(iter(store.email_accounts.values()))
    identity = account.identities[0]["email"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("search_leads", QUALIFIED),
        ("search_leads", {"s_query": {"type": "nope"}}),
        ("search_leads", {"s_query": {"type": "match_all"}}),
        ("lookup", {"kind": "users"}),
        ("lookup", {"kind": "nothing"}),
        ("list_bulk_jobs", {}),
        ("get_bulk_job", {"job_id": "bulkedit_missing"}),
        ("wait_for_bulk_job", {"job_id": "bulkdelete_missing", "timeout_s": 2}),
        ("pause_bulk_job", {"job_id": "bulkedit_missing"}),
        ("resume_bulk_job", {"job_id": "bulkemail_missing"}),
        (
            "create_bulk_edit",
            {**QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "X"}},
        ),
        ("create_bulk_email", {**QUALIFIED, "template": "Intro", "confirmation_token": "forged"}),
        ("create_bulk_sequence_subscription", {**QUALIFIED, "action_type": "subscribe"}),
        ("create_bulk_delete", {"s_query": {"type": "match_all"}}),
        ("send_email", {"lead_id": lead.id, "body_text": "Hi", "status": "outbox"}),
        ("revert_bulk_edit", {"job_id": "bulkedit_missing"}),
        ("cancel_email", {"activity_id": "acti_missing"}),
    ]
    for tool, args in calls:
        seen.append((await h.call_raw(tool, args)).model_dump_json())
    # confirmed writes, with elicitation, through to submission
    edit = {**QUALIFIED, "edit": {"type": "set_lead_status", "lead_status": "Customer"}}
    first = await h.call("create_bulk_edit", edit)
    token = first["confirmation_token"]
    done = await h.call("create_bulk_edit", {**edit, "confirmation_token": token})
    seen += [json.dumps(first), json.dumps(done)]
    confirmed_calls: list[tuple[str, dict[str, Any]]] = [
        ("create_bulk_delete", {"filter": {"lead_status": "Bad Fit"}}),
        (
            "send_email",
            {
                "lead_id": lead.id,
                "to": ["a@example.com"],
                "subject": "S",
                "body_text": "B",
                "status": "outbox",
                "send_in": 30,  # so cancel_email can take it back
                "sender": f'"Sandra" <{identity}>',
            },
        ),
    ]
    for tool, args in confirmed_calls:
        first = await h.call(tool, args)
        second = await h.call(tool, {**args, "confirmation_token": first["confirmation_token"]})
        seen += [json.dumps(first), json.dumps(second)]
    # the email just sent to the outbox, taken back (confirmed too)
    cancel = {"activity_id": second["result"]["id"]}
    first = await h.call("cancel_email", cancel)
    second = await h.call(
        "cancel_email", {**cancel, "confirmation_token": first["confirmation_token"]}
    )
    assert second["status"] == "submitted", second
    seen += [json.dumps(first), json.dumps(second)]

    async def raw(tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await h.call_raw(tool, args)
        seen.append(result.model_dump_json())
        return result.structured_content or {}

    job = {"job_id": done["job"]["id"]}
    await raw("get_bulk_job", job)
    await raw("pause_bulk_job", job)
    first = await raw("resume_bulk_job", job)  # resuming an edit is confirmed by default
    assert first["status"] == "confirmation_required", first
    await raw("resume_bulk_job", {**job, "confirmation_token": first["confirmation_token"]})
    await raw("wait_for_bulk_job", {**job, "timeout_s": 30})
    first = await raw("revert_bulk_edit", job)  # and so is a revert
    assert first["status"] == "confirmation_required", first
    await raw("revert_bulk_edit", {**job, "confirmation_token": first["confirmation_token"]})
    # faults: 401 from Close, 5xx storms, ambiguous POSTs
    h.sandbox.inject_faults("5xx", 4, "data/search/", "POST")
    seen.append((await h.call_raw("search_leads", QUALIFIED)).model_dump_json())
    h.sandbox.inject_faults("rate_limit", 13, "status/lead/", "GET")
    seen.append((await h.call_raw("lookup", {"kind": "lead_statuses"})).model_dump_json())
    first = await h.call("create_bulk_email", {**QUALIFIED, "template": "Intro"})
    h.sandbox.inject_faults("5xx", 1, "bulk_action/email/", "POST")
    confirmed = {
        **QUALIFIED,
        "template": "Intro",
        "confirmation_token": first["confirmation_token"],
    }
    seen.append((await h.call_raw("create_bulk_email", confirmed)).model_dump_json())
    h.sandbox.api_key = "api_someone_else"  # Close now rejects our key: 401
    seen.append((await h.call_raw("search_leads", QUALIFIED)).model_dump_json())
    return len(seen)


async def test_the_key_appears_nowhere(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "mcp", "close_mcp"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    clock = FakeClock()
    sandbox = Sandbox(n_leads=60, clock=clock, api_key=CANARY)
    seen: list[str] = []
    async with Harness.start(
        sandbox=sandbox,
        clock=clock,
        env={"CLOSE_API_KEY": CANARY},
        audit_dir=tmp_path,
        elicit=lambda message: (
            accept({"count": int(message.rsplit("(", 1)[1].split(")")[0])})(message)
            if "type the number" in message
            else accept({"approve": True})(message)
        ),
    ) as h:
        logging.getLogger("httpx").setLevel(logging.DEBUG)  # build_server quiets it
        calls = await _scenarios(h, seen)
        reprs = [repr(h.runtime), repr(h.runtime.settings), repr(h.runtime.client_for())]
        reprs += [str(h.runtime.settings), repr(h.runtime.tokens), repr(h.audit)]
    audit = (tmp_path / "audit.jsonl").read_text()
    logs = caplog.text + "".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.exc_info!r}" for r in caplog.records
    )
    haystacks = {
        "results": "\n".join(seen),
        "logs": logs,
        "audit": audit,
        "reprs": "\n".join(reprs),
    }
    leaks = {where: [f for f in FORMS if f in text] for where, text in haystacks.items()}
    assert leaks == {where: [] for where in haystacks}
    assert audit.count("\n") >= 4  # the scan covered real audit lines
    assert sandbox.requests  # and real traffic
    record(
        "secrets",
        f"{calls} results, {len(caplog.records)} log records, {audit.count(chr(10))} audit "
        "lines and the runtime's reprs scanned for the key (raw and Basic-auth base64): 0 leaks",
    )


def test_the_key_is_never_accepted_on_the_command_line() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert isinstance(subparsers, dict)
    options = [
        option
        for p in [parser, *subparsers.values()]
        for action in p._actions
        for option in action.option_strings
    ]
    assert options  # the scan saw the real flags
    assert not [o for o in options if "key" in o.lower() or "token" in o.lower()]
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["serve", "--api-key", CANARY])
    assert exited.value.code == 2
