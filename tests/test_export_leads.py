"""export_leads (issue 28) through a real MCP client against the sandbox: the preview shows the
selection and its count, the token binds the exact leads, the confirmed call sends one
`POST /export/lead/` and answers the download link, and the file holds the leads."""

from __future__ import annotations

import gzip
import hashlib
import json

import httpx
import pytest

from bench.tokens import count_tokens
from close_mcp.clock import FakeClock
from close_mcp.close.crm import download_export
from close_mcp.sandbox import Sandbox
from tests.harness import MODES, Harness, Mode, StartHarness, text_of
from tests.ids import status_id

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=60, toolsets="all")]

ARGS = {"filter": {"lead_status": "Qualified"}, "format": "json", "type": "leads"}


def qualified(h: Harness) -> list[str]:
    wanted = status_id(h, "Qualified")
    return sorted(i for i, lead in h.sandbox.store.leads.items() if lead.status_id == wanted)


@pytest.mark.parametrize("mode", MODES)
async def test_export_previews_then_sends_once_and_answers_the_link(
    start_harness: StartHarness, mode: Mode
) -> None:
    h = await start_harness(mode=mode)
    leads = qualified(h)
    assert leads
    first = await h.call("export_leads", ARGS)
    assert first["status"] == "confirmation_required"
    assert first["preview"]["path"] == "/export/lead/"
    assert first["preview"]["matched"] == len(leads)
    assert {s["id"] for s in first["preview"]["sample"]} <= set(leads)
    body = first["preview"]["request"]
    assert {k: v for k, v in body.items() if k != "s_query"} == {
        "format": "json",
        "type": "leads",
        "send_done_email": True,
    }
    assert h.writes() == []

    done = await h.call("export_leads", {**ARGS, "confirmation_token": first["confirmation_token"]})
    assert done["status"] == "submitted", done
    writes = h.writes()
    assert [(w.method, w.path, w.json) for w in writes] == [("POST", "/api/v1/export/lead/", body)]
    export = done["result"]
    assert export["status"] == "done"
    assert export["n_leads"] == len(leads)
    assert export["download_url"]
    data = await download_export(export["download_url"], transport=h.sandbox.transport())
    rows = json.loads(gzip.decompress(data)) if data[:2] == b"\x1f\x8b" else json.loads(data)
    assert sorted(r["id"] for r in rows) == leads

    read = await h.client.read_resource(f"close://exports/{export['id']}")
    text = read.contents[0].text  # type: ignore[union-attr]
    assert json.loads(text)["download_url"] == export["download_url"]


async def test_a_lead_added_to_the_selection_since_the_preview_refuses_the_export(
    h: Harness,
) -> None:
    first = await h.call("export_leads", ARGS)
    store = h.sandbox.store
    wanted = status_id(h, "Qualified")
    other = next(lead for lead in store.leads.values() if lead.status_id != wanted)
    other.status_id = wanted
    answer = await h.call(
        "export_leads", {**ARGS, "confirmation_token": first["confirmation_token"]}
    )
    assert answer["status"] == "refused"
    assert answer["preview"]["matched"] == first["preview"]["matched"] + 1
    assert h.writes() == []


async def test_export_is_an_action_that_can_be_left_unconfirmed(
    start_harness: StartHarness,
) -> None:
    h = await start_harness(confirm="edit")
    done = await h.call("export_leads", ARGS)
    assert done["status"] == "submitted"
    assert [w.path for w in h.writes()] == ["/api/v1/export/lead/"]


@pytest.mark.parametrize("many_fields", [False, True])
@pytest.mark.parametrize("fault", ["after_commit", "timeout_after_commit", "malformed"])
async def test_an_export_whose_answer_is_lost_is_found_not_reported_unknown(
    h: Harness, fault: str, many_fields: bool
) -> None:
    """Close made the export but its answer was lost (a 504, a timeout, an unreadable body):
    the call finds it among the recent exports and answers it, as a bulk action does, so the
    person is not left to confirm a second export of the same leads."""
    args = (
        {**ARGS, "fields": [f"field_{i}_" + "x" * 40 for i in range(30)]} if many_fields else ARGS
    )
    h.sandbox.inject_faults(fault, 1, "export/lead/", "POST")  # type: ignore[arg-type]
    done = await h.confirmed("export_leads", args)
    assert h.sandbox.faults_served == {fault: 1}
    assert done["status"] == "submitted", done
    assert list(h.sandbox.store.exports) == [done["result"]["id"]]
    assert done["result"]["n_leads"] == len(qualified(h))
    assert done["result"]["download_url"]
    assert [w.path for w in h.writes()] == ["/api/v1/export/lead/"]


async def test_an_export_of_the_most_fields_previews_within_1500_tokens_and_sends_them_all(
    h: Harness,
) -> None:
    """100 field names of 200 characters (the most the schema takes): the preview stays
    within 1,500 tokens (the list shown as its count, first names and digest, which the token
    binds), and the export sent names every field."""
    fields = [f"custom.{i:03d}" + "x" * 189 for i in range(100)]
    args = {**ARGS, "fields": fields}
    first = await h.call_raw("export_leads", args)
    assert not first.is_error, text_of(first)
    assert count_tokens(text_of(first)) <= 1500
    content = first.structured_content
    assert content is not None
    shown = content["preview"]["request"]["fields"]
    assert shown["count"] == 100
    assert shown["sha256"] == hashlib.sha256(json.dumps(fields).encode()).hexdigest()
    # Another list of the same count and first names is another request: refused.
    other = {**args, "fields": [*fields[:-1], "custom.099" + "y" * 189]}
    token = content["confirmation_token"]
    refused = await h.call("export_leads", {**other, "confirmation_token": token})
    assert refused["status"] == "refused"
    assert h.writes() == []
    done = await h.call(
        "export_leads", {**args, "confirmation_token": content["confirmation_token"]}
    )
    assert done["status"] == "submitted", done
    assert [w.json["fields"] for w in h.writes()] == [fields]


class ExportsRefusedAtLength(httpx.AsyncBaseTransport):
    """The sandbox, with Close refusing `POST /export/lead/` with one field error for each of
    200 field names (as Close lists every field of a body it refuses)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/export/lead/":
            errors = {
                f"fields.{i}": f"Unknown field custom.cf_{i:04d}AbCdEfGhIjKlMnOpQrSt."
                for i in range(200)
            }
            return httpx.Response(400, json={"errors": [], "field-errors": errors})
        return await self.inner.handle_async_request(request)


async def test_an_export_close_refuses_at_length_is_a_short_tool_error(
    start_harness: StartHarness,
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(n_leads=60, clock=clock)
    h = await start_harness(sandbox=sandbox, clock=clock,
                            transport=ExportsRefusedAtLength(sandbox.transport()))  # fmt: skip
    first = await h.call("export_leads", ARGS)
    result = await h.call_raw(
        "export_leads", {**ARGS, "confirmation_token": first["confirmation_token"]}
    )
    assert result.is_error
    text = text_of(result)
    assert "Close rejected the request: fields.0: Unknown field custom.cf_0000" in text
    assert count_tokens(text) <= 1500
    assert "190 more" in text
