"""Lead exports over HTTP: an export finishes, its file is served behind its link, and
its request is checked as Close checks it."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from tests.queries import lead_ids_query
from tests.sandbox.conftest import bad

pytestmark = pytest.mark.anyio


async def test_an_export_finishes_and_its_file_is_served(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    chosen = list(sb.store.leads)[:3]
    body = {
        "s_query": lead_ids_query(chosen),
        "format": "json",
        "type": "leads",
        "fields": ["id", "display_name"],
    }
    created = (await http.post("export/lead/", json=body)).json()
    assert (created["status"], created["download_url"], created["n_leads"]) == ("created", None, 3)
    sb.advance(60)
    done = (await http.get(f"export/{created['id']}/")).json()
    assert done["status"] == "done"
    file = await http.get(done["download_url"], auth=None)  # a signed link: no key needed
    assert (file.status_code, file.headers["content-encoding"], file.headers["content-type"]) == (
        200,
        "gzip",
        "application/json",
    )
    rows = json.loads(file.content)
    assert sorted(rows, key=lambda r: r["id"]) == sorted(
        ({"id": i, "display_name": sb.store.leads[i].display_name} for i in chosen),
        key=lambda r: r["id"],
    )
    body = {
        "s_query": lead_ids_query(chosen),
        "format": "csv",
        "type": "contacts",
        "fields": ["id", "name"],
    }
    export = (await http.post("export/lead/", json=body)).json()
    sb.advance(60)
    url = (await http.get(f"export/{export['id']}/")).json()["download_url"]
    table = list(csv.DictReader(io.StringIO((await http.get(url)).text)))
    assert sorted(r["id"] for r in table) == sorted(
        c.id for i in chosen for c in sb.store.leads[i].contacts
    )
    assert (
        await http.get(url.replace(url.rstrip("/").rsplit("/", 1)[1], "tok_wrong"))
    ).status_code == 404


async def test_export_requests_are_checked(http: httpx.AsyncClient) -> None:
    assert set(
        bad(await http.post("export/lead/", json={"format": "xml", "type": "rows"}))["field-errors"]
    ) == {"format", "type"}
    assert bad(
        await http.post(
            "export/lead/", json={"format": "csv", "type": "leads", "include_activities": True}
        )
    )["field-errors"] == {"include_activities": "Only with type leads and format json."}
    assert bad(
        await http.post("export/lead/", json={"format": "csv", "type": "leads", "columns": []})
    )["field-errors"] == {"columns": "Unknown field."}
