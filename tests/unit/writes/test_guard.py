"""`writes.guard`: what a safeguard adds is attached to a copy of the request; the request the
tool built is left as it was."""

from __future__ import annotations

import copy
from typing import Any

from close_mcp.writes.guard import Guard
from close_mcp.writes.request import Safeguard, WriteRequest


class Saves:
    """A safeguard that is only compared by identity here."""

    what = "snapshot"

    async def take(self, request: WriteRequest, progress: Any = None, observe: Any = None) -> str:
        raise AssertionError("nothing is taken when a guard is attached")

    async def discard(self, saved: str) -> None:
        raise AssertionError("nothing is discarded")

    async def attach(self, saved: str, job_id: str) -> str:
        raise AssertionError("nothing is attached to a job")


def built(**extra: Any) -> WriteRequest:
    return WriteRequest(
        tool="create_bulk_edit",
        action="edit",
        path="bulk_action/edit/",
        body={"type": "set_lead_status", "lead_status_id": "stat_won"},
        matched=3,
        summary="Bulk edit",
        notes=["Selects 3 leads."],
        **extra,
    )


def test_attach_returns_a_copy_with_the_safeguard_and_its_notes_after_the_tools() -> None:
    request = built()
    before = copy.deepcopy(request)
    safeguard: Safeguard = Saves()
    attached = Guard(safeguard, ("Before sending, ...",)).attach(request)
    assert attached.safeguard is safeguard
    assert attached.notes == ("Selects 3 leads.", "Before sending, ...")
    assert attached.always_confirm is False
    assert (attached.body, attached.matched, attached.summary) == (
        request.body,
        request.matched,
        request.summary,
    )
    assert request == before  # the tool's request is not edited


def test_always_confirm_is_added_never_taken_away() -> None:
    assert Guard(None, ("No snapshot ...",), always_confirm=True).attach(built()).always_confirm
    assert Guard(None).attach(built(always_confirm=True)).always_confirm
    attached = Guard(None).attach(built())
    assert (attached.safeguard, attached.always_confirm, attached.notes) == (
        None,
        False,
        ("Selects 3 leads.",),
    )
