"""Which lead merges into which: pairs given, checked; or duplicate groups found by a key.

A pair is `{source, destination}`: Close moves the source's records to the destination and
deletes the source. Given pairs must not chain or fan in on a source: a lead is a source
at most once, and never both a source and a destination (a source deleted by one merge
cannot be the destination of the next).

Found by a key, leads that share a key value are one group (shared through any of their
values: a lead with two emails joins both groups into one). In each group the oldest lead
(earliest `date_created`, then the smaller id) is the destination, because its id, URL and
history are the ones other records and people already point at; every other lead of the
group merges into it. Keys:

- `contact_email`: any of its contacts' email addresses, compared without case.
- `email_domain`: the domains of those addresses, except `WEBMAIL` domains, which half the
  world shares (two leads with gmail.com addresses are not one company).
- `exact_name`: the lead's name, trimmed, with runs of spaces as one and without case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from close_mcp.close.times import close_time
from close_mcp.errors import ArgumentError

Key = Literal["contact_email", "email_domain", "exact_name"]
KEYS: Final[tuple[Key, ...]] = ("contact_email", "email_domain", "exact_name")
NEVER: Final = datetime.max.replace(tzinfo=UTC)
MAX_PAIRS: Final = 100  # one paced POST each, and each source backed up first
# Free mail domains: under `email_domain` they never make leads duplicates.
WEBMAIL: Final = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
        "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com", "msn.com",
        "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com",
        "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "zoho.com", "yandex.com",
        "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "fastmail.com", "hey.com",
        "t-online.de", "orange.fr", "free.fr", "comcast.net", "verizon.net", "att.net",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Pair:
    source: str
    destination: str


def check_pairs(pairs: Sequence[tuple[str, str]]) -> list[Pair]:
    """The given pairs, in order, or an `ArgumentError` naming the first one that breaks a
    rule (see the module docstring)."""
    if not pairs:
        raise ArgumentError("pairs", "give at least one {source, destination} pair")
    if len(pairs) > MAX_PAIRS:
        raise ArgumentError("pairs", f"{len(pairs)} pairs; at most {MAX_PAIRS} per call")
    sources: dict[str, int] = {}
    for i, (source, destination) in enumerate(pairs):
        if source == destination:
            raise ArgumentError(f"pairs[{i}]", f"{source} cannot be merged into itself")
        if source in sources:
            raise ArgumentError(
                f"pairs[{i}].source", f"{source} is already the source of pairs[{sources[source]}]"
            )
        sources[source] = i
    for i, (_, destination) in enumerate(pairs):
        if destination in sources:
            raise ArgumentError(
                f"pairs[{i}].destination",
                f"{destination} is the source of pairs[{sources[destination]}] (deleted by its "
                "merge): merge every lead of a group straight into one destination",
            )
    return [Pair(s, d) for s, d in pairs]


def key_values(lead: dict[str, Any], key: Key) -> set[str]:
    """The values of `key` a lead has (empty: it joins no group)."""
    if key == "exact_name":
        name = " ".join(str(lead.get("name") or "").split()).casefold()
        return {name} if name else set()
    emails = {
        str(e.get("email") or "").strip().casefold()
        for contact in lead.get("contacts") or []
        for e in contact.get("emails") or []
    }
    emails = {e for e in emails if "@" in e}
    if key == "contact_email":
        return emails
    domains = {e.rpartition("@")[2] for e in emails}
    return {d for d in domains if d and d not in WEBMAIL}


def _age(lead: dict[str, Any]) -> tuple[datetime, str]:
    """Older first: `date_created` (a lead without one last), then the id."""
    created = close_time(lead.get("date_created")) or NEVER
    return created, str(lead["id"])


def find_pairs(leads: Iterable[dict[str, Any]], key: Key) -> list[Pair]:
    """Every lead of a duplicate group into the group's oldest lead, groups in the order
    of their destinations' age, each group's sources oldest first."""
    by_id: dict[str, dict[str, Any]] = {}
    parent: dict[str, str] = {}

    def root(lead_id: str) -> str:
        while parent[lead_id] != lead_id:
            parent[lead_id] = parent[parent[lead_id]]
            lead_id = parent[lead_id]
        return lead_id

    first_with: dict[str, str] = {}  # key value -> the first lead seen with it
    for lead in leads:
        lead_id = str(lead["id"])
        by_id[lead_id] = lead
        parent.setdefault(lead_id, lead_id)
        for value in sorted(key_values(lead, key)):
            other = first_with.setdefault(value, lead_id)
            a, b = root(other), root(lead_id)
            if a != b:
                parent[b] = a
    groups: dict[str, list[dict[str, Any]]] = {}
    for lead_id, lead in by_id.items():
        groups.setdefault(root(lead_id), []).append(lead)
    pairs: list[Pair] = []
    ordered = sorted((sorted(g, key=_age) for g in groups.values() if len(g) > 1),
                     key=lambda g: _age(g[0]))  # fmt: skip
    for group in ordered:
        destination = str(group[0]["id"])
        pairs += [Pair(str(lead["id"]), destination) for lead in group[1:]]
    return pairs
