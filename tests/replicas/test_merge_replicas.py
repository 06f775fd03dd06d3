"""`merge_leads` on two replicas sharing a store: each pair is merged once, whether one
confirmation reaches both replicas or two confirmations of two previews race.

What reached Close is read from the replicas' audit logs (every POST /lead/merge/ is audited,
sent or failed) and from Close itself (the sources are gone, their contacts on the
destination once).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client

from close_mcp.safety.merge_journal import LOCK_TTL_S, entry, journal_key
from close_mcp.sandbox import SANDBOX_API_KEY
from close_mcp.store import open_store
from tests.replicas.conftest import call, replica, session

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
AUTH = (SANDBOX_API_KEY, "")


def duplicated(close_api: str, tag: str) -> tuple[list[str], list[str]]:
    """Two seeded leads and, for each, a new lead with a contact of the same email."""
    leads = httpx.get(close_api + "lead/", params={"_limit": 100}, auth=AUTH).json()["data"]
    originals: list[dict[str, Any]] = []
    seen: set[str] = set()
    for lead in leads:
        emails = {e["email"] for c in lead["contacts"] for e in c["emails"]}
        if emails and not emails & seen and not lead["name"].endswith(")"):
            seen |= emails
            originals.append(lead)
        if len(originals) == 2:
            break
    copies = []
    for lead in originals:
        email = lead["contacts"][0]["emails"][0]["email"]
        contact = {"name": f"Copy {tag}", "emails": [{"email": email, "type": "office"}]}
        body = {"name": f"{lead['name']} ({tag})", "contacts": [contact]}
        made = httpx.post(close_api + "lead/", json=body, auth=AUTH)
        assert made.status_code == 200, made.text
        copies.append(made.json()["id"])
    return [lead["id"] for lead in originals], copies


def merge_posts(*audits: Path) -> list[dict[str, Any]]:
    """Every POST /lead/merge/ of one pair the replicas audited (sent or not)."""
    lines = [json.loads(line) for audit in audits if audit.exists()
             for line in audit.read_text().splitlines()]  # fmt: skip
    return [
        line["request"]
        for line in lines
        if line["path"] == "/lead/merge/" and "source" in (line.get("request") or {})
    ]


def exists(close_api: str, lead_id: str) -> bool:
    return httpx.get(close_api + f"lead/{lead_id}/", auth=AUTH).status_code == 200


def contact_names(close_api: str, lead_id: str) -> list[str]:
    lead = httpx.get(close_api + f"lead/{lead_id}/", auth=AUTH).json()
    return [c["name"] for c in lead["contacts"]]


async def test_each_pair_is_merged_once_across_two_replicas(
    close_api: str, store: str, tmp_path: Path
) -> None:
    audits = [tmp_path / "a-audit.jsonl", tmp_path / "b-audit.jsonl"]
    env = {"CLOSE_MCP_TOOLSETS": "all"}
    env_a = {**env, "CLOSE_MCP_AUDIT_LOG": str(audits[0])}
    env_b = {**env, "CLOSE_MCP_AUDIT_LOG": str(audits[1])}
    async with (
        replica(close_api, tmp_path, "a", store=store, **env_a) as a,
        replica(close_api, tmp_path, "b", store=store, **env_b) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        # One token, confirmed on both replicas at once.
        originals, copies = duplicated(close_api, f"one token {tmp_path.name}")
        args = {"key": "contact_email", "filter": {"lead_ids": originals + copies}}
        first = await call(on_a, "merge_leads", args)
        assert first["status"] == "confirmation_required", first
        assert first["preview"]["matched"] == 2
        confirmed = {**args, "confirmation_token": first["confirmation_token"]}
        outcomes: list[str] = []

        async def confirm(client: Client, arguments: dict[str, Any]) -> None:
            result = await client.call_tool("merge_leads", arguments)
            content = result.structured_content or {}
            outcomes.append("error" if result.is_error else str(content.get("status")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(confirm, on_a, confirmed)
            tg.start_soon(confirm, on_b, confirmed)
        assert sorted(outcomes) == ["refused", "submitted"]
        assert sorted(p["source"] for p in merge_posts(*audits)) == sorted(copies)
        assert not any(exists(close_api, c) for c in copies)
        again = await call(on_b, "merge_leads", args)
        assert again["status"] == "refused"
        assert again["confirmation_token"] is None

        # Two previews, one on each replica, confirmed at once: the lock and the journal
        # let each pair through once, whichever replica sends it.
        originals, copies = duplicated(close_api, f"two tokens {tmp_path.name}")
        args = {"key": "contact_email", "filter": {"lead_ids": originals + copies}}
        on_each = [await call(c, "merge_leads", args) for c in (on_a, on_b)]
        outcomes.clear()
        before = len(merge_posts(*audits))
        async with anyio.create_task_group() as tg:
            for client, preview in zip((on_a, on_b), on_each, strict=True):
                token = preview["confirmation_token"]
                tg.start_soon(confirm, client, {**args, "confirmation_token": token})
        assert "submitted" in outcomes
        sent = merge_posts(*audits)[before:]
        assert sorted(p["source"] for p in sent) == sorted(copies)
        assert not any(exists(close_api, c) for c in copies)
        for original in originals:
            assert contact_names(close_api, original).count(f"Copy two tokens {tmp_path.name}") == 1


async def test_a_pair_offered_again_is_merged_once_across_two_replicas(
    close_api: str, store: str, tmp_path: Path
) -> None:
    """Two pairs whose earlier attempt (a run that died) had an unknown outcome two hours
    ago, their sources still in Close: both replicas offer them again; confirmed on both at
    once, each is merged once (the claim takes only the entry it was offered on)."""
    audits = [tmp_path / "a-audit.jsonl", tmp_path / "b-audit.jsonl"]
    env = {"CLOSE_MCP_TOOLSETS": "all"}
    originals, copies = duplicated(close_api, f"again {tmp_path.name}")
    shared = open_store(store)
    for original, copy in zip(originals, copies, strict=True):
        dead = entry("leadmerge_dead", original, "outcome_unknown", time.time() - 2 * LOCK_TTL_S)
        await shared.put(journal_key(copy), dead)
    await shared.aclose()
    async with (
        replica(
            close_api, tmp_path, "a", store=store, CLOSE_MCP_AUDIT_LOG=str(audits[0]), **env
        ) as a,
        replica(
            close_api, tmp_path, "b", store=store, CLOSE_MCP_AUDIT_LOG=str(audits[1]), **env
        ) as b,
        session(a) as on_a,
        session(b) as on_b,
    ):
        args = {"key": "contact_email", "filter": {"lead_ids": originals + copies}}
        previews = [await call(c, "merge_leads", args) for c in (on_a, on_b)]
        for preview in previews:
            assert preview["preview"]["matched"] == 2, preview
            assert (
                "2 pairs whose earlier attempt had an unknown outcome still have their source "
                "an hour later: not merged, offered again."
            ) in preview["preview"]["notes"]
        outcomes: list[str] = []

        async def confirm(client: Client, token: str) -> None:
            result = await client.call_tool("merge_leads", {**args, "confirmation_token": token})
            content = result.structured_content or {}
            outcomes.append("error" if result.is_error else str(content.get("status")))

        async with anyio.create_task_group() as tg:
            for client, preview in zip((on_a, on_b), previews, strict=True):
                tg.start_soon(confirm, client, preview["confirmation_token"])
        assert "submitted" in outcomes, outcomes
        assert sorted(p["source"] for p in merge_posts(*audits)) == sorted(copies)
        assert not any(exists(close_api, c) for c in copies)
        for original in originals:
            assert contact_names(close_api, original).count(f"Copy again {tmp_path.name}") == 1
