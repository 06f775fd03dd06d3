"""`safety.snapshot_policy`: when a snapshot or backup is taken (CLOSE_MCP_SNAPSHOT at its
limit, one over, one under, off; a results_limit past Close's cursor cap) and the `Guard` a
safeguard's prepare step returns. Pure: nothing reaches Close."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from close_mcp.clock import FakeClock
from close_mcp.close.client import CloseClient
from close_mcp.config import Settings
from close_mcp.safety.snapshot_policy import safeguarding, search_cost, why_not
from close_mcp.safety.snapshot_writer import BackupBeforeDelete, SnapshotBeforeEdit
from close_mcp.store.sqlite import MEMORY, SQLiteStore
from close_mcp.writes.guard import Guard
from close_mcp.writes.request import WriteRequest

LIMIT = 400
QUERY: dict[str, Any] = {"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]}
EDIT = {"type": "set_lead_status", "lead_status_id": "stat_won"}
CF_EDIT = {"type": "clear_custom_field", "custom_field_id": "cf_size"}


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(sent: list[httpx.Request]) -> CloseClient:
    def close(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    return CloseClient(
        "api_test", "https://close.test/api/v1/", transport=httpx.MockTransport(close)
    )


def settings(limit: int = LIMIT) -> Settings:
    return Settings(api_key=None, snapshot_limit=limit)


def request(
    action: str, matched: int, body: dict[str, Any] | None = None, **extra: Any
) -> WriteRequest:
    fields = {"s_query": QUERY, **extra}
    return WriteRequest(
        tool=f"create_bulk_{action}",
        action=action,
        path=f"bulk_action/{action}/",
        body={"s_query": QUERY, **(body or {})},
        matched=matched,
        summary=f"{action} {matched} leads",
        **fields,
    )


def snapshot(limit: int, client: CloseClient) -> SnapshotBeforeEdit:
    return SnapshotBeforeEdit(settings(limit), FakeClock(), client, SQLiteStore(MEMORY))


def backup(limit: int, client: CloseClient) -> BackupBeforeDelete:
    async def custom_field_ids() -> list[str]:
        raise AssertionError("the policy reads no custom fields")

    return BackupBeforeDelete(
        settings(limit), FakeClock(), client, SQLiteStore(MEMORY), custom_field_ids
    )


def saved_note(matched: int) -> str:
    cost = search_cost(matched)
    return (
        f"Before sending, the current status of the {matched} leads is saved so "
        f"revert_bulk_edit can put it back ({cost} more Close request{'s' if cost != 1 else ''})."
    )


def not_saved_note(what: str, reason: str) -> str:
    undo = "revert_bulk_edit" if what == "snapshot" else "restore_leads"
    return (
        f"No {what} will be taken because {reason}: this cannot be undone with {undo}. "
        "Confirmation is required."
    )


@pytest.mark.parametrize("matched", [LIMIT - 1, LIMIT])
def test_at_or_under_the_limit_the_edit_is_snapshotted(
    matched: int, client: CloseClient, sent: list[httpx.Request]
) -> None:
    guard = snapshot(LIMIT, client)
    assert guard.prepare(request("edit", matched, EDIT)) == Guard(guard, (saved_note(matched),))
    assert sent == []


def test_one_over_the_limit_no_snapshot_and_always_confirmed(client: CloseClient) -> None:
    reason = f"it touches {LIMIT + 1} leads, more than CLOSE_MCP_SNAPSHOT allows ({LIMIT})"
    guard = snapshot(LIMIT, client).prepare(request("edit", LIMIT + 1, EDIT))
    assert guard == Guard(None, (not_saved_note("snapshot", reason),), always_confirm=True)


def test_off_takes_nothing_whatever_the_count(client: CloseClient) -> None:
    note = not_saved_note("backup", "CLOSE_MCP_SNAPSHOT is off")
    for matched in (1, LIMIT):
        guard = backup(0, client).prepare(request("delete", matched))
        assert guard == Guard(None, (note,), always_confirm=True)


@pytest.mark.parametrize(
    ("matched", "saves"), [(LIMIT - 1, True), (LIMIT, True), (LIMIT + 1, False)]
)
def test_the_backup_follows_the_same_limit(matched: int, saves: bool, client: CloseClient) -> None:
    safeguard = backup(LIMIT, client)
    guard = safeguard.prepare(request("delete", matched))
    assert guard.safeguard is (safeguard if saves else None)
    assert guard.always_confirm is not saves
    if saves:
        cost = search_cost(matched) + 1  # and the custom field schema
        assert guard.notes == (
            f"Before sending, the full records of the {matched} leads (fields, custom fields, "
            f"contacts) are saved ({cost} more Close requests): restore_leads re-creates them "
            "with new ids; activities, opportunities and tasks are not restored.",
        )


def test_a_custom_field_edit_names_the_field(client: CloseClient) -> None:
    guard = snapshot(LIMIT, client).prepare(request("edit", 1, CF_EDIT))
    assert guard.notes == (
        "Before sending, the current value of custom field cf_size of the 1 leads is saved so "
        "revert_bulk_edit can put it back (1 more Close request).",
    )


def test_a_results_limit_past_the_cursor_cap_cannot_be_walked(client: CloseClient) -> None:
    """Close ends a walk in sort order at 10,000 leads: the first N of a sort past that are
    not readable, so nothing is saved (the limit allows the count)."""
    over = request("edit", 10_001, EDIT, results_limit=10_001)
    assert why_not(settings(50_000), over) == (
        "results_limit picks the first 10001 leads in sort order, and Close ends a walk in "
        "that order at 10000 leads"
    )
    guard = snapshot(50_000, client).prepare(over)
    assert guard.safeguard is None
    assert guard.always_confirm
    # Fewer leads than the results_limit: the selection decides, and is walked whole.
    under = request("edit", 10_001, EDIT, results_limit=20_000)
    assert why_not(settings(50_000), under) is None


def test_a_request_without_a_selection_has_nothing_to_walk(client: CloseClient) -> None:
    """The note is the policy's; the safeguard is attached only when there is a query to
    read the leads with."""
    guard = snapshot(LIMIT, client).prepare(request("edit", 2, EDIT, s_query=None))
    assert guard == Guard(None, (saved_note(2),))


def test_no_leads_adds_nothing(client: CloseClient) -> None:
    assert snapshot(0, client).prepare(request("edit", 0, EDIT)) == Guard(None)
    assert safeguarding(settings(), request("edit", 0, EDIT), snapshot(LIMIT, client)) == Guard(
        None
    )


def test_the_setting_is_read_in_one_place() -> None:
    assert [settings(LIMIT).snapshot_refusal(n) for n in (LIMIT - 1, LIMIT)] == [None, None]
    assert settings(LIMIT).snapshot_refusal(LIMIT + 1) == (
        f"it touches {LIMIT + 1} leads, more than CLOSE_MCP_SNAPSHOT allows ({LIMIT})"
    )
    assert settings(0).snapshot_refusal(1) == "CLOSE_MCP_SNAPSHOT is off"
    # The binding keeps ids up to the limit; with snapshots off, up to the default limit.
    assert settings(LIMIT).lead_ids_kept == LIMIT
    assert settings(0).lead_ids_kept == Settings(api_key=None).snapshot_limit == 50_000
