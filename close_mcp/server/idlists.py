"""Long id lists out of tool results: a count, the first three and a digest.

A selection that names 1,000 leads by id is echoed in a search's `s_query`, a preview's
request and a job's query: 18,000 tokens each time, over the 1,500 a result may take. Every
result passes through `shorten` on its way out, so no tool can forget it: a list of more than
`LONG` ids becomes `{count, first, sha256, all}`, and the whole list is the resource
`close://id-lists/<sha256>` (kept in the state store). Only what the model reads changes: the
request sent, the token's binding and the audit log keep every id. The store is shared by
replicas and by every key a team sends, so a list is kept under the caller it was shown to
(`CloseClient.caller`, the digest tokens are bound to) and read back only by that caller.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

from close_mcp.store.base import StateStore

LONG: Final = 10  # lists up to this long are shown whole
SHOWN: Final = 3
KEPT_S: Final = 7 * 24 * 3600.0  # a week: as long as anyone follows a job
URI: Final = "close://id-lists/{sha256}"
# Close's ids by their prefixes: a list of field names (`date_created`) or choices is no id list.
_ID: Final = re.compile(
    r"^(lead|cont|acti|stat|user|cf|tmpl|seq|sub|save|emailacct|orga|oppo|task|bulk[a-z]+)"
    r"_[A-Za-z0-9]+$"
)
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")


def digest(ids: list[str]) -> str:
    """sha256 of the list as compact JSON, in order: what the shortened form names."""
    return hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode()).hexdigest()


def key(caller: str, sha256: str) -> str:
    return f"id-list:{caller}:{sha256}"


def _long_id_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > LONG
        and all(isinstance(item, str) and _ID.match(item) for item in value)
    )


def shortened(value: Any, found: dict[str, list[str]]) -> Any:
    """`value` with every long id list shortened; the lists are added to `found` by digest."""
    if _long_id_list(value):
        sha = digest(value)
        found[sha] = list(value)
        return {
            "count": len(value),
            "first": value[:SHOWN],
            "sha256": sha,
            "all": URI.format(sha256=sha),
        }
    if isinstance(value, dict):
        return {k: shortened(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [shortened(v, found) for v in value]
    return value


async def shorten(store: StateStore, caller: str, value: Any) -> Any:
    """`value` as a result shows it; the whole lists kept for `caller` to read back."""
    found: dict[str, list[str]] = {}
    out = shortened(value, found)
    for sha, ids in found.items():
        await store.put(key(caller, sha), json.dumps(ids, separators=(",", ":")), ttl_s=KEPT_S)
    return out


async def id_list(store: StateStore, caller: str, sha256: str) -> list[str] | None:
    """The whole list a shortened one names, if it was shown to `caller`; else None
    (unknown, expired, or another caller's)."""
    if not _SHA256.match(sha256):
        return None
    text = await store.get(key(caller, sha256))
    if text is None:
        return None
    ids = json.loads(text)
    return ids if isinstance(ids, list) else None
