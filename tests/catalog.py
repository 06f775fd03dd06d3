"""A fake Close for catalog lookups (fixed lists, paged, every request counted) and the
catalog over it: `tests/unit/close/test_catalog.py` tests the catalog with it, the selection
unit tests resolve names against it (fixtures `fake` and `catalog`, tests/unit/conftest.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from close_mcp.close.catalog import Catalog
from close_mcp.close.client import CloseClient

BASE = "https://api.close.example/api/v1/"
LEAD = {"type": "object_type", "object_type": "lead"}
HOT_TREE = {
    "type": "and",
    "queries": [
        LEAD,
        {
            "type": "field_condition",
            "field": {"type": "custom_field", "custom_field_id": "cf_tags"},
            "condition": {"type": "term", "values": ["Hot"]},
        },
    ],
}
TOP_SORT = [
    {
        "direction": "desc",
        "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
    }
]

STATUSES = [
    {"id": "stat_new", "label": "New"},
    {"id": "stat_qual", "label": "Qualified"},
    {"id": "stat_unq", "label": "Unqualified"},
    {"id": "stat_won", "label": "Closed Won"},
]
CUSTOM_FIELDS = [
    {"id": "cf_ind", "name": "Industry", "type": "choices", "accepts_multiple_values": False,
     "choices": ["Software", "Retail", "Manufacturing"]},
    {"id": "cf_tags", "name": "Tags", "type": "choices", "accepts_multiple_values": True,
     "choices": ["Hot", "Cold", "Partner"]},
    {"id": "cf_size", "name": "Employees", "type": "number", "accepts_multiple_values": False,
     "choices": None},
    {"id": "cf_renew", "name": "Renewal Date", "type": "date", "accepts_multiple_values": False},
    {"id": "cf_owner", "name": "Account Owner", "type": "user", "accepts_multiple_values": True},
    {"id": "cf_notes", "name": "Notes", "type": "text", "accepts_multiple_values": False},
    {"id": "cf_reg1", "name": "Region", "type": "text", "accepts_multiple_values": False},
    {"id": "cf_reg2", "name": "Region", "type": "choices", "accepts_multiple_values": False,
     "choices": ["EU", "US"]},
    {"id": "cf_ref", "name": "Referrer", "type": "contact", "accepts_multiple_values": False},
]  # fmt: skip
# Shared fields: in the custom field schema, never in /custom_field/lead/ (Close's reference).
SHARED_FIELDS = [
    {"id": "cf_tier", "name": "Tier", "type": "choices", "accepts_multiple_values": False,
     "choices": ["Gold", "Silver"], "is_shared": True},
]  # fmt: skip
SCHEMA = {"fields": [{**f, "is_shared": False} for f in CUSTOM_FIELDS] + SHARED_FIELDS}
OPPORTUNITY_STATUSES = [
    {"id": "stat_oppwon", "label": "Won", "type": "won", "pipeline_id": "pipe_1"},
]
TEMPLATES = [
    {"id": "tmpl_welcome", "name": "Welcome", "subject": "Hi {{ lead.display_name }}",
     "body": "<p>Welcome</p>", "is_archived": False},
    {"id": "tmpl_intro1", "name": "Intro", "subject": "Intro", "body": "", "is_archived": False},
    {"id": "tmpl_intro2", "name": "intro", "subject": "intro", "body": "", "is_archived": False},
]  # fmt: skip
UNLISTED_TEMPLATE = {"id": "tmpl_old", "name": "Old", "subject": "Old", "is_archived": True}
SEQUENCES = [{"id": "seq_onb", "name": "Onboarding", "status": "active", "steps": []}]
SMART_VIEWS = [
    # As Close's reference has it: `query` (the old text form) null beside the s_query.
    {"id": "save_hot", "name": "Hot leads", "type": "lead", "query": None,
     "s_query": {"query": HOT_TREE, "results_limit": None, "sort": []}},
    {"id": "save_top", "name": "Top 10", "type": "lead",
     "s_query": {"query": HOT_TREE, "results_limit": 10, "sort": TOP_SORT}},
    {"id": "save_bare", "name": "Bare view", "s_query": {"type": "match_all"}},
    {"id": "save_contacts", "name": "My contacts", "type": "contact",
     "s_query": {"query": {"type": "and", "queries": [
         {"type": "object_type", "object_type": "contact"}]}}},
]  # fmt: skip
ACCOUNTS = [
    {"id": "emailacct_ana", "user_id": "user_ana",
     "identities": [{"email": "ana@example.com", "name": "Ana Lopez"}]},
    {"id": "emailacct_bo", "user_id": "user_bo",
     "identities": [{"email": "bo@example.com", "name": "Bo Chen"}]},
]  # fmt: skip
USERS = [
    {"id": "user_ana", "email": "ana@example.com", "first_name": "Ana", "last_name": "Lopez"},
    {"id": "user_bo", "email": "bo@example.com", "first_name": "Bo", "last_name": "Chen"},
    {"id": "user_cy", "email": "cy@example.com", "first_name": "Cy", "last_name": ""},
]

LISTS: dict[str, list[dict[str, Any]]] = {
    "custom_field/lead/": CUSTOM_FIELDS,
    "email_template/": TEMPLATES,
    "sequence/": SEQUENCES,
    "saved_search/": SMART_VIEWS,
    "connected_account/": ACCOUNTS,
    "user/": USERS,
}
PAGE = 2  # the fake serves at most this many per page, so paging is exercised


class FakeClose:
    """Serves the lookup endpoints with fixed data and counts what was asked."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1/")
        self.requests.append((request.method, str(request.url).removeprefix(BASE)))
        if path == "status/lead/":
            return httpx.Response(200, json={"data": STATUSES})
        if path == "custom_field_schema/lead/":
            return httpx.Response(200, json=SCHEMA)
        if path == "status/opportunity/":
            return httpx.Response(200, json={"data": OPPORTUNITY_STATUSES})
        if path in LISTS:
            skip = int(request.url.params.get("_skip", "0"))
            limit = min(int(request.url.params.get("_limit", "100")), PAGE)
            items = LISTS[path]
            return httpx.Response(
                200,
                json={"data": items[skip : skip + limit], "has_more": skip + limit < len(items)},
            )
        if path == "email_template/tmpl_old/":
            return httpx.Response(200, json=UNLISTED_TEMPLATE)
        return httpx.Response(404, json={"error": "Empty query: no such object"})

    def listings(self) -> Counter[str]:
        """First-page GETs per path: one per fetch of a kind, however many pages it has."""
        return Counter(
            url.split("?")[0] for method, url in self.requests if "_skip=0" in url or "?" not in url
        )


def make_catalog(fake: FakeClose) -> Catalog:
    return Catalog(CloseClient("api_test", BASE, transport=httpx.MockTransport(fake)))
