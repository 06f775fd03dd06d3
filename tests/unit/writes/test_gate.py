"""The confirmation gate (`close_mcp.writes.gate`) through its public functions: which actions
need a confirmed token under each CLOSE_MCP_CONFIRM, the one decision a call makes (the token
checked once, never spent), the question it asks or the decision it hands on instead, and
what the pipeline reads back from the answer."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest
from mcp import types
from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
)

from close_mcp.clock import FakeClock
from close_mcp.config import CONFIRMABLE_ACTIONS, load_settings
from close_mcp.store.sqlite import SQLiteStore
from close_mcp.writes.audit import AuditLog
from close_mcp.writes.gate import (
    ASKED,
    CANNOT_ASK,
    NOT_ASKED,
    REQUIRE_HUMAN_REFUSAL,
    Approval,
    Decision,
    TypedCount,
    TypedMergeCount,
    TypedRestoreCount,
    cannot_ask,
    decide,
    decision_of,
    human_refusal,
    needs_confirmation,
    question,
)
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.sender import WriteContext
from close_mcp.writes.tokens import ConfirmationTokens

pytestmark = pytest.mark.anyio

CALLER = "caller-a"
PATHS = {
    "edit": "lead/bulk_action/edit/",
    "email": "lead/bulk_action/email/",
    "sequences": "lead/bulk_action/sequence_subscription/",
    "send": "activity/email/",
    "delete": "lead/bulk_action/delete/",
    "export": "export/lead/",
    "merge": "lead/merge/",
    "opportunities": "opportunity/",
    "tasks": "task/",
}


def context(confirm: str | None = None) -> WriteContext:
    """The write context with CLOSE_MCP_CONFIRM as `confirm` (None: the default)."""
    clock = FakeClock()
    store = SQLiteStore(":memory:", clock=clock)
    settings = load_settings({"CLOSE_MCP_SECRET": "s" * 32}, sandbox=True, confirm=confirm)
    tokens = ConfirmationTokens(b"s" * 32, clock, store=store)
    return WriteContext(settings, tokens, AuditLog(None, clock), clock, store)


def request(action: str = "edit", **extra: Any) -> WriteRequest:
    return WriteRequest(
        tool=f"{action}_tool",
        action=action,
        path=PATHS[action],
        body={"s_query": {"type": "id", "value": "lead_1"}},
        matched=3,
        summary=f"{action.capitalize()} 3 leads",
        **extra,
    )


def mint(ctx: WriteContext, req: WriteRequest, *, caller: str = CALLER) -> str:
    return ctx.tokens.mint(req.tool, req.path, req.body, req.matched, caller=caller).token


def accepted(data: Any) -> AcceptedElicitation[Any]:
    """A resolver's outcome as the SDK wraps it: a plain value unvalidated, like a model."""
    return AcceptedElicitation[Any].model_construct(data=data)


class Client:
    """What `question` reads of the MCP context: the capabilities the client declared."""

    def __init__(self, elicitation: types.ElicitationCapability | None) -> None:
        self.client_capabilities = types.ClientCapabilities(elicitation=elicitation)


ASKING = cast(Context, Client(types.ElicitationCapability()))
MUTE = cast(Context, Client(None))


@pytest.fixture
def ctx() -> WriteContext:
    return context()


# -- needs_confirmation: per CLOSE_MCP_CONFIRM and per kind of request ---------------------


@pytest.mark.parametrize("action", CONFIRMABLE_ACTIONS)
def test_by_default_every_action_needs_confirmation(action: str) -> None:
    assert needs_confirmation(context(), request(action)) is True


@pytest.mark.parametrize(
    ("confirm", "confirmed"),
    [
        # a delete and a merge are confirmed whatever the setting
        ("edit", {"edit", "delete", "merge"}),
        ("email,send", {"email", "send", "delete", "merge"}),
        ("delete", {"delete", "merge"}),
    ],
)
def test_confirm_names_the_actions_that_need_a_token(confirm: str, confirmed: set[str]) -> None:
    ctx = context(confirm)
    assert {a for a in CONFIRMABLE_ACTIONS if needs_confirmation(ctx, request(a))} == confirmed


@pytest.mark.parametrize("kind", ["selects_everything", "always_confirm"])
def test_every_lead_or_always_confirm_needs_a_token_whatever_the_setting(kind: str) -> None:
    ctx = context("delete")
    assert needs_confirmation(ctx, request("edit")) is False
    assert needs_confirmation(ctx, request("edit", **{kind: True})) is True


# -- decide: the call's one decision ---------------------------------------------------------


async def test_a_fitting_token_decides_confirm_with_no_problem_and_is_not_spent(
    ctx: WriteContext,
) -> None:
    req = request("delete")
    token = mint(ctx, req)
    decision = await decide(ctx, req, token, dry_run=False, caller=CALLER)
    assert decision == Decision(confirm=True, token_problem=None, answer=NOT_ASKED)
    assert await decide(ctx, req, token, dry_run=False, caller=CALLER) == decision
    await ctx.tokens.spend(token)  # still spendable: deciding spent nothing


async def test_a_token_that_does_not_fit_is_the_decisions_problem(ctx: WriteContext) -> None:
    req = request("delete")
    other_caller = mint(ctx, req, caller="caller-b")
    decision = await decide(ctx, req, other_caller, dry_run=False, caller=CALLER)
    assert decision.confirm is True
    assert decision.token_problem is not None
    assert decision.token_problem.startswith("the confirmation token was issued to another caller")
    fewer = dataclasses.replace(request("delete"), matched=2)
    decision = await decide(ctx, fewer, mint(ctx, req), dry_run=False, caller=CALLER)
    assert decision == Decision(
        confirm=True,
        token_problem="the selection now matches 2 leads, not the 3 that were previewed",
    )


async def test_an_expired_token_is_the_decisions_problem(ctx: WriteContext) -> None:
    req = request("edit")
    token = mint(ctx, req)
    cast(FakeClock, ctx.clock).advance(600.0)
    decision = await decide(ctx, req, token, dry_run=False, caller=CALLER)
    assert decision == Decision(
        confirm=True,
        token_problem="the confirmation token has expired (tokens last 10 minutes)",
    )


@pytest.mark.parametrize(
    ("confirm", "dry_run", "already", "confirmed"),
    [
        (None, True, None, True),  # a preview: the token is not looked at
        (None, False, "it is already a draft", True),  # nothing will be sent
        ("delete", False, None, False),  # the setting confirms no edit
    ],
)
async def test_a_token_is_checked_only_when_it_decides_something(
    confirm: str | None, dry_run: bool, already: str | None, confirmed: bool
) -> None:
    ctx = context(confirm)
    req = request("edit", already=already)
    decision = await decide(ctx, req, "not-a-token", dry_run=dry_run, caller=CALLER)
    assert decision == Decision(confirm=confirmed, token_problem=None, answer=NOT_ASKED)


# -- question: what is asked, or the decision handed on --------------------------------------


async def test_a_delete_with_a_fitting_token_asks_for_the_number_of_leads(
    ctx: WriteContext,
) -> None:
    req = request("delete")
    asked = await question(ASKING, ctx, req, False, mint(ctx, req), caller=CALLER)
    assert isinstance(asked, Elicit)
    assert asked.schema is TypedCount
    assert asked.message == (
        "Delete 3 leads. This cannot be undone in Close. To confirm, type the number of "
        "leads that will be deleted (3)."
    )


async def test_a_merge_with_a_fitting_token_asks_for_the_number_of_pairs(
    ctx: WriteContext,
) -> None:
    req = request("merge", counted="merged")
    asked = await question(ASKING, ctx, req, False, mint(ctx, req), caller=CALLER)
    assert isinstance(asked, Elicit)
    assert asked.schema is TypedMergeCount
    assert asked.message == (
        "Merge 3 leads. Close cannot undo a merge. To confirm, type the number of pairs "
        "that will be merged (3)."
    )
    assert human_refusal(req, accepted(TypedMergeCount(count=3)), require_human=False) is None
    assert human_refusal(req, accepted(TypedMergeCount(count=2)), require_human=False) == (
        "the person typed 2, but the action would merge 3"
    )


async def test_an_edit_with_a_fitting_token_asks_for_approval(ctx: WriteContext) -> None:
    req = request("edit")
    asked = await question(ASKING, ctx, req, False, mint(ctx, req), caller=CALLER)
    assert isinstance(asked, Elicit)
    assert (asked.message, asked.schema) == ("Edit 3 leads. Run it now?", Approval)


async def test_without_a_fitting_token_nothing_is_asked_and_the_decision_is_handed_on(
    ctx: WriteContext,
) -> None:
    req = request("delete")
    assert await question(ASKING, ctx, req, False, None, caller=CALLER) == Decision(True)
    bad = await question(ASKING, ctx, req, False, "x.y", caller=CALLER)
    assert bad == Decision(True, "the confirmation token is not valid (forged, mistyped, or "
                           "from a server with another CLOSE_MCP_SECRET)")  # fmt: skip
    preview = await question(ASKING, ctx, req, True, mint(ctx, req), caller=CALLER)
    assert preview == Decision(True)


async def test_a_client_that_cannot_ask_gets_the_decision_marked_cannot_ask(
    ctx: WriteContext,
) -> None:
    req = request("edit")
    token = mint(ctx, req)
    assert await question(MUTE, ctx, req, False, token, caller=CALLER) == Decision(
        True, None, CANNOT_ASK
    )
    unconfirmed = context("delete")
    assert await question(MUTE, unconfirmed, req, False, token, caller=CALLER) == Decision(False)


# -- what the pipeline reads back from the answer --------------------------------------------


def test_the_decision_comes_back_with_the_answer() -> None:
    handed = Decision(True, "the confirmation token has expired (tokens last 10 minutes)")
    assert decision_of(accepted(handed)) is handed
    assert decision_of(accepted(TypedCount(count=3))) == ASKED
    assert decision_of(accepted(Approval(approve=False))) == ASKED
    assert decision_of(DeclinedElicitation()) == ASKED
    assert decision_of(CancelledElicitation()) == ASKED
    assert decision_of(None) is None
    assert Decision(confirm=True, token_problem=None, answer=NOT_ASKED) == ASKED


def test_cannot_ask_only_when_the_client_cannot_or_no_question_step_ran() -> None:
    assert cannot_ask(None) is True
    assert cannot_ask(accepted(Decision(True, None, CANNOT_ASK))) is True
    assert cannot_ask(accepted(Decision(True))) is False
    assert cannot_ask(accepted(Approval(approve=True))) is False
    assert cannot_ask(DeclinedElicitation()) is False


@pytest.mark.parametrize(
    ("answer", "require_human", "refusal"),
    [
        (accepted(Decision(True)), False, None),
        (accepted(Decision(True)), True, REQUIRE_HUMAN_REFUSAL),
        (accepted(Decision(True, None, CANNOT_ASK)), True, REQUIRE_HUMAN_REFUSAL),
        (None, True, REQUIRE_HUMAN_REFUSAL),
        (accepted(TypedCount(count=3)), True, None),
        (
            accepted(TypedCount(count="3")),
            False,
            "the person's answer '3' is not a whole number of leads",
        ),
        (
            accepted(TypedCount(count=4)),
            False,
            "the person typed 4, but the action would delete 3",
        ),
        (
            accepted(TypedRestoreCount(count=3.5)),
            False,
            "the person's answer 3.5 is not a whole number of leads",
        ),
        (
            accepted(TypedMergeCount(count="3")),
            False,
            "the person's answer '3' is not a whole number of pairs",
        ),
        (accepted(Approval(approve=True)), True, None),
        (
            accepted(Approval(approve="yes")),
            False,
            "the person's answer 'yes' is not a yes or no",
        ),
        (
            accepted(Approval(approve=False)),
            False,
            "the person did not approve the action",
        ),
        (DeclinedElicitation(), False, "the person declined the action"),
        (CancelledElicitation(), False, "the person cancelled the confirmation"),
    ],
)
def test_human_refusal(answer: Any, require_human: bool, refusal: str | None) -> None:
    assert human_refusal(request("delete"), answer, require_human=require_human) == refusal
