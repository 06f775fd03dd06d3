"""The last step of every write: one request to Close, sent once, and its audit line.

Everything that changes data in Close leaves through `Sender.send`: the four bulk actions
and `send_email` (through the pipeline), pause and resume, each request of a revert plan,
each lead of a restore. So "a POST is never resent" and "every write is audited" are true
in one place, and `AuditOutcome` says which outcomes an audit line can have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from anyio import get_cancelled_exc_class

from close_mcp.clock import Clock
from close_mcp.close.client import CloseClient
from close_mcp.config import Settings
from close_mcp.errors import AuditUnavailable, OutcomeUnknown
from close_mcp.store import StateStore
from close_mcp.writes.audit import AuditLog, AuditOutcome
from close_mcp.writes.tokens import ConfirmationTokens

Method = Literal["POST", "PUT"]
# After an ambiguous failure: the object the write created if it can be found, else None,
# and a sentence for the error saying where it was looked for.
Reconcile = Callable[[], Awaitable[tuple[dict[str, Any] | None, str]]]


class AuditOptions(TypedDict, total=False):
    """`Sender.guard`'s keyword arguments, which `send` passes on."""

    matched: int | None
    snapshot: str | None
    job_id: str | None
    reconcile: Reconcile | None
    unaudited: Callable[[Exception], bool]


@dataclass(frozen=True)
class WriteContext:
    """What the write path needs from the server, and no more: policy, tokens, audit, clock,
    and the state store replicas share."""

    settings: Settings
    tokens: ConfirmationTokens
    audit: AuditLog
    clock: Clock
    store: StateStore


@dataclass(frozen=True, eq=False)
class Sender:
    """Sends one tool's writes and audits each; a write whose fate is unknown is never resent."""

    audit: AuditLog
    client: CloseClient
    tool: str

    async def send(
        self, method: Method, path: str, body: dict[str, Any], **audit: Unpack[AuditOptions]
    ) -> Any:
        """Close's answer to one POST or PUT; see `guard` for what is audited."""
        request = self.client.post if method == "POST" else self.client.put
        return await self.guard(lambda: request(path, body), path, body, **audit)

    async def guard(
        self,
        call: Callable[[], Awaitable[Any]],
        path: str,
        body: dict[str, Any],
        *,
        matched: int | None = None,
        snapshot: str | None = None,
        job_id: str | None = None,
        reconcile: Reconcile | None = None,
        unaudited: Callable[[Exception], bool] = lambda exc: False,
    ) -> Any:
        """Run `call` (one request, or a plan whose requests each go through `send`), only
        while the audit log can be written (else `AuditUnavailable`, nothing sent); a
        failure is audited (`failed` or `outcome_unknown`) and raised.

        Success is audited by the caller with `record("submitted", ...)`, once it knows the
        job id and where the snapshot went; so is an error `unaudited` picks out (Close
        refusing a pause, say), which the caller records as `refused`."""
        audited = "/" + path.lstrip("/")
        if (problem := self.audit.unwritable()) is not None:
            raise AuditUnavailable(
                f"{problem}; nothing was sent, since no write goes unrecorded: fix it (or set "
                "CLOSE_MCP_AUDIT_LOG) and try again"
            )
        try:
            return await call()
        except OutcomeUnknown as exc:
            found, looked = await reconcile() if reconcile is not None else (None, "")
            if found is not None:
                return found
            self.record(
                "outcome_unknown", path=audited, body=body, matched=matched, job_id=job_id,
                snapshot=snapshot, reason=str(exc),
            )  # fmt: skip
            raise OutcomeUnknown(exc.message + looked, method=exc.method, path=exc.path) from exc
        except get_cancelled_exc_class():
            # The call was cancelled while the request was out: it may have reached Close.
            self.record(
                "outcome_unknown", path=audited, body=body, matched=matched, job_id=job_id,
                snapshot=snapshot,
                reason="the tool call was cancelled while the request was in flight",
            )  # fmt: skip
            raise
        except Exception as exc:
            if unaudited(exc):
                raise
            self.record(
                "failed", path=audited, body=body, matched=matched, job_id=job_id,
                snapshot=snapshot, reason=str(exc),
            )  # fmt: skip
            raise

    def record(
        self,
        outcome: AuditOutcome,
        *,
        path: str | None,
        body: Any,
        matched: int | None = None,
        job_id: str | None = None,
        snapshot: str | None = None,
        reason: str | None = None,
    ) -> None:
        """The one audit line of a write or of its refusal."""
        self.audit.record(
            tool=self.tool,
            outcome=outcome,
            path=path,
            request=body,
            matched=matched,
            job_id=job_id,
            snapshot=snapshot,
            reason=reason,
        )
