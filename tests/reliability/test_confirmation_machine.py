"""Confirmation cannot be bypassed: a hypothesis state machine against one live server.

The machine mixes previews, dry runs, confirmations with valid, stale, forged, replayed and
swapped tokens, changed arguments (every action is its own argument set, so a token used with
another action is a token for other arguments), leads moved in and out of the selection in the
sandbox store, time passing (tokens expire, jobs run and delete leads) and every kind of
answer from the person (accept with the right or a wrong number, approve or not, decline,
cancel). It keeps its own model of what a legitimate confirmation is, and after every step
checks that every delete, bulk email, bulk sequence subscription and outbox email the sandbox
received was sent by a call that had one: a token minted for exactly those arguments and the
current count, not expired, not used before, and an accepted elicitation with the right answer.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from mcp import types

from close_mcp.writes.tokens import TOKEN_TTL_S
from tests.harness import Harness, Mode
from tests.reliability.support import check_outcome, guarded_kind, record

ANSWERS: Final = (
    "accept_right",
    "accept_right",
    "accept_right",
    "accept_wrong",
    "decline",
    "cancel",
)
STEPS: dict[str, int] = {"steps": 0, "runs": 0, "submitted": 0, "refused": 0, "legit_refused": 0}


@dataclass(frozen=True)
class Action:
    name: str
    tool: str
    args: dict[str, Any]
    status_label: str | None  # the selection, for the model's count; None: one email


@dataclass(frozen=True)
class Token:
    action: str
    value: str
    matched: int
    expires: float


def _actions(h: Harness) -> dict[str, Action]:
    store = h.sandbox.store
    account = next(iter(store.email_accounts.values()))
    identity = account.identities[0]["email"]
    customer = next(s.id for s in store.statuses.values() if s.label == "Customer")
    lead = next(lead for lead in store.leads.values() if lead.status_id == customer)
    qualified = {"filter": {"lead_status": "Qualified"}}
    bad_fit = {"filter": {"lead_status": "Bad Fit"}}
    return {
        a.name: a
        for a in [
            Action("delete_qualified", "create_bulk_delete", qualified, "Qualified"),
            Action("delete_bad_fit", "create_bulk_delete", bad_fit, "Bad Fit"),
            Action(
                "email_qualified",
                "create_bulk_email",
                {**qualified, "template": "Intro"},
                "Qualified",
            ),
            Action(
                "email_qualified_contacts",
                "create_bulk_email",
                {**qualified, "template": "Intro", "contact_preference": "contact"},
                "Qualified",
            ),
            Action(
                "subscribe_bad_fit",
                "create_bulk_sequence_subscription",
                {
                    **bad_fit,
                    "action_type": "subscribe",
                    "sequence": "Onboarding",
                    "sender_account": account.id,
                    "sender_email": identity,
                },
                "Bad Fit",
            ),
            Action(
                "send_now",
                "send_email",
                {
                    "lead_id": lead.id,
                    "to": ["buyer@example.com"],
                    "subject": "Hello",
                    "body_text": "Hi",
                    "status": "outbox",
                    "sender": f'"Sandra" <{identity}>',
                },
                None,
            ),
        ]
    }


def _forge(token: str, how: int) -> str:
    payload, dot, mac = token.partition(".")
    if not dot:  # a placeholder from a preview that minted nothing
        return token + ".forged"
    if how == 0:  # another MAC
        return f"{payload}.{mac[:-3]}{'AAA' if not mac.endswith('AAA') else 'BBB'}"
    if how == 1:  # the payload changed to a bigger count, the MAC kept
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        data["m"] = int(data.get("m", 0)) + 1000
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        return f"{raw}.{mac}"
    if how == 2:  # no MAC at all
        return payload
    return "eyJ0IjoiY3JlYXRlX2J1bGtfZGVsZXRlIn0.forged"


class ConfirmationMachine(RuleBasedStateMachine):
    """One run: a fresh server and sandbox, driven through the portal's event loop."""

    portal: BlockingPortal
    mode: Mode

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        STEPS["runs"] += 1
        self.answer = "accept_right"
        self._cm = self.portal.wrap_async_context_manager(
            Harness.start(mode=self.mode, n_leads=60, elicit=self.answer_for)
        )
        self.h = self._cm.__enter__()
        self.actions = _actions(self.h)
        self.spent: set[str] = set()
        self.legit_writes = 0

    def teardown(self) -> None:
        self._cm.__exit__(None, None, None)

    # -- the model ---------------------------------------------------------------------------

    def _guarded(self) -> list[Any]:
        return [r for r in self.h.sandbox.requests if guarded_kind(r) is not None]

    def _count(self, action: Action) -> int:
        if action.status_label is None:
            return 1  # one recipient
        store = self.h.sandbox.store
        self.h.sandbox.jobs.advance_all(self.h.clock.time())  # as the next request would
        sid = next(s.id for s in store.statuses.values() if s.label == action.status_label)
        return sum(1 for lead in store.leads.values() if lead.status_id == sid)

    def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        result: types.CallToolResult = self.portal.call(self.h.call_raw, tool, args)
        STEPS["steps"] += 1
        if check_outcome(tool, result) == "error":
            return None
        content: dict[str, Any] | None = result.structured_content
        return content

    def answer_for(self, message: str) -> types.ElicitResult:
        if self.answer == "decline":
            return types.ElicitResult(action="decline")
        if self.answer == "cancel":
            return types.ElicitResult(action="cancel")
        right = self.answer == "accept_right"
        if "type the number" in message:
            shown = int(re.findall(r"\((\d+)\)\.$", message)[0])
            return types.ElicitResult(
                action="accept", content={"count": shown if right else shown + 1}
            )
        return types.ElicitResult(action="accept", content={"approve": right})

    # -- rules -------------------------------------------------------------------------------

    @rule(target=tokens, which=st.integers(min_value=0, max_value=5), dry=st.booleans())
    def preview(self, which: int, dry: bool) -> Any:
        action = list(self.actions.values())[which]
        if dry:  # a dry run previews and never mints a token
            result = self._call(action.tool, {**action.args, "dry_run": True})
            assert result is not None
            assert result["status"] in ("preview", "refused")
            assert result["confirmation_token"] is None
        before = self.h.clock.time()
        result = self._call(action.tool, action.args)
        assert result is not None
        if result["status"] != "confirmation_required":
            assert result["status"] == "refused"  # nothing matches any more
            return Token(action.name, "none", -1, 0.0)
        return Token(
            action.name,
            result["confirmation_token"],
            result["preview"]["matched"],
            before + TOKEN_TTL_S,
        )

    @rule(
        token=tokens,
        which=st.integers(min_value=0, max_value=5),
        answer=st.sampled_from(ANSWERS),
        same_action=st.sampled_from([True, True, True, False]),
    )
    def confirm(self, token: Token, which: int, answer: str, same_action: bool) -> None:
        action = self.actions[token.action] if same_action else list(self.actions.values())[which]
        self.answer = answer
        legit = (
            token.action == action.name
            and token.value not in self.spent
            and self.h.clock.time() < token.expires
            and self._count(action) == token.matched
            and answer == "accept_right"
        )
        seen = len(self._guarded())
        result = self._call(action.tool, {**action.args, "confirmation_token": token.value})
        new = self._guarded()[seen:]
        if new:
            assert legit, (
                f"{action.name} sent {[(r.path, r.json) for r in new]} without a valid confirmation"
            )
            assert len(new) == 1
            self.spent.add(token.value)
            self.legit_writes += 1
            STEPS["submitted"] += 1
            assert result is not None
            assert result["status"] == "submitted"
        else:
            STEPS["refused"] += 1
            STEPS["legit_refused"] += legit  # stricter than the model: e.g. no leads left
            assert result is None or result["status"] in ("refused", "confirmation_required")

    @rule(token=tokens, which=st.integers(min_value=0, max_value=5), how=st.integers(0, 3))
    def forged(self, token: Token, which: int, how: int) -> None:
        action = list(self.actions.values())[which]
        self.answer = "accept_right"
        seen = len(self._guarded())
        self._call(action.tool, {**action.args, "confirmation_token": _forge(token.value, how)})
        assert self._guarded()[seen:] == []

    @rule(
        which=st.integers(min_value=0, max_value=19),
        into=st.sampled_from(["Qualified", "Bad Fit", "Potential"]),
    )
    def move_lead(self, which: int, into: str) -> None:
        store = self.h.sandbox.store
        leads = sorted(store.leads)
        if not leads:
            return
        lead = store.leads[leads[which % len(leads)]]
        if lead.id == self.actions["send_now"].args["lead_id"]:
            return  # the one-email action's lead stays a Customer, so it is never deleted
        lead.status_id = next(s.id for s in store.statuses.values() if s.label == into)

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 120.0, 601.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    @invariant()
    def every_guarded_write_was_confirmed(self) -> None:
        assert len(self._guarded()) == self.legit_writes


def _machine_for(portal: BlockingPortal, mode: Mode) -> type[ConfirmationMachine]:
    return type("Machine", (ConfirmationMachine,), {"portal": portal, "mode": mode})


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_confirmation_cannot_be_bypassed(mode: Mode) -> None:
    with start_blocking_portal(backend="asyncio") as portal:
        run_state_machine_as_test(
            _machine_for(portal, mode),
            settings=settings(
                max_examples=50 if mode == "legacy" else 20,
                stateful_step_count=50,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    record(
        "confirmation state machine",
        f"{STEPS['runs']} runs, {STEPS['steps']} tool calls; {STEPS['submitted']} confirmed "
        f"writes, each matched to a legitimate confirmation; {STEPS['refused']} confirmations "
        f"refused ({STEPS['legit_refused']} of them legitimate by the model); 0 writes without one",
    )
