"""Catalog lookups through the real CloseClient over httpx.MockTransport: resolution and caching."""

from __future__ import annotations

import anyio
import httpx
import pytest

from close_mcp.close.catalog import (
    KINDS,
    Catalog,
    CustomField,
    EmailAccount,
    Identity,
    SmartView,
    Status,
    Template,
    User,
)
from close_mcp.close.client import CloseClient
from close_mcp.errors import AmbiguousName, MalformedResponse, NameNotFound, ResolutionError
from tests.catalog import BASE, CUSTOM_FIELDS, HOT_TREE, STATUSES, TOP_SORT, FakeClose, make_catalog

pytestmark = pytest.mark.anyio

# -- listings and models -------------------------------------------------------------------


async def test_models_are_parsed_from_closes_shapes(catalog: Catalog) -> None:
    assert await catalog.lead_statuses() == [Status(id=s["id"], label=s["label"]) for s in STATUSES]
    fields = await catalog.custom_fields()
    assert [f.id for f in fields] == [f["id"] for f in CUSTOM_FIELDS] + ["cf_tier"]
    assert fields[2] == CustomField(
        id="cf_size", name="Employees", type="number", accepts_multiple_values=False, choices=[]
    )
    assert fields[-1] == CustomField(
        id="cf_tier", name="Tier", type="choices", choices=["Gold", "Silver"], is_shared=True
    )
    assert (await catalog.email_templates())[0] == Template(
        id="tmpl_welcome",
        name="Welcome",
        subject="Hi {{ lead.display_name }}",
        body="<p>Welcome</p>",
        is_archived=False,
    )
    assert (await catalog.email_accounts())[0] == EmailAccount(
        id="emailacct_ana",
        identities=[Identity(email="ana@example.com", name="Ana Lopez")],
        user_id="user_ana",
    )
    assert await catalog.users() == [
        User(id="user_ana", email="ana@example.com", name="Ana Lopez"),
        User(id="user_bo", email="bo@example.com", name="Bo Chen"),
        User(id="user_cy", email="cy@example.com", name="Cy"),
    ]
    assert [s.name for s in await catalog.sequences()] == ["Onboarding"]


async def test_smart_views_are_unwrapped(catalog: Catalog) -> None:
    views = {v.id: v for v in await catalog.smart_views()}
    assert views["save_hot"] == SmartView(
        id="save_hot", name="Hot leads", type="lead", query=HOT_TREE, results_limit=None, sort=None
    )
    assert views["save_top"] == SmartView(
        id="save_top", name="Top 10", type="lead", query=HOT_TREE, results_limit=10, sort=TOP_SORT
    )
    # a bare tree (no wrapper) is taken as the query itself
    assert views["save_bare"] == SmartView(
        id="save_bare", name="Bare view", query={"type": "match_all"}
    )


async def test_entries_list_id_and_name_of_every_kind(catalog: Catalog) -> None:
    assert await catalog.entries("lead_statuses") == [
        ("stat_new", "New"),
        ("stat_qual", "Qualified"),
        ("stat_unq", "Unqualified"),
        ("stat_won", "Closed Won"),
    ]
    assert await catalog.entries("email_accounts") == [
        ("emailacct_ana", "ana@example.com"),
        ("emailacct_bo", "bo@example.com"),
    ]
    assert await catalog.entries("users") == [
        ("user_ana", "Ana Lopez"),
        ("user_bo", "Bo Chen"),
        ("user_cy", "Cy"),
    ]
    for kind in KINDS:
        assert await catalog.entries(kind)


# -- resolution ----------------------------------------------------------------------------


async def test_exact_names_resolve(catalog: Catalog) -> None:
    assert (await catalog.resolve_status("Qualified")).id == "stat_qual"
    assert (await catalog.resolve_custom_field("Industry")).id == "cf_ind"
    assert (await catalog.resolve_template("Welcome")).id == "tmpl_welcome"
    assert (await catalog.resolve_sequence("Onboarding")).id == "seq_onb"
    assert (await catalog.resolve_smart_view("Hot leads")).id == "save_hot"
    assert (await catalog.resolve_email_account("bo@example.com")).id == "emailacct_bo"
    assert (await catalog.resolve_email_account("Ana Lopez")).id == "emailacct_ana"
    assert (await catalog.resolve_user("Bo Chen")).id == "user_bo"
    assert (await catalog.resolve_user("ana@example.com")).id == "user_ana"


async def test_case_and_spacing_do_not_matter(catalog: Catalog) -> None:
    assert (await catalog.resolve_status("  closed   WON ")).id == "stat_won"
    assert (await catalog.resolve_custom_field("renewal date")).id == "cf_renew"
    assert (await catalog.resolve_user("ANA@EXAMPLE.COM")).id == "user_ana"


async def test_exact_match_wins_over_a_case_insensitive_one(catalog: Catalog) -> None:
    assert (await catalog.resolve_template("Intro")).id == "tmpl_intro1"
    assert (await catalog.resolve_template("intro")).id == "tmpl_intro2"
    with pytest.raises(AmbiguousName) as info:
        await catalog.resolve_template("INTRO")
    assert str(info.value) == (
        "Several email templates are named 'INTRO': tmpl_intro1, tmpl_intro2. Pass the id instead."
    )


async def test_unknown_name_lists_the_closest(catalog: Catalog) -> None:
    with pytest.raises(NameNotFound) as info:
        await catalog.resolve_status("Qualifed")
    assert str(info.value) == (
        "No lead status named 'Qualifed'. Closest: 'Qualified' (stat_qual), "
        "'Unqualified' (stat_unq). Use lookup(kind=\"lead_statuses\") to list them."
    )
    assert info.value.kind == "lead_statuses"
    assert info.value.query == "Qualifed"


async def test_unknown_name_without_close_matches(catalog: Catalog) -> None:
    with pytest.raises(NameNotFound) as info:
        await catalog.resolve_sequence("Zebra")
    assert str(info.value) == (
        "No sequence named 'Zebra'. Use lookup(kind=\"sequences\") to list them."
    )


async def test_ambiguous_name(catalog: Catalog) -> None:
    with pytest.raises(AmbiguousName) as info:
        await catalog.resolve_custom_field("Region")
    assert str(info.value) == (
        "Several custom fields are named 'Region': cf_reg1, cf_reg2. Pass the id instead."
    )
    assert info.value.ids == ["cf_reg1", "cf_reg2"]
    assert isinstance(info.value, ResolutionError)
    assert isinstance(info.value, ValueError)


async def test_ids_pass_through(catalog: Catalog) -> None:
    assert await catalog.resolve_status("stat_unq") == Status(id="stat_unq", label="Unqualified")
    assert (await catalog.resolve_custom_field("cf_reg2")).type == "choices"
    assert (await catalog.resolve_email_account("emailacct_bo")).user_id == "user_bo"
    assert (await catalog.resolve_user("user_cy")).name == "Cy"


async def test_unknown_id_is_an_error(catalog: Catalog, fake: FakeClose) -> None:
    with pytest.raises(NameNotFound) as info:
        await catalog.resolve_status("stat_nope")
    assert str(info.value) == (
        "No lead status has the id 'stat_nope'. Use lookup(kind=\"lead_statuses\") to list them."
    )
    assert ("GET", "status/lead/stat_nope/") in fake.requests


async def test_shared_custom_fields_resolve_like_regular_ones(catalog: Catalog) -> None:
    assert (await catalog.resolve_custom_field("tier")).id == "cf_tier"
    assert (await catalog.resolve_custom_field("cf_tier")).is_shared


async def test_a_custom_field_id_missing_from_the_schema_is_unknown_at_once(
    catalog: Catalog, fake: FakeClose
) -> None:
    """The schema lists every field leads can hold: no per-id GET for one it lacks."""
    with pytest.raises(NameNotFound) as info:
        await catalog.resolve_custom_field("cf_contact_only")
    assert str(info.value) == (
        "No custom field has the id 'cf_contact_only'. "
        'Use lookup(kind="custom_fields") to list them.'
    )
    assert fake.requests == [("GET", "custom_field_schema/lead/")]


@pytest.mark.parametrize("answer", [{"data": CUSTOM_FIELDS}, {"fields": None}, []])
async def test_a_schema_without_its_fields_list_is_malformed(answer: object) -> None:
    def close(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    catalog = Catalog(CloseClient("api_test", BASE, transport=httpx.MockTransport(close)))
    with pytest.raises(MalformedResponse) as info:
        await catalog.custom_fields()
    assert str(info.value) == (
        "Close's list of custom fields had no 'fields' list. (GET custom_field_schema/lead/)"
    )


async def test_an_unlisted_id_is_fetched_once(catalog: Catalog, fake: FakeClose) -> None:
    assert (await catalog.resolve_template("tmpl_old")).name == "Old"
    assert (await catalog.resolve_template("tmpl_old")).is_archived
    assert fake.requests.count(("GET", "email_template/tmpl_old/")) == 1


# -- caching -------------------------------------------------------------------------------


async def test_each_kind_is_fetched_once_per_catalog(fake: FakeClose) -> None:
    catalog = make_catalog(fake)
    await catalog.resolve_status("New")
    await catalog.resolve_status("stat_won")
    await catalog.resolve_custom_field("Industry")
    await catalog.resolve_custom_field("cf_notes")
    await catalog.resolve_user("Bo Chen")
    await catalog.custom_fields()
    assert fake.listings() == {"status/lead/": 1, "custom_field_schema/lead/": 1, "user/": 1}
    # users came in pages of 2: 3 users, 2 requests, one listing; the schema is one GET
    assert [url for _, url in fake.requests if url.startswith("user/")] == [
        "user/?_skip=0&_limit=100",
        "user/?_skip=2&_limit=100",
    ]
    assert [url for _, url in fake.requests if url.startswith("custom_field")] == [
        "custom_field_schema/lead/"
    ]

    fresh = make_catalog(fake)
    await fresh.resolve_status("New")
    assert fake.listings()["status/lead/"] == 2


async def test_concurrent_lookups_share_one_fetch(fake: FakeClose, catalog: Catalog) -> None:
    found: list[str] = []

    async def resolve(name: str) -> None:
        found.append((await catalog.resolve_status(name)).id)

    async with anyio.create_task_group() as group:
        for name in ("New", "Qualified", "Closed Won", "stat_unq"):
            group.start_soon(resolve, name)
    assert sorted(found) == ["stat_new", "stat_qual", "stat_unq", "stat_won"]
    assert fake.listings() == {"status/lead/": 1}


async def test_a_renamed_status_is_seen_by_the_next_catalog(fake: FakeClose) -> None:
    first = make_catalog(fake)
    assert (await first.resolve_status("New")).id == "stat_new"
    STATUSES[0]["label"] = "Fresh"
    try:
        second = make_catalog(fake)
        assert (await second.resolve_status("Fresh")).id == "stat_new"
        assert (await first.resolve_status("New")).id == "stat_new"  # the old call's view
    finally:
        STATUSES[0]["label"] = "New"


async def test_an_unreadable_item_from_close_is_a_clear_error(fake: FakeClose) -> None:
    STATUSES.append({"id": "stat_odd"})  # no label
    try:
        with pytest.raises(MalformedResponse) as info:
            await make_catalog(fake).resolve_status("New")
    finally:
        STATUSES.pop()
    assert str(info.value) == (
        "Close's list of lead statuses had an item this server cannot read (label: Field "
        "required). (GET status/lead/)"
    )
