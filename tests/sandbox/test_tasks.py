"""Tasks over HTTP: filters and views against the store computed in plain Python, and what
an update or a delete may change and leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from close_mcp.sandbox import Sandbox
from tests.sandbox.conftest import bad, every

pytestmark = pytest.mark.anyio


async def test_tasks_filter_by_assignee_lead_due_date_and_completion(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    tasks = list(sb.store.tasks.values())
    user = sb.store.me.id
    found = await every(
        http,
        "task/",
        {"assigned_to": user, "is_complete": "false", "due_date__lte": "2026-01-10", "_limit": 5},
    )
    bound = datetime(2026, 1, 10, tzinfo=UTC)  # a bare date is its midnight UTC
    assert sorted(t["id"] for t in found) == sorted(
        t.id
        for t in tasks
        if t.assigned_to == user and not t.is_complete and t.date is not None
        and datetime.fromisoformat(t.date).replace(tzinfo=UTC) <= bound
    )  # fmt: skip
    lead = tasks[0].lead_id
    assert sorted(t["id"] for t in await every(http, "task/", {"lead_id": lead})) == sorted(
        t.id for t in tasks if t.lead_id == lead
    )
    archive = await every(http, "task/", {"view": "archive"})
    assert sorted(t["id"] for t in archive) == sorted(t.id for t in tasks if t.is_complete)
    assert bad(await http.get("task/", params={"owner": user}))["field-errors"] == {
        "owner": "Unknown query parameter."
    }


async def test_updating_and_deleting_a_task(sb: Sandbox, http: httpx.AsyncClient) -> None:
    task = next(t for t in sb.store.tasks.values() if not t.is_complete)
    other = next(u for u in sb.store.users if u != task.assigned_to)
    answer = (
        await http.put(
            f"task/{task.id}/",
            json={"assigned_to": other, "date": "2026-02-01", "is_complete": True},
        )
    ).json()
    assert (answer["assigned_to"], answer["date"], answer["due_date"], answer["is_complete"]) == (
        other,
        "2026-02-01",
        "2026-02-01",
        True,
    )
    assert bad(await http.put(f"task/{task.id}/", json={"lead_id": "lead_x"}))["field-errors"] == {
        "lead_id": "This field cannot be changed."
    }
    assert bad(await http.put(f"task/{task.id}/", json={"owner": other}))["field-errors"] == {
        "owner": "Unknown field."
    }
    assert bad(await http.put(f"task/{task.id}/", json={"date": "soon"}))["field-errors"] == {
        "date": "Must be a date or a date-time (ISO 8601), or null."
    }
    assert (await http.delete(f"task/{task.id}/")).json() == {}
    assert (await http.get(f"task/{task.id}/")).status_code == 404
    events = (
        await http.get("event/", params={"object_id": task.id, "object_type": "task.lead"})
    ).json()["data"]
    assert [e["action"] for e in events] == ["deleted", "completed"]
    assert events[0]["previous_data"]["assigned_to"] == other
