"""The confirmation gate: whether a write needs a confirmed token, and what the person says.

`decide` makes the gate's decision for one call once (`Decision`: confirmation needed, and
why the token given does not fit); the question step (`question`, the write tools' resolver)
hands it on to the pipeline as the outcome of a question it did not ask, so the token is
checked once per call. When it asks (elicitation), the person must agree: for a delete, by
typing the number of leads (`human_refusal`). CRM text quoted in a question is clipped and
quoted (`quoted`), so a lead named like an instruction reads as a value.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from mcp.server.mcpserver import (
    AcceptedElicitation,
    CancelledElicitation,
    Context,
    DeclinedElicitation,
    Elicit,
    ElicitationResult,
)
from mcp.types import ClientCapabilities
from pydantic import BaseModel, ConfigDict, Field

from close_mcp.errors import TokenRejected
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.sender import WriteContext


@dataclass(frozen=True)
class Counted:
    """What a typed confirmation asks the person to count, and what happens to it: the one
    place the question, the answer's schema and the refusal of a non-number take it from."""

    noun: str  # "leads", "pairs"
    verb: str  # "deleted", ...

    def ask(self, matched: int) -> str:
        return f"To confirm, type the number of {self.noun} that will be {self.verb} ({matched})."

    def field(self) -> Any:
        return Field(
            default=None,
            description=f"Type the number of {self.noun} that will be {self.verb}.",
            json_schema_extra={"type": "integer"},
        )


DELETED = Counted("leads", "deleted")
RESTORED = Counted("leads", "restored")
MERGED = Counted("pairs", "merged")


# The answers are taken as the client sent them (`Any`, with the schema the client sees) and
# checked strictly by `human_refusal`: "17", 17.0 or True is not the number 17, and "yes",
# "on" or 1 is not an approval. A lenient model would have coerced them. An answer without
# the field validates too (as None, which is neither; the schema still requires it), so a
# malformed answer is a refusal the pipeline audits, not an error raised before the tool runs.
class TypedCount(BaseModel):
    model_config = ConfigDict(json_schema_extra={"required": ["count"]})
    counted: ClassVar[Counted] = DELETED

    count: Any = DELETED.field()


class TypedRestoreCount(TypedCount):
    counted: ClassVar[Counted] = RESTORED

    count: Any = RESTORED.field()


class TypedMergeCount(TypedCount):
    counted: ClassVar[Counted] = MERGED

    count: Any = MERGED.field()


class Approval(BaseModel):
    model_config = ConfigDict(json_schema_extra={"required": ["approve"]})

    approve: Any = Field(
        default=None, description="Run this action now?", json_schema_extra={"type": "boolean"}
    )


NOT_ASKED = "not asked"
CANNOT_ASK = "cannot ask"  # the client declared no elicitation
REQUIRE_HUMAN_REFUSAL = (
    "CLOSE_MCP_REQUIRE_HUMAN is set and this client cannot ask its user "
    "(no elicitation support), so confirmed actions are refused"
)


@dataclass(frozen=True)
class Decision:
    """The gate's decision for one call, made once (`decide`) and handed on: whether the
    action needs a confirmed token, and why the token given does not fit it (None: it fits,
    or none was given). Handed on as the outcome of a question not asked, `answer` says why
    none was: NOT_ASKED, or CANNOT_ASK (the client declared no elicitation)."""

    confirm: bool
    token_problem: str | None = None
    answer: str = NOT_ASKED


# What a person's answer implies: a question is asked only when the action needs
# confirmation and the token fits it (`question`).
ASKED = Decision(confirm=True)


async def decide(
    context: WriteContext,
    request: WriteRequest,
    token: str | None,
    *,
    dry_run: bool,
    caller: str,
) -> Decision:
    """The gate's decision for this call. The token is checked (never spent) only when it
    decides something: a call that needs confirmation and would send."""
    confirm = needs_confirmation(context, request)
    if not confirm or dry_run or request.already is not None:
        return Decision(confirm)
    return Decision(confirm, await check_token(context, request, token, caller=caller))


def decision_of(answer: ElicitationResult[Any] | None) -> Decision | None:
    """The decision the question step handed on with `answer`: its own when it asked
    nothing, ASKED when the person answered; None when no question step ran (then the
    pipeline decides)."""
    if isinstance(answer, DeclinedElicitation | CancelledElicitation):
        return ASKED
    if not isinstance(answer, AcceptedElicitation):
        return None
    if isinstance(answer.data, Decision):
        return answer.data
    return ASKED if isinstance(answer.data, TypedCount | Approval) else None


def cannot_ask(answer: ElicitationResult[Any] | None) -> bool:
    """No question could be asked: no question step ran, or the client declared no
    elicitation."""
    if answer is None:
        return True
    data = answer.data if isinstance(answer, AcceptedElicitation) else None
    return isinstance(data, Decision) and data.answer == CANNOT_ASK


# CRM text quoted in a question to the person is clipped to this many characters.
QUOTE_CLIP = 40
# A quoted value as `repr` writes it.
_LITERAL = re.compile(r"'(?:[^'\\\n]|\\.)*'" r'|"(?:[^"\\\n]|\\.)*"')


def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:
    return (
        request.always_confirm
        or request.selects_everything
        or context.settings.needs_confirmation(request.action)
    )


async def check_token(
    context: WriteContext, request: WriteRequest, token: str | None, *, caller: str
) -> str | None:
    """Why the token does not fit this request by this caller, or None when it does
    (nothing is spent)."""
    if token is None:
        return None
    try:
        await context.tokens.check(
            token, request.tool, request.path, request.body, request.matched, caller=caller
        )
    except TokenRejected as exc:
        return str(exc)
    return None


async def question(
    ctx: Context,
    context: WriteContext,
    request: WriteRequest,
    dry_run: bool,
    token: str | None,
    *,
    caller: str,
) -> (
    Elicit[TypedCount]
    | Elicit[TypedRestoreCount]
    | Elicit[TypedMergeCount]
    | Elicit[Approval]
    | Decision
):
    """The question for the person, or the call's `Decision` when there is none to ask (its
    `answer` CANNOT_ASK when there would be one and the client cannot ask its user: known
    before any token is handed out). Either way the pipeline gets the decision made here."""
    decision = await decide(context, request, token, dry_run=dry_run, caller=caller)
    if dry_run or request.already is not None or not decision.confirm:
        return decision
    if not can_ask(ctx.client_capabilities):
        return replace(decision, answer=CANNOT_ASK)
    if token is None or decision.token_problem is not None:
        return decision
    what = _what_it_touches(request)
    summary = _clip_quoted(request.summary)
    if request.action == "merge":
        return Elicit(
            f"{summary}{what}. Close cannot undo a merge. {MERGED.ask(request.matched)}",
            TypedMergeCount,
        )
    if request.action == "delete" and request.counted != "deleted":
        return Elicit(f"{summary}{what}. {RESTORED.ask(request.matched)}", TypedRestoreCount)
    if request.action == "delete":
        return Elicit(
            f"{summary}{what}. This cannot be undone in Close. {DELETED.ask(request.matched)}",
            TypedCount,
        )
    return Elicit(f"{summary}{what}. Run it now?", Approval)


def can_ask(caps: ClientCapabilities | None) -> bool:
    """Whether the client can be asked a form question: it declared elicitation, as
    `{"form": {}}` or, as clients of 2025-06-18 and before do (there were no modes yet), as a
    bare `{}`. A client that declared only `url` mode cannot answer a form."""
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def quoted(text: str, limit: int = QUOTE_CLIP) -> str:
    """CRM text inside a sentence the server speaks to the person: clipped to `limit`
    characters and quoted as a literal (line breaks and control characters escaped), so a
    lead named like an instruction reads as a short value, never as the server's words."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _clip_quoted(sentence: str) -> str:
    """`sentence` with every quoted value in it (the summaries quote CRM text with `!r`)
    clipped as `quoted` clips it."""

    def clip(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        if isinstance(value, str) and len(value) > QUOTE_CLIP:
            return quoted(value)
        return match.group(0)

    return _LITERAL.sub(clip, sentence)


def _what_it_touches(request: WriteRequest) -> str:
    """For the person's question: up to three sample leads, and an email's subject and sender,
    each clipped and quoted."""
    parts: list[str] = []
    names = [quoted(s.display_name or s.id) for s in request.sample[:3]]
    if names:
        more = request.matched - len(names)
        parts.append(", ".join(names) + (f" and {more} more" if more > 0 else ""))
    rendering = request.rendering or {}
    subject = request.body.get("subject") or rendering.get("subject")
    if subject:
        parts.append(f"subject {quoted(str(subject), QUOTE_CLIP * 2)}")
    sender = request.body.get("sender") or request.body.get("sender_email")
    if sender:
        parts.append(f"from {quoted(str(sender), QUOTE_CLIP * 2)}")
    return f" ({'; '.join(parts)})" if parts else ""


def human_refusal(
    request: WriteRequest, answer: ElicitationResult[Any] | None, *, require_human: bool
) -> str | None:
    """Why the person's answer (or its absence) stops this write, or None to go ahead."""
    if answer is None or (
        isinstance(answer, AcceptedElicitation) and isinstance(answer.data, Decision)
    ):
        return REQUIRE_HUMAN_REFUSAL if require_human else None
    if isinstance(answer, DeclinedElicitation):
        return "the person declined the action"
    if isinstance(answer, CancelledElicitation):
        return "the person cancelled the confirmation"
    data = answer.data
    if isinstance(data, TypedCount):
        if type(data.count) is not int:
            return (
                f"the person's answer {data.count!r} is not a whole number of {data.counted.noun}"
            )
        if data.count != request.matched:
            return (
                f"the person typed {data.count}, but the action would "
                f"{request.counted.removesuffix('d')} {request.matched}"
            )
        return None
    if isinstance(data, Approval) and type(data.approve) is not bool:
        return f"the person's answer {data.approve!r} is not a yes or no"
    if isinstance(data, Approval) and data.approve:
        return None
    return "the person did not approve the action"
