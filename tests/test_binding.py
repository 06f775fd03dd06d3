"""A confirmation binds what the person saw: the exact leads and the content, not only the
query and the count.

Each test previews, changes Close between the preview and the confirmation in a way the
request body cannot show, and confirms: the call is refused with a fresh preview that says
what changed, and nothing that writes reaches Close.
"""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.clock import FakeClock
from close_mcp.safety.snapshot_writer import snapshot_dir
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.lead_writes import create_lead
from close_mcp.sandbox.store import SavedSearch, Sequence
from close_mcp.writes.binding import ENCODE_CHUNK, Binding, LeadSet
from tests.harness import MODES, Harness, StartHarness
from tests.ids import email_template, status_id
from tests.queries import status_condition

pytestmark = [pytest.mark.anyio, pytest.mark.harness(n_leads=60)]

QUALIFIED = {"filter": {"lead_status": "Qualified"}}


async def _token(h: Harness, tool: str, args: dict[str, Any]) -> str:
    first = await h.call(tool, args)
    assert first["status"] == "confirmation_required", first
    token: str = first["confirmation_token"]
    return token


async def _refused_because(h: Harness, tool: str, args: dict[str, Any], token: str) -> str:
    answer = await h.call(tool, {**args, "confirmation_token": token})
    assert answer["status"] == "refused", answer
    assert answer["confirmation_token"] not in (None, token)
    assert h.writes() == []
    reason: str = answer["reason"]
    return reason


async def _a_lead_swapped_at_the_same_count_refuses(h: Harness) -> None:
    """A Qualified lead turns Bad Fit and a Bad Fit one Qualified after the preview: the
    count is the same, the token is refused all the same."""
    token = await _token(h, "create_bulk_delete", QUALIFIED)
    store = h.sandbox.store
    qualified, bad_fit = status_id(h, "Qualified"), status_id(h, "Bad Fit")
    leaving = sorted(lead.id for lead in store.leads.values() if lead.status_id == qualified)[0]
    joining = sorted(lead.id for lead in store.leads.values() if lead.status_id == bad_fit)[0]
    store.leads[leaving].status_id = bad_fit
    store.leads[joining].status_id = qualified
    reason = await _refused_because(h, "create_bulk_delete", QUALIFIED, token)
    assert reason == (
        f"what the preview showed has changed: 1 lead left the selection ({leaving}); "
        f"1 lead joined it ({joining})"
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_lead_swapped_for_another_at_the_same_count_refuses(h: Harness) -> None:
    await _a_lead_swapped_at_the_same_count_refuses(h)


async def test_a_lead_sliding_into_a_results_limit_refuses(h: Harness) -> None:
    newest_first = [
        {
            "direction": "desc",
            "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
        }
    ]
    args = {**QUALIFIED, "results_limit": 5, "sort": newest_first}
    token = await _token(h, "create_bulk_delete", args)
    h.clock.advance(60)
    created = create_lead(
        h.sandbox.store,
        {"name": "Arrived After The Preview", "status_id": status_id(h, "Qualified")},
        h.clock.time(),
    )
    reason = await _refused_because(h, "create_bulk_delete", args, token)
    assert reason.startswith("what the preview showed has changed: 1 lead left the selection (")
    assert reason.endswith(f"1 lead joined it ({created.id})")


@pytest.mark.parametrize("mode", MODES)
async def test_a_template_edited_after_the_preview_refuses(h: Harness) -> None:
    args = {**QUALIFIED, "template": "Intro"}
    token = await _token(h, "create_bulk_email", args)
    email_template(h, "Intro").body = "Completely different words, sent to every customer."
    reason = await _refused_because(h, "create_bulk_email", args, token)
    assert reason == "what the preview showed has changed: the template changed"


async def test_a_template_subject_edited_after_the_preview_refuses(h: Harness) -> None:
    args = {**QUALIFIED, "template": "Intro"}
    token = await _token(h, "create_bulk_email", args)
    email_template(h, "Intro").subject = "Your account will be closed today"
    reason = await _refused_because(h, "create_bulk_email", args, token)
    assert reason == "what the preview showed has changed: the template changed"


SUBSCRIBE = {
    **QUALIFIED,
    "action_type": "subscribe",
    "sequence": "Onboarding",
    "sender_account": "sandra@sandbox.example",
}


def _onboarding(h: Harness) -> Sequence:
    return next(s for s in h.sandbox.store.sequences.values() if s.name == "Onboarding")


@pytest.mark.parametrize("mode", MODES)
async def test_a_sequence_step_template_rewritten_after_the_preview_refuses(h: Harness) -> None:
    """The steps name their templates by id: rewriting the second step's template keeps the
    steps (and the body) the same, and still changes what the sequence sends."""
    token = await _token(h, "create_bulk_sequence_subscription", SUBSCRIBE)
    second = h.sandbox.store.templates[_onboarding(h).steps[1]["email_template_id"]]
    second.body = "Reply with your card number to keep your account."
    reason = await _refused_because(h, "create_bulk_sequence_subscription", SUBSCRIBE, token)
    assert reason == "what the preview showed has changed: the step templates changed"
    # Its subject alone counts too.
    token = await _token(h, "create_bulk_sequence_subscription", SUBSCRIBE)
    second.subject = "Urgent: your account"
    reason = await _refused_because(h, "create_bulk_sequence_subscription", SUBSCRIBE, token)
    assert reason == "what the preview showed has changed: the step templates changed"


async def test_a_sequence_whose_steps_changed_after_the_preview_refuses(h: Harness) -> None:
    token = await _token(h, "create_bulk_sequence_subscription", SUBSCRIBE)
    _onboarding(h).steps[1]["delay"] = 0  # the follow-up now goes out at once
    reason = await _refused_because(h, "create_bulk_sequence_subscription", SUBSCRIBE, token)
    assert reason == "what the preview showed has changed: the sequence changed"


async def test_an_unchanged_sequence_still_submits(h: Harness) -> None:
    token = await _token(h, "create_bulk_sequence_subscription", SUBSCRIBE)
    done = await h.call(
        "create_bulk_sequence_subscription", {**SUBSCRIBE, "confirmation_token": token}
    )
    assert done["status"] == "submitted"
    assert len(h.writes()) == 1


@pytest.mark.harness(env={"CLOSE_MCP_SNAPSHOT": "off"})
async def test_with_snapshots_off_a_lead_swapped_at_the_same_count_still_refuses(
    h: Harness,
) -> None:
    """Snapshots off means no snapshot, not a looser confirmation: the leads stay bound."""
    await _a_lead_swapped_at_the_same_count_refuses(h)


async def test_an_unchanged_selection_and_template_still_submit(h: Harness) -> None:
    args = {**QUALIFIED, "template": "Intro"}
    token = await _token(h, "create_bulk_email", args)
    done = await h.call("create_bulk_email", {**args, "confirmation_token": token})
    assert done["status"] == "submitted"
    assert len(h.writes()) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(env={"CLOSE_MCP_SNAPSHOT": "3"})
async def test_above_the_snapshot_limit_a_same_count_swap_still_refuses(h: Harness) -> None:
    """The snapshot limit is about what is stored, not about what was confirmed: above it every
    lead is still bound (issue 23, item 11)."""
    first = await h.call("create_bulk_delete", QUALIFIED)
    assert first["preview"]["matched"] > 3
    assert not any("binds the count" in note for note in first["preview"]["notes"])
    _swap(h)
    reason = await _refused_because(h, "create_bulk_delete", QUALIFIED, first["confirmation_token"])
    assert reason == (
        "what the preview showed has changed: other leads are selected than the ones "
        "previewed (as many)"
    )


@pytest.mark.parametrize("margin", [0, 1, -1, None])
async def test_at_the_snapshot_limit_every_lead_is_bound_and_saved(
    margin: int | None, start_harness: StartHarness
) -> None:
    """At exactly CLOSE_MCP_SNAPSHOT leads (and one either side, and with snapshots off) a
    same-count swap refuses; the backup is taken up to the limit included."""
    clock = FakeClock()
    sandbox = Sandbox(n_leads=60, clock=clock)
    qualified = status_id(sandbox, "Qualified")
    n = sum(1 for lead in sandbox.store.leads.values() if lead.status_id == qualified)
    limit = "off" if margin is None else str(n + margin)
    h = await start_harness(sandbox=sandbox, clock=clock, env={"CLOSE_MCP_SNAPSHOT": limit})
    first = await h.call("create_bulk_delete", QUALIFIED)
    assert first["preview"]["matched"] == n
    saved = margin is not None and margin >= 0
    notes = first["preview"]["notes"]
    assert any(note.startswith("Before sending, the full records") for note in notes) is saved
    leaving, joining = _swap(h)
    # The ids are kept to name what changed up to the limit (with snapshots off, the default).
    names = (
        "other leads are selected than the ones previewed (as many)"
        if margin == -1
        else f"1 lead left the selection ({leaving}); 1 lead joined it ({joining})"
    )
    reason = await _refused_because(h, "create_bulk_delete", QUALIFIED, first["confirmation_token"])
    assert reason == f"what the preview showed has changed: {names}"
    again = await h.call("create_bulk_delete", QUALIFIED)
    done = await h.call(
        "create_bulk_delete", {**QUALIFIED, "confirmation_token": again["confirmation_token"]}
    )
    assert done["status"] == "submitted"
    assert (done["snapshot"] is not None) is saved


def _swap(h: Harness) -> tuple[str, str]:
    """One Qualified lead becomes Bad Fit and one Bad Fit lead Qualified: the count stays."""
    store = h.sandbox.store
    qualified, bad_fit = status_id(h, "Qualified"), status_id(h, "Bad Fit")
    leaving = sorted(lead.id for lead in store.leads.values() if lead.status_id == qualified)[0]
    joining = sorted(lead.id for lead in store.leads.values() if lead.status_id == bad_fit)[0]
    store.leads[leaving].status_id = bad_fit
    store.leads[joining].status_id = qualified
    return leaving, joining


async def test_a_smart_view_changed_after_the_preview_refuses(h: Harness) -> None:
    """A raw `saved_search` node is inlined from the view's stored query, so the body (and the
    token) carries what will run; a view edited between preview and confirmation is other
    arguments."""
    store = h.sandbox.store
    view = SavedSearch(
        store.new_id("save"),
        "Doomed",
        {"query": _status_tree(h, "Qualified"), "results_limit": None, "sort": []},
        store.me.id,
    )
    store.saved_searches[view.id] = view
    args = {"s_query": {"type": "saved_search", "saved_search_id": view.id}}
    token = await _token(h, "create_bulk_delete", args)
    view.s_query = {"query": _status_tree(h, "Customer"), "results_limit": None, "sort": []}
    reason = await _refused_because(h, "create_bulk_delete", args, token)
    assert reason.startswith("the confirmation token was issued for different arguments")


def _status_tree(h: Harness, label: str) -> dict[str, Any]:
    return status_condition(status_id(h, label))


@pytest.mark.parametrize("n", [None, 0, 1, ENCODE_CHUNK, 2 * ENCODE_CHUNK + 1])
async def test_a_binding_encoded_in_chunks_is_the_same_text(n: int | None) -> None:
    """The text kept for the message does not depend on how it was built."""
    ids = None if n is None else frozenset(f'lead_{i:06d}é"' for i in range(n))
    content = {"template": {"subject": "Hi ✓", "body": None}, "a": [2, 1]}
    binding = Binding("3:" + "0" * 64, content, ids, n or 0)
    assert await binding.encode() == binding.to_json()
    assert Binding.from_json(await binding.encode()) == binding


def test_a_lead_set_digest_is_the_set_not_the_order_and_needs_the_key() -> None:
    """Folded page by page in any order, the same leads give the same digest; one lead
    swapped for another, one lead more, or another key give another."""
    ids = [{"id": f"lead_{i:04d}"} for i in range(450)]

    def digest(pages: list[list[dict[str, str]]], key: bytes = b"k", keep: int = 10) -> str:
        leads = LeadSet(key, keep)
        for page in pages:
            leads.add_page(page)
        return leads.digest()

    once = digest([ids[:200], ids[200:400], ids[400:]])
    assert digest([ids[::-1]]) == once
    assert digest([[*ids[:-1], {"id": "lead_9999"}]]) != once
    assert digest([ids, ids[:1]]) != once
    assert digest([ids], key=b"other") != once
    kept = LeadSet(b"k", 450)
    kept.add_page(ids)
    assert kept.ids() == frozenset(lead["id"] for lead in ids)
    over = LeadSet(b"k", 449)
    over.add_page(ids)
    assert over.ids() is None


async def test_a_swap_found_once_the_backup_is_written_discards_it(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The binding is checked from the backup's own pages, once the last one is in: a swap
    refuses the delete and leaves no backup behind, in the store or on disk."""
    store = h.runtime.store
    written: list[str] = []
    extend, put = store.extend, store.put

    async def extending(key: str, lines: Any) -> None:
        written.append(key)
        await extend(key, lines)

    async def putting(key: str, value: str, *, ttl_s: float | None = None) -> None:
        written.append(key)
        await put(key, value, ttl_s=ttl_s)

    monkeypatch.setattr(store, "extend", extending)
    monkeypatch.setattr(store, "put", putting)
    first = await h.call("create_bulk_delete", QUALIFIED)
    _swap(h)
    written.clear()
    await _refused_because(h, "create_bulk_delete", QUALIFIED, first["confirmation_token"])
    backups = [key for key in written if key.startswith("backup")]
    assert [key.split(":")[0] for key in backups] == ["backup-leads", "backup"]
    assert [await store.lines(backups[0]), await store.get(backups[1])] == [[], None]
    folder = snapshot_dir(h.runtime.settings)
    assert not folder.exists() or list(folder.iterdir()) == []
