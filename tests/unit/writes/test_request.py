"""`writes.request`: a prepared `WriteRequest` is a value. Nothing edits it once built (a
safeguard's additions, a tool's later notes, the pipeline's own note come back as a copy), so
what a token was minted for is what is sent."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from close_mcp.config import load_settings
from close_mcp.selection.sample import LeadSample
from close_mcp.store.sqlite import SQLiteStore
from close_mcp.writes import background
from close_mcp.writes.audit import AuditLog
from close_mcp.writes.background import ServerJobs
from close_mcp.writes.pipeline import Pipeline
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.results import Preview
from close_mcp.writes.sender import WriteContext
from close_mcp.writes.tokens import ConfirmationTokens

pytestmark = pytest.mark.anyio

SAMPLE = LeadSample(id="lead_1", display_name="Acme", status_label="Qualified")
S_QUERY = {"type": "id", "value": "lead_1"}


def built(**extra: Any) -> WriteRequest:
    extra = {"sample": [SAMPLE], "notes": ["Selects 3 leads."], **extra}
    return WriteRequest(
        tool="create_bulk_delete",
        action="delete",
        path="lead/bulk_action/delete/",
        body={"s_query": S_QUERY, "send_done_email": False},
        matched=3,
        summary="Bulk delete: 3 leads",
        job_kind="delete",
        s_query=S_QUERY,
        **extra,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("matched", 0),
        ("summary", "Bulk delete: 0 leads"),
        ("already", "it is done already"),
        ("safeguard", None),
        ("notes", ["another"]),
        ("echo", {"type": "set_lead_status"}),
    ],
)
def test_setting_a_field_of_a_prepared_request_raises(field: str, value: Any) -> None:
    request = built()
    before = copy.deepcopy(request)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(request, field, value)
    assert request == before


def test_its_notes_and_sample_cannot_be_added_to() -> None:
    given = ["Selects 3 leads."]
    request = built(notes=given)
    given.append("added after it was built")  # the list it was built from is not the request's
    assert request.notes == ("Selects 3 leads.",)
    assert request.sample == (SAMPLE,)
    with pytest.raises(AttributeError):
        request.notes.append("edited")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        request.sample.insert(0, SAMPLE)  # type: ignore[attr-defined]


def test_a_change_is_a_copy_and_the_preview_shows_the_copys_notes() -> None:
    request = built()
    changed = dataclasses.replace(request, notes=(*request.notes, "One more."), matched=2)
    assert request.notes == ("Selects 3 leads.",)
    assert request.matched == 3
    assert changed.preview() == Preview(
        path="/lead/bulk_action/delete/",
        request={"s_query": S_QUERY, "send_done_email": False},
        matched=2,
        sample=[SAMPLE],
        notes=["Selects 3 leads.", "One more."],
    )
    assert changed.sent() == Preview(
        path="/lead/bulk_action/delete/",
        request={"s_query": S_QUERY, "send_done_email": False},
        matched=2,
        notes=["Selects 3 leads.", "One more."],
    )


async def test_the_pipeline_says_a_long_read_runs_as_a_job_without_editing_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The note the pipeline adds is in its result, not in the request it was handed."""
    monkeypatch.setattr(background, "LONG_READ_S", 0.01)
    clock = FakeClock()
    store = SQLiteStore(":memory:", clock=clock)
    settings = load_settings({"CLOSE_MCP_SECRET": "s" * 32}, sandbox=True)
    tokens = ConfirmationTokens(b"s" * 32, clock, store=store)
    context = WriteContext(settings, tokens, AuditLog(None, clock), clock, store)
    sent: list[httpx.Request] = []

    def close(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    client = CloseClient("api_UNIT_key", transport=httpx.MockTransport(close), clock=clock)
    pipeline = Pipeline(context, client, jobs=ServerJobs(store, clock))
    request = built()
    before = copy.deepcopy(request)
    result = await pipeline.run(request, dry_run=True, token=None, answer=None)
    await client.aclose()
    assert result.status == "preview"
    assert result.preview == Preview(
        path="/lead/bulk_action/delete/",
        request={"s_query": S_QUERY, "send_done_email": False},
        matched=3,
        sample=[SAMPLE],
        notes=[
            "Selects 3 leads.",
            "Reading the 3 leads before sending takes about 0 s at Close's 20 requests a "
            "second, longer than many clients wait for one call: once confirmed it runs as a "
            "job, to follow with wait_for_bulk_job.",
        ],
    )
    assert request == before
    assert sent == []
