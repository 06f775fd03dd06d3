"""What a confirmation binds beyond the request body: the exact leads, and the content.

The body of a bulk action names a query and a template, not the leads it will reach or
the words it will send. A lead that leaves the selection while another joins keeps the
count; a template edited after the preview keeps the body. So a token also carries a
digest of the `Binding` the preview saw:

- the set of every lead the action touches, read with the same paging as the snapshot, as
  a streamed digest (`LeadSet`): each page is folded in as it arrives, so every lead is
  bound whatever `CLOSE_MCP_SNAPSHOT` says (that limit is about what is stored, not about
  what was confirmed) and the server never holds more than the ids it keeps for messages;
- the content: the email template's subject and body; a sequence's steps, its sender and
  the subject and body of every template its steps send.

At confirmation the binding is read again, from the very pages the snapshot or backup is
written from (one read of the leads, `Safeguard.take`); any difference refuses the call
with a fresh preview that says what changed. The binding the preview saw is kept in the
state store under the token's nonce, with the lead ids up to the snapshot limit, so the
message can name the leads that left and joined.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

import anyio.lowlevel

from close_mcp.close.client import CloseClient
from close_mcp.close.lead_walk import iter_leads, pages
from close_mcp.wording import leads
from close_mcp.writes.progress import Progress

SHOWN_IDS: Final = 5  # lead ids named in a "what changed" message
ENCODE_CHUNK: Final = 5000  # lead ids encoded between two turns of the event loop
_MOD: Final = 1 << 256


def digest_of(text: str) -> str:
    """The digest a token carries for a binding encoded as `text`."""
    return hashlib.sha256(text.encode()).hexdigest()


class LeadSet:
    """The set of leads a walk read, as a digest folded page by page.

    The digest is the sum, modulo 2**256, of a keyed BLAKE2b MAC of each lead id (one C call
    a lead: half the time of HMAC-SHA256), with their count: the same whatever order Close
    returns them in, so nothing is sorted or held. The key comes from `CLOSE_MCP_SECRET`
    (`ConfirmationTokens.lead_key`): without it no one can choose another set of leads with
    the same sum. The ids themselves are kept
    only up to `keep` (the snapshot limit), for the message that names what changed."""

    def __init__(self, key: bytes, keep: int) -> None:
        self._key = hashlib.sha256(key).digest()  # BLAKE2b takes a key of at most 64 bytes
        self._sum = 0
        self._keep = keep
        self.count = 0
        self._ids: set[str] | None = set()

    def add_page(self, page: list[dict[str, Any]]) -> None:
        """Fold in a page of leads as Close returned them (each with its `id`)."""
        total = self._sum
        key = self._key
        for lead in page:
            lead_id = str(lead["id"])
            mac = hashlib.blake2b(lead_id.encode(), key=key, digest_size=32).digest()
            total += int.from_bytes(mac, "big")
            if self._ids is not None:
                self._ids.add(lead_id)
        self._sum = total % _MOD
        self.count += len(page)
        if self._ids is not None and len(self._ids) > self._keep:
            self._ids = None

    def digest(self) -> str:
        return f"{self.count}:{self._sum:064x}"

    def ids(self) -> frozenset[str] | None:
        """The ids read, or None past `keep` of them."""
        return None if self._ids is None else frozenset(self._ids)


@dataclass(frozen=True)
class Binding:
    # The lead set's digest (`LeadSet.digest`); None: the request selects no leads.
    leads: str | None
    content: dict[str, Any]
    # The ids of the leads, for naming what changed; None above the snapshot limit.
    lead_ids: frozenset[str] | None = None
    count: int = 0

    def digest(self) -> str:
        """What the token carries: the lead set's digest and the content, never the ids."""
        return digest_of(json.dumps({"leads": self.leads, "content": self.content}, sort_keys=True))

    def to_json(self) -> str:
        ids = None if self.lead_ids is None else sorted(self.lead_ids)
        return json.dumps(
            {"leads": self.leads, "count": self.count, "ids": ids, "content": self.content},
            sort_keys=True,
        )

    async def encode(self) -> str:
        """`to_json()`, the same text, built `ENCODE_CHUNK` ids at a time with the event loop
        served in between: 100,000 ids in one `json.dumps` held it for most of a second."""
        if self.lead_ids is None:
            return self.to_json()
        ids = sorted(self.lead_ids)
        parts = [
            '{"content": ',
            json.dumps(self.content, sort_keys=True),
            f', "count": {json.dumps(self.count)}, "ids": [',
        ]
        for start in range(0, len(ids), ENCODE_CHUNK):
            parts.append(", " if start else "")
            parts.append(", ".join(map(json.dumps, ids[start : start + ENCODE_CHUNK])))
            await anyio.lowlevel.checkpoint()
        parts.append(f'], "leads": {json.dumps(self.leads)}}}')
        return "".join(parts)

    @classmethod
    def from_json(cls, text: str) -> Binding:
        data = json.loads(text)
        ids = data.get("ids")
        return cls(
            data.get("leads"),
            dict(data.get("content") or {}),
            None if ids is None else frozenset(ids),
            int(data.get("count") or 0),
        )

    def changes_since(self, before: Binding | None) -> str:
        """What differs from the binding the preview saw, for the person and the model."""
        if before is None:
            return "the leads or the content changed since the preview"
        parts: list[str] = []
        if self.lead_ids is not None and before.lead_ids is not None:
            left = sorted(before.lead_ids - self.lead_ids)
            joined = sorted(self.lead_ids - before.lead_ids)
            if left:
                parts.append(f"{leads(len(left))} left the selection ({_some(left)})")
            if joined:
                parts.append(f"{leads(len(joined))} joined it ({_some(joined)})")
        elif self.leads != before.leads:
            counts = "as many" if self.count == before.count else f"{before.count} then"
            parts.append(f"other leads are selected than the ones previewed ({counts})")
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
    leads: LeadSet | None,
    walk: bool = True,
    progress: Progress | None = None,
) -> Binding:
    """The binding as Close shows it now. `leads` is None when no lead set is to be read
    (no selection). With `walk` it is filled here with the same requests as a snapshot's,
    ids only, reported to `progress` as a phase of the call; without, it holds the pages
    of a walk already made (the snapshot's or the backup's, fed page by page)."""
    if walk and leads is not None and s_query is not None and matched > 0:
        walked = iter_leads(client, s_query, [], results_limit=results_limit, sort=sort)
        async for page in pages(walked):
            leads.add_page(page)
            if progress is not None:
                await progress.step(leads.count, matched, _checking(leads.count, matched))
        if progress is not None:
            await progress.step(leads.count, leads.count, _checking(leads.count, matched))
            progress.next_phase(leads.count)
    content = await _content(client, body)
    if leads is None:
        return Binding(None, content)
    return Binding(leads.digest(), content, leads.ids(), leads.count)


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


def _some(ids: list[str]) -> str:
    more = len(ids) - SHOWN_IDS
    return ", ".join(ids[:SHOWN_IDS]) + (f" and {more} more" if more > 0 else "")
