"""One read of the leads when a confirmed write is about to leave: the safeguard and the
binding check together.

The `Safeguard` (the snapshot before an edit, the backup before a delete) reads the leads the
write will touch; its pages are folded into the lead set the token was bound to as they arrive,
so the check that the leads are still the ones confirmed costs no second read. A difference
discards what was saved and says why; a safeguard that fails sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from close_mcp.close.client import CloseClient
from close_mcp.errors import SafetyNetError
from close_mcp.writes.audit import AuditOutcome
from close_mcp.writes.binding import Binding, LeadSet, read_binding
from close_mcp.writes.progress import Progress
from close_mcp.writes.request import WriteRequest
from close_mcp.writes.sender import Sender, WriteContext


class ReadOnce:
    """Reads what a confirmed write touches, once, for its safeguard and its binding."""

    def __init__(
        self, context: WriteContext, client: CloseClient, progress: Progress | None = None
    ) -> None:
        self.context = context
        self.client = client
        self.progress = progress

    async def read(
        self, sender: Sender, request: WriteRequest, token: str | None
    ) -> tuple[str | None, tuple[str, Binding] | None]:
        """The snapshot or backup, and whether what the token was bound to still holds,
        from one read of the leads: the safeguard's pages are folded into the lead set as
        they arrive (when it saves nothing, the ids alone are read). The digests are
        compared once the last page is in; a difference discards what was written and
        answers why, with the binding read now (for the fresh token)."""
        binding = token is not None and self.binds(request)
        leads = self.lead_set(request) if binding else None
        observe = leads.add_page if leads is not None else None
        saved = await self._safeguard(sender, request, observe)
        if token is None or not binding:
            return saved, None
        nonce, expected = self.context.tokens.bound(token)
        current = await self.binding(request, leads, walk=saved is None)
        if expected is not None and current.digest() == expected:
            return saved, None
        await self.discard(request, saved)
        stored = await self.context.store.get(f"binding:{nonce}")
        before = Binding.from_json(stored) if stored is not None else None
        problem = f"what the preview showed has changed: {current.changes_since(before)}"
        return None, (problem, current)

    async def _safeguard(
        self,
        sender: Sender,
        request: WriteRequest,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str | None:
        """Save what the write will overwrite; if that fails, nothing is sent."""
        if request.safeguard is None:
            return None
        what = request.safeguard.what
        try:
            return await request.safeguard.take(request, self.progress, observe)
        except Exception as exc:
            refuse(sender, request, f"the {what} before sending failed ({exc}); nothing was sent")
            raise SafetyNetError(
                f"Could not save the {what} before sending, so nothing was sent: {exc} "
                "Call again for a fresh confirmation."
            ) from exc

    async def discard(self, request: WriteRequest, saved: str | None) -> None:
        """Remove a snapshot or backup taken for a write that is then refused."""
        if saved is not None and request.safeguard is not None:
            await request.safeguard.discard(saved)

    def binds(self, request: WriteRequest) -> bool:
        """The request reaches leads or content its body does not hold."""
        return request.s_query is not None or _names_content(request.body)

    def lead_set(self, request: WriteRequest) -> LeadSet | None:
        """Every lead is bound whatever CLOSE_MCP_SNAPSHOT says (it limits what is stored:
        the ids kept to name what changed), and with snapshots off too."""
        if request.s_query is None:
            return None
        keep = self.context.settings.lead_ids_kept
        return LeadSet(self.context.tokens.lead_key(), keep)

    async def binding(
        self, request: WriteRequest, leads: LeadSet | None, *, walk: bool = True
    ) -> Binding:
        """What this request touches and sends beyond its body, read from Close now (the
        leads from `leads` as a walk already fed it, unless `walk`)."""
        return await read_binding(
            self.client,
            s_query=request.s_query,
            results_limit=request.results_limit,
            sort=request.sort,
            matched=request.matched,
            body=request.body,
            leads=leads,
            walk=walk,
            progress=self.progress,
        )


def refuse(sender: Sender, request: WriteRequest, reason: str) -> None:
    """Audit that `request` was refused: nothing was sent."""
    record(sender, request, "refused", reason=reason)


def record(
    sender: Sender,
    request: WriteRequest,
    outcome: AuditOutcome,
    *,
    reason: str | None = None,
    job_id: str | None = None,
    snapshot: str | None = None,
) -> None:
    """The audit line of `request`'s outcome."""
    path = "/" + request.path
    sender.record(outcome, path=path, body=request.body, matched=request.matched,
                  reason=reason, job_id=job_id, snapshot=snapshot)  # fmt: skip


def _names_content(body: dict[str, Any]) -> bool:
    """The body points at content Close keeps elsewhere (a template, a sequence)."""
    return isinstance(body.get("template_id"), str) or isinstance(body.get("sequence_id"), str)
