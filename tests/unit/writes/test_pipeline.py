"""`Pipeline.run` through a write tool: the gate's decision is made once, by the question
step, and the person's answer implies it; what changes while the person answers (the clock)
is settled when the token is spent, before anything is sent."""

from __future__ import annotations

import pytest
from mcp import types

from tests.harness import MODES, Harness, Mode, StartHarness
from tests.ids import status_id

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=40, audited=True)]

QUALIFIED = {"filter": {"lead_status": "Qualified"}}
EXPIRED = "the confirmation token has expired (tokens last 10 minutes)"


@pytest.mark.parametrize("mode", MODES)
async def test_a_token_that_expires_while_its_person_answers_sends_nothing(
    mode: Mode, start_harness: StartHarness
) -> None:
    answered: list[str] = []

    def slow_person(message: str) -> types.ElicitResult:
        h.clock.advance(600.0)  # the token's whole life, spent reading the question
        answered.append(message)
        return types.ElicitResult(action="accept", content={"count": doomed})

    h: Harness = await start_harness(mode=mode, elicit=slow_person)
    qualified = status_id(h, "Qualified")
    doomed = sum(1 for lead in h.sandbox.store.leads.values() if lead.status_id == qualified)
    first = await h.call("create_bulk_delete", QUALIFIED)
    assert first["status"] == "confirmation_required"
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": first["confirmation_token"]}
    )
    assert len(answered) == 1
    assert (done["status"], done["reason"]) == ("refused", EXPIRED)
    assert done["message"].startswith(f"Refused: {EXPIRED}. Nothing was sent.")
    assert done["confirmation_token"] not in (None, first["confirmation_token"])
    assert h.writes() == []
    assert [(e["outcome"], e.get("reason")) for e in h.audit.entries()] == [("refused", EXPIRED)]


@pytest.mark.parametrize("mode", MODES)
async def test_a_token_that_does_not_fit_is_refused_without_asking_the_person(
    mode: Mode, start_harness: StartHarness
) -> None:
    """A person's answer implies the token fitted when they were asked (the pipeline checks
    no token again), so a token that does not fit is never put to the person."""
    asked: list[str] = []

    def approving_person(message: str) -> types.ElicitResult:
        asked.append(message)
        return types.ElicitResult(action="accept", content={"count": doomed})

    h: Harness = await start_harness(mode=mode, elicit=approving_person)
    qualified = status_id(h, "Qualified")
    doomed = sum(1 for lead in h.sandbox.store.leads.values() if lead.status_id == qualified)
    other = await h.call("create_bulk_delete", {"filter": {"lead_status": "Customer"}})
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": other["confirmation_token"]}
    )
    problem = (
        "the confirmation token was issued for different arguments; confirm the new preview instead"
    )
    assert (done["status"], done["reason"]) == ("refused", problem)
    assert asked == []
    assert h.writes() == []
    assert [(e["outcome"], e.get("reason")) for e in h.audit.entries()] == [("refused", problem)]
