"""`close_mcp.close.activities` against httpx.MockTransport: the exact requests, Close's
list order ignored (newest first by when each email happened), paging at 200."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close import activities
from tests.recorder import Recorder, make, ok

pytestmark = pytest.mark.anyio

FIELDS = (
    "id,direction,status,subject,date_created,activity_at,date_sent,date_scheduled,"
    "thread_id,contact_id,sender,to"
)


def sent(rec: Recorder) -> list[tuple[str, str, dict[str, str]]]:
    return [(r.method, r.url.path, dict(r.url.params)) for r in rec.requests]


def email(n: int, at: str | None, created: str = "2026-01-01T00:00:00") -> dict[str, Any]:
    return {"id": f"acti_{n}", "activity_at": at, "date_created": created}


async def test_lead_emails_are_newest_first_whatever_close_lists() -> None:
    listed = [
        email(1, "2026-03-01T10:00:00+00:00"),
        email(2, "2026-03-02T09:00:00"),  # no offset: UTC, so after acti_1 and acti_4
        email(3, None, created="2026-03-03T00:00:00"),  # no activity_at: when created
        email(4, "2026-03-02T10:00:00+02:00"),  # 08:00 UTC
    ]
    rec = Recorder(ok({"data": listed, "has_more": False}))
    client, _ = make(rec)
    read = await activities.lead_emails(client, "lead_x")
    assert [e["id"] for e in read.emails] == ["acti_3", "acti_2", "acti_4", "acti_1"]
    assert read.complete
    assert sent(rec) == [
        (
            "GET",
            "/api/v1/activity/email/",
            {"lead_id": "lead_x", "_fields": FIELDS, "_skip": "0", "_limit": "200"},
        )
    ]


async def test_lead_emails_page_at_200_and_stop_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(activities, "MAX_EMAILS", 250)
    pages = [
        [email(i, f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}") for i in range(s, s + n)]
        for s, n in ((0, 200), (200, 200))
    ]
    rec = Recorder(*(ok({"data": p, "has_more": True}) for p in pages))
    client, _ = make(rec)
    read = await activities.lead_emails(client, "lead_x")
    assert not read.complete  # a third page exists: only 250 were ordered
    assert len(read.emails) == 250
    assert read.emails[0]["id"] == "acti_249"
    assert [q["_skip"] for _, _, q in sent(rec)] == ["0", "200"]


async def test_lead_subscriptions_ask_for_the_lead_only() -> None:
    subs = [{"id": "sub_1", "sequence_id": "seq_1", "contact_id": "cont_1", "status": "active"}]
    rec = Recorder(ok({"data": subs, "has_more": False}))
    client, _ = make(rec)
    assert await activities.lead_subscriptions(client, "lead_x") == (subs, True)
    assert sent(rec) == [
        (
            "GET",
            "/api/v1/sequence_subscription/",
            {
                "lead_id": "lead_x",
                "_fields": "id,sequence_id,contact_id,status",
                "_skip": "0",
                "_limit": "200",
            },
        )
    ]
