"""Whom a bulk email or a sequence subscription really reaches, counted before it is sent.

A bulk email goes, on each lead, to the contacts that have an address (`contact_preference`
lead: the first such contact, its first address; contact: each one's first address; all:
every address); a subscription takes the same contacts (lead: only the primary, first one),
less those that already had the sequence. "1,000 leads" is not what a person agrees to when
157 of them have an address, so the preview counts: it reads the selection's contacts, a
page of 200 leads per request, up to `MAX_LEADS` leads (beyond, the counts are of those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from close_mcp.close.client import CloseClient
from close_mcp.writes.request import WriteRequest

MAX_LEADS: Final = 5000
PAGE: Final = 200
MAX_SUBSCRIPTION_PAGES: Final = 50


@dataclass
class Reach:
    leads: int = 0  # leads read
    reached: int = 0  # leads with at least one recipient
    recipients: int = 0  # emails that go out, or contacts subscribed
    already: int = 0  # contacts left out: they had the sequence before
    all_taken: int = 0  # leads with an address whose every contact had the sequence
    complete: bool = True  # every matched lead was read

    @property
    def no_address(self) -> int:
        return self.leads - self.reached - self.all_taken


def _addresses(contact: dict[str, Any]) -> list[str]:
    return [
        str(e["email"])
        for e in contact.get("emails") or []
        if isinstance(e, dict) and isinstance(e.get("email"), str) and e["email"]
    ]


def targets(lead: dict[str, Any], preference: str) -> list[tuple[str, str]]:
    """(contact id, address) pairs the action reaches on this lead, as Close picks them."""
    with_email = [
        (str(c.get("id")), _addresses(c))
        for c in lead.get("contacts") or []
        if isinstance(c, dict) and _addresses(c)
    ]
    if preference == "all":
        return [(cid, address) for cid, addresses in with_email for address in addresses]
    firsts = [(cid, addresses[0]) for cid, addresses in with_email]
    return firsts[:1] if preference == "lead" else firsts


async def count_reach(
    client: CloseClient,
    request: WriteRequest,
    preference: str,
    taken: frozenset[str] = frozenset(),
) -> Reach:
    """Read the selection's leads with their contacts and count whom the action reaches;
    `taken`: contacts that are left out (they had the sequence)."""
    reach = Reach()
    assert request.s_query is not None
    async for lead in client.search_iter(
        request.s_query,
        fields=["id", "contacts"],
        results_limit=request.results_limit,
        sort=request.sort,
        page_size=PAGE,
    ):
        if reach.leads >= MAX_LEADS:
            reach.complete = False
            break
        reach.leads += 1
        every = targets(lead, preference)
        found = [(cid, a) for cid, a in every if cid not in taken]
        reach.already += len({cid for cid, _ in every if cid in taken})
        if found:
            reach.reached += 1
            reach.recipients += len(found)
        elif every:
            reach.all_taken += 1
    return reach


async def subscribed_contacts(client: CloseClient, sequence_id: str) -> frozenset[str]:
    """Contacts that have (or had) a subscription to the sequence: `subscribe` skips them."""
    contacts: set[str] = set()
    for page in range(MAX_SUBSCRIPTION_PAGES):
        answer = await client.get(
            "sequence_subscription/",
            {"sequence_id": sequence_id, "_skip": page * 100, "_limit": 100},
        )
        data = answer.get("data", []) if isinstance(answer, dict) else []
        contacts.update(
            str(s["contact_id"]) for s in data if isinstance(s, dict) and s.get("contact_id")
        )
        if not data or not (isinstance(answer, dict) and answer.get("has_more")):
            break
    return frozenset(contacts)


async def bulk_sender(client: CloseClient) -> str:
    """Whom Close's bulk email sends from: an email account of the API key's user (the
    request cannot name one, and Close does not say which it picks among several)."""
    me = await client.get("me/", {"_fields": "id,email_accounts"})
    accounts = me.get("email_accounts") if isinstance(me, dict) else None
    addresses = [
        str(a["identities"][0]["email"])
        for a in accounts or []
        if isinstance(a, dict)
        and isinstance(a.get("identities"), list)
        and a["identities"]
        and isinstance(a["identities"][0], dict)
        and a["identities"][0].get("email")
    ]
    if len(addresses) == 1:
        return f"{addresses[0]}, the API key user's email account"
    if addresses:
        return "one of the API key user's email accounts (Close picks it): " + ", ".join(
            addresses[:5]
        )
    return "the API key user's email account"


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def email_note(reach: Reach, matched: int, sender: str) -> str:
    read = "" if reach.complete else f" (counted on the first {reach.leads} leads)"
    skipped = reach.no_address
    emails = _n(reach.recipients, "email goes", "emails go")
    return (
        f"{emails} out, to {_n(reach.reached, 'lead', 'leads')} of {matched}{read}; "
        f"{_n(skipped, 'lead', 'leads')} with no contact with an email address "
        f"{'is' if skipped == 1 else 'are'} skipped. Close sends them now, as the job runs (a "
        f"bulk email has no schedule), from {sender}."
    )


def sequence_note(reach: Reach, matched: int, preference: str) -> str:
    read = "" if reach.complete else f" (counted on the first {reach.leads} leads)"
    who = (
        "the primary contact (the first with an email address) of each lead"
        if preference == "lead"
        else "each contact with an email address"
    )
    no_address = reach.no_address
    parts = [
        f"Subscribes {_n(reach.recipients, 'contact', 'contacts')} on "
        f"{_n(reach.reached, 'lead', 'leads')} of {matched}{read}: {who} (contact_preference "
        f"{preference}).",
        f"Skipped: {_n(no_address, 'lead', 'leads')} with no contact with an email address",
    ]
    if reach.already:
        parts[-1] += f"; {_n(reach.already, 'contact', 'contacts')} that had this sequence before"
    parts[-1] += "."
    return " ".join(parts)
