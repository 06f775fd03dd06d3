"""`close_mcp.sandbox.store.Stamped`: an update through the API stamps an opportunity or a
task with its time and the caller, and keeps when and by whom it was created."""

from __future__ import annotations

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.sandbox import SANDBOX_API_KEY, Sandbox
from close_mcp.sandbox.store import from_epoch, iso

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("path", "change"), [("opportunity", {"note": "x"}), ("task", {"text": "x"})]
)
async def test_an_update_stamps_when_and_by_whom_and_keeps_the_creation(
    path: str, change: dict[str, str]
) -> None:
    clock = FakeClock()
    sb = Sandbox(n_leads=30, clock=clock)
    records = sb.store.opportunities if path == "opportunity" else sb.store.tasks
    record = next(iter(records.values()))
    record.updated_by = next(u for u in sb.store.users if u != sb.store.me.id)
    async with httpx.AsyncClient(
        transport=sb.transport(), base_url="http://sandbox/api/v1/", auth=(SANDBOX_API_KEY, "")
    ) as http:
        before = (await http.get(f"{path}/{record.id}/")).json()
        clock.advance(3600)
        answer = (await http.put(f"{path}/{record.id}/", json=change)).json()
    stamps = ("date_created", "created_by", "date_updated", "updated_by")
    assert [answer[k] for k in stamps] == [
        before["date_created"], before["created_by"], iso(from_epoch(clock.time())), sb.store.me.id
    ]  # fmt: skip
