"""What a confirmation binds beyond the request body: the exact leads, and the content.

The body of a bulk action names a query and a template, not the leads it will reach or
the words it will send. A lead that leaves the selection while another joins keeps the
count; a template edited after the preview keeps the body. So a token also carries a
digest of the `Binding` the preview saw:

- the ids of every lead the action touches, read with the same paging as the snapshot, up
  to the snapshot limit (above it only the count is bound, and the preview says so);
- the content: the email template's subject and body; a sequence's steps and the subject
  and body of every template its steps send.

At confirmation the binding is read again; any difference refuses the call with a fresh
preview that says what changed. The binding the preview saw is kept in the state store
under the token's nonce, so the message can name the leads that left and joined.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

import anyio.lowlevel

from close_mcp.close.client import CloseClient
from close_mcp.close.leads import PAGE_SIZE, iter_leads
from close_mcp.writes.progress import Progress

SHOWN_IDS: Final = 5  # lead ids named in a "what changed" message
ENCODE_CHUNK: Final = 5000  # lead ids encoded between two turns of the event loop


def digest_of(text: str) -> str:
    """The digest a token carries for a binding encoded as `text`."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Binding:
    lead_ids: frozenset[str] | None  # None: more leads than the limit; only the count is bound
    content: dict[str, Any]

    def digest(self) -> str:
        return digest_of(self.to_json())

    def to_json(self) -> str:
        leads = None if self.lead_ids is None else sorted(self.lead_ids)
        return json.dumps({"leads": leads, "content": self.content}, sort_keys=True)

    async def encode(self) -> str:
        """`to_json()`, the same text, built `ENCODE_CHUNK` ids at a time with the event loop
        served in between: 100,000 ids in one `json.dumps` held it for most of a second."""
        if self.lead_ids is None:
            return self.to_json()
        ids = sorted(self.lead_ids)
        parts = ['{"content": ', json.dumps(self.content, sort_keys=True), ', "leads": [']
        for start in range(0, len(ids), ENCODE_CHUNK):
            parts.append(", " if start else "")
            parts.append(", ".join(map(json.dumps, ids[start : start + ENCODE_CHUNK])))
            await anyio.lowlevel.checkpoint()
        parts.append("]}")
        return "".join(parts)

    @classmethod
    def from_json(cls, text: str) -> Binding:
        data = json.loads(text)
        leads = data.get("leads")
        return cls(None if leads is None else frozenset(leads), dict(data.get("content") or {}))

    def changes_since(self, before: Binding | None) -> str:
        """What differs from the binding the preview saw, for the person and the model."""
        if before is None:
            return "the leads or the content changed since the preview"
        parts: list[str] = []
        if self.lead_ids is not None and before.lead_ids is not None:
            left = sorted(before.lead_ids - self.lead_ids)
            joined = sorted(self.lead_ids - before.lead_ids)
            if left:
                parts.append(f"{_leads(len(left))} left the selection ({_some(left)})")
            if joined:
                parts.append(f"{_leads(len(joined))} joined it ({_some(joined)})")
        for key in sorted(set(self.content) | set(before.content)):
            if self.content.get(key) != before.content.get(key):
                parts.append(f"the {key.replace('_', ' ')} changed")
        return "; ".join(parts) or "the leads or the content changed since the preview"


async def read_binding(
    client: CloseClient,
    *,
    s_query: dict[str, Any] | None,
    results_limit: int | None,
    sort: list[dict[str, Any]] | None,
    matched: int,
    body: dict[str, Any],
    limit: int,
    progress: Progress | None = None,
) -> Binding:
    """The binding as Close shows it now (the same requests at preview and at confirmation);
    reading the leads of a confirmed call is a phase of its `progress`."""
    lead_ids: frozenset[str] | None = None
    if s_query is not None and 0 < matched <= limit:
        walked = iter_leads(client, s_query, [], results_limit=results_limit, sort=sort)
        ids: set[str] = set()
        async for lead in walked:
            ids.add(str(lead["id"]))
            if progress is not None and len(ids) % PAGE_SIZE == 0:
                await progress.step(len(ids), matched, _checking(len(ids), matched))
        if progress is not None:
            await progress.step(len(ids), len(ids), _checking(len(ids), matched))
            progress.next_phase(len(ids))
        lead_ids = frozenset(ids)
    elif s_query is not None and matched == 0:
        lead_ids = frozenset()
    return Binding(lead_ids, await _content(client, body))


async def _content(client: CloseClient, body: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if isinstance(body.get("template_id"), str):
        template = await client.get(f"email_template/{body['template_id']}/")
        if isinstance(template, dict):
            content["template"] = {k: template.get(k) for k in ("subject", "body")}
    if isinstance(body.get("sequence_id"), str):
        sequence = await client.get(f"sequence/{body['sequence_id']}/")
        if isinstance(sequence, dict):
            content["sequence"] = {k: sequence.get(k) for k in ("steps", "name")}
            content["step_templates"] = await _step_templates(client, sequence.get("steps"))
    return content


async def _step_templates(client: CloseClient, steps: Any) -> dict[str, Any]:
    """The subject and body of every template the sequence's steps send: a step names its
    template by id, so a template rewritten after the preview keeps the steps the same."""
    ids = [
        step["email_template_id"]
        for step in (steps if isinstance(steps, list) else [])
        if isinstance(step, dict) and isinstance(step.get("email_template_id"), str)
    ]
    templates: dict[str, Any] = {}
    for template_id in dict.fromkeys(ids):
        template = await client.get(f"email_template/{template_id}/")
        templates[template_id] = (
            {k: template.get(k) for k in ("subject", "body")}
            if isinstance(template, dict)
            else None
        )
    return templates


def _checking(read: int, matched: int) -> str:
    return f"checking the selection: {read} of {matched} leads read"


def _leads(n: int) -> str:
    return f"{n} lead" if n == 1 else f"{n} leads"


def _some(ids: list[str]) -> str:
    more = len(ids) - SHOWN_IDS
    return ", ".join(ids[:SHOWN_IDS]) + (f" and {more} more" if more > 0 else "")
