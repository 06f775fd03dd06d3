"""Lead merge over HTTP: everything moves to the destination, the source goes, and what
Close refuses is refused."""

from __future__ import annotations

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from tests.sandbox.conftest import bad, every

pytestmark = pytest.mark.anyio


async def test_merging_moves_everything_to_the_destination_and_deletes_the_source(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    store = sb.store
    source_id = next(o.lead_id for o in store.opportunities.values())
    destination_id = next(lead for lead in store.leads if lead != source_id)
    source = store.leads[source_id]
    contacts = [c.id for c in store.leads[destination_id].contacts + source.contacts]
    opps = sorted(
        o.id for o in store.opportunities.values() if o.lead_id in (source_id, destination_id)
    )
    tasks = sorted(t.id for t in store.tasks.values() if t.lead_id in (source_id, destination_id))
    before = (await http.get(f"lead/{source_id}/")).json()
    body = {"source": source_id, "destination": destination_id}
    assert (await http.post("lead/merge/", json=body)).json() == {}
    assert (await http.get(f"lead/{source_id}/")).status_code == 404
    assert [
        c["id"] for c in (await http.get(f"lead/{destination_id}/")).json()["contacts"]
    ] == contacts
    assert (
        sorted(o["id"] for o in await every(http, "opportunity/", {"lead_id": destination_id}))
        == opps
    )
    assert sorted(t["id"] for t in await every(http, "task/", {"lead_id": destination_id})) == tasks
    events = (
        await http.get("event/", params={"lead_id": source_id, "object_type": "lead"})
    ).json()["data"]
    assert [(e["action"], e["previous_data"]) for e in events] == [("deleted", before)]
    assert events[0]["meta"] == {
        "merge_source_lead_id": source_id,
        "merge_destination_lead_id": destination_id,
    }
    merged = (
        await http.get(
            "event/", params={"lead_id": destination_id, "object_type": "lead", "action": "merged"}
        )
    ).json()["data"]
    assert len(merged) == 1
    refused = await http.post("lead/merge/", json={**body, "keep": "source"})
    assert bad(refused)["field-errors"] == {"keep": "Unknown field."}
    assert bad(await http.post("lead/merge/", json=body))["field-errors"] == {
        "source": "Lead not found."
    }
    assert bad(
        await http.post(
            "lead/merge/", json={"source": destination_id, "destination": destination_id}
        )
    )["field-errors"] == {"destination": "A lead cannot be merged into itself."}
