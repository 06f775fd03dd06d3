"""Confirmation cannot be bypassed, and a valid one is never turned away: a hypothesis state
machine against one live server.

The machine mixes previews, dry runs, confirmations with valid, stale, forged, replayed and
swapped tokens, changed arguments (every action is its own argument set, so a token used with
another action is a token for other arguments), twins (the same tool and the same selection,
so the same count, with one argument swapped: another template, sequence, subject or
`send_done_email`; only the request-body digest tells them apart), leads moved in and out of
the selection in the sandbox store, time passing (tokens expire, jobs run and delete leads) and
every kind of answer from the person (accept with the right or a wrong number, approve or not,
decline, cancel), or a client that cannot be asked at all.

It keeps its own model of what a legitimate confirmation is: a token minted for exactly these
arguments and the current count, not expired, not used before, an accepted elicitation with
the right answer (or a client that cannot be asked). An identical job made by another,
legitimate token does not stand in the way: the state store says which token made each job,
so the replay check refuses only a replay of the same token (which the spent nonce already
stops). Both directions are
asserted on every confirmation: a guarded write (delete, bulk email, bulk sequence
subscription, outbox email) happens only for a legitimate one, and every legitimate one is
submitted. Refusing every token, or dropping the digest comparison, fails it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
)
from mcp import types

from close_mcp.writes.tokens import TOKEN_TTL_S
from tests.harness import Harness, Mode
from tests.ids import status_id
from tests.reliability.machines import (
    ANSWERS,
    DIGEST_REFUSAL,
    call,
    forge,
    person_answers,
    run_machine,
)
from tests.reliability.support import guarded_kind, record

STEPS: dict[str, int] = {}


def _fresh_steps() -> None:
    STEPS.clear()
    STEPS.update(
        runs=0,
        steps=0,
        submitted=0,
        predicted=0,
        refused=0,
        swapped=0,
        digest_refused=0,
        at_expiry=0,
        swapped_leads=0,
    )


@dataclass(frozen=True)
class Action:
    name: str
    tool: str
    args: dict[str, Any]
    status_label: str | None  # the selection, for the model's count; None: one email
    same_job_as: str | None = None  # the twin that differs only in send_done_email


@dataclass(frozen=True)
class Token:
    action: str
    value: str
    matched: int
    expires: float
    leads: frozenset[str] = frozenset()  # the exact leads the preview showed


@dataclass(frozen=True)
class Write:
    """A guarded write the model allowed: which action, at what time."""

    action: Action
    at: float


def _actions(h: Harness) -> dict[str, Action]:
    store = h.sandbox.store
    account = next(iter(store.email_accounts.values()))
    identity = account.identities[0]["email"]
    customer = status_id(store, "Customer")
    lead = next(lead for lead in store.leads.values() if lead.status_id == customer)
    qualified = {"filter": {"lead_status": "Qualified"}}
    bad_fit = {"filter": {"lead_status": "Bad Fit"}}
    subscribe = {
        **bad_fit,
        "action_type": "subscribe",
        "sequence": "Onboarding",
        "sender_account": account.id,
        "sender_email": identity,
    }
    send = {
        "lead_id": lead.id,
        "to": ["buyer@example.com"],
        "subject": "Hello",
        "body_text": "Hi",
        "status": "outbox",
        "sender": f'"Sandra" <{identity}>',
    }
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
            Action("subscribe_bad_fit", "create_bulk_sequence_subscription", subscribe, "Bad Fit"),
            Action("send_now", "send_email", send, None),
            # twins of the above: same tool, same selection (same count), one argument swapped
            Action(
                "delete_qualified_quiet",
                "create_bulk_delete",
                {**qualified, "send_done_email": False},
                "Qualified",
                same_job_as="delete_qualified",
            ),
            Action(
                "delete_bad_fit_quiet",
                "create_bulk_delete",
                {**bad_fit, "send_done_email": False},
                "Bad Fit",
                same_job_as="delete_bad_fit",
            ),
            Action(
                "email_qualified_followup",
                "create_bulk_email",
                {**qualified, "template": "Follow-up"},
                "Qualified",
            ),
            Action(
                "subscribe_bad_fit_winback",
                "create_bulk_sequence_subscription",
                {**subscribe, "sequence": "Win-back"},
                "Bad Fit",
            ),
            Action("send_now_other", "send_email", {**send, "subject": "Hello again"}, None),
        ]
    }


N_ACTIONS: Final = 11


class ConfirmationMachine(RuleBasedStateMachine):
    """One run: a fresh server and sandbox, driven through the portal's event loop."""

    portal: BlockingPortal
    mode: Mode
    asks: bool  # whether the client supports elicitation (else nobody is asked)

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        STEPS["runs"] += 1
        self.answer = "accept_right"
        self._cm = self.portal.wrap_async_context_manager(
            Harness.start(mode=self.mode, n_leads=60, elicit=self.answer_for if self.asks else None)
        )
        self.h = self._cm.__enter__()
        self.actions = _actions(self.h)
        assert len(self.actions) == N_ACTIONS
        self.spent: set[str] = set()
        self.writes: list[Write] = []

    def teardown(self) -> None:
        # The clock moves only in time_passes: the model's "now" is the server's at each check.
        assert self.h.clock.sleeps == []
        if not self.asks:
            assert self.h.questions == []
        self._cm.__exit__(None, None, None)

    # -- the model ---------------------------------------------------------------------------

    def _guarded(self) -> list[Any]:
        return [r for r in self.h.sandbox.requests if guarded_kind(r) is not None]

    def _count(self, action: Action) -> int:
        if action.status_label is None:
            return 1  # one recipient
        return len(self._leads(action))

    def _leads(self, action: Action) -> frozenset[str]:
        """The leads the action's selection holds now (none for a single email)."""
        if action.status_label is None:
            return frozenset()
        store = self.h.sandbox.store
        self.h.sandbox.jobs.advance_all(self.h.clock.time())  # as the next request would
        sid = status_id(store, action.status_label)
        return frozenset(lead.id for lead in store.leads.values() if lead.status_id == sid)

    def _fits(self, token: Token, action: Action) -> bool:
        """The token fits this call: minted for these arguments, this count and these very
        leads (a lead that left while another joined is a change), not expired, not spent
        (the person's answer aside)."""
        return (
            token.action == action.name
            and token.value not in self.spent
            and self.h.clock.time() < token.expires
            and self._count(action) == token.matched
            and self._leads(action) == token.leads
        )

    def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        STEPS["steps"] += 1
        return call(self.portal, self.h, tool, args)

    def answer_for(self, message: str) -> types.ElicitResult:
        return person_answers(self.answer, message)

    def _confirm(self, token: Token, action: Action, answer: str) -> dict[str, Any] | None:
        """Confirm `action` with `token`; assert both directions against the model."""
        self.answer = answer
        STEPS["at_expiry"] += self.h.clock.time() == token.expires and token.action == action.name
        fits = self._fits(token, action)
        human = answer == "accept_right" or not self.asks
        legit = fits and human
        # Same tool, arguments and count, but a lead left while another joined: only the
        # binding of the exact leads refuses it.
        swapped = (
            token.action == action.name
            and token.value not in self.spent
            and self.h.clock.time() < token.expires
            and self._count(action) == token.matched
            and self._leads(action) != token.leads
            and human
        )
        seen = len(self._guarded())
        result = self._call(action.tool, {**action.args, "confirmation_token": token.value})
        new = self._guarded()[seen:]
        if swapped:
            assert result is not None
            assert result["reason"].startswith("what the preview showed has changed"), result
            STEPS["swapped_leads"] += 1
        if legit:
            STEPS["predicted"] += 1
            assert result is not None, f"{action.name}: a valid confirmation failed"
            assert result["status"] == "submitted", (
                f"{action.name}: a valid confirmation was not submitted: {result['message']}"
            )
            assert len(new) == 1, new
            self.spent.add(token.value)
            self.writes.append(Write(action, self.h.clock.time()))
            STEPS["submitted"] += 1
        else:
            assert new == [], (
                f"{action.name} sent {[(r.path, r.json) for r in new]} without a valid confirmation"
            )
            assert result is None or result["status"] in ("refused", "confirmation_required")
            STEPS["refused"] += 1
        return result

    # -- rules -------------------------------------------------------------------------------

    @rule(target=tokens, which=st.integers(min_value=0, max_value=N_ACTIONS - 1), dry=st.booleans())
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
            assert self._count(action) == 0
            return Token(action.name, "none", -1, 0.0)
        assert result["preview"]["matched"] == self._count(action)
        return Token(
            action.name,
            result["confirmation_token"],
            result["preview"]["matched"],
            before + TOKEN_TTL_S,
            self._leads(action),
        )

    @rule(which=st.integers(min_value=0, max_value=N_ACTIONS - 1), answer=st.sampled_from(ANSWERS))
    def preview_then_confirm(self, which: int, answer: str) -> None:
        """The usual path: a preview, and its token confirmed at once."""
        token = self.preview(which, dry=False)
        if token.value != "none":
            self._confirm(token, self.actions[token.action], answer)

    @rule(
        token=tokens,
        which=st.integers(min_value=0, max_value=N_ACTIONS - 1),
        answer=st.sampled_from(ANSWERS),
        same_action=st.sampled_from([True, True, True, False]),
    )
    def confirm(self, token: Token, which: int, answer: str, same_action: bool) -> None:
        action = self.actions[token.action] if same_action else list(self.actions.values())[which]
        self._confirm(token, action, answer)

    @rule(token=tokens, pick=st.integers(min_value=0, max_value=2))
    def swapped(self, token: Token, pick: int) -> None:
        """The token of one action with its twin's arguments (same tool, same count): only the
        request-body digest can refuse it."""
        mine = self.actions[token.action]
        twins = [
            a
            for a in self.actions.values()
            if a.tool == mine.tool and a.status_label == mine.status_label and a is not mine
        ]
        twin = twins[pick % len(twins)]
        clean = token.value not in self.spent and self.h.clock.time() < token.expires
        same_count = self._count(twin) == token.matched
        result = self._confirm(token, twin, "accept_right")
        STEPS["swapped"] += 1
        assert result is not None
        if clean and same_count and token.value != "none":
            assert result["status"] == "refused"
            assert str(result["reason"]).startswith(DIGEST_REFUSAL), result["reason"]
            STEPS["digest_refused"] += 1

    @rule(
        token=tokens,
        which=st.integers(min_value=0, max_value=N_ACTIONS - 1),
        how=st.integers(0, 3),
        same_action=st.sampled_from([True, True, True, False]),
    )
    def forged(self, token: Token, which: int, how: int, same_action: bool) -> None:
        """A forged token, mostly with the arguments of the token it was made from (so only
        the MAC, or the count in the payload, is wrong)."""
        action = self.actions[token.action] if same_action else list(self.actions.values())[which]
        self.answer = "accept_right"
        seen = len(self._guarded())
        result = self._call(
            action.tool, {**action.args, "confirmation_token": forge(token.value, how)}
        )
        assert self._guarded()[seen:] == []
        assert result is None or result["status"] == "refused", result

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
        lead.status_id = status_id(store, into)

    @rule(token=tokens, early=st.booleans())
    def confirm_at_expiry(self, token: Token, early: bool) -> None:
        """Time runs to the second a token expires (refused: it lasts until just before), or
        to one second earlier (still valid), and the token is confirmed."""
        target = token.expires - (1.0 if early else 0.0)
        now = self.h.clock.time()
        if token.value == "none" or target < now:
            return
        self.h.clock.advance(target - now)
        assert self.h.clock.time() == target
        self._confirm(token, self.actions[token.action], "accept_right")

    # 600 s: a token previewed just before expires exactly now, and must be refused (`<=`).
    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0, 120.0, 599.0, 600.0, 601.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.clock.advance(seconds)

    @invariant()
    def every_guarded_write_was_confirmed(self) -> None:
        assert len(self._guarded()) == len(self.writes)


RUNS: Final = {("legacy", True): 40, ("auto", True): 15, ("legacy", False): 10}


@pytest.mark.parametrize(("mode", "asks"), list(RUNS), ids=["legacy", "auto", "no-elicitation"])
def test_confirmation_cannot_be_bypassed(mode: Mode, asks: bool) -> None:
    _fresh_steps()
    run_machine(ConfirmationMachine, mode, asks, examples=RUNS[mode, asks], steps=50)
    # The run must have exercised both directions, not only refusals.
    assert STEPS["predicted"] > 0, STEPS
    assert STEPS["digest_refused"] > 0, STEPS
    assert STEPS["at_expiry"] > 0, STEPS
    assert STEPS["swapped_leads"] > 0, STEPS
    who = "asking the person" if asks else "a client that cannot ask"
    record(
        f"confirmation state machine[{mode}, {who}]",
        f"{STEPS['runs']} runs, {STEPS['steps']} tool calls; {STEPS['submitted']} confirmed "
        f"writes, each predicted by the model and matched to a legitimate confirmation; "
        f"{STEPS['refused']} confirmations refused, none legitimate by the model "
        f"({STEPS['swapped']} with a twin's arguments, {STEPS['digest_refused']} of them "
        f"refused by the digest alone; {STEPS['swapped_leads']} after a lead left and another "
        "joined, same count; "
        f"{STEPS['at_expiry']} at the exact second the token expires); "
        "0 writes without a legitimate confirmation",
    )
