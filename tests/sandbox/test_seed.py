"""The seeded organization: deterministic, and holding everything the other tests lean on."""

from __future__ import annotations

from datetime import timedelta

from close_mcp.clock import FakeClock, utc_datetime
from close_mcp.sandbox import Sandbox
from close_mcp.sandbox.store import Store


def _dump(store: Store) -> list[object]:
    return [
        store.me.to_json(store.org),
        [s.to_json() for s in store.statuses.values()],
        [cf.to_json() for cf in store.custom_fields.values()],
        [t.to_json(store.org) for t in store.templates.values()],
        [lead.to_json(store) for lead in store.leads.values()],
        [s.to_json(store.org) for s in store.subscriptions.values()],
    ]


def test_same_seed_same_data_and_ids() -> None:
    first = Sandbox(n_leads=60, seed=3, clock=FakeClock()).store
    second = Sandbox(n_leads=60, seed=3, clock=FakeClock()).store
    assert _dump(first) == _dump(second)


def test_custom_field_ids_do_not_depend_on_the_number_of_leads() -> None:
    """A backup taken in one sandbox restores into another of any size (same seed)."""
    small = Sandbox(n_leads=5, clock=FakeClock()).store
    large = Sandbox(n_leads=80, clock=FakeClock()).store
    assert list(small.custom_fields) == list(large.custom_fields)


def test_other_seed_other_data() -> None:
    first = Sandbox(n_leads=60, seed=3, clock=FakeClock()).store
    second = Sandbox(n_leads=60, seed=4, clock=FakeClock()).store
    assert list(first.leads) != list(second.leads)


def test_default_size_is_about_a_thousand() -> None:
    assert len(Sandbox(clock=FakeClock()).store.leads) == 1000


def test_organization_has_what_the_issue_lists() -> None:
    clock = FakeClock()
    store = Sandbox(n_leads=300, clock=clock).store
    assert [s.label for s in store.statuses.values()] == [
        "Potential",
        "Bad Fit",
        "Qualified",
        "Customer",
        "Canceled",
    ]
    kinds = {(cf.type, cf.accepts_multiple_values) for cf in store.custom_fields.values()}
    assert kinds == {
        ("choices", False),
        ("choices", True),
        ("number", False),
        ("date", False),
        ("text", False),
        ("user", False),
    }
    shared = [cf for cf in store.custom_fields.values() if cf.is_shared]
    assert [(cf.name, cf.type) for cf in shared] == [("Region", "choices")]
    assert 0 < sum(shared[0].id in lead.custom for lead in store.leads.values()) < 300
    assert len(store.templates) >= 3
    assert all("{{" in t.body for t in store.templates.values())
    assert len(store.sequences) >= 2
    assert all(s.status == "active" and s.steps for s in store.sequences.values())
    assert len(store.email_accounts) >= 2
    assert all(a.identities for a in store.email_accounts.values())
    assert len(store.users) == 2
    assert len(store.saved_searches) >= 2
    for view in store.saved_searches.values():
        assert set(view.s_query) == {"query", "results_limit", "sort"}
    leads = list(store.leads.values())
    assert all(1 <= len(lead.contacts) <= 3 for lead in leads)
    no_email = [lead for lead in leads if not any(c.emails for c in lead.contacts)]
    assert 0 < len(no_email) < len(leads) / 3
    names = [lead.name for lead in leads] + [c.name for lead in leads for c in lead.contacts]
    assert any(not name.isascii() for name in names)
    now = utc_datetime(clock)
    created = [lead.date_created for lead in leads]
    assert all(now - timedelta(days=731) <= moment < now for moment in created)
    assert min(created) < now - timedelta(days=500)
    assert max(created) > now - timedelta(days=200)
    assert all(lead.date_created <= lead.date_updated <= now for lead in leads)
    assert all(lead.id.startswith("lead_") and len(lead.id) == 27 for lead in leads)
